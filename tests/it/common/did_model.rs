//! An independent model of the PLC directory's DID routes, written from
//! the rules in the project's facts ("The directory's DID endpoints"),
//! computing each answer from what the generator (`did_synth.rs`) meant
//! rather than from the archived bytes the code under test reads.
//!
//! Strings are written with serde_json (its escaping is
//! `JSON.stringify`'s); objects are written key by key in the order the
//! facts give, nested entries in the order the generator wrote them.

use super::did_synth::{Body, Curve, GenOp};

/// One expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body bytes.
    pub body: Vec<u8>,
}

const JSON: &str = "application/json; charset=utf-8";
const DID_LD: &str = "application/did+ld+json; charset=utf-8";

fn s(v: &str) -> String {
    serde_json::to_string(v).unwrap()
}

fn error(status: u16, message: String) -> Expected {
    Expected {
        status,
        content_type: JSON,
        body: serde_json::json!({ "message": message })
            .to_string()
            .into_bytes(),
    }
}

fn ok(content_type: &'static str, body: String) -> Expected {
    Expected {
        status: 200,
        content_type,
        body: body.into_bytes(),
    }
}

/// The document data of an operation body: (verificationMethods as
/// (name, key text, curve), rotationKeys, alsoKnownAs, services as
/// (name, type, endpoint)); `None` for a tombstone.
#[allow(clippy::type_complexity)]
fn data_of(
    body: &Body,
) -> Option<(
    Vec<(String, String, Curve)>,
    Vec<String>,
    Vec<String>,
    Vec<(String, String, String)>,
)> {
    match body {
        Body::Tombstone => None,
        Body::Op {
            vms,
            rotation,
            aka,
            services,
        } => Some((
            vms.iter()
                .map(|(n, k)| (n.clone(), k.text.clone(), k.curve))
                .collect(),
            rotation.clone(),
            aka.clone(),
            services
                .iter()
                .map(|x| (x.name.clone(), x.kind.clone(), x.endpoint.clone()))
                .collect(),
        )),
        // Legacy create, normalized per the facts.
        Body::Create {
            signing,
            recovery,
            handle,
            service,
        } => {
            let h = handle
                .strip_prefix("http://")
                .or_else(|| handle.strip_prefix("https://"))
                .unwrap_or(handle);
            let endpoint = if service.starts_with("http://") || service.starts_with("https://") {
                service.clone()
            } else {
                format!("https://{service}")
            };
            Some((
                vec![("atproto".into(), signing.text.clone(), signing.curve)],
                vec![recovery.clone(), signing.text.clone()],
                vec![format!("at://{h}")],
                vec![(
                    "atproto_pds".into(),
                    "AtprotoPersonalDataServer".into(),
                    endpoint,
                )],
            ))
        }
    }
}

fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

/// A DID path segment as the directory's router reads it: Express 4
/// decodes route parameters with JavaScript's `decodeURIComponent`, which
/// throws on a `%` not followed by two hex digits and on escapes that do
/// not form UTF-8; Express then answers 400 with the message "Failed to
/// decode param '<segment>'", which the directory's error handler sends
/// as `{"message": ...}`.
pub fn decode_segment(raw: &str) -> Result<String, Expected> {
    let fail = || error(400, format!("Failed to decode param '{raw}'"));
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(fail)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(fail());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| fail())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| fail())
}

/// What the directory answers on `route` ("", "/data", "/log",
/// "/log/audit", "/log/last") for `did`, whose operations are `ops` in
/// archive order.
pub fn expected(route: &str, did: &str, ops: &[&GenOp]) -> Expected {
    // No operation at all: unknown everywhere. The audit log lists
    // nullified operations too; the other routes only active ones.
    let active: Vec<&&GenOp> = ops.iter().filter(|o| !o.nullified).collect();
    let none = if route == "/log/audit" {
        ops.is_empty()
    } else {
        active.is_empty()
    };
    if none {
        return error(404, format!("DID not registered: {did}"));
    }
    let last = active.last().copied().unwrap_or(&ops[0]);
    match route {
        "/log/audit" => ok(
            JSON,
            array(ops.iter().map(|o| {
                format!(
                    "{{\"did\":{},\"operation\":{},\"cid\":{},\"nullified\":{},\"createdAt\":{}}}",
                    s(&o.did),
                    o.op_json,
                    s(&o.cid),
                    o.nullified,
                    s(&o.created_at)
                )
            })),
        ),
        "/log" => ok(JSON, array(active.iter().map(|o| o.op_json.clone()))),
        "/log/last" => ok(JSON, last.op_json.clone()),
        "/data" | "" => {
            let Some((vms, rotation, aka, services)) = data_of(&last.body) else {
                return error(404, format!("DID not available: {did}"));
            };
            if route == "/data" {
                let vm = vms
                    .iter()
                    .map(|(n, k, _)| format!("{}:{}", s(n), s(k)))
                    .collect::<Vec<_>>()
                    .join(",");
                let svc = services
                    .iter()
                    .map(|(n, t, e)| {
                        format!("{}:{{\"type\":{},\"endpoint\":{}}}", s(n), s(t), s(e))
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                return ok(
                    JSON,
                    format!(
                        "{{\"did\":{},\"verificationMethods\":{{{vm}}},\"rotationKeys\":{},\"alsoKnownAs\":{},\"services\":{{{svc}}}}}",
                        s(did),
                        array(rotation.iter().map(|k| s(k))),
                        array(aka.iter().map(|a| s(a))),
                    ),
                );
            }
            let mut context = vec![
                "https://www.w3.org/ns/did/v1".to_string(),
                "https://w3id.org/security/multikey/v1".to_string(),
            ];
            for (_, _, curve) in &vms {
                let c = match curve {
                    Curve::P256 => "https://w3id.org/security/suites/ecdsa-2019/v1",
                    Curve::K256 => "https://w3id.org/security/suites/secp256k1-2019/v1",
                    // The directory adds a context only for a key it can
                    // parse, which decompresses the point.
                    Curve::Unknown | Curve::BadPoint => continue,
                };
                if !context.iter().any(|x| x == c) {
                    context.push(c.to_string());
                }
            }
            let methods = vms.iter().map(|(n, k, _)| {
                format!(
                    "{{\"id\":{},\"type\":\"Multikey\",\"controller\":{},\"publicKeyMultibase\":{}}}",
                    s(&format!("{did}#{n}")),
                    s(did),
                    s(k.strip_prefix("did:key:").unwrap_or(k))
                )
            });
            let service = services.iter().map(|(n, t, e)| {
                format!(
                    "{{\"id\":{},\"type\":{},\"serviceEndpoint\":{}}}",
                    s(&format!("#{n}")),
                    s(t),
                    s(e)
                )
            });
            ok(
                DID_LD,
                format!(
                    "{{\"@context\":{},\"id\":{},\"alsoKnownAs\":{},\"verificationMethod\":{},\"service\":{}}}",
                    array(context.iter().map(|c| s(c))),
                    s(did),
                    array(aka.iter().map(|a| s(a))),
                    array(methods),
                    array(service)
                ),
            )
        }
        other => panic!("no route {other:?}"),
    }
}
