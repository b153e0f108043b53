//! What survives what: SIGKILL at random moments, a full disk, /dev/full,
//! closed pipes. Each test drives the real pipeline against the fake
//! directory and checks the archive against bundles computed from the
//! generator's bytes.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::run::*;
use plcbundle::synth::{generate, SynthOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn stages(url: &str, repo: &str) -> Vec<(&'static str, Vec<String>)> {
    archive_stages(url, repo, &[])
}

fn verify_ok(repo: &str, when: &str) {
    let v = run("plc-verify", &[repo], b"");
    assert_eq!(
        v.code,
        Some(0),
        "{when}: plc-verify failed:\n{}{}",
        v.out(),
        v.stderr
    );
}

/// A small deterministic PRNG for kill moments (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn sigkill_at_random_moments_never_leaves_an_archive_that_fails_verification() {
    let ops = generate(
        52_000,
        &SynthOptions {
            seed: 21,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let tmp = TempDir::new("kill");

    // How long an uninterrupted run takes here, to spread the kills over it.
    let reference = tmp.join("reference");
    let t0 = Instant::now();
    let outs = pipeline(&stages(&url, &reference));
    let full = t0.elapsed();
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");
    assert_archive(Path::new(&reference), &want);

    let repo = tmp.join("repo");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut kills = 0;
    let mut completed = 0;
    while kills < 24 {
        // Kill somewhere between the start and 60% of a full run: early
        // kills land in the first fetches, late ones in bundle and index
        // writes; each run continues from what the previous one left.
        let delay = full.mul_f64(0.05 + 0.55 * rng.unit());
        let children = spawn_pipeline(&stages(&url, &repo));
        std::thread::sleep(delay);
        let mut children = children;
        for c in children.iter_mut() {
            let _ = c.kill(); // SIGKILL
        }
        let _ = wait_all(children);
        kills += 1;
        if Path::new(&repo).join("plc_bundles.json").exists() {
            verify_ok(&repo, &format!("after kill {kills} at {delay:?}"));
        } else {
            // Killed before plc-seal created the repository: nothing to
            // verify, and nothing half-made may exist either.
            assert!(
                !Path::new(&repo).exists()
                    || std::fs::read_dir(&repo).unwrap().all(|e| {
                        let name = e.unwrap().file_name();
                        !name.to_string_lossy().ends_with(".jsonl.zst")
                    }),
                "a bundle without an index after kill {kills}"
            );
        }
        let index = Path::new(&repo).join("plc_bundles.json");
        let idx_bundles = if index.exists() {
            read_index(Path::new(&repo))["last_bundle"]
                .as_u64()
                .unwrap()
        } else {
            0
        };
        if idx_bundles == want.len() as u64 {
            // Complete: it must be exactly the uninterrupted archive; then
            // start over so later kills hit interesting moments again.
            assert_archive(Path::new(&repo), &want);
            completed += 1;
            std::fs::remove_dir_all(&repo).unwrap();
        }
    }
    // Finish whatever is left with an uninterrupted run.
    let outs = pipeline(&stages(&url, &repo));
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");
    assert_archive(Path::new(&repo), &want);
    verify_ok(&repo, "final");
    let leftovers: Vec<String> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let inits: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".repo.init-"))
        .collect();
    assert!(
        inits.is_empty(),
        "repository creations left behind: {inits:?}"
    );
    eprintln!("{kills} kills, {completed} archives completed between kills");
}

