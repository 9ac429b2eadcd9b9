//! # Obra plugin SDK
//!
//! Write [Obra](../../docs/plugins.md) plugins — agents, LLM providers, quality gates and breakpoint rules — in
//! Rust, as WebAssembly components for `wasm32-wasip2` that implement the `obra:plugin@0.1.0` contract (the
//! WIT in `wit/`). The SDK hides wit-bindgen: implement one trait, call one export macro, and use the typed
//! capability helpers.
//!
//! | kind            | trait                                  | export macro                | types                                     |
//! |-----------------|----------------------------------------|-----------------------------|-------------------------------------------|
//! | agent           | [`agent::Agent`]                       | [`export_agent!`]           | [`agent::RunRequest`], [`RunResult`]      |
//! | llm-provider    | [`llm_provider::LlmProvider`]          | [`export_llm_provider!`]    | [`CompletionRequest`], [`Completion`]     |
//! | quality-gate    | [`quality_gate::QualityGate`]          | [`export_quality_gate!`]    | [`quality_gate::GateInput`], [`quality_gate::GateResult`] |
//! | breakpoint-rule | [`breakpoint_rule::BreakpointRule`]    | [`export_breakpoint_rule!`] | [`breakpoint_rule::LoopEvent`], [`breakpoint_rule::Verdict`] |
//!
//! Host capabilities, each checked against the plugin's manifest and the user's grants: [`process`] (run
//! programs), [`http`] (requests made by the host), [`workspace`] (the task's files), [`llm`] (the configured
//! LLM), [`kv`] (small private storage), [`log`] (logging and live progress). A component imports only the
//! capabilities it calls: a plugin that never calls [`process`] has no `obra:plugin/process` import, and the host
//! refuses a component importing a capability its manifest does not declare.
//!
//! ## Example: a quality gate
//!
//! ```no_run
//! use obra_plugin_sdk::quality_gate::{Finding, GateInput, GateResult, QualityGate};
//! use obra_plugin_sdk::{PluginError, config, export_quality_gate, workspace};
//! use serde::Deserialize;
//!
//! /// Configuration, from the gate's section of Obra's config.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// Files that must exist after the agent's run.
//!     #[serde(default)]
//!     required: Vec<String>,
//! }
//!
//! struct RequiredFiles;
//!
//! impl QualityGate for RequiredFiles {
//!     fn describe() -> String {
//!         "Checks that required files exist".into()
//!     }
//!
//!     fn check(input: GateInput) -> Result<GateResult, PluginError> {
//!         let cfg: Config = config(&input.config)?; // a bad config is a fatal error naming the field
//!         let mut findings = Vec::new();
//!         for path in &cfg.required {
//!             if !workspace::exists(path)? {
//!                 findings.push(Finding::error(format!("{path} is missing")).at(path, None));
//!             }
//!         }
//!         Ok(if findings.is_empty() {
//!             GateResult::pass("all required files exist")
//!         } else {
//!             GateResult::fail(format!("{} required file(s) missing", findings.len()), findings)
//!         })
//!     }
//! }
//!
//! export_quality_gate!(RequiredFiles);
//! ```
//!
//! With `crate-type = ["cdylib"]` in its Cargo.toml and a `plugin.toml` manifest (`workspace = "read"` here),
//! `cargo build --release --target wasm32-wasip2` produces the component `target/wasm32-wasip2/release/<crate>.wasm`.
//!
//! Everything but the capability calls also compiles for the host target, so pure logic can be unit-tested
//! with a plain `cargo test` (calling a capability there panics).

#![warn(missing_docs)]

extern crate self as obra_plugin_sdk;

#[doc(hidden)]
pub mod bindings;

mod config;
mod error;
mod failed;
mod findings;
mod glob;
pub mod http;
pub mod kv;
mod lines;
pub mod llm;
pub mod log;
pub mod process;
pub mod workspace;

pub use config::{config, parse_json};
pub use error::ResultExt;
pub use glob::glob_match;
pub use lines::{LineSplitter, sse_data};

/// Types shared by every plugin kind (the WIT `types` interface).
pub use bindings::caps::obra::plugin::types::{
    ChangeKind, Completion, CompletionRequest, FileChange, KeyValue, Message, Outcome, PluginError, RateLimit, Role,
    RunResult, TaskInfo, Usage,
};

/// Report progress of a long operation to the user (same as [`log::progress`]).
pub fn progress(message: &str) {
    log::progress(message)
}

/// `Result` with [`PluginError`].
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// Agent plugins: run a coding agent on a prompt in a workspace (WIT interface `agent`).
pub mod agent {
    pub use crate::bindings::agent_world::exports::obra::plugin::agent::{AgentInfo, Guest as Agent, RunRequest};
    pub use crate::failed::{FailedActions, MAX_FAILED_ACTION_CHARS, MAX_FAILED_ACTIONS, report_failed_action};
    pub use crate::{Outcome, RunResult, Usage};
}

/// LLM provider plugins: answer completion requests from a model server (WIT interface `llm-provider`).
pub mod llm_provider {
    pub use crate::bindings::llm_provider_world::exports::obra::plugin::llm_provider::{
        Guest as LlmProvider, ProviderInfo,
    };
    pub use crate::{Completion, CompletionRequest, Message, Role, Usage};
}

/// Quality-gate plugins: check an agent's work and score it (WIT interface `quality-gate`).
pub mod quality_gate {
    pub use crate::bindings::quality_gate_world::exports::obra::plugin::quality_gate::{
        Finding, GateInput, GateResult, Guest as QualityGate, Severity,
    };
    pub use crate::findings::findings_from_lines;
    pub use crate::{ChangeKind, FileChange, Outcome, RunResult};

