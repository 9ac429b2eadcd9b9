//! `obra checkpoint ...`: the workspace snapshots taken before each agent run, and rolling back to one.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::args::{CheckpointCommand, GlobalArgs};
use super::open_options;
use super::output::{one_line, print_json};
use crate::orchestrator::Orchestrator;
use crate::state::{NewCheckpoint, TaskStatus};
use crate::workspace::checkpoint::Checkpoints;

pub(super) async fn run(g: &GlobalArgs, cmd: CheckpointCommand) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    match cmd {
        CheckpointCommand::List(a) => {
            if let Some(task) = a.task {
                obra.task(task).await?;
            }
            let list = obra.state().checkpoints(obra.project().id, a.task).await?;
            if a.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!(
                    "No checkpoints yet: one is taken before each agent run when the workspace is in a git repository."
                );
            } else {
                for c in &list {
                    let task = c.task_id.map(|t| format!("task {t:<4}")).unwrap_or_else(|| " ".repeat(9));
                    let undone = if c.rolled_back_at.is_some() { "  (rolled back to)" } else { "" };
                    println!(
                        "{:>4}  {}  {}  {}  {}{undone}",
                        c.id,
                        c.created_at,
                        &c.commit_sha[..c.commit_sha.len().min(10)],
                        task,
                        one_line(&c.label, 80)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointCommand::Rollback(a) => {
            let Some(checkpoint) = obra.state().checkpoint(a.id).await? else {
                bail!("checkpoint {} does not exist; `obra checkpoint list` shows them", a.id);
            };
            if checkpoint.project_id != obra.project().id {
                bail!("checkpoint {} belongs to another project; add --project to choose it", a.id);
            }
            if let Some(task_id) = checkpoint.task_id {
                let task = obra.task(task_id).await?;
                if task.status() == TaskStatus::Running && !a.force {
                    bail!(
                        "task {task_id} is running: rolling back under a working agent would mix both states. \
                         Stop it first (or pass --force if it is not really running any more)"
                    );
                }
            }
            let workspace = obra.root().to_path_buf();
            let commit = checkpoint.commit_sha.clone();
            let label = format!("before rollback to checkpoint {}", checkpoint.id);
            let force = a.force;
            let report = tokio::task::spawn_blocking(move || -> Result<_> {
                let checkpoints = Checkpoints::open(&workspace)?.with_context(|| {
                    format!("{} is no longer in a git repository, where the checkpoints are", workspace.display())
                })?;
                checkpoints.restore(&commit, force)
            })
            .await??;
            let safety = match &report.safety_checkpoint {
                Some(info) => Some(
                    obra.state()
                        .record_checkpoint(&NewCheckpoint {
                            project_id: obra.project().id,
                            task_id: checkpoint.task_id,
                            interaction_id: None,
                            label,
                            git_ref: info.git_ref.clone(),
                            commit_sha: info.commit.clone(),
                        })
                        .await?,
                ),
                None => None,
            };
            let reason = format!("rolled back to checkpoint {}", checkpoint.id);
            let task_after = checkpoint.task_id.map(|t| (t, TaskStatus::Pending, reason.as_str()));
            obra.state().mark_rolled_back(checkpoint.id, task_after).await?;
            if a.json {
                print_json(&json!({
                    "checkpoint": checkpoint.id,
                    "written": report.written,
                    "removed": report.removed,
                    "safety_checkpoint": safety.as_ref().map(|s| s.id),
                    "task": checkpoint.task_id,
                }))?;
            } else {
                println!(
                    "Rolled back to checkpoint {} ({}): {} file(s) written, {} removed.",
                    checkpoint.id, checkpoint.label, report.written, report.removed
                );
                if let Some(s) = &safety {
                    println!("The state before is checkpoint {}; undo with: obra checkpoint rollback {}", s.id, s.id);
                }
                if let Some(task) = checkpoint.task_id {
                    println!("Task {task} is pending again; run it with: obra task execute {task}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
