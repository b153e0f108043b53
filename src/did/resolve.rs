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
use super::store::{BundleFrames, DidIndex, Frame, Loc};
use crate::error::{Error, IoContext, Result};
use crate::index::bundle_file_name;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// DIDs answered per batch by [`run`].
pub const BATCH: usize = 4096;
/// Bundle files kept open at once.
const OPEN_FILES: usize = 64;

/// A decompressed frame and where its lines are.
pub struct Decoded {
    /// The frame's content.
    pub content: Vec<u8>,
    /// Each line's range in `content`, without its newline.
    pub lines: Vec<std::ops::Range<usize>>,
}

impl Decoded {
    fn new(content: Vec<u8>) -> Decoded {
        let base = content.as_ptr() as usize;
        let body = content.strip_suffix(b"\n").unwrap_or(&content);
        let lines = crate::line::split_lines(body)
            .filter(|_| !body.is_empty())
            .map(|l| {
                let start = l.as_ptr() as usize - base;
                start..start + l.len()
            })
            .collect();
        Decoded { content, lines }
    }

    /// What it costs in memory, for the cache's budget.
    fn bytes(&self) -> usize {
        self.content.capacity()
            + self.lines.capacity() * std::mem::size_of::<std::ops::Range<usize>>()
    }
}

/// Reads and decompresses frames of a repository's bundle files, keeping
/// a few files open and its buffer between reads. One per thread.
pub struct FrameReader {
    repo: PathBuf,
    files: HashMap<u32, File>,
    compressed: Vec<u8>,
}

impl FrameReader {
    /// A reader of `repo`'s bundle files.
    pub fn new(repo: &Path) -> FrameReader {
        FrameReader {
            repo: repo.to_path_buf(),
            files: HashMap::new(),
            compressed: Vec::new(),
        }
    }

    /// Reads and decompresses `frame` of bundle `n`.
    fn decode(&mut self, n: u32, frame: Frame) -> Result<Decoded> {
        let (offset, len) = (frame.offset, frame.len);
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
        let mut content = Vec::new();
        crate::repo::decompress_bounded(&self.compressed, bound, &mut content, true).map_err(|e| {
            Error::Archive(format!(
                "bundle {n:06}: frame at {offset}: {e}; the DID index does not match the file: run plc-index"
            ))
        })?;
        Ok(Decoded::new(content))
    }
}

/// Decompressed frames shared by a server's threads, the least recently
/// used dropped first once they hold more than a set number of bytes.
/// A frame is known by its bundle, its offset and the SHA-256 of the file
/// the index was built from, so a bundle file replaced under the index is
/// never answered from the cache. A frame that several requests miss at
/// once is decompressed once, by the first, while the others wait for it
/// ([`FrameCache::get_or_load`]), cache budget or not.
pub struct FrameCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    used: usize,
    /// Bytes evicted since memory was last given back.
    evicted: usize,
    clock: u64,
    frames: HashMap<FrameKey, (Arc<Decoded>, u64)>,
    /// Frames being decompressed right now, for the requests that wait.
    loading: HashMap<FrameKey, Arc<Loading>>,
}

/// One frame being decompressed: its outcome once known (an error as its
/// message), and the signal that it is.
#[derive(Default)]
struct Loading {
    outcome: Mutex<Option<std::result::Result<Arc<Decoded>, String>>>,
    done: Condvar,
}

impl Loading {
    fn finish(&self, outcome: std::result::Result<Arc<Decoded>, String>) {
        *self.outcome.lock().expect("loading lock") = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<Arc<Decoded>> {
        let mut outcome = self.outcome.lock().expect("loading lock");
        loop {
            match &*outcome {
                Some(Ok(d)) => return Ok(d.clone()),
                Some(Err(message)) => return Err(Error::Archive(message.clone())),
                None => outcome = self.done.wait(outcome).expect("loading lock"),
            }
        }
    }
}

/// Ends a load however the loader leaves (an error, or a panic): the key
/// stops being loaded, and waiters are told.
struct LoadGuard<'a> {
    cache: &'a FrameCache,
    key: FrameKey,
    loading: Arc<Loading>,
    outcome: Option<std::result::Result<Arc<Decoded>, String>>,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err("decompressing the frame failed".into()));
        self.cache
            .inner
            .lock()
            .expect("cache lock")
            .loading
            .remove(&self.key);
        self.loading.finish(outcome);
    }
}

type FrameKey = (u32, u32, [u8; 32]);

