//! `plc-export` against directories that misbehave on purpose: bodies that
//! never end or inflate without bound, a millisecond that never fills up,
//! retries that must be announced, and redirects to somewhere else.
//!
//! The server here is a few lines over a `TcpListener` on 127.0.0.1: each
//! test hands it a function that writes the whole raw response, so a body
//! of gigabytes is produced lazily while the client reads it and nothing is
//! allocated for it. Memory is asserted from the child's peak RSS as GNU
//! time reports it (`/usr/bin/time -f %M`), never from timing.
use crate::common;

use common::fake_directory::{FakeDirectory, FakeOptions};
use common::run::bin;
use plcbundle::synth::format_ms;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes the response to request number `n` (1-based) for `target`.
type Handler = dyn Fn(u64, &str, &mut TcpStream) -> std::io::Result<()> + Send + Sync;

/// A one-purpose HTTP server; stops accepting when dropped.
struct Hostile {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    fn start(
        handler: impl Fn(u64, &str, &mut TcpStream) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (n, st) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let h = Arc::clone(&handler);
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    // A client that stops reading is gone within seconds.
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                    if let Some(target) = request_target(&mut stream) {
                        let _ = h(k, &target, &mut stream);
                    }
                });
            }
        });
        Hostile {
            addr,
            requests,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Reads a request head and returns its target (`/export?...`).
fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 65_536 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    Some(text.split(' ').nth(1)?.to_string())
}

/// Writes `HTTP/1.1 200` with `headers`, then the chunked body `next`
/// produces, piece by piece, until it returns `None`.
fn chunked(
    stream: &mut TcpStream,
    headers: &str,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> std::io::Result<()> {
    stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/jsonlines\r\n{headers}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )?;
    while let Some(piece) = next() {
        if piece.is_empty() {
            continue;
        }
        stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
        stream.write_all(&piece)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")
}

/// `total` bytes from `fill`, in pieces of at most 1 MiB, made lazily.
fn lazily(total: u64, fill: impl Fn(&mut Vec<u8>, usize)) -> impl FnMut() -> Option<Vec<u8>> {
    let mut left = total;
    move || {
        if left == 0 {
            return None;
        }
        let n = left.min(1 << 20) as usize;
        left -= n as u64;
        let mut v = Vec::with_capacity(n);
        fill(&mut v, n);
        Some(v)
    }
}

/// An operation line at `ms` whose cid is `cid` and whose size is about
/// `pad` bytes more than a small operation.
fn op_line(ms: i64, cid: &str, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","operation":{{"type":"plc_tombstone","prev":"{}","sig":"y"}},"cid":"bafyrei{cid}","nullified":false,"createdAt":"{}"}}"#,
        "p".repeat(pad),
        format_ms(ms)
    )
    .into_bytes()
}

/// What a measured run did.
struct Measured {
    code: Option<i32>,
    stderr: String,
    stdout: Vec<u8>,
    /// Peak resident set size of the process, in KiB (GNU time's `%M`).
    max_rss_kib: i64,
}

/// Runs `plc-export` with `args` under GNU time, keeping at most `keep`
/// bytes of stdout (the rest is read and dropped), and returns its peak
/// RSS as GNU time reports it for that one child (`%M`). GNU time is a
/// small process, so unlike `wait4` on a child of this large test process
/// the figure is plc-export's own, and unlike sampling `/proc/PID/status`
/// it cannot miss a process that ends within a few milliseconds. Killed,
/// and the test failed, after `limit`.
fn run_measured(args: &[&str], keep: usize, limit: Duration) -> Measured {
    let rss_file = std::env::temp_dir().join(format!(
        "plc-hostile-rss-{}-{}",
        std::process::id(),
        RSS_FILES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(bin("plc-export"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU time at /usr/bin/time (apt-get install time)");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = so.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = keep.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buf[..room]);
        }
        kept
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // Kill plc-export itself (GNU time's child), then GNU time.
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "plc-export {args:?} still running after {limit:?}; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = std::fs::remove_file(&rss_file);
    let peak: i64 = rss
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("GNU time wrote no peak RSS: {rss:?}"));
    Measured {
        code: status.code(),
        stderr: err.join().unwrap(),
        stdout: out.join().unwrap(),
        max_rss_kib: peak,
    }
}

/// Names the GNU time output files of concurrent tests apart.
static RSS_FILES: AtomicU64 = AtomicU64::new(0);

const RSS_LIMIT_KIB: i64 = 64 * 1024;

/// The usual flags for a hostile case.
fn flags(url: &str) -> Vec<&str> {
    vec![
        "--url",
        url,
        "--rate",
        "0",
        "--lag",
        "0s",
        "--backoff",
        "10ms",
        "--retries",
        "1",
    ]
}

/// Asserts a clean failure: exit 2, one `plc-export: ...` line naming the
/// request and containing `what`, and a peak RSS under 64 MB.
fn assert_refused(m: &Measured, what: &str) {
    eprintln!("plc-export peak RSS: {} KiB", m.max_rss_kib);
    assert_eq!(m.code, Some(2), "stderr: {}", m.stderr);
    assert!(
        m.stderr.contains(what),
        "expected {what:?} in: {}",
        m.stderr
    );
    assert!(m.stderr.contains("/export"), "{}", m.stderr);
    assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
    assert!(
        m.max_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB (limit {RSS_LIMIT_KIB}); stderr: {}",
        m.max_rss_kib,
        m.stderr
    );
}

/// 1 GiB of newlines, gzip-compressed (about 1 MB), made once.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let newlines = vec![b'\n'; 1 << 20];
        for _ in 0..1024 {
            gz.write_all(&newlines).unwrap();
        }
        gz.finish().unwrap()
    })
}

