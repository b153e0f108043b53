//! Lines proven valid by their shape. A line's skeleton is its bytes
//! outside strings (the quotes kept, the strings' contents dropped). When
//! a line has no control character and valid escapes, whether it is one
//! JSON object depends on its skeleton alone, so a line whose skeleton
//! equals that of a line the scanner already proved valid is valid, with
//! the same structure: its did, cid and createdAt are the strings at the
//! same places, once its top-level keys are checked to be the same bytes
//! (a renamed or repeated `cid` leaves the skeleton unchanged).
//!
//! A bundle's operations come in a handful of shapes (about twenty in
//! generated data), so most lines are checked with three passes of
//! 64-byte vector instructions (classify, skeleton, quote positions) and a
//! comparison, instead of the token walk of [`super::scan`], whose every
//! step waits on the one before. The first line of each shape, and every
//! line that matches none, still takes the walk. The vector passes need
//! AVX-512 (F, BW, VBMI2); without it every line takes the walk, as
//! before. A portable version of the same passes exists for the tests, so
//! that the shape logic is tested on every CPU.

use super::scan::{self, Quotes};
use super::RawOp;
use std::borrow::Cow;

/// Longest line handled here, in 64-byte words (the quote index's).
const WORDS: usize = scan::QUOTE_WORDS;

/// Shapes remembered; each hit moves its shape one step forward.
const MAX_SHAPES: usize = 16;

/// Lines over which hits are counted.
const WINDOW: u32 = 256;

/// Lines checked the way [`scan::scan`] checks them, without shapes,
/// after a window in which fewer than half the lines had a known shape:
/// input of more shapes than are remembered (every line a new one, say)
/// pays for building skeletons, failed lookups and learning without
/// return, about a quarter more than the walk alone.
const PAUSE: u32 = 8192;

/// How the passes run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Not at all: every line goes to [`scan::scan`].
    Off,
    /// Byte and bit loops (tests, on any CPU).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
    /// AVX-512 F, BW and VBMI2, PCLMULQDQ and POPCNT.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The shapes of lines proven valid so far, and the buffers of the line
/// being checked (reused from one line to the next).
pub(super) struct Shapes {
    mode: Mode,
    quotes: Vec<u64>,
    escapes: Vec<u64>,
    skeleton: Vec<u8>,
    positions: Vec<u16>,
    known: Vec<Shape>,
    keys: Vec<usize>,
    window: Window,
    /// Lines proven by a known shape, and lines checked during a pause
    /// (for the tests).
    #[cfg(test)]
    hits: usize,
    #[cfg(test)]
    paused_lines: usize,
}

/// One shape: a skeleton, the top-level keys (by the ordinal of their
/// opening quote among the line's quotes, and their bytes), and the
/// ordinals of the opening quotes of the did, cid and createdAt values.
#[derive(Default)]
struct Shape {
    skeleton: Vec<u8>,
    /// [`fingerprint`] of the skeleton.
    fingerprint: u64,
    keys: Vec<(u32, std::ops::Range<usize>)>,
    key_bytes: Vec<u8>,
    fields: [u32; 3],
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes::with_mode(Mode::best())
    }
}

impl Mode {
    fn best() -> Mode {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Mode::Avx512;
        }
        Mode::Off
    }
}

impl Shapes {
    fn with_mode(mode: Mode) -> Self {
        let buffers = mode != Mode::Off;
        let size = |n: usize| if buffers { n } else { 0 };
        Shapes {
            mode,
            quotes: vec![0; size(WORDS)],
            escapes: vec![0; size(WORDS)],
            // Each pass stores whole vectors: room for one past the end.
            skeleton: vec![0; size(WORDS * 64 + 64)],
            positions: vec![0; size(WORDS * 64 + 32)],
            known: Vec::new(),
            keys: Vec::new(),
            window: Window::default(),
            #[cfg(test)]
            hits: 0,
            #[cfg(test)]
            paused_lines: 0,
        }
    }

    /// The shape logic through the portable passes, on any CPU.
    #[cfg(test)]
    pub(super) fn portable() -> Self {
        Shapes::with_mode(Mode::Portable)
    }

