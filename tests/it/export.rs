//! `plc-export` alone against the fake directory: exact output, paging
//! through ties, starting points, faults, lag, a closed pipe and bad input.
//! Every expectation is built from the generator's bytes.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions, Op};
use common::run::*;
use plcbundle::synth::{format_ms, generate, SynthOp, SynthOptions};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn synth(n: usize, seed: u64) -> Vec<SynthOp> {
    generate(
        n,
        &SynthOptions {
            seed,
            ..Default::default()
        },
    )
}

/// What `plc-export` must print for these operations: each line + `\n`.
fn expected<'a>(ops: impl IntoIterator<Item = &'a SynthOp>) -> Vec<u8> {
    let mut v = Vec::new();
    for op in ops {
        v.extend_from_slice(&op.line);
        v.push(b'\n');
    }
    v
}

/// The usual flags (no pacing, no lag, short backoff) plus `extra`.
fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    args_lag(url, "0", extra)
}

/// The usual flags with `--lag lag`.
fn args_lag<'a>(url: &'a str, lag: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--url",
        url,
        "--rate",
        "0",
        "--lag",
        lag,
        "--backoff",
        "10ms",
    ];
    a.extend_from_slice(extra);
    a
}

/// The fake directory serving `ops`, with `after` inclusive or exclusive.
fn directory(ops: Vec<Op>, inclusive: bool) -> FakeDirectory {
    FakeDirectory::start(
        ops,
        FakeOptions {
            inclusive_after: inclusive,
            ..Default::default()
        },
    )
}

fn export(url: &str, extra: &[&str]) -> Output {
    run_export(&args(url, extra))
}

