//! One error type for every tool, with the exit code it maps to.
//!
//! Exit codes are part of the contract: 0 success, 1 verification found
//! problems, 2 usage, input or I/O error, 3 network error after retries.
//! The binaries never pick a code themselves; they ask the error.

use std::fmt;
use std::io;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: `plc-verify` found problems in the archive.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code: usage, input or I/O error.
pub const EXIT_ERROR: u8 = 2;
/// Exit code: the directory could not be reached after retries.
pub const EXIT_NETWORK: u8 = 3;

/// Everything that can stop a tool.
#[derive(Debug)]
pub enum Error {
    /// Bad arguments or a refused combination (wrong origin, ...).
    Usage(String),
    /// A line of input the tool cannot accept; `line` is 1-based.
    Input {
        /// 1-based line number in the tool's input.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file or stream failed.
    Io {
        /// What was being done (`writing /a/000001.jsonl.zst`).
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The archive on disk is not in a state the tool can build on.
    Archive(String),
    /// The directory failed and retries ran out, or answered nonsense.
    Network(String),
    /// The directory sent a response the tool refuses (malformed line,
    /// time going backwards, a page that cannot advance).
    Protocol(String),
    /// `plc-verify` found this many problems (each already reported).
    Problems(usize),
}

impl Error {
    /// Builds an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds an [`Error::Input`].
    pub fn input(line: u64, reason: impl Into<String>) -> Error {
        Error::Input {
            line,
            reason: reason.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Problems(_) => EXIT_PROBLEMS,
            Error::Network(_) => EXIT_NETWORK,
            _ => EXIT_ERROR,
        }
    }

    /// True when the error is a closed downstream pipe, which a filter
    /// treats as a quiet end rather than a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if is_broken_pipe(source))
    }
}

/// True when `e`, or an error it wraps, is `BrokenPipe`.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return true;
    }
    let mut inner = e.get_ref().map(|x| x as &(dyn std::error::Error + 'static));
    while let Some(err) = inner {
        if let Some(ioe) = err.downcast_ref::<io::Error>() {
            if ioe.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        inner = err.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Archive(m) | Error::Network(m) | Error::Protocol(m) => {
                f.write_str(m)
            }
            Error::Input { line, reason } => write!(f, "line {line}: {reason}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Problems(n) => write!(f, "{n} problem{} found", if *n == 1 { "" } else { "s" }),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand used across the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches context to `io::Result`s.
pub trait IoContext<T> {
    /// Wraps the error as [`Error::Io`] with the context `f()` returns.
    fn ctx<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}
