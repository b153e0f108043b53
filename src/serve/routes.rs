//! Which answer a request gets: the router.
//!
//! Only GET and HEAD are served (HEAD answers with GET's headers, its
//! Content-Length included, and no body); any other method gets 405 with
//! an `Allow` header. Paths are matched exactly, and files are only ever
//! opened by bundle number, so no request can reach a file outside the
//! repository. Every answer of known length carries Content-Length and is
//! never chunked, so a client can tell a cut-off body from a complete one.
//!
//! Runs on tokio's blocking pool: reading the index or decompressing a
//! bundle may block.

use super::archive::Archive;
use super::body::{Body, Span};
use super::{export_route, status};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use std::sync::Arc;
use std::time::Instant;

/// What every request handler shares.
pub struct App {
    /// The repository served.
    pub archive: Arc<Archive>,
    /// When the server started (for `/status`).
    pub started: Instant,
    /// The DID index, for the DID routes.
    pub dids: crate::did::resolve::SharedIndex,
}

/// The response to `method` on `path?query`.
pub fn respond(app: &App, method: &Method, path: &str, query: &str) -> Response<Body> {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = json_error(405, "method not allowed: only GET and HEAD are served");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    // hyper lets bytes above 0x7F through in the target; a request line
    // is ASCII (RFC 9112), and no route here has another spelling.
    if !path.is_ascii() || !query.is_ascii() {
        return json_error(400, "bad request: the request line is not ASCII");
    }
    let mut response = get(app, path, query);
    let len = response.body().len();
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}

/// The response to `GET path?query`: the routing table.
fn get(app: &App, path: &str, query: &str) -> Response<Body> {
    match path {
        p if is_did_path(p) => did(app, p, query),
        "/status" => status(app),
        "/export" => export(app, query),
        "/plc_bundles.json" | "/index.json" => index(app),
        _ => match bundle_number(path) {
            Some(n) if path.starts_with("/jsonl/") => bundle_content(app, n),
            Some(n) => bundle_file(app, n),
            None => json_error(404, "not found"),
        },
    }
}

/// True when the path's first segment, percent-decoded, starts with
/// `did:`. (The directory treats any other first segment as a DID too,
/// and answers it "not registered"; here those stay 404 "not found", so
/// that no file name can be mistaken for a DID.)
fn is_did_path(path: &str) -> bool {
    let first = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .next()
        .unwrap_or_default();
    // Leniently decoded: a malformed escape in a DID is the DID route's
    // to answer (400, as the directory does).
    percent_encoding::percent_decode_str(first)
        .decode_utf8_lossy()
        .starts_with("did:")
}

/// The DID routes (`GET /{did}`, `/{did}/data`, `/{did}/log`,
/// `/{did}/log/audit`, `/{did}/log/last`), answered from the DID index as
/// the official directory answers them (`crate::did::answer`). The DID is
/// percent-decoded (400 for a malformed escape, as the directory's
/// router answers); a path of another shape is 404 "not found".
fn did(app: &App, path: &str, _query: &str) -> Response<Body> {
    use crate::did::answer::{decode_did, Route};
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (segment, suffix) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let Some(route) = Route::from_suffix(suffix).filter(|_| !segment.is_empty()) else {
        return json_error(404, "not found");
    };
    let answer = match decode_did(segment) {
        Ok(did) => app.dids.answer(route, &did),
        Err(bad_escape) => Ok(bad_escape),
    };
    match answer {
        Ok(a) => {
            let mut r = ok(a.content_type, Body::bytes(a.body));
            *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
            r
        }
        Err(e) => json_error(503, &format!("cannot answer for DIDs: {e}")),
    }
}

fn status(app: &App) -> Response<Body> {
    match app.archive.index() {
        Ok(index) => ok(
            "application/json",
            Body::bytes(status::status_json(&index, app.started.elapsed())),
        ),
        Err(e) => json_error(500, &e.to_string()),
    }
}

fn export(app: &App, query: &str) -> Response<Body> {
    let index = match app.archive.index() {
        Ok(i) => i,
        Err(e) => return json_error(500, &e.to_string()),
    };
    match export_route::page(&app.archive, &index, query) {
        Ok(page) => ok("application/jsonlines", Body::bytes(page)),
        Err((status, msg)) => json_error(status, &msg),
    }
}

fn index(app: &App) -> Response<Body> {
    match app.archive.index() {
        Ok(index) => ok("application/json", Body::bytes(index.raw.clone())),
        Err(e) => json_error(500, &e.to_string()),
    }
}

/// `/jsonl/N`: the bundle decompressed (sent from the bundle cache).
fn bundle_content(app: &App, n: u64) -> Response<Body> {
    let index = match app.archive.index() {
        Ok(i) => i,
        Err(e) => return json_error(500, &e.to_string()),
    };
    let Some((number, hash, _)) = index.bundles.iter().find(|(b, _, _)| *b == n) else {
        return json_error(404, "not found");
    };
    match app.archive.bundle(*number, hash) {
        Ok(b) => {
            let span = Span::Bundle {
                number: n,
                hash: hash.clone(),
                start: 0,
                end: b.content.len(),
            };
            ok(
                "application/jsonlines",
                Body::spans(app.archive.clone(), vec![span]),
            )
        }
        Err(e) => json_error(500, &format!("bundle {n}: {e}")),
    }
}

/// `/data/N`, `/NNNNNN.jsonl.zst`: the bundle file as stored.
fn bundle_file(app: &App, n: u64) -> Response<Body> {
    let last = match app.archive.index() {
        Ok(i) => i.bundles.len() as u64,
        Err(e) => return json_error(500, &e.to_string()),
    };
    if !(1..=last).contains(&n) {
        return json_error(404, "not found");
    }
    let opened = crate::repo::open_regular(&app.archive.bundle_path(n));
    match opened {
        Ok((file, len)) => ok("application/zstd", Body::file(file, len)),
        Err(e) => json_error(500, &format!("bundle {n}: {e}")),
    }
}

fn ok(content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error answer: `{"message": ...}` with `status`.
pub fn json_error(status: u16, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut r = ok("application/json", Body::bytes(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
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
}
