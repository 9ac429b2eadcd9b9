//! The typed configuration. Every struct takes its `Default` from the embedded `config/default.yaml`, so
//! a layer that names only a few keys still deserialises, and the YAML stays the one source of defaults.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::plugins::PluginsConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Which agent runs tasks.
    #[serde(default)]
    pub agent: AgentConfig,
    /// Which LLM gives its opinion.
    #[serde(default)]
    pub llm: LlmConfig,
    /// The loop's limits and thresholds.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Quality gates in order.
    #[serde(default)]
    pub gates: Vec<GateConfig>,
    /// Breakpoint rules in order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Per-agent-plugin configuration, passed to the plugin as JSON.
    #[serde(default)]
    pub agents: BTreeMap<String, serde_json::Value>,
    /// Per-LLM-provider-plugin configuration, passed to the plugin as JSON.
    #[serde(default)]
    pub llms: BTreeMap<String, serde_json::Value>,
    /// The plugin runtime: search path, cache, limits and grants.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Agent sessions: continuity, context-window thresholds, adaptive max turns.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// The production log and privacy redaction.
    #[serde(default)]
    pub logging: crate::telemetry::production::LoggingConfig,
    /// The workspace: how changes made by the agent are tracked.
    #[serde(default)]
    pub workspace: WorkspaceConfig,
    /// Git integration: commits of completed work, branches per task, pull requests.
    #[serde(default)]
    pub git: GitConfig,
    /// The kernel sandbox around the agent's programs and the detection of writes to protected paths.
    #[serde(default)]
    pub sandbox: crate::sandbox::SandboxConfig,
}

/// `database:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite file, relative to the project root unless absolute.
    #[serde(default)]
    pub path: String,
    /// Database URL (`sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`); empty uses `path`.
    #[serde(default)]
    pub url: String,
    /// How long a SQLite statement waits for another process's write lock, in milliseconds.
    #[serde(default)]
    pub busy_timeout_ms: u64,
}

/// `agent:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Agent plugin name.
    #[serde(default)]
    pub plugin: String,
    /// Wall-clock limit of one run, seconds.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Stop the agent as stalled after this many seconds without a line of output; 0 for never.
    #[serde(default)]
    pub stall_secs: u64,
    /// Where the agent's programs run: locally, over SSH or in a container.
    #[serde(default)]
    pub transport: crate::transport::TransportConfig,
}

/// `llm:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Provider plugin name, or `none`.
    #[serde(default)]
    pub provider: String,
    /// Weight of the LLM's opinion in the confidence score.
    #[serde(default)]
    pub weight: f32,
    /// Time limit of one LLM call, seconds.
    #[serde(default)]
    pub timeout_secs: u64,
}

impl LlmConfig {
    /// Whether an LLM is configured at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.provider.as_str(), "none" | "")
    }
}

/// `engine:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Iterations per task execution.
    #[serde(default)]
    pub max_iterations: u32,
    /// Save the workspace as a checkpoint before each agent run.
    #[serde(default)]
    pub checkpoints: bool,
    /// How many of the newest checkpoints keep their git ref (older ones are pruned); 0 keeps all.
    #[serde(default)]
    pub checkpoint_retention: u64,
    /// Decision thresholds.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Retry policy of agent and LLM calls.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The longest dependency chain (in tasks) a task may be on; 0 for no limit.
    #[serde(default)]
    pub max_dependency_depth: u32,
    /// The task prompt's context budget.
    #[serde(default)]
    pub context: ContextConfig,
    /// `obra run` stops after this many consecutive `agent-failed` breakpoints with the same cause; 0 never.
    #[serde(default)]
    pub circuit_breaker: u32,
}

/// `engine.context:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Token budget of the task prompt.
    #[serde(default)]
    pub max_tokens: u32,
    /// Characters per token until the store has enough samples to learn it.
    #[serde(default)]
    pub chars_per_token: f64,
}