#[test]
fn a_gzip_body_inflating_to_a_gibibyte_of_newlines_is_refused_in_bounded_memory() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    let server = Hostile::start(move |_, _, s| {
        s.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/jsonlines\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bomb.len()
            )
            .as_bytes(),
        )?;
        s.write_all(bomb)
    });
    let url = server.url();
    let m = run_measured(&flags(&url), 0, Duration::from_secs(120));
    assert_refused(&m, "line 1");
    assert!(m.stdout.is_empty());
}

#[test]
fn two_hundred_mebibytes_of_newlines_are_refused_in_bounded_memory() {
    let server =
        Hostile::start(|_, _, s| chunked(s, "", lazily(200 << 20, |v, n| v.resize(n, b'\n'))));
    let url = server.url();
    let m = run_measured(&flags(&url), 0, Duration::from_secs(120));
    assert_refused(&m, "line 1");
}

#[test]
fn a_900_mb_page_of_one_line_is_refused_at_the_line_limit() {
    let server = Hostile::start(|_, _, s| {
        let mut first = true;
        let mut rest = lazily(900_000_000, |v, n| v.resize(n, b'a'));
        chunked(s, "", move || {
            if std::mem::take(&mut first) {
                return Some(br#"{"did":"did:plc:"#.to_vec());
            }
            rest()
        })
    });
    let url = server.url();
    let m = run_measured(&flags(&url), 0, Duration::from_secs(120));
    assert_refused(&m, "longer than 1048576 bytes");
}

#[test]
fn a_two_gib_body_of_operations_stops_at_the_page_size_asked_for() {
    // Operations of about 64 KiB in distinct milliseconds, 2 GiB of them in
    // one page, produced only as fast as they are read.
    let base = 1_700_000_000_000;
    let server = Hostile::start(move |_, _, s| {
        let mut i = 0i64;
        let mut sent = 0u64;
        chunked(s, "", move || {
            if sent >= 2 << 30 {
                return None;
            }
            let mut line = op_line(base + i, &format!("{i:010}"), 64 << 10);
            if i > 0 {
                line.insert(0, b'\n');
            }
            i += 1;
            sent += line.len() as u64;
            Some(line)
        })
    });
    let url = server.url();
    let mut args = flags(&url);
    args.extend(["--count", "200"]);
    let m = run_measured(&args, 64 << 20, Duration::from_secs(180));
    assert_refused(&m, "more than the 200 operations asked for");
    // What was written is whole operations, in order, and no more than asked.
    let lines = m
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(lines <= 200, "{lines} lines written");
    assert!(m.stdout.is_empty() || m.stdout.ends_with(b"\n"));
    assert_eq!(server.requests(), 1, "a page too long is not retried");
}

#[test]
fn a_millisecond_that_never_stops_filling_is_an_error_after_a_bounded_wait() {
    // Every request is answered with a full page of operations in one
    // millisecond, each time with CIDs never sent before.
    let t = 1_700_000_000_000;
    let next = Arc::new(AtomicU64::new(0));
    let server = Hostile::start(move |_, target, s| {
        let count: u64 = target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("count="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1000)
            .min(1000);
        let mut k = 0;
        let next = Arc::clone(&next);
        chunked(s, "", move || {
            if k == count {
                return None;
            }
            let n = next.fetch_add(1, Ordering::SeqCst);
            let mut line = op_line(t, &format!("{n:012}"), 0);
            if k > 0 {
                line.insert(0, b'\n');
            }
            k += 1;
            Some(line)
        })
    });
    let url = server.url();
    let m = run_measured(&flags(&url), 1 << 20, Duration::from_secs(60));
    assert_refused(&m, "share the millisecond");
    assert!(m.stderr.contains(&format_ms(t)), "{}", m.stderr);
    assert!(server.requests() <= 3, "{} requests", server.requests());
}

#[test]
fn a_legitimate_page_larger_than_the_memory_limit_streams_through() {
    // 100 operations of about 900 KiB (under the 1 MiB line limit): a page
    // of 90 MB, more than the 64 MB the process may use.
    let base = 1_700_000_000_000;
    let lines: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..100)
            .map(|i| op_line(base + i, &format!("{i:04}"), 900 << 10))
            .collect(),
    );
    let served = Arc::clone(&lines);
    let server = Hostile::start(move |_, target, s| {
        // Strictly after `after`, like the directory.
        let after = target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("after="))
            .map(|a| {
                let a = a.replace("%3A", ":").replace("%3a", ":");
                common::fake_directory::parse_rfc3339(&a)
                    .expect("after is a timestamp")
                    .0
            });
        let lines = Arc::clone(&served);
        let mut i = after.map_or(0, |a| (a + 1 - base).clamp(0, 100) as usize);
        let first = i;
        chunked(s, "", move || {
            if i >= lines.len() {
                return None;
            }
            let mut l = lines[i].clone();
            if i > first {
                l.insert(0, b'\n');
            }
            i += 1;
            Some(l)
        })
    });
    let url = server.url();
    let mut args = flags(&url);
    args.extend(["--count", "100"]);
    let m = run_measured(&args, 200 << 20, Duration::from_secs(180));
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let mut want = Vec::new();
    for l in lines.iter() {
        want.extend_from_slice(l);
        want.push(b'\n');
    }
    assert!(
        m.stdout == want,
        "output differs from the 100 operations served"
    );
    assert!(
        m.max_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB for a 90 MB page",
        m.max_rss_kib
    );
}

