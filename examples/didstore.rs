//! Measures the DID index's storage against an embedded key-value
//! database (redb, already a dependency for plc-audit's scratch state),
//! for the README's storage decision (issue 13):
//!
//!     cargo run --release --example didstore -- DIR DIDS_FILE
//!
//! Reads every operation's DID of the archive DIR and stores the same
//! records plc-index stores (15-byte DID key, bundle, position: 21 bytes,
//! see `src/did/store.rs`) as the keys of a redb table, one write
//! transaction per bundle as an incremental indexer would commit them.
//! Prints the build time (without reading the bundles), the file's size
//! before and after compaction, and the time to find the locations of
//! every DID of DIDS_FILE (one per line). `scripts/didstore-sqlite.py` does the same with SQLite.
use plcbundle::did::store::{did_key, record, Loc, KEY_LEN};
use redb::{Database, Durability, TableDefinition};
use std::time::Instant;

const TABLE: TableDefinition<&[u8], ()> = TableDefinition::new("did_locs");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, dids] = &args[..] else {
        eprintln!("usage: didstore DIR DIDS_FILE");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    let (_, parsed) = plcbundle::repo::read_index_file(&dir.join("plc_bundles.json")).unwrap();
    // Every bundle's records, read first so that only the store is timed.
    let mut bundles: Vec<Vec<[u8; 21]>> = Vec::new();
    for entry in &parsed.index.bundles {
        let content = plcbundle::repo::read_bundle(dir, entry).unwrap();
        let mut records = Vec::new();
        for (pos, line) in
            plcbundle::line::split_lines(content.strip_suffix(b"\n").unwrap()).enumerate()
        {
            let op = plcbundle::line::parse_op(line).unwrap();
            let loc = Loc {
                bundle: entry.bundle_number as u32,
                pos: pos as u16,
            };
            records.push(record(&did_key(&op.did), loc));
        }
        bundles.push(records);
    }
    let ops: usize = bundles.iter().map(Vec::len).sum();
    let path = std::env::temp_dir().join(format!("didstore-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let t = Instant::now();
    let db = Database::create(&path).unwrap();
    for records in &bundles {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate);
        {
            let mut table = tx.open_table(TABLE).unwrap();
            for r in records {
                table.insert(&r[..], ()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let build = t.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    // redb keeps freed pages and regions it grew into; compaction is what
    // a long-lived index would run now and then.
    let mut db = db;
    let t = Instant::now();
    db.compact().unwrap();
    let compact = t.elapsed();
    let compacted = std::fs::metadata(&path).unwrap().len();
    let wanted: Vec<String> = std::fs::read_to_string(dids)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let t = Instant::now();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(TABLE).unwrap();
    let mut found = 0usize;
    for did in &wanted {
        let key = did_key(did);
        let mut end = [0xFFu8; 21];
        end[..KEY_LEN].copy_from_slice(&key);
        for r in table.range(&key[..]..&end[..]).unwrap() {
            r.unwrap();
            found += 1;
        }
    }
    let lookup = t.elapsed();
    println!(
        "redb: {ops} records, build {:.2} s ({} commits), {size} bytes ({:.1} per record); compacted in {:.2} s: {compacted} bytes ({:.1} per record); {} lookups {:.1} ms ({found} locations)",
        build.as_secs_f64(),
        bundles.len(),
        size as f64 / ops as f64,
        compact.as_secs_f64(),
        compacted as f64 / ops as f64,
        wanted.len(),
        lookup.as_secs_f64() * 1e3
    );
    drop(table);
    drop(tx);
    drop(db);
    let _ = std::fs::remove_file(&path);
}
