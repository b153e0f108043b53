//! `plc-diff`: where two archives' chains part, and why, operation by
//! operation.
//!
//! Chain hashes make the first question cheap: the two indexes alone say
//! whether one chain is a prefix of the other and, if not, the first
//! bundle whose `hash` differs. Only that bundle is then read from each
//! side (and checked against its own index), and its operations are
//! matched by CID: an operation is only in one archive, or in both with
//! other bytes. For the latter the top-level fields whose JSON values
//! differ are named (`nullified` flipped within its 72 hours, say); none
//! are when only the writing differs (key order, escapes, spacing), as
//! after the directory changed its key order in December 2025.

use crate::error::{Error, IoContext, Result};
use crate::line::parse_op;
use crate::source::Source;
use crate::time::Timestamp;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;

/// How one operation differs between the two archives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only the first archive holds it.
    OnlyInA,
    /// Only the second archive holds it.
    OnlyInB,
    /// Both hold it, with other bytes.
    Changed,
}

impl Kind {
    /// The name used in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::OnlyInA => "only-in-a",
            Kind::OnlyInB => "only-in-b",
            Kind::Changed => "changed",
        }
    }
}

/// One differing operation of the bundle where the chains part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpDiff {
    /// What kind of difference.
    pub kind: Kind,
    /// The operation's CID.
    pub cid: String,
    /// Its DID.
    pub did: String,
    /// Its createdAt.
    pub created_at: String,
    /// For [`Kind::Changed`]: the top-level fields whose values differ
    /// (empty when only the bytes differ).
    pub fields: Vec<String>,
}

/// The answer.
#[derive(Debug)]
pub enum Verdict {
    /// Both chains are the same (as far as both go, and equally long).
    Equal,
    /// One chain is a prefix of the other.
    Prefix,
    /// The chains part at `bundle`.
    Differ {
        /// The first bundle whose hash differs.
        bundle: u64,
        /// The operations that differ in it, by createdAt.
        ops: Vec<OpDiff>,
        /// Operations in that bundle on each side.
        counts: (u64, u64),
    },
}

/// Compares `a` and `b`: reads their indexes (already loaded) and, when
/// the chains part, the two bundles where they do.
pub fn diff(a: &Source, b: &Source) -> Result<Verdict> {
    let (ia, ib) = (&a.index.bundles, &b.index.bundles);
    let Some(k) = crate::clone::first_difference(ia, ib) else {
        return Ok(if ia.len() == ib.len() {
            Verdict::Equal
        } else {
            Verdict::Prefix
        });
    };
    let ca = read_checked(a, k)?;
    let cb = read_checked(b, k)?;
    let ops_a = ops_of(&ca, a, k)?;
    let ops_b = ops_of(&cb, b, k)?;
    Ok(Verdict::Differ {
        bundle: k,
        counts: (ops_a.len() as u64, ops_b.len() as u64),
        ops: compare(&ops_a, &ops_b),
    })
}

/// Bundle `k` of `src`, checked against `src`'s index.
fn read_checked(src: &Source, k: u64) -> Result<Vec<u8>> {
    let fail = |p: String| Error::Archive(format!("{}: bundle {k:06}: {p}", src.describe()));
    let file = src.bundle_file(k)?.map_err(fail)?;
    let entry = &src.index.bundles[k as usize - 1];
    let mut content = Vec::new();
    let check =
        crate::verify::check_bundle(entry, &file, crate::verify::Link::Unchecked, &mut content);
    match check.problems.first() {
        None => Ok(content),
        Some(p) => Err(fail(p.to_string())),
    }
}

/// One operation line and what it is matched and sorted by.
struct Line<'a> {
    bytes: &'a [u8],
    cid: String,
    did: String,
    created_at: String,
    time: Timestamp,
}

fn ops_of<'a>(content: &'a [u8], src: &Source, k: u64) -> Result<Vec<Line<'a>>> {
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    crate::line::split_lines(body)
        .enumerate()
        .map(|(i, bytes)| {
            let op = parse_op(bytes).map_err(|r| {
                Error::Archive(format!(
                    "{}: bundle {k:06}: operation {}: {r}",
                    src.describe(),
                    i + 1
                ))
            })?;
            Ok(Line {
                bytes,
                cid: op.cid.into_owned(),
                did: op.did.into_owned(),
                created_at: op.created_at.into_owned(),
                time: op.time,
            })
        })
        .collect()
}

/// Matches two bundles' operations by CID.
fn compare(a: &[Line<'_>], b: &[Line<'_>]) -> Vec<OpDiff> {
    let by_cid = |ops: &[Line<'_>]| -> HashMap<String, usize> {
        ops.iter()
            .enumerate()
            .map(|(i, l)| (l.cid.clone(), i))
            .collect()
    };
    let (in_a, in_b) = (by_cid(a), by_cid(b));
    let mut out: Vec<(Timestamp, OpDiff)> = Vec::new();
    let mut push = |l: &Line<'_>, kind, fields| {
        out.push((
            l.time,
            OpDiff {
                kind,
                cid: l.cid.clone(),
                did: l.did.clone(),
                created_at: l.created_at.clone(),
                fields,
            },
        ))
    };
    for l in a {
        match in_b.get(&l.cid) {
            None => push(l, Kind::OnlyInA, Vec::new()),
            Some(&j) if b[j].bytes != l.bytes => {
                push(l, Kind::Changed, changed_fields(l.bytes, b[j].bytes))
            }
            Some(_) => {}
        }
    }
    for l in b {
        if !in_a.contains_key(&l.cid) {
            push(l, Kind::OnlyInB, Vec::new());
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, d)| d).collect()
}

