//! plc-seal as a process: the bundle files and every index field, checked
//! against values computed here from the generator's bytes; appending,
//! refusals, the writer's lock and recovery from an interrupted seal.
use crate::common;

use common::run::*;
use plcbundle::synth::{generate, SynthOp, SynthOptions};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// 35,000 generated operations, shared by every test (tie groups straddle
/// every bundle boundary).
fn ops() -> &'static [SynthOp] {
    static OPS: OnceLock<Vec<SynthOp>> = OnceLock::new();
    OPS.get_or_init(|| {
        generate(
            35_000,
            &SynthOptions {
                seed: 31,
                ..Default::default()
            },
        )
    })
}

fn lines(ops: &[SynthOp]) -> Vec<Vec<u8>> {
    ops.iter().map(|o| o.line.clone()).collect()
}

fn joined(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn joined_ops(ops: &[SynthOp]) -> Vec<u8> {
    joined(&lines(ops))
}

fn seal(repo: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["--repo", repo];
    args.extend_from_slice(extra);
    run("plc-seal", &args, input)
}

fn assert_ok(o: &Output) {
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The bundle files in `dir`, sorted.
fn bundle_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".jsonl.zst") && !n.starts_with('.'))
        .collect()
}

/// Every object key of a JSON text, in document order.
fn keys_in_order(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut keys = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        i += 1;
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        let s = &text[start..i];
        i += 1;
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) == Some(&b':') {
            keys.push(s.to_string());
        }
    }
    keys
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, checked by shape only.
fn is_utc_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 20
        && digit(0..4)
        && b[4] == b'-'
        && digit(5..7)
        && b[7] == b'-'
        && digit(8..10)
        && b[10] == b'T'
        && digit(11..13)
        && b[13] == b':'
        && digit(14..16)
        && b[16] == b':'
        && digit(17..19)
        && s.ends_with('Z')
        && (b.len() == 20 || (b[19] == b'.' && digit(20..b.len() - 1) && b.len() > 21))
}

#[test]
fn seals_every_whole_bundle_and_refuses_the_partial_tail() {
    let ops = ops();
    let tmp = TempDir::new("seal-partial");
    let repo = tmp.join("repo");
    let out = seal(&repo, &[], &joined_ops(ops));
    // The three whole bundles are sealed; the tail is an error.
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 35000:"), "{}", out.stderr);
    assert!(out.stderr.contains("5000 of 10000"), "{}", out.stderr);
    let dir = tmp.path().join("repo");
    assert_eq!(
        bundle_files(&dir),
        ["000001.jsonl.zst", "000002.jsonl.zst", "000003.jsonl.zst"]
    );
    assert!(
        !names(&dir).iter().any(|n| n.ends_with(".tmp")),
        "{:?}",
        names(&dir)
    );
    assert_archive(&dir, &expected_bundles(&lines(&ops[..30_000])));
    let idx = read_index(&dir);
    assert_eq!(idx["origin"], "https://plc.directory");
}

