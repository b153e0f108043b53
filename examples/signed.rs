//! Writes N validly signed PLC operations as export lines, for the
//! plc-audit benchmark and for trying it by hand:
//!
//!     cargo run --release --example signed -- N [SEED] > ops.jsonl
//!
//! New DIDs on a few shared PDS secp256k1 rotation keys (some with a P-256
//! user key first, a few legacy `create`s), handle and PDS changes of
//! recent DIDs, tombstones, and recoveries that nullify an update within
//! seconds. The generator is the integration tests' (its own DAG-CBOR
//! encoder and CIDs), so the benchmark audits the same kind of data the
//! tests check.
#[path = "../tests/it/common/signed_ops.rs"]
mod signed_ops;

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: signed N [SEED]");
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in signed_ops::archive(n, seed) {
        out.write_all(&line).expect("writing stdout");
    }
    out.flush().expect("writing stdout");
}
