//! The Ollama wire protocol, without host calls (unit-tested natively): the config, the `/api/chat` request
//! body, reading the NDJSON reply, and turning HTTP failures into the right `plugin-error`.

use std::collections::BTreeMap;

use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::{Completion, CompletionRequest, PluginError, Role, Usage};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The `ollama` provider's configuration (its section of Obra's config).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server, e.g. `http://127.0.0.1:11434` (the default). Its origin is what the plugin's HTTP grant
    /// (`config:base_url`) allows.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The model, e.g. `qwen2.5-coder:7b` (the default).
    #[serde(default = "default_model")]
    pub model: String,
    /// `options.num_ctx`: the context window in tokens. Default 8192 (Ollama's own default is small and
    /// silently truncates long prompts).
    #[serde(default = "default_num_ctx")]
    pub num_ctx: Option<u32>,
    /// `options.temperature` when the request does not set one; default: the model's.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// `keep_alive`: how long the server keeps the model loaded, e.g. `"10m"`, `300`, `-1`; default: the
    /// server's (5 minutes).
    #[serde(default)]
    pub keep_alive: Option<Value>,
    /// More `options` passed as they are (e.g. `{"top_p": 0.9, "seed": 42}`); default: none.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    /// Give up on one request after this many seconds; default: the plugin's call time limit.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Which endpoint to ask: `chat` (`/api/chat`, the default) or `generate` (`/api/generate`: the system
    /// messages become `system`, the rest one prompt — for models without a chat template).
    #[serde(default)]
    pub api: Api,
}

/// The Ollama endpoint a completion uses.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /api/chat` with the messages.
    #[default]
    Chat,
    /// `POST /api/generate` with `system` and `prompt`.
    Generate,
}

impl Api {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/api/chat",
            Api::Generate => "/api/generate",
        }
    }
}

fn default_base_url() -> String {
    "http://127.0.0.1:11434".into()
}

fn default_model() -> String {
    "qwen2.5-coder:7b".into()
}

