//! plc-chunk as a process: only whole chunks reach stdout, the tail is held
//! back and reported, and a bad line keeps its chunk from being emitted.
use crate::common;

use common::run::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::other_impls::joined as joined_ops;
use common::run::{join_lines as joined, synth as ops};

#[test]
fn emits_only_whole_chunks_and_reports_the_held_back_tail() {
    let ops = ops(25, 21);
    let out = run("plc-chunk", &["--size", "10"], &joined_ops(&ops));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..20]), "{}", out.out());
    assert!(out.stderr.contains("holding back 5 "), "{}", out.stderr);

    let quiet = run("plc-chunk", &["--size", "10", "-q"], &joined_ops(&ops));
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    assert!(quiet.stdout == joined_ops(&ops[..20]));
    assert_eq!(quiet.stderr, "");

    // An exact multiple holds nothing back and says nothing.
    let exact = run("plc-chunk", &["--size", "5"], &joined_ops(&ops));
    assert_eq!(exact.code, Some(0), "{}", exact.stderr);
    assert!(exact.stdout == joined_ops(&ops));
    assert_eq!(exact.stderr, "");
}

#[test]
fn the_held_back_tail_is_explained_for_a_pipe_and_for_a_file() {
    let ops = ops(25, 24);
    let out = run("plc-chunk", &["--size", "10"], &joined_ops(&ops));
    assert_eq!(
        out.stderr,
        "plc-chunk: holding back 5 operations (an incomplete chunk of 10), not emitted; \
         in the archive pipeline, the next run fetches them again\n"
    );
    // From a file nothing fetches them again: they stay in the file.
    let tmp = TempDir::new("chunk-file-tail");
    let file = tmp.join("ops.jsonl");
    std::fs::write(&file, joined_ops(&ops)).unwrap();
    let out = run("plc-chunk", &["--size", "10", &file], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..20]));
    assert_eq!(
        out.stderr,
        format!(
            "plc-chunk: holding back 5 operations (an incomplete chunk of 10), not emitted; \
             they are the last 5 lines of {file}\n"
        )
    );
}

#[test]
fn the_default_chunk_is_ten_thousand_lines() {
    let ops = ops(10_005, 22);
    let out = run("plc-chunk", &[], &joined_ops(&ops));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout == joined_ops(&ops[..10_000]),
        "{} bytes out",
        out.stdout.len()
    );
    assert!(out.stderr.contains("holding back 5 "), "{}", out.stderr);
    assert!(out.stderr.contains("10000"), "{}", out.stderr);

    let short = run("plc-chunk", &[], &joined_ops(&ops[..9_999]));
    assert_eq!(short.code, Some(0), "{}", short.stderr);
    assert!(short.stdout.is_empty());
    assert!(
        short.stderr.contains("holding back 9999 "),
        "{}",
        short.stderr
    );
}

#[test]
fn a_bad_line_keeps_its_whole_chunk_from_being_emitted() {
    let ops = ops(30, 23);
    // Line 15 (inside the second chunk of 10) and line 10 (the last line
    // of the first chunk) are broken.
    for (bad_at, emitted) in [(15, 10), (10, 0), (1, 0)] {
        let mut lines: Vec<&[u8]> = ops.iter().map(|o| o.line.as_slice()).collect();
        lines[bad_at - 1] = b"{\"not\":\"an operation\"}";
        let out = run("plc-chunk", &["--size", "10"], &joined(lines));
        assert_eq!(out.code, Some(2), "line {bad_at}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("line {bad_at}:")),
            "line {bad_at}: {}",
            out.stderr
        );
        assert!(
            out.stdout == joined_ops(&ops[..emitted]),
            "line {bad_at}: {} lines emitted",
            out.out().lines().count()
        );
    }
}

#[test]
fn invalid_utf8_and_a_cut_last_line_are_refused() {
    let ops = ops(12, 24);
    let mut bad = ops[3].line.clone();
    let quote = bad.iter().rposition(|&b| b == b'"').unwrap();
    bad.insert(quote, 0xff);
    let mut lines: Vec<&[u8]> = ops.iter().map(|o| o.line.as_slice()).collect();
    lines[3] = &bad;
    let out = run("plc-chunk", &["--size", "2"], &joined(lines));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 4:"), "{}", out.stderr);
    assert!(out.stderr.contains("UTF-8"), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..2]));

    let mut cut = joined_ops(&ops[..4]);
    cut.pop();
    let out = run("plc-chunk", &["--size", "2"], &cut);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 4:"), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..2]));
}

#[test]
fn empty_input_is_success_with_empty_output() {
    let out = run("plc-chunk", &[], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr, "");
}

#[test]
fn out_of_order_input_is_refused() {
    let ops = ops(40, 25);
    let older = ops[..24]
        .iter()
        .rev()
        .find(|o| o.created_ms < ops[24].created_ms)
        .unwrap();
    let mut lines: Vec<&[u8]> = ops[..25].iter().map(|o| o.line.as_slice()).collect();
    lines.push(&older.line);
    lines.extend(ops[25..].iter().map(|o| o.line.as_slice()));
    let out = run("plc-chunk", &["--size", "10"], &joined(lines));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 26:"), "{}", out.stderr);
    assert!(out.stderr.contains("backwards"), "{}", out.stderr);
    assert!(out.stderr.contains(&older.created_at), "{}", out.stderr);
    assert!(out.stderr.contains(&ops[24].created_at), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..20]));
}

#[test]
fn reads_a_file_argument() {
    let ops = ops(7, 26);
    let tmp = TempDir::new("chunk-file");
    let file = tmp.join("ops.jsonl");
    std::fs::write(&file, joined_ops(&ops)).unwrap();
    let out = run("plc-chunk", &["--size", "3", "-q", &file], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..6]));
}

#[test]
fn bad_flags_and_sizes_are_usage_errors() {
    for args in [&["--bogus"][..], &["--size", "0"], &["--size", "ten"]] {
        let out = run("plc-chunk", args, b"");
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn each_chunk_is_flushed_as_soon_as_it_is_complete() {
    // stdin stays open: the first chunk must reach the reader anyway.
    let ops = ops(15, 27);
    let mut child = Command::new(bin("plc-chunk"))
        .args(["--size", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sin = child.stdin.take().unwrap();
    sin.write_all(&joined_ops(&ops)).unwrap();
    sin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut got = Vec::new();
        for _ in 0..10 {
            r.read_until(b'\n', &mut got).unwrap();
        }
        let _ = tx.send((got, r));
    });
    // A generous guard against hanging, not a timing assertion.
    let (got, rest) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the first chunk was not flushed while input was still open");
    assert!(got == joined_ops(&ops[..10]));
    drop(sin);
    drop(rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