/// `engine.decision:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    /// PROCEED at or above.
    #[serde(default)]
    pub proceed_threshold: f32,
    /// ESCALATE below.
    #[serde(default)]
    pub escalate_threshold: f32,
}

/// `engine.retry:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per call.
    #[serde(default)]
    pub max_attempts: u32,
    /// First delay.
    #[serde(default)]
    pub base_delay_ms: u64,
    /// Delay cap.
    #[serde(default)]
    pub max_delay_ms: u64,
    /// Growth per attempt.
    #[serde(default)]
    pub multiplier: f64,
    /// Random spread, as a fraction.
    #[serde(default)]
    pub jitter: f64,
}

/// One entry of `gates:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Gate plugin name.
    pub plugin: String,
    /// The gate's display name, stored as the gate name of its results; empty (the default) uses the plugin
    /// name. Two instances of one plugin (tests and lint) need different names.
    #[serde(default)]
    pub name: String,
    /// Wall-clock limit of one check in seconds, enforced by the host; a gate over it is recorded as failed.
    #[serde(default = "default_gate_timeout")]
    pub timeout_secs: u64,
    /// Whether the gate runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether a failure keeps the task from completing.
    #[serde(default = "yes")]
    pub required: bool,
    /// Share of the quality score.
    #[serde(default = "one")]
    pub weight: f32,
    /// Passed to the plugin as JSON.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Globs of the paths the gate depends on, which the agent may not modify or delete (besides the
    /// scripts its `config.command` runs). Unset: the `tests` gate guards the usual test layouts
    /// ([`crate::engine::protect::DEFAULT_TEST_GLOBS`]); `[]` guards only what the command names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<Vec<String>>,
    /// Whether the gate verifies the work by running the project's own checks (tests, linters): only such a
    /// gate passing counts as evidence that a task was done (ADR 0033). Unset (the default) means true for
    /// the `tests` plugin and false for every other.
    #[serde(default)]
    pub verifies: Option<bool>,
}

/// One entry of `rules:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule plugin name.
    pub plugin: String,
    /// Whether the rule is evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Passed to the plugin as JSON.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
}

fn default_gate_timeout() -> u64 {
    900
}

impl GateConfig {
    /// The name the gate's results are stored and shown under: `name`, or the plugin name.
    pub fn display_name(&self) -> &str {
        if self.name.trim().is_empty() { &self.plugin } else { self.name.trim() }
    }

    /// Whether the gate runs the project's own checks: `verifies`, else true for the `tests` plugin.
    pub fn is_verifying(&self) -> bool {
        self.verifies.unwrap_or(self.plugin == "tests")
    }
}

fn yes() -> bool {
    true
}

fn one() -> f32 {
    1.0
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

thread_local! {
    static PARSING_DEFAULTS: Cell<bool> = const { Cell::new(false) };
}

/// The configuration of the embedded `config/default.yaml`, parsed once.
pub fn embedded_defaults() -> &'static Config {
    static DEFAULTS: OnceLock<Config> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        PARSING_DEFAULTS.with(|f| f.set(true));
        let parsed = serde_yaml::from_str::<Config>(super::DEFAULT_YAML);
        PARSING_DEFAULTS.with(|f| f.set(false));
        let config = parsed.unwrap_or_else(|e| panic!("the embedded config/default.yaml is invalid: {e}"));
        config.check().unwrap_or_else(|e| panic!("the embedded config/default.yaml is invalid: {e}"));
        config
    })
}

macro_rules! default_from_yaml {
    ($ty:ty, $name:literal, |$c:ident| $field:expr) => {
        impl Default for $ty {
            fn default() -> Self {
                if PARSING_DEFAULTS.with(Cell::get) {
                    panic!(concat!(
                        "config/default.yaml lacks the section `",
                        $name,
                        "`: every key needs a default there"
                    ));
                }
                let $c = embedded_defaults();
                $field.clone()
            }
        }
    };
}

