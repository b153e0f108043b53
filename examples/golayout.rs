//! Rewrites an archive in the layout the Go and Rust implementations
//! write, for the benchmark's "archive it has never seen" rows:
//!
//!     cargo run --release --example golayout -- SRC DST
//!
//! Per bundle: a skippable metadata frame (magic 0x184D2A50, a JSON
//! payload), then frames of 100 operations at zstd level 1; in the index a
//! `compressed_hash` over the whole file, a `compressed_size` counting only
//! the data frames, start and end times with the fraction's trailing zeros
//! trimmed as Go prints them, and no `parent` on bundle 1. Content, content
//! hashes and chain hashes stay those of SRC.
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const OPS_PER_FRAME: usize = 100;

fn go_time(t: &str) -> String {
    let Some((head, frac)) = t.strip_suffix('Z').and_then(|t| t.split_once('.')) else {
        return t.to_string();
    };
    match frac.trim_end_matches('0') {
        "" => format!("{head}Z"),
        f => format!("{head}.{f}Z"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = &args[..] else {
        eprintln!("usage: golayout SRC DST");
        std::process::exit(2);
    };
    let (src, dst) = (Path::new(src), Path::new(dst));
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(src.join("plc_bundles.json")).expect("SRC index"))
            .expect("index JSON");
    std::fs::create_dir_all(dst).expect("DST");
    let mut total = 0u64;
    for entry in index["bundles"].as_array_mut().expect("bundles") {
        let n = entry["bundle_number"].as_u64().expect("bundle_number");
        let name = format!("{n:06}.jsonl.zst");
        let content = zstd::decode_all(&std::fs::read(src.join(&name)).expect("bundle")[..])
            .expect("decompress");
        let meta = format!(r#"{{"format":"plcbundle-v1","bundle_number":{n},"frames":100}}"#);
        let mut file = Vec::new();
        file.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        file.extend_from_slice(meta.as_bytes());
        let data_start = file.len();
        let lines: Vec<&[u8]> = content.split_inclusive(|&b| b == b'\n').collect();
        for frame in lines.chunks(OPS_PER_FRAME) {
            file.extend(zstd::bulk::compress(&frame.concat(), 1).expect("compress"));
        }
        std::fs::write(dst.join(&name), &file).expect("write bundle");
        let data_len = (file.len() - data_start) as u64;
        total += data_len;
        entry["compressed_hash"] = Value::from(hex(&Sha256::digest(&file)));
        entry["compressed_size"] = Value::from(data_len);
        for key in ["start_time", "end_time", "cursor"] {
            if let Some(t) = entry[key].as_str() {
                entry[key] = Value::from(go_time(t));
            }
        }
        if n == 1 {
            entry.as_object_mut().expect("entry").remove("parent");
        }
    }
    index["total_size_bytes"] = Value::from(total);
    std::fs::write(
        dst.join("plc_bundles.json"),
        serde_json::to_vec_pretty(&index).expect("index"),
    )
    .expect("write index");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
