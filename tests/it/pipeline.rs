//! The whole pipeline against the fake directory, end to end.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::run::*;
use plcbundle::synth::{generate, SynthOptions};

fn archive(url: &str, repo: &str, extra: &[&str]) -> Vec<Output> {
    pipeline(&archive_stages(url, repo, extra))
}

fn assert_ok(outs: &[Output]) {
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o.code, Some(0), "stage {i} failed: {}", o.stderr);
    }
}

#[test]
fn archives_everything_exactly_with_exclusive_after() {
    let ops = generate(
        52_345,
        &SynthOptions {
            seed: 11,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let tmp = TempDir::new("pipe-excl");
    let repo = tmp.join("repo");
    let outs = archive(&dir.url(), &repo, &[]);
    assert_ok(&outs);
    assert_archive(tmp.path().join("repo").as_path(), &expected_bundles(&lines));
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
}

#[test]
fn inclusive_after_gives_the_same_archive() {
    let ops = generate(
        31_234,
        &SynthOptions {
            seed: 12,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            inclusive_after: true,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("pipe-incl");
    let repo = tmp.join("repo");
    assert_ok(&archive(&dir.url(), &repo, &["--count", "100"]));
    assert_archive(tmp.path().join("repo").as_path(), &expected_bundles(&lines));
}

#[test]
fn a_second_run_continues_exactly_where_the_archive_ends() {
    let ops = generate(
        45_000,
        &SynthOptions {
            seed: 13,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    // Stop the first run's view inside a tie group at a bundle boundary:
    // the generator straddles position 20000 with one millisecond.
    assert_eq!(ops[19_999].created_ms, ops[20_000].created_ms);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    dir.set_visible(20_001);
    let tmp = TempDir::new("pipe-continue");
    let repo = tmp.join("repo");
    assert_ok(&archive(&dir.url(), &repo, &[]));
    assert_archive(
        tmp.path().join("repo").as_path(),
        &expected_bundles(&lines[..20_000]),
    );
    dir.set_visible(usize::MAX);
    assert_ok(&archive(&dir.url(), &repo, &[]));
    assert_archive(tmp.path().join("repo").as_path(), &expected_bundles(&lines));
    let v = run("plc-verify", &[&repo], b"");
    assert_eq!(v.code, Some(0), "{}{}", v.out(), v.stderr);
}
