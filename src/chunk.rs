//! `plc-chunk`: cuts a stream of operation lines into whole chunks and
//! holds back the incomplete tail.
//!
//! Only whole chunks reach the output, each flushed as soon as it is
//! complete. The tail is not persisted anywhere: the directory is its
//! durable store, and the next run fetches those operations again.

use crate::error::{Error, IoContext, Result};
use crate::line::{op_at, LineReader, OpParser, Sequencer};
use std::io::{Read, Write};

/// Counts from one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Whole chunks written.
    pub chunks: u64,
    /// Lines held back at the end (fewer than a chunk).
    pub held_back: u64,
}

/// Copies whole chunks of `size` lines from `input` to `out`. Lines are
/// checked (shape and order); a bad line stops the run before anything of
/// its chunk is written. A chunk is written in one piece straight from the
/// input buffer, which holds it until it is complete.
pub fn chunk(input: impl Read, mut out: impl Write, size: usize) -> Result<ChunkStats> {
    assert!(size > 0, "chunk size must be positive");
    let mut reader = LineReader::new(input);
    let mut seq = Sequencer::default();
    let mut parser = OpParser::default();
    let mut held = 0usize;
    let mut stats = ChunkStats::default();
    loop {
        while let Some(line) = reader.next_buffered()? {
            let op = op_at(&mut parser, &reader, line)?;
            if let Err(reason) = seq.observe(&op) {
                return Err(Error::input(reader.line_no(), reason));
            }
            held += 1;
            if held == size {
                let end = reader.pos();
                out.write_all(&reader.buffer()[reader.kept()..end])
                    .ctx(|| "writing output")?;
                out.flush().ctx(|| "writing output")?;
                reader.release(end);
                held = 0;
                stats.chunks += 1;
            }
        }
        if !reader.fill()? {
            break;
        }
    }
    stats.held_back = held as u64;
    Ok(stats)
}
