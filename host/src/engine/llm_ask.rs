//! Asking the configured LLM for a structured answer: the completion request with a JSON schema, the retry
//! policy, and the reply validated (and repaired) by [`super::structured`].

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Engine;
use super::events::Step;
use super::structured::Schema;
use crate::contract::{CompletionRequest, Message, PluginError, Role};

/// A structured answer of the LLM.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// Repairs made to the reply before it conformed, one sentence each.
    pub repairs: Vec<String>,
}

impl Engine {
    /// Ask the LLM `prompt` with `schema` (JSON text) and parse its reply as `T`. A reply that stays
    /// invalid after repair is a retryable error, so it is asked again under the retry policy; `Err` says
    /// why there is no answer (no LLM configured, the provider failed, the reply was rejected).
    pub(super) async fn ask_llm<T: DeserializeOwned>(
        &self,
        what: &str,
        prompt: String,
        schema: &str,
    ) -> Result<Answer<T>, String> {
        let current = self.current();
        let Some(llm) = &current.plugins.llm else {
            return Err("no LLM is configured (llm.provider: none)".into());
        };
        let schema = Schema::parse(schema).map_err(|e| format!("the {what} schema is unusable: {e}"))?;
        let request = CompletionRequest {
            messages: vec![Message { role: Role::User, content: prompt }],
            json_schema: Some(schema.to_json()),
            temperature: None,
            max_tokens: Some(1024),
        };
        let limit = Duration::from_secs(current.config.llm.timeout_secs);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reply = match tokio::time::timeout(limit, llm.complete(&request)).await {
                Ok(r) => r,
                Err(_) => {
                    Err(PluginError::Timeout(format!("no answer within {}s (llm.timeout_secs)", limit.as_secs())))
                }
            };
            let error = match reply {
                Ok(c) => match schema.parse_as::<T>(&c.text) {
                    Ok((value, repairs)) => {
                        if !repairs.is_empty() {
                            self.observer.step(&Step::Progress(format!(
                                "repaired the LLM's {what} reply: {}",
                                repairs.join("; ")
                            )));
                        }
                        return Ok(Answer { value, repairs });
                    }
                    Err(e) => PluginError::Retryable(format!("the LLM's {what} reply was rejected: {e}")),
                },
                Err(e) => e,
            };
            match current.retry.delay_after(attempt, &error) {
                Some(delay) => {
                    self.observer.step(&Step::Retrying { what: "llm", attempt, delay, reason: error.to_string() });
                    tokio::time::sleep(delay).await;
                }
                None => {
                    let error = match error {
                        PluginError::Retryable(message) => message,
                        other => other.to_string(),
                    };
                    return Err(format!("{} failed: {error}", llm.name()));
                }
            }
        }
    }
}
