//! Validly signed PLC operations, made independently of the code under
//! test: a small canonical DAG-CBOR encoder of its own, SHA-256 from sha2,
//! base32 written out by hand, signatures from libsecp256k1 (secp256k1)
//! and the p256 crate (P-256) with keys derived from seeds. The expected
//! CIDs and DIDs of the audit tests come from here, never from
//! `plcbundle::audit`. `examples/signed.rs` uses the same file to make
//! archives for the benchmark.
#![allow(dead_code)] // reason: shared by the tests and examples/signed.rs, each using a part

use sha2::{Digest, Sha256};

/// A value of an operation: what JSON and DAG-CBOR have in common here.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    S(String),
    A(Vec<V>),
    M(Vec<(String, V)>),
}

pub fn s(x: &str) -> V {
    V::S(x.to_string())
}

/// Map entries in DAG-CBOR's canonical order: shorter keys first, then
/// bytewise (also PostgreSQL jsonb's order, which the directory exports).
fn sorted(m: &[(String, V)]) -> Vec<&(String, V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
    v
}

fn head(major: u8, n: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n < 0x10000 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Canonical DAG-CBOR (RFC 8949 heads, the shortest length forms).
pub fn cbor(v: &V, out: &mut Vec<u8>) {
    match v {
        V::Null => out.push(0xf6),
        V::S(x) => {
            head(3, x.len(), out);
            out.extend_from_slice(x.as_bytes());
        }
        V::A(a) => {
            head(4, a.len(), out);
            for x in a {
                cbor(x, out);
            }
        }
        V::M(m) => {
            head(5, m.len(), out);
            for (k, x) in sorted(m) {
                head(3, k.len(), out);
                out.extend_from_slice(k.as_bytes());
                cbor(x, out);
            }
        }
    }
}

pub fn cbor_bytes(v: &V) -> Vec<u8> {
    let mut out = Vec::new();
    cbor(v, &mut out);
    out
}

/// JSON with keys in canonical order.
pub fn json(v: &V, out: &mut String) {
    match v {
        V::Null => out.push_str("null"),
        V::S(x) => out.push_str(&serde_json::to_string(x).unwrap()),
        V::A(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(x, out);
            }
            out.push(']');
        }
        V::M(m) => {
            out.push('{');
            for (i, (k, x)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                json(x, out);
            }
            out.push('}');
        }
    }
}

/// RFC 4648 base32, lowercase, no padding.
pub fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `b` + base32 of CIDv1 (0x01), dag-cbor (0x71), sha2-256 (0x12, 0x20).
pub fn cid_of(signed_cbor: &[u8]) -> String {
    let mut b = vec![0x01, 0x71, 0x12, 0x20];
    b.extend_from_slice(&sha256(signed_cbor));
    format!("b{}", base32_lower(&b))
}

pub fn did_of(signed_cbor: &[u8]) -> String {
    format!("did:plc:{}", &base32_lower(&sha256(signed_cbor))[..24])
}

/// A rotation or signing key.
#[derive(Clone)]
pub enum Key {
    K256(secp256k1::SecretKey),
    P256(p256::ecdsa::SigningKey),
}

impl Key {
    pub fn k256(seed: u64) -> Key {
        let h = sha256(format!("k256 key {seed}").as_bytes());
        Key::K256(secp256k1::SecretKey::from_slice(&h).expect("a valid scalar"))
    }

    pub fn p256(seed: u64) -> Key {
        let h = sha256(format!("p256 key {seed}").as_bytes());
        Key::P256(p256::ecdsa::SigningKey::from_slice(&h).expect("a valid scalar"))
    }

    pub fn did_key(&self) -> String {
        let mut b = Vec::new();
        match self {
            Key::K256(sk) => {
                let ctx = secp256k1::Secp256k1::signing_only();
                b.extend_from_slice(&[0xe7, 0x01]);
                b.extend_from_slice(&secp256k1::PublicKey::from_secret_key(&ctx, sk).serialize());
            }
            Key::P256(sk) => {
                b.extend_from_slice(&[0x80, 0x24]);
                b.extend_from_slice(sk.verifying_key().to_encoded_point(true).as_bytes());
            }
        }
        format!("did:key:z{}", bs58::encode(b).into_string())
    }

