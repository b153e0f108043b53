//! One archived operation as the DID endpoints need it: the line's bytes,
//! and where inside them the `did`, `operation`, `cid` and `createdAt`
//! values lie, so that answers can repeat those bytes exactly instead of
//! serializing a parsed copy.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// An operation line of the archive with its fields located.
#[derive(Clone, Debug)]
pub struct StoredOp {
    line: Box<[u8]>,
    did: String,
    did_raw: Range<usize>,
    operation: Range<usize>,
    cid: Range<usize>,
    created_at: Range<usize>,
    nullified: bool,
}

#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(borrow)]
    did: &'a RawValue,
    #[serde(borrow)]
    operation: &'a RawValue,
    #[serde(borrow)]
    cid: &'a RawValue,
    #[serde(default)]
    nullified: bool,
    #[serde(borrow, rename = "createdAt")]
    created_at: &'a RawValue,
}

impl StoredOp {
    /// Reads an archived line (without its `\n`). The error says what is
    /// missing or malformed.
    pub fn parse(line: &[u8]) -> Result<StoredOp, String> {
        let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
        let parts: Parts = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let did: String = serde_json::from_str(parts.did.get())
            .map_err(|e| format!("did is not a string: {e}"))?;
        let base = text.as_ptr() as usize;
        let at = |raw: &RawValue| {
            let start = raw.get().as_ptr() as usize - base;
            start..start + raw.get().len()
        };
        Ok(StoredOp {
            did_raw: at(parts.did),
            operation: at(parts.operation),
            cid: at(parts.cid),
            created_at: at(parts.created_at),
            nullified: parts.nullified,
            did,
            line: line.into(),
        })
    }

    /// The whole line as archived.
    pub fn line(&self) -> &[u8] {
        &self.line
    }
    /// The operation's DID.
    pub fn did(&self) -> &str {
        &self.did
    }
    /// The `did` value's JSON text as archived.
    pub fn did_json(&self) -> &[u8] {
        &self.line[self.did_raw.clone()]
    }
    /// The `operation` value's JSON text as archived.
    pub fn operation_json(&self) -> &[u8] {
        &self.line[self.operation.clone()]
    }
    /// The `cid` value's JSON text as archived.
    pub fn cid_json(&self) -> &[u8] {
        &self.line[self.cid.clone()]
    }
    /// The `createdAt` value's JSON text as archived.
    pub fn created_at_json(&self) -> &[u8] {
        &self.line[self.created_at.clone()]
    }
    /// Whether the directory had nullified it when it was archived.
    pub fn nullified(&self) -> bool {
        self.nullified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_each_value_in_either_key_order() {
        let older = br#"{"did":"did:plc:a","operation":{"sig":"x","type":"plc_tombstone"},"cid":"bafy1","nullified":true,"createdAt":"2024-01-01T00:00:00.000Z"}"#;
        let newer = br#"{"did":"did:plc:a","cid":"bafy1","createdAt":"2024-01-01T00:00:00.000Z","operation":{"sig":"x","type":"plc_tombstone"},"nullified":true}"#;
        for line in [&older[..], &newer[..]] {
            let op = StoredOp::parse(line).unwrap();
            assert_eq!(op.did(), "did:plc:a");
            assert_eq!(op.did_json(), br#""did:plc:a""#);
            assert_eq!(
                op.operation_json(),
                br#"{"sig":"x","type":"plc_tombstone"}"#
            );
            assert_eq!(op.cid_json(), br#""bafy1""#);
            assert_eq!(op.created_at_json(), br#""2024-01-01T00:00:00.000Z""#);
            assert!(op.nullified());
        }
        assert!(StoredOp::parse(br#"{"did":"x"}"#).is_err());
    }
}
