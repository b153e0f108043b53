//! plc-serve facing hostile clients (issue 12, items 7 to 10): running
//! out of file descriptors, clients that never read their answers, a
//! thousand idle connections, requests that never end, endless header
//! lines and huge URLs, non-ASCII request lines, HEAD and other methods.
//! Each case runs the real binary on 127.0.0.1 with short timeouts passed
//! as flags, and checks that another client is still answered within a
//! generous bound and that the server's peak RSS stays under 64 MB.
use crate::common;

use common::other_impls::joined;
use common::run::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The bound within which a client that should be answered must be.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);
/// Peak RSS plc-serve must stay under, in kB.
const RSS_LIMIT_KB: u64 = 64 * 1024;

/// A running plc-serve, killed on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: Option<BufReader<ChildStderr>>,
}

impl Server {
    /// Starts plc-serve on `repo` with `args`, under `ulimit -n` if given.
    fn start(repo: &str, args: &[&str], open_files: Option<u32>) -> Server {
        let mut cmd = Command::new("bash");
        let limit = open_files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        cmd.arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(bin("plc-serve"))
            .args(["--repo", repo, "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|u| u.strip_prefix("http://"))
            .filter(|a| a.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        Server {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    /// Peak resident set size so far, in kB (VmHWM).
    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {status}"))
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "plc-serve exited");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An archive of one bundle (10,000 generated operations), shared by the
/// tests that run at the same time (they only read it) and removed when
/// the last of them drops it.
struct Archive {
    _tmp: TempDir,
    repo: String,
    content: Vec<u8>,
}

fn archive() -> Arc<Archive> {
    static SHARED: Mutex<Weak<Archive>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = slot.upgrade() {
        return a;
    }
    let tmp = TempDir::new("hostile");
    let ops = synth(10_000, 71);
    let repo = tmp.join("A");
    let o = run(
        "plc-seal",
        &["-q", "--repo", &repo, "--origin", "https://plc.directory"],
        &joined(&ops),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let a = Arc::new(Archive {
        _tmp: tmp,
        repo,
        content: joined(&ops),
    });
    *slot = Arc::downgrade(&a);
    a
}

/// One response read off a socket.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` (raw bytes, which should ask for `Connection: close`)
/// on a new connection and reads the whole answer, all within
/// [`ANSWERED_WITHIN`]; panics naming `what` if it is not answered.
fn exchange(addr: &str, request: &[u8], what: &str) -> Answer {
    let deadline = Instant::now() + ANSWERED_WITHIN;
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(request)
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{what}: read: {e} after {} bytes", raw.len()),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not answered within {ANSWERED_WITHIN:?} ({} bytes so far)",
            raw.len()
        );
    }
    parse_answer(&raw).unwrap_or_else(|| panic!("{what}: no HTTP answer in {} bytes", raw.len()))
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    })
}

fn get(addr: &str, path: &str) -> Answer {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        &format!("GET {path}"),
    )
}

/// Another client is served completely: a bundle file and an export page.
fn others_are_served(srv: &Server, repo: &str, when: &str) {
    let a = get(&srv.addr, "/data/1");
    assert_eq!(a.status, 200, "{when}: {}", a.head);
    assert_eq!(
        a.body,
        std::fs::read(Path::new(repo).join("000001.jsonl.zst")).unwrap(),
        "{when}"
    );
    let a = get(&srv.addr, "/export?count=10");
    assert_eq!(a.status, 200, "{when}: {}", a.head);
    assert_eq!(a.body.split(|b| *b == b'\n').count(), 10, "{when}");
}

/// Raises this process's open-files limit to at least `n` (children
/// inherit it); panics if the hard limit does not allow it.
fn raise_open_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur >= n {
        return;
    }
    assert!(
        lim.rlim_max >= n,
        "the hard open-files limit ({}) is below {n}: raise it (ulimit -Hn) to run this test",
        lim.rlim_max
    );
    lim.rlim_cur = n;
    // SAFETY: as above; only the soft limit changes, within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// Opens `n` connections that send nothing. Connections the server has
/// not accepted yet wait in its backlog, which is what an attacker makes
/// happen too.
fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect()
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_accepting() {
    let a = archive();
    let repo = a.repo.clone();
    // 64 descriptors; 150 idle connections are more than it can hold.
    let mut srv = Server::start(&repo, &["--quiet"], Some(64));
    let idle = idle_connections(&srv.addr, 150);
    std::thread::sleep(Duration::from_millis(500));
    others_are_served(
        &srv,
        &repo,
        "while 150 idle connections exceed 64 descriptors",
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    others_are_served(&srv, &repo, "after the idle connections went");
    srv.assert_alive();
}

#[test]
fn a_thousand_idle_connections_do_not_keep_others_out() {
    // The test holds 1,000 sockets; plc-serve runs under the usual limit
    // of 1,024 open files with its default --max-connections (512).
    raise_open_files(2048);
    let a = archive();
    let repo = a.repo.clone();
    let mut srv = Server::start(&repo, &["--quiet"], Some(1024));
    let mut idle = idle_connections(&srv.addr, 500);
    // Half of them start a request and never finish it.
    for s in idle.iter_mut().step_by(2) {
        let _ = s.write_all(b"GET /data/1 HTTP/1.1\r\nHost: x\r\n");
    }
    idle.extend(idle_connections(&srv.addr, 500));
    std::thread::sleep(Duration::from_millis(500));
    others_are_served(&srv, &repo, "while 1,000 connections are idle");
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    others_are_served(&srv, &repo, "after the idle connections went");
    srv.assert_alive();
    let rss = srv.peak_rss_kb();
    assert!(rss < RSS_LIMIT_KB, "peak RSS {rss} kB");
}

#[test]
fn a_client_that_never_reads_its_pipelined_answers_is_dropped_and_stalls_nobody() {
    let a = archive();
    let repo = a.repo.clone();
    let file_len = std::fs::metadata(Path::new(&repo).join("000001.jsonl.zst"))
        .unwrap()
        .len() as usize;
    let mut srv = Server::start(&repo, &["--quiet", "--write-timeout", "2s"], None);
    let mut greedy = TcpStream::connect(&srv.addr).unwrap();
    let pipelined = "GET /data/1 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
    greedy.write_all(pipelined.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    others_are_served(&srv, &repo, "while one client does not read 20 answers");
    // After the write timeout the server has given up on it: it gets far
    // less than the 20 answers, then the end of the connection.
    std::thread::sleep(Duration::from_secs(4));
    greedy
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + ANSWERED_WITHIN;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match greedy.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) if Instant::now() > deadline => break false,
            Err(_) => {}
        }
    };
    assert!(
        ended,
        "the non-reading client was not dropped ({got} bytes)"
    );
    assert!(
        got < 20 * file_len,
        "the non-reading client got all {got} bytes: no write timeout"
    );
    srv.assert_alive();
    let rss = srv.peak_rss_kb();
    assert!(rss < RSS_LIMIT_KB, "peak RSS {rss} kB");
}

