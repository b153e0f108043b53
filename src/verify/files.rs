//! Reading and checking the bundle files on worker threads: each worker
//! takes the next bundle number, reads the file within the bounds its
//! entry allows, and runs [`super::check_bundle`] on it.

use super::bundle::{
    check_bundle_helped, check_stored_file, scan_lines, BundleCheck, Edge, Helper, LineScan, Link,
    Problem,
};
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
    // Workers out of bundles scan the lines of the others' last ones
    // (see `Helper`): `idle` counts them, `jobs` reaches them.
    let idle = AtomicUsize::new(0);
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
    let jobs_rx = Mutex::new(jobs_rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let jobs_tx = jobs_tx.clone();
            let (next, results, idle, jobs_rx) = (&next, &results, &idle, &jobs_rx);
            s.spawn(move || {
                let store = |i: usize, check: BundleCheck| {
                    *results[i].lock().expect("no poisoned results") = Some(check);
                    if selected[i] {
                        let _ = done_tx.send(());
                    }
                };
                let help = move |content| {
                    if idle.load(Ordering::Relaxed) == 0 {
                        return None;
                    }
                    let (reply, answer) = std::sync::mpsc::channel();
                    jobs_tx.send(Job { content, reply }).ok()?;
                    Some(answer)
                };
                let mut worker = Worker::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let check = if selected[i] {
                        worker.check(dir, entry, cfg.quick, &help)
                    } else {
                        from_index(entry)
                    };
                    store(i, check);
                }
                // Out of bundles: no more jobs from this worker; help the
                // others until every worker is out (the channel closes).
                drop(help);
                drop(worker);
                idle.fetch_add(1, Ordering::Relaxed);
                loop {
                    let job = jobs_rx.lock().expect("no poisoned job queue").recv();
                    let Ok(Job { content, reply }) = job else {
                        break;
                    };
                    let lines = scan_lines(&content);
                    drop(content);
                    let _ = reply.send(lines);
                }
            });
        }
        drop(done_tx);
        drop(jobs_tx);
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

/// A bundle's lines to scan for another worker, and where to answer.
struct Job {
    content: std::sync::Arc<Vec<u8>>,
    reply: std::sync::mpsc::Sender<LineScan>,
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
    fn check(
        &mut self,
        dir: &Path,
        entry: &BundleEntry,
        quick: bool,
        helper: Helper<'_>,
    ) -> BundleCheck {
        if let Err(check) = read_file(dir, entry, &mut self.file) {
            return *check;
        }
        if quick {
            return quick_check(entry, check_stored_file(entry, &self.file));
        }
        check_bundle_helped(
            entry,
            &self.file,
            Link::Unchecked,
            &mut self.content,
            Some(helper),
        )
    }
}

/// A quick check's result as the fold wants it: the chain is followed
/// through the index's content hashes.
fn quick_check(entry: &BundleEntry, check: BundleCheck) -> BundleCheck {
    BundleCheck {
        problems: check.problems,
        content_hash: Some(entry.content_hash.clone()),
        operations: entry.operation_count,
        ..from_index(entry)
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
