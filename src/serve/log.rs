//! The request log: one line per request on stderr, written by a thread
//! of its own so that a slow or blocked stderr never holds up an answer.
//!
//! Lines go through a bounded queue; when it is full (stderr blocked, or a
//! flood) lines are dropped and counted, and the count is reported in the
//! next line that gets through. Memory stays bounded either way.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines waiting to be written, at most.
const QUEUE: usize = 4096;

/// Where request lines go (nowhere with `--quiet`).
#[derive(Clone)]
pub struct Log {
    tx: Option<SyncSender<String>>,
    dropped: Arc<AtomicU64>,
}

impl Log {
    /// A log writing to stderr, or a silent one.
    pub fn new(quiet: bool) -> Log {
        let dropped = Arc::new(AtomicU64::new(0));
        if quiet {
            return Log { tx: None, dropped };
        }
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("plc-serve-log".into())
            .spawn(move || {
                for line in rx {
                    let mut err = std::io::stderr().lock();
                    let n = lost.swap(0, Ordering::Relaxed);
                    // Nobody to tell if stderr itself fails (closed by
                    // whoever started us): the server goes on serving.
                    if n > 0 {
                        let _ = writeln!(err, "plc-serve: {n} log lines dropped (stderr too slow)");
                    }
                    let _ = writeln!(err, "{line}");
                }
            })
            .expect("spawning the log thread");
        Log {
            tx: Some(tx),
            dropped,
        }
    }

    /// Queues `line` (without its newline).
    pub fn line(&self, line: String) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether lines are written at all (saves formatting them).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
}
