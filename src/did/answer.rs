//! What the official directory answers on its DID routes, as pure
//! functions from a DID's archived operations to (status, content type,
//! body). `plc-did` prints the bodies; `plc-serve` sends them.
//!
//! The rules are those of the official server (the "DID endpoints" section
//! of the project's facts): operations in archive (createdAt) order,
//! "active" meaning not nullified; `/log/audit` lists every operation,
//! the other routes only active ones; a DID whose last active operation is
//! a tombstone is "not available" for its document and data.
//!
//! Bytes: `/log`, `/log/last` and the `operation` inside `/log/audit` are
//! the operation's JSON exactly as archived (sliced out of the line, never
//! re-serialized), and so are `did`, `cid` and `createdAt` in the audit
//! entries. The directory stores operations parsed and serializes them
//! again; its export lines are produced the same way, so the archived
//! bytes are what it answers, except for lines an older server exported
//! with other escapes (`\/`, `\u00e9`), which carry the same JSON value in
//! other bytes. `/data` and the document are built from parsed values, as
//! the directory builds them, with `JSON.stringify`'s escaping and each
//! object's key order kept.

use super::json::{self, Json};
use super::op::StoredOp;

/// Content type of the DID document.
pub const DID_LD_JSON: &str = "application/did+ld+json; charset=utf-8";
/// Content type of every other answer, errors included.
pub const JSON: &str = "application/json; charset=utf-8";

/// The DID routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/{did}`: the DID document.
    Doc,
    /// `/{did}/data`: the document's data.
    Data,
    /// `/{did}/log`: the active operations.
    Log,
    /// `/{did}/log/audit`: every operation with its metadata.
    Audit,
    /// `/{did}/log/last`: the last active operation.
    Last,
}

impl Route {
    /// The route for a path after the DID (`""`, `"/data"`, `"/log"`,
    /// `"/log/audit"`, `"/log/last"`).
    pub fn from_suffix(suffix: &str) -> Option<Route> {
        Some(match suffix {
            "" => Route::Doc,
            "/data" => Route::Data,
            "/log" => Route::Log,
            "/log/audit" => Route::Audit,
            "/log/last" => Route::Last,
            _ => return None,
        })
    }
}

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status: 200 or 404.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// The body: compact JSON on one line.
    pub body: Vec<u8>,
}

impl Answer {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            content_type,
            body,
        }
    }

    fn not_found(message: String) -> Answer {
        let mut body = b"{\"message\":".to_vec();
        json::write_str(&mut body, &message);
        body.push(b'}');
        Answer {
            status: 404,
            content_type: JSON,
            body,
        }
    }

    /// The error message when this is a 404, for `plc-did`'s error lines.
    pub fn error_message(&self) -> Option<String> {
        if self.status == 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v["message"].as_str().map(str::to_string)
    }
}

/// 404 "DID not registered".
pub fn not_registered(did: &str) -> Answer {
    Answer::not_found(format!("DID not registered: {did}"))
}

/// 404 "DID not available".
pub fn not_available(did: &str) -> Answer {
    Answer::not_found(format!("DID not available: {did}"))
}

/// What the directory answers on `route` for `did`, whose archived
/// operations are `ops` (in archive order; empty for an unknown DID).
/// Fails only when an operation's JSON cannot be read; the error names
/// what is wrong.
pub fn answer(route: Route, did: &str, ops: &[StoredOp]) -> Result<Answer, String> {
    // The audit log lists nullified operations too: only a DID without
    // any operation is unknown there. The other routes read active ones.
    if route == Route::Audit {
        if ops.is_empty() {
            return Ok(not_registered(did));
        }
        return Ok(Answer::ok(JSON, audit(ops)));
    }
    let active = || ops.iter().filter(|o| !o.nullified());
    let Some(last) = active().next_back() else {
        return Ok(not_registered(did));
    };
    Ok(match route {
        Route::Audit => unreachable!("answered above"),
        Route::Log => {
            let mut body = vec![b'['];
            for (i, op) in active().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(op.operation_json());
            }
            body.push(b']');
            Answer::ok(JSON, body)
        }
        Route::Last => Answer::ok(JSON, last.operation_json().to_vec()),
        Route::Data | Route::Doc => {
            let operation = json::parse(last.operation_json())
                .map_err(|e| format!("operation {}: {e}", cid_text(last)))?;
            let Some(data) = DocData::from_operation(&operation) else {
                return Ok(not_available(did));
            };
            if route == Route::Data {
                Answer::ok(JSON, data.data_json(did))
            } else {
                Answer::ok(DID_LD_JSON, data.document_json(did))
            }
        }
    })
}

