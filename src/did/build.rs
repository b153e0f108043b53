//! `plc-index`: brings a repository's DID index up to date with its
//! sealed bundles.
//!
//! Incremental: only the bundles after the manifest's last one are read.
//! Safe while `plc-seal` appends: the archive index is read once, as a
//! snapshot, and only the bundles it lists (whose files are complete,
//! since a bundle file is in place before the index names it) are read.
//! Each bundle file is checked against the index's `compressed_hash`
//! before it is indexed. Memory is bounded by one batch of
//! [`BATCH`] bundles' records (about 7 MB), whatever the archive's size.
//! An index that no longer matches the archive (another chain, or bundle
//! files re-sealed into another layout) is rebuilt from scratch.

use super::store::{
    self, index_dir, read_manifest, record, BundleFrames, Frame, Loc, Manifest, Segment,
    SegmentWriter, MANIFEST, RECORD_LEN,
};
use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, BundleEntry, Index};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bundles indexed per new segment.
pub const BATCH: usize = 32;
/// The lock file a running plc-index holds inside the index directory.
pub const LOCK: &str = ".lock";

/// What `plc-index` is asked to do.
pub struct IndexConfig {
    /// The repository.
    pub repo: PathBuf,
    /// Threads reading bundles; 0 = one per core.
    pub threads: usize,
    /// Bundles per new segment; 0 = [`BATCH`]. (Tests set it low to make
    /// many segments and merges out of a few bundles.)
    pub batch: usize,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct IndexReport {
    /// Bundles read by this run.
    pub indexed: u64,
    /// The last bundle the index covers afterwards.
    pub last_bundle: u64,
    /// True when an index that did not match the archive was discarded.
    pub rebuilt: bool,
    /// Segments afterwards.
    pub segments: usize,
}

/// Brings `cfg.repo`'s DID index up to date. `log` gets one line per
/// segment written (progress for long first runs).
pub fn index(cfg: &IndexConfig, log: &mut dyn Write) -> Result<IndexReport> {
    let repo = &cfg.repo;
    let Some(archive) = crate::repo::load_index(repo)? else {
        return Err(Error::Usage(format!(
            "{} is not a repository (no {})",
            repo.display(),
            crate::index::INDEX_FILE
        )));
    };
    let dir = index_dir(repo);
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    let mut report = IndexReport::default();
    let mut manifest = match usable_manifest(&dir, &archive)? {
        Some(m) => m,
        None => {
            report.rebuilt = read_manifest(&dir).ok().flatten().is_some();
            let empty = Manifest {
                version: 1,
                ..Manifest::default()
            };
            write_manifest(&dir, &empty)?;
            empty
        }
    };
    remove_strays(&dir, &manifest)?;
    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.threads
    };
    let start = manifest.last_bundle as usize;
    let per_segment = if cfg.batch == 0 { BATCH } else { cfg.batch };
    for batch in archive.bundles[start..].chunks(per_segment) {
        let (first, last) = (batch[0].bundle_number, batch[batch.len() - 1].bundle_number);
        let (records, frames) = read_batch(repo, batch, threads)?;
        let mut w = SegmentWriter::create(&dir, first as u32, last as u32)?;
        for r in &records {
            w.push(r)?;
        }
        drop(records);
        let name = w.finish(first as u32, &frames)?;
        let mut old = Vec::new();
        manifest.segments.push(name);
        manifest.last_bundle = last;
        manifest.head = batch[batch.len() - 1].hash.clone();
        compact(&dir, &mut manifest, &mut old)?;
        write_manifest(&dir, &manifest)?;
        for name in old {
            let p = dir.join(&name);
            fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
        }
        report.indexed += batch.len() as u64;
        let _ = writeln!(log, "indexed bundles {first} to {last}");
    }
    report.last_bundle = manifest.last_bundle;
    report.segments = manifest.segments.len();
    Ok(report)
}

