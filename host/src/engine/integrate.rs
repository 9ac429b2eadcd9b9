//! What happens when a task completes (a PROCEED decision): a checkpoint of the finished work, and, by
//! `git.commit_strategy`, a commit of the files the task changed, with a conventional-commit message the LLM
//! writes (the template without an LLM) and trailers naming the task, the confidence and the quality score.
//! Work whose gates failed is never committed.

use anyhow::Result;

use super::events::Step;
use super::llm_ask::LlmScope;
use super::prompt::{COMMIT_MESSAGE_SCHEMA, CommitPromptInput, commit_message_from_reply};
use super::{Engine, decision};
use crate::config::{CommitStrategy, GitConfig};
use crate::contract::FileChange;
use crate::state::{GateRecord, Project, Task, TaskStatus};
use crate::workspace::git;

/// The end of a task's last iteration, as the commit needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Completion<'a> {
    /// The iteration that completed the task.
    pub iteration: u32,
    /// The work to commit and how it was judged.
    pub work: CompletedWork<'a>,
    /// The gates' results of that iteration.
    pub gates: &'a [GateRecord],
}

/// A completed task's last agent run and how it was judged: what its commit message and trailers say.
#[derive(Debug, Clone, Copy)]
pub struct CompletedWork<'a> {
    /// The agent run that completed the task (for the record of the commit-message LLM call).
    pub interaction_id: i64,
    /// The agent's final summary.
    pub summary: &'a str,
    /// The decision's confidence.
    pub confidence: f32,
    /// The gates' weighted quality score.
    pub quality: f32,
    /// Who approved the work at a breakpoint, when a human did (an `Obra-Approved-By` trailer).
    pub approved_by: Option<&'a str>,
}

/// The LLM's commit message.
#[derive(Debug, serde::Deserialize)]
struct CommitReply {
    subject: String,
    #[serde(default)]
    body: String,
}

impl Engine {
    /// A task just completed: checkpoint the finished work and commit it as `git.commit_strategy` says.
    /// Nothing here fails the task: a commit git refuses (a hook, a signing error) is reported and the work
    /// stays in the working tree.
    pub(super) async fn on_completed(&self, project: &Project, task: &Task, done: &Completion<'_>) -> Result<()> {
        if self.current().config.engine.checkpoints {
            let label = format!(
                "task {} iteration {}: completed (PROCEED at confidence {:.2})",
                task.id, done.iteration, done.work.confidence
            );
            self.take_checkpoint(task, &label, true).await?;
        }
        self.commit_if_gates_passed(project, task, done.gates, &done.work).await
    }

    /// A human approved `task` at a breakpoint (it is completed now): commit its work as a PROCEED would have,
    /// judged by its last agent run's stored gate results and decision, with an `Obra-Approved-By` trailer.
    pub async fn commit_approved(&self, project: &Project, task: &Task, by: &str) -> Result<()> {
        let Some(last) = self.state.interactions(task.id).await?.into_iter().next_back() else { return Ok(()) };
        let gates = self.recorded_gates(last.id).await?;
        let quality = decision::gate_quality(&decision::pair_by_name(
            self.current().plugins.gates.iter().map(|(c, _)| c),
            &gates,
        ));
        let confidence = self.state.decision(last.id).await?.map_or(0.0, |d| d.confidence as f32);
        let summary = last.summary.clone().unwrap_or_default();
        let work =
            CompletedWork { interaction_id: last.id, summary: &summary, confidence, quality, approved_by: Some(by) };
        self.commit_if_gates_passed(project, task, &gates, &work).await
    }

    /// Commit a completed task's work as `git.commit_strategy` says, unless one of `gates` failed (said).
    async fn commit_if_gates_passed(
        &self,
        project: &Project,
        task: &Task,
        gates: &[GateRecord],
        work: &CompletedWork<'_>,
    ) -> Result<()> {
        if self.current().config.git.commit_strategy == CommitStrategy::Manual {
            return Ok(());
        }
        if let Some(failed) = gates.iter().find(|g| !g.passed) {
            self.observer.step(&Step::Progress(format!(
                "not committed: gate {} failed ({}); work whose gates failed is never committed",
                failed.gate,
                failed.summary.lines().next().unwrap_or("no summary")
            )));
            return Ok(());
        }
        self.commit_work(project, task, work).await
    }

    /// Commit a completed task's work as `git.commit_strategy` says. Nothing here fails the task: a commit git
    /// refuses (a hook, a signing error) is reported and the work stays in the working tree.
    async fn commit_work(&self, project: &Project, task: &Task, work: &CompletedWork<'_>) -> Result<()> {
        let current = self.current();
        let git_config = &current.config.git;
        let Some(tasks) = self.tasks_to_commit(git_config, task).await? else { return Ok(()) };
        let changes = self.changes_of(&tasks).await?;
        if changes.is_empty() {
            self.observer.step(&Step::Progress("nothing to commit: the agent changed no file".into()));
            return Ok(());
        }
        let message = self.commit_message(git_config, project, task, &tasks, &changes, work).await;
        let paths: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
        // Async git processes with the time limit: a hook that hangs fails the commit, not the loop.
        let committed = git::Git::from_config(git_config).commit_paths(&self.workspace, &paths, &message).await;
        match committed {
            Ok(Some(commit)) => {
                for t in &tasks {
                    self.state.set_task_git(t.id, None, None, Some(&commit)).await?;
                }
                self.observer.step(&Step::Committed {
                    commit,
                    subject: git::split_message(&message).0.to_string(),
                    tasks: tasks.iter().map(|t| t.id).collect(),
                    files: changes.len(),
                });
            }
            Ok(None) => self.observer.step(&Step::Progress(
                "nothing to commit: the files the task changed already match HEAD (or git ignores them)".into(),
            )),
            Err(e) => {
                self.observer.step(&Step::Progress("not committed, the work stays in the working tree:".into()));
                // A line per cause, so the one that matters (a hook's message, the time limit) is not cut off.
                for cause in e.chain() {
                    self.observer.step(&Step::Progress(format!("  {cause}")));
                }
            }
        }
        Ok(())
    }