fn default_num_ctx() -> Option<u32> {
    Some(8192)
}

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
            return Err(PluginError::fatal(format!(
                "invalid config: at `base_url`: `{}` is not an http:// or https:// URL",
                cfg.base_url
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(PluginError::fatal("invalid config: at `model`: empty"));
        }
        match &cfg.keep_alive {
            None | Some(Value::String(_)) | Some(Value::Number(_)) => {}
            Some(other) => {
                return Err(PluginError::fatal(format!(
                    "invalid config: at `keep_alive`: expected a duration like \"10m\" or a number of seconds, got {other}"
                )));
            }
        }
        Ok(cfg)
    }

    /// `base_url` + `path` (`/api/chat`, ...).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

/// The JSON body of `POST /api/chat` for this request.
pub fn chat_body(cfg: &Config, req: &CompletionRequest) -> Result<Value, PluginError> {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        })
        .collect();
    let mut options: Map<String, Value> = cfg.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(n) = cfg.num_ctx {
        options.insert("num_ctx".into(), json!(n));
    }
    if let Some(t) = req.temperature.or(cfg.temperature) {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    let mut body = match cfg.api {
        Api::Chat => json!({ "model": cfg.model, "messages": messages, "stream": true, "options": options }),
        Api::Generate => {
            let (system, rest): (Vec<&Value>, Vec<&Value>) = messages.iter().partition(|m| m["role"] == "system");
            let text = |ms: &[&Value], with_roles: bool| -> String {
                ms.iter()
                    .map(|m| {
                        let content = m["content"].as_str().unwrap_or("");
                        if with_roles && m["role"] == "assistant" {
                            format!("Assistant: {content}")
                        } else {
                            content.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n")
            };
            let mut body =
                json!({ "model": cfg.model, "prompt": text(&rest, true), "stream": true, "options": options });
            if !system.is_empty() {
                body["system"] = json!(text(&system, false));
            }
            body
        }
    };
    if let Some(schema) = &req.json_schema {
        let schema: Value = serde_json::from_str(schema)
            .map_err(|e| PluginError::fatal(format!("the request's JSON schema is not valid JSON: {e}")))?;
        if !schema.is_object() {
            return Err(PluginError::fatal("the request's JSON schema must be a JSON object"));
        }
        body["format"] = schema;
    }
    if let Some(k) = &cfg.keep_alive {
        body["keep_alive"] = k.clone();
    }
    Ok(body)
}

/// The error for a non-2xx answer, from its status, `retry-after` and body (usually `{"error": "..."}`).
pub fn http_error(cfg: &Config, path: &str, status: u16, retry_after_ms: Option<u64>, body: &str) -> PluginError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| excerpt(body, 300));
    let url = cfg.url(path);
    match status {
        404 if message.contains("not found") && message.contains("model") => PluginError::fatal(format!(
            "Ollama at {} does not have the model `{}` ({message}): run `ollama pull {}`",
            cfg.base_url, cfg.model, cfg.model
        )),
        404 => PluginError::fatal(format!(
            "{url} answered HTTP 404 ({message}): is `base_url` the address of an Ollama server?"
        )),
        429 => PluginError::rate_limited(
            format!("Ollama at {} is rate limiting (HTTP 429): {message}", cfg.base_url),
            retry_after_ms,
        ),
        500..=599 => PluginError::retryable(format!("{url} answered HTTP {status}: {message}")),
        _ => PluginError::fatal(format!("{url} refused the request (HTTP {status}): {message}")),
    }
}

/// The error for a request that got no answer at all.
pub fn send_error(cfg: &Config, method: &str, path: &str, err: PluginError) -> PluginError {
    let url = cfg.url(path);
    match err {
        PluginError::Retryable(msg) => {
            PluginError::retryable(format!("cannot reach Ollama at {url}: {msg} (is `ollama serve` running there?)"))
        }
        PluginError::Denied(_) => err,
        other => other.context(format!("{method} {url}")),
    }
}

/// Reads the NDJSON lines of a streamed `/api/chat` reply.
#[derive(Debug, Default)]
pub struct ChatStream {
    text: String,
    pieces: u64,
    bad_lines: u64,
    first_bad: Option<String>,
    done: Option<Map<String, Value>>,
}

impl ChatStream {
    /// A reader with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one line. `Err` for an `{"error": ...}` object (Ollama reports failures mid-stream this way, with
    /// HTTP 200): retryable, with its text.
    pub fn feed(&mut self, line: &str) -> Result<(), PluginError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            _ => {
                self.bad_lines += 1;
                if self.first_bad.is_none() {
                    self.first_bad = Some(excerpt(line, 120));
                }
                return Ok(());
            }
        };
        if let Some(err) = obj.get("error") {
            let msg = err.as_str().map(str::to_string).unwrap_or_else(|| err.to_string());
            return Err(PluginError::retryable(format!("Ollama reported an error in the middle of its reply: {msg}")));
        }
        let piece =
            obj.get("message").and_then(|m| m.get("content")).or_else(|| obj.get("response")).and_then(Value::as_str);
        if let Some(piece) = piece {
            self.text.push_str(piece);
            self.pieces += 1;
        }
        if obj.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = Some(obj);
        }
        Ok(())
    }

    /// How many content pieces were read.
    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// The completion, once the stream has ended. `json_wanted`: a schema was requested, so the text must be
    /// JSON.
    pub fn finish(self, cfg: &Config, json_wanted: bool) -> Result<Completion, PluginError> {
        let Some(done) = self.done else {
            let mut msg = format!(
                "the reply from {} ended before its final `done: true` object ({} bytes of content",
                cfg.url(cfg.api.path()),
                self.text.len()
            );
            if let Some(bad) = &self.first_bad {
                msg.push_str(&format!(", {} line(s) not JSON, first: {bad}", self.bad_lines));
            }
            msg.push(')');
            return Err(PluginError::retryable(msg));
        };
        let done_reason = done.get("done_reason").and_then(Value::as_str).unwrap_or("");
        if json_wanted && let Err(e) = serde_json::from_str::<Value>(&self.text) {
            let cut = if done_reason == "length" {
                " (the reply was cut off at the token limit: raise `num_ctx`, or the request's max-tokens)"
            } else {
                ""
            };
            return Err(PluginError::retryable(format!(
                "the model returned invalid JSON although a JSON schema was requested ({e}){cut}: {}",
                excerpt(&self.text, 200)
            )));
        }
        let n = |k: &str| done.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok(Completion {
            model: done.get("model").and_then(Value::as_str).unwrap_or(&cfg.model).to_string(),
            usage: Usage {
                input_tokens: n("prompt_eval_count"),
                output_tokens: n("eval_count"),
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: None,
            },
            duration_ms: n("total_duration") / 1_000_000,
            text: self.text,
        })
    }
}