    /// What [`scan::scan`] says of `line`, through a known shape when the
    /// line has one; a line proven valid by the walk teaches its shape.
    pub(super) fn scan<'a>(&mut self, line: &'a [u8]) -> Option<RawOp<'a>> {
        if self.pause() {
            return scan::scan(line);
        }
        self.scan_shaped(line)
    }

    /// [`Shapes::scan`] out of a pause.
    fn scan_shaped<'a>(&mut self, line: &'a [u8]) -> Option<RawOp<'a>> {
        if self.mode == Mode::Off || line.is_empty() || line.len() > WORDS * 64 {
            return scan::scan(line);
        }
        let n = line.len().div_ceil(64);
        let Some(ascii) = self.classify(line, n) else {
            return scan::scan(line); // a control character
        };
        self.decide(line, n, ascii, None)
    }

    /// The length of `rest`'s first line (up to its first `\n`, or all of
    /// it) and what [`Shapes::scan`] says of that line. With AVX-512 one
    /// pass over each 64-byte word finds the newline, classifies the
    /// bytes and builds the skeleton and the quote positions, so that the
    /// line is read from memory once.
    pub(super) fn scan_first<'a>(&mut self, rest: &'a [u8]) -> (usize, Option<RawOp<'a>>) {
        let paused = self.pause();
        #[cfg(target_arch = "x86_64")]
        if self.mode == Mode::Avx512 && !paused {
            // SAFETY: the mode is chosen only on a CPU with these features.
            let pass = unsafe {
                avx512::first_line(
                    rest,
                    &mut self.quotes,
                    &mut self.escapes,
                    &mut self.skeleton,
                    &mut self.positions,
                )
            };
            if let Some(pass) = pass {
                let line = &rest[..pass.len];
                let raw = match pass.ascii {
                    Some(ascii) if !line.is_empty() => {
                        let n = line.len().div_ceil(64);
                        self.decide(line, n, ascii, Some((pass.skeleton, pass.positions)))
                    }
                    _ => scan::scan(line), // empty, or a control character
                };
                return (pass.len, raw);
            }
        }
        let len = bstr::ByteSlice::find_byte(rest, b'\n').unwrap_or(rest.len());
        let line = &rest[..len];
        let raw = if paused {
            scan::scan(line)
        } else {
            self.scan_shaped(line)
        };
        (len, raw)
    }

    /// Whether this line is to be checked without shapes (counting it).
    #[inline]
    fn pause(&mut self) -> bool {
        if self.window.paused == 0 {
            return false;
        }
        self.window.paused -= 1;
        #[cfg(test)]
        {
            self.paused_lines += 1;
        }
        true
    }

    /// The rest of [`Shapes::scan`] once `line`'s `n` words are classified
    /// (no control character; `ascii` says whether it is ASCII), with
    /// `passes` the lengths of the skeleton and positions already built
    /// from the quotes as classified, if they were.
    fn decide<'a>(
        &mut self,
        line: &'a [u8],
        n: usize,
        ascii: bool,
        passes: Option<(usize, usize)>,
    ) -> Option<RawOp<'a>> {
        let escaped = self.escapes[..n].iter().any(|&e| e != 0);
        if escaped
            && scan::read_escapes(line, &mut self.quotes[..n], &mut self.escapes[..n]).is_none()
        {
            return scan::scan(line); // an escape serde_json refuses
        }
        let text = if ascii {
            // SAFETY: no byte of `line` is above 0x7F, and ASCII is UTF-8.
            unsafe { std::str::from_utf8_unchecked(line) }
        } else {
            std::str::from_utf8(line).ok()?
        };
        // Escapes change which quotes count: build both again.
        let (len, count) = match passes {
            Some(done) if !escaped => done,
            _ => self.pack(line, n),
        };
        let index = Quotes {
            quotes: &self.quotes[..n],
            escapes: &self.escapes[..n],
        };
        let skeleton = &self.skeleton[..len];
        let positions = &self.positions[..count];
        let print = fingerprint(skeleton);
        let mode = self.mode;
        let hit = self
            .known
            .iter()
            .position(|s| s.fingerprint == print && same_skeleton(mode, &s.skeleton, skeleton));
        if let Some(i) = hit {
            let escapes = escaped.then_some(&index);
            if let Some(raw) = self.known[i].fields(text, positions, escapes) {
                // One step towards the front: the shapes seen most often
                // end up compared first, for the price of a swap.
                self.known.swap(i, i.saturating_sub(1));
                self.window.count(true);
                #[cfg(test)]
                {
                    self.hits += 1;
                }
                return Some(raw);
            }
        }
        self.window.count(false);
        self.keys.clear();
        let keys = &mut self.keys;
        let raw = scan::scan_with_keys(text, &index, &mut |k| keys.push(k))?;
        learn(&mut self.known, skeleton, positions, &self.keys, text, &raw);
        Some(raw)
    }

    /// Fills `quotes` and `escapes` for `line`'s `n` words; `None` for a
    /// control character, else whether `line` is ASCII.
    fn classify(&mut self, line: &[u8], n: usize) -> Option<bool> {
        let (q, e) = (&mut self.quotes[..n], &mut self.escapes[..n]);
        match self.mode {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the mode is chosen only on a CPU with these features.
            Mode::Avx512 => unsafe { avx512::classify(line, q, e) },
            _ => scan::first_pass(line, q, e),
        }
    }

    /// Writes `line`'s skeleton to `skeleton` and the index of each of
    /// its quotes to `positions`; returns how long each is.
    fn pack(&mut self, line: &[u8], n: usize) -> (usize, usize) {
        let q = &self.quotes[..n];
        let (skeleton, positions) = (&mut self.skeleton[..], &mut self.positions[..]);
        match self.mode {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `classify`.
            Mode::Avx512 => unsafe { avx512::pack(line, q, skeleton, positions) },
            _ => (
                skeleton_portable(line, q, skeleton),
                positions_portable(q, positions),
            ),
        }
    }
}