default_from_yaml!(Config, "(root)", |c| c);
default_from_yaml!(DatabaseConfig, "database", |c| c.database);
default_from_yaml!(AgentConfig, "agent", |c| c.agent);
default_from_yaml!(LlmConfig, "llm", |c| c.llm);
default_from_yaml!(crate::telemetry::production::LoggingConfig, "logging", |c| c.logging);
default_from_yaml!(crate::transport::TransportConfig, "agent.transport", |c| c.agent.transport);
default_from_yaml!(crate::transport::SshConfig, "agent.transport.ssh", |c| c.agent.transport.ssh);
default_from_yaml!(crate::transport::DockerConfig, "agent.transport.docker", |c| c.agent.transport.docker);
default_from_yaml!(EngineConfig, "engine", |c| c.engine);
default_from_yaml!(DecisionConfig, "engine.decision", |c| c.engine.decision);
default_from_yaml!(RetryConfig, "engine.retry", |c| c.engine.retry);
default_from_yaml!(SessionsConfig, "sessions", |c| c.sessions);
default_from_yaml!(WorkspaceConfig, "workspace", |c| c.workspace);
default_from_yaml!(GitConfig, "git", |c| c.git);
default_from_yaml!(crate::sandbox::SandboxConfig, "sandbox", |c| c.sandbox);
default_from_yaml!(MaxTurnsConfig, "sessions.max_turns", |c| c.sessions.max_turns);
default_from_yaml!(ContextConfig, "engine.context", |c| c.engine.context);

