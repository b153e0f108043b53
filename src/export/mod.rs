//! `plc-export`: pages the directory's `/export` into JSON lines without
//! losing an operation at a page boundary, and without trusting the
//! server for more than what a page can legitimately be.
//!
//! The directory's timestamp mode returns operations *strictly after*
//! `after`, so paging with `after` = the last createdAt seen drops the rest
//! of a millisecond that a page ended inside. Here every request asks again
//! for the boundary millisecond and drops what was already written, which
//! is lossless against servers that treat `after` as exclusive and as
//! inclusive (`paging.rs` holds those decisions, including what a page that
//! adds nothing means on a live directory). Each body is read as a stream
//! within a page's limits (`page.rs`), each request is paced and retried
//! out loud (`retry.rs`), and the HTTP client follows no redirect
//! (`http.rs`).
//!
//! The network is behind the [`Directory`] trait so that paging can be
//! tested without a server; [`HttpDirectory`] is the real client.

mod http;
mod page;
mod paging;
mod retry;

pub use http::{retry_after, HttpDirectory};
pub use page::{body_limit, MAX_CID};
pub use retry::{MAX_BACKOFF, MAX_RETRY_AFTER};

use crate::error::{IoContext, Result};
use crate::progress::{human, per_second, Progress};
use crate::repo::Tail;
use crate::time::Timestamp;
use paging::{Got, Next, Pager};
use retry::Requester;
use std::io::{Read, Write};
use std::time::Duration;

/// Where the export starts.
#[derive(Clone, Debug)]
pub enum Start {
    /// From the directory's first operation.
    Beginning,
    /// From operations created at or after this instant.
    Since(Timestamp),
    /// After the end of an archive (its last millisecond is re-requested
    /// and what the archive holds of it is skipped).
    After(Tail),
}

/// What `plc-export` is asked to do.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Where to start.
    pub start: Start,
    /// Operations per request (the directory caps it at 1000).
    pub count: usize,
    /// Requests per minute; 0 = unlimited.
    pub rate: u32,
    /// Operations younger than this (against the server's clock) are left
    /// for a later run.
    pub lag: Duration,
    /// Keep polling at this interval once caught up, instead of stopping.
    pub follow: Option<Duration>,
    /// Retries of a failed request before giving up.
    pub retries: u32,
    /// First retry delay; it doubles on each further retry (capped at
    /// [`MAX_BACKOFF`]).
    pub backoff: Duration,
}

/// One response: its body, not yet read, and the server's clock.
pub struct Page {
    /// The body as it arrives (read within a page's limits).
    pub body: Box<dyn Read>,
    /// The `Date` header, when the server sent one.
    pub date: Option<Timestamp>,
}

/// Why a request did not produce a page.
#[derive(Debug)]
pub enum Fault {
    /// Worth retrying after a backoff (5xx, connection error, cut body).
    Transient(String),
    /// Rate limited: retry after the `Retry-After` given (when usable).
    RetryAfter(Option<Duration>, String),
    /// Not worth retrying (4xx, redirect, bad URL).
    Fatal(String),
}

/// A source of `/export` pages.
pub trait Directory {
    /// Fetches one page: `after` as sent to the server, `count` requested.
    fn page(&mut self, after: Option<&str>, count: usize) -> std::result::Result<Page, Fault>;
    /// How a request is described in messages.
    fn describe(&self, after: Option<&str>, count: usize) -> String;
}

/// Counts from one run.
#[derive(Debug, Default, Clone)]
pub struct ExportStats {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Operations written.
    pub written: u64,
    /// createdAt of the last operation written.
    pub reached: Option<String>,
    /// True when the run stopped at operations younger than the lag.
    pub held_back: bool,
    /// Requests that failed and were retried.
    pub retries: u64,
}

/// Pages `dir` into `out` as described by `cfg`, reporting progress and
/// notes to `progress`.
///
/// Pages are written by a second thread, so the next request goes out
/// while the last page is still being taken by the reader downstream.
pub fn export(
    dir: &mut dyn Directory,
    cfg: &ExportConfig,
    out: &mut (dyn Write + Send),
    progress: &mut Progress<'_>,
) -> Result<ExportStats> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for page in rx {
                out.write_all(&page).ctx(|| "writing output")?;
                out.flush().ctx(|| "writing output")?;
            }
            Ok(())
        });
        let mut sink = |page: Vec<u8>| tx.send(page).is_ok();
        let fetched = export_pages(dir, cfg, &mut sink, progress);
        drop(tx);
        let written = writer.join().expect("the writer thread does not panic");
        // When the writer failed (a closed pipe, a full disk), that is the
        // cause; the pages it did take were whole.
        written.and(fetched)
    })
}

