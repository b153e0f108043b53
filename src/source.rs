//! Reading an archive from wherever it is published: a directory on disk,
//! a V1 server (the Go/Rust `plcbundle server` or our `plc-serve`:
//! `/index.json`, `/data/N`) or a static host serving the repository's
//! files under their own names (`/plc_bundles.json`, `/NNNNNN.jsonl.zst`).
//!
//! `plc-clone` and `plc-diff` take any of them as one argument; which kind
//! it is is found out, not asked: a string without an `http://` or
//! `https://` scheme is a directory, and a URL is asked for `/index.json`
//! first, then `/plc_bundles.json`, and the layout that answered is used
//! for the bundle files. Every body is bounded by what the format allows
//! before it is read (64 MiB for an index, a bundle's `compressed_size`
//! plus a little slack for a metadata frame), never by what a peer sends.
//! Failed requests are retried like `plc-export`'s (backoff doubling on
//! 5xx, connection errors and cut bodies, `Retry-After` on 429), and a
//! redirect to another host is refused.

use crate::error::{Error, Result};
use crate::export::retry_after;
use crate::index::{bundle_file_name, Index, INDEX_FILE};
use crate::line::excerpt;
use crate::progress::human;
use crate::repo::MAX_INDEX_BYTES;
use crate::time::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest single wait a `Retry-After` header can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// The most redirects followed (all on the same host).
const MAX_REDIRECTS: usize = 5;

/// Where an archive is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A repository directory on disk.
    Directory(PathBuf),
    /// A V1 server at this base URL: `/index.json`, `/data/N`.
    Server(String),
    /// A static host at this base URL: `/plc_bundles.json`,
    /// `/NNNNNN.jsonl.zst`.
    Static(String),
}

/// Callback for notes meant for people (a retried request, a rate
/// limit); the binaries print them on stderr.
pub type Notes = Arc<dyn Fn(&str) + Send + Sync>;

/// How remote archives are fetched.
#[derive(Clone)]
pub struct SourceConfig {
    /// Retries of a failed request before giving up with exit status 3.
    pub retries: u32,
    /// First retry delay; it doubles on each further retry (capped at 60 s).
    pub backoff: Duration,
    /// Requests per minute over all threads; 0 = unlimited.
    pub rate: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Where notes about retries go.
    pub notes: Notes,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            retries: 8,
            backoff: Duration::from_secs(1),
            rate: 0,
            timeout: Duration::from_secs(120),
            notes: Arc::new(|_| {}),
        }
    }
}

/// An archive being read, and its index.
pub struct Source {
    layout: Layout,
    http: Option<Http>,
    /// The index as published.
    pub index: Index,
}

/// Why one bundle's file could not be taken from a source, when that is
/// the bundle's fault rather than the network's (the answer names the
/// field, like a verifier's).
pub type BundleProblem = String;

impl Source {
    /// Opens `spec` (a directory or an `http(s)://` URL) and reads its index.
    pub fn open(spec: &str, cfg: &SourceConfig) -> Result<Source> {
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return open_url(spec, cfg);
        }
        if spec.contains("://") && !Path::new(spec).exists() {
            return Err(Error::Usage(format!(
                "{spec}: not a directory, and only http:// and https:// URLs are understood"
            )));
        }
        let dir = PathBuf::from(spec);
        let path = dir.join(INDEX_FILE);
        let (_, parsed) = crate::repo::read_index_file(&path)?;
        let index = numbered(parsed.index, &path.display().to_string())?;
        Ok(Source {
            layout: Layout::Directory(dir),
            http: None,
            index,
        })
    }

    /// Which kind of source answered.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The source as people name it: the directory or the base URL.
    pub fn describe(&self) -> String {
        match &self.layout {
            Layout::Directory(d) => d.display().to_string(),
            Layout::Server(u) | Layout::Static(u) => u.clone(),
        }
    }

    /// Where bundle `n`'s file is read from.
    pub fn bundle_location(&self, n: u64) -> String {
        match &self.layout {
            Layout::Directory(d) => d.join(bundle_file_name(n)).display().to_string(),
            Layout::Server(u) => format!("{u}/data/{n}"),
            Layout::Static(u) => format!("{u}/{}", bundle_file_name(n)),
        }
    }

    /// Reads bundle `n`'s file as stored, refusing more than its index
    /// entry allows ([`crate::repo::file_bound`]). `Ok(Err(..))` is a
    /// problem of the bundle (too large, missing on the server); `Err` is
    /// an I/O error, or the network failing after retries.
    pub fn bundle_file(&self, n: u64) -> Result<std::result::Result<Vec<u8>, BundleProblem>> {
        let entry = self
            .index
            .bundles
            .get((n as usize).wrapping_sub(1))
            .ok_or_else(|| Error::Usage(format!("bundle {n} is not in the index")))?;
        let limit = crate::repo::file_bound(entry);
        let location = self.bundle_location(n);
        match (&self.layout, &self.http) {
            (Layout::Directory(_), _) => {
                match crate::repo::read_regular(Path::new(&location), limit) {
                    Ok(b) => Ok(Ok(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(Err(format!("file: {location} is missing")))
                    }
                    // Longer than the entry allows, or not a regular file.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                        ) =>
                    {
                        Ok(Err(format!("file: {location}: {e}")))
                    }
                    Err(e) => Err(Error::io(format!("reading {location}"), e)),
                }
            }
            (_, Some(http)) => match http.get(&location, limit, Some(entry.compressed_size))? {
                Got::Body(b) => Ok(Ok(b)),
                Got::TooLarge => Ok(Err(too_large(limit + 1, entry.compressed_size))),
                Got::Refused(msg) => Ok(Err(format!("file: GET {location}: {msg}"))),
                Got::NotFound => Ok(Err(format!("file: GET {location}: HTTP 404"))),
            },
            _ => unreachable!("a URL source always has a client"),
        }
    }
}

