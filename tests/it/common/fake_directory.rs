//! A local fake PLC directory serving `GET /export` over plain HTTP/1.1.
//!
//! It listens on `127.0.0.1` on a random port and answers like the official
//! server (see `shared/docs/plc-facts.md`): timestamp-mode paging with
//! `after` exclusive (or inclusive, as an option), `count` defaulting to 1000
//! and capped, ties served in the order given, a chunked
//! `application/jsonlines` body of lines joined by `\n` with no trailing
//! newline, and JSON `{"message":...}` errors. Faults (500, 429 with
//! `Retry-After`, truncated bodies, 503 when down) are injected by request
//! number. Every response carries `Connection: close`, and the connection is
//! closed after it. It can also misbehave the way live and broken servers
//! do: gain operations right after answering a given page
//! ([`FakeDirectory::grow_after_page`]), or ignore `after`
//! ([`FakeOptions::ignore_after`]).
//!
//! Operations are [`Op`]s (exact line bytes plus `createdAt` in Unix
//! milliseconds); build them with [`Op::new`] or from
//! `plcbundle::synth::SynthOp` via `From` or [`ops_from`]. They must be given
//! in the directory's order (createdAt non-decreasing, ties already in cid
//! order); the server serves them in exactly that order.

use plcbundle::synth::SynthOp;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One operation as served: the exact line bytes (no newline) and its
/// createdAt in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Exact JSON line, without a trailing newline.
    pub line: Vec<u8>,
    /// createdAt as Unix milliseconds; used for `after` filtering.
    pub created_ms: i64,
}

impl Op {
    /// Builds an operation from its line bytes and createdAt millis.
    pub fn new(line: impl Into<Vec<u8>>, created_ms: i64) -> Op {
        Op {
            line: line.into(),
            created_ms,
        }
    }
}

impl From<SynthOp> for Op {
    fn from(op: SynthOp) -> Op {
        Op::new(op.line, op.created_ms)
    }
}

impl From<&SynthOp> for Op {
    fn from(op: &SynthOp) -> Op {
        Op::new(op.line.clone(), op.created_ms)
    }
}

/// Converts generated operations into servable ones.
pub fn ops_from(ops: &[SynthOp]) -> Vec<Op> {
    ops.iter().map(Op::from).collect()
}

/// Behaviour of the fake directory. Fault counters use the 1-based number of
/// the `/export` request; when several apply, the first of down (503),
/// `fail_every` (500), `too_many_every` (429), a 400 for bad parameters,
/// `truncate_every` wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOptions {
    /// Treat `after` as inclusive (`>=`) instead of the official strict `>`.
    pub inclusive_after: bool,
    /// Cap on `count` (default 1000, like the official server).
    pub max_count: usize,
    /// Every Nth request gets 500 `{"message":...}`.
    pub fail_every: Option<u64>,
    /// Every Nth request gets 429 with `Retry-After: retry_after_secs`.
    pub too_many_every: Option<u64>,
    /// Value of the `Retry-After` header on 429 responses (seconds).
    pub retry_after_secs: u64,
    /// Every Nth request: the body is cut in the middle of a line and the
    /// connection closed (chunked: before the terminating chunk;
    /// Content-Length: short of the promised length).
    pub truncate_every: Option<u64>,
    /// Every request gets 503.
    pub down: bool,
    /// Requests after this many get 503 (the directory goes down and
    /// stays down).
    pub down_after: Option<u64>,
    /// If set, the `Date` header carries this time (Unix millis) instead of
    /// the real clock.
    pub date_ms: Option<i64>,
    /// Send 200 bodies with chunked transfer encoding (default, like the
    /// official server); `false` sends `Content-Length` instead.
    pub chunked: bool,
    /// Ignore `after` and always serve from the first operation (a broken
    /// server or a proxy that drops the query string).
    pub ignore_after: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            inclusive_after: false,
            max_count: 1000,
            fail_every: None,
            too_many_every: None,
            retry_after_secs: 1,
            truncate_every: None,
            down: false,
            down_after: None,
            date_ms: None,
            chunked: true,
            ignore_after: false,
        }
    }
}

