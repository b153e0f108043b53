//! Measures bundle format choices on generated operations, for the
//! README's format decision: zstd level, and one frame per bundle versus
//! frames of 100 operations behind a skippable metadata frame (what the Go
//! and Rust implementations write).
//!
//!     cargo run --release --example format -- [BUNDLES] [SEED] [CARRY_PERCENT] [FILE]
//!
//! CARRY_PERCENT (default 0) is the generator's `carry_percent`: the share
//! of operations that update a recent DID and repeat its keys, which makes
//! the input more like the real directory's. With FILE (JSON lines, for
//! example real bundles: `zstd -dc 0000*.jsonl.zst > ops.jsonl`), its
//! first BUNDLES * 10,000 lines are measured instead of generated ones
//! (SEED and CARRY_PERCENT then only name the run).
//!
//! The last rows are the random-access candidates (README, "Bundle
//! format"): plc-seal's parameters, frames of N operations, no metadata
//! frame, so the file stays a plain multi-frame zstd stream.
//!
//! Per variant, over BUNDLES bundles of 10,000 operations, single thread:
//! total size against `zstd -3` of each bundle (one frame, level 3), the
//! time to seal (compress + SHA-256 of content and file), to verify
//! (decompress + SHA-256 of both, no per-line checks), and to read one
//! operation at a random position (from the file bytes in memory).
use plcbundle::synth::{generate, SynthOptions};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::Instant;

const OPS: usize = 10_000;

#[derive(Clone, Copy)]
enum Params {
    /// A zstd level.
    Level(i32),
    /// What `plc-seal` writes.
    Current,
    /// Like `Current`, with this hash log and minimum match instead.
    Fast(u32, u32),
}

struct Variant {
    name: &'static str,
    params: Params,
    /// Operations per frame; `OPS` = one frame.
    per_frame: usize,
    /// A skippable metadata frame first (the Go and Rust layout).
    meta: bool,
}

fn compress(content: &[u8], lines: &[std::ops::Range<usize>], v: &Variant) -> Vec<u8> {
    use zstd::zstd_safe::CParameter::{HashLog, MinMatch};
    let mut c = match v.params {
        Params::Current => {
            // Plain standard frames, no metadata: what plc-seal would
            // write with frames of `per_frame` operations.
            let mut z = plcbundle::seal::BundleCompressor::new().unwrap();
            let mut out = Vec::new();
            for group in lines.chunks(v.per_frame) {
                let range = group[0].start..group[group.len() - 1].end;
                out.extend_from_slice(&z.compress(&content[range]).unwrap());
            }
            assert!(!v.meta);
            return out;
        }
        Params::Level(level) => zstd::bulk::Compressor::new(level).unwrap(),
        Params::Fast(hash_log, min_match) => {
            let mut c = zstd::bulk::Compressor::new(1).unwrap();
            for p in plcbundle::seal::ZSTD_PARAMETERS {
                c.set_parameter(p).unwrap();
            }
            c.set_parameter(HashLog(hash_log)).unwrap();
            c.set_parameter(MinMatch(min_match)).unwrap();
            c
        }
    };
    c.include_checksum(true).unwrap();
    c.include_contentsize(true).unwrap();
    if v.per_frame == OPS {
        return c.compress(content).unwrap();
    }
    // A deterministic skippable frame (magic, length, JSON) like the other
    // implementations' metadata, minus their clock and host.
    let meta = br#"{"format":"plcbundle-v1","frames":100,"ops_per_frame":100}"#;
    let mut out = Vec::new();
    if v.meta {
        out.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(meta);
    }
    for group in lines.chunks(v.per_frame) {
        let range = group[0].start..group[group.len() - 1].end;
        out.extend_from_slice(&c.compress(&content[range]).unwrap());
    }
    out
}

/// Decompresses as the tools do (frames that state their size are decoded
/// in one call, straight into the output).
fn decompress(file: &[u8]) -> Vec<u8> {
    plcbundle::repo::decompress(file).unwrap()
}

