//! plc-diff: equal archives, a prefix, and archives that differ by a
//! flipped `nullified`, by one operation written in another key order and
//! by a missing operation; each answer compared with what the test itself
//! changed in the generator's lines.
use crate::common;

use common::other_impls::{joined, write_go_archive};
use common::run::*;
use common::test_mirror::{Faults, Style, TestMirror};
use plcbundle::synth::SynthOp;
use serde_json::{json, Value};

fn seal_ops(repo: &str, ops: &[SynthOp]) {
    let o = run(
        "plc-seal",
        &["-q", "--repo", repo, "--origin", "https://plc.directory"],
        &joined(ops),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

/// The `--json` answer as a list of objects.
fn json_lines(o: &Output) -> Vec<Value> {
    o.out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The first operation of bundle 2 whose line says `"nullified":false`.
fn in_bundle_2(ops: &[SynthOp]) -> usize {
    (10_000..20_000)
        .find(|&i| String::from_utf8_lossy(&ops[i].line).contains("\"nullified\":false"))
        .expect("an operation that is not nullified")
}

#[test]
fn equal_archives_in_two_layouts_and_a_prefix_agree() {
    let ops = synth(30_000, 21);
    let t = TempDir::new("diff-same");
    seal_ops(&t.join("ours"), &ops);
    write_go_archive(&t.path().join("go"), &ops);
    write_go_archive(&t.path().join("short"), &ops[..20_000]);
    let want = expected_bundles(&ops.iter().map(|o| o.line.clone()).collect::<Vec<_>>());

    let o = run("plc-diff", &[&t.join("ours"), &t.join("go")], b"");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.out().starts_with("same:"), "{}", o.out());
    assert!(o.out().contains("both hold 3 bundles"), "{}", o.out());
    assert!(o.out().contains(&want[2].hash), "{}", o.out());

    let o = run("plc-diff", &[&t.join("short"), &t.join("ours")], b"");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let out = o.out();
    assert!(out.starts_with("prefix:"), "{out}");
    assert!(out.contains("holds 2 bundles"), "{out}");
    assert!(out.contains("holds 3"), "{out}");
    assert!(out.contains("A is a prefix of B"), "{out}");
    assert!(out.contains(&want[1].hash), "{out}");

    let o = run(
        "plc-diff",
        &["--json", &t.join("ours"), &t.join("short")],
        b"",
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.is_empty(), "{}", o.out());
}

#[test]
fn a_flipped_nullified_is_named_also_through_a_mirror() {
    let ops = synth(30_000, 22);
    let t = TempDir::new("diff-nullified");
    write_go_archive(&t.path().join("a"), &ops);
    let mut other = ops.clone();
    let i = in_bundle_2(&other);
    let line = String::from_utf8(other[i].line.clone()).unwrap();
    other[i].line = line
        .replace("\"nullified\":false", "\"nullified\":true")
        .into_bytes();
    write_go_archive(&t.path().join("b"), &other);
    let mirror = TestMirror::start(t.path().join("b"), Style::Static, Faults::default());

    let o = run("plc-diff", &["--json", &t.join("a"), &mirror.url()], b"");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(
        json_lines(&o),
        vec![json!({
            "bundle": 2,
            "cid": ops[i].cid,
            "kind": "changed",
            "fields": ["nullified"],
            "did": ops[i].did,
            "createdAt": ops[i].created_at,
        })]
    );
    // Only the indexes and the two bundles 2 were read from the mirror.
    let reqs = mirror.requests();
    assert_eq!(
        reqs,
        vec!["/index.json", "/plc_bundles.json", "/000002.jsonl.zst"],
        "{reqs:?}"
    );

    let o = run("plc-diff", &[&t.join("a"), &t.join("b")], b"");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let out = o.out();
    assert!(out.contains("part at bundle 2"), "{out}");
    assert!(out.contains("1 operation differ"), "{out}");
    assert!(
        out.contains(&format!("{} {}", ops[i].cid, ops[i].did)),
        "{out}"
    );
    assert!(out.contains("changed: nullified"), "{out}");
}

#[test]
fn the_same_operation_in_another_key_order_has_no_changed_field() {
    let ops = synth(20_000, 23);
    let t = TempDir::new("diff-keys");
    write_go_archive(&t.path().join("a"), &ops);
    let mut other = ops.clone();
    let i = 12_345;
    // serde_json without preserve_order writes keys sorted: the same
    // values, other bytes.
    let v: Value = serde_json::from_slice(&other[i].line).unwrap();
    other[i].line = serde_json::to_vec(&v).unwrap();
    assert_ne!(other[i].line, ops[i].line, "the rewrite changes the bytes");
    write_go_archive(&t.path().join("b"), &other);

    let o = run("plc-diff", &["--json", &t.join("a"), &t.join("b")], b"");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(
        json_lines(&o),
        vec![json!({
            "bundle": 2,
            "cid": ops[i].cid,
            "kind": "changed",
            "fields": [],
            "did": ops[i].did,
            "createdAt": ops[i].created_at,
        })]
    );
    let o = run("plc-diff", &[&t.join("a"), &t.join("b")], b"");
    assert!(o.out().contains("same values, other bytes"), "{}", o.out());
}

#[test]
fn a_missing_operation_shows_on_both_sides_of_the_shifted_bundle() {
    let ops = synth(30_000, 24);
    let t = TempDir::new("diff-missing");
    write_go_archive(&t.path().join("a"), &ops);
    let i = 15_000;
    let mut other = ops.clone();
    other.remove(i);
    write_go_archive(&t.path().join("b"), &other);

    // B's bundle 2 lacks operation i and takes in A's 20,001st instead.
    let o = run("plc-diff", &["--json", &t.join("a"), &t.join("b")], b"");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let object = |k: &SynthOp, kind: &str| json!({"bundle": 2, "cid": k.cid, "kind": kind, "did": k.did, "createdAt": k.created_at});
    assert_eq!(
        json_lines(&o),
        vec![
            object(&ops[i], "only-in-a"),
            object(&ops[20_000], "only-in-b")
        ]
    );
}

#[test]
fn an_unreadable_argument_is_status_2() {
    let t = TempDir::new("diff-bad");
    let o = run("plc-diff", &[&t.join("nothing"), &t.join("nothing")], b"");
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.starts_with("plc-diff: "), "{}", o.stderr);
    let o = run("plc-diff", &["only-one"], b"");
    assert_eq!(o.code, Some(2), "{}", o.stderr);
}
