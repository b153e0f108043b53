//! `plc-seal`: turns whole chunks of operation lines into bundle files and
//! index entries.
//!
//! Three kinds of thread share the work. The reading thread checks every
//! line (shape, order, no repeats across the archive's end) and cuts
//! chunks of [`BUNDLE_SIZE`]. Worker threads (two at most, which bounds
//! memory) compress and hash chunks, two bundles at a time, since bundles
//! are independent until the chain. One committing thread takes the
//! results strictly in bundle order and, for each, puts the bundle file in
//! place (fsynced, renamed, directory fsynced). The index that names them
//! is replaced the same way, but not after every bundle: the index of a
//! full archive is several megabytes, and rewriting it per bundle would
//! make the cost of a bundle grow with the archive's length. It is written
//! at most once per [`INDEX_EVERY`] while bundles keep coming, as soon as
//! the input pauses for [`INDEX_WHEN_IDLE`], and at the end (also after an
//! error). So an index always names only complete bundles, and a crash
//! leaves at worst a contiguous run of unindexed bundle files numbered
//! `last_bundle + 1`, `last_bundle + 2`, ...: an interrupted seal, which
//! the next run removes (highest number first, so that a crash while
//! removing leaves a shorter run) before it seals anything. Nothing is lost:
//! their operations were never in the index, and the pipeline fetches
//! them again. The committer's fsyncs overlap the workers' compression.

use crate::error::{Error, IoContext, Result};
use crate::index::{
    bundle_file_name, chain_hash, parse_bundle_file_name, BundleEntry, Index, BUNDLE_SIZE,
};
use crate::line::{op_at, LineReader, OpParser, Seen, Sequencer};
use crate::repo::{self, RepoLock};
use crate::sha::sha256_hex_pair;
use crate::time::Timestamp;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// While bundles keep coming, the index is rewritten at most this often.
pub const INDEX_EVERY: Duration = Duration::from_secs(1);
/// When no bundle has come for this long, the index is written at once,
/// so a slow pipeline (a live directory) publishes each bundle promptly.
pub const INDEX_WHEN_IDLE: Duration = Duration::from_millis(200);

/// How bundles are compressed, chosen with data (README, "Bundle format"):
/// zstd's `fast` strategy with a 4 MiB window and a hash table of 2^17
/// entries over 6-byte matches. On every input tried (generated ones with
/// and without repeated keys, and variants), it writes 0.5 to 1.6% fewer
/// bytes than level 3 (the reference implementation's level) in 60 to
/// 67% of the time.
/// Every parameter that shapes the output is set here, so the bytes don't
/// depend on zstd's table of levels.
pub const ZSTD_PARAMETERS: [zstd::zstd_safe::CParameter; 7] = {
    use zstd::zstd_safe::{CParameter::*, Strategy};
    [
        Strategy(Strategy::ZSTD_fast),
        WindowLog(22),
        HashLog(17),
        // Not used by the fast strategy; fixed anyway.
        ChainLog(16),
        SearchLog(1),
        MinMatch(6),
        TargetLength(0),
    ]
};

