//! `max-iterations`: a breakpoint rule that stops the loop from running out of iterations unattended: at the
//! last allowed iteration (`iteration >= max-iterations`), any proposed decision but `proceed` pauses the task
//! for a human (or aborts it, with `{"action": "abort"}`). Config: `{"action": "pause"}` (the default).

use obra_plugin_sdk::breakpoint_rule::{BreakpointRule, LoopEvent, Verdict};
use obra_plugin_sdk::{PluginError, config, export_breakpoint_rule};
use serde::Deserialize;

/// What to do at the last iteration.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pause for a human (default).
    #[default]
    Pause,
    /// Fail the task.
    Abort,
}

/// The rule's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `pause` (default) or `abort`.
    #[serde(default)]
    pub action: Action,
}

/// The verdict for an iteration.
pub fn verdict(cfg_json: &str, iteration: u32, max_iterations: u32, proposed: &str) -> Result<Verdict, PluginError> {
    let cfg: Config = config(cfg_json)?;
    if iteration < max_iterations || proposed.eq_ignore_ascii_case("proceed") {
        return Ok(Verdict::Proceed);
    }
    let reason = format!(
        "iteration {iteration} of {max_iterations} is the last allowed, and the proposed decision is `{proposed}`, not `proceed`"
    );
    Ok(match cfg.action {
        Action::Pause => Verdict::Pause(reason),
        Action::Abort => Verdict::Abort(reason),
    })
}

/// The rule.
pub struct MaxIterations;

impl BreakpointRule for MaxIterations {
    fn describe() -> String {
        "Pauses at the last allowed iteration unless the proposed decision is to proceed".into()
    }

    fn evaluate(event: LoopEvent) -> Result<Verdict, PluginError> {
        verdict(&event.config, event.task.iteration, event.task.max_iterations, &event.proposed_decision)
    }
}

export_breakpoint_rule!(MaxIterations);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_iteration_without_proceed_pauses() {
        assert_eq!(verdict("", 2, 3, "retry").unwrap(), Verdict::Proceed);
        assert_eq!(verdict("", 3, 3, "proceed").unwrap(), Verdict::Proceed);
        assert_eq!(verdict("", 3, 3, "PROCEED").unwrap(), Verdict::Proceed);
        assert_eq!(
            verdict("", 3, 3, "retry").unwrap(),
            Verdict::Pause(
                "iteration 3 of 3 is the last allowed, and the proposed decision is `retry`, not `proceed`".into()
            )
        );
        assert!(matches!(verdict("", 4, 3, "clarify").unwrap(), Verdict::Pause(_)));
        assert!(matches!(verdict(r#"{"action":"abort"}"#, 3, 3, "escalate").unwrap(), Verdict::Abort(_)));
        assert!(verdict(r#"{"action":"stop"}"#, 3, 3, "retry").unwrap_err().message().contains("action"));
    }
}
