//! Rows of the store and the records the engine hands to it.

use std::path::PathBuf;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::contract::{ChangeKind, FileChange, Finding};

/// A project: a workspace and its backlog.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Absolute path of the workspace the agents work in.
    pub workspace: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// What the project is about (may be empty).
    pub description: String,
    /// The profile its tasks use unless they name one.
    pub profile: Option<String>,
}

/// What `create_project` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    /// Unique name.
    pub name: String,
    /// The workspace the agents work in.
    pub workspace: PathBuf,
    /// What the project is about (may be empty).
    pub description: String,
    /// Default profile of its tasks.
    pub profile: Option<String>,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Not started yet.
    Pending,
    /// An iteration is under way.
    Running,
    /// Finished: the last decision was PROCEED.
    Completed,
    /// Waiting at a breakpoint for a human.
    Paused,
    /// Given up: an unrecoverable agent failure or a rule aborted it.
    Failed,
    /// Cancelled by a human; `retry_task` makes it pending again.
    Cancelled,
    /// Cannot run: a task it depends on, directly or through other blocked tasks, failed or was cancelled
    /// (`status_reason` names the chain). Retrying that task makes it pending again.
    Blocked,
}

impl TaskStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Paused => "paused",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Blocked => "blocked",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "paused" => Self::Paused,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "blocked" => Self::Blocked,
            _ => return None,
        })
    }
}

/// A task of a project's backlog.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Task {
    /// Id.
    pub id: i64,
    /// Owning project.
    pub project_id: i64,
    /// Short title.
    pub title: String,
    /// What to do.
    pub description: String,
    /// 1 (low) to 10 (high).
    pub priority: i64,
    /// `pending`, `running`, `completed`, `paused`, `failed`, `cancelled` or `blocked`.
    pub status: String,
    /// Why the task has its status (the decision's explanation, the breakpoint's reason, the error).
    pub status_reason: Option<String>,
    /// JSON array of task ids this task waits for.
    pub depends_on: String,
    /// Iterations started so far, over all executions.
    pub attempts: i64,
    /// Iteration limit for this task; none for the configured default.
    pub max_iterations: Option<i64>,
    /// The agent session to resume, when the agent reported one.
    pub session_id: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// The profile the task runs with; none for the project's.
    pub profile: Option<String>,
    /// The git branch the task's work is on.
    pub git_branch: Option<String>,
    /// The commit the branch started from.
    pub git_base_commit: Option<String>,
    /// The commit holding the task's finished work.
    pub git_commit: Option<String>,
    /// Not handed out before this time (RFC 3339, UTC): the task waits for an agent's rate limit to reset.
    pub resume_after: Option<String>,
    /// The milestone the task belongs to; tasks of one milestone continue one agent session.
    pub milestone: Option<String>,
}

impl Task {
    /// The parsed status (unknown values read as `pending`, which is what a re-run needs).
    pub fn status(&self) -> TaskStatus {
        TaskStatus::parse(&self.status).unwrap_or(TaskStatus::Pending)
    }

    /// The ids this task depends on.
    pub fn dependencies(&self) -> Vec<i64> {
        serde_json::from_str(&self.depends_on).unwrap_or_default()
    }
}

/// What `create_task` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Owning project.
    pub project_id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Priority 1..=10.
    pub priority: i64,
    /// Dependencies.
    pub depends_on: Vec<i64>,
    /// Iteration limit override.
    pub max_iterations: Option<u32>,
    /// Profile override; none for the project's.
    pub profile: Option<String>,
}

/// One task of a backlog that [`crate::state::StateManager::create_tasks`] stores with the others at once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BacklogTask {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Priority 1..=10.
    pub priority: i64,
    /// Existing tasks of the project it depends on.
    pub depends_on: Vec<i64>,
    /// Tasks of the same backlog it depends on, by their index in it.
    pub after: Vec<usize>,
    /// Iteration limit override.
    pub max_iterations: Option<u32>,
    /// The milestone it belongs to.
    pub milestone: Option<String>,
}

/// Which tasks `list_tasks` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskFilter {
    /// The project.
    pub project_id: i64,
    /// Only these statuses; all when empty.
    pub statuses: Vec<TaskStatus>,
    /// Only tasks with at least this priority.
    pub min_priority: Option<i64>,
    /// Only tasks whose title contains this text (case-insensitive for ASCII).
    pub title_contains: Option<String>,
    /// At most this many tasks.
    pub limit: Option<i64>,
}

/// The fields `update_task` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskUpdate {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New priority.
    pub priority: Option<i64>,
    /// New dependencies (replacing the old ones).
    pub depends_on: Option<Vec<i64>>,
}