/// Runs `plc-export` like `common::run::run`, but kills it and fails the
/// test if it has not ended within 30 s (a paging loop must not hang the
/// suite).
fn run_export(args: &[&str]) -> Output {
    let mut child = Command::new(bin("plc-export"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning plc-export");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "plc-export {args:?} still running after 30 s; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn assert_ok(o: &Output) {
    assert_eq!(o.code, Some(0), "plc-export failed: {}", o.stderr);
}

/// Compares outputs by line so that a failure says where they part.
fn assert_same_output(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let g: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
        let w: Vec<&[u8]> = want.split(|&b| b == b'\n').collect();
        let first = g.iter().zip(&w).position(|(a, b)| a != b);
        panic!(
            "{what}: output differs: {} vs {} lines, first differing line {first:?}",
            g.len(),
            w.len()
        );
    }
}

/// Every line written is whole: stdout is empty or ends with `\n`, and each
/// line is a JSON object.
fn assert_whole_lines(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert_eq!(out.last(), Some(&b'\n'), "output ends inside a line");
    for (i, line) in out[..out.len() - 1].split(|&b| b == b'\n').enumerate() {
        let v: serde_json::Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("output line {} is not JSON: {e}", i + 1));
        assert!(v.is_object(), "output line {} is not an object", i + 1);
    }
}

/// Seals `ops` into `repo` with `plc-chunk | plc-seal --origin origin`.
fn seal(ops: &[SynthOp], repo: &str, origin: &str) {
    let chunked = run("plc-chunk", &["--quiet"], &expected(ops));
    assert_eq!(chunked.code, Some(0), "plc-chunk: {}", chunked.stderr);
    let sealed = run(
        "plc-seal",
        &["--quiet", "--repo", repo, "--origin", origin],
        &chunked.stdout,
    );
    assert_eq!(sealed.code, Some(0), "plc-seal: {}", sealed.stderr);
}

/// Hand-made operation line at `ms` with a given cid suffix.
fn op_line(ms: i64, cid: &str) -> String {
    format!(
        r#"{{"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","operation":{{"type":"plc_tombstone","prev":"x","sig":"y"}},"cid":"bafyrei{cid}","nullified":false,"createdAt":"{}"}}"#,
        format_ms(ms)
    )
}

#[test]
fn output_is_exactly_the_served_lines_in_order() {
    let ops = synth(3_500, 21);
    // The generator puts a tie group across every multiple of 1000, so
    // pages of 1000 end inside a millisecond.
    for p in [1000, 2000, 3000] {
        assert_eq!(ops[p - 1].created_ms, ops[p].created_ms);
    }
    let want = expected(&ops);
    for inclusive in [false, true] {
        for count in [None, Some("100")] {
            let dir = directory(ops_from(&ops), inclusive);
            let url = dir.url();
            let extra: Vec<&str> = count.map(|c| vec!["--count", c]).unwrap_or_default();
            let o = export(&url, &extra);
            assert_ok(&o);
            assert_same_output(
                &o.stdout,
                &want,
                &format!("inclusive={inclusive} count={count:?}"),
            );
            // It pages (more than one request) and stops when caught up.
            let pages = 3_500 / count.map_or(1000, |c| c.parse::<u64>().unwrap());
            assert!(
                dir.requests() > pages && dir.requests() < 3 * pages + 5,
                "inclusive={inclusive} count={count:?}: {} requests",
                dir.requests()
            );
        }
    }
}

#[test]
fn since_starts_at_the_first_operation_of_its_millisecond() {
    let ops = synth(3_000, 22);
    // An operation in the middle of a tie group (neighbours on both sides
    // share its millisecond), well inside the data.
    let mid = (1..ops.len() - 1)
        .skip(1_200)
        .find(|&i| {
            ops[i - 1].created_ms == ops[i].created_ms && ops[i].created_ms == ops[i + 1].created_ms
        })
        .expect("a tie group of three or more");
    let t = ops[mid].created_ms;
    let first = ops.iter().position(|o| o.created_ms == t).unwrap();
    assert!(first < mid);
    assert!(ops[first - 1].created_ms < t);
    let want = expected(&ops[first..]);
    for inclusive in [false, true] {
        for count in ["1000", "100"] {
            let dir = directory(ops_from(&ops), inclusive);
            let url = dir.url();
            let o = export(&url, &["--since", &ops[mid].created_at, "--count", count]);
            assert_ok(&o);
            assert_same_output(
                &o.stdout,
                &want,
                &format!("inclusive={inclusive} count={count}"),
            );
        }
    }
}

#[test]
fn repo_continues_after_the_archive_without_repeating_or_losing() {
    let ops = synth(23_500, 23);
    // The archive's last bundle ends inside a millisecond.
    assert_eq!(ops[19_999].created_ms, ops[20_000].created_ms);
    let want = expected(&ops[20_000..]);
    for inclusive in [false, true] {
        let dir = directory(ops_from(&ops), inclusive);
        let url = dir.url();
        let tmp = TempDir::new("export-repo");
        let repo = tmp.join("repo");
        seal(&ops[..20_000], &repo, &url);
        assert_archive(
            tmp.path().join("repo").as_path(),
            &expected_bundles(
                &ops[..20_000]
                    .iter()
                    .map(|o| o.line.clone())
                    .collect::<Vec<_>>(),
            ),
        );
        for count in ["1000", "100"] {
            let o = export(&url, &["--repo", &repo, "--count", count]);
            assert_ok(&o);
            assert_same_output(
                &o.stdout,
                &want,
                &format!("inclusive={inclusive} count={count}"),
            );
        }
    }
}

#[test]
fn repo_that_does_not_exist_exports_from_the_beginning() {
    let ops = synth(2_500, 24);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let tmp = TempDir::new("export-norepo");
    let repo = tmp.join("missing");
    let o = export(&url, &["--repo", &repo]);
    assert_ok(&o);
    assert_same_output(&o.stdout, &expected(&ops), "missing repo");
    // Exporting does not create the repository.
    assert!(!tmp.path().join("missing").exists());
}

#[test]
fn repo_of_another_origin_is_refused() {
    let ops = synth(10_500, 25);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let tmp = TempDir::new("export-origin");
    let repo = tmp.join("repo");
    seal(&ops[..10_000], &repo, "https://plc.directory");
    let o = export(&url, &["--repo", &repo]);
    assert_eq!(o.code, Some(2), "stderr: {}", o.stderr);
    assert!(o.stdout.is_empty(), "wrote {} bytes", o.stdout.len());
    assert!(o.stderr.contains("https://plc.directory"), "{}", o.stderr);
    assert!(o.stderr.contains(&url), "{}", o.stderr);
    assert_eq!(dir.requests(), 0, "no request before the refusal");
}

fn faults_are_recovered(chunked: bool) {
    let ops = synth(1_050, 26);
    let want = expected(&ops);
    let clean = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            chunked,
            ..Default::default()
        },
    );
    let url = clean.url();
    let o = export(&url, &["--count", "100"]);
    assert_ok(&o);
    assert_same_output(&o.stdout, &want, "fault-free");
    let clean_requests = clean.requests();

    let faulty = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            chunked,
            fail_every: Some(7),
            too_many_every: Some(5),
            retry_after_secs: 1,
            truncate_every: Some(11),
            ..Default::default()
        },
    );
    let url = faulty.url();
    let started = Instant::now();
    let o = export(&url, &["--count", "100"]);
    assert_ok(&o);
    assert_same_output(&o.stdout, &want, &format!("faults, chunked={chunked}"));
    // Every faulty request was retried once, and nothing else changed.
    let n = faulty.requests();
    let faults = (1..=n)
        .filter(|i| i % 5 == 0 || i % 7 == 0 || i % 11 == 0)
        .count() as u64;
    let throttled = (1..=n).filter(|i| i % 5 == 0 && i % 7 != 0).count() as u32;
    assert!(faults >= 3, "{n} requests, {faults} faults");
    assert_eq!(
        n,
        clean_requests + faults,
        "requests with faults vs without ({clean_requests}) plus faults ({faults})"
    );
    // Retry-After: 1 was honoured on every 429.
    assert!(
        started.elapsed() >= Duration::from_secs(1) * throttled,
        "{throttled} 429s answered in {:?}",
        started.elapsed()
    );
}

