//! Typed handles: a loaded plugin seen through the contract trait of its kind.

use std::sync::Arc;

use super::bindings::{ExportCall, ExportReturn};
use super::instance::PluginInstance;
use crate::contract::{
    Agent, BreakpointRule, CallContext, Completion, CompletionRequest, GateInput, GateResult, LlmProvider, LoopEvent,
    PluginError, QualityGate, RunRequest, RunResult, Verdict,
};

fn unexpected(plugin: &str, got: ExportReturn) -> PluginError {
    PluginError::Fatal(format!("internal error: plugin {plugin:?} returned an unexpected value {got:?}"))
}

/// An agent plugin.
pub(crate) struct AgentHandle(pub(crate) Arc<PluginInstance>);

#[async_trait::async_trait]
impl Agent for AgentHandle {
    fn name(&self) -> &str {
        &self.0.name
    }

    async fn health(&self, ctx: &CallContext, config: &str) -> Result<String, PluginError> {
        match self.0.call(ctx, ExportCall::AgentHealth(config)).await? {
            ExportReturn::Text(text) => Ok(text),
            other => Err(unexpected(&self.0.name, other)),
        }
    }

    async fn run(&self, ctx: &CallContext, request: &RunRequest) -> Result<RunResult, PluginError> {
        match self.0.call(ctx, ExportCall::AgentRun(request)).await? {
            ExportReturn::RunResult(result) => Ok(result),
            other => Err(unexpected(&self.0.name, other)),
        }
    }
}

/// An LLM provider plugin bound to its config section (JSON text).
pub(crate) struct LlmProviderHandle {
    pub(crate) instance: Arc<PluginInstance>,
    pub(crate) config: String,
}

#[async_trait::async_trait]
impl LlmProvider for LlmProviderHandle {
    fn name(&self) -> &str {
        &self.instance.name
    }

    async fn health(&self) -> Result<String, PluginError> {
        match self.instance.call(&CallContext::default(), ExportCall::ProviderHealth(&self.config)).await? {
            ExportReturn::Text(text) => Ok(text),
            other => Err(unexpected(&self.instance.name, other)),
        }
    }

    async fn list_models(&self) -> Result<Vec<String>, PluginError> {
        match self.instance.call(&CallContext::default(), ExportCall::ProviderListModels(&self.config)).await? {
            ExportReturn::Models(models) => Ok(models),
            other => Err(unexpected(&self.instance.name, other)),
        }
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, PluginError> {
        let call = ExportCall::ProviderComplete(&self.config, request);
        match self.instance.call(&CallContext::default(), call).await? {
            ExportReturn::Completion(completion) => Ok(completion),
            other => Err(unexpected(&self.instance.name, other)),
        }
    }
}

/// A quality-gate plugin.
pub(crate) struct QualityGateHandle(pub(crate) Arc<PluginInstance>);

#[async_trait::async_trait]
impl QualityGate for QualityGateHandle {
    fn name(&self) -> &str {
        &self.0.name
    }

    async fn check(&self, ctx: &CallContext, input: &GateInput) -> Result<GateResult, PluginError> {
        match self.0.call(ctx, ExportCall::GateCheck(input)).await? {
            ExportReturn::GateResult(result) => Ok(result),
            other => Err(unexpected(&self.0.name, other)),
        }
    }
}

/// A breakpoint-rule plugin.
pub(crate) struct BreakpointRuleHandle(pub(crate) Arc<PluginInstance>);

#[async_trait::async_trait]
impl BreakpointRule for BreakpointRuleHandle {
    fn name(&self) -> &str {
        &self.0.name
    }

    async fn evaluate(&self, ctx: &CallContext, event: &LoopEvent) -> Result<Verdict, PluginError> {
        match self.0.call(ctx, ExportCall::RuleEvaluate(event)).await? {
            ExportReturn::Verdict(verdict) => Ok(verdict),
            other => Err(unexpected(&self.0.name, other)),
        }
    }
}
