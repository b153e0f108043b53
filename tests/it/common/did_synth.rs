//! A generator of realistic DID histories for the DID endpoint tests:
//! creations (current and legacy `create`), updates that change handles
//! and PDS, key rotations, tombstones, and operations nullified by a
//! recovery operation within 72 hours, interleaved across DIDs in one
//! chronological archive. Keys are public keys of random secrets
//! (libsecp256k1 and the p256 crate), encoded as `did:key` with the
//! secp256k1 or P-256 multicodec prefix, and a few are bytes that are no
//! point of the curve their prefix names (signatures are random: nothing
//! here checks them).
//!
//! Besides each line's bytes it keeps what it meant (the decoded strings,
//! every object's entries in the order written, each key's type), so the
//! model in `did_model.rs` computes the directory's answers from the
//! generator's own knowledge, never by parsing what the code under test
//! reads.

use plcbundle::synth::SynthOp;

/// A key's curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// secp256k1, multicodec 0xe7 0x01.
    K256,
    /// P-256, multicodec 0x80 0x24.
    P256,
    /// Not a did:key this directory knows (a stray value).
    Unknown,
    /// A known multicodec prefix, but the bytes are no point of the
    /// curve: the directory cannot parse it either.
    BadPoint,
}

/// A verification key: its text and what it is.
#[derive(Clone, Debug)]
pub struct Key {
    /// `did:key:z...`.
    pub text: String,
    /// Its curve.
    pub curve: Curve,
}

/// A service entry.
#[derive(Clone, Debug)]
pub struct Service {
    /// The entry's name (`atproto_pds`).
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// Its `endpoint`.
    pub endpoint: String,
}

/// What an operation says.
#[derive(Clone, Debug)]
pub enum Body {
    /// `plc_operation`, entries in the order written.
    Op {
        /// verificationMethods.
        vms: Vec<(String, Key)>,
        /// rotationKeys.
        rotation: Vec<String>,
        /// alsoKnownAs.
        aka: Vec<String>,
        /// services.
        services: Vec<Service>,
    },
    /// A legacy `create`.
    Create {
        /// signingKey.
        signing: Key,
        /// recoveryKey.
        recovery: String,
        /// handle.
        handle: String,
        /// service.
        service: String,
    },
    /// `plc_tombstone`.
    Tombstone,
}

/// One generated operation.
#[derive(Clone, Debug)]
pub struct GenOp {
    /// Its DID.
    pub did: String,
    /// Its CID.
    pub cid: String,
    /// createdAt.
    pub created_at: String,
    /// createdAt in Unix ms.
    pub created_ms: i64,
    /// The `nullified` flag as archived.
    pub nullified: bool,
    /// What it says.
    pub body: Body,
    /// The `operation` value's exact JSON text inside the line.
    pub op_json: String,
    /// The whole line.
    pub line: Vec<u8>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PDS: &[&str] = &[
    "https://bsky.social",
    "https://morel.us-east.host.bsky.network",
    "https://pds.example.com",
    "http://localhost:2583",
];

fn key(rng: &mut Rng, p256_percent: u64) -> Key {
    let (prefix, curve) = if rng.percent(p256_percent) {
        ([0x80u8, 0x24], Curve::P256)
    } else {
        ([0xe7u8, 0x01], Curve::K256)
    };
    let mut secret = [0u8; 32];
    for b in &mut secret {
        *b = rng.next() as u8;
    }
    secret[0] = secret[0].clamp(1, 0x7f); // nonzero, below either order
    let point: Vec<u8> = if rng.percent(3) {
        // x = 2^256 - 1, above both fields' p: a point of neither curve,
        // which the directory cannot parse and gives no @context.
        let mut p = vec![2 + rng.below(2) as u8];
        p.extend_from_slice(&[0xff; 32]);
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&p);
        return Key {
            text: format!("did:key:z{}", bs58::encode(bytes).into_string()),
            curve: Curve::BadPoint,
        };
    } else if curve == Curve::P256 {
        let pk = p256::SecretKey::from_slice(&secret).unwrap().public_key();
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&pk, true)
            .as_bytes()
            .to_vec()
    } else {
        secp256k1::PublicKey::from_secret_key(
            &secp256k1::Secp256k1::signing_only(),
            &secp256k1::SecretKey::from_slice(&secret).unwrap(),
        )
        .serialize()
        .to_vec()
    };
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&point);
    Key {
        text: format!("did:key:z{}", bs58::encode(bytes).into_string()),
        curve,
    }
}

