//! plc-audit: checks every operation of an archive against the PLC rules.
use clap::Parser;
use plcbundle::audit::{audit, AuditConfig, Input};
use plcbundle::{cli, Error};
use std::io::Write;
use std::path::PathBuf;

/// Checks that every operation is a legitimate PLC operation, given every
/// operation before it: its shape and size, its `cid` (CIDv1 dag-cbor
/// sha2-256 of its signed DAG-CBOR), a genesis operation's DID, its
/// signature (strict base64url, raw r||s, low-S, secp256k1 or P-256) by a
/// rotation key allowed at that point, its `prev`, tombstones, increasing
/// timestamps per DID, and which forks nullify which operations, and that
/// the archive's `nullified` flags agree.
///
/// Reads JSON lines in archive order (FILE, or `-` for stdin), or the
/// sealed bundles of --repo DIR. Writes one JSON line per reported
/// operation on stdout: {"did","cid","createdAt","reason","kind","line"}
/// (with --repo, "bundle" and the line inside it). Kinds `invalid` and
/// `nullified` (a flag the rules contradict) fail the audit; `unsettled`
/// (flagged nullified within 72 h of the archive's end, where a later
/// operation may still nullify it) and `stale` (flagged not nullified, but
/// nullified by a later operation of the archive: the line was fetched
/// before that) do not, unless --final-flags. A summary goes to stderr.
///
/// The state of every DID is kept in a scratch store on disk (in --state-dir,
/// removed at the end), so memory does not grow with the archive.
#[derive(Parser, Debug)]
#[command(name = "plc-audit", version, after_long_help = AFTER)]
struct Args {
    /// Operations as JSON lines, `-` for stdin.
    #[arg(required_unless_present = "repo", conflicts_with = "repo")]
    file: Option<String>,
    /// Audit the sealed bundles of this archive, in order.
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Worker threads for parsing, encoding and signatures; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Where the scratch state store goes (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// DIDs kept in memory per cache generation (two generations).
    #[arg(long, default_value_t = 20_000)]
    cache_dids: usize,
    /// The archive's lines were fetched after their 72 hours had passed, so
    /// every `nullified` flag is final: a stale flag fails the audit.
    #[arg(long)]
    final_flags: bool,
}

const AFTER: &str = "\
EXAMPLES:
    plc-audit --repo DIR && echo every operation holds
    plc-audit --repo DIR | jq -r 'select(.kind == \"invalid\") | .reason' | sort | uniq -c
    zstd -dc DIR/000001.jsonl.zst | plc-audit -
    plc-export --since 2024-01-01T00:00:00Z --lag 73h | plc-audit --final-flags -

EXIT STATUS:
    0  every operation holds (unsettled or stale flags are reported, not failed)
    1  some operation fails (each printed)
    2  usage error, a line that is not an operation line, an unreadable archive";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-audit", || {
        let input = match (&args.repo, &args.file) {
            (Some(dir), _) => Input::Repo(dir.clone()),
            (None, Some(f)) => Input::Lines(f.clone()),
            (None, None) => return Err(Error::Usage("give FILE, `-` or --repo DIR".into())),
        };
        let cfg = AuditConfig {
            input,
            threads: args.threads,
            state_dir: args.state_dir.clone().unwrap_or_else(std::env::temp_dir),
            cache_dids: args.cache_dids,
            final_flags: args.final_flags,
        };
        // A closed pipe must not hide the verdict: see cli::UntilClosed.
        let mut out = cli::UntilClosed::new(cli::stdout());
        let r = audit(&cfg, &mut out)?;
        out.flush().map_err(|e| Error::io("writing output", e))?;
        let _ = writeln!(
            std::io::stderr(),
            "plc-audit: {} operations, {} failed, {} unsettled, {} stale nullified flags",
            r.operations,
            r.failed,
            r.unsettled,
            r.stale
        );
        if r.failed > 0 {
            return Err(Error::Problems(r.failed as usize));
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
