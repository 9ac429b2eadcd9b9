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
/// The longest session id kept, in bytes; a longer one is dropped (a cut id would resume another session).
pub const MAX_SESSION_ID_BYTES: usize = 256;
/// The most lines kept of a list of one-line reports (permission denials, failed actions).
pub const MAX_REPORTED_LINES: usize = 20;
/// The most characters kept of one such line (after folding it onto one line).
pub const MAX_REPORTED_LINE_CHARS: usize = 300;
/// The longest gate summary or rule reason kept, in bytes (cut in the middle).
pub const MAX_VERDICT_BYTES: usize = 4 * 1024;
/// The most findings kept of one gate result; the rest are replaced by one finding that says how many.
pub const MAX_FINDINGS: usize = 100;
/// The longest finding message kept, in bytes (cut in the middle).
pub const MAX_FINDING_BYTES: usize = 16 * 1024;
/// The longest path a finding may name, in bytes; a longer one is dropped.
pub const MAX_PATH_BYTES: usize = 4 * 1024;
/// The longest name kept (a model's, a plugin's self-reported name and version), in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The most model names kept of `list-models`.
pub const MAX_MODELS: usize = 1000;
/// The longest one-line description or health text kept, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// The longest LLM completion text kept, in bytes (cut in the middle: a cut JSON reply no longer parses and
/// is treated as invalid).
pub const MAX_COMPLETION_BYTES: usize = 256 * 1024;

/// `text` when it fits in [`MAX_REPORTED_BYTES`]; otherwise its first quarter and last three quarters of
/// that budget (the end of an agent's output says most about how it ended) around a note of what was cut,
/// cut at character boundaries.
pub fn bounded_text(text: String) -> String {
    bounded_to(text, MAX_REPORTED_BYTES)
}

/// `text` when it has at most `max` bytes; otherwise at most `max` bytes of it: the first quarter and last
/// three quarters of what is kept, around a note of how many bytes were cut (for `max` under 512, only the
/// start and `…`). Cut at character boundaries.
pub fn bounded_to(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    if max < 512 {
        let end = text.floor_char_boundary(max.saturating_sub('…'.len_utf8()));
        return format!("{}…", &text[..end]);
    }
    let note =
        |cut: usize| format!("\n[... {cut} bytes cut by Obra: a plugin may report at most {max} bytes here ...]\n");
    let budget = max - note(text.len()).len();
    let head_end = text.floor_char_boundary(budget / 4);
    let tail_start = text.ceil_char_boundary(text.len() - budget * 3 / 4);
    format!("{}{}{}", &text[..head_end], note(tail_start - head_end), &text[tail_start..])
}

/// `line` folded onto one line (runs of whitespace become one space) and cut to
/// [`MAX_REPORTED_LINE_CHARS`] characters (`…` marks a cut); none when nothing is left.
pub fn one_line(line: &str) -> Option<String> {
    // Only the start can be kept: fold no more than a bounded prefix of a huge line.
    let start = &line[..line.floor_char_boundary(MAX_REPORTED_LINE_CHARS * 8)];
    let flat = start.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    if flat.chars().count() <= MAX_REPORTED_LINE_CHARS && start.len() == line.len() {
        return Some(flat);
    }
    let mut cut: String = flat.chars().take(MAX_REPORTED_LINE_CHARS - 1).collect();
    cut.push('…');
    Some(cut)
}

