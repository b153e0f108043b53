//! Progress reports on stderr: a live status line on a terminal, a plain
//! line every so often otherwise (cron logs), nothing with `-q`.
//!
//! The tools of one pipeline share one terminal, so two rules keep it
//! readable. The live status line is cut to the terminal's width (a
//! longer one wraps, and every redraw then scrolls a new row), and it is
//! cleared before the same tool prints anything else. And every line any
//! tool prints on a terminal starts with [`LINE_START`] (carriage return,
//! erase line): if another process's status line is live there, the line
//! replaces it instead of being glued onto its end, and the status line
//! comes back, below it, at its next redraw. [`Lines`] does this for a
//! writer that prints whole lines (plc-seal's "sealed" lines, errors).
//!
//! Errors never go through [`Progress`]; the binaries always print them.

use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What every line printed on a terminal starts with: back to column 0
/// and erase to the end of the row, so that it overwrites a status line
/// another tool of the pipeline left there.
pub const LINE_START: &str = "\r\x1b[K";

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing at all (`-q`).
    Quiet,
    /// A status line redrawn in place (stderr is a terminal).
    Terminal,
    /// A plain line every [`PLAIN_EVERY`] (stderr is a file or a pipe).
    Plain,
}

impl Mode {
    /// The mode for a tool: quiet when asked, else by what stderr is.
    pub fn pick(quiet: bool, stderr_is_terminal: bool) -> Mode {
        match (quiet, stderr_is_terminal) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Terminal,
            (false, false) => Mode::Plain,
        }
    }
}

/// How often a plain progress line is written.
pub const PLAIN_EVERY: Duration = Duration::from_secs(30);
const TERMINAL_EVERY: Duration = Duration::from_millis(200);

/// A progress reporter over a writer (stderr in the binaries).
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    mode: Mode,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
    /// The terminal's width in columns; `None`: ask stderr's terminal at
    /// every redraw (it may be resized).
    width: Option<usize>,
}

impl<'a> Progress<'a> {
    /// A reporter writing to `out` in `mode`. In [`Mode::Terminal`] (which
    /// means stderr is a terminal) the status line is cut to the width of
    /// stderr's terminal, asked at every redraw.
    pub fn new(out: &'a mut dyn Write, mode: Mode) -> Progress<'a> {
        Progress {
            out,
            mode,
            started: Instant::now(),
            last: None,
            drawn: false,
            width: None,
        }
    }

    /// A reporter for a terminal of `width` columns, whatever stderr is.
    pub fn with_width(out: &'a mut dyn Write, mode: Mode, width: usize) -> Progress<'a> {
        let mut p = Progress::new(out, mode);
        p.width = Some(width);
        p
    }

    /// Time since the reporter was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Shows the status `line()` returns, if one is due.
    pub fn update(&mut self, line: impl FnOnce(Duration) -> String) {
        let every = match self.mode {
            Mode::Quiet => return,
            Mode::Terminal => TERMINAL_EVERY,
            Mode::Plain => PLAIN_EVERY,
        };
        let now = Instant::now();
        let due = match self.last {
            None => self.mode == Mode::Terminal || now - self.started >= every,
            Some(t) => now - t >= every,
        };
        if !due {
            return;
        }
        self.last = Some(now);
        let text = line(self.started.elapsed());
        // Each drawing and each line goes out in one write, so that no
        // other tool's output lands in the middle of it.
        let shown = match self.mode {
            Mode::Terminal => {
                self.drawn = true;
                let width = self.width.or_else(stderr_width);
                format!("{LINE_START}{}", fit(&text, width))
            }
            _ => format!("{text}\n"),
        };
        let _ = self.out.write_all(shown.as_bytes());
        let _ = self.out.flush();
    }

    /// Writes a whole line (a note or the final summary), in place of the
    /// status line on a terminal; nothing when quiet.
    pub fn line(&mut self, text: &str) {
        let shown = match self.mode {
            Mode::Quiet => return,
            Mode::Terminal => {
                self.drawn = false;
                format!("{LINE_START}{text}\n")
            }
            Mode::Plain => format!("{text}\n"),
        };
        let _ = self.out.write_all(shown.as_bytes());
    }

    /// Writes a warning (a failed request about to be retried), clearing
    /// the status line first. Unlike [`Progress::line`], also when quiet:
    /// like an error, it reports a failure, and a long wait must not be
    /// silent.
    pub fn warn(&mut self, text: &str) {
        self.clear();
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "{LINE_START}");
            self.drawn = false;
        }
    }
}

