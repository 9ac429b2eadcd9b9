//! Pausing a completed task of a parallel run whose branch could not be merged (its branch, base and merge
//! commit are recorded with `set_task_git`).

use anyhow::{Result, bail};

use super::{DbResult, StateManager, now};
use crate::state::TaskStatus;

/// The rule name of the breakpoint a merge conflict opens.
pub const MERGE_CONFLICT_RULE: &str = "merge-conflict";

impl StateManager {
    /// Pause a completed task whose work could not be merged back: status `paused` with `reason` and an open
    /// `merge-conflict` breakpoint on its last interaction, in one transaction. Returns the breakpoint's id.
    pub async fn pause_for_merge_conflict(&self, task_id: i64, reason: &str) -> Result<i64> {
        let mut tx = self.begin().await?;
        let ts = now();
        let done = sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(TaskStatus::Paused.as_str())
            .bind(format!("breakpoint ({MERGE_CONFLICT_RULE}): {reason}"))
            .bind(&ts)
            .bind(task_id)
            .execute(&mut *tx)
            .await
            .db(self)?;
        if done.rows_affected() == 0 {
            bail!("task {task_id} does not exist");
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO breakpoints (task_id, interaction_id, rule, reason, created_at)
             VALUES ($1, (SELECT MAX(id) FROM interactions WHERE task_id = $1), $2, $3, $4) RETURNING id",
        )
        .bind(task_id)
        .bind(MERGE_CONFLICT_RULE)
        .bind(reason)
        .bind(&ts)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        tx.commit().await.db(self)?;
        Ok(id)
    }
}
