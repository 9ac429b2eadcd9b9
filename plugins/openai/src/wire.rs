//! The OpenAI chat-completions wire protocol, without host calls (unit-tested natively): the config, the
//! request body, reading the SSE stream or the plain reply, and turning HTTP failures into the right
//! `plugin-error`.

use std::collections::BTreeMap;

use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::{Completion, CompletionRequest, PluginError, Role, Usage, sse_data};
use serde::Deserialize;
use serde_json::{Value, json};

/// How the provider asks for JSON when a request has a schema.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JsonMode {
    /// `response_format: {"type": "json_schema", ...}` (OpenAI, vLLM, LM Studio, llama.cpp).
    #[default]
    JsonSchema,
    /// `response_format: {"type": "json_object"}` with the schema in the system message (older servers).
    JsonObject,
    /// No `response_format`: the schema goes in the system message only.
    None,
}

/// The `openai` provider's configuration (its section of Obra's config, `llms.openai`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API's base URL including `/v1`, e.g. `http://127.0.0.1:8000/v1` (vLLM's default, the default here)
    /// or `https://api.openai.com/v1`. Its origin is what the plugin's HTTP grant (`config:base_url`) allows.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The model, as the server names it.
    #[serde(default)]
    pub model: String,
    /// The environment variable holding the API key, sent as `Authorization: Bearer` (by the host: the plugin
    /// never sees the key). None for servers without authentication (local vLLM, llama.cpp).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sampling temperature when the request does not set one; default: the server's.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// `max_tokens` when the request does not set one; default: the server's.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stream the reply (SSE); default true.
    #[serde(default = "default_true")]
    pub stream: bool,
    /// How to ask for JSON when the request has a schema.
    #[serde(default)]
    pub json_mode: JsonMode,
    /// More headers (e.g. `HTTP-Referer` for OpenRouter); `{env:NAME}` in a value is replaced by the host.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Give up on one request after this many seconds; default: the plugin's call time limit.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_base_url() -> String {
    "http://127.0.0.1:8000/v1".into()
}

fn default_true() -> bool {
    true
}

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
            return Err(PluginError::fatal(format!(
                "invalid config: at `base_url`: `{}` is not an http:// or https:// URL (e.g. http://127.0.0.1:8000/v1)",
                cfg.base_url
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(PluginError::fatal(
                "invalid config: at `model`: not set; name the model the server serves (GET /v1/models lists them)",
            ));
        }
        if let Some(name) = &cfg.api_key_env
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(PluginError::fatal(format!(
                "invalid config: at `api_key_env`: {name:?} is not an environment variable name (e.g. OPENAI_API_KEY)"
            )));
        }
        if cfg.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(PluginError::fatal("invalid config: at `temperature`: must be between 0 and 2"));
        }
        Ok(cfg)
    }

    /// `base_url` + `path` (`/chat/completions`, `/models`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// The request headers: the API key as a host-filled placeholder, and the configured ones.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(name) = &self.api_key_env {
            headers.push(("Authorization".into(), format!("Bearer {{env:{name}}}")));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        headers
    }

    /// Where a 401/403 says to look.
    fn key_hint(&self) -> String {
        match &self.api_key_env {
            Some(name) => format!("check the API key in the environment variable {name} (llms.openai.api_key_env)"),
            None => "the server wants an API key: set llms.openai.api_key_env to the variable that holds it".into(),
        }
    }
}

/// The JSON body of `POST {base_url}/chat/completions` for this request.
pub fn chat_body(cfg: &Config, req: &CompletionRequest) -> Result<Value, PluginError> {
    let schema: Option<Value> = match &req.json_schema {
        None => None,
        Some(text) => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| PluginError::fatal(format!("the request's JSON schema is not valid JSON: {e}")))?;
            if !v.is_object() {
                return Err(PluginError::fatal("the request's JSON schema must be a JSON object"));
            }
            Some(v)
        }
    };
    let mut messages: Vec<Value> = Vec::new();
    if let (Some(schema), JsonMode::JsonObject | JsonMode::None) = (&schema, cfg.json_mode) {
        messages.push(json!({"role": "system", "content": format!(
            "Answer with one JSON object and nothing else. It must follow this JSON Schema:\n{schema}"
        )}));
    }
    for m in &req.messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": m.content}));
    }
    let mut body = json!({ "model": cfg.model, "messages": messages, "stream": cfg.stream });
    if cfg.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = req.temperature.or(cfg.temperature) {
        body["temperature"] = json!(t);
    }
    if let Some(n) = req.max_tokens.or(cfg.max_tokens) {
        body["max_tokens"] = json!(n);
    }
    match (schema, cfg.json_mode) {
        (Some(schema), JsonMode::JsonSchema) => {
            body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "obra_reply", "schema": schema, "strict": false}});
        }
        (Some(_), JsonMode::JsonObject) => body["response_format"] = json!({"type": "json_object"}),
        _ => {}
    }
    Ok(body)
}

