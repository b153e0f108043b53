//! The README's cookbook, run verbatim: each ```sh block whose first line
//! is `# recipe: NAME` is taken from README.md and run with bash against a
//! real archive, a fake directory and a plc-serve mirror.
use crate::common;

use common::fake_directory::{ops_from, FakeDirectory, FakeOptions};
use common::other_impls::joined;
use common::run::*;
use plcbundle::synth::{generate, SynthOp, SynthOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn recipe(name: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let marker = format!("```sh\n# recipe: {name}\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no recipe {name}"))
        + marker.len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

/// Runs a recipe with bash (pipefail), the tools first on PATH.
fn cook(name: &str, env: &[(&str, &str)]) -> String {
    let bin_dir = Path::new(bin("plc-seal")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{}", recipe(name))])
        .env("PATH", path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recipe {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Serve(Child, String);
impl Serve {
    fn start(repo: &str) -> Serve {
        let mut child = Command::new(bin("plc-serve"))
            .args(["--repo", repo, "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        Serve(child, url)
    }
}
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Kitchen {
    tmp: TempDir,
    dir: String,
    ops: Vec<SynthOp>,
    fake: FakeDirectory,
}

/// An archive of 3 bundles sealed from the first 30,000 of 31,500
/// operations a fake directory serves.
fn kitchen() -> Kitchen {
    // Gaps of up to ~4 minutes spread the operations over two months.
    let ops = generate(
        31_500,
        &SynthOptions {
            seed: 61,
            max_gap_ms: 250_000,
            ..Default::default()
        },
    );
    let fake = FakeDirectory::start(ops_from(&ops), FakeOptions::default());
    let tmp = TempDir::new("cookbook");
    let dir = tmp.join("archive");
    let o = run(
        "plc-seal",
        &["-q", "--repo", &dir, "--origin", &fake.url()],
        &joined(&ops[..30_000]),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    Kitchen {
        tmp,
        dir,
        ops,
        fake,
    }
}

fn parsed(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn all_operations_of_one_did() {
    let k = kitchen();
    let mut by_did: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &k.ops[..30_000] {
        *by_did.entry(o.did.as_str()).or_default() += 1;
    }
    let (did, _) = by_did.iter().max_by_key(|(_, n)| **n).unwrap();
    let want: Vec<&str> = k.ops[..30_000]
        .iter()
        .filter(|o| o.did == *did)
        .map(|o| o.cid.as_str())
        .collect();
    assert!(want.len() >= 2);
    let got = parsed(&cook("one-did", &[("DIR", &k.dir), ("DID", did)]));
    let cids: Vec<&str> = got.iter().map(|v| v["cid"].as_str().unwrap()).collect();
    assert_eq!(cids, want);
}

#[test]
fn operations_per_month() {
    let k = kitchen();
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for o in &k.ops[..30_000] {
        *want.entry(o.created_at[..7].to_string()).or_default() += 1;
    }
    assert!(want.len() >= 2, "the sample spans several months: {want:?}");
    let out = cook("per-month", &[("DIR", &k.dir)]);
    let got: BTreeMap<String, usize> = out
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let n = it.next().unwrap().parse().unwrap();
            (it.next().unwrap().to_string(), n)
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_newest_operations_not_yet_bundled() {
    let k = kitchen();
    let index_before = std::fs::read(Path::new(&k.dir).join("plc_bundles.json")).unwrap();
    let got = parsed(&cook(
        "not-yet-bundled",
        &[("DIR", &k.dir), ("URL", &k.fake.url())],
    ));
    let want: Vec<&str> = k.ops[30_000..]
        .iter()
        .map(|o| o.created_at.as_str())
        .collect();
    let times: Vec<&str> = got
        .iter()
        .map(|v| v["createdAt"].as_str().unwrap())
        .collect();
    assert_eq!(times, want);
    assert_eq!(
        std::fs::read(Path::new(&k.dir).join("plc_bundles.json")).unwrap(),
        index_before
    );
}

#[test]
fn comparing_a_mirror_index_finds_the_first_differing_bundle() {
    let k = kitchen();
    // An identical mirror.
    let same = Serve::start(&k.dir);
    let out = cook("compare-mirror", &[("DIR", &k.dir), ("MIRROR", &same.1)]);
    assert_eq!(out.trim(), "no difference in the 3 bundles compared");
    // A mirror whose second bundle saw one operation differently (a
    // nullification that flipped before it fetched).
    let mut other = k.ops[..30_000].to_vec();
    let i = 15_000;
    let line = String::from_utf8(other[i].line.clone()).unwrap();
    let flipped = if line.contains("\"nullified\":false") {
        line.replace("\"nullified\":false", "\"nullified\":true")
    } else {
        line.replace("\"nullified\":true", "\"nullified\":false")
    };
    assert_ne!(flipped, line);
    other[i].line = flipped.into_bytes();
    let theirs = k.tmp.join("theirs");
    let o = run("plc-seal", &["-q", "--repo", &theirs], &joined(&other));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let mirror = Serve::start(&theirs);
    let out = cook("compare-mirror", &[("DIR", &k.dir), ("MIRROR", &mirror.1)]);
    assert_eq!(out.trim(), "first differing bundle: 2");
}

#[test]
fn copying_the_repository_with_standard_tools() {
    let k = kitchen();
    // Leftovers a copy must not carry.
    std::fs::write(Path::new(&k.dir).join(".000004.jsonl.zst.tmp"), b"partial").unwrap();
    let dest = k.tmp.join("copy");
    let out = cook("copy", &[("DIR", &k.dir), ("DEST", &dest)]);
    assert!(out.starts_with("ok: 3 bundles, 30000 operations"), "{out}");
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "000001.jsonl.zst",
            "000002.jsonl.zst",
            "000003.jsonl.zst",
            "plc_bundles.json"
        ]
    );
    for n in &names {
        assert_eq!(
            std::fs::read(Path::new(&dest).join(n)).unwrap(),
            std::fs::read(Path::new(&k.dir).join(n)).unwrap(),
            "{n}"
        );
    }
}
