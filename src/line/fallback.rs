//! The reference check of an operation line, with serde_json: every line
//! the fast scanner is not sure of comes here, so every refusal, and its
//! wording, is serde_json's.

use super::{finish, Op, RawOp};

/// The reference implementation of [`parse_op`](super::parse_op), with serde_json.
pub(super) fn parse_op_serde(line: &[u8]) -> std::result::Result<Op<'_>, String> {
    if line.is_empty() {
        return Err("empty line".into());
    }
    if let Err(e) = std::str::from_utf8(line) {
        return Err(format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1));
    }
    if line.last() == Some(&b'\r') {
        return Err("line ends with \\r (CRLF line endings are not accepted)".into());
    }
    if line[0] != b'{' || line[line.len() - 1] != b'}' {
        return Err("not a JSON object (a line must start with '{' and end with '}')".into());
    }
    let raw: RawOp = serde_json::from_slice(line).map_err(|e| {
        let msg = e.to_string();
        // serde's wording for a wrong type/missing key is good; strip the
        // position, which is always "line 1" inside a single line.
        let msg = msg
            .rsplit_once(" at line ")
            .map(|(m, _)| m.to_string())
            .unwrap_or(msg);
        let col = e.column();
        if e.is_data() {
            format!("not an operation: {msg}")
        } else {
            format!("invalid JSON at column {col}: {msg}")
        }
    })?;
    finish(raw)
}
