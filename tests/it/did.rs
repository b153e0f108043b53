//! plc-index and plc-did against an independent model of the directory's
//! DID routes (tests/it/common/did_model.rs), on archives of generated
//! DID histories: every DID of a multi-bundle archive on every route,
//! unknown, malformed and percent-encoded DIDs, archives written the way
//! other implementations write them, incremental indexing across seals,
//! a kill -9 while indexing, and plc-index racing plc-seal.

use crate::common::did_model::{self, expected, Expected};
use crate::common::did_synth::{self, GenOp};
use crate::common::run::{self, TempDir};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const ROUTES: [(&str, &str); 5] = [
    ("--doc", ""),
    ("--data", "/data"),
    ("--log", "/log"),
    ("--last", "/log/last"),
    ("--audit", "/log/audit"),
];

fn bin(name: &str) -> &'static str {
    match name {
        "plc-index" => env!("CARGO_BIN_EXE_plc-index"),
        "plc-did" => env!("CARGO_BIN_EXE_plc-did"),
        other => run::bin(other),
    }
}

fn tool(name: &str, args: &[&str], stdin: &[u8]) -> run::Output {
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    run::Output {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn seal(repo: &Path, ops: &[GenOp]) {
    let out = tool(
        "plc-seal",
        &["-q", "--repo", repo.to_str().unwrap()],
        &did_synth::lines(ops),
    );
    assert_eq!(out.code, Some(0), "plc-seal: {}", out.stderr);
}

fn index(repo: &Path, extra: &[&str]) -> run::Output {
    let mut args = vec!["--repo", repo.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = tool("plc-index", &args, b"");
    assert_eq!(out.code, Some(0), "plc-index: {}", out.stderr);
    out
}

/// Each DID's operations, and the DIDs in order of first appearance.
fn histories(ops: &[GenOp]) -> (Vec<String>, HashMap<String, Vec<&GenOp>>) {
    let mut order = Vec::new();
    let mut by: HashMap<String, Vec<&GenOp>> = HashMap::new();
    for o in ops {
        by.entry(o.did.clone())
            .or_insert_with(|| {
                order.push(o.did.clone());
                Vec::new()
            })
            .push(o);
    }
    (order, by)
}

/// The line plc-did must print for an expected answer.
fn expected_line(did: &str, e: &Expected) -> Vec<u8> {
    if e.status == 200 {
        return e.body.clone();
    }
    let msg: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
    serde_json::json!({"did": did, "error": msg["message"]})
        .to_string()
        .into_bytes()
}

/// Runs plc-did on every route for `inputs` (stdin) and compares each
/// line with the model's answer for `decoded[i]`.
fn check_against_model(
    repo: &Path,
    inputs: &[String],
    decoded: &[String],
    by: &HashMap<String, Vec<&GenOp>>,
) {
    let stdin: Vec<u8> = inputs
        .iter()
        .flat_map(|d| format!("{d}\n").into_bytes())
        .collect();
    for (flag, route) in ROUTES {
        let out = tool("plc-did", &["--repo", repo.to_str().unwrap(), flag], &stdin);
        let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
        assert_eq!(
            lines.len(),
            inputs.len() + 1,
            "{flag}: one line per DID; {}",
            out.stderr
        );
        assert_eq!(
            lines[inputs.len()],
            b"",
            "{flag}: output ends with a newline"
        );
        let mut failures = 0;
        for (i, did) in decoded.iter().enumerate() {
            let ops = by.get(did).map(Vec::as_slice).unwrap_or_default();
            // What the directory answers for the input as given: a
            // segment that does not decode is refused before any lookup.
            let want = match did_model::decode_segment(&inputs[i]) {
                Ok(_) => expected(route, did, ops),
                Err(refused) => refused,
            };
            if want.status != 200 {
                failures += 1;
                let got: serde_json::Value = serde_json::from_slice(lines[i])
                    .unwrap_or_else(|e| panic!("{flag} {did}: not JSON: {e}"));
                let exp: serde_json::Value =
                    serde_json::from_slice(&expected_line(did, &want)).unwrap();
                assert_eq!(got, exp, "{flag} input {:?}", inputs[i]);
            } else {
                assert!(
                    lines[i] == want.body.as_slice(),
                    "{flag} input {:?}:\n got  {}\n want {}",
                    inputs[i],
                    String::from_utf8_lossy(lines[i]),
                    String::from_utf8_lossy(&want.body)
                );
            }
        }
        let code = if failures > 0 { 1 } else { 0 };
        assert_eq!(out.code, Some(code), "{flag}: exit status; {}", out.stderr);
    }
}

/// Every DID of `ops`, plus unknown, malformed and percent-encoded ones.
fn inputs_for(order: &[String]) -> (Vec<String>, Vec<String>) {
    let mut inputs: Vec<String> = order.to_vec();
    let mut decoded: Vec<String> = order.to_vec();
    for d in order.iter().take(40) {
        inputs.push(d.replace(':', "%3A"));
        decoded.push(d.clone());
        inputs.push(d.replacen(':', "%3a", 1));
        decoded.push(d.clone());
    }
    for odd in [
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        "not-a-did",
        "",
        "did:plc:short",
        "DID:PLC:ABCDEFGHIJKLMNOPQRSTUVWX",
        "did:plc:with\"quote",
        "did:web:example.com",
        "bad%zzescape",
        "did%3Aplc%3A%FF",
        "did:plc:%E9",
        "did:plc:trailing%",
        "did%3aplc%3aab%2",
    ] {
        inputs.push(odd.to_string());
        decoded.push(odd.to_string());
    }
    (inputs, decoded)
}

#[test]
fn plc_did_answers_every_did_of_a_multi_bundle_archive_as_the_model_does() {
    let ops = did_synth::generate(30_000, 11);
    let dir = TempDir::new("did-model");
    let repo = dir.path().join("repo");
    seal(&repo, &ops);
    index(&repo, &[]);
    let (order, by) = histories(&ops);
    // The generator makes what the rules distinguish.
    let has = |f: &dyn Fn(&GenOp) -> bool| ops.iter().filter(|o| f(o)).count();
    assert!(has(&|o| o.nullified) > 100);
    assert!(has(&|o| matches!(o.body, did_synth::Body::Tombstone)) > 100);
    assert!(has(&|o| matches!(o.body, did_synth::Body::Create { .. })) > 100);
    assert!(order.len() > 5000 && order.len() < 25_000);
    let (inputs, decoded) = inputs_for(&order);
    check_against_model(&repo, &inputs, &decoded, &by);
    // plc-verify is not disturbed by the index directory.
    let v = tool("plc-verify", &["-q", repo.to_str().unwrap()], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
}

#[test]
fn dids_given_as_arguments_and_an_archive_without_an_index() {
    let ops = did_synth::generate(10_000, 5);
    let dir = TempDir::new("did-args");
    let repo = dir.path().join("repo");
    seal(&repo, &ops);
    let r = repo.to_str().unwrap();
    let none = tool("plc-did", &["--repo", r, &ops[0].did], b"");
    assert_eq!(none.code, Some(2));
    assert!(none.stderr.contains("plc-index"), "{}", none.stderr);
    index(&repo, &[]);
    let (_, by) = histories(&ops);
    let a = &ops[0].did;
    let out = tool(
        "plc-did",
        &["--repo", r, "--audit", a, "did:plc:nothere", a],
        b"",
    );
    let want_a = expected("/log/audit", a, &by[a]).body;
    let mut want = want_a.clone();
    want.push(b'\n');
    want.extend_from_slice(
        br#"{"did":"did:plc:nothere","error":"DID not registered: did:plc:nothere"}"#,
    );
    want.push(b'\n');
    want.extend_from_slice(&want_a);
    want.push(b'\n');
    assert_eq!(out.out(), String::from_utf8(want).unwrap());
    assert_eq!(out.code, Some(1));
    let usage = tool("plc-did", &["--repo", r, "--log", "--audit", a], b"");
    assert_eq!(usage.code, Some(2));
    let bad = tool("plc-did", &["--repo", r], b"\xff\n");
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("line 1"), "{}", bad.stderr);
}

#[test]
fn archives_of_many_frames_with_a_metadata_frame_are_indexed() {
    let ops = did_synth::generate(20_000, 3);
    let dir = TempDir::new("did-go");
    let repo = dir.path().join("repo");
    crate::common::other_impls::write_go_archive(&repo, &did_synth::as_synth(&ops));
    // One bundle per batch: each read the way an incremental run reads
    // its lone new bundle (file hashed on a second thread).
    index(&repo, &["--batch", "1", "--threads", "2"]);
    let (order, by) = histories(&ops);
    let some: Vec<String> = order.iter().step_by(7).cloned().collect();
    check_against_model(&repo, &some, &some, &by);
}

fn manifest(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo.join("did-index/manifest.json")).unwrap()).unwrap()
}

/// The names in did-index/ other than the manifest and the lock.
fn segment_files(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("did-index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json" && n != ".lock")
        .collect();
    v.sort();
    v
}

#[test]
fn indexing_is_incremental_across_seals_and_idempotent() {
    let ops = did_synth::generate(50_000, 21);
    let dir = TempDir::new("did-incr");
    let repo = dir.path().join("repo");
    seal(&repo, &ops[..20_000]);
    let first = index(&repo, &["--batch", "1"]);
    assert!(
        first.stderr.contains("2 new bundles indexed"),
        "{}",
        first.stderr
    );
    for (n, upto) in [(1, 30_000), (2, 50_000)] {
        let start = if n == 1 { 20_000 } else { 30_000 };
        seal(&repo, &ops[start..upto]);
        let out = index(&repo, &["--batch", "1"]);
        assert!(
            out.stderr.contains(&format!("{n} new bundles indexed")),
            "{}",
            out.stderr
        );
        let (order, by) = histories(&ops[..upto]);
        let some: Vec<String> = order.iter().step_by(5).cloned().collect();
        check_against_model(&repo, &some, &some, &by);
    }
    // Segments were merged; the manifest names exactly the files present.
    let m = manifest(&repo);
    assert_eq!(m["last_bundle"], 5);
    let mut named: Vec<String> = m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(named, segment_files(&repo));
    assert!(named.len() < 5, "merged: {named:?}");
    // A run with nothing new changes nothing.
    let before: Vec<(String, Vec<u8>)> = segment_files(&repo)
        .into_iter()
        .chain(["manifest.json".to_string()])
        .map(|n| {
            (
                n.clone(),
                std::fs::read(repo.join("did-index").join(&n)).unwrap(),
            )
        })
        .collect();
    let again = index(&repo, &[]);
    assert!(
        again.stderr.contains("0 new bundles indexed"),
        "{}",
        again.stderr
    );
    for (n, bytes) in before {
        assert_eq!(
            std::fs::read(repo.join("did-index").join(&n)).unwrap(),
            bytes,
            "{n}"
        );
    }
}

#[test]
fn a_bundle_file_that_does_not_match_its_hash_is_refused_and_the_index_kept() {
    let ops = did_synth::generate(30_000, 17);
    let dir = TempDir::new("did-tamper");
    let repo = dir.path().join("repo");
    seal(&repo, &ops[..20_000]);
    index(&repo, &[]);
    seal(&repo, &ops[20_000..]);
    let file = repo.join("000003.jsonl.zst");
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    std::fs::write(&file, &bad).unwrap();
    let before = std::fs::read(repo.join("did-index/manifest.json")).unwrap();
    // The lone new bundle (hashed beside the decoding) and the one-thread
    // path refuse it alike, and leave the index as it was.
    for threads in ["2", "1"] {
        let out = tool(
            "plc-index",
            &["--repo", repo.to_str().unwrap(), "--threads", threads],
            b"",
        );
        assert_eq!(out.code, Some(2), "threads {threads}: {}", out.stderr);
        assert!(
            out.stderr.contains("bundle 000003")
                && out.stderr.contains("compressed_hash")
                && out.stderr.lines().count() == 1,
            "threads {threads}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(repo.join("did-index/manifest.json")).unwrap(),
            before
        );
    }
    // From scratch, on many threads, the same.
    std::fs::remove_dir_all(repo.join("did-index")).unwrap();
    let out = tool("plc-index", &["--repo", repo.to_str().unwrap()], b"");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("bundle 000003"), "{}", out.stderr);
    // Put back, it is indexed.
    std::fs::write(&file, &good).unwrap();
    index(&repo, &[]);
    assert_eq!(manifest(&repo)["last_bundle"], 3);
    let (order, by) = histories(&ops);
    let some: Vec<String> = order.iter().step_by(11).cloned().collect();
    check_against_model(&repo, &some, &some, &by);
}

