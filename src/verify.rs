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
//! times with trailing zeros trimmed from the fraction.

use crate::error::{Error, IoContext, Result};
use crate::index::{bundle_file_name, chain_hash, parse_bundle_file_name, sha256_hex, INDEX_FILE};
use crate::line::{parse_op, Seen, Sequencer};
use crate::progress::{human, Progress};
use crate::repo::decompress_hashed;
use crate::time::Timestamp;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// Writes problem and warning lines to `out`.
struct Reporter<'a> {
    out: &'a mut dyn Write,
    problems: usize,
    warnings: usize,
}

impl Reporter<'_> {
    fn problem(&mut self, what: &str, msg: impl std::fmt::Display) -> Result<()> {
        self.problems += 1;
        writeln!(self.out, "{what}: {msg}").ctx(|| "writing report")
    }
    fn warning(&mut self, msg: impl std::fmt::Display) -> Result<()> {
        self.warnings += 1;
        writeln!(self.out, "warning: {msg}").ctx(|| "writing report")
    }
}

/// Summary of one bundle file, computed by a worker.
#[derive(Default)]
struct FileCheck {
    problems: Vec<String>,
    content_hash: Option<String>,
    operations: u64,
    first: Option<(Timestamp, String)>,
    first_cids: Vec<String>,
    last: Option<(Timestamp, String)>,
    last_cids: Vec<String>,
}

/// The fields of one index entry a file is checked against.
struct Claimed {
    number: u64,
    compressed_hash: Option<String>,
    compressed_size: Option<u64>,
    content_hash: Option<String>,
    uncompressed_size: Option<u64>,
    operation_count: Option<u64>,
    did_count: Option<u64>,
    start_time: Option<String>,
    end_time: Option<String>,
}

