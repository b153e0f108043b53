//! `plc-serve`: a read-only HTTP mirror of a repository, so that one
//! archive can feed another through the same pipeline, built to face the
//! public internet.
//!
//! It runs on hyper and tokio, the Rust ecosystem's standard HTTP stack,
//! held to explicit limits ([`conn`]): connections, request head size and
//! time, idle and write timeouts, and an accept loop that outlives running
//! out of file descriptors. The parts:
//! - [`archive`]: the index (re-read when it changes) and the cache of
//!   decompressed bundles;
//! - [`routes`]: which answer a request gets (the one place new routes go);
//! - [`export_route`]: `/export`, the directory's timestamp mode;
//! - [`status`]: `/status`, the dashboards' shape;
//! - [`body`]: response bodies sent piece by piece, with bounded memory;
//! - [`log`]: one line per request on stderr.

pub mod archive;
pub mod body;
pub mod conn;
pub mod export_route;
pub mod log;
pub mod routes;
pub mod status;

pub use conn::Limits;
pub use export_route::MAX_COUNT;

use crate::error::{Error, Result};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Connections waiting in the kernel to be accepted, at most.
const BACKLOG: u32 = 1024;
/// File descriptors kept for everything but connections: the index and
/// bundle files a request opens, the runtime's own, stdio.
const RESERVED_FDS: u64 = 32;

/// What `plc-serve` is asked to do.
pub struct ServeConfig {
    /// The repository to serve.
    pub repo: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Threads answering requests, and threads reading and decompressing
    /// bundles (at most this many bundles are decompressed at once).
    pub threads: usize,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// No request log.
    pub quiet: bool,
    /// Bytes of decompressed frames kept for the DID routes.
    pub did_cache_bytes: usize,
}

/// A bound server; [`MirrorServer::run`] answers requests until the
/// process ends.
pub struct MirrorServer {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    shared: Arc<conn::Shared>,
}

impl MirrorServer {
    /// Checks the repository, starts the runtime and binds the listening
    /// socket.
    pub fn bind(cfg: &ServeConfig) -> Result<MirrorServer> {
        let archive = Arc::new(archive::Archive::new(cfg.repo.clone()));
        archive.index()?;
        if cfg.limits.max_header_bytes < 8192 {
            return Err(Error::Usage(
                "--max-header-bytes must be at least 8192".into(),
            ));
        }
        if cfg.limits.max_connections == 0 {
            return Err(Error::Usage("--max-connections must be at least 1".into()));
        }
        let mut limits = cfg.limits.clone();
        limits.max_connections = limits
            .max_connections
            .min(open_files_limit().saturating_sub(RESERVED_FDS).max(1) as usize);
        let threads = cfg.threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads)
            .thread_name("plc-serve")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the server's threads", e))?;
        let listener = {
            let _in_runtime = runtime.enter();
            listen(&cfg.listen)
                .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?
        };
        let app = Arc::new(routes::App {
            archive,
            started: Instant::now(),
            dids: crate::did::resolve::SharedIndex::new(&cfg.repo, cfg.did_cache_bytes),
        });
        let shared = Arc::new(conn::Shared::new(app, limits, log::Log::new(cfg.quiet)));
        Ok(MirrorServer {
            runtime,
            listener,
            shared,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The connection limit in force: `--max-connections`, lowered when
    /// the open-files limit would not leave [`RESERVED_FDS`] descriptors
    /// for files with that many connections open.
    pub fn max_connections(&self) -> usize {
        self.shared.limits.max_connections
    }

    /// Answers requests; never returns.
    pub fn run(self) {
        let MirrorServer {
            runtime,
            listener,
            shared,
        } = self;
        runtime.block_on(conn::accept_loop(listener, shared));
    }
}

/// Binds `addr` (the first address it resolves to) with a backlog of
/// [`BACKLOG`].
fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The process's soft limit on open files.
fn open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit; only read.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return u64::MAX;
    }
    lim.rlim_cur
}
