//! Rows of the store and the records the engine hands to it.

use serde::Serialize;

use crate::contract::Finding;

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
    /// `pending`, `running`, `completed`, `paused` or `failed`.
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
    /// The files changed, as JSON.
    pub changes_json: String,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub finished_at: Option<String>,
    /// Duration in ms.
    pub duration_ms: Option<i64>,
}

/// A stored gate result.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
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
}
