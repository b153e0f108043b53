//! `plc-clone`: copies another archive's operations, every bundle checked
//! against that archive's index before a byte of it is written.
//!
//! The output is JSON lines, the exact bytes of each operation plus `\n`,
//! so the usual `plc-dedup | plc-chunk | plc-seal` pipeline rebuilds the
//! bundles and, because content and chain hashes depend only on those
//! bytes, ends with the mirror's `content_hash` and `hash` for every
//! bundle. Files are fetched by a few threads at once; a small window
//! keeps the output in order and memory bounded by the bundles in flight.
//! The chain is recomputed in order as bundles are written, from genesis
//! or from the head of the archive being continued.

use crate::error::{Error, IoContext, Result};
use crate::index::{chain_hash, BundleEntry, Index};
use crate::progress::{human, Progress};
use crate::source::Source;
use crate::verify::{check_bundle, check_link, BundleRange, Link, Problem};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

/// What `plc-clone` is asked to do.
#[derive(Clone, Debug)]
pub struct CloneConfig {
    /// Continue the archive in this directory (from its last bundle).
    pub repo: Option<PathBuf>,
    /// Only these bundles.
    pub range: Option<BundleRange>,
    /// Bundles downloaded at once (at least 1).
    pub jobs: usize,
    /// The origin the copy is for: a mirror whose index names another is
    /// refused (`None`: whatever the mirror names).
    pub origin: Option<String>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct CloneReport {
    /// The first bundle to copy and the last (inclusive); `None` when
    /// there was nothing to copy.
    pub planned: Option<(u64, u64)>,
    /// Bundles written whole.
    pub written: u64,
    /// Operations written.
    pub operations: u64,
    /// Bytes downloaded (files as stored).
    pub downloaded: u64,
    /// The first bundle that failed its checks, naming the bundle and the
    /// field; nothing of it was written.
    pub failure: Option<String>,
}

/// Where a clone starts: the first bundle and the chain hash before it.
struct Plan {
    first: u64,
    last: u64,
    anchor: Option<String>,
}

/// Decides what to copy from `mirror` given `cfg`: after the last bundle of
/// `cfg.repo` when the two agree up to there (else an error saying where
/// they part), within `cfg.range`. `Ok(None)`: nothing to copy.
fn plan(mirror: &Index, cfg: &CloneConfig) -> Result<std::result::Result<Option<Plan>, String>> {
    if let Some(o) = cfg.origin.as_deref() {
        if !crate::index::same_origin(o, &mirror.origin) {
            return Err(Error::Usage(format!(
                "the mirror holds operations from {:?}, not {o:?}; refusing to mix origins",
                mirror.origin
            )));
        }
    }
    let n = mirror.bundles.len() as u64;
    let mut first = cfg.range.map_or(1, |r| r.start);
    let last = cfg.range.and_then(|r| r.end).map_or(n, |e| e.min(n));
    let mut anchor: Option<String> = None;
    let local = match &cfg.repo {
        Some(dir) => crate::repo::load_index(dir)?.map(|idx| (dir, idx)),
        None => None,
    };
    if let Some((dir, local)) = &local {
        if !crate::index::same_origin(&local.origin, &mirror.origin) {
            return Err(Error::Usage(format!(
                "{} is for operations from {:?}, the mirror holds them from {:?}; refusing to mix origins",
                dir.display(),
                local.origin,
                mirror.origin
            )));
        }
    }
    if let Some((dir, local)) = local.filter(|(_, l)| !l.bundles.is_empty()) {
        let d = dir.display();
        let have = local.bundles.len() as u64;
        if let Some(k) = first_difference(&local.bundles, &mirror.bundles) {
            return Err(Error::Usage(format!(
                "{d} and the mirror part at bundle {k}: {d} has hash {}, the mirror {}; nothing copied (plc-diff shows how they differ)",
                local.bundles[k as usize - 1].hash,
                mirror.bundles[k as usize - 1].hash
            )));
        }
        if n < have {
            return Err(Error::Usage(format!(
                "the mirror holds {n} bundles, fewer than the {have} of {d}; nothing to copy from it"
            )));
        }
        if first > have + 1 {
            return Err(Error::Usage(format!(
                "{d} ends at bundle {have}; copying from bundle {first} would leave a gap"
            )));
        }
        first = have + 1;
        anchor = Some(local.bundles[have as usize - 1].hash.clone());
    } else if first > 1 {
        if first > n + 1 {
            return Err(Error::Usage(format!(
                "no bundle in the range: the mirror holds {n}"
            )));
        }
        // Start from the index's hash of the bundle before, once the
        // index's own chain up to there holds together.
        let mut prev: Option<&str> = None;
        for e in &mirror.bundles[..first as usize - 1] {
            let want = chain_hash(prev, &e.content_hash);
            if e.hash != want {
                return Ok(Err(format!(
                    "bundle {:06}: hash: index says {}, its chain from genesis gives {want}",
                    e.bundle_number, e.hash
                )));
            }
            prev = Some(&e.hash);
        }
        anchor = prev.map(str::to_string);
    }
    Ok(Ok((first <= last).then_some(Plan {
        first,
        last,
        anchor,
    })))
}

/// The first bundle number (1-based) at which two indexes' chain hashes
/// differ, over the bundles both hold.
pub fn first_difference(a: &[BundleEntry], b: &[BundleEntry]) -> Option<u64> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.hash != y.hash)
        .map(|i| i as u64 + 1)
}

