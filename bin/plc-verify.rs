//! plc-verify: checks an archive end to end.
use clap::Parser;
use plcbundle::verify::{verify, VerifyConfig};
use plcbundle::{cli, Error};
use std::io::Write;
use std::path::PathBuf;

/// Recomputes and checks everything the index of DIR claims: each file's
/// compressed hash and size, content hash and size, operation and DID
/// counts, start and end times, the chain hash from genesis, parent and
/// cursor links, numbering, order inside and across bundles, the totals.
///
/// Writes one line per problem (naming the bundle and the field) and a
/// summary on stdout. Keeps going after a problem and reports every one.
/// Accepts archives written by the other V1 implementations (multi-frame
/// files with a skippable metadata frame, Go's index quirks).
#[derive(Parser, Debug)]
#[command(name = "plc-verify", version, after_long_help = AFTER)]
struct Args {
    /// The archive directory.
    dir: PathBuf,
    /// Worker threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

const AFTER: &str = "\
EXAMPLES:
    plc-verify DIR && echo archive ok
    plc-verify DIR | grep '^bundle'

EXIT STATUS:
    0  every check holds (warnings, such as an interrupted seal, allowed)
    1  the archive has problems (each printed)
    2  usage error, or DIR or its index cannot be read";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-verify", || {
        let cfg = VerifyConfig {
            repo: args.dir.clone(),
            threads: args.threads,
        };
        // A closed pipe must not hide the verdict: see cli::UntilClosed.
        let mut out = cli::UntilClosed::new(cli::stdout());
        let report = verify(&cfg, &mut out)?;
        if report.problems == 0 {
            writeln!(
                out,
                "ok: {} bundles, {} operations, head {}",
                report.bundles,
                report.operations,
                report.head.as_deref().unwrap_or("(empty)")
            )
            .map_err(|e| Error::io("writing output", e))?;
        }
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