/// The exclusive lock of one plc-index at a time (readers take none).
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Archive(format!(
            "{} is locked by another plc-index; try again when it has finished",
            dir.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

/// The manifest when it can be built upon: its segments open, it covers a
/// prefix of the archive's chain, and every indexed bundle file is still
/// the one it was built from. `None` means "start again".
fn usable_manifest(dir: &Path, archive: &Index) -> Result<Option<Manifest>> {
    let Some(m) = read_manifest(dir).unwrap_or(None) else {
        return Ok(None);
    };
    let last = m.last_bundle as usize;
    if m.version != 1 || last > archive.bundles.len() {
        return Ok(None);
    }
    if last > 0 && archive.bundles[last - 1].hash != m.head {
        return Ok(None);
    }
    let mut n = 0usize;
    for name in &m.segments {
        let Ok(seg) = Segment::open(&dir.join(name)) else {
            return Ok(None);
        };
        if seg.first_bundle as usize != n + 1 {
            return Ok(None);
        }
        for b in &seg.bundles {
            let entry = &archive.bundles[n];
            if hex::encode(b.file_sha256) != entry.compressed_hash {
                return Ok(None);
            }
            n += 1;
        }
    }
    Ok((n == last).then_some(m))
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(m).expect("manifest serializes");
    bytes.push(b'\n');
    crate::repo::write_atomic(dir, MANIFEST, &bytes)
}

/// Removes files a killed run left: anything but the manifest, the lock
/// and the segments the manifest names.
fn remove_strays(dir: &Path, m: &Manifest) -> Result<()> {
    for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST || name == LOCK || m.segments.contains(&name) {
            continue;
        }
        let p = entry.path();
        fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Merges the two newest segments while the newer holds at least half as
/// many records as the older. Names of replaced files go to `old`.
fn compact(dir: &Path, m: &mut Manifest, old: &mut Vec<String>) -> Result<()> {
    while m.segments.len() >= 2 {
        let n = m.segments.len();
        let open = |name: &String| {
            let p = dir.join(name);
            Segment::open(&p).ctx(|| format!("reading {}", p.display()))
        };
        let (a, b) = (open(&m.segments[n - 2])?, open(&m.segments[n - 1])?);
        if b.records() * 2 < a.records() {
            break;
        }
        let merged = merge(dir, &a, &b)?;
        old.push(m.segments.pop().expect("two segments"));
        old.push(m.segments.pop().expect("two segments"));
        m.segments.push(merged);
    }
    Ok(())
}

/// Writes one segment holding `a`'s and `b`'s records (streamed) and
/// frame tables; `b` covers the bundles right after `a`'s.
fn merge(dir: &Path, a: &Segment, b: &Segment) -> Result<String> {
    let reader = |s: &Segment| -> Result<BufReader<std::io::Take<File>>> {
        let p = dir.join(&s.name);
        let f = File::open(&p).ctx(|| format!("opening {}", p.display()))?;
        Ok(BufReader::with_capacity(
            1 << 20,
            f.take(s.records() * RECORD_LEN as u64),
        ))
    };
    let next =
        |r: &mut BufReader<std::io::Take<File>>, name: &str| -> Result<Option<[u8; RECORD_LEN]>> {
            let mut rec = [0u8; RECORD_LEN];
            match r.read_exact(&mut rec) {
                Ok(()) => Ok(Some(rec)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(Error::io(format!("reading {name}"), e)),
            }
        };
    let (mut ra, mut rb) = (reader(a)?, reader(b)?);
    let mut w = SegmentWriter::create(dir, a.first_bundle, b.last_bundle())?;
    let (mut x, mut y) = (next(&mut ra, &a.name)?, next(&mut rb, &b.name)?);
    loop {
        match (x, y) {
            (Some(p), Some(q)) if p <= q => {
                w.push(&p)?;
                x = next(&mut ra, &a.name)?;
            }
            (_, Some(q)) => {
                w.push(&q)?;
                y = next(&mut rb, &b.name)?;
            }
            (Some(p), None) => {
                w.push(&p)?;
                x = next(&mut ra, &a.name)?;
            }
            (None, None) => break,
        }
    }
    let frames: Vec<BundleFrames> = a.bundles.iter().chain(&b.bundles).cloned().collect();
    w.finish(a.first_bundle, &frames)
}

/// One bundle's records and frame table.
type BundleRecords = (Vec<[u8; RECORD_LEN]>, BundleFrames);

#[cfg(test)]
mod merge_tests {
    #[test]
    fn merged_runs_are_sorted_and_complete() {
        let rec = |k: u8, b: u8| {
            let mut r = [0u8; super::RECORD_LEN];
            r[0] = k;
            r[18] = b;
            r
        };
        let runs = vec![
            vec![rec(1, 1), rec(5, 1), rec(9, 1)],
            vec![],
            vec![rec(0, 2), rec(5, 2), rec(10, 2)],
        ];
        let mut want: Vec<_> = runs.iter().flatten().copied().collect();
        want.sort_unstable();
        assert_eq!(super::merge_runs(runs), want);
    }

    #[test]
    fn the_integer_key_orders_records_as_their_bytes_do() {
        // Pseudo-random records, many sharing prefixes of every length,
        // sorted by the key and by the bytes; and merged from sorted runs.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut byte = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 3) as u8 * 0x7f
        };
        let recs: Vec<[u8; super::RECORD_LEN]> =
            (0..5000).map(|_| std::array::from_fn(|_| byte())).collect();
        let mut by_bytes = recs.clone();
        by_bytes.sort();
        let mut by_key = recs.clone();
        by_key.sort_by_key(super::sort_key);
        assert_eq!(by_key, by_bytes);
        let runs: Vec<Vec<_>> = recs
            .chunks(700)
            .map(|c| {
                let mut c = c.to_vec();
                c.sort_unstable_by_key(super::sort_key);
                c
            })
            .collect();
        assert_eq!(super::merge_runs(runs), by_bytes);
    }
}

/// Reads a batch of bundles on `threads` threads; returns their records,
/// sorted, and their frame tables in bundle order.
fn read_batch(
    repo: &Path,
    batch: &[BundleEntry],
    threads: usize,
) -> Result<(Vec<[u8; RECORD_LEN]>, Vec<BundleFrames>)> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<BundleRecords>>> = Mutex::new(vec![None; batch.len()]);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    // A lone bundle (the usual incremental run) is read on this thread,
    // its file hashed on a second one.
    let lone = batch.len() == 1 && threads > 1;
    let work = || {
        let mut bufs = BundleBuffers::default();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= batch.len() || failure.lock().expect("lock").is_some() {
                return;
            }
            match read_bundle(repo, &batch[i], &mut bufs, lone) {
                Ok(r) => results.lock().expect("lock")[i] = Some(r),
                Err(e) => {
                    failure.lock().expect("lock").get_or_insert(e);
                    return;
                }
            }
        }
    };
    match threads.clamp(1, batch.len()) {
        // One bundle (the usual incremental run) on this thread: a thread
        // of its own would cost more than the bundle, its buffers being
        // freed with a TLB shootdown across cores.
        1 => work(),
        n => std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(work);
            }
        }),
    }
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let mut runs = Vec::with_capacity(batch.len());
    let mut frames = Vec::with_capacity(batch.len());
    for r in results.into_inner().expect("lock") {
        let (recs, f) = r.expect("every bundle read");
        runs.push(recs);
        frames.push(f);
    }
    Ok((merge_runs(runs), frames))
}

