//! Bad input, one test per case, for every tool that reads it: plc-dedup,
//! plc-chunk and plc-seal on stdin, plc-export from the directory. Each
//! must exit 2 with a message naming the 1-based line and the reason, emit
//! or seal nothing past the bad line, and leave the index byte-identical.
use crate::common;

use common::fake_directory::{FakeDirectory, FakeOptions, Op};
use common::run::*;
use plcbundle::synth::{generate, SynthOp, SynthOptions};
use std::path::Path;

/// The bad line goes at this 1-based position of the input.
const BAD_AT: usize = 4;

struct Fixture {
    tmp: TempDir,
    repo: String,
    /// Operations continuing the sealed archive.
    next: Vec<SynthOp>,
    /// One operation older than everything in `next`.
    older: SynthOp,
}

/// An archive of one bundle and the operations that follow it.
fn fixture() -> Fixture {
    let ops = generate(
        10_020,
        &SynthOptions {
            seed: 31,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("bad");
    let repo = tmp.join("repo");
    let first: Vec<u8> = ops[..10_000]
        .iter()
        .flat_map(|o| [o.line.as_slice(), b"\n"].concat())
        .collect();
    let o = run("plc-seal", &["-q", "--repo", &repo], &first);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let mut next = ops[10_000..].to_vec();
    // Make sure the continuation is strictly after the archive's end, so
    // the only thing wrong with each input is the case under test.
    next.retain(|o| o.created_ms > ops[9_999].created_ms);
    Fixture {
        older: ops[5_000].clone(),
        tmp,
        repo,
        next,
    }
}

fn lines_with(f: &Fixture, bad: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut before = Vec::new();
    for o in &f.next[..BAD_AT - 1] {
        before.extend_from_slice(&o.line);
        before.push(b'\n');
    }
    let mut input = before.clone();
    input.extend_from_slice(bad);
    input.push(b'\n');
    for o in &f.next[BAD_AT - 1..] {
        input.extend_from_slice(&o.line);
        input.push(b'\n');
    }
    (input, before)
}

fn assert_refused(tool: &str, o: &Output, line: usize, reason: &str) {
    assert_eq!(o.code, Some(2), "{tool}: {}", o.stderr);
    let want = format!("{tool}: line {line}: ");
    assert!(
        o.stderr.starts_with(&want),
        "{tool}: {:?} should start with {want:?}",
        o.stderr
    );
    assert!(
        o.stderr.contains(reason),
        "{tool}: {:?} should say {reason:?}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{tool}: {}", o.stderr);
}

/// Runs dedup, chunk and seal on `input` and checks each refuses `line`.
fn check_filters(f: &Fixture, input: &[u8], before: &[u8], line: usize, reason: &str) {
    let o = run("plc-dedup", &[], input);
    assert_refused("plc-dedup", &o, line, reason);
    assert_eq!(
        o.stdout, before,
        "plc-dedup wrote only the lines before the bad one"
    );

    // Chunks of 2: the first whole chunk before the bad line may be
    // emitted, nothing at or after it.
    let o = run("plc-chunk", &["--size", "2"], input);
    assert_refused("plc-chunk", &o, line, reason);
    let whole = (line - 1) / 2 * 2;
    let cut: usize = before
        .split_inclusive(|&b| b == b'\n')
        .take(whole)
        .map(<[u8]>::len)
        .sum();
    assert_eq!(
        o.stdout,
        &before[..cut],
        "plc-chunk emitted only whole chunks before the bad line"
    );

    let index = Path::new(&f.repo).join("plc_bundles.json");
    let index_before = std::fs::read(&index).unwrap();
    let o = run("plc-seal", &["-q", "--repo", &f.repo], input);
    assert_refused("plc-seal", &o, line, reason);
    assert_eq!(
        std::fs::read(&index).unwrap(),
        index_before,
        "index unchanged"
    );
    assert!(!f.tmp.path().join("repo/000002.jsonl.zst").exists());
}

/// Serves `bad` as the 4th operation of a page from the fake directory
/// and checks plc-export refuses it, naming the request and the line.
fn check_export(f: &Fixture, bad: &[u8], reason: &str) {
    let mut ops: Vec<Op> = f.next.iter().map(Op::from).collect();
    let ms = f.next[BAD_AT - 1].created_ms;
    ops.insert(BAD_AT - 1, Op::new(bad.to_vec(), ms));
    let dir = FakeDirectory::start(ops, FakeOptions::default());
    let url = dir.url();
    let o = run(
        "plc-export",
        &[
            "--url",
            &url,
            "--rate",
            "0",
            "--lag",
            "0",
            "--retries",
            "1",
            "--backoff",
            "1ms",
        ],
        b"",
    );
    assert_eq!(o.code, Some(2), "plc-export: {}", o.stderr);
    assert!(o.stderr.starts_with("plc-export: GET "), "{}", o.stderr);
    assert!(o.stderr.contains("/export"), "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!("line {BAD_AT}: ")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(reason),
        "plc-export: {:?} should say {reason:?}",
        o.stderr
    );
    assert!(o.stdout.is_empty(), "nothing of the page is written");
}

fn case(bad: &[u8], reason: &str) {
    let f = fixture();
    let (input, before) = lines_with(&f, bad);
    check_filters(&f, &input, &before, BAD_AT, reason);
    check_export(&f, bad, reason);
}

/// `line` with the value of `key` (a string) replaced by raw JSON `value`.
fn with_field(line: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).unwrap();
    match value {
        Some(raw) => {
            v.insert(key.to_string(), serde_json::from_str(raw).unwrap());
        }
        None => {
            v.remove(key);
        }
    }
    serde_json::to_vec(&v).unwrap()
}

fn sample() -> Vec<u8> {
    fixture().next[BAD_AT - 1].line.clone()
}

#[test]
fn invalid_json() {
    case(br#"{"did":"did:plc:abc","cid":nope}"#, "invalid JSON");
}

#[test]
fn json_that_is_not_an_object() {
    case(br#"["did","cid","createdAt"]"#, "not a JSON object");
    case(b"42", "not a JSON object");
}

#[test]
fn missing_did() {
    case(&with_field(&sample(), "did", None), "missing field `did`");
}

#[test]
fn missing_cid() {
    case(&with_field(&sample(), "cid", None), "missing field `cid`");
}

#[test]
fn missing_created_at() {
    case(
        &with_field(&sample(), "createdAt", None),
        "missing field `createdAt`",
    );
}

#[test]
fn non_string_did_cid_created_at() {
    case(&with_field(&sample(), "did", Some("12")), "invalid type");
    case(&with_field(&sample(), "cid", Some("null")), "invalid type");
    case(
        &with_field(&sample(), "createdAt", Some("1714566896789")),
        "invalid type",
    );
}

#[test]
fn created_at_that_is_not_a_timestamp() {
    case(
        &with_field(&sample(), "createdAt", Some("\"last tuesday\"")),
        "not an RFC 3339 timestamp",
    );
    case(
        &with_field(&sample(), "createdAt", Some("\"2024-02-30T00:00:00.000Z\"")),
        "not an RFC 3339 timestamp",
    );
}

#[test]
fn created_at_going_backwards() {
    let f = fixture();
    let bad = f.older.line.clone();
    let (input, before) = lines_with(&f, &bad);
    check_filters(&f, &input, &before, BAD_AT, "goes backwards");
    // The message names both timestamps.
    let o = run("plc-dedup", &[], &input);
    assert!(o.stderr.contains(&f.older.created_at), "{}", o.stderr);
    assert!(
        o.stderr.contains(&f.next[BAD_AT - 2].created_at),
        "{}",
        o.stderr
    );
    // From the directory, a page going backwards is refused as well.
    let mut ops: Vec<Op> = f.next.iter().map(Op::from).collect();
    ops.insert(BAD_AT - 1, Op::new(bad, f.next[BAD_AT - 1].created_ms));
    let dir = FakeDirectory::start(ops, FakeOptions::default());
    let url = dir.url();
    let o = run(
        "plc-export",
        &["--url", &url, "--rate", "0", "--lag", "0"],
        b"",
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("goes backwards"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn invalid_utf8() {
    let mut bad = sample();
    let at = bad.len() - 10;
    bad[at] = 0xff;
    case(&bad, "invalid UTF-8");
}

#[test]
fn nul_byte() {
    let mut bad = sample();
    let at = bad.len() - 10;
    bad[at] = 0;
    case(&bad, "invalid JSON");
}

#[test]
fn crlf_line_endings() {
    let f = fixture();
    let input: Vec<u8> = f
        .next
        .iter()
        .flat_map(|o| [o.line.as_slice(), b"\r\n"].concat())
        .collect();
    check_filters(&f, &input, b"", 1, "CRLF");
    let mut bad = sample();
    bad.push(b'\r');
    check_export(&f, &bad, "CRLF");
}

#[test]
fn empty_line() {
    case(b"", "empty line");
}

#[test]
fn a_line_of_several_megabytes() {
    let big = "x".repeat(3 << 20);
    case(
        &with_field(&sample(), "padding", Some(&format!("\"{big}\""))),
        "longer than",
    );
}

#[test]
fn no_newline_at_the_end_of_input() {
    let f = fixture();
    let mut input = Vec::new();
    for o in &f.next[..BAD_AT] {
        input.extend_from_slice(&o.line);
        input.push(b'\n');
    }
    let before = input.clone();
    input.extend_from_slice(&f.next[BAD_AT].line); // no '\n'
    check_filters(
        &f,
        &input,
        &before,
        BAD_AT + 1,
        "no newline at end of input",
    );
}

#[test]
fn empty_input_is_a_run_with_nothing_new() {
    // Deliberately not an error: when the directory has nothing new the
    // pipeline's later stages see empty input, and a cron run must pass.
    let f = fixture();
    let index = Path::new(&f.repo).join("plc_bundles.json");
    let before = std::fs::read(&index).unwrap();
    for tool in ["plc-dedup", "plc-chunk"] {
        let o = run(tool, &[], b"");
        assert_eq!(o.code, Some(0), "{tool}: {}", o.stderr);
        assert!(o.stdout.is_empty());
    }
    let o = run("plc-seal", &["-q", "--repo", &f.repo], b"");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(std::fs::read(&index).unwrap(), before);
}
