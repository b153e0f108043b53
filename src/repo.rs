//! A repository on disk: loading its index, reading bundles, writing files
//! crash-safely, and the writer's lock.
//!
//! Every file is replaced the same way: write a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory. A
//! crash at any instant leaves either the old file or the new one, never a
//! mix; a leftover temporary file is removed by the next writer and
//! ignored by readers.

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, sha256_hex, BundleEntry, Index, INDEX_FILE};
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
/// The index is read with [`crate::index::parse`] (the rules every tool
/// shares) and must be numbered 1..last_bundle.
pub fn load_index(dir: &Path) -> Result<Option<Index>> {
    let path = dir.join(INDEX_FILE);
    let bytes = match read_regular(&path, MAX_INDEX_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let idx = parse_index(&path, &bytes)?.index;
    crate::index::check_numbering(&idx)
        .map_err(|e| Error::Archive(format!("{}: {e}; run plc-verify", path.display())))?;
    Ok(Some(idx))
}

/// [`crate::index::parse`] with the file's name in the error.
pub fn parse_index(path: &Path, bytes: &[u8]) -> Result<crate::index::ParsedIndex> {
    crate::index::parse(bytes).map_err(|e| Error::Archive(format!("{}: {e}", path.display())))
}

/// Reads and parses the index file at `path` (a regular file of at most
/// [`MAX_INDEX_BYTES`]), returning its bytes as well.
pub fn read_index_file(path: &Path) -> Result<(Vec<u8>, crate::index::ParsedIndex)> {
    let bytes =
        read_regular(path, MAX_INDEX_BYTES).ctx(|| format!("reading {}", path.display()))?;
    let parsed = parse_index(path, &bytes)?;
    Ok((bytes, parsed))
}

/// The largest index any tool reads: about 150,000 bundles' entries, 1.5
/// billion operations, twenty times the directory of late 2026.
pub const MAX_INDEX_BYTES: u64 = 128 << 20;

/// The largest content a bundle can have whatever its index says: 10,000
/// lines of at most [`crate::line::MAX_LINE`] bytes, each with its `\n`.
pub const MAX_CONTENT: u64 = crate::index::BUNDLE_SIZE as u64 * (crate::line::MAX_LINE as u64 + 1);

/// How much larger than its entry's `compressed_size` a bundle file may
/// be: one implementation counts only the data frames, leaving out a
/// leading metadata frame of a few hundred bytes.
pub const COMPRESSED_SLACK: u64 = 1 << 20;

/// The most bytes of `entry`'s file worth reading: anything longer cannot
/// be the file the index names.
pub fn file_bound(entry: &BundleEntry) -> u64 {
    entry.compressed_size.saturating_add(COMPRESSED_SLACK)
}

/// The most content `entry`'s file may decompress to: its
/// `uncompressed_size`, never more than the format allows.
pub fn content_bound(entry: &BundleEntry) -> u64 {
    entry.uncompressed_size.min(MAX_CONTENT)
}

/// Opens `path` for reading only if it is a regular file (following
/// symlinks), returning it and its length. A FIFO, socket or device in
/// place of a bundle or the index would block a reader forever or never
/// end; it is refused with an error of kind `InvalidInput`. The file is
/// opened with `O_NONBLOCK` (so opening a FIFO does not wait for a
/// writer) and checked with `fstat` on the open descriptor (so it cannot
/// be swapped between the check and the read); on a regular file the
/// flag changes nothing.
pub fn open_regular(path: &Path) -> std::io::Result<(File, u64)> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        let ft = meta.file_type();
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "something else"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{kind}, not a regular file: refused"),
        ));
    }
    Ok((f, meta.len()))
}

/// The most [`reserve_large`] populates up front: a bundle of typical
/// operations holds 5 to 10 MB. Room past it is faulted in as it is
/// written, as usual, so a frame header that claims gigabytes it does not
/// hold costs no memory before the frame is found out.
pub const POPULATE_MAX: usize = 32 << 20;

/// Makes room for `n` more bytes in `buf`. When that takes a new
/// allocation of a megabyte or more, the room (up to [`POPULATE_MAX`]) is
/// populated in one call, on huge pages where the kernel offers them,
/// instead of one page fault per 4 KB as it is written: a run that reads
/// one bundle into fresh buffers spent about a quarter of its time in
/// those faults (measured in the README's "plc-index" notes).
///
/// Room the allocator cannot give (an address-space limit, say, against
/// a size some header claims) is an error of kind `OutOfMemory`, not an
/// abort.
pub fn reserve_large(buf: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
    if buf.capacity() - buf.len() >= n {
        return Ok(());
    }
    buf.try_reserve(n).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("cannot allocate {n} bytes: {e}"),
        )
    })?;
    #[cfg(target_os = "linux")]
    if n >= 1 << 20 {
        let page = 4096usize;
        let start = buf.as_mut_ptr() as usize + buf.len();
        let (a, b) = (start.next_multiple_of(page), (start + n) / page * page);
        let populated = b.min(a + POPULATE_MAX);
        if a < b {
            // SAFETY: [a, b) lies inside `buf`'s allocation, which nothing
            // else references; both calls only advise the kernel about
            // it (an error, on a kernel without them, changes nothing).
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
                libc::madvise(
                    a as *mut libc::c_void,
                    populated - a,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    Ok(())
}

/// Reads the regular file at `path` whole into `buf` (replacing what it
/// held), refusing one longer than `max` bytes before reading anything.
/// The read itself stops at `max + 1` bytes, so a file growing meanwhile
/// cannot make it read more.
pub fn read_regular_into(path: &Path, max: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let (f, len) = open_regular(path)?;
    if len > max {
        return Err(too_large(len, max));
    }
    reserve_large(buf, len as usize)?;
    f.take(max + 1).read_to_end(buf)?;
    if buf.len() as u64 > max {
        return Err(too_large(buf.len() as u64, max));
    }
    Ok(())
}

/// [`read_regular_into`] a fresh buffer.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_regular_into(path, max, &mut buf)?;
    Ok(buf)
}

fn too_large(len: u64, max: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{len} bytes, more than the {max} it can be"),
    )
}

