//! Self-test of the fake PLC directory used by the integration tests.

use crate::common;

use common::fake_directory::{
    imf_fixdate, ops_from, parse_rfc3339, FakeDirectory, FakeOptions, Op,
};
use plcbundle::synth::{format_ms, generate, SynthOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response as read off the wire by a minimal raw client.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    /// Decoded body (what arrived, even if incomplete).
    body: Vec<u8>,
    /// Whether the body framing completed (terminating chunk or full
    /// Content-Length).
    complete: bool,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn lines(&self) -> Vec<&[u8]> {
        if self.body.is_empty() {
            Vec::new()
        } else {
            self.body.split(|&b| b == b'\n').collect()
        }
    }

    fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON error body");
        v["message"].as_str().expect("message").to_string()
    }
}

fn raw_get(dir: &FakeDirectory, target: &str) -> Raw {
    let mut s = TcpStream::connect(dir.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: selftest\r\n\r\n",
        dir.addr()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&all[..end]).unwrap();
    let rest = &all[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
        complete: false,
    };
    if raw.header("transfer-encoding") == Some("chunked") {
        let mut p = rest;
        while let Some(eol) = p.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&p[..eol]).unwrap(), 16).unwrap();
            p = &p[eol + 2..];
            if size == 0 {
                raw.complete = p == b"\r\n";
                break;
            }
            if p.len() < size + 2 {
                raw.body.extend_from_slice(&p[..size.min(p.len())]);
                break;
            }
            raw.body.extend_from_slice(&p[..size]);
            assert_eq!(&p[size..size + 2], b"\r\n");
            p = &p[size + 2..];
        }
    } else {
        let len: usize = raw.header("content-length").unwrap().parse().unwrap();
        raw.body = rest.to_vec();
        raw.complete = rest.len() == len;
    }
    raw
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn joined(ops: &[Op]) -> Vec<u8> {
    let lines: Vec<&[u8]> = ops.iter().map(|o| o.line.as_slice()).collect();
    lines.join(&b'\n')
}

fn synth_ops(n: usize) -> Vec<Op> {
    ops_from(&generate(n, &SynthOptions::default()))
}

/// Ops at t=1000 (a), 2000 (b, c, d tied), 3000 (e).
fn tiny() -> Vec<Op> {
    [
        ("a", 1000),
        ("b", 2000),
        ("c", 2000),
        ("d", 2000),
        ("e", 3000),
    ]
    .into_iter()
    .map(|(name, ms)| Op::new(format!("{{\"n\":\"{name}\"}}"), ms))
    .collect()
}