/// Verifies `cfg.repo`, writing one line per problem or warning to `out`.
/// Returns `Err` only when the repository cannot be read at all. Progress
/// (bundles checked so far) goes to `progress`.
pub fn verify(
    cfg: &VerifyConfig,
    out: &mut dyn Write,
    progress: &mut Progress<'_>,
) -> Result<VerifyReport> {
    let dir = &cfg.repo;
    let meta = std::fs::metadata(dir).ctx(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let index_path = dir.join(INDEX_FILE);
    let bytes = std::fs::read(&index_path).ctx(|| format!("reading {}", index_path.display()))?;
    let mut rep = Reporter {
        out,
        problems: 0,
        warnings: 0,
    };
    let mut report = VerifyReport::default();
    let index: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            rep.problem("index", "not a JSON object")?;
            return Ok(finish(rep, report));
        }
        Err(e) => {
            rep.problem("index", format_args!("not valid JSON: {e}"))?;
            return Ok(finish(rep, report));
        }
    };

    match index.get("version").and_then(Value::as_str) {
        Some("1.0") => {}
        other => rep.problem(
            "index: version",
            format_args!("expected \"1.0\", found {other:?}"),
        )?,
    }
    match index.get("origin").and_then(Value::as_str) {
        Some(o) if !o.is_empty() => {}
        _ => rep.problem("index: origin", "missing (every V1 index names its origin)")?,
    }
    let empty = Vec::new();
    let entries = match index.get("bundles") {
        Some(Value::Array(a)) => a,
        _ => {
            rep.problem("index: bundles", "missing or not an array")?;
            &empty
        }
    };
    report.bundles = entries.len() as u64;

    // Claims per entry; numbering is checked here, files by the workers.
    let mut claims = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        let label = format!("bundle {expected:06}");
        let number = e.get("bundle_number").and_then(Value::as_u64);
        if number != Some(expected) {
            rep.problem(
                &format!("{label}: bundle_number"),
                format_args!(
                    "expected {expected} (no gaps, in order), found {}",
                    show(e.get("bundle_number"))
                ),
            )?;
        }
        claims.push(Claimed {
            number: expected,
            compressed_hash: str_field(e, "compressed_hash"),
            compressed_size: e.get("compressed_size").and_then(Value::as_u64),
            content_hash: str_field(e, "content_hash"),
            uncompressed_size: e.get("uncompressed_size").and_then(Value::as_u64),
            operation_count: e.get("operation_count").and_then(Value::as_u64),
            did_count: e.get("did_count").and_then(Value::as_u64),
            start_time: str_field(e, "start_time"),
            end_time: str_field(e, "end_time"),
        });
    }

    let selected: Vec<bool> = claims
        .iter()
        .map(|c| cfg.range.is_none_or(|r| r.contains(c.number)))
        .collect();
    if let Some(r) = cfg.range {
        if !selected.iter().any(|&s| s) {
            return Err(Error::Usage(format!(
                "no bundle in the range {}-{} (the index holds {})",
                r.start,
                r.end.map_or(String::new(), |e| e.to_string()),
                claims.len()
            )));
        }
    }
    let checks = check_files(dir, &claims, &selected, cfg, progress);
    report.checked = selected.iter().filter(|&&s| s).count() as u64;

    // The fold: per-bundle findings, chain from genesis, order across
    // bundles, parent and cursor links.
    let mut expected_chain: Option<String> = None;
    let mut prev_entry: Option<&Value> = None;
    let mut prev_check: Option<&FileCheck> = None;
    for ((e, claim), check) in entries.iter().zip(&claims).zip(&checks) {
        let label = format!("bundle {:06}", claim.number);
        for p in &check.problems {
            rep.problem(&label, p)?;
        }
        report.operations += check.operations;
        let stored_hash = str_field(e, "hash");
        // Recompute the chain from the content actually in the file.
        if let Some(content_hash) = &check.content_hash {
            let recomputed = chain_hash(expected_chain.as_deref(), content_hash);
            match &stored_hash {
                Some(h) if *h == recomputed => expected_chain = Some(recomputed),
                other => {
                    rep.problem(
                        &format!("{label}: hash"),
                        format_args!(
                            "chain broken: index says {}, recomputed from genesis {recomputed}",
                            other.as_deref().unwrap_or("nothing")
                        ),
                    )?;
                    // Re-anchor on the index so that one break is reported
                    // once, not again for every later bundle.
                    expected_chain = other.clone().or(Some(recomputed));
                }
            }
        } else {
            // Not checked (outside --bundles) or unreadable: carry on from
            // the index's claim.
            expected_chain = stored_hash.clone();
        }
        // parent and cursor
        let (want_parent, want_cursor) = match prev_entry {
            None => (String::new(), String::new()),
            Some(p) => (
                str_field(p, "hash").unwrap_or_default(),
                str_field(p, "end_time").unwrap_or_default(),
            ),
        };
        let parent = e.get("parent").and_then(Value::as_str);
        let parent_ok = match parent {
            Some(p) => p == want_parent,
            None => prev_entry.is_none(), // Go omits it on bundle 1
        };
        if !parent_ok {
            rep.problem(
                &format!("{label}: parent"),
                format_args!(
                    "expected {want_parent:?} (the previous bundle's hash), found {}",
                    show(e.get("parent"))
                ),
            )?;
        }
        let cursor = e.get("cursor").and_then(Value::as_str);
        let cursor_ok = match cursor {
            Some(c) => c == want_cursor || same_instant(c, &want_cursor),
            None => prev_entry.is_none(),
        };
        if !cursor_ok {
            rep.problem(
                &format!("{label}: cursor"),
                format_args!(
                    "expected {want_cursor:?} (the previous bundle's end_time), found {}",
                    show(e.get("cursor"))
                ),
            )?;
        }
        // Order and repeats across the boundary with the previous bundle.
        if let (Some(prev), Some((t, text))) = (prev_check, &check.first) {
            if let Some((pt, ptext)) = &prev.last {
                if t < pt {
                    rep.problem(
                        &format!("{label}: start_time"),
                        format_args!("operations go backwards across bundles: first createdAt {text} is before the previous bundle's last {ptext}"),
                    )?;
                } else if t == pt {
                    let prev_cids: HashSet<&String> = prev.last_cids.iter().collect();
                    if let Some(c) = check.first_cids.iter().find(|c| prev_cids.contains(c)) {
                        rep.problem(
                            &label,
                            format_args!("operation {c} at {text} is also in the previous bundle"),
                        )?;
                    }
                }
            }
        }
        prev_entry = Some(e);
        prev_check = Some(check);
    }
    report.head = expected_chain;

    // Index totals.
    let n = entries.len() as u64;
    if index.get("last_bundle").and_then(Value::as_u64) != Some(n) {
        rep.problem(
            "index: last_bundle",
            format_args!(
                "expected {n} (the number of bundles), found {}",
                show(index.get("last_bundle"))
            ),
        )?;
    }
    let sum_c: u64 = claims.iter().filter_map(|c| c.compressed_size).sum();
    if index.get("total_size_bytes").and_then(Value::as_u64) != Some(sum_c) {
        rep.problem(
            "index: total_size_bytes",
            format_args!(
                "expected {sum_c} (the sum of compressed_size), found {}",
                show(index.get("total_size_bytes"))
            ),
        )?;
    }
    let sum_u: u64 = claims.iter().filter_map(|c| c.uncompressed_size).sum();
    match index.get("total_uncompressed_size_bytes") {
        None => {} // the Python reference does not write it
        Some(v) if v.as_u64() == Some(sum_u) => {}
        Some(v) => rep.problem(
            "index: total_uncompressed_size_bytes",
            format_args!("expected {sum_u} (the sum of uncompressed_size), found {v}"),
        )?,
    }

    check_directory(dir, n, &mut rep)?;
    Ok(finish(rep, report))
}

