//! Cutting input into `\n`-terminated lines, with a length cap, in large
//! reads and without copying line by line.

use crate::error::{Error, Result};
use std::io::Read;

/// The longest line accepted, in bytes. Real operations are a few KB; a
/// line this long is a broken stream, not an operation, and reading it is
/// stopped before it can grow memory without bound.
pub const MAX_LINE: usize = 1 << 20;

/// How much input one read asks for.
const READ_SIZE: usize = 256 << 10;

/// Reads `\n`-terminated lines with a length cap, counting them from 1.
///
/// Input is read in large pieces straight into one buffer, and complete
/// lines are handed out as positions in it, so a tool checks each line
/// where it lies and passes on whole runs of lines (a dedup block, a
/// chunk) with one write, copying nothing line by line. The caller says
/// which bytes it still needs with [`LineReader::release`] (or takes them
/// with [`LineReader::split_off`]); the rest is reused.
///
/// Positions stay valid until the next [`LineReader::fill`] or
/// [`LineReader::split_off`], which move the bytes still needed to the
/// front: [`LineReader::kept`] is then where they start.
pub struct LineReader<R> {
    inner: R,
    /// Initialized bytes; input is in `start..end`.
    buf: Vec<u8>,
    /// The first byte the caller still needs.
    start: usize,
    /// Where the next line starts.
    pos: usize,
    /// `buf[pos..scanned]` holds no `\n`.
    scanned: usize,
    end: usize,
    line_no: u64,
    max_len: usize,
}