/// A bundle downloaded and checked against its entry (all but the chain).
struct Checked {
    content: Vec<u8>,
    content_hash: String,
    operations: u64,
    file_len: u64,
}

/// What a download thread hands to the writer for one bundle.
type Outcome = Result<std::result::Result<Checked, String>>;

/// The window shared by the download threads and the writer.
struct Window {
    next_take: u64,
    next_write: u64,
    ready: BTreeMap<u64, Outcome>,
    stop: bool,
}

/// Copies `source`'s bundles to `out` as described by `cfg`. A bundle that
/// fails a check ends the run with [`CloneReport::failure`] set; the
/// bundles before it were written whole. Errors: usage (a diverged or
/// foreign `--repo`), I/O, and the network failing after retries.
pub fn clone(
    source: &Source,
    cfg: &CloneConfig,
    out: &mut (dyn Write + Send),
    progress: &mut Progress<'_>,
) -> Result<CloneReport> {
    let mut report = CloneReport::default();
    let plan = match plan(&source.index, cfg)? {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(report),
        Err(failure) => {
            report.failure = Some(failure);
            return Ok(report);
        }
    };
    report.planned = Some((plan.first, plan.last));
    let total = plan.last - plan.first + 1;
    let jobs = cfg.jobs.max(1) as u64;
    let window = Mutex::new(Window {
        next_take: plan.first,
        next_write: plan.first,
        ready: BTreeMap::new(),
        stop: false,
    });
    let changed = Condvar::new();
    let lock = || window.lock().expect("no poisoned window");
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..jobs.min(total) {
            s.spawn(|| loop {
                let n = {
                    let mut w = lock();
                    while !w.stop && w.next_take <= plan.last && w.next_take - w.next_write >= jobs
                    {
                        w = changed.wait(w).expect("no poisoned window");
                    }
                    if w.stop || w.next_take > plan.last {
                        return;
                    }
                    w.next_take += 1;
                    w.next_take - 1
                };
                let outcome = fetch_and_check(source, n);
                lock().ready.insert(n, outcome);
                changed.notify_all();
            });
        }
        let result = write_in_order(source, &plan, &window, &changed, out, progress, &mut report);
        lock().stop = true;
        changed.notify_all();
        result
    })?;
    out.flush().ctx(|| "writing output")?;
    Ok(report)
}

