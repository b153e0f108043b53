//! Reading operation lines and checking that each one is an operation.
//!
//! Every tool reads the same thing: JSON lines, each the exact bytes the
//! directory served followed by `\n`. A line is accepted only if it is valid
//! UTF-8, a single JSON object with nothing around it (no `\r`, no padding),
//! and carries string `did`, `cid` and an RFC 3339 `createdAt`. The bytes
//! are never re-serialized: the tools pass on exactly what they read.

use crate::error::{Error, Result};
use crate::time::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::BufRead;

/// The longest line accepted, in bytes. Real operations are a few KB; a
/// line this long is a broken stream, not an operation, and reading it is
/// stopped before it can grow memory without bound.
pub const MAX_LINE: usize = 1 << 20;

/// Reads `\n`-terminated lines with a length cap, counting them from 1.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    line_no: u64,
    max_len: usize,
}

impl<R: BufRead> Lines<R> {
    /// Wraps a reader; lines longer than [`MAX_LINE`] are refused.
    pub fn new(inner: R) -> Lines<R> {
        Lines::with_max(inner, MAX_LINE)
    }

    /// Wraps a reader with a custom line-length cap.
    pub fn with_max(inner: R, max_len: usize) -> Lines<R> {
        Lines {
            inner,
            buf: Vec::with_capacity(4096),
            line_no: 0,
            max_len,
        }
    }

    /// The 1-based number of the line last returned (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next line without its `\n`, or `None` at the end of input.
    ///
    /// Input that ends without a final `\n` is an error: every writer in
    /// this toolkit ends each line, so a missing one means a cut stream.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>> {
        self.buf.clear();
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading input", e)),
            };
            if avail.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.line_no += 1;
                return Err(Error::input(
                    self.line_no,
                    "no newline at end of input (the stream was cut off)",
                ));
            }
            match memchr(b'\n', avail) {
                Some(i) => {
                    let fits = self.buf.len() + i <= self.max_len;
                    if fits {
                        self.buf.extend_from_slice(&avail[..i]);
                    }
                    self.inner.consume(i + 1);
                    self.line_no += 1;
                    if !fits {
                        return Err(self.too_long());
                    }
                    return Ok(Some(&self.buf));
                }
                None => {
                    let n = avail.len();
                    if self.buf.len() + n > self.max_len {
                        self.line_no += 1;
                        return Err(self.too_long());
                    }
                    self.buf.extend_from_slice(avail);
                    self.inner.consume(n);
                }
            }
        }
    }

    fn too_long(&self) -> Error {
        Error::input(
            self.line_no,
            format!("line longer than {} bytes", self.max_len),
        )
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    use bstr::ByteSlice;
    hay.find_byte(needle)
}

/// The fields of an operation line the tools need, borrowed where the JSON
/// has no escapes.
#[derive(Debug)]
pub struct Op<'a> {
    /// The operation's DID.
    pub did: Cow<'a, str>,
    /// The operation's CID.
    pub cid: Cow<'a, str>,
    /// `createdAt` exactly as written.
    pub created_at: Cow<'a, str>,
    /// `createdAt` as an instant.
    pub time: Timestamp,
}

#[derive(Deserialize)]
struct RawOp<'a> {
    #[serde(borrow)]
    did: Cow<'a, str>,
    #[serde(borrow)]
    cid: Cow<'a, str>,
    #[serde(borrow, rename = "createdAt")]
    created_at: Cow<'a, str>,
}

/// Checks that `line` is one operation and returns its key fields; the
/// error says what is wrong, for a message that also names the line.
pub fn parse_op(line: &[u8]) -> std::result::Result<Op<'_>, String> {
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
    let time = Timestamp::parse(&raw.created_at).ok_or_else(|| {
        format!(
            "createdAt {:?} is not an RFC 3339 timestamp",
            raw.created_at
        )
    })?;
    if raw.did.is_empty() || raw.cid.is_empty() {
        return Err("empty did or cid".into());
    }
    Ok(Op {
        did: raw.did,
        cid: raw.cid,
        created_at: raw.created_at,
        time,
    })
}

/// A short, printable excerpt of a line for error messages.
pub fn excerpt(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(200)]);
    let mut s: String = s.escape_debug().collect();
    if line.len() > 200 {
        s.push_str("...");
    }
    s
}

/// What a [`Sequencer`] made of an operation.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before, in order.
    New,
    /// Same CID already seen at the same createdAt.
    Duplicate,
}

/// Enforces the directory's order and spots repeats.
///
/// It remembers only the CIDs sharing the latest createdAt, so memory is
/// bounded by the largest group of operations in one millisecond.
#[derive(Default)]
pub struct Sequencer {
    last: Option<(Timestamp, String)>,
    cids: std::collections::HashSet<String>,
}