/// The paging loop: request a page and write its new lines, show where it
/// is, decide what the page means, and wait or stop once caught up.
fn export_pages(
    dir: &mut dyn Directory,
    cfg: &ExportConfig,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
    progress: &mut Progress<'_>,
) -> Result<ExportStats> {
    let mut net = Requester::new(dir, cfg, progress);
    let mut pager = Pager::new(cfg);
    loop {
        let got = pager.next_page(&mut net, sink)?;
        count_page(&mut net, &pager, &got);
        show_progress(&mut net, &pager, cfg, &got);
        if let Next::CaughtUp = pager.judge(&mut net, &got)? {
            match cfg.follow {
                Some(interval) => std::thread::sleep(interval),
                None => return Ok(finish(net, cfg, got.held_back)),
            }
        }
    }
}

/// Adds a page to the run's counts.
fn count_page(net: &mut Requester<'_, '_>, pager: &Pager, got: &Got) {
    net.stats.written += got.new;
    if let Some((_, text)) = pager.cur.reached() {
        net.stats.reached = Some(text.to_string());
    }
}

/// The status line: operations, requests, rate, and how far behind.
fn show_progress(net: &mut Requester<'_, '_>, pager: &Pager, cfg: &ExportConfig, got: &Got) {
    let stats = &net.stats;
    net.progress.update(|elapsed| {
        let (at, behind) = match pager.cur.reached() {
            Some((t, text)) => (
                text,
                human(Duration::from_nanos(
                    (got.cutoff.nanos() + cfg.lag.as_nanos() as i64 - t.nanos()).max(0) as u64,
                )),
            ),
            None => ("the start", "-".to_string()),
        };
        format!(
            "plc-export: {} operations, {} requests, {} ops/s, at {at} ({behind} behind)",
            stats.written,
            stats.requests,
            per_second(stats.written, elapsed)
        )
    });
}

