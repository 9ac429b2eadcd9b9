//! `tests`: a quality gate that runs the project's test command in the workspace.
//!
//! Runs `sh -c <command>` through the process capability (in the workspace root, or `cwd`), with a time limit
//! and an output cap. It passes when the command exits 0. The score is the pass ratio when the output has a
//! test summary [`counts`] understands (cargo test, pytest, node --test, go test -v, `N passed, M failed`),
//! else 1.0 or 0.0. On failure the finding carries the end of the output, bounded, written to be fed back to
//! the agent.
//!
//! With `findings: lines` the same gate runs a linter (or a compiler, a type checker): each `path:line[:col]:
//! message` line of the output becomes a finding with its severity (see the SDK's `findings_from_lines`), the
//! gate fails when the command fails or an `error` finding was printed, and the score falls with the number of
//! error findings (1 / (1 + errors)). The profiles run their linters this way, as a gate named `lint`.
//!
//! Config: `command` (required, e.g. `"cargo test"`), `timeout_secs` (default 600), `max_output_bytes` (default
//! 262144, per stream), `feedback_bytes` (default 4000: how much of the output's end goes into the finding),
//! `cwd` (default: the workspace root), `env` (variables to set; each must be granted), `findings` (`none`,
//! the default, or `lines`), `max_findings` (default 50: more are counted in one last finding).

pub mod counts;

use std::collections::BTreeMap;

use obra_plugin_sdk::process::{Output, tail_str};
use obra_plugin_sdk::quality_gate::{Finding, GateInput, GateResult, QualityGate, Severity, findings_from_lines};
use obra_plugin_sdk::{PluginError, ResultExt, config, export_quality_gate, process};
use serde::Deserialize;

/// The gate's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The test command, run with `sh -c`.
    pub command: String,
    /// Kill the command after this many seconds; default 600.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Keep at most this many bytes of each of stdout and stderr; default 262144.
    #[serde(default = "default_max_output")]
    pub max_output_bytes: u64,
    /// How many bytes of the output's end go into the failure finding; default 4000.
    #[serde(default = "default_feedback")]
    pub feedback_bytes: usize,
    /// Directory to run in, relative to the workspace root; default the root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment variables to set (each name must be granted).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How to read findings from the output: `none` (the default: the output's end is one finding) or `lines`.
    #[serde(default)]
    pub findings: FindingsMode,
    /// With `findings: lines`, keep at most this many findings; default 50.
    #[serde(default = "default_max_findings")]
    pub max_findings: usize,
}

/// How the gate reads findings from the command's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingsMode {
    /// One finding with the output's end, when the command fails.
    #[default]
    None,
    /// One finding per `path:line[:col]: message` line (linters, compilers).
    Lines,
}

fn default_max_findings() -> usize {
    50
}

fn default_timeout() -> u64 {
    600
}

fn default_max_output() -> u64 {
    256 * 1024
}

fn default_feedback() -> usize {
    4000
}

impl Config {
    fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = config(json)?;
        if cfg.command.trim().is_empty() {
            return Err(PluginError::fatal(
                "invalid config: at `command`: empty (set the test command, e.g. `cargo test`)",
            ));
        }
        if cfg.timeout_secs == 0 {
            return Err(PluginError::fatal("invalid config: at `timeout_secs`: must be at least 1"));
        }
        Ok(cfg)
    }
}