/// The writer's side: takes the bundles in order as they become ready,
/// checks the chain and writes them.
fn write_in_order(
    source: &Source,
    plan: &Plan,
    window: &Mutex<Window>,
    changed: &Condvar,
    out: &mut (dyn Write + Send),
    progress: &mut Progress<'_>,
    report: &mut CloneReport,
) -> Result<()> {
    let total = plan.last - plan.first + 1;
    let mut parent = plan.anchor.clone();
    for n in plan.first..=plan.last {
        let outcome = {
            let mut w = window.lock().expect("no poisoned window");
            loop {
                if let Some(o) = w.ready.remove(&n) {
                    break o;
                }
                w = changed.wait(w).expect("no poisoned window");
            }
        };
        let label = format!("bundle {n:06}");
        let checked = match outcome? {
            Ok(c) => c,
            Err(problem) => {
                report.failure = Some(format!("{label}: {problem}"));
                return Ok(());
            }
        };
        let entry = &source.index.bundles[n as usize - 1];
        let link = match &parent {
            None => Link::Genesis,
            Some(p) => Link::After(p),
        };
        let mut broken = Vec::new();
        check_link(entry, link, &checked.content_hash, &mut broken);
        if !broken.is_empty() {
            report.failure = Some(format!("{label}: {}", problems(&broken)));
            return Ok(());
        }
        let recomputed = entry.hash.clone();
        out.write_all(&checked.content).ctx(|| "writing output")?;
        parent = Some(recomputed);
        report.written += 1;
        report.operations += checked.operations;
        report.downloaded += checked.file_len;
        {
            window.lock().expect("no poisoned window").next_write = n + 1;
        }
        changed.notify_all();
        let (done, bytes) = (report.written, report.downloaded);
        progress.update(|elapsed| status(done, total, bytes, elapsed));
    }
    Ok(())
}

/// The progress line: bundles done of total, bytes, rate, time left.
fn status(done: u64, total: u64, bytes: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = bytes as f64 / secs;
    let eta = if done > 0 {
        let left = secs / done as f64 * (total - done) as f64;
        format!(", {} left", human(std::time::Duration::from_secs_f64(left)))
    } else {
        String::new()
    };
    format!(
        "plc-clone: {done} of {total} bundles, {:.1} MB, {:.1} MB/s{eta} ({})",
        bytes as f64 / 1e6,
        rate / 1e6,
        human(elapsed)
    )
}

fn fetch_and_check(source: &Source, n: u64) -> Outcome {
    let entry = &source.index.bundles[n as usize - 1];
    let file = match source.bundle_file(n)? {
        Ok(f) => f,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut content = Vec::new();
    // The chain is checked by the writer, which sees the bundles in order.
    let check = check_bundle(entry, &file, Link::Unchecked, &mut content);
    match check.content_hash {
        Some(content_hash) if check.problems.is_empty() => Ok(Ok(Checked {
            content,
            content_hash,
            operations: check.operations,
            file_len: file.len() as u64,
        })),
        _ => Ok(Err(problems(&check.problems))),
    }
}

/// Every problem of a bundle on one line: `field: message; field: ...`.
fn problems(list: &[Problem]) -> String {
    let all: Vec<String> = list.iter().map(Problem::to_string).collect();
    all.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64, hash: &str) -> BundleEntry {
        BundleEntry {
            bundle_number: n,
            start_time: String::new(),
            end_time: String::new(),
            operation_count: 0,
            did_count: 0,
            hash: hash.into(),
            content_hash: String::new(),
            parent: String::new(),
            compressed_hash: String::new(),
            compressed_size: 0,
            uncompressed_size: 0,
            cursor: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn first_difference_names_the_first_differing_hash() {
        let a = [entry(1, "x"), entry(2, "y"), entry(3, "z")];
        let b = [entry(1, "x"), entry(2, "Y"), entry(3, "Z")];
        assert_eq!(first_difference(&a, &b), Some(2));
        assert_eq!(first_difference(&a, &a[..2]), None);
        assert_eq!(first_difference(&a[..1], &b), None);
    }
}
