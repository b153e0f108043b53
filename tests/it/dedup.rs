//! plc-dedup as a process: byte-for-byte pass-through, repeats, order,
//! seeding from an archive, and every kind of bad input.
use crate::common;

use common::run::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::other_impls::joined as joined_ops;
use common::run::{join_lines as joined, synth as ops};

/// A minimal operation line with the given key fields.
fn op_line(did: &str, cid: &str, at: &str) -> Vec<u8> {
    format!(
        r#"{{"did":"{did}","cid":"{cid}","createdAt":"{at}","operation":{{"type":"plc_tombstone"}},"nullified":false}}"#
    )
    .into_bytes()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn passes_generated_lines_through_byte_for_byte() {
    let ops = ops(5_000, 1);
    let input = joined_ops(&ops);
    // The generator's awkward encodings are in the input, so a tool that
    // re-serialized would be caught.
    for needle in [
        "\\u00e9".as_bytes(),
        "\u{e9}".as_bytes(),
        "\u{65e5}".as_bytes(),
        b"https:\\/\\/",
        "\u{2028}".as_bytes(),
        b"\\\"",
    ] {
        assert!(contains(&input, needle), "{:?} not in the input", needle);
    }
    let out = run("plc-dedup", &[], &input);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == input, "output differs from input");
    assert_eq!(out.stderr, "");
}

#[test]
fn drops_a_repeat_inside_a_tie_group_even_when_not_adjacent() {
    let ops = ops(3_000, 2);
    // The first tie group of at least three operations.
    let i = (0..ops.len() - 3)
        .find(|&i| ops[i].created_ms == ops[i + 2].created_ms)
        .expect("a tie group of three");
    let g = &ops[i..i + 3];
    let mut input: Vec<&[u8]> = ops[..i + 3].iter().map(|o| o.line.as_slice()).collect();
    // Re-requesting the millisecond repeats the group; the repeat of g[0]
    // is not adjacent to the original.
    input.extend([
        g[0].line.as_slice(),
        g[2].line.as_slice(),
        g[1].line.as_slice(),
    ]);
    input.extend(ops[i + 3..i + 20].iter().map(|o| o.line.as_slice()));
    let out = run("plc-dedup", &[], &joined(input));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout == joined_ops(&ops[..i + 20]),
        "repeats were not dropped exactly:\n{}",
        out.out()
    );
}

#[test]
fn keeps_the_same_cid_at_a_different_created_at() {
    // Pinned behaviour: a repeat is the same cid at the same createdAt;
    // the same cid at a later millisecond is passed on (the directory
    // never does that, and dedup remembers only the latest millisecond).
    let a1 = op_line("did:plc:a", "bafyA", "2024-01-01T00:00:00.001Z");
    let b1 = op_line("did:plc:b", "bafyB", "2024-01-01T00:00:00.001Z");
    let a2 = op_line("did:plc:a", "bafyA", "2024-01-01T00:00:00.002Z");
    let a2_again = a2.clone();
    let input = joined([&a1[..], &b1, &a2, &a2_again]);
    let out = run("plc-dedup", &[], &input);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.out(),
        String::from_utf8(joined([&a1[..], &b1, &a2])).unwrap()
    );
}

#[test]
fn time_going_backwards_stops_at_that_line_naming_both_timestamps() {
    let ops = ops(200, 3);
    let last = &ops[19];
    let older = ops[..19]
        .iter()
        .rev()
        .find(|o| o.created_ms < last.created_ms)
        .unwrap();
    let mut input: Vec<&[u8]> = ops[..20].iter().map(|o| o.line.as_slice()).collect();
    input.push(&older.line);
    input.extend(ops[20..40].iter().map(|o| o.line.as_slice()));
    let out = run("plc-dedup", &[], &joined(input));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // It reads forwards: the line's time is before the latest seen.
    assert_eq!(
        out.stderr,
        format!(
            "plc-dedup: line 21: createdAt goes backwards: {} is before {}, seen earlier\n",
            older.created_at, last.created_at
        )
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stdout == joined_ops(&ops[..20]), "{}", out.out());
}

