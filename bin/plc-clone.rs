//! plc-clone: copies another archive's operations, every bundle verified.
use clap::Parser;
use plcbundle::clone::{clone, CloneConfig};
use plcbundle::source::{Source, SourceConfig};
use plcbundle::verify::BundleRange;
use plcbundle::{cli, progress, time};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Copies another archive's operations to stdout, each bundle checked
/// against the mirror's index first.
///
/// The archive is a plcbundle V1 server (the Go/Rust `plcbundle server` or
/// plc-serve), a static host serving the repository's files, or a
/// directory; every operation of its bundles is written in order, as the
/// exact bytes plus a newline.
///
/// Reads nothing on stdin; writes JSON lines on stdout. Nothing unverified
/// is written: before the first line of a bundle, its file's SHA-256, its
/// content's SHA-256, its operation count and the chain hash recomputed
/// from genesis (or from the head of --repo) must match the mirror's
/// index. Piped through plc-dedup | plc-chunk | plc-seal, the copy ends with
/// the mirror's content_hash and hash for every bundle.
#[derive(Parser, Debug)]
#[command(name = "plc-clone", version, after_long_help = AFTER)]
struct Args {
    /// The archive to copy: http(s)://HOST[/PATH] (its /index.json or
    /// /plc_bundles.json is found by itself) or a directory.
    #[arg(long, value_name = "URL")]
    url: String,
    /// Continue the archive in DIR: start after its last bundle, only if its
    /// head hash is the mirror's hash for that bundle. Refuses a DIR of
    /// another origin or a mirror shorter than DIR.
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Refuse a mirror whose index names another origin than ORIGIN (give
    /// plc-seal the same --origin).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// Bundle files downloaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Copy only these bundles: N, N-M, N- or -M.
    #[arg(long, value_name = "RANGE", value_parser = BundleRange::parse, allow_hyphen_values = true)]
    bundles: Option<BundleRange>,
    /// Requests per minute, over all downloads; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Retries of a failed request (5xx, connection error, cut body, 429)
    /// before exiting with status 3.
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// First retry delay; doubles on each further retry, up to 60s.
    #[arg(long, default_value = "1s", value_parser = time::parse_duration)]
    backoff: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "300s", value_parser = time::parse_duration)]
    timeout: Duration,
    /// No progress or notes on stderr (errors are always printed). On a
    /// terminal a live status line is shown; otherwise a plain line every
    /// 30 s and a summary at the end.
    #[arg(short, long)]
    quiet: bool,
}

const AFTER: &str = "\
EXAMPLES:
    # Join the network: copy a mirror, every bundle checked, into DIR:
    plc-clone --url https://MIRROR --repo DIR --origin https://plc.directory \
      | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR --origin https://plc.directory

    # Then keep it current from the directory itself:
    plc-export --url https://plc.directory --repo DIR \
      | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR --origin https://plc.directory

    # The first 100 bundles of another archive on disk, as JSON lines:
    plc-clone --url /mnt/other-archive --bundles 1-100 | zstd -q > first100.jsonl.zst

EXIT STATUS:
    0  every bundle asked for was written (or there was nothing to copy)
    1  a bundle failed a check (named with its field on stderr); the
       bundles before it were written whole, nothing of it
    2  usage error, refused --repo (another origin, a shorter mirror, or a
       chain that parts from the mirror's: the bundle is named), a mirror of
       another --origin, I/O error
    3  the mirror failed and retries ran out; every bundle written is whole";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    let mut failed = false;
    let code = cli::main_with("plc-clone", || {
        let quiet = args.quiet;
        let notes: plcbundle::source::Notes = Arc::new(move |msg: &str| {
            if !quiet {
                let _ = writeln!(std::io::stderr().lock(), "plc-clone: {msg}");
            }
        });
        let scfg = SourceConfig {
            retries: args.retries,
            backoff: args.backoff,
            rate: args.rate,
            timeout: args.timeout,
            notes,
        };
        let source = Source::open(&args.url, &scfg)?;
        let cfg = CloneConfig {
            repo: args.repo.clone(),
            range: args.bundles,
            jobs: args.jobs as usize,
            origin: args.origin.clone(),
        };
        let mut out = cli::stdout();
        let mut stderr = std::io::stderr();
        let mode = progress::Mode::pick(args.quiet, stderr.is_terminal());
        let mut progress = progress::Progress::new(&mut stderr, mode);
        let report = clone(&source, &cfg, &mut out, &mut progress)?;
        let summary = match report.planned {
            None => format!(
                "plc-clone: nothing to copy from {} ({} bundles)",
                source.describe(),
                source.index.bundles.len()
            ),
            Some((a, b)) => format!(
                "plc-clone: copied {} of bundles {a}-{b} from {} ({} operations, {:.1} MB, {}); origin {}",
                report.written,
                source.describe(),
                report.operations,
                report.downloaded as f64 / 1e6,
                progress::human(progress.elapsed()),
                source.index.origin
            ),
        };
        progress.line(&summary);
        drop(progress);
        if let Some(f) = report.failure {
            let _ = writeln!(std::io::stderr().lock(), "plc-clone: {f}");
            failed = true;
        }
        Ok(())
    });
    if failed {
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
