//! plc-verify: checks an archive end to end.
use clap::Parser;
use plcbundle::verify::{verify, write_summary, BundleRange, VerifyConfig};
use plcbundle::{cli, progress, Error};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Recomputes and checks everything the index of DIR claims: each file's
/// compressed hash and size, content hash and size, operation and DID
/// counts, start and end times, the chain hash from genesis, parent and
/// cursor links, numbering, order inside and across bundles, the totals.
///
/// Writes one line per problem (naming the bundle and the field) and a
/// summary on stdout (with --json, one JSON object per problem and a
/// summary object). Keeps going after a problem and reports every one.
/// Accepts archives written by the other V1 implementations (multi-frame
/// files with a skippable metadata frame, Go's index quirks).
#[derive(Parser, Debug)]
#[command(name = "plc-verify", version, after_long_help = AFTER)]
struct Args {
    /// The archive directory (or give it as --repo DIR, like the other
    /// tools).
    #[arg(
        value_name = "DIR",
        required_unless_present = "repo",
        conflicts_with = "repo"
    )]
    dir: Option<PathBuf>,
    /// The archive directory, as the other tools take it.
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// One JSON object per line for scripts: each problem as
    /// {"bundle": N or null, "field": "...", "message": "..."} (warnings
    /// add "severity": "warning"), then always a summary {"ok": bool,
    /// "bundles": N, "operations": M, "head": "..." or null, "problems":
    /// K, "warnings": W, "checked": C, "quick": bool}.
    #[arg(long)]
    json: bool,
    /// Check the files of these bundles only: N, N-M, N- or -M. The index
    /// (numbering, links, chain of its hashes, totals) is always checked
    /// whole; the bundles outside the range are taken from the index.
    #[arg(long, value_name = "RANGE", value_parser = BundleRange::parse, allow_hyphen_values = true)]
    bundles: Option<BundleRange>,
    /// Fast check for large archives: each stored file's hash and size
    /// against the index, and the chain; nothing is decompressed.
    #[arg(long)]
    quick: bool,
    /// No progress on stderr (problems still go to stdout, errors to
    /// stderr). On a terminal a live count of checked bundles is shown;
    /// otherwise a plain line every 30 s.
    #[arg(short, long)]
    quiet: bool,
    /// Worker threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

const AFTER: &str = "\
EXAMPLES:
    plc-verify DIR && echo archive ok
    plc-verify --repo DIR                  # the same, spelled like the other tools
    plc-verify DIR | grep '^bundle'
    plc-verify --json DIR | jq -c 'select(.field)'        # problems as objects
    plc-verify --json DIR | tail -n 1 | jq -r .head       # the summary object
    plc-verify --quick DIR                 # hashes of the stored files and the chain only
    plc-verify --bundles 7000- DIR         # the newest bundles in full, the rest from the index

    # Compare heads with another archivist: the last line is the same for
    # the same operations, whatever implementation wrote the files.
    plc-verify DIR | tail -n 1

EXIT STATUS:
    0  every check holds (warnings, such as an interrupted seal, allowed);
       the last line is `ok: ... head HASH` (with --json, a summary object
       with ok true)
    1  the archive has problems (each printed)
    2  usage error, or DIR or its index cannot be read";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-verify", || {
        let cfg = VerifyConfig {
            repo: args
                .repo
                .clone()
                .or(args.dir.clone())
                .expect("clap requires one"),
            threads: args.threads,
            range: args.bundles,
            quick: args.quick,
            json: args.json,
        };
        // A closed pipe must not hide the verdict: see cli::UntilClosed.
        let mut out = cli::UntilClosed::new(cli::stdout());
        let mut stderr = std::io::stderr();
        let mode = progress::Mode::pick(args.quiet, stderr.is_terminal());
        let mut progress = progress::Progress::new(&mut stderr, mode);
        let report = verify(&cfg, &mut out, &mut progress)?;
        drop(progress);
        write_summary(&cfg, &report, &mut out)?;
        out.flush().map_err(|e| Error::io("writing output", e))?;
        if report.problems > 0 {
            return Err(Error::Problems(report.problems));
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
