//! plc-serve's DID routes through real HTTP on 127.0.0.1, against the
//! independent model (tests/it/common/did_model.rs): status, Content-Type
//! and body bytes on every route, for every DID of a two-bundle archive,
//! unknown and percent-encoded DIDs and malformed escapes, and new
//! bundles answered once indexed, without a restart.

use crate::common::did_model::expected;
use crate::common::did_synth::{self, GenOp};
use crate::common::run::TempDir;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(repo: &str) -> Serve {
        Serve::start_with(repo, &[])
    }

    fn start_with(repo: &str, extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plc-serve"))
            .args(["--repo", repo, "--listen", "127.0.0.1:0"])
            .args(extra)
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

/// A client that returns 4xx and 5xx answers instead of failing on them.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String, Vec<u8>) {
    let mut r = agent.get(url).call().unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.body_mut().read_to_vec().unwrap();
    (r.status().as_u16(), ct, body)
}

fn seal_and_index(repo: &str, ops: &[GenOp]) {
    let mut seal = Command::new(env!("CARGO_BIN_EXE_plc-seal"))
        .args(["-q", "--repo", repo])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    seal.stdin
        .take()
        .unwrap()
        .write_all(&did_synth::lines(ops))
        .unwrap();
    assert!(seal.wait().unwrap().success());
    let index = Command::new(env!("CARGO_BIN_EXE_plc-index"))
        .args(["-q", "--repo", repo])
        .status()
        .unwrap();
    assert!(index.success());
}

fn by_did(ops: &[GenOp]) -> (Vec<String>, HashMap<String, Vec<&GenOp>>) {
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

/// GETs every route for `path_did` and compares with the model's answer
/// for `did`.
fn check(agent: &ureq::Agent, url: &str, path_did: &str, did: &str, ops: &[&GenOp]) {
    for route in ["", "/data", "/log", "/log/last", "/log/audit"] {
        let want = expected(route, did, ops);
        let (status, ct, body) = get(agent, &format!("{url}/{path_did}{route}"));
        assert_eq!(status, want.status, "{path_did}{route}");
        assert_eq!(ct, want.content_type, "{path_did}{route}");
        assert!(
            body == want.body,
            "{path_did}{route}:\n got  {}\n want {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&want.body)
        );
    }
}

#[test]
fn did_routes_answer_as_the_model_and_pick_up_new_bundles_without_restart() {
    let ops = did_synth::generate(30_000, 77);
    let tmp = TempDir::new("did-serve");
    let repo = tmp.join("repo");
    seal_and_index(&repo, &ops[..20_000]);
    let serve = Serve::start(&repo);
    let agent = agent();
    let (order, by) = by_did(&ops[..20_000]);
    for did in &order {
        check(&agent, &serve.url, did, did, &by[did]);
    }
    // Percent-encoded, for a few.
    for did in order.iter().take(20) {
        check(&agent, &serve.url, &did.replace(':', "%3A"), did, &by[did]);
    }
    for odd in [
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        "did:web:example.com",
        "did:plc:x%22y",
    ] {
        let decoded = odd.replace("%22", "\"");
        check(&agent, &serve.url, odd, &decoded, &[]);
    }
    // A malformed escape: the directory's router refuses to decode it.
    for raw in ["did:plc:%zz", "did%3Aplc%3A%FF", "did:plc:ab%2"] {
        let want = crate::common::did_model::decode_segment(raw).unwrap_err();
        for route in ["", "/data", "/log", "/log/last", "/log/audit"] {
            let (status, ct, body) = get(&agent, &format!("{}/{raw}{route}", serve.url));
            assert_eq!(
                (status, ct.as_str(), body.as_slice()),
                (want.status, want.content_type, want.body.as_slice()),
                "{raw}{route}"
            );
        }
    }
    let (status, _, _) = get(&agent, &format!("{}/{}/log/nope", serve.url, order[0]));
    assert_eq!(status, 404);
    // A bundle sealed and indexed while the server runs is answered.
    seal_and_index(&repo, &ops[20_000..]);
    let (order, by) = by_did(&ops);
    let late_dids: std::collections::HashSet<&str> =
        ops[20_000..].iter().map(|o| o.did.as_str()).collect();
    let late: Vec<&String> = order
        .iter()
        .filter(|d| late_dids.contains(d.as_str()))
        .step_by(29)
        .collect();
    assert!(late.len() > 20);
    for did in late {
        check(&agent, &serve.url, did, did, &by[did]);
    }
}

/// The frame cache changes nothing but speed: with none, and with one
/// too small to hold a frame, every answer is still the model's, asked
/// twice in a row.
#[test]
fn did_routes_answer_the_same_without_a_frame_cache() {
    let ops = did_synth::generate(12_000, 78);
    let tmp = TempDir::new("did-serve-nocache");
    let repo = tmp.join("repo");
    seal_and_index(&repo, &ops[..10_000]);
    let agent = agent();
    let (order, by) = by_did(&ops[..10_000]);
    for cache in ["0", "1"] {
        let serve = Serve::start_with(&repo, &["--did-cache", cache]);
        for did in order.iter().step_by(97) {
            check(&agent, &serve.url, did, did, &by[did]);
            check(&agent, &serve.url, did, did, &by[did]);
        }
    }
}