#[test]
fn the_index_records_every_field_in_spec_order() {
    let ops = &ops()[..30_000];
    let mut lines = lines(ops);
    // start_time is copied verbatim: write the first createdAt in another
    // valid form of the same instant.
    let first = format!("\"createdAt\":\"{}\"", ops[0].created_at);
    assert!(ops[0].created_at.ends_with(".000Z"));
    let short = ops[0].created_at.replace(".000Z", "Z");
    let pos = lines[0]
        .windows(first.len())
        .position(|w| w == first.as_bytes())
        .unwrap();
    lines[0].splice(
        pos..pos + first.len(),
        format!("\"createdAt\":\"{short}\"").into_bytes(),
    );
    let origin = "https://plc.example.test";
    let tmp = TempDir::new("seal-index");
    let repo = tmp.join("repo");
    assert_ok(&seal(&repo, &["--origin", origin], &joined(&lines)));
    let dir = tmp.path().join("repo");
    let want = expected_bundles(&lines);
    assert_archive(&dir, &want);

    let text = std::fs::read_to_string(dir.join("plc_bundles.json")).unwrap();
    let mut order: Vec<&str> = vec![
        "version",
        "origin",
        "last_bundle",
        "updated_at",
        "total_size_bytes",
        "total_uncompressed_size_bytes",
        "bundles",
    ];
    for _ in 0..3 {
        order.extend([
            "bundle_number",
            "start_time",
            "end_time",
            "operation_count",
            "did_count",
            "hash",
            "content_hash",
            "parent",
            "compressed_hash",
            "compressed_size",
            "uncompressed_size",
            "cursor",
            "created_at",
        ]);
    }
    assert_eq!(keys_in_order(&text), order);

    let idx: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(idx["version"], "1.0");
    assert_eq!(idx["origin"], origin);
    assert_eq!(idx["last_bundle"], 3);
    let updated = idx["updated_at"].as_str().unwrap();
    assert!(is_utc_rfc3339(updated), "{updated}");
    let mut total = 0u64;
    let mut total_u = 0u64;
    for (i, b) in idx["bundles"].as_array().unwrap().iter().enumerate() {
        let n = i + 1;
        let chunk = &ops[i * 10_000..(i + 1) * 10_000];
        let file = std::fs::read(dir.join(format!("{n:06}.jsonl.zst"))).unwrap();
        let w = &want[i];
        let dids: HashSet<&str> = chunk.iter().map(|o| o.did.as_str()).collect();
        let start = if i == 0 {
            short.clone()
        } else {
            chunk[0].created_at.clone()
        };
        assert_eq!(b["bundle_number"], n, "bundle {n}");
        assert_eq!(b["start_time"], start.as_str(), "bundle {n}");
        assert_eq!(
            b["end_time"],
            chunk[9_999].created_at.as_str(),
            "bundle {n}"
        );
        assert_eq!(b["operation_count"], 10_000, "bundle {n}");
        assert_eq!(b["did_count"], dids.len(), "bundle {n}");
        assert!(dids.len() < 10_000, "some DIDs repeat inside a bundle");
        assert_eq!(b["hash"], w.hash.as_str(), "bundle {n}");
        assert_eq!(b["content_hash"], w.content_hash.as_str(), "bundle {n}");
        let (parent, cursor) = if i == 0 {
            (String::new(), String::new())
        } else {
            (
                want[i - 1].hash.clone(),
                ops[i * 10_000 - 1].created_at.clone(),
            )
        };
        assert_eq!(b["parent"], parent.as_str(), "bundle {n}");
        assert_eq!(b["cursor"], cursor.as_str(), "bundle {n}");
        assert_eq!(
            b["compressed_hash"],
            sha256_hex(&file).as_str(),
            "bundle {n}"
        );
        assert_eq!(b["compressed_size"], file.len(), "bundle {n}");
        assert_eq!(b["uncompressed_size"], w.content.len(), "bundle {n}");
        let created = b["created_at"].as_str().unwrap();
        assert!(is_utc_rfc3339(created), "bundle {n}: {created}");
        total += file.len() as u64;
        total_u += w.content.len() as u64;
    }
    assert_eq!(idx["total_size_bytes"], total);
    assert_eq!(idx["total_uncompressed_size_bytes"], total_u);
}

#[test]
fn stock_zstd_restores_the_exact_content() {
    let ops = &ops()[..10_000];
    let tmp = TempDir::new("seal-zstd");
    let repo = tmp.join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(ops)));
    let file = tmp.path().join("repo").join("000001.jsonl.zst");
    let out = match Command::new("zstd").arg("-dc").arg(&file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("no zstd command on PATH: install zstd")
        }
        Err(e) => panic!("running zstd: {e}"),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == joined_ops(ops), "zstd -d gave other bytes");
}

#[test]
fn the_same_chunk_gives_byte_identical_files_in_fresh_repos() {
    let input = joined_ops(&ops()[10_000..20_000]);
    let (a, b) = (TempDir::new("seal-det-a"), TempDir::new("seal-det-b"));
    assert_ok(&seal(&a.join("repo"), &[], &input));
    assert_ok(&seal(&b.join("repo"), &[], &input));
    let fa = std::fs::read(a.path().join("repo/000001.jsonl.zst")).unwrap();
    let fb = std::fs::read(b.path().join("repo/000001.jsonl.zst")).unwrap();
    assert!(fa == fb, "the two files differ");
    let (ia, ib) = (
        read_index(&a.path().join("repo")),
        read_index(&b.path().join("repo")),
    );
    assert_eq!(
        ia["bundles"][0]["compressed_hash"],
        ib["bundles"][0]["compressed_hash"]
    );
}

#[test]
fn a_second_run_continues_the_numbering_and_the_chain() {
    let ops = ops();
    // The tie group straddling position 10000 is split between the runs.
    assert_eq!(ops[9_999].created_ms, ops[10_000].created_ms);
    let tmp = TempDir::new("seal-append");
    let repo = tmp.join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[..10_000])));
    let out = seal(&repo, &[], &joined_ops(&ops[10_000..20_000]));
    assert_ok(&out);
    assert!(out.stderr.contains("000002.jsonl.zst"), "{}", out.stderr);
    let dir = tmp.path().join("repo");
    let want = expected_bundles(&lines(&ops[..20_000]));
    assert_archive(&dir, &want);
    let idx = read_index(&dir);
    assert_eq!(idx["bundles"][1]["cursor"], ops[9_999].created_at.as_str());
    assert_eq!(idx["bundles"][1]["parent"], want[0].hash.as_str());
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
    assert!(v.out().contains(&want[1].hash), "{}", v.out());
}

