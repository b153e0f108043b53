//! plc-clone: copying another archive through the whole pipeline from
//! every kind of source, every content_hash and hash compared with what
//! the generator's bytes give (sha2 in the test, not the code); a tampered
//! bundle stopping the copy before it; resuming; refusing a repository
//! that parts from the mirror; riding out faults; and continuing the copy
//! from the directory with plc-export.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::other_impls::{joined, write_go_archive};
use common::run::*;
use common::test_mirror::{Faults, Style, TestMirror};
use plcbundle::synth::SynthOp;

use std::path::Path;
use std::process::{Command, Stdio};

const ORIGIN: &str = "https://plc.directory";

/// Seals `ops` into `repo` with our own pipeline's last stage.
fn seal_ops(repo: &str, ops: &[SynthOp], origin: &str) {
    let o = run(
        "plc-seal",
        &["-q", "--repo", repo, "--origin", origin],
        &joined(ops),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

/// `plc-clone --url URL --repo REPO EXTRA | plc-dedup | plc-chunk | plc-seal`.
fn clone_into(url: &str, repo: &str, origin: &str, extra: &[&str]) -> Vec<Output> {
    let mut args = vec!["--url", url, "--repo", repo, "--backoff", "10ms"];
    args.extend_from_slice(extra);
    pipeline(&[
        stage("plc-clone", &args),
        stage("plc-dedup", &["--repo", repo]),
        stage("plc-chunk", &["-q"]),
        stage("plc-seal", &["-q", "--repo", repo, "--origin", origin]),
    ])
}

fn assert_all_ok(outs: &[Output]) {
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o.code, Some(0), "stage {i}: {}", o.stderr);
    }
}

fn lines(ops: &[SynthOp]) -> Vec<Vec<u8>> {
    ops.iter().map(|o| o.line.clone()).collect()
}

#[test]
fn from_a_go_style_server_every_bundle_keeps_the_mirrors_hashes() {
    let ops = synth(30_000, 11);
    let t = TempDir::new("clone-go");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(t.path().join("src"), Style::Server, Faults::default());
    let outs = clone_into(&mirror.url(), &t.join("dst"), ORIGIN, &["-q"]);
    assert_all_ok(&outs);
    assert_archive(&t.path().join("dst"), &want);
    let reqs = mirror.requests();
    assert!(reqs.contains(&"/index.json".to_string()), "{reqs:?}");
    for n in 1..=3 {
        assert!(reqs.contains(&format!("/data/{n}")), "{reqs:?}");
    }
    // The result verifies, and a second run has nothing to copy.
    let v = run("plc-verify", &[&t.join("dst")], b"");
    assert_eq!(v.code, Some(0), "{}", v.out());
    let again = run(
        "plc-clone",
        &["--url", &mirror.url(), "--repo", &t.join("dst")],
        b"",
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.is_empty());
}

#[test]
fn from_a_static_host_a_local_directory_and_plc_serve() {
    let ops = synth(30_000, 12);
    let t = TempDir::new("clone-kinds");
    let src = t.join("src");
    seal_ops(&src, &ops, ORIGIN);
    let want = expected_bundles(&lines(&ops));
    let stat = TestMirror::start(t.path().join("src"), Style::Static, Faults::default());
    let serve = Serve::start(&src);
    for (name, url) in [
        ("static", stat.url()),
        ("dir", src.clone()),
        ("serve", serve.url.clone()),
    ] {
        let dst = t.join(name);
        let outs = clone_into(&url, &dst, ORIGIN, &["-q", "--jobs", "3"]);
        assert_all_ok(&outs);
        assert_archive(Path::new(&dst), &want);
    }
    let reqs = stat.requests();
    assert!(reqs.contains(&"/plc_bundles.json".to_string()), "{reqs:?}");
    assert!(reqs.contains(&"/000003.jsonl.zst".to_string()), "{reqs:?}");
}

