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
    /// Phrases (case-insensitive) with which an agent says it could not do the task; default
    /// [`DEFAULT_INABILITY`]. `[]` turns the check off.
    #[serde(default = "default_inability")]
    pub inability_patterns: Vec<String>,
    /// Whether to flag a summary that looks cut off (an unclosed code fence, a trailing `...`, `,` or `:`);
    /// default true.
    #[serde(default = "yes")]
    pub check_truncation: bool,
    /// Whether to warn about files the summary says were changed that the run did not change; default true.
    #[serde(default = "yes")]
    pub check_claimed_files: bool,
}

/// Phrases with which agents say they could not do the task.
pub const DEFAULT_INABILITY: &[&str] = &[
    "i was unable to",
    "i am unable to",
    "i'm unable to",
    "i was not able to",
    "i could not complete",
    "i couldn't complete",
    "i cannot complete",
    "i can't complete",
    "unable to complete the task",
    "i could not finish",
    "i couldn't finish",
];

fn default_inability() -> Vec<String> {
    DEFAULT_INABILITY.iter().map(|s| s.to_string()).collect()
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// Why a summary looks cut off, if it does.
pub fn truncation(summary: &str) -> Option<&'static str> {
    let t = summary.trim_end();
    if t.is_empty() {
        return None;
    }
    if t.matches("```").count() % 2 == 1 {
        return Some("it opens a code block that it never closes");
    }
    if t.ends_with("...") || t.ends_with('…') {
        return Some("it ends with an ellipsis");
    }
    if t.ends_with([',', ':', ';', '(', '[', '{']) {
        return Some("it ends in the middle of a sentence");
    }
    None
}

const CHANGE_VERBS: &[&str] = &[
    "created", "modified", "updated", "added", "wrote", "changed", "edited", "rewrote", "fixed", "deleted", "removed",
];