/// The top-level fields whose JSON values differ between two lines, in
/// the order they first appear (a field missing on one side differs).
fn changed_fields(a: &[u8], b: &[u8]) -> Vec<String> {
    let obj = |bytes: &[u8]| match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    let (Some(ma), Some(mb)) = (obj(a), obj(b)) else {
        return Vec::new();
    };
    // serde_json's map is sorted, so key order is taken from the bytes.
    let mut keys: Vec<String> = Vec::new();
    for bytes in [a, b] {
        let order: Vec<String> = top_level_keys(bytes);
        for k in order {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys.into_iter()
        .filter(|k| ma.get(k) != mb.get(k))
        .collect()
}

/// The top-level keys of a JSON object line, in the order written.
fn top_level_keys(bytes: &[u8]) -> Vec<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<M: MapAccess<'de>>(
            self,
            mut m: M,
        ) -> std::result::Result<Vec<String>, M::Error> {
            let mut keys = Vec::new();
            while let Some(k) = m.next_key::<String>()? {
                m.next_value::<IgnoredAny>()?;
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(Keys).unwrap_or_default()
}

/// Writes the verdict for people: one line saying equal, prefix or where
/// the chains part, then one line per differing operation.
pub fn write_human(v: &Verdict, a: &Source, b: &Source, out: &mut dyn Write) -> Result<()> {
    let (na, nb) = (a.index.bundles.len(), b.index.bundles.len());
    let (da, db) = (a.describe(), b.describe());
    let head = |s: &Source, n: usize| {
        s.index.bundles[..n]
            .last()
            .map_or("(none)".to_string(), |e| e.hash.clone())
    };
    let text = match v {
        Verdict::Equal => format!(
            "same: A {da} and B {db} both hold {na} bundles, head {}\n",
            head(a, na)
        ),
        Verdict::Prefix => {
            let (short, long, ns, nl) = if na < nb {
                ("A", "B", na, nb)
            } else {
                ("B", "A", nb, na)
            };
            format!(
                "prefix: A {da} holds {na} bundles, B {db} holds {nb}; {short} is a prefix of {long}: they agree up to bundle {ns} (head {}), {long} goes on to bundle {nl}\n",
                head(a, ns)
            )
        }
        Verdict::Differ {
            bundle,
            ops,
            counts,
        } => {
            let k = *bundle as usize;
            let mut t = format!(
                "differ: A {da} ({na} bundles) and B {db} ({nb} bundles) part at bundle {bundle}\n\
                 \x20 A's hash {}\n\x20 B's hash {}\n",
                a.index.bundles[k - 1].hash,
                b.index.bundles[k - 1].hash
            );
            t += &format!(
                "bundle {bundle}: {} operation{} differ (A holds {}, B {})\n",
                ops.len(),
                if ops.len() == 1 { "" } else { "s" },
                counts.0,
                counts.1
            );
            for d in ops {
                let what = match d.kind {
                    Kind::OnlyInA => "only in A".to_string(),
                    Kind::OnlyInB => "only in B".to_string(),
                    Kind::Changed if d.fields.is_empty() => {
                        "changed: same values, other bytes (key order, escapes or spacing)"
                            .to_string()
                    }
                    Kind::Changed => format!("changed: {}", d.fields.join(", ")),
                };
                t += &format!("  {} {} {}  {what}\n", d.created_at, d.cid, d.did);
            }
            t
        }
    };
    out.write_all(text.as_bytes()).ctx(|| "writing output")
}

/// Writes one JSON object per differing operation (nothing when the
/// chains agree).
pub fn write_json(v: &Verdict, out: &mut dyn Write) -> Result<()> {
    let Verdict::Differ { bundle, ops, .. } = v else {
        return Ok(());
    };
    let s = |x: &str| Value::String(x.to_string()).to_string();
    for d in ops {
        let fields = if d.kind == Kind::Changed {
            format!(
                ",\"fields\":[{}]",
                d.fields.iter().map(|f| s(f)).collect::<Vec<_>>().join(",")
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{{\"bundle\":{bundle},\"cid\":{},\"kind\":\"{}\"{fields},\"did\":{},\"createdAt\":{}}}",
            s(&d.cid),
            d.kind.name(),
            s(&d.did),
            s(&d.created_at)
        )
        .ctx(|| "writing output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_compared_by_value_not_by_bytes() {
        let a = br#"{"did":"d","cid":"c","nullified":false,"operation":{"x":1,"y":"\u00e9"}}"#;
        let reordered = r#"{"cid":"c", "did":"d","operation":{"y":"é","x":1},"nullified":false}"#;
        let reordered = reordered.as_bytes();
        assert_eq!(changed_fields(a, reordered), Vec::<String>::new());
        let flipped = br#"{"did":"d","cid":"c","nullified":true,"operation":{"x":1,"y":"\u00e9"}}"#;
        assert_eq!(changed_fields(a, flipped), vec!["nullified".to_string()]);
        let extra =
            br#"{"did":"d","cid":"c","nullified":false,"operation":{"x":2,"y":"\u00e9"},"z":0}"#;
        assert_eq!(
            changed_fields(a, extra),
            vec!["operation".to_string(), "z".to_string()]
        );
    }
}
