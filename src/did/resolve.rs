//! Reading a DID's operations from the archive through the DID index, one
//! DID or many at once, and `plc-did`'s bulk loop.
//!
//! A lookup reads only the zstd frames that hold the DID's operations
//! (the index records each bundle's frames). Many DIDs are resolved in
//! batches: their operations are sorted by bundle and frame, so that each
//! frame is read and decompressed once per batch however many of the
//! batch's DIDs it holds, and the answers are then written in input
//! order. For a bundle sealed as one frame this is what keeps a bulk
//! lookup near the cost of decompressing each bundle once.

use super::answer::{answer, Answer, Route};
use super::op::StoredOp;
use super::store::{DidIndex, Loc};
use crate::error::{Error, IoContext, Result};
use crate::index::bundle_file_name;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// DIDs answered per batch by [`run`].
pub const BATCH: usize = 4096;
/// Bundle files kept open at once.
const OPEN_FILES: usize = 64;

/// Reads and decompresses frames of a repository's bundle files, keeping
/// a few files open and its buffers between reads. One per thread.
pub struct FrameReader {
    repo: PathBuf,
    files: HashMap<u32, File>,
    frame: Vec<u8>,
    compressed: Vec<u8>,
}

impl FrameReader {
    /// A reader of `repo`'s bundle files.
    pub fn new(repo: &Path) -> FrameReader {
        FrameReader {
            repo: repo.to_path_buf(),
            files: HashMap::new(),
            frame: Vec::new(),
            compressed: Vec::new(),
        }
    }

    /// Reads and decompresses `len` bytes at `offset` of bundle `n`; the
    /// content is in `self.frame`.
    fn read_frame(&mut self, n: u32, offset: u32, len: u32) -> Result<()> {
        if !self.files.contains_key(&n) {
            if self.files.len() >= OPEN_FILES {
                self.files.clear();
            }
            let path = self.repo.join(bundle_file_name(u64::from(n)));
            let f = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
            self.files.insert(n, f);
        }
        let f = &self.files[&n];
        self.compressed.resize(len as usize, 0);
        f.read_exact_at(&mut self.compressed, u64::from(offset))
            .map_err(|e| {
                Error::Archive(format!(
                    "bundle {n:06}: reading {len} bytes at {offset}: {e}; the DID index does not match the file: run plc-index"
                ))
            })?;
        // The format's bound: a frame the index points at can hold no more
        // than a bundle's content.
        let bound = crate::repo::MAX_CONTENT;
        crate::repo::decompress_bounded(&self.compressed, bound, &mut self.frame, true).map_err(|e| {
            Error::Archive(format!(
                "bundle {n:06}: frame at {offset}: {e}; the DID index does not match the file: run plc-index"
            ))
        })
    }
}

/// The operations of each DID of `dids`, in archive order, reading each
/// needed frame once.
pub fn ops_many<S: AsRef<str>>(
    index: &DidIndex,
    reader: &mut FrameReader,
    dids: &[S],
) -> Result<Vec<Vec<StoredOp>>> {
    let mut wanted: Vec<(Loc, usize)> = Vec::new();
    for (i, did) in dids.iter().enumerate() {
        for loc in index.lookup(did.as_ref())? {
            wanted.push((loc, i));
        }
    }
    wanted.sort_unstable();
    let mut out: Vec<Vec<StoredOp>> = vec![Vec::new(); dids.len()];
    let mut current: Option<(u32, usize)> = None;
    let mut lines: Vec<std::ops::Range<usize>> = Vec::new();
    let mut first = 0u16;
    for (loc, i) in wanted {
        let frames = index.frames(loc.bundle).ok_or_else(|| stale(loc))?;
        let (k, frame) = frames.frame_of(loc.pos).ok_or_else(|| stale(loc))?;
        if current != Some((loc.bundle, k)) {
            reader.read_frame(loc.bundle, frame.offset, frame.len)?;
            lines.clear();
            let mut start = 0;
            for (j, &b) in reader.frame.iter().enumerate() {
                if b == b'\n' {
                    lines.push(start..j);
                    start = j + 1;
                }
            }
            first = frame.first;
            current = Some((loc.bundle, k));
        }
        let range = lines
            .get(usize::from(loc.pos - first))
            .ok_or_else(|| stale(loc))?
            .clone();
        let op = StoredOp::parse(&reader.frame[range]).map_err(|e| {
            Error::Archive(format!(
                "bundle {:06}: operation {}: {e}",
                loc.bundle,
                u32::from(loc.pos) + 1
            ))
        })?;
        // A hashed key can be shared by two strings: keep only the DID
        // asked for.
        if op.did() == dids[i].as_ref() {
            out[i].push(op);
        }
    }
    Ok(out)
}

/// Reads operations through a repository's DID index (one thread).
pub struct Resolver {
    repo: PathBuf,
    index: DidIndex,
    reader: FrameReader,
}

impl Resolver {
    /// Opens `repo`'s index (an error when there is none yet).
    pub fn open(repo: &Path) -> Result<Resolver> {
        Ok(Resolver {
            repo: repo.to_path_buf(),
            index: DidIndex::open(repo)?,
            reader: FrameReader::new(repo),
        })
    }

