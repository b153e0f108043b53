//! plc-export: pages the PLC directory's /export into JSON lines.
use clap::Parser;
use plcbundle::export::{export, ExportConfig, HttpDirectory, Start};
use plcbundle::{cli, index, progress, repo, time};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Pages GET URL/export and writes each operation once, in the directory's
/// order, as the exact bytes received plus a newline.
///
/// Reads nothing on stdin; writes JSON lines on stdout. Lossless at page
/// boundaries: the boundary millisecond is requested again and operations
/// already written are dropped, so ties on a millisecond survive paging
/// whether the server treats `after` as exclusive or inclusive, and
/// operations that arrive between two requests are simply the next page.
/// Stops when caught up (or keeps polling with --follow).
///
/// Trusts the server for no more than a page can be: at most --count
/// operations of at most 1 MiB each, read as a stream (a body past that,
/// however it is compressed, is an error, not memory). Follows no
/// redirect. Every failed request is reported on stderr with when it will
/// be tried again, even with -q.
#[derive(Parser, Debug)]
#[command(name = "plc-export", version, after_long_help = AFTER)]
struct Args {
    /// Base URL of the directory.
    #[arg(long, default_value = index::DEFAULT_ORIGIN)]
    url: String,
    /// Continue where the archive in DIR ends (from the beginning when DIR
    /// does not exist or holds no bundle). Refuses a DIR of another origin.
    #[arg(long, value_name = "DIR", conflicts_with = "since")]
    repo: Option<PathBuf>,
    /// Start at TIME (RFC 3339); operations at that exact millisecond are included.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<time::Timestamp>,
    /// Operations per request (the directory serves at most 1000 whatever
    /// is asked; a larger value is allowed and harmless). Also the most
    /// operations one millisecond may hold: more cannot be paged through
    /// losslessly and stop the export with an error.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    count: u64,
    /// Requests per minute; 0 = unlimited.
    #[arg(long, default_value_t = 90)]
    rate: u32,
    /// Hold back operations younger than this (measured against the
    /// server's Date header); they are fetched on a later run.
    /// Units: ms, s, m, h, d (250ms, 60s, 5m, 1h); a bare number is seconds.
    #[arg(long, default_value = "60s", value_parser = time::parse_duration)]
    lag: Duration,
    /// Keep polling instead of stopping when caught up.
    #[arg(long)]
    follow: bool,
    /// Polling interval with --follow.
    /// Units: ms, s, m, h, d (250ms, 60s, 5m, 1h); a bare number is seconds.
    #[arg(long, default_value = "60s", value_parser = time::parse_duration)]
    interval: Duration,
    /// Retries of a failed request (5xx, connection error, cut body, 429)
    /// before exiting with status 3. Each one is announced on stderr; a
    /// 429 waits for its Retry-After, at most 5 minutes.
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// First retry delay; doubles on each further retry, up to 60s.
    /// Units: ms, s, m, h, d (250ms, 60s, 5m, 1h); a bare number is seconds.
    #[arg(long, default_value = "1s", value_parser = time::parse_duration)]
    backoff: Duration,
    /// No progress or notes on stderr (errors and retries are always
    /// printed). On a
    /// terminal a live status line is shown; otherwise a plain line every
    /// 30 s and a summary at the end.
    #[arg(short, long)]
    quiet: bool,
    /// Per-request timeout.
    /// Units: ms, s, m, h, d (250ms, 60s, 5m, 1h); a bare number is seconds.
    #[arg(long, default_value = "120s", value_parser = time::parse_duration)]
    timeout: Duration,
}

const AFTER: &str = "\
EXAMPLES:
    # Archive incrementally (the central pipeline):
    plc-export --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR

    # Everything since a moment, as JSON lines, compressed:
    plc-export --since 2024-05-01T00:00:00Z | zstd -q > since-may.jsonl.zst

    # Just look at the newest operations of one DID:
    plc-export --repo DIR | jq -c 'select(.did == \"did:plc:ewvi7nxzyoun6zhxrhs64oiz\")'

EXIT STATUS:
    0  caught up (or the reader closed the pipe)
    2  usage error, refused repository, or a response the tool refuses (the
       request is named): a line that is not an operation, a line over
       1 MiB, more lines than --count, operations older than `after` (a
       server ignoring it), more than --count operations in one
       millisecond, a redirect (its Location is named), another 4xx
    3  the directory failed and retries ran out; every line written is whole";

fn parse_time(s: &str) -> Result<time::Timestamp, String> {
    time::Timestamp::parse(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 timestamp"))
}

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-export", || {
        let start = match (&args.repo, args.since) {
            (Some(dir), _) => match repo::continue_from(dir, Some(&args.url))? {
                Some(tail) => Start::After(tail),
                None => Start::Beginning,
            },
            (None, Some(t)) => Start::Since(t),
            (None, None) => Start::Beginning,
        };
        let cfg = ExportConfig {
            start,
            count: args.count as usize,
            rate: args.rate,
            lag: args.lag,
            follow: args.follow.then_some(args.interval),
            retries: args.retries,
            backoff: args.backoff,
        };
        let mut dir = HttpDirectory::new(&args.url, args.timeout);
        let mut out = cli::stdout();
        let mut stderr = std::io::stderr();
        let mode = progress::Mode::pick(args.quiet, stderr.is_terminal());
        let mut progress = progress::Progress::new(&mut stderr, mode);
        export(&mut dir, &cfg, &mut out, &mut progress).map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