#[test]
fn a_range_writes_exactly_those_bundles_lines() {
    let ops = synth(30_000, 13);
    let t = TempDir::new("clone-range");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let o = run(
        "plc-clone",
        &["-q", "--url", &t.join("src"), "--bundles", "2-3"],
        b"",
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let mut expected = want[1].content.clone();
    expected.extend_from_slice(&want[2].content);
    assert!(o.stdout == expected, "bundles 2-3 are not the output");
}

#[test]
fn a_tampered_bundle_stops_the_clone_before_it_then_the_clone_resumes() {
    let ops = synth(30_000, 14);
    let t = TempDir::new("clone-tamper");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(
        t.path().join("src"),
        Style::Server,
        Faults {
            tampered: Some(2),
            ..Faults::default()
        },
    );
    let dst = t.join("dst");
    let outs = clone_into(&mirror.url(), &dst, ORIGIN, &["-q"]);
    assert_eq!(outs[0].code, Some(1), "{}", outs[0].stderr);
    assert!(
        outs[0].stderr.contains("bundle 000002: compressed_hash"),
        "{}",
        outs[0].stderr
    );
    for o in &outs[1..] {
        assert_eq!(o.code, Some(0), "{}", o.stderr);
    }
    // Bundle 1 is sealed, nothing of bundle 2 is anywhere.
    assert_archive(Path::new(&dst), &want[..1]);
    let leftovers: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl.zst"))
        .collect();
    assert_eq!(leftovers, vec!["000001.jsonl.zst".to_string()]);

    // The mirror is repaired: the clone continues after bundle 1.
    mirror.set_faults(Faults::default());
    let before = mirror.requests().len();
    let outs = clone_into(&mirror.url(), &dst, ORIGIN, &["-q"]);
    assert_all_ok(&outs);
    assert_archive(Path::new(&dst), &want);
    let asked: Vec<String> = mirror.requests()[before..].to_vec();
    assert!(!asked.contains(&"/data/1".to_string()), "{asked:?}");
}

/// `ops` with `"nullified":false` turned true in the first operation of
/// bundle 2 that has it; returns its index.
fn flip_in_bundle_2(ops: &mut [SynthOp]) -> usize {
    let i = (10_000..20_000)
        .find(|&i| String::from_utf8_lossy(&ops[i].line).contains("\"nullified\":false"))
        .unwrap();
    let s = String::from_utf8(ops[i].line.clone()).unwrap();
    ops[i].line = s
        .replace("\"nullified\":false", "\"nullified\":true")
        .into_bytes();
    i
}

#[test]
fn a_repo_that_parts_from_the_mirror_is_refused_and_left_unchanged() {
    let ops = synth(30_000, 15);
    let t = TempDir::new("clone-diverged");
    write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(t.path().join("src"), Style::Static, Faults::default());
    let mut other = ops[..20_000].to_vec();
    flip_in_bundle_2(&mut other);
    let dst = t.join("dst");
    seal_ops(&dst, &other, ORIGIN);
    let index_before = std::fs::read(t.path().join("dst/plc_bundles.json")).unwrap();
    let o = run("plc-clone", &["--url", &mirror.url(), "--repo", &dst], b"");
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stdout.is_empty());
    assert!(o.stderr.contains("part at bundle 2"), "{}", o.stderr);
    assert!(!mirror.requests().iter().any(|r| r.ends_with(".jsonl.zst")));
    let index_after = std::fs::read(t.path().join("dst/plc_bundles.json")).unwrap();
    assert!(index_before == index_after, "the index changed");
}

