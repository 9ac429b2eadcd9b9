//! Rows of the store and the records the engine hands to it.

use std::path::PathBuf;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::strict;
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
    /// Every status, in the order the store lists them.
    pub const ALL: [Self; 7] =
        [Self::Pending, Self::Running, Self::Completed, Self::Paused, Self::Failed, Self::Cancelled, Self::Blocked];

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

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `depends_on` as the JSON text it is stored as (`"[1,3]"`), the form `--json` output has always shown.
fn ids_as_json_text<S: serde::Serializer>(ids: &[i64], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&Task::ids_text(ids))
}

/// A task of a project's backlog. Read strictly: a stored row with an unknown status or dependencies that are
/// not a JSON list of ids is an error naming the row ([`strict::CorruptRow`]), never a guess.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Where the task stands.
    pub status: TaskStatus,
    /// Why the task has its status (the decision's explanation, the breakpoint's reason, the error).
    pub status_reason: Option<String>,
    /// The tasks this task waits for (shown by `--json` as the JSON text it is stored as, e.g. `"[1,3]"`).
    #[serde(serialize_with = "ids_as_json_text")]
    pub depends_on: Vec<i64>,
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
    /// Where the task stands.
    pub fn status(&self) -> TaskStatus {
        self.status
    }

    /// The ids this task depends on.
    pub fn dependencies(&self) -> Vec<i64> {
        self.depends_on.clone()
    }

    /// Dependencies as the JSON text the store keeps (`[1,3]`).
    pub fn ids_text(ids: &[i64]) -> String {
        let shown: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("[{}]", shown.join(","))
    }
}

impl FromRow<'_, AnyRow> for Task {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let depends_on: String = row.try_get("depends_on")?;
        Ok(Self {
            id,
            project_id: row.try_get("project_id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            priority: row.try_get("priority")?,
            status: strict::task_status(id, &status)?,
            status_reason: row.try_get("status_reason")?,
            depends_on: strict::task_ids(id, &depends_on)?,
            attempts: row.try_get("attempts")?,
            max_iterations: row.try_get("max_iterations")?,
            session_id: row.try_get("session_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            profile: row.try_get("profile")?,
            git_branch: row.try_get("git_branch")?,
            git_base_commit: row.try_get("git_base_commit")?,
            git_commit: row.try_get("git_commit")?,
            resume_after: row.try_get("resume_after")?,
            milestone: row.try_get("milestone")?,
        })
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

/// One iteration: a prompt sent to an agent and what came back. Read strictly: an unknown status or outcome,
/// or a result that is not a JSON object, is an error naming the row.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// `running`, `finished` (the agent returned a result), `failed` (it could not run) or `interrupted` (the
    /// obra process running it stopped first).
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

impl FromRow<'_, AnyRow> for Interaction {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let outcome: Option<String> = row.try_get("outcome")?;
        let result_json: Option<String> = row.try_get("result_json")?;
        strict::text(&strict::INTERACTION_STATUS, id, Some(&status))?;
        strict::text(&strict::INTERACTION_OUTCOME, id, outcome.as_deref())?;
        strict::text(&strict::INTERACTION_RESULT, id, result_json.as_deref())?;
        Ok(Self {
            id,
            task_id: row.try_get("task_id")?,
            iteration: row.try_get("iteration")?,
            agent: row.try_get("agent")?,
            prompt: row.try_get("prompt")?,
            status,
            outcome,
            summary: row.try_get("summary")?,
            session_id: row.try_get("session_id")?,
            turns: row.try_get("turns")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
            api_status: row.try_get("api_status")?,
            exit_code: row.try_get("exit_code")?,
            error: row.try_get("error")?,
            result_json,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    }
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
    /// Findings as JSON (what `--json` output shows).
    pub findings_json: String,
    /// The findings, as read from `findings_json`.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// Why the gate could not run, when it could not.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: i64,
}

// `passed` is stored as an integer on both backends (the Any driver has no SQLite boolean): 0 or 1.
impl FromRow<'_, AnyRow> for GateResultRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let passed: i64 = row.try_get("passed")?;
        strict::text(&strict::GATE_PASSED, id, Some(&passed.to_string()))?;
        let findings_json: String = row.try_get("findings_json")?;
        Ok(Self {
            id,
            interaction_id: row.try_get("interaction_id")?,
            gate: row.try_get("gate")?,
            passed: passed != 0,
            score: row.try_get("score")?,
            summary: row.try_get("summary")?,
            findings: strict::findings(id, &findings_json)?,
            findings_json,
            error: row.try_get("error")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    }
}

/// A stored decision. Read strictly: an unknown action or outcome is an error naming the row.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl FromRow<'_, AnyRow> for DecisionRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let action: String = row.try_get("action")?;
        let outcome: Option<String> = row.try_get("outcome")?;
        strict::text(&strict::DECISION_ACTION, id, Some(&action))?;
        strict::text(&strict::DECISION_OUTCOME, id, outcome.as_deref())?;
        Ok(Self {
            id,
            interaction_id: row.try_get("interaction_id")?,
            action,
            confidence: row.try_get("confidence")?,
            heuristic_score: row.try_get("heuristic_score")?,
            llm_score: row.try_get("llm_score")?,
            llm_reasoning: row.try_get("llm_reasoning")?,
            explanation: row.try_get("explanation")?,
            created_at: row.try_get("created_at")?,
            outcome,
            outcome_at: row.try_get("outcome_at")?,
            verified_by: row.try_get("verified_by")?,
        })
    }
}

