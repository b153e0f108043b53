//! The paging decisions: what to ask next, which lines of a page are new,
//! and what a page that adds nothing means.
//!
//! Every request asks again for the boundary millisecond (`after` = the
//! last createdAt written minus 1 ms; the boundary itself for a server
//! that treats `after` as inclusive) and drops what was written already.
//! A page that adds nothing ("stalled": only the boundary's operations,
//! all written) means one of three things, told apart without ever taking
//! newer operations for a stuck tie:
//! - caught up: nothing lies after the boundary (one probe with
//!   `after` = the boundary says so);
//! - operations arrived after the boundary between the two requests (a
//!   live directory): the probe sees them, and asking the boundary again
//!   returns them after its operations;
//! - the boundary's operations fill every page the server returns, so
//!   what follows them never shows: the same stalled page comes back
//!   although the probe proved later operations exist. Only then is it an
//!   error.
//!
//! A full stalled page (as many operations as asked, all in the boundary
//! millisecond) is asked once more with one operation more: a group of
//! exactly `--count` then shows where it ends and paging goes on; a group
//! larger than `--count` shows its next operation, and writing more than
//! `--count` operations of one millisecond is refused (they cannot all be
//! seen through pages of `--count`). That rule also bounds the CIDs kept
//! for the boundary, whatever a server invents.

use super::page::{BodyFault, Flow, Visit};
use super::retry::Requester;
use super::{ExportConfig, Start};
use crate::error::{Error, Result};
use crate::line::{Op, Seen, Sequencer};
use crate::time::Timestamp;

/// New lines are handed to the writer once this many bytes are pending,
/// and at the end of each page: a page of real operations (about 1 MB)
/// goes out in one piece, and a legitimate page of a gigabyte goes out in
/// pieces instead of being held whole.
const HOLD: usize = 4 << 20;

/// What has been written: the boundary millisecond and its CIDs.
pub(super) struct Cursor {
    /// The last millisecond written and the CIDs written in it.
    written: Sequencer,
    /// How many operations of the boundary millisecond were written.
    group: usize,
    /// Nothing older than this is written (the start of `--since`).
    floor: Option<Timestamp>,
    /// The server was seen to treat `after` as inclusive (it returned an
    /// operation created exactly at `after`); the boundary is then asked
    /// for with `after` = the boundary itself.
    inclusive: bool,
}

impl Cursor {
    pub fn new(start: &Start) -> Cursor {
        let (written, group, floor) = match start {
            Start::Beginning => (Sequencer::default(), 0, None),
            Start::Since(t) => (Sequencer::default(), 0, Some(*t)),
            Start::After(tail) => (
                Sequencer::seeded(&tail.end_time, tail.time, tail.cids.iter().cloned()),
                tail.cids.len(),
                Some(tail.time),
            ),
        };
        Cursor {
            written,
            group,
            floor,
            inclusive: false,
        }
    }

    /// The boundary: the last millisecond written, else the start.
    fn boundary(&self) -> Option<Timestamp> {
        self.written.last().map(|(t, _)| t).or(self.floor)
    }

    /// The `after` to request: one millisecond before the boundary, so that
    /// the boundary millisecond is asked for again (the boundary itself for
    /// a server that treats `after` as inclusive).
    fn after(&self) -> Option<Timestamp> {
        let t = self.boundary()?;
        let back = if self.inclusive { 0 } else { 1 };
        Some(Timestamp::from_millis(t.millis() - back))
    }

    /// The last createdAt written, as written.
    pub fn reached(&self) -> Option<(Timestamp, &str)> {
        self.written.last()
    }

    /// The boundary as text for messages.
    fn boundary_text(&self) -> String {
        match (self.written.last(), self.floor) {
            (Some((_, text)), _) => text.to_string(),
            (None, Some(t)) => t.format_millis(),
            (None, None) => "the start".to_string(),
        }
    }
}

