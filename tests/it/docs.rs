//! Help that teaches: every tool's --help states what it reads and writes,
//! shows a real pipeline under EXAMPLES and lists the exit codes; man pages
//! and completions come from the same definitions and install with
//! scripts/install-docs.sh.
use crate::common;

use common::run::*;
use std::path::Path;
use std::process::Command;

const TOOLS: [&str; 11] = [
    "plc-export",
    "plc-dedup",
    "plc-chunk",
    "plc-seal",
    "plc-verify",
    "plc-serve",
    "plc-clone",
    "plc-diff",
    "plc-audit",
    "plc-index",
    "plc-did",
];

#[test]
fn every_help_has_io_contract_examples_and_exit_codes() {
    for tool in TOOLS {
        let o = run(tool, &["--help"], b"");
        assert_eq!(o.code, Some(0), "{tool}");
        let help = o.out();
        assert!(help.contains(&format!("Usage: {tool}")), "{tool}: {help}");
        assert!(help.contains("EXAMPLES:"), "{tool}: {help}");
        assert!(help.contains("EXIT STATUS:"), "{tool}: {help}");
        assert!(help.contains(" | "), "{tool}: a pipeline in {help}");
        assert!(
            help.contains("0  ") || help.contains("2  "),
            "{tool}: codes in {help}"
        );
        let lower = help.to_lowercase();
        assert!(
            lower.contains("writes") || lower.contains("serves"),
            "{tool}: {help}"
        );
        // -h is the short form.
        let short = run(tool, &["-h"], b"");
        assert_eq!(short.code, Some(0));
        assert!(short.out().len() < help.len(), "{tool}");
    }
}

#[test]
fn install_docs_writes_man_pages_and_completions() {
    let tmp = TempDir::new("docs");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(bin("plc-seal")).parent().unwrap();
    let o = Command::new("bash")
        .arg(root.join("scripts/install-docs.sh"))
        .arg(tmp.path())
        .env("PLC_BIN", bin_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let share = tmp.path().join("share");
    for tool in TOOLS {
        let man = std::fs::read_to_string(share.join(format!("man/man1/{tool}.1"))).unwrap();
        assert!(man.contains(&format!(".TH {tool} 1")), "{tool}");
        assert!(man.contains("EXIT STATUS"), "{tool}");
        assert!(man.contains("EXAMPLES"), "{tool}");
        let bash = share.join(format!("bash-completion/completions/{tool}"));
        let check = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
        assert!(check.success(), "{tool}: bash completion does not parse");
        assert!(std::fs::read_to_string(&bash).unwrap().contains("--help"));
        let zsh =
            std::fs::read_to_string(share.join(format!("zsh/site-functions/_{tool}"))).unwrap();
        assert!(
            zsh.starts_with(&format!("#compdef {tool}")),
            "{tool}: {}",
            &zsh[..40]
        );
        let fish =
            std::fs::read_to_string(share.join(format!("fish/vendor_completions.d/{tool}.fish")))
                .unwrap();
        assert!(fish.contains(&format!("complete -c {tool}")), "{tool}");
    }
    let o = run("plc-chunk", &["--generate-completions", "tcsh"], b"");
    assert_eq!(o.code, Some(2));
}

/// A man page's text with roff's escapes for `-` and `\` undone.
fn unroff(line: &str) -> String {
    line.replace("\\-", "-")
        .replace("\\e", "\\")
        .replace("\\&", "")
}

#[test]
fn man_pages_have_a_one_line_name_and_real_examples_and_exit_status() {
    for tool in TOOLS {
        let o = run(tool, &["--generate-man"], b"");
        assert_eq!(o.code, Some(0), "{tool}: {}", o.stderr);
        let man = o.out();
        let lines: Vec<&str> = man.lines().collect();
        let section = |name: &str| -> Vec<&str> {
            let at = lines
                .iter()
                .position(|l| *l == format!(".SH {name}"))
                .unwrap_or_else(|| panic!("{tool}: no .SH {name} in {man}"));
            lines[at + 1..]
                .iter()
                .take_while(|l| !l.starts_with(".SH "))
                .copied()
                .collect()
        };
        assert!(!man.contains(".SH EXTRA"), "{tool}: {man}");

        // NAME: one line, `tool \- summary`, short enough for whatis.
        let name = section("NAME");
        assert_eq!(name.len(), 1, "{tool}: {name:?}");
        let summary = unroff(name[0]);
        assert!(summary.starts_with(&format!("{tool} - ")), "{summary}");
        assert!(summary.len() < 200, "{tool}: {summary}");

        // The --help text is the source: every example line shows as one
        // line of a no-fill block (never refilled, never split), and
        // every exit code is an item of EXIT STATUS.
        // (Wide, so that clap does not wrap the help text itself.)
        let help = Command::new(bin(tool))
            .arg("--help")
            .env("COLUMNS", "1000")
            .output()
            .unwrap();
        let help = String::from_utf8(help.stdout).unwrap();
        let (_, after) = help.split_once("\nEXAMPLES:\n").unwrap();
        let (examples, status) = after.split_once("\nEXIT STATUS:\n").unwrap();
        let block = section("EXAMPLES");
        assert_eq!(block[..2], [".RS 4", ".nf"], "{tool}: {block:?}");
        let shown: Vec<String> = block.iter().map(|l| unroff(l)).collect();
        let mut pipelines = 0;
        for want in examples.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                shown.iter().any(|l| l.trim() == want),
                "{tool}: {want:?} is not one line of {shown:#?}"
            );
            pipelines += usize::from(want.contains(" | "));
        }
        assert!(pipelines > 0, "{tool}: no pipeline in {examples}");
        let exit = section("EXIT STATUS");
        for code in status
            .lines()
            .filter_map(|l| l.trim_start().split_once("  "))
            .map(|(c, _)| c)
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        {
            let item = exit.iter().position(|l| *l == format!("\\fB{code}\\fR"));
            assert!(
                item.is_some_and(|i| i > 0 && exit[i - 1] == ".TP"),
                "{tool}: exit code {code} in {exit:#?}"
            );
        }
    }
}

#[test]
fn duration_flags_name_their_units() {
    let help = Command::new(bin("plc-export"))
        .arg("--help")
        .env("COLUMNS", "1000")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--lag <LAG>",
        "--interval <INTERVAL>",
        "--backoff <BACKOFF>",
    ] {
        // The flag's own entry: its line up to the next option's.
        let mut lines = help
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(flag));
        let first = lines.next().unwrap_or_else(|| panic!("{flag} in {help}"));
        let rest: Vec<&str> = lines
            .take_while(|l| !l.trim_start().starts_with('-'))
            .collect();
        let entry = format!("{first}\n{}", rest.join("\n"));
        assert!(entry.contains("Units: ms, s, m, h, d"), "{flag}: {entry}");
    }
}
