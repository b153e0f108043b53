//! plc-audit: checks that every operation of an archive is a legitimate
//! PLC operation, against everything before it.
//!
//! Hashes prove that two archives hold the same bytes; this proves the
//! bytes follow the directory's rules. The work is split by what it needs:
//! [`op`] checks each operation on its own (shape, size, encodings, `cid`,
//! a genesis DID, the signature's encoding), [`sig`] parses keys and
//! verifies signatures, [`rules`] applies the log rules per DID, and
//! [`state`] keeps each DID's operations on disk.
//!
//! Operations go through in batches (a bundle, or 10,000 lines of a file).
//! Per batch: every core prepares operations; one thread looks up which
//! keys each one may be signed with (its `prev`'s, from the state or from
//! earlier in the batch); every core verifies signatures against those
//! keys; one thread applies the rules in order and writes the report.
//! Results stay in input order, and memory stays that of one batch plus
//! the bounded cache.

pub mod op;
pub mod rules;
pub mod sig;
pub mod state;

use crate::error::{Error, IoContext, Result};
use crate::index::BUNDLE_SIZE;
use op::{prepare, Prepared};
use rayon::prelude::*;
use rules::RECOVERY_WINDOW_MS;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

/// Where the operations come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// JSON lines from a file, `-` for stdin.
    Lines(String),
    /// The sealed bundles of a repository, in order.
    Repo(PathBuf),
}

/// What to audit and how.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The operations.
    pub input: Input,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Directory for the state store (a scratch file removed at the end).
    pub state_dir: PathBuf,
    /// DIDs kept in memory per cache generation.
    pub cache_dids: usize,
    /// Treat a `nullified: false` that the rules contradict as a failure
    /// (for archives whose lines were fetched after their 72 hours).
    pub final_flags: bool,
}

/// Counts of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Operations read.
    pub operations: u64,
    /// Operations reported as failing (kinds `invalid` and `nullified`).
    pub failed: u64,
    /// Operations flagged `nullified` that are still within 72 hours of the
    /// archive's end: not settled either way (kind `unsettled`).
    pub unsettled: u64,
    /// Operations the archive says are not nullified but a later operation
    /// of the archive nullifies: their lines were fetched before it (kind
    /// `stale`; failing with `final_flags`).
    pub stale: u64,
}

/// A batch of lines and where each comes from.
struct Batch {
    bytes: Vec<u8>,
    lines: Vec<std::ops::Range<usize>>,
    /// 0-based position of the first line in the whole input.
    first: u64,
    /// The bundle number, for `--repo`.
    bundle: Option<u64>,
}

/// Runs the audit, writing one JSON line per reported operation to `out`.
pub fn audit(cfg: &AuditConfig, out: &mut impl Write) -> Result<AuditReport> {
    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        cfg.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Usage(format!("starting {threads} worker threads: {e}")))?;
    let mut auditor = Auditor {
        pool,
        state: state::State::create(&cfg.state_dir, cfg.cache_dids)?,
        pending: VecDeque::new(),
        settled: HashSet::new(),
        report: AuditReport::default(),
        final_flags: cfg.final_flags,
        repo: matches!(cfg.input, Input::Repo(_)),
        last_time: i64::MIN,
    };
    {
        match &cfg.input {
            Input::Lines(path) => {
                let r = crate::cli::open_input(path)?;
                let mut r = std::io::BufReader::with_capacity(1 << 20, r);
                let mut first = 0u64;
                while let Some(b) = read_batch(&mut r, first)? {
                    first += b.lines.len() as u64;
                    auditor.batch(&b, out)?;
                }
            }
            Input::Repo(dir) => {
                let idx = crate::repo::load_index(dir)?.ok_or_else(|| {
                    Error::Archive(format!("{}: no plc_bundles.json", dir.display()))
                })?;
                let mut first = 0u64;
                for e in &idx.bundles {
                    // Bounded by the index and checked against its
                    // content_hash: a hostile file cannot cost more memory
                    // than the format allows.
                    let bytes = crate::repo::read_bundle(dir, e)?;
                    let b = Batch {
                        lines: split(&bytes, first, Some(e.bundle_number))?,
                        bytes,
                        first,
                        bundle: Some(e.bundle_number),
                    };
                    first += b.lines.len() as u64;
                    auditor.batch(&b, out)?;
                }
            }
        }
    }
    auditor.finish(out)?;
    Ok(auditor.report)
}