#[test]
fn repo_seed_drops_the_archive_s_boundary_ops_and_refuses_older_ones() {
    let ops = ops(10_600, 4);
    // The generator straddles every bundle boundary with one millisecond.
    assert_eq!(ops[9_999].created_ms, ops[10_000].created_ms);
    let tmp = TempDir::new("dedup-seed");
    let repo = tmp.join("repo");
    let sealed = run("plc-seal", &["--repo", &repo], &joined_ops(&ops[..10_000]));
    assert_eq!(sealed.code, Some(0), "{}", sealed.stderr);

    // Ask again from the boundary millisecond, as plc-export --repo does.
    let from = ops
        .iter()
        .position(|o| o.created_ms == ops[9_999].created_ms)
        .unwrap();
    assert!(from < 9_999, "the boundary group starts inside the bundle");
    let input = joined_ops(&ops[from..]);
    let want = joined_ops(&ops[10_000..]);
    for extra in [&[][..], &["--origin", "https://plc.directory"][..]] {
        let mut args = vec!["--repo", repo.as_str()];
        args.extend_from_slice(extra);
        let out = run("plc-dedup", &args, &input);
        assert_eq!(out.code, Some(0), "{extra:?}: {}", out.stderr);
        assert!(
            out.stdout == want,
            "{extra:?}: the archive's ops were not dropped exactly"
        );
    }

    let wrong = run(
        "plc-dedup",
        &["--repo", &repo, "--origin", "https://other.example"],
        &input,
    );
    assert_eq!(wrong.code, Some(2), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("origin"), "{}", wrong.stderr);
    assert!(wrong.stdout.is_empty());

    // An operation older than the archive's end is refused.
    let older = ops[..9_999]
        .iter()
        .rev()
        .find(|o| o.created_ms < ops[9_999].created_ms)
        .unwrap();
    let mut input: Vec<&[u8]> = vec![&older.line];
    input.extend(ops[10_000..10_010].iter().map(|o| o.line.as_slice()));
    let out = run("plc-dedup", &["--repo", &repo], &joined(input));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // Re-running archived input says so, naming the archive's end.
    assert_eq!(
        out.stderr,
        format!(
            "plc-dedup: line 1: createdAt {} is before the archive's end {}: \
             this input is already archived\n",
            older.created_at, ops[9_999].created_at
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn reads_stdin_as_dash_and_a_file_argument() {
    let ops = ops(300, 5);
    let input = joined_ops(&ops);
    let tmp = TempDir::new("dedup-file");
    let file = tmp.join("ops.jsonl");
    std::fs::write(&file, &input).unwrap();

    let from_file = run("plc-dedup", &[&file], b"ignored, not JSON\n");
    assert_eq!(from_file.code, Some(0), "{}", from_file.stderr);
    assert!(from_file.stdout == input);

    let from_dash = run("plc-dedup", &["-"], &input);
    assert_eq!(from_dash.code, Some(0), "{}", from_dash.stderr);
    assert!(from_dash.stdout == input);

    let missing = run("plc-dedup", &[&tmp.join("nope.jsonl")], b"");
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("nope.jsonl"), "{}", missing.stderr);
}

#[test]
fn empty_input_is_success_with_empty_output() {
    let out = run("plc-dedup", &[], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr, "");
}

/// Bad lines, each placed as line 4 between valid operations, with a word
/// the message must contain.
fn bad_lines() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let at = "2024-01-01T00:00:01.000Z";
    let ok = |did: &str| op_line(did, "bafyX", at);
    let mut v: Vec<(&'static str, Vec<u8>, &'static str)> = vec![
        (
            "invalid JSON",
            format!(r#"{{"did":"did:plc:x","cid":,"createdAt":"{at}"}}"#).into_bytes(),
            "invalid JSON",
        ),
        (
            "trailing garbage",
            [ok("did:plc:x"), b" {}".to_vec()].concat(),
            "invalid JSON",
        ),
        ("array", b"[1,2,3]".to_vec(), "not a JSON object"),
        ("string", br#""did:plc:x""#.to_vec(), "not a JSON object"),
        ("number", b"42".to_vec(), "not a JSON object"),
        ("null", b"null".to_vec(), "not a JSON object"),
        (
            "missing did",
            format!(r#"{{"cid":"bafyX","createdAt":"{at}"}}"#).into_bytes(),
            "missing field `did`",
        ),
        (
            "missing cid",
            format!(r#"{{"did":"did:plc:x","createdAt":"{at}"}}"#).into_bytes(),
            "missing field `cid`",
        ),
        (
            "missing createdAt",
            br#"{"did":"did:plc:x","cid":"bafyX"}"#.to_vec(),
            "missing field `createdAt`",
        ),
        (
            "did not a string",
            format!(r#"{{"did":7,"cid":"bafyX","createdAt":"{at}"}}"#).into_bytes(),
            "invalid type",
        ),
        (
            "cid null",
            format!(r#"{{"did":"did:plc:x","cid":null,"createdAt":"{at}"}}"#).into_bytes(),
            "invalid type",
        ),
        (
            "createdAt not a string",
            br#"{"did":"did:plc:x","cid":"bafyX","createdAt":1704067201000}"#.to_vec(),
            "invalid type",
        ),
        (
            "createdAt not a timestamp",
            br#"{"did":"did:plc:x","cid":"bafyX","createdAt":"yesterday"}"#.to_vec(),
            "RFC 3339",
        ),
        (
            "createdAt without time",
            br#"{"did":"did:plc:x","cid":"bafyX","createdAt":"2024-01-01"}"#.to_vec(),
            "RFC 3339",
        ),
        (
            "empty did",
            format!(r#"{{"did":"","cid":"bafyX","createdAt":"{at}"}}"#).into_bytes(),
            "empty did",
        ),
        (
            "invalid UTF-8",
            format!(r#"{{"did":"did:plc:x","cid":"bafyX","createdAt":"{at}","h":"caf"#)
                .into_bytes()
                .into_iter()
                .chain(*b"\xe9\"}")
                .collect(),
            "invalid UTF-8",
        ),
        (
            "NUL inside a string",
            format!("{{\"did\":\"did:plc:\0x\",\"cid\":\"bafyX\",\"createdAt\":\"{at}\"}}")
                .into_bytes(),
            "invalid JSON",
        ),
        (
            "NUL between tokens",
            format!("{{\"did\":\"did:plc:x\",\0\"cid\":\"bafyX\",\"createdAt\":\"{at}\"}}")
                .into_bytes(),
            "invalid JSON",
        ),
        ("CRLF", [ok("did:plc:x"), b"\r".to_vec()].concat(), "CRLF"),
        ("empty line", Vec::new(), "empty line"),
    ];
    // A 2 MB line: valid JSON, but no operation is that long.
    let pad = "x".repeat(2 << 20);
    v.push((
        "2 MB line",
        format!(r#"{{"did":"did:plc:x","cid":"bafyX","createdAt":"{at}","pad":"{pad}"}}"#)
            .into_bytes(),
        "longer than",
    ));
    v
}

fn good_lines() -> Vec<Vec<u8>> {
    vec![
        op_line("did:plc:a", "bafyA", "2024-01-01T00:00:00.001Z"),
        op_line("did:plc:b", "bafyB", "2024-01-01T00:00:00.002Z"),
        op_line("did:plc:c", "bafyC", "2024-01-01T00:00:00.003Z"),
        op_line("did:plc:d", "bafyD", "2024-01-01T00:00:02.000Z"),
        op_line("did:plc:e", "bafyE", "2024-01-01T00:00:03.000Z"),
    ]
}

#[test]
fn each_bad_line_stops_the_run_naming_its_line_number() {
    let good = good_lines();
    let before = joined(good[..3].iter().map(Vec::as_slice));
    for (name, bad, word) in bad_lines() {
        let input = joined([&good[0][..], &good[1], &good[2], &bad, &good[3], &good[4]]);
        let out = run("plc-dedup", &[], &input);
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("plc-dedup: line 4: "),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(word), "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        assert!(
            out.stdout == before,
            "{name}: output is not exactly the lines before the bad one: {:?}",
            out.out()
        );
    }
}

#[test]
fn a_last_line_without_newline_is_a_cut_stream() {
    let good = good_lines();
    let mut input = joined(good[..3].iter().map(Vec::as_slice));
    input.extend_from_slice(&good[3]);
    let out = run("plc-dedup", &[], &input);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 4:"), "{}", out.stderr);
    assert!(out.stderr.contains("no newline"), "{}", out.stderr);
    assert!(out.stdout == joined(good[..3].iter().map(Vec::as_slice)));
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let out = run("plc-dedup", &["--bogus"], b"");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--bogus"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    // --origin only means something with --repo.
    let out = run("plc-dedup", &["--origin", "https://plc.directory"], b"");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--repo"), "{}", out.stderr);
}

/// Runs plc-dedup with stdout on /dev/full.
fn run_into_dev_full(input: Vec<u8>) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut child = Command::new(bin("plc-dedup"))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_is_an_error_with_a_message_not_a_panic() {
    let ops = ops(3_000, 6);
    // A few lines fail at the final flush, many lines mid-stream.
    for n in [5, 3_000] {
        let (code, stderr) = run_into_dev_full(joined_ops(&ops[..n]));
        assert_eq!(code, Some(2), "{n} lines: {stderr}");
        assert!(stderr.starts_with("plc-dedup: "), "{n} lines: {stderr}");
        assert!(stderr.contains("No space left"), "{n} lines: {stderr}");
        assert!(!stderr.contains("panicked"), "{n} lines: {stderr}");
    }
}

#[test]
fn a_reader_closing_stdout_early_ends_it_quietly() {
    let input = joined_ops(&ops(20_000, 7));
    let first_line_len = input.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut child = spawn_piped("plc-dedup", &[]);
    let mut sin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).unwrap();
    assert_eq!(line.len(), first_line_len);
    drop(reader);
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "a closed pipe is not worth a message");
}

#[test]
fn lines_come_out_as_they_arrive_not_at_the_end_of_input() {
    // A --follow pipeline keeps plc-dedup's stdin open between pages: what
    // it has read must reach its stdout without waiting for more input.
    let mut child = spawn_piped("plc-dedup", &[]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let page = [
        op_line("did:plc:a", "bafy1", "2024-01-01T00:00:00.000Z"),
        op_line("did:plc:b", "bafy2", "2024-01-01T00:00:00.001Z"),
        op_line("did:plc:c", "bafy3", "2024-01-01T00:00:00.002Z"),
    ];
    stdin
        .write_all(&joined(page.iter().map(Vec::as_slice)))
        .unwrap();
    stdin.flush().unwrap();
    for want in &page {
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a line read is passed on while stdin stays open");
        assert_eq!(got.as_bytes(), want.as_slice());
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
}
