//! plc-serve: a read-only HTTP mirror of an archive.
use clap::Parser;
use plcbundle::cli;
use plcbundle::serve::{MirrorServer, ServeConfig};
use std::io::Write;
use std::path::PathBuf;

/// Serves a repository read-only over HTTP, so that another archive can
/// sync from it with the same pipeline.
///
/// Endpoints: GET /export?count=N&after=T (the official directory's
/// timestamp-mode semantics, from the sealed bundles), /plc_bundles.json
/// and /index.json (the index), /data/N and /NNNNNN.jsonl.zst (a bundle
/// file as stored), /jsonl/N (a bundle decompressed, streamed). Bundles
/// sealed while it runs become visible without a restart. Writes one line
/// on stderr with the address it listens on.
#[derive(Parser, Debug)]
#[command(name = "plc-serve", version, after_long_help = AFTER)]
struct Args {
    /// The archive directory.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Address to listen on (loopback unless told otherwise; port 0 picks
    /// a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Worker threads.
    #[arg(long, default_value_t = 8)]
    threads: usize,
}

const AFTER: &str = "\
EXAMPLES:
    plc-serve --repo A --listen 127.0.0.1:8080 &
    plc-export --url http://127.0.0.1:8080 --repo B --rate 0 --lag 0 \\
      | plc-dedup --repo B | plc-chunk | plc-seal --repo B --origin http://127.0.0.1:8080

    curl -s 'http://127.0.0.1:8080/export?count=5' | jq -r .did

EXIT STATUS:
    2  DIR has no readable index, or the address cannot be bound";

fn main() -> std::process::ExitCode {
    if let Some(code) = cli::generate_docs(<Args as clap::CommandFactory>::command()) {
        return code;
    }
    let args = Args::parse();
    cli::main_with("plc-serve", || {
        let server = MirrorServer::bind(&ServeConfig {
            repo: args.repo.clone(),
            listen: args.listen.clone(),
            threads: args.threads,
        })?;
        let addr = server
            .addr()
            .map_or_else(|| args.listen.clone(), |a| a.to_string());
        let _ = writeln!(
            std::io::stderr(),
            "plc-serve: serving {} on http://{addr}",
            args.repo.display()
        );
        server.run();
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
