//! plc-dedup: drops repeated operations and enforces order.
use clap::Parser;
use plcbundle::{cli, dedup, repo};
use std::path::PathBuf;

/// Passes operation lines through byte for byte, dropping an operation
/// whose CID was already seen at the same createdAt, and failing when
/// createdAt goes backwards.
///
/// Reads JSON lines from FILE or stdin; writes JSON lines on stdout.
/// Memory is bounded by the largest group of operations sharing one
/// millisecond, not by the input.
#[derive(Parser, Debug)]
#[command(name = "plc-dedup", version, after_long_help = AFTER)]
struct Args {
    /// Seed with the last bundle of the archive in DIR, so operations it
    /// already holds are dropped (and older ones refused).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// With --repo: the origin the archive must have.
    #[arg(long, value_name = "URL", requires = "repo")]
    origin: Option<String>,
    /// Input file; `-` is stdin.
    #[arg(default_value = "-")]
    file: String,
}

const AFTER: &str = "\
EXAMPLES:
    plc-export --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR

    # Re-seal another implementation's archive:
    zstd -dc OLD/*.jsonl.zst | plc-dedup | plc-chunk | plc-seal --repo NEW

EXIT STATUS:
    0  success (or the reader closed the pipe)
    2  a line that is not an operation, createdAt going backwards (the line
       number and both timestamps are named), or an I/O error";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-dedup", || {
        let seed = match &args.repo {
            Some(dir) => repo::continue_from(dir, args.origin.as_deref())?,
            None => None,
        };
        cli::note_terminal_input("plc-dedup", &args.file, "plc-export");
        let input = cli::open_input(&args.file)?;
        dedup::dedup(input, cli::stdout(), seed.as_ref()).map(|_| ())
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