/// Reads bundle `entry`'s file in `dir` and returns its content, checked
/// against the entry's `content_hash`. Reads at most [`file_bound`] bytes
/// and decompresses at most [`content_bound`]: a file that would exceed
/// either is refused before it costs more memory than the index allows.
pub fn read_bundle(dir: &Path, entry: &BundleEntry) -> Result<Vec<u8>> {
    let path = dir.join(bundle_file_name(entry.bundle_number));
    let file =
        read_regular(&path, file_bound(entry)).ctx(|| format!("reading {}", path.display()))?;
    let mut content = Vec::new();
    decompress_bounded(&file, content_bound(entry), &mut content, true)
        .ctx(|| format!("decompressing {}", path.display()))?;
    if sha256_hex(&content) != entry.content_hash {
        return Err(Error::Archive(format!(
            "{}: content does not match the index's content_hash; run plc-verify",
            path.display()
        )));
    }
    Ok(content)
}

/// Decompresses a whole bundle file (any number of zstd frames, skippable
/// frames ignored) of at most [`MAX_CONTENT`] bytes of content. Prefer
/// [`read_bundle`], or [`decompress_bounded`] with the index's
/// `uncompressed_size`, a far tighter bound.
pub fn decompress(file: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_bounded(file, MAX_CONTENT, &mut out, true)?;
    Ok(out)
}

/// Decompresses `file` into `out` (replacing what it held, reusing its
/// allocation), failing with `InvalidData` as soon as the content would
/// exceed `bound` bytes: a small file that expands to gigabytes (a zstd
/// bomb) costs at most `bound` bytes of memory, whatever its frame
/// headers claim.
///
/// When every frame states its content size (ours do; skippable frames
/// count as empty) and the total is within `bound`, the frames are decoded
/// straight into `out` in one call (zstd checks each frame's output
/// against its stated size, so a lying header is an error, not an
/// overflow). Otherwise (frames without a size, as some writers make them)
/// they go through the streaming decoder, read through
/// `Read::take(bound + 1)`. With `check_frames` false, the frames' XXH64
/// checksums are not verified when the frames are decoded in one call
/// (for callers that compare the content's SHA-256 themselves, which
/// catches everything the checksums would, for about 3% less time).
pub fn decompress_bounded(
    file: &[u8],
    bound: u64,
    out: &mut Vec<u8>,
    check_frames: bool,
) -> std::io::Result<()> {
    out.clear();
    match stated_size(file) {
        Some(size) if size > bound => return Err(expands_past(bound)),
        Some(size) => {
            reserve_large(out, size as usize)?;
            let mut d = zstd::bulk::Decompressor::new()?;
            if !check_frames {
                d.set_parameter(zstd::zstd_safe::DParameter::ForceIgnoreChecksum(true))?;
            }
            d.decompress_to_buffer(file, out)?;
            return Ok(());
        }
        None => {}
    }
    // Grown as content arrives, never reserved from a header's claim
    // beyond the bound.
    // Only a hint: room the allocator refuses is left to the growth below.
    let _ = out.try_reserve(content_size_hint(file).min(bound) as usize);
    zstd::stream::read::Decoder::with_buffer(file)?
        .take(bound.saturating_add(1))
        .read_to_end(out)?;
    if out.len() as u64 > bound {
        out.clear();
        out.shrink_to(0);
        return Err(expands_past(bound));
    }
    Ok(())
}

fn expands_past(bound: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("expands past {bound} bytes, more than the index allows"),
    )
}

/// The total content size the frame headers in `file` state, when every
/// frame states one.
fn stated_size(file: &[u8]) -> Option<u64> {
    use zstd::zstd_safe::{find_frame_compressed_size, get_frame_content_size};
    let (mut pos, mut total) = (0usize, 0u64);
    while pos < file.len() {
        let rest = &file[pos..];
        total = total.checked_add(get_frame_content_size(rest).ok()??)?;
        pos += find_frame_compressed_size(rest).ok()?;
    }
    Some(total)
}

/// The content size a zstd file's first frame header states (so that the
/// output is allocated once), or a guess; the caller caps it.
fn content_size_hint(file: &[u8]) -> u64 {
    zstd::zstd_safe::get_frame_content_size(file)
        .ok()
        .flatten()
        .filter(|&n| n > 0)
        .unwrap_or((file.len() as u64).saturating_mul(4))
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
    let content = read_bundle(dir, last)?;
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
pub fn continue_from(dir: &Path, origin: Option<&str>) -> Result<Option<Tail>> {
    let Some(idx) = load_index(dir)? else {
        return Ok(None);
    };
    if let Some(origin) = origin {
        check_origin(dir, &idx, origin)?;
    }
    read_tail(dir, &idx)
}

/// Refuses to add operations from `origin` to the archive `dir` whose
/// index is `idx` when the index names another origin: an archive never
/// mixes origins. The one place this rule and its message live.
pub fn check_origin(dir: &Path, idx: &Index, origin: &str) -> Result<()> {
    if crate::index::same_origin(&idx.origin, origin) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} holds operations from {:?}, not {origin:?}; refusing to mix origins",
        dir.display(),
        idx.origin
    )))
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
