//! scripts/plcbundle.mk driven by make, as cron would run it: two passes
//! continue one archive, an overlapping run stops at once saying why, and
//! status, verify and clean do what they say.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::run::*;
use plcbundle::synth::{generate, SynthOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn make_cmd(target: &str, repo: &str, url: &str, extra: &[&str]) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(bin("plc-seal")).parent().unwrap();
    let mut c = Command::new("make");
    c.arg("-s")
        .arg("-f")
        .arg(root.join("scripts/plcbundle.mk"))
        .arg(target)
        .arg(format!("REPO={repo}"))
        .arg(format!("PLC_URL={url}"))
        .arg(format!("PLC_BIN={}", bin_dir.display()))
        .arg("LAG=0")
        .args(extra);
    c
}

fn make(target: &str, repo: &str, url: &str, extra: &[&str]) -> Output {
    make_cmd(target, repo, url, extra).output().unwrap()
}

/// Holds the repository's writer lock, as another plc-seal would, until
/// dropped (flock(1) with -o keeps the lock in the flock process only).
struct LockHolder(std::process::Child);

impl LockHolder {
    fn take(repo: &str, tmp: &TempDir) -> LockHolder {
        let ready = tmp.path().join("holding");
        let child = Command::new("flock")
            .arg("-o")
            .arg(Path::new(repo).join(".plc-seal.lock"))
            .args([
                "sh",
                "-c",
                &format!("touch '{}'; exec sleep 30", ready.display()),
            ])
            .spawn()
            .unwrap();
        let holder = LockHolder(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "flock did not take the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        holder
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn two_make_archive_runs_continue_one_archive() {
    let ops = generate(
        35_000,
        &SynthOptions {
            seed: 51,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    dir.set_visible(15_000);
    let tmp = TempDir::new("make");
    let repo = tmp.join("repo");
    let url = dir.url();

    let o = make("archive", &repo, &url, &["RATE=0"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_archive(Path::new(&repo), &want[..1]);

    dir.set_visible(usize::MAX);
    let o = make("archive", &repo, &url, &["RATE=0"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_archive(Path::new(&repo), &want);

    let o = make("verify", &repo, &url, &[]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains(&want[2].hash));

    let o = make("status", &repo, &url, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let status = text(&o.stdout);
    assert!(
        status.contains("bundles:      3 (30000 operations)"),
        "{status}"
    );
    assert!(
        status.contains(&format!("head hash:    {}", want[2].hash)),
        "{status}"
    );
    assert!(status.contains(&format!("origin:       {url}")), "{status}");

    // clean removes stray temporary files and nothing else.
    let stray = Path::new(&repo).join(".000004.jsonl.zst.tmp");
    std::fs::write(&stray, b"half a bundle").unwrap();
    let o = make("clean", &repo, &url, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!stray.exists());
    assert_archive(Path::new(&repo), &want);
}

#[test]
fn an_overlapping_run_stops_at_once_and_says_why() {
    let ops = generate(
        30_000,
        &SynthOptions {
            seed: 52,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let tmp = TempDir::new("make-overlap");
    let repo = tmp.join("repo");
    let url = dir.url();

    // A slow first run: 10 requests a second, about 3 s in all.
    let first = make_cmd("archive", &repo, &url, &["RATE=600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir.requests() < 3 {
        assert!(Instant::now() < deadline, "the first run did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = make("archive", &repo, &url, &["RATE=0"]);
    assert!(!second.status.success(), "the overlapping run must fail");
    let err = text(&second.stderr);
    assert!(
        err.contains("plc-seal: ") && err.contains("locked by another writer"),
        "{err}"
    );

    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_archive(Path::new(&repo), &want);
    let o = make("verify", &repo, &url, &[]);
    assert!(o.status.success(), "{}", text(&o.stdout));

    // clean refuses while a writer holds the repository.
    let holder = LockHolder::take(&repo, &tmp);
    let o = make("clean", &repo, &url, &[]);
    drop(holder);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("a writer is running"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn archive_sh_runs_the_pipeline_and_names_the_stage_that_failed() {
    let ops = generate(
        21_000,
        &SynthOptions {
            seed: 53,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let tmp = TempDir::new("archive-sh");
    let repo = tmp.join("repo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(bin("plc-seal")).parent().unwrap();
    let archive = || {
        Command::new("bash")
            .arg(root.join("scripts/archive.sh"))
            .arg(&repo)
            .arg(dir.url())
            .env("PLC_BIN", bin_dir)
            .env("PLC_EXPORT_FLAGS", "--rate 0 --lag 0 -q")
            .output()
            .unwrap()
    };
    let o = archive();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_archive(Path::new(&repo), &want);

    // A writer holding the repository makes plc-seal fail: the script
    // exits with its status and names it.
    let holder = LockHolder::take(&repo, &tmp);
    let o = archive();
    drop(holder);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("archive.sh: plc-seal failed with exit status 2"),
        "{err}"
    );
    assert_archive(Path::new(&repo), &want);
}

#[test]
fn verify_says_which_status_plc_verify_gave() {
    // make exits 2 whenever a recipe fails; the recipe's last line tells
    // problems found (plc-verify's 1) from a repository it could not check.
    let tmp = TempDir::new("make-verify");
    let repo = tmp.join("repo");
    let o = run(
        "plc-seal",
        &["-q", "--repo", &repo],
        &common::other_impls::joined(&synth(10_000, 7)),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let f = Path::new(&repo).join("000001.jsonl.zst");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    let o = make("verify", &repo, "http://unused", &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "\nverify: plc-verify found problems in {repo} (its exit status 1; make's is 2)\n"
        )),
        "{err}"
    );
    let o = make("verify", &tmp.join("nothing"), "http://unused", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("could not check") && text(&o.stderr).contains("exit status 2"),
        "{}",
        text(&o.stderr)
    );
}
