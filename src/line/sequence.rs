//! The order of operations: createdAt never goes back, and an operation
//! already seen at the same createdAt is a repeat.

use super::Op;
use crate::time::Timestamp;

/// What a [`Sequencer`] made of an operation.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before, in order.
    New,
    /// Same CID already seen at the same createdAt.
    Duplicate,
}

/// Enforces the directory's order and spots repeats.
///
/// It remembers only the CIDs sharing the latest createdAt, so memory is
/// bounded by the largest group of operations in one millisecond. Most
/// groups hold one operation: they live in reused strings, searched in
/// order, and only a large group also gets a hash set, so the common case
/// allocates nothing per operation.
#[derive(Default)]
pub struct Sequencer {
    last: Option<(Timestamp, String)>,
    /// `last` is still the archive's end the sequencer was seeded with.
    at_seed: bool,
    /// The group's CIDs are `slots[..len]`; later slots are kept for reuse.
    slots: Vec<String>,
    len: usize,
    /// The group's CIDs once it is larger than [`SMALL_GROUP`].
    big: std::collections::HashSet<String>,
}

/// Largest tie group searched without a hash set.
const SMALL_GROUP: usize = 16;

impl Sequencer {
    /// A sequencer that continues after operations already archived: the
    /// last createdAt and the CIDs that share it.
    pub fn seeded(
        created_at: &str,
        time: Timestamp,
        cids: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut s = Sequencer {
            last: Some((time, created_at.to_string())),
            at_seed: true,
            ..Sequencer::default()
        };
        for cid in cids {
            if !s.contains(&cid) {
                s.insert(&cid);
            }
        }
        s
    }

    fn contains(&self, cid: &str) -> bool {
        if self.len > SMALL_GROUP {
            self.big.contains(cid)
        } else {
            self.slots[..self.len].iter().any(|c| c == cid)
        }
    }

    fn insert(&mut self, cid: &str) {
        if self.len < self.slots.len() {
            let slot = &mut self.slots[self.len];
            slot.clear();
            slot.push_str(cid);
        } else {
            self.slots.push(cid.to_string());
        }
        self.len += 1;
        if self.len == SMALL_GROUP + 1 {
            self.big.extend(self.slots[..self.len].iter().cloned());
        } else if self.len > SMALL_GROUP + 1 {
            self.big.insert(cid.to_string());
        }
    }

    fn start_group(&mut self, op: &Op<'_>) {
        self.at_seed = false;
        match &mut self.last {
            Some((t, text)) => {
                *t = op.time;
                text.clear();
                text.push_str(&op.created_at);
            }
            None => self.last = Some((op.time, op.created_at.to_string())),
        }
        if self.len > SMALL_GROUP {
            self.big.clear();
        }
        self.len = 0;
        if self.slots.len() > 4 * SMALL_GROUP {
            // Do not keep the strings of a past huge group for ever.
            self.slots.truncate(SMALL_GROUP);
            self.slots.shrink_to_fit();
        }
        self.insert(&op.cid);
    }

    /// Classifies `op`, or explains why it breaks the order.
    pub fn observe(&mut self, op: &Op<'_>) -> std::result::Result<Seen, String> {
        let seen = self.peek(op)?;
        if seen == Seen::New {
            self.record(op);
        }
        Ok(seen)
    }

    /// What [`Sequencer::observe`] would say of `op`, remembering nothing.
    pub fn peek(&self, op: &Op<'_>) -> std::result::Result<Seen, String> {
        match &self.last {
            Some((t, text)) if op.time < *t && self.at_seed => Err(format!(
                "createdAt {} is before the archive's end {}: this input is already archived",
                op.created_at, text
            )),
            Some((t, text)) if op.time < *t => Err(format!(
                "createdAt goes backwards: {} is before {}, seen earlier",
                op.created_at, text
            )),
            Some((t, _)) if op.time == *t && self.contains(&op.cid) => Ok(Seen::Duplicate),
            _ => Ok(Seen::New),
        }
    }