/// Operation `k` of a bundle file, as a reader that knows the layout.
fn read_one(file: &[u8], k: usize, v: &Variant) -> Vec<u8> {
    let (frame_bytes, index_in_frame) = if v.per_frame == OPS {
        (file, k)
    } else {
        // Skip the metadata frame, then whole frames by their headers.
        let mut off = if v.meta {
            8 + u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize
        } else {
            0
        };
        for _ in 0..k / v.per_frame {
            off += zstd::zstd_safe::find_frame_compressed_size(&file[off..]).unwrap();
        }
        let n = zstd::zstd_safe::find_frame_compressed_size(&file[off..]).unwrap();
        (&file[off..off + n], k % v.per_frame)
    };
    let content = decompress(frame_bytes);
    content
        .split(|&b| b == b'\n')
        .nth(index_in_frame)
        .unwrap()
        .to_vec()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bundles: usize = args.next().map_or(20, |a| a.parse().expect("BUNDLES"));
    let seed: u64 = args.next().map_or(42, |a| a.parse().expect("SEED"));
    let carry_percent: u32 = args.next().map_or(0, |a| a.parse().expect("CARRY_PERCENT"));
    let file = args.next();
    let source = match &file {
        Some(path) => format!("from {path}"),
        None => format!("generated, carry_percent {carry_percent}"),
    };
    let ops: Vec<Vec<u8>> = match file {
        Some(path) => {
            let text = std::fs::read(&path).expect("FILE");
            let ops: Vec<Vec<u8>> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .take(bundles * OPS)
                .map(<[u8]>::to_vec)
                .collect();
            assert_eq!(ops.len(), bundles * OPS, "{path} holds fewer lines");
            ops
        }
        None => generate(
            bundles * OPS,
            &SynthOptions {
                seed,
                carry_percent,
                ..SynthOptions::default()
            },
        )
        .into_iter()
        .map(|op| op.line)
        .collect(),
    };
    let mut chunks = Vec::new();
    for group in ops.chunks(OPS) {
        let mut content = Vec::new();
        let mut lines = Vec::new();
        for op in group {
            let start = content.len();
            content.extend_from_slice(op);
            content.push(b'\n');
            lines.push(start..content.len());
        }
        chunks.push((content, lines));
    }
    let one = |name, params| Variant {
        name,
        params,
        per_frame: OPS,
        meta: false,
    };
    let framed = |name, per_frame| Variant {
        name,
        params: Params::Current,
        per_frame,
        meta: false,
    };
    let variants = [
        one("1 frame, level 1", Params::Level(1)),
        one("1 frame, level 2", Params::Level(2)),
        one("1 frame, level 3", Params::Level(3)),
        one("1 frame, level 6", Params::Level(6)),
        one(
            "1 frame, fast strategy, 4 MiB window, 2^17 hash, 6-byte matches (current)",
            Params::Current,
        ),
        one(
            "1 frame, the same with a 2^18 hash and 7-byte matches",
            Params::Fast(18, 7),
        ),
        Variant {
            name: "100 frames of 100 + metadata, level 1 (Go/Rust)",
            params: Params::Level(1),
            per_frame: 100,
            meta: true,
        },
        Variant {
            name: "100 frames of 100 + metadata, level 3",
            params: Params::Level(3),
            per_frame: 100,
            meta: true,
        },
        framed("current parameters, plain frames of 1000 operations", 1000),
        framed("current parameters, plain frames of 250 operations", 250),
        framed("current parameters, plain frames of 100 operations", 100),
    ];

    let reference: usize = chunks
        .iter()
        .map(|(c, l)| compress(c, l, &variants[2]).len())
        .sum();
    let uncompressed: usize = chunks.iter().map(|(c, _)| c.len()).sum();
    println!(
        "{bundles} bundles, {} operations ({source}), {uncompressed} bytes; one thread; times per bundle",
        bundles * OPS
    );
    println!();
    println!(
        "| variant | size / zstd -3 | content / size | seal ms | verify ms | read one op ms |"
    );
    println!("|---|---|---|---|---|---|");
    for v in &variants {
        let t = Instant::now();
        let files: Vec<Vec<u8>> = chunks
            .iter()
            .map(|(c, l)| {
                let f = compress(c, l, v);
                black_box((Sha256::digest(c), Sha256::digest(&f)));
                f
            })
            .collect();
        let seal = t.elapsed().as_secs_f64() * 1000.0 / bundles as f64;
        let size: usize = files.iter().map(Vec::len).sum();
        let t = Instant::now();
        for f in &files {
            let c = decompress(f);
            black_box((Sha256::digest(&c), Sha256::digest(f)));
        }
        let verify = t.elapsed().as_secs_f64() * 1000.0 / bundles as f64;
        // Reading one operation: 200 pseudo-random positions.
        let mut x = seed | 1;
        let t = Instant::now();
        let reads = 200;
        for _ in 0..reads {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = (x % bundles as u64) as usize;
            let k = ((x >> 20) % OPS as u64) as usize;
            let line = read_one(&files[b], k, v);
            assert_eq!(
                line,
                &chunks[b].0[chunks[b].1[k].start..chunks[b].1[k].end - 1]
            );
        }
        let read = t.elapsed().as_secs_f64() * 1000.0 / reads as f64;
        println!(
            "| {} | {:.3} | {:.2} | {seal:.1} | {verify:.1} | {read:.2} |",
            v.name,
            size as f64 / reference as f64,
            uncompressed as f64 / size as f64,
        );
    }
}