#[test]
fn faults_are_retried_and_the_output_is_unchanged_chunked() {
    faults_are_recovered(true);
}

#[test]
fn faults_are_retried_and_the_output_is_unchanged_content_length() {
    faults_are_recovered(false);
}

#[test]
fn directory_down_exits_3_after_retries_with_nothing_written() {
    let ops = synth(500, 27);
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            down: true,
            ..Default::default()
        },
    );
    let url = dir.url();
    let o = export(&url, &["--retries", "2"]);
    assert_eq!(o.code, Some(3), "stderr: {}", o.stderr);
    assert!(o.stdout.is_empty());
    assert!(o.stderr.contains("/export"), "{}", o.stderr);
    assert_eq!(dir.requests(), 3, "one request and two retries");
}

#[test]
fn directory_failing_midway_leaves_only_whole_lines() {
    let ops = synth(2_500, 28);
    let want = expected(&ops);
    // The 4th request fails and there are no retries: three pages were
    // written, then exit 3.
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            fail_every: Some(4),
            ..Default::default()
        },
    );
    let url = dir.url();
    let o = export(&url, &["--count", "100", "--retries", "0"]);
    assert_eq!(o.code, Some(3), "stderr: {}", o.stderr);
    assert_eq!(dir.requests(), 4);
    assert!(!o.stdout.is_empty(), "the first pages are written");
    assert!(o.stdout.len() < want.len());
    assert_whole_lines(&o.stdout);
    assert!(want.starts_with(&o.stdout), "output is a prefix");

    // Goes down while following: everything seen so far was written whole.
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let runner = std::thread::spawn(move || {
        run_export(&args(
            &url,
            &["--follow", "--interval", "20ms", "--retries", "2"],
        ))
    });
    // Caught up after a handful of requests; then polling.
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.requests() < 10 {
        assert!(Instant::now() < deadline, "export is not polling");
        std::thread::sleep(Duration::from_millis(5));
    }
    dir.set_options(FakeOptions {
        down: true,
        ..Default::default()
    });
    let o = runner.join().unwrap();
    assert_eq!(o.code, Some(3), "stderr: {}", o.stderr);
    let out = o.stdout;
    assert_whole_lines(&out);
    assert_same_output(&out, &want, "before going down");
}

/// A directory of `before` good operations, one bad line, then `after`
/// good operations, all in distinct milliseconds.
fn with_bad_line(bad: &str, before: usize, after: usize) -> (Vec<Op>, Vec<Vec<u8>>) {
    let mut ops = Vec::new();
    let mut good = Vec::new();
    let base = 1_700_000_000_000;
    for i in 0..before + 1 + after {
        let ms = base + 10 * i as i64;
        let line = if i == before {
            bad.to_string()
        } else {
            op_line(ms, &format!("{i:06}"))
        };
        if i < before {
            good.push(line.clone().into_bytes());
        }
        ops.push(Op::new(line, ms));
    }
    (ops, good)
}