/// Paths the summary says were changed: path-like words (with a `/` or a short extension) in a sentence with
/// a change verb. Deliberately narrow, since it is only a warning.
pub fn claimed_paths(summary: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in summary.lines() {
        // Split into sentences on ". " so that the file extensions' dots stay inside words.
        for sentence in line.split(". ") {
            let lower = sentence.to_lowercase();
            if !CHANGE_VERBS.iter().any(|v| lower.split(|c: char| !c.is_alphabetic()).any(|w| w == *v)) {
                continue;
            }
            for word in sentence.split_whitespace() {
                let w = word.trim_matches(|c: char| "`'\"*,:;()[]".contains(c)).trim_end_matches('.');
                let ext_ok = w.rsplit_once('.').is_some_and(|(stem, ext)| {
                    !stem.is_empty()
                        && (1..=5).contains(&ext.len())
                        && ext.chars().all(|c| c.is_ascii_alphanumeric())
                        && ext.chars().any(|c| c.is_ascii_alphabetic())
                });
                let looks_like_path = !w.contains("://")
                    && w.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
                    && (ext_ok || (w.contains('/') && w.len() > 2));
                if looks_like_path && !paths.iter().any(|p| p == w) {
                    paths.push(w.to_string());
                }
            }
        }
    }
    paths
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
    if cfg.check_truncation {
        let why = truncation(&result.summary);
        check(
            why.is_none(),
            Finding::error(format!(
                "The summary looks cut off ({}): finish the work and end with a complete summary.",
                why.unwrap_or_default()
            )),
            &mut findings,
        );
    }
    if !cfg.inability_patterns.is_empty() {
        let said = cfg.inability_patterns.iter().find(|p| !p.is_empty() && summary.contains(&p.to_lowercase()));
        check(
            said.is_none(),
            Finding::error(format!(
                "The agent says it could not do the task (\"{}\"): {}",
                said.map(String::as_str).unwrap_or_default(),
                excerpt(&result.summary, 300)
            )),
            &mut findings,
        );
    }
    check(
        result.permission_denials.is_empty(),
        Finding::error(format!(
            "{} action(s) were refused permission: {}. Do the task without them, or ask for the permission \
                 (agents.<agent>.permission_mode in the configuration).",
            result.permission_denials.len(),
            excerpt(&result.permission_denials.join("; "), 300)
        )),
        &mut findings,
    );
    let mut warnings = Vec::new();
    if cfg.check_claimed_files {
        for path in claimed_paths(&result.summary) {
            let changed = changes.iter().any(|c| c.path == path || c.path.ends_with(&format!("/{path}")));
            if !changed {
                warnings.push(
                    Finding::warning(format!(
                        "The summary mentions {path} as changed, but this run did not change it; check that the change was made."
                    ))
                    .at(&path, None),
                );
            }
        }
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
        let mut pass = GateResult::pass(format!("response format: all {points} checks passed"));
        if !warnings.is_empty() {
            pass.summary.push_str(&format!(", {} warning(s)", warnings.len()));
        }
        pass.findings = warnings;
        pass
    } else {
        findings.extend(warnings);
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
        let change = FileChange { path: "calc.sh".into(), kind: ChangeKind::Created, size: Some(1) };
        let g = evaluate(&cfg("{}"), &r, &[change], exists_in(&[])).unwrap();
        assert!(g.passed);
        assert_eq!(g.score, 1.0);
        assert!(g.findings.is_empty());
        assert_eq!(g.summary, "response format: all 5 checks passed");
    }

    #[test]
    fn failures_become_findings_and_lower_the_score() {
        let c = cfg(
            r#"{"expected_files": ["calc.sh", "README.md"], "forbid_patterns": ["todo", "unable"], "require_changes": true}"#,
        );
        let r = RunResult::new(Outcome::MaxTurns, "I was UNABLE to finish; TODO: mul");
        let g = evaluate(&c, &r, &[], exists_in(&["README.md"])).unwrap();
        assert!(!g.passed);
        // 10 checks: outcome, summary, 2 files, 2 patterns, truncation, inability, permissions, changes;
        // failed: outcome, calc.sh, 2 patterns, inability ("I was unable to"), changes.
        assert_eq!(g.findings.len(), 6);
        assert!((g.score - 4.0 / 10.0).abs() < 1e-6, "{}", g.score);
        assert!(g.findings[0].message.contains("`max-turns`"));
        assert_eq!(g.findings[1].path.as_deref(), Some("calc.sh"));
        assert!(g.findings[2].message.contains("\"todo\""));
        assert!(g.findings[4].message.contains("could not do the task (\"i was unable to\")"));
        assert_eq!(g.summary, "response format: 6 of 10 checks failed");
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
    fn cut_off_summaries_and_permission_denials_fail() {
        for (summary, why) in [
            ("Added calc.sh:\n```sh\necho 1", "never closes"),
            ("I added the function and then...", "ellipsis"),
            ("Changes made to the following files:", "middle of a sentence"),
        ] {
            let g = evaluate(&cfg("{}"), &RunResult::new(Outcome::Success, summary), &[], exists_in(&[])).unwrap();
            assert!(!g.passed, "{summary}");
            assert!(g.findings[0].message.contains(why), "{summary}: {}", g.findings[0].message);
        }
        assert!(truncation("Done. See `a.sh`.").is_none());
        let g = evaluate(
            &cfg(r#"{"check_truncation": false}"#),
            &RunResult::new(Outcome::Success, "a..."),
            &[],
            exists_in(&[]),
        )
        .unwrap();
        assert!(g.passed);

        let mut r = RunResult::new(Outcome::Success, "Done.");
        r.permission_denials = vec!["Bash(rm -rf build)".into()];
        let g = evaluate(&cfg("{}"), &r, &[], exists_in(&[])).unwrap();
        assert!(!g.passed);
        assert!(g.findings[0].message.contains("1 action(s) were refused permission: Bash(rm -rf build)"));
    }

    #[test]
    fn files_claimed_but_not_changed_are_warnings_that_keep_the_gate_passing() {
        let r = RunResult::new(
            Outcome::Success,
            "I created `src/calc.sh` and updated README.md. I read docs/spec.txt first.",
        );
        let change = FileChange { path: "src/calc.sh".into(), kind: ChangeKind::Created, size: Some(1) };
        let g = evaluate(&cfg("{}"), &r, &[change], exists_in(&[])).unwrap();
        assert!(g.passed);
        assert_eq!(g.findings.len(), 1, "{:?}", g.findings);
        assert_eq!(g.findings[0].path.as_deref(), Some("README.md"));
        assert!(g.summary.ends_with(", 1 warning(s)"), "{}", g.summary);
        assert_eq!(claimed_paths("Fixed the bug in v1.2 of lib/a.rs, see https://x.y/z.html"), vec!["lib/a.rs"]);
        let off = cfg(r#"{"check_claimed_files": false, "inability_patterns": []}"#);
        let r = RunResult::new(Outcome::Success, "I was unable to edit a.rs");
        assert!(evaluate(&off, &r, &[], exists_in(&[])).unwrap().findings.is_empty());
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
