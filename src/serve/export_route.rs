//! `GET /export`: the official directory's timestamp mode, answered from
//! the sealed bundles.
//!
//! Operations strictly after `after`, in archive order, at most 1000,
//! lines joined by `\n` without a trailing one. The start is found by a
//! binary search over the index's end times and then over the bundle's
//! lines, never by scanning the archive. The page is described as spans
//! of bundles (lines follow one another in a bundle, so a page is one
//! span, or two when it crosses into the next bundle) that the body sends
//! piece by piece.

use super::archive::{Archive, Loaded};
use super::body::Span;
use crate::time::Timestamp;

/// The most operations one `/export` response holds (the directory's cap).
pub const MAX_COUNT: usize = 1000;

/// The spans of `/export?query`'s body, or an HTTP status and message.
pub fn page(
    archive: &Archive,
    index: &Loaded,
    query: &str,
) -> std::result::Result<Vec<Span>, (u16, String)> {
    let (count, after) = parse_export_query(query)?;
    let first = match after {
        None => 0,
        Some(a) => index.bundles.partition_point(|(_, _, end)| *end <= a),
    };
    let mut spans = Vec::new();
    let mut served = 0;
    for (number, hash, _) in &index.bundles[first..] {
        if served == count {
            break;
        }
        let b = archive
            .bundle(*number, hash)
            .map_err(|e| (500, e.to_string()))?;
        let start = match after {
            None => 0,
            Some(a) => b
                .first_after(a)
                .map_err(|r| (500, format!("bundle {number}: {r}")))?,
        };
        let take = (count - served).min(b.lines.len() - start);
        if take > 0 {
            if !spans.is_empty() {
                spans.push(Span::Newline);
            }
            spans.push(Span::Bundle {
                number: *number,
                hash: hash.clone(),
                start: b.lines[start].0,
                end: b.lines[start + take - 1].1,
            });
            served += take;
        }
    }
    Ok(spans)
}

/// `count` (default and cap [`MAX_COUNT`]) and `after` of a query.
fn parse_export_query(
    query: &str,
) -> std::result::Result<(usize, Option<Timestamp>), (u16, String)> {
    let mut count = MAX_COUNT;
    let mut after: Option<Timestamp> = None;
    for (k, v) in parse_query(query) {
        match k.as_str() {
            "count" => {
                count = match v.parse::<i64>() {
                    Ok(n) if n > 0 => (n as usize).min(MAX_COUNT),
                    _ => {
                        return Err((
                            400,
                            format!("invalid count {v:?}: a positive integer is expected"),
                        ))
                    }
                }
            }
            "after" if v.is_empty() => after = None,
            "after" if v.bytes().all(|b| b.is_ascii_digit()) => {
                return Err((
                    400,
                    "sequence numbers are not served: `after` must be a timestamp".into(),
                ))
            }
            "after" => match Timestamp::parse(&v) {
                Some(t) => after = Some(t),
                None => {
                    return Err((
                        400,
                        format!("invalid after {v:?}: an RFC 3339 timestamp is expected"),
                    ))
                }
            },
            _ => {}
        }
    }
    Ok((count, after))
}

/// Splits and percent-decodes a query string (`+` is a space).
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_decoded() {
        assert_eq!(
            parse_query("count=5&after=2024-05-01T12%3A34%3A56.788Z"),
            vec![
                ("count".to_string(), "5".to_string()),
                ("after".to_string(), "2024-05-01T12:34:56.788Z".to_string())
            ]
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }
}
