//! The fast check of an operation line: a hand-written scanner that
//! proves most lines valid without serde_json, and gives up (never
//! refuses) on anything it is not sure of.

use super::RawOp;
use std::borrow::Cow;

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
pub(super) fn scan(line: &[u8]) -> Option<RawOp<'_>> {
    // The whole line must be UTF-8 (serde_json would only check strings,
    // the contract checks everything). A line found to be ASCII while its
    // quotes are indexed needs no further check.
    #[cfg(target_arch = "x86_64")]
    if line.len() <= 64 * SHORT_WORDS {
        if let Some(found) = scan_indexed::<SHORT_WORDS>(line) {
            return found;
        }
    } else if line.len() <= 64 * QUOTE_WORDS {
        if let Some(found) = scan_indexed::<QUOTE_WORDS>(line) {
            return found;
        }
    }
    scan_with(std::str::from_utf8(line).ok()?, &Swar)
}

/// [`scan`] through [`quote_bits`] for a line of at most `64 * W` bytes;
/// `None` when the index does not take the line.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn scan_indexed<const W: usize>(line: &[u8]) -> Option<Option<RawOp<'_>>> {
    let (mut quotes, mut escapes) = ([0u64; W], [0u64; W]);
    let (n, ascii) = quote_bits(line, &mut quotes, &mut escapes)?;
    let text = if ascii {
        // SAFETY: no byte of `line` is above 0x7F, and ASCII is UTF-8.
        // (std's check would cost a tenth of this scan.)
        unsafe { std::str::from_utf8_unchecked(line) }
    } else {
        match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(_) => return Some(None),
        }
    };
    let index = Quotes {
        quotes: &quotes[..n],
        escapes: &escapes[..n],
    };
    Some(scan_with(text, &index))
}

/// [`scan`] on a line known to be UTF-8, with `strings` finding where
/// strings end.
#[inline(always)]
fn scan_with<'a, S: Strings>(text: &'a str, strings: &S) -> Option<RawOp<'a>> {
    scan_with_keys(text, strings, &mut |_| {})
}

/// [`scan_with`], calling `on_key` with where each top-level key's
/// content starts (for [`super::shape`], which learns a line's shape).
#[inline(always)]
pub(super) fn scan_with_keys<'a, S: Strings>(
    text: &'a str,
    strings: &S,
    on_key: &mut impl FnMut(usize),
) -> Option<RawOp<'a>> {
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
        on_key(key_start);
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
pub(super) trait Strings {
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

/// Lines up to this many 64-byte words (8 KB; operations are about 700
/// bytes, the largest a few KB) are indexed by [`quote_bits`].
pub(super) const QUOTE_WORDS: usize = 128;

/// Lines up to this many words (2 KB) are indexed with smaller arrays:
/// zeroing the larger ones cost more than the index of a short line.
const SHORT_WORDS: usize = 32;

/// A line with no control character, with a bit set in `quotes` for
/// every `"` that is not escaped, and in `escapes` for every `\\` that
/// starts an escape (each one checked by [`quote_bits`]): the quote that
/// ends a string is simply the next one, found with one bit search
/// instead of a scan of the string's bytes.
pub(super) struct Quotes<'a> {
    pub(super) quotes: &'a [u64],
    pub(super) escapes: &'a [u64],
}

impl Quotes<'_> {
    #[inline(always)]
    fn next_quote(&self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut m = *self.quotes.get(w)? & (u64::MAX << (i % 64));
        loop {
            if m != 0 {
                return Some(w * 64 + m.trailing_zeros() as usize);
            }
            w += 1;
            m = *self.quotes.get(w)?;
        }
    }

    /// Whether an escape starts in `from..to`.
    #[inline(always)]
    pub(super) fn escape_in(&self, from: usize, to: usize) -> bool {
        let (wf, wt) = (from / 64, to / 64);
        let lo = u64::MAX << (from % 64);
        let hi = (1u64 << (to % 64)) - 1;
        if wf == wt {
            return self.escapes[wf] & lo & hi != 0;
        }
        self.escapes[wf] & lo != 0
            || self.escapes[wf + 1..wt].iter().any(|&e| e != 0)
            || self.escapes.get(wt).is_some_and(|&e| e & hi != 0)
    }
}

