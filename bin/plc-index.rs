//! plc-index: brings a repository's DID index up to date.
use clap::Parser;
use plcbundle::cli;
use plcbundle::did::build::{index, IndexConfig};
use std::io::Write;
use std::path::PathBuf;

/// Brings the DID index of DIR (DIR/did-index/) up to date with DIR's
/// sealed bundles, so that plc-did and plc-serve can answer for any DID by
/// reading only the frames that hold its operations.
///
/// Incremental: only bundles sealed since the last run are read (each
/// checked against the index's compressed_hash). Idempotent. Crash-safe: a
/// kill at any instant leaves the previous index, the new one, or files the
/// next run removes. Safe while plc-seal appends: it indexes the bundles
/// plc_bundles.json lists when it starts. An index that no longer matches
/// the archive (another chain, or files re-sealed in another layout) is
/// rebuilt. Other implementations and plc-verify ignore did-index/.
///
/// Reads nothing on stdin; writes only inside DIR/did-index/, and a
/// summary on stderr (-q silences it).
#[derive(Parser, Debug)]
#[command(name = "plc-index", version, after_long_help = AFTER)]
struct Args {
    /// The archive directory.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Threads reading bundles; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Bundles per new segment (for tests).
    #[arg(long, default_value_t = 0, hide = true)]
    batch: usize,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

const AFTER: &str = "\
EXAMPLES:
    plc-index --repo DIR && plc-did --repo DIR did:plc:ewvi7nxzyoun6zhxrhs64oiz

    # After every pass of the pipeline (what `make archive` does):
    plc-export --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR && plc-index --repo DIR

EXIT STATUS:
    0  the index covers every bundle the archive index listed
    2  usage error, no archive at DIR, a bundle file that does not match
       the archive index, another plc-index running, or an I/O error";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-index", || {
        let cfg = IndexConfig {
            repo: args.repo.clone(),
            threads: args.threads,
            batch: args.batch,
        };
        let mut log: Box<dyn Write> = if args.quiet {
            Box::new(std::io::sink())
        } else {
            Box::new(std::io::stderr())
        };
        let report = index(&cfg, &mut *log)?;
        if !args.quiet {
            let rebuilt = if report.rebuilt {
                " (rebuilt: the old index did not match the archive)"
            } else {
                ""
            };
            let _ = writeln!(
                log,
                "plc-index: {} new bundles indexed; index at bundle {} in {} segments{rebuilt}",
                report.indexed, report.last_bundle, report.segments
            );
        }
        Ok(())
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
