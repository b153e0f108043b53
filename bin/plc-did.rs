//! plc-did: answers the directory's DID routes from the archive.
use clap::{ArgGroup, Parser};
use plcbundle::did::answer::Route;
use plcbundle::did::resolve::{run, Dids};
use plcbundle::{cli, Error};
use std::path::PathBuf;

/// Prints, for each DID, one JSON line: what the PLC directory answers on
/// /{did} (the DID document, the default), /{did}/log/audit (--audit),
/// /{did}/log (--log), /{did}/log/last (--last) or /{did}/data (--data),
/// byte for byte where the archive's bytes allow.
///
/// DIDs come from the arguments or, with none, from stdin one per line
/// (percent-encoded ones are decoded); it writes one JSON line per DID on
/// stdout, in input order. A DID the answer is an error for (not registered, or a
/// tombstoned DID's document or data) gets `{"did":...,"error":...}`.
///
/// Only sealed and indexed operations are answered: the archive is as
/// fresh as its last bundle, and bundles sealed since the last plc-index
/// run are not seen. Reads DIR/did-index/ (made by plc-index).
#[derive(Parser, Debug)]
#[command(name = "plc-did", version, after_long_help = AFTER)]
#[command(group(ArgGroup::new("route").args(["doc", "audit", "log", "last", "data"])))]
struct Args {
    /// The archive directory.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The DID document (/{did}); the default.
    #[arg(long)]
    doc: bool,
    /// Every operation with its metadata, nullified ones too (/{did}/log/audit).
    #[arg(long)]
    audit: bool,
    /// The active operations (/{did}/log).
    #[arg(long)]
    log: bool,
    /// The last active operation (/{did}/log/last).
    #[arg(long)]
    last: bool,
    /// The document's data (/{did}/data).
    #[arg(long)]
    data: bool,
    /// DIDs; with none, read from stdin one per line.
    #[arg(value_name = "DID")]
    dids: Vec<String>,
}

const AFTER: &str = "\
EXAMPLES:
    plc-did --repo DIR did:plc:ewvi7nxzyoun6zhxrhs64oiz | jq .service
    plc-did --repo DIR --audit did:plc:ewvi7nxzyoun6zhxrhs64oiz | jq -c '.[] | {cid, nullified}'

    # Bulk: thousands of DIDs per second, answers in input order.
    zstd -dc DIR/000001.jsonl.zst | jq -r .did | sort -u | plc-did --repo DIR --last > last.jsonl

    # Only sealed operations are answered; index new bundles first:
    plc-index --repo DIR && plc-did --repo DIR --data did:plc:ewvi7nxzyoun6zhxrhs64oiz

EXIT STATUS:
    0  every DID was answered
    1  some DIDs got an error line (not registered, or not available)
    2  usage error, no DID index (run plc-index), input that is not UTF-8,
       or an I/O error";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-did", || {
        let route = if args.audit {
            Route::Audit
        } else if args.log {
            Route::Log
        } else if args.last {
            Route::Last
        } else if args.data {
            Route::Data
        } else {
            Route::Doc
        };
        let dids = if args.dids.is_empty() {
            cli::widen_pipe(std::io::stdin());
            Dids::Lines(std::io::stdin().lock())
        } else {
            Dids::Args(args.dids.clone())
        };
        let mut out = cli::stdout();
        let failed = run(&args.repo, route, dids, &mut out)?;
        if failed > 0 {
            return Err(Error::Problems(failed as usize));
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