fn cid_text(op: &StoredOp) -> String {
    String::from_utf8_lossy(op.cid_json()).into_owned()
}

/// `/log/audit`: every operation, in the key order did, operation, cid,
/// nullified, createdAt.
fn audit(ops: &[StoredOp]) -> Vec<u8> {
    let mut body = vec![b'['];
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"did\":");
        body.extend_from_slice(op.did_json());
        body.extend_from_slice(b",\"operation\":");
        body.extend_from_slice(op.operation_json());
        body.extend_from_slice(b",\"cid\":");
        body.extend_from_slice(op.cid_json());
        body.extend_from_slice(b",\"nullified\":");
        body.extend_from_slice(if op.nullified() { b"true" } else { b"false" });
        body.extend_from_slice(b",\"createdAt\":");
        body.extend_from_slice(op.created_at_json());
        body.push(b'}');
    }
    body.push(b']');
    body
}

/// The document data of an operation: its four fields, a legacy `create`
/// normalized. Missing fields stay missing (JavaScript's `undefined`,
/// which `JSON.stringify` leaves out).
struct DocData {
    verification_methods: Option<Json>,
    rotation_keys: Option<Json>,
    also_known_as: Option<Json>,
    services: Option<Json>,
}

impl DocData {
    /// `None` for a tombstone.
    fn from_operation(op: &Json) -> Option<DocData> {
        match op.get("type").and_then(Json::as_str) {
            Some("plc_tombstone") => None,
            Some("create") => Some(DocData::from_legacy_create(op)),
            _ => Some(DocData {
                verification_methods: op.get("verificationMethods").cloned(),
                rotation_keys: op.get("rotationKeys").cloned(),
                also_known_as: op.get("alsoKnownAs").cloned(),
                services: op.get("services").cloned(),
            }),
        }
    }

    fn from_legacy_create(op: &Json) -> DocData {
        let text = |k| op.get(k).and_then(Json::as_str).unwrap_or_default();
        let signing = Json::String(text("signingKey").to_string());
        let recovery = Json::String(text("recoveryKey").to_string());
        let handle = text("handle");
        let handle = handle
            .strip_prefix("http://")
            .or_else(|| handle.strip_prefix("https://"))
            .unwrap_or(handle);
        let service = text("service");
        let endpoint = if service.starts_with("http://") || service.starts_with("https://") {
            service.to_string()
        } else {
            format!("https://{service}")
        };
        let object = |entries: Vec<(&str, Json)>| {
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        };
        DocData {
            verification_methods: Some(object(vec![("atproto", signing.clone())])),
            rotation_keys: Some(Json::Array(vec![recovery, signing])),
            also_known_as: Some(Json::Array(vec![Json::String(format!("at://{handle}"))])),
            services: Some(object(vec![(
                "atproto_pds",
                object(vec![
                    ("type", Json::String("AtprotoPersonalDataServer".into())),
                    ("endpoint", Json::String(endpoint)),
                ]),
            )])),
        }
    }

    /// `/data`: did, verificationMethods, rotationKeys, alsoKnownAs,
    /// services.
    fn data_json(&self, did: &str) -> Vec<u8> {
        let mut w = ObjectWriter::new();
        w.string("did", did);
        w.value("verificationMethods", self.verification_methods.as_ref());
        w.value("rotationKeys", self.rotation_keys.as_ref());
        w.value("alsoKnownAs", self.also_known_as.as_ref());
        w.value("services", self.services.as_ref());
        w.finish()
    }