#[test]
fn malformed_line_stops_with_exit_2_naming_request_and_line() {
    for (bad, shown) in [("not json", "not json"), (r#"{"did":1}"#, "did")] {
        // In the first page: nothing is written.
        let (ops, _) = with_bad_line(bad, 40, 40);
        let dir = FakeDirectory::start(ops, FakeOptions::default());
        let url = dir.url();
        let o = export(&url, &[]);
        assert_eq!(o.code, Some(2), "stderr: {}", o.stderr);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.contains("/export"), "{}", o.stderr);
        assert!(o.stderr.contains("line 41"), "{}", o.stderr);
        assert!(o.stderr.contains(shown), "{}", o.stderr);
        assert_eq!(dir.requests(), 1, "a bad line inside a page is not retried");

        // In a later page: only lines before it are written.
        let (ops, good) = with_bad_line(bad, 250, 250);
        let dir = FakeDirectory::start(ops, FakeOptions::default());
        let url = dir.url();
        let o = export(&url, &["--count", "100"]);
        assert_eq!(o.code, Some(2), "stderr: {}", o.stderr);
        assert!(o.stderr.contains("/export"), "{}", o.stderr);
        assert!(o.stderr.contains(shown), "{}", o.stderr);
        assert!(!o.stdout.is_empty(), "pages before the bad one are written");
        assert!(
            expected_lines(&good).starts_with(&o.stdout),
            "output is a prefix of the lines before the bad one"
        );
        assert_whole_lines(&o.stdout);
    }
}

#[test]
fn malformed_last_line_is_retried_once_then_refused() {
    // A bad last line looks like a cut body: retried; the same line again
    // is the server's data.
    let (ops, good) = with_bad_line("{\"did\":\"x\",", 30, 0);
    let dir = FakeDirectory::start(ops, FakeOptions::default());
    let url = dir.url();
    let o = export(&url, &[]);
    assert_eq!(o.code, Some(2), "stderr: {}", o.stderr);
    assert_eq!(dir.requests(), 2);
    assert!(o.stderr.contains("/export"), "{}", o.stderr);
    assert!(
        expected_lines(&good).starts_with(&o.stdout),
        "nothing at or after the bad line"
    );
}

fn expected_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in lines {
        v.extend_from_slice(l);
        v.push(b'\n');
    }
    v
}

#[test]
fn more_operations_in_one_millisecond_than_count_is_an_error() {
    let base = 1_700_000_000_000;
    let mut ops = Vec::new();
    for i in 0..5 {
        ops.push(Op::new(op_line(base + i, &format!("a{i:02}")), base + i));
    }
    let t = base + 100;
    for i in 0..30 {
        ops.push(Op::new(op_line(t, &format!("b{i:02}")), t));
    }
    for i in 0..5 {
        ops.push(Op::new(op_line(t + 1 + i, &format!("c{i:02}")), t + 1 + i));
    }
    for inclusive in [false, true] {
        let dir = FakeDirectory::start(
            ops.clone(),
            FakeOptions {
                inclusive_after: inclusive,
                ..Default::default()
            },
        );
        let url = dir.url();
        let o = export(&url, &["--count", "10"]);
        assert_eq!(o.code, Some(2), "inclusive={inclusive}: {}", o.stderr);
        assert!(o.stderr.contains(&format_ms(t)), "{}", o.stderr);
        assert!(o.stderr.contains("--count"), "{}", o.stderr);
        assert!(dir.requests() <= 5, "{} requests", dir.requests());
        assert_whole_lines(&o.stdout);
        // The same data with a page that holds the group goes through.
        let o = export(&url, &["--count", "31"]);
        assert_ok(&o);
        let want: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
        assert_same_output(&o.stdout, &expected_lines(&want), "count 31");
    }
}

