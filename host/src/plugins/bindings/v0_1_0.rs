//! Bindings of `obra:plugin@0.1.0` (the WIT in `wit/`), and conversions between them and `contract` types.
//!
//! The host capabilities are generated once (world `imports` below, which includes the package's
//! `host-capabilities`); each of the four plugin worlds reuses them through `with`, so there is one Rust type per
//! WIT type. The capability implementations in `caps/` implement the traits generated here: this is the latest
//! version; an older version's module would implement its traits by converting into these.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::{Capability, ExportCall, ExportReturn, SelfDescription};
use crate::contract;
use crate::plugins::instance_state::StoreState;
use crate::plugins::manifest::PluginKind;

/// The API version these bindings serve.
pub const VERSION: &str = "0.1.0";

/// Host capability interfaces of this version and what each requires of the manifest.
pub(crate) const IMPORTS: &[(&str, Capability)] = &[
    ("types", Capability::Always),
    ("log", Capability::Always),
    ("process", Capability::Commands),
    ("http", Capability::Http),
    ("workspace", Capability::Workspace),
    ("llm", Capability::Llm),
    ("kv", Capability::Kv),
    ("agent-report", Capability::Always),
];

#[allow(unused_variables, missing_docs, clippy::all)]
mod host_world {
    wasmtime::component::bindgen!({
        inline: "
            package obra:host-v0-1-0;
            world imports {
                include obra:plugin/host-capabilities@0.1.0;
                import obra:plugin/agent-report@0.1.0;
            }
        ",
        path: "../wit",
        imports: { default: async | trappable },
        with: {
            "obra:plugin/process.child": crate::plugins::caps::process::ChildProcess,
            "obra:plugin/http.response-stream": crate::plugins::caps::http::ResponseStream,
        },
    });
}

/// Generates the bindings of one plugin world, reusing the host capability bindings.
macro_rules! plugin_world {
    ($module:ident, $world:literal $(, $extra:literal => $path:path)*) => {
        #[allow(missing_docs, clippy::all)]
        mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../wit",
                exports: { default: async },
                with: {
                    "obra:plugin/types": super::host_world::obra::plugin::types,
                    "obra:plugin/process": super::host_world::obra::plugin::process,
                    "obra:plugin/http": super::host_world::obra::plugin::http,
                    "obra:plugin/workspace": super::host_world::obra::plugin::workspace,
                    "obra:plugin/llm": super::host_world::obra::plugin::llm,
                    "obra:plugin/kv": super::host_world::obra::plugin::kv,
                    "obra:plugin/log": super::host_world::obra::plugin::log,
                    $($extra: $path,)*
                },
            });
        }
    };
}

plugin_world!(
    agent_world,
    "agent-plugin",
    "obra:plugin/agent-report" => super::host_world::obra::plugin::agent_report
);
plugin_world!(provider_world, "llm-provider-plugin");
plugin_world!(gate_world, "quality-gate-plugin");
plugin_world!(rule_world, "breakpoint-rule-plugin");

/// The generated host-capability interfaces (`process`, `http`, `workspace`, `llm`, `kv`, `log`, `types`, and
/// the agents' `agent-report`).
pub(crate) use host_world::obra::plugin as caps;

use agent_world::exports::obra::plugin::agent as wit_agent;
use caps::types as wit;
use gate_world::exports::obra::plugin::quality_gate as wit_gate;
use rule_world::exports::obra::plugin::breakpoint_rule as wit_rule;

/// Add this version's host capabilities to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    host_world::Imports::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

/// A pre-linked component of one kind, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    Agent(agent_world::AgentPluginPre<StoreState>),
    Provider(provider_world::LlmProviderPluginPre<StoreState>),
    Gate(gate_world::QualityGatePluginPre<StoreState>),
    Rule(rule_world::BreakpointRulePluginPre<StoreState>),
}

/// A live instance's typed exports.
pub(crate) enum Bindings {
    Agent(agent_world::AgentPlugin),
    Provider(provider_world::LlmProviderPlugin),
    Gate(gate_world::QualityGatePlugin),
    Rule(rule_world::BreakpointRulePlugin),
}