fn too_large(size: u64, claimed: u64) -> String {
    format!(
        "compressed_size: index says {claimed}, the file holds at least {size} bytes (more than a metadata frame can explain)"
    )
}

/// The index if its entries are numbered 1..=last_bundle, as every
/// reader of the format expects.
fn numbered(index: Index, what: &str) -> Result<Index> {
    crate::index::check_numbering(&index).map_err(|e| Error::Archive(format!("{what}: {e}")))?;
    Ok(index)
}

/// Parses an index received from `what` with the rules every tool shares.
fn parse_index(bytes: &[u8], what: &str) -> Result<Index> {
    let parsed = crate::index::parse(bytes).map_err(|e| Error::Archive(format!("{what}: {e}")))?;
    numbered(parsed.index, what)
}

fn open_url(spec: &str, cfg: &SourceConfig) -> Result<Source> {
    let base = spec.trim_end_matches('/').to_string();
    let http = Http::new(cfg);
    let mut tried = Vec::new();
    for (path, layout) in [
        ("/index.json", Layout::Server(base.clone())),
        ("/plc_bundles.json", Layout::Static(base.clone())),
    ] {
        let url = format!("{base}{path}");
        match http.get(&url, MAX_INDEX_BYTES, None)? {
            Got::Body(bytes) => {
                let index = parse_index(&bytes, &url)?;
                return Ok(Source {
                    layout,
                    http: Some(http),
                    index,
                });
            }
            Got::NotFound => tried.push(format!("{url}: HTTP 404")),
            Got::TooLarge => {
                return Err(Error::Archive(format!(
                    "{url}: more than the {MAX_INDEX_BYTES} bytes an index may hold"
                )))
            }
            Got::Refused(msg) => tried.push(format!("{url}: {msg}")),
        }
    }
    Err(Error::Usage(format!(
        "{base} serves no plcbundle archive ({})",
        tried.join("; ")
    )))
}

/// What one GET came to, retries done.
enum Got {
    Body(Vec<u8>),
    NotFound,
    TooLarge,
    /// A 4xx or a refused redirect: not worth retrying.
    Refused(String),
}

/// Why one attempt failed.
enum Fault {
    Transient(String),
    RetryAfter(Duration, String),
    Final(Got),
}

/// A small HTTP client with the retry policy of `plc-export`, shared by
/// the download threads.
struct Http {
    agent: ureq::Agent,
    retries: u32,
    backoff: Duration,
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
    notes: Notes,
}

