//! Ask the LLM that Obra is configured with (`obra:plugin/llm`). Gates and rules use the LLM only through the
//! host, so the user picks the model in one place. Needs `llm = true` in the manifest.
//!
//! ```no_run
//! use obra_plugin_sdk::{llm, Message};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Review { score: f32, issues: Vec<String> }
//!
//! # fn main() -> Result<(), obra_plugin_sdk::PluginError> {
//! let answer = llm::ask("You review code.", "Is `fn add(a: i32, b: i32) -> i32 { a - b }` correct?")?;
//!
//! let schema = serde_json::json!({
//!     "type": "object",
//!     "properties": {"score": {"type": "number"}, "issues": {"type": "array", "items": {"type": "string"}}},
//!     "required": ["score", "issues"]
//! });
//! let review: Review = llm::complete_json(&schema, vec![Message::user("Review this diff: ...")])?;
//! # let _ = (answer, review.score, review.issues); Ok(()) }
//! ```

use serde::de::DeserializeOwned;

use crate::bindings::caps::obra::plugin::llm as wit;
use crate::http::excerpt;
use crate::{Completion, CompletionRequest, Message, PluginError, Role};

impl Message {
    /// A system message (instructions that frame the conversation).
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Role::System, content: content.into() }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }

    /// An assistant (model) message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: content.into() }
    }
}

impl CompletionRequest {
    /// A request for these messages, free text, provider defaults for temperature and length.
    pub fn new(messages: Vec<Message>) -> Self {
        CompletionRequest { messages, json_schema: None, temperature: None, max_tokens: None }
    }

    /// Ask for JSON that follows this JSON Schema.
    pub fn json_schema(mut self, schema: &serde_json::Value) -> Self {
        self.json_schema = Some(schema.to_string());
        self
    }

    /// Set the sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Limit the generated tokens.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
}

/// Send a completion request to the configured LLM.
pub fn complete(request: &CompletionRequest) -> Result<Completion, PluginError> {
    wit::complete(request)
}

/// Ask with a system prompt and one user message; returns the reply's text.
pub fn ask(system: &str, user: &str) -> Result<String, PluginError> {
    let mut messages = Vec::with_capacity(2);
    if !system.is_empty() {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(user));
    complete(&CompletionRequest::new(messages)).map(|c| c.text)
}

/// Ask for JSON following `schema` and parse it into `T`. A reply that does not parse into `T` is a
/// `retryable` error (models are often wrong once and right the next time) quoting the start of the reply.
pub fn complete_json<T: DeserializeOwned>(
    schema: &serde_json::Value,
    messages: Vec<Message>,
) -> Result<T, PluginError> {
    let completion = complete(&CompletionRequest::new(messages).json_schema(schema))?;
    parse_json_reply(&completion.text)
}

/// Parse a model's JSON reply into `T`; see [`complete_json`]. Tolerates a Markdown code fence around the JSON.
///
/// ```
/// let v: Vec<u32> = obra_plugin_sdk::llm::parse_json_reply("```json\n[1, 2]\n```").unwrap();
/// assert_eq!(v, [1, 2]);
/// assert!(obra_plugin_sdk::llm::parse_json_reply::<Vec<u32>>("sure! [1,").unwrap_err().is_retryable());
/// ```
pub fn parse_json_reply<T: DeserializeOwned>(text: &str) -> Result<T, PluginError> {
    let trimmed = strip_code_fence(text.trim());
    serde_json::from_str(trimmed)
        .map_err(|e| PluginError::retryable(format!("the model returned invalid JSON ({e}): {}", excerpt(text, 200))))
}

fn strip_code_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}