impl Pre {
    /// Check the component exports its kind's interface and wrap the `InstancePre`.
    pub(crate) fn new(kind: PluginKind, pre: InstancePre<StoreState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            PluginKind::Agent => Pre::Agent(agent_world::AgentPluginPre::new(pre)?),
            PluginKind::LlmProvider => Pre::Provider(provider_world::LlmProviderPluginPre::new(pre)?),
            PluginKind::QualityGate => Pre::Gate(gate_world::QualityGatePluginPre::new(pre)?),
            PluginKind::BreakpointRule => Pre::Rule(rule_world::BreakpointRulePluginPre::new(pre)?),
        })
    }

    /// Instantiate into `store`.
    pub(crate) async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::Agent(p) => Bindings::Agent(p.instantiate_async(store).await?),
            Pre::Provider(p) => Bindings::Provider(p.instantiate_async(store).await?),
            Pre::Gate(p) => Bindings::Gate(p.instantiate_async(store).await?),
            Pre::Rule(p) => Bindings::Rule(p.instantiate_async(store).await?),
        })
    }
}

type CallResult = wasmtime::Result<Result<ExportReturn, contract::PluginError>>;

fn ok(r: ExportReturn) -> CallResult {
    Ok(Ok(r))
}

fn map<T>(r: Result<T, wit::PluginError>, f: impl FnOnce(T) -> ExportReturn) -> CallResult {
    Ok(r.map(f).map_err(Into::into))
}

impl Bindings {
    /// Call one export. `Err` is a trap; `Ok(Err)` is the plugin's own error.
    pub(crate) async fn call(&self, store: &mut Store<StoreState>, call: &ExportCall<'_>) -> CallResult {
        match (self, call) {
            (Bindings::Agent(b), ExportCall::AgentInfo) => {
                let i = b.obra_plugin_agent().call_info(store).await?;
                ok(ExportReturn::Description(SelfDescription {
                    name: Some(i.name),
                    version: Some(i.version),
                    description: i.description,
                    supports_resume: Some(i.supports_resume),
                }))
            }
            (Bindings::Agent(b), ExportCall::AgentHealth(config)) => {
                map(b.obra_plugin_agent().call_health(store, config).await?, ExportReturn::Text)
            }
            (Bindings::Agent(b), ExportCall::AgentRun(request)) => {
                let request = run_request(request);
                let returned = b.obra_plugin_agent().call_run(&mut *store, &request).await?;
                // What the plugin reported through `agent-report` during the run belongs to its result.
                let failed_actions = std::mem::take(&mut store.data_mut().call.failed_actions);
                map(returned, |r| {
                    let mut result = contract::RunResult::from(r);
                    result.failed_actions = failed_actions;
                    ExportReturn::RunResult(result)
                })
            }
            (Bindings::Provider(b), ExportCall::ProviderInfo) => {
                let i = b.obra_plugin_llm_provider().call_info(store).await?;
                ok(ExportReturn::Description(SelfDescription {
                    name: Some(i.name),
                    version: Some(i.version),
                    description: i.description,
                    supports_resume: None,
                }))
            }
            (Bindings::Provider(b), ExportCall::ProviderHealth(config)) => {
                map(b.obra_plugin_llm_provider().call_health(store, config).await?, ExportReturn::Text)
            }
            (Bindings::Provider(b), ExportCall::ProviderListModels(config)) => {
                map(b.obra_plugin_llm_provider().call_list_models(store, config).await?, ExportReturn::Models)
            }
            (Bindings::Provider(b), ExportCall::ProviderComplete(config, request)) => {
                let request = completion_request(request);
                map(b.obra_plugin_llm_provider().call_complete(store, config, &request).await?, |c| {
                    ExportReturn::Completion(c.into())
                })
            }
            (Bindings::Gate(b), ExportCall::GateDescribe) => {
                let text = b.obra_plugin_quality_gate().call_describe(store).await?;
                ok(ExportReturn::Description(SelfDescription { description: text, ..Default::default() }))
            }
            (Bindings::Gate(b), ExportCall::GateCheck(input)) => {
                let input = gate_input(input);
                map(b.obra_plugin_quality_gate().call_check(store, &input).await?, |r| {
                    ExportReturn::GateResult(gate_result(r))
                })
            }
            (Bindings::Rule(b), ExportCall::RuleDescribe) => {
                let text = b.obra_plugin_breakpoint_rule().call_describe(store).await?;
                ok(ExportReturn::Description(SelfDescription { description: text, ..Default::default() }))
            }
            (Bindings::Rule(b), ExportCall::RuleEvaluate(event)) => {
                let event = loop_event(event);
                map(b.obra_plugin_breakpoint_rule().call_evaluate(store, &event).await?, |v| {
                    ExportReturn::Verdict(match v {
                        wit_rule::Verdict::Proceed => contract::Verdict::Proceed,
                        wit_rule::Verdict::Pause(r) => contract::Verdict::Pause(r),
                        wit_rule::Verdict::Abort(r) => contract::Verdict::Abort(r),
                    })
                })
            }
            (_, call) => Ok(Err(contract::PluginError::Fatal(format!(
                "internal error: {} called on a plugin of another kind",
                call.function()
            )))),
        }
    }
}

