//! `obra replay <task>`: the task's recorded iterations through today's gates, rules and thresholds.
//!
//! The agent does not run again: each iteration's recorded result and file changes are scored as if they
//! had just happened. Gates run again on the workspace as it was after the iteration when a checkpoint holds
//! it (the checkpoint taken before the next agent run, exported to a scratch directory); otherwise the
//! recorded gate results are used and the report says so. The LLM is not asked again: its recorded opinion
//! joins the score with today's weight. Nothing is stored.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use super::decision::{self, LlmOpinion};
use super::events::Silent;
use super::run::{loop_event, task_info};
use super::{Engine, LoopObserver};
use crate::contract::{FileChange, PluginError, RunResult, Verdict};
use crate::state::{Action, Checkpoint, GateRecord, Interaction};
use crate::workspace::checkpoint::Checkpoints;

/// The replay of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The task.
    pub task_id: i64,
    /// Its title.
    pub title: String,
    /// Each recorded iteration that reached a decision, oldest first.
    pub iterations: Vec<ReplayedIteration>,
    /// How many decisions would change.
    pub changed: usize,
}

/// One iteration, as recorded and as decided today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedIteration {
    /// The interaction (agent run) that ended the iteration.
    pub interaction_id: i64,
    /// Iteration number within its execution.
    pub iteration: i64,
    /// The recorded decision.
    pub recorded_action: String,
    /// The recorded confidence.
    pub recorded_confidence: f64,
    /// Today's decision.
    pub action: Action,
    /// Today's confidence.
    pub confidence: f32,
    /// Today's explanation.
    pub explanation: String,
    /// The rule that would pause or abort the task today, if any.
    pub rule: Option<String>,
    /// The gate results today's decision used.
    pub gates: Vec<GateRecord>,
    /// Where they come from: `re-run on checkpoint N` or `recorded`.
    pub gates_source: String,
    /// Whether today's decision differs from the recorded one.
    pub changed: bool,
}

impl Engine {
    /// Replay task `task_id`'s recorded iterations through the current gates, rules and thresholds.
    pub async fn replay_task(&self, task_id: i64) -> Result<ReplayReport> {
        let task = self.state.require_task(task_id).await?;
        let interactions = self.state.interactions(task_id).await?;
        // Oldest first, so the first one taken after an iteration is the tree that iteration left.
        let mut checkpoints = self.state.checkpoints(task.project_id, Some(task_id)).await?;
        checkpoints.reverse();
        let current = self.current();
        let max_iterations =
            task.max_iterations.map(|m| m as u32).unwrap_or(current.config.engine.max_iterations).max(1);

        let mut report = ReplayReport { task_id, title: task.title.clone(), iterations: Vec::new(), changed: 0 };
        // File changes accumulate over the attempts of one iteration, as the loop reports them.
        let mut changes: Vec<FileChange> = Vec::new();
        for interaction in &interactions {
            for row in self.state.file_changes(interaction.id).await? {
                changes.retain(|c| c.path != row.path);
                changes.push(row.into_change());
            }
            let Some(recorded) = self.state.decision(interaction.id).await? else {
                continue; // an attempt the retry policy repeated, or one interrupted before its decision
            };
            let result = recorded_result(interaction)?;
            let iteration = interaction.iteration.max(1) as u32;
            let info = task_info(&task, iteration, max_iterations);
            let (gates, gates_source) = match &result {
                Ok(r) => match checkpoint_after(&checkpoints, interaction) {
                    Some(checkpoint) => match self.gates_on_checkpoint(checkpoint, &info, r, &changes).await {
                        Ok(gates) => (gates, format!("re-run on checkpoint {}", checkpoint.id)),
                        Err(e) => (self.recorded_gates(interaction.id).await?, format!("recorded ({e:#})")),
                    },
                    None => (
                        self.recorded_gates(interaction.id).await?,
                        "recorded (no checkpoint holds the tree after this iteration)".to_string(),
                    ),
                },
                Err(_) => (Vec::new(), "none (the agent could not run)".to_string()),
            };
            let gate_pairs = decision::pair_by_name(current.plugins.gates.iter().map(|(c, _)| c), &gates);
            let heuristic = decision::heuristic(result.as_ref().ok(), &gate_pairs, changes.len());
            let opinion = recorded.llm_score.map(|score| LlmOpinion {
                confidence: score as f32,
                reasoning: recorded.llm_reasoning.clone().unwrap_or_default(),
            });
            let outcome = result.as_ref().ok().map(|r| r.outcome);
            let mut verdict = decision::decide(
                &current.config.engine.decision,
                &heuristic,
                &decision::Context {
                    opinion: opinion.as_ref(),
                    llm_weight: current.config.llm.weight,
                    llm_note: Some("none was recorded"),
                    outcome,
                    iteration,
                    max_iterations,
                    files_changed: changes.len(),
                    failed_actions: result.as_ref().map_or(0, |r| r.failed_actions.len()),
                },
            );
            let event = loop_event(&info, outcome, &verdict, &gates, &changes);
            let fired = self.evaluate_rules(&event, &changes, &gates).await;
            let rule = match fired {
                Some((rule, Verdict::Pause(reason) | Verdict::Abort(reason))) => {
                    verdict.explanation.push_str(&format!(" Rule {rule} would stop the task: {reason}"));
                    verdict.action = Action::Escalate;
                    Some(rule)
                }
                _ => None,
            };
            let changed = verdict.action.as_str() != recorded.action;
            report.changed += usize::from(changed);
            report.iterations.push(ReplayedIteration {
                interaction_id: interaction.id,
                iteration: interaction.iteration,
                recorded_action: recorded.action.clone(),
                recorded_confidence: recorded.confidence,
                action: verdict.action,
                confidence: verdict.confidence,
                explanation: verdict.explanation,
                rule,
                gates,
                gates_source,
                changed,
            });
            changes.clear();
        }
        Ok(report)
    }

