//! `response-format`: a deterministic quality gate (no LLM) on the form of the agent's response.
//!
//! Checks, each worth one point of the score (passed points / all points):
//! 1. the run's outcome is `success`;
//! 2. the summary has at least `min_summary_chars` characters (default 1) after trimming;
//! 3. each of `expected_files` exists in the workspace (one point per file);
//! 4. none of `forbid_patterns` occurs in the summary (case-insensitive substrings; one point per pattern);
//! 5. with `require_changes: true`, the agent changed at least one file.
//!
//! The gate passes when every check passes; each failed check is an `error` finding written as feedback for
//! the agent. Config: `{"expected_files": [...], "forbid_patterns": [...], "min_summary_chars": 1,
//! "require_changes": false}`, all optional.

pub mod checks;

use obra_plugin_sdk::quality_gate::{GateInput, GateResult, QualityGate};
use obra_plugin_sdk::{PluginError, config, export_quality_gate, workspace};

/// The gate.
pub struct ResponseFormat;

impl QualityGate for ResponseFormat {
    fn describe() -> String {
        "Checks the agent's response: outcome success, non-empty summary, expected files, forbidden patterns".into()
    }

    fn check(input: GateInput) -> Result<GateResult, PluginError> {
        let cfg: checks::Config = config(&input.config)?;
        checks::evaluate(&cfg, &input.agent_result, &input.changes, workspace::exists)
    }
}

export_quality_gate!(ResponseFormat);
