//! The supervision loop (DESIGN.md section 3): prompt, agent, changes, gates, confidence, rules, decision,
//! action — with every step persisted through the StateManager before the next one starts.
//!
//! The engine knows plugins only through the traits of [`crate::contract`] and the store only through
//! [`StateManager`]; it never touches SQL or wasmtime.

mod continuity;
pub mod decision;
pub mod events;
mod gates;
mod integrate;
pub mod integrity;
mod iteration;
mod llm_ask;
pub mod prompt;
pub mod prompt_context;
pub mod prompt_rules;
pub mod protect;
pub mod rate_limit;
pub mod replay;
pub mod retry;
pub mod rules;
mod run;
pub mod scheduler;
pub mod session_policy;
pub mod structured;

pub use continuity::LlmHealth;
pub use events::{LoopObserver, Step};
pub use run::{AGENT_FAILED_RULE, CANCEL_POLL, TaskOutcome};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::{Config, GateConfig, RuleConfig};
use crate::contract::{Agent, LlmProvider, QualityGate};
use crate::state::StateManager;

/// The plugins one execution uses, resolved from the configuration.
#[derive(Clone)]
pub struct LoopPlugins {
    /// The agent that does the work.
    pub agent: Arc<dyn Agent>,
    /// The LLM whose opinion joins the confidence score, if one is configured.
    pub llm: Option<Arc<dyn LlmProvider>>,
    /// Enabled gates in order, with their configuration.
    pub gates: Vec<(GateConfig, Arc<dyn QualityGate>)>,
    /// Enabled rules in order, with their configuration: plugins and host-native rules.
    pub rules: Vec<(RuleConfig, rules::LoopRule)>,
}

/// A new configuration for the rest of a task, with the plugins it names resolved.
pub struct ConfigUpdate {
    /// The configuration to run with (settings that need a restart already kept at their running values).
    pub config: Config,
    /// The plugins it names.
    pub plugins: LoopPlugins,
    /// The keys whose value changed and now apply.
    pub applied: Vec<String>,
    /// The keys that changed but take effect only when Obra starts again.
    pub needs_restart: Vec<String>,
}

/// What a [`ConfigWatch`] found at an iteration boundary.
pub enum ConfigPoll {
    /// Nothing to do.
    Unchanged,
    /// Run the rest of the task with this.
    Reloaded(Box<ConfigUpdate>),
    /// The configuration changed but cannot be used; why (file, line, key).
    Rejected(String),
}

/// Asked at the top of each iteration after the first whether the configuration changed.
#[async_trait::async_trait]
pub trait ConfigWatch: Send + Sync {
    /// Check the configuration's sources; called once per iteration boundary.
    async fn poll(&self) -> ConfigPoll;
}

/// The configuration an engine runs with and what depends on it; replaced whole on a reload.
struct Current {
    config: Config,
    plugins: LoopPlugins,
    retry: retry::RetryPolicy,
    /// Where the agent's programs run (`agent.transport`); none for locally.
    transport: Option<Arc<crate::transport::Transport>>,
    /// The sandbox of the programs plugins run here (`sandbox`); none when it is off.
    sandbox: Option<Arc<crate::sandbox::SandboxSpec>>,
}

impl Current {
    fn new(config: Config, plugins: LoopPlugins, workspace: &std::path::Path) -> Self {
        let retry = retry::RetryPolicy::new(config.engine.retry.clone());
        // `Config::check` refused a bad transport before any engine was built.
        let transport = config.agent.transport.build().ok().flatten().map(Arc::new);
        let sandbox =
            crate::sandbox::SandboxSpec::for_workspace(&config.sandbox, workspace, Some(&config.agent.plugin))
                .map(Arc::new);
        Self { config, plugins, retry, transport, sandbox }
    }
}

/// Runs tasks through the loop.
pub struct Engine {
    current: Mutex<Arc<Current>>,
    state: StateManager,
    workspace: PathBuf,
    observer: Arc<dyn LoopObserver>,
    /// The project's templates and prompt rules, or why they cannot be used (file and line).
    prompts: std::result::Result<prompt::PromptRenderer, String>,
    /// Whether "the workspace is not in git, no checkpoints" was said already.
    warned_no_git: std::sync::atomic::AtomicBool,
    /// Sessions whose context-window warning was shown.
    warned_sessions: Mutex<std::collections::HashSet<String>>,
    /// Characters per token, learned from the store on the first prompt of the execution.
    token_estimator: tokio::sync::OnceCell<prompt_context::TokenEstimator>,
    /// Whether the LLM answered lately (shared with the other engines of the process).
    llm_health: Arc<LlmHealth>,
    /// The workspace's change tracker between agent runs (shared with the orchestrator's other engines of
    /// the same workspace).
    tracker: Arc<crate::workspace::watcher::TrackerSlot>,
    /// The policy files that the agent may not change (checked around each agent run; ADR 34), if guarded.
    policy: Option<integrity::PolicyFiles>,
}

impl Engine {
    /// An engine over `workspace` with resolved plugins; `observer` sees every step as it happens.
    pub fn new(
        config: Config,
        state: StateManager,
        plugins: LoopPlugins,
        workspace: PathBuf,
        observer: Arc<dyn LoopObserver>,
    ) -> Self {
        let current = Mutex::new(Arc::new(Current::new(config, plugins, &workspace)));
        let prompts = prompt::PromptRenderer::for_project(&workspace).map_err(|e| format!("{e:#}"));
        Self {
            current,
            state,
            workspace,
            observer,
            prompts,
            warned_no_git: Default::default(),
            warned_sessions: Default::default(),
            token_estimator: Default::default(),
            llm_health: Default::default(),
            tracker: Default::default(),
            policy: None,
        }
    }

    /// Guard `policy` around every agent run: a file the agent changed is restored and the task stops at an
    /// `integrity` breakpoint.
    pub fn with_policy_guard(mut self, policy: integrity::PolicyFiles) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Keep the workspace's change tracker in `slot` between agent runs, so the engines that execute tasks one
    /// after another in the same workspace share one watcher instead of each starting its own.
    pub fn with_tracker_slot(mut self, slot: Arc<crate::workspace::watcher::TrackerSlot>) -> Self {
        self.tracker = slot;
        self
    }

    /// Share `health` with other engines, so the LLM going down or coming back is said once per process.
    pub fn with_llm_health(mut self, health: Arc<LlmHealth>) -> Self {
        self.llm_health = health;
        self
    }

    /// Take the prompt templates and rules from the project at `root` (when the workspace is elsewhere, e.g.
    /// a task's git worktree).
    pub fn with_prompts_from(mut self, root: &std::path::Path) -> Self {
        if root != self.workspace {
            self.prompts = prompt::PromptRenderer::for_project(root).map_err(|e| format!("{e:#}"));
        }
        self
    }

    /// The configuration the engine runs with now (it changes when a [`ConfigWatch`] reloads it).
    pub fn config(&self) -> Config {
        self.current().config.clone()
    }

    /// The prompt renderer, or the error that a project's template override or rules file has.
    fn prompts(&self) -> anyhow::Result<&prompt::PromptRenderer> {
        self.prompts.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn current(&self) -> Arc<Current> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Swap in a reloaded configuration and its plugins, whole.
    fn replace_current(&self, config: Config, plugins: LoopPlugins) {
        let current = Arc::new(Current::new(config, plugins, &self.workspace));
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = current;
    }
}