/// The lines and hits of the current window, and the lines left to check
/// without shapes.
#[derive(Default)]
struct Window {
    lines: u32,
    hits: u32,
    paused: u32,
}

impl Window {
    /// Counts a line that reached the shapes, and whether it was a hit;
    /// pauses after a window of mostly misses.
    #[inline]
    fn count(&mut self, hit: bool) {
        self.lines += 1;
        self.hits += u32::from(hit);
        if self.lines == WINDOW {
            if self.hits * 2 < WINDOW {
                self.paused = PAUSE;
            }
            self.lines = 0;
            self.hits = 0;
        }
    }
}

impl Shape {
    /// The did, cid and createdAt of a line with this shape's skeleton,
    /// whose quotes are at `positions`: `None` when a top-level key's
    /// bytes differ, or when a value holds an escape (which the walk
    /// leaves to serde_json).
    fn fields<'a>(
        &self,
        text: &'a str,
        positions: &[u16],
        escapes: Option<&Quotes<'_>>,
    ) -> Option<RawOp<'a>> {
        let span = |o: u32| -> Option<(usize, usize)> {
            let o = o as usize;
            Some((
                usize::from(*positions.get(o)?) + 1,
                usize::from(*positions.get(o + 1)?),
            ))
        };
        let b = text.as_bytes();
        for (o, range) in &self.keys {
            let (s, e) = span(*o)?;
            if !same(b.get(s..e)?, &self.key_bytes[range.clone()]) {
                return None;
            }
        }
        let value = |o: u32| -> Option<&'a str> {
            let (s, e) = span(o)?;
            if escapes.is_some_and(|q| q.escape_in(s, e)) {
                return None;
            }
            text.get(s..e)
        };
        Some(RawOp {
            did: Cow::Borrowed(value(self.fields[0])?),
            cid: Cow::Borrowed(value(self.fields[1])?),
            created_at: Cow::Borrowed(value(self.fields[2])?),
        })
    }
}

/// `a == b`, eight bytes at a time and inline: the slices compared here
/// (skeletons of a hundred bytes or two, keys of a few) cost more in
/// `memcmp`'s call and dispatch than in the comparison.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping the words before when n is not a
    // multiple of eight.
    word(a, n - 8) == word(b, n - 8)
}

/// Length and three of its words mixed, so that a skeleton is compared
/// in full only with the shapes it most likely is (one, as a rule).
#[inline]
fn fingerprint(s: &[u8]) -> u64 {
    let n = s.len();
    let at = |i: usize| {
        let mut w = [0u8; 8];
        let end = (i + 8).min(n);
        w[..end - i].copy_from_slice(&s[i..end]);
        u64::from_le_bytes(w)
    };
    n as u64 ^ at(0).rotate_left(7) ^ at(n / 2).rotate_left(29) ^ at(n.saturating_sub(8))
}

/// `same(a, b)` for skeletons, 64 bytes a step with AVX-512.
#[inline]
fn same_skeleton(mode: Mode, a: &[u8], b: &[u8]) -> bool {
    match mode {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the mode is chosen only on a CPU with these features.
        Mode::Avx512 => unsafe { avx512::same(a, b) },
        _ => same(a, b),
    }
}

/// Remembers the shape of `text`, just proven valid by the walk (which
/// found its top-level keys starting at `keys` and returned `raw`), in
/// front of `known`, reusing the buffers of the last shape (the least
/// used lately: hits move a shape one step forward) when there are
/// [`MAX_SHAPES`].
fn learn(
    known: &mut Vec<Shape>,
    skeleton: &[u8],
    positions: &[u16],
    keys: &[usize],
    text: &str,
    raw: &RawOp<'_>,
) {
    // The ordinal of the quote just before byte `start`.
    let ordinal = |start: usize| -> Option<u32> {
        let quote = u16::try_from(start.checked_sub(1)?).ok()?;
        positions.binary_search(&quote).ok().map(|o| o as u32)
    };
    let at = |s: &Cow<'_, str>| match s {
        Cow::Borrowed(s) => ordinal(s.as_ptr() as usize - text.as_ptr() as usize),
        Cow::Owned(_) => None,
    };
    let (Some(did), Some(cid), Some(created_at)) =
        (at(&raw.did), at(&raw.cid), at(&raw.created_at))
    else {
        return;
    };
    let mut shape = if known.len() == MAX_SHAPES {
        known.pop().unwrap_or_default()
    } else {
        Shape::default()
    };
    shape.skeleton.clear();
    shape.skeleton.extend_from_slice(skeleton);
    shape.fingerprint = fingerprint(skeleton);
    shape.keys.clear();
    shape.key_bytes.clear();
    let b = text.as_bytes();
    for &start in keys {
        let Some(o) = ordinal(start) else { return };
        let end = usize::from(positions[o as usize + 1]);
        let from = shape.key_bytes.len();
        shape.key_bytes.extend_from_slice(&b[start..end]);
        shape.keys.push((o, from..shape.key_bytes.len()));
    }
    shape.fields = [did, cid, created_at];
    known.insert(0, shape);
}