/// The ranges of the `\n`-terminated lines of `bytes`.
fn split(bytes: &[u8], first: u64, bundle: Option<u64>) -> Result<Vec<std::ops::Range<usize>>> {
    let mut lines = Vec::with_capacity(BUNDLE_SIZE);
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'\n' {
            lines.push(start..i);
            start = i + 1;
        }
    }
    if start != bytes.len() {
        let n = first + lines.len() as u64 + 1;
        return Err(match bundle {
            Some(b) => Error::Archive(format!(
                "bundle {b}: the content does not end with a newline"
            )),
            None => Error::input(n, "no final newline"),
        });
    }
    Ok(lines)
}

/// Reads up to one bundle's worth of lines.
fn read_batch(r: &mut impl BufRead, first: u64) -> Result<Option<Batch>> {
    let mut bytes = Vec::new();
    let mut lines = Vec::new();
    while lines.len() < BUNDLE_SIZE {
        let start = bytes.len();
        let n = Read::take(&mut *r, crate::line::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes)
            .ctx(|| "reading input")?;
        if n == 0 {
            break;
        }
        let no = first + lines.len() as u64 + 1;
        if bytes.last() != Some(&b'\n') {
            return Err(Error::input(
                no,
                if n > crate::line::MAX_LINE {
                    "longer than 1 MiB"
                } else {
                    "no final newline"
                },
            ));
        }
        lines.push(start..bytes.len() - 1);
    }
    Ok((!lines.is_empty()).then_some(Batch {
        bytes,
        lines,
        first,
        bundle: None,
    }))
}

/// The sequential half: state, rules, the report.
struct Auditor {
    /// The workers of the parallel steps.
    pool: rayon::ThreadPool,
    state: state::State,
    /// Operations the archive flags nullified that the rules have not
    /// (yet) nullified, in time order: (createdAt ms, position, did, cid).
    pending: VecDeque<(i64, u64, String, String, String)>,
    /// Pending operations the rules have since nullified, by position.
    settled: HashSet<u64>,
    report: AuditReport,
    final_flags: bool,
    repo: bool,
    last_time: i64,
}

/// How a reported operation counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    Nullified,
    Unsettled,
    Stale,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Nullified => "nullified",
            Kind::Unsettled => "unsettled",
            Kind::Stale => "stale",
        }
    }
}

impl Auditor {
    fn batch(&mut self, b: &Batch, out: &mut impl Write) -> Result<()> {
        // Every core: each operation on its own.
        let prepared: Vec<std::result::Result<Prepared, String>> = self.pool.install(|| {
            b.lines
                .par_iter()
                .map(|r| prepare(&b.bytes[r.clone()]))
                .collect()
        });
        let mut ops = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.into_iter().enumerate() {
            ops.push(p.map_err(|e| self.input_error(b, i, e))?);
        }
        // One thread: which keys may sign each operation. An operation
        // earlier in the batch is not in the state yet; its keys are its
        // own content, so they are right whether or not it turns out valid
        // (if it does not, the rules refuse what follows it anyway).
        let mut batch_keys: HashMap<&str, (&str, &[String])> = HashMap::new();
        let mut allowed: Vec<Vec<String>> = Vec::with_capacity(ops.len());
        for p in &ops {
            let keys = match &p.prev {
                None => p.rotation_keys.clone(),
                Some(prev) => match batch_keys.get(prev.as_str()) {
                    Some((did, keys)) if *did == p.did => keys.to_vec(),
                    _ => self
                        .state
                        .get(&p.did)?
                        .allowed_keys(p)
                        .map(<[String]>::to_vec)
                        .unwrap_or_default(),
                },
            };
            allowed.push(keys);
            // Only an operation whose `cid` is its content's may be looked
            // up by it: a line claiming another's CID must not shadow it.
            if p.problems.is_empty() {
                batch_keys.insert(&p.cid, (&p.did, &p.rotation_keys));
            }
        }
        // Every core: the signatures.
        let signers: Vec<std::result::Result<usize, String>> = self.pool.install(|| {
            ops.par_iter()
                .zip(allowed.par_iter())
                .map(|(p, keys)| match &p.sig {
                    Some(sig) => sig::find_signer(keys, &p.unsigned, &p.digest, sig),
                    None => Err("signature: not decodable".into()),
                })
                .collect()
        });
        // One thread: the rules, in order.
        for (i, (p, signer)) in ops.iter().zip(signers).enumerate() {
            let pos = b.first + i as u64;
            self.expire(p.time.millis(), out)?;
            self.last_time = self.last_time.max(p.time.millis());
            self.report.operations += 1;
            if !p.problems.is_empty() {
                let reason = p.problems.join("; ");
                self.emit(
                    out,
                    Kind::Invalid,
                    &p.did,
                    &p.cid,
                    &p.created_at,
                    &reason,
                    pos,
                )?;
                continue;
            }
            let st = self.state.get(&p.did)?;
            match st.apply(p, signer, pos) {
                Err(reason) => {
                    self.emit(
                        out,
                        Kind::Invalid,
                        &p.did,
                        &p.cid,
                        &p.created_at,
                        &reason,
                        pos,
                    )?;
                }
                Ok(nullified) => {
                    let stale: Vec<_> = nullified
                        .iter()
                        .map(|&j| &st.ops[j])
                        .filter_map(|o| {
                            if o.archived {
                                None
                            } else {
                                Some((o.cid.clone(), o.t, o.pos))
                            }
                        })
                        .collect();
                    let agreed: Vec<u64> = nullified
                        .iter()
                        .map(|&j| &st.ops[j])
                        .filter(|o| o.archived)
                        .map(|o| o.pos)
                        .collect();
                    st.prune(p.time.millis());
                    self.state.mark(&p.did);
                    self.settled.extend(agreed);
                    for (cid, t, at) in stale {
                        let when = crate::time::Timestamp::from_millis(t).format_millis();
                        let reason = format!(
                            "nullified: the archive says not nullified, but {} (later in the archive) nullifies it; the line was fetched before that",
                            p.cid
                        );
                        let kind = if self.final_flags {
                            Kind::Nullified
                        } else {
                            Kind::Stale
                        };
                        self.emit(out, kind, &p.did, &cid, &when, &reason, at)?;
                    }
                    if p.archived_nullified {
                        self.pending.push_back((
                            p.time.millis(),
                            pos,
                            p.did.clone(),
                            p.cid.clone(),
                            p.created_at.clone(),
                        ));
                    }
                }
            }
        }
        self.state.flush()
    }