impl Config {
    /// Check values that types alone cannot: ranges, thresholds in order, names not empty.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            source_name: "the merged configuration".into(),
            message: format!("{key}: {message}"),
        };
        let d = &self.engine.decision;
        for (key, v) in [
            ("engine.decision.proceed_threshold", d.proceed_threshold),
            ("engine.decision.escalate_threshold", d.escalate_threshold),
            ("llm.weight", self.llm.weight),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(key, format!("{v} is outside 0.0..=1.0")));
            }
        }
        if d.escalate_threshold > d.proceed_threshold {
            return Err(bad(
                "engine.decision",
                format!(
                    "escalate_threshold ({}) is above proceed_threshold ({}); it must be at most proceed_threshold",
                    d.escalate_threshold, d.proceed_threshold
                ),
            ));
        }
        if self.engine.max_iterations == 0 {
            return Err(bad("engine.max_iterations", "must be at least 1".into()));
        }
        if self.engine.retry.max_attempts == 0 {
            return Err(bad("engine.retry.max_attempts", "must be at least 1 (1 means no retry)".into()));
        }
        if self.engine.context.max_tokens < 500 {
            return Err(bad(
                "engine.context.max_tokens",
                format!("{} is too small; use at least 500", self.engine.context.max_tokens),
            ));
        }
        let cpt = self.engine.context.chars_per_token;
        if !(1.0..=10.0).contains(&cpt) {
            return Err(bad("engine.context.chars_per_token", format!("{cpt} is outside 1.0..=10.0")));
        }
        if self.agent.plugin.trim().is_empty() {
            return Err(bad("agent.plugin", "names no agent plugin".into()));
        }
        if self.agent.timeout_secs == 0 {
            return Err(bad("agent.timeout_secs", "must be at least 1".into()));
        }
        if let Err(e) = self.agent.transport.build() {
            return Err(bad(&e.key, e.message));
        }
        self.sessions.check().map_err(|(key, message)| bad(&key, message))?;
        self.logging.check().map_err(|(key, message)| bad(&key, message))?;
        if !(1..=MAX_GIT_COMMAND_TIMEOUT_SECS).contains(&self.git.command_timeout_secs) {
            return Err(bad(
                "git.command_timeout_secs",
                format!(
                    "{} is outside 1..={MAX_GIT_COMMAND_TIMEOUT_SECS}; give the seconds one git or gh command may \
                     run (the default is 300)",
                    self.git.command_timeout_secs
                ),
            ));
        }
        if self.git.create_pr && self.git.remote.trim().is_empty() {
            return Err(bad("git.remote", "names no remote, and git.create_pr pushes task branches to it".into()));
        }
        for (i, gate) in self.gates.iter().enumerate() {
            if gate.weight < 0.0 || !gate.weight.is_finite() {
                return Err(bad(
                    &format!("gates[{i}].weight"),
                    format!("{} must be a non-negative number", gate.weight),
                ));
            }
            if gate.timeout_secs == 0 {
                return Err(bad(&format!("gates[{i}].timeout_secs"), "must be at least 1".into()));
            }
            let name = gate.display_name();
            if let Some(j) =
                self.gates[..i].iter().position(|other| other.enabled && gate.enabled && other.display_name() == name)
            {
                return Err(bad(
                    &format!("gates[{i}].name"),
                    format!(
                        "\"{name}\" is also the name of gates[{j}]; give one of them another `name:` (e.g. `name: lint`) \
                         so their results can be told apart"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every plugin the configuration names: the agent, the LLM provider (unless none), enabled gates and rules.
    pub fn plugin_references(&self) -> Vec<&str> {
        let mut refs = vec![self.agent.plugin.as_str()];
        if self.llm.enabled() {
            refs.push(self.llm.provider.as_str());
        }
        refs.extend(self.gates.iter().filter(|g| g.enabled).map(|g| g.plugin.as_str()));
        refs.extend(self.rules.iter().filter(|r| r.enabled).map(|r| r.plugin.as_str()));
        refs
    }

    /// The JSON config section of an agent plugin (`{}` when the config has none).
    pub fn agent_config(&self, plugin: &str) -> serde_json::Value {
        self.agents.get(plugin).cloned().unwrap_or_else(empty_object)
    }

    /// The JSON config section of an LLM provider plugin (`{}` when the config has none).
    pub fn llm_config(&self, plugin: &str) -> serde_json::Value {
        self.llms.get(plugin).cloned().unwrap_or_else(empty_object)
    }
}

/// `workspace:` (change tracking during agent runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// Watch the tree for changes during agent runs (false: rescan the tree after each run).
    #[serde(default)]
    pub watch: bool,
    /// Quiet time, in milliseconds, after the agent's last file event before its changes are taken.
    #[serde(default)]
    pub debounce_ms: u64,
    /// Gitignore-style patterns of paths never recorded, on top of `.gitignore` files and `.obra/ignore`.
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// `git:` (the seeds' git auto-integration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// When the work of completed tasks is committed.
    #[serde(default)]
    pub commit_strategy: CommitStrategy,
    /// Ask the LLM for the commit message (a conventional commit); without an LLM, or when it fails, the
    /// template fallback writes it.
    #[serde(default)]
    pub llm_message: bool,
    /// Run each task in its own git worktree on branch `obra/task-<id>-<slug>`; a completed task's branch is
    /// merged back (or proposed as a pull request with `create_pr`).
    #[serde(default)]
    pub branch_per_task: bool,
    /// Instead of merging a completed task's branch, push it to `remote` and open a pull request with `gh`.
    #[serde(default)]
    pub create_pr: bool,
    /// The remote task branches are pushed to.
    #[serde(default)]
    pub remote: String,
    /// Open pull requests as drafts.
    #[serde(default)]
    pub pr_draft: bool,
    /// How long one `git` or `gh` command may run, in seconds, before it is stopped with everything it started.
    #[serde(default)]
    pub command_timeout_secs: u64,
}

/// The longest `git.command_timeout_secs` accepted: a day.
pub const MAX_GIT_COMMAND_TIMEOUT_SECS: u64 = 86_400;

/// `git.commit_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitStrategy {
    /// One commit per task, when the task completes (a PROCEED with every gate passed).
    PerTask,
    /// One commit when the last task of a milestone completes, holding the work of all its tasks; tasks
    /// outside a milestone are committed per task.
    PerMilestone,
    /// Never commit: the work stays in the working tree (checkpoints still record it).
    Manual,
}

impl Default for CommitStrategy {
    fn default() -> Self {
        GitConfig::default().commit_strategy
    }
}

/// `sessions:` (the seeds' session management).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Resume the agent session across a task's iterations, and across the tasks of one milestone.
    #[serde(default)]
    pub continuity: bool,
    /// Context window of the agent's model, in tokens.
    #[serde(default)]
    pub context_window_tokens: u64,
    /// Share of the window at which a warning is shown.
    #[serde(default)]
    pub warn_at: f64,
    /// Share at which the session is refreshed: summarised (by the LLM when there is one) and restarted.
    #[serde(default)]
    pub refresh_at: f64,
    /// Share at which the session is refreshed at once, with a summary made without the LLM.
    #[serde(default)]
    pub emergency_at: f64,
    /// Adaptive max turns.
    #[serde(default)]
    pub max_turns: MaxTurnsConfig,
}

/// `sessions.max_turns:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxTurnsConfig {
    /// Set the agent's `max_turns` from the task's estimated complexity (agents whose config has no
    /// `max_turns` key are left alone).
    #[serde(default)]
    pub adaptive: bool,
    /// Lower bound of the adaptive limit.
    #[serde(default)]
    pub min: u32,
    /// Upper bound of the adaptive limit.
    #[serde(default)]
    pub max: u32,
    /// Limit by complexity: simple, medium, complex, very_complex.
    #[serde(default)]
    pub by_complexity: BTreeMap<String, u32>,
    /// Limit by task type, over the complexity's: debugging, code_generation, validation, ...
    #[serde(default)]
    pub by_type: BTreeMap<String, u32>,
    /// After a run that ended at its turn limit, run once more at double the limit, resuming the session.
    #[serde(default)]
    pub retry_doubled: bool,
}

