//! Response bodies that cost little memory however slowly they are read.
//!
//! A body of known length is sent in pieces of at most [`PIECE`] bytes,
//! and a piece is made only when hyper asks for the next one, that is when
//! the client has taken the previous one. A client that stops reading
//! therefore holds at most about two pieces, never a whole bundle: the
//! bytes of a bundle served from the cache are held only through a weak
//! reference between pieces (if the cache dropped the bundle meanwhile it
//! is loaded again), and a file is read at an offset per piece. Work that
//! may block (reading a file, decompressing a bundle) runs on tokio's
//! blocking pool; copying from a bundle still in memory does not.

use super::archive::{Archive, Bundle};
use hyper::body::{Bytes, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};
use tokio::task::JoinHandle;

/// The largest piece of a body sent at once.
pub const PIECE: usize = 64 * 1024;

/// A run of bytes of a response.
pub enum Span {
    /// Bytes `start..end` of a bundle's content.
    Bundle {
        /// Bundle number.
        number: u64,
        /// Its content_hash (the cache key).
        hash: String,
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// One `\n` (between two bundles' lines in an `/export` page).
    Newline,
}

impl Span {
    fn len(&self) -> u64 {
        match self {
            Span::Bundle { start, end, .. } => (end - start) as u64,
            Span::Newline => 1,
        }
    }
}

enum Source {
    Spans {
        archive: Arc<Archive>,
        spans: VecDeque<Span>,
        /// The bundle of the first span, if it is still in memory.
        held: Weak<Bundle>,
    },
    File {
        file: Arc<std::fs::File>,
        offset: u64,
        end: u64,
    },
}

impl Source {
    /// The next piece without blocking, or `None` when that needs I/O.
    fn next_now(&mut self) -> Option<io::Result<Option<Bytes>>> {
        match self {
            Source::Spans {
                archive,
                spans,
                held,
            } => {
                let bundle = match spans.front()? {
                    Span::Newline => {
                        spans.pop_front();
                        return Some(Ok(Some(Bytes::from_static(b"\n"))));
                    }
                    Span::Bundle { number, hash, .. } => match held.upgrade() {
                        Some(b) => b,
                        None => {
                            let b = archive.cached(*number, hash)?;
                            *held = Arc::downgrade(&b);
                            b
                        }
                    },
                };
                Some(Ok(Some(take_piece(spans, held, &bundle))))
            }
            Source::File { .. } => None,
        }
    }

    /// The next piece, doing whatever I/O it takes.
    fn next_blocking(&mut self) -> io::Result<Option<Bytes>> {
        match self {
            Source::Spans {
                archive,
                spans,
                held,
            } => {
                let Some(Span::Bundle { number, hash, .. }) = spans.front() else {
                    return Ok(self.next_now().transpose()?.flatten());
                };
                let bundle = archive
                    .bundle(*number, hash)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                *held = Arc::downgrade(&bundle);
                Ok(Some(take_piece(spans, held, &bundle)))
            }
            Source::File { file, offset, end } => {
                if *offset >= *end {
                    return Ok(None);
                }
                let n = (*end - *offset).min(PIECE as u64) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, *offset)?;
                *offset += n as u64;
                Ok(Some(Bytes::from(buf)))
            }
        }
    }
}

/// Copies up to [`PIECE`] bytes of the first span (a bundle span, in
/// `bundle`) and advances past them.
fn take_piece(spans: &mut VecDeque<Span>, held: &mut Weak<Bundle>, bundle: &Bundle) -> Bytes {
    let Some(Span::Bundle { start, end, .. }) = spans.front_mut() else {
        unreachable!("called on a bundle span")
    };
    let stop = (*start + PIECE).min(*end).min(bundle.content.len());
    let piece = Bytes::copy_from_slice(&bundle.content[(*start).min(stop)..stop]);
    *start = stop;
    if *start >= *end {
        spans.pop_front();
        *held = Weak::new();
    }
    piece
}

type Pending = JoinHandle<(Box<Source>, io::Result<Option<Bytes>>)>;

/// A response body: complete bytes, or pieces made on demand.
pub struct Body {
    whole: Option<Bytes>,
    source: Option<Box<Source>>,
    pending: Option<Pending>,
    /// Bytes still to send.
    left: u64,
}

impl Body {
    /// A body held in memory (small answers: errors, the index, /status).
    pub fn bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body {
            left: b.len() as u64,
            whole: Some(b),
            source: None,
            pending: None,
        }
    }

    /// No body (HEAD, or a length-only answer).
    pub fn empty() -> Body {
        Body::bytes(Bytes::new())
    }

    /// The spans of decompressed bundles, in order.
    pub fn spans(archive: Arc<Archive>, spans: Vec<Span>) -> Body {
        let left = spans.iter().map(Span::len).sum();
        Body::from_source(
            Source::Spans {
                archive,
                spans: spans.into(),
                held: Weak::new(),
            },
            left,
        )
    }

    /// The first `len` bytes of `file`.
    pub fn file(file: std::fs::File, len: u64) -> Body {
        Body::from_source(
            Source::File {
                file: Arc::new(file),
                offset: 0,
                end: len,
            },
            len,
        )
    }

    fn from_source(source: Source, left: u64) -> Body {
        Body {
            whole: None,
            source: Some(Box::new(source)),
            pending: None,
            left,
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.left
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    fn deliver(&mut self, r: io::Result<Option<Bytes>>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match r {
            Ok(Some(b)) if b.len() as u64 <= self.left => {
                self.left -= b.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Ok(None) if self.left == 0 => {
                self.source = None;
                Poll::Ready(None)
            }
            // A file or bundle shorter or longer than announced (replaced
            // under the server): end the response short, which the
            // client sees as a cut-off body, not a wrong one.
            Ok(_) => Poll::Ready(Some(Err(io::Error::other(
                "the file changed while it was being sent",
            )))),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(b) = this.whole.take() {
            this.left = 0;
            return Poll::Ready((!b.is_empty()).then(|| Ok(Frame::data(b))));
        }
        if let Some(p) = this.pending.as_mut() {
            let done = ready!(Pin::new(p).poll(cx));
            this.pending = None;
            let (source, r) = done.map_err(io::Error::other)?;
            this.source = Some(source);
            return this.deliver(r);
        }
        if this.left == 0 {
            this.source = None;
            return Poll::Ready(None);
        }
        let Some(mut source) = this.source.take() else {
            return Poll::Ready(None);
        };
        if let Some(r) = source.next_now() {
            this.source = Some(source);
            return this.deliver(r);
        }
        this.pending = Some(tokio::task::spawn_blocking(move || {
            let r = source.next_blocking();
            (source, r)
        }));
        // Poll the new task once so that its waker is registered.
        self.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.whole.as_ref().is_none_or(|b| b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.whole {
            Some(b) => SizeHint::with_exact(b.len() as u64),
            None => SizeHint::with_exact(self.left),
        }
    }
}