fn finish(rep: Reporter<'_>, mut report: VerifyReport) -> VerifyReport {
    report.problems = rep.problems;
    report.warnings = rep.warnings;
    report
}

/// Files the index does not name: a contiguous run `last_bundle + 1`,
/// `+ 2`, ... is an interrupted seal (plc-seal writes the index after the
/// bundles it names, at most once a second: a warning); any other bundle
/// file is a problem.
fn check_directory(dir: &Path, last: u64, rep: &mut Reporter<'_>) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let mut interrupted = last;
    for name in names {
        if let Some(n) = parse_bundle_file_name(&name) {
            if n == interrupted + 1 {
                interrupted = n;
                rep.warning(format_args!(
                    "{name} is not in the index: an interrupted seal; the next plc-seal run removes it"
                ))?;
            } else if n > last || n == 0 {
                rep.problem(
                    &format!("bundle {n:06}"),
                    format_args!("{name} is not in the index (last_bundle is {last})"),
                )?;
            }
        } else if crate::repo::is_our_tmp(&name) {
            rep.warning(format_args!(
                "{name} is a temporary file left by an interrupted writer; the next plc-seal run removes it"
            ))?;
        }
    }
    Ok(())
}

fn check_files(
    dir: &Path,
    claims: &[Claimed],
    selected: &[bool],
    cfg: &VerifyConfig,
    progress: &mut Progress<'_>,
) -> Vec<FileCheck> {
    let total = selected.iter().filter(|&&s| s).count();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(claims.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<FileCheck>>> = claims.iter().map(|_| Mutex::new(None)).collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (next, results) = (&next, &results);
            s.spawn(move || {
                let mut bufs = Buffers::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(claim) = claims.get(i) else { break };
                    let check = if !selected[i] {
                        skipped(claim)
                    } else if cfg.quick {
                        check_stored_file(dir, claim, &mut bufs)
                    } else {
                        check_file(dir, claim, &mut bufs)
                    };
                    *results[i].lock().expect("no poisoned results") = Some(check);
                    if selected[i] {
                        let _ = done_tx.send(());
                    }
                }
            });
        }
        drop(done_tx);
        for (i, ()) in done_rx.into_iter().enumerate() {
            let done = i + 1;
            progress.update(|elapsed| {
                format!(
                    "plc-verify: {done} of {total} bundles checked ({})",
                    human(elapsed)
                )
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no poisoned results")
                .expect("every bundle checked")
        })
        .collect()
}

/// A worker's buffers, reused from one bundle to the next: fresh
/// multi-megabyte buffers cost a page fault and a zeroed page per 4 KB.
#[derive(Default)]
struct Buffers {
    file: Vec<u8>,
    content: Vec<u8>,
}

/// Reads the whole file at `path` into `buf` (replacing what it held).
fn read_whole(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let mut f = std::fs::File::open(path)?;
    if let Ok(m) = f.metadata() {
        buf.reserve(m.len() as usize);
    }
    f.read_to_end(buf).map(|_| ())
}

