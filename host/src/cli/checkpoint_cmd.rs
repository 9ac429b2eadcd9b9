//! `obra checkpoint ...`: the workspace snapshots taken before each agent run and when a task completes: list,
//! show, diff, and rolling back to one.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use super::args::{CheckpointCommand, GlobalArgs};
use super::open_options;
use super::output::{one_line, print_json};
use crate::orchestrator::Orchestrator;
use crate::workspace::checkpoint::{CheckpointDiff, Checkpoints};

pub(super) async fn run(g: &GlobalArgs, cmd: CheckpointCommand) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    match cmd {
        CheckpointCommand::List(a) => {
            if let Some(task) = a.task {
                obra.task(task).await?;
            }
            let list = obra.state().checkpoints(obra.project().id, a.task).await?;
            let kept = kept_in(&obra, &list).await?;
            if a.json {
                let rows = list
                    .iter()
                    .zip(&kept)
                    .map(|(c, kept)| {
                        let mut row = serde_json::to_value(c)?;
                        row["pruned"] = json!(!kept);
                        Ok(row)
                    })
                    .collect::<Result<Vec<_>>>()?;
                print_json(&rows)?;
            } else if list.is_empty() {
                println!(
                    "No checkpoints yet: one is taken before each agent run when the workspace is in a git repository."
                );
            } else {
                for (c, kept) in list.iter().zip(&kept) {
                    let task = c.task_id.map(|t| format!("task {t:<4}")).unwrap_or_else(|| " ".repeat(9));
                    let undone = if c.rolled_back_at.is_some() { "  (rolled back to)" } else { "" };
                    let pruned = if *kept { "" } else { "  (pruned)" };
                    println!(
                        "{:>4}  {}  {}  {}  {}{undone}{pruned}",
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
        CheckpointCommand::Show(a) => {
            let checkpoint = obra.checkpoint(a.id).await?;
            // The checkpoint before it (of the project), or the commit it was taken on.
            let list = obra.state().checkpoints(obra.project().id, None).await?;
            let previous = list.iter().find(|c| c.id < checkpoint.id);
            let from = match previous {
                Some(p) => p.commit_sha.clone(),
                None => format!("{}^", checkpoint.commit_sha),
            };
            let since = match previous {
                Some(p) => format!("checkpoint {}", p.id),
                None => "the commit it was taken on".to_string(),
            };
            let diff = diff_in(&obra, from, Some(checkpoint.commit_sha.clone())).await;
            let diff = match diff {
                Ok(d) => Some(d),
                // The first checkpoint of a repository without commits has no parent: everything is new.
                Err(_) if previous.is_none() => None,
                Err(e) => return Err(e),
            };
            if a.json {
                print_json(&json!({
                    "checkpoint": checkpoint,
                    "since": since,
                    "changes": diff.as_ref().map(|d| &d.changes),
                    "patch": if a.patch { diff.as_ref().map(|d| d.patch.as_str()) } else { None },
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("checkpoint {}  {}", checkpoint.id, checkpoint.label.trim());
            println!("  taken     {}", checkpoint.created_at);
            if let Some(task) = checkpoint.task_id {
                println!("  task      {task}");
            }
            println!("  commit    {} ({})", checkpoint.commit_sha, checkpoint.git_ref);
            if let Some(at) = &checkpoint.rolled_back_at {
                println!("  rolled back to at {at}");
            }
            match &diff {
                Some(d) if d.changes.is_empty() => println!("No change since {since}."),
                Some(d) => {
                    println!("Changed since {since} ({} path(s)):", d.changes.len());
                    for c in &d.changes {
                        println!("  {:<12} {}", c.change, c.path);
                    }
                    if a.patch {
                        println!();
                        print!("{}", d.patch);
                    }
                }
                None => println!("The first checkpoint of a repository without commits: every file is new."),
            }
            println!("Diff against the working tree: obra checkpoint diff {}", checkpoint.id);
            Ok(ExitCode::SUCCESS)
        }
        CheckpointCommand::Diff(a) => {
            let from = obra.checkpoint(a.id).await?;
            let to = match a.to {
                Some(id) => Some(obra.checkpoint(id).await?),
                None => None,
            };
            let diff = diff_in(&obra, from.commit_sha.clone(), to.as_ref().map(|c| c.commit_sha.clone())).await?;
            if a.json {
                print_json(&json!({
                    "from": from.id,
                    "to": to.as_ref().map(|c| c.id),
                    "changes": diff.changes,
                    "patch": if a.stat { None } else { Some(&diff.patch) },
                }))?;
            } else if diff.changes.is_empty() {
                let target = to.map(|c| format!("checkpoint {}", c.id)).unwrap_or_else(|| "the working tree".into());
                println!("No difference between checkpoint {} and {target}.", from.id);
            } else if a.stat {
                for c in &diff.changes {
                    println!("{:<12} {}", c.change, c.path);
                }
            } else {
                print!("{}", diff.patch);
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointCommand::Rollback(a) => {
            let done = obra.rollback_checkpoint(a.id, a.force).await?;
            let (checkpoint, report, safety) = (done.checkpoint, done.report, done.safety);
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

/// For each checkpoint of `list`, whether its ref is still there (not pruned by `engine.checkpoint_retention`);
/// all true when the workspace is not in a git repository (nothing to tell).
async fn kept_in(obra: &Orchestrator, list: &[crate::state::Checkpoint]) -> Result<Vec<bool>> {
    let workspace = obra.root().to_path_buf();
    let refs: Vec<(String, String)> = list.iter().map(|c| (c.git_ref.clone(), c.commit_sha.clone())).collect();
    tokio::task::spawn_blocking(move || -> Result<Vec<bool>> {
        Ok(match Checkpoints::open(&workspace)? {
            Some(checkpoints) => refs.iter().map(|(r, c)| checkpoints.is_kept(r, c)).collect(),
            None => vec![true; refs.len()],
        })
    })
    .await?
}

/// [`Checkpoints::diff`] in the project's workspace, off the async runtime.
async fn diff_in(obra: &Orchestrator, from: String, to: Option<String>) -> Result<CheckpointDiff> {
    let workspace = obra.root().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let checkpoints = Checkpoints::open(&workspace)?.with_context(|| {
            format!("{} is no longer in a git repository, where the checkpoints are", workspace.display())
        })?;
        checkpoints.diff(&from, to.as_deref())
    })
    .await?
}

/// At most this many lines of an iteration's diff are printed by `breakpoint show`.
pub(super) const MAX_DIFF_LINES: usize = 200;

/// What iteration `iteration` of task `task_id` changed: from the checkpoint taken before its agent ran to the
/// task's next checkpoint (the next iteration's, or the one taken when it completed), or to the working tree
/// when there is none after it. `None` when the iteration has no checkpoint (`engine.checkpoints` off, or no
/// git repository). Returns the two ends for people (`checkpoint 3 → checkpoint 4`) and the diff.
pub(super) async fn iteration_diff(
    obra: &Orchestrator,
    task_id: i64,
    iteration: i64,
) -> Result<Option<(String, CheckpointDiff)>> {
    let mut list = obra.state().checkpoints(obra.project().id, Some(task_id)).await?;
    list.sort_by_key(|c| c.id);
    let label = format!("task {task_id} iteration {iteration}: before the agent runs");
    let Some(at) = list.iter().position(|c| c.label == label) else { return Ok(None) };
    let before = &list[at];
    let after = list.get(at + 1);
    let ends = match after {
        Some(a) => format!("checkpoint {} → checkpoint {}", before.id, a.id),
        None => format!("checkpoint {} → the working tree (no checkpoint after this iteration)", before.id),
    };
    let diff = diff_in(obra, before.commit_sha.clone(), after.map(|a| a.commit_sha.clone())).await?;
    Ok(Some((ends, diff)))
}
