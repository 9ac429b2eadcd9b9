//! `budget`: pause when the tokens or the cost of a task's agent runs, or of the whole project's, is over a
//! limit. Totals come from the store (every interaction, retries included); a limit of 0 is no limit.

use serde::Deserialize;

use super::how_to_resolve;
use crate::contract::Verdict;
use crate::state::UsageTotals;

/// The rule's configuration; 0 means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prompt plus generated tokens of one task.
    #[serde(default)]
    pub max_task_tokens: u64,
    /// US dollars of one task.
    #[serde(default)]
    pub max_task_cost_usd: f64,
    /// Prompt plus generated tokens of the project.
    #[serde(default)]
    pub max_project_tokens: u64,
    /// US dollars of the project.
    #[serde(default)]
    pub max_project_cost_usd: f64,
}

impl Config {
    /// Check no limit is negative.
    pub(super) fn checked(self) -> Result<Self, String> {
        for (name, v) in
            [("max_task_cost_usd", self.max_task_cost_usd), ("max_project_cost_usd", self.max_project_cost_usd)]
        {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{name}: {v} must be 0 (unlimited) or a positive number of dollars"));
            }
        }
        Ok(self)
    }

    /// Judge the totals.
    pub(super) fn evaluate(&self, task: &UsageTotals, project: &UsageTotals, key: &str) -> Verdict {
        let over = |what: &str, used: String, limit: String, field: &str| {
            Verdict::Pause(format!(
                "the {what} used {used}, over its budget of {limit} ({key}.{field}). {}",
                how_to_resolve(&format!(
                    "To let the agent go on, raise {key}.{field} (0 = unlimited) and resolve with --feedback. "
                ))
            ))
        };
        if self.max_task_tokens > 0 && task.tokens() > self.max_task_tokens {
            return over(
                "task",
                format!("{} tokens", task.tokens()),
                format!("{} tokens", self.max_task_tokens),
                "max_task_tokens",
            );
        }
        if self.max_task_cost_usd > 0.0 && task.cost_usd > self.max_task_cost_usd {
            return over(
                "task",
                format!("${:.4}", task.cost_usd),
                format!("${:.4}", self.max_task_cost_usd),
                "max_task_cost_usd",
            );
        }
        if self.max_project_tokens > 0 && project.tokens() > self.max_project_tokens {
            return over(
                "project",
                format!("{} tokens", project.tokens()),
                format!("{} tokens", self.max_project_tokens),
                "max_project_tokens",
            );
        }
        if self.max_project_cost_usd > 0.0 && project.cost_usd > self.max_project_cost_usd {
            return over(
                "project",
                format!("${:.4}", project.cost_usd),
                format!("${:.4}", self.max_project_cost_usd),
                "max_project_cost_usd",
            );
        }
        Verdict::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(tokens: u64, cost: f64) -> UsageTotals {
        UsageTotals { input_tokens: tokens, output_tokens: 0, cost_usd: cost, cost_reported: cost > 0.0 }
    }

    #[test]
    fn zero_is_unlimited() {
        assert_eq!(
            Config::default().evaluate(&used(u64::MAX / 2, 1e9), &used(u64::MAX / 2, 1e9), "k"),
            Verdict::Proceed
        );
    }

    #[test]
    fn each_limit_pauses_only_when_passed() {
        let c = Config {
            max_task_tokens: 100,
            max_task_cost_usd: 1.0,
            max_project_tokens: 1000,
            max_project_cost_usd: 5.0,
        };
        assert_eq!(c.evaluate(&used(100, 1.0), &used(1000, 5.0), "k"), Verdict::Proceed);
        for (task, project, field) in [
            (used(101, 0.0), used(0, 0.0), "max_task_tokens"),
            (used(0, 1.5), used(0, 0.0), "max_task_cost_usd"),
            (used(0, 0.0), used(1001, 0.0), "max_project_tokens"),
            (used(0, 0.0), used(0, 5.01), "max_project_cost_usd"),
        ] {
            let Verdict::Pause(reason) = c.evaluate(&task, &project, "rules[2].config") else { panic!("{field}") };
            assert!(reason.contains(&format!("rules[2].config.{field}")), "{reason}");
            assert!(reason.contains("--feedback"), "{reason}");
        }
        let Verdict::Pause(reason) = c.evaluate(&used(150, 0.0), &used(0, 0.0), "k") else { panic!() };
        assert!(reason.starts_with("the task used 150 tokens, over its budget of 100 tokens"), "{reason}");
        assert!(Config { max_task_cost_usd: -1.0, ..c }.checked().unwrap_err().contains("max_task_cost_usd"));
    }
}