/// What the fold needs of a bundle whose file is not checked: its times
/// from the index, for the order check at its boundaries.
fn skipped(c: &Claimed) -> FileCheck {
    let times = |t: &Option<String>| {
        t.as_ref()
            .and_then(|s| Timestamp::parse(s).map(|ts| (ts, s.clone())))
    };
    FileCheck {
        first: times(&c.start_time),
        last: times(&c.end_time),
        ..FileCheck::default()
    }
}

/// `--quick`: the stored file's hash and size against the index, and the
/// index's content_hash carried into the chain; nothing is decompressed.
fn check_stored_file(dir: &Path, c: &Claimed, bufs: &mut Buffers) -> FileCheck {
    let mut fc = skipped(c);
    if let Some(file) = read_file(dir, c, &mut bufs.file, &mut fc) {
        check_stored(c, file, &sha256_hex(file), &mut fc);
        fc.content_hash = c.content_hash.clone();
        fc.operations = c.operation_count.unwrap_or(0);
    }
    fc
}

/// Reads the bundle file; `None` when it cannot be read (the problem is
/// recorded).
fn read_file<'b>(
    dir: &Path,
    c: &Claimed,
    buf: &'b mut Vec<u8>,
    fc: &mut FileCheck,
) -> Option<&'b [u8]> {
    let name = bundle_file_name(c.number);
    match read_whole(&dir.join(&name), buf) {
        Ok(()) => Some(&buf[..]),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fc.problems.push(format!("file: {name} is missing"));
            None
        }
        Err(e) => {
            fc.problems.push(format!("file: cannot read {name}: {e}"));
            None
        }
    }
}

/// Checks the stored file's hash (`whole_hash`) and size against the
/// index.
fn check_stored(c: &Claimed, file: &[u8], whole_hash: &str, fc: &mut FileCheck) {
    let data = data_frames(file);
    match &c.compressed_hash {
        None => fc.problems.push("compressed_hash: missing".into()),
        Some(h) if *h == whole_hash => {}
        Some(h) if data.as_ref().is_some_and(|d| sha256_hex(d) == *h) => {}
        Some(h) => fc.problems.push(format!(
            "compressed_hash: index says {h}, file has {whole_hash}"
        )),
    }
    let data_len = data.as_ref().map(|d| d.len() as u64);
    match c.compressed_size {
        None => fc.problems.push("compressed_size: missing".into()),
        Some(s) if s == file.len() as u64 || Some(s) == data_len => {}
        Some(s) => fc.problems.push(format!(
            "compressed_size: index says {s}, file is {} bytes",
            file.len()
        )),
    }
}

/// Every check of one bundle file.
fn check_file(dir: &Path, c: &Claimed, bufs: &mut Buffers) -> FileCheck {
    let mut fc = FileCheck::default();
    let name = bundle_file_name(c.number);
    let Some(file) = read_file(dir, c, &mut bufs.file, &mut fc) else {
        return fc;
    };
    let (content, content_hash) = match decompress_hashed(file, &mut bufs.content) {
        Ok((whole_hash, content_hash)) => {
            check_stored(c, file, &whole_hash, &mut fc);
            (&bufs.content[..], content_hash)
        }
        Err(e) => {
            check_stored(c, file, &sha256_hex(file), &mut fc);
            fc.problems
                .push(format!("file: {name} does not decompress: {e}"));
            return fc;
        }
    };
    match &c.content_hash {
        Some(h) if *h == content_hash => {}
        other => fc.problems.push(format!(
            "content_hash: index says {}, content has {content_hash}",
            other.as_deref().unwrap_or("nothing")
        )),
    }
    fc.content_hash = Some(content_hash);
    if c.uncompressed_size != Some(content.len() as u64) {
        fc.problems.push(format!(
            "uncompressed_size: index says {}, content is {} bytes",
            opt(c.uncompressed_size),
            content.len()
        ));
    }
    check_operations(content, c, &mut fc);
    fc
}

