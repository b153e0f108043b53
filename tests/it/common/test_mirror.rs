//! A test mirror: serves a repository directory over HTTP on 127.0.0.1 the
//! way the Go/Rust `plcbundle server` does (`/index.json` compact,
//! `/data/N` as `application/zstd`) or the way a static host does
//! (`/plc_bundles.json` and `/NNNNNN.jsonl.zst` as stored), with faults on
//! demand: 500s, 429s, cut-off bodies, a tampered bundle, a redirect to
//! another host. Written on plain sockets so that every byte on the wire
//! (a short body, a closed connection) is under the test's control.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Which kind of mirror to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// The Go/Rust server: `/index.json` (compact), `/data/N`.
    Server,
    /// A static host: the repository's files under their own names.
    Static,
}

/// Faults; counters are over bundle-file requests only (the index is
/// always served), 1-based.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The first N bundle requests get 500.
    pub fail_first: u64,
    /// The next N bundle requests (after the 500s) get 429 with
    /// `Retry-After: 1`.
    pub too_many_first: u64,
    /// The next N bundle requests (after those) get half of the body and a
    /// closed connection, though Content-Length promised all of it.
    pub truncate_first: u64,
    /// Every bundle request gets 500 (a mirror that is down).
    pub down: bool,
    /// This bundle is served with one operation's bytes altered and
    /// recompressed: neither its file nor its content match the index.
    pub tampered: Option<u64>,
    /// Bundle requests answer with a redirect to this other host.
    pub redirect_to: Option<String>,
}

struct State {
    faults: Faults,
    bundle_requests: u64,
    requests: Vec<String>,
}

/// A running test mirror; stops when dropped.
pub struct TestMirror {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestMirror {
    /// Serves `repo` in `style` with `faults`.
    pub fn start(repo: PathBuf, style: Style, faults: Faults) -> TestMirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            faults,
            bundle_requests: 0,
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, repo) = (st.clone(), repo.clone());
                std::thread::spawn(move || {
                    let _ = answer(conn, &repo, style, &st);
                });
            }
        });
        TestMirror {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults (and restarts their counters).
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.state.lock().unwrap();
        s.faults = faults;
        s.bundle_requests = 0;
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for TestMirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

fn answer(
    mut conn: TcpStream,
    repo: &std::path::Path,
    style: Style,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = first.split(' ').nth(1).unwrap_or("").to_string();
    state.lock().unwrap().requests.push(path.clone());
    let index_path = match style {
        Style::Server => "/index.json",
        Style::Static => "/plc_bundles.json",
    };
    if path == index_path {
        let bytes = std::fs::read(repo.join("plc_bundles.json"))?;
        let body = match style {
            // The Go/Rust server writes its index compact.
            Style::Server => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                serde_json::to_vec(&v).unwrap()
            }
            Style::Static => bytes,
        };
        respond(
            &mut conn,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            &body,
        );
        return Ok(());
    }
    let number = match style {
        Style::Server => path
            .strip_prefix("/data/")
            .and_then(|d| d.parse::<u64>().ok()),
        Style::Static => path
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix(".jsonl.zst"))
            .filter(|d| d.len() == 6)
            .and_then(|d| d.parse::<u64>().ok()),
    };
    let file = number.and_then(|n| std::fs::read(repo.join(format!("{n:06}.jsonl.zst"))).ok());
    let (Some(n), Some(file)) = (number, file) else {
        respond(
            &mut conn,
            "404 Not Found",
            &[],
            br#"{"message":"not found"}"#,
        );
        return Ok(());
    };
    let (fault, tampered) = {
        let mut s = state.lock().unwrap();
        s.bundle_requests += 1;
        let r = s.bundle_requests;
        let f = &s.faults;
        let fault = if f.down || r <= f.fail_first {
            "500"
        } else if r <= f.fail_first + f.too_many_first {
            "429"
        } else if r <= f.fail_first + f.too_many_first + f.truncate_first {
            "cut"
        } else if f.redirect_to.is_some() {
            "redirect"
        } else {
            ""
        };
        ((fault, f.redirect_to.clone()), f.tampered == Some(n))
    };
    let file = if tampered { tamper(&file) } else { file };
    match fault.0 {
        "500" => respond(
            &mut conn,
            "500 Internal Server Error",
            &[],
            br#"{"message":"boom"}"#,
        ),
        "429" => respond(
            &mut conn,
            "429 Too Many Requests",
            &[("Retry-After", "1".into())],
            br#"{"message":"slow down"}"#,
        ),
        "cut" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/zstd\r\nContent-Length: {}\r\n\r\n",
                file.len()
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(&file[..file.len() / 2])?;
            conn.flush()?;
            conn.shutdown(std::net::Shutdown::Both)?;
        }
        "redirect" => respond(
            &mut conn,
            "302 Found",
            &[("Location", format!("{}{path}", fault.1.unwrap()))],
            b"",
        ),
        _ => respond(
            &mut conn,
            "200 OK",
            &[("Content-Type", "application/zstd".into())],
            &file,
        ),
    }
    Ok(())
}

/// The file with one byte of its content changed (a `did:plc:` DID's
/// first character), recompressed.
fn tamper(file: &[u8]) -> Vec<u8> {
    let mut content = zstd::stream::decode_all(file).unwrap();
    let at = content
        .windows(8)
        .position(|w| w == b"did:plc:")
        .expect("a DID in the bundle")
        + 8;
    content[at] = if content[at] == b'a' { b'b' } else { b'a' };
    zstd::bulk::compress(&content, 3).unwrap()
}