/// What `plc-seal` is asked to do.
pub struct SealConfig {
    /// The repository directory (created when missing).
    pub repo: PathBuf,
    /// The origin for a new index; checked against an existing one.
    pub origin: Option<String>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct SealReport {
    /// Bundles sealed by this run.
    pub sealed: u64,
    /// The archive's last bundle afterwards.
    pub last_bundle: u64,
}

/// Compresses a bundle's content: one zstd frame with [`ZSTD_PARAMETERS`], with
/// the content size and a checksum in the frame, no dictionary and no
/// threads, so the same content always gives the same bytes.
pub fn compress_bundle(content: &[u8]) -> std::io::Result<Vec<u8>> {
    BundleCompressor::new()?.compress(content)
}

/// A reusable [`compress_bundle`]: one zstd context for many bundles (the
/// output does not depend on the reuse).
pub struct BundleCompressor(zstd::bulk::Compressor<'static>);

impl BundleCompressor {
    /// A context set up for bundles.
    pub fn new() -> std::io::Result<BundleCompressor> {
        let mut c = zstd::bulk::Compressor::new(1)?;
        for p in ZSTD_PARAMETERS {
            c.set_parameter(p)?;
        }
        c.include_checksum(true)?;
        c.include_contentsize(true)?;
        Ok(BundleCompressor(c))
    }

    /// Compresses one bundle's content, exactly as [`compress_bundle`].
    pub fn compress(&mut self, content: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.compress_into(content, &mut out)?;
        Ok(out)
    }

    /// [`BundleCompressor::compress`] into `out` (replacing what it held),
    /// reusing its allocation.
    pub fn compress_into(&mut self, content: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(content.len()));
        self.0.compress_to_buffer(content, out).map(|_| ())
    }
}

/// Buffers handed back and forth between threads instead of being freed
/// and allocated again: a fresh multi-megabyte buffer costs a page fault
/// and a zeroed page for every 4 KB written, a measurable share of the
/// sealing time.
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Pool<T> {
    fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }
    fn get(&self) -> Option<T> {
        self.0.lock().expect("no poisoned pool").pop()
    }
    fn put(&self, item: T) {
        self.0.lock().expect("no poisoned pool").push(item);
    }
}

/// The buffers a chunk is built in.
struct ChunkBufs {
    /// The chunk's lines, each ending in `\n` (read in place by the
    /// reader, which hands this buffer over when the chunk is complete).
    content: Vec<u8>,
    /// The DIDs of the operations, concatenated; `did_ends` splits them.
    did_text: String,
    did_ends: Vec<usize>,
}

impl ChunkBufs {
    fn new() -> ChunkBufs {
        ChunkBufs {
            content: Vec::new(),
            did_text: String::with_capacity(BUNDLE_SIZE * 32),
            did_ends: Vec::with_capacity(BUNDLE_SIZE),
        }
    }
    /// Readies the buffers for the next chunk. The content keeps its
    /// length: the reader overwrites it, and zeroing it again would cost
    /// as much as the copy the in-place reading saves.
    fn clear(&mut self) {
        self.did_text.clear();
        self.did_ends.clear();
    }
}

/// Most worker threads compressing at once: each holds a chunk, its
/// compressed copy and a zstd context (about 12 MB), and the memory target
/// is 64 MB whatever the core count.
const MAX_WORKERS: usize = 2;

/// A chunk cut by the reader, ready to be sealed.
struct Chunk {
    /// Position in this run (0, 1, ...): the commit order.
    seq: u64,
    bufs: ChunkBufs,
    ops: u64,
    start_time: String,
    end_time: String,
}

/// A chunk compressed and hashed by a worker, ready to be committed.
struct Sealed {
    seq: u64,
    compressed: std::io::Result<Compressed>,
    uncompressed_size: u64,
    ops: u64,
    dids: u64,
    start_time: String,
    end_time: String,
}

/// A bundle's file and the hashes of the file and of its content.
struct Compressed {
    file: Vec<u8>,
    file_hash: String,
    content_hash: String,
}

impl Chunk {
    /// Compresses and hashes the chunk into `out`; returns the sealed
    /// chunk and the chunk's buffers, for reuse.
    fn seal(
        self,
        zstd: &mut std::io::Result<BundleCompressor>,
        mut out: Vec<u8>,
    ) -> (Sealed, ChunkBufs) {
        let b = &self.bufs;
        let compressed = match zstd {
            Ok(z) => z.compress_into(&b.content, &mut out).map(|()| out),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        };
        // Both hashes at once (see crate::sha), while both are in cache.
        let compressed = compressed.map(|file| {
            let (file_hash, content_hash) = sha256_hex_pair(&file, &b.content);
            Compressed {
                file,
                file_hash,
                content_hash,
            }
        });
        let sealed = Sealed {
            seq: self.seq,
            compressed,
            uncompressed_size: b.content.len() as u64,
            ops: self.ops,
            dids: count_distinct(&b.did_text, &b.did_ends),
            start_time: self.start_time,
            end_time: self.end_time,
        };
        (sealed, self.bufs)
    }
}

