//! The directory's rules for a DID's log, applied one operation at a time
//! in archive order: which earlier operation `prev` may name, which key may
//! sign, when a fork nullifies the operations after its `prev`.
//!
//! They follow the official implementation's `assureValidNextOp`: `prev`
//! must name an active (not nullified) operation of the DID; it must not be
//! a tombstone; the signer must be one of `prev`'s rotation keys (a
//! genesis operation's own); an operation whose `prev` is not the head
//! nullifies every active operation after `prev`, and is valid only when
//! its key comes before (has a higher priority than) the key that signed
//! the first of them, in `prev`'s list, and when it comes at most 72 hours
//! after that first one. The later nullified operations were signed with
//! keys of other lists, so they are not compared (the official code does
//! not either). A DID's createdAt values must increase.

use super::op::{Kind, Prepared};
use serde::{Deserialize, Serialize};

/// How long a higher-priority key may rewrite history, in milliseconds.
pub const RECOVERY_WINDOW_MS: i64 = 72 * 3600 * 1000;

/// A DID with more operations than this is pruned after each change.
pub const PRUNE_AT: usize = 50;

/// What is kept of one valid operation of a DID.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpRec {
    /// Its CID.
    pub cid: String,
    /// createdAt in milliseconds.
    pub t: i64,
    /// Its rotation keys (empty for a tombstone).
    pub keys: Vec<String>,
    /// It is a tombstone.
    pub tomb: bool,
    /// Index of the key that signed it, in the list that allowed it.
    pub signer: u32,
    /// The rules have nullified it.
    pub nullified: bool,
    /// The archive's line says it is nullified.
    pub archived: bool,
    /// 0-based position of its line in the input.
    pub pos: u64,
}

/// The valid operations of one DID, in archive order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DidState {
    /// Every valid operation, nullified ones too.
    pub ops: Vec<OpRec>,
}

impl DidState {
    /// The rotation keys `op` must be signed with: its `prev`'s (looked up
    /// among this DID's operations), or its own for a genesis operation.
    /// `None` when `prev` is not one of them.
    pub fn allowed_keys<'a>(&'a self, op: &'a Prepared) -> Option<&'a [String]> {
        match &op.prev {
            None => Some(&op.rotation_keys),
            Some(prev) => self
                .ops
                .iter()
                .find(|o| &o.cid == prev)
                .map(|o| o.keys.as_slice()),
        }
    }

    /// Applies `op`, which passed every check of its own, signed by key
    /// `signer` of its allowed list (or the signature's problem). On
    /// success returns the indexes (into `ops`) of the operations it
    /// nullifies; on failure the rule it breaks, and the state is
    /// unchanged.
    pub fn apply(
        &mut self,
        op: &Prepared,
        signer: Result<usize, String>,
        pos: u64,
    ) -> Result<Vec<usize>, String> {
        let kind = op
            .kind
            .expect("apply is called on operations of a known shape");
        let record = |signer: usize| OpRec {
            cid: op.cid.clone(),
            t: op.time.millis(),
            keys: op.rotation_keys.clone(),
            tomb: kind == Kind::Tombstone,
            signer: signer as u32,
            nullified: false,
            archived: op.archived_nullified,
            pos,
        };
        if self.ops.is_empty() {
            if kind == Kind::Tombstone {
                return Err(format!(
                    "prev: the DID has no earlier operation, so {} cannot be its genesis (a tombstone)",
                    op.cid
                ));
            }
            if let Some(prev) = &op.prev {
                return Err(format!(
                    "prev: names {prev}, but the DID has no earlier valid operation"
                ));
            }
            self.ops.push(record(signer?));
            return Ok(Vec::new());
        }
        let Some(prev) = &op.prev else {
            return Err("prev: null (a second genesis), but the DID already has operations".into());
        };
        let active: Vec<usize> = (0..self.ops.len())
            .filter(|&i| !self.ops[i].nullified)
            .collect();
        let Some(at) = active.iter().position(|&i| &self.ops[i].cid == prev) else {
            return Err(if self.ops.iter().any(|o| &o.cid == prev) {
                format!("prev: names {prev}, which is nullified")
            } else {
                format!("prev: names {prev}, which is no earlier operation of this DID")
            });
        };
        if self.ops[active[at]].tomb {
            return Err(format!(
                "tombstone: prev {prev} is a tombstone, and nothing may follow one"
            ));
        }
        let signer = signer?;
        let last = self.ops.last().expect("not empty").t;
        if op.time.millis() <= last {
            return Err(format!(
                "createdAt: {} is not after the DID's previous operation",
                op.created_at
            ));
        }
        let nullified: Vec<usize> = active[at + 1..].to_vec();
        if let Some(&first) = nullified.first() {
            let first = &self.ops[first];
            if signer as u32 >= first.signer {
                return Err(format!(
                    "fork: signed with rotation key {signer} of prev, which does not outrank key {} that signed {}, the first operation it would nullify (key priority)",
                    first.signer, first.cid
                ));
            }
            let lapse = op.time.millis() - first.t;
            if lapse > RECOVERY_WINDOW_MS {
                return Err(format!(
                    "fork: late recovery, {:.1} h after {}, the first operation it would nullify (72 h allowed)",
                    lapse as f64 / 3.6e6,
                    first.cid
                ));
            }
        }
        for &i in &nullified {
            self.ops[i].nullified = true;
        }
        self.ops.push(record(signer));
        Ok(nullified)
    }

    /// Drops what no later operation can need, so that a DID with
    /// thousands of operations does not carry them all: nullified
    /// operations older than 72 hours (nothing may name them as `prev`),
    /// and active ones whose successor is older than 72 hours (a fork from
    /// them would come too late). The head is always kept. A `prev` naming
    /// a dropped operation is then reported as naming no earlier
    /// operation instead of as a late recovery; it fails either way.
    pub fn prune(&mut self, now: i64) {
        if self.ops.len() <= PRUNE_AT {
            return;
        }
        let horizon = now - RECOVERY_WINDOW_MS;
        let active: Vec<usize> = (0..self.ops.len())
            .filter(|&i| !self.ops[i].nullified)
            .collect();
        let mut keep = vec![false; self.ops.len()];
        for (j, &i) in active.iter().enumerate() {
            keep[i] = match active.get(j + 1) {
                None => true,
                Some(&next) => self.ops[next].t >= horizon,
            };
        }
        for (i, o) in self.ops.iter().enumerate() {
            if o.nullified && o.t >= horizon {
                keep[i] = true;
            }
        }
        let mut k = keep.into_iter();
        self.ops
            .retain(|_| k.next().expect("one flag per operation"));
    }
}