    impl GateResult {
        /// A passing result with score 1.0 and no findings.
        pub fn pass(summary: impl Into<String>) -> Self {
            GateResult { passed: true, score: 1.0, findings: Vec::new(), summary: summary.into() }
        }

        /// A failing result with score 0.0 and these findings.
        pub fn fail(summary: impl Into<String>, findings: Vec<Finding>) -> Self {
            GateResult { passed: false, score: 0.0, findings, summary: summary.into() }
        }

        /// Replace the score (clamped to 0.0..=1.0).
        pub fn with_score(mut self, score: f32) -> Self {
            self.score = if score.is_nan() { 0.0 } else { score.clamp(0.0, 1.0) };
            self
        }
    }

    impl Finding {
        /// A finding of the given severity.
        pub fn new(severity: Severity, message: impl Into<String>) -> Self {
            Finding { severity, message: message.into(), path: None, line: None }
        }

        /// An `error` finding (fails the gate).
        pub fn error(message: impl Into<String>) -> Self {
            Self::new(Severity::Error, message)
        }

        /// A `warning` finding.
        pub fn warning(message: impl Into<String>) -> Self {
            Self::new(Severity::Warning, message)
        }

        /// An `info` finding.
        pub fn info(message: impl Into<String>) -> Self {
            Self::new(Severity::Info, message)
        }

        /// Attach the file (relative to the workspace) and line concerned.
        pub fn at(mut self, path: impl Into<String>, line: Option<u32>) -> Self {
            self.path = Some(path.into());
            self.line = line;
            self
        }
    }
}

/// Breakpoint-rule plugins: decide whether the loop may go on without a human (WIT interface
/// `breakpoint-rule`).
pub mod breakpoint_rule {
    pub use crate::bindings::breakpoint_rule_world::exports::obra::plugin::breakpoint_rule::{
        Guest as BreakpointRule, LoopEvent, Verdict,
    };
    pub use crate::{Outcome, TaskInfo};
}

/// The names most plugins need: `use obra_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Completion, CompletionRequest, Message, Outcome, PluginError, ResultExt, RunResult, TaskInfo, Usage, config,
        http, kv, llm, log, process, progress, workspace,
    };
}

#[allow(clippy::derivable_impls)]
impl Default for Usage {
    /// All counts zero, no cost.
    fn default() -> Self {
        Usage { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: None }
    }
}

impl RunResult {
    /// A result with this outcome and summary, zero usage and everything else empty; set the other fields
    /// directly.
    ///
    /// ```
    /// use obra_plugin_sdk::{Outcome, RunResult};
    /// let mut r = RunResult::new(Outcome::Success, "done");
    /// r.turns = 3;
    /// ```
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
        }
    }
}

impl Outcome {
    /// The WIT name: `success`, `max-turns`, `api-error`, `rate-limited`, `permission-denied`, `timeout`,
    /// `crashed` or `unparseable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::MaxTurns => "max-turns",
            Outcome::ApiError => "api-error",
            Outcome::RateLimited => "rate-limited",
            Outcome::PermissionDenied => "permission-denied",
            Outcome::Timeout => "timeout",
            Outcome::Crashed => "crashed",
            Outcome::Unparseable => "unparseable",
        }
    }

    /// Parse a WIT name (see [`Outcome::as_str`]); `_` may stand for `-`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.replace('_', "-").as_str() {
            "success" => Outcome::Success,
            "max-turns" => Outcome::MaxTurns,
            "api-error" => Outcome::ApiError,
            "rate-limited" => Outcome::RateLimited,
            "permission-denied" => Outcome::PermissionDenied,
            "timeout" => Outcome::Timeout,
            "crashed" => Outcome::Crashed,
            "unparseable" => Outcome::Unparseable,
            _ => return None,
        })
    }
}

/// Export a type implementing [`agent::Agent`] as the component's `obra:plugin/agent` interface. Use once, at
/// the crate root of a `cdylib`.
///
/// ```no_run
/// use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
/// use obra_plugin_sdk::{Outcome, PluginError, RunResult};
///
/// struct Noop;
/// impl Agent for Noop {
///     fn info() -> AgentInfo {
///         AgentInfo { name: "noop".into(), version: "0.1.0".into(), description: "Does nothing".into(), supports_resume: false }
///     }
///     fn health(_config: String) -> Result<String, PluginError> { Ok("ok".into()) }
///     fn run(request: RunRequest) -> Result<RunResult, PluginError> {
///         Ok(RunResult::new(Outcome::Success, format!("ignored {} bytes of prompt", request.prompt.len())))
///     }
/// }
/// obra_plugin_sdk::export_agent!(Noop);
/// ```
#[macro_export]
macro_rules! export_agent {
    ($ty:ident) => {
        $crate::bindings::agent_world::export!($ty with_types_in $crate::bindings::agent_world);
    };
}

/// Export a type implementing [`llm_provider::LlmProvider`] as the component's `obra:plugin/llm-provider`
/// interface. Use once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_llm_provider {
    ($ty:ident) => {
        $crate::bindings::llm_provider_world::export!($ty with_types_in $crate::bindings::llm_provider_world);
    };
}

/// Export a type implementing [`quality_gate::QualityGate`] as the component's `obra:plugin/quality-gate`
/// interface. Use once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_quality_gate {
    ($ty:ident) => {
        $crate::bindings::quality_gate_world::export!($ty with_types_in $crate::bindings::quality_gate_world);
    };
}

/// Export a type implementing [`breakpoint_rule::BreakpointRule`] as the component's
/// `obra:plugin/breakpoint-rule` interface. Use once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_breakpoint_rule {
    ($ty:ident) => {
        $crate::bindings::breakpoint_rule_world::export!($ty with_types_in $crate::bindings::breakpoint_rule_world);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