#[test]
fn a_kill_during_indexing_leaves_an_index_the_next_run_completes() {
    let ops = did_synth::generate(60_000, 33);
    let dir = TempDir::new("did-kill");
    let repo = dir.path().join("repo");
    seal(&repo, &ops);
    let r = repo.to_str().unwrap().to_string();
    let (order, _) = histories(&ops);
    let sample: Vec<String> = order.iter().step_by(11).cloned().collect();
    for delay_ms in [0u64, 3, 10, 25, 60, 120, 250] {
        let mut child = Command::new(bin("plc-index"))
            .args(["--repo", &r, "--batch", "1", "--threads", "1", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the kill left is an index a reader can use: the one for
        // the bundles its manifest names, or none yet.
        if repo.join("did-index/manifest.json").exists() {
            let upto = manifest(&repo)["last_bundle"].as_u64().unwrap() as usize * 10_000;
            let (_, by) = histories(&ops[..upto]);
            check_against_model(&repo, &sample, &sample, &by);
        }
    }
    index(&repo, &["--batch", "1"]);
    let (_, by) = histories(&ops);
    check_against_model(&repo, &sample, &sample, &by);
    let named = manifest(&repo)["segments"].as_array().unwrap().len();
    assert_eq!(segment_files(&repo).len(), named, "no stray files remain");
}

#[test]
fn plc_index_racing_plc_seal_indexes_only_sealed_bundles() {
    let ops = did_synth::generate(60_000, 44);
    let dir = TempDir::new("did-race");
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap().to_string();
    let mut sealer = Command::new(bin("plc-seal"))
        .args(["-q", "--repo", &r])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sin = sealer.stdin.take().unwrap();
    let bytes = did_synth::lines(&ops);
    let feeder = std::thread::spawn(move || {
        for chunk in bytes.chunks(bytes.len() / 6 + 1) {
            sin.write_all(chunk).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    });
    let mut runs = 0;
    while sealer.try_wait().unwrap().is_none() || runs == 0 {
        if repo.join("plc_bundles.json").exists() {
            let out = tool("plc-index", &["--repo", &r, "--batch", "1", "-q"], b"");
            assert_eq!(out.code, Some(0), "plc-index during a seal: {}", out.stderr);
            runs += 1;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    feeder.join().unwrap();
    assert!(sealer.wait().unwrap().success());
    index(&repo, &["--batch", "1"]);
    let (order, by) = histories(&ops);
    let sample: Vec<String> = order.iter().step_by(9).cloned().collect();
    check_against_model(&repo, &sample, &sample, &by);
}