    /// ECDSA-SHA256 of `msg`, raw r||s, low-S.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match self {
            Key::K256(sk) => {
                let ctx = secp256k1::Secp256k1::signing_only();
                let m = secp256k1::Message::from_digest(sha256(msg));
                ctx.sign_ecdsa(&m, sk).serialize_compact()
            }
            Key::P256(sk) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = sk.sign(msg);
                let sig = sig.normalize_s().unwrap_or(sig);
                sig.to_bytes().into()
            }
        }
    }

    /// The group order n of this key's curve, big-endian.
    pub fn order(&self) -> [u8; 32] {
        let hex = match self {
            Key::K256(_) => "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            Key::P256(_) => "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        };
        hex::decode(hex).unwrap().try_into().unwrap()
    }
}

pub fn b64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// An unsigned `plc_operation`.
pub fn plc_op(
    rotation: &[&Key],
    signing: &Key,
    handle: &str,
    pds: &str,
    prev: Option<&str>,
) -> Vec<(String, V)> {
    vec![
        ("type".into(), s("plc_operation")),
        (
            "rotationKeys".into(),
            V::A(rotation.iter().map(|k| V::S(k.did_key())).collect()),
        ),
        (
            "verificationMethods".into(),
            V::M(vec![("atproto".into(), V::S(signing.did_key()))]),
        ),
        (
            "alsoKnownAs".into(),
            V::A(vec![V::S(format!("at://{handle}"))]),
        ),
        (
            "services".into(),
            V::M(vec![(
                "atproto_pds".into(),
                V::M(vec![
                    ("type".into(), s("AtprotoPersonalDataServer")),
                    ("endpoint".into(), s(pds)),
                ]),
            )]),
        ),
        ("prev".into(), prev.map_or(V::Null, s)),
    ]
}

pub fn tombstone(prev: &str) -> Vec<(String, V)> {
    vec![
        ("type".into(), s("plc_tombstone")),
        ("prev".into(), s(prev)),
    ]
}

pub fn legacy_create(
    signing: &Key,
    recovery: &Key,
    handle: &str,
    service: &str,
) -> Vec<(String, V)> {
    vec![
        ("type".into(), s("create")),
        ("signingKey".into(), V::S(signing.did_key())),
        ("recoveryKey".into(), V::S(recovery.did_key())),
        ("handle".into(), s(handle)),
        ("service".into(), s(service)),
        ("prev".into(), V::Null),
    ]
}

/// A signed operation with its CID (and, for a genesis, its DID), all
/// computed here.
#[derive(Clone, Debug)]
pub struct Signed {
    pub op: V,
    pub cid: String,
    pub genesis_did: String,
}

/// Signs `unsigned` with `key`: raw r||s over its canonical DAG-CBOR.
pub fn sign(unsigned: &[(String, V)], key: &Key) -> Signed {
    let sig = key.sign(&cbor_bytes(&V::M(unsigned.to_vec())));
    with_sig(unsigned, &b64url(&sig))
}

/// Adds `sig` verbatim (for corrupted signatures) and computes the CID of
/// the result.
pub fn with_sig(unsigned: &[(String, V)], sig: &str) -> Signed {
    let mut m = unsigned.to_vec();
    m.push(("sig".into(), s(sig)));
    let op = V::M(m);
    let bytes = cbor_bytes(&op);
    Signed {
        cid: cid_of(&bytes),
        genesis_did: did_of(&bytes),
        op,
    }
}

/// The `sig` field of a signed operation.
pub fn sig_of(signed: &Signed) -> String {
    match &signed.op {
        V::M(m) => match &m.iter().find(|(k, _)| k == "sig").unwrap().1 {
            V::S(x) => x.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    }
}

/// An export line (with `\n`).
pub fn line(did: &str, op: &V, cid: &str, ms: i64, nullified: bool) -> Vec<u8> {
    let mut o = String::new();
    json(op, &mut o);
    format!(
        "{{\"did\":\"{did}\",\"operation\":{o},\"cid\":\"{cid}\",\"nullified\":{nullified},\"createdAt\":\"{}\"}}\n",
        plcbundle::time::Timestamp::from_millis(ms).format_millis()
    )
    .into_bytes()
}

/// n - s for a 32-byte big-endian s: the high-S twin of a low-S signature.
pub fn negate_s(sig: &[u8; 64], order: &[u8; 32]) -> [u8; 64] {
    let mut out = *sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = order[i] as i16 - sig[32 + i] as i16 - borrow;
        borrow = (d < 0) as i16;
        out[32 + i] = (d + 256 * borrow) as u8;
    }
    out
}

