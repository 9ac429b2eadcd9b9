//! What became of each decision's iteration (`decisions.outcome`): the ground truth that confidence
//! calibration compares the scores with. An outcome is settled when the next thing happens to the work:
//! the loop tries again (superseded), the task completes from it (accepted), a human approves or rejects
//! it at a breakpoint, the task fails, or a checkpoint rollback undoes it.

use anyhow::Result;
use serde::Serialize;

use super::{DbResult, StateManager, Tx};

/// The fate of an iteration's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionOutcome {
    /// The task completed from this iteration (PROCEED, or a human approved it at a breakpoint).
    Accepted,
    /// The loop ran another iteration instead (RETRY or CLARIFY): the work was not good enough as it was.
    Superseded,
    /// A human rejected it at a breakpoint, or answered with feedback asking for changes.
    Rejected,
    /// The task failed with it (a rule aborted, or the agent could not recover).
    Failed,
    /// Accepted at first, then undone by a checkpoint rollback.
    RolledBack,
}

impl DecisionOutcome {
    /// Every outcome, in the order the store lists them.
    pub const ALL: [Self; 5] = [Self::Accepted, Self::Superseded, Self::Rejected, Self::Failed, Self::RolledBack];

    /// The name stored in `decisions.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Superseded => "superseded",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
        }
    }

    /// Whether the outcome counts as the work being good, for calibration.
    pub fn is_success(self) -> bool {
        self == Self::Accepted
    }
}

impl StateManager {
    /// Settle every decision of `task_id` whose outcome is still open, inside the caller's transaction.
    pub(super) async fn settle_open_decisions(
        &self,
        tx: &mut Tx,
        task_id: i64,
        outcome: DecisionOutcome,
        ts: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE decisions SET outcome = $1, outcome_at = $2
             WHERE outcome IS NULL AND interaction_id IN (SELECT id FROM interactions WHERE task_id = $3)",
        )
        .bind(outcome.as_str())
        .bind(ts)
        .bind(task_id)
        .execute(&mut **tx)
        .await
        .db(self)?;
        Ok(())
    }

    /// Mark the task's most recent accepted decision as rolled back, inside the caller's transaction.
    pub(super) async fn unsettle_accepted_decision(&self, tx: &mut Tx, task_id: i64, ts: &str) -> Result<()> {
        sqlx::query(
            "UPDATE decisions SET outcome = $1, outcome_at = $2 WHERE id = (
               SELECT d.id FROM decisions d JOIN interactions i ON i.id = d.interaction_id
               WHERE i.task_id = $3 AND d.outcome = $4 ORDER BY d.id DESC LIMIT 1)",
        )
        .bind(DecisionOutcome::RolledBack.as_str())
        .bind(ts)
        .bind(task_id)
        .bind(DecisionOutcome::Accepted.as_str())
        .execute(&mut **tx)
        .await
        .db(self)?;
        Ok(())
    }
}