fn names(r: &Raw) -> String {
    r.lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            v["n"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn serves_pages_exactly() {
    let ops = synth_ops(2500);
    let dir = FakeDirectory::start(ops.clone(), FakeOptions::default());
    assert!(dir.url().starts_with("http://127.0.0.1:"));
    assert!(!dir.url().ends_with('/'));
    let r = raw_get(&dir, "/export");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/jsonlines"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, joined(&ops[..1000]));
    assert_ne!(r.body.last(), Some(&b'\n'));
    // ureq sees the same bytes.
    let mut resp = agent()
        .get(format!("{}/export?count=1000", dir.url()))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body_mut().read_to_vec().unwrap(), joined(&ops[..1000]));
    assert_eq!(dir.requests(), 2);
}

#[test]
fn count_default_cap_and_max_count() {
    let ops = synth_ops(1500);
    let dir = FakeDirectory::start(ops.clone(), FakeOptions::default());
    assert_eq!(raw_get(&dir, "/export?count=5000").lines().len(), 1000);
    assert_eq!(raw_get(&dir, "/export?count=7").body, joined(&ops[..7]));
    dir.set_options(FakeOptions {
        max_count: 10,
        ..FakeOptions::default()
    });
    assert_eq!(raw_get(&dir, "/export").lines().len(), 10);
    assert_eq!(raw_get(&dir, "/export?count=1000").lines().len(), 10);
    assert_eq!(raw_get(&dir, "/export?count=3").lines().len(), 3);
}

#[test]
fn bad_requests() {
    let dir = FakeDirectory::start(tiny(), FakeOptions::default());
    for q in [
        "count=0",
        "count=-5",
        "count=abc",
        "count=",
        "count=1.5",
        "after=12345",
        "after=yesterday",
        "after=2023-13-01T00:00:00.000Z",
        "after=2023-02-29T00:00:00.000Z",
        "after=2023-01-01T00:00:00.000",
        "after=2023-01-01T00:00:00.Z",
        "after=2023-01-01 00:00:00.000Z",
        "after=2023-01-01T00:00:00.000%2B00:00",
    ] {
        let r = raw_get(&dir, &format!("/export?{q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(!r.message().is_empty());
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
    assert_eq!(dir.requests(), 13);
    let r = raw_get(&dir, "/nope");
    assert_eq!(r.status, 404);
    assert!(!r.message().is_empty());
    assert_eq!(dir.requests(), 13, "404s are not /export requests");
    // ureq: 400 as a status.
    let resp = agent()
        .get(format!("{}/export?count=0", dir.url()))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[test]
fn after_exclusive_vs_inclusive() {
    let dir = FakeDirectory::start(tiny(), FakeOptions::default());
    let get = |after: &str| names(&raw_get(&dir, &format!("/export?after={after}")));
    assert_eq!(get(""), "abcde");
    assert_eq!(get(&format_ms(0)), "abcde");
    assert_eq!(get(&format_ms(1000)), "bcde");
    assert_eq!(get(&format_ms(1999)), "bcde");
    assert_eq!(
        get(&format_ms(2000)),
        "e",
        "strict: the tie group is skipped"
    );
    assert_eq!(get("1970-01-01T00:00:02Z"), "e");
    assert_eq!(get("1970-01-01T00:00:01.9995Z"), "bcde");
    assert_eq!(get("1970-01-01T00:00:02.0001Z"), "e");
    assert_eq!(get("1970-01-01T00%3A00%3A02.000Z"), "e");
    assert_eq!(get(&format_ms(3000)), "");
    let r = raw_get(&dir, &format!("/export?after={}", format_ms(3000)));
    assert_eq!((r.status, r.body.len(), r.complete), (200, 0, true));

    dir.set_options(FakeOptions {
        inclusive_after: true,
        ..FakeOptions::default()
    });
    assert_eq!(get(&format_ms(2000)), "bcde");
    assert_eq!(get(&format_ms(1000)), "abcde");
    assert_eq!(get("1970-01-01T00:00:01.9995Z"), "bcde");
    assert_eq!(get("1970-01-01T00:00:02.0001Z"), "e");
    assert_eq!(get(&format_ms(3001)), "");
    // Page ending inside the tie group.
    let r = raw_get(&dir, &format!("/export?count=2&after={}", format_ms(2000)));
    assert_eq!(names(&r), "bc");
}

#[test]
fn tie_group_straddling_a_page_boundary() {
    let synth = generate(3000, &SynthOptions::default());
    let dir = FakeDirectory::start(ops_from(&synth), FakeOptions::default());
    assert_eq!(synth[999].created_ms, synth[1000].created_ms);
    let first = raw_get(&dir, "/export");
    assert_eq!(first.lines().len(), 1000);
    let last_seen = &synth[999].created_at;
    // Strict paging loses the rest of the group.
    let next = raw_get(&dir, &format!("/export?after={last_seen}"));
    let head = next.lines()[0].to_vec();
    let first_idx = synth.iter().position(|o| o.line == head).unwrap();
    assert!(first_idx > 1000);
    assert!(synth[first_idx].created_ms > synth[999].created_ms);
    // Re-requesting the boundary millisecond recovers it.
    let back = format_ms(synth[999].created_ms - 1);
    let again = raw_get(&dir, &format!("/export?after={back}"));
    let head = again.lines()[0].to_vec();
    let idx = synth.iter().position(|o| o.line == head).unwrap();
    assert!(idx < 999);
    assert_eq!(synth[idx].created_ms, synth[999].created_ms);
}

#[test]
fn fail_every() {
    let dir = FakeDirectory::start(
        tiny(),
        FakeOptions {
            fail_every: Some(3),
            ..FakeOptions::default()
        },
    );
    let statuses: Vec<u16> = (0..6).map(|_| raw_get(&dir, "/export").status).collect();
    assert_eq!(statuses, [200, 200, 500, 200, 200, 500]);
    let a = agent();
    assert_eq!(
        a.get(format!("{}/export", dir.url()))
            .call()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        a.get(format!("{}/export", dir.url()))
            .call()
            .unwrap()
            .status(),
        200
    );
    let mut r = a.get(format!("{}/export", dir.url())).call().unwrap();
    assert_eq!(r.status(), 500);
    let v: serde_json::Value =
        serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    assert!(v["message"].is_string());
    // Default ureq config reports it as an error.
    dir.set_options(FakeOptions {
        fail_every: Some(1),
        ..FakeOptions::default()
    });
    let e = ureq::get(format!("{}/export", dir.url()))
        .call()
        .unwrap_err();
    assert!(matches!(e, ureq::Error::StatusCode(500)), "{e}");
}

#[test]
fn too_many_requests() {
    let dir = FakeDirectory::start(
        tiny(),
        FakeOptions {
            too_many_every: Some(2),
            retry_after_secs: 7,
            ..FakeOptions::default()
        },
    );
    let r1 = raw_get(&dir, "/export");
    let r2 = raw_get(&dir, "/export");
    assert_eq!((r1.status, r2.status), (200, 429));
    assert_eq!(r2.header("retry-after"), Some("7"));
    assert!(r1.header("retry-after").is_none());
    assert!(!r2.message().is_empty());
}

#[test]
fn truncated_bodies() {
    let ops = synth_ops(1200);
    let full = joined(&ops[..1000]);
    let dir = FakeDirectory::start(
        ops.clone(),
        FakeOptions {
            truncate_every: Some(2),
            ..FakeOptions::default()
        },
    );
    let ok = raw_get(&dir, "/export");
    assert!(ok.complete);
    let cut = raw_get(&dir, "/export");
    assert_eq!(cut.status, 200);
    assert!(!cut.complete);
    assert!(!cut.body.is_empty() && cut.body.len() < full.len());
    assert_eq!(&full[..cut.body.len()], &cut.body[..]);
    // Cut in the middle of a line.
    assert_ne!(full[cut.body.len() - 1], b'\n');
    assert_ne!(full[cut.body.len()], b'\n');
    // ureq reports an error reading the body.
    let a = agent();
    let mut r = a.get(format!("{}/export", dir.url())).call().unwrap();
    assert_eq!(r.body_mut().read_to_vec().unwrap(), full);
    let mut r = a.get(format!("{}/export", dir.url())).call().unwrap();
    assert!(
        r.body_mut().read_to_vec().is_err(),
        "chunked truncation unnoticed"
    );

    // Same with Content-Length framing.
    dir.set_options(FakeOptions {
        truncate_every: Some(1),
        chunked: false,
        ..FakeOptions::default()
    });
    let cl = raw_get(&dir, "/export");
    assert!(!cl.complete);
    assert_eq!(cl.header("content-length").unwrap(), full.len().to_string());
    let mut r = a.get(format!("{}/export", dir.url())).call().unwrap();
    assert!(r.body_mut().read_to_vec().is_err(), "short body unnoticed");
}

#[test]
fn content_length_mode() {
    let ops = synth_ops(50);
    let dir = FakeDirectory::start(
        ops.clone(),
        FakeOptions {
            chunked: false,
            ..FakeOptions::default()
        },
    );
    let r = raw_get(&dir, "/export");
    assert!(r.complete && r.header("transfer-encoding").is_none());
    assert_eq!(r.body, joined(&ops));
}

#[test]
fn down() {
    let dir = FakeDirectory::start(
        tiny(),
        FakeOptions {
            down: true,
            ..FakeOptions::default()
        },
    );
    for _ in 0..3 {
        assert_eq!(raw_get(&dir, "/export").status, 503);
    }
    assert_eq!(dir.requests(), 3);
    dir.set_options(FakeOptions::default());
    assert_eq!(raw_get(&dir, "/export").status, 200);
}

#[test]
fn visible_and_push() {
    let ops = synth_ops(20);
    let dir = FakeDirectory::start(ops[..10].to_vec(), FakeOptions::default());
    dir.set_visible(5);
    assert_eq!(raw_get(&dir, "/export").body, joined(&ops[..5]));
    dir.push(ops[10..].to_vec());
    assert_eq!(raw_get(&dir, "/export").body, joined(&ops[..5]));
    dir.set_visible(15);
    assert_eq!(raw_get(&dir, "/export").body, joined(&ops[..15]));
    dir.set_visible(usize::MAX);
    assert_eq!(raw_get(&dir, "/export").body, joined(&ops));
    let after = format_ms(ops[9].created_ms);
    let r = raw_get(&dir, &format!("/export?after={after}"));
    let expect: Vec<Op> = ops
        .iter()
        .filter(|o| o.created_ms > ops[9].created_ms)
        .cloned()
        .collect();
    assert_eq!(r.body, joined(&expect));
}

#[test]
#[should_panic(expected = "goes back in time")]
fn push_rejects_going_back() {
    let dir = FakeDirectory::start(tiny(), FakeOptions::default());
    dir.push(vec![Op::new("{}", 10)]);
}

#[test]
fn date_header() {
    assert_eq!(
        imf_fixdate(784_111_777_000),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(
        imf_fixdate(1_709_210_096_999),
        "Thu, 29 Feb 2024 12:34:56 GMT"
    );
    let dir = FakeDirectory::start(
        tiny(),
        FakeOptions {
            date_ms: Some(784_111_777_000),
            ..FakeOptions::default()
        },
    );
    let r = raw_get(&dir, "/export");
    assert_eq!(r.header("date"), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    dir.set_options(FakeOptions {
        fail_every: Some(1),
        date_ms: Some(784_111_777_000),
        ..FakeOptions::default()
    });
    assert_eq!(
        raw_get(&dir, "/export").header("date"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    dir.set_options(FakeOptions::default());
    let d = raw_get(&dir, "/export").header("date").unwrap().to_string();
    assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
}

#[test]
fn rfc3339_parsing() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, true)));
    assert_eq!(
        parse_rfc3339("2024-05-01T12:34:56.789Z"),
        Some((1_714_566_896_789, true))
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T12:34:56.7Z"),
        Some((1_714_566_896_700, true))
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T12:34:56.789000Z"),
        Some((1_714_566_896_789, true))
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T12:34:56.7891Z"),
        Some((1_714_566_896_789, false))
    );
    for ms in [0, 1_672_531_200_000, 1_714_566_896_789, 4_102_444_799_999] {
        assert_eq!(parse_rfc3339(&format_ms(ms)), Some((ms, true)));
    }
    assert_eq!(parse_rfc3339("2024-05-01T24:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-05-01t12:00:00Z"), None);
}

#[test]
fn concurrent_clients_and_drop() {
    let ops = synth_ops(3000);
    let dir = FakeDirectory::start(ops.clone(), FakeOptions::default());
    let url = dir.url();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut r = ureq::get(format!("{url}/export?count=1000"))
                    .call()
                    .unwrap();
                r.body_mut().read_to_vec().unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), joined(&ops[..1000]));
    }
    assert_eq!(dir.requests(), 8);
    let addr = dir.addr();
    drop(dir);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after drop"
    );
}

#[test]
fn ignore_after_serves_from_the_start() {
    let ops: Vec<Op> = (0..5)
        .map(|i| Op::new(format!("line{i}"), 1_700_000_000_000 + i))
        .collect();
    let dir = FakeDirectory::start(
        ops.clone(),
        FakeOptions {
            ignore_after: true,
            ..Default::default()
        },
    );
    let after = format_ms(ops[3].created_ms);
    let r = raw_get(&dir, &format!("/export?count=2&after={after}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.lines(), vec![&b"line0"[..], b"line1"]);
}

#[test]
fn grow_after_page_adds_operations_once_that_page_was_answered() {
    let ops: Vec<Op> = (0..3)
        .map(|i| Op::new(format!("line{i}"), 1_700_000_000_000 + i))
        .collect();
    let dir = FakeDirectory::start(ops[..2].to_vec(), FakeOptions::default());
    dir.grow_after_page(&ops[1..2], ops[2..].to_vec());
    // Another page does not trigger it.
    let r = raw_get(&dir, "/export");
    assert_eq!(r.lines(), vec![&b"line0"[..], b"line1"]);
    let after = format_ms(ops[0].created_ms);
    let r = raw_get(&dir, &format!("/export?after={after}"));
    assert_eq!(r.lines(), vec![&b"line1"[..]]);
    // The page of just line1 was answered: line2 is there now.
    let r = raw_get(&dir, &format!("/export?after={after}"));
    assert_eq!(r.lines(), vec![&b"line1"[..], b"line2"]);
}