/// A record as two big-endian integers ([`sort_key`]).
type SortKey = (u128, u64);

/// A record as two big-endian integers, which order as its bytes do:
/// sorting and merging compare these inline instead of calling `memcmp`
/// on 21-byte arrays (which was 6% of `plc-index`'s CPU time).
#[inline]
fn sort_key(r: &[u8; RECORD_LEN]) -> SortKey {
    const _: () = assert!(RECORD_LEN > 16 && RECORD_LEN <= 24);
    let mut tail = [0u8; 8];
    tail[..RECORD_LEN - 16].copy_from_slice(&r[16..]);
    (
        u128::from_be_bytes(r[..16].try_into().expect("16 bytes")),
        u64::from_be_bytes(tail),
    )
}

/// Merges runs of sorted records (each bundle's, sorted on the thread that
/// read it) into one sorted vector.
fn merge_runs(runs: Vec<Vec<[u8; RECORD_LEN]>>) -> Vec<[u8; RECORD_LEN]> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut out = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    // (key, run, position in the run), smallest first.
    let mut heap: BinaryHeap<Reverse<(SortKey, usize, usize)>> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(i, r)| Reverse((sort_key(&r[0]), i, 0)))
        .collect();
    while let Some(Reverse((_, run, at))) = heap.pop() {
        out.push(runs[run][at]);
        if let Some(next) = runs[run].get(at + 1) {
            heap.push(Reverse((sort_key(next), run, at + 1)));
        }
    }
    out
}

/// Buffers [`read_bundle`] reuses from one bundle to the next (a fresh
/// multi-megabyte buffer per bundle costs a page fault per 4 KB).
#[derive(Default)]
pub struct BundleBuffers {
    file: Vec<u8>,
    part: Vec<u8>,
    group: Vec<u8>,
}

/// Reads one bundle: checks its file against the index entry, finds its
/// frames (runs of frames that end on a line boundary), and returns one
/// record per operation.
///
/// With `hash_aside` (the lone bundle of an incremental run, which has no
/// other bundle to share the cores with), the file's SHA-256 is computed
/// on a second thread while this one decodes the file; the decoding is
/// bounded by the entry like any other, and its result is used only if
/// the hash matches.
pub fn read_bundle(
    repo: &Path,
    entry: &BundleEntry,
    bufs: &mut BundleBuffers,
    hash_aside: bool,
) -> Result<(Vec<[u8; RECORD_LEN]>, BundleFrames)> {
    let n = entry.bundle_number;
    let path = repo.join(bundle_file_name(n));
    // A regular file no longer than the index allows, like every reader.
    crate::repo::read_regular_into(&path, crate::repo::file_bound(entry), &mut bufs.file)
        .ctx(|| format!("reading {}", path.display()))?;
    let BundleBuffers { file, part, group } = bufs;
    let file = &file[..];
    let bad = |what: String| Error::Archive(format!("bundle {n:06}: {what}; run plc-verify"));
    let check = |sha: [u8; 32]| {
        if hex::encode(sha) == entry.compressed_hash {
            Ok(sha)
        } else {
            Err(bad(
                "the file does not match the index's compressed_hash".into()
            ))
        }
    };
    if !hash_aside {
        let sha = check(Sha256::digest(file).into())?;
        return decode_bundle(file, entry, sha, part, group);
    }
    std::thread::scope(|s| {
        let hasher = s.spawn(|| -> [u8; 32] { Sha256::digest(file).into() });
        let decoded = decode_bundle(file, entry, [0; 32], part, group);
        let sha = check(hasher.join().expect("hashing does not panic"))?;
        let (records, mut frames) = decoded?;
        frames.file_sha256 = sha;
        Ok((records, frames))
    })
}

