//! Asking the configured LLM for a structured answer: the completion request with a JSON schema, the retry
//! policy, and the reply validated (and repaired) by [`super::structured`].

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::Engine;
use super::events::Step;
use super::structured::Schema;
use crate::contract::{Completion, CompletionRequest, LlmProvider, Message, PluginError, Role};
use crate::state::NewLlmCall;

/// What an LLM call is about, for its record in the store (`llm_calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmScope<'a> {
    /// The task.
    pub task_id: i64,
    /// The agent run being judged.
    pub interaction_id: i64,
    /// What the call is for, e.g. `opinion`.
    pub what: &'a str,
}

impl<'a> LlmScope<'a> {
    /// A scope.
    pub fn new(task_id: i64, interaction_id: i64, what: &'a str) -> Self {
        Self { task_id, interaction_id, what }
    }
}

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
    /// why there is no answer (no LLM configured, the LLM is down, the provider failed, the reply was
    /// rejected). Every attempt is recorded in the store; the LLM going down or coming back is said once.
    pub(super) async fn ask_llm<T: DeserializeOwned>(
        &self,
        scope: LlmScope<'_>,
        prompt: String,
        schema: &str,
    ) -> Result<Answer<T>, String> {
        let what = scope.what;
        let current = self.current();
        let Some(llm) = &current.plugins.llm else {
            return Err("no LLM is configured (llm.provider: none)".into());
        };
        if let Some(reason) = self.llm_health.skip_reason() {
            return Err(reason);
        }
        let schema = Schema::parse(schema).map_err(|e| format!("the {what} schema is unusable: {e}"))?;
        let request = CompletionRequest {
            messages: vec![Message { role: Role::User, content: prompt }],
            json_schema: Some(schema.to_json()),
            temperature: None,
            max_tokens: Some(1024),
        };
        let limit = Duration::from_secs(current.config.llm.timeout_secs);
        let mut attempt = 0;
        // Whether the last attempt got an answer that could not be used (the LLM is up) rather than none.
        let mut rejected;
        loop {
            attempt += 1;
            let started = Instant::now();
            let reply = complete_within(llm.as_ref(), &request, limit).await;
            let usage = reply.as_ref().ok().map(|c| c.usage.clone());
            let parsed = reply.map(|c| schema.parse_as::<T>(&c.text));
            rejected = matches!(&parsed, Ok(Err(_)));
            let failure = match &parsed {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("reply rejected: {e}")),
                Err(e) => Some(e.to_string()),
            };
            self.record_llm_call(&NewLlmCall {
                task_id: scope.task_id,
                interaction_id: Some(scope.interaction_id),
                purpose: what,
                provider: llm.name(),
                attempt,
                duration_ms: started.elapsed().as_millis() as u64,
                input_tokens: usage.as_ref().map(|u| u.input_tokens),
                output_tokens: usage.as_ref().map(|u| u.output_tokens),
                error: failure,
            })
            .await;
            let error = match parsed {
                Ok(parsed) => match parsed {
                    Ok((value, repairs)) => {
                        self.note_llm_health(true, None);
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
                    // An answer that could not be used still shows the LLM is up; no answer at all means down.
                    if !rejected {
                        self.note_llm_health(false, Some(&error));
                    }
                    return Err(format!("{} failed: {error}", llm.name()));
                }
            }
        }
    }
}

impl Engine {
    /// Store one LLM call attempt; a store error is reported and the loop goes on.
    pub(super) async fn record_llm_call(&self, call: &NewLlmCall<'_>) {
        if let Err(e) = self.state.record_llm_call(call).await {
            self.observer.step(&Step::Progress(format!("could not record the LLM call: {e:#}")));
        }
    }
}

/// One completion from `llm`, given up after `limit` (`llm.timeout_secs`) as a timeout.
pub(super) async fn complete_within(
    llm: &dyn LlmProvider,
    request: &CompletionRequest,
    limit: Duration,
) -> Result<Completion, PluginError> {
    match tokio::time::timeout(limit, llm.complete(request)).await {
        Ok(reply) => reply,
        Err(_) => Err(PluginError::Timeout(format!("no answer within {}s (llm.timeout_secs)", limit.as_secs()))),
    }
}
