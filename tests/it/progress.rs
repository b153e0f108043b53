//! Progress where it helps: a live status line when stderr is a terminal
//! (run under `script`, which gives the tools a real pty), nothing but the
//! summary in a log, nothing at all with -q; and plc-verify's --quick and
//! --bundles for large archives.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::other_impls::joined;
use common::run::*;
use plcbundle::synth::{generate, SynthOptions};
use std::path::Path;
use std::process::Command;

/// Runs `cmd` with a pseudo-terminal as stdin/stdout/stderr; returns what
/// the terminal showed.
fn on_a_terminal(cmd: &str) -> Option<String> {
    let out = Command::new("script")
        .args(["-qefc", cmd, "/dev/null"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sealed(label: &str, n: usize) -> (TempDir, String, Vec<plcbundle::synth::SynthOp>) {
    let ops = generate(
        n,
        &SynthOptions {
            seed: 71,
            ..Default::default()
        },
    );
    let tmp = TempDir::new(label);
    let repo = tmp.join("repo");
    let o = run("plc-seal", &["--repo", &repo], &joined(&ops));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    (tmp, repo, ops)
}

#[test]
fn seal_prints_one_line_per_bundle_and_q_silences_it() {
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 72,
            ..Default::default()
        },
    );
    let want = expected_bundles(&ops.iter().map(|o| o.line.clone()).collect::<Vec<_>>());
    let tmp = TempDir::new("seal-lines");
    let o = run("plc-seal", &["--repo", &tmp.join("a")], &joined(&ops));
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stderr);
    for (i, l) in lines.iter().enumerate() {
        let n = i + 1;
        assert!(
            l.starts_with(&format!(
                "plc-seal: sealed {n:06}.jsonl.zst: 10000 operations, "
            )),
            "{l}"
        );
        assert!(l.contains(&want[i].hash[..16]), "{l}");
        assert!(l.contains(&format!("{} -> ", want[i].content.len())), "{l}");
    }
    let o = run("plc-seal", &["-q", "--repo", &tmp.join("b")], &joined(&ops));
    assert_eq!((o.code, o.stderr.as_str()), (Some(0), ""));
}

#[test]
fn export_shows_a_live_status_line_on_a_terminal_and_a_summary_in_a_log() {
    let ops = generate(
        5_000,
        &SynthOptions {
            seed: 73,
            ..Default::default()
        },
    );
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let export = format!(
        "{} --url {} --rate 0 --lag 0 --count 500",
        bin("plc-export"),
        dir.url()
    );
    let screen = on_a_terminal(&format!("{export} > /dev/null"))
        .expect("no `script` command for a pseudo-terminal: install util-linux (bsdutils)");
    assert!(screen.contains("\r\x1b[Kplc-export: "), "{screen:?}");
    assert!(screen.contains(" requests, "), "{screen:?}");
    assert!(screen.contains(" ops/s, at 20"), "{screen:?}");
    assert!(screen.contains(" behind)"), "{screen:?}");
    assert!(
        screen.contains("plc-export: 5000 operations in "),
        "{screen:?}"
    );

    // Not a terminal: no status line, one summary line.
    let o = run(
        "plc-export",
        &["--url", &dir.url(), "--rate", "0", "--lag", "0"],
        b"",
    );
    assert_eq!(o.code, Some(0));
    assert!(!o.stderr.contains('\r'), "{:?}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.starts_with("plc-export: 5000 operations in "),
        "{}",
        o.stderr
    );

    // -q: nothing on a terminal either.
    let screen = on_a_terminal(&format!("{export} -q > /dev/null")).unwrap();
    assert_eq!(screen, "");
}

#[test]
fn verify_counts_bundles_on_a_terminal_and_q_silences_it() {
    let (_tmp, repo, _) = sealed("verify-progress", 30_000);
    let cmd = format!("{} {repo} > /dev/null", bin("plc-verify"));
    let screen = on_a_terminal(&cmd)
        .expect("no `script` command for a pseudo-terminal: install util-linux (bsdutils)");
    assert!(
        screen.contains("plc-verify: 1 of 3 bundles checked"),
        "{screen:?}"
    );
    let screen = on_a_terminal(&format!("{} -q {repo} > /dev/null", bin("plc-verify"))).unwrap();
    assert_eq!(screen, "");
}

