//! Turning one quality gate's answer (or failure) into the record the store keeps and the decision reads.
//!
//! The gate is recorded under its display name (`gates[].name`, default the plugin name). A check that runs
//! past the gate's `timeout_secs` is stopped by the plugin runtime; it is recorded as failed with a finding
//! that says so and names the key that raises the limit, and the loop goes on.
//!
//! [`commands`] lists the commands the enabled gates run (the `tests` gate's, a lint gate's), which the prompt
//! names and the agent is allowed to run too ([`allow_commands`], ADR 32).

use std::time::Duration;

use serde::Serialize;

use crate::config::GateConfig;
use crate::contract::{Finding, GateResult, PluginError, Severity};
use crate::state::GateRecord;

/// The record of gate `config` (at `position` in the configured `gates:` list) after a check that took
/// `elapsed` under the limit `limit`.
pub(crate) fn record(
    position: usize,
    config: &GateConfig,
    outcome: Result<GateResult, PluginError>,
    limit: Duration,
    elapsed: Duration,
) -> GateRecord {
    let name = config.display_name().to_string();
    let duration_ms = elapsed.as_millis() as u64;
    match outcome {
        Ok(r) => GateRecord {
            gate: name,
            passed: r.passed,
            score: if r.score.is_nan() { 0.0 } else { r.score.clamp(0.0, 1.0) },
            summary: r.summary,
            findings: r.findings,
            error: None,
            duration_ms,
        },
        // The runtime stops a call at the caller's limit or at the plugin's own ceiling, whichever is lower;
        // only the first is this gate's timeout_secs.
        Err(PluginError::Timeout(detail)) if elapsed + Duration::from_millis(500) >= limit => {
            let secs = limit.as_secs();
            let message = format!(
                "The gate `{name}` did not finish within its limit of {secs} s and was stopped. If it needs longer, \
                 raise `gates[{position}].timeout_secs` (now {secs}); if it hangs, fix its command or configuration."
            );
            GateRecord {
                gate: name.clone(),
                passed: false,
                score: 0.0,
                summary: format!("timed out after {secs} s (gates[{position}].timeout_secs)"),
                findings: vec![Finding { severity: Severity::Error, message, path: None, line: None }],
                error: Some(format!("timeout: {detail}")),
                duration_ms,
            }
        }
        Err(e) => GateRecord {
            gate: name,
            passed: false,
            score: 0.0,
            summary: format!("the gate could not run: {e}"),
            findings: vec![],
            error: Some(e.to_string()),
            duration_ms,
        },
    }
}

/// A command an enabled gate runs in the workspace: what the agent is told to check its work with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateCommand {
    /// The gate's display name (`tests`, `lint`, ...).
    pub name: String,
    /// The command line, as the gate runs it with `sh -c`.
    pub command: String,
    /// The directory it runs in, relative to the workspace root; `None` for the root.
    pub cwd: Option<String>,
}

/// The commands of the enabled gates, in gate order: every enabled gate whose config has a non-empty string
/// `command` (the built-in `tests` gate and its `lint` instances; a third-party gate that runs a command the
/// same way). Duplicates are kept once.
pub fn commands(gates: &[GateConfig]) -> Vec<GateCommand> {
    let mut out: Vec<GateCommand> = Vec::new();
    for gate in gates.iter().filter(|g| g.enabled) {
        let Some(command) = gate.config.get("command").and_then(serde_json::Value::as_str).map(str::trim) else {
            continue;
        };
        if command.is_empty() || out.iter().any(|c| c.command == command) {
            continue;
        }
        let cwd = gate.config.get("cwd").and_then(serde_json::Value::as_str).map(str::trim);
        out.push(GateCommand {
            name: gate.display_name().to_string(),
            command: command.to_string(),
            cwd: cwd.filter(|c| !c.is_empty() && *c != ".").map(str::to_string),
        });
    }
    out
}

