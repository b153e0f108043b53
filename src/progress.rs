//! Progress reports on stderr: a live status line on a terminal, a plain
//! line every so often otherwise (cron logs), nothing with `-q`.
//!
//! Errors never go through here; the binaries always print them.

use std::io::Write;
use std::time::{Duration, Instant};

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
}

impl<'a> Progress<'a> {
    /// A reporter writing to `out` in `mode`.
    pub fn new(out: &'a mut dyn Write, mode: Mode) -> Progress<'a> {
        Progress {
            out,
            mode,
            started: Instant::now(),
            last: None,
            drawn: false,
        }
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
        let _ = match self.mode {
            Mode::Terminal => {
                self.drawn = true;
                write!(self.out, "\r\x1b[K{text}")
            }
            _ => writeln!(self.out, "{text}"),
        };
        let _ = self.out.flush();
    }

    /// Writes a whole line (a note or the final summary), clearing the
    /// status line first; nothing when quiet.
    pub fn line(&mut self, text: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        self.clear();
        let _ = writeln!(self.out, "{text}");
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
            let _ = write!(self.out, "\r\x1b[K");
            self.drawn = false;
        }
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