/// One iteration: a prompt sent to an agent and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Interaction {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Iteration number within the task's execution, from 1.
    pub iteration: i64,
    /// Agent plugin name.
    pub agent: String,
    /// The prompt sent.
    pub prompt: String,
    /// `running`, `finished` (the agent returned a result) or `failed` (it could not run).
    pub status: String,
    /// Normalised outcome.
    pub outcome: Option<String>,
    /// Agent's final message.
    pub summary: Option<String>,
    /// Agent session id.
    pub session_id: Option<String>,
    /// Turns used.
    pub turns: Option<i64>,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// HTTP status of an API error.
    pub api_status: Option<i64>,
    /// Agent process exit code.
    pub exit_code: Option<i64>,
    /// Why the agent could not run.
    pub error: Option<String>,
    /// The full agent result as JSON.
    pub result_json: Option<String>,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub finished_at: Option<String>,
    /// Duration in ms.
    pub duration_ms: Option<i64>,
}

/// A stored gate result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResultRow {
    /// Id.
    pub id: i64,
    /// Interaction checked.
    pub interaction_id: i64,
    /// Gate plugin name.
    pub gate: String,
    /// Passed?
    pub passed: bool,
    /// Score.
    pub score: f64,
    /// Summary.
    pub summary: String,
    /// Findings as JSON.
    pub findings_json: String,
    /// Why the gate could not run, when it could not.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: i64,
}

// `passed` is stored as an integer on both backends (the Any driver has no SQLite boolean).
impl FromRow<'_, AnyRow> for GateResultRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            interaction_id: row.try_get("interaction_id")?,
            gate: row.try_get("gate")?,
            passed: row.try_get::<i64, _>("passed")? != 0,
            score: row.try_get("score")?,
            summary: row.try_get("summary")?,
            findings_json: row.try_get("findings_json")?,
            error: row.try_get("error")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    }
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DecisionRow {
    /// Id.
    pub id: i64,
    /// Interaction decided on.
    pub interaction_id: i64,
    /// `proceed`, `retry`, `clarify` or `escalate`.
    pub action: String,
    /// Final confidence.
    pub confidence: f64,
    /// Heuristic part.
    pub heuristic_score: f64,
    /// LLM opinion, when one was given.
    pub llm_score: Option<f64>,
    /// The LLM's reasoning.
    pub llm_reasoning: Option<String>,
    /// Plain-language explanation.
    pub explanation: String,
    /// When.
    pub created_at: String,
    /// What became of the iteration's work, once known: `accepted`, `superseded`, `rejected`, `failed` or
    /// `rolled-back` (see `DecisionOutcome`).
    pub outcome: Option<String>,
    /// When the outcome was recorded.
    pub outcome_at: Option<String>,
    /// What verified the work when it was decided: enabled verifying gates that passed and/or `LLM opinion`,
    /// comma-separated; empty when nothing did; none for decisions stored before schema level 4 (ADR 0033).
    pub verified_by: Option<String>,
}

impl DecisionRow {
    /// Whether the decision was taken on work that no verifying gate and no LLM opinion checked (unknown,
    /// so false, for decisions stored before schema level 4).
    pub fn unverified(&self) -> bool {
        self.verified_by.as_deref() == Some("")
    }
}

/// A stored breakpoint.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Breakpoint {
    /// Id.
    pub id: i64,
    /// Paused task.
    pub task_id: i64,
    /// Interaction that triggered it.
    pub interaction_id: Option<i64>,
    /// Rule that fired.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// `open` or `resolved`.
    pub status: String,
    /// How it was resolved.
    pub resolution: Option<String>,
    /// Human feedback for the next prompt.
    pub feedback: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When it opened.
    pub created_at: String,
    /// When it was resolved.
    pub resolved_at: Option<String>,
}

/// The engine's next action after an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The work is good: complete the task.
    Proceed,
    /// Ask the agent to clarify or finish what is missing.
    Clarify,
    /// Try again with the findings as feedback.
    Retry,
    /// Stop and ask a human.
    Escalate,
}

impl Action {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proceed => "proceed",
            Self::Clarify => "clarify",
            Self::Retry => "retry",
            Self::Escalate => "escalate",
        }
    }
}

/// A gate result to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRecord {
    /// Gate name.
    pub gate: String,
    /// Passed?
    pub passed: bool,
    /// Score.
    pub score: f32,
    /// Summary.
    pub summary: String,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Why the gate could not run.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: u64,
}