// ---- conversions -------------------------------------------------------------------------------------------

impl From<wit::PluginError> for contract::PluginError {
    fn from(e: wit::PluginError) -> Self {
        match e {
            wit::PluginError::Retryable(m) => Self::Retryable(m),
            wit::PluginError::RateLimited(r) => {
                Self::RateLimited { message: r.message, retry_after_ms: r.retry_after_ms }
            }
            wit::PluginError::Timeout(m) => Self::Timeout(m),
            wit::PluginError::Denied(m) => Self::Denied(m),
            wit::PluginError::Fatal(m) => Self::Fatal(m),
        }
    }
}

impl From<contract::PluginError> for wit::PluginError {
    fn from(e: contract::PluginError) -> Self {
        use contract::PluginError as E;
        match e {
            E::Retryable(m) => Self::Retryable(m),
            E::RateLimited { message, retry_after_ms } => Self::RateLimited(wit::RateLimit { message, retry_after_ms }),
            E::Timeout(m) => Self::Timeout(m),
            E::Denied(m) => Self::Denied(m),
            E::Fatal(m) | E::Trapped(m) => Self::Fatal(m),
        }
    }
}

fn task(t: &contract::TaskInfo) -> wit::TaskInfo {
    wit::TaskInfo {
        id: t.id,
        title: t.title.clone(),
        description: t.description.clone(),
        iteration: t.iteration,
        max_iterations: t.max_iterations,
    }
}

fn outcome_to_wit(o: contract::Outcome) -> wit::Outcome {
    use contract::Outcome as O;
    match o {
        O::Success => wit::Outcome::Success,
        O::MaxTurns => wit::Outcome::MaxTurns,
        O::ApiError => wit::Outcome::ApiError,
        O::RateLimited => wit::Outcome::RateLimited,
        O::PermissionDenied => wit::Outcome::PermissionDenied,
        O::Timeout => wit::Outcome::Timeout,
        O::Crashed => wit::Outcome::Crashed,
        O::Unparseable => wit::Outcome::Unparseable,
    }
}

impl From<wit::Outcome> for contract::Outcome {
    fn from(o: wit::Outcome) -> Self {
        use wit::Outcome as O;
        match o {
            O::Success => Self::Success,
            O::MaxTurns => Self::MaxTurns,
            O::ApiError => Self::ApiError,
            O::RateLimited => Self::RateLimited,
            O::PermissionDenied => Self::PermissionDenied,
            O::Timeout => Self::Timeout,
            O::Crashed => Self::Crashed,
            O::Unparseable => Self::Unparseable,
        }
    }
}

impl From<wit::Usage> for contract::Usage {
    fn from(u: wit::Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            cost_usd: u.cost_usd,
        }
    }
}

fn usage(u: &contract::Usage) -> wit::Usage {
    wit::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_read_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
        cost_usd: u.cost_usd,
    }
}

impl From<wit::RunResult> for contract::RunResult {
    fn from(r: wit::RunResult) -> Self {
        Self {
            outcome: r.outcome.into(),
            summary: r.summary,
            session_id: r.session_id,
            turns: r.turns,
            usage: r.usage.into(),
            duration_ms: r.duration_ms,
            api_status: r.api_status,
            retry_after_ms: r.retry_after_ms,
            permission_denials: r.permission_denials,
            exit_code: r.exit_code,
            failed_actions: Vec::new(),
        }
    }
}

fn run_result(r: &contract::RunResult) -> wit::RunResult {
    wit::RunResult {
        outcome: outcome_to_wit(r.outcome),
        summary: r.summary.clone(),
        session_id: r.session_id.clone(),
        turns: r.turns,
        usage: usage(&r.usage),
        duration_ms: r.duration_ms,
        api_status: r.api_status,
        retry_after_ms: r.retry_after_ms,
        permission_denials: r.permission_denials.clone(),
        exit_code: r.exit_code,
    }
}

fn run_request(r: &contract::RunRequest) -> wit_agent::RunRequest {
    wit_agent::RunRequest {
        task: task(&r.task),
        prompt: r.prompt.clone(),
        workspace: r.workspace.clone(),
        resume_session: r.resume_session.clone(),
        timeout_ms: r.timeout_ms,
        config: r.config.clone(),
    }
}

