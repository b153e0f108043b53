//! Runs one command the way `scripts/bench.sh` measures it and prints
//! `wall_s cpu_s maxrss_kb` to OUT:
//!
//!     cargo run --release --example timed -- OUT ERR CMD [ARG...]
//!
//! The command's stdout goes to /dev/null and its stderr to ERR. Wall time
//! is read from the monotonic clock around it; CPU time (user + system, of
//! the command and every process it waited for) and peak RSS come from
//! `wait4`'s rusage: what GNU time prints, but CPU to the microsecond
//! rather than the hundredth (a one-bundle `plc-index` run takes about
//! 15 ms of CPU). A small process of its own, so that the peak RSS of a
//! command is not that of the interpreter that forked it (a Python
//! parent's 13 MB would show in every row). Exits with the command's
//! status.
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, err, cmd, rest @ ..] = args.as_slice() else {
        eprintln!("usage: timed OUT ERR CMD [ARG...]");
        std::process::exit(2);
    };
    let stderr = File::create(err).unwrap_or_else(|e| fail(&format!("creating {err}: {e}")));
    let start = Instant::now();
    let child = Command::new(cmd)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("running {cmd}: {e}")));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if pid < 0 {
        fail(&format!(
            "waiting for {cmd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    std::fs::write(out, format!("{wall:.4} {cpu:.4} {}\n", usage.ru_maxrss))
        .unwrap_or_else(|e| fail(&format!("writing {out}: {e}")));
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::exit(code);
}

fn fail(message: &str) -> ! {
    eprintln!("timed: {message}");
    std::process::exit(2);
}