#[test]
fn quick_checks_stored_files_and_the_chain_without_decompressing() {
    let (_tmp, repo, ops) = sealed("verify-quick", 30_000);
    let want = expected_bundles(&ops.iter().map(|o| o.line.clone()).collect::<Vec<_>>());
    let o = run("plc-verify", &["--quick", &repo], b"");
    assert_eq!(o.code, Some(0), "{}", o.out());
    assert!(
        o.out().ends_with(&format!("head {}\n", want[2].hash)),
        "{}",
        o.out()
    );

    // A flipped byte in a stored file.
    let f = Path::new(&repo).join("000002.jsonl.zst");
    let mut bytes = std::fs::read(&f).unwrap();
    let good = bytes.clone();
    bytes[500] ^= 0x20;
    std::fs::write(&f, &bytes).unwrap();
    let o = run("plc-verify", &["--quick", &repo], b"");
    assert_eq!(o.code, Some(1));
    assert!(
        o.out().contains("bundle 000002: compressed_hash:"),
        "{}",
        o.out()
    );
    std::fs::write(&f, &good).unwrap();

    // An edited chain hash in the index.
    let index = Path::new(&repo).join("plc_bundles.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, text.replace(&want[1].hash, &"0".repeat(64))).unwrap();
    let o = run("plc-verify", &["--quick", &repo], b"");
    assert_eq!(o.code, Some(1));
    assert!(
        o.out().contains("bundle 000002: hash: chain broken"),
        "{}",
        o.out()
    );
}

#[test]
fn bundles_checks_the_files_of_a_range_and_the_whole_index() {
    let (_tmp, repo, ops) = sealed("verify-range", 30_000);
    let want = expected_bundles(&ops.iter().map(|o| o.line.clone()).collect::<Vec<_>>());
    // Damage bundle 1's file: outside the range it is not read ...
    let f = Path::new(&repo).join("000001.jsonl.zst");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[700] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    let o = run("plc-verify", &["--bundles", "2-3", &repo], b"");
    assert_eq!(o.code, Some(0), "{}", o.out());
    assert_eq!(
        o.out(),
        format!(
            "ok: 2 of 3 bundles checked, 20000 operations, head {}\n",
            want[2].hash
        )
    );
    // ... inside it, it is.
    let o = run("plc-verify", &["--bundles", "-1", &repo], b"");
    assert_eq!(o.code, Some(1));
    assert!(
        o.out().contains("bundle 000001: compressed_hash:"),
        "{}",
        o.out()
    );
    // The index is checked whole whatever the range.
    let index = Path::new(&repo).join("plc_bundles.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replace("\"last_bundle\": 3", "\"last_bundle\": 4"),
    )
    .unwrap();
    let o = run("plc-verify", &["--bundles", "3", &repo], b"");
    assert_eq!(o.code, Some(1));
    assert!(o.out().contains("index: last_bundle"), "{}", o.out());
    // Bad ranges are usage errors.
    for bad in ["0", "3-2", "x", "9-"] {
        let o = run("plc-verify", &["--bundles", bad, &repo], b"");
        assert_eq!(o.code, Some(2), "{bad}: {}", o.stderr);
    }
}

/// What a terminal `cols` wide shows for `screen` (as `script` recorded
/// it): its rows. Handles what the tools write: printable text, `\r`,
/// `\n`, and `ESC [ K` (erase to the end of the row); a row that reaches
/// the last column wraps onto the next.
fn rows_on(screen: &str, cols: usize) -> Vec<String> {
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let mut col = 0;
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        let row = rows.last_mut().unwrap();
        match c {
            '\r' => col = 0,
            '\n' => {
                rows.push(Vec::new());
                col = 0;
            }
            '\x1b' => {
                assert_eq!(chars.next(), Some('['), "{screen:?}");
                let mut params = String::new();
                let end = loop {
                    let p = chars.next().expect("escape sequence cut off");
                    if p.is_ascii_alphabetic() {
                        break p;
                    }
                    params.push(p);
                };
                assert_eq!((end, params.as_str()), ('K', ""), "{screen:?}");
                row.truncate(col);
            }
            c => {
                if col == cols {
                    rows.push(Vec::new());
                    col = 0;
                }
                let row = rows.last_mut().unwrap();
                if col < row.len() {
                    row[col] = c;
                } else {
                    row.push(c);
                }
                col += 1;
            }
        }
    }
    rows.into_iter().map(|r| r.into_iter().collect()).collect()
}

