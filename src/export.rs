//! `plc-export`: pages the directory's `/export` into JSON lines without
//! losing an operation at a page boundary.
//!
//! The directory's timestamp mode returns operations *strictly after*
//! `after`, so paging with `after` = the last createdAt seen drops the rest
//! of a millisecond that a page ended inside. Here every request asks again
//! for the boundary millisecond (`after` = last createdAt minus 1 ms) and
//! drops what was already written: operations older than the boundary, and
//! operations at the boundary whose CID was written. That is lossless
//! against servers that treat `after` as exclusive and as inclusive. A full
//! page that adds nothing means more operations share one millisecond than
//! a page holds: an error, not a loop.
//!
//! The network is behind the [`Directory`] trait so that paging can be
//! tested without a server; [`HttpDirectory`] is the real client.

use crate::error::{Error, IoContext, Result};
use crate::line::{excerpt, parse_op, Op, Seen, Sequencer, MAX_LINE};
use crate::progress::{human, per_second, Progress};
use crate::repo::Tail;
use crate::time::Timestamp;
use std::borrow::Cow;
use std::io::Write;
use std::time::{Duration, Instant};

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
    /// First retry delay; it doubles on each further retry (capped at 60 s).
    pub backoff: Duration,
}

/// One response body and the server's clock.
pub struct Page {
    /// The body as received.
    pub body: Vec<u8>,
    /// The `Date` header, when the server sent one.
    pub date: Option<Timestamp>,
}

/// Why a request did not produce a page.
#[derive(Debug)]
pub enum Fault {
    /// Worth retrying after a backoff (5xx, connection error, cut body).
    Transient(String),
    /// Rate limited: retry after this long.
    RetryAfter(Duration, String),
    /// Not worth retrying (4xx, bad URL).
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
    /// Why the last retried request failed.
    pub last_fault: Option<String>,
}

/// The paging state: what has been written at the boundary millisecond.
struct Cursor {
    /// The last millisecond written and the CIDs written in it.
    written: Sequencer,
    /// Nothing older than this is written (the start of `--since`).
    floor: Option<Timestamp>,
    /// The server was seen to treat `after` as inclusive (it returned an
    /// operation created exactly at `after`); the boundary is then asked
    /// for with `after` = the boundary itself.
    inclusive: bool,
}

impl Cursor {
    fn new(start: &Start) -> Cursor {
        match start {
            Start::Beginning => Cursor {
                written: Sequencer::default(),
                floor: None,
                inclusive: false,
            },
            Start::Since(t) => Cursor {
                written: Sequencer::default(),
                floor: Some(*t),
                inclusive: false,
            },
            Start::After(tail) => Cursor {
                written: Sequencer::seeded(&tail.end_time, tail.time, tail.cids.iter().cloned()),
                floor: Some(tail.time),
                inclusive: false,
            },
        }
    }

