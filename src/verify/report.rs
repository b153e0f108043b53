//! How `plc-verify` writes what it finds: a line per problem for people
//! (`bundle 000003: content_hash: index says ..., content has ...`), or
//! with `--json` one JSON object per problem and a summary object for
//! scripts, so that a monitoring job needs no text parsing.

use super::{VerifyConfig, VerifyReport};
use crate::error::{IoContext, Result};
use serde_json::json;
use std::io::Write;

/// What a problem is about.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scope {
    /// The index as a whole.
    Index,
    /// One bundle (its entry or its file).
    Bundle(u64),
    /// The repository directory (files no entry names).
    Directory,
}

impl Scope {
    fn label(self) -> String {
        match self {
            Scope::Index => "index".into(),
            Scope::Bundle(n) => format!("bundle {n:06}"),
            Scope::Directory => "directory".into(),
        }
    }

    fn bundle(self) -> Option<u64> {
        match self {
            Scope::Bundle(n) => Some(n),
            _ => None,
        }
    }
}

/// Writes problem and warning lines (or objects) to `out` and counts them.
pub(super) struct Reporter<'a> {
    out: &'a mut dyn Write,
    json: bool,
    problems: usize,
    warnings: usize,
}

impl<'a> Reporter<'a> {
    pub(super) fn new(out: &'a mut dyn Write, json: bool) -> Reporter<'a> {
        Reporter {
            out,
            json,
            problems: 0,
            warnings: 0,
        }
    }

    /// A problem: the archive fails. `field` may be empty when the
    /// message is about the scope as a whole.
    pub(super) fn problem(
        &mut self,
        scope: Scope,
        field: &str,
        msg: impl std::fmt::Display,
    ) -> Result<()> {
        self.problems += 1;
        if self.json {
            return self.object(scope, field, msg, None);
        }
        let label = scope.label();
        if field.is_empty() {
            writeln!(self.out, "{label}: {msg}")
        } else {
            writeln!(self.out, "{label}: {field}: {msg}")
        }
        .ctx(|| "writing report")
    }

    /// A warning: reported, but the archive passes.
    pub(super) fn warning(
        &mut self,
        scope: Scope,
        field: &str,
        msg: impl std::fmt::Display,
    ) -> Result<()> {
        self.warnings += 1;
        if self.json {
            return self.object(scope, field, msg, Some("warning"));
        }
        writeln!(self.out, "warning: {msg}").ctx(|| "writing report")
    }

    fn object(
        &mut self,
        scope: Scope,
        field: &str,
        msg: impl std::fmt::Display,
        severity: Option<&str>,
    ) -> Result<()> {
        let field = match (field, scope) {
            ("", Scope::Index) => "index",
            ("", _) => "file",
            (f, _) => f,
        };
        let mut v = json!({
            "bundle": scope.bundle(),
            "field": field,
            "message": msg.to_string(),
        });
        if let Some(s) = severity {
            v["severity"] = json!(s);
        }
        writeln!(self.out, "{v}").ctx(|| "writing report")
    }

    /// The counts into `report`.
    pub(super) fn finish(self, mut report: VerifyReport) -> VerifyReport {
        report.problems = self.problems;
        report.warnings = self.warnings;
        report
    }
}

/// See [`super::write_summary`].
pub(super) fn write_summary(
    cfg: &VerifyConfig,
    report: &VerifyReport,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if cfg.json {
        let v = json!({
            "ok": report.problems == 0,
            "bundles": report.bundles,
            "operations": report.operations,
            "head": report.head,
            "problems": report.problems,
            "warnings": report.warnings,
            "checked": report.checked,
            "quick": cfg.quick,
        });
        return writeln!(out, "{v}");
    }
    if report.problems > 0 {
        return Ok(());
    }
    let scope = if cfg.quick {
        " (quick: stored files and chain)"
    } else {
        ""
    };
    let checked = if report.checked == report.bundles {
        format!("{} bundles", report.bundles)
    } else {
        format!("{} of {} bundles checked", report.checked, report.bundles)
    };
    writeln!(
        out,
        "ok: {checked}, {} operations{scope}, head {}",
        report.operations,
        report.head.as_deref().unwrap_or("(empty)")
    )
}
