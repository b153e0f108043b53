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
    match scan(line) {
        Some(raw) => finish(raw),
        None => parse_op_serde(line),
    }
}

/// The reference implementation of [`parse_op`], with serde_json.
fn parse_op_serde(line: &[u8]) -> std::result::Result<Op<'_>, String> {
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

/// The checks after the JSON is known to be good, shared by both paths.
fn finish(raw: RawOp<'_>) -> std::result::Result<Op<'_>, String> {
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

/// The fast path of [`parse_op`]: `Some` only for a line that is valid
/// UTF-8 and one JSON object that serde_json deserializes into [`RawOp`]
/// with exactly these (borrowed) values. `None` means "not sure", never
/// "wrong": the caller then asks serde_json.
///
/// To stay a subset it gives up on anything unusual: an escape or control
/// character inside a top-level key or inside did/cid/createdAt, a repeated
/// did/cid/createdAt, nesting deeper than 64, and any grammar error. What it
/// accepts follows serde_json's rules for ignored values (`ignore_value`):
/// whitespace is space, tab, CR or LF; strings have no raw control
/// characters and only the escapes `\" \\ / b f n r t uXXXX` (a `\u`
/// escape is not checked for surrogates in an ignored value); numbers are
/// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`; literals are `true`,
/// `false`, `null`.
fn scan(line: &[u8]) -> Option<RawOp<'_>> {
    // The whole line must be UTF-8 (serde_json would only check strings,
    // the contract checks everything). A line found to be ASCII while its
    // quotes are indexed needs no further check.
    #[cfg(target_arch = "x86_64")]
    if line.len() <= 64 * QUOTE_WORDS {
        let mut words = [0u64; QUOTE_WORDS];
        if let Some((n, ascii)) = quote_bits(line, &mut words) {
            let text = if ascii {
                // SAFETY: no byte of `line` is above 0x7F, and ASCII is
                // UTF-8. (std's check would cost a tenth of this scan.)
                unsafe { std::str::from_utf8_unchecked(line) }
            } else {
                std::str::from_utf8(line).ok()?
            };
            return scan_with(text, &Quotes(&words[..n]));
        }
    }
    scan_with(std::str::from_utf8(line).ok()?, &Swar)
}

/// [`scan`] on a line known to be UTF-8, with `strings` finding where
/// strings end.
#[inline(always)]
fn scan_with<'a, S: Strings>(text: &'a str, strings: &S) -> Option<RawOp<'a>> {
    let b = text.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return None;
    }
    let mut i = 1;
    let (mut did, mut cid, mut created_at) = (None, None, None);
    loop {
        i = skip_ws(b, i);
        if at(b, i) != b'"' {
            return None; // `{}`, a trailing comma, a key that is no string
        }
        let key_start = i + 1;
        let key_end = strings.end_plain(b, key_start)?;
        i = skip_ws(b, key_end + 1);
        if at(b, i) != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let slot = match &b[key_start..key_end] {
            b"did" => Some(&mut did),
            b"cid" => Some(&mut cid),
            b"createdAt" => Some(&mut created_at),
            _ => None,
        };
        match slot {
            Some(slot) => {
                if slot.is_some() || at(b, i) != b'"' {
                    return None; // a repeated field, or not a string
                }
                let end = strings.end_plain(b, i + 1)?;
                // Quotes are ASCII, so these are char boundaries.
                *slot = Some(&text[i + 1..end]);
                i = end + 1;
            }
            None => i = skip_value(b, i, strings)?,
        }
        i = skip_ws(b, i);
        match at(b, i) {
            b',' => i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    if i + 1 != b.len() {
        return None; // something after the object
    }
    Some(RawOp {
        did: Cow::Borrowed(did?),
        cid: Cow::Borrowed(cid?),
        created_at: Cow::Borrowed(created_at?),
    })
}

/// How [`scan`] finds where a string ends.
trait Strings {
    /// The index of the `"` closing a string whose content starts at `i`,
    /// when the content has no escape and no control character.
    fn end_plain(&self, b: &[u8], i: usize) -> Option<usize>;
    /// The index just past the closing `"` of a string whose content
    /// starts at `i`, escapes allowed as serde_json's `ignore_str` allows
    /// them.
    fn end(&self, b: &[u8], i: usize) -> Option<usize>;
}

/// Any line: strings are scanned eight bytes at a time.
struct Swar;

impl Strings for Swar {
    #[inline(always)]
    fn end_plain(&self, b: &[u8], i: usize) -> Option<usize> {
        string_end_plain(b, i)
    }
    #[inline(always)]
    fn end(&self, b: &[u8], i: usize) -> Option<usize> {
        string_end(b, i)
    }
}

/// Lines up to this many 64-byte words (2 KB; operations are about 700
/// bytes) are indexed by [`quote_bits`].
const QUOTE_WORDS: usize = 32;

/// A line with no `\\` and no control character, with a bit set for
/// every `"` (bit `i % 64` of word `i / 64`): with no escapes, the quote
/// that ends a string is simply the next one, found with one bit search
/// instead of a scan of the string's bytes.
struct Quotes<'a>(&'a [u64]);