/// The number of distinct strings among `text` cut at `ends`.
fn count_distinct(text: &str, ends: &[usize]) -> u64 {
    let starts = std::iter::once(0).chain(ends.iter().copied());
    crate::index::count_distinct(starts.zip(ends).map(|(s, &e)| &text[s..e]))
}

/// Seals every whole chunk of `input` into `cfg.repo`, logging one line per
/// bundle to `log`.
pub fn seal(
    input: impl Read,
    cfg: &SealConfig,
    log: &mut (dyn Write + Send),
) -> Result<SealReport> {
    let (_lock, index) = open_for_append(cfg)?;
    let dir = &cfg.repo;
    let tail = repo::read_tail(dir, &index)?;
    let mut seq = match &tail {
        Some(t) => Sequencer::seeded(&t.end_time, t.time, t.cids.iter().cloned()),
        None => Sequencer::default(),
    };
    run_threads(input, dir, index, &mut seq, log)
}

/// Makes `cfg.repo` ready to append to and locks it: creates it when
/// missing, removes what an interrupted writer left, and refuses an index
/// that names no origin or another one.
fn open_for_append(cfg: &SealConfig) -> Result<(RepoLock, Index)> {
    let dir = &cfg.repo;
    let new_origin = cfg
        .origin
        .as_deref()
        .unwrap_or(crate::index::DEFAULT_ORIGIN);
    if !dir.exists() {
        repo::create_repo(dir, &Index::new(new_origin))?;
    }
    let lock = RepoLock::acquire(dir)?;
    repo::remove_stale_tmp(dir)?;
    let index = match repo::load_index(dir)? {
        Some(idx) => {
            if idx.origin.is_empty() {
                return Err(Error::Archive(format!(
                    "{}: the index names no origin; refusing to append",
                    dir.display()
                )));
            }
            if let Some(o) = &cfg.origin {
                repo::check_origin(dir, &idx, o)?;
            }
            idx
        }
        None => {
            // An existing directory without an index (made by hand): give
            // it an empty index first, so that it is a valid archive from
            // now on whatever happens next.
            let idx = Index::new(new_origin);
            repo::write_atomic(dir, crate::index::INDEX_FILE, &idx.to_bytes())?;
            idx
        }
    };
    remove_interrupted_seal(dir, index.last_bundle)?;
    Ok((lock, index))
}

/// The reading thread (this one), the compressing workers and the
/// committer, as the module's documentation describes them.
fn run_threads(
    input: impl Read,
    dir: &Path,
    index: Index,
    seq: &mut Sequencer,
    log: &mut (dyn Write + Send),
) -> Result<SealReport> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);
    // No queue in front of the workers: the reader cuts the next chunk
    // while they compress, and hands it over when one is free.
    let (tx, rx) = mpsc::sync_channel::<Chunk>(0);
    // Shared by the workers only: when the last one stops (the committer
    // failed), the reader's next send fails instead of blocking.
    let rx = Arc::new(Mutex::new(rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<Sealed>(workers);
    let chunk_pool = Pool::new();
    let out_pool = Pool::new();
    let dir2 = dir.to_path_buf();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let rx = Arc::clone(&rx);
            let (chunk_pool, out_pool) = (&chunk_pool, &out_pool);
            s.spawn(move || {
                background_priority();
                let mut zstd = BundleCompressor::new();
                loop {
                    let next = rx.lock().expect("no poisoned queue").recv();
                    let Ok(chunk) = next else { break };
                    let (sealed, mut bufs) =
                        chunk.seal(&mut zstd, out_pool.get().unwrap_or_default());
                    bufs.clear();
                    chunk_pool.put(bufs);
                    if done_tx.send(sealed).is_err() {
                        break; // the committer stopped
                    }
                }
            });
        }
        drop((done_tx, rx));
        let out_pool = &out_pool;
        let committer = s.spawn(move || commit_in_order(&dir2, index, done_rx, out_pool, log));
        let read_result = read_chunks(input, seq, &tx, &chunk_pool);
        drop(tx);
        let write_result = committer.join().expect("committer thread panicked");
        // A writer failure (disk full, ...) is the root cause when both fail:
        // the reader then only saw the channel close.
        match (read_result, write_result) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(report)) => Ok(report),
        }
    })
}

