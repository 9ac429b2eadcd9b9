//! The host-side view of the plugin contract (`wit/`, package `obra:plugin@0.1.0`).
//!
//! The engine works with these plain Rust types and traits only; `plugins/` converts between them and the
//! bindings of each supported WIT version. That keeps the engine independent of wasmtime and lets the host
//! serve several API versions side by side (each converts into these types).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a plugin call failed, mirroring the WIT `plugin-error` variant plus the host's own failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum PluginError {
    /// A transient failure; the same call may succeed later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Rate limited upstream; wait `retry_after` (when known) before trying again.
    #[error("rate limited: {message}{}", retry_after_ms.map(|ms| format!(" (retry after {ms} ms)")).unwrap_or_default())]
    RateLimited {
        /// What the upstream said.
        message: String,
        /// How long to wait, when known.
        retry_after_ms: Option<u64>,
    },
    /// A time limit was hit.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The host refused a capability; the message names the config line that grants it.
    #[error("denied: {0}")]
    Denied(String),
    /// A permanent failure.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The plugin itself broke: it trapped, ran out of memory or CPU, or returned something invalid.
    /// The instance was discarded and will be re-created for the next call.
    #[error("plugin crashed: {0}")]
    Trapped(String),
}

impl PluginError {
    /// Whether retrying the same call can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_) | Self::RateLimited { .. } | Self::Timeout(_))
    }

    /// The error with its message cut to [`MAX_REPORTED_BYTES`] (see [`bounded_text`]).
    pub fn bounded(self) -> Self {
        match self {
            Self::Retryable(m) => Self::Retryable(bounded_text(m)),
            Self::RateLimited { message, retry_after_ms } => {
                Self::RateLimited { message: bounded_text(message), retry_after_ms }
            }
            Self::Timeout(m) => Self::Timeout(bounded_text(m)),
            Self::Denied(m) => Self::Denied(bounded_text(m)),
            Self::Fatal(m) => Self::Fatal(bounded_text(m)),
            Self::Trapped(m) => Self::Trapped(bounded_text(m)),
        }
    }
}

/// The most bytes of a summary or error message a plugin reports that Obra keeps: what is stored, shown and
/// put into the next prompt. A plugin (or the agent behind it) that reports more is cut in the middle.
pub const MAX_REPORTED_BYTES: usize = 64 * 1024;

/// `text` when it fits in [`MAX_REPORTED_BYTES`]; otherwise its first quarter and last three quarters of
/// that budget (the end of an agent's output says most about how it ended) around a note of what was cut,
/// cut at character boundaries.
pub fn bounded_text(text: String) -> String {
    if text.len() <= MAX_REPORTED_BYTES {
        return text;
    }
    let head_end = text.floor_char_boundary(MAX_REPORTED_BYTES / 4);
    let tail_start = text.ceil_char_boundary(text.len() - MAX_REPORTED_BYTES * 3 / 4);
    format!(
        "{}\n[... {} bytes cut by Obra: a plugin may report at most {} KiB ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        MAX_REPORTED_BYTES / 1024,
        &text[tail_start..]
    )
}

/// Token and cost accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (excluding cache reads).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to cache.
    pub cache_write_tokens: u64,
    /// Cost in US dollars, when reported.
    pub cost_usd: Option<f64>,
}

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New file.
    Created,
    /// Changed content.
    Modified,
    /// Removed.
    Deleted,
}

impl ChangeKind {
    /// The lowercase name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
}

/// One file changed in the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Size after the change.
    pub size: Option<u64>,
}

/// The task as plugins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Current iteration, from 1.
    pub iteration: u32,
    /// Iteration limit.
    pub max_iterations: u32,
}

/// A chat role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instructions.
    System,
    /// User (Obra).
    User,
    /// Model.
    Assistant,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// A completion request to an LLM provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Conversation.
    pub messages: Vec<Message>,
    /// JSON Schema text the reply must follow.
    pub json_schema: Option<String>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Token limit.
    pub max_tokens: Option<u32>,
}