/// Bit `i` set when byte `i` is inside a string (its opening quote
/// included, its closing quote not), given the quotes of one word and
/// whether the word starts inside a string (`carry` all ones).
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes of a word to keep in the skeleton (outside strings, and the
/// quotes), and the carry into the next word.
#[inline(always)]
fn keep_mask(q: u64, inside_prefix: u64, carry: u64) -> (u64, u64) {
    let inside = inside_prefix ^ carry;
    (!inside | q, ((inside as i64) >> 63) as u64)
}

/// The skeleton of `line` (quotes in `quotes`) into `out`, byte by byte.
fn skeleton_portable(line: &[u8], quotes: &[u64], out: &mut [u8]) -> usize {
    let (mut len, mut carry) = (0, 0u64);
    for (w, &q) in quotes.iter().enumerate() {
        let (keep, next) = keep_mask(q, prefix_xor(q), carry);
        carry = next;
        for (i, &byte) in line[w * 64..].iter().take(64).enumerate() {
            if keep >> i & 1 == 1 {
                out[len] = byte;
                len += 1;
            }
        }
    }
    len
}

/// The index of every quote in `quotes` into `out`, bit by bit.
fn positions_portable(quotes: &[u64], out: &mut [u16]) -> usize {
    let mut k = 0;
    for (w, &q) in quotes.iter().enumerate() {
        let mut q = q;
        while q != 0 {
            out[k] = (w * 64 + q.trailing_zeros() as usize) as u16;
            k += 1;
            q &= q - 1;
        }
    }
    k
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The three passes, one 64-byte word per step.
    use std::arch::x86_64::*;

    /// The mask of the bytes of word `w` that are inside `len`.
    #[inline(always)]
    fn valid(len: usize, w: usize) -> u64 {
        match len - w * 64 {
            rest if rest >= 64 => u64::MAX,
            rest => (1u64 << rest) - 1,
        }
    }

    /// Word `w` of `line`, zeros past its end. A masked load touches no
    /// byte outside the mask, so it never reads past `line`.
    #[inline(always)]
    unsafe fn load(line: &[u8], w: usize) -> (__m512i, u64) {
        let m = valid(line.len(), w);
        // SAFETY: the mask covers only bytes of `line`.
        let v = unsafe { _mm512_maskz_loadu_epi8(m, line.as_ptr().add(w * 64).cast()) };
        (v, m)
    }

    /// [`super::scan::first_pass`], a word per step.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW; `quotes` and `escapes` hold
    /// `line.len().div_ceil(64)` words.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn classify(
        line: &[u8],
        quotes: &mut [u64],
        escapes: &mut [u64],
    ) -> Option<bool> {
        let (quote, backslash) = (_mm512_set1_epi8(b'"' as i8), _mm512_set1_epi8(b'\\' as i8));
        let space = _mm512_set1_epi8(0x20);
        let (mut bad, mut high) = (0u64, 0u64);
        for w in 0..quotes.len() {
            // SAFETY: w < line.len().div_ceil(64).
            let (v, m) = unsafe { load(line, w) };
            quotes[w] = _mm512_cmpeq_epi8_mask(v, quote);
            escapes[w] = _mm512_cmpeq_epi8_mask(v, backslash);
            bad |= _mm512_mask_cmplt_epu8_mask(m, v, space);
            high |= _mm512_movepi8_mask(v);
        }
        (bad == 0).then_some(high == 0)
    }

    /// Builds a line's skeleton and quote positions a word at a time.
    struct Packer {
        low: __m512i,
        high: __m512i,
        ones: __m128i,
        /// All ones when the next word starts inside a string.
        carry: u64,
        skeleton: usize,
        positions: usize,
    }

    impl Packer {
        #[inline(always)]
        unsafe fn new() -> Packer {
            let mut lanes = [0i16; 32];
            for (i, l) in lanes.iter_mut().enumerate() {
                *l = i as i16;
            }
            // SAFETY: 32 lanes of 16 bits are 64 bytes; every caller
            // enables AVX-512 F.
            let low = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
            Packer {
                low,
                high: _mm512_add_epi16(low, _mm512_set1_epi16(32)),
                ones: _mm_set1_epi8(-1),
                carry: 0,
                skeleton: 0,
                positions: 0,
            }
        }

        /// Word `w` (bytes `v`, of which `line` are the line's, quotes
        /// `q`): its kept bytes packed by one compress instruction, its
        /// quotes' indexes by two.
        ///
        /// # Safety
        /// AVX-512 F, BW and VBMI2, PCLMULQDQ and POPCNT; words are given
        /// in order; `skeleton` has room for 64 bytes past `w * 64`,
        /// `positions` for 32 entries past `w * 64`.
        #[inline(always)]
        unsafe fn word(
            &mut self,
            w: usize,
            v: __m512i,
            q: u64,
            line: u64,
            skeleton: &mut [u8],
            positions: &mut [u16],
        ) {
            // Carry-less multiplication by all ones: the prefix XOR.
            let prefix = _mm_cvtsi128_si64(_mm_clmulepi64_si128(
                _mm_set_epi64x(0, q as i64),
                self.ones,
                0,
            )) as u64;
            let (keep, next) = super::keep_mask(q, prefix, self.carry);
            self.carry = next;
            let keep = keep & line;
            let base = _mm512_set1_epi16((w * 64) as i16);
            // SAFETY: self.skeleton <= w * 64 and self.positions <= w * 64
            // + 32 (at most one per byte before): the caller's room.
            unsafe {
                _mm512_storeu_si512(
                    skeleton.as_mut_ptr().add(self.skeleton).cast(),
                    _mm512_maskz_compress_epi8(keep, v),
                );
                self.skeleton += keep.count_ones() as usize;
                for (half, lanes) in [(q as u32, self.low), ((q >> 32) as u32, self.high)] {
                    let packed = _mm512_maskz_compress_epi16(half, _mm512_add_epi16(lanes, base));
                    _mm512_storeu_si512(positions.as_mut_ptr().add(self.positions).cast(), packed);
                    self.positions += half.count_ones() as usize;
                }
            }
        }
    }

    /// [`super::skeleton_portable`] and [`super::positions_portable`], a
    /// word per step.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VBMI2, PCLMULQDQ and POPCNT;
    /// `quotes` holds `line.len().div_ceil(64)` words (at most 512),
    /// `skeleton` has room for 64 bytes per word plus 64, `positions` for
    /// 64 entries per word plus 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,pclmulqdq,popcnt")]
    pub(super) unsafe fn pack(
        line: &[u8],
        quotes: &[u64],
        skeleton: &mut [u8],
        positions: &mut [u16],
    ) -> (usize, usize) {
        let words = quotes.len();
        assert!(
            words <= 512 && skeleton.len() >= words * 64 + 64 && positions.len() >= words * 64 + 32
        );
        // SAFETY: the features are enabled here.
        let mut packer = unsafe { Packer::new() };
        for (w, &q) in quotes.iter().enumerate() {
            // SAFETY: w < line.len().div_ceil(64), and the room asserted.
            unsafe {
                let (v, m) = load(line, w);
                packer.word(w, v, q, m, skeleton, positions);
            }
        }
        (packer.skeleton, packer.positions)
    }

    /// `a == b`, 64 bytes a step.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn same(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        for w in 0..a.len().div_ceil(64) {
            // SAFETY: w < a.len().div_ceil(64), and b is as long.
            let ((x, _), (y, _)) = unsafe { (load(a, w), load(b, w)) };
            if _mm512_cmpneq_epi8_mask(x, y) != 0 {
                return false;
            }
        }
        true
    }

    /// What [`first_line`] found.
    pub(in crate::line) struct FirstLine {
        /// The line's length, its newline excluded.
        pub len: usize,
        /// `None` for a control character in the line, else whether the
        /// line is ASCII.
        pub ascii: Option<bool>,
        /// The lengths of the skeleton and of the positions written.
        pub skeleton: usize,
        pub positions: usize,
    }

    /// [`classify`], [`skeleton`] and [`positions`] of the first line of
    /// `rest`, in one pass that also finds where the line ends (its first
    /// `\n`, or the end of `rest`), each word loaded once. `None` when the
    /// line is longer than `quotes` covers.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VBMI2, PCLMULQDQ and POPCNT; `escapes`
    /// is as long as `quotes` (at most 512 words), `skeleton` has room for
    /// 64 bytes per word plus 64, `positions` for 64 per word plus 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,pclmulqdq,popcnt")]
    pub(super) unsafe fn first_line(
        rest: &[u8],
        quotes: &mut [u64],
        escapes: &mut [u64],
        skeleton: &mut [u8],
        positions: &mut [u16],
    ) -> Option<FirstLine> {
        let words = quotes.len();
        assert!(
            escapes.len() == words
                && words <= 512
                && skeleton.len() >= words * 64 + 64
                && positions.len() >= words * 64 + 32
        );
        let (quote, backslash) = (_mm512_set1_epi8(b'"' as i8), _mm512_set1_epi8(b'\\' as i8));
        let (newline, space) = (_mm512_set1_epi8(b'\n' as i8), _mm512_set1_epi8(0x20));
        // SAFETY: the features are enabled here.
        let mut packer = unsafe { Packer::new() };
        let (mut bad, mut high) = (0u64, 0u64);
        for w in 0..words {
            if w * 64 >= rest.len() {
                return Some(FirstLine {
                    len: rest.len(),
                    ascii: (bad == 0).then_some(high == 0),
                    skeleton: packer.skeleton,
                    positions: packer.positions,
                });
            }
            // SAFETY: w * 64 < rest.len().
            let (v, valid) = unsafe { load(rest, w) };
            let nl = _mm512_cmpeq_epi8_mask(v, newline);
            // The bytes of the line in this word: before its newline.
            let line = if nl == 0 {
                valid
            } else {
                (nl & nl.wrapping_neg()) - 1
            };
            let q = _mm512_cmpeq_epi8_mask(v, quote) & line;
            quotes[w] = q;
            escapes[w] = _mm512_cmpeq_epi8_mask(v, backslash) & line;
            bad |= _mm512_mask_cmplt_epu8_mask(line, v, space);
            high |= _mm512_movepi8_mask(v) & line;
            // SAFETY: the room asserted above.
            unsafe { packer.word(w, v, q, line, skeleton, positions) };
            if nl != 0 {
                return Some(FirstLine {
                    len: w * 64 + nl.trailing_zeros() as usize,
                    ascii: (bad == 0).then_some(high == 0),
                    skeleton: packer.skeleton,
                    positions: packer.positions,
                });
            }
        }
        (rest.len() <= words * 64).then_some(FirstLine {
            len: rest.len(),
            ascii: (bad == 0).then_some(high == 0),
            skeleton: packer.skeleton,
            positions: packer.positions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::fallback::parse_op_serde;
    use crate::line::{Op, OpParser};

    fn show(r: &std::result::Result<Op<'_>, String>) -> String {
        match r {
            Ok(op) => format!("ok {:?} {:?} {:?}", op.did, op.cid, op.created_at),
            Err(e) => format!("err {e}"),
        }
    }

    /// The parsers (the portable passes, and the AVX-512 ones when the
    /// CPU has them) give serde_json's verdict and fields on `line`.
    fn assert_same_as_serde(parsers: &mut [OpParser], line: &[u8]) {
        let want = show(&parse_op_serde(line));
        for p in parsers.iter_mut() {
            assert_eq!(
                show(&p.parse(line)),
                want,
                "{:?} {:?}",
                p.shapes.mode,
                String::from_utf8_lossy(line)
            );
        }
    }

    fn parsers() -> Vec<OpParser> {
        let mut all = vec![OpParser::portable()];
        if Mode::best() != Mode::Off {
            all.push(OpParser::default());
        }
        all
    }

    fn hits(parsers: &[OpParser]) -> usize {
        parsers.iter().map(|p| p.shapes.hits).min().unwrap_or(0)
    }

    #[test]
    fn lines_like_proven_ones_get_serde_verdicts() {
        // Each realistic operation is parsed (teaching its shape), then
        // every truncation and every one-byte change of it (to bytes that
        // matter to JSON) right after it: a change inside a string keeps
        // the skeleton, so the known shape decides; any other change goes
        // to the walk. Verdicts and fields must be serde_json's.
        let ops = crate::synth::generate(12, &crate::synth::SynthOptions::default());
        let alphabet = b"{}[]:,\"\\ 0-1.eEtfnu\x00\x1fxA\xc3\xa9";
        let mut parsers = parsers();
        for op in &ops {
            assert_same_as_serde(&mut parsers, &op.line);
            for cut in 0..op.line.len() {
                assert_same_as_serde(&mut parsers, &op.line[..cut]);
            }
            for pos in 0..op.line.len() {
                for &byte in alphabet {
                    let mut m = op.line.clone();
                    m[pos] = byte;
                    assert_same_as_serde(&mut parsers, &op.line);
                    assert_same_as_serde(&mut parsers, &m);
                }
            }
        }
        assert!(hits(&parsers) > 50_000, "{}", hits(&parsers));
    }

    #[test]
    fn lines_changed_in_several_places_get_serde_verdicts() {
        // Two to four bytes of a realistic operation changed at once, at
        // positions and to values from a fixed pseudo-random sequence,
        // each after the original line.
        let ops = crate::synth::generate(40, &crate::synth::SynthOptions::default());
        let alphabet = b"{}[]:,\"\\0-1.eEtfnulxd";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut parsers = parsers();
        for op in &ops {
            for _ in 0..400 {
                let mut m = op.line.clone();
                for _ in 0..2 + next(3) {
                    let pos = next(m.len());
                    m[pos] = alphabet[next(alphabet.len())];
                }
                assert_same_as_serde(&mut parsers, &op.line);
                assert_same_as_serde(&mut parsers, &m);
            }
        }
        assert!(hits(&parsers) > 10_000, "{}", hits(&parsers));
    }

    #[test]
    fn a_known_skeleton_with_other_keys_or_escaped_fields_is_not_trusted() {
        // Lines whose skeleton is the first line's, but whose top-level
        // keys or field values differ in ways that change the verdict or
        // the fields.
        let base = r#"{"did":"did:plc:a","operation":{"k":[1,"x"]},"cid":"c1","nullified":false,"createdAt":"2024-01-01T00:00:00.000Z"}"#;
        let variants = [
            base.replace(r#""cid":"c1""#, r#""cix":"c1""#),
            base.replace(r#""nullified""#, r#""cid""#),
            base.replace(r#""nullified""#, r#""did""#),
            base.replace(r#""operation""#, r#""createdAt""#),
            base.replace(r#""did":"did:plc:a""#, r#""did":"did:plc:\u0061""#),
            base.replace(r#""cid":"c1""#, r#""cid":"c\"1""#),
            base.replace(r#""cid":"c1""#, r#""c\u0069d":"c1""#),
            base.replace(r#""k":[1,"x"]"#, r#""k":[1,"\x"]"#),
            base.replace(r#""k":[1,"x"]"#, r#""k":[1,"\\"]"#),
            base.replace(r#""k":[1,"x"]"#, r#""k":[1,"é"]"#),
            base.replace(r#""k":[1,"x"]"#, "\"k\":[1,\"\u{1}\"]"),
            base.replace(r#""k":[1,"x"]"#, r#""k":[2,"x"]"#),
            base.replace(
                r#""createdAt":"2024-01-01T00:00:00.000Z""#,
                r#""createdAt":"2024-13-01T00:00:00.000Z""#,
            ),
            base.replace(r#""did":"did:plc:a""#, r#""did":"""#),
            base.replace("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.001Z"),
            base.to_string(),
        ];
        let mut parsers = parsers();
        for v in &variants {
            assert_same_as_serde(&mut parsers, base.as_bytes());
            assert_same_as_serde(&mut parsers, v.as_bytes());
        }
        assert!(hits(&parsers) >= variants.len(), "{}", hits(&parsers));
    }

    #[test]
    fn shapes_past_the_cache_size_are_forgotten_and_relearned() {
        // More shapes than are remembered (arrays of 0 to 39 numbers),
        // each line twice, in an order that cycles through all of them.
        let line = |k: usize, t: usize| {
            let items = vec!["7"; k].join(",");
            format!(
                r#"{{"did":"did:plc:{k}","x":[{items}],"cid":"c{t}","createdAt":"2024-01-01T00:00:{:02}.000Z"}}"#,
                t % 60
            )
        };
        let mut parsers = parsers();
        for round in 0..3 {
            for k in 0..40 {
                assert_same_as_serde(&mut parsers, line(k, round).as_bytes());
                assert_same_as_serde(&mut parsers, line(k, round + 1).as_bytes());
            }
        }
        assert!(hits(&parsers) >= 120, "{}", hits(&parsers));
    }

    #[test]
    fn lines_found_and_parsed_in_one_pass_are_split_lines_parsed_by_serde() {
        // A content of realistic lines, one-byte changes of them (newlines
        // among the new bytes, which cut a line in two) each followed by
        // the original, empty lines, and
        // valid lines of every length around the ends of 64-byte words
        // and of the longest line the one-pass search takes (8 KB),
        // without a final newline: the lines found one after the other
        // are those of a split on newlines, with serde_json's verdicts.
        let ops = crate::synth::generate(20, &crate::synth::SynthOptions::default());
        let mut content: Vec<u8> = Vec::new();
        let mut next = {
            let mut x = 0x853c_49e6_748f_ea9bu64;
            move |n: usize| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % n as u64) as usize
            }
        };
        for op in &ops {
            content.extend_from_slice(&op.line);
            content.push(b'\n');
            for _ in 0..30 {
                let mut m = op.line.clone();
                let pos = next(m.len());
                m[pos] = b"\n\"\\{x\x01"[next(6)];
                content.extend_from_slice(&m);
                content.push(b'\n');
                // The original twice: most lines still have a known
                // shape, so the shapes do not pause.
                for _ in 0..2 {
                    content.extend_from_slice(&op.line);
                    content.push(b'\n');
                }
            }
            content.push(b'\n');
        }
        let head = r#"{"did":"did:plc:a","cid":"c","createdAt":"2024-01-01T00:00:00.000Z","x":""#;
        for len in (90..200).chain(8100..8300) {
            let pad = len - head.len() - 2;
            content.extend_from_slice(format!("{head}{}\"}}", "y".repeat(pad)).as_bytes());
            content.push(b'\n');
        }
        content.extend_from_slice(&ops[0].line);
        let want: Vec<(Vec<u8>, String)> = content
            .split(|&b| b == b'\n')
            .map(|l| (l.to_vec(), show(&parse_op_serde(l))))
            .collect();
        for mut p in parsers() {
            let (mut start, mut got) = (0, Vec::new());
            while start <= content.len() {
                let (len, r) = p.parse_first(&content[start..]);
                got.push((content[start..start + len].to_vec(), show(&r)));
                start += len + 1;
            }
            assert_eq!(got.len(), want.len(), "{:?}", p.shapes.mode);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{:?}", p.shapes.mode);
            }
            assert!(p.shapes.hits > 250, "{}", p.shapes.hits);
        }
    }

    #[test]
    fn input_of_too_many_shapes_pauses_them_and_they_come_back() {
        // 97 shapes in turn (more than are remembered, so every line
        // misses): after a window the shapes pause; then one shape for
        // longer than a pause: once it ends, its lines hit again. Every
        // verdict is serde_json's, through parse and parse_first.
        let line = |k: usize, t: usize| {
            let items = vec!["1"; k % 97].join(",");
            format!(
                r#"{{"did":"did:plc:{k}","x":[{items}],"cid":"c{t}","createdAt":"2024-01-01T00:00:{:02}.000Z"}}"#,
                t % 60
            )
        };
        let lines: Vec<String> = (0..1000)
            .map(|t| line(t, t))
            .chain((0..PAUSE as usize + 2000).map(|t| line(5, t)))
            .collect();
        for mut p in parsers() {
            for l in &lines[..1000] {
                assert_eq!(
                    show(&p.parse(l.as_bytes())),
                    show(&parse_op_serde(l.as_bytes()))
                );
            }
            assert!(p.shapes.hits < 50, "{}", p.shapes.hits);
            assert!(p.shapes.paused_lines > 500, "{}", p.shapes.paused_lines);
            let content = lines[1000..].join("\n");
            let mut start = 0;
            for l in &lines[1000..] {
                let (len, r) = p.parse_first(&content.as_bytes()[start..]);
                assert_eq!(len, l.len());
                assert_eq!(show(&r), show(&parse_op_serde(l.as_bytes())));
                start += len + 1;
            }
            assert!(
                p.shapes.hits > 1500,
                "{:?} {}",
                p.shapes.mode,
                p.shapes.hits
            );
        }
    }

    #[test]
    fn same_is_slice_equality() {
        // Every length up to 200, equal and differing at each byte, and
        // lengths differing by one, inline and (on a CPU with AVX-512)
        // 64 bytes a step.
        for n in 0..200usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            let modes = [Mode::Portable, Mode::best()];
            for m in modes {
                assert!(same(&a, &a.clone()) && same_skeleton(m, &a, &a.clone()));
                for i in 0..n {
                    let mut b = a.clone();
                    b[i] ^= 0x20;
                    assert!(!same(&a, &b), "{n} {i}");
                    assert!(!same_skeleton(m, &a, &b), "{m:?} {n} {i}");
                }
                let shorter = &a[..n.saturating_sub(1)];
                assert!(n == 0 || (!same(&a, shorter) && !same_skeleton(m, &a, shorter)));
            }
        }
    }

    #[test]
    fn the_passes_give_what_a_byte_loop_gives() {
        // Every truncation of realistic lines and every one-byte change
        // of a few (quote, backslash, control, high and plain bytes),
        // through the portable passes and, on a CPU that has AVX-512, the
        // vector ones, against a byte loop that follows strings one quote
        // at a time.
        let lines = crate::line::scan::tests::cut_and_changed_lines(30, 1);
        let mut modes = vec![Shapes::with_mode(Mode::Portable)];
        if Mode::best() != Mode::Off {
            modes.push(Shapes::with_mode(Mode::best()));
        }
        let mut checked = [0usize; 2];
        for line in &lines {
            let verdict = (!line.iter().any(|&c| c < 0x20)).then_some(line.is_ascii());
            let (mut inside, mut skeleton, mut positions) = (false, Vec::new(), Vec::new());
            for (i, &c) in line.iter().enumerate() {
                if c == b'"' {
                    inside = !inside;
                    positions.push(i as u16);
                    skeleton.push(c);
                } else if !inside {
                    skeleton.push(c);
                }
            }
            let n = line.len().div_ceil(64);
            for s in modes.iter_mut() {
                assert_eq!(s.classify(line, n), verdict, "{:?}", s.mode);
                if verdict.is_none() {
                    continue;
                }
                let (len, k) = s.pack(line, n);
                assert_eq!(s.skeleton[..len], skeleton[..], "{:?}", s.mode);
                assert_eq!(s.positions[..k], positions[..], "{:?}", s.mode);
            }
            checked[usize::from(verdict.is_some())] += 1;
        }
        assert!(checked.iter().all(|&k| k > 100), "{checked:?}");
    }

    #[test]
    fn the_portable_passes_match_a_reading_by_hand() {
        // The skeleton of a line with strings, escapes already cleared by
        // the quote index, and the positions of its quotes.
        let line = br#"{"a":"x\"y","b":[1,"",{"c":null}]}"#;
        let mut s = Shapes::with_mode(Mode::Portable);
        let n = line.len().div_ceil(64);
        assert_eq!(s.classify(line, n), Some(true));
        scan::read_escapes(line, &mut s.quotes[..n], &mut s.escapes[..n]).unwrap();
        let (len, k) = s.pack(line, n);
        assert_eq!(&s.skeleton[..len], br#"{"":"","":[1,"",{"":null}]}"#);
        let want: Vec<u16> = line
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c == b'"' && line[i - 1] != b'\\')
            .map(|(i, _)| i as u16)
            .collect();
        assert_eq!(s.positions[..k], want[..]);
    }
}
