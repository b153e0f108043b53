//! A repository on disk: loading its index, reading bundles, writing files
//! crash-safely, and the writer's lock.
//!
//! Every file is replaced the same way: write a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory. A
//! crash at any instant leaves either the old file or the new one, never a
//! mix; a leftover temporary file is removed by the next writer and
//! ignored by readers.

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, sha256_hex, Index, INDEX_FILE};
use crate::line::parse_op;
use crate::time::Timestamp;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Suffix of temporary files; they always start with `.` as well.
pub const TMP_SUFFIX: &str = ".tmp";
/// The lock file a writer holds.
pub const LOCK_FILE: &str = ".plc-seal.lock";

/// Loads `dir`'s index; `None` when the directory or the index is missing.
pub fn load_index(dir: &Path) -> Result<Option<Index>> {
    let path = dir.join(INDEX_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let idx: Index = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Archive(format!("{}: not a valid index: {e}", path.display())))?;
    if idx.bundles.len() as u64 != idx.last_bundle
        || idx
            .bundles
            .iter()
            .enumerate()
            .any(|(i, b)| b.bundle_number != i as u64 + 1)
    {
        return Err(Error::Archive(format!(
            "{}: bundles are not numbered 1..last_bundle; run plc-verify",
            path.display()
        )));
    }
    Ok(Some(idx))
}

/// Decompresses a whole bundle file (any number of zstd frames, skippable
/// frames ignored).
pub fn decompress(file: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(file, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (replacing what it held), reusing its
/// allocation.
///
/// When every frame states its content size (ours do; skippable frames
/// count as empty), the frames are decoded straight into `out` in one
/// call. Otherwise (frames without a size, as some writers make them) they
/// go through the streaming decoder, which decodes into its own window and
/// copies out.
pub fn decompress_into(file: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    decode(file, out, true)
}

/// [`decompress_into`]; with `check_frames` false, the frames' XXH64
/// checksums are not verified when the frames are decoded in one call.
fn decode(file: &[u8], out: &mut Vec<u8>, check_frames: bool) -> std::io::Result<()> {
    out.clear();
    if let Some(size) = stated_size(file) {
        out.reserve(size);
        let mut d = zstd::bulk::Decompressor::new()?;
        if !check_frames {
            d.set_parameter(zstd::zstd_safe::DParameter::ForceIgnoreChecksum(true))?;
        }
        d.decompress_to_buffer(file, out)?;
        return Ok(());
    }
    out.reserve(content_size_hint(file));
    zstd::stream::read::Decoder::with_buffer(file)?.read_to_end(out)?;
    Ok(())
}

/// The total content size the frame headers in `file` state, when every
/// frame states one and the total is plausible for a bundle (a forged
/// header cannot make us allocate more than 64 MiB).
fn stated_size(file: &[u8]) -> Option<usize> {
    use zstd::zstd_safe::{find_frame_compressed_size, get_frame_content_size};
    let (mut pos, mut total) = (0usize, 0u64);
    while pos < file.len() {
        let rest = &file[pos..];
        total += get_frame_content_size(rest).ok()??;
        pos += find_frame_compressed_size(rest).ok()?;
    }
    usize::try_from(total).ok().filter(|&n| n <= 64 << 20)
}

/// Like [`decompress_into`], and also returns the lowercase hex SHA-256s
/// of the file and of the content, hashed together right after decoding
/// while both are still in the last-level cache (see [`crate::sha`]).
///
/// The frames' XXH64 checksums are not verified: the caller compares the
/// content's SHA-256 with the content hash it expects, which catches
/// everything they would, and they cost about 3% of plc-verify.
/// ([`decompress_into`], used where nothing else checks the content, keeps
/// them.)
pub fn decompress_hashed(file: &[u8], out: &mut Vec<u8>) -> std::io::Result<(String, String)> {
    decode(file, out, false)?;
    Ok(crate::sha::sha256_hex_pair(file, out))
}

/// The content size a zstd file's first frame header states (so that the
/// output is allocated once), or a guess.
fn content_size_hint(file: &[u8]) -> usize {
    zstd::zstd_safe::get_frame_content_size(file)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0 && n <= 64 << 20)
        .unwrap_or(file.len() * 6)
}

/// Where an archive ends: what a continuing writer must start after.
#[derive(Clone, Debug)]
pub struct Tail {
    /// The last bundle's number.
    pub bundle: u64,
    /// The last bundle's end_time, verbatim.
    pub end_time: String,
    /// The same as an instant.
    pub time: Timestamp,
    /// CIDs of the last bundle's operations at that instant.
    pub cids: Vec<String>,
}

/// Reads the last bundle of `idx` and returns where the archive ends, or
/// `None` for an archive without bundles. The bundle's content hash is
/// checked, so a damaged tail is never built upon.
pub fn read_tail(dir: &Path, idx: &Index) -> Result<Option<Tail>> {
    let Some(last) = idx.bundles.last() else {
        return Ok(None);
    };
    let path = dir.join(bundle_file_name(last.bundle_number));
    let file = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
    let content = decompress(&file).ctx(|| format!("decompressing {}", path.display()))?;
    if sha256_hex(&content) != last.content_hash {
        return Err(Error::Archive(format!(
            "{}: content does not match the index's content_hash; run plc-verify",
            path.display()
        )));
    }
    let time = Timestamp::parse(&last.end_time).ok_or_else(|| {
        Error::Archive(format!(
            "bundle {}: end_time {:?} is not a timestamp",
            last.bundle_number, last.end_time
        ))
    })?;
    let mut cids = Vec::new();
    for (i, line) in crate::line::split_lines(&content).enumerate() {
        if line.is_empty() {
            continue;
        }
        let op = parse_op(line)
            .map_err(|r| Error::Archive(format!("{}: operation {}: {r}", path.display(), i + 1)))?;
        if op.time == time {
            cids.push(op.cid.into_owned());
        }
    }
    Ok(Some(Tail {
        bundle: last.bundle_number,
        end_time: last.end_time.clone(),
        time,
        cids,
    }))
}

/// Loads the index and tail of `dir` for a tool that continues the
/// archive, checking its origin against `origin`. A missing directory or
/// index means "start from the beginning".
pub fn continue_from(dir: &Path, origin: &str) -> Result<Option<Tail>> {
    let Some(idx) = load_index(dir)? else {
        return Ok(None);
    };
    if !crate::index::same_origin(&idx.origin, origin) {
        return Err(Error::Usage(format!(
            "{} holds operations from {:?}, not {origin:?}; refusing to mix origins",
            dir.display(),
            idx.origin
        )));
    }
    read_tail(dir, &idx)
}

/// Creates the repository `dir` holding `index`, atomically: it is built
/// under a temporary name beside `dir` and renamed into place, so `dir`
/// either does not exist or is a valid (empty) archive. When another
/// writer created `dir` first, theirs is kept.
pub fn create_repo(dir: &Path, index: &Index) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).ctx(|| format!("creating {}", parent.display()))?;
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a directory name", dir.display())))?;
    let prefix = format!(".{}.init-", name.to_string_lossy());
    remove_dead_inits(&parent, &prefix);
    let tmp = parent.join(format!("{prefix}{}{TMP_SUFFIX}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    let made = write_atomic(&tmp, INDEX_FILE, &index.to_bytes()).and_then(|()| {
        match fs::rename(&tmp, dir) {
            Ok(()) => sync_dir(&parent),
            // Someone else made it in the meantime: use theirs.
            Err(_) if dir.is_dir() => Ok(()),
            Err(e) => Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    });
    let _ = fs::remove_dir_all(&tmp);
    made
}