    fn input_error(&self, b: &Batch, i: usize, reason: String) -> Error {
        match b.bundle {
            Some(n) => Error::Archive(format!("bundle {n} line {}: {reason}", i + 1)),
            None => Error::input(b.first + i as u64 + 1, reason),
        }
    }

    /// Settles flagged operations that nothing can nullify any more: every
    /// operation that could have done so (within 72 hours) is behind `now`.
    fn expire(&mut self, now: i64, out: &mut impl Write) -> Result<()> {
        while let Some(front) = self.pending.front() {
            if now - front.0 <= RECOVERY_WINDOW_MS {
                break;
            }
            let (_, pos, did, cid, created) = self.pending.pop_front().expect("front exists");
            if !self.settled.remove(&pos) {
                let reason = "nullified: the archive says nullified, but no operation within 72 h nullifies it";
                self.emit(out, Kind::Nullified, &did, &cid, &created, reason, pos)?;
            }
        }
        Ok(())
    }

    /// The end of the archive: flagged operations within 72 hours of it
    /// are not settled yet.
    fn finish(&mut self, out: &mut impl Write) -> Result<()> {
        while let Some((_, pos, did, cid, created)) = self.pending.pop_front() {
            if !self.settled.remove(&pos) {
                let reason = "nullified: the archive says nullified, and nothing before its end does; it ends within 72 h of this operation, so a later one may";
                self.emit(out, Kind::Unsettled, &did, &cid, &created, reason, pos)?;
            }
        }
        out.flush().ctx(|| "writing output")
    }

    #[allow(clippy::too_many_arguments)] // reason: one report line's fields
    fn emit(
        &mut self,
        out: &mut impl Write,
        kind: Kind,
        did: &str,
        cid: &str,
        created_at: &str,
        reason: &str,
        pos: u64,
    ) -> Result<()> {
        match kind {
            Kind::Invalid | Kind::Nullified => self.report.failed += 1,
            Kind::Unsettled => self.report.unsettled += 1,
            Kind::Stale => self.report.stale += 1,
        }
        let mut v = serde_json::json!({
            "did": did,
            "cid": cid,
            "createdAt": created_at,
            "reason": reason,
            "kind": kind.name(),
        });
        if self.repo {
            v["bundle"] = (pos / BUNDLE_SIZE as u64 + 1).into();
            v["line"] = (pos % BUNDLE_SIZE as u64 + 1).into();
        } else {
            v["line"] = (pos + 1).into();
        }
        serde_json::to_writer(&mut *out, &v).map_err(|e| Error::io("writing output", e.into()))?;
        out.write_all(b"\n").ctx(|| "writing output")
    }
}
