//! Running the real binaries: one tool with bytes on stdin, or several
//! chained by OS pipes exactly as a shell pipeline chains them, plus
//! temporary directories and expectations computed straight from the
//! generator's bytes with `sha2` (never with the code under test).

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Path of one of the project's binaries.
pub fn bin(name: &str) -> &'static str {
    match name {
        "plc-export" => env!("CARGO_BIN_EXE_plc-export"),
        "plc-dedup" => env!("CARGO_BIN_EXE_plc-dedup"),
        "plc-chunk" => env!("CARGO_BIN_EXE_plc-chunk"),
        "plc-seal" => env!("CARGO_BIN_EXE_plc-seal"),
        "plc-verify" => env!("CARGO_BIN_EXE_plc-verify"),
        "plc-serve" => env!("CARGO_BIN_EXE_plc-serve"),
        "plc-clone" => env!("CARGO_BIN_EXE_plc-clone"),
        "plc-diff" => env!("CARGO_BIN_EXE_plc-diff"),
        "plc-audit" => env!("CARGO_BIN_EXE_plc-audit"),
        "plc-index" => env!("CARGO_BIN_EXE_plc-index"),
        "plc-did" => env!("CARGO_BIN_EXE_plc-did"),
        other => panic!("unknown binary {other}"),
    }
}

/// What a process did.
#[derive(Debug)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// stdout, lossily decoded.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs one tool with `stdin` as its input.
pub fn run(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The tool may stop reading early (that is what some tests check).
        let _ = sin.write_all(&data);
    });
    let out = collect(child);
    feeder.join().unwrap();
    out
}