struct State {
    ops: Vec<Op>,
    /// Only `ops[..visible]` are served (clamped to `ops.len()`).
    visible: usize,
    opts: FakeOptions,
    requests: u64,
    /// Operations appended right after a 200 page made of exactly these
    /// lines is answered (once): a live directory gaining operations
    /// between two requests.
    grow: Option<(Vec<Vec<u8>>, Vec<Op>)>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler thread must not wedge the test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake directory; stops when dropped.
pub struct FakeDirectory {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

fn check_order(ops: &[Op], prev: Option<i64>) {
    let mut last = prev;
    for (i, op) in ops.iter().enumerate() {
        if let Some(l) = last {
            assert!(
                op.created_ms >= l,
                "fake directory: op {i} goes back in time ({} < {l})",
                op.created_ms
            );
        }
        last = Some(op.created_ms);
    }
}

impl FakeDirectory {
    /// Starts serving `ops` (createdAt must be non-decreasing) on
    /// `127.0.0.1` with a random port.
    pub fn start(ops: Vec<Op>, opts: FakeOptions) -> FakeDirectory {
        check_order(&ops, None);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ops,
                visible: usize::MAX,
                opts,
                requests: 0,
                grow: None,
            }),
            stop: AtomicBool::new(false),
        });
        let sh = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("fake-plc-accept".into())
            .spawn(move || accept_loop(listener, sh))
            .expect("spawn accept thread");
        FakeDirectory {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves only the first `n` operations (the directory "grows" when this
    /// is raised). `usize::MAX`, the default, serves all, including pushed
    /// ones.
    pub fn set_visible(&self, n: usize) {
        self.shared.lock().visible = n;
    }

    /// Appends operations at the end (their createdAt must not precede the
    /// last one's). They are served only if within the visible count.
    pub fn push(&self, more: Vec<Op>) {
        let mut st = self.shared.lock();
        check_order(&more, st.ops.last().map(|o| o.created_ms));
        st.ops.extend(more);
    }

    /// Once a 200 page made of exactly `page` (in order) has been
    /// answered, appends `more` (as [`FakeDirectory::push`]): the next
    /// request sees them, as on a live directory where operations arrive
    /// between two requests.
    pub fn grow_after_page(&self, page: &[Op], more: Vec<Op>) {
        let mut st = self.shared.lock();
        let lines = page.iter().map(|o| o.line.clone()).collect();
        st.grow = Some((lines, more));
    }

    /// Number of `/export` requests received so far (any outcome).
    pub fn requests(&self) -> u64 {
        self.shared.lock().requests
    }

    /// Replaces the options; the request counter keeps counting.
    pub fn set_options(&self, opts: FakeOptions) {
        self.shared.lock().opts = opts;
    }
}

impl Drop for FakeDirectory {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let sh = Arc::clone(&shared);
        // Connection threads end on their own: one request per connection,
        // bounded by socket timeouts.
        let _ = std::thread::Builder::new()
            .name("fake-plc-conn".into())
            .spawn(move || handle_connection(stream, &sh));
    }
}

/// Reads the request head (up to the blank line). None on EOF, timeout or an
/// oversized head.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Some(buf);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

