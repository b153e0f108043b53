//! Reading one `/export` response body as operation lines, within what a
//! page can legitimately be, whatever the server sends.
//!
//! A page answers `count=N`, so it holds at most N operations, each a line
//! of at most [`MAX_LINE`] bytes: at most N lines and N × (1 MiB + 1) bytes
//! (about 1 GiB for the directory's 1000). The body is read as a stream,
//! one line at a time into one reused buffer, so memory is one line and not
//! one page; the first line past any of those limits stops the read with an
//! error, and the byte limit is a hard cap on the stream itself
//! ([`Read::take`]), so a body that inflates (`Content-Encoding: gzip`) or
//! never ends is never read past it. Each line is checked to be an
//! operation with a CID of CID size, in order inside the page and not
//! older than `after` (a server that ignores `after` is named as such),
//! then handed to a [`Visit`].

use crate::error::Error;
use crate::line::{excerpt, parse_op, Op, MAX_LINE};
use crate::time::Timestamp;
use std::io::{BufRead, BufReader, Read};

/// The longest `cid` accepted. A PLC operation's CID is a CIDv1 of
/// sha2-256 in base32, 59 characters; the CIDs of the boundary millisecond
/// are kept between pages, so their size is bounded here rather than by
/// the line limit.
pub const MAX_CID: usize = 128;

/// Whether to read on after a line.
pub(super) enum Flow {
    /// Read the next line.
    Go,
    /// Stop here; the rest of the body is not read.
    Stop,
}

/// Why a body was not read to its end.
pub(super) enum BodyFault {
    /// The body looks cut off (a read failed, or its last line, without a
    /// newline, is not an operation): worth fetching again. `bad` is that
    /// last line, so that the same line twice is recognised as data.
    Cut { msg: String, bad: Option<Vec<u8>> },
    /// The server sent something no retry can fix; the message does not
    /// name the request (the caller adds it).
    Refused(String),
    /// Writing failed (a closed pipe, a full disk).
    Failed(Error),
}

/// What is done with each checked line of a page.
pub(super) trait Visit {
    /// Called before each attempt at reading a body, with the instant past
    /// which operations are held back (the server's clock minus the lag).
    fn start(&mut self, cutoff: Timestamp);
    /// One operation line (without its newline), in order.
    fn line(&mut self, line: &[u8], op: &Op<'_>) -> Result<Flow, BodyFault>;
    /// The attempt failed in a way worth retrying; what was taken so far
    /// stays taken (the retry skips it as already written).
    fn cut(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// What one body held.
pub(super) struct Scanned {
    /// Lines read (up to a [`Flow::Stop`]).
    pub lines: usize,
    /// Some line was created exactly at `after`: the server treats `after`
    /// as inclusive.
    pub at_after: bool,
}

/// The most bytes a page of `count` operations can take: `count` lines of
/// at most [`MAX_LINE`] bytes, each with its newline.
pub fn body_limit(count: usize) -> u64 {
    count as u64 * (MAX_LINE as u64 + 1)
}

/// Reads `body`, the answer to `count=ask&after=after`, line by line into
/// `visit`.
pub(super) fn scan(
    body: &mut dyn Read,
    ask: usize,
    after: Option<Timestamp>,
    visit: &mut dyn Visit,
) -> Result<Scanned, BodyFault> {
    let limit = body_limit(ask);
    // One byte more than allowed, to tell "at the limit" from "past it".
    let mut reader = BufReader::with_capacity(64 << 10, body.take(limit + 1));
    let mut line = Vec::new();
    let mut prev: Option<Timestamp> = None;
    let mut scanned = Scanned {
        lines: 0,
        at_after: false,
    };
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| BodyFault::Cut {
                msg: format!("reading the body failed (cut off?): {e}"),
                bad: None,
            })?;
        if n == 0 {
            return Ok(scanned);
        }
        if reader.get_ref().limit() == 0 {
            return Err(BodyFault::Refused(format!(
                "the body is longer than {limit} bytes, the most a page of {ask} operations of at most {MAX_LINE} bytes can take"
            )));
        }
        let ended = line.last() == Some(&b'\n');
        if ended {
            line.pop();
        }
        let line_no = scanned.lines + 1;
        if line.len() > MAX_LINE {
            return Err(BodyFault::Refused(format!(
                "line {line_no}: line longer than {MAX_LINE} bytes: {}",
                excerpt(&line)
            )));
        }
        if scanned.lines == ask {
            return Err(BodyFault::Refused(format!(
                "the server sent more than the {ask} operations asked for (line {line_no}: {})",
                excerpt(&line)
            )));
        }
        scanned.lines = line_no;
        let op = match parse_op(&line) {
            Ok(op) => op,
            // A last line without its newline that does not parse is most
            // likely a body cut short; a bad line with its newline is data.
            Err(reason) if !ended => {
                return Err(BodyFault::Cut {
                    msg: format!(
                        "truncated body? line {line_no}: {reason}: {}",
                        excerpt(&line)
                    ),
                    bad: Some(line),
                })
            }
            Err(reason) => {
                return Err(BodyFault::Refused(format!(
                    "line {line_no}: {reason}: {}",
                    excerpt(&line)
                )))
            }
        };
        if op.cid.len() > MAX_CID {
            return Err(BodyFault::Refused(format!(
                "line {line_no}: a cid of {} bytes is not a CID (at most {MAX_CID}): {}",
                op.cid.len(),
                excerpt(&line)
            )));
        }
        if prev.is_some_and(|p| op.time < p) {
            return Err(BodyFault::Refused(format!(
                "line {line_no}: createdAt goes backwards inside a page ({}); is `after` being read as a sequence number?",
                op.created_at
            )));
        }
        prev = Some(op.time);
        if let Some(a) = after {
            if op.time < a {
                return Err(BodyFault::Refused(format!(
                    "the server ignored after={}: it returned an operation created at {} (line {line_no}), before it; a server or proxy that does not honour `after` cannot be paged",
                    a.format_millis(),
                    op.created_at
                )));
            }
            scanned.at_after |= op.time == a;
        }
        if let Flow::Stop = visit.line(&line, &op)? {
            return Ok(scanned);
        }
    }
}