    /// Remembers `op`, which [`Sequencer::peek`] found new.
    pub fn record(&mut self, op: &Op<'_>) {
        match &self.last {
            Some((t, _)) if op.time == *t => self.insert(&op.cid),
            _ => self.start_group(op),
        }
    }

    /// The latest createdAt seen (as an instant and as written).
    pub fn last(&self) -> Option<(Timestamp, &str)> {
        self.last.as_ref().map(|(t, s)| (*t, s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequencer_handles_large_tie_groups_and_reuses_them() {
        let t1 = "2024-01-01T00:00:00.001Z";
        let t2 = "2024-01-01T00:00:00.002Z";
        let cids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        let op = |t: &'static str, cid: &str| Op {
            did: "d".into(),
            cid: cid.to_string().into(),
            created_at: t.into(),
            time: Timestamp::parse(t).unwrap(),
        };
        let mut s = Sequencer::default();
        for round in [t1, t2] {
            for c in &cids {
                assert_eq!(s.observe(&op(round, c)), Ok(Seen::New), "{round} {c}");
            }
            for c in &cids {
                assert_eq!(s.observe(&op(round, c)), Ok(Seen::Duplicate), "{round} {c}");
            }
        }
        let mut seeded = Sequencer::seeded(t1, Timestamp::parse(t1).unwrap(), cids.clone());
        assert_eq!(seeded.observe(&op(t1, "c99")), Ok(Seen::Duplicate));
        assert_eq!(seeded.observe(&op(t1, "new")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c99")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c1")), Ok(Seen::New));
        assert_eq!(seeded.observe(&op(t2, "c99")), Ok(Seen::Duplicate));
    }

    #[test]
    fn sequencer_drops_repeats_and_refuses_going_back() {
        let op = |t: &'static str, cid: &'static str| Op {
            did: "d".into(),
            cid: cid.into(),
            created_at: t.into(),
            time: Timestamp::parse(t).unwrap(),
        };
        let mut s = Sequencer::seeded(
            "2024-01-01T00:00:00.005Z",
            Timestamp::parse("2024-01-01T00:00:00.005Z").unwrap(),
            ["x".to_string()],
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.005Z", "x")),
            Ok(Seen::Duplicate)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.005Z", "y")),
            Ok(Seen::New)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.006Z", "x")),
            Ok(Seen::New)
        );
        assert_eq!(
            s.observe(&op("2024-01-01T00:00:00.006Z", "y")),
            Ok(Seen::New)
        );
        let e = s.observe(&op("2024-01-01T00:00:00.005Z", "z")).unwrap_err();
        assert_eq!(
            e,
            "createdAt goes backwards: 2024-01-01T00:00:00.005Z is before \
             2024-01-01T00:00:00.006Z, seen earlier"
        );
    }

    #[test]
    fn going_back_before_a_seed_says_the_input_is_already_archived() {
        let op = |t: &'static str| Op {
            did: "d".into(),
            cid: "c".into(),
            created_at: t.into(),
            time: Timestamp::parse(t).unwrap(),
        };
        let end = "2023-01-01T10:15:04.247Z";
        let s = Sequencer::seeded(end, Timestamp::parse(end).unwrap(), ["x".to_string()]);
        assert_eq!(
            s.peek(&op("2023-01-01T00:00:00.000Z")).unwrap_err(),
            "createdAt 2023-01-01T00:00:00.000Z is before the archive's end \
             2023-01-01T10:15:04.247Z: this input is already archived"
        );
        // Still the seed's group after a new operation at the same time.
        let mut s = s;
        assert_eq!(s.observe(&op(end)), Ok(Seen::New));
        assert!(s
            .peek(&op("2023-01-01T00:00:00.000Z"))
            .unwrap_err()
            .contains("archive's end"));
    }
}
