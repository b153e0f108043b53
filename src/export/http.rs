//! The real directory over HTTP(S): one `GET /export` per page, answered
//! with a body to stream, or a [`Fault`] saying whether to retry.
//!
//! No redirect is followed, to another host or scheme nor to the same
//! origin: an export must come from the origin it is recorded under (an
//! archive's index names it), and a redirect is an answer the operator
//! should see and act on (`--url` with the new address), not something to
//! follow silently. The refusal names the `Location`. Bodies are handed
//! over unread; `page.rs` reads them within a page's limits (ureq
//! inflates `Content-Encoding: gzip` on the fly, and that stream is what
//! the limits bound).

use super::{Directory, Fault, Page};
use crate::line::excerpt;
use crate::time::Timestamp;
use std::io::Read;
use std::time::Duration;

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
            .max_redirects(0)
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
            200 => {
                let body: Box<dyn Read> = Box::new(resp.into_body().into_reader());
                Ok(Page { body, date })
            }
            300..=399 => Err(Fault::Fatal(match header("location") {
                Some(to) => format!(
                    "HTTP {status}: the server redirects to {to}; plc-export follows no redirect (an export must come from the origin it names): if that is the directory now, run with --url set to it"
                ),
                None => format!("HTTP {status}: a redirect without a Location; plc-export follows no redirect"),
            })),
            429 => {
                let wait = header("retry-after").and_then(|v| retry_after(&v, date));
                Err(Fault::RetryAfter(wait, "HTTP 429 Too Many Requests".into()))
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

/// The start of an error body, for the message (at most 4 KiB is read).
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
