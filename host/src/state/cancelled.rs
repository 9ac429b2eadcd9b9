//! Cancellation as the store enforces it: `cancelled` is terminal for a task's loop. Only the user moves a
//! cancelled task (`obra task retry`); every write the loop makes about a task's status (starting an
//! iteration, concluding one, pausing for a rate limit) is conditional on the task not being cancelled, and a
//! refused write is a [`TaskCancelled`] error the loop turns into its end. So a cancel that lands while a task
//! runs, in this process or another, is never overwritten.

use anyhow::Result;

use super::{DbResult, StateManager, TaskStatus};

/// The task was cancelled while its loop ran; the write that found it was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task_id} was cancelled while it ran; `obra task retry {task_id}` makes it pending again")]
pub struct TaskCancelled {
    /// The cancelled task.
    pub task_id: i64,
}

impl TaskCancelled {
    /// Whether `error` (or one of its causes) is a cancellation.
    pub fn is(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| cause.downcast_ref::<TaskCancelled>().is_some())
    }
}

impl StateManager {
    /// Whether the task is cancelled now (a missing task counts as not cancelled: other reads report that).
    pub async fn is_cancelled(&self, task_id: i64) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as("SELECT status FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .db(self)?;
        Ok(row.is_some_and(|(status,)| status == TaskStatus::Cancelled.as_str()))
    }

    /// Fail with [`TaskCancelled`] when the task is cancelled: the loop's check at a step boundary.
    pub async fn ensure_not_cancelled(&self, task_id: i64) -> Result<()> {
        if self.is_cancelled(task_id).await? {
            return Err(TaskCancelled { task_id }.into());
        }
        Ok(())
    }
}