    /// The DID document.
    fn document_json(&self, did: &str) -> Vec<u8> {
        let mut context = vec![
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
        ];
        let mut methods = Vec::new();
        for (name, key) in entries(self.verification_methods.as_ref()) {
            let key_text = key.as_str().unwrap_or_default();
            if let Some(c) = key_context(key_text) {
                if !context.contains(&c) {
                    context.push(c);
                }
            }
            let mut m = ObjectWriter::new();
            m.string("id", &format!("{did}#{name}"));
            m.string("type", "Multikey");
            m.string("controller", did);
            match key {
                Json::String(k) => m.string(
                    "publicKeyMultibase",
                    k.strip_prefix("did:key:").unwrap_or(k),
                ),
                other => m.value("publicKeyMultibase", Some(other)),
            }
            methods.push(m.finish());
        }
        let mut services = Vec::new();
        for (name, service) in entries(self.services.as_ref()) {
            let mut s = ObjectWriter::new();
            s.string("id", &format!("#{name}"));
            s.value("type", service.get("type"));
            s.value("serviceEndpoint", service.get("endpoint"));
            services.push(s.finish());
        }
        let mut doc = ObjectWriter::new();
        doc.raw("@context", &{
            let mut a = vec![b'['];
            for (i, c) in context.iter().enumerate() {
                if i > 0 {
                    a.push(b',');
                }
                json::write_str(&mut a, c);
            }
            a.push(b']');
            a
        });
        doc.string("id", did);
        doc.value("alsoKnownAs", self.also_known_as.as_ref());
        doc.raw("verificationMethod", &join_array(&methods));
        doc.raw("service", &join_array(&services));
        doc.finish()
    }
}

/// An object's entries in order (nothing for a missing or non-object
/// value).
fn entries(v: Option<&Json>) -> impl Iterator<Item = (&str, &Json)> {
    let list: &[(String, Json)] = match v {
        Some(Json::Object(e)) => e,
        _ => &[],
    };
    list.iter().map(|(k, v)| (k.as_str(), v))
}

fn join_array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut a = vec![b'['];
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            a.push(b',');
        }
        a.extend_from_slice(item);
    }
    a.push(b']');
    a
}

/// Writes a compact JSON object key by key; a `None` value leaves its key
/// out, as `JSON.stringify` does with `undefined`.
struct ObjectWriter(Vec<u8>);

impl ObjectWriter {
    fn new() -> Self {
        ObjectWriter(vec![b'{'])
    }
    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        json::write_str(&mut self.0, k);
        self.0.push(b':');
    }
    fn string(&mut self, k: &str, v: &str) {
        self.key(k);
        json::write_str(&mut self.0, v);
    }
    fn value(&mut self, k: &str, v: Option<&Json>) {
        if let Some(v) = v {
            self.key(k);
            v.write(&mut self.0);
        }
    }
    fn raw(&mut self, k: &str, json: &[u8]) {
        self.key(k);
        self.0.extend_from_slice(json);
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

/// Multicodec prefix of a secp256k1 public key.
const SECP256K1: [u8; 2] = [0xe7, 0x01];
/// Multicodec prefix of a P-256 public key.
const P256: [u8; 2] = [0x80, 0x24];

/// The key type of a `did:key`, from its multicodec prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// secp256k1 (prefix 0xe7 0x01).
    Secp256k1,
    /// NIST P-256 (prefix 0x80 0x24).
    P256,
}

/// Reads a `did:key:z...` value: base58btc, a multicodec prefix this
/// directory knows, and a compressed point (33 bytes starting with 2 or
/// 3). Anything else is `None` (the directory then adds no context).
///
/// Known difference: the official server also decompresses the point and
/// gives no context for an x that is not on the curve; this check stops
/// at the encoding (every key the directory accepted in a signed operation
/// it could use was a valid point).
pub fn key_type(key: &str) -> Option<KeyType> {
    let encoded = key.strip_prefix("did:key:z")?;
    let bytes = bs58::decode(encoded).into_vec().ok()?;
    // The directory parses the key (@atproto/crypto's parseDidKey, which
    // decompresses the point) and adds no context for one it cannot
    // parse: a point must be on its curve.
    if let Some(p) = bytes.strip_prefix(&SECP256K1) {
        (p.len() == 33 && secp256k1::PublicKey::from_slice(p).is_ok()).then_some(KeyType::Secp256k1)
    } else if let Some(p) = bytes.strip_prefix(&P256) {
        (p.len() == 33 && p256::PublicKey::from_sec1_bytes(p).is_ok()).then_some(KeyType::P256)
    } else {
        None
    }
}

