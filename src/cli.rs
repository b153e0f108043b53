//! Process policy shared by every binary: how errors are printed, which
//! exit code they map to, and what a closed pipe means.
//!
//! Every `bin/plc-*.rs` calls [`main_with`] with its tool name and a closure
//! that does the work through the library. Nothing else in the crate
//! touches the process (except that [`crate::progress`], drawing on a
//! terminal, asks stderr's terminal for its width).

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
        ["--generate-man"] => man_page(cmd, &mut out),
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

/// The man page of `cmd`: clap_mangen's title, synopsis, description and
/// options, a one-line NAME, and the `after_long_help` text (the same as
/// `--help` shows) as real EXAMPLES and EXIT STATUS sections.
fn man_page(cmd: clap::Command, w: &mut dyn Write) -> io::Result<()> {
    let name = cmd.get_name().to_string();
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let after = cmd
        .get_after_long_help()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let man = clap_mangen::Man::new(cmd);
    // Each piece clap_mangen renders repeats roff's preamble (the
    // definition of the apostrophe string); the page keeps the first.
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    let summary = roff_text(&man_summary(&about));
    write!(page, ".SH NAME\n{} \\- {summary}\n", roff_text(&name))?;
    let mut rest = Vec::new();
    man.render_synopsis_section(&mut rest)?;
    man.render_description_section(&mut rest)?;
    man.render_options_section(&mut rest)?;
    rest.extend_from_slice(man_sections(&after).as_bytes());
    man.render_version_section(&mut rest)?;
    for line in rest.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b".ie \\n(.g .ds Aq") && !line.starts_with(b".el .ds Aq") {
            page.extend_from_slice(line);
        }
    }
    w.write_all(&page)
}

/// The NAME line's description: the `about` sentence up to its first
/// colon or semicolon (what follows is detail for DESCRIPTION), on one
/// line.
fn man_summary(about: &str) -> String {
    let head = about.split([':', ';']).next().unwrap_or("");
    head.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text escaped for roff: backslashes and hyphens, and a line that would
/// otherwise read as a request.
fn roff_text(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// `after_long_help` text as man page sections: each `HEADING:` line
/// starts a section; EXIT STATUS lines `  N  meaning` (continued on more
/// indented lines) become a tagged list, and every other section
/// (EXAMPLES) is shown as written, line for line, so that a pipeline is
/// never refilled or split.
fn man_sections(text: &str) -> String {
    let mut out = String::new();
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let heading = line.strip_suffix(':').filter(|h| {
            !h.is_empty()
                && !h.starts_with(' ')
                && h.chars().all(|c| c.is_ascii_uppercase() || c == ' ')
        });
        match (heading, sections.last_mut()) {
            (Some(h), _) => sections.push((h, Vec::new())),
            (None, Some((_, lines))) => lines.push(line),
            (None, None) => sections.push(("NOTES", vec![line])),
        }
    }
    for (heading, mut lines) in sections {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        out.push_str(&format!(".SH {heading}\n"));
        if heading == "EXIT STATUS" {
            for line in lines {
                let t = line.trim_start();
                let code_len = t.bytes().take_while(u8::is_ascii_digit).count();
                if code_len > 0 && t[code_len..].starts_with("  ") {
                    out.push_str(&format!(".TP\n\\fB{}\\fR\n", &t[..code_len]));
                    out.push_str(&roff_text(t[code_len..].trim()));
                } else {
                    out.push_str(&roff_text(t));
                }
                out.push('\n');
            }
        } else {
            out.push_str(".RS 4\n.nf\n");
            for line in lines {
                out.push_str(&roff_text(line.strip_prefix("    ").unwrap_or(line)));
                out.push('\n');
            }
            out.push_str(".fi\n.RE\n");
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_becomes_sections_with_examples_kept_line_for_line() {
        let text = "\
EXAMPLES:
    a --x | b -y | c

    # .dot and a \\ backslash
    d

EXIT STATUS:
    0  success
    2  a bad line, or an
       I/O error";
        assert_eq!(
            man_sections(text),
            ".SH EXAMPLES\n.RS 4\n.nf\na \\-\\-x | b \\-y | c\n\n# .dot and a \\e backslash\nd\n.fi\n.RE\n\
             .SH EXIT STATUS\n.TP\n\\fB0\\fR\nsuccess\n.TP\n\\fB2\\fR\na bad line, or an\nI/O error\n"
        );
        assert_eq!(roff_text(".x"), "\\&.x");
        assert_eq!(
            man_summary("Checks everything:\n each file; and more"),
            "Checks everything"
        );
        assert_eq!(man_summary("Reads a, b\n and c"), "Reads a, b and c");
    }
}
