//! Archives written the way the other V1 implementations write them, built
//! here with the zstd library directly (never with the project's code).

use super::run::{expected_bundles, sha256_hex, ExpectedBundle};
use plcbundle::synth::SynthOp;
use serde_json::{json, Value};
use std::path::Path;

/// Each op's line plus `\n`, concatenated.
pub fn joined(ops: &[SynthOp]) -> Vec<u8> {
    let mut v = Vec::new();
    for o in ops {
        v.extend_from_slice(&o.line);
        v.push(b'\n');
    }
    v
}

/// `createdAt` the way Go's RFC3339Nano prints it: trailing zeros of the
/// fraction trimmed, no fraction at all when it is zero.
pub fn go_time(t: &str) -> String {
    let (head, frac) = t.strip_suffix('Z').unwrap().split_once('.').unwrap();
    match frac.trim_end_matches('0') {
        "" => format!("{head}Z"),
        f => format!("{head}.{f}Z"),
    }
}

/// Writes `ops` (whole bundles only) into `dir` as the Go implementation
/// does: per bundle a skippable metadata frame (with a clock and a host,
/// so never reproducible) and then 100 zstd frames of 100 operations at
/// level 1; an index without `parent` on bundle 1, trimmed fractions in
/// start/end times and a `compressed_size` counting only the data frames.
/// Returns the bundles as the specification defines them.
pub fn write_go_archive(dir: &Path, ops: &[SynthOp]) -> Vec<ExpectedBundle> {
    let lines: Vec<Vec<u8>> = ops.iter().map(|o| o.line.clone()).collect();
    let want = expected_bundles(&lines);
    std::fs::create_dir_all(dir).unwrap();
    let mut entries: Vec<Value> = Vec::new();
    for (i, chunk) in ops.chunks_exact(10_000).enumerate() {
        let n = i as u64 + 1;
        let meta = json!({
            "format": "plcbundle-v1",
            "bundle_number": n,
            "created_at": "2026-11-24T10:00:00.5Z",
            "host": "3f2a9c",
        })
        .to_string();
        let mut file = Vec::new();
        file.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        file.extend_from_slice(meta.as_bytes());
        let data_start = file.len();
        for frame in chunk.chunks(100) {
            file.extend(zstd::bulk::compress(&joined(frame), 1).unwrap());
        }
        let data_len = file.len() - data_start;
        std::fs::write(dir.join(format!("{n:06}.jsonl.zst")), &file).unwrap();
        let content = joined(chunk);
        assert!(content == want[i].content);
        let dids: std::collections::HashSet<&str> = chunk.iter().map(|o| o.did.as_str()).collect();
        let mut e = json!({
            "bundle_number": n,
            "start_time": go_time(&chunk[0].created_at),
            "end_time": go_time(&chunk[9_999].created_at),
            "operation_count": 10_000,
            "did_count": dids.len(),
            "hash": want[i].hash,
            "content_hash": want[i].content_hash,
            "compressed_hash": sha256_hex(&file),
            "compressed_size": data_len,
            "uncompressed_size": content.len(),
            "cursor": entries.last().map_or(json!(""), |p| p["end_time"].clone()),
            "created_at": "2026-11-24T10:00:00.5Z",
        });
        if i > 0 {
            e["parent"] = json!(want[i - 1].hash);
        }
        entries.push(e);
    }
    write_index(dir, entries, true);
    want
}

/// Writes an index naming `entries` (origin https://plc.directory), its
/// totals summed from them; `total_uncompressed_size_bytes` only when asked
/// (the Python reference leaves it out).
pub fn write_index(dir: &Path, entries: Vec<Value>, with_uncompressed_total: bool) {
    let total: u64 = entries
        .iter()
        .map(|e| e["compressed_size"].as_u64().unwrap())
        .sum();
    let total_u: u64 = entries
        .iter()
        .map(|e| e["uncompressed_size"].as_u64().unwrap())
        .sum();
    let mut idx = json!({
        "version": "1.0",
        "origin": "https://plc.directory",
        "last_bundle": entries.len(),
        "updated_at": "2026-11-24T10:00:00.123456789Z",
        "total_size_bytes": total,
        "bundles": entries,
    });
    if with_uncompressed_total {
        idx["total_uncompressed_size_bytes"] = json!(total_u);
    }
    std::fs::write(
        dir.join("plc_bundles.json"),
        serde_json::to_vec_pretty(&idx).unwrap(),
    )
    .unwrap();
}