impl Strings for Quotes<'_> {
    #[inline(always)]
    fn end_plain(&self, _: &[u8], i: usize) -> Option<usize> {
        let q = self.next_quote(i)?;
        (!self.escape_in(i, q)).then_some(q)
    }
    #[inline(always)]
    fn end(&self, _: &[u8], i: usize) -> Option<usize> {
        self.next_quote(i).map(|q| q + 1)
    }
}

/// Sets a bit in `quotes` for every `"` of `b` (at most `64 *
/// quotes.len()` bytes) and in `escapes` for every `\\` of it, returns
/// how many words it used and whether `b` is ASCII; or `None` when `b`
/// holds a control character (below 0x20; the line is likely bad), or
/// an escape serde_json would refuse: those lines take the [`Swar`]
/// path. Sixteen bytes at a time with SSE2, which every x86_64 CPU has.
///
/// Escapes are then read in order (they are rare): each one must be
/// `\\` followed by one of `" \\ / b f n r t` or by `u` and four hex
/// digits, its bit stays set in `escapes`, the escaped byte's bits are
/// cleared (an escaped `"` ends no string, an escaped `\\` starts no
/// escape). A `\\` outside every string stops the scanner wherever it
/// is read, so reading it as an escape here changes nothing before it.
#[cfg(target_arch = "x86_64")]
fn quote_bits(b: &[u8], quotes: &mut [u64], escapes: &mut [u64]) -> Option<(usize, bool)> {
    let n = b.len().div_ceil(64);
    let ascii = first_pass(b, quotes, escapes)?;
    if escapes[..n].iter().any(|&e| e != 0) {
        read_escapes(b, &mut quotes[..n], &mut escapes[..n])?;
    }
    Some((n, ascii))
}

/// The first pass of [`quote_bits`]: fills `quotes` and `escapes` with
/// every `"` and `\\` of `b` (at most `64 * quotes.len()` bytes) and
/// returns whether `b` is ASCII, or `None` for a control character.
#[cfg(target_arch = "x86_64")]
pub(super) fn first_pass(b: &[u8], quotes: &mut [u64], escapes: &mut [u64]) -> Option<bool> {
    let n = b.len().div_ceil(64);
    assert!(n <= quotes.len() && n <= escapes.len());
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { classify_avx2(b, quotes, escapes) }
    } else {
        classify_sse2(b, quotes, escapes)
    }
}

/// The first pass of [`quote_bits`], sixteen bytes at a time: fills
/// `quotes` and `escapes` with every `"` and `\\` of `b` and returns
/// whether `b` is ASCII, or `None` for a control character.
#[cfg(target_arch = "x86_64")]
fn classify_sse2(b: &[u8], quotes: &mut [u64], escapes: &mut [u64]) -> Option<bool> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64. Every load reads 16 bytes inside `b`
    // (`off + 16 <= b.len()`) or inside the local `tail`.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let below_space = _mm_set1_epi8(0x1f);
        let mut bad = _mm_setzero_si128();
        let mut high = _mm_setzero_si128();
        for w in 0..b.len().div_ceil(64) {
            let (mut q, mut e) = (0u64, 0u64);
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
                q |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16) << (k * 16);
                e |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash)) as u16) << (k * 16);
                bad = _mm_or_si128(bad, _mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v));
                high = _mm_or_si128(high, v);
            }
            quotes[w] = q;
            escapes[w] = e;
        }
        if _mm_movemask_epi8(bad) != 0 {
            return None;
        }
        Some(_mm_movemask_epi8(high) == 0)
    }
}

/// [`classify_sse2`] thirty-two bytes at a time, for CPUs with AVX2:
/// half the instructions for the pass that reads every byte of a line.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn classify_avx2(b: &[u8], quotes: &mut [u64], escapes: &mut [u64]) -> Option<bool> {
    use std::arch::x86_64::*;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let below_space = _mm256_set1_epi8(0x1f);
    let mut bad = _mm256_setzero_si256();
    let mut high = _mm256_setzero_si256();
    for w in 0..b.len().div_ceil(64) {
        let (mut q, mut e) = (0u64, 0u64);
        for k in 0..2 {
            let off = w * 64 + k * 32;
            if off >= b.len() {
                break;
            }
            // SAFETY: 32 bytes inside `b` (`off + 32 <= b.len()`) or
            // inside the local `tail`.
            let v = if off + 32 <= b.len() {
                unsafe { _mm256_loadu_si256(b.as_ptr().add(off).cast()) }
            } else {
                let mut tail = [b' '; 32];
                tail[..b.len() - off].copy_from_slice(&b[off..]);
                unsafe { _mm256_loadu_si256(tail.as_ptr().cast()) }
            };
            let bits = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32) << (k * 32);
            q |= bits(_mm256_cmpeq_epi8(v, quote));
            e |= bits(_mm256_cmpeq_epi8(v, backslash));
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(_mm256_min_epu8(v, below_space), v));
            high = _mm256_or_si256(high, v);
        }
        quotes[w] = q;
        escapes[w] = e;
    }
    if _mm256_movemask_epi8(bad) != 0 {
        return None;
    }
    Some(_mm256_movemask_epi8(high) == 0)
}

