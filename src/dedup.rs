//! `plc-dedup`: passes operation lines through byte for byte, dropping
//! repeats and refusing time that goes backwards.
//!
//! A repeat is an operation whose CID was already seen at the same
//! createdAt, which is what re-requesting a boundary millisecond produces.
//! Only the CIDs of the latest millisecond are remembered, so memory is
//! bounded by the largest tie group, not by the input.

use crate::error::{Error, IoContext, Result};
use crate::line::{next_op, Lines, Seen, Sequencer};
use crate::repo::Tail;
use std::io::{BufRead, Write};

/// Counts from one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Lines read.
    pub read: u64,
    /// Lines written.
    pub written: u64,
    /// Repeats dropped.
    pub dropped: u64,
}

/// Copies `input` to `out` without repeats. With `seed`, operations the
/// archive already holds at its last millisecond are dropped too, and an
/// operation older than the archive's end is an error.
pub fn dedup(input: impl BufRead, mut out: impl Write, seed: Option<&Tail>) -> Result<DedupStats> {
    let mut seq = match seed {
        Some(t) => Sequencer::seeded(&t.end_time, t.time, t.cids.iter().cloned()),
        None => Sequencer::default(),
    };
    let mut lines = Lines::new(input);
    let mut stats = DedupStats::default();
    loop {
        let n = lines.line_no() + 1;
        let Some((line, op)) = next_op(&mut lines)? else {
            break;
        };
        stats.read += 1;
        match seq.observe(&op) {
            Ok(Seen::New) => {
                out.write_all(line).ctx(|| "writing output")?;
                out.write_all(b"\n").ctx(|| "writing output")?;
                stats.written += 1;
            }
            Ok(Seen::Duplicate) => stats.dropped += 1,
            Err(reason) => return Err(Error::input(n, reason)),
        }
    }
    out.flush().ctx(|| "writing output")?;
    Ok(stats)
}
