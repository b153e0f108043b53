//! Connections: accepting them, limiting them, timing them out.
//!
//! This is what lets plc-serve face the public internet:
//! - the accept loop never ends: an accept error (running out of file
//!   descriptors, EMFILE, included) is logged, a quiet connection is
//!   closed to make room, and accepting goes on after a short pause;
//! - at most `max_connections` connections are open; a new one beyond
//!   that closes the connection that has been quiet the longest (no
//!   request being answered, no response waiting to be read), and is
//!   itself closed at once only when every connection is busy;
//! - every socket is wrapped in [`Watched`], which closes a connection on
//!   which nothing has moved for the idle timeout, and one whose client
//!   has not taken any of its response for the write timeout;
//! - hyper bounds the request line and headers (its read buffer, answering
//!   431 or 414 past it, 400 for a malformed or non-ASCII request line)
//!   and the time a request's head may take to arrive.

use super::body::Body;
use super::log::Log;
use super::routes::{self, App};
use crate::time::Timestamp;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The limits every connection is held to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// A request's line and headers must arrive within this, counted from
    /// when the server starts waiting for them.
    pub header_timeout: Duration,
    /// A connection on which nothing moves either way for this long, and
    /// no request is being answered, is closed (the keep-alive timeout).
    pub idle_timeout: Duration,
    /// A connection whose client takes none of its response for this long
    /// is closed.
    pub write_timeout: Duration,
    /// The request line and headers together, at most (hyper's read
    /// buffer; at least 8192).
    pub max_header_bytes: usize,
}

/// What the accept loop and every connection share.
pub struct Shared {
    /// The request handler's state.
    pub app: Arc<App>,
    /// The limits.
    pub limits: Limits,
    /// The request log.
    pub log: Log,
    conns: Mutex<HashMap<u64, Arc<Watch>>>,
    next_id: AtomicU64,
}

/// What the accept loop knows of one connection.
struct Watch {
    id: u64,
    /// Milliseconds since `epoch` when a byte last moved either way.
    last: AtomicU64,
    /// A response write is waiting for the client to read.
    writing: AtomicBool,
    /// A request is being answered.
    busy: AtomicBool,
    /// Closes the connection when notified.
    evict: Notify,
    epoch: Instant,
}

impl Watch {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Shared {
    /// State for a server with these parts.
    pub fn new(app: Arc<App>, limits: Limits, log: Log) -> Shared {
        Shared {
            app,
            limits,
            log,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn register(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            last: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            evict: Notify::new(),
            epoch: self.app.started,
        });
        watch.touch();
        self.conns
            .lock()
            .expect("connections lock")
            .insert(watch.id, watch.clone());
        watch
    }

    fn open_connections(&self) -> usize {
        self.conns.lock().expect("connections lock").len()
    }

