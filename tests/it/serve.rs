//! plc-serve as a mirror: the round trip A -> plc-serve -> pipeline -> B,
//! the /export semantics plc-export relies on (ties, strictly after, caps),
//! the file endpoints, errors, and importing other implementations'
//! archives by re-sealing.
use crate::common;

use common::other_impls::{joined, write_go_archive};
use common::run::*;
use plcbundle::synth::{generate, SynthOp, SynthOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running plc-serve, killed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(repo: &str) -> Serve {
        let mut child = Command::new(bin("plc-serve"))
            .args(["--repo", repo, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `url`: status, content type, body.
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let mut r = agent().get(url).call().unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (r.status().as_u16(), ct, body)
}

fn seal_ops(repo: &str, ops: &[SynthOp]) {
    let o = run(
        "plc-seal",
        &["-q", "--repo", repo, "--origin", "https://plc.directory"],
        &joined(ops),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

fn chain(repo: &Path) -> Vec<(String, String)> {
    read_index(repo)["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["content_hash"].as_str().unwrap().into(),
                b["hash"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn an_archive_served_and_archived_again_has_the_same_chain() {
    let ops = generate(
        52_000,
        &SynthOptions {
            seed: 41,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let tmp = TempDir::new("serve-roundtrip");
    let a = tmp.join("A");
    seal_ops(&a, &ops[..50_000]);
    let serve = Serve::start(&a);
    let b = tmp.join("B");
    let outs = pipeline(&[
        stage(
            "plc-export",
            &[
                "--url", &serve.url, "--repo", &b, "--rate", "0", "--lag", "0",
            ],
        ),
        stage("plc-dedup", &["--repo", &b]),
        stage("plc-chunk", &[]),
        stage("plc-seal", &["-q", "--repo", &b, "--origin", &serve.url]),
    ]);
    for o in &outs {
        assert_eq!(o.code, Some(0), "{}", o.stderr);
    }
    assert_archive(Path::new(&b), &want);
    assert_eq!(chain(Path::new(&a)), chain(Path::new(&b)));
    let v = run("plc-verify", &[&b], b"");
    assert_eq!(v.code, Some(0), "{}", v.out());
}

#[test]
fn export_is_strictly_after_with_ties_exactly_as_the_directory() {
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 42,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("serve-export");
    let a = tmp.join("A");
    seal_ops(&a, &ops);
    let serve = Serve::start(&a);
    let all: Vec<&[u8]> = ops.iter().map(|o| o.line.as_slice()).collect();
    let page = |query: &str| {
        let (status, ct, body) = get(&format!("{}/export{query}", serve.url));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(ct, "application/jsonlines");
        assert!(!body.ends_with(b"\n"), "no trailing newline");
        body
    };
    let join = |l: &[&[u8]]| l.join(&b"\n"[..]);

    // No after: from the start, count defaults to 1000 and is capped there.
    assert_eq!(page(""), join(&all[..1000]));
    assert_eq!(page("?count=5000"), join(&all[..1000]));
    assert_eq!(page("?count=3"), join(&all[..3]));

    // A tie group straddling the page boundary at 1000 and the bundle
    // boundary at 10000: after = its millisecond skips the whole group;
    // after = one millisecond earlier returns the whole group again.
    for p in [1000usize, 10_000] {
        let t = ops[p].created_ms;
        assert_eq!(ops[p - 1].created_ms, t, "the generator straddles {p}");
        let first = ops.iter().position(|o| o.created_ms == t).unwrap();
        let after_group = ops.iter().position(|o| o.created_ms > t).unwrap();
        let at = &ops[p].created_at;
        let q = |s: &str| format!("?count=50&after={}", s.replace(':', "%3A"));
        assert_eq!(page(&q(at)), join(&all[after_group..after_group + 50]));
        let before = plcbundle::synth::format_ms(t - 1);
        assert_eq!(page(&q(&before)), join(&all[first..first + 50]));
    }
    // Across the end of a bundle into the next one.
    let t = &ops[9_990].created_at;
    let start = ops.iter().position(|o| o.created_at > *t).unwrap();
    assert_eq!(
        page(&format!("?count=1000&after={t}")),
        join(&all[start..start + 1000])
    );
    // After the last operation: empty body.
    assert_eq!(page(&format!("?after={}", ops[19_999].created_at)), b"");
}

#[test]
fn bad_requests_get_400_and_unknown_paths_404() {
    let ops = generate(
        10_000,
        &SynthOptions {
            seed: 43,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("serve-errors");
    let a = tmp.join("A");
    seal_ops(&a, &ops);
    std::fs::write(tmp.path().join("secret.txt"), b"outside").unwrap();
    let serve = Serve::start(&a);
    for q in [
        "count=0",
        "count=-1",
        "count=abc",
        "after=12345",
        "after=yesterday",
        "after=2024-13-01T00:00:00Z",
    ] {
        let (status, ct, body) = get(&format!("{}/export?{q}", serve.url));
        assert_eq!(status, 400, "{q}");
        assert_eq!(ct, "application/json", "{q}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["message"].is_string(), "{q}: {v}");
    }
    for path in [
        "/",
        "/nope",
        "/data/0",
        "/data/2",
        "/jsonl/2",
        "/000002.jsonl.zst",
        "/data/../secret.txt",
        "/..%2Fsecret.txt",
        "/%2E%2E/secret.txt",
        "/data/1/../../secret.txt",
        "/.plc-seal.lock",
    ] {
        let (status, _, body) = get(&format!("{}{path}", serve.url));
        assert_eq!(status, 404, "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("outside"),
            "{path}"
        );
    }
}

#[test]
fn files_and_index_are_served_as_stored_and_new_bundles_appear_without_restart() {
    let ops = generate(
        30_000,
        &SynthOptions {
            seed: 44,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("serve-files");
    let a = tmp.join("A");
    seal_ops(&a, &ops[..10_000]);
    let serve = Serve::start(&a);
    let dir = Path::new(&a);
    for p in ["/plc_bundles.json", "/index.json"] {
        let (status, ct, body) = get(&format!("{}{p}", serve.url));
        assert_eq!((status, ct.as_str()), (200, "application/json"));
        assert_eq!(body, std::fs::read(dir.join("plc_bundles.json")).unwrap());
    }
    for p in ["/data/1", "/000001.jsonl.zst"] {
        let (status, ct, body) = get(&format!("{}{p}", serve.url));
        assert_eq!((status, ct.as_str()), (200, "application/zstd"));
        assert_eq!(body, std::fs::read(dir.join("000001.jsonl.zst")).unwrap());
    }
    let (status, _, body) = get(&format!("{}/jsonl/1", serve.url));
    assert_eq!(status, 200);
    assert_eq!(body, joined(&ops[..10_000]));

    // Seal two more while it runs: visible at once.
    let o = run("plc-seal", &["-q", "--repo", &a], &joined(&ops[10_000..]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let (status, _, body) = get(&format!("{}/jsonl/3", serve.url));
    assert_eq!(status, 200);
    assert_eq!(body, joined(&ops[20_000..]));
    let (_, _, body) = get(&format!(
        "{}/export?after={}",
        serve.url, ops[9_999].created_at
    ));
    assert!(body.starts_with(
        &ops.iter()
            .find(|o| o.created_at > ops[9_999].created_at)
            .unwrap()
            .line
    ));
    let (_, _, idx) = get(&format!("{}/plc_bundles.json", serve.url));
    let idx: serde_json::Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(idx["last_bundle"], 3);
}

#[test]
fn a_client_that_disconnects_mid_response_does_not_disturb_others() {
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 45,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("serve-disconnect");
    let a = tmp.join("A");
    seal_ops(&a, &ops);
    let serve = Serve::start(&a);
    let addr = serve.url.trim_start_matches("http://").to_string();
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /jsonl/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
        drop(s); // gone mid-body
    }
    let (status, _, body) = get(&format!("{}/jsonl/2", serve.url));
    assert_eq!(status, 200);
    assert_eq!(body, joined(&ops[10_000..]));
    let (status, _, _) = get(&format!("{}/export?count=10", serve.url));
    assert_eq!(status, 200);
}

#[test]
fn re_sealing_a_go_style_archive_reproduces_every_content_hash_and_hash() {
    assert!(
        Command::new("zstd").arg("--version").output().is_ok(),
        "the zstd command is not installed: install zstd"
    );
    let ops = generate(
        30_000,
        &SynthOptions {
            seed: 46,
            ..Default::default()
        },
    );
    let tmp = TempDir::new("import");
    let old = tmp.path().join("OLD");
    let want = write_go_archive(&old, &ops);
    let new = tmp.join("NEW");
    let script = format!(
        "set -o pipefail; zstd -dc {old}/*.jsonl.zst | {dedup} | {chunk} | {seal} -q --repo {new} --origin https://plc.directory",
        old = old.display(),
        dedup = bin("plc-dedup"),
        chunk = bin("plc-chunk"),
        seal = bin("plc-seal"),
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_archive(Path::new(&new), &want);
    assert_eq!(chain(&old), chain(Path::new(&new)));
    for dir in [old.to_string_lossy().into_owned(), new] {
        let v = run("plc-verify", &[&dir], b"");
        assert_eq!(v.code, Some(0), "{dir}: {}", v.out());
    }
}

#[test]
fn status_reports_the_chain_head_and_sizes_as_mirrors_do() {
    let ops = generate(
        20_000,
        &SynthOptions {
            seed: 47,
            ..Default::default()
        },
    );
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    let tmp = TempDir::new("serve-status");
    let a = tmp.join("A");
    seal_ops(&a, &ops);
    let serve = Serve::start(&a);
    let (status, ct, body) = get(&format!("{}/status", serve.url));
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let b = &v["bundles"];
    assert_eq!(b["last_bundle"], 2, "{v}");
    assert_eq!(b["root_hash"], want[0].hash.as_str(), "{v}");
    assert_eq!(b["head_hash"], want[1].hash.as_str(), "{v}");
    assert_eq!(b["end_time"], ops[19_999].created_at.as_str(), "{v}");
    let on_disk: u64 = ["000001.jsonl.zst", "000002.jsonl.zst"]
        .iter()
        .map(|f| std::fs::metadata(Path::new(&a).join(f)).unwrap().len())
        .sum();
    assert_eq!(b["total_size"], on_disk, "{v}");
    let content: usize = want.iter().map(|w| w.content.len()).sum();
    assert_eq!(b["uncompressed_size"], content, "{v}");
    assert_eq!(v["server"]["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert!(v["server"]["uptime_seconds"].is_u64(), "{v}");
}