#[test]
fn eight_clients_not_reading_a_decompressed_bundle_stall_nobody() {
    let a = archive();
    let repo = a.repo.clone();
    let content = a.content.clone();
    let mut srv = Server::start(&repo, &["--quiet", "--write-timeout", "3s"], None);
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(&srv.addr).unwrap();
            s.write_all(b"GET /jsonl/1 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let a = get(&srv.addr, "/jsonl/1");
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(a.body, content);
    others_are_served(&srv, &repo, "while 8 clients do not read /jsonl/1");
    drop(stalled);
    srv.assert_alive();
    let rss = srv.peak_rss_kb();
    assert!(rss < RSS_LIMIT_KB, "peak RSS {rss} kB");
}

#[test]
fn a_request_that_never_ends_is_dropped() {
    let a = archive();
    let repo = a.repo.clone();
    let mut srv = Server::start(
        &repo,
        &["--quiet", "--header-timeout", "2s", "--idle-timeout", "2s"],
        None,
    );
    // One stops after its request line; one sends a byte of header every
    // 300 ms forever (never idle, but never done).
    let mut silent = TcpStream::connect(&srv.addr).unwrap();
    silent.write_all(b"GET /data/1 HTTP/1.1\r\n").unwrap();
    let mut trickle = TcpStream::connect(&srv.addr).unwrap();
    trickle.write_all(b"GET /data/1 HTTP/1.1\r\nX: ").unwrap();
    let started = Instant::now();
    let mut trickle_closed = false;
    while started.elapsed() < ANSWERED_WITHIN {
        if trickle.write_all(b"a").is_err() {
            trickle_closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        trickle_closed,
        "a request head trickling for {ANSWERED_WITHIN:?} was not dropped"
    );
    silent.set_read_timeout(Some(ANSWERED_WITHIN)).unwrap();
    let mut rest = Vec::new();
    // Closed: end of stream (after an optional 408), or a reset.
    match silent.read_to_end(&mut rest) {
        Ok(_) => assert!(
            !rest.starts_with(b"HTTP/1.1 200"),
            "answered a half request"
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    others_are_served(&srv, &repo, "after two unfinished requests");
    srv.assert_alive();
}

/// Writes `head` then `filler` bytes until the server stops taking them
/// (or `cap` bytes); returns the bytes written and whatever answer it
/// sent.
fn flood(addr: &str, head: &[u8], cap: usize) -> (usize, Option<Answer>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(ANSWERED_WITHIN)).unwrap();
    let mut sent = 0;
    let filler = vec![b'a'; 1 << 16];
    if s.write_all(head).is_ok() {
        sent += head.len();
        while sent < cap {
            match s.write(&filler) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    (sent, parse_answer(&raw))
}

#[test]
fn an_endless_header_line_and_a_huge_url_are_refused_with_bounded_memory() {
    let a = archive();
    let repo = a.repo.clone();
    let mut srv = Server::start(&repo, &["--quiet"], None);
    let cap = 256 << 20;
    // An endless header line.
    let (sent, answer) = flood(&srv.addr, b"GET /data/1 HTTP/1.1\r\nX-Endless: ", cap);
    assert!(
        sent < cap,
        "the server took {sent} bytes of one header line"
    );
    if let Some(a) = answer {
        assert!(
            [400, 413, 431].contains(&a.status),
            "endless header: {}",
            a.head
        );
    }
    // A 16 MiB URL.
    let mut url = b"GET /export?after=".to_vec();
    url.extend(std::iter::repeat_n(b'9', 16 << 20));
    url.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_write_timeout(Some(ANSWERED_WITHIN)).unwrap();
    s.set_read_timeout(Some(ANSWERED_WITHIN)).unwrap();
    let refused_early = s.write_all(&url).is_err();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    match parse_answer(&raw) {
        Some(a) => assert!(
            [400, 414, 431].contains(&a.status),
            "16 MiB URL: {}",
            a.head
        ),
        None => assert!(refused_early || raw.is_empty(), "16 MiB URL: {raw:?}"),
    }
    others_are_served(&srv, &repo, "after an endless header and a 16 MiB URL");
    srv.assert_alive();
    let rss = srv.peak_rss_kb();
    assert!(rss < RSS_LIMIT_KB, "peak RSS {rss} kB");
}

#[test]
fn non_ascii_gets_400_head_gets_the_headers_of_get_other_methods_405() {
    let a = archive();
    let repo = a.repo.clone();
    let srv = Server::start(&repo, &["--quiet"], None);
    for (what, line) in [
        ("a non-ASCII path", &b"GET /data/\xc3\xa9 HTTP/1.1"[..]),
        ("a non-ASCII query", b"GET /export?after=\xff HTTP/1.1"),
        ("invalid UTF-8 in the path", b"GET /\xff\xfe HTTP/1.1"),
        ("a non-ASCII method", b"G\xc3\xa9T /data/1 HTTP/1.1"),
    ] {
        let mut req = line.to_vec();
        req.extend_from_slice(b"\r\nHost: x\r\nConnection: close\r\n\r\n");
        let a = exchange(&srv.addr, &req, what);
        assert_eq!(a.status, 400, "{what}: {}", a.head);
    }
    for path in [
        "/data/1",
        "/export?count=7",
        "/jsonl/1",
        "/status",
        "/index.json",
    ] {
        let g = get(&srv.addr, path);
        assert_eq!(g.status, 200, "GET {path}");
        let h = exchange(
            &srv.addr,
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            &format!("HEAD {path}"),
        );
        assert_eq!(h.status, 200, "HEAD {path}: {}", h.head);
        assert!(h.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            h.header("content-length"),
            Some(g.body.len().to_string().as_str()),
            "HEAD {path}: {}",
            h.head
        );
        assert_eq!(h.header("content-type"), g.header("content-type"), "{path}");
    }
    let h = exchange(
        &srv.addr,
        b"HEAD /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HEAD /nope",
    );
    assert_eq!(h.status, 404);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let a = exchange(
            &srv.addr,
            format!("{method} /export HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            method,
        );
        assert_eq!(a.status, 405, "{method}: {}", a.head);
        let allow = a
            .header("allow")
            .unwrap_or_else(|| panic!("{method}: no Allow"));
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    }
}

#[test]
fn every_request_gets_one_log_line_unless_quiet() {
    let a = archive();
    let repo = a.repo.clone();
    let mut srv = Server::start(&repo, &[], None);
    let len = get(&srv.addr, "/data/1").body.len();
    get(&srv.addr, "/nope?x=1");
    exchange(
        &srv.addr,
        b"DELETE /data/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "DELETE",
    );
    let mut lines = srv.stderr.take().unwrap().lines();
    let mut next = || lines.next().unwrap().unwrap();
    let (a, b, c) = (next(), next(), next());
    assert!(
        a.contains("\"GET /data/1 HTTP/1.1\" 200 ") && a.contains(&format!(" {len} ")),
        "{a}"
    );
    assert!(a.starts_with("127.0.0.1 "), "{a}");
    assert!(b.contains("\"GET /nope?x=1 HTTP/1.1\" 404 "), "{b}");
    assert!(c.contains("\"DELETE /data/1 HTTP/1.1\" 405 "), "{c}");
    drop(srv);

    // --quiet: nothing after the address line.
    let mut srv = Server::start(&repo, &["--quiet"], None);
    get(&srv.addr, "/data/1");
    get(&srv.addr, "/status");
    let _ = srv.child.kill();
    let _ = srv.child.wait();
    let mut rest = String::new();
    srv.stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert_eq!(rest, "", "--quiet still logged");
}
