//! Breakpoint rules as the loop evaluates them: WASM rule plugins (`obra:plugin@0.1.0`, which see the WIT
//! `loop-event`) and host-native rules that need what the event does not carry — the changed paths, the
//! store's usage totals, the task's earlier iterations (ADR 0014). Both are named in the `rules:` list; a
//! native rule's name (`destructive-change`, `budget`, `repeated-failure`) is resolved before the plugins.

mod budget;
mod destructive;
mod repeated;

use std::sync::Arc;

use anyhow::Result;
use serde::de::DeserializeOwned;

pub use repeated::failure_signature;

use crate::config::RuleConfig;
use crate::contract::{BreakpointRule, FileChange, LoopEvent, Verdict};
use crate::state::{GateRecord, StateManager, UsageTotals};

/// One rule of the `rules:` list, resolved.
#[derive(Clone)]
pub enum LoopRule {
    /// A breakpoint-rule plugin.
    Plugin(Arc<dyn BreakpointRule>),
    /// A rule built into the host.
    Native(NativeRule),
}

impl LoopRule {
    /// The rule's name: the plugin's, or the native rule's.
    pub fn name(&self) -> &str {
        match self {
            Self::Plugin(p) => p.name(),
            Self::Native(n) => n.name(),
        }
    }
}

/// A host-native rule with its parsed configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeRule {
    /// Pause when the iteration deleted too many files or touched a protected path.
    DestructiveChange(destructive::Config),
    /// Pause when the task's or the project's tokens or cost passed a limit.
    Budget(budget::Config),
    /// Pause when the same failure happened several iterations in a row.
    RepeatedFailure(repeated::Config),
}

/// What native rules judge: this iteration's changes and failure, the usage totals, the earlier failures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFacts {
    /// Files changed in this iteration (over all of its agent attempts).
    pub changes: Vec<FileChange>,
    /// Every agent run of the task so far, this iteration's included.
    pub task_usage: UsageTotals,
    /// Every agent run of every task of the project so far.
    pub project_usage: UsageTotals,
    /// Failure signatures of this execution's iterations, newest (this one) first; `None` for a success.
    pub failures: Vec<Option<String>>,
    /// A description of this iteration's failure, for the reason a rule gives.
    pub failure_text: String,
}

impl NativeRule {
    /// The names of the native rules.
    pub const NAMES: [&'static str; 3] = ["destructive-change", "budget", "repeated-failure"];

    /// The native rule called `name` with `config` parsed, `None` when no native rule has that name, or an
    /// error naming the bad key (under `key`, e.g. `rules[2].config`).
    pub fn resolve(name: &str, config: &serde_json::Value, key: &str) -> Option<Result<Self, String>> {
        fn parse<T: DeserializeOwned>(config: &serde_json::Value, key: &str) -> Result<T, String> {
            let value = if config.is_null() { serde_json::json!({}) } else { config.clone() };
            serde_json::from_value(value).map_err(|e| format!("{key}: {e}"))
        }
        Some(match name {
            "destructive-change" => {
                parse(config, key).and_then(destructive::Config::checked).map(Self::DestructiveChange)
            }
            "budget" => parse(config, key).and_then(budget::Config::checked).map(Self::Budget),
            "repeated-failure" => parse(config, key).and_then(repeated::Config::checked).map(Self::RepeatedFailure),
            _ => return None,
        })
    }

    /// The rule's name in `rules:`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DestructiveChange(_) => "destructive-change",
            Self::Budget(_) => "budget",
            Self::RepeatedFailure(_) => "repeated-failure",
        }
    }

    /// Judge one iteration; `key` names the rule's config section in messages (`rules[1].config`).
    pub fn evaluate(&self, facts: &RuleFacts, key: &str) -> Verdict {
        match self {
            Self::DestructiveChange(c) => c.evaluate(&facts.changes, key),
            Self::Budget(c) => c.evaluate(&facts.task_usage, &facts.project_usage, key),
            Self::RepeatedFailure(c) => c.evaluate(&facts.failures, &facts.failure_text, key),
        }
    }
}

/// Gather what the native rules of `rules` need (and only that) from this iteration and the store.
pub(crate) async fn gather(
    state: &StateManager,
    event: &LoopEvent,
    changes: &[FileChange],
    gates: &[GateRecord],
    rules: &[(RuleConfig, LoopRule)],
) -> Result<RuleFacts> {
    let mut facts = RuleFacts { changes: changes.to_vec(), ..RuleFacts::default() };
    let task_id = event.task.id as i64;
    for (_, rule) in rules {
        match rule {
            LoopRule::Native(NativeRule::Budget(_)) => {
                let task = state.require_task(task_id).await?;
                facts.task_usage = state.task_usage(task_id).await?;
                facts.project_usage = state.project_usage(task.project_id).await?;
            }
            LoopRule::Native(NativeRule::RepeatedFailure(c)) => {
                let current = failure_signature(
                    event.outcome.as_str(),
                    gates.iter().map(|g| (g.gate.as_str(), g.passed, g.summary.as_str(), g.findings.as_slice())),
                );
                facts.failure_text = repeated::describe(event.outcome.as_str(), gates);
                facts.failures = vec![current];
                // Only this execution's iterations count: resolving a breakpoint starts a new streak.
                let earlier = event.task.iteration.saturating_sub(1).min(c.times);
                for it in state.recent_iterations(task_id, earlier).await? {
                    facts.failures.push(failure_signature(
                        it.outcome.as_deref().unwrap_or("crashed"),
                        it.gates.iter().map(|g| (g.gate.as_str(), g.passed, g.summary.as_str(), g.findings.as_slice())),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// The list of paths in a reason: the first few, and how many more.
fn some_paths<'a>(paths: impl Iterator<Item = &'a str>, shown: usize) -> String {
    let all: Vec<&str> = paths.collect();
    let mut text = all.iter().take(shown).copied().collect::<Vec<_>>().join(", ");
    if all.len() > shown {
        text.push_str(&format!(" and {} more", all.len() - shown));
    }
    text
}

/// How to resolve a breakpoint, appended to every native rule's reason.
fn how_to_resolve(extra: &str) -> String {
    format!(
        "{extra}Resolve it with `obra breakpoint resolve <id> --approve` (accept the work as it is), `--reject` (fail \
         the task) or `--feedback \"...\"` (run the task again with your instructions in the prompt)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_their_config_and_bad_keys_are_named() {
        for name in NativeRule::NAMES {
            let rule = NativeRule::resolve(name, &serde_json::json!({}), "rules[0].config").unwrap().unwrap();
            assert_eq!(rule.name(), name);
        }
        assert!(NativeRule::resolve("low-confidence", &serde_json::json!({}), "k").is_none());
        let e = NativeRule::resolve("budget", &serde_json::json!({"max_tokens": 5}), "rules[3].config")
            .unwrap()
            .unwrap_err();
        assert!(e.starts_with("rules[3].config: unknown field `max_tokens`"), "{e}");
        assert!(NativeRule::resolve("budget", &serde_json::Value::Null, "k").unwrap().is_ok());
    }

    #[test]
    fn path_lists_are_cut() {
        assert_eq!(some_paths(["a", "b", "c"].into_iter(), 2), "a, b and 1 more");
        assert_eq!(some_paths(["a"].into_iter(), 2), "a");
    }
}