/// DER (SEQUENCE of two INTEGERs) of a raw r||s signature.
pub fn der(sig: &[u8; 64]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b >= 0x80) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let body = [int(&sig[..32]), int(&sig[32..])].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// A realistic archive of `n` validly signed operations (and the expected
/// nullified flags), deterministic in `seed`: new DIDs (mostly on a few
/// PDS secp256k1 rotation keys, some with P-256 user keys, a few legacy
/// `create`s), handle and PDS changes of recent DIDs, key rotations,
/// tombstones, and recoveries that nullify within 72 hours.
pub fn archive(n: usize, seed: u64) -> Vec<Vec<u8>> {
    struct Did {
        did: String,
        keys: Vec<Key>,
        head: String,
        handle: u64,
        dead: bool,
    }
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let pds_keys: Vec<Key> = (0..4).map(|i| Key::k256(1000 + i)).collect();
    let mut dids: Vec<Did> = Vec::new();
    // (did, op, cid, ms, nullified)
    let mut lines: Vec<(String, V, String, i64, bool)> = Vec::new();
    let mut t = 1_700_000_000_000i64;
    let mut key_seed = 1u64;
    // Recovery candidates: (did index, line of the op to nullify, cid of its prev, keys).
    while lines.len() < n {
        t += 1 + (next() % 40) as i64;
        let r = next() % 100;
        if r < 45 || dids.len() < 10 {
            let pds = pds_keys[(next() % 4) as usize].clone();
            key_seed += 1;
            let (keys, unsigned, signer) = if r % 20 == 0 {
                let user = Key::p256(key_seed);
                let keys = vec![user.clone(), pds.clone()];
                let u = plc_op(
                    &[&keys[0], &keys[1]],
                    &Key::k256(key_seed + 1_000_000),
                    &format!("u{key_seed}.example.com"),
                    "https://pds.example.com",
                    None,
                );
                (keys, u, user)
            } else if r % 33 == 1 {
                let signing = Key::k256(key_seed + 2_000_000);
                let u = legacy_create(
                    &signing,
                    &pds,
                    &format!("u{key_seed}.example.com"),
                    "pds.example.com",
                );
                (vec![pds.clone(), signing], u, pds)
            } else {
                let u = plc_op(
                    &[&pds],
                    &Key::k256(key_seed + 1_000_000),
                    &format!("u{key_seed}.example.com"),
                    "https://pds.example.com",
                    None,
                );
                (vec![pds.clone()], u, pds)
            };
            let sd = sign(&unsigned, &signer);
            dids.push(Did {
                did: sd.genesis_did.clone(),
                keys,
                head: sd.cid.clone(),
                handle: key_seed,
                dead: false,
            });
            lines.push((sd.genesis_did, sd.op, sd.cid, t, false));
            continue;
        }
        // An update of one of the 1,000 most recent DIDs.
        let lo = dids.len().saturating_sub(1000);
        let i = lo + (next() as usize) % (dids.len() - lo);
        if dids[i].dead {
            continue;
        }
        let d = &mut dids[i];
        d.handle += 1;
        let kr: Vec<&Key> = d.keys.iter().collect();
        let signer = d.keys.last().unwrap().clone();
        let (unsigned, tomb) = if r < 97 {
            (
                plc_op(
                    &kr,
                    &Key::k256(d.handle),
                    &format!("u{}.example.com", d.handle),
                    "https://pds2.example.com",
                    Some(&d.head),
                ),
                false,
            )
        } else {
            (tombstone(&d.head), true)
        };
        let sd = sign(&unsigned, &signer);
        let prev_head = d.head.clone();
        d.head = sd.cid.clone();
        d.dead = tomb;
        let did = d.did.clone();
        let keys = d.keys.clone();
        lines.push((did.clone(), sd.op, sd.cid, t, false));
        // Sometimes the higher-priority key (index 0 of two) takes it back
        // a little later: the update is nullified.
        if keys.len() == 2 && !tomb && r % 3 == 0 && lines.len() < n {
            let at = lines.len() - 1;
            t += 1 + (next() % 1000) as i64;
            let kr: Vec<&Key> = keys.iter().collect();
            let u = plc_op(
                &kr,
                &Key::k256(7),
                "recovered.example.com",
                "https://pds.example.com",
                Some(&prev_head),
            );
            let rec = sign(&u, &keys[0]);
            lines[at].4 = true;
            let d = &mut dids[i];
            d.head = rec.cid.clone();
            d.dead = false;
            lines.push((did, rec.op, rec.cid, t, false));
        }
    }
    lines.truncate(n);
    lines
        .into_iter()
        .map(|(did, op, cid, ms, nul)| line(&did, &op, &cid, ms, nul))
        .collect()
}
