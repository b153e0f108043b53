//! Where the per-DID state lives: an embedded on-disk store (redb) with a
//! bounded in-memory cache in front, so that an audit of 40 million DIDs
//! holds only the recently used ones in memory.
//!
//! The store is a scratch file, removed when the audit ends; nothing in it
//! outlives the run, so commits skip fsync except every
//! [`DURABLE_EVERY`] batches (redb reclaims freed pages only after a
//! durable commit, which keeps the file from growing without bound). The
//! cache has two generations: entries used since the last turnover are
//! young, the rest old; when the young generation passes the limit it
//! becomes the old one and the previous old one is dropped. Every change is
//! written to the store at the end of each batch ([`State::flush`]), so
//! dropping cache entries never loses anything.
//!
//! This file is the only one that knows about redb; another store can take
//! its place behind the same four methods.

use super::rules::DidState;
use crate::error::{Error, Result};
use redb::{Database, Durability, TableDefinition};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("did_state");
/// redb's own page cache (its default is 1 GiB, which would make the
/// audit's memory grow with the store up to that size).
const STORE_CACHE_BYTES: usize = 32 << 20;
/// One commit in this many is durable (see the module doc).
const DURABLE_EVERY: u64 = 8;

/// The per-DID state of an audit.
pub struct State {
    db: Database,
    path: PathBuf,
    young: HashMap<String, DidState>,
    old: HashMap<String, DidState>,
    dirty: HashSet<String>,
    limit: usize,
    commits: u64,
}

fn store_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(
        format!("state store: {what}"),
        std::io::Error::other(e.to_string()),
    )
}

impl State {
    /// Creates a fresh store in `dir` (a new file, removed on drop) with a
    /// cache of about `limit` DIDs per generation.
    pub fn create(dir: &Path, limit: usize) -> Result<State> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".plc-audit-{}-{nanos}.redb", std::process::id()));
        let db = redb::Builder::new()
            .set_cache_size(STORE_CACHE_BYTES)
            .create(&path)
            .map_err(|e| store_err(&format!("creating {}", path.display()), e))?;
        Ok(State {
            db,
            path,
            young: HashMap::new(),
            old: HashMap::new(),
            dirty: HashSet::new(),
            limit: limit.max(1),
            commits: 0,
        })
    }

    /// The state of `did` (empty when it has none yet), for reading and
    /// changing; a change must be followed by [`State::mark`].
    pub fn get(&mut self, did: &str) -> Result<&mut DidState> {
        if !self.young.contains_key(did) {
            let st = match self.old.remove(did) {
                Some(st) => st,
                None => self.load(did)?,
            };
            self.young.insert(did.to_string(), st);
        }
        Ok(self.young.get_mut(did).expect("just inserted"))
    }

    /// Records that `did`'s state changed.
    pub fn mark(&mut self, did: &str) {
        if !self.dirty.contains(did) {
            self.dirty.insert(did.to_string());
        }
    }

    fn load(&self, did: &str) -> Result<DidState> {
        let tx = self.db.begin_read().map_err(|e| store_err("reading", e))?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(DidState::default()),
            Err(e) => return Err(store_err("reading", e)),
        };
        match table.get(did).map_err(|e| store_err("reading", e))? {
            Some(v) => serde_json::from_slice(v.value())
                .map_err(|e| store_err(&format!("decoding the state of {did}"), e)),
            None => Ok(DidState::default()),
        }
    }

    /// Writes every changed state to the store, then bounds the cache.
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty.is_empty() {
            let mut tx = self.db.begin_write().map_err(|e| store_err("writing", e))?;
            self.commits += 1;
            if !self.commits.is_multiple_of(DURABLE_EVERY) {
                tx.set_durability(Durability::None);
            }
            {
                let mut table = tx.open_table(TABLE).map_err(|e| store_err("writing", e))?;
                for did in self.dirty.drain() {
                    let st = self.young.get(&did).expect("a changed state is young");
                    let bytes = serde_json::to_vec(st).map_err(|e| store_err("encoding", e))?;
                    table
                        .insert(did.as_str(), bytes.as_slice())
                        .map_err(|e| store_err("writing", e))?;
                }
            }
            tx.commit().map_err(|e| store_err("committing", e))?;
        }
        if self.young.len() > self.limit {
            self.old = std::mem::take(&mut self.young);
        }
        Ok(())
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