impl SessionsConfig {
    /// Check ranges and order; the error names the key.
    fn check(&self) -> Result<(), (String, String)> {
        for (key, v) in [
            ("sessions.warn_at", self.warn_at),
            ("sessions.refresh_at", self.refresh_at),
            ("sessions.emergency_at", self.emergency_at),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err((key.into(), format!("{v} must be above 0 and at most 1")));
            }
        }
        if !(self.warn_at <= self.refresh_at && self.refresh_at <= self.emergency_at) {
            return Err((
                "sessions".into(),
                format!(
                    "thresholds must be in order warn_at <= refresh_at <= emergency_at, not {} / {} / {}",
                    self.warn_at, self.refresh_at, self.emergency_at
                ),
            ));
        }
        if self.context_window_tokens == 0 {
            return Err(("sessions.context_window_tokens".into(), "must be at least 1".into()));
        }
        let t = &self.max_turns;
        if t.min == 0 || t.min > t.max {
            return Err((
                "sessions.max_turns".into(),
                format!("min ({}) must be at least 1 and at most max ({})", t.min, t.max),
            ));
        }
        for level in crate::engine::session_policy::COMPLEXITY_LEVELS {
            if !t.by_complexity.contains_key(*level) {
                return Err((
                    format!("sessions.max_turns.by_complexity.{level}"),
                    format!(
                        "is missing; give a limit for each of {}",
                        crate::engine::session_policy::COMPLEXITY_LEVELS.join(", ")
                    ),
                ));
            }
        }
        for key in t.by_complexity.keys() {
            if !crate::engine::session_policy::COMPLEXITY_LEVELS.contains(&key.as_str()) {
                return Err((
                    format!("sessions.max_turns.by_complexity.{key}"),
                    format!(
                        "is not a complexity level; use {}",
                        crate::engine::session_policy::COMPLEXITY_LEVELS.join(", ")
                    ),
                ));
            }
        }
        for key in t.by_type.keys() {
            if !crate::engine::session_policy::TASK_TYPES.contains(&key.as_str()) {
                return Err((
                    format!("sessions.max_turns.by_type.{key}"),
                    format!("is not a task type; use {}", crate::engine::session_policy::TASK_TYPES.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