#[test]
fn another_origin_and_a_shorter_mirror_are_refused() {
    let ops = synth(30_000, 16);
    let t = TempDir::new("clone-refuse");
    write_go_archive(&t.path().join("short"), &ops[..20_000]);
    let foreign = t.join("foreign");
    seal_ops(&foreign, &ops[..10_000], "https://other.example");
    let o = run(
        "plc-clone",
        &["--url", &t.join("short"), "--repo", &foreign],
        b"",
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("refusing to mix origins"), "{}", o.stderr);

    let longer = t.join("longer");
    seal_ops(&longer, &ops, ORIGIN);
    let o = run(
        "plc-clone",
        &["--url", &t.join("short"), "--repo", &longer],
        b"",
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("fewer than the 3"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn faults_are_ridden_out_and_retries_running_out_is_status_3() {
    let ops = synth(30_000, 17);
    let t = TempDir::new("clone-faults");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(
        t.path().join("src"),
        Style::Server,
        Faults {
            fail_first: 2,
            too_many_first: 1,
            truncate_first: 2,
            ..Faults::default()
        },
    );
    let dst = t.join("dst");
    let outs = clone_into(&mirror.url(), &dst, ORIGIN, &["--jobs", "2"]);
    assert_all_ok(&outs);
    assert_archive(Path::new(&dst), &want);
    let notes = &outs[0].stderr;
    assert!(notes.contains("HTTP 500"), "{notes}");
    assert!(notes.contains("HTTP 429"), "{notes}");
    assert!(notes.contains("cut off"), "{notes}");

    mirror.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let o = run(
        "plc-clone",
        &[
            "-q",
            "--url",
            &mirror.url(),
            "--retries",
            "2",
            "--backoff",
            "10ms",
        ],
        b"",
    );
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert!(o.stdout.is_empty());
    assert!(
        o.stderr.contains("giving up after 3 attempts"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_redirect_to_another_host_is_refused() {
    let ops = synth(10_000, 18);
    let t = TempDir::new("clone-redirect");
    write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(
        t.path().join("src"),
        Style::Server,
        Faults {
            redirect_to: Some("http://127.0.0.2:9".into()),
            ..Faults::default()
        },
    );
    let o = run("plc-clone", &["-q", "--url", &mirror.url()], b"");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("redirect"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn a_clone_continues_from_the_directory_with_plc_export() {
    let ops = synth(45_000, 19);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let t = TempDir::new("clone-continue");
    let src = t.join("src");
    seal_ops(&src, &ops[..30_000], &dir.url());
    let mirror = TestMirror::start(t.path().join("src"), Style::Static, Faults::default());
    let dst = t.join("dst");
    let outs = clone_into(&mirror.url(), &dst, &dir.url(), &["-q"]);
    assert_all_ok(&outs);
    assert_archive(Path::new(&dst), &expected_bundles(&lines(&ops[..30_000])));
    let outs = pipeline(&archive_stages(&dir.url(), &dst, &["-q"]));
    assert_all_ok(&outs);
    assert_archive(Path::new(&dst), &expected_bundles(&lines(&ops)));
}

/// `make -f scripts/plcbundle.mk TARGET VARS...` with the built binaries.
fn make(target: &str, vars: &[String]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(bin("plc-clone")).parent().unwrap();
    Command::new("make")
        .arg("-s")
        .arg("-f")
        .arg(root.join("scripts/plcbundle.mk"))
        .arg(target)
        .arg(format!("PLC_BIN={}", bin_dir.display()))
        .args(vars)
        .output()
        .expect("make is installed")
}

#[test]
fn make_clone_and_diff_with_mirror() {
    let ops = synth(20_000, 20);
    let t = TempDir::new("clone-make");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let mirror = TestMirror::start(t.path().join("src"), Style::Server, Faults::default());
    let dst = t.join("dst");
    let vars = [
        format!("REPO={dst}"),
        format!("MIRROR={}", mirror.url()),
        format!("PLC_URL={ORIGIN}"),
        "CLONE_FLAGS=-q".to_string(),
    ];
    let o = make("clone", &vars);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_archive(Path::new(&dst), &want);
    let o = make("diff", &vars);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("same:"), "{out}");

    // A mirror of another origin is refused before anything is copied.
    let o = make(
        "clone",
        &[
            format!("REPO={}", t.join("other")),
            format!("MIRROR={}", mirror.url()),
            "PLC_URL=https://other.example".to_string(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plc-clone: the mirror holds operations from"),
        "{err}"
    );
    assert!(!t.path().join("other/000001.jsonl.zst").exists());

    let o = make("diff", &[format!("REPO={dst}")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("diff: set MIRROR"), "{err}");
}

/// Peak RSS in KiB of `plc-clone ARGS` (stdout discarded), from GNU time.
fn clone_peak_rss_kib(args: &[&str]) -> u64 {
    let o = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg(bin("plc-clone"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("GNU time at /usr/bin/time (apt-get install time)");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    err.lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn memory_is_bounded_by_the_bundles_in_flight_not_the_archive() {
    let ops = synth(120_000, 25);
    let t = TempDir::new("clone-memory");
    let want = write_go_archive(&t.path().join("src"), &ops);
    let content_kib = want[0].content.len() as u64 / 1024;
    let src = t.join("src");
    let small = clone_peak_rss_kib(&["-q", "--jobs", "2", "--url", &src, "--bundles", "1-3"]);
    let large = clone_peak_rss_kib(&["-q", "--jobs", "2", "--url", &src]);
    // Nine more bundles copied; holding them would add about nine
    // bundles' content. The window holds at most two (plus a file each),
    // and the allocator may keep a freed content and file per download
    // thread: measured 24-30 MB against 23.5 MB for the small run, and
    // once 43 MB (3 bundles more) while the machine was deleting 45 GB.
    // Five bundles still tells a window from a hoard of nine.
    assert!(
        large < small + 5 * content_kib,
        "peak RSS {small} KiB for 3 bundles, {large} KiB for 12 (a bundle is {content_kib} KiB)"
    );
}
