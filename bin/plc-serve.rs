//! plc-serve: a read-only HTTP mirror of an archive.
use clap::Parser;
use plcbundle::cli;
use plcbundle::serve::{Limits, MirrorServer, ServeConfig};
use plcbundle::time::parse_duration;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Serves a repository read-only over HTTP, so that another archive can
/// sync from it with the same pipeline.
///
/// Endpoints (GET and HEAD; other methods get 405): /export?count=N&after=T
/// (the official directory's timestamp-mode semantics, from the sealed
/// bundles), /plc_bundles.json and /index.json (the index), /data/N and
/// /NNNNNN.jsonl.zst (a bundle file as stored), /jsonl/N (a bundle
/// decompressed), /status (the archive's head and the server's uptime, as
/// plcbundle mirrors report them). Bundles sealed while it runs become
/// visible without a restart. Writes one line on stderr with the address
/// it listens on, then one line per request (--quiet: none).
///
/// Built to face the internet: connections, request heads, idle clients
/// and clients that do not read their answers are all limited (see the
/// options); running out of file descriptors closes the quietest
/// connection instead of stopping the server.
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
    /// Threads answering requests, and threads reading bundles (at most
    /// this many bundles are decompressed at once, next to a cache of 4).
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Open connections at most (lowered to the open-files limit minus 32
    /// if that is less). A new one beyond it closes the connection that
    /// has been quiet the longest, or is closed at once if all are busy
    /// answering.
    #[arg(long, default_value_t = 512, value_name = "N")]
    max_connections: usize,
    /// A request's line and headers must arrive in full within this,
    /// counted from when the server starts waiting for them (after the
    /// previous response on a kept-alive connection); else it is closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    header_timeout: Duration,
    /// A connection on which nothing moves for this long, while no request
    /// is being answered, is closed (also the keep-alive timeout).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    idle_timeout: Duration,
    /// A connection whose client takes none of its response for this
    /// long is closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    write_timeout: Duration,
    /// The request line and headers together, at most (at least 8192);
    /// larger requests get 431 (or 414, 400) and are closed.
    #[arg(long, default_value_t = 16384, value_name = "BYTES")]
    max_header_bytes: usize,
    /// Memory for decompressed bundle frames kept for the DID routes, in
    /// MiB (0: none kept). A one-frame bundle costs about 7 MiB here, so
    /// the default keeps the 36 most recently asked-for bundles; a DID
    /// whose bundles are all kept is answered without decompressing.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    did_cache: usize,
    /// No request log on stderr (the address line is still written).
    #[arg(short, long)]
    quiet: bool,
}

const AFTER: &str = "\
EXAMPLES:
    plc-serve --repo A --listen 127.0.0.1:8080 &
    plc-export --url http://127.0.0.1:8080 --repo B --rate 0 --lag 0 \\
      | plc-dedup --repo B | plc-chunk | plc-seal --repo B --origin http://127.0.0.1:8080

    curl -s 'http://127.0.0.1:8080/export?count=5' | jq -r .did
    curl -s http://127.0.0.1:8080/status | jq .bundles.head_hash

    # Public, with tighter limits:
    plc-serve --repo A --listen 0.0.0.0:8080 --max-connections 256 --write-timeout 10s

REQUEST LOG (stderr, one line per request):
    127.0.0.1 - - [2026-12-01T23:00:00.000Z] \"GET /data/1 HTTP/1.1\" 200 2512034 0.4ms
    (client, time, request, status, body bytes, time to the response head)

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
            limits: Limits {
                max_connections: args.max_connections,
                header_timeout: args.header_timeout,
                idle_timeout: args.idle_timeout,
                write_timeout: args.write_timeout,
                max_header_bytes: args.max_header_bytes,
            },
            quiet: args.quiet,
            did_cache_bytes: args.did_cache.saturating_mul(1 << 20),
        })?;
        let addr = server
            .addr()
            .map_or_else(|| args.listen.clone(), |a| a.to_string());
        let _ = writeln!(
            std::io::stderr(),
            "plc-serve: serving {} on http://{addr}",
            args.repo.display()
        );
        if server.max_connections() < args.max_connections {
            let _ = writeln!(
                std::io::stderr(),
                "plc-serve: at most {} connections: the open-files limit (ulimit -n) leaves no more",
                server.max_connections()
            );
        }
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
