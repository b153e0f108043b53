//! A small HTTP load generator for `scripts/bench.sh`: CLIENTS threads,
//! each on one keep-alive connection, asking plc-serve for `/export` pages
//! (each client pages through the archive from the start, `after` = the
//! last createdAt it received, and starts over at the end) or for
//! `/data/N` files (N = 1..BUNDLES in turn), or for the audit logs
//! (`/{did}/log/audit`) of DIDs drawn at random from a file of DIDs (one
//! per line), for SECONDS seconds.
//!
//!     cargo run --release --example load -- 127.0.0.1:8080 export 32 5
//!     cargo run --release --example load -- 127.0.0.1:8080 data 32 5 20
//!     cargo run --release --example load -- 127.0.0.1:8080 did 16 5 dids.txt
//!
//! Prints one line: `requests=N rps=R p50_ms=X p99_ms=Y errors=E`. Every
//! answer must be a 200 with a Content-Length (plc-serve never chunks a
//! body of known length); anything else counts as an error and the
//! connection is opened again.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: load ADDR export|data|did CLIENTS SECONDS [BUNDLES|DIDS_FILE]";
    let [addr, mode, clients, seconds, rest @ ..] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect(usage);
    let seconds: f64 = seconds.parse().expect(usage);
    let mode = match mode.as_str() {
        "export" => Mode::Export,
        "data" => Mode::Data(rest.first().map_or(1, |b| b.parse().expect(usage))),
        "did" => {
            let text = std::fs::read_to_string(rest.first().expect(usage)).expect("DIDS_FILE");
            let dids: Vec<String> = text.lines().map(str::to_string).collect();
            assert!(!dids.is_empty(), "no DIDs in DIDS_FILE");
            Mode::Did(std::sync::Arc::new(dids))
        }
        _ => panic!("{usage}"),
    };
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, mode) = (addr.clone(), mode.clone());
            std::thread::spawn(move || client(&addr, &mode, i as u64, stop))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    println!(
        "requests={} rps={:.0} p50_ms={:.2} p99_ms={:.2} errors={errors}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}

/// What the clients ask for.
#[derive(Clone)]
enum Mode {
    Export,
    /// `/data/N` of this many bundles.
    Data(u64),
    /// Audit logs of these DIDs.
    Did(std::sync::Arc<Vec<String>>),
}

/// One client's loop: the latency of every answered request, and errors.
fn client(addr: &str, mode: &Mode, seed: u64, stop: Instant) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut after = String::new();
    let mut n = seed;
    // A different pseudo-random sequence per client (64-bit LCG).
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut body = Vec::new();
    while Instant::now() < stop {
        let path = match mode {
            Mode::Export if after.is_empty() => "/export?count=1000".to_string(),
            Mode::Export => format!("/export?count=1000&after={after}"),
            Mode::Data(bundles) => {
                n = n % bundles + 1;
                format!("/data/{n}")
            }
            Mode::Did(dids) => {
                rng = rng
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                format!("/{}/log/audit", dids[(rng >> 33) as usize % dids.len()])
            }
        };
        let t0 = Instant::now();
        let c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    BufReader::with_capacity(1 << 16, s)
                }
                Err(_) => {
                    errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match exchange(c, &path, &mut body) {
            Some(c) => {
                latencies.push(t0.elapsed());
                conn = Some(c);
                if matches!(mode, Mode::Export) {
                    after = last_created_at(&body).unwrap_or_default();
                }
            }
            None => errors += 1,
        }
    }
    (latencies, errors)
}

/// Sends one GET and reads its answer into `body`; the connection back if
/// the answer was a complete 200.
fn exchange(
    mut c: BufReader<TcpStream>,
    path: &str,
    body: &mut Vec<u8>,
) -> Option<BufReader<TcpStream>> {
    c.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .ok()?;
    let mut line = String::new();
    c.read_line(&mut line).ok()?;
    let ok = line.split(' ').nth(1) == Some("200");
    let mut len = None;
    loop {
        line.clear();
        c.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    body.clear();
    body.resize(len?, 0);
    c.read_exact(body).ok()?;
    ok.then_some(c)
}

/// The createdAt of the page's last line (empty page: start over).
fn last_created_at(page: &[u8]) -> Option<String> {
    let last = page.rsplit(|b| *b == b'\n').next()?;
    let key = b"\"createdAt\":\"";
    let at = last.windows(key.len()).position(|w| w == key)? + key.len();
    let end = last[at..].iter().position(|b| *b == b'"')? + at;
    Some(String::from_utf8_lossy(&last[at..end]).replace(':', "%3A"))
}