/// Judge a finished linter run (`findings: lines`): every `path:line: message` line is a finding.
pub fn judge_lines(cfg: &Config, out: &Output, root: &str) -> GateResult {
    let cmd = &cfg.command;
    let default = if out.success() { Severity::Warning } else { Severity::Error };
    let mut findings = findings_from_lines(&format!("{}\n{}", out.stdout, out.stderr), root, default);
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let total = findings.len();
    if total > cfg.max_findings {
        findings.truncate(cfg.max_findings);
        findings
            .push(Finding::info(format!("{} more findings are not shown (max_findings).", total - cfg.max_findings)));
    }
    let counted = format!("{errors} error(s), {warnings} warning(s)");
    if out.success() && errors == 0 {
        return GateResult { findings, ..GateResult::pass(format!("`{}` passed ({counted})", tail_str(cmd, 200))) };
    }
    if findings.is_empty() || out.timed_out {
        // Nothing in the line format (or cut short): the output's end says what happened.
        let mut g = judge(cfg, out);
        g.findings.extend(findings);
        return g;
    }
    let how = match out.exit_code {
        Some(0) => "printed errors".to_string(),
        Some(code) => format!("failed with exit code {code}"),
        None => "failed".to_string(),
    };
    GateResult::fail(format!("`{}` {how} ({counted})", tail_str(cmd, 200)), findings)
        .with_score(1.0 / (1.0 + errors.max(1) as f32))
}

/// Judge a finished test run.
pub fn judge(cfg: &Config, out: &Output) -> GateResult {
    let counts = counts::parse(&format!("{}\n{}", out.stdout, out.stderr));
    let counted = counts.map(|c| format!(" ({} passed, {} failed)", c.passed, c.failed)).unwrap_or_default();
    let cmd = &cfg.command;
    if out.success() {
        let score = counts.and_then(|c| c.ratio()).unwrap_or(1.0);
        let mut g = GateResult::pass(format!("`{cmd}` passed{counted}")).with_score(score);
        if out.truncated {
            g.findings.push(Finding::info(format!("The output was cut at {} bytes.", cfg.max_output_bytes)));
        }
        return g;
    }
    let how = if out.timed_out {
        format!("did not finish within {} s and was stopped", cfg.timeout_secs)
    } else if let Some(code) = out.exit_code {
        format!("failed with exit code {code}")
    } else if let Some(sig) = out.signal {
        format!("was killed by signal {sig}")
    } else {
        "failed".to_string()
    };
    let tail = out.tail(cfg.feedback_bytes);
    let tail = tail.trim_end();
    let cut = if tail.len() < out.stdout.len() + out.stderr.len() || out.truncated { " (last part)" } else { "" };
    let message = if tail.is_empty() {
        format!("The tests `{cmd}` {how}{counted}; they printed nothing.")
    } else {
        format!("The tests `{cmd}` {how}{counted}. Output{cut}:\n{tail}")
    };
    let score = if out.timed_out { 0.0 } else { counts.and_then(|c| c.ratio()).unwrap_or(0.0) };
    GateResult::fail(format!("`{}` {how}{counted}", tail_str(cmd, 200)), vec![Finding::error(message)])
        .with_score(score)
}

/// The gate.
pub struct Tests;

impl QualityGate for Tests {
    fn describe() -> String {
        "Runs the project's test command; passes on exit 0".into()
    }

    fn check(input: GateInput) -> Result<GateResult, PluginError> {
        let cfg = Config::parse(&input.config)?;
        let mut cmd = process::command("sh")
            .args(["-c", cfg.command.as_str()])
            .timeout_ms(cfg.timeout_secs.saturating_mul(1000))
            .max_output_bytes(cfg.max_output_bytes);
        if let Some(dir) = &cfg.cwd {
            cmd = cmd.cwd(dir);
        }
        for (k, v) in &cfg.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run().with_context(|| format!("running the test command `sh -c {:?}`", cfg.command))?;
        Ok(match cfg.findings {
            FindingsMode::None => judge(&cfg, &out),
            FindingsMode::Lines => judge_lines(&cfg, &out, &input.workspace),
        })
    }
}