/// Decodes one bundle file whose hash is `sha`: its frames (runs of
/// frames that end on a line boundary) and one record per operation.
fn decode_bundle(
    file: &[u8],
    entry: &BundleEntry,
    sha: [u8; 32],
    part: &mut Vec<u8>,
    group: &mut Vec<u8>,
) -> Result<(Vec<[u8; RECORD_LEN]>, BundleFrames)> {
    let n = entry.bundle_number;
    let bad = |what: String| Error::Archive(format!("bundle {n:06}: {what}; run plc-verify"));
    if file.len() > u32::MAX as usize || entry.operation_count > u64::from(u16::MAX) + 1 {
        return Err(bad("too large for the DID index".into()));
    }
    let bundle = n as u32;
    let mut records = Vec::with_capacity(entry.operation_count as usize);
    let mut frames = Vec::new();
    group.clear();
    let mut group_start = 0usize;
    let mut pos = 0usize;
    let mut off = 0usize;
    while off < file.len() {
        let rest = &file[off..];
        let len = frame_len(rest).ok_or_else(|| bad(format!("no zstd frame at byte {off}")))?;
        if is_skippable(rest) {
            off += len;
            continue;
        }
        crate::repo::decompress_bounded(
            &rest[..len],
            crate::repo::content_bound(entry),
            part,
            true,
        )
        .map_err(|e| bad(format!("frame at byte {off}: {e}")))?;
        if group.is_empty() {
            group_start = off;
            // Most often a frame is a whole group: no copy.
            std::mem::swap(group, part);
        } else {
            group.extend_from_slice(part);
        }
        off += len;
        if group.last() != Some(&b'\n') {
            continue;
        }
        frames.push(Frame {
            offset: group_start as u32,
            len: (off - group_start) as u32,
            first: pos as u16,
        });
        for line in crate::line::split_lines(&group[..group.len() - 1]) {
            let did = did_of(line).map_err(|r| bad(format!("operation {}: {r}", pos + 1)))?;
            if pos > usize::from(u16::MAX) {
                return Err(bad("more operations than the index can number".into()));
            }
            let loc = Loc {
                bundle,
                pos: pos as u16,
            };
            records.push(record(&store::did_key(&did), loc));
            pos += 1;
        }
        group.clear();
    }
    if !group.is_empty() {
        return Err(bad("the content does not end with a newline".into()));
    }
    if pos as u64 != entry.operation_count {
        return Err(bad(format!(
            "{pos} operations, the index says {}",
            entry.operation_count
        )));
    }
    records.sort_unstable_by_key(sort_key);
    Ok((
        records,
        BundleFrames {
            file_sha256: sha,
            frames,
        },
    ))
}

/// The DID of a sealed operation line. Lines were checked when sealed and
/// the file against the index's hash, so the common shape (`{"did":"`
/// first, no escape in the DID) is read directly; any other line goes
/// through the full line check.
fn did_of(line: &[u8]) -> std::result::Result<std::borrow::Cow<'_, str>, String> {
    if let Some(rest) = line.strip_prefix(b"{\"did\":\"") {
        if let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
            if rest[end] == b'"' {
                if let Ok(did) = std::str::from_utf8(&rest[..end]) {
                    return Ok(std::borrow::Cow::Borrowed(did));
                }
            }
        }
    }
    crate::line::parse_op(line).map(|op| op.did)
}

fn is_skippable(frame: &[u8]) -> bool {
    frame.len() >= 4
        && u32::from_le_bytes(frame[..4].try_into().unwrap()) & 0xFFFF_FFF0 == 0x184D_2A50
}

/// The length of the zstd frame (data or skippable) at the start of
/// `rest`.
fn frame_len(rest: &[u8]) -> Option<usize> {
    if is_skippable(rest) {
        let size = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
        return (8 + size <= rest.len()).then_some(8 + size);
    }
    zstd::zstd_safe::find_frame_compressed_size(rest).ok()
}
