//! Rolling the workspace back to a checkpoint, as one application operation: it takes the project's run lock
//! (no loop may work in the tree meanwhile), refuses a task marked running unless `force`, restores the files,
//! records the safety checkpoint of the state before, marks the rollback and makes the task pending again (one
//! store transaction), and logs the user's input.

use anyhow::{Context, Result, bail};

use super::{Orchestrator, lock};
use crate::state::{Checkpoint, NewCheckpoint, TaskStatus};
use crate::workspace::checkpoint::{Checkpoints, RestoreReport};

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The checkpoint restored.
    pub checkpoint: Checkpoint,
    /// Files written and removed.
    pub report: RestoreReport,
    /// The checkpoint of the state before (none when the tree already matched): how to undo the rollback.
    pub safety: Option<Checkpoint>,
}

impl Orchestrator {
    /// The checkpoint `id` of the open project, or an error that says how to find one.
    pub async fn checkpoint(&self, id: i64) -> Result<Checkpoint> {
        let Some(checkpoint) = self.state().checkpoint(id).await? else {
            bail!("checkpoint {id} does not exist; `obra checkpoint list` shows them");
        };
        if checkpoint.project_id != self.project().id {
            bail!("checkpoint {id} belongs to another project; add --project to choose it");
        }
        Ok(checkpoint)
    }

    /// Restore the workspace to checkpoint `id`. `force` also rolls back under a task still marked running
    /// (when no obra runs it any more) and overwrites files the checkpoint's restore would otherwise refuse.
    /// A checkpoint whose ref was pruned (`engine.checkpoint_retention`) is refused, with an error saying so.
    pub async fn rollback_checkpoint(&self, id: i64, force: bool) -> Result<RolledBack> {
        let checkpoint = self.checkpoint(id).await?;
        // No loop may work in the tree while it is rolled back.
        let _lock = lock::RunLock::acquire(&self.run_lock, &self.project().name)?;
        if let Some(task_id) = checkpoint.task_id {
            let task = self.task(task_id).await?;
            if task.status() == TaskStatus::Running && !force {
                bail!(
                    "task {task_id} is running: rolling back under a working agent would mix both states. \
                     Stop it first (or pass --force if it is not really running any more)"
                );
            }
        }
        let workspace = self.root().to_path_buf();
        let (id, git_ref, commit) = (checkpoint.id, checkpoint.git_ref.clone(), checkpoint.commit_sha.clone());
        let retention = self.config().config.engine.checkpoint_retention;
        let report = tokio::task::spawn_blocking(move || -> Result<_> {
            let checkpoints = Checkpoints::open(&workspace)?.with_context(|| {
                format!("{} is no longer in a git repository, where the checkpoints are", workspace.display())
            })?;
            if !checkpoints.is_kept(&git_ref, &commit) {
                bail!(
                    "checkpoint {id} was pruned: its ref {git_ref} is gone (engine.checkpoint_retention keeps the \
                     newest {retention} checkpoints; 0 keeps all), so git may already have dropped its files; roll \
                     back to a newer checkpoint (`obra checkpoint list` marks the pruned ones), and raise \
                     engine.checkpoint_retention to keep more"
                );
            }
            checkpoints.with_retention(retention).restore(&commit, force)
        })
        .await??;
        let safety = match &report.safety_checkpoint {
            Some(info) => Some(
                self.state()
                    .record_checkpoint(&NewCheckpoint {
                        project_id: self.project().id,
                        task_id: checkpoint.task_id,
                        interaction_id: None,
                        label: format!("before rollback to checkpoint {}", checkpoint.id),
                        git_ref: info.git_ref.clone(),
                        commit_sha: info.commit.clone(),
                    })
                    .await?,
            ),
            None => None,
        };
        let reason = format!("rolled back to checkpoint {}", checkpoint.id);
        let task_after = checkpoint.task_id.map(|t| (t, TaskStatus::Pending, reason.as_str()));
        self.state().mark_rolled_back(checkpoint.id, task_after).await?;
        self.log_user_input(
            "checkpoint_rolled_back",
            serde_json::json!({ "checkpoint_id": checkpoint.id, "task_id": checkpoint.task_id, "force": force,
                                "written": report.written, "removed": report.removed }),
        );
        Ok(RolledBack { checkpoint, report, safety })
    }
}