/// OpenAI's error message in a body (`{"error": {"message": ...}}`, or `{"error": "..."}`, or the raw text).
fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    match err {
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => v
            .as_ref()
            .and_then(|v| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| excerpt(body, 300)),
    }
}

/// The error for a non-2xx answer, from its status, `retry-after` and body.
pub fn http_error(cfg: &Config, path: &str, status: u16, retry_after_ms: Option<u64>, body: &str) -> PluginError {
    let message = error_message(body);
    let url = cfg.url(path);
    match status {
        401 | 403 => {
            PluginError::fatal(format!("{url} refused the request (HTTP {status}: {message}): {}", cfg.key_hint()))
        }
        404 if message.to_ascii_lowercase().contains("model") => PluginError::fatal(format!(
            "the server at {} does not serve the model `{}` ({message}): check llms.openai.model against GET {}",
            cfg.base_url,
            cfg.model,
            cfg.url("/models")
        )),
        404 => PluginError::fatal(format!(
            "{url} answered HTTP 404 ({message}): is `base_url` an OpenAI-compatible API, ending in /v1?"
        )),
        400 if message.contains("response_format") || message.contains("json_schema") => PluginError::fatal(format!(
            "{url} does not accept the JSON output request ({message}): set llms.openai.json_mode to json_object or none"
        )),
        408 => PluginError::retryable(format!("{url} timed out the request (HTTP 408): {message}")),
        429 => PluginError::rate_limited(format!("{url} is rate limiting (HTTP 429): {message}"), retry_after_ms),
        500..=599 => PluginError::retryable(format!("{url} answered HTTP {status}: {message}")),
        _ => PluginError::fatal(format!("{url} refused the request (HTTP {status}): {message}")),
    }
}

/// The error for a request that got no answer at all.
pub fn send_error(cfg: &Config, path: &str, err: PluginError) -> PluginError {
    let url = cfg.url(path);
    match err {
        PluginError::Retryable(msg) => PluginError::retryable(format!(
            "cannot reach the OpenAI-compatible server at {url}: {msg} (is it running, and is base_url right?)"
        )),
        PluginError::Timeout(msg) => PluginError::timeout(format!("{url} did not answer in time: {msg}")),
        other => other,
    }
}

/// What a reply carried.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reply {
    /// The content.
    pub text: String,
    /// The model that answered.
    pub model: Option<String>,
    /// Prompt and completion tokens.
    pub usage: Option<(u64, u64)>,
    /// Why generation stopped (`stop`, `length`, ...).
    pub finish_reason: Option<String>,
}

/// Reads the Server-Sent Events of a streamed reply, line by line.
#[derive(Debug, Default)]
pub struct SseReader {
    reply: Reply,
    /// Whether `data: [DONE]` arrived.
    pub done: bool,
    /// Content chunks read.
    pub pieces: u64,
}