/// A JSON string literal for `s`, written with the escapes chosen by
/// `style`: 0 plain (only what JSON requires), 1 `\u00e9` for é and `\/`
/// for slashes, as an older server's lines have them.
fn lit(s: &str, style: u8) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style == 1 => out.push_str("\\/"),
            'é' if style == 1 => out.push_str("\\u00e9"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Live {
    did: String,
    last_cid: String,
    /// The operation a recovery must name as prev, and when it is due
    /// (index in the output), while a nullified operation awaits it.
    recovery: Option<(String, usize)>,
    tombstoned: bool,
}

fn handle(rng: &mut Rng) -> String {
    let words = ["alice", "bob", "café", "river", "stone", "wren", "owl"];
    let w = words[rng.below(words.len() as u64) as usize];
    format!("{w}{}.bsky.social", rng.below(100_000))
}

fn op_body(rng: &mut Rng, keep: Option<&Body>) -> Body {
    // An update keeps most of what the DID had and changes a part: the
    // handle, the PDS, or the keys (a rotation).
    let (mut vms, mut rotation, mut aka, mut services) = match keep {
        Some(Body::Op {
            vms,
            rotation,
            aka,
            services,
        }) => (vms.clone(), rotation.clone(), aka.clone(), services.clone()),
        _ => (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
    };
    let change = if keep.is_some() { rng.below(3) } else { 9 };
    if change == 0 || change == 9 {
        aka = vec![format!("at://{}", handle(rng))];
        if rng.percent(5) {
            aka.push(format!("https://{}", handle(rng)));
        }
    }
    if change == 1 || change == 9 {
        services = vec![Service {
            name: "atproto_pds".into(),
            kind: "AtprotoPersonalDataServer".into(),
            endpoint: PDS[rng.below(PDS.len() as u64) as usize].into(),
        }];
        if rng.percent(10) {
            // Shorter name first, as PostgreSQL's jsonb orders keys, which
            // is not alphabetical order.
            services.insert(
                0,
                Service {
                    name: "bsky_fg".into(),
                    kind: "BskyFeedGenerator".into(),
                    endpoint: "https://feed.example.com".into(),
                },
            );
        }
    }
    if change == 2 || change == 9 {
        rotation = (0..1 + rng.below(2)).map(|_| key(rng, 30).text).collect();
        vms = vec![("atproto".to_string(), key(rng, 20))];
        if rng.percent(10) {
            vms.insert(0, ("lbl".to_string(), key(rng, 50)));
        }
        if rng.percent(3) {
            vms.push((
                "other".to_string(),
                Key {
                    text: "did:key:zNotBase58OIl".into(),
                    curve: Curve::Unknown,
                },
            ));
        }
    }
    Body::Op {
        vms,
        rotation,
        aka,
        services,
    }
}

fn op_json(body: &Body, sig: &str, prev: Option<&str>, style: u8) -> String {
    let prev = prev.map_or("null".to_string(), |p| lit(p, 0));
    let mut s = format!("{{\"sig\":{},\"prev\":{prev},", lit(sig, 0));
    match body {
        Body::Tombstone => s.push_str("\"type\":\"plc_tombstone\""),
        Body::Create {
            signing,
            recovery,
            handle,
            service,
        } => {
            s.push_str(&format!(
                "\"type\":\"create\",\"handle\":{},\"service\":{},\"signingKey\":{},\"recoveryKey\":{}",
                lit(handle, style),
                lit(service, style),
                lit(&signing.text, 0),
                lit(recovery, 0)
            ));
        }
        Body::Op {
            vms,
            rotation,
            aka,
            services,
        } => {
            s.push_str("\"type\":\"plc_operation\",\"services\":{");
            let svc: Vec<String> = services
                .iter()
                .map(|x| {
                    format!(
                        "{}:{{\"type\":{},\"endpoint\":{}}}",
                        lit(&x.name, 0),
                        lit(&x.kind, 0),
                        lit(&x.endpoint, style)
                    )
                })
                .collect();
            s.push_str(&svc.join(","));
            s.push_str("},\"alsoKnownAs\":[");
            let a: Vec<String> = aka.iter().map(|h| lit(h, style)).collect();
            s.push_str(&a.join(","));
            s.push_str("],\"rotationKeys\":[");
            let r: Vec<String> = rotation.iter().map(|k| lit(k, 0)).collect();
            s.push_str(&r.join(","));
            s.push_str("],\"verificationMethods\":{");
            let v: Vec<String> = vms
                .iter()
                .map(|(n, k)| format!("{}:{}", lit(n, 0), lit(&k.text, 0)))
                .collect();
            s.push_str(&v.join(","));
            s.push('}');
        }
    }
    s.push('}');
    s
}

/// `n` operations in archive order. The same seed gives the same output.
pub fn generate(n: usize, seed: u64) -> Vec<GenOp> {
    let mut rng = Rng(seed);
    let mut ms: i64 = 1_700_000_000_000;
    let mut live: Vec<Live> = Vec::new();
    let mut last_body: std::collections::HashMap<String, Body> = Default::default();
    let mut out: Vec<GenOp> = Vec::with_capacity(n);
    let mut cids = std::collections::HashSet::new();
    while out.len() < n {
        ms += 1 + rng.below(1500) as i64;
        let cid = loop {
            let c = format!("bafyrei{}", rng.chars(BASE32, 52));
            if cids.insert(c.clone()) {
                break c;
            }
        };
        let sig = rng.chars(B64URL, 86);
        let style = if rng.percent(15) { 1 } else { 0 };
        // A recovery that is due comes first.
        let due = live
            .iter()
            .position(|l| l.recovery.as_ref().is_some_and(|(_, at)| *at <= out.len()));
        let (idx, body, prev, nullified) = if let Some(i) = due {
            let (prev, _) = live[i].recovery.take().unwrap();
            let body = op_body(&mut rng, last_body.get(&live[i].did));
            (i, body, Some(prev), false)
        } else if live.is_empty() || rng.percent(35) {
            let did = loop {
                let d = format!("did:plc:{}", rng.chars(BASE32, 24));
                if !live.iter().any(|l| l.did == d) {
                    break d;
                }
            };
            let body = if rng.percent(12) {
                let mut h = handle(&mut rng);
                if rng.percent(30) {
                    h = format!("https://{h}");
                }
                let svc = PDS[rng.below(PDS.len() as u64) as usize];
                Body::Create {
                    signing: key(&mut rng, 20),
                    recovery: key(&mut rng, 20).text,
                    handle: h,
                    service: if rng.percent(40) {
                        svc.trim_start_matches("https://").to_string()
                    } else {
                        svc.to_string()
                    },
                }
            } else {
                op_body(&mut rng, None)
            };
            live.push(Live {
                did,
                last_cid: String::new(),
                recovery: None,
                tombstoned: false,
            });
            (live.len() - 1, body, None, false)
        } else {
            let i = rng.below(live.len() as u64) as usize;
            if live[i].tombstoned || live[i].recovery.is_some() {
                cids.remove(&cid);
                continue;
            }
            let prev = live[i].last_cid.clone();
            if rng.percent(6) {
                (i, Body::Tombstone, Some(prev), false)
            } else if rng.percent(10) {
                // Nullified later by a recovery operation that names the
                // same prev, within 72 hours (here: within minutes).
                let at = out.len() + 1 + rng.below(300) as usize;
                live[i].recovery = Some((prev.clone(), at));
                let body = op_body(&mut rng, last_body.get(&live[i].did));
                (i, body, Some(prev), true)
            } else {
                let body = op_body(&mut rng, last_body.get(&live[i].did));
                (i, body, Some(prev), false)
            }
        };
        let did = live[idx].did.clone();
        let op_text = op_json(&body, &sig, prev.as_deref(), style);
        if !nullified {
            live[idx].last_cid = cid.clone();
            if matches!(body, Body::Tombstone) {
                live[idx].tombstoned = true;
            }
            last_body.insert(did.clone(), body.clone());
        }
        let created_at = plcbundle::synth::format_ms(ms);
        let nul = if nullified { "true" } else { "false" };
        let line = if rng.percent(50) {
            format!(
                "{{\"did\":{},\"cid\":{},\"createdAt\":{},\"operation\":{op_text},\"nullified\":{nul}}}",
                lit(&did, 0),
                lit(&cid, 0),
                lit(&created_at, 0)
            )
        } else {
            format!(
                "{{\"did\":{},\"operation\":{op_text},\"cid\":{},\"nullified\":{nul},\"createdAt\":{}}}",
                lit(&did, 0),
                lit(&cid, 0),
                lit(&created_at, 0)
            )
        };
        out.push(GenOp {
            did,
            cid,
            created_at,
            created_ms: ms,
            nullified,
            body,
            op_json: op_text,
            line: line.into_bytes(),
        });
    }
    out
}

/// The operations as the project's `SynthOp`s (for the archive writers
/// shared with other tests).
pub fn as_synth(ops: &[GenOp]) -> Vec<SynthOp> {
    ops.iter()
        .map(|o| SynthOp {
            line: o.line.clone(),
            did: o.did.clone(),
            cid: o.cid.clone(),
            created_at: o.created_at.clone(),
            created_ms: o.created_ms,
        })
        .collect()
}

/// Each line plus `\n`.
pub fn lines(ops: &[GenOp]) -> Vec<u8> {
    let mut v = Vec::new();
    for o in ops {
        v.extend_from_slice(&o.line);
        v.push(b'\n');
    }
    v
}
