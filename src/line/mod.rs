//! Operation lines: what every tool reads, and the check that each line
//! is an operation.
//!
//! Every tool reads the same thing: JSON lines, each the exact bytes the
//! directory served followed by `\n`. A line is accepted only if it is valid
//! UTF-8, a single JSON object with nothing around it (no `\r`, no padding),
//! and carries string `did`, `cid` and an RFC 3339 `createdAt`. The bytes
//! are never re-serialized: the tools pass on exactly what they read.
//!
//! One job per file: [`reader`] cuts input into lines, [`scan`] is the fast
//! check that proves most lines valid, [`shape`] proves a line valid by
//! its likeness to one already proven, [`fallback`] is serde_json's
//! verdict (and wording) for every other line, and [`sequence`] keeps the
//! order and spots repeats. This file ties the checks into [`parse_op`]
//! and [`OpParser`].

mod fallback;
mod reader;
mod scan;
mod sequence;
#[cfg(target_arch = "x86_64")]
mod shape;

pub use reader::{split_lines, LineReader, MAX_LINE};
pub use sequence::{Seen, Sequencer};

use crate::error::{Error, Result};
use crate::time::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::Read;

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
///
/// Every tool calls this on every line, so it is built for speed: a
/// hand-written scanner ([`scan`]) handles the lines it can prove valid
/// (it accepts a subset of what serde_json accepts, and extracts the same
/// fields), and everything else, including every line that is refused,
/// goes through serde_json, so the verdicts and the error wording are
/// serde_json's.
pub fn parse_op(line: &[u8]) -> std::result::Result<Op<'_>, String> {
    match scan::scan(line) {
        Some(raw) => finish(raw),
        None => fallback::parse_op_serde(line),
    }
}

/// [`parse_op`] for a run of lines (a bundle's): the same verdicts and
/// fields, faster on CPUs with AVX-512 by remembering the shapes of the
/// lines already proven valid (see [`shape`]).
#[derive(Default)]
pub struct OpParser {
    #[cfg(target_arch = "x86_64")]
    shapes: shape::Shapes,
    minutes: crate::time::MinuteCache,
}

impl OpParser {
    /// [`parse_op`] of `line`.
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> std::result::Result<Op<'a>, String> {
        #[cfg(target_arch = "x86_64")]
        let fast = self.shapes.scan(line);
        #[cfg(not(target_arch = "x86_64"))]
        let fast = scan::scan(line);
        match fast {
            Some(raw) => finish_with(raw, |s| self.minutes.parse(s)),
            None => fallback::parse_op_serde(line),
        }
    }

    /// The length of the first line of `rest` (up to its first `\n`, or
    /// all of it) and [`parse_op`] of that line: a loop over a bundle's
    /// lines that reads each byte once on CPUs with AVX-512.
    pub fn parse_first<'a>(
        &mut self,
        rest: &'a [u8],
    ) -> (usize, std::result::Result<Op<'a>, String>) {
        #[cfg(target_arch = "x86_64")]
        let (len, fast) = self.shapes.scan_first(rest);
        #[cfg(not(target_arch = "x86_64"))]
        let (len, fast) = {
            let len = bstr::ByteSlice::find_byte(rest, b'\n').unwrap_or(rest.len());
            (len, scan::scan(&rest[..len]))
        };
        let verdict = match fast {
            Some(raw) => finish_with(raw, |s| self.minutes.parse(s)),
            None => fallback::parse_op_serde(&rest[..len]),
        };
        (len, verdict)
    }

    /// An [`OpParser`] that runs the shape logic with portable passes,
    /// on any CPU (the tests compare it with serde_json).
    #[cfg(all(test, target_arch = "x86_64"))]
    fn portable() -> Self {
        OpParser {
            shapes: shape::Shapes::portable(),
            minutes: Default::default(),
        }
    }
}

/// The checks after the JSON is known to be good, shared by both paths.
fn finish(raw: RawOp<'_>) -> std::result::Result<Op<'_>, String> {
    finish_with(raw, Timestamp::parse)
}

/// [`finish`], with `parse` reading createdAt as [`Timestamp::parse`]
/// does.
#[inline]
fn finish_with(
    raw: RawOp<'_>,
    parse: impl FnOnce(&str) -> Option<Timestamp>,
) -> std::result::Result<Op<'_>, String> {
    let time = parse(&raw.created_at).ok_or_else(|| {
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

/// Checks the line at `range` of `reader`'s buffer, the line last handed
/// out, with `parser` (one per stream, so that it learns the stream's
/// shapes); the error names the line.
pub fn op_at<'r, R: Read>(
    parser: &mut OpParser,
    reader: &'r LineReader<R>,
    range: std::ops::Range<usize>,
) -> Result<Op<'r>> {
    parser
        .parse(&reader.buffer()[range])
        .map_err(|reason| Error::input(reader.line_no(), reason))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