impl Quotes<'_> {
    #[inline(always)]
    fn next_quote(&self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut m = *self.0.get(w)? & (u64::MAX << (i % 64));
        loop {
            if m != 0 {
                return Some(w * 64 + m.trailing_zeros() as usize);
            }
            w += 1;
            m = *self.0.get(w)?;
        }
    }
}

impl Strings for Quotes<'_> {
    #[inline(always)]
    fn end_plain(&self, _: &[u8], i: usize) -> Option<usize> {
        self.next_quote(i)
    }
    #[inline(always)]
    fn end(&self, _: &[u8], i: usize) -> Option<usize> {
        self.next_quote(i).map(|q| q + 1)
    }
}

/// Sets a bit in `words` for every `"` of `b` (at most `64 *
/// words.len()` bytes) and returns how many words it used and whether `b`
/// is ASCII; or `None` when `b` holds a `\\` or a control character
/// (below 0x20), for which the next quote is not always the end of a
/// string (or the line is likely bad): those lines take the [`Swar`] path.
/// Sixteen bytes at a time with SSE2, which every x86_64 CPU has.
#[cfg(target_arch = "x86_64")]
fn quote_bits(b: &[u8], words: &mut [u64]) -> Option<(usize, bool)> {
    use std::arch::x86_64::*;
    let n = b.len().div_ceil(64);
    debug_assert!(n <= words.len());
    // SAFETY: SSE2 is part of x86_64. Every load reads 16 bytes inside `b`
    // (`off + 16 <= b.len()`) or inside the local `tail`.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let below_space = _mm_set1_epi8(0x1f);
        let mut bad = _mm_setzero_si128();
        let mut high = _mm_setzero_si128();
        for (w, word) in words.iter_mut().enumerate().take(n) {
            let mut bits = 0u64;
            for k in 0..4 {
                let off = w * 64 + k * 16;
                if off >= b.len() {
                    break;
                }
                let v = if off + 16 <= b.len() {
                    _mm_loadu_si128(b.as_ptr().add(off).cast())
                } else {
                    let mut tail = [b' '; 16];
                    tail[..b.len() - off].copy_from_slice(&b[off..]);
                    _mm_loadu_si128(tail.as_ptr().cast())
                };
                let q = _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16;
                bits |= u64::from(q) << (k * 16);
                let ctrl = _mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v);
                bad = _mm_or_si128(bad, _mm_or_si128(_mm_cmpeq_epi8(v, backslash), ctrl));
                high = _mm_or_si128(high, v);
            }
            *word = bits;
        }
        if _mm_movemask_epi8(bad) != 0 {
            return None;
        }
        Some((n, _mm_movemask_epi8(high) == 0))
    }
}

/// The byte at `i`, or 0 (which nothing in JSON's grammar accepts) past
/// the end.
#[inline]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(at(b, i), b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES << 7;

/// The index of the first `"`, `\\` or control character (below 0x20) at
/// or after `i`, or `b.len()`. Eight bytes at a time: a byte is flagged
/// when it is below 0x20 or equal to either character (the classic "has
/// zero byte" test; exact for the first flagged byte, which is all that is
/// used). Strings in operations are short (20 bytes on average), and this
/// measured faster than a sixteen-byte SSE2 loop on them.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * b'"' as u64);
        let q = q.wrapping_sub(ONES) & !q;
        let bs = w ^ (ONES * b'\\' as u64);
        let bs = bs.wrapping_sub(ONES) & !bs;
        let m = (ctrl | q | bs) & HIGHS;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

/// The index of the `"` closing a string whose content starts at `i`,
/// when the content has no escape and no control character.
#[inline]
fn string_end_plain(b: &[u8], i: usize) -> Option<usize> {
    let e = find_special(b, i);
    (at(b, e) == b'"').then_some(e)
}

/// The index just past the closing `"` of a string whose content starts at
/// `i`, escapes allowed as serde_json's `ignore_str` allows them.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = find_special(b, i);
        match at(b, i) {
            b'"' => return Some(i + 1),
            b'\\' => match at(b, i + 1) {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            _ => return None, // a control character, or the end
        }
    }
}

