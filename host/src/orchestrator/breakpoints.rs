//! Resolving a breakpoint, as one application operation for every face: the checks (an approval over failed
//! required gates needs `force`), the store's resolution (one transaction), the user's input in the production
//! log, and the commit of approved work as a PROCEED's would be (`git.commit_strategy`).

use std::sync::Arc;

use anyhow::{Result, bail};

use super::Orchestrator;
use crate::engine::events::LoopObserver;
use crate::state::{Breakpoint, MERGE_CONFLICT_RULE, Resolution, Task, TaskStatus};

/// What resolving a breakpoint did.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The breakpoint, resolved.
    pub breakpoint: Breakpoint,
    /// Its task, in its new status.
    pub task: Task,
    /// The failed required gates an approval went over (with `force`), each as `name (summary)`.
    pub forced_over: Vec<String>,
}

impl Orchestrator {
    /// Resolve breakpoint `id` as `by`. An approval of an iteration whose required gates failed is refused
    /// unless `force`; approved work is committed (not after a merge conflict, which the human merged).
    pub async fn resolve_breakpoint(
        &self,
        id: i64,
        resolution: Resolution,
        force: bool,
        by: &str,
        observer: Arc<dyn LoopObserver>,
    ) -> Result<Resolved> {
        let mut forced_over = Vec::new();
        if let Some(bp) = self.state().breakpoint(id).await? {
            self.task(bp.task_id).await?;
            if matches!(resolution, Resolution::Approve) && bp.status == "open" {
                let failed = self.failed_required_gates(&bp).await?;
                if !failed.is_empty() && !force {
                    bail!(
                        "breakpoint {}: the iteration's required gate(s) failed: {}\n  approving completes task \
                         {} with that work; `obra breakpoint show {}` shows why. Approve anyway with \
                         `obra breakpoint resolve {} --approve --force`, or send it back with --feedback \
                         \"...\"",
                        bp.id,
                        failed.join("; "),
                        bp.task_id,
                        bp.id,
                        bp.id
                    );
                }
                forced_over = failed;
            }
        }
        let breakpoint = self.state().resolve_breakpoint(id, resolution, by).await?;
        let task = self.state().require_task(breakpoint.task_id).await?;
        self.log_user_input(
            "breakpoint_resolved",
            serde_json::json!({ "task_id": task.id, "breakpoint_id": breakpoint.id, "rule": breakpoint.rule,
                                "resolution": breakpoint.resolution, "feedback": breakpoint.feedback, "by": by,
                                "forced_over_failed_gates": forced_over }),
        );
        if task.status() == TaskStatus::Completed && breakpoint.rule != MERGE_CONFLICT_RULE {
            self.commit_approved(task.id, by, observer).await?;
        }
        Ok(Resolved { breakpoint, task, forced_over })
    }

    /// The required gates that failed in the iteration a breakpoint opened on, each as `name (summary)`. A
    /// gate the configuration no longer names counts as required (the default).
    pub async fn failed_required_gates(&self, bp: &Breakpoint) -> Result<Vec<String>> {
        let Some(interaction) = bp.interaction_id else { return Ok(Vec::new()) };
        let gates = &self.config().config.gates;
        let required =
            |name: &str| gates.iter().find(|g| g.enabled && g.display_name() == name).is_none_or(|g| g.required);
        Ok(self
            .state()
            .gate_results(interaction)
            .await?
            .into_iter()
            .filter(|g| !g.passed && required(&g.gate))
            .map(|g| format!("{} ({})", g.gate, crate::text::one_line(&g.summary, 100)))
            .collect())
    }
}
