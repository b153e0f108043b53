//! Writes N deterministic, realistic synthetic operations as JSON lines:
//! `cargo run --release --example synth -- N [SEED] [CARRY_PERCENT] > ops.jsonl`.
//! Used by the benchmark, the demo and for trying the tools by hand.
//! CARRY_PERCENT (default 0) is the share of operations that update a
//! recent DID and repeat its keys, as on the real directory.
use std::io::Write;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let carry_percent: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let opts = plcbundle::synth::SynthOptions {
        seed,
        carry_percent,
        ..Default::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for op in plcbundle::synth::generate(n, &opts) {
        if out
            .write_all(&op.line)
            .and_then(|_| out.write_all(b"\n"))
            .is_err()
        {
            return std::process::ExitCode::from(2);
        }
    }
    if out.flush().is_err() {
        return std::process::ExitCode::from(2);
    }
    std::process::ExitCode::SUCCESS
}