/// Lowers the calling thread's priority to nice 10 (Linux gives each
/// thread its own nice value). Compression is the bulk of a pipeline's
/// CPU; the stages before it mostly wait on the network and on pipes, and
/// at a lower priority the workers let them run as soon as they wake. End
/// to end from a local mirror was 2 to 6% faster in alternating runs; the
/// sealing pipeline alone is unchanged. A failure only costs that.
fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; `who` 0 is this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Removes what an interrupted seal left: bundle files numbered
/// `last_bundle + 1, + 2, ...` (a contiguous run) that the index does not
/// name. Refuses any other bundle file the index does not explain, which
/// this tool never leaves behind. Highest number first, so that a crash
/// in the middle leaves a shorter contiguous run.
fn remove_interrupted_seal(dir: &Path, last_bundle: u64) -> Result<()> {
    let mut unindexed = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        if let Some(n) = parse_bundle_file_name(&entry.file_name().to_string_lossy()) {
            if n > last_bundle {
                unindexed.push(n);
            }
        }
    }
    unindexed.sort_unstable();
    if let Some(gap) = unindexed
        .iter()
        .zip(last_bundle + 1..)
        .find(|(&n, expected)| n != *expected)
    {
        return Err(Error::Archive(format!(
            "{}: bundle file {} is not in the index (last bundle is {last_bundle}) and does not follow it; run plc-verify",
            dir.display(),
            bundle_file_name(*gap.0)
        )));
    }
    for &n in unindexed.iter().rev() {
        let path = dir.join(bundle_file_name(n));
        std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
    }
    if !unindexed.is_empty() {
        repo::sync_dir(dir)?;
    }
    Ok(())
}

/// Checks every line and cuts chunks. A chunk's content is read straight
/// into the buffer that goes to the worker: when it is complete, the
/// reader hands that buffer over and goes on in a recycled one.
fn read_chunks(
    input: impl Read,
    seq: &mut Sequencer,
    tx: &mpsc::SyncSender<Chunk>,
    pool: &Pool<ChunkBufs>,
) -> Result<()> {
    let mut reader = LineReader::new(input);
    let mut parser = OpParser::default();
    let mut bufs = ChunkBufs::new();
    let mut ops = 0u64;
    let mut chunks = 0u64;
    let mut start_time = String::new();
    loop {
        while let Some(line) = reader.next_buffered()? {
            let n = reader.line_no();
            let op = op_at(&mut parser, &reader, line)?;
            match seq.observe(&op) {
                Ok(Seen::New) => {}
                Ok(Seen::Duplicate) => {
                    return Err(Error::input(
                        n,
                        format!(
                        "operation {} at {} was already sealed or appears twice (run plc-dedup first)",
                        op.cid, op.created_at
                    ),
                    ))
                }
                Err(reason) => return Err(Error::input(n, reason)),
            }
            if ops == 0 {
                start_time = op.created_at.to_string();
            }
            bufs.did_text.push_str(&op.did);
            bufs.did_ends.push(bufs.did_text.len());
            ops += 1;
            if ops as usize == BUNDLE_SIZE {
                let end_time = op.created_at.to_string();
                // The recycled buffers take over: their content buffer for
                // the reader, their (cleared) DID list for the next chunk.
                let mut next = pool.get().unwrap_or_else(ChunkBufs::new);
                let at = reader.pos();
                let content = reader.split_off(at, std::mem::take(&mut next.content));
                std::mem::swap(&mut next, &mut bufs);
                next.content = content;
                let chunk = Chunk {
                    seq: chunks,
                    bufs: next,
                    ops,
                    start_time: std::mem::take(&mut start_time),
                    end_time,
                };
                chunks += 1;
                ops = 0;
                if tx.send(chunk).is_err() {
                    // The committer stopped; its error is reported by the caller.
                    return Ok(());
                }
            }
        }
        if !reader.fill()? {
            break;
        }
    }
    if ops > 0 {
        return Err(Error::input(
            reader.line_no(),
            format!(
                "input ends inside a bundle ({ops} of {BUNDLE_SIZE} operations); nothing of it was sealed"
            ),
        ));
    }
    Ok(())
}

