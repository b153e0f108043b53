//! Process policy shared by every binary: how errors are printed, which
//! exit code they map to, and what a closed pipe means.
//!
//! Every `bin/plc-*.rs` calls [`main_with`] with its tool name and a closure
//! that does the work through the library. Nothing else in the crate
//! touches the process.

use crate::error::{Error, EXIT_OK};
use crate::progress::Lines;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

/// Runs `body`, prints `tool: message` for an error, and maps it to the
/// documented exit code. A closed downstream pipe ends the tool quietly
/// with exit 0: the reader has what it wanted.
pub fn main_with(tool: &str, body: impl FnOnce() -> Result<(), Error>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if e.is_broken_pipe() => ExitCode::from(EXIT_OK),
        Err(e) => {
            let _ = writeln!(stderr_lines(), "{tool}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Standard error for whole lines (messages, errors, plc-seal's "sealed"
/// lines): on a terminal, each line replaces whatever status line another
/// tool of the pipeline has live there (see [`crate::progress`]).
pub fn stderr_lines() -> Lines<io::Stderr> {
    let err = io::stderr();
    let on_terminal = err.is_terminal();
    Lines::new(err, on_terminal)
}

/// Says on stderr that `tool` is reading operations from the terminal,
/// when `path` is `-` and stdin is one: otherwise a filter started without
/// a pipe waits in silence. `feed` names the tool whose output belongs
/// there. Returns whether stdin is a terminal.
pub fn note_terminal_input(tool: &str, path: &str, feed: &str) -> bool {
    if path != "-" || !io::stdin().is_terminal() {
        return false;
    }
    let _ = writeln!(
        stderr_lines(),
        "{tool}: reading operations from the terminal (Ctrl-D to end; pipe {feed}'s output in)"
    );
    true
}

/// Handles the hidden documentation switches every tool understands:
/// `TOOL --generate-man` writes its man page (roff) and
/// `TOOL --generate-completions SHELL` its completion script (bash, zsh,
/// fish, elvish, powershell) on stdout, both from the same clap
/// definitions as `--help`. Returns the exit code when one was handled.
/// They are read before normal parsing so that required options do not
/// get in the way; `scripts/install-docs.sh` uses them.
pub fn generate_docs(mut cmd: clap::Command) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = io::stdout().lock();
    let name = cmd.get_name().to_string();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--generate-man"] => clap_mangen::Man::new(cmd).render(&mut out),
        ["--generate-completions", shell] => match shell.parse::<clap_complete::Shell>() {
            Ok(sh) => {
                clap_complete::generate(sh, &mut cmd, name.clone(), &mut out);
                Ok(())
            }
            Err(e) => {
                let _ = writeln!(io::stderr(), "{name}: {e}");
                return Some(ExitCode::from(crate::error::EXIT_ERROR));
            }
        },
        _ => return None,
    };
    Some(match result.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if crate::error::is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            let _ = writeln!(io::stderr(), "{name}: writing output: {e}");
            ExitCode::from(crate::error::EXIT_ERROR)
        }
    })
}

/// Opens `path` for reading, `-` meaning standard input. Unbuffered: the
/// tools read in large pieces into their own buffers.
pub fn open_input(path: &str) -> Result<Box<dyn Read>, Error> {
    if path == "-" {
        widen_pipe(io::stdin());
        Ok(Box::new(io::stdin().lock()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        Ok(Box::new(f))
    }
}

/// Standard output, buffered. Callers flush it and pass the error up. (Not
/// a `StdoutLock`, so that a writer thread can own it.)
pub fn stdout() -> io::BufWriter<io::Stdout> {
    widen_pipe(io::stdout());
    io::BufWriter::with_capacity(1 << 16, io::stdout())
}

/// Asks for a 1 MiB pipe buffer on `fd` when it is a pipe (the default is
/// 64 KB). Fewer, longer turns for each stage of a pipeline mean fewer
/// switches between them on a core. Only a hint: refused or not a pipe,
/// nothing changes, so the error is deliberately dropped.
pub fn widen_pipe(fd: impl std::os::fd::AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, 1 << 20);
}

/// A writer that discards everything once its reader has closed the pipe.
///
/// For a tool whose verdict is its exit status (`plc-verify`): a closed
/// pipe must neither stop the work nor, through the quiet exit 0 of
/// [`main_with`], turn problems into success. Other errors pass through.
pub struct UntilClosed<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> UntilClosed<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        UntilClosed {
            inner,
            closed: false,
        }
    }

    fn absorb(&mut self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if crate::error::is_broken_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

impl<W: Write> Write for UntilClosed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.closed {
            let r = self.inner.write_all(buf);
            self.absorb(r)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.absorb(r)
    }
}