/// An LLM reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Generated text.
    pub text: String,
    /// Model that answered.
    pub model: String,
    /// Token accounting.
    pub usage: Usage,
    /// Provider-side duration in ms.
    pub duration_ms: u64,
}

/// How an agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Finished successfully.
    Success,
    /// Hit the turn limit.
    MaxTurns,
    /// Model API error.
    ApiError,
    /// Rate limited.
    RateLimited,
    /// Permission refused.
    PermissionDenied,
    /// Ran out of time.
    Timeout,
    /// Process died.
    Crashed,
    /// Output not understood.
    Unparseable,
}

impl Outcome {
    /// The kebab-case name used in the database and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MaxTurns => "max-turns",
            Self::ApiError => "api-error",
            Self::RateLimited => "rate-limited",
            Self::PermissionDenied => "permission-denied",
            Self::Timeout => "timeout",
            Self::Crashed => "crashed",
            Self::Unparseable => "unparseable",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent run request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The task.
    pub task: TaskInfo,
    /// Rendered prompt.
    pub prompt: String,
    /// Absolute workspace path.
    pub workspace: String,
    /// Session to resume.
    pub resume_session: Option<String>,
    /// Time limit in ms.
    pub timeout_ms: u64,
    /// Agent config section as JSON text.
    pub config: String,
}

/// What an agent run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Final message or error text.
    pub summary: String,
    /// Session id.
    pub session_id: Option<String>,
    /// Turns used.
    pub turns: u32,
    /// Tokens and cost.
    pub usage: Usage,
    /// Duration in ms.
    pub duration_ms: u64,
    /// HTTP status of an API error.
    pub api_status: Option<u16>,
    /// Retry-after of a rate limit, in ms.
    pub retry_after_ms: Option<u64>,
    /// Refused actions.
    pub permission_denials: Vec<String>,
    /// Exit code of the agent process.
    pub exit_code: Option<i32>,
    /// Actions that failed inside the agent's own tools, one line each, as its plugin reported them through
    /// `agent-report` (ADR 0033); empty for plugins that report none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_actions: Vec<String>,
}

impl RunResult {
    /// The result with its summary cut to [`MAX_REPORTED_BYTES`] (see [`bounded_text`]).
    pub fn bounded(mut self) -> Self {
        self.summary = bounded_text(std::mem::take(&mut self.summary));
        self
    }

    /// A result with this outcome and summary and nothing else reported.
    pub fn new(outcome: Outcome, summary: impl Into<String>) -> Self {
        RunResult {
            outcome,
            summary: summary.into(),
            session_id: None,
            turns: 0,
            usage: Usage::default(),
            duration_ms: 0,
            api_status: None,
            retry_after_ms: None,
            permission_denials: Vec::new(),
            exit_code: None,
            failed_actions: Vec::new(),
        }
    }
}

/// Severity of a gate finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Probably a problem.
    Warning,
    /// Fails the gate.
    Error,
}

/// One gate finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Message, suitable as feedback to the agent.
    pub message: String,
    /// File concerned.
    pub path: Option<String>,
    /// Line concerned.
    pub line: Option<u32>,
}

/// What a gate is asked to check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateInput {
    /// The task.
    pub task: TaskInfo,
    /// The agent's result.
    pub agent_result: RunResult,
    /// Changed files.
    pub changes: Vec<FileChange>,
    /// Absolute workspace path.
    pub workspace: String,
    /// Gate config section as JSON text.
    pub config: String,
}

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// Passed?
    pub passed: bool,
    /// Score 0..=1.
    pub score: f32,
    /// Findings.
    pub findings: Vec<Finding>,
    /// One-line summary.
    pub summary: String,
}