/// Commits sealed chunks strictly in order: each bundle file as it comes,
/// and the index that names them as the module's documentation says.
/// Results that arrive early wait (at most one per worker).
fn commit_in_order(
    dir: &Path,
    mut index: Index,
    rx: mpsc::Receiver<Sealed>,
    out_pool: &Pool<Vec<u8>>,
    log: &mut (dyn Write + Send),
) -> Result<SealReport> {
    let mut report = SealReport {
        sealed: 0,
        last_bundle: index.last_bundle,
    };
    let mut pending = IndexWriter::new(dir);
    let placed = place_in_order(
        dir,
        &mut index,
        rx,
        out_pool,
        log,
        &mut pending,
        &mut report,
    );
    // Whatever happened, bundles already in place get their index entries.
    let flushed = pending.flush(&index);
    placed.and(flushed)?;
    Ok(report)
}

/// Places each sealed chunk's bundle file as its turn comes, and lets
/// `pending` write the index when it is due.
fn place_in_order(
    dir: &Path,
    index: &mut Index,
    rx: mpsc::Receiver<Sealed>,
    out_pool: &Pool<Vec<u8>>,
    log: &mut (dyn Write + Send),
    pending: &mut IndexWriter<'_>,
    report: &mut SealReport,
) -> Result<()> {
    let mut waiting: Vec<Sealed> = Vec::new();
    let mut next = 0u64;
    loop {
        let sealed = match rx.recv_timeout(pending.wait()) {
            Ok(s) => s,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                pending.flush(index)?;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        waiting.push(sealed);
        while let Some(i) = waiting.iter().position(|c| c.seq == next) {
            let chunk = waiting.swap_remove(i);
            out_pool.put(place_bundle(dir, index, chunk, log)?);
            pending.placed();
            next += 1;
            report.sealed += 1;
            report.last_bundle = index.last_bundle;
        }
        if pending.due() {
            pending.flush(index)?;
        }
    }
}

/// Decides when the index is rewritten: see [`INDEX_EVERY`] and
/// [`INDEX_WHEN_IDLE`].
struct IndexWriter<'a> {
    dir: &'a Path,
    /// Bundles placed since the index was last written.
    unwritten: u64,
    /// When the index was last written (or the run started).
    written_at: Instant,
}