impl FrameCache {
    /// A cache holding at most `budget` bytes of frames (0: none kept).
    pub fn new(budget: usize) -> FrameCache {
        FrameCache {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    #[cfg(test)]
    fn get(&self, key: &FrameKey) -> Option<Arc<Decoded>> {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.clock += 1;
        let now = inner.clock;
        let (frame, used) = inner.frames.get_mut(key)?;
        *used = now;
        Some(frame.clone())
    }

    /// The frame `key` from the cache, or from `load` (which only one
    /// caller at a time runs for a key: the others wait for its outcome).
    pub fn get_or_load(
        &self,
        key: FrameKey,
        load: impl FnOnce() -> Result<Decoded>,
    ) -> Result<Arc<Decoded>> {
        let loading = {
            let mut inner = self.inner.lock().expect("cache lock");
            inner.clock += 1;
            let now = inner.clock;
            if let Some((frame, used)) = inner.frames.get_mut(&key) {
                *used = now;
                return Ok(frame.clone());
            }
            if let Some(loading) = inner.loading.get(&key) {
                let loading = loading.clone();
                drop(inner);
                return loading.wait();
            }
            let loading = Arc::new(Loading::default());
            inner.loading.insert(key, loading.clone());
            loading
        };
        let mut guard = LoadGuard {
            cache: self,
            key,
            loading,
            outcome: None,
        };
        let result = load().map(Arc::new);
        if let Ok(frame) = &result {
            self.put(key, frame.clone());
        }
        guard.outcome = Some(match &result {
            Ok(frame) => Ok(frame.clone()),
            Err(e) => Err(e.to_string()),
        });
        drop(guard);
        result
    }

    fn put(&self, key: FrameKey, frame: Arc<Decoded>) {
        let size = frame.bytes();
        if size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.frames.insert(key, (frame, now)) {
            inner.used -= old.bytes();
        }
        inner.used += size;
        while inner.used > self.budget {
            let oldest = inner
                .frames
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
                .expect("a cache over budget holds a frame");
            let (gone, _) = inner.frames.remove(&oldest).expect("present");
            inner.used -= gone.bytes();
            inner.evicted += gone.bytes();
        }
        // Every half budget evicted, freed memory goes back to the system.
        let trim = inner.evicted > self.budget / 2;
        if trim {
            inner.evicted = 0;
        }
        drop(inner);
        if trim {
            give_back_freed_memory();
        }
    }
}

/// Where [`ops_many`] gets a decompressed frame: given the bundle number,
/// the frame, and what the index knows of the bundle.
pub type FrameSource<'a> = dyn FnMut(u32, Frame, &BundleFrames) -> Result<Arc<Decoded>> + 'a;

/// Hands the pages of freed memory back to the system. glibc keeps the
/// multi-megabyte buffers of evicted frames for reuse, which is not
/// always possible (a new frame of another size, freed pieces apart): a
/// 64 MiB cache evicting all the time held 220-260 MB. Trimming after
/// every eviction kept it at 135-155 MB but cost a quarter of the
/// requests per second (the pages are faulted in again); after every
/// half budget evicted, it costs a fraction of that.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is
    // thread-safe and touches nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The operations of each DID of `dids`, in archive order, reading each
/// needed frame once through `frame`.
pub fn ops_many<S: AsRef<str>>(
    index: &DidIndex,
    frame: &mut FrameSource<'_>,
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
    let mut current: Option<(u32, usize, u16, Arc<Decoded>)> = None;
    for (loc, i) in wanted {
        let frames = index.frames(loc.bundle).ok_or_else(|| stale(loc))?;
        let (k, f) = frames.frame_of(loc.pos).ok_or_else(|| stale(loc))?;
        let decoded = match &current {
            Some((n, j, _, d)) if (*n, *j) == (loc.bundle, k) => d.clone(),
            _ => {
                let d = frame(loc.bundle, f, frames)?;
                current = Some((loc.bundle, k, f.first, d.clone()));
                d
            }
        };
        let range = decoded
            .lines
            .get(usize::from(loc.pos - f.first))
            .ok_or_else(|| stale(loc))?
            .clone();
        let op = StoredOp::parse(&decoded.content[range]).map_err(|e| {
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
        let reader = &mut self.reader;
        ops_many(
            &self.index,
            &mut |n, f, _| Ok(Arc::new(reader.decode(n, f)?)),
            dids,
        )
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
    cache: FrameCache,
}

impl SharedIndex {
    /// For `repo`, keeping up to `cache_bytes` of decompressed frames;
    /// nothing is read yet.
    pub fn new(repo: &Path, cache_bytes: usize) -> SharedIndex {
        SharedIndex {
            repo: repo.to_path_buf(),
            current: Mutex::new(None),
            cache: FrameCache::new(cache_bytes),
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
        let mut frame = |n: u32, f: Frame, b: &BundleFrames| {
            self.cache
                .get_or_load((n, f.offset, b.file_sha256), || reader.decode(n, f))
        };
        let ops = ops_many(&index, &mut frame, &[did])?
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
/// an error line. DIDs are percent-decoded first; one that does not
/// decode gets the directory's 400 message as its error.
pub fn run<R: BufRead>(
    repo: &Path,
    route: Route,
    dids: Dids<R>,
    out: &mut impl Write,
) -> Result<u64> {
    let mut resolver = Resolver::open(repo)?;
    let mut failed = 0u64;
    // Each DID as decoded (as given when it does not decode, with the
    // directory's 400 answer for it).
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    let mut undecodable: Vec<Option<Answer>> = Vec::with_capacity(BATCH);
    let mut flush = |batch: &mut Vec<String>,
                     undecodable: &mut Vec<Option<Answer>>,
                     resolver: &mut Resolver|
     -> Result<()> {
        let ops = resolver.ops_many(batch)?;
        for ((did, ops), bad) in batch.iter().zip(ops).zip(undecodable.drain(..)) {
            let a = match bad {
                Some(a) => a,
                None => {
                    answer(route, did, &ops).map_err(|e| Error::Archive(format!("{did}: {e}")))?
                }
            };
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
    let push = |text: &str, batch: &mut Vec<String>, undecodable: &mut Vec<Option<Answer>>| {
        match super::answer::decode_did(text) {
            Ok(did) => {
                batch.push(did);
                undecodable.push(None);
            }
            Err(a) => {
                batch.push(text.to_string());
                undecodable.push(Some(a));
            }
        }
    };
    match dids {
        Dids::Args(args) => {
            for a in args {
                push(&a, &mut batch, &mut undecodable);
                if batch.len() == BATCH {
                    flush(&mut batch, &mut undecodable, &mut resolver)?;
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
                push(text, &mut batch, &mut undecodable);
                if batch.len() == BATCH {
                    flush(&mut batch, &mut undecodable, &mut resolver)?;
                }
            }
        }
    }
    flush(&mut batch, &mut undecodable, &mut resolver)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(lines: usize) -> Arc<Decoded> {
        Arc::new(Decoded::new(b"{}\n".repeat(lines)))
    }

    #[test]
    fn decoded_frames_know_their_lines() {
        let d = Decoded::new(b"a\nbc\n\nd\n".to_vec());
        let lines: Vec<&[u8]> = d.lines.iter().map(|r| &d.content[r.clone()]).collect();
        assert_eq!(lines, [&b"a"[..], b"bc", b"", b"d"]);
        assert!(Decoded::new(Vec::new()).lines.is_empty());
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_frames_within_its_budget() {
        let size = frame(1000).bytes();
        let cache = FrameCache::new(2 * size + size / 2);
        let key = |n: u32| (n, 0, [n as u8; 32]);
        cache.put(key(1), frame(1000));
        cache.put(key(2), frame(1000));
        assert!(cache.get(&key(1)).is_some()); // 1 is now newer than 2
        cache.put(key(3), frame(1000));
        assert!(cache.get(&key(2)).is_none(), "the least recently used goes");
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(3)).is_some());
        assert!(cache.inner.lock().unwrap().used <= 2 * size + size / 2);
        // The same bundle and offset from another file is another frame.
        assert!(cache.get(&(1, 0, [9; 32])).is_none());
        // A frame larger than the whole budget is not kept.
        let small = FrameCache::new(size / 2);
        small.put(key(1), frame(1000));
        assert!(small.get(&key(1)).is_none());
        assert_eq!(small.inner.lock().unwrap().used, 0);
    }

    #[test]
    fn a_frame_missed_by_many_at_once_is_loaded_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Barrier;
        let key = (7, 0, [7; 32]);
        // Holds a load until `n` other requests wait for it (each waiter
        // holds the load's Arc, as do the map and the loader's guard), so
        // that none can arrive after it: at most 10 s.
        let until_waiting = |cache: &FrameCache, n: usize| {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(10) {
                let inner = cache.inner.lock().unwrap();
                if inner.loading.get(&key).map(Arc::strong_count) == Some(n + 2) {
                    return;
                }
                drop(inner);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            panic!("the other requests never waited");
        };
        // With room for the frame, and with none (nothing kept, but the
        // requests that overlap still share one load).
        for budget in [1 << 20, 0] {
            let cache = FrameCache::new(budget);
            let loads = AtomicUsize::new(0);
            let barrier = Barrier::new(8);
            let load = || {
                if loads.fetch_add(1, Ordering::SeqCst) == 0 {
                    until_waiting(&cache, 7);
                }
                Ok(Decoded::new(b"{}\n{}\n".to_vec()))
            };
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        barrier.wait();
                        let d = cache.get_or_load(key, load).unwrap();
                        assert_eq!(d.lines.len(), 2);
                    });
                }
            });
            assert_eq!(loads.load(Ordering::SeqCst), 1, "budget {budget}");
            assert!(cache.inner.lock().unwrap().loading.is_empty());
            // Afterwards: from the cache, or loaded again without one.
            cache.get_or_load(key, load).unwrap();
            let again = if budget == 0 { 2 } else { 1 };
            assert_eq!(loads.load(Ordering::SeqCst), again, "budget {budget}");
        }
        // A failed load fails every waiter with its message, and the next
        // request tries again.
        let cache = FrameCache::new(1 << 20);
        let barrier = Barrier::new(4);
        let fail = || {
            until_waiting(&cache, 3);
            Err(Error::Archive("bundle 000007: gone".into()))
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    barrier.wait();
                    let e = cache.get_or_load(key, fail).err().unwrap();
                    assert_eq!(e.to_string(), "bundle 000007: gone");
                });
            }
        });
        let d = cache
            .get_or_load(key, || Ok(Decoded::new(b"{}\n".to_vec())))
            .unwrap();
        assert_eq!(d.lines.len(), 1);
    }
}
