//! `response-format`: a deterministic quality gate (no LLM) on the form of the agent's response.
//!
//! Checks, each worth one point of the score (passed points / all points):
//! 1. the run's outcome is `success`;
//! 2. the summary has at least `min_summary_chars` characters (default 1) after trimming;
//! 3. each of `expected_files` exists in the workspace (one point per file);
//! 4. none of `forbid_patterns` occurs in the summary (case-insensitive substrings; one point per pattern);
//! 5. the summary does not look cut off (an unclosed code fence, a trailing `...`, `,`, `:`), unless
//!    `check_truncation: false`;
//! 6. the summary does not say the agent could not do the task (`inability_patterns`, case-insensitive;
//!    `[]` turns this off);
//! 7. no action of the agent was refused permission;
//! 8. with `require_changes: true`, the agent changed at least one file.
//!
//! The gate passes when every check passes; each failed check is an `error` finding written as feedback for
//! the agent. With `check_claimed_files` (default true), a file the summary says was changed but the run did
//! not change is a `warning` finding: the gate still passes, and the warning reaches the next prompt.
//! Config: `{"expected_files": [...], "forbid_patterns": [...], "min_summary_chars": 1, "require_changes":
//! false, "inability_patterns": [...], "check_truncation": true, "check_claimed_files": true}`, all optional.
//!
//! This gate is Obra's response validation (the seeds' ResponseValidator): deterministic, no LLM, first in
//! the gate order so it runs before quality control.

pub mod checks;

use obra_plugin_sdk::quality_gate::{GateInput, GateResult, QualityGate};
use obra_plugin_sdk::{PluginError, config, export_quality_gate, workspace};

/// The gate.
pub struct ResponseFormat;

impl QualityGate for ResponseFormat {
    fn describe() -> String {
        "Checks the agent's response: outcome, complete summary, no refusal or permission denial, expected files, forbidden patterns".into()
    }

    fn check(input: GateInput) -> Result<GateResult, PluginError> {
        let cfg: checks::Config = config(&input.config)?;
        checks::evaluate(&cfg, &input.agent_result, &input.changes, workspace::exists)
    }
}

export_quality_gate!(ResponseFormat);
