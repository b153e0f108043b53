//! The README's first set-up command, scripts/demo.sh, run with the
//! binaries this test build made: it must archive a served archive into a
//! second one and report both chain heads equal.
use crate::common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_offline_demo_archives_a_served_archive_identically() {
    let bin_dir = Path::new(common::run::bin("plc-seal")).parent().unwrap();
    assert!(
        bin_dir.join("examples/synth").exists(),
        "cargo test builds examples/synth next to the binaries"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .arg("2")
        .env("PLC_BIN", bin_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("archive B:     ok: 2 bundles, 20000 operations"),
        "{stdout}"
    );
    assert!(stdout.contains("B is identical to A"), "{stdout}");
    // The server it started is gone: nothing listens on its port.
    let url = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("served at:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let addr = url.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "plc-serve still listens on {addr}"
    );
}
