//! One operation line checked on its own, before anything earlier is
//! consulted: its shape, its size, its DAG-CBOR encodings, its `cid`, a
//! genesis operation's DID, and the strict decoding of its signature.
//!
//! These checks need no state, so they run on every core; what they leave
//! for the rules ([`super::rules`]) is a [`Prepared`] operation: the fields
//! the rules read, the bytes that were signed, and the problems found.

use super::sig::{decode_sig, parse_did_key};
use crate::time::Timestamp;
use data_encoding::BASE32_NOPAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The PLC specification's limit on an operation's DAG-CBOR size. The
/// official server refuses more than 4,000 bytes for new submissions (an
/// admission policy added later); the specification's 7,500 is the rule
/// every operation of the log must meet, so it is the one checked.
pub const MAX_OP_BYTES: usize = 7500;

/// The three operation types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `plc_operation`.
    Operation,
    /// `plc_tombstone`.
    Tombstone,
    /// The legacy `create` (genesis only).
    LegacyCreate,
}

/// An operation checked on its own.
#[derive(Debug)]
pub struct Prepared {
    /// The line's `did`.
    pub did: String,
    /// The line's `cid`.
    pub cid: String,
    /// The line's `createdAt`, verbatim.
    pub created_at: String,
    /// `createdAt` as an instant.
    pub time: Timestamp,
    /// The line's `nullified` flag (absent = false).
    pub archived_nullified: bool,
    /// Its type, when the shape was recognised.
    pub kind: Option<Kind>,
    /// `prev` (None for null).
    pub prev: Option<String>,
    /// Its rotation keys, a legacy `create` normalized to
    /// `[recoveryKey, signingKey]`; empty for a tombstone.
    pub rotation_keys: Vec<String>,
    /// The raw r||s signature, when it decoded strictly.
    pub sig: Option<[u8; 64]>,
    /// DAG-CBOR of the operation without `sig`: what was signed.
    pub unsigned: Vec<u8>,
    /// SHA-256 of `unsigned`.
    pub digest: [u8; 32],
    /// Every rule this operation breaks on its own.
    pub problems: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Envelope {
    operation: Option<Value>,
    nullified: Option<bool>,
}

/// Checks one line. `Err` is a line that is not an operation line at all
/// (bad input, exit 2); an operation that breaks a rule is `Ok` with
/// `problems`.
pub fn prepare(line: &[u8]) -> Result<Prepared, String> {
    let head = crate::line::parse_op(line)?;
    let env: Envelope = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let mut p = Prepared {
        did: head.did.into_owned(),
        cid: head.cid.into_owned(),
        created_at: head.created_at.into_owned(),
        time: head.time,
        archived_nullified: env.nullified.unwrap_or(false),
        kind: None,
        prev: None,
        rotation_keys: Vec::new(),
        sig: None,
        unsigned: Vec::new(),
        digest: [0; 32],
        problems: Vec::new(),
    };
    let Some(Value::Object(op)) = env.operation else {
        p.problems
            .push("shape: the line has no `operation` object".into());
        return Ok(p);
    };
    if let Err(e) = shape(&op, &mut p) {
        p.problems.push(format!("shape: {e}"));
    }
    let signed = match serde_ipld_dagcbor::to_vec(&op) {
        Ok(b) => b,
        Err(e) => {
            p.problems.push(format!("encoding: not DAG-CBOR: {e}"));
            return Ok(p);
        }
    };
    if signed.len() > MAX_OP_BYTES {
        p.problems.push(format!(
            "size: {} bytes of DAG-CBOR, over the specification's {MAX_OP_BYTES}",
            signed.len()
        ));
    }
    let hash: [u8; 32] = Sha256::digest(&signed).into();
    let cid = cid_string(&hash);
    if cid != p.cid {
        p.problems.push(format!(
            "cid: the line says {}, the signed operation's DAG-CBOR gives {cid}",
            p.cid
        ));
    }
    if p.prev.is_none() && p.kind.is_some() && p.kind != Some(Kind::Tombstone) {
        let did = did_for_genesis(&hash);
        if did != p.did {
            p.problems.push(format!(
                "genesis: the DID of this genesis operation is {did}, not {}",
                p.did
            ));
        }
    }
    let mut unsigned_op = op;
    unsigned_op.remove("sig");
    p.unsigned = serde_ipld_dagcbor::to_vec(&unsigned_op)
        .map_err(|e| format!("encoding the unsigned operation: {e}"))?;
    p.digest = Sha256::digest(&p.unsigned).into();
    Ok(p)
}

/// `b` + base32 lowercase of CIDv1, dag-cbor (0x71), sha2-256 (0x12, 32).
pub fn cid_string(sha256: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(36);
    bytes.extend_from_slice(&[0x01, 0x71, 0x12, 0x20]);
    bytes.extend_from_slice(sha256);
    format!("b{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

/// `did:plc:` + the first 24 characters of base32 lowercase of the signed
/// genesis operation's SHA-256.
pub fn did_for_genesis(sha256: &[u8; 32]) -> String {
    let b32 = BASE32_NOPAD.encode(sha256).to_ascii_lowercase();
    format!("did:plc:{}", &b32[..24])
}

const OPERATION_FIELDS: &[&str] = &[
    "type",
    "rotationKeys",
    "verificationMethods",
    "alsoKnownAs",
    "services",
    "prev",
    "sig",
];
const TOMBSTONE_FIELDS: &[&str] = &["type", "prev", "sig"];
const CREATE_FIELDS: &[&str] = &[
    "type",
    "signingKey",
    "recoveryKey",
    "handle",
    "service",
    "prev",
    "sig",
];

/// Checks the fields of `op` against its type and fills `p`'s kind, prev,
/// rotation keys and signature. The error names the first field that is
/// wrong; a bad signature encoding goes to `p.problems`.
fn shape(op: &Map<String, Value>, p: &mut Prepared) -> Result<(), String> {
    let (kind, fields) = match op.get("type") {
        Some(Value::String(t)) if t == "plc_operation" => (Kind::Operation, OPERATION_FIELDS),
        Some(Value::String(t)) if t == "plc_tombstone" => (Kind::Tombstone, TOMBSTONE_FIELDS),
        Some(Value::String(t)) if t == "create" => (Kind::LegacyCreate, CREATE_FIELDS),
        Some(t) => return Err(format!("unknown type {t}")),
        None => return Err("no `type` field".into()),
    };
    let name = match kind {
        Kind::Operation => "plc_operation",
        Kind::Tombstone => "plc_tombstone",
        Kind::LegacyCreate => "create",
    };
    for f in fields {
        if !op.contains_key(*f) {
            return Err(format!("{name} lacks the field `{f}`"));
        }
    }
    if let Some(extra) = op.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(format!("extra field `{extra}` in {name}"));
    }
    let prev = match &op["prev"] {
        Value::Null if kind != Kind::Tombstone => None,
        Value::String(s) if kind != Kind::LegacyCreate => Some(s.clone()),
        v => return Err(format!("prev: {name} cannot have prev {v}")),
    };
    let sig = string(op, "sig")?;
    match kind {
        Kind::Operation => {
            let keys = string_array(op, "rotationKeys")?;
            for (i, k) in keys.iter().enumerate() {
                parse_did_key(k).map_err(|e| format!("rotationKeys[{i}]: {e}"))?;
            }
            match &op["verificationMethods"] {
                Value::Object(m) if m.values().all(Value::is_string) => {}
                _ => return Err("`verificationMethods` is not a map of strings".into()),
            }
            string_array(op, "alsoKnownAs")?;
            let Value::Object(services) = &op["services"] else {
                return Err("`services` is not a map".into());
            };
            for (id, s) in services {
                let ok = matches!(s, Value::Object(m) if m.len() == 2
                    && m.get("type").is_some_and(Value::is_string)
                    && m.get("endpoint").is_some_and(Value::is_string));
                if !ok {
                    return Err(format!(
                        "services.{id} is not exactly {{type, endpoint}} strings"
                    ));
                }
            }
            p.rotation_keys = keys;
        }
        Kind::LegacyCreate => {
            for f in ["handle", "service"] {
                string(op, f)?;
            }
            let recovery = string(op, "recoveryKey")?;
            let signing = string(op, "signingKey")?;
            for k in [&recovery, &signing] {
                parse_did_key(k)?;
            }
            p.rotation_keys = vec![recovery, signing];
        }
        Kind::Tombstone => {}
    }
    p.kind = Some(kind);
    p.prev = prev;
    match decode_sig(&sig) {
        Ok(s) => p.sig = Some(s),
        Err(e) => p.problems.push(e),
    }
    Ok(())
}

fn string(op: &Map<String, Value>, f: &str) -> Result<String, String> {
    match &op[f] {
        Value::String(s) => Ok(s.clone()),
        v => Err(format!("`{f}` is not a string but {v}")),
    }
}

fn string_array(op: &Map<String, Value>, f: &str) -> Result<Vec<String>, String> {
    match &op[f] {
        Value::Array(a) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(format!("`{f}` holds {v}, not a string")),
            })
            .collect(),
        v => Err(format!("`{f}` is not an array but {v}")),
    }
}