impl Http {
    fn new(cfg: &SourceConfig) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed by hand, on the same host only.
            .max_redirects(0)
            .timeout_global(Some(cfg.timeout))
            .user_agent(concat!("plcbundle-tools/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http {
            agent,
            retries: cfg.retries,
            backoff: cfg.backoff,
            interval: if cfg.rate == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(60.0 / cfg.rate as f64)
            },
            next_slot: Mutex::new(None),
            notes: cfg.notes.clone(),
        }
    }

    /// Waits for this request's turn under `--rate` (shared by threads).
    fn pace(&self) {
        if self.interval.is_zero() {
            return;
        }
        let wait = {
            let mut next = self.next_slot.lock().expect("no poisoned pacer");
            let now = Instant::now();
            let at = next.filter(|&t| t > now).unwrap_or(now);
            *next = Some(at + self.interval);
            at - now
        };
        std::thread::sleep(wait);
    }

    /// GETs `url` with retries; the body may hold at most `limit` bytes,
    /// and, when `at_least` is given, a shorter body counts as cut off.
    fn get(&self, url: &str, limit: u64, at_least: Option<u64>) -> Result<Got> {
        let mut failures = 0u32;
        let mut last_short = None;
        loop {
            self.pace();
            let (wait, msg) = match self.attempt(url, limit) {
                // A body shorter than the index's size is usually cut off;
                // the same short body twice is what the mirror holds (and
                // its checks will say what is wrong with it).
                Ok(body)
                    if at_least.is_some_and(|n| (body.len() as u64) < n)
                        && last_short != Some(body.len()) =>
                {
                    last_short = Some(body.len());
                    let exp = self.backoff.saturating_mul(1 << failures.min(16));
                    (
                        exp.min(Duration::from_secs(60)),
                        format!(
                            "the body is cut off? {} bytes, the index says {}",
                            body.len(),
                            at_least.unwrap_or(0)
                        ),
                    )
                }
                Ok(body) => return Ok(Got::Body(body)),
                Err(Fault::Final(got)) => return Ok(got),
                Err(Fault::Transient(msg)) => {
                    let exp = self.backoff.saturating_mul(1 << failures.min(16));
                    (exp.min(Duration::from_secs(60)), msg)
                }
                Err(Fault::RetryAfter(d, msg)) => (d.min(MAX_RETRY_AFTER), msg),
            };
            failures += 1;
            if failures > self.retries {
                return Err(Error::Network(format!(
                    "GET {url}: giving up after {failures} attempts: {msg}"
                )));
            }
            (self.notes)(&format!("GET {url}: {msg}; retrying in {}", human(wait)));
            std::thread::sleep(wait);
        }
    }

    fn attempt(&self, url: &str, limit: u64) -> std::result::Result<Vec<u8>, Fault> {
        let mut target = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut resp = match self.agent.get(&target).call() {
                Ok(r) => r,
                Err(
                    e @ (ureq::Error::BadUri(_)
                    | ureq::Error::Http(_)
                    | ureq::Error::RequireHttpsOnly(_)),
                ) => return Err(Fault::Final(Got::Refused(e.to_string()))),
                Err(e) => return Err(Fault::Transient(e.to_string())),
            };
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = resp.status().as_u16();
            match status {
                200 => {
                    return match resp.body_mut().with_config().limit(limit).read_to_vec() {
                        Ok(body) => Ok(body),
                        Err(ureq::Error::BodyExceedsLimit(_)) => Err(Fault::Final(Got::TooLarge)),
                        Err(e) => Err(Fault::Transient(format!(
                            "reading the body failed (cut off?): {e}"
                        ))),
                    };
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = header("location").unwrap_or_default();
                    match same_host_redirect(&target, &location) {
                        Some(next) => target = next,
                        None => {
                            return Err(Fault::Final(Got::Refused(format!(
                                "HTTP {status} redirect to {location:?} refused: only redirects on the same host are followed"
                            ))))
                        }
                    }
                }
                404 => return Err(Fault::Final(Got::NotFound)),
                429 => {
                    let date = header("date").and_then(|d| Timestamp::parse_http_date(&d));
                    let wait = header("retry-after")
                        .and_then(|v| retry_after(&v, date))
                        .unwrap_or(Duration::from_secs(60));
                    return Err(Fault::RetryAfter(wait, "HTTP 429 Too Many Requests".into()));
                }
                500..=599 => {
                    return Err(Fault::Transient(format!(
                        "HTTP {status}{}",
                        body_hint(&mut resp)
                    )))
                }
                _ => {
                    return Err(Fault::Final(Got::Refused(format!(
                        "HTTP {status}{}",
                        body_hint(&mut resp)
                    ))))
                }
            }
        }
        Err(Fault::Final(Got::Refused(format!(
            "more than {MAX_REDIRECTS} redirects"
        ))))
    }
}

fn body_hint(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    match resp.body_mut().with_config().limit(4096).read_to_vec() {
        Ok(b) if !b.is_empty() => format!(": {}", excerpt(&b)),
        _ => String::new(),
    }
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// The URL a redirect from `from` to `location` leads to, when it stays on
/// the same scheme, host and port (a relative `location` always does).
fn same_host_redirect(from: &str, location: &str) -> Option<String> {
    let here = origin_of(from)?;
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(format!("{here}{location}"));
    }
    let there = origin_of(location)?;
    here.eq_ignore_ascii_case(there)
        .then(|| location.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_same_host() {
        let from = "http://127.0.0.1:8080/data/1";
        assert_eq!(
            same_host_redirect(from, "/files/000001.jsonl.zst").as_deref(),
            Some("http://127.0.0.1:8080/files/000001.jsonl.zst")
        );
        assert_eq!(
            same_host_redirect(from, "http://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080/x")
        );
        assert_eq!(same_host_redirect(from, "http://127.0.0.1:8081/x"), None);
        assert_eq!(same_host_redirect(from, "https://127.0.0.1:8080/x"), None);
        assert_eq!(same_host_redirect(from, "//evil.example/x"), None);
        assert_eq!(same_host_redirect(from, "http://evil.example/"), None);
        assert_eq!(same_host_redirect(from, "x"), None);
    }

    #[test]
    fn a_string_with_another_scheme_is_refused() {
        let e = Source::open("ftp://example.org/archive", &SourceConfig::default())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("only http"), "{e}");
    }
}
