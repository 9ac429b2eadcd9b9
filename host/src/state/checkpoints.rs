//! The checkpoint aggregate: recording a checkpoint, listing them, and marking one rolled back.

use anyhow::{Result, bail};

use super::models::*;
use super::{DbResult, StateManager, now};

impl StateManager {
    /// Record a checkpoint. Its task, when it names one, must belong to the project.
    pub async fn record_checkpoint(&self, new: &NewCheckpoint) -> Result<Checkpoint> {
        if let Some(task_id) = new.task_id {
            let task = self.require_task(task_id).await?;
            if task.project_id != new.project_id {
                bail!("task {task_id} belongs to another project, not to project {}", new.project_id);
            }
        }
        sqlx::query_as::<_, Checkpoint>(
            "INSERT INTO checkpoints (project_id, task_id, interaction_id, label, git_ref, commit_sha, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(new.project_id)
        .bind(new.task_id)
        .bind(new.interaction_id)
        .bind(&new.label)
        .bind(&new.git_ref)
        .bind(&new.commit_sha)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .db(self)
    }

    /// The checkpoints of a project (only those of `task` when given), newest first.
    pub async fn checkpoints(&self, project_id: i64, task: Option<i64>) -> Result<Vec<Checkpoint>> {
        match task {
            Some(task_id) => sqlx::query_as::<_, Checkpoint>(
                "SELECT * FROM checkpoints WHERE project_id = $1 AND task_id = $2 ORDER BY id DESC",
            )
            .bind(project_id)
            .bind(task_id),
            None => sqlx::query_as::<_, Checkpoint>("SELECT * FROM checkpoints WHERE project_id = $1 ORDER BY id DESC")
                .bind(project_id),
        }
        .fetch_all(&self.pool)
        .await
        .db(self)
    }

    /// A checkpoint by id.
    pub async fn checkpoint(&self, id: i64) -> Result<Option<Checkpoint>> {
        sqlx::query_as::<_, Checkpoint>("SELECT * FROM checkpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// Record that the workspace was rolled back to a checkpoint and, when given, set a task's status and
    /// reason after the rollback — in one transaction.
    pub async fn mark_rolled_back(
        &self,
        id: i64,
        task_status_after: Option<(i64, TaskStatus, &str)>,
    ) -> Result<Checkpoint> {
        let mut tx = self.begin().await?;
        let ts = now();
        let checkpoint: Option<Checkpoint> =
            sqlx::query_as("UPDATE checkpoints SET rolled_back_at = $1 WHERE id = $2 RETURNING *")
                .bind(&ts)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .db(self)?;
        let Some(checkpoint) = checkpoint else {
            bail!("checkpoint {id} does not exist; `obra checkpoint list` lists them");
        };
        if let Some((task_id, status, reason)) = task_status_after {
            let done = sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(reason)
                .bind(&ts)
                .bind(task_id)
                .execute(&mut *tx)
                .await
                .db(self)?;
            if done.rows_affected() == 0 {
                bail!("task {task_id} does not exist; nothing was rolled back in the store");
            }
            self.unsettle_accepted_decision(&mut tx, task_id, &ts).await?;
            self.cascade_from(&mut tx, task_id, &format!("unblocked: task {task_id} was rolled back")).await?;
        }
        tx.commit().await.db(self)?;
        Ok(checkpoint)
    }
}
