//! `plc-seal`: turns whole chunks of operation lines into bundle files and
//! index entries.
//!
//! The reading thread checks every line (shape, order, no repeats across
//! the archive's end) and cuts chunks of [`BUNDLE_SIZE`]; a writer thread
//! compresses, hashes and writes each chunk, so parsing the next chunk
//! overlaps compressing the last. Each bundle file is in place (fsynced,
//! renamed, directory fsynced) before the index that names it is replaced
//! the same way, so a crash leaves at worst one unindexed bundle file
//! numbered `last_bundle + 1`, which the next run overwrites.

use crate::error::{Error, IoContext, Result};
use crate::index::{
    bundle_file_name, chain_hash, parse_bundle_file_name, same_origin, sha256_hex, BundleEntry,
    Index, BUNDLE_SIZE,
};
use crate::line::{next_op, Lines, Seen, Sequencer};
use crate::repo::{self, RepoLock};
use crate::time::Timestamp;
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// zstd level used for bundles (the reference implementation's level).
pub const ZSTD_LEVEL: i32 = 3;

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

/// Compresses a bundle's content: one zstd frame at [`ZSTD_LEVEL`], with
/// the content size and a checksum in the frame, no dictionary and no
/// threads, so the same content always gives the same bytes.
pub fn compress_bundle(content: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    c.compress(content)
}

/// A chunk cut by the reader, ready to be sealed.
struct Chunk {
    content: Vec<u8>,
    ops: u64,
    dids: u64,
    start_time: String,
    end_time: String,
}

/// Seals every whole chunk of `input` into `cfg.repo`, logging one line per
/// bundle to `log`.
pub fn seal(
    input: impl BufRead,
    cfg: &SealConfig,
    log: &mut (dyn Write + Send),
) -> Result<SealReport> {
    let dir = &cfg.repo;
    let new_origin = cfg
        .origin
        .as_deref()
        .unwrap_or(crate::index::DEFAULT_ORIGIN);
    if !dir.exists() {
        repo::create_repo(dir, &Index::new(new_origin))?;
    }
    let _lock = RepoLock::acquire(dir)?;
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
                if !same_origin(o, &idx.origin) {
                    return Err(Error::Usage(format!(
                        "{} holds operations from {:?}, not {o:?}; refusing to mix origins",
                        dir.display(),
                        idx.origin
                    )));
                }
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
    check_no_stray_bundles(dir, index.last_bundle)?;
    let tail = repo::read_tail(dir, &index)?;
    let mut seq = match &tail {
        Some(t) => Sequencer::seeded(&t.end_time, t.time, t.cids.iter().cloned()),
        None => Sequencer::default(),
    };

    let (tx, rx) = mpsc::sync_channel::<Chunk>(1);
    let dir2 = dir.clone();
    std::thread::scope(|s| {
        let writer = s.spawn(move || write_chunks(&dir2, index, rx, log));
        let read_result = read_chunks(input, &mut seq, &tx);
        drop(tx);
        let write_result = writer.join().expect("writer thread panicked");
        // A writer failure (disk full, ...) is the root cause when both fail:
        // the reader then only saw the channel close.
        match (read_result, write_result) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(report)) => Ok(report),
        }
    })
}

/// Refuses to build on a directory holding bundle files the index does not
/// explain: only `last_bundle + 1` may exist (an interrupted seal).
fn check_no_stray_bundles(dir: &Path, last_bundle: u64) -> Result<()> {
    for entry in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        if let Some(n) = parse_bundle_file_name(&entry.file_name().to_string_lossy()) {
            if n > last_bundle + 1 {
                return Err(Error::Archive(format!(
                    "{}: bundle file {} is not in the index (last bundle is {last_bundle}); run plc-verify",
                    dir.display(),
                    bundle_file_name(n)
                )));
            }
        }
    }
    Ok(())
}

fn read_chunks(
    input: impl BufRead,
    seq: &mut Sequencer,
    tx: &mpsc::SyncSender<Chunk>,
) -> Result<()> {
    let mut lines = Lines::new(input);
    let mut content = Vec::with_capacity(8 << 20);
    let mut dids: HashSet<Vec<u8>> = HashSet::with_capacity(BUNDLE_SIZE);
    let mut ops = 0u64;
    let mut start_time = String::new();
    loop {
        let n = lines.line_no() + 1;
        let Some((line, op)) = next_op(&mut lines)? else {
            break;
        };
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
        dids.insert(op.did.as_bytes().to_vec());
        content.extend_from_slice(line);
        content.push(b'\n');
        ops += 1;
        if ops as usize == BUNDLE_SIZE {
            let chunk = Chunk {
                content: std::mem::replace(&mut content, Vec::with_capacity(8 << 20)),
                ops,
                dids: dids.len() as u64,
                start_time: std::mem::take(&mut start_time),
                end_time: op.created_at.to_string(),
            };
            dids.clear();
            ops = 0;
            if tx.send(chunk).is_err() {
                // The writer stopped; its error is reported by the caller.
                return Ok(());
            }
        }
    }
    if ops > 0 {
        return Err(Error::input(
            lines.line_no(),
            format!(
                "input ends inside a bundle ({ops} of {BUNDLE_SIZE} operations); nothing of it was sealed"
            ),
        ));
    }
    Ok(())
}

fn write_chunks(
    dir: &Path,
    mut index: Index,
    rx: mpsc::Receiver<Chunk>,
    log: &mut (dyn Write + Send),
) -> Result<SealReport> {
    let mut report = SealReport {
        sealed: 0,
        last_bundle: index.last_bundle,
    };
    for chunk in rx {
        let number = index.last_bundle + 1;
        let name = bundle_file_name(number);
        let compressed =
            compress_bundle(&chunk.content).ctx(|| format!("compressing bundle {number}"))?;
        let content_hash = sha256_hex(&chunk.content);
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
            compressed_hash: sha256_hex(&compressed),
            compressed_size: compressed.len() as u64,
            uncompressed_size: chunk.content.len() as u64,
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
        repo::write_atomic(dir, crate::index::INDEX_FILE, &index.to_bytes())?;
        report.sealed += 1;
        report.last_bundle = number;
        let _ = log.write_all(line.as_bytes());
    }
    Ok(report)
}
