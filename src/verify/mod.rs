//! `plc-verify`: recomputes everything an index claims and reports every
//! disagreement, naming the bundle and the field.
//!
//! Bundles are independent for every check but the chain and the order
//! across bundles, so worker threads check files in parallel and a final
//! fold over their small summaries checks the chain from genesis, the
//! order at each boundary, and the index's totals. The verifier never
//! stops at the first problem.
//!
//! It accepts what the other V1 implementations write: multi-frame files
//! with a skippable metadata frame (and a `compressed_size` that counts
//! only the data frames), a missing `parent` on bundle 1, and start/end
//! times with trailing zeros trimmed from the fraction. The index is read
//! with the same rules as every other tool ([`crate::index::parse`]), so
//! what they refuse, it reports. One bundle file is checked by
//! [`check_bundle`], which other tools receiving bundles use too.

mod bundle;
mod files;
mod report;

pub use bundle::{
    check_bundle, check_link, check_stored_file, scan_lines, BundleCheck, Edge, Link, Problem,
};

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, chain_hash, BundleEntry, ParsedIndex, INDEX_FILE};
use crate::progress::Progress;
use bundle::same_instant;
use report::{Reporter, Scope};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to verify.
pub struct VerifyConfig {
    /// The repository.
    pub repo: PathBuf,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Only the bundles in this inclusive range have their files checked
    /// (`None` = all); the index as a whole is always checked.
    pub range: Option<BundleRange>,
    /// Check only the stored files' hashes and sizes against the index and
    /// the chain of the index's hashes: no decompression.
    pub quick: bool,
    /// Write one JSON object per problem and a summary object instead of
    /// text lines.
    pub json: bool,
}

/// An inclusive range of bundle numbers; `end` `None` = to the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleRange {
    /// First bundle number (from 1).
    pub start: u64,
    /// Last bundle number, if bounded.
    pub end: Option<u64>,
}

impl BundleRange {
    /// Parses `N`, `N-M`, `N-` or `-M` (1-based, inclusive).
    pub fn parse(s: &str) -> std::result::Result<BundleRange, String> {
        let num = |t: &str| -> std::result::Result<u64, String> {
            t.parse::<u64>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("{s:?} is not a bundle range (N, N-M, N- or -M, from 1)"))
        };
        let r = match s.split_once('-') {
            None => BundleRange {
                start: num(s)?,
                end: Some(num(s)?),
            },
            Some(("", b)) => BundleRange {
                start: 1,
                end: Some(num(b)?),
            },
            Some((a, "")) => BundleRange {
                start: num(a)?,
                end: None,
            },
            Some((a, b)) => BundleRange {
                start: num(a)?,
                end: Some(num(b)?),
            },
        };
        if r.end.is_some_and(|e| e < r.start) {
            return Err(format!("{s:?}: the range ends before it starts"));
        }
        Ok(r)
    }

    fn contains(&self, n: u64) -> bool {
        n >= self.start && self.end.is_none_or(|e| n <= e)
    }
}

/// The outcome; problems and warnings were already written out.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Problems found (each makes the archive fail).
    pub problems: usize,
    /// Warnings (an interrupted seal, leftover temporary files).
    pub warnings: usize,
    /// Bundles in the index.
    pub bundles: u64,
    /// Operations counted in the files.
    pub operations: u64,
    /// The chain hash of the last bundle, as recomputed.
    pub head: Option<String>,
    /// Bundles whose files were checked.
    pub checked: u64,
}

/// Verifies `cfg.repo`, writing one line (or JSON object) per problem or
/// warning to `out`. Returns `Err` only when the repository cannot be read
/// at all. Progress (bundles checked so far) goes to `progress`. The
/// summary is written by [`write_summary`].
pub fn verify(
    cfg: &VerifyConfig,
    out: &mut dyn Write,
    progress: &mut Progress<'_>,
) -> Result<VerifyReport> {
    let dir = &cfg.repo;
    require_directory(dir)?;
    let index_path = dir.join(INDEX_FILE);
    let bytes = crate::repo::read_regular(&index_path, crate::repo::MAX_INDEX_BYTES)
        .ctx(|| format!("reading {}", index_path.display()))?;
    let mut rep = Reporter::new(out, cfg.json);
    let mut report = VerifyReport::default();
    let parsed = match crate::index::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            rep.problem(Scope::Index, "", e)?;
            return Ok(rep.finish(report));
        }
    };
    let entries = &parsed.index.bundles;
    report.bundles = entries.len() as u64;
    check_header(&parsed, &mut rep)?;
    check_numbering(entries, &mut rep)?;
    let selected = select(entries, cfg.range)?;
    let checks = files::check_files(dir, entries, &selected, cfg, progress);
    report.checked = selected.iter().filter(|&&s| s).count() as u64;
    let (head, operations) = fold(entries, &checks, &mut rep)?;
    report.head = head;
    report.operations = operations;
    check_totals(&parsed, &mut rep)?;
    check_directory(dir, entries.len() as u64, &mut rep)?;
    Ok(rep.finish(report))
}