impl SseReader {
    /// A reader with nothing read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one line: `data:` lines carry chunks; comments (`:`), `event:` and blank lines are skipped. A chunk
    /// that is not JSON, or an `error` object, is a retryable error naming what came.
    pub fn feed(&mut self, line: &str) -> Result<(), PluginError> {
        let Some(data) = sse_data(line.trim_end()) else { return Ok(()) };
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            PluginError::retryable(format!("the server sent a malformed stream chunk ({e}): {}", excerpt(data, 120)))
        })?;
        if let Some(err) = chunk.get("error") {
            let msg = err.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| err.to_string());
            return Err(PluginError::retryable(format!(
                "the server reported an error in the middle of its reply: {msg}"
            )));
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.reply.model = Some(model.to_string());
        }
        if let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) {
            if let Some(piece) = choice.pointer("/delta/content").and_then(Value::as_str) {
                self.reply.text.push_str(piece);
                self.pieces += 1;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.reply.finish_reason = Some(reason.to_string());
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.reply.usage = Some(usage_of(u));
        }
        Ok(())
    }

    /// The reply once the stream ended: an error when it ended before `[DONE]` and without a finish reason.
    pub fn finish(self) -> Result<Reply, PluginError> {
        if !self.done && self.reply.finish_reason.is_none() {
            return Err(PluginError::retryable(format!(
                "the server's stream ended early, after {} chunk(s) and before [DONE]",
                self.pieces
            )));
        }
        Ok(self.reply)
    }
}

fn usage_of(u: &Value) -> (u64, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    (n("prompt_tokens"), n("completion_tokens"))
}

/// Read a non-streamed `chat.completion`.
pub fn parse_completion(body: &str) -> Result<Reply, PluginError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| PluginError::retryable(format!("the server's reply is not JSON ({e}): {}", excerpt(body, 120))))?;
    let choice =
        v.get("choices").and_then(Value::as_array).and_then(|c| c.first()).ok_or_else(|| {
            PluginError::retryable(format!("the server's reply has no choices: {}", excerpt(body, 120)))
        })?;
    Ok(Reply {
        text: choice.pointer("/message/content").and_then(Value::as_str).unwrap_or("").to_string(),
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        usage: v.get("usage").filter(|u| u.is_object()).map(usage_of),
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
    })
}

/// The completion for a reply: with a schema, the text must be JSON (else a retryable error: the next attempt
/// may do better); a reply cut at `max_tokens` says so.
pub fn completion(cfg: &Config, reply: Reply, wanted_json: bool, duration_ms: u64) -> Result<Completion, PluginError> {
    let text = reply.text.trim().to_string();
    if wanted_json && serde_json::from_str::<Value>(&text).is_err() {
        let cut = if reply.finish_reason.as_deref() == Some("length") { " (cut at max_tokens)" } else { "" };
        return Err(PluginError::retryable(format!(
            "the model was asked for JSON but answered something else{cut}: {}",
            excerpt(&text, 160)
        )));
    }
    let (input, output) = reply.usage.unwrap_or((0, 0));
    Ok(Completion {
        text,
        model: reply.model.unwrap_or_else(|| cfg.model.clone()),
        usage: Usage { input_tokens: input, output_tokens: output, ..Usage::default() },
        duration_ms,
    })
}