enum Reply {
    /// A JSON error (or 404/405) with Content-Length.
    Error {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// 200 with the body; `cut` is Some(len) to truncate after len bytes.
    Ok { body: Vec<u8>, cut: Option<usize> },
}

fn handle_connection(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let head = String::from_utf8_lossy(&head);
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let (reply, opts) = if path != "/export" {
        let opts = shared.lock().opts.clone();
        let reply = Reply::Error {
            status: 404,
            message: format!("not found: {path}"),
            retry_after: None,
        };
        (reply, opts)
    } else {
        let mut st = shared.lock();
        st.requests += 1;
        let n = st.requests;
        let opts = st.opts.clone();
        let reply = if method != "GET" {
            error(405, "method not allowed")
        } else {
            export(&st, n, query)
        };
        grow_if_served(&mut st, &reply);
        (reply, opts)
    };
    let date = imf_fixdate(opts.date_ms.unwrap_or_else(now_ms));
    let _ = write_reply(&mut stream, reply, &date, opts.chunked);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Applies [`FakeDirectory::grow_after_page`] when `reply` is the page it
/// waits for.
fn grow_if_served(st: &mut State, reply: &Reply) {
    let Reply::Ok { body, cut: None } = reply else {
        return;
    };
    let matches = st.grow.as_ref().is_some_and(|(page, _)| {
        let served: Vec<&[u8]> = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').collect()
        };
        served.len() == page.len() && served.iter().zip(page).all(|(a, b)| *a == b.as_slice())
    });
    if matches {
        let (_, more) = st.grow.take().expect("checked above");
        check_order(&more, st.ops.last().map(|o| o.created_ms));
        st.ops.extend(more);
    }
}

fn error(status: u16, message: &str) -> Reply {
    Reply::Error {
        status,
        message: message.to_string(),
        retry_after: None,
    }
}

fn hits(every: Option<u64>, n: u64) -> bool {
    matches!(every, Some(k) if k > 0 && n.is_multiple_of(k))
}

/// Decides the reply to `/export` request number `n` (1-based).
fn export(st: &State, n: u64, query: &str) -> Reply {
    let opts = &st.opts;
    if opts.down || opts.down_after.is_some_and(|k| n > k) {
        return error(503, "Service Unavailable");
    }
    if hits(opts.fail_every, n) {
        return error(500, "Internal Server Error");
    }
    if hits(opts.too_many_every, n) {
        return Reply::Error {
            status: 429,
            message: "Too Many Requests".into(),
            retry_after: Some(opts.retry_after_secs),
        };
    }
    let mut count_param = None;
    let mut after_param = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match percent_decode(k).as_str() {
            "count" if count_param.is_none() => count_param = Some(v),
            "after" if after_param.is_none() => after_param = Some(v),
            _ => {}
        }
    }
    let count = match count_param {
        None => 1000,
        Some(c) => match c.parse::<i64>() {
            Ok(c) if c > 0 => usize::try_from(c).unwrap_or(usize::MAX),
            Ok(_) => return error(400, "count must be a positive integer"),
            Err(_) => return error(400, "count must be an integer"),
        },
    }
    .min(opts.max_count);
    let visible = &st.ops[..st.visible.min(st.ops.len())];
    // An empty `after` is treated like an absent one (as a falsy JS value).
    let start = match after_param.as_deref() {
        None | Some("") => 0,
        Some(_) if opts.ignore_after => 0,
        Some(a) if a.bytes().all(|b| b.is_ascii_digit()) => {
            return error(400, "sequence mode (numeric after) is not simulated");
        }
        Some(a) => match parse_rfc3339(a) {
            None => return error(400, &format!("invalid after: {a}")),
            Some((floor, exact)) => {
                if opts.inclusive_after {
                    // created >= after: with a sub-millisecond remainder the
                    // first qualifying millisecond is floor + 1.
                    let ceil = if exact { floor } else { floor + 1 };
                    visible.partition_point(|o| o.created_ms < ceil)
                } else {
                    visible.partition_point(|o| o.created_ms <= floor)
                }
            }
        },
    };
    let page = &visible[start..(start.saturating_add(count)).min(visible.len())];
    let mut body = Vec::with_capacity(page.iter().map(|o| o.line.len() + 1).sum());
    let mut line_starts = Vec::with_capacity(page.len());
    for (i, op) in page.iter().enumerate() {
        if i > 0 {
            body.push(b'\n');
        }
        line_starts.push(body.len());
        body.extend_from_slice(&op.line);
    }
    let cut = hits(opts.truncate_every, n).then(|| {
        // Middle of the middle line.
        if page.is_empty() {
            0
        } else {
            let k = page.len() / 2;
            line_starts[k] + page[k].line.len() / 2
        }
    });
    Reply::Ok { body, cut }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn json_message(message: &str) -> String {
    let mut s = String::from("{\"message\":\"");
    for c in message.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\"}");
    s
}

const CHUNK: usize = 8192;

fn write_reply(
    stream: &mut TcpStream,
    reply: Reply,
    date: &str,
    chunked: bool,
) -> std::io::Result<()> {
    match reply {
        Reply::Error {
            status,
            message,
            retry_after,
        } => {
            let body = json_message(&message);
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nDate: {date}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(status),
                body.len()
            );
            if let Some(secs) = retry_after {
                head.push_str(&format!("Retry-After: {secs}\r\n"));
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            out.extend_from_slice(body.as_bytes());
            stream.write_all(&out)
        }
        Reply::Ok { body, cut } => {
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_string()
            } else {
                format!("Content-Length: {}", body.len())
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/jsonlines\r\n{framing}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            let sent = &body[..cut.unwrap_or(body.len())];
            if !chunked {
                return stream.write_all(sent);
            }
            let mut out = Vec::with_capacity(sent.len() + sent.len() / CHUNK * 8 + 16);
            for chunk in sent.chunks(CHUNK) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            if cut.is_none() {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            stream.write_all(&out)
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (year, month, day) for days since 1970-01-01 (Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for Unix millis.
pub fn imf_fixdate(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days + 4).rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.fraction)?Z` into (Unix millis rounded
/// down, whether the value is exactly that millisecond).
pub fn parse_rfc3339(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let (mut ms, mut exact) = (0i64, true);
    match &b[19..b.len() - 1] {
        [] => {}
        [b'.', frac @ ..] if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
            for (i, &c) in frac.iter().enumerate() {
                let digit = i64::from(c - b'0');
                if i < 3 {
                    ms = ms * 10 + digit;
                } else if digit != 0 {
                    exact = false;
                }
            }
            for _ in frac.len()..3 {
                ms *= 10;
            }
        }
        _ => return None,
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[mo as usize - 1] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some((
        ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms,
        exact,
    ))
}
