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
    /// Decision thresholds.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Retry policy of agent and LLM calls.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The task prompt's context budget.
    #[serde(default)]
    pub context: ContextConfig,
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
default_from_yaml!(EngineConfig, "engine", |c| c.engine);
default_from_yaml!(DecisionConfig, "engine.decision", |c| c.engine.decision);
default_from_yaml!(RetryConfig, "engine.retry", |c| c.engine.retry);
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
        for (i, gate) in self.gates.iter().enumerate() {
            if gate.weight < 0.0 || !gate.weight.is_finite() {
                return Err(bad(
                    &format!("gates[{i}].weight"),
                    format!("{} must be a non-negative number", gate.weight),
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