fn collect(mut child: Child) -> Output {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            s.read_to_end(&mut v).unwrap();
        }
        v
    });
    let mut err = Vec::new();
    se.read_to_end(&mut err).unwrap();
    let stdout = t.join().unwrap();
    let status = child.wait().unwrap();
    Output {
        code: status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Runs `stages` chained by pipes (first stage's stdin is empty), like
/// `a | b | c` in a shell. Returns one [`Output`] per stage; only the last
/// stage has stdout.
pub fn pipeline(stages: &[(&str, Vec<String>)]) -> Vec<Output> {
    wait_all(spawn_pipeline(stages))
}

/// Waits for every stage of a spawned pipeline, draining all outputs.
pub fn wait_all(children: Vec<Child>) -> Vec<Output> {
    // Drain every stderr concurrently so no stage blocks on a full pipe.
    let handles: Vec<_> = children
        .into_iter()
        .map(|c| std::thread::spawn(move || collect(c)))
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Starts one tool with stdin, stdout and stderr all piped to the test.
pub fn spawn_piped(name: &str, args: &[&str]) -> Child {
    Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Starts `stages` chained by pipes and returns the running children.
pub fn spawn_pipeline(stages: &[(&str, Vec<String>)]) -> Vec<Child> {
    let mut children: Vec<Child> = Vec::new();
    let mut prev: Option<std::process::ChildStdout> = None;
    for (i, (name, args)) in stages.iter().enumerate() {
        let stdin = match prev.take() {
            Some(p) => Stdio::from(p),
            None => Stdio::null(),
        };
        let mut child = Command::new(bin(name))
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        if i + 1 < stages.len() {
            prev = child.stdout.take();
        }
        children.push(child);
    }
    children
}

/// The archive pipeline against `url` into `repo`, as the README runs it
/// (with `--rate 0 --lag 0` and a short backoff for tests; `extra` goes to
/// plc-export):
/// `plc-export --repo | plc-dedup --repo | plc-chunk | plc-seal --repo --origin`.
pub fn archive_stages(url: &str, repo: &str, extra: &[&str]) -> Vec<(&'static str, Vec<String>)> {
    let mut export = vec![
        "--url",
        url,
        "--repo",
        repo,
        "--rate",
        "0",
        "--lag",
        "0",
        "--backoff",
        "10ms",
    ];
    export.extend_from_slice(extra);
    vec![
        stage("plc-export", &export),
        stage("plc-dedup", &["--repo", repo]),
        stage("plc-chunk", &["-q"]),
        stage("plc-seal", &["-q", "--repo", repo, "--origin", url]),
    ]
}

/// Builds a stage for [`pipeline`] from string slices.
pub fn stage(name: &'static str, args: &[&str]) -> (&'static str, Vec<String>) {
    (name, args.iter().map(|s| s.to_string()).collect())
}

/// A temporary directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory under the system's temporary directory.
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "plcbundle-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// A path inside it, as a string (for command lines).
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` generated operations with the default mix and this seed.
pub fn synth(n: usize, seed: u64) -> Vec<plcbundle::synth::SynthOp> {
    plcbundle::synth::generate(
        n,
        &plcbundle::synth::SynthOptions {
            seed,
            ..Default::default()
        },
    )
}

/// Each line followed by `\n`, as a tool reads and writes them.
pub fn join_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Lowercase hex SHA-256, computed here with `sha2` directly.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a bundle must be, derived only from the operation lines.
#[derive(Debug, Clone)]
pub struct ExpectedBundle {
    /// Uncompressed content: each line plus `\n`.
    pub content: Vec<u8>,
    /// sha256(content).
    pub content_hash: String,
    /// The chain hash per the V1 specification.
    pub hash: String,
}

/// The bundles of 10,000 lines that `lines` make (an incomplete tail is
/// left out), with hashes and chain computed by the test itself.
pub fn expected_bundles(lines: &[Vec<u8>]) -> Vec<ExpectedBundle> {
    let mut out: Vec<ExpectedBundle> = Vec::new();
    for chunk in lines.chunks_exact(10_000) {
        let mut content = Vec::new();
        for l in chunk {
            content.extend_from_slice(l);
            content.push(b'\n');
        }
        let content_hash = sha256_hex(&content);
        let hash = match out.last() {
            None => sha256_hex(format!("plcbundle:genesis:{content_hash}").as_bytes()),
            Some(p) => sha256_hex(format!("{}:{content_hash}", p.hash).as_bytes()),
        };
        out.push(ExpectedBundle {
            content,
            content_hash,
            hash,
        });
    }
    out
}

/// The repository's index as JSON.
pub fn read_index(dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dir.join("plc_bundles.json")).expect("index exists");
    serde_json::from_slice(&bytes).expect("index is JSON")
}

/// Decompresses a file with the zstd library directly (all frames).
pub fn unzstd(path: &Path) -> Vec<u8> {
    let f = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    zstd::stream::decode_all(&f[..]).unwrap()
}

/// Checks that `dir` holds exactly `want` as its bundles: file contents
/// byte for byte, and the index's content_hash, hash, parent, counts.
pub fn assert_archive(dir: &Path, want: &[ExpectedBundle]) {
    let idx = read_index(dir);
    let bundles = idx["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), want.len(), "number of bundles");
    assert_eq!(idx["last_bundle"].as_u64(), Some(want.len() as u64));
    for (i, (b, w)) in bundles.iter().zip(want).enumerate() {
        let n = i + 1;
        let content = unzstd(&dir.join(format!("{n:06}.jsonl.zst")));
        if content != w.content {
            let got: Vec<&[u8]> = content.split(|&c| c == b'\n').collect();
            let exp: Vec<&[u8]> = w.content.split(|&c| c == b'\n').collect();
            let first = got.iter().zip(&exp).position(|(a, b)| a != b);
            panic!(
                "bundle {n}: content differs ({} vs {} lines; first differing line {:?})",
                got.len(),
                exp.len(),
                first
            );
        }
        assert_eq!(b["bundle_number"].as_u64(), Some(n as u64));
        assert_eq!(
            b["content_hash"].as_str(),
            Some(w.content_hash.as_str()),
            "bundle {n} content_hash"
        );
        assert_eq!(b["hash"].as_str(), Some(w.hash.as_str()), "bundle {n} hash");
        let parent = if i == 0 {
            String::new()
        } else {
            want[i - 1].hash.clone()
        };
        assert_eq!(
            b["parent"].as_str(),
            Some(parent.as_str()),
            "bundle {n} parent"
        );
        assert_eq!(b["operation_count"].as_u64(), Some(10_000));
    }
}

/// A running plc-serve, killed on drop.
pub struct Serve {
    /// The server process.
    pub child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Serve {
    /// Serves `repo` on a free loopback port.
    pub fn start(repo: &str) -> Serve {
        Serve::spawn(Command::new(bin("plc-serve")).args([
            "--repo",
            repo,
            "--listen",
            "127.0.0.1:0",
        ]))
    }

    /// Starts `cmd` (a plc-serve command line listening on port 0) and
    /// waits for the address it prints on stderr.
    pub fn spawn(cmd: &mut Command) -> Serve {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