/// The model ids of a `GET /models` reply.
pub fn model_ids(v: &Value) -> Vec<String> {
    v.get("data")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use obra_plugin_sdk::Message;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!(r#"{{"model": "qwen", {extra} "base_url": "http://h:8000/v1"}}"#)).unwrap()
    }

    fn request(schema: Option<&str>) -> CompletionRequest {
        CompletionRequest {
            messages: vec![Message { role: Role::User, content: "hi".into() }],
            json_schema: schema.map(str::to_string),
            temperature: None,
            max_tokens: Some(50),
        }
    }

    #[test]
    fn the_body_asks_for_a_stream_with_usage_and_a_json_schema() {
        let body = chat_body(&cfg(""), &request(Some(r#"{"type":"object"}"#))).unwrap();
        assert_eq!(body["model"], "qwen");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["schema"]["type"], "object");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        let obj = chat_body(&cfg(r#""json_mode": "json_object", "stream": false,"#), &request(Some("{}"))).unwrap();
        assert_eq!(obj["response_format"]["type"], "json_object");
        assert!(obj["messages"][0]["content"].as_str().unwrap().contains("JSON Schema"));
        assert!(obj.get("stream_options").is_none());
        assert!(chat_body(&cfg(""), &request(Some("[1]"))).is_err());
    }

    #[test]
    fn the_api_key_is_a_placeholder_the_host_fills() {
        let c = cfg(r#""api_key_env": "OPENAI_API_KEY", "headers": {"X-Title": "obra"},"#);
        assert_eq!(c.headers()[0], ("Authorization".into(), "Bearer {env:OPENAI_API_KEY}".into()));
        assert_eq!(c.headers()[1], ("X-Title".into(), "obra".into()));
        assert!(cfg("").headers().is_empty());
    }

    #[test]
    fn sse_chunks_build_the_reply_with_usage() {
        let mut r = SseReader::new();
        for line in [
            ": keep-alive",
            r#"data: {"model":"qwen-72b","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            "",
            r#"data: {"choices":[{"delta":{"content":"{\"a\":"}}]}"#,
            r#"data: {"choices":[{"delta":{"content":" 1}"},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#,
            "data: [DONE]",
        ] {
            r.feed(line).unwrap();
        }
        let reply = r.finish().unwrap();
        assert_eq!(reply.text, "{\"a\": 1}");
        assert_eq!(reply.usage, Some((12, 5)));
        assert_eq!(reply.model.as_deref(), Some("qwen-72b"));
        let c = completion(&cfg(""), reply, true, 42).unwrap();
        assert_eq!((c.usage.input_tokens, c.usage.output_tokens, c.duration_ms), (12, 5, 42));
    }

    #[test]
    fn broken_streams_are_retryable_and_say_what_came() {
        let mut r = SseReader::new();
        let e = r.feed("data: {\"choices\": [{").unwrap_err();
        assert_eq!(e.kind(), "retryable");
        assert!(e.message().contains("malformed stream chunk"), "{}", e.message());
        let e = SseReader::new().feed(r#"data: {"error": {"message": "engine dead"}}"#).unwrap_err();
        assert!(e.message().contains("engine dead"));
        let mut early = SseReader::new();
        early.feed(r#"data: {"choices":[{"delta":{"content":"par"}}]}"#).unwrap();
        assert!(early.finish().unwrap_err().message().contains("ended early"));
    }

    #[test]
    fn http_failures_are_classified() {
        let c = cfg(r#""api_key_env": "OPENAI_API_KEY","#);
        let body = r#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#;
        let e = http_error(&c, "/chat/completions", 401, None, body);
        assert_eq!(e.kind(), "fatal");
        assert!(e.message().contains("OPENAI_API_KEY") && e.message().contains("Incorrect API key"));
        assert_eq!(http_error(&c, "/x", 403, None, "{}").kind(), "fatal");
        let e = http_error(&c, "/x", 429, Some(2000), r#"{"error": {"message": "slow down"}}"#);
        assert_eq!((e.kind(), e.retry_after_ms()), ("rate-limited", Some(2000)), "{e:?}");
        assert_eq!(http_error(&c, "/x", 503, None, "busy").kind(), "retryable");
        let e = http_error(&c, "/x", 404, None, r#"{"error": {"message": "The model `qwen` does not exist"}}"#);
        assert!(e.message().contains("llms.openai.model"), "{}", e.message());
        let e = http_error(&c, "/x", 400, None, r#"{"error": {"message": "response_format is not supported"}}"#);
        assert!(e.message().contains("json_mode"), "{}", e.message());
        let e = send_error(&c, "/x", PluginError::retryable("connection refused"));
        assert!(e.message().contains("is it running"), "{}", e.message());
    }

    #[test]
    fn non_json_when_json_was_wanted_is_retryable_and_plain_replies_parse() {
        let reply = parse_completion(
            r#"{"model":"m","choices":[{"message":{"content":"Sure!"},"finish_reason":"length"}],
                "usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        )
        .unwrap();
        let e = completion(&cfg(""), reply.clone(), true, 1).unwrap_err();
        assert!(e.message().contains("cut at max_tokens"), "{}", e.message());
        assert_eq!(completion(&cfg(""), reply, false, 1).unwrap().text, "Sure!");
        assert!(parse_completion("<html>").is_err());
        assert_eq!(model_ids(&json!({"data": [{"id": "a"}, {"id": "b"}]})), ["a", "b"]);
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (json, key) in [
            (r#"{"base_url": "h:1", "model": "m"}"#, "base_url"),
            (r#"{}"#, "model"),
            (r#"{"model": "m", "api_key_env": "BAD NAME"}"#, "api_key_env"),
            (r#"{"model": "m", "temperature": 3}"#, "temperature"),
            (r#"{"model": "m", "json_mode": "xml"}"#, "json_mode"),
            (r#"{"model": "m", "modle": "x"}"#, "modle"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
    }
}