impl<'a> IndexWriter<'a> {
    fn new(dir: &'a Path) -> IndexWriter<'a> {
        IndexWriter {
            dir,
            unwritten: 0,
            written_at: Instant::now(),
        }
    }

    fn placed(&mut self) {
        self.unwritten += 1;
    }

    /// True when bundles wait for the index and it was written long enough ago.
    fn due(&self) -> bool {
        self.unwritten > 0 && self.written_at.elapsed() >= INDEX_EVERY
    }

    /// How long to wait for the next bundle before writing the index.
    fn wait(&self) -> Duration {
        if self.unwritten == 0 {
            Duration::from_secs(3600)
        } else {
            INDEX_WHEN_IDLE
        }
    }

    /// Writes the index if any placed bundle is not in it yet.
    fn flush(&mut self, index: &Index) -> Result<()> {
        if self.unwritten == 0 {
            return Ok(());
        }
        repo::write_atomic(self.dir, crate::index::INDEX_FILE, &index.to_bytes())?;
        self.unwritten = 0;
        self.written_at = Instant::now();
        Ok(())
    }
}

/// Puts one bundle file in place and adds its entry to the in-memory
/// index; gives back the compressed buffer for reuse.
fn place_bundle(
    dir: &Path,
    index: &mut Index,
    chunk: Sealed,
    log: &mut (dyn Write + Send),
) -> Result<Vec<u8>> {
    let number = index.last_bundle + 1;
    let name = bundle_file_name(number);
    let Compressed {
        file: compressed,
        file_hash: compressed_hash,
        content_hash,
    } = chunk
        .compressed
        .ctx(|| format!("compressing bundle {number}"))?;
    let parent = index.bundles.last().map(|b| b.hash.clone());
    let cursor = index
        .bundles
        .last()
        .map(|b| b.end_time.clone())
        .unwrap_or_default();
    let entry = BundleEntry {
        bundle_number: number,
        start_time: chunk.start_time,
        end_time: chunk.end_time,
        operation_count: chunk.ops,
        did_count: chunk.dids,
        hash: chain_hash(parent.as_deref(), &content_hash),
        content_hash,
        parent: parent.unwrap_or_default(),
        compressed_hash,
        compressed_size: compressed.len() as u64,
        uncompressed_size: chunk.uncompressed_size,
        cursor,
        created_at: Timestamp::now().format_rfc3339(),
    };
    repo::write_atomic(dir, &name, &compressed)?;
    index.total_size_bytes += entry.compressed_size;
    index.total_uncompressed_size_bytes += entry.uncompressed_size;
    index.last_bundle = number;
    index.updated_at = entry.created_at.clone();
    let line = format!(
        "plc-seal: sealed {name}: {} operations, {} -> {} bytes, hash {}\n",
        entry.operation_count,
        entry.uncompressed_size,
        entry.compressed_size,
        &entry.hash[..16]
    );
    index.bundles.push(entry);
    let _ = log.write_all(line.as_bytes());
    Ok(compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_compressor_gives_the_same_bytes_as_a_fresh_one() {
        let a = b"{\"did\":\"did:plc:a\"}\n".repeat(500);
        let b = b"{\"did\":\"did:plc:b\",\"x\":1}\n".repeat(700);
        let mut z = BundleCompressor::new().unwrap();
        let first = z.compress(&a).unwrap();
        let second = z.compress(&b).unwrap();
        assert_eq!(first, compress_bundle(&a).unwrap());
        assert_eq!(second, compress_bundle(&b).unwrap());
        assert_eq!(z.compress(&a).unwrap(), first);
        assert_ne!(first, second);
    }

    #[test]
    fn a_bundle_is_one_frame_with_its_size_a_checksum_and_a_4_mib_window() {
        let ops = crate::synth::generate(10_000, &crate::synth::SynthOptions::default());
        let content: Vec<u8> = ops
            .iter()
            .flat_map(|o| [&o.line[..], b"\n"].concat())
            .collect();
        let file = compress_bundle(&content).unwrap();
        // The frame header, read by the format's rules (RFC 8878, 3.1.1).
        assert_eq!(file[..4], 0xFD2F_B528u32.to_le_bytes());
        let descriptor = file[4];
        assert_eq!(
            descriptor & 0x20,
            0,
            "no single segment: the window is stated"
        );
        assert_eq!(descriptor & 0x04, 0x04, "content checksum");
        assert_eq!(descriptor & 0x03, 0, "no dictionary");
        assert_eq!(descriptor >> 6, 2, "4-byte content size");
        let window = file[5];
        let base = 1u64 << (10 + (window >> 3));
        assert_eq!(base + base / 8 * u64::from(window & 7), 4 << 20);
        let size = u32::from_le_bytes(file[6..10].try_into().unwrap());
        assert_eq!(size as usize, content.len());
        assert_eq!(
            zstd::zstd_safe::find_frame_compressed_size(&file).unwrap(),
            file.len()
        );
        assert_eq!(zstd::stream::decode_all(&file[..]).unwrap(), content);
    }

    #[test]
    fn counts_distinct_dids() {
        let mut text = String::new();
        let mut ends = Vec::new();
        for d in [
            "did:plc:b",
            "did:plc:a",
            "did:plc:b",
            "did:plc:ab",
            "did:plc:a",
        ] {
            text.push_str(d);
            ends.push(text.len());
        }
        assert_eq!(count_distinct(&text, &ends), 3);
        assert_eq!(count_distinct("", &[]), 0);
    }
}
