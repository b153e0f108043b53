//! `plc-serve`: a read-only HTTP mirror of a repository, so that one
//! archive can feed another through the same pipeline.
//!
//! `/export` answers exactly like the official directory's timestamp mode
//! (operations strictly after `after`, in archive order, at most 1000, lines
//! joined by `\n` without a trailing one), served from the sealed bundles:
//! the start is found by a binary search over the index's end times and
//! then over the bundle's lines, never by scanning the archive. The index is
//! re-read whenever the file changes, so bundles sealed while the server
//! runs become visible at once. Paths are matched exactly and files are
//! only ever opened by bundle number, so no request can reach a file
//! outside the repository. Responses of known length carry Content-Length
//! and are never chunked (tiny_http chunks anything over 32 KB by default),
//! so a client can tell a cut-off body from a complete one.

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, BundleEntry, INDEX_FILE};
use crate::line::parse_op;
use crate::time::Timestamp;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tiny_http::{Header, Request, Response, StatusCode};

/// The most operations one `/export` response holds (the directory's cap).
pub const MAX_COUNT: usize = 1000;
/// Decompressed bundles kept in memory for `/export`.
const CACHED_BUNDLES: usize = 4;

/// What `plc-serve` is asked to do.
pub struct ServeConfig {
    /// The repository to serve.
    pub repo: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Worker threads answering requests.
    pub threads: usize,
}

/// A bound server; [`MirrorServer::run`] answers requests until the process ends.
pub struct MirrorServer {
    http: Arc<tiny_http::Server>,
    state: Arc<State>,
    threads: usize,
}

struct State {
    repo: PathBuf,
    index: Mutex<Option<(Stamp, Arc<Loaded>)>>,
    cache: Mutex<Vec<(u64, String, Arc<Bundle>)>>,
}

/// Identifies one version of the index file (it is replaced by rename, so
/// a new version has a new inode).
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

struct Loaded {
    raw: Vec<u8>,
    /// (bundle number, entry, end time) per bundle, in order.
    bundles: Vec<(u64, BundleEntry, Timestamp)>,
}

struct Bundle {
    content: Vec<u8>,
    /// (start, end) byte range of each line. A line is parsed only when
    /// the binary search for a request's start looks at it (about 14 per
    /// request), not all 10,000 when the bundle is loaded: the client
    /// checks every line it receives anyway.
    lines: Vec<(usize, usize)>,
}

/// An `/export` body: byte ranges of bundles, joined by `\n`.
#[derive(Default)]
struct Page {
    ranges: Vec<(Arc<Bundle>, usize, usize)>,
}

impl Page {
    /// The body's bytes, in order, without copying them.
    fn pieces(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2);
        for (i, (b, s, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                out.push(&b"\n"[..]);
            }
            out.push(&b.content[*s..*e]);
        }
        out
    }
}

impl Bundle {
    /// The createdAt of line `i`.
    fn time(&self, i: usize) -> std::result::Result<Timestamp, String> {
        let (s, e) = self.lines[i];
        parse_op(&self.content[s..e])
            .map(|op| op.time)
            .map_err(|r| format!("line {}: {r}", i + 1))
    }