/// The loop state a breakpoint rule evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopEvent {
    /// The task.
    pub task: TaskInfo,
    /// Agent outcome.
    pub outcome: Outcome,
    /// Confidence 0..=1.
    pub confidence: f32,
    /// All gates passed?
    pub gates_passed: bool,
    /// `proceed`, `retry`, `clarify` or `escalate`.
    pub proposed_decision: String,
    /// Files changed.
    pub files_changed: u32,
    /// Files deleted.
    pub files_deleted: u32,
    /// Rule config section as JSON text.
    pub config: String,
}

/// A breakpoint rule's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    /// Go on.
    Proceed,
    /// Pause for a human.
    Pause(String),
    /// Fail the task.
    Abort(String),
}

/// Per-call context the host gives plugin capability calls: which workspace, which LLM, where progress goes.
#[derive(Clone, Default)]
pub struct CallContext {
    /// The workspace the `workspace` capability and process `cwd` resolve against.
    pub workspace: Option<PathBuf>,
    /// The LLM the `llm` capability asks.
    pub llm: Option<Arc<dyn LlmProvider>>,
    /// Receives `log.progress` messages as they happen.
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Wall-clock limit of the export call; none for the plugin's configured limit.
    pub timeout: Option<Duration>,
    /// Where the programs the plugin runs go (the agent's `agent.transport`); none to run them here.
    pub transport: Option<Arc<crate::transport::Transport>>,
    /// The kernel sandbox the programs run in when they run here; none for no sandbox.
    pub sandbox: Option<Arc<crate::sandbox::SandboxSpec>>,
    /// A spawned program that prints no line for this long is stopped as stalled (`agent.stall_secs`).
    pub stall: Option<Duration>,
}

/// An agent, as the engine uses it.
#[async_trait::async_trait]
pub trait Agent: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// Check the agent can run with this config (JSON text).
    async fn health(&self, ctx: &CallContext, config: &str) -> Result<String, PluginError>;
    /// Run once.
    async fn run(&self, ctx: &CallContext, request: &RunRequest) -> Result<RunResult, PluginError>;
}

/// An LLM provider, as the engine (and the `llm` capability) uses it.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// Check the server and model.
    async fn health(&self) -> Result<String, PluginError>;
    /// List models.
    async fn list_models(&self) -> Result<Vec<String>, PluginError>;
    /// Complete.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, PluginError>;
}

/// A quality gate, as the engine uses it.
#[async_trait::async_trait]
pub trait QualityGate: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// Check the work.
    async fn check(&self, ctx: &CallContext, input: &GateInput) -> Result<GateResult, PluginError>;
}

/// A breakpoint rule, as the engine uses it.
#[async_trait::async_trait]
pub trait BreakpointRule: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// Evaluate one loop event.
    async fn evaluate(&self, ctx: &CallContext, event: &LoopEvent) -> Result<Verdict, PluginError>;
}

/// Persistent per-plugin key-value storage, provided to the runtime by `state/`.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// Read a value.
    async fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Write a value.
    async fn set(&self, plugin: &str, key: &str, value: &[u8]) -> anyhow::Result<()>;
    /// Delete a value.
    async fn delete(&self, plugin: &str, key: &str) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_text_is_bounded_keeping_both_ends_at_character_boundaries() {
        let short = "fine".to_string();
        assert_eq!(bounded_text(short.clone()), short);
        let long = format!("START{}END", "é".repeat(100_000));
        let cut = bounded_text(long.clone());
        assert!(cut.len() <= MAX_REPORTED_BYTES + 100, "{}", cut.len());
        assert!(cut.starts_with("START") && cut.ends_with("END"));
        assert!(cut.contains("bytes cut by Obra"));
        let result = RunResult::new(Outcome::Success, "x".repeat(4 << 20)).bounded();
        assert!(result.summary.len() < MAX_REPORTED_BYTES + 100);
        let PluginError::Fatal(m) = PluginError::Fatal("y".repeat(1 << 20)).bounded() else { panic!() };
        assert!(m.len() < MAX_REPORTED_BYTES + 100);
    }
}