fn check_operations(content: &[u8], c: &Claimed, fc: &mut FileCheck) {
    if !content.is_empty() && content.last() != Some(&b'\n') {
        fc.problems
            .push("content: the last operation is not followed by a newline".into());
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut seq = Sequencer::default();
    // Borrowed from `content` (owned only for escaped values): no
    // allocation per operation; distinct DIDs are counted by sorting.
    let mut dids: Vec<Cow<'_, str>> = Vec::with_capacity(crate::index::BUNDLE_SIZE);
    let mut first: Option<(Timestamp, Cow<'_, str>)> = None;
    let mut first_cids: Vec<Cow<'_, str>> = Vec::new();
    let mut last: Option<(Timestamp, Cow<'_, str>)> = None;
    let mut last_cids: Vec<Cow<'_, str>> = Vec::new();
    let mut ops = 0u64;
    let mut bad_lines = 0;
    if !body.is_empty() {
        for (i, line) in crate::line::split_lines(body).enumerate() {
            ops += 1;
            let op = match parse_op(line) {
                Ok(op) => op,
                Err(r) => {
                    bad_lines += 1;
                    if bad_lines <= 3 {
                        fc.problems.push(format!("operation {}: {r}", i + 1));
                    }
                    continue;
                }
            };
            match seq.observe(&op) {
                Ok(Seen::New) => {}
                Ok(Seen::Duplicate) => fc.problems.push(format!(
                    "operation {}: {} at {} appears twice",
                    i + 1,
                    op.cid,
                    op.created_at
                )),
                Err(r) => fc.problems.push(format!("operation {}: {r}", i + 1)),
            }
            dids.push(op.did);
            if first.is_none() {
                first = Some((op.time, op.created_at.clone()));
            }
            if first.as_ref().is_some_and(|(t, _)| *t == op.time) {
                first_cids.push(op.cid.clone());
            }
            if last.as_ref().is_none_or(|(t, _)| *t != op.time) {
                last_cids.clear();
            }
            last_cids.push(op.cid);
            last = Some((op.time, op.created_at));
        }
    }
    let distinct_dids = crate::index::count_distinct(dids.iter().map(|d| &**d));
    let owned = |v: Vec<Cow<'_, str>>| v.into_iter().map(Cow::into_owned).collect();
    fc.first = first.map(|(t, s)| (t, s.into_owned()));
    fc.first_cids = owned(first_cids);
    fc.last = last.map(|(t, s)| (t, s.into_owned()));
    fc.last_cids = owned(last_cids);
    if bad_lines > 3 {
        fc.problems
            .push(format!("{} more malformed operations", bad_lines - 3));
    }
    fc.operations = ops;
    if c.operation_count != Some(ops) {
        fc.problems.push(format!(
            "operation_count: index says {}, file holds {ops}",
            opt(c.operation_count)
        ));
    }
    if c.did_count != Some(distinct_dids) {
        fc.problems.push(format!(
            "did_count: index says {}, file holds {distinct_dids}",
            opt(c.did_count),
        ));
    }
    for (field, claimed, actual) in [
        ("start_time", &c.start_time, &fc.first),
        ("end_time", &c.end_time, &fc.last),
    ] {
        let ok = match (claimed, actual) {
            (Some(cl), Some((_, text))) => cl == text || same_instant(cl, text),
            _ => false,
        };
        if !ok {
            fc.problems.push(format!(
                "{field}: index says {}, file has {}",
                claimed.as_deref().unwrap_or("nothing"),
                actual.as_ref().map_or("no operations", |(_, t)| t.as_str())
            ));
        }
    }
}

/// The file's zstd data frames without skippable frames, when it has any
/// skippable frame (`None` otherwise or when the framing is unreadable).
fn data_frames(file: &[u8]) -> Option<Vec<u8>> {
    // Where the data frames are; copied out only when something was
    // skipped (a plain file is its own data).
    let mut frames = Vec::new();
    let mut off = 0;
    let mut skipped = false;
    while off < file.len() {
        let rest = &file[off..];
        if rest.len() >= 8
            && (u32::from_le_bytes(rest[..4].try_into().ok()?) & 0xFFFF_FFF0) == 0x184D_2A50
        {
            let len = u32::from_le_bytes(rest[4..8].try_into().ok()?) as usize;
            off += 8 + len;
            skipped = true;
            continue;
        }
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).ok()?;
        frames.push(off..off + n);
        off += n;
    }
    skipped.then(|| frames.into_iter().flat_map(|r| &file[r]).copied().collect())
}

fn same_instant(a: &str, b: &str) -> bool {
    matches!((Timestamp::parse(a), Timestamp::parse(b)), (Some(x), Some(y)) if x == y)
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_string(), Value::to_string)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "nothing".to_string(), |n| n.to_string())
}