/// Removes `PREFIX<pid>.tmp` directories beside a repository left by
/// writers that were killed while creating it (their process is gone).
fn remove_dead_inits(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(TMP_SUFFIX))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The temporary name used while writing `name`.
pub fn tmp_name(name: &str) -> String {
    format!(".{name}{TMP_SUFFIX}")
}

/// Writes `data` to `dir/name` crash-safely: temporary file, fsync,
/// rename, fsync of the directory.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(tmp_name(name));
    let target = dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .ctx(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, &target).ctx(|| format!("renaming into {}", target.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// True for the temporary files this crate writes inside a repository:
/// `.NNNNNN.jsonl.zst.tmp` and `.plc_bundles.json.tmp`.
pub fn is_our_tmp(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(TMP_SUFFIX))
        .is_some_and(|n| n == INDEX_FILE || crate::index::parse_bundle_file_name(n).is_some())
}

/// fsyncs a directory so that renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

/// Removes temporary files a killed writer left behind. Call only while
/// holding the lock.
pub fn remove_stale_tmp(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_our_tmp(&name) {
            fs::remove_file(entry.path()).ctx(|| format!("removing {}", entry.path().display()))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// The exclusive writer's lock on a repository, released on drop (and by
/// the kernel when the process dies, however it dies).
pub struct RepoLock {
    _file: File,
}

impl RepoLock {
    /// Takes the lock without waiting; fails at once when another writer
    /// holds it.
    pub fn acquire(dir: &Path) -> Result<RepoLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RepoLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Archive(format!(
                "{} is locked by another writer (another plc-seal is running); try again when it has finished",
                dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
        }
    }
}