    /// Reopens the index when plc-index has changed it since; returns
    /// whether it did.
    pub fn refresh(&mut self) -> Result<bool> {
        if !self.index.is_stale()? {
            return Ok(false);
        }
        self.index = DidIndex::open(&self.repo)?;
        Ok(true)
    }

    /// The last bundle the index covers.
    pub fn last_bundle(&self) -> u64 {
        self.index.last_bundle()
    }

    /// The operations of each DID of `dids`, in archive order.
    pub fn ops_many<S: AsRef<str>>(&mut self, dids: &[S]) -> Result<Vec<Vec<StoredOp>>> {
        ops_many(&self.index, &mut self.reader, dids)
    }

    /// What the directory answers on `route` for `did`.
    pub fn answer(&mut self, route: Route, did: &str) -> Result<Answer> {
        let ops = self.ops_many(&[did])?.pop().unwrap_or_default();
        answer(route, did, &ops).map_err(|e| Error::Archive(format!("{did}: {e}")))
    }
}

/// The DID index shared by a server's threads: reopened when plc-index
/// has changed it (so newly indexed bundles are answered without a
/// restart), opened lazily (a server may start before the first
/// plc-index run).
pub struct SharedIndex {
    repo: PathBuf,
    current: Mutex<Option<Arc<DidIndex>>>,
}

impl SharedIndex {
    /// For `repo`; nothing is read yet.
    pub fn new(repo: &Path) -> SharedIndex {
        SharedIndex {
            repo: repo.to_path_buf(),
            current: Mutex::new(None),
        }
    }

    /// The current index (checking the manifest for a newer one).
    pub fn get(&self) -> Result<Arc<DidIndex>> {
        let held = self.current.lock().expect("lock").clone();
        if let Some(index) = held {
            if !index.is_stale()? {
                return Ok(index);
            }
        }
        let fresh = Arc::new(DidIndex::open(&self.repo)?);
        *self.current.lock().expect("lock") = Some(fresh.clone());
        Ok(fresh)
    }

    /// What the directory answers on `route` for `did` (already
    /// percent-decoded).
    pub fn answer(&self, route: Route, did: &str) -> Result<Answer> {
        let index = self.get()?;
        let mut reader = FrameReader::new(&self.repo);
        let ops = ops_many(&index, &mut reader, &[did])?
            .pop()
            .unwrap_or_default();
        answer(route, did, &ops).map_err(|e| Error::Archive(format!("{did}: {e}")))
    }
}

fn stale(loc: Loc) -> Error {
    Error::Archive(format!(
        "the DID index names operation {} of bundle {:06}, which the bundle does not have; run plc-index",
        u32::from(loc.pos) + 1,
        loc.bundle
    ))
}

/// Where `plc-did` takes its DIDs from.
pub enum Dids<R> {
    /// The command line's.
    Args(Vec<String>),
    /// One per line of this reader.
    Lines(R),
}

/// `plc-did`: writes one line per DID to `out` (the route's body, or
/// `{"did":...,"error":...}`), in input order. Returns how many DIDs got
/// an error line. DIDs are percent-decoded first.
pub fn run<R: BufRead>(
    repo: &Path,
    route: Route,
    dids: Dids<R>,
    out: &mut impl Write,
) -> Result<u64> {
    let mut resolver = Resolver::open(repo)?;
    let mut failed = 0u64;
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    let mut flush = |batch: &mut Vec<String>, resolver: &mut Resolver| -> Result<()> {
        let ops = resolver.ops_many(batch)?;
        for (did, ops) in batch.iter().zip(ops) {
            let a = answer(route, did, &ops).map_err(|e| Error::Archive(format!("{did}: {e}")))?;
            let mut line = if a.status == 200 {
                a.body
            } else {
                failed += 1;
                error_line(did, &a)
            };
            line.push(b'\n');
            out.write_all(&line).ctx(|| "writing output")?;
        }
        batch.clear();
        Ok(())
    };
    match dids {
        Dids::Args(args) => {
            for a in args {
                batch.push(super::answer::decode_did(&a));
                if batch.len() == BATCH {
                    flush(&mut batch, &mut resolver)?;
                }
            }
        }
        Dids::Lines(mut input) => {
            let mut buf = Vec::new();
            let mut n = 0u64;
            loop {
                buf.clear();
                if input.read_until(b'\n', &mut buf).ctx(|| "reading input")? == 0 {
                    break;
                }
                n += 1;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let text = std::str::from_utf8(&buf)
                    .map_err(|e| Error::input(n, format!("not UTF-8: {e}")))?;
                batch.push(super::answer::decode_did(text));
                if batch.len() == BATCH {
                    flush(&mut batch, &mut resolver)?;
                }
            }
        }
    }
    flush(&mut batch, &mut resolver)?;
    out.flush().ctx(|| "writing output")?;
    Ok(failed)
}

fn error_line(did: &str, a: &Answer) -> Vec<u8> {
    let mut line = b"{\"did\":".to_vec();
    super::json::write_str(&mut line, did);
    line.extend_from_slice(b",\"error\":");
    let msg = a
        .error_message()
        .unwrap_or_else(|| format!("HTTP {}", a.status));
    super::json::write_str(&mut line, &msg);
    line.push(b'}');
    line
}
