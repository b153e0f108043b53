//! plc-verify as a process: a clean archive passes with its head hash, each
//! kind of damage fails naming the bundle and the field, and archives laid
//! out the way the Go and Python implementations write them pass.
use crate::common;

use common::other_impls::{go_time, joined, write_go_archive, write_index};
use common::run::*;
use plcbundle::synth::{generate, SynthOp, SynthOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn lines(ops: &[SynthOp]) -> Vec<Vec<u8>> {
    ops.iter().map(|o| o.line.clone()).collect()
}

/// A clean three-bundle archive sealed by plc-seal, kept in memory so that
/// each test damages its own copy.
struct Pristine {
    files: Vec<(String, Vec<u8>)>,
    want: Vec<ExpectedBundle>,
}

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let ops = generate(
            30_000,
            &SynthOptions {
                seed: 41,
                ..Default::default()
            },
        );
        let tmp = TempDir::new("verify-pristine");
        let repo = tmp.join("repo");
        let out = run("plc-seal", &["--repo", &repo], &joined(&ops));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let want = expected_bundles(&lines(&ops));
        assert_archive(&tmp.path().join("repo"), &want);
        let mut files = Vec::new();
        for name in [
            "plc_bundles.json",
            "000001.jsonl.zst",
            "000002.jsonl.zst",
            "000003.jsonl.zst",
        ] {
            files.push((
                name.to_string(),
                std::fs::read(tmp.path().join("repo").join(name)).unwrap(),
            ));
        }
        Pristine { files, want }
    })
}

/// A fresh copy of the pristine archive.
fn copy(label: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new(label);
    let dir = tmp.path().join("repo");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in &pristine().files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (tmp, dir)
}

fn verify(dir: &Path) -> Output {
    run("plc-verify", &[dir.to_str().unwrap()], b"")
}

fn bundle(n: u64) -> String {
    format!("{n:06}.jsonl.zst")
}

fn edit_index(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("plc_bundles.json");
    let mut idx: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut idx);
    std::fs::write(&path, serde_json::to_vec_pretty(&idx).unwrap()).unwrap();
}

/// Problem lines (everything but warnings and the summary).
fn problems(out: &Output) -> Vec<String> {
    out.out()
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("ok:"))
        .map(str::to_string)
        .collect()
}

/// Exit 1 with at least one problem line starting with `prefix`, and no
/// success line.
fn assert_problem(out: &Output, prefix: &str) {
    assert_eq!(out.code, Some(1), "{}{}", out.out(), out.stderr);
    assert!(
        problems(out).iter().any(|l| l.starts_with(prefix)),
        "no line starting with {prefix:?}:\n{}",
        out.out()
    );
    assert!(!out.out().contains("ok:"), "{}", out.out());
    assert!(out.stderr.contains("problem"), "{}", out.stderr);
}