    /// The tasks whose work a commit now holds: none under `manual`, the task under `per_task`, and under
    /// `per_milestone` every task of its milestone once the last one completed (the task alone when it has
    /// no milestone). `None` also when the workspace is not in a git repository (said then).
    async fn tasks_to_commit(&self, git_config: &GitConfig, task: &Task) -> Result<Option<Vec<Task>>> {
        let tasks = match (git_config.commit_strategy, &task.milestone) {
            (CommitStrategy::Manual, _) => return Ok(None),
            (CommitStrategy::PerTask, _) | (CommitStrategy::PerMilestone, None) => vec![task.clone()],
            (CommitStrategy::PerMilestone, Some(milestone)) => {
                let members: Vec<Task> = self
                    .state
                    .tasks(task.project_id)
                    .await?
                    .into_iter()
                    .filter(|t| t.milestone.as_deref() == Some(milestone.as_str()))
                    .collect();
                let left = members.iter().filter(|t| t.status() != TaskStatus::Completed && t.id != task.id).count();
                if left > 0 {
                    self.observer.step(&Step::Progress(format!(
                        "milestone {milestone:?} is committed when its last task completes ({left} left)"
                    )));
                    return Ok(None);
                }
                members
            }
        };
        let workspace = self.workspace.clone();
        if tokio::task::spawn_blocking(move || git2::Repository::discover(&workspace).is_err()).await? {
            self.observer.step(&Step::Progress(format!(
                "not committed: {} is not in a git repository (git.commit_strategy needs one)",
                self.workspace.display()
            )));
            return Ok(None);
        }
        Ok(Some(tasks))
    }

    /// What the agent runs of `tasks` changed, one entry per path with its last change, sorted by path.
    async fn changes_of(&self, tasks: &[Task]) -> Result<Vec<FileChange>> {
        let mut last = std::collections::BTreeMap::new();
        for task in tasks {
            for interaction in self.state.interactions(task.id).await? {
                for row in self.state.file_changes(interaction.id).await? {
                    last.insert(row.path.clone(), row.into_change());
                }
            }
        }
        Ok(last.into_values().collect())
    }

    /// The commit message: the LLM's (when `git.llm_message` and an LLM answers) or the template's, with the
    /// trailers `Obra-Task`, `Obra-Confidence`, `Obra-Quality` (and `Obra-Milestone` for a milestone).
    async fn commit_message(
        &self,
        git_config: &GitConfig,
        project: &Project,
        task: &Task,
        tasks: &[Task],
        changes: &[FileChange],
        work: &CompletedWork<'_>,
    ) -> String {
        // A milestone's commit describes the milestone: its tasks stand in for the task's title.
        let milestone = task.milestone.as_deref().filter(|_| tasks.len() > 1 || tasks[0].id != task.id);
        let described = match milestone {
            Some(name) => {
                let mut t = task.clone();
                t.title = format!("milestone {name}");
                t.description =
                    tasks.iter().map(|t| format!("- task {}: {}", t.id, t.title)).collect::<Vec<_>>().join("\n");
                t
            }
            None => task.clone(),
        };
        let input = CommitPromptInput { project, task: &described, summary: work.summary, changes };
        let mut message = None;
        if git_config.llm_message && self.current().plugins.llm.is_some() {
            let prompt = self.prompts().and_then(|p| p.commit_message_prompt(&input));
            let answer = match prompt {
                Ok(prompt) => {
                    self.ask_llm::<CommitReply>(
                        LlmScope::new(task.id, work.interaction_id, "commit message"),
                        prompt,
                        COMMIT_MESSAGE_SCHEMA,
                    )
                    .await
                }
                Err(e) => Err(format!("cannot render the commit message prompt: {e:#}")),
            };
            match answer {
                Ok(a) if !a.value.subject.trim().is_empty() => {
                    message = Some(commit_message_from_reply(&a.value.subject, &a.value.body, task.id));
                }
                Ok(_) => {
                    self.observer.step(&Step::Progress("the LLM's commit subject is empty; using the template".into()))
                }
                Err(why) => self.observer.step(&Step::Progress(format!("commit message from the template: {why}"))),
            }
        }
        let message = match message {
            Some(m) => m,
            None => match self.prompts() {
                Ok(p) => p.fallback_commit_message(&input),
                Err(_) => format!("chore: {}\n\nObra-Task: {}", described.title, task.id),
            },
        };
        let ids = tasks.iter().map(|t| t.id.to_string()).collect::<Vec<_>>().join(", ");
        let mut trailers = vec![
            ("Obra-Task", ids),
            ("Obra-Confidence", format!("{:.2}", work.confidence)),
            ("Obra-Quality", format!("{:.2}", work.quality)),
        ];
        if let Some(by) = work.approved_by {
            trailers.push(("Obra-Approved-By", by.to_string()));
        }
        if let Some(name) = milestone {
            trailers.push(("Obra-Milestone", name.to_string()));
        }
        // The reply and template add `Obra-Task: <this task>`; a milestone's trailer names all its tasks.
        let message = match milestone {
            Some(_) => message.replace(&format!("\n\nObra-Task: {}", task.id), ""),
            None => message,
        };
        git::with_trailers(&message, &trailers)
    }
}