/// Starts `plc-export` and waits (up to 30 s) for a stderr line that
/// `wanted` accepts; kills it and returns that line.
fn first_stderr_line(args: &[&str], wanted: impl Fn(&str) -> bool) -> String {
    let mut child = Command::new(bin("plc-export"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let se = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(se).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if wanted(&line) => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| panic!("no such line on stderr within 30 s; saw: {seen:?}"))
}

#[test]
fn every_retry_says_what_failed_and_when_it_tries_again() {
    let dir = FakeDirectory::start(
        Vec::new(),
        FakeOptions {
            down: true,
            ..Default::default()
        },
    );
    let url = dir.url();
    let o = common::run::run(
        "plc-export",
        &[
            "--url",
            &url,
            "--rate",
            "0",
            "--backoff",
            "10ms",
            "--retries",
            "2",
        ],
        b"",
    );
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    for k in 1..=2 {
        let l = lines
            .iter()
            .find(|l| l.contains(&format!("retry {k} of 2")))
            .unwrap_or_else(|| panic!("no notice of retry {k}: {}", o.stderr));
        assert!(l.starts_with("plc-export: GET "), "{l}");
        assert!(l.contains(&url) && l.contains("503"), "{l}");
        assert!(l.contains(" in "), "{l}");
    }
    assert!(o.stderr.contains("giving up"), "{}", o.stderr);
}

#[test]
fn a_long_retry_after_is_capped_and_announced() {
    // 429 with Retry-After: 600 on every request.
    let dir = FakeDirectory::start(
        Vec::new(),
        FakeOptions {
            too_many_every: Some(1),
            retry_after_secs: 600,
            ..Default::default()
        },
    );
    let url = dir.url();
    let line = first_stderr_line(&["--url", &url, "--rate", "0", "--retries", "8"], |l| {
        l.contains("retry 1 of 8")
    });
    assert!(line.contains("429"), "{line}");
    assert!(line.contains("in 5m 0s"), "capped at 5 minutes: {line}");
    assert!(line.contains("Retry-After"), "{line}");
}

#[test]
fn an_unreachable_directory_is_reported_at_the_first_failure() {
    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let line = first_stderr_line(
        &[
            "--url",
            &url,
            "--rate",
            "0",
            "--retries",
            "5",
            "--backoff",
            "60s",
        ],
        |l| l.starts_with("plc-export: "),
    );
    assert!(line.contains(&url), "{line}");
    assert!(line.contains("retry 1 of 5 in 1m 0s"), "{line}");
}

#[test]
fn redirects_are_refused_and_named() {
    // The target would answer perfectly well: following it must not happen.
    let elsewhere = FakeDirectory::start(
        vec![common::fake_directory::Op::new(
            op_line(1_700_000_000_000, "x", 0),
            1_700_000_000_000,
        )],
        FakeOptions::default(),
    );
    let other_port = elsewhere.addr().port();
    for location in [
        format!("http://localhost:{other_port}/export?count=1000"),
        format!("{}/export?count=1000", elsewhere.url()),
        format!("https://127.0.0.1:{other_port}/export?count=1000"),
        "/export?count=5".to_string(),
    ] {
        let loc = location.clone();
        let server = Hostile::start(move |_, _, s| {
            s.write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {loc}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
        });
        let url = server.url();
        let m = run_measured(&flags(&url), 1 << 20, Duration::from_secs(60));
        assert_eq!(m.code, Some(2), "{location}: {}", m.stderr);
        assert!(m.stderr.contains("redirect"), "{location}: {}", m.stderr);
        assert!(m.stderr.contains(&location), "{location}: {}", m.stderr);
        assert!(m.stdout.is_empty(), "{location}");
        assert_eq!(server.requests(), 1, "{location}: not retried");
    }
    assert_eq!(elsewhere.requests(), 0, "a redirect was followed");
}
