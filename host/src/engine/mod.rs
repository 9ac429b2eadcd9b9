//! The supervision loop (DESIGN.md section 3): prompt, agent, changes, gates, confidence, rules, decision,
//! action — with every step persisted through the StateManager before the next one starts.
//!
//! The engine knows plugins only through the traits of [`crate::contract`] and the store only through
//! [`StateManager`]; it never touches SQL or wasmtime.

pub mod decision;
pub mod events;
pub mod prompt;
pub mod retry;
mod run;

pub use events::{LoopObserver, Step};
pub use run::TaskOutcome;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, GateConfig, RuleConfig};
use crate::contract::{Agent, BreakpointRule, LlmProvider, QualityGate};
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
    /// Enabled rules in order, with their configuration.
    pub rules: Vec<(RuleConfig, Arc<dyn BreakpointRule>)>,
}

/// Runs tasks through the loop.
pub struct Engine {
    config: Config,
    state: StateManager,
    plugins: LoopPlugins,
    workspace: PathBuf,
    observer: Arc<dyn LoopObserver>,
    prompts: prompt::PromptRenderer,
    retry: retry::RetryPolicy,
    /// Whether "the workspace is not in git, no checkpoints" was said already.
    warned_no_git: std::sync::atomic::AtomicBool,
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
        let retry = retry::RetryPolicy::new(config.engine.retry.clone());
        Self {
            config,
            state,
            plugins,
            workspace,
            observer,
            prompts: prompt::PromptRenderer::new(),
            retry,
            warned_no_git: Default::default(),
        }
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