/// Give the agent's config the gates' commands as `gate_commands` when it asks for them
/// (`allow_gate_commands: true`, as the claude-code agent's default config does); returns whether it did.
/// Other agents' configs are left alone, so a plugin that does not know the key never sees it.
pub fn allow_commands(agent_config: &mut serde_json::Value, commands: &[GateCommand]) -> bool {
    match agent_config.as_object_mut() {
        Some(map) if map.get("allow_gate_commands") == Some(&serde_json::Value::Bool(true)) => {
            let list: Vec<&str> = commands.iter().map(|c| c.command.as_str()).collect();
            map.insert("gate_commands".into(), serde_json::json!(list));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(plugin: &str, name: &str) -> GateConfig {
        GateConfig {
            plugin: plugin.into(),
            name: name.into(),
            timeout_secs: 5,
            enabled: true,
            required: true,
            weight: 1.0,
            config: serde_json::json!({}),
            protect: None,
            verifies: None,
        }
    }

    #[test]
    fn results_are_stored_under_the_display_name() {
        let ok = GateResult { passed: true, score: 1.7, findings: vec![], summary: "fine".into() };
        let r = record(1, &gate("tests", "lint"), Ok(ok), Duration::from_secs(5), Duration::from_millis(20));
        assert_eq!((r.gate.as_str(), r.passed, r.score, r.duration_ms), ("lint", true, 1.0, 20));
        let r = record(
            0,
            &gate("tests", ""),
            Err(PluginError::Fatal("bad".into())),
            Duration::from_secs(5),
            Duration::ZERO,
        );
        assert_eq!(r.gate, "tests");
        assert!(!r.passed && r.summary.contains("could not run: fatal: bad"), "{}", r.summary);
        assert!(r.findings.is_empty());
    }

    #[test]
    fn a_timeout_at_the_gate_limit_is_a_failure_naming_the_key() {
        let err = PluginError::Timeout("plugin \"tests\" did not finish check within 5 s".into());
        let r = record(2, &gate("tests", "lint"), Err(err), Duration::from_secs(5), Duration::from_secs(5));
        assert!(!r.passed);
        assert_eq!(r.score, 0.0);
        assert_eq!(r.findings.len(), 1);
        let m = &r.findings[0].message;
        assert!(m.contains("`lint` did not finish within its limit of 5 s"), "{m}");
        assert!(m.contains("gates[2].timeout_secs"), "{m}");
        // A timeout well before the gate's limit came from elsewhere (the plugin's own ceiling).
        let err = PluginError::Timeout("ceiling".into());
        let r = record(2, &gate("tests", "lint"), Err(err), Duration::from_secs(60), Duration::from_secs(5));
        assert!(r.findings.is_empty() && r.summary.contains("could not run"), "{}", r.summary);
    }

    fn with_command(plugin: &str, name: &str, enabled: bool, config: serde_json::Value) -> GateConfig {
        GateConfig { enabled, config, ..gate(plugin, name) }
    }

    #[test]
    fn the_enabled_gates_with_a_command_are_the_commands_the_agent_may_run() {
        let gates = [
            gate("response-format", ""),
            with_command("tests", "", true, serde_json::json!({"command": " python3 -m pytest -q ", "cwd": "."})),
            with_command("tests", "lint", true, serde_json::json!({"command": "ruff check .", "cwd": "src"})),
            with_command("tests", "off", false, serde_json::json!({"command": "make slow"})),
            with_command("tests", "again", true, serde_json::json!({"command": "ruff check ."})),
            with_command("tests", "blank", true, serde_json::json!({"command": ""})),
        ];
        let found = commands(&gates);
        assert_eq!(
            found,
            [
                GateCommand { name: "tests".into(), command: "python3 -m pytest -q".into(), cwd: None },
                GateCommand { name: "lint".into(), command: "ruff check .".into(), cwd: Some("src".into()) },
            ]
        );

        let mut claude = serde_json::json!({"permission_mode": "acceptEdits", "allow_gate_commands": true});
        assert!(allow_commands(&mut claude, &found));
        assert_eq!(claude["gate_commands"], serde_json::json!(["python3 -m pytest -q", "ruff check ."]));
        for mut other in [serde_json::json!({"model": "x"}), serde_json::json!({"allow_gate_commands": false})] {
            let before = other.clone();
            assert!(!allow_commands(&mut other, &found));
            assert_eq!(other, before, "a config that does not ask is left alone");
        }
    }
}