/// The index just past a number starting at `i`, by serde_json's grammar.
#[inline]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if at(b, i) == b'-' {
        i += 1;
    }
    match at(b, i) {
        b'0' => {
            i += 1;
            if at(b, i).is_ascii_digit() {
                return None;
            }
        }
        b'1'..=b'9' => {
            while at(b, i).is_ascii_digit() {
                i += 1;
            }
        }
        _ => return None,
    }
    if at(b, i) == b'.' {
        i += 1;
        if !at(b, i).is_ascii_digit() {
            return None;
        }
        while at(b, i).is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(at(b, i), b'e' | b'E') {
        i += 1;
        if matches!(at(b, i), b'+' | b'-') {
            i += 1;
        }
        if !at(b, i).is_ascii_digit() {
            return None;
        }
        while at(b, i).is_ascii_digit() {
            i += 1;
        }
    }
    Some(i)
}

/// The index just past the JSON value starting at `i` (no whitespace
/// before it). Iterative, with the open containers as a bit stack (1 =
/// object), at most 64 deep.
fn skip_value<S: Strings>(b: &[u8], mut i: usize, strings: &S) -> Option<usize> {
    let mut stack: u64 = 0;
    let mut depth: u32 = 0;
    loop {
        // A value.
        match at(b, i) {
            b'"' => i = strings.end(b, i + 1)?,
            c @ (b'{' | b'[') => {
                if depth == 64 {
                    return None;
                }
                i = skip_ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if at(b, i) == close {
                    i += 1; // empty container: a complete value
                } else {
                    stack = (stack << 1) | u64::from(c == b'{');
                    depth += 1;
                    if c == b'{' {
                        i = member_key(b, i, strings)?;
                    }
                    continue;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            _ => return None,
        }
        // After a value: close containers until one continues.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_ws(b, i);
            let in_object = stack & 1 == 1;
            match at(b, i) {
                b',' => {
                    i = skip_ws(b, i + 1);
                    if in_object {
                        i = member_key(b, i, strings)?;
                    }
                    break;
                }
                b'}' if in_object => {}
                b']' if !in_object => {}
                _ => return None,
            }
            i += 1;
            stack >>= 1;
            depth -= 1;
        }
    }
}

/// At a member's key (whitespace already skipped): the index of its value.
#[inline]
fn member_key<S: Strings>(b: &[u8], i: usize, strings: &S) -> Option<usize> {
    if at(b, i) != b'"' {
        return None;
    }
    let i = skip_ws(b, strings.end(b, i + 1)?);
    if at(b, i) != b':' {
        return None;
    }
    Some(skip_ws(b, i + 1))
}

#[inline]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
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
/// bounded by the largest group of operations in one millisecond. Most
/// groups hold one operation: they live in reused strings, searched in
/// order, and only a large group also gets a hash set, so the common case
/// allocates nothing per operation.
#[derive(Default)]
pub struct Sequencer {
    last: Option<(Timestamp, String)>,
    /// The group's CIDs are `slots[..len]`; later slots are kept for reuse.
    slots: Vec<String>,
    len: usize,
    /// The group's CIDs once it is larger than [`SMALL_GROUP`].
    big: std::collections::HashSet<String>,
}

/// Largest tie group searched without a hash set.
const SMALL_GROUP: usize = 16;

impl Sequencer {
    /// A sequencer that continues after operations already archived: the
    /// last createdAt and the CIDs that share it.
    pub fn seeded(
        created_at: &str,
        time: Timestamp,
        cids: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut s = Sequencer {
            last: Some((time, created_at.to_string())),
            ..Sequencer::default()
        };
        for cid in cids {
            if !s.contains(&cid) {
                s.insert(&cid);
            }
        }
        s
    }

    fn contains(&self, cid: &str) -> bool {
        if self.len > SMALL_GROUP {
            self.big.contains(cid)
        } else {
            self.slots[..self.len].iter().any(|c| c == cid)
        }
    }

    fn insert(&mut self, cid: &str) {
        if self.len < self.slots.len() {
            let slot = &mut self.slots[self.len];
            slot.clear();
            slot.push_str(cid);
        } else {
            self.slots.push(cid.to_string());
        }
        self.len += 1;
        if self.len == SMALL_GROUP + 1 {
            self.big.extend(self.slots[..self.len].iter().cloned());
        } else if self.len > SMALL_GROUP + 1 {
            self.big.insert(cid.to_string());
        }
    }

    fn start_group(&mut self, op: &Op<'_>) {
        match &mut self.last {
            Some((t, text)) => {
                *t = op.time;
                text.clear();
                text.push_str(&op.created_at);
            }
            None => self.last = Some((op.time, op.created_at.to_string())),
        }
        if self.len > SMALL_GROUP {
            self.big.clear();
        }
        self.len = 0;
        if self.slots.len() > 4 * SMALL_GROUP {
            // Do not keep the strings of a past huge group for ever.
            self.slots.truncate(SMALL_GROUP);
            self.slots.shrink_to_fit();
        }
        self.insert(&op.cid);
    }

    /// Classifies `op`, or explains why it breaks the order.
    pub fn observe(&mut self, op: &Op<'_>) -> std::result::Result<Seen, String> {
        let seen = self.peek(op)?;
        if seen == Seen::New {
            self.record(op);
        }
        Ok(seen)
    }

    /// What [`Sequencer::observe`] would say of `op`, remembering nothing.
    pub fn peek(&self, op: &Op<'_>) -> std::result::Result<Seen, String> {
        match &self.last {
            Some((t, text)) if op.time < *t => Err(format!(
                "createdAt goes backwards: {} comes after {}",
                op.created_at, text
            )),
            Some((t, _)) if op.time == *t && self.contains(&op.cid) => Ok(Seen::Duplicate),
            _ => Ok(Seen::New),
        }
    }

    /// Remembers `op`, which [`Sequencer::peek`] found new.
    pub fn record(&mut self, op: &Op<'_>) {
        match &self.last {
            Some((t, _)) if op.time == *t => self.insert(&op.cid),
            _ => self.start_group(op),
        }
    }

    /// The latest createdAt seen (as an instant and as written).
    pub fn last(&self) -> Option<(Timestamp, &str)> {
        self.last.as_ref().map(|(t, s)| (*t, s.as_str()))
    }
}

/// Checks the line at `range` of `reader`'s buffer, the line last handed
/// out; the error names it.
pub fn op_at<R: Read>(reader: &LineReader<R>, range: std::ops::Range<usize>) -> Result<Op<'_>> {
    parse_op(&reader.buffer()[range]).map_err(|reason| Error::input(reader.line_no(), reason))
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

    /// The fast scanner must never accept what serde_json refuses, and
    /// must extract exactly what serde_json extracts.
    fn assert_same_as_serde(line: &[u8]) {
        let show = |r: &std::result::Result<Op<'_>, String>| match r {
            Ok(op) => format!("ok {:?} {:?} {:?}", op.did, op.cid, op.created_at),
            Err(e) => format!("err {e}"),
        };
        let (fast, slow) = (parse_op(line), parse_op_serde(line));
        assert_eq!(
            show(&fast),
            show(&slow),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }

    #[test]
    fn the_scanner_agrees_with_serde_on_tricky_lines() {
        let f = "\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"";
        let deep =
            |n: usize, m: usize| format!("{{\"x\":{}1{},{f}}}", "[".repeat(n), "]".repeat(m));
        let mut cases: Vec<String> = [
            "{F}",
            "{ \"did\" : \"d\" , \"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\" }",
            "{\t\"did\":\"d\",\r\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":\"e\",F}",
            "{\"x\":1,\"x\":2,F}",
            "{\"d\\u0069d\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":\"d\\u0061\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":\"\\ud800\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"x\":\"\\ud800\",F}",
            "{\"x\":\"\\uZZZZ\",F}",
            "{\"x\":\"\\u12\",F}",
            "{\"x\":\"\\q\",F}",
            "{\"x\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",F}",
            "{\"x\":[1,-0,0.5,1e9,-2.5E-3,1e+2,true,false,null,{},[],\"s\",{\"a\":[{}]}],F}",
            "{\"x\":01,F}",
            "{\"x\":1.,F}",
            "{\"x\":1e,F}",
            "{\"x\":-,F}",
            "{\"x\":+1,F}",
            "{\"x\":.5,F}",
            "{\"x\":[1,],F}",
            "{\"x\":[,1],F}",
            "{\"x\":{\"a\":1,},F}",
            "{\"x\":{\"a\" 1},F}",
            "{\"x\":{1:1},F}",
            "{\"x\":[},F}",
            "{\"x\":{]},F}",
            "{\"x\":tru,F}",
            "{\"x\":nul,F}",
            "{F,}",
            "{F}{}",
            "{F} }",
            "{F,\"x\":}",
            "{\"did\":null,\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":[\"d\"],\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":\"\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"did\":\"d\",\"cid\":\"c\",\"createdAt\":\"2024-13-01T00:00:00Z\"}",
            "{\"x\":\"é\u{2028}\",\"did\":\"did:plc:é\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{\"x\":\"\u{1}\",F}",
            "{\"x\u{7f}\":\"\u{1f}\",F}",
            "{\"x\":1,\u{c}F}",
            "{\"did\":\"d\u{1}\",\"cid\":\"c\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}",
            "{}",
            "{",
            "}",
            "{\"\"}",
        ]
        .iter()
        .map(|c| c.replace('F', f))
        .collect();
        cases.extend([
            deep(63, 63),
            deep(64, 64),
            deep(65, 65),
            deep(200, 200),
            deep(64, 63),
        ]);
        for c in &cases {
            assert_same_as_serde(c.as_bytes());
        }
        assert!(scan(cases[0].as_bytes()).is_some());
        assert!(scan(deep(64, 64).as_bytes()).is_some());
    }

    #[test]
    fn the_scanner_agrees_with_serde_on_mutated_operations() {
        // Every truncation and every single-byte change (to a byte that
        // matters to JSON) of realistic operations, checked against
        // serde_json.
        let ops = crate::synth::generate(12, &crate::synth::SynthOptions::default());
        let alphabet = b"{}[]:,\"\\ 0-1.eEtfnu\x00\x1fxA\xc3\xa9";
        let mut accepted = 0;
        for op in &ops {
            let line = &op.line;
            assert!(scan(line).is_some(), "{:?}", String::from_utf8_lossy(line));
            for cut in 0..line.len() {
                assert_same_as_serde(&line[..cut]);
            }
            for pos in 0..line.len() {
                for &byte in alphabet {
                    let mut m = line.clone();
                    m[pos] = byte;
                    accepted += usize::from(scan(&m).is_some());
                    assert_same_as_serde(&m);
                }
            }
        }
        assert!(accepted > 1000, "the scanner took only {accepted} mutants");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_quote_index_finds_the_same_string_ends_as_the_byte_scan() {
        // Every line and truncation the index takes (no backslash, no
        // control character) must scan the same with either way of
        // finding string ends, and ASCII must be reported exactly.
        let ops = crate::synth::generate(300, &crate::synth::SynthOptions::default());
        let mut indexed = 0;
        for op in &ops {
            for cut in (0..=op.line.len()).rev().step_by(7) {
                let line = &op.line[..cut];
                let mut words = [0u64; QUOTE_WORDS];
                let Some((n, ascii)) = quote_bits(line, &mut words) else {
                    continue;
                };
                assert_eq!(ascii, line.is_ascii());
                let Ok(text) = std::str::from_utf8(line) else {
                    continue;
                };
                indexed += 1;
                let show = |r: Option<RawOp<'_>>| {
                    r.map(|r| format!("{} {} {}", r.did, r.cid, r.created_at))
                };
                assert_eq!(
                    show(scan_with(text, &Quotes(&words[..n]))),
                    show(scan_with(text, &Swar)),
                    "{text:?}"
                );
            }
        }
        assert!(indexed > 10_000, "only {indexed} lines took the index");
    }

    #[test]
    fn split_lines_is_split_on_newline() {
        for input in [&b""[..], b"\n", b"a", b"a\n", b"a\nbc\n\nd", b"\n\n"] {
            let want: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            let got: Vec<&[u8]> = split_lines(input).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn sequencer_handles_large_tie_groups_and_reuses_them() {
        let t1 = "2024-01-01T00:00:00.001Z";
        let t2 = "2024-01-01T00:00:00.002Z";
        let cids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        let op = |t: &'static str, cid: &str| Op {
            did: "d".into(),
            cid: cid.to_string().into(),
            created_at: t.into(),
            time: Timestamp::parse(t).unwrap(),
        };
        let mut s = Sequencer::default();
        for round in [t1, t2] {
            for c in &cids {
                assert_eq!(s.observe(&op(round, c)), Ok(Seen::New), "{round} {c}");
            }
            for c in &cids {
                assert_eq!(s.observe(&op(round, c)), Ok(Seen::Duplicate), "{round} {c}");
            }
        }
        let mut seeded = Sequencer::seeded(t1, Timestamp::parse(t1).unwrap(), cids.clone());
        assert_eq!(seeded.observe(&op(t1, "c99")), Ok(Seen::Duplicate));
        assert_eq!(seeded.observe(&op(t1, "new")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c99")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c1")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c99")), Ok(Seen::Duplicate));
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
