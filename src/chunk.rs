//! `plc-chunk`: cuts a stream of operation lines into whole chunks and
//! holds back the incomplete tail.
//!
//! Only whole chunks reach the output, each flushed as soon as it is
//! complete. The tail is not persisted anywhere: the directory is its
//! durable store, and the next run fetches those operations again.

use crate::error::{Error, IoContext, Result};
use crate::line::{next_op, Lines, Sequencer};
use std::io::{BufRead, Write};

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
/// its chunk is written.
pub fn chunk(input: impl BufRead, mut out: impl Write, size: usize) -> Result<ChunkStats> {
    assert!(size > 0, "chunk size must be positive");
    let mut lines = Lines::new(input);
    let mut seq = Sequencer::default();
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    let mut held = 0usize;
    let mut stats = ChunkStats::default();
    loop {
        let n = lines.line_no() + 1;
        let Some((line, op)) = next_op(&mut lines)? else {
            break;
        };
        if let Err(reason) = seq.observe(&op) {
            return Err(Error::input(n, reason));
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
        held += 1;
        if held == size {
            out.write_all(&buf).ctx(|| "writing output")?;
            out.flush().ctx(|| "writing output")?;
            buf.clear();
            held = 0;
            stats.chunks += 1;
        }
    }
    stats.held_back = held as u64;
    Ok(stats)
}