    /// The index of the first line created strictly after `after`
    /// (lines are in time order in a sealed bundle).
    fn first_after(&self, after: Timestamp) -> std::result::Result<usize, String> {
        let (mut lo, mut hi) = (0, self.lines.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid)? <= after {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

impl MirrorServer {
    /// Checks the repository and binds the listening socket.
    pub fn bind(cfg: &ServeConfig) -> Result<MirrorServer> {
        let state = Arc::new(State {
            repo: cfg.repo.clone(),
            index: Mutex::new(None),
            cache: Mutex::new(Vec::new()),
        });
        state.index()?;
        let listener = std::net::TcpListener::bind(&cfg.listen)
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?;
        no_delay(&listener);
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?;
        Ok(MirrorServer {
            http: Arc::new(http),
            state,
            threads: cfg.threads.max(1),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.http.server_addr().to_ip()
    }

    /// Answers requests on `threads` workers; returns when the server is
    /// unblocked or its socket fails.
    pub fn run(&self) {
        std::thread::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(|| {
                    while let Ok(rq) = self.http.recv() {
                        // A client that went away mid-response only ends
                        // its own request.
                        let _ = self.state.answer(rq);
                    }
                });
            }
        });
    }

    /// Makes [`MirrorServer::run`] return.
    pub fn stop(&self) {
        for _ in 0..self.threads {
            self.http.unblock();
        }
    }
}

/// Turns Nagle's algorithm off for the connections `listener` accepts
/// (Linux copies TCP_NODELAY from the listening socket). The HTTP server
/// writes a response in 8 KB pieces; with Nagle on, a piece can wait for
/// the client's delayed ACK, about 40 ms, several times per response.
fn no_delay(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the
    // size passed. A failure only costs speed, so it is ignored.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Sends a 200 response whose body is `pieces` one after the other, each
/// in one write. tiny_http copies a body through an 8 KB buffer, one
/// system call (and, with TCP_NODELAY, one TCP segment) per 8 KB: an
/// `/export` page of 1000 operations took about 85 of them, plus a copy
/// into the body. Here tiny_http still writes the status line and headers
/// (Date, Server, Content-Length, keep-alive handling), and the pieces
/// follow straight from where they lie in memory.
fn respond_pieces(rq: Request, content_type: &str, pieces: &[&[u8]]) -> std::io::Result<()> {
    use std::io::Write;
    let len = pieces.iter().map(|p| p.len()).sum();
    let head = Response::new(
        StatusCode(200),
        vec![header("Content-Type", content_type)],
        std::io::empty(),
        Some(len),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    let mut bytes = Vec::with_capacity(256);
    // `true`: the body is not printed here (only GET is served).
    head.raw_print(
        &mut bytes,
        rq.http_version().clone(),
        rq.headers(),
        true,
        None,
    )?;
    let mut w = rq.into_writer();
    w.write_all(&bytes)?;
    for p in pieces {
        w.write_all(p)?;
    }
    w.flush()
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn json_error(status: u16, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::from_data(body)
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", "application/json"))
}

impl State {
    /// The current index, re-read when the file changed.
    fn index(&self) -> Result<Arc<Loaded>> {
        let path = self.repo.join(INDEX_FILE);
        let meta = std::fs::metadata(&path).ctx(|| format!("reading {}", path.display()))?;
        let stamp = Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        };
        let mut slot = self.index.lock().expect("index lock");
        if let Some((s, loaded)) = slot.as_ref() {
            if *s == stamp {
                return Ok(loaded.clone());
            }
        }
        let (raw, idx) = crate::repo::read_index_file(&path).map(|(r, p)| (r, p.index))?;
        let mut bundles = Vec::with_capacity(idx.bundles.len());
        for b in &idx.bundles {
            let end = Timestamp::parse(&b.end_time).ok_or_else(|| {
                Error::Archive(format!(
                    "bundle {}: end_time is not a timestamp",
                    b.bundle_number
                ))
            })?;
            bundles.push((b.bundle_number, b.clone(), end));
        }
        let loaded = Arc::new(Loaded { raw, bundles });
        *slot = Some((stamp, loaded.clone()));
        Ok(loaded)
    }

    fn bundle(&self, number: u64, entry: &BundleEntry) -> Result<Arc<Bundle>> {
        let content_hash = &entry.content_hash[..];
        {
            let cache = self.cache.lock().expect("cache lock");
            if let Some((_, _, b)) = cache
                .iter()
                .find(|(n, h, _)| *n == number && h == content_hash)
            {
                return Ok(b.clone());
            }
        }
        let content = crate::repo::read_bundle(&self.repo, entry)?;
        let mut lines = Vec::with_capacity(10_000);
        let body = content.strip_suffix(b"\n").unwrap_or(&content);
        let base = body.as_ptr() as usize;
        for line in crate::line::split_lines(body).filter(|l| !l.is_empty()) {
            let start = line.as_ptr() as usize - base;
            lines.push((start, start + line.len()));
        }
        let bundle = Arc::new(Bundle { content, lines });
        let mut cache = self.cache.lock().expect("cache lock");
        cache.retain(|(n, _, _)| *n != number);
        if cache.len() >= CACHED_BUNDLES {
            cache.remove(0);
        }
        cache.push((number, content_hash.to_string(), bundle.clone()));
        Ok(bundle)
    }

    fn answer(&self, rq: Request) -> std::io::Result<()> {
        let url = rq.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        if *rq.method() != tiny_http::Method::Get {
            return rq.respond(json_error(404, "not found (only GET is served)"));
        }
        let index = match self.index() {
            Ok(i) => i,
            Err(e) => return rq.respond(json_error(500, &e.to_string())),
        };
        match path {
            "/export" => match self.export(&index, query) {
                Ok(page) => respond_pieces(rq, "application/jsonlines", &page.pieces()),
                Err((status, msg)) => rq.respond(json_error(status, &msg)),
            },
            "/plc_bundles.json" | "/index.json" => {
                respond_pieces(rq, "application/json", &[&index.raw])
            }
            _ => {
                let number =
                    bundle_number(path).filter(|n| (1..=index.bundles.len() as u64).contains(n));
                let Some(n) = number else {
                    return rq.respond(json_error(404, "not found"));
                };
                let file = match crate::repo::open_regular(&self.repo.join(bundle_file_name(n)))
                    .map(|(f, _)| f)
                {
                    Ok(f) => f,
                    Err(e) => return rq.respond(json_error(500, &format!("bundle {n}: {e}"))),
                };
                if path.starts_with("/jsonl/") {
                    let decoder = match zstd::stream::read::Decoder::new(file) {
                        Ok(d) => d,
                        Err(e) => return rq.respond(json_error(500, &format!("bundle {n}: {e}"))),
                    };
                    let headers = vec![header("Content-Type", "application/jsonlines")];
                    rq.respond(Response::new(StatusCode(200), headers, decoder, None, None))
                } else {
                    let len = file.metadata().map(|m| m.len() as usize).ok();
                    let headers = vec![header("Content-Type", "application/zstd")];
                    rq.respond(
                        Response::new(StatusCode(200), headers, file, len, None)
                            .with_chunked_threshold(usize::MAX),
                    )
                }
            }
        }
    }

    /// The body of `/export?query` as the bundles it comes from and, in
    /// each, the byte range of its lines (lines follow one another in a
    /// bundle, so a page is one range, or two when it crosses into the
    /// next bundle), or an HTTP status and message.
    fn export(&self, index: &Loaded, query: &str) -> std::result::Result<Page, (u16, String)> {
        let mut count = MAX_COUNT;
        let mut after: Option<Timestamp> = None;
        for (k, v) in parse_query(query) {
            match k.as_str() {
                "count" => {
                    count = match v.parse::<i64>() {
                        Ok(n) if n > 0 => (n as usize).min(MAX_COUNT),
                        _ => {
                            return Err((
                                400,
                                format!("invalid count {v:?}: a positive integer is expected"),
                            ))
                        }
                    }
                }
                "after" if v.is_empty() => after = None,
                "after" if v.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err((
                        400,
                        "sequence numbers are not served: `after` must be a timestamp".into(),
                    ))
                }
                "after" => match Timestamp::parse(&v) {
                    Some(t) => after = Some(t),
                    None => {
                        return Err((
                            400,
                            format!("invalid after {v:?}: an RFC 3339 timestamp is expected"),
                        ))
                    }
                },
                _ => {}
            }
        }
        let first = match after {
            None => 0,
            Some(a) => index.bundles.partition_point(|(_, _, end)| *end <= a),
        };
        let mut page = Page::default();
        let mut served = 0;
        for (number, hash, _) in &index.bundles[first..] {
            if served == count {
                break;
            }
            let b = self
                .bundle(*number, hash)
                .map_err(|e| (500, e.to_string()))?;
            let start = match after {
                None => 0,
                Some(a) => b
                    .first_after(a)
                    .map_err(|r| (500, format!("bundle {number}: {r}")))?,
            };
            let take = (count - served).min(b.lines.len() - start);
            if take > 0 {
                let (s, e) = (b.lines[start].0, b.lines[start + take - 1].1);
                page.ranges.push((b.clone(), s, e));
                served += take;
            }
        }
        Ok(page)
    }
}

/// The bundle number in `/data/N`, `/jsonl/N` or `/NNNNNN.jsonl.zst`.
fn bundle_number(path: &str) -> Option<u64> {
    let digits = path
        .strip_prefix("/data/")
        .or_else(|| path.strip_prefix("/jsonl/"))
        .or_else(|| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_suffix(".jsonl.zst"))
                .filter(|d| d.len() >= 6)
        })?;
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Splits and percent-decodes a query string (`+` is a space).
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_bundles_only_by_number() {
        assert_eq!(bundle_number("/data/7"), Some(7));
        assert_eq!(bundle_number("/jsonl/12"), Some(12));
        assert_eq!(bundle_number("/000007.jsonl.zst"), Some(7));
        assert_eq!(bundle_number("/7.jsonl.zst"), None);
        assert_eq!(bundle_number("/data/../plc_bundles.json"), None);
        assert_eq!(bundle_number("/data/"), None);
        assert_eq!(bundle_number("/data/-1"), None);
        assert_eq!(bundle_number("/jsonl/1/2"), None);
    }

    #[test]
    fn query_strings_are_percent_decoded() {
        assert_eq!(
            parse_query("count=5&after=2024-05-01T12%3A34%3A56.788Z"),
            vec![
                ("count".to_string(), "5".to_string()),
                ("after".to_string(), "2024-05-01T12:34:56.788Z".to_string())
            ]
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }
}