#[test]
fn lag_holds_back_operations_younger_than_the_server_clock() {
    let ops = synth(2_000, 29);
    // The server's clock: 10 s after the second in which op 1500 was made
    // (the Date header has whole seconds).
    let date_ms = (ops[1_500].created_ms / 1000 + 10) * 1000;
    let cutoff = date_ms - 10_000;
    let old: Vec<&SynthOp> = ops.iter().filter(|o| o.created_ms <= cutoff).collect();
    assert!(old.len() > 1_000 && old.len() < 1_600, "{}", old.len());
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            date_ms: Some(date_ms),
            ..Default::default()
        },
    );
    let url = dir.url();
    let run_lag = |count: &str| {
        run(
            "plc-export",
            &args_lag(&url, "10s", &["--count", count]),
            b"",
        )
    };
    for count in ["1000", "100"] {
        let o = run_lag(count);
        assert_ok(&o);
        assert_same_output(&o.stdout, &expected(old.iter().copied()), "held back");
        assert!(o.stderr.contains("holding back"), "{}", o.stderr);
    }
    // Later, the server's clock has moved past the last operation.
    dir.set_options(FakeOptions {
        date_ms: Some(ops.last().unwrap().created_ms + 11_000),
        ..Default::default()
    });
    let o = run_lag("1000");
    assert_ok(&o);
    assert_same_output(&o.stdout, &expected(&ops), "later run");
    assert!(!o.stderr.contains("holding back"), "{}", o.stderr);
}

