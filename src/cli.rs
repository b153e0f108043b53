//! Process policy shared by every binary: how errors are printed, which
//! exit code they map to, and what a closed pipe means.
//!
//! Every `bin/plc-*.rs` calls [`main_with`] with its tool name and a closure
//! that does the work through the library. Nothing else in the crate
//! touches the process.

use crate::error::{Error, EXIT_OK};
use std::io::{self, BufRead, BufReader, Write};
use std::process::ExitCode;

/// Runs `body`, prints `tool: message` for an error, and maps it to the
/// documented exit code. A closed downstream pipe ends the tool quietly
/// with exit 0: the reader has what it wanted.
pub fn main_with(tool: &str, body: impl FnOnce() -> Result<(), Error>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if e.is_broken_pipe() => ExitCode::from(EXIT_OK),
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "{tool}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Opens `path` for reading, `-` meaning standard input.
pub fn open_input(path: &str) -> Result<Box<dyn BufRead>, Error> {
    if path == "-" {
        Ok(Box::new(BufReader::with_capacity(1 << 16, io::stdin())))
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)) as Box<dyn BufRead>)
    }
}

/// Standard output, buffered. Callers flush it and pass the error up.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(1 << 16, io::stdout().lock())
}