/// Writes the verdict after [`verify`]: in text, `ok: N bundles, M
/// operations, head HASH` when there is no problem (nothing otherwise:
/// the problems were the output); in JSON, always one summary object
/// `{"ok", "bundles", "operations", "head", "problems", "warnings",
/// "checked", "quick"}`.
pub fn write_summary(cfg: &VerifyConfig, report: &VerifyReport, out: &mut dyn Write) -> Result<()> {
    report::write_summary(cfg, report, out).ctx(|| "writing output")
}

fn require_directory(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).ctx(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    Ok(())
}

/// `version` and `origin`.
fn check_header(parsed: &ParsedIndex, rep: &mut Reporter<'_>) -> Result<()> {
    let idx = &parsed.index;
    if idx.version != crate::index::VERSION {
        rep.problem(
            Scope::Index,
            "version",
            format_args!("expected \"1.0\", found {:?}", idx.version),
        )?;
    }
    if idx.origin.is_empty() {
        rep.problem(
            Scope::Index,
            "origin",
            "missing (every V1 index names its origin; plc-seal refuses to append without one)",
        )?;
    }
    Ok(())
}

/// Entries numbered 1, 2, ... in order.
fn check_numbering(entries: &[BundleEntry], rep: &mut Reporter<'_>) -> Result<()> {
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.bundle_number != expected {
            rep.problem(
                Scope::Bundle(expected),
                "bundle_number",
                format_args!(
                    "expected {expected} (no gaps, in order), found {}",
                    e.bundle_number
                ),
            )?;
        }
    }
    Ok(())
}

/// Which entries have their files checked (`--bundles`).
fn select(entries: &[BundleEntry], range: Option<BundleRange>) -> Result<Vec<bool>> {
    let selected: Vec<bool> = (1..=entries.len() as u64)
        .map(|n| range.is_none_or(|r| r.contains(n)))
        .collect();
    if let Some(r) = range {
        if !selected.iter().any(|&s| s) {
            return Err(Error::Usage(format!(
                "no bundle in the range {}-{} (the index holds {})",
                r.start,
                r.end.map_or(String::new(), |e| e.to_string()),
                entries.len()
            )));
        }
    }
    Ok(selected)
}

/// The fold over the bundles in order: each bundle's own problems, the
/// chain recomputed from genesis, `parent` and `cursor` links, and order
/// and repeats across each boundary. Returns the head and the operations
/// counted.
fn fold(
    entries: &[BundleEntry],
    checks: &[BundleCheck],
    rep: &mut Reporter<'_>,
) -> Result<(Option<String>, u64)> {
    let mut chain: Option<String> = None;
    let mut operations = 0;
    for (i, (e, check)) in entries.iter().zip(checks).enumerate() {
        let scope = Scope::Bundle(i as u64 + 1);
        for p in &check.problems {
            rep.problem(scope, &p.field, &p.message)?;
        }
        operations += check.operations;
        chain = Some(follow_chain(e, chain.as_deref(), check, scope, rep)?);
        let prev = i.checked_sub(1).map(|p| (&entries[p], &checks[p]));
        check_links(e, prev.map(|(p, _)| p), scope, rep)?;
        if let Some((_, prev_check)) = prev {
            check_boundary(prev_check, check, scope, rep)?;
        }
    }
    Ok((chain, operations))
}

/// The chain hash after `e`: recomputed from the content actually in
/// the file when it was read, else the index's claim. A break is
/// reported once, and the chain re-anchored on the index so that later
/// bundles are not all reported again.
fn follow_chain(
    e: &BundleEntry,
    parent: Option<&str>,
    check: &BundleCheck,
    scope: Scope,
    rep: &mut Reporter<'_>,
) -> Result<String> {
    let Some(content_hash) = &check.content_hash else {
        // Not checked (outside --bundles, --quick, or unreadable).
        return Ok(e.hash.clone());
    };
    let recomputed = chain_hash(parent, content_hash);
    if e.hash != recomputed {
        rep.problem(
            scope,
            "hash",
            format_args!(
                "chain broken: index says {}, recomputed from genesis {recomputed}",
                if e.hash.is_empty() {
                    "nothing"
                } else {
                    &e.hash
                }
            ),
        )?;
        if e.hash.is_empty() {
            return Ok(recomputed);
        }
    }
    Ok(e.hash.clone())
}

