//! Sending one `/export` request the way a patient, talkative client does:
//! paced to `--rate`, retried after a failure worth retrying, and never
//! silent about it.
//!
//! Every failed attempt is announced on stderr at once, with what failed
//! and when the next attempt goes out (`plc-export: GET ...: HTTP 503: ...;
//! retry 2 of 8 in 4s`), so an unreachable directory is reported at the
//! first failure and not only when retries run out. Waits are bounded:
//! the backoff doubles up to [`MAX_BACKOFF`], and a `Retry-After` is
//! honoured up to [`MAX_RETRY_AFTER`] (a server asking for ten minutes
//! gets five, announced).

use super::page::{self, BodyFault, Scanned, Visit};
use super::{Directory, ExportConfig, ExportStats, Fault};
use crate::error::{Error, Result};
use crate::progress::{human, Progress};
use crate::time::Timestamp;
use std::time::{Duration, Instant};

/// The longest backoff between two attempts after a failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait a `Retry-After` can impose; longer ones are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The wait after a 429 that carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Sends requests for the paging loop and reports on them.
pub(super) struct Requester<'r, 'p> {
    dir: &'r mut dyn Directory,
    cfg: &'r ExportConfig,
    pacer: Pacer,
    /// Counts for the summary.
    pub stats: ExportStats,
    /// Where notes, warnings and the status line go.
    pub progress: &'r mut Progress<'p>,
}

impl<'r, 'p> Requester<'r, 'p> {
    pub fn new(
        dir: &'r mut dyn Directory,
        cfg: &'r ExportConfig,
        progress: &'r mut Progress<'p>,
    ) -> Self {
        Requester {
            dir,
            cfg,
            pacer: Pacer::new(cfg.rate),
            stats: ExportStats::default(),
            progress,
        }
    }

    /// How the request for `count=ask&after=after` is named in messages.
    pub fn describe(&self, after: Option<Timestamp>, ask: usize) -> String {
        let after = after.map(Timestamp::format_millis);
        self.dir.describe(after.as_deref(), ask)
    }

    /// Requests `count=ask&after=after` until a body is read to its end (or
    /// `visit` stops it), retrying what is worth retrying.
    pub fn request(
        &mut self,
        after: Option<Timestamp>,
        ask: usize,
        visit: &mut dyn Visit,
    ) -> Result<Scanned> {
        let after_text = after.map(Timestamp::format_millis);
        let what = self.describe(after, ask);
        let mut failures = 0u32;
        let mut last_bad: Option<Vec<u8>> = None;
        loop {
            self.pacer.wait();
            self.stats.requests += 1;
            let fault = match self.dir.page(after_text.as_deref(), ask) {
                Ok(mut page) => {
                    let now = page.date.unwrap_or_else(Timestamp::now);
                    visit.start(now.minus(self.cfg.lag));
                    match page::scan(&mut *page.body, ask, after, visit) {
                        Ok(scanned) => {
                            if failures > 0 {
                                self.progress.line(&format!(
                                    "plc-export: {what}: answered after {failures} failed attempt{}",
                                    if failures == 1 { "" } else { "s" }
                                ));
                            }
                            return Ok(scanned);
                        }
                        Err(BodyFault::Failed(e)) => return Err(e),
                        Err(BodyFault::Refused(msg)) => {
                            return Err(Error::Protocol(format!("{what}: {msg}")))
                        }
                        Err(BodyFault::Cut { msg, bad }) => {
                            // The same bad last line twice is the server's
                            // data, not a cut.
                            if bad.is_some() && bad == last_bad {
                                return Err(Error::Protocol(format!("{what}: {msg}")));
                            }
                            last_bad = bad;
                            visit.cut()?;
                            Fault::Transient(msg)
                        }
                    }
                }
                Err(f) => f,
            };
            let (wait, msg) = match fault {
                Fault::Fatal(msg) => return Err(Error::Protocol(format!("{what}: {msg}"))),
                Fault::Transient(msg) => (backoff(self.cfg.backoff, failures), msg),
                Fault::RetryAfter(asked, msg) => retry_after_wait(asked, msg),
            };
            failures += 1;
            self.stats.retries += 1;
            if failures > self.cfg.retries {
                return Err(Error::Network(format!(
                    "{what}: giving up after {failures} attempts: {msg}"
                )));
            }
            self.progress.warn(&format!(
                "plc-export: {what}: {msg}; retry {failures} of {} in {}",
                self.cfg.retries,
                human(wait)
            ));
            std::thread::sleep(wait);
        }
    }
}

/// The wait before the next attempt after `failures` earlier failed ones:
/// `first`, doubled per failure, at most [`MAX_BACKOFF`].
fn backoff(first: Duration, failures: u32) -> Duration {
    first.saturating_mul(1 << failures.min(16)).min(MAX_BACKOFF)
}

/// The wait a 429 imposes (`asked` = its `Retry-After`, if usable), cut
/// to [`MAX_RETRY_AFTER`], and how it is described.
fn retry_after_wait(asked: Option<Duration>, msg: String) -> (Duration, String) {
    match asked {
        None => (
            DEFAULT_RETRY_AFTER,
            format!("{msg} without a usable Retry-After"),
        ),
        Some(d) if d > MAX_RETRY_AFTER => (
            MAX_RETRY_AFTER,
            format!(
                "{msg} with Retry-After {} (waiting at most {})",
                human(d),
                human(MAX_RETRY_AFTER)
            ),
        ),
        Some(d) => (d, format!("{msg} with Retry-After {}", human(d))),
    }
}

/// Spaces requests to at most `rate` per minute.
struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    fn new(rate: u32) -> Pacer {
        Pacer {
            interval: if rate == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(60.0 / rate as f64)
            },
            next: None,
        }
    }

    fn wait(&mut self) {
        let now = Instant::now();
        if let Some(next) = self.next {
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        self.next = Some(Instant::now() + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), 0), s(1));
        assert_eq!(backoff(s(1), 3), s(8));
        assert_eq!(backoff(s(1), 6), s(60));
        assert_eq!(backoff(s(1), 40), s(60));
    }

    #[test]
    fn retry_after_is_capped_and_said_to_be() {
        let (w, m) = retry_after_wait(Some(Duration::from_secs(600)), "HTTP 429".into());
        assert_eq!(w, Duration::from_secs(300));
        assert!(m.contains("10m 0s") && m.contains("at most 5m 0s"), "{m}");
        let (w, _) = retry_after_wait(Some(Duration::from_secs(7)), "HTTP 429".into());
        assert_eq!(w, Duration::from_secs(7));
        let (w, _) = retry_after_wait(None, "HTTP 429".into());
        assert_eq!(w, Duration::from_secs(60));
    }
}
