//! Writes N deterministic, realistic synthetic operations as JSON lines:
//! `cargo run --release --example synth -- N [SEED] > ops.jsonl`.
//! Used by the benchmark, the demo and for trying the tools by hand.
use std::io::Write;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let opts = plcbundle::synth::SynthOptions {
        seed,
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