/// The escape pass of [`quote_bits`]: `escapes` holds every `\\` on
/// entry and the escapes' first bytes on return.
pub(super) fn read_escapes(b: &[u8], quotes: &mut [u64], escapes: &mut [u64]) -> Option<()> {
    let clear = |m: &mut [u64], i: usize| m[i / 64] &= !(1u64 << (i % 64));
    let mut w = 0;
    while w < escapes.len() {
        let mut word = escapes[w];
        while word != 0 {
            let p = w * 64 + word.trailing_zeros() as usize;
            word &= word - 1;
            match *b.get(p + 1)? {
                b'"' => clear(quotes, p + 1),
                b'\\' => {
                    clear(escapes, p + 1);
                    if (p + 1) / 64 == w {
                        word &= !(1u64 << ((p + 1) % 64));
                    }
                }
                b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' if b.get(p + 2..p + 6)?.iter().all(u8::is_ascii_hexdigit) => {}
                _ => return None,
            }
        }
        w += 1;
    }
    Some(())
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::line::fallback::parse_op_serde;
    use crate::line::{parse_op, Op};

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

    #[test]
    fn the_scanner_agrees_with_serde_on_lines_changed_in_several_places() {
        // Two to four bytes of a realistic operation changed at once (to
        // bytes that matter to JSON),
        // at positions and values from a fixed pseudo-random sequence;
        // verdicts and fields must be serde_json's.
        let ops = crate::synth::generate(40, &crate::synth::SynthOptions::default());
        let alphabet = b"{}[]:,\"0-1.eEtfnulx";
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let (mut accepted, mut refused) = (0, 0);
        for op in &ops {
            for _ in 0..500 {
                let mut m = op.line.clone();
                for _ in 0..2 + next(3) {
                    let pos = next(m.len());
                    m[pos] = alphabet[next(alphabet.len())];
                }
                match scan(&m) {
                    Some(_) => accepted += 1,
                    None => refused += 1,
                }
                assert_same_as_serde(&m);
            }
        }
        assert!(accepted > 500 && refused > 5000, "{accepted} {refused}");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_quote_index_finds_the_same_string_ends_as_the_byte_scan() {
        // Every line and truncation the index takes (no control
        // character, no escape serde_json refuses) must scan the same with either way of
        // finding string ends, and ASCII must be reported exactly.
        let ops = crate::synth::generate(300, &crate::synth::SynthOptions::default());
        let mut indexed = 0;
        for op in &ops {
            for cut in (0..=op.line.len()).rev().step_by(7) {
                let line = &op.line[..cut];
                let (mut quotes, mut escapes) = ([0u64; QUOTE_WORDS], [0u64; QUOTE_WORDS]);
                let Some((n, ascii)) = quote_bits(line, &mut quotes, &mut escapes) else {
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
                    show(scan_with(
                        text,
                        &Quotes {
                            quotes: &quotes[..n],
                            escapes: &escapes[..n]
                        }
                    )),
                    show(scan_with(text, &Swar)),
                    "{text:?}"
                );
            }
        }
        assert!(indexed > 10_000, "only {indexed} lines took the index");
    }

    /// Every truncation from `shortest` bytes of `n` realistic lines, and
    /// every one-byte change of four of them to bytes the first passes
    /// mark or refuse (quote, backslash, control, high and plain bytes).
    pub(in crate::line) fn cut_and_changed_lines(n: usize, shortest: usize) -> Vec<Vec<u8>> {
        let ops = crate::synth::generate(n, &crate::synth::SynthOptions::default());
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for op in &ops {
            lines.extend((shortest..=op.line.len()).map(|cut| op.line[..cut].to_vec()));
        }
        for op in &ops[..4] {
            for pos in 0..op.line.len() {
                for byte in [b'"', b'\\', 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'a'] {
                    let mut m = op.line.clone();
                    m[pos] = byte;
                    lines.push(m);
                }
            }
        }
        lines
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_first_passes_mark_what_a_byte_loop_marks() {
        // Every truncation of realistic lines, and every one-byte change
        // (quote, backslash, control, high and plain bytes) of a few,
        // through the SSE2 pass and, on a CPU that has it, the AVX2 one.
        let lines = cut_and_changed_lines(40, 0);
        type Marks = (Option<bool>, Vec<u64>, Vec<u64>);
        let byte_loop = |line: &[u8]| -> Marks {
            let n = line.len().div_ceil(64);
            let (mut q, mut e) = (vec![0u64; n], vec![0u64; n]);
            for (i, &c) in line.iter().enumerate() {
                q[i / 64] |= u64::from(c == b'"') << (i % 64);
                e[i / 64] |= u64::from(c == b'\\') << (i % 64);
            }
            let verdict = (!line.iter().any(|&c| c < 0x20)).then_some(line.is_ascii());
            (verdict, q, e)
        };
        let pass = |line: &[u8], avx2: bool| -> Marks {
            let (mut q, mut e) = ([0u64; QUOTE_WORDS], [0u64; QUOTE_WORDS]);
            let verdict = if avx2 {
                // SAFETY: only called when the CPU has AVX2.
                unsafe { classify_avx2(line, &mut q, &mut e) }
            } else {
                classify_sse2(line, &mut q, &mut e)
            };
            let n = line.len().div_ceil(64);
            (verdict, q[..n].to_vec(), e[..n].to_vec())
        };
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let mut verdicts = [0usize; 2];
        for line in &lines {
            let want = byte_loop(line);
            // A refused line's marks are not used: only the verdict counts.
            let same = |got: Marks| got.0 == want.0 && (want.0.is_none() || got == want);
            assert!(
                same(pass(line, false)),
                "SSE2 {:?}",
                String::from_utf8_lossy(line)
            );
            if avx2 {
                assert!(
                    same(pass(line, true)),
                    "AVX2 {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            verdicts[usize::from(want.0.is_some())] += 1;
        }
        assert!(verdicts.iter().all(|&k| k > 100), "{verdicts:?}");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn escapes_anywhere_scan_the_same_indexed_byte_by_byte_and_by_serde() {
        // Valid and invalid escapes (and runs of backslashes) put inside
        // strings, between tokens and at the ends of realistic lines.
        let ops = crate::synth::generate(60, &crate::synth::SynthOptions::default());
        let snippets: [&[u8]; 10] = [
            br#"\""#,
            br"\\",
            br#"\\\""#,
            br"\/\b\f\n\r\t",
            br"\u00e9",
            br"\uD83D\uDE00",
            br"\q",
            br"\u12",
            br"\",
            br"\\\",
        ];
        let (mut indexed, mut accepted) = (0, 0);
        for op in &ops {
            for at in (0..op.line.len()).step_by(3) {
                for snippet in snippets {
                    let line = [&op.line[..at], snippet, &op.line[at..]].concat();
                    assert_same_as_serde(&line);
                    let (mut quotes, mut escapes) = ([0u64; QUOTE_WORDS], [0u64; QUOTE_WORDS]);
                    let Some((n, _)) = quote_bits(&line, &mut quotes, &mut escapes) else {
                        continue;
                    };
                    let Ok(text) = std::str::from_utf8(&line) else {
                        continue; // the escape cut a character in two
                    };
                    let show = |r: Option<RawOp<'_>>| {
                        r.map(|r| format!("{} {} {}", r.did, r.cid, r.created_at))
                    };
                    let index = Quotes {
                        quotes: &quotes[..n],
                        escapes: &escapes[..n],
                    };
                    let fast = show(scan_with(text, &index));
                    assert_eq!(fast, show(scan_with(text, &Swar)), "{text:?}");
                    indexed += 1;
                    accepted += usize::from(fast.is_some());
                }
            }
        }
        assert!(
            indexed > 20_000 && accepted > 10_000,
            "{indexed} {accepted}"
        );
    }
}