/// What one page did.
pub(super) struct Got {
    /// Lines in the page.
    pub lines: usize,
    /// Operations written from it.
    pub new: u64,
    /// It reached operations younger than the lag.
    pub held_back: bool,
    /// It showed that the server treats `after` as inclusive.
    pub switched: bool,
    /// The instant past which operations are held back.
    pub cutoff: Timestamp,
}

/// What to do after a page.
pub(super) enum Next {
    /// Ask for the next page at once.
    More,
    /// Nothing more for now (or held back by the lag).
    CaughtUp,
}

/// The paging state between requests.
pub(super) struct Pager {
    pub cur: Cursor,
    count: usize,
    /// Operations asked for: `count`, or `count + 1` to see where a
    /// boundary group that filled a page ends.
    ask: usize,
    /// A probe proved operations after this boundary (the millisecond and
    /// how many of its operations were written) exist.
    beyond: Option<(Timestamp, usize)>,
}

impl Pager {
    pub fn new(cfg: &ExportConfig) -> Pager {
        Pager {
            cur: Cursor::new(&cfg.start),
            count: cfg.count,
            ask: cfg.count,
            beyond: None,
        }
    }

    /// Requests the next page and writes its new lines to `sink`.
    pub fn next_page(
        &mut self,
        net: &mut Requester<'_, '_>,
        sink: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> Result<Got> {
        let after = self.cur.after();
        let was_inclusive = self.cur.inclusive;
        let mut writer = PageWriter {
            cur: &mut self.cur,
            sink,
            count: self.count,
            pending: Vec::new(),
            new: 0,
            held_back: false,
            cutoff: Timestamp::from_millis(0),
        };
        let scanned = net.request(after, self.ask, &mut writer)?;
        writer.cut()?;
        let got = Got {
            lines: scanned.lines,
            new: writer.new,
            held_back: writer.held_back,
            switched: scanned.at_after && !was_inclusive,
            cutoff: writer.cutoff,
        };
        self.cur.inclusive |= got.switched;
        Ok(got)
    }

    /// Decides what a page means (see the module's documentation).
    pub fn judge(&mut self, net: &mut Requester<'_, '_>, got: &Got) -> Result<Next> {
        if got.held_back || (got.new > 0) {
            self.ask = self.count;
            self.beyond = None;
            return Ok(if got.held_back {
                Next::CaughtUp
            } else {
                Next::More
            });
        }
        if got.switched {
            return Ok(Next::More);
        }
        let Some(b) = self.cur.boundary() else {
            return Ok(Next::CaughtUp);
        };
        if got.lines == 0 {
            self.ask = self.count;
            self.beyond = None;
            return Ok(Next::CaughtUp);
        }
        if got.lines >= self.ask {
            if self.ask == self.count {
                // A page of the boundary alone: see where the group ends.
                self.ask = self.count + 1;
                return Ok(Next::More);
            }
            return Err(self.group_too_large(net));
        }
        let key = (b, self.cur.group);
        if self.beyond == Some(key) {
            return Err(self.pages_stop_at(net, got.lines));
        }
        if self.operations_beyond(net, b)? {
            self.beyond = Some(key);
            return Ok(Next::More);
        }
        self.ask = self.count;
        self.beyond = None;
        Ok(Next::CaughtUp)
    }

    /// True when the directory holds operations strictly after `b`.
    fn operations_beyond(&mut self, net: &mut Requester<'_, '_>, b: Timestamp) -> Result<bool> {
        // `after` = the boundary itself; a server that turns out to include
        // `after` (it answers with the boundary's operations again) is asked
        // once more, one millisecond later.
        for step in [0, 1] {
            let probe = Timestamp::from_millis(b.millis() + step);
            let mut look = Probe {
                boundary: b,
                beyond: false,
                at_boundary: false,
            };
            net.request(Some(probe), self.count, &mut look)?;
            if look.beyond {
                return Ok(true);
            }
            if !look.at_boundary {
                break;
            }
        }
        Ok(false)
    }

    /// More than `--count` operations share the boundary millisecond.
    fn group_too_large(&self, net: &Requester<'_, '_>) -> Error {
        Error::Protocol(format!(
            "{}: {}",
            net.describe(self.cur.after(), self.ask),
            too_many(self.count, &self.cur.boundary_text())
        ))
    }

    /// The same stalled page came back although later operations exist.
    fn pages_stop_at(&self, net: &Requester<'_, '_>, lines: usize) -> Error {
        let at = self.cur.boundary_text();
        Error::Protocol(format!(
            "{}: the same page of {lines} operations created at {at} came back although operations after {at} exist: this server returns at most {lines} per request (asked for {}) and at least {lines} share the millisecond {at}, so paging past it could lose some; {}",
            net.describe(self.cur.after(), self.ask),
            self.ask,
            if lines < self.count {
                "no --count can page past it with this server".to_string()
            } else {
                "retry with a larger --count if the server returns more per request (the official directory returns at most 1000)".to_string()
            }
        ))
    }
}

/// The message for more than `count` operations in the millisecond `at`.
fn too_many(count: usize, at: &str) -> String {
    format!(
        "more than {count} operations share the millisecond {at}: pages of --count {count} cannot show them all, so paging past it could lose some; retry with a larger --count if the server returns more per request (the official directory returns at most 1000)"
    )
}

/// Writes a page's new lines, whole, in order.
struct PageWriter<'a> {
    cur: &'a mut Cursor,
    sink: &'a mut dyn FnMut(Vec<u8>) -> bool,
    count: usize,
    pending: Vec<u8>,
    new: u64,
    held_back: bool,
    cutoff: Timestamp,
}

