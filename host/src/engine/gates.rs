//! Turning one quality gate's answer (or failure) into the record the store keeps and the decision reads.
//!
//! The gate is recorded under its display name (`gates[].name`, default the plugin name). A check that runs
//! past the gate's `timeout_secs` is stopped by the plugin runtime; it is recorded as failed with a finding
//! that says so and names the key that raises the limit, and the loop goes on.

use std::time::Duration;

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
}