#[test]
fn a_different_origin_is_refused_and_the_index_left_alone() {
    let ops = ops();
    let tmp = TempDir::new("seal-origin");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    assert_ok(&seal(
        &repo,
        &["--origin", "https://a.example"],
        &joined_ops(&ops[..10_000]),
    ));
    let before = std::fs::read(dir.join("plc_bundles.json")).unwrap();
    let next = joined_ops(&ops[10_000..20_000]);
    let out = seal(&repo, &["--origin", "https://b.example"], &next);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("origin"), "{}", out.stderr);
    assert!(out.stderr.contains("https://b.example"), "{}", out.stderr);
    assert!(std::fs::read(dir.join("plc_bundles.json")).unwrap() == before);
    assert_eq!(bundle_files(&dir), ["000001.jsonl.zst"]);

    // A trailing slash is the same origin; no --origin keeps the index's.
    assert_ok(&seal(&repo, &["--origin", "https://a.example/"], b""));
    assert_ok(&seal(&repo, &[], &next));
    assert_eq!(read_index(&dir)["origin"], "https://a.example");
    assert_archive(&dir, &expected_bundles(&lines(&ops[..20_000])));
}

#[test]
fn an_operation_already_sealed_or_older_than_the_end_is_refused() {
    let ops = ops();
    assert_eq!(ops[9_999].created_ms, ops[10_000].created_ms);
    let tmp = TempDir::new("seal-refuse");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[..10_000])));
    let before = std::fs::read(dir.join("plc_bundles.json")).unwrap();
    let older = ops[..9_999]
        .iter()
        .rev()
        .find(|o| o.created_ms < ops[9_999].created_ms)
        .unwrap();
    let cases: [(&str, &SynthOp, &str); 2] = [
        ("boundary duplicate", &ops[9_999], "already sealed"),
        ("older than the end", older, "already archived"),
    ];
    for (name, first, word) in cases {
        let mut input = first.line.clone();
        input.push(b'\n');
        input.extend(joined_ops(&ops[10_000..20_000]));
        let out = seal(&repo, &[], &input);
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(out.stderr.contains("line 1:"), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(word), "{name}: {}", out.stderr);
        assert!(
            std::fs::read(dir.join("plc_bundles.json")).unwrap() == before,
            "{name}: the index changed"
        );
        assert_eq!(bundle_files(&dir), ["000001.jsonl.zst"], "{name}");
    }
    // A repeat inside the input itself, within the boundary millisecond.
    let mut dup = lines(&ops[10_000..20_000]);
    dup.insert(1, ops[10_000].line.clone());
    let out = seal(&repo, &[], &joined(&dup));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 2:"), "{}", out.stderr);
    assert!(out.stderr.contains(&ops[10_000].cid), "{}", out.stderr);
    assert!(std::fs::read(dir.join("plc_bundles.json")).unwrap() == before);
}

#[test]
fn a_bad_line_stops_before_its_bundle_after_sealing_the_ones_before() {
    let ops = ops();
    let mut l = lines(&ops[..20_000]);
    l[10_004] = b"{\"did\":\"did:plc:x\"}".to_vec();
    let tmp = TempDir::new("seal-badline");
    let out = seal(&tmp.join("repo"), &[], &joined(&l));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 10005:"), "{}", out.stderr);
    let dir = tmp.path().join("repo");
    assert_eq!(bundle_files(&dir), ["000001.jsonl.zst"]);
    assert_archive(&dir, &expected_bundles(&l[..10_000]));
}

#[test]
fn empty_input_and_bad_flags() {
    let tmp = TempDir::new("seal-empty");
    let out = seal(&tmp.join("repo"), &[], b"");
    assert_ok(&out);
    assert!(bundle_files(&tmp.path().join("repo")).is_empty());

    let out = run("plc-seal", &[], b"");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--repo"), "{}", out.stderr);
    let out = seal(&tmp.join("repo"), &["--bogus"], b"");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--bogus"), "{}", out.stderr);
}