    /// The `after` to request: one millisecond before the boundary, so that
    /// the boundary millisecond is asked for again (the boundary itself for
    /// a server that treats `after` as inclusive).
    fn after(&self) -> Option<Timestamp> {
        let t = self.written.last().map(|(t, _)| t).or(self.floor)?;
        let back = if self.inclusive { 0 } else { 1 };
        Some(Timestamp::from_millis(t.millis() - back))
    }
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

/// The paging loop: hands each page's new lines to `sink`, which returns
/// false once the output is gone.
fn export_pages(
    dir: &mut dyn Directory,
    cfg: &ExportConfig,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
    progress: &mut Progress<'_>,
) -> Result<ExportStats> {
    let mut cur = Cursor::new(&cfg.start);
    let mut stats = ExportStats::default();
    let mut pacer = Pacer::new(cfg.rate);
    loop {
        let after_ts = cur.after();
        let after = after_ts.map(Timestamp::format_millis);
        let was_inclusive = cur.inclusive;
        let (body, lines, cutoff) = fetch_page(dir, cfg, after.as_deref(), &mut pacer, &mut stats)?;
        if let Some(fault) = stats.last_fault.take() {
            progress.line(&format!(
                "plc-export: a request failed ({fault}); it succeeded again"
            ));
        }
        let request = dir.describe(after.as_deref(), cfg.count);
        let mut new = 0u64;
        let mut held_back = false;
        let mut prev_in_page: Option<Timestamp> = None;
        let mut page_out = Vec::with_capacity(body.len() + 1);
        for (line_no, line) in lines.iter().enumerate() {
            let op = line.op(&body);
            if prev_in_page.is_some_and(|p| op.time < p) {
                return Err(Error::Protocol(format!(
                    "{}: line {}: createdAt goes backwards inside a page ({}); is `after` being read as a sequence number?",
                    request,
                    line_no + 1,
                    op.created_at
                )));
            }
            prev_in_page = Some(op.time);
            if after_ts.is_some_and(|a| op.time <= a) {
                cur.inclusive = true;
            }
            if cur.floor.is_some_and(|f| op.time < f) {
                continue;
            }
            // Older than what was written, or written already at the
            // boundary millisecond: skipped.
            if cur.written.peek(&op) != Ok(Seen::New) {
                continue;
            }
            if op.time > cutoff {
                held_back = true;
                break;
            }
            cur.written.record(&op);
            page_out.extend_from_slice(&body[line.start..line.end]);
            page_out.push(b'\n');
            new += 1;
        }
        // Whole lines only, one write per page, flushed at once so that a
        // pipeline downstream makes progress and a kill loses no half line.
        if !page_out.is_empty() && !sink(page_out) {
            return Err(Error::io(
                "writing output",
                std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            ));
        }
        stats.written += new;
        if let Some((_, text)) = cur.written.last() {
            stats.reached = Some(text.to_string());
        }
        progress.update(|elapsed| {
            let (at, behind) = match cur.written.last() {
                Some((t, text)) => (
                    text,
                    human(Duration::from_nanos(
                        (cutoff.nanos() + cfg.lag.as_nanos() as i64 - t.nanos()).max(0) as u64,
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
        let switched = cur.inclusive && !was_inclusive;
        if new == 0 && !held_back && !switched && !lines.is_empty() {
            // Every operation of the page was already written: either we
            // are caught up, or one millisecond holds more operations than
            // a page returns. A full page settles it; a short one might be
            // a server capping `count` lower than asked, so ask what lies
            // strictly after the boundary.
            let at = cur
                .written
                .last()
                .map_or("the start".to_string(), |(_, t)| t.to_string());
            let stuck = lines.len() >= cfg.count
                || beyond_boundary(dir, cfg, &cur, &mut pacer, &mut stats)?;
            if stuck {
                return Err(Error::Protocol(format!(
                    "{}: a page of {} operations added nothing new: more operations share the millisecond {at} than one page returns; retry with a larger --count",
                    request,
                    lines.len(),
                )));
            }
        }
        let caught_up = held_back || (new == 0 && !switched);
        if caught_up {
            stats.held_back = held_back;
            let Some(interval) = cfg.follow else {
                if held_back {
                    progress.line(&format!(
                        "plc-export: holding back operations younger than {}; the next run fetches them",
                        human(cfg.lag)
                    ));
                }
                progress.line(&format!(
                    "plc-export: {} operations in {} requests ({}), caught up at {}",
                    stats.written,
                    stats.requests,
                    human(progress.elapsed()),
                    stats.reached.as_deref().unwrap_or("the start")
                ));
                return Ok(stats);
            };
            std::thread::sleep(interval);
        }
    }
}

/// True when the directory holds operations strictly after the boundary.
fn beyond_boundary(
    dir: &mut dyn Directory,
    cfg: &ExportConfig,
    cur: &Cursor,
    pacer: &mut Pacer,
    stats: &mut ExportStats,
) -> Result<bool> {
    let Some(t) = cur.written.last().map(|(t, _)| t).or(cur.floor) else {
        return Ok(false);
    };
    // `after` = the boundary itself; a server that turns out to include
    // `after` (it answers with the boundary's operations again) is asked
    // once more, one millisecond later.
    for step in [0, 1] {
        let probe = Timestamp::from_millis(t.millis() + step).format_millis();
        let (_, lines, _) = fetch_page(dir, cfg, Some(&probe), pacer, stats)?;
        let times: Vec<Timestamp> = lines.iter().map(|l| l.time).collect();
        if times.iter().any(|&x| x > t) {
            return Ok(true);
        }
        if !times.contains(&t) {
            break;
        }
    }
    Ok(false)
}

/// Requests one page with retries; returns its body, its lines (checked to
/// be operations, as ranges of the body) and the lag cutoff by the server's
/// clock.
fn fetch_page(
    dir: &mut dyn Directory,
    cfg: &ExportConfig,
    after: Option<&str>,
    pacer: &mut Pacer,
    stats: &mut ExportStats,
) -> Result<(Vec<u8>, Vec<PageLine>, Timestamp)> {
    let mut failures = 0u32;
    let mut last_bad: Option<Vec<u8>> = None;
    loop {
        pacer.wait();
        stats.requests += 1;
        let fault = match dir.page(after, cfg.count) {
            Ok(page) => {
                let now = page.date.unwrap_or_else(Timestamp::now);
                let cutoff = now.minus(cfg.lag);
                match split_page(&page.body) {
                    Ok(lines) => return Ok((page.body, lines, cutoff)),
                    Err((line_no, line, reason, is_last)) => {
                        let msg = format!(
                            "{}: line {line_no}: {reason}: {}",
                            dir.describe(after, cfg.count),
                            excerpt(&line)
                        );
                        // A bad last line is usually a body cut short; the
                        // same bad line twice is the server's data.
                        if !is_last || last_bad.as_ref() == Some(&line) {
                            return Err(Error::Protocol(msg));
                        }
                        last_bad = Some(line);
                        Fault::Transient(format!("truncated body? {msg}"))
                    }
                }
            }
            Err(f) => f,
        };
        let (wait, msg) = match fault {
            Fault::Fatal(msg) => {
                return Err(Error::Protocol(format!(
                    "{}: {msg}",
                    dir.describe(after, cfg.count)
                )))
            }
            Fault::Transient(msg) => {
                let exp = cfg.backoff.saturating_mul(1 << failures.min(16));
                (exp.min(Duration::from_secs(60)), msg)
            }
            Fault::RetryAfter(d, msg) => (d.min(Duration::from_secs(600)), msg),
        };
        failures += 1;
        stats.retries += 1;
        stats.last_fault = Some(format!("{msg}; retrying in {}", human(wait)));
        if failures > cfg.retries {
            return Err(Error::Network(format!(
                "{}: giving up after {} attempts: {msg}",
                dir.describe(after, cfg.count),
                failures
            )));
        }
        std::thread::sleep(wait);
    }
}

type BadLine = (usize, Vec<u8>, String, bool);

/// Splits a body into lines (no trailing newline expected; one is
/// tolerated) and checks each is an operation.
fn split_page(body: &[u8]) -> std::result::Result<Vec<PageLine>, BadLine> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let base = body.as_ptr() as usize;
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let pieces: Vec<&[u8]> = crate::line::split_lines(body).collect();
    let n = pieces.len();
    let mut out = Vec::with_capacity(n);
    for (i, line) in pieces.iter().enumerate() {
        let checked = if line.len() > MAX_LINE {
            Err(format!("line longer than {MAX_LINE} bytes"))
        } else {
            parse_op(line).map(|op| PageLine {
                start: line.as_ptr() as usize - base,
                end: line.as_ptr() as usize - base + line.len(),
                time: op.time,
                cid: Field::of(op.cid, base),
                created_at: Field::of(op.created_at, base),
            })
        };
        match checked {
            Ok(l) => out.push(l),
            Err(reason) => return Err((i + 1, line.to_vec(), reason, i + 1 == n)),
        }
    }
    Ok(out)
}

/// One checked line of a page, parsed once: where it is in the body and
/// its key fields.
struct PageLine {
    start: usize,
    end: usize,
    time: Timestamp,
    cid: Field,
    created_at: Field,
}

impl PageLine {
    /// The fields the paging loop needs, borrowed from `body`.
    fn op<'a>(&'a self, body: &'a [u8]) -> Op<'a> {
        Op {
            did: Cow::Borrowed(""),
            cid: Cow::Borrowed(self.cid.get(body)),
            created_at: Cow::Borrowed(self.created_at.get(body)),
            time: self.time,
        }
    }
}

/// A string field of a page line: where it lies in the body, or its
/// value when the JSON escaped it (no allocation per line otherwise).
enum Field {
    At(usize, usize),
    Unescaped(String),
}

impl Field {
    fn of(value: Cow<'_, str>, base: usize) -> Field {
        match value {
            Cow::Borrowed(s) => {
                let start = s.as_ptr() as usize - base;
                Field::At(start, start + s.len())
            }
            Cow::Owned(s) => Field::Unescaped(s),
        }
    }

    fn get<'a>(&'a self, body: &'a [u8]) -> &'a str {
        match self {
            Field::At(s, e) => {
                std::str::from_utf8(&body[*s..*e]).expect("a field parsed from this body")
            }
            Field::Unescaped(s) => s,
        }
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

/// The real directory over HTTP(S).
pub struct HttpDirectory {
    base: String,
    agent: ureq::Agent,
}

impl HttpDirectory {
    /// A client for the directory at `base` (e.g. `https://plc.directory`).
    pub fn new(base: &str, timeout: Duration) -> HttpDirectory {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("plcbundle-tools/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpDirectory {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }
}

impl Directory for HttpDirectory {
    fn describe(&self, after: Option<&str>, count: usize) -> String {
        match after {
            Some(a) => format!("GET {}/export?count={count}&after={a}", self.base),
            None => format!("GET {}/export?count={count}", self.base),
        }
    }

    fn page(&mut self, after: Option<&str>, count: usize) -> std::result::Result<Page, Fault> {
        let mut req = self
            .agent
            .get(format!("{}/export", self.base))
            .query("count", count.to_string());
        if let Some(a) = after {
            req = req.query("after", a);
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(
                e @ (ureq::Error::BadUri(_)
                | ureq::Error::Http(_)
                | ureq::Error::RequireHttpsOnly(_)),
            ) => return Err(Fault::Fatal(e.to_string())),
            Err(e) => return Err(Fault::Transient(e.to_string())),
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let date = header("date").and_then(|d| Timestamp::parse_http_date(&d));
        let status = resp.status().as_u16();
        match status {
            200 => match resp.body_mut().with_config().limit(1 << 30).read_to_vec() {
                Ok(body) => Ok(Page { body, date }),
                Err(e) => Err(Fault::Transient(format!(
                    "reading the body failed (cut off?): {e}"
                ))),
            },
            429 => {
                let wait = header("retry-after")
                    .and_then(|v| retry_after(&v, date))
                    .unwrap_or(Duration::from_secs(60));
                Err(Fault::RetryAfter(wait, "429 Too Many Requests".into()))
            }
            500..=599 => Err(Fault::Transient(format!(
                "HTTP {status}{}",
                body_hint(&mut resp)
            ))),
            _ => Err(Fault::Fatal(format!(
                "HTTP {status}{}",
                body_hint(&mut resp)
            ))),
        }
    }
}

fn body_hint(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    match resp.body_mut().with_config().limit(4096).read_to_vec() {
        Ok(b) if !b.is_empty() => format!(": {}", excerpt(&b)),
        _ => String::new(),
    }
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (relative to the
/// server's `Date` when sent, else the local clock).
pub fn retry_after(value: &str, server_now: Option<Timestamp>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = Timestamp::parse_http_date(v)?;
    let now = server_now.unwrap_or_else(Timestamp::now);
    Some(Duration::from_nanos(
        (at.nanos() - now.nanos()).max(0) as u64
    ))
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
                body: lines.join("\n").into_bytes(),
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
