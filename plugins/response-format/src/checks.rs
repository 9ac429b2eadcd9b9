//! The checks of the `response-format` gate, with the workspace lookup passed in so they are unit-tested
//! natively.

use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::quality_gate::{Finding, GateResult};
use obra_plugin_sdk::{FileChange, Outcome, PluginError, RunResult};
use serde::Deserialize;

/// The gate's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Files (relative to the workspace) that must exist after the run; default none.
    #[serde(default)]
    pub expected_files: Vec<String>,
    /// Substrings that must not occur in the summary, compared case-insensitively (e.g. `"TODO"`,
    /// `"I was unable"`); default none.
    #[serde(default)]
    pub forbid_patterns: Vec<String>,
    /// The fewest characters a summary may have after trimming; default 1.
    #[serde(default = "one")]
    pub min_summary_chars: usize,
    /// Whether the run must have changed at least one file; default false.
    #[serde(default)]
    pub require_changes: bool,
}

fn one() -> usize {
    1
}

/// Run every check; `exists` tells whether a workspace path exists.
pub fn evaluate(
    cfg: &Config,
    result: &RunResult,
    changes: &[FileChange],
    mut exists: impl FnMut(&str) -> Result<bool, PluginError>,
) -> Result<GateResult, PluginError> {
    let mut findings = Vec::new();
    let mut points = 0u32;
    let mut passed = 0u32;
    let mut check = |ok: bool, finding: Finding, findings: &mut Vec<Finding>| {
        points += 1;
        if ok {
            passed += 1;
        } else {
            findings.push(finding);
        }
    };

    check(
        result.outcome == Outcome::Success,
        Finding::error(format!(
            "The run did not succeed: its outcome was `{}` ({}).",
            result.outcome.as_str(),
            excerpt(&result.summary, 300)
        )),
        &mut findings,
    );
    let chars = result.summary.trim().chars().count();
    check(
        chars >= cfg.min_summary_chars.max(1),
        Finding::error(if chars == 0 {
            "The response has no summary: end with a short description of what you changed.".to_string()
        } else {
            format!(
                "The summary is too short ({chars} characters, at least {} expected): describe what you changed.",
                cfg.min_summary_chars
            )
        }),
        &mut findings,
    );
    for path in &cfg.expected_files {
        let ok = exists(path)?;
        check(ok, Finding::error(format!("The file {path} should exist but does not.")).at(path, None), &mut findings);
    }
    let summary = result.summary.to_lowercase();
    for pattern in &cfg.forbid_patterns {
        check(
            pattern.is_empty() || !summary.contains(&pattern.to_lowercase()),
            Finding::error(format!("The summary contains the forbidden text \"{pattern}\".")),
            &mut findings,
        );
    }
    if cfg.require_changes {
        check(
            !changes.is_empty(),
            Finding::error("No file was changed, but this task requires changes."),
            &mut findings,
        );
    }

    let score = passed as f32 / points as f32;
    Ok(if findings.is_empty() {
        GateResult::pass(format!("response format: all {points} checks passed"))
    } else {
        GateResult::fail(format!("response format: {} of {points} checks failed", points - passed), findings)
            .with_score(score)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use obra_plugin_sdk::ChangeKind;

    fn cfg(json: &str) -> Config {
        obra_plugin_sdk::config(json).unwrap()
    }

    fn exists_in(files: &'static [&'static str]) -> impl FnMut(&str) -> Result<bool, PluginError> {
        move |p| Ok(files.contains(&p))
    }

    #[test]
    fn good_response_passes_with_full_score() {
        let r = RunResult::new(Outcome::Success, "Added calc.sh.");
        let g = evaluate(&cfg("{}"), &r, &[], exists_in(&[])).unwrap();
        assert!(g.passed);
        assert_eq!(g.score, 1.0);
        assert!(g.findings.is_empty());
        assert_eq!(g.summary, "response format: all 2 checks passed");
    }

    #[test]
    fn failures_become_findings_and_lower_the_score() {
        let c = cfg(
            r#"{"expected_files": ["calc.sh", "README.md"], "forbid_patterns": ["todo", "unable"], "require_changes": true}"#,
        );
        let r = RunResult::new(Outcome::MaxTurns, "I was UNABLE to finish; TODO: mul");
        let g = evaluate(&c, &r, &[], exists_in(&["README.md"])).unwrap();
        assert!(!g.passed);
        // 7 checks: outcome, summary, 2 files, 2 patterns, changes; failed: outcome, calc.sh, 2 patterns, changes.
        assert_eq!(g.findings.len(), 5);
        assert!((g.score - 2.0 / 7.0).abs() < 1e-6, "{}", g.score);
        assert!(g.findings[0].message.contains("`max-turns`"));
        assert_eq!(g.findings[1].path.as_deref(), Some("calc.sh"));
        assert!(g.findings[2].message.contains("\"todo\""));
        assert_eq!(g.summary, "response format: 5 of 7 checks failed");
    }

    #[test]
    fn empty_summary_and_changes() {
        let c = cfg(r#"{"require_changes": true, "min_summary_chars": 10}"#);
        let r = RunResult::new(Outcome::Success, "  ");
        let change = FileChange { path: "a".into(), kind: ChangeKind::Created, size: Some(1) };
        let g = evaluate(&c, &r, &[change], exists_in(&[])).unwrap();
        assert_eq!(g.findings.len(), 1);
        assert!(g.findings[0].message.contains("no summary"));
        let r = RunResult::new(Outcome::Success, "short");
        let g = evaluate(&c, &r, &[], exists_in(&[])).unwrap();
        assert!(g.findings[0].message.contains("too short (5 characters, at least 10"));
    }

    #[test]
    fn workspace_errors_propagate_and_bad_config_is_fatal() {
        let c = cfg(r#"{"expected_files": ["x"]}"#);
        let r = RunResult::new(Outcome::Success, "ok");
        let e = evaluate(&c, &r, &[], |_| Err(PluginError::denied("no read grant"))).unwrap_err();
        assert_eq!(e.kind(), "denied");
        let e = obra_plugin_sdk::config::<Config>(r#"{"expected_files": "x"}"#).unwrap_err();
        assert!(e.message().contains("expected_files"));
    }
}