    /// Run today's gates on the tree `checkpoint` holds, exported to a scratch directory.
    async fn gates_on_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        info: &crate::contract::TaskInfo,
        result: &RunResult,
        changes: &[FileChange],
    ) -> Result<Vec<GateRecord>> {
        let scratch = tempfile::Builder::new().prefix("obra-replay-").tempdir().context("cannot make a scratch dir")?;
        let workspace = self.workspace.clone();
        let commit = checkpoint.commit_sha.clone();
        let dir = scratch.path().to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<usize> {
            let checkpoints = Checkpoints::open(&workspace)?
                .context("the workspace is no longer in a git repository, so its checkpoints are gone")?;
            checkpoints.export(&commit, &dir)
        })
        .await??;
        let current = self.current();
        let silent: Arc<dyn LoopObserver> = Arc::new(Silent);
        let scratch_engine = Engine::new(
            current.config.clone(),
            self.state.clone(),
            current.plugins.clone(),
            scratch.path().to_path_buf(),
            silent,
        );
        Ok(scratch_engine.run_gates(info, result, changes).await)
    }

    /// The gate results stored for an interaction.
    pub(super) async fn recorded_gates(&self, interaction_id: i64) -> Result<Vec<GateRecord>> {
        let rows = self.state.gate_results(interaction_id).await?;
        Ok(rows
            .into_iter()
            .map(|g| GateRecord {
                findings: g.findings,
                gate: g.gate,
                passed: g.passed,
                score: g.score as f32,
                summary: g.summary,
                error: g.error,
                duration_ms: g.duration_ms.max(0) as u64,
            })
            .collect())
    }
}

/// The agent's recorded result, or the error it could not run with.
fn recorded_result(interaction: &Interaction) -> Result<std::result::Result<RunResult, PluginError>> {
    match &interaction.result_json {
        Some(json) => Ok(Ok(serde_json::from_str(json).with_context(|| {
            format!("the stored result of interaction {} is not a valid agent result", interaction.id)
        })?)),
        None => Ok(Err(PluginError::Fatal(
            interaction.error.clone().unwrap_or_else(|| "the agent did not return a result".into()),
        ))),
    }
}

/// The first checkpoint taken after the interaction finished: the tree the iteration left behind.
fn checkpoint_after<'a>(checkpoints: &'a [Checkpoint], interaction: &Interaction) -> Option<&'a Checkpoint> {
    let finished = interaction.finished_at.as_deref()?;
    checkpoints.iter().find(|c| c.created_at.as_str() >= finished)
}
