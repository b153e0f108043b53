//! plc-diff: where and why two archives part.
use clap::Parser;
use plcbundle::diff::{diff, write_human, write_json, Verdict};
use plcbundle::source::{Source, SourceConfig};
use plcbundle::{cli, time};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Compares two archives, each a directory or a mirror's URL (a V1 server
/// or a static host, as plc-clone reads them).
///
/// Reads the two indexes and writes its answer on stdout: when one chain
/// is a prefix of the other (or they are equal), says so and how long each
/// is. Otherwise names the first
/// bundle whose hash differs, reads that bundle from both (checking each
/// against its own index) and lists its differing operations matched by
/// CID: only in A, only in B, or changed (with the top-level fields whose
/// JSON values differ, or none when only the bytes differ: key order,
/// escapes, spacing).
#[derive(Parser, Debug)]
#[command(name = "plc-diff", version, after_long_help = AFTER)]
struct Args {
    /// The first archive (A): a directory or an http(s) URL.
    a: String,
    /// The second archive (B): a directory or an http(s) URL.
    b: String,
    /// One JSON object per differing operation: {"bundle", "cid", "kind"
    /// ("only-in-a", "only-in-b" or "changed"), "fields" (changed only),
    /// "did", "createdAt"}; nothing when the chains agree.
    #[arg(long)]
    json: bool,
    /// Retries of a failed request before exiting with status 3.
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// First retry delay; doubles on each further retry, up to 60s.
    #[arg(long, default_value = "1s", value_parser = time::parse_duration)]
    backoff: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "300s", value_parser = time::parse_duration)]
    timeout: Duration,
    /// No notes about retried requests on stderr.
    #[arg(short, long)]
    quiet: bool,
}

const AFTER: &str = "\
EXAMPLES:
    plc-diff /srv/plc https://MIRROR
    plc-diff https://MIRROR-A https://MIRROR-B
    plc-diff --json /srv/plc https://MIRROR | jq -r 'select(.kind == \"changed\") | .fields[]' | sort | uniq -c

EXIT STATUS:
    0  the chains agree: equal, or one is a prefix of the other
    1  they differ (the first differing bundle is explained)
    2  usage error, or an archive cannot be read or fails its own index
    3  a mirror could not be reached after retries";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    let mut differ = false;
    let code = cli::main_with("plc-diff", || {
        let quiet = args.quiet;
        let cfg = SourceConfig {
            retries: args.retries,
            backoff: args.backoff,
            rate: 0,
            timeout: args.timeout,
            notes: Arc::new(move |msg: &str| {
                if !quiet {
                    let _ = writeln!(std::io::stderr().lock(), "plc-diff: {msg}");
                }
            }),
        };
        let a = Source::open(&args.a, &cfg)?;
        let b = Source::open(&args.b, &cfg)?;
        let verdict = diff(&a, &b)?;
        let mut out = cli::stdout();
        if args.json {
            write_json(&verdict, &mut out)?;
        } else {
            write_human(&verdict, &a, &b, &mut out)?;
        }
        out.flush()
            .map_err(|e| plcbundle::Error::io("writing output", e))?;
        differ = matches!(verdict, Verdict::Differ { .. });
        Ok(())
    });
    if differ {
        return std::process::ExitCode::from(plcbundle::error::EXIT_PROBLEMS);
    }
    code
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