/// `parent` and `cursor` against the previous entry (empty for bundle 1,
/// where Go leaves `parent` out).
fn check_links(
    e: &BundleEntry,
    prev: Option<&BundleEntry>,
    scope: Scope,
    rep: &mut Reporter<'_>,
) -> Result<()> {
    let (want_parent, want_cursor) = prev.map_or(("", ""), |p| (&p.hash[..], &p.end_time[..]));
    if e.parent != want_parent {
        rep.problem(
            scope,
            "parent",
            format_args!(
                "expected {want_parent:?} (the previous bundle's hash), found {:?}",
                e.parent
            ),
        )?;
    }
    if e.cursor != want_cursor && !same_instant(&e.cursor, want_cursor) {
        rep.problem(
            scope,
            "cursor",
            format_args!(
                "expected {want_cursor:?} (the previous bundle's end_time), found {:?}",
                e.cursor
            ),
        )?;
    }
    Ok(())
}

/// Order and repeats across the boundary between two bundles.
fn check_boundary(
    prev: &BundleCheck,
    check: &BundleCheck,
    scope: Scope,
    rep: &mut Reporter<'_>,
) -> Result<()> {
    let (Some(last), Some(first)) = (&prev.last, &check.first) else {
        return Ok(());
    };
    let (Some(pt), Some(t)) = (last.time, first.time) else {
        return Ok(());
    };
    if t < pt {
        rep.problem(
            scope,
            "start_time",
            format_args!(
                "operations go backwards across bundles: first createdAt {} is before the previous bundle's last {}",
                first.text, last.text
            ),
        )?;
    } else if t == pt {
        let prev_cids: HashSet<&String> = last.cids.iter().collect();
        if let Some(c) = first.cids.iter().find(|c| prev_cids.contains(c)) {
            rep.problem(
                scope,
                "operations",
                format_args!(
                    "operation {c} at {} is also in the previous bundle",
                    first.text
                ),
            )?;
        }
    }
    Ok(())
}

/// `last_bundle` and the totals.
fn check_totals(parsed: &ParsedIndex, rep: &mut Reporter<'_>) -> Result<()> {
    let idx = &parsed.index;
    let n = idx.bundles.len() as u64;
    if idx.last_bundle != n {
        rep.problem(
            Scope::Index,
            "last_bundle",
            format_args!(
                "expected {n} (the number of bundles), found {}",
                idx.last_bundle
            ),
        )?;
    }
    let sum_c: u64 = idx.bundles.iter().map(|b| b.compressed_size).sum();
    if idx.total_size_bytes != sum_c {
        rep.problem(
            Scope::Index,
            "total_size_bytes",
            format_args!(
                "expected {sum_c} (the sum of compressed_size), found {}",
                idx.total_size_bytes
            ),
        )?;
    }
    let sum_u: u64 = idx.bundles.iter().map(|b| b.uncompressed_size).sum();
    // The Python reference does not write it.
    if parsed.has_uncompressed_total && idx.total_uncompressed_size_bytes != sum_u {
        rep.problem(
            Scope::Index,
            "total_uncompressed_size_bytes",
            format_args!(
                "expected {sum_u} (the sum of uncompressed_size), found {}",
                idx.total_uncompressed_size_bytes
            ),
        )?;
    }
    Ok(())
}

/// Files the index does not name: a contiguous run `last_bundle + 1`,
/// `+ 2`, ... is an interrupted seal (plc-seal writes the index after the
/// bundles it names, at most once a second: a warning each); any other
/// file named like a bundle (any number of
/// digits, `0000002.jsonl.zst` beside `000002.jsonl.zst` included) is a
/// problem.
fn check_directory(dir: &Path, last: u64, rep: &mut Reporter<'_>) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let mut interrupted = last;
    for name in names {
        let digits = name
            .strip_suffix(".jsonl.zst")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if let Some(digits) = digits {
            let n = digits.parse::<u64>().ok();
            let canonical = n.is_some_and(|n| bundle_file_name(n) == name);
            match n {
                Some(n) if canonical && (1..=last).contains(&n) => {}
                Some(n) if canonical && n == interrupted + 1 => {
                    interrupted = n;
                    rep.warning(
                        Scope::Bundle(n),
                        "file",
                        format_args!(
                            "{name} is not in the index: an interrupted seal; the next plc-seal run removes it"
                        ),
                    )?
                }
                Some(n) if canonical && n > 0 => rep.problem(
                    Scope::Bundle(n),
                    "file",
                    format_args!("{name} is not in the index (last_bundle is {last})"),
                )?,
                _ => rep.problem(
                    Scope::Directory,
                    "file",
                    format_args!(
                        "{name} is named like a bundle but is not one of the index's (bundle files are named %06d.jsonl.zst, 1 to last_bundle {last})"
                    ),
                )?,
            }
        } else if crate::repo::is_our_tmp(&name) {
            rep.warning(
                Scope::Directory,
                "file",
                format_args!(
                    "{name} is a temporary file left by an interrupted writer; the next plc-seal run removes it"
                ),
            )?;
        }
    }
    Ok(())
}