/// The model names of a `/api/tags` answer.
pub fn model_names(tags: &Value) -> Vec<String> {
    tags.get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("name").or_else(|| m.get("model")).and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Whether `wanted` is among `names`; a name without a tag means `:latest`.
pub fn has_model(names: &[String], wanted: &str) -> bool {
    let norm = |s: &str| {
        if s.contains(':') { s.to_string() } else { format!("{s}:latest") }
    };
    let wanted = norm(wanted);
    names.iter().any(|n| norm(n) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use obra_plugin_sdk::Message;

    fn cfg() -> Config {
        Config::parse("{}").unwrap()
    }

    #[test]
    fn defaults_and_config_errors() {
        let c = cfg();
        assert_eq!(c.base_url, "http://127.0.0.1:11434");
        assert_eq!(c.model, "qwen2.5-coder:7b");
        assert_eq!(c.num_ctx, Some(8192));
        assert_eq!(c.url("/api/chat"), "http://127.0.0.1:11434/api/chat");
        for (json, key) in [
            (r#"{"base_url": "127.0.0.1:11434"}"#, "base_url"),
            (r#"{"num_ctx": "big"}"#, "num_ctx"),
            (r#"{"keep_alive": [1]}"#, "keep_alive"),
            (r#"{"model": ""}"#, "model"),
            (r#"{"temprature": 0.2}"#, "temprature"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert_eq!(e.kind(), "fatal");
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
    }

    #[test]
    fn chat_body_carries_schema_options_and_keep_alive() {
        let c = Config::parse(
            r#"{"base_url":"http://h:1/","model":"m","num_ctx":4096,"temperature":0.1,"keep_alive":"10m","options":{"seed":7}}"#,
        )
        .unwrap();
        let mut req = CompletionRequest::new(vec![Message::system("s"), Message::user("u")])
            .json_schema(&json!({"type": "object"}));
        req.max_tokens = Some(100);
        let b = chat_body(&c, &req).unwrap();
        assert_eq!(b["model"], "m");
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"][0], json!({"role": "system", "content": "s"}));
        assert_eq!(b["messages"][1]["role"], "user");
        assert_eq!(b["format"], json!({"type": "object"}));
        assert_eq!(b["options"]["num_ctx"], 4096);
        assert_eq!(b["options"]["seed"], 7);
        assert_eq!(b["options"]["num_predict"], 100);
        assert!((b["options"]["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
        assert_eq!(b["keep_alive"], "10m");
        assert_eq!(c.url("/api/chat"), "http://h:1/api/chat");

        let free = chat_body(&cfg(), &CompletionRequest::new(vec![]).temperature(0.5)).unwrap();
        assert!(free.get("format").is_none());
        assert!(free.get("keep_alive").is_none());
        assert_eq!(free["options"]["temperature"], 0.5);

        let bad = CompletionRequest { json_schema: Some("{nope".into()), ..CompletionRequest::new(vec![]) };
        assert_eq!(chat_body(&cfg(), &bad).unwrap_err().kind(), "fatal");
    }

    fn stream(lines: &[&str]) -> Result<ChatStream, PluginError> {
        let mut s = ChatStream::new();
        for l in lines {
            s.feed(l)?;
        }
        Ok(s)
    }

    const DONE: &str = r#"{"model":"qwen2.5-coder:7b","created_at":"t","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":2500000000,"load_duration":1,"prompt_eval_count":26,"prompt_eval_duration":1,"eval_count":3,"eval_duration":1}"#;

    #[test]
    fn streamed_reply_is_concatenated_with_counts_from_the_final_object() {
        let s = stream(&[
            r#"{"model":"qwen2.5-coder:7b","message":{"role":"assistant","content":"{\"ok\":"},"done":false}"#,
            "",
            r#"{"model":"qwen2.5-coder:7b","message":{"role":"assistant","content":" true}"},"done":false}"#,
            DONE,
        ])
        .unwrap();
        assert_eq!(s.pieces(), 3);
        let c = s.finish(&cfg(), true).unwrap();
        assert_eq!(c.text, "{\"ok\": true}");
        assert_eq!(c.model, "qwen2.5-coder:7b");
        assert_eq!(c.usage.input_tokens, 26);
        assert_eq!(c.usage.output_tokens, 3);
        assert_eq!(c.duration_ms, 2500);
    }

    #[test]
    fn error_mid_stream_is_retryable_with_its_text() {
        let e = stream(&[
            r#"{"message":{"content":"partial"},"done":false}"#,
            r#"{"error":"llama runner process has terminated"}"#,
        ])
        .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(e.kind(), "retryable");
        assert!(e.message().contains("llama runner process has terminated"));
    }

    #[test]
    fn malformed_json_reply_is_retryable_with_an_excerpt() {
        let s = stream(&[
            r#"{"message":{"content":"{\"decision\": \"PROCEED\", \"reason\": \"the change looks"},"done":false}"#,
            r#"{"done":true,"done_reason":"length","eval_count":5}"#,
        ])
        .unwrap();
        let e = s.finish(&cfg(), true).unwrap_err();
        assert_eq!(e.kind(), "retryable");
        assert!(e.message().contains("invalid JSON"), "{}", e.message());
        assert!(e.message().contains("cut off"), "{}", e.message());
        assert!(e.message().contains("\"decision\": \"PROCEED\""), "{}", e.message());
        // Free text is fine without a schema.
        let s = stream(&[r#"{"message":{"content":"hello"},"done":false}"#, DONE]).unwrap();
        assert_eq!(s.finish(&cfg(), false).unwrap().text, "hello");
    }

    #[test]
    fn stream_without_final_object_is_retryable() {
        let s = stream(&[r#"{"message":{"content":"hi"},"done":false}"#, "garbage"]).unwrap();
        let e = s.finish(&cfg(), false).unwrap_err();
        assert_eq!(e.kind(), "retryable");
        assert!(e.message().contains("first: garbage"), "{}", e.message());
    }

    #[test]
    fn http_errors_are_classified() {
        let c = cfg();
        let e = http_error(
            &c,
            "/api/chat",
            404,
            None,
            r#"{"error":"model \"qwen2.5-coder:7b\" not found, try pulling it first"}"#,
        );
        assert_eq!(e.kind(), "fatal");
        assert!(e.message().contains("run `ollama pull qwen2.5-coder:7b`"), "{}", e.message());
        let e = http_error(&c, "/api/chat", 404, None, "404 page not found");
        assert_eq!(e.kind(), "fatal");
        assert!(e.message().contains("base_url"), "{}", e.message());
        let e = http_error(&c, "/api/chat", 429, Some(3000), r#"{"error":"busy"}"#);
        assert_eq!(e.retry_after_ms(), Some(3000));
        assert_eq!(e.kind(), "rate-limited");
        let e = http_error(&c, "/api/chat", 503, None, r#"{"error":"loading"}"#);
        assert_eq!(e.kind(), "retryable");
        assert!(e.message().contains("HTTP 503: loading"));
        let e = http_error(&c, "/api/chat", 400, None, r#"{"error":"invalid format"}"#);
        assert_eq!(e.kind(), "fatal");
    }

    #[test]
    fn connection_failures_name_the_url() {
        let e = send_error(&cfg(), "POST", "/api/chat", PluginError::retryable("connection refused"));
        assert_eq!(e.kind(), "retryable");
        assert!(
            e.message().contains("cannot reach Ollama at http://127.0.0.1:11434/api/chat: connection refused"),
            "{}",
            e.message()
        );
        let d = send_error(&cfg(), "POST", "/api/chat", PluginError::denied("not granted"));
        assert_eq!(d.message(), "not granted");
    }

    #[test]
    fn model_lookup() {
        let tags =
            json!({"models": [{"name": "qwen2.5-coder:7b", "model": "qwen2.5-coder:7b"}, {"model": "llama3:latest"}]});
        let names = model_names(&tags);
        assert_eq!(names, ["qwen2.5-coder:7b", "llama3:latest"]);
        assert!(has_model(&names, "llama3"));
        assert!(has_model(&names, "qwen2.5-coder:7b"));
        assert!(!has_model(&names, "qwen2.5-coder"));
    }

    #[test]
    fn generate_takes_system_and_prompt_and_its_stream_reads_response() {
        let c = Config::parse(r#"{"api": "generate", "keep_alive": "1m", "num_ctx": 2048}"#).unwrap();
        let req = CompletionRequest {
            messages: vec![
                Message { role: Role::System, content: "Be terse.".into() },
                Message { role: Role::User, content: "Rate it.".into() },
            ],
            json_schema: Some(r#"{"type":"object"}"#.into()),
            temperature: None,
            max_tokens: None,
        };
        let body = chat_body(&c, &req).unwrap();
        assert_eq!(body["system"], "Be terse.");
        assert_eq!(body["prompt"], "Rate it.");
        assert!(body.get("messages").is_none());
        assert_eq!((body["keep_alive"].as_str(), body["options"]["num_ctx"].as_u64()), (Some("1m"), Some(2048)));
        assert_eq!(body["format"]["type"], "object");
        assert_eq!(c.api.path(), "/api/generate");
        let mut s = ChatStream::new();
        s.feed(r#"{"model":"m","response":"{\"a\"","done":false}"#).unwrap();
        s.feed(r#"{"model":"m","response":": 1}","done":false}"#).unwrap();
        s.feed(
            r#"{"model":"m","response":"","done":true,"prompt_eval_count":5,"eval_count":2,"total_duration":3000000}"#,
        )
        .unwrap();
        let done = s.finish(&c, true).unwrap();
        assert_eq!((done.text.as_str(), done.usage.input_tokens, done.duration_ms), ("{\"a\": 1}", 5, 3));
    }
}