/// Convert a contract completion request into this version's WIT type.
pub(crate) fn completion_request(r: &contract::CompletionRequest) -> wit::CompletionRequest {
    wit::CompletionRequest {
        messages: r
            .messages
            .iter()
            .map(|m| wit::Message {
                role: match m.role {
                    contract::Role::System => wit::Role::System,
                    contract::Role::User => wit::Role::User,
                    contract::Role::Assistant => wit::Role::Assistant,
                },
                content: m.content.clone(),
            })
            .collect(),
        json_schema: r.json_schema.clone(),
        temperature: r.temperature,
        max_tokens: r.max_tokens,
    }
}

impl From<wit::CompletionRequest> for contract::CompletionRequest {
    fn from(r: wit::CompletionRequest) -> Self {
        Self {
            messages: r
                .messages
                .into_iter()
                .map(|m| contract::Message {
                    role: match m.role {
                        wit::Role::System => contract::Role::System,
                        wit::Role::User => contract::Role::User,
                        wit::Role::Assistant => contract::Role::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
            json_schema: r.json_schema,
            temperature: r.temperature,
            max_tokens: r.max_tokens,
        }
    }
}

impl From<wit::Completion> for contract::Completion {
    fn from(c: wit::Completion) -> Self {
        Self { text: c.text, model: c.model, usage: c.usage.into(), duration_ms: c.duration_ms }
    }
}

impl From<contract::Completion> for wit::Completion {
    fn from(c: contract::Completion) -> Self {
        Self { text: c.text, model: c.model, usage: usage(&c.usage), duration_ms: c.duration_ms }
    }
}

fn gate_input(i: &contract::GateInput) -> wit_gate::GateInput {
    wit_gate::GateInput {
        task: task(&i.task),
        agent_result: run_result(&i.agent_result),
        changes: i
            .changes
            .iter()
            .map(|c| wit::FileChange {
                path: c.path.clone(),
                kind: match c.kind {
                    contract::ChangeKind::Created => wit::ChangeKind::Created,
                    contract::ChangeKind::Modified => wit::ChangeKind::Modified,
                    contract::ChangeKind::Deleted => wit::ChangeKind::Deleted,
                },
                size: c.size,
            })
            .collect(),
        workspace: i.workspace.clone(),
        config: i.config.clone(),
    }
}

fn gate_result(r: wit_gate::GateResult) -> contract::GateResult {
    contract::GateResult {
        passed: r.passed,
        score: r.score,
        findings: r
            .findings
            .into_iter()
            .map(|f| contract::Finding {
                severity: match f.severity {
                    wit_gate::Severity::Info => contract::Severity::Info,
                    wit_gate::Severity::Warning => contract::Severity::Warning,
                    wit_gate::Severity::Error => contract::Severity::Error,
                },
                message: f.message,
                path: f.path,
                line: f.line,
            })
            .collect(),
        summary: r.summary,
    }
}

fn loop_event(e: &contract::LoopEvent) -> wit_rule::LoopEvent {
    wit_rule::LoopEvent {
        task: task(&e.task),
        outcome: outcome_to_wit(e.outcome),
        confidence: e.confidence,
        gates_passed: e.gates_passed,
        proposed_decision: e.proposed_decision.clone(),
        files_changed: e.files_changed,
        files_deleted: e.files_deleted,
        config: e.config.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_errors_round_trip_and_traps_become_fatal() {
        let e = contract::PluginError::RateLimited { message: "slow".into(), retry_after_ms: Some(5) };
        let back: contract::PluginError = wit::PluginError::from(e.clone()).into();
        assert_eq!(back, e);
        let t: wit::PluginError = contract::PluginError::Trapped("x".into()).into();
        assert!(matches!(t, wit::PluginError::Fatal(m) if m == "x"));
    }

    #[test]
    fn run_results_round_trip() {
        let r = contract::RunResult {
            outcome: contract::Outcome::MaxTurns,
            summary: "s".into(),
            session_id: Some("id".into()),
            turns: 3,
            usage: contract::Usage { input_tokens: 1, cost_usd: Some(0.5), ..Default::default() },
            duration_ms: 9,
            api_status: Some(529),
            retry_after_ms: None,
            permission_denials: vec!["Bash".into()],
            exit_code: Some(1),
            failed_actions: Vec::new(),
        };
        assert_eq!(contract::RunResult::from(run_result(&r)), r);
    }
}
