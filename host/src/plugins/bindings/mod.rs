//! Bindings of every `obra:plugin` API version this host serves, one module per version (as Zed's extension host
//! keeps one per API version).
//!
//! The rest of the runtime talks to a plugin through the version-independent `ExportCall` / `ExportReturn`
//! and the `Pre` / `Bindings` enums here; adding a version means adding a module beside `v0_1_0`, a variant to
//! each enum, and its version string to [`SUPPORTED_API_VERSIONS`].

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::instance_state::StoreState;
use super::manifest::PluginKind;
use crate::contract;

pub mod v0_1_0;

/// Every API version this host serves.
pub const SUPPORTED_API_VERSIONS: &[&str] = &[v0_1_0::VERSION];
/// The newest API version this host serves (what new plugins should target).
pub const LATEST_API_VERSION: &str = v0_1_0::VERSION;

/// What a host capability interface requires of the manifest before a component may import it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Always allowed (`types`, `log`).
    Always,
    /// `process`: non-empty `commands`.
    Commands,
    /// `http`: non-empty `http`.
    Http,
    /// `workspace`: `read` or `write`.
    Workspace,
    /// `llm`: `llm = true` (never for an llm-provider).
    Llm,
    /// `kv`: `kv = true`.
    Kv,
}

/// The host capability interfaces of `api_version` (names without package and version) and their requirements.
pub fn capability_interfaces(api_version: &str) -> &'static [(&'static str, Capability)] {
    match api_version {
        v0_1_0::VERSION => v0_1_0::IMPORTS,
        _ => &[],
    }
}

/// Add every served version's host capabilities to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    v0_1_0::add_to_linker(linker)
}

/// What a plugin says about itself (`agent.info`, `llm-provider.info`, `describe`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SelfDescription {
    /// The name it reports (agents and providers).
    pub name: Option<String>,
    /// The version it reports (agents and providers).
    pub version: Option<String>,
    /// Its one-line description.
    pub description: String,
    /// Whether it can resume a session (agents).
    pub supports_resume: Option<bool>,
}

/// One export call, independent of the API version.
#[derive(Debug)]
pub(crate) enum ExportCall<'a> {
    AgentInfo,
    AgentHealth(&'a str),
    AgentRun(&'a contract::RunRequest),
    ProviderInfo,
    ProviderHealth(&'a str),
    ProviderListModels(&'a str),
    ProviderComplete(&'a str, &'a contract::CompletionRequest),
    GateDescribe,
    GateCheck(&'a contract::GateInput),
    RuleDescribe,
    RuleEvaluate(&'a contract::LoopEvent),
}

impl ExportCall<'_> {
    /// `interface.function`, for messages.
    pub(crate) fn function(&self) -> &'static str {
        match self {
            Self::AgentInfo => "agent.info",
            Self::AgentHealth(_) => "agent.health",
            Self::AgentRun(_) => "agent.run",
            Self::ProviderInfo => "llm-provider.info",
            Self::ProviderHealth(_) => "llm-provider.health",
            Self::ProviderListModels(_) => "llm-provider.list-models",
            Self::ProviderComplete(..) => "llm-provider.complete",
            Self::GateDescribe => "quality-gate.describe",
            Self::GateCheck(_) => "quality-gate.check",
            Self::RuleDescribe => "breakpoint-rule.describe",
            Self::RuleEvaluate(_) => "breakpoint-rule.evaluate",
        }
    }

    /// The plugin's config section passed with this call (JSON text), if any.
    pub(crate) fn config(&self) -> Option<&str> {
        match self {
            Self::AgentHealth(c) | Self::ProviderHealth(c) | Self::ProviderListModels(c) => Some(c),
            Self::ProviderComplete(c, _) => Some(c),
            Self::AgentRun(r) => Some(&r.config),
            Self::GateCheck(i) => Some(&i.config),
            Self::RuleEvaluate(e) => Some(&e.config),
            Self::AgentInfo | Self::ProviderInfo | Self::GateDescribe | Self::RuleDescribe => None,
        }
    }
}

/// What an export call returned, independent of the API version.
#[derive(Debug)]
pub(crate) enum ExportReturn {
    Description(SelfDescription),
    Text(String),
    RunResult(contract::RunResult),
    Models(Vec<String>),
    Completion(contract::Completion),
    GateResult(contract::GateResult),
    Verdict(contract::Verdict),
}

impl ExportReturn {
    /// What the plugin returned, bounded field by field before anything stores, shows or feeds it back: the one
    /// bound at the contract boundary (ADR 36, docs/plugins.md "What Obra keeps of a plugin's answers").
    pub(crate) fn bounded(self) -> Self {
        use contract::{MAX_DESCRIPTION_BYTES, MAX_MODELS, MAX_NAME_BYTES, bounded_to};
        let name = |n: String| bounded_to(n, MAX_NAME_BYTES);
        match self {
            Self::Description(d) => Self::Description(SelfDescription {
                name: d.name.map(name),
                version: d.version.map(name),
                description: bounded_to(d.description, MAX_DESCRIPTION_BYTES),
                supports_resume: d.supports_resume,
            }),
            Self::Text(t) => Self::Text(bounded_to(t, MAX_DESCRIPTION_BYTES)),
            Self::RunResult(r) => Self::RunResult(r.bounded()),
            Self::Models(mut models) => {
                models.truncate(MAX_MODELS);
                Self::Models(models.into_iter().map(name).collect())
            }
            Self::Completion(c) => Self::Completion(c.bounded()),
            Self::GateResult(g) => Self::GateResult(g.bounded()),
            Self::Verdict(v) => Self::Verdict(v.bounded()),
        }
    }
}

/// A pre-linked component of some version and kind.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1_0(v0_1_0::Pre),
}

/// A live instance's typed exports.
pub(crate) enum Bindings {
    V0_1_0(v0_1_0::Bindings),
}

impl Pre {
    /// Wrap an `InstancePre` for `api_version` and `kind`; fails when the component lacks the kind's export.
    pub(crate) fn new(api_version: &str, kind: PluginKind, pre: InstancePre<StoreState>) -> wasmtime::Result<Self> {
        match api_version {
            v0_1_0::VERSION => Ok(Pre::V0_1_0(v0_1_0::Pre::new(kind, pre)?)),
            other => Err(wasmtime::format_err!("API version {other} is not served by this host")),
        }
    }

    /// Instantiate into `store`.
    pub(crate) async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Bindings> {
        match self {
            Pre::V0_1_0(p) => Ok(Bindings::V0_1_0(p.instantiate(store).await?)),
        }
    }
}

impl Bindings {
    /// Call one export: `Err` is a trap, `Ok(Err)` the plugin's own error.
    pub(crate) async fn call(
        &self,
        store: &mut Store<StoreState>,
        call: &ExportCall<'_>,
    ) -> wasmtime::Result<Result<ExportReturn, contract::PluginError>> {
        match self {
            Bindings::V0_1_0(b) => b.call(store, call).await,
        }
    }
}