impl PageWriter<'_> {
    /// Hands the pending lines to the writer thread.
    fn flush(&mut self) -> std::result::Result<(), BodyFault> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if (self.sink)(std::mem::take(&mut self.pending)) {
            Ok(())
        } else {
            Err(BodyFault::Failed(Error::io(
                "writing output",
                std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            )))
        }
    }
}

impl Visit for PageWriter<'_> {
    fn start(&mut self, cutoff: Timestamp) {
        self.cutoff = cutoff;
    }

    fn line(&mut self, line: &[u8], op: &Op<'_>) -> std::result::Result<Flow, BodyFault> {
        let cur = &mut *self.cur;
        if cur.floor.is_some_and(|f| op.time < f) {
            return Ok(Flow::Go);
        }
        // Older than what was written (an inclusive server's answer), or
        // written already at the boundary millisecond: skipped.
        if cur.written.peek(op) != Ok(Seen::New) {
            return Ok(Flow::Go);
        }
        if op.time > self.cutoff {
            self.held_back = true;
            return Ok(Flow::Stop);
        }
        let same = cur.written.last().is_some_and(|(t, _)| t == op.time);
        if same && cur.group >= self.count {
            return Err(BodyFault::Refused(too_many(self.count, &op.created_at)));
        }
        cur.group = if same { cur.group + 1 } else { 1 };
        cur.written.record(op);
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.new += 1;
        if self.pending.len() >= HOLD {
            self.flush()?;
        }
        Ok(Flow::Go)
    }

    /// Also called at the end of each page.
    fn cut(&mut self) -> Result<()> {
        // What was taken is recorded as written: it must go out.
        self.flush().map_err(|e| match e {
            BodyFault::Failed(e) => e,
            _ => unreachable!("flushing only fails on output"),
        })
    }
}

/// Looks for operations after the boundary without writing anything.
struct Probe {
    boundary: Timestamp,
    beyond: bool,
    at_boundary: bool,
}

impl Visit for Probe {
    fn start(&mut self, _cutoff: Timestamp) {}

    fn line(&mut self, _line: &[u8], op: &Op<'_>) -> std::result::Result<Flow, BodyFault> {
        if op.time > self.boundary {
            self.beyond = true;
            return Ok(Flow::Stop);
        }
        self.at_boundary |= op.time == self.boundary;
        Ok(Flow::Go)
    }
}