/// Mounts a tmpfs of `size` at `at`; false when this machine does not allow
/// it (not root, no CAP_SYS_ADMIN).
fn mount_tmpfs(at: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_the_next_run_converges() {
    let ops = generate(
        41_000,
        &SynthOptions {
            seed: 22,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let tmp = TempDir::new("diskfull");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(
        mount_tmpfs(&mnt, "6m"),
        "cannot mount a tmpfs: this test needs root (or CAP_SYS_ADMIN) to fill a small disk"
    );
    let _unmount = Unmount(&mnt);
    let repo = mnt.join("repo").to_string_lossy().into_owned();
    // Each synthetic bundle is about 2.4 MB compressed: the third one does
    // not fit next to the first two.
    let outs = pipeline(&stages(&url, &repo));
    let seal = &outs[3];
    assert_eq!(seal.code, Some(2), "plc-seal must fail: {}", seal.stderr);
    assert!(
        seal.stderr.contains("No space left on device"),
        "{}",
        seal.stderr
    );
    assert!(seal.stderr.starts_with("plc-seal: "), "{}", seal.stderr);
    let idx_before = std::fs::read(Path::new(&repo).join("plc_bundles.json")).unwrap();
    let sealed = read_index(Path::new(&repo))["last_bundle"]
        .as_u64()
        .unwrap() as usize;
    assert!(sealed >= 1 && sealed < want.len(), "sealed {sealed}");
    assert_archive(Path::new(&repo), &want[..sealed]);
    verify_ok(&repo, "after the disk filled up");

    // A second attempt on the still-full disk fails the same way and
    // leaves the index byte for byte as it was.
    let outs = pipeline(&stages(&url, &repo));
    assert_eq!(outs[3].code, Some(2), "{}", outs[3].stderr);
    assert_eq!(
        std::fs::read(Path::new(&repo).join("plc_bundles.json")).unwrap(),
        idx_before
    );

    // Free space (grow the tmpfs) and run again: the same archive as a run
    // that never ran out.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    let outs = pipeline(&stages(&url, &repo));
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");
    assert_archive(Path::new(&repo), &want);
    verify_ok(&repo, "after space was freed");
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[test]
fn every_filter_fails_cleanly_on_dev_full() {
    let ops = generate(
        25_000,
        &SynthOptions {
            seed: 23,
            ..Default::default()
        },
    );
    let input: Vec<u8> = ops
        .iter()
        .flat_map(|o| [o.line.as_slice(), b"\n"].concat())
        .collect();
    let dir = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let url = dir.url();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "plc-export",
            ["--url", &url, "--rate", "0", "--lag", "0"]
                .map(String::from)
                .to_vec(),
        ),
        ("plc-dedup", vec![]),
        ("plc-chunk", vec![]),
    ];
    for (tool, args) in cases {
        let mut child = Command::new(bin(tool))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(dev_full())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tool}: {err}");
        assert!(err.starts_with(&format!("{tool}: ")), "{tool}: {err}");
        assert!(err.contains("No space left on device"), "{tool}: {err}");
        assert!(!err.contains("panicked"), "{tool}: {err}");
        assert_eq!(err.lines().count(), 1, "{tool}: one line: {err}");
    }
}

#[test]
fn chunk_is_quiet_when_its_reader_goes_away() {
    let ops = generate(
        30_000,
        &SynthOptions {
            seed: 24,
            ..Default::default()
        },
    );
    let input: Vec<u8> = ops
        .iter()
        .flat_map(|o| [o.line.as_slice(), b"\n"].concat())
        .collect();
    let mut child = spawn_piped("plc-chunk", &["--size", "100"]);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        assert!(first.starts_with('{'));
    } // the reader closes here, like `| head -n 1`
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn faults_on_the_wire_give_the_same_archive_as_a_clean_run() {
    let ops = generate(
        53_000,
        &SynthOptions {
            seed: 25,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    assert!(want.len() >= 5);
    let tmp = TempDir::new("wire");

    // Without faults.
    let clean = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let clean_repo = tmp.join("clean");
    let outs = pipeline(&stages(&clean.url(), &clean_repo));
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");

    // 500 on every 7th request, 429 + Retry-After: 1 on every 5th, every
    // 11th body cut off mid-line; the same directory otherwise.
    let faulty = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            fail_every: Some(7),
            too_many_every: Some(5),
            retry_after_secs: 1,
            truncate_every: Some(11),
            ..Default::default()
        },
    );
    let faulty_repo = tmp.join("faulty");
    let outs = pipeline(&stages(&faulty.url(), &faulty_repo));
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");
    assert!(
        faulty.requests() > clean.requests(),
        "faults were injected and retried"
    );

    for repo in [&clean_repo, &faulty_repo] {
        assert_archive(Path::new(repo), &want);
        verify_ok(repo, repo);
    }
    // Every content_hash and hash equal between the two archives (the
    // origins differ, as the two directories have different URLs).
    let chain = |repo: &str| -> Vec<(String, String)> {
        read_index(Path::new(repo))["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["content_hash"].as_str().unwrap().to_string(),
                    b["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(chain(&clean_repo), chain(&faulty_repo));
}

#[test]
fn a_directory_that_stays_down_exits_3_with_every_whole_bundle_sealed() {
    let ops = generate(
        45_000,
        &SynthOptions {
            seed: 26,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    // 25 pages of 1000 are served, then 503 for good.
    let dir = FakeDirectory::start(
        ops_from(&ops),
        FakeOptions {
            down_after: Some(25),
            ..Default::default()
        },
    );
    let tmp = TempDir::new("down");
    let repo = tmp.join("repo");
    let mut st = stages(&dir.url(), &repo);
    st[0].1.extend(["--retries".to_string(), "3".to_string()]);
    let outs = pipeline(&st);
    assert_eq!(outs[0].code, Some(3), "plc-export: {}", outs[0].stderr);
    assert!(outs[0].stderr.contains("giving up"), "{}", outs[0].stderr);
    for o in &outs[1..] {
        assert_eq!(o.code, Some(0), "{}", o.stderr);
    }
    // 25,000 operations reached the pipeline: two whole bundles.
    assert_archive(Path::new(&repo), &want[..2]);
    verify_ok(&repo, "after the directory went down");
    let names: Vec<String> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert!(!names.iter().any(|n| n == "000003.jsonl.zst"), "{names:?}");

    // Back up: the next run completes the same archive.
    dir.set_options(FakeOptions::default());
    let outs = pipeline(&stages(&dir.url(), &repo));
    assert!(outs.iter().all(|o| o.code == Some(0)), "{outs:?}");
    assert_archive(Path::new(&repo), &want);
    verify_ok(&repo, "after the directory came back");
}

#[test]
fn a_repository_creation_killed_halfway_is_cleaned_up_by_the_next_seal() {
    let ops = generate(
        10_000,
        &SynthOptions {
            seed: 27,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let tmp = TempDir::new("init");
    // What a seal killed inside create_repo leaves beside the repository:
    // a half-made directory named after a process that no longer exists.
    let dead = tmp.path().join(".repo.init-4000000000.tmp");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join(".plc_bundles.json.tmp"), b"{\"vers").unwrap();
    let repo = tmp.join("repo");
    let input: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_slice(), b"\n"].concat())
        .collect();
    let o = run("plc-seal", &["-q", "--repo", &repo], &input);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!dead.exists(), "the dead creation was removed");
    assert_archive(Path::new(&repo), &expected_bundles(&lines));
}