/// The closing notes of a one-shot run, and its counts.
fn finish(net: Requester<'_, '_>, cfg: &ExportConfig, held_back: bool) -> ExportStats {
    let mut stats = net.stats;
    stats.held_back = held_back;
    if held_back {
        net.progress.line(&format!(
            "plc-export: holding back operations younger than {}; the next run fetches them",
            human(cfg.lag)
        ));
    }
    net.progress.line(&format!(
        "plc-export: {} operations in {} requests ({}), caught up at {}",
        stats.written,
        stats.requests,
        human(net.progress.elapsed()),
        stats.reached.as_deref().unwrap_or("the start")
    ));
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory directory: ops sorted by (createdAt, cid).
    struct Mem {
        ops: Vec<(i64, String)>,
        inclusive: bool,
        cap: usize,
        calls: u64,
    }

    fn line(ms: i64, cid: &str) -> String {
        format!(
            r#"{{"did":"did:plc:x","cid":"{cid}","createdAt":"{}"}}"#,
            Timestamp::from_millis(ms).format_millis()
        )
    }

    impl Directory for Mem {
        fn describe(&self, after: Option<&str>, count: usize) -> String {
            format!("mem after={after:?} count={count}")
        }
        fn page(&mut self, after: Option<&str>, count: usize) -> std::result::Result<Page, Fault> {
            self.calls += 1;
            let a = after.map(|a| Timestamp::parse(a).unwrap().millis());
            let lines: Vec<String> = self
                .ops
                .iter()
                .filter(|(ms, _)| match a {
                    None => true,
                    Some(a) if self.inclusive => *ms >= a,
                    Some(a) => *ms > a,
                })
                .take(count.min(self.cap))
                .map(|(ms, cid)| line(*ms, cid))
                .collect();
            Ok(Page {
                body: Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())),
                date: None,
            })
        }
    }

    fn quiet() -> Progress<'static> {
        Progress::new(
            Box::leak(Box::new(std::io::sink())),
            crate::progress::Mode::Quiet,
        )
    }

    fn cfg(count: usize) -> ExportConfig {
        ExportConfig {
            start: Start::Beginning,
            count,
            rate: 0,
            lag: Duration::ZERO,
            follow: None,
            retries: 0,
            backoff: Duration::ZERO,
        }
    }

    fn ops_with_ties() -> Vec<(i64, String)> {
        // Groups of 1..5 operations per millisecond.
        let mut v = Vec::new();
        let mut ms = 1_700_000_000_000;
        for i in 0..200 {
            for j in 0..(i % 5 + 1) {
                v.push((ms, format!("c{i:04}{j}")));
            }
            ms += 1 + (i % 3) as i64;
        }
        v.sort();
        v
    }

    #[test]
    fn pages_losslessly_through_ties_with_either_semantics() {
        let all = ops_with_ties();
        let expected: String = all.iter().map(|(m, c)| line(*m, c) + "\n").collect();
        for inclusive in [false, true] {
            for count in [6, 7, 11, 1000] {
                let mut d = Mem {
                    ops: all.clone(),
                    inclusive,
                    cap: 1000,
                    calls: 0,
                };
                let mut out = Vec::new();
                let stats = export(&mut d, &cfg(count), &mut out, &mut quiet()).unwrap();
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    expected,
                    "inclusive={inclusive} count={count}"
                );
                assert_eq!(stats.written as usize, all.len());
            }
        }
    }

    #[test]
    fn a_tie_group_larger_than_a_page_is_an_error_not_a_loop() {
        let ops: Vec<(i64, String)> = (0..10).map(|i| (5, format!("c{i}"))).collect();
        let mut d = Mem {
            ops,
            inclusive: false,
            cap: 1000,
            calls: 0,
        };
        let err = export(&mut d, &cfg(4), &mut Vec::new(), &mut quiet()).unwrap_err();
        assert!(err.to_string().contains("share the millisecond"), "{err}");
        assert!(d.calls < 5);
    }

    #[test]
    fn a_server_capping_pages_below_count_cannot_hide_a_large_tie_group() {
        // The server returns at most 4 per page although 10 are asked for:
        // short pages that add nothing must not pass for "caught up" while
        // operations after the group exist.
        let mut ops: Vec<(i64, String)> = (0..9).map(|i| (5, format!("c{i}"))).collect();
        ops.push((6, "d".into()));
        for inclusive in [false, true] {
            let mut d = Mem {
                ops: ops.clone(),
                inclusive,
                cap: 4,
                calls: 0,
            };
            let err = export(&mut d, &cfg(10), &mut Vec::new(), &mut quiet()).unwrap_err();
            assert!(err.to_string().contains("share the millisecond"), "{err}");
        }
    }

    #[test]
    fn a_group_of_exactly_count_goes_through_and_one_more_does_not() {
        for (size, ok) in [(4, true), (5, false)] {
            let mut ops: Vec<(i64, String)> = (0..size).map(|i| (5, format!("c{i}"))).collect();
            ops.push((6, "d".into()));
            let mut d = Mem {
                ops: ops.clone(),
                inclusive: false,
                cap: 1000,
                calls: 0,
            };
            let mut out = Vec::new();
            let r = export(&mut d, &cfg(4), &mut out, &mut quiet());
            assert_eq!(r.is_ok(), ok, "group of {size}: {r:?}");
            if ok {
                let want: String = ops.iter().map(|(m, c)| line(*m, c) + "\n").collect();
                assert_eq!(String::from_utf8(out).unwrap(), want);
            }
        }
    }

    #[test]
    fn a_cid_longer_than_a_cid_is_refused() {
        let mut d = Mem {
            ops: vec![(5, "a".repeat(MAX_CID + 1))],
            inclusive: false,
            cap: 1000,
            calls: 0,
        };
        let err = export(&mut d, &cfg(10), &mut Vec::new(), &mut quiet()).unwrap_err();
        assert!(err.to_string().contains("not a CID"), "{err}");
    }

    #[test]
    fn since_includes_its_own_millisecond() {
        let all = ops_with_ties();
        let start = all[100].0;
        for inclusive in [false, true] {
            let mut d = Mem {
                ops: all.clone(),
                inclusive,
                cap: 1000,
                calls: 0,
            };
            let mut c = cfg(6);
            c.start = Start::Since(Timestamp::from_millis(start));
            let mut out = Vec::new();
            export(&mut d, &c, &mut out, &mut quiet()).unwrap();
            let expected: String = all
                .iter()
                .filter(|(m, _)| *m >= start)
                .map(|(m, c)| line(*m, c) + "\n")
                .collect();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after("7", None), Some(Duration::from_secs(7)));
        let now = Timestamp::parse("2024-01-01T00:00:00Z");
        assert_eq!(
            retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("soon", None), None);
    }
}
