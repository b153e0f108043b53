//! `plc-dedup`: passes operation lines through byte for byte, dropping
//! repeats and refusing time that goes backwards.
//!
//! A repeat is an operation whose CID was already seen at the same
//! createdAt, which is what re-requesting a boundary millisecond produces.
//! Only the CIDs of the latest millisecond are remembered, so memory is
//! bounded by the largest tie group, not by the input.

use crate::error::{Error, IoContext, Result};
use crate::line::{op_at, LineReader, OpParser, Seen, Sequencer};
use crate::repo::Tail;
use std::io::{Read, Write};

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
///
/// The lines kept are written as runs straight from the input buffer, and
/// what was read is written and flushed before the next read, so nothing
/// waits in this process for more input (a `--follow` pipeline sees each
/// page at once). Lines before a bad line are passed on; nothing after it.
pub fn dedup(input: impl Read, mut out: impl Write, seed: Option<&Tail>) -> Result<DedupStats> {
    let mut seq = match seed {
        Some(t) => Sequencer::seeded(&t.end_time, t.time, t.cids.iter().cloned()),
        None => Sequencer::default(),
    };
    let mut reader = LineReader::new(input);
    let mut parser = OpParser::default();
    let mut stats = DedupStats::default();
    loop {
        // `run` starts the lines kept but not yet written.
        let mut run = reader.kept();
        let mut failed = None;
        while let Some(line) = reader.next_buffered()? {
            stats.read += 1;
            let seen = op_at(&mut parser, &reader, line.clone()).and_then(|op| {
                seq.observe(&op)
                    .map_err(|r| Error::input(reader.line_no(), r))
            });
            match seen {
                Ok(Seen::New) => stats.written += 1,
                Ok(Seen::Duplicate) => {
                    stats.dropped += 1;
                    out.write_all(&reader.buffer()[run..line.start])
                        .ctx(|| "writing output")?;
                    run = reader.pos();
                }
                Err(e) => {
                    failed = Some((e, line.start));
                    break;
                }
            }
        }
        let run_end = failed.as_ref().map_or(reader.pos(), |(_, at)| *at);
        out.write_all(&reader.buffer()[run..run_end])
            .ctx(|| "writing output")?;
        out.flush().ctx(|| "writing output")?;
        if let Some((e, _)) = failed {
            return Err(e);
        }
        let done = reader.pos();
        reader.release(done);
        if !reader.fill()? {
            return Ok(stats);
        }
    }
}