    /// Closes the connection that has been quiet the longest, if one is
    /// quiet at all (answering nobody, with no response waiting to be
    /// read). Returns whether one was closed.
    fn evict_quietest(&self) -> bool {
        let mut conns = self.conns.lock().expect("connections lock");
        let victim = conns
            .values()
            .filter(|w| !w.busy.load(Ordering::Relaxed) && !w.writing.load(Ordering::Relaxed))
            .min_by_key(|w| w.last.load(Ordering::Relaxed))
            .map(|w| w.id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(w) => {
                w.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Accepts connections forever.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut last_complaint: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.open_connections() >= shared.limits.max_connections
                    && !shared.evict_quietest()
                {
                    // Every connection is answering or sending: this one
                    // is closed at once rather than left waiting.
                    drop(stream);
                    continue;
                }
                let watch = shared.register();
                tokio::spawn(serve_connection(stream, peer, watch, shared.clone()));
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of a resource that
                // closing connections gives back. Others (a connection
                // reset before it was accepted) concern one client only.
                let starved = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_complaint = Some(Instant::now());
                    shared.log.line(format!(
                        "plc-serve: accepting a connection: {e}{}",
                        if starved {
                            "; closing the quietest connection and retrying"
                        } else {
                            ""
                        }
                    ));
                }
                if starved {
                    shared.evict_quietest();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    watch: Arc<Watch>,
    shared: Arc<Shared>,
) {
    // The body goes out in pieces as it is made; with Nagle's algorithm a
    // piece can wait for the client's delayed ACK, about 40 ms.
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;
    let io = TokioIo::new(Watched::new(stream, watch.clone(), limits));
    let service = {
        let (watch, shared) = (watch.clone(), shared.clone());
        service_fn(move |req| answer(req, peer, watch.clone(), shared.clone()))
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                if e.is_parse() || e.is_parse_too_large() || e.is_timeout() {
                    shared.log.line(format!(
                        "{} - - [{}] \"-\" connection closed: {e}",
                        peer.ip(),
                        Timestamp::now().format_millis()
                    ));
                }
            }
        }
        _ = watch.evict.notified() => {}
    }
    shared
        .conns
        .lock()
        .expect("connections lock")
        .remove(&watch.id);
}

/// Answers one request on the blocking pool, and logs it.
async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    watch: Arc<Watch>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, std::convert::Infallible> {
    watch.busy.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let app = shared.app.clone();
    let (m, p, q) = (method.clone(), path.clone(), query.clone());
    let response = tokio::task::spawn_blocking(move || {
        routes::respond(&app, &m, &p, q.as_deref().unwrap_or(""))
    })
    .await
    .unwrap_or_else(|e| routes::json_error(500, &format!("internal error: {e}")));
    watch.touch();
    watch.busy.store(false, Ordering::Relaxed);
    if shared.log.enabled() {
        let target = printable(&match &query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        });
        shared.log.line(format!(
            "{} - - [{}] \"{method} {target} {:?}\" {} {} {:.1}ms",
            peer.ip(),
            Timestamp::now().format_millis(),
            req.version(),
            response.status().as_u16(),
            response.body().len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
    }
    Ok(response)
}

/// `s` with every byte outside printable ASCII written as `\xNN`, so that
/// a request cannot write anything but one line into the log.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A socket that times out: reading when nothing has moved either way
/// for the idle timeout (and no request is being answered), writing when
/// the client has taken nothing for the write timeout.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
    idle: Duration,
    write_timeout: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn new(inner: TcpStream, watch: Arc<Watch>, limits: &Limits) -> Watched {
        Watched {
            inner,
            watch,
            idle: limits.idle_timeout,
            write_timeout: limits.write_timeout,
            read_timer: None,
            write_timer: None,
        }
    }

    /// Bytes moved: the connection is not idle.
    fn progress(&mut self) {
        self.watch.touch();
        if let Some(t) = self.read_timer.as_mut() {
            t.as_mut().reset(tokio::time::Instant::now() + self.idle);
        }
    }

    /// After a write returned Pending: whether the write timeout is over.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        self.watch.writing.store(true, Ordering::Relaxed);
        let limit = self.write_timeout;
        let t = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        t.as_mut().poll(cx).is_ready()
    }

    fn wrote(&mut self, n: usize) {
        self.write_timer = None;
        self.watch.writing.store(false, Ordering::Relaxed);
        if n > 0 {
            self.progress();
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.read_timer = None;
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                // While a request is answered, or a response waits for
                // the client (the write timeout's business), waiting for
                // the next request is not idleness.
                if self.watch.busy.load(Ordering::Relaxed) || self.write_timer.is_some() {
                    self.read_timer = None;
                    return Poll::Pending;
                }
                let idle = self.idle;
                let t = self
                    .read_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("idle timeout")));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.wrote(*r.as_ref().unwrap_or(&0));
                Poll::Ready(r)
            }
            Poll::Pending if self.write_stalled(cx) => Poll::Ready(Err(timed_out("write timeout"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.wrote(*r.as_ref().unwrap_or(&0));
                Poll::Ready(r)
            }
            Poll::Pending if self.write_stalled(cx) => Poll::Ready(Err(timed_out("write timeout"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending if self.write_stalled(cx) => Poll::Ready(Err(timed_out("write timeout"))),
            r => r,
        }
    }
}