/// The `@context` entry a verification key adds to the document.
fn key_context(key: &str) -> Option<&'static str> {
    Some(match key_type(key)? {
        KeyType::P256 => "https://w3id.org/security/suites/ecdsa-2019/v1",
        KeyType::Secp256k1 => "https://w3id.org/security/suites/secp256k1-2019/v1",
    })
}

/// A DID as it appears in a request path, percent-decoded as the
/// directory's router decodes a path parameter (JavaScript's
/// `decodeURIComponent`, in Express 4): `did%3Aplc%3A...` is
/// `did:plc:...`. A `%` not followed by two hex digits, or escapes that
/// do not decode to UTF-8, make the directory answer 400 `{"message":
/// "Failed to decode param '<segment>'"}` on every DID route: that answer
/// is the `Err`.
pub fn decode_did(path_segment: &str) -> Result<String, Answer> {
    let b = path_segment.as_bytes();
    let well_formed = b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let decoded = well_formed
        .then(|| {
            percent_encoding::percent_decode_str(path_segment)
                .decode_utf8()
                .ok()
        })
        .flatten();
    decoded.map(|s| s.into_owned()).ok_or_else(|| {
        let mut body = b"{\"message\":".to_vec();
        json::write_str(
            &mut body,
            &format!("Failed to decode param '{path_segment}'"),
        );
        body.push(b'}');
        Answer {
            status: 400,
            content_type: JSON,
            body,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did_key(prefix: [u8; 2], first: u8) -> String {
        let mut b = prefix.to_vec();
        b.push(first);
        b.extend_from_slice(&[7u8; 32]);
        format!("did:key:z{}", bs58::encode(b).into_string())
    }

    #[test]
    fn key_types_from_the_multicodec_prefix() {
        assert_eq!(key_type(&did_key(P256, 4)), None);
        assert_eq!(key_type(&did_key([0xed, 0x01], 2)), None);
        assert_eq!(key_type("did:key:zQ3sh0OIl"), None, "not base58");
        assert!(key_type("zQ3shXXX").is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode_did("did%3Aplc%3Aabc").unwrap(), "did:plc:abc");
        assert_eq!(decode_did("did:plc:abc").unwrap(), "did:plc:abc");
        assert_eq!(decode_did("d%C3%A9%2F%25").unwrap(), "dé/%");
        // decodeURIComponent throws on these; Express answers 400.
        for bad in ["bad%zz", "%FF", "a%", "a%4", "%C3", "%ED%A0%80"] {
            let a = decode_did(bad).unwrap_err();
            assert_eq!(a.status, 400, "{bad}");
            let want = format!("Failed to decode param '{bad}'");
            assert_eq!(a.error_message().as_deref(), Some(want.as_str()));
        }
    }

    #[test]
    fn a_key_off_its_curve_adds_no_context() {
        // A real key's point is on its curve.
        let k = secp256k1::PublicKey::from_secret_key(
            &secp256k1::Secp256k1::signing_only(),
            &secp256k1::SecretKey::from_slice(&[7u8; 32]).unwrap(),
        )
        .serialize();
        let with = |prefix: [u8; 2], point: &[u8]| {
            let mut b = prefix.to_vec();
            b.extend_from_slice(point);
            format!("did:key:z{}", bs58::encode(b).into_string())
        };
        assert_eq!(key_type(&with(SECP256K1, &k)), Some(KeyType::Secp256k1));
        let p = p256::SecretKey::from_slice(&[7u8; 32])
            .unwrap()
            .public_key();
        let p = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&p, true);
        assert_eq!(key_type(&with(P256, p.as_bytes())), Some(KeyType::P256));
        // x = 2^256 - 1, above both fields' p: a point of neither.
        let mut off = [0xffu8; 33];
        off[0] = 2;
        assert_eq!(key_type(&with(SECP256K1, &off)), None);
        assert_eq!(key_type(&with(P256, &off)), None);
        // A P-256 point's bytes under the secp256k1 prefix, and the other
        // way round, are on the wrong curve as often as not; the answer
        // must be what each curve's own parser says.
        for seed in 1..40u8 {
            let k = secp256k1::PublicKey::from_secret_key(
                &secp256k1::Secp256k1::signing_only(),
                &secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap(),
            )
            .serialize();
            let on_p256 = p256::PublicKey::from_sec1_bytes(&k).is_ok();
            assert_eq!(key_type(&with(P256, &k)).is_some(), on_p256);
        }
    }
}
