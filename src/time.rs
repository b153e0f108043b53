//! Timestamps without a date crate.
//!
//! The tools need four things from time: parse an operation's `createdAt`
//! (RFC 3339) into something ordered, format a millisecond instant the way
//! the directory writes it (for the `after` parameter), read an HTTP `Date`
//! or `Retry-After` header, and stamp the index with the current UTC time.
//! That is a few dozen lines of civil-calendar arithmetic, so it lives here
//! instead of pulling in a date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, in nanoseconds since the Unix epoch (UTC).
///
/// Ordering compares instants, so `12:00:00.1Z` and `12:00:00.100Z` are
/// equal even though their text differs. The count is an `i128`: an
/// `i64` of nanoseconds ends in 1677 and 2262, and every RFC 3339
/// timestamp (years 0000 to 9999) must parse, or a valid createdAt would be
/// refused as "not an RFC 3339 timestamp".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i128);

const NANOS_PER_MS: i128 = 1_000_000;
const NANOS_PER_SEC: i128 = 1_000_000_000;

impl Timestamp {
    /// The instant `ms` milliseconds after the epoch.
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(i128::from(ms) * NANOS_PER_MS)
    }

    /// Nanoseconds since the epoch, saturated to the `i64` range (years
    /// 1677 to 2262); for durations between instants near now.
    pub fn nanos(self) -> i64 {
        self.0.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whole milliseconds since the epoch (rounded towards minus infinity;
    /// every four-digit year fits).
    pub fn millis(self) -> i64 {
        self.0.div_euclid(NANOS_PER_MS) as i64
    }

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        system_time(SystemTime::now())
    }

    /// This instant moved by `d` into the past.
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(d.as_nanos().min(i128::MAX as u128) as i128),
        )
    }

    /// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    ///
    /// The separator may be `T` or `t`, the zone `Z` or `z`; at most nine
    /// fractional digits are accepted. Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Timestamp> {
        match Timestamp::parse_millis_z(s.as_bytes()) {
            Some(t) => t,
            None => Timestamp::parse_any(s),
        }
    }

    /// The shape every operation's createdAt has,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, read without loops: `Some(result)` for
    /// a string of that shape (the result being what [`Timestamp::parse`]
    /// gives), `None` for any other shape. Every tool parses one per
    /// operation, and the general parser cost about a tenth of a line's
    /// checks.
    #[inline]
    fn parse_millis_z(b: &[u8]) -> Option<Option<Timestamp>> {
        let b: &[u8; 24] = b.try_into().ok()?;
        if b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[23] != b'Z'
        {
            return None;
        }
        const DIGITS: [usize; 17] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
        let mut d = [0i64; 24];
        let mut bad = 0u8;
        for k in DIGITS {
            let v = b[k].wrapping_sub(b'0');
            bad |= u8::from(v > 9);
            d[k] = i64::from(v);
        }
        if bad != 0 {
            return Some(None);
        }
        let year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
        let month = d[5] * 10 + d[6];
        let day = d[8] * 10 + d[9];
        let (hour, minute, second) = (d[11] * 10 + d[12], d[14] * 10 + d[15], d[17] * 10 + d[18]);
        let millis = d[20] * 100 + d[21] * 10 + d[22];
        if !fields_in_range(year, month, day, hour, minute, second) {
            return Some(None);
        }
        let secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
        Some(Some(Timestamp(
            i128::from(secs) * NANOS_PER_SEC + i128::from(millis) * NANOS_PER_MS,
        )))
    }

    /// [`Timestamp::parse`] for any shape it accepts.
    fn parse_any(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let hour = digits(&b[11..13])?;
        let minute = digits(&b[14..16])?;
        let second = digits(&b[17..19])?;
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if !fields_in_range(year, month, day, hour, minute, second) {
            return None;
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n = i - start;
            if n == 0 || n > 9 {
                return None;
            }
            nanos = digits(&b[start..i])? * 10i64.pow(9 - n as u32);
        }
        let offset_secs = match &b[i..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let h = digits(&[*h1, *h2])?;
                let m = digits(&[*m1, *m2])?;
                if h > 23 || m > 59 {
                    return None;
                }
                let off = h * 3600 + m * 60;
                if *sign == b'+' {
                    off
                } else {
                    -off
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_secs;
        Some(Timestamp(
            i128::from(secs) * NANOS_PER_SEC + i128::from(nanos),
        ))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the directory's own shape
    /// (sub-millisecond digits are dropped).
    pub fn format_millis(self) -> String {
        let ms = self.millis();
        let (date, secs_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let (y, m, d) = civil_from_days(date);
        let (h, mi, s, frac) = (
            secs_of_day / 3_600_000,
            secs_of_day / 60_000 % 60,
            secs_of_day / 1000 % 60,
            secs_of_day % 1000,
        );
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` with trailing zeros of the
    /// fraction removed (whole seconds print without a fraction); used for
    /// the index's `updated_at` and `created_at`.
    pub fn format_rfc3339(self) -> String {
        let secs = self.0.div_euclid(NANOS_PER_SEC) as i64;
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let (y, m, d) = civil_from_days(secs.div_euclid(86400));
        let sod = secs.rem_euclid(86400);
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, the IMF-fixdate
    /// form every current server sends). Returns `None` for other forms.
    pub fn parse_http_date(s: &str) -> Option<Timestamp> {
        let parts: Vec<&str> = s.split_ascii_whitespace().collect();
        let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
            return None;
        };
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
        let iso = format!("{year:0>4}-{month:02}-{day:0>2}T{time}Z");
        Timestamp::parse(&iso)
    }
}

/// [`Timestamp::parse`] for a run of timestamps that mostly share their
/// minute (a bundle's createdAt values): a string of the usual shape
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` whose first 16 bytes are those of the last
/// one parsed in full only has its seconds and milliseconds read.
#[derive(Default)]
pub struct MinuteCache {
    prefix: [u8; 16],
    /// The instant of `prefix` at second 0, once a string was parsed.
    base: Option<Timestamp>,
}

impl MinuteCache {
    /// What [`Timestamp::parse`] gives for `s`.
    pub fn parse(&mut self, s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        let tail = Self::tail(b);
        if let (Some(base), Some(offset)) = (self.base, tail) {
            if b[..16] == self.prefix {
                return Some(Timestamp(base.0 + offset));
            }
        }
        let t = Timestamp::parse(s)?;
        if let Some(offset) = tail {
            self.prefix.copy_from_slice(&b[..16]);
            self.base = Some(Timestamp(t.0 - offset));
        }
        Some(t)
    }

    /// For a 24-byte string ending `:SS.mmmZ` with seconds in range (at
    /// most 60, as [`Timestamp::parse`] allows), those seconds and
    /// milliseconds in nanoseconds.
    #[inline]
    fn tail(b: &[u8]) -> Option<i128> {
        let b: &[u8; 24] = b.try_into().ok()?;
        if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
            return None;
        }
        let mut v = [0i128; 5];
        for (slot, &i) in v.iter_mut().zip(&[17, 18, 20, 21, 22]) {
            let d = b[i].wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            *slot = i128::from(d);
        }
        let second = v[0] * 10 + v[1];
        (second <= 60)
            .then(|| second * NANOS_PER_SEC + (v[2] * 100 + v[3] * 10 + v[4]) * NANOS_PER_MS)
    }
}

/// Converts a `SystemTime` to a [`Timestamp`].
pub fn system_time(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(d.as_nanos() as i128),
        Err(e) => Timestamp(-(e.duration().as_nanos() as i128)),
    }
}

/// Parses a duration such as `60s`, `5m`, `1h`, `250ms`, `2d` or a bare
/// number of seconds (`90`, `1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 60s, 5m, 1h)"))?;
    let factor = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m, h or d)"
            ))
        }
    };
    let secs = value * factor;
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// A real calendar day and a time of day (a leap second allowed).
fn fields_in_range(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> bool {
    (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 60
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_minute_cache_parses_as_the_parser_does() {
        // Runs of stamps sharing a minute, their one-byte changes in the
        // tail (digits out of range, separators, a lower-case z, seconds
        // 59 to 99), other lengths, and a change of minute, day or shape
        // between them: each must get Timestamp::parse's answer.
        let mut cache = MinuteCache::default();
        let mut seen = 0;
        for prefix in [
            "2024-01-01T00:00",
            "2024-01-01T00:01",
            "2024-02-29T23:59",
            "2023-02-29T23:59",
            "2024-01-01t00:00",
            "2024-12-31T23:59",
            "2024-01-01T00:00",
        ] {
            for tail in [
                ":00.000Z",
                ":59.999Z",
                ":60.000Z",
                ":61.000Z",
                ":99.000Z",
                ":0a.000Z",
                ":00.00aZ",
                ":00.000z",
                ":00,000Z",
                ";00.000Z",
                ":00.0000",
                ":00.00Z",
                ":00.0000Z",
                ":07.123Z",
                ":07.123+00:00",
                "Z",
                ":",
            ] {
                for s in [format!("{prefix}{tail}"), format!("{prefix}{tail}")] {
                    assert_eq!(cache.parse(&s), Timestamp::parse(&s), "{s}");
                    seen += usize::from(Timestamp::parse(&s).is_some());
                }
            }
        }
        assert!(seen > 50, "{seen}");
    }
    use super::*;

    #[test]
    fn every_four_digit_year_parses_in_order_and_formats_back() {
        // Outside 1677-2262 an i64 of nanoseconds overflows; such stamps
        // are valid RFC 3339 all the same.
        let texts = [
            "0000-01-01T00:00:00.000Z",
            "1600-02-29T12:00:00.000Z",
            "1677-09-21T00:12:43.145Z",
            "2262-04-11T23:47:16.855Z",
            "2300-01-01T00:00:00.001Z",
            "9999-12-31T23:59:59.999Z",
        ];
        let parsed: Vec<Timestamp> = texts
            .iter()
            .map(|t| Timestamp::parse(t).unwrap_or_else(|| panic!("{t} refused")))
            .collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]));
        for (t, p) in texts.iter().zip(&parsed) {
            assert_eq!(p.format_millis(), *t);
        }
        // The general parser agrees, offsets included.
        assert_eq!(
            Timestamp::parse("2300-01-01T01:00:00.001+01:00"),
            Some(parsed[4])
        );
        // From Python: (datetime(2300,1,1,0,0,0,1000,utc) - epoch) in ms.
        assert_eq!(parsed[4].millis(), 10_413_792_000_001);
        assert_eq!(parsed[4].nanos(), i64::MAX);
    }

    #[test]
    fn the_fast_shape_parses_as_the_general_parser_does() {
        // Valid stamps over the whole range of years (leap days, the last
        // second of a year, years that overflow nanoseconds), and every
        // one-byte change of them to a byte that matters.
        let mut stamps = Vec::new();
        for year in [
            0, 1, 4, 100, 400, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 2262, 2263, 9999,
        ] {
            for (m, d) in [
                (1, 1),
                (2, 28),
                (2, 29),
                (2, 30),
                (4, 31),
                (12, 31),
                (0, 1),
                (13, 1),
                (1, 0),
                (1, 32),
            ] {
                for (h, mi, s, ms) in [
                    (0, 0, 0, 0),
                    (23, 59, 59, 999),
                    (23, 59, 60, 5),
                    (24, 0, 0, 0),
                    (0, 60, 0, 0),
                    (0, 0, 61, 0),
                ] {
                    stamps.push(format!(
                        "{year:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"
                    ));
                }
            }
        }
        let mut checked = 0;
        for s in &stamps {
            assert_eq!(s.len(), 24);
            assert!(Timestamp::parse_millis_z(s.as_bytes()).is_some(), "{s}");
            assert_eq!(Timestamp::parse(s), Timestamp::parse_any(s), "{s}");
            for pos in 0..24 {
                for byte in *b"0159:-.TtZz +/a\x00\xff" {
                    let mut m = s.as_bytes().to_vec();
                    m[pos] = byte;
                    let Ok(m) = String::from_utf8(m) else {
                        continue;
                    };
                    assert_eq!(Timestamp::parse(&m), Timestamp::parse_any(&m), "{m}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
        let valid = stamps
            .iter()
            .filter(|s| Timestamp::parse(s).is_some())
            .count();
        assert!(valid > 50, "only {valid} of {} are valid", stamps.len());
    }

    #[test]
    fn parses_directory_timestamps_and_round_trips() {
        let t = Timestamp::parse("2024-05-01T12:34:56.789Z").unwrap();
        assert_eq!(t.millis(), 1_714_566_896_789);
        assert_eq!(t.format_millis(), "2024-05-01T12:34:56.789Z");
        assert_eq!(
            Timestamp::parse("2024-05-01T12:34:56.78Z")
                .unwrap()
                .millis(),
            1_714_566_896_780
        );
        assert_eq!(
            Timestamp::parse("2024-05-01T14:34:56.789+02:00").unwrap(),
            t
        );
        assert_eq!(
            Timestamp::from_millis(0).format_millis(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rejects_non_timestamps() {
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-05-01 12:34:56Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56.789",
            "2024-05-01T12:34:56.789Zjunk",
            "2024-05-01T12:34:56.1234567890Z",
            "+024-05-01T12:34:56Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn http_dates_and_durations() {
        let t = Timestamp::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t, Timestamp::parse("1994-11-06T08:49:37Z").unwrap());
        assert_eq!(
            Timestamp::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            None
        );
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn rfc3339_output_trims_fraction() {
        let t = Timestamp::parse("2026-11-24T10:00:00.120Z").unwrap();
        assert_eq!(t.format_rfc3339(), "2026-11-24T10:00:00.12Z");
        let t = Timestamp::parse("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(t.format_rfc3339(), "2026-11-24T10:00:00Z");
    }
}