impl Sequencer {
    /// A sequencer that continues after operations already archived: the
    /// last createdAt and the CIDs that share it.
    pub fn seeded(
        created_at: &str,
        time: Timestamp,
        cids: impl IntoIterator<Item = String>,
    ) -> Self {
        Sequencer {
            last: Some((time, created_at.to_string())),
            cids: cids.into_iter().collect(),
        }
    }

    /// Classifies `op`, or explains why it breaks the order.
    pub fn observe(&mut self, op: &Op<'_>) -> std::result::Result<Seen, String> {
        match &self.last {
            Some((t, text)) if op.time < *t => Err(format!(
                "createdAt goes backwards: {} comes after {}",
                op.created_at, text
            )),
            Some((t, _)) if op.time == *t => {
                if self.cids.contains(op.cid.as_ref()) {
                    Ok(Seen::Duplicate)
                } else {
                    self.cids.insert(op.cid.to_string());
                    Ok(Seen::New)
                }
            }
            _ => {
                self.last = Some((op.time, op.created_at.to_string()));
                self.cids.clear();
                self.cids.insert(op.cid.to_string());
                Ok(Seen::New)
            }
        }
    }
}

/// Reads the next line and checks it is an operation; errors name the line.
pub fn next_op<R: BufRead>(lines: &mut Lines<R>) -> Result<Option<(&[u8], Op<'_>)>> {
    let n = lines.line_no() + 1;
    match lines.next_line()? {
        None => Ok(None),
        Some(line) => match parse_op(line) {
            Ok(op) => Ok(Some((line, op))),
            Err(reason) => Err(Error::input(n, reason)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<std::result::Result<Vec<u8>, String>> {
        let mut l = Lines::with_max(input, max);
        let mut out = Vec::new();
        loop {
            match l.next_line() {
                Ok(Some(x)) => out.push(Ok(x.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_lines_and_refuses_a_cut_last_line() {
        assert_eq!(
            lines(b"a\nbc\n", 10),
            vec![Ok(b"a".to_vec()), Ok(b"bc".to_vec())]
        );
        assert_eq!(lines(b"", 10), vec![]);
        let r = lines(b"a\nbc", 10);
        assert_eq!(
            r[1],
            Err("line 2: no newline at end of input (the stream was cut off)".into())
        );
    }

    #[test]
    fn refuses_long_lines_with_their_number() {
        let r = lines(b"ok\n0123456789abc\n", 10);
        assert_eq!(r[1], Err("line 2: line longer than 10 bytes".into()));
        let r = lines(b"0123456789\n", 10);
        assert_eq!(r, vec![Ok(b"0123456789".to_vec())]);
    }

    #[test]
    fn accepts_operations_and_keeps_escapes_verbatim() {
        let line = [br#"{"did":"did:plc:a","cid":"bafy\u0031","createdAt":"2024-01-01T00:00:00.000Z","operation":{"x":"caf\u00e9 \/ "#.as_slice(), "é\"}}".as_bytes()].concat();
        let op = parse_op(&line).unwrap();
        assert_eq!(op.did, "did:plc:a");
        assert_eq!(op.cid, "bafy1");
        assert_eq!(op.created_at, "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn refuses_what_is_not_an_operation() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty line"),
            (b"[1]", "not a JSON object"),
            (b"{\"did\":\"d\",\"cid\":\"c\"", "not a JSON object"),
            (b"{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00Z\"}\r", "CRLF"),
            (b"{\"did\":\"d\",\"cid\":\"c\"}", "missing field `createdAt`"),
            (b"{\"did\":1,\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00Z\"}", "invalid type"),
            (b"{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"soon\"}", "not an RFC 3339"),
            (b"{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00Z\",\"x\":\"\xff\"}", "invalid UTF-8"),
            (b"{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00Z\",\"x\":\"\0\"}", "invalid JSON"),
            (b"{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00Z\"} {}", "invalid JSON"),
        ];
        for (line, want) in cases {
            let err = parse_op(line).unwrap_err();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn sequencer_drops_repeats_and_refuses_going_back() {
        let op = |t: &'static str, cid: &'static str| Op {
            did: "d".into(),
            cid: cid.into(),
            created_at: t.into(),
            time: Timestamp::parse(t).unwrap(),
        };
        let mut s = Sequencer::seeded(
            "2024-01-01T00:00:00.005Z",
            Timestamp::parse("2024-01-01T00:00:00.005Z").unwrap(),
            ["x".to_string()],
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.005Z", "x")),
            Ok(Seen::Duplicate)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.005Z", "y")),
            Ok(Seen::New)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.006Z", "x")),
            Ok(Seen::New)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.006Z", "y")),
            Ok(Seen::New)
        );
        let e = s.observe(&op("2024-01-01T00:00:00.005Z", "z")).unwrap_err();
        assert!(
            e.contains("2024-01-01T00:00:00.005Z comes after 2024-01-01T00:00:00.006Z"),
            "{e}"
        );
    }
}