export_quality_gate!(Tests);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(r#"{"command": "sh test.sh", "feedback_bytes": 60}"#).unwrap()
    }

    fn out(code: Option<i32>, stdout: &str) -> Output {
        Output {
            exit_code: code,
            signal: None,
            stdout: stdout.into(),
            stderr: String::new(),
            truncated: false,
            timed_out: false,
            duration_ms: 5,
        }
    }

    #[test]
    fn exit_zero_passes() {
        let g = judge(&cfg(), &out(Some(0), "4 passed, 0 failed\n"));
        assert!(g.passed);
        assert_eq!(g.score, 1.0);
        assert_eq!(g.summary, "`sh test.sh` passed (4 passed, 0 failed)");
        let g = judge(&cfg(), &out(Some(0), "no summary here"));
        assert!(g.passed);
        assert_eq!(g.score, 1.0);
    }

    #[test]
    fn failure_scores_by_ratio_and_feeds_back_the_output_tail() {
        let stdout = format!("{}\nFAIL mul 4 5: expected 20, got '9'\n2 passed, 2 failed\n", "noise ".repeat(50));
        let g = judge(&cfg(), &out(Some(1), &stdout));
        assert!(!g.passed);
        assert_eq!(g.score, 0.5);
        assert_eq!(g.summary, "`sh test.sh` failed with exit code 1 (2 passed, 2 failed)");
        assert_eq!(g.findings.len(), 1);
        let m = &g.findings[0].message;
        assert!(
            m.starts_with("The tests `sh test.sh` failed with exit code 1 (2 passed, 2 failed). Output (last part):\n"),
            "{m}"
        );
        assert!(m.ends_with("got '9'\n2 passed, 2 failed"), "{m}");
        assert!(m.len() < 200, "{m}");
    }

    #[test]
    fn no_counts_scores_zero_and_timeouts_say_so() {
        let g = judge(&cfg(), &out(Some(2), ""));
        assert_eq!(g.score, 0.0);
        assert!(g.findings[0].message.contains("printed nothing"));
        let mut o = out(None, "1 passed, 0 failed");
        o.timed_out = true;
        o.signal = Some(9);
        let g = judge(&cfg(), &o);
        assert!(!g.passed);
        assert_eq!(g.score, 0.0);
        assert!(g.summary.contains("did not finish within 600 s"), "{}", g.summary);
    }

    #[test]
    fn lint_lines_become_findings_with_paths_and_lines() {
        let cfg = Config::parse(r#"{"command": "lint", "findings": "lines", "max_findings": 2}"#).unwrap();
        let stdout =
            "/ws/src/a.py:3:1: F401 unused import\nsrc/b.py:9: warning: shadowed name\nsrc/c.py:1:1: E1 x\nFound 3\n";
        let g = judge_lines(&cfg, &out(Some(1), stdout), "/ws");
        assert!(!g.passed);
        assert_eq!(g.summary, "`lint` failed with exit code 1 (2 error(s), 1 warning(s))");
        assert_eq!(g.score, 1.0 / 3.0);
        assert_eq!(g.findings.len(), 3, "two kept and one saying more were cut");
        assert_eq!((g.findings[0].path.as_deref(), g.findings[0].line), (Some("src/a.py"), Some(3)));
        assert_eq!(g.findings[0].severity, Severity::Error);
        assert_eq!(g.findings[1].severity, Severity::Warning);
        assert!(g.findings[2].message.contains("1 more findings"), "{}", g.findings[2].message);
        // Clean exit with only warnings passes, keeping the warnings; exit 0 with errors fails.
        let g = judge_lines(&cfg, &out(Some(0), "a.rs:1: warning: w\n"), "/ws");
        assert!(g.passed && g.findings.len() == 1 && g.score == 1.0, "{g:?}");
        let g = judge_lines(&cfg, &out(Some(0), "a.rs:1: error: e\n"), "/ws");
        assert!(!g.passed && g.summary.contains("printed errors"), "{g:?}");
        // A failure without any finding line falls back to the output's end.
        let g = judge_lines(&cfg, &out(Some(2), "config file not found\n"), "/ws");
        assert!(!g.passed && g.findings[0].message.contains("config file not found"), "{g:?}");
    }

    #[test]
    fn config_errors_name_the_key() {
        for (json, key) in [
            ("{}", "command"),
            (r#"{"command": " "}"#, "command"),
            (r#"{"command": "x", "timeout_secs": 0}"#, "timeout_secs"),
            (r#"{"command": "x", "timeout": 5}"#, "timeout"),
            (r#"{"command": "x", "findings": "json"}"#, "findings"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
    }
}