/// Waits until process `pid` holds a lock on `lock` (read from
/// /proc/locks, so the test never takes the lock itself).
fn wait_until_locked(lock: &Path, pid: u32) {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(meta) = std::fs::metadata(lock) {
            let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
                // No /proc/locks: give the writer ample time instead.
                std::thread::sleep(Duration::from_secs(2));
                return;
            };
            let ino = meta.ino().to_string();
            let held = locks.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 5 && f[4] == pid.to_string() && f[5].rsplit(':').next() == Some(&ino)
            });
            if held {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the first plc-seal never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_writer_fails_at_once_while_the_first_holds_the_lock() {
    let ops = ops();
    let tmp = TempDir::new("seal-lock");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    let mut first = Command::new(bin("plc-seal"))
        .args(["--repo", &repo])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_in = first.stdin.take().unwrap();
    wait_until_locked(&dir.join(".plc-seal.lock"), first.id());

    let (tx, rx) = mpsc::channel();
    let repo2 = repo.clone();
    let input = joined_ops(&ops[..10_000]);
    let input2 = input.clone();
    std::thread::spawn(move || {
        let _ = tx.send(seal(&repo2, &[], &input2));
    });
    // A guard against the second writer waiting, not a timing assertion.
    let second = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the second plc-seal waited for the lock");
    assert_eq!(second.code, Some(2), "{}", second.stderr);
    assert!(
        second.stderr.contains("lock") && second.stderr.contains("another"),
        "{}",
        second.stderr
    );
    assert!(bundle_files(&dir).is_empty());

    first_in.write_all(&input).unwrap();
    drop(first_in);
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_archive(&dir, &expected_bundles(&lines(&ops[..10_000])));
    // The lock went with the process.
    assert_ok(&seal(&repo, &[], b""));
}

#[test]
fn an_interrupted_seal_s_leftovers_are_removed_and_the_result_verifies() {
    let ops = ops();
    let tmp = TempDir::new("seal-leftover");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[..10_000])));
    // A seal killed after writing bundle 2 but before the index, and one
    // killed while writing the temporary files.
    std::fs::write(dir.join("000002.jsonl.zst"), b"half a bundle").unwrap();
    std::fs::write(dir.join(".000002.jsonl.zst.tmp"), b"junk").unwrap();
    std::fs::write(dir.join(".plc_bundles.json.tmp"), b"{\"junk\"").unwrap();
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
    assert_eq!(v.out().matches("warning:").count(), 3, "{}", v.out());

    // A run with nothing to seal already removes the temporary files and
    // the unindexed bundle.
    assert_ok(&seal(&repo, &[], b""));
    assert!(
        !names(&dir).iter().any(|n| n.ends_with(".tmp")),
        "{:?}",
        names(&dir)
    );
    assert!(!dir.join("000002.jsonl.zst").exists());

    assert_ok(&seal(&repo, &[], &joined_ops(&ops[10_000..20_000])));
    assert_archive(&dir, &expected_bundles(&lines(&ops[..20_000])));
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
    assert!(!v.out().contains("warning"), "{}", v.out());
}

#[test]
fn a_bundle_file_beyond_the_next_number_is_refused() {
    let ops = ops();
    let tmp = TempDir::new("seal-stray");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[..10_000])));
    let before = std::fs::read(dir.join("plc_bundles.json")).unwrap();
    std::fs::write(dir.join("000003.jsonl.zst"), b"from elsewhere").unwrap();
    let out = seal(&repo, &[], &joined_ops(&ops[10_000..20_000]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("000003.jsonl.zst"), "{}", out.stderr);
    assert!(std::fs::read(dir.join("plc_bundles.json")).unwrap() == before);
    assert_eq!(bundle_files(&dir), ["000001.jsonl.zst", "000003.jsonl.zst"]);
}

#[test]
fn several_unindexed_bundles_left_by_a_kill_are_warnings_and_the_next_run_converges() {
    // The index is written at most once a second while bundles keep
    // coming, so a kill can leave several complete bundle files after the
    // index's last bundle. Make that state by hand: seal 3 bundles, then
    // put back the index as it was after the first.
    let ops = ops();
    let tmp = TempDir::new("seal-unindexed-run");
    let repo = tmp.join("repo");
    let dir = tmp.path().join("repo");
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[..10_000])));
    let after_one = std::fs::read(dir.join("plc_bundles.json")).unwrap();
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[10_000..30_000])));
    std::fs::write(dir.join("plc_bundles.json"), &after_one).unwrap();

    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
    for name in ["000002.jsonl.zst", "000003.jsonl.zst"] {
        assert!(
            v.out()
                .lines()
                .any(|l| l.starts_with(&format!("warning: {name} is not in the index"))),
            "{}",
            v.out()
        );
    }

    // The next run removes them and seals the same chunks again, this
    // time with only the second one: the archive ends at bundle 2.
    assert_ok(&seal(&repo, &[], &joined_ops(&ops[10_000..20_000])));
    assert_eq!(bundle_files(&dir), ["000001.jsonl.zst", "000002.jsonl.zst"]);
    assert_archive(&dir, &expected_bundles(&lines(&ops[..20_000])));
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
    assert!(!v.out().contains("warning"), "{}", v.out());
}