impl DecisionRow {
    /// Whether the decision was taken on work that no verifying gate and no LLM opinion checked (unknown,
    /// so false, for decisions stored before schema level 4).
    pub fn unverified(&self) -> bool {
        self.verified_by.as_deref() == Some("")
    }
}

/// A stored breakpoint. Read strictly: an unknown status or resolution is an error naming the row.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// How it was resolved: `approve`, `reject`, `feedback`, `retry`, or `cancelled` with its task.
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

impl FromRow<'_, AnyRow> for Breakpoint {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let resolution: Option<String> = row.try_get("resolution")?;
        strict::text(&strict::BREAKPOINT_STATUS, id, Some(&status))?;
        strict::text(&strict::BREAKPOINT_RESOLUTION, id, resolution.as_deref())?;
        Ok(Self {
            id,
            task_id: row.try_get("task_id")?,
            interaction_id: row.try_get("interaction_id")?,
            rule: row.try_get("rule")?,
            reason: row.try_get("reason")?,
            status,
            resolution,
            feedback: row.try_get("feedback")?,
            resolved_by: row.try_get("resolved_by")?,
            created_at: row.try_get("created_at")?,
            resolved_at: row.try_get("resolved_at")?,
        })
    }
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
    /// Every action, in the order the store lists them.
    pub const ALL: [Self; 4] = [Self::Proceed, Self::Clarify, Self::Retry, Self::Escalate];

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

/// One file an interaction changed. Read strictly: an unknown kind is an error naming the row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileChangeRow {
    /// Id.
    pub id: i64,
    /// The interaction that changed it.
    pub interaction_id: i64,
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
    /// Size after the change.
    pub size: Option<i64>,
    /// Content hash before the change (filled by the file watcher; none until then).
    pub hash_before: Option<String>,
    /// Content hash after the change.
    pub hash_after: Option<String>,
}

impl FileChangeRow {
    /// The change as the loop reported it.
    pub fn into_change(self) -> FileChange {
        FileChange { path: self.path, kind: self.kind, size: self.size.map(|s| s.max(0) as u64) }
    }
}

impl FromRow<'_, AnyRow> for FileChangeRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: i64 = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let kind = strict::change_kind(id, &kind)?;
        Ok(Self {
            id,
            interaction_id: row.try_get("interaction_id")?,
            path: row.try_get("path")?,
            kind,
            size: row.try_get("size")?,
            hash_before: row.try_get("hash_before")?,
            hash_after: row.try_get("hash_after")?,
        })
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
