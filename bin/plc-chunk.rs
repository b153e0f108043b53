//! plc-chunk: cuts JSON lines into whole chunks.
use clap::Parser;
use plcbundle::{chunk, cli};
use std::io::Write;

/// Emits only whole chunks of --size lines and holds back an incomplete
/// tail, which it reports on stderr and does not emit.
///
/// Reads JSON lines from FILE or stdin; writes JSON lines on stdout, each
/// chunk flushed as soon as it is complete. Nothing is persisted between
/// runs: in the archive pipeline the directory is the durable store of
/// the tail, and the next run fetches those operations again; from a file,
/// the tail is the file's last lines.
#[derive(Parser, Debug)]
#[command(name = "plc-chunk", version, after_long_help = AFTER)]
struct Args {
    /// Lines per chunk (a V1 bundle holds 10000).
    #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    size: u64,
    /// Do not report the held-back tail.
    #[arg(short, long)]
    quiet: bool,
    /// Input file; `-` is stdin.
    #[arg(default_value = "-")]
    file: String,
}

const AFTER: &str = "\
EXAMPLES:
    plc-export --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR

    # How many whole bundles a file would make:
    plc-chunk ops.jsonl | wc -l

EXIT STATUS:
    0  success (or the reader closed the pipe)
    2  a line that is not an operation or out of order, or an I/O error";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-chunk", || {
        cli::note_terminal_input("plc-chunk", &args.file, "plc-dedup");
        let input = cli::open_input(&args.file)?;
        let stats = chunk::chunk(input, cli::stdout(), args.size as usize)?;
        if stats.held_back > 0 && !args.quiet {
            let (n, size) = (stats.held_back, args.size);
            // From a pipe, the tail is the directory's to serve again; a
            // file keeps it, at its end.
            let next = if args.file == "-" {
                "in the archive pipeline, the next run fetches them again".to_string()
            } else {
                format!("they are the last {n} lines of {}", args.file)
            };
            let _ = writeln!(
                cli::stderr_lines(),
                "plc-chunk: holding back {n} operations (an incomplete chunk of {size}), not emitted; {next}"
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