/// The columns of the terminal on stderr, if stderr is one that says.
fn stderr_width() -> Option<usize> {
    terminal_size::terminal_size_of(io::stderr())
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w > 0)
}

/// `text` cut to fit a row of `width` columns, leaving the last column
/// free (some terminals wrap as soon as it is written). Status lines are
/// ASCII; a character counts as one column.
fn fit(text: &str, width: Option<usize>) -> &str {
    let Some(width) = width else { return text };
    let keep = width.saturating_sub(1).max(1);
    match text.char_indices().nth(keep) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A writer of whole lines to a terminal shared with other tools: each
/// line goes out in one write, starting with [`LINE_START`], so it
/// replaces another tool's live status line instead of being glued onto
/// it. Not on a terminal, the bytes pass through unchanged.
pub struct Lines<W: Write> {
    inner: W,
    on_terminal: bool,
    pending: Vec<u8>,
    /// The next byte starts a line (a flush can send half of one).
    at_start: bool,
}

impl<W: Write> Lines<W> {
    /// Wraps `inner`; `on_terminal` says whether it is a terminal.
    pub fn new(inner: W, on_terminal: bool) -> Self {
        Lines {
            inner,
            on_terminal,
            pending: Vec::new(),
            at_start: true,
        }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut line = Vec::with_capacity(LINE_START.len() + self.pending.len());
        if self.at_start {
            line.extend_from_slice(LINE_START.as_bytes());
        }
        self.at_start = self.pending.ends_with(b"\n");
        line.append(&mut self.pending);
        self.inner.write_all(&line)
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.on_terminal {
            return self.inner.write(buf);
        }
        // Whole lines go out at once; a partial one waits for its end (or
        // a flush), so that nothing else can land between the start and
        // the text.
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..=i]);
            self.write_pending()?;
            rest = &rest[i + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Lines<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        // Leave the terminal clean for whatever is printed next (an error).
        self.clear();
        let _ = self.out.flush();
    }
}

/// A duration for people: `3d 4h`, `12m 5s`, `850ms`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// A rate for people: operations per second over `elapsed`.
pub fn per_second(n: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (n as f64 / secs) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_writes_nothing_and_terminal_redraws_in_place() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, Mode::Quiet);
            p.update(|_| "x".into());
            p.line("done");
        }
        assert!(buf.is_empty());
        {
            let mut p = Progress::new(&mut buf, Mode::Terminal);
            p.update(|_| "status".into());
            p.line("done");
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "\r\x1b[Kstatus\r\x1b[Kdone\n"
        );
    }

    #[test]
    fn the_status_line_is_cut_to_the_width_and_a_line_replaces_it() {
        let status = "x".repeat(105);
        for (width, shown) in [(60, 59), (80, 79), (200, 105), (1, 1)] {
            let mut buf = Vec::new();
            {
                let mut p = Progress::with_width(&mut buf, Mode::Terminal, width);
                p.update(|_| status.clone());
                p.line("done");
            }
            let want = format!("\r\x1b[K{}\r\x1b[Kdone\n", &status[..shown]);
            assert_eq!(String::from_utf8(buf).unwrap(), want, "{width}");
        }
        // Cut at a character boundary.
        assert_eq!(fit("ééé", Some(3)), "éé");
        assert_eq!(fit("abc", None), "abc");
    }

    #[test]
    fn lines_start_each_line_on_a_terminal_and_pass_through_elsewhere() {
        let mut buf = Vec::new();
        {
            let mut w = Lines::new(&mut buf, true);
            write!(w, "plc-seal: sealed ").unwrap();
            writeln!(w, "000001\nsecond").unwrap();
            write!(w, "third, ").unwrap();
            w.flush().unwrap();
            write!(w, "not ended").unwrap();
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "\r\x1b[Kplc-seal: sealed 000001\n\r\x1b[Ksecond\n\r\x1b[Kthird, not ended"
        );
        let mut buf = Vec::new();
        {
            let mut w = Lines::new(&mut buf, false);
            writeln!(w, "a\nb").unwrap();
        }
        assert_eq!(buf, b"a\nb\n");
    }

    #[test]
    fn plain_mode_waits_before_its_first_line() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, Mode::Plain);
            p.update(|_| "too early".into());
            p.line("summary");
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "summary\n");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(725)), "12m 5s");
        assert_eq!(
            human(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d 4h"
        );
    }
}