impl<R: Read> LineReader<R> {
    /// Wraps a reader; lines longer than [`MAX_LINE`] are refused.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_max(inner, MAX_LINE)
    }

    /// Wraps a reader with a custom line-length cap.
    pub fn with_max(inner: R, max_len: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            scanned: 0,
            end: 0,
            line_no: 0,
            max_len,
        }
    }

    /// The 1-based number of the line last handed out (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The bytes read so far that are still held; positions index into it.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[..self.end]
    }

    /// Where the bytes the caller still needs start (see
    /// [`LineReader::release`]).
    pub fn kept(&self) -> usize {
        self.start
    }

    /// Where the next line starts: the end (past its `\n`) of the line
    /// last handed out.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next complete line already read, as its position in
    /// [`LineReader::buffer`] without the `\n`; `None` when the buffer
    /// holds no further complete line (call [`LineReader::fill`]).
    pub fn next_buffered(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        match memchr(b'\n', &self.buf[self.scanned..self.end]) {
            Some(i) => {
                let nl = self.scanned + i;
                let line = self.pos..nl;
                self.line_no += 1;
                if line.len() > self.max_len {
                    return Err(self.too_long());
                }
                self.pos = nl + 1;
                self.scanned = self.pos;
                Ok(Some(line))
            }
            None => {
                self.scanned = self.end;
                if self.end - self.pos > self.max_len {
                    self.line_no += 1;
                    return Err(self.too_long());
                }
                Ok(None)
            }
        }
    }

    /// Reads more input (one read). `Ok(false)` at the end of input;
    /// input that ends inside a line is an error: every writer in this
    /// toolkit ends each line, so a missing `\n` means a cut stream.
    pub fn fill(&mut self) -> Result<bool> {
        if self.buf.len() - self.end < READ_SIZE {
            self.make_room();
        }
        // At most READ_SIZE at a time, even into a large buffer, so that
        // the lines are checked while they are still in cache.
        let limit = self.buf.len().min(self.end + READ_SIZE);
        loop {
            match self.inner.read(&mut self.buf[self.end..limit]) {
                Ok(0) if self.pos < self.end => {
                    return Err(Error::input(
                        self.line_no + 1,
                        "no newline at end of input (the stream was cut off)",
                    ))
                }
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading input", e)),
            }
        }
    }

    /// Moves the bytes still needed to the front when that frees more
    /// than it copies, and grows the buffer when that is not enough.
    fn make_room(&mut self) {
        let kept = self.end - self.start;
        if self.start > 0 && kept <= self.start {
            self.buf.copy_within(self.start..self.end, 0);
            self.shift(self.start);
        }
        if self.buf.len() - self.end < READ_SIZE {
            // By a quarter, not double: a chunk's buffer that just misses
            // would otherwise take twice a chunk's memory. (Large buffers
            // are moved by the allocator without copying.)
            let len = (self.buf.len() + self.buf.len() / 4).max(self.end + READ_SIZE);
            self.buf.resize(len, 0);
        }
    }

    fn shift(&mut self, by: usize) {
        self.start -= by;
        self.pos -= by;
        self.scanned -= by;
        self.end -= by;
    }

    /// The caller no longer needs the bytes before `at` (at most
    /// [`LineReader::pos`]).
    pub fn release(&mut self, at: usize) {
        assert!(
            self.start <= at && at <= self.pos,
            "release within what was handed out"
        );
        self.start = at;
    }

    /// Hands over the buffer, of which the caller keeps the bytes before
    /// `at` (at most [`LineReader::pos`]; the returned vector is cut
    /// there), and goes on reading in `fresh`, into which the bytes from
    /// `at` on are moved. `fresh` is made as long as the part taken plus
    /// one read; a recycled one is zeroed only where it is shorter.
    pub fn split_off(&mut self, at: usize, mut fresh: Vec<u8>) -> Vec<u8> {
        assert!(
            self.start <= at && at <= self.pos,
            "split within what was handed out"
        );
        let rest = self.end - at;
        // Room for as much as was taken, a sixteenth more, and one more
        // read: the next chunk is about as long, so it fits without
        // growing.
        let len = at.max(rest) + at / 16 + READ_SIZE;
        if fresh.len() < len {
            fresh.resize(len, 0);
        }
        fresh[..rest].copy_from_slice(&self.buf[at..self.end]);
        let mut old = std::mem::replace(&mut self.buf, fresh);
        old.truncate(at);
        self.start = at;
        self.shift(at);
        old
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

/// `bytes.split(|&b| b == b'\n')`, but finding each `\n` with memchr
/// instead of one byte at a time (a sixth of `plc-verify`'s time before).
pub fn split_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<std::result::Result<Vec<u8>, String>> {
        let mut l = LineReader::with_max(input, max);
        let mut out = Vec::new();
        let mut step = |out: &mut Vec<_>| -> Result<bool> {
            while let Some(r) = l.next_buffered()? {
                out.push(Ok(l.buffer()[r].to_vec()));
            }
            let at = l.pos();
            l.release(at);
            l.fill()
        };
        loop {
            match step(&mut out) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    /// A reader that hands out a few bytes per read, in a repeating
    /// pattern of sizes, so lines straddle reads at every offset.
    struct Trickle<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        n: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let k = self.sizes[self.n % self.sizes.len()]
                .min(buf.len())
                .min(self.data.len());
            self.n += 1;
            buf[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    #[test]
    fn lines_cut_across_reads_come_out_whole_and_in_order() {
        // Lines of many lengths, some longer than one read, read a few
        // bytes at a time and in large reads; releasing after every line
        // or only every 7 lines (so the buffer both compacts and grows).
        let text: Vec<u8> = (0..2000)
            .flat_map(|i: usize| {
                let mut l = format!("{i}:").into_bytes();
                l.resize(3 + (i * 7919) % 700, b'a' + (i % 26) as u8);
                l.push(b'\n');
                l
            })
            .collect();
        let want: Vec<&[u8]> = text[..text.len() - 1].split(|&b| b == b'\n').collect();
        for sizes in [&[1usize, 2, 3, 5, 8][..], &[4096, 1], &[300 << 10]] {
            for every in [1, 7] {
                let mut r = LineReader::with_max(
                    Trickle {
                        data: &text,
                        sizes,
                        n: 0,
                    },
                    1000,
                );
                let mut got: Vec<Vec<u8>> = Vec::new();
                loop {
                    while let Some(l) = r.next_buffered().unwrap() {
                        got.push(r.buffer()[l].to_vec());
                        assert_eq!(r.line_no() as usize, got.len());
                        if got.len().is_multiple_of(every) {
                            let at = r.pos();
                            r.release(at);
                        }
                    }
                    if !r.fill().unwrap() {
                        break;
                    }
                }
                assert!(
                    got.iter().map(Vec::as_slice).eq(want.iter().copied()),
                    "{sizes:?} {every}"
                );
            }
        }
    }

    #[test]
    fn split_off_hands_over_what_was_read_and_keeps_the_rest() {
        let text = b"one\ntwo\nthree\nfour\nfi";
        let mut r = LineReader::with_max(
            Trickle {
                data: text,
                sizes: &[64],
                n: 0,
            },
            100,
        );
        assert!(r.fill().unwrap());
        r.next_buffered().unwrap().unwrap();
        r.next_buffered().unwrap().unwrap();
        let at = r.pos();
        let taken = r.split_off(at, vec![7u8; 3]);
        assert_eq!(taken, b"one\ntwo\n");
        let l = r.next_buffered().unwrap().unwrap();
        assert_eq!(&r.buffer()[l], b"three");
        assert_eq!(r.line_no(), 3);
        let l = r.next_buffered().unwrap().unwrap();
        assert_eq!(&r.buffer()[l], b"four");
        assert!(r.next_buffered().unwrap().is_none());
        let err = r.fill().unwrap_err().to_string();
        assert_eq!(
            err,
            "line 5: no newline at end of input (the stream was cut off)"
        );
    }

    #[test]
    fn a_line_too_long_is_refused_before_it_is_all_read() {
        // 10 MB without a newline, a few KB at a time: refused once the
        // partial line passes the cap, not at the end.
        let big = vec![b'x'; 10 << 20];
        let mut r = LineReader::with_max(
            Trickle {
                data: &big,
                sizes: &[4096],
                n: 0,
            },
            100_000,
        );
        let err = loop {
            match r.next_buffered() {
                Err(e) => break e,
                Ok(Some(_)) => panic!("no line ends"),
                Ok(None) => assert!(r.fill().unwrap(), "refused before the end"),
            }
        };
        assert_eq!(err.to_string(), "line 1: line longer than 100000 bytes");
        assert!(r.buffer().len() < 1 << 20);
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
    fn split_lines_is_split_on_newline() {
        for input in [&b""[..], b"\n", b"a", b"a\n", b"a\nbc\n\nd", b"\n\n"] {
            let want: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            let got: Vec<&[u8]> = split_lines(input).collect();
            assert_eq!(got, want);
        }
    }
}