#[test]
fn a_clean_archive_passes_and_prints_its_head_hash() {
    let (_tmp, dir) = copy("verify-clean");
    let out = verify(&dir);
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    let head = &pristine().want[2].hash;
    assert_eq!(
        out.out(),
        format!("ok: 3 bundles, 30000 operations, head {head}\n")
    );
    assert_eq!(out.stderr, "");
    // Any number of threads gives the same verdict.
    let one = run(
        "plc-verify",
        &["--threads", "1", dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(one.code, Some(0), "{}", one.out());
    assert!(one.out().contains(head.as_str()));
}

#[test]
fn a_flipped_byte_in_a_bundle_file_is_found() {
    let (_tmp, dir) = copy("verify-flip");
    let path = dir.join(bundle(2));
    let mut f = std::fs::read(&path).unwrap();
    let mid = f.len() / 2;
    f[mid] ^= 0x01;
    std::fs::write(&path, f).unwrap();
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: compressed_hash:");
    for l in problems(&out) {
        assert!(l.starts_with("bundle 000002: "), "{l}");
    }
}

#[test]
fn a_truncated_bundle_file_is_found() {
    let (_tmp, dir) = copy("verify-trunc");
    let path = dir.join(bundle(3));
    let f = std::fs::read(&path).unwrap();
    std::fs::write(&path, &f[..f.len() / 2]).unwrap();
    let out = verify(&dir);
    assert_problem(&out, "bundle 000003: compressed_hash:");
    assert_problem(&out, "bundle 000003: compressed_size:");
    assert_problem(&out, "bundle 000003: file:");
}

#[test]
fn a_missing_bundle_file_is_found() {
    let (_tmp, dir) = copy("verify-missing");
    std::fs::remove_file(dir.join(bundle(2))).unwrap();
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: file: 000002.jsonl.zst is missing");
}

#[test]
fn an_unindexed_file_is_a_problem_unless_it_is_the_next_number() {
    let (_tmp, dir) = copy("verify-unindexed");
    std::fs::copy(dir.join(bundle(3)), dir.join(bundle(5))).unwrap();
    let out = verify(&dir);
    assert_problem(&out, "bundle 000005: ");
    assert!(out.out().contains("000005.jsonl.zst is not in the index"));

    // last_bundle + 1 is what an interrupted seal leaves: a warning only.
    std::fs::remove_file(dir.join(bundle(5))).unwrap();
    std::fs::copy(dir.join(bundle(3)), dir.join(bundle(4))).unwrap();
    let out = verify(&dir);
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    assert!(
        out.out()
            .lines()
            .any(|l| l.starts_with("warning: 000004.jsonl.zst")),
        "{}",
        out.out()
    );
    assert!(problems(&out).is_empty(), "{}", out.out());

    // So is a contiguous run after it (the index is written at most once
    // a second while bundles keep coming).
    std::fs::copy(dir.join(bundle(3)), dir.join(bundle(5))).unwrap();
    let out = verify(&dir);
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    assert_eq!(out.out().matches("warning: ").count(), 2, "{}", out.out());
}

#[test]
fn two_swapped_bundle_files_are_found() {
    let (_tmp, dir) = copy("verify-swap");
    let (a, b) = (dir.join(bundle(1)), dir.join(bundle(2)));
    let tmp = dir.join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let out = verify(&dir);
    // A file that is not the one the index names is not decompressed
    // (it could be anything, a zstd bomb included).
    for n in ["000001", "000002"] {
        assert_problem(&out, &format!("bundle {n}: compressed_hash:"));
        assert_problem(&out, &format!("bundle {n}: file: not decompressed"));
    }
}

#[test]
fn an_edited_content_hash_is_found() {
    let (_tmp, dir) = copy("verify-content-hash");
    edit_index(&dir, |i| {
        i["bundles"][1]["content_hash"] = json!(sha256_hex(b"something else"));
    });
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: content_hash:");
}

#[test]
fn an_edited_hash_is_found() {
    let (_tmp, dir) = copy("verify-hash");
    edit_index(&dir, |i| {
        i["bundles"][1]["hash"] = json!(sha256_hex(b"forged"));
    });
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: hash:");
    // Bundle 3 still names the real hash as its parent.
    assert_problem(&out, "bundle 000003: parent:");
}

#[test]
fn an_edited_parent_is_found() {
    let (_tmp, dir) = copy("verify-parent");
    edit_index(&dir, |i| {
        i["bundles"][1]["parent"] = json!(sha256_hex(b"forged"));
        i["bundles"][0]["parent"] = json!(sha256_hex(b"no parent"));
    });
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: parent:");
    assert_problem(&out, "bundle 000001: parent:");
}

#[test]
fn wrong_counts_and_totals_are_found() {
    for (field, edit) in [
        ("bundle 000002: operation_count:", "operation_count"),
        ("bundle 000002: did_count:", "did_count"),
        ("index: total_size_bytes:", "total_size_bytes"),
        ("bundle 000002: uncompressed_size:", "uncompressed_size"),
        ("bundle 000002: compressed_size:", "compressed_size"),
    ] {
        let (_tmp, dir) = copy("verify-counts");
        edit_index(&dir, |i| {
            let target = if edit.starts_with("total") {
                &mut i[edit]
            } else {
                &mut i["bundles"][1][edit]
            };
            *target = json!(target.as_u64().unwrap() + 1);
        });
        let out = verify(&dir);
        assert_problem(&out, field);
    }
}

#[test]
fn a_gap_in_the_numbering_is_found() {
    let (_tmp, dir) = copy("verify-gap");
    edit_index(&dir, |i| {
        i["bundles"].as_array_mut().unwrap().remove(1);
    });
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: bundle_number:");
    assert!(out.out().contains("found 3"), "{}", out.out());
}

#[test]
fn an_index_that_is_not_json_is_a_problem() {
    let (_tmp, dir) = copy("verify-notjson");
    std::fs::write(dir.join("plc_bundles.json"), b"{\"version\": \"1.0\",").unwrap();
    let out = verify(&dir);
    assert_problem(&out, "index: not valid JSON");
}

#[test]
fn an_op_edited_with_every_hash_recomputed_breaks_only_the_chain() {
    let (_tmp, dir) = copy("verify-chain");
    let path = dir.join(bundle(2));
    let mut content = unzstd(&path);
    // Change one character of a signature: still a valid operation.
    let at = content.windows(7).position(|w| w == b"\"sig\":\"").unwrap() + 7;
    content[at] = if content[at] == b'A' { b'B' } else { b'A' };
    let file = zstd::bulk::compress(&content, 3).unwrap();
    std::fs::write(&path, &file).unwrap();
    edit_index(&dir, |i| {
        let old = i["bundles"][1]["compressed_size"].as_u64().unwrap();
        let b = &mut i["bundles"][1];
        b["content_hash"] = json!(sha256_hex(&content));
        b["compressed_hash"] = json!(sha256_hex(&file));
        b["compressed_size"] = json!(file.len());
        b["uncompressed_size"] = json!(content.len());
        let total = i["total_size_bytes"].as_u64().unwrap() - old + file.len() as u64;
        i["total_size_bytes"] = json!(total);
    });
    let out = verify(&dir);
    assert_problem(&out, "bundle 000002: hash: chain broken");
    assert_eq!(problems(&out).len(), 1, "{}", out.out());
}

#[test]
fn a_missing_directory_or_index_cannot_be_verified() {
    let tmp = TempDir::new("verify-nodir");
    let out = run("plc-verify", &[&tmp.join("nope")], b"");
    assert_eq!(out.code, Some(2), "{}{}", out.out(), out.stderr);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    let out = run("plc-verify", &[tmp.path().to_str().unwrap()], b"");
    assert_eq!(out.code, Some(2), "{}{}", out.out(), out.stderr);
    assert!(out.stderr.contains("plc_bundles.json"), "{}", out.stderr);

    let out = run(
        "plc-verify",
        &["--bogus", tmp.path().to_str().unwrap()],
        b"",
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--bogus"), "{}", out.stderr);
}

#[test]
fn an_archive_written_the_go_way_passes() {
    // Start at .120 so that the first start_time is trimmed to ".12Z".
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 42,
            start_ms: 1_672_531_200_120,
            ..Default::default()
        },
    );
    assert_eq!(go_time(&ops[0].created_at), "2023-01-01T00:00:00.12Z");
    let tmp = TempDir::new("verify-go");
    let dir = tmp.path();
    let want = write_go_archive(dir, &ops);
    let out = verify(dir);
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    assert!(out.out().contains(&want[1].hash), "{}", out.out());

    // The test is only worth something if the quirks are really there.
    let idx = read_index(dir);
    assert!(idx["bundles"][0].get("parent").is_none());
    assert!(idx["bundles"][0]["start_time"]
        .as_str()
        .unwrap()
        .ends_with(".12Z"));
    let file_len = std::fs::metadata(dir.join(bundle(1))).unwrap().len();
    assert!(idx["bundles"][0]["compressed_size"].as_u64().unwrap() < file_len);
}

#[test]
fn a_single_frame_level_3_file_the_python_way_passes() {
    let ops = generate(
        10_000,
        &SynthOptions {
            seed: 43,
            ..Default::default()
        },
    );
    let want = expected_bundles(&lines(&ops));
    let tmp = TempDir::new("verify-python");
    let dir = tmp.path();
    let content = joined(&ops);
    let file = zstd::stream::encode_all(&content[..], 3).unwrap();
    std::fs::write(dir.join(bundle(1)), &file).unwrap();
    let dids: std::collections::HashSet<&str> = ops.iter().map(|o| o.did.as_str()).collect();
    let entry = json!({
        "bundle_number": 1,
        "start_time": ops[0].created_at,
        "end_time": ops[9_999].created_at,
        "operation_count": 10_000,
        "did_count": dids.len(),
        "hash": want[0].hash,
        "content_hash": want[0].content_hash,
        "parent": "",
        "compressed_hash": sha256_hex(&file),
        "compressed_size": file.len(),
        "uncompressed_size": content.len(),
        "cursor": "",
        "created_at": "2026-11-24T10:00:00.123456Z",
    });
    // No total_uncompressed_size_bytes, as the Python reference writes.
    write_index(dir, vec![entry], false);
    let out = verify(dir);
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    assert!(out.out().contains(&want[0].hash), "{}", out.out());
}

/// Runs plc-verify with its stdout closed before it writes anything.
fn verify_with_stdout_closed(dir: &Path) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(bin("plc-verify"))
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_closing_stdout_does_not_turn_problems_into_success() {
    // Regression: the closed pipe ended plc-verify with exit 0 even when
    // the archive was damaged, so `plc-verify DIR | head` under pipefail
    // reported a broken archive as good.
    let (_tmp, dir) = copy("verify-closed");
    let (code, stderr) = verify_with_stdout_closed(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");

    let path = dir.join(bundle(1));
    let mut f = std::fs::read(&path).unwrap();
    f[100] ^= 0x01;
    std::fs::write(&path, f).unwrap();
    let (code, stderr) = verify_with_stdout_closed(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_directory_can_be_given_as_repo_like_the_other_tools() {
    let (_tmp, dir) = copy("verify-repo-flag");
    let d = dir.to_str().unwrap();
    let positional = run("plc-verify", &[d], b"");
    let flag = run("plc-verify", &["--repo", d], b"");
    assert_eq!(flag.code, Some(0), "{}{}", flag.out(), flag.stderr);
    assert_eq!(flag.out(), positional.out());
    assert!(flag.out().contains(&pristine().want[2].hash));
    // Exactly one of them.
    for args in [vec!["--repo", d, d], vec![]] {
        let out = run("plc-verify", &args, b"");
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

/// plc-verify --json's lines, each parsed as one JSON object.
fn json_lines(out: &Output) -> Vec<Value> {
    out.out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn json_output_is_one_object_per_problem_and_a_summary() {
    // Clean: only the summary, with the head computed by the test.
    let (_tmp, dir) = copy("verify-json-clean");
    let out = run("plc-verify", &["--json", dir.to_str().unwrap()], b"");
    assert_eq!(out.code, Some(0), "{}{}", out.out(), out.stderr);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", out.out());
    let want = &pristine().want;
    assert_eq!(lines[0]["ok"], json!(true));
    assert_eq!(lines[0]["bundles"], json!(3));
    assert_eq!(lines[0]["operations"], json!(30_000));
    assert_eq!(lines[0]["head"], json!(want[2].hash));
    assert_eq!(lines[0]["problems"], json!(0));

    // Damaged: two index fields and an interrupted seal.
    let (_tmp, dir) = copy("verify-json-damaged");
    edit_index(&dir, |i| {
        i["bundles"][1]["did_count"] = json!(1);
        i["total_size_bytes"] = json!(7);
    });
    std::fs::copy(dir.join(bundle(3)), dir.join(bundle(4))).unwrap();
    let out = run("plc-verify", &["--json", dir.to_str().unwrap()], b"");
    assert_eq!(out.code, Some(1), "{}{}", out.out(), out.stderr);
    let lines = json_lines(&out);
    let (summary, items) = lines.split_last().unwrap();
    let problems: Vec<&Value> = items
        .iter()
        .filter(|v| v.get("severity").is_none())
        .collect();
    let warnings: Vec<&Value> = items
        .iter()
        .filter(|v| v["severity"] == json!("warning"))
        .collect();
    assert_eq!(problems.len() + warnings.len(), items.len());
    assert!(
        problems
            .iter()
            .any(|p| p["bundle"] == json!(2) && p["field"] == json!("did_count")),
        "{}",
        out.out()
    );
    assert!(
        problems
            .iter()
            .any(|p| p["bundle"].is_null() && p["field"] == json!("total_size_bytes")),
        "{}",
        out.out()
    );
    assert!(problems.iter().all(|p| p["message"].is_string()));
    assert_eq!(warnings.len(), 1, "{}", out.out());
    assert_eq!(warnings[0]["bundle"], json!(4));
    assert_eq!(summary["ok"], json!(false));
    assert_eq!(summary["problems"], json!(problems.len()));
    assert_eq!(summary["warnings"], json!(1));
}
