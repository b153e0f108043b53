//! Reading and checking the bundle files on worker threads: each worker
//! takes the next bundle number, reads the file within the bounds its
//! entry allows, and runs [`super::check_bundle`] on it.

use super::bundle::{check_bundle, check_stored_file, BundleCheck, Edge, Link, Problem};
use super::VerifyConfig;
use crate::index::{bundle_file_name, BundleEntry};
use crate::progress::{human, Progress};
use crate::time::Timestamp;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Checks the selected bundles' files on worker threads, in order of
/// bundle number, and reports progress.
pub(super) fn check_files(
    dir: &Path,
    entries: &[BundleEntry],
    selected: &[bool],
    cfg: &VerifyConfig,
    progress: &mut Progress<'_>,
) -> Vec<BundleCheck> {
    let total = selected.iter().filter(|&&s| s).count();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(entries.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<BundleCheck>>> =
        entries.iter().map(|_| Mutex::new(None)).collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (next, results) = (&next, &results);
            s.spawn(move || {
                let store = |i: usize, check: BundleCheck| {
                    *results[i].lock().expect("no poisoned results") = Some(check);
                    if selected[i] {
                        let _ = done_tx.send(());
                    }
                };
                let mut worker = Worker::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let check = if selected[i] {
                        worker.check(dir, entry, cfg.quick)
                    } else {
                        from_index(entry)
                    };
                    store(i, check);
                }
            });
        }
        drop(done_tx);
        for (i, ()) in done_rx.into_iter().enumerate() {
            let done = i + 1;
            progress.update(|elapsed| {
                format!(
                    "plc-verify: {done} of {total} bundles checked ({})",
                    human(elapsed)
                )
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no poisoned results")
                .expect("every bundle checked")
        })
        .collect()
}

/// One worker thread's buffers, reused from one bundle to the next:
/// fresh multi-megabyte buffers cost a page fault and a zeroed page per
/// 4 KB.
#[derive(Default)]
struct Worker {
    file: Vec<u8>,
    content: Vec<u8>,
}

impl Worker {
    /// Reads entry `i`'s file (a regular file no longer than the entry
    /// allows) and checks it, in full or with `quick` its hash and size
    /// only.
    fn check(&mut self, dir: &Path, entry: &BundleEntry, quick: bool) -> BundleCheck {
        if let Err(check) = read_file(dir, entry, &mut self.file) {
            return *check;
        }
        if quick {
            // The chain is followed through the index's content hashes.
            let check = check_stored_file(entry, &self.file);
            return BundleCheck {
                problems: check.problems,
                content_hash: Some(entry.content_hash.clone()),
                operations: entry.operation_count,
                ..from_index(entry)
            };
        }
        check_bundle(entry, &self.file, Link::Unchecked, &mut self.content)
    }
}

/// Reads entry's file into `buf`: a regular file no longer than the entry
/// allows (a longer one is not read at all). `Err` carries the check of a
/// file that cannot be read (boxed: it is the rare path).
fn read_file(
    dir: &Path,
    entry: &BundleEntry,
    buf: &mut Vec<u8>,
) -> std::result::Result<(), Box<BundleCheck>> {
    let name = bundle_file_name(entry.bundle_number);
    let path = dir.join(&name);
    let bound = crate::repo::file_bound(entry);
    let problem = |field: &str, message: String| {
        Box::new(BundleCheck {
            problems: vec![Problem {
                field: field.into(),
                message,
            }],
            ..from_index(entry)
        })
    };
    match crate::repo::read_regular_into(&path, bound, buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(problem("file", format!("{name} is missing")))
        }
        // Longer than the index allows: not read, not decompressed.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(problem(
            "compressed_size",
            format!("index says {}, file is {e}", entry.compressed_size),
        )),
        Err(e) => Err(problem("file", format!("cannot read {name}: {e}"))),
    }
}

/// What the fold needs of a bundle whose file is not read: its times
/// from the index, for the order check at its boundaries.
fn from_index(e: &BundleEntry) -> BundleCheck {
    let edge = |t: &str| {
        Some(Edge {
            time: Timestamp::parse(t),
            text: t.to_string(),
            cids: Vec::new(),
        })
    };
    BundleCheck {
        first: edge(&e.start_time),
        last: edge(&e.end_time),
        ..BundleCheck::default()
    }
}