/// A decision to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// The action.
    pub action: Action,
    /// Final confidence.
    pub confidence: f32,
    /// Heuristic part.
    pub heuristic_score: f32,
    /// LLM opinion.
    pub llm_score: Option<f32>,
    /// LLM reasoning.
    pub llm_reasoning: Option<String>,
    /// Explanation.
    pub explanation: String,
    /// What verified the work: enabled verifying gates that passed and/or `LLM opinion`, comma-separated;
    /// empty when nothing did (ADR 0033).
    pub verified_by: String,
}

/// Everything that concludes one iteration, written in one transaction.
#[derive(Debug, Clone)]
pub struct IterationRecord<'a> {
    /// Task.
    pub task_id: i64,
    /// Interaction.
    pub interaction_id: i64,
    /// Gate results in order.
    pub gates: &'a [GateRecord],
    /// The decision.
    pub decision: &'a DecisionRecord,
    /// The task's new status.
    pub task_status: TaskStatus,
    /// Why.
    pub status_reason: Option<&'a str>,
    /// The agent session to remember for resume.
    pub session_id: Option<&'a str>,
    /// The breakpoint to open: (rule, reason).
    pub breakpoint: Option<(String, String)>,
}

/// How a human resolves a breakpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Accept the work: the task completes.
    Approve,
    /// Reject the work: the task fails.
    Reject,
    /// Send the task back to the agent with this feedback in the next prompt.
    Feedback(String),
    /// Run the task again as it was, with no feedback (once what made the agent fail is fixed).
    Retry,
}

/// One file an interaction changed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FileChangeRow {
    /// Id.
    pub id: i64,
    /// The interaction that changed it.
    pub interaction_id: i64,
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub kind: String,
    /// Size after the change.
    pub size: Option<i64>,
    /// Content hash before the change (filled by the file watcher; none until then).
    pub hash_before: Option<String>,
    /// Content hash after the change.
    pub hash_after: Option<String>,
}

impl FileChangeRow {
    /// The change as the loop reported it (an unknown kind reads as `modified`).
    pub fn into_change(self) -> FileChange {
        let kind = match self.kind.as_str() {
            "created" => ChangeKind::Created,
            "deleted" => ChangeKind::Deleted,
            _ => ChangeKind::Modified,
        };
        FileChange { path: self.path, kind, size: self.size.map(|s| s.max(0) as u64) }
    }
}

/// An agent session used by a task, with what it consumed over its interactions.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AgentSession {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Agent plugin name.
    pub agent: String,
    /// The agent's session id.
    pub session_id: String,
    /// First use.
    pub started_at: String,
    /// Last use.
    pub last_used_at: String,
    /// Interactions that used it.
    pub interactions: i64,
    /// Prompt tokens over those interactions.
    pub input_tokens: i64,
    /// Output tokens over those interactions.
    pub output_tokens: i64,
    /// Cost over those interactions.
    pub cost_usd: f64,
    /// Why the session ended (e.g. a context refresh); none while it is in use.
    pub ended_reason: Option<String>,
    /// The summary that carried the session's context over to the next one.
    pub summary: Option<String>,
}

/// A recorded git checkpoint a project can roll back to.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Checkpoint {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: i64,
    /// The task it was taken for, if any.
    pub task_id: Option<i64>,
    /// The interaction it was taken after, if any.
    pub interaction_id: Option<i64>,
    /// Human-readable label.
    pub label: String,
    /// The git ref that keeps the commit alive (e.g. `refs/obra/checkpoints/7`).
    pub git_ref: String,
    /// The commit.
    pub commit_sha: String,
    /// When it was taken.
    pub created_at: String,
    /// When the workspace was last rolled back to it.
    pub rolled_back_at: Option<String>,
}

/// What `record_checkpoint` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheckpoint {
    /// Project.
    pub project_id: i64,
    /// Task, if any.
    pub task_id: Option<i64>,
    /// Interaction, if any.
    pub interaction_id: Option<i64>,
    /// Label.
    pub label: String,
    /// Git ref.
    pub git_ref: String,
    /// Commit.
    pub commit_sha: String,
}

/// One line of a project's timeline (`obra logs`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActivityEvent {
    /// When (RFC 3339).
    pub at: String,
    /// `task_created`, `iteration_started`, `iteration_finished`, `decision`, `breakpoint_opened`,
    /// `breakpoint_resolved` or `checkpoint`.
    pub kind: String,
    /// The task it concerns, if any.
    pub task_id: Option<i64>,
    /// Id of the row it comes from (task, interaction, decision, breakpoint or checkpoint).
    pub ref_id: i64,
    /// One-line description.
    pub text: String,
}
