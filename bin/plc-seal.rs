//! plc-seal: compresses, hashes and appends whole chunks to an archive.
use clap::Parser;
use plcbundle::cli;
use plcbundle::seal::{seal, SealConfig};
use plcbundle::Error;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// Reads whole chunks of 10000 operation lines and, for each, writes the
/// next NNNNNN.jsonl.zst and appends its entry to plc_bundles.json.
///
/// Reads JSON lines from FILE or stdin; writes one line per sealed bundle
/// on stderr. Creates DIR and its index when missing. Every file is
/// written crash-safely (temporary file, fsync, rename, fsync of the
/// directory), the bundle before the index. Holds an exclusive lock on DIR
/// while it runs. Input that ends inside a chunk is an error and writes no
/// partial bundle.
#[derive(Parser, Debug)]
#[command(name = "plc-seal", version, after_long_help = AFTER)]
struct Args {
    /// The archive directory.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The directory the operations came from; recorded in a new index,
    /// checked against an existing one [default for a new index:
    /// `https://plc.directory`].
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Do not print a line per sealed bundle.
    #[arg(short, long)]
    quiet: bool,
    /// Input file; `-` is stdin.
    #[arg(default_value = "-")]
    file: String,
}

const AFTER: &str = "\
EXAMPLES:
    plc-export --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR

    # Re-seal another archive's content into a new one:
    zstd -dc OLD/*.jsonl.zst | plc-dedup | plc-chunk | plc-seal --repo NEW --origin https://plc.directory

EXIT STATUS:
    0  success (whole chunks sealed; nothing to do is success)
    2  a line that is not an operation, out of order or already sealed,
       input ending inside a chunk, another writer holding the lock, a
       different origin, or an I/O error (disk full, ...)";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-seal", || {
        let mut input = cli::open_input(&args.file)?;
        if cli::note_terminal_input("plc-seal", &args.file, "plc-chunk") {
            // Create and lock nothing before there is input to seal.
            let mut typed = BufReader::new(input);
            let first = typed.fill_buf();
            if first.map_err(|e| Error::io("reading input", e))?.is_empty() {
                return Ok(());
            }
            input = Box::new(typed);
        }
        let cfg = SealConfig {
            repo: args.repo.clone(),
            origin: args.origin.clone(),
        };
        let mut log: Box<dyn std::io::Write + Send> = if args.quiet {
            Box::new(std::io::sink())
        } else {
            Box::new(cli::stderr_lines())
        };
        seal(input, &cfg, &mut *log).map(|_| ())
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