/// At most [`MAX_REPORTED_LINES`] distinct non-empty lines of `lines`, each through [`one_line`].
pub fn bounded_lines(lines: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for line in lines {
        if kept.len() >= MAX_REPORTED_LINES {
            break;
        }
        if let Some(line) = one_line(&line)
            && !kept.contains(&line)
        {
            kept.push(line);
        }
    }
    kept
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
    /// Every kind, in the order the store lists them.
    pub const ALL: [Self; 3] = [Self::Created, Self::Modified, Self::Deleted];

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
    /// Every outcome, in the order the store lists them.
    pub const ALL: [Self; 8] = [
        Self::Success,
        Self::MaxTurns,
        Self::ApiError,
        Self::RateLimited,
        Self::PermissionDenied,
        Self::Timeout,
        Self::Crashed,
        Self::Unparseable,
    ];

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
    /// The result bounded field by field (docs/plugins.md, "What Obra keeps of a plugin's answers"): the summary
    /// to [`MAX_REPORTED_BYTES`], the session id to [`MAX_SESSION_ID_BYTES`] (dropped when longer), permission
    /// denials and failed actions to [`MAX_REPORTED_LINES`] lines of [`MAX_REPORTED_LINE_CHARS`] characters.
    pub fn bounded(mut self) -> Self {
        self.summary = bounded_text(std::mem::take(&mut self.summary));
        if self.session_id.as_ref().is_some_and(|id| id.len() > MAX_SESSION_ID_BYTES) {
            tracing::warn!(
                bytes = self.session_id.as_ref().map_or(0, String::len),
                "an agent reported a session id over {MAX_SESSION_ID_BYTES} bytes; it is dropped"
            );
            self.session_id = None;
        }
        self.permission_denials = bounded_lines(std::mem::take(&mut self.permission_denials));
        self.failed_actions = bounded_lines(std::mem::take(&mut self.failed_actions));
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

impl GateResult {
    /// The result bounded field by field: the summary to [`MAX_VERDICT_BYTES`], at most [`MAX_FINDINGS`]
    /// findings (one more says how many were dropped), each message to [`MAX_FINDING_BYTES`], a path over
    /// [`MAX_PATH_BYTES`] dropped; a score outside 0..=1 (or NaN) is clamped (NaN counts as 0).
    pub fn bounded(mut self) -> Self {
        self.summary = bounded_to(std::mem::take(&mut self.summary), MAX_VERDICT_BYTES);
        self.score = if self.score.is_nan() { 0.0 } else { self.score.clamp(0.0, 1.0) };
        let total = self.findings.len();
        self.findings.truncate(MAX_FINDINGS);
        for f in &mut self.findings {
            f.message = bounded_to(std::mem::take(&mut f.message), MAX_FINDING_BYTES);
            if f.path.as_ref().is_some_and(|p| p.len() > MAX_PATH_BYTES) {
                f.path = None;
            }
        }
        if total > MAX_FINDINGS {
            self.findings.push(Finding {
                severity: Severity::Info,
                message: format!(
                    "{} more findings were dropped by Obra: a gate may report at most {MAX_FINDINGS}",
                    total - MAX_FINDINGS
                ),
                path: None,
                line: None,
            });
        }
        self
    }
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

impl Verdict {
    /// The verdict with its reason cut to [`MAX_VERDICT_BYTES`].
    pub fn bounded(self) -> Self {
        match self {
            Self::Proceed => Self::Proceed,
            Self::Pause(r) => Self::Pause(bounded_to(r, MAX_VERDICT_BYTES)),
            Self::Abort(r) => Self::Abort(bounded_to(r, MAX_VERDICT_BYTES)),
        }
    }
}

impl Completion {
    /// The completion with its text cut to [`MAX_COMPLETION_BYTES`] and its model name to [`MAX_NAME_BYTES`].
    pub fn bounded(mut self) -> Self {
        self.text = bounded_to(std::mem::take(&mut self.text), MAX_COMPLETION_BYTES);
        self.model = bounded_to(std::mem::take(&mut self.model), MAX_NAME_BYTES);
        self
    }
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

/// What each kv key costs against a plugin's `kv_total_bytes`, on top of its value: a store of many empty
/// values is bounded too.
pub const KV_BYTES_PER_KEY: u64 = 256;

/// Whether a kv write was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvWrite {
    /// Written.
    Stored,
    /// Not written: the plugin's other keys already use `used` bytes, and this one would take it past the limit.
    OverQuota {
        /// The bytes (values plus [`KV_BYTES_PER_KEY`] per key) of the plugin's other keys.
        used: u64,
    },
}

/// Persistent per-plugin key-value storage, provided to the runtime by `state/`.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// Read a value.
    async fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Write a value, unless the plugin's keys would then use more than `max_total_bytes` (values plus
    /// [`KV_BYTES_PER_KEY`] per key, this key's old value not counted); the check and the write are one step.
    async fn set(&self, plugin: &str, key: &str, value: &[u8], max_total_bytes: u64) -> anyhow::Result<KvWrite>;
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

    const HUGE: usize = 100 * 1024 * 1024;

    /// Every field a plugin returns, 100 MB each, comes out within its bound.
    #[test]
    fn every_returned_field_of_100_mb_is_bounded() {
        let huge = "x".repeat(HUGE);
        let mut run = RunResult::new(Outcome::Success, huge.clone());
        run.session_id = Some(huge.clone());
        run.permission_denials = vec![huge.clone(), "Bash".into(), "Bash".into()];
        run.permission_denials.extend((0..100_000).map(|i| format!("tool {i}")));
        run.failed_actions = vec![huge.clone(); 3];
        let run = run.bounded();
        assert!(run.summary.len() <= MAX_REPORTED_BYTES, "{}", run.summary.len());
        assert_eq!(run.session_id, None, "a session id over the bound is dropped, not cut");
        assert_eq!(run.permission_denials.len(), MAX_REPORTED_LINES);
        assert_eq!(run.permission_denials[1], "Bash", "repeats are kept once");
        assert!(run.permission_denials.iter().all(|d| d.chars().count() <= MAX_REPORTED_LINE_CHARS));
        assert_eq!(run.failed_actions.len(), 1);
        assert_eq!(run.failed_actions[0].chars().count(), MAX_REPORTED_LINE_CHARS);
        let mut ok = RunResult::new(Outcome::Success, "done");
        ok.session_id = Some("0d9c6f2e-1b7a-4c55-9f7e-5b1d1c2a3b4c".into());
        assert_eq!(ok.clone().bounded(), ok, "what fits is untouched");

        let gate = GateResult {
            passed: false,
            score: f32::NAN,
            findings: (0..1000)
                .map(|i| Finding {
                    severity: Severity::Error,
                    message: if i == 0 { huge.clone() } else { format!("finding {i}") },
                    path: Some(if i == 0 { huge.clone() } else { "src/a.rs".into() }),
                    line: Some(i),
                })
                .collect(),
            summary: huge.clone(),
        }
        .bounded();
        assert!(gate.summary.len() <= MAX_VERDICT_BYTES);
        assert_eq!(gate.score, 0.0);
        assert_eq!(gate.findings.len(), MAX_FINDINGS + 1);
        assert!(gate.findings.iter().all(|f| f.message.len() <= MAX_FINDING_BYTES));
        assert_eq!(gate.findings[0].path, None);
        assert_eq!(gate.findings[1].path.as_deref(), Some("src/a.rs"));
        assert!(gate.findings[MAX_FINDINGS].message.starts_with("900 more findings were dropped"));

        for verdict in [Verdict::Pause(huge.clone()), Verdict::Abort(huge.clone())] {
            let (Verdict::Pause(r) | Verdict::Abort(r)) = verdict.bounded() else { panic!() };
            assert!(r.len() <= MAX_VERDICT_BYTES && r.contains("bytes cut by Obra"), "{}", r.len());
        }

        let c = Completion { text: huge.clone(), model: huge.clone(), ..Completion::default() }.bounded();
        assert!(c.text.len() <= MAX_COMPLETION_BYTES);
        assert!(c.model.len() <= MAX_NAME_BYTES && c.model.ends_with('…'));

        for e in [
            PluginError::Retryable(huge.clone()),
            PluginError::RateLimited { message: huge.clone(), retry_after_ms: None },
            PluginError::Timeout(huge.clone()),
            PluginError::Denied(huge.clone()),
            PluginError::Trapped(huge.clone()),
        ] {
            assert!(e.bounded().to_string().len() <= MAX_REPORTED_BYTES + 100);
        }
    }

    #[test]
    fn bounded_to_keeps_both_ends_within_the_bound_at_char_boundaries() {
        for max in [1, 4, 300, 511, 512, 4096, 70_000] {
            let text = format!("START{}END", "é".repeat(50_000));
            let cut = bounded_to(text, max);
            assert!(cut.len() <= max.max('…'.len_utf8()), "{max}: {}", cut.len());
        }
        let cut = bounded_to(format!("START{}END", "é".repeat(50_000)), 4096);
        assert!(cut.starts_with("START") && cut.ends_with("END") && cut.contains("bytes cut by Obra"));
        assert_eq!(one_line(" a \n\t b "), Some("a b".into()));
        assert_eq!(one_line(" \n "), None);
    }
}
