//! The `llm` capability: forwards a completion request to the LLM provider of the call's [`CallContext`].
//!
//! Needs the `llm` grant. With a JSON schema, the reply must parse as JSON before it is returned (a malformed
//! reply is `retryable`: asking again usually helps).
//!
//! [`CallContext`]: crate::contract::CallContext

use super::{WitError, timed};
use crate::contract::{self, PluginError};
use crate::plugins::bindings::v0_1_0::caps::llm::Host;
use crate::plugins::bindings::v0_1_0::caps::types::{Completion, CompletionRequest};
use crate::plugins::instance_state::StoreState;

impl StoreState {
    fn complete_work(
        &self,
        request: CompletionRequest,
    ) -> Result<impl Future<Output = Result<Completion, PluginError>> + use<>, PluginError> {
        self.grant.check_llm()?;
        let provider = self.call.ctx.llm.clone().ok_or_else(|| {
            PluginError::Fatal(format!(
                "plugin {:?} asked the LLM during {}, but no LLM provider is configured: configure one (llm.provider) or disable this plugin",
                self.plugin, self.call.function
            ))
        })?;
        let request: contract::CompletionRequest = request.into();
        Ok(async move {
            let completion = provider.complete(&request).await?;
            if request.json_schema.is_some()
                && let Err(e) = serde_json::from_str::<serde_json::Value>(&completion.text)
            {
                return Err(PluginError::Retryable(format!(
                    "the LLM ({}) was asked for JSON but its reply is not valid JSON ({e})",
                    provider.name()
                )));
            }
            Ok(completion.bounded().into())
        })
    }
}

impl Host for StoreState {
    async fn complete(&mut self, request: CompletionRequest) -> wasmtime::Result<Result<Completion, WitError>> {
        timed(self.timer("llm.complete"), self.complete_work(request)).await
    }
}