#[test]
fn the_pipeline_shares_a_terminal_of_60_80_and_200_columns() {
    // plc-export's status line (about 105 characters) is cut to the
    // width, and plc-seal's lines start their own row instead of being
    // glued onto a status line that is live when they are printed.
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 74,
            ..Default::default()
        },
    );
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    for cols in [60, 80, 200] {
        let tmp = TempDir::new("shared-terminal");
        let cmd = format!(
            "stty cols {cols} rows 40; {} --url {} --rate 0 --lag 0 --count 250 | {} | {} | {} --repo {}",
            bin("plc-export"),
            dir.url(),
            bin("plc-dedup"),
            bin("plc-chunk"),
            bin("plc-seal"),
            tmp.join("repo")
        );
        let screen = on_a_terminal(&cmd)
            .expect("no `script` command for a pseudo-terminal: install util-linux (bsdutils)");

        // Every drawing of the status line fits in the row.
        let draws: Vec<&str> = screen
            .split("\r\x1b[K")
            .filter(|s| s.starts_with("plc-export: ") && !s.contains('\n'))
            .collect();
        assert!(!draws.is_empty(), "{cols}: no status line in {screen:?}");
        for d in &draws {
            assert!(d.chars().count() < cols, "{cols}: {d:?}");
        }
        if cols < 100 {
            assert!(
                draws.iter().any(|d| d.chars().count() == cols - 1),
                "{cols}: no status line was cut: {draws:?}"
            );
        } else {
            assert!(draws.iter().all(|d| d.ends_with(" behind)")), "{draws:?}");
        }

        // On the screen: both sealed lines and the summary start a row.
        let rows = rows_on(&screen, cols);
        let sealed: Vec<&String> = rows.iter().filter(|r| r.contains("plc-seal:")).collect();
        assert_eq!(sealed.len(), 2, "{cols}: {rows:#?}");
        for r in sealed {
            assert!(r.starts_with("plc-seal: sealed 0000"), "{cols}: {r:?}");
        }
        let summary: Vec<&String> = rows
            .iter()
            .filter(|r| r.contains("operations in "))
            .collect();
        assert_eq!(summary.len(), 1, "{cols}: {rows:#?}");
        assert!(
            summary[0].starts_with("plc-export: 20000 operations in "),
            "{cols}: {rows:#?}"
        );
    }
}

/// Starts `cmd` under `script` with its stdin (a pseudo-terminal) fed
/// from a pipe this test holds; waits until the terminal shows `want`.
fn waiting_on_a_terminal(cmd: &str, want: &str) -> (std::process::Child, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new("script")
        .args(["-qefc", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("no `script` command for a pseudo-terminal: install util-linux (bsdutils)");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    while !String::from_utf8_lossy(&screen).contains(want) {
        // A guard against waiting for ever, not a timing assertion.
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(bytes) => screen.extend(bytes),
            Err(e) => panic!("{cmd}: {e}; the terminal showed {screen:?}"),
        }
    }
    (child, String::from_utf8_lossy(&screen).into_owned())
}

#[test]
fn a_filter_reading_from_the_terminal_says_so() {
    use std::io::Write;
    let tmp = TempDir::new("terminal-stdin");
    let repo = tmp.join("repo");
    for (tool, args, feed) in [
        ("plc-dedup", String::new(), "plc-export"),
        ("plc-chunk", String::new(), "plc-dedup"),
        ("plc-seal", format!("--repo {repo}"), "plc-chunk"),
    ] {
        let want = format!(
            "{tool}: reading operations from the terminal (Ctrl-D to end; pipe {feed}'s output in)"
        );
        let (mut child, screen) = waiting_on_a_terminal(&format!("{} {args}", bin(tool)), &want);
        assert!(screen.starts_with("\r\x1b[K"), "{screen:?}");
        // plc-seal creates (and locks) nothing while it waits ...
        assert!(!Path::new(&repo).exists(), "{tool}");
        // ... nor when the terminal ends without input (Ctrl-D).
        child.stdin.as_mut().unwrap().write_all(b"\x04").unwrap();
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "{tool}: {status}");
        assert!(!Path::new(&repo).exists(), "{tool}");
    }
    // With a pipe (or a file) there is nothing to say.
    let o = run("plc-seal", &["--repo", &repo], b"");
    assert_eq!((o.code, o.stderr.as_str()), (Some(0), ""));
}