#[test]
fn closed_stdout_ends_quietly_and_stops_fetching() {
    let ops = synth(20_000, 30);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let mut child = Command::new(bin("plc-export"))
        .args(args(&url, &["--count", "100"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut se = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        se.read_to_string(&mut s).unwrap();
        s
    });
    let mut first = Vec::new();
    {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_until(b'\n', &mut first).unwrap();
        // Dropping the reader closes the pipe, like `| head -n 1`.
    }
    assert_eq!(first, expected(&ops[..1]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("plc-export kept running after its reader left");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
    let n = dir.requests();
    assert!(
        n < 20,
        "{n} requests after the reader left (a full export needs 200+)"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(dir.requests(), n);
}

#[test]
fn bad_flags_exit_2_without_a_request() {
    let dir = FakeDirectory::start(ops_from(&synth(10, 31)), FakeOptions::default());
    let url = dir.url();
    for bad in [
        &["--count", "0"][..],
        &["--count", "ten"],
        &["--count", "-5"],
        &["--lag", "abc"],
        &["--since", "yesterday"],
        &["--since", "2024-13-01T00:00:00Z"],
        &["--backoff", "soon"],
    ] {
        let o = export(&url, bad);
        assert_eq!(o.code, Some(2), "{bad:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{bad:?}");
        assert!(!o.stderr.is_empty(), "{bad:?}");
    }
    // --repo and --since together are refused too.
    let o = export(
        &url,
        &["--repo", "/nonexistent", "--since", "2024-01-01T00:00:00Z"],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(dir.requests(), 0);
}

#[test]
fn empty_directory_exports_nothing() {
    for inclusive in [false, true] {
        let dir = FakeDirectory::start(
            Vec::new(),
            FakeOptions {
                inclusive_after: inclusive,
                ..Default::default()
            },
        );
        let url = dir.url();
        let o = export(&url, &[]);
        assert_ok(&o);
        assert!(o.stdout.is_empty());
        assert_eq!(dir.requests(), 1);
    }
}

#[test]
fn a_count_above_the_server_cap_still_loses_nothing() {
    // The directory caps pages at 1000 whatever is asked; with --count 5000
    // no page is ever "full", and ties straddle every page boundary.
    let ops = synth(4_500, 33);
    let want = expected(&ops);
    for inclusive in [false, true] {
        let dir = directory(ops_from(&ops), inclusive);
        let o = export(&dir.url(), &["--count", "5000"]);
        assert_eq!(o.code, Some(0), "inclusive={inclusive}: {}", o.stderr);
        assert_same_output(&o.stdout, &want, "count above the cap");
    }
}

/// Three operations in distinct milliseconds, the third arriving on the
/// directory right after it answered a page made of just the second: the
/// reproduction of a live directory in issue 12, item 1.
fn live_directory() -> (FakeDirectory, Vec<Op>) {
    let base = 1_700_000_000_000;
    let ops: Vec<Op> = (1..=3)
        .map(|i| Op::new(op_line(base + i, &format!("o{i}")), base + i))
        .collect();
    let dir = FakeDirectory::start(ops[..2].to_vec(), FakeOptions::default());
    dir.grow_after_page(&ops[1..2], ops[2..].to_vec());
    (dir, ops)
}

fn lines_of(ops: &[Op]) -> Vec<u8> {
    expected_lines(&ops.iter().map(|o| o.line.clone()).collect::<Vec<_>>())
}

#[test]
fn an_operation_arriving_between_two_requests_is_not_a_stuck_tie() {
    for lag in ["0s", "60s"] {
        let (dir, ops) = live_directory();
        let url = dir.url();
        let o = run_export(&args_lag(&url, lag, &[]));
        assert_eq!(o.code, Some(0), "--lag {lag}: {}", o.stderr);
        // Either o3 was fetched in this run, or the run stopped cleanly
        // after o2 and the next one fetches it; never an error.
        let all = lines_of(&ops);
        let two = lines_of(&ops[..2]);
        assert!(
            o.stdout == all || o.stdout == two,
            "--lag {lag}: wrote {:?}",
            String::from_utf8_lossy(&o.stdout)
        );
        let again = run_export(&args_lag(
            &url,
            lag,
            &["--since", &format_ms(ops[0].created_ms)],
        ));
        assert_eq!(again.code, Some(0), "{}", again.stderr);
        assert_same_output(&again.stdout, &all, "a second run");
    }
}

#[test]
fn follow_writes_an_operation_that_arrived_between_two_requests() {
    let (dir, ops) = live_directory();
    let url = dir.url();
    let mut child = Command::new(bin("plc-export"))
        .args(args(&url, &["--follow", "--interval", "1s"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(mut line) = line else { break };
            line.push(b'\n');
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend_from_slice(&line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Drain what it wrote before exiting.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                got.extend_from_slice(&line);
            }
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!(
                "--follow exited ({status}) after writing {:?}: {err}",
                String::from_utf8_lossy(&got)
            );
        }
        if got.iter().filter(|&&b| b == b'\n').count() == 3 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_same_output(&got, &lines_of(&ops), "--follow");
}

#[test]
fn a_tie_group_of_exactly_count_operations_is_exported() {
    // Ten operations in one millisecond with --count 10: a page of ten that
    // ends exactly where the millisecond ends is legal.
    let base = 1_700_000_000_000;
    let mut ops = Vec::new();
    for i in 0..3 {
        ops.push(Op::new(op_line(base + i, &format!("a{i:02}")), base + i));
    }
    let t = base + 50;
    for i in 0..10 {
        ops.push(Op::new(op_line(t, &format!("b{i:02}")), t));
    }
    for i in 0..3 {
        ops.push(Op::new(op_line(t + 1 + i, &format!("c{i:02}")), t + 1 + i));
    }
    for inclusive in [false, true] {
        let dir = directory(ops.clone(), inclusive);
        let o = export(&dir.url(), &["--count", "10"]);
        assert_eq!(o.code, Some(0), "inclusive={inclusive}: {}", o.stderr);
        assert_same_output(&o.stdout, &lines_of(&ops), "a group of exactly --count");
    }
}

#[test]
fn a_server_ignoring_after_is_named_not_taken_for_a_tie() {
    // 2,500 operations, pages of 1000 that always start at the first one.
    let ops = synth(2_500, 34);
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            ignore_after: true,
            ..Default::default()
        },
    );
    let o = export(&dir.url(), &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("ignored after="), "{}", o.stderr);
    assert!(!o.stderr.contains("share the millisecond"), "{}", o.stderr);
    assert!(dir.requests() <= 3, "{} requests", dir.requests());
    assert_whole_lines(&o.stdout);
    assert!(expected(&ops).starts_with(&o.stdout));
}

#[test]
fn a_page_that_goes_backwards_is_an_error_not_skipped() {
    // Everything fits in one page, so a second page from the start repeats
    // what was written: the old code skipped it and exited 0.
    let ops = synth(300, 35);
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            ignore_after: true,
            ..Default::default()
        },
    );
    let o = export(&dir.url(), &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("ignored after="), "{}", o.stderr);
    assert!(o.stderr.contains(&ops[0].created_at), "{}", o.stderr);
    assert_same_output(&o.stdout, &expected(&ops), "the first page");
}
