//! The repository as plc-serve sees it: the index, re-read whenever the
//! file changes, and a small cache of decompressed bundles for `/export`
//! and `/jsonl/N`.
//!
//! Everything here blocks (file reads, decompression) and is called from
//! tokio's blocking pool, never from an async task directly. Files are only
//! ever opened by bundle number, so no request can name a file outside the
//! repository.

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, Index, INDEX_FILE};
use crate::line::parse_op;
use crate::repo::decompress;
use crate::time::Timestamp;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Decompressed bundles kept in memory. Responses hold a bundle only
/// weakly between the pieces they send (see `body.rs`), so this, plus one
/// bundle per blocking thread being loaded, bounds what bundles cost.
pub const CACHED_BUNDLES: usize = 4;

/// The served repository.
pub struct Archive {
    repo: PathBuf,
    index: Mutex<Option<(Stamp, Arc<Loaded>)>>,
    cache: Mutex<Vec<(u64, String, Arc<Bundle>)>>,
}

/// Identifies one version of the index file (it is replaced by rename, so
/// a new version has a new inode).
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

/// One version of the index, as stored and as parsed.
pub struct Loaded {
    /// The file's bytes, served as they are.
    pub raw: Vec<u8>,
    /// The parsed index.
    pub index: Index,
    /// (bundle number, content_hash, end time) per bundle, in order.
    pub bundles: Vec<(u64, String, Timestamp)>,
}

/// One bundle, decompressed.
pub struct Bundle {
    /// The content, as the file decompresses.
    pub content: Vec<u8>,
    /// (start, end) byte range of each line. A line is parsed only when
    /// the binary search for a request's start looks at it (about 14 per
    /// request), not all 10,000 when the bundle is loaded: the client
    /// checks every line it receives anyway.
    pub lines: Vec<(usize, usize)>,
}

impl Bundle {
    /// The createdAt of line `i`.
    fn time(&self, i: usize) -> std::result::Result<Timestamp, String> {
        let (s, e) = self.lines[i];
        parse_op(&self.content[s..e])
            .map(|op| op.time)
            .map_err(|r| format!("line {}: {r}", i + 1))
    }

    /// The index of the first line created strictly after `after`
    /// (lines are in time order in a sealed bundle).
    pub fn first_after(&self, after: Timestamp) -> std::result::Result<usize, String> {
        let (mut lo, mut hi) = (0, self.lines.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid)? <= after {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

impl Archive {
    /// The repository at `repo`; nothing is read yet.
    pub fn new(repo: PathBuf) -> Archive {
        Archive {
            repo,
            index: Mutex::new(None),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The path of bundle `n`'s file.
    pub fn bundle_path(&self, n: u64) -> PathBuf {
        self.repo.join(bundle_file_name(n))
    }

    /// The current index, re-read when the file changed.
    pub fn index(&self) -> Result<Arc<Loaded>> {
        let path = self.repo.join(INDEX_FILE);
        let meta = std::fs::metadata(&path).ctx(|| format!("reading {}", path.display()))?;
        let stamp = Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        };
        let mut slot = self.index.lock().expect("index lock");
        if let Some((s, loaded)) = slot.as_ref() {
            if *s == stamp {
                return Ok(loaded.clone());
            }
        }
        let raw = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        let index: Index = serde_json::from_slice(&raw)
            .map_err(|e| Error::Archive(format!("{}: not a valid index: {e}", path.display())))?;
        let mut bundles = Vec::with_capacity(index.bundles.len());
        for b in &index.bundles {
            let end = Timestamp::parse(&b.end_time).ok_or_else(|| {
                Error::Archive(format!(
                    "bundle {}: end_time is not a timestamp",
                    b.bundle_number
                ))
            })?;
            bundles.push((b.bundle_number, b.content_hash.clone(), end));
        }
        let loaded = Arc::new(Loaded {
            raw,
            index,
            bundles,
        });
        *slot = Some((stamp, loaded.clone()));
        Ok(loaded)
    }

    /// Bundle `number` if it is in the cache (never blocks on I/O).
    pub fn cached(&self, number: u64, content_hash: &str) -> Option<Arc<Bundle>> {
        let cache = self.cache.lock().expect("cache lock");
        cache
            .iter()
            .find(|(n, h, _)| *n == number && h == content_hash)
            .map(|(_, _, b)| b.clone())
    }

    /// Bundle `number`, from the cache or decompressed from its file.
    pub fn bundle(&self, number: u64, content_hash: &str) -> Result<Arc<Bundle>> {
        if let Some(b) = self.cached(number, content_hash) {
            return Ok(b);
        }
        let path = self.bundle_path(number);
        let file = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        let content = decompress(&file).ctx(|| format!("decompressing {}", path.display()))?;
        let mut lines = Vec::with_capacity(10_000);
        let body = content.strip_suffix(b"\n").unwrap_or(&content);
        let base = body.as_ptr() as usize;
        for line in crate::line::split_lines(body).filter(|l| !l.is_empty()) {
            let start = line.as_ptr() as usize - base;
            lines.push((start, start + line.len()));
        }
        let bundle = Arc::new(Bundle { content, lines });
        let mut cache = self.cache.lock().expect("cache lock");
        cache.retain(|(n, _, _)| *n != number);
        if cache.len() >= CACHED_BUNDLES {
            cache.remove(0);
        }
        cache.push((number, content_hash.to_string(), bundle.clone()));
        Ok(bundle)
    }
}
