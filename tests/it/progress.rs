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
