//! A scripted fake of the Ollama HTTP API (<https://github.com/ollama/ollama/blob/main/docs/api.md>).
//!
//! Endpoints:
//! - `POST /api/chat` and `POST /api/generate`: each takes the next [`OllamaReply`] of the script. With
//!   `"stream": true` or no `stream` field (Ollama streams by default) the reply is NDJSON
//!   (`application/x-ndjson`): one object per piece of content (`message.content` for chat, `response` for
//!   generate, `done: false`) and a final object with `done: true`, `done_reason`, `total_duration`,
//!   `load_duration`, `prompt_eval_count`, `prompt_eval_duration`, `eval_count`, `eval_duration` (durations in
//!   nanoseconds), `model`, `created_at` (and `context` for generate). With `"stream": false`, one JSON object
//!   holding the whole content and the same statistics.
//!   As in Ollama, a request with no messages (chat) or an empty prompt (generate) only loads the model
//!   (`done_reason: "load"`, or `"unload"` with `keep_alive: 0`) and does not consume the script.
//!   Request validation as in Ollama: missing body, invalid JSON or missing `model` give HTTP 400; `format`
//!   must be absent, `null`, `""`, `"json"` or a JSON Schema object (else HTTP 400
//!   `invalid format: expected "json" or a valid JSON schema`). `format`, `options` (e.g. `num_ctx`) and
//!   `keep_alive` are recorded with the request body; read them with [`RecordedRequest::pointer`].
//! - `GET /api/tags`: the models set with [`FakeOllama::set_models`] (default: `qwen2.5-coder:7b`).
//! - `GET /api/version`: `{"version": OLLAMA_VERSION}`.
//! - `GET /` or `HEAD /`: `Ollama is running`.
//! - anything else: HTTP 404 `404 page not found` (text/plain), as Ollama's router answers.
//!
//! Errors are `{"error": "..."}`, with the HTTP status, or as a line in the middle of a stream with HTTP 200.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::server::{self, Body, RecordedRequest, Server};

/// The version `GET /api/version` reports.
pub const OLLAMA_VERSION: &str = "0.12.6";

const JSON_CT: &str = "application/json; charset=utf-8";
const NDJSON_CT: &str = "application/x-ndjson";

#[derive(Debug, Clone)]
enum Kind {
    Content(String),
    ErrorMidStream { before: String, message: String },
    Error { status: u16, message: String },
    ModelNotFound,
}

/// One scripted answer of the fake Ollama server to a `POST /api/chat` or `POST /api/generate`.
#[derive(Debug, Clone)]
pub struct OllamaReply {
    kind: Kind,
    delay: Duration,
    chunk_delay: Duration,
    done_reason: String,
    counts: Option<(u64, u64)>,
}

impl OllamaReply {
    fn new(kind: Kind) -> OllamaReply {
        OllamaReply {
            kind,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            done_reason: "stop".into(),
            counts: None,
        }
    }

    /// The model answers `content` (streamed as small pieces when the request streams).
    pub fn text(content: impl Into<String>) -> OllamaReply {
        OllamaReply::new(Kind::Content(content.into()))
    }

    /// The model answers with this JSON value, serialised (what a model constrained by `format` produces).
    pub fn json(value: &Value) -> OllamaReply {
        OllamaReply::text(value.to_string())
    }

    /// The model answers content that is NOT valid JSON although JSON was asked for: a truncated object, as
    /// a model cut off by `num_predict` produces. Use [`OllamaReply::text`] for other broken shapes.
    pub fn malformed_json() -> OllamaReply {
        OllamaReply::text("{\"decision\": \"PROCEED\", \"confidence\": 0.9, \"reason\": \"the change looks")
            .done_reason("length")
    }

    /// HTTP 200 and a stream that carries `before` in content pieces and then the line
    /// `{"error": message}` and ends, as Ollama reports a failure after the stream has started (e.g. the
    /// runner crashed). A non-streamed request gets HTTP 500 `{"error": message}` instead.
    pub fn error_mid_stream(before: impl Into<String>, message: impl Into<String>) -> OllamaReply {
        OllamaReply::new(Kind::ErrorMidStream { before: before.into(), message: message.into() })
    }

    /// HTTP `status` with `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> OllamaReply {
        OllamaReply::new(Kind::Error { status, message: message.into() })
    }

    /// HTTP 500 `{"error": "..."}`, as when the model runner fails.
    pub fn server_error() -> OllamaReply {
        OllamaReply::error(500, "llama runner process has terminated: signal: killed")
    }

    /// HTTP 404 `{"error": "model \"<requested model>\" not found, try pulling it first"}`.
    pub fn model_not_found() -> OllamaReply {
        OllamaReply::new(Kind::ModelNotFound)
    }

    /// Wait this long before sending the response headers (a slow or loading model).
    pub fn delay(mut self, delay: Duration) -> OllamaReply {
        self.delay = delay;
        self
    }

    /// Wait this long before each streamed line (a slow generation).
    pub fn chunk_delay(mut self, delay: Duration) -> OllamaReply {
        self.chunk_delay = delay;
        self
    }

    /// The final object's `done_reason` (default `"stop"`; `"length"` when cut off by `num_predict`).
    pub fn done_reason(mut self, reason: impl Into<String>) -> OllamaReply {
        self.done_reason = reason.into();
        self
    }

    /// The final object's `prompt_eval_count` and `eval_count` (default: estimated from the sizes of the
    /// prompt and of the content).
    pub fn eval_counts(mut self, prompt_eval_count: u64, eval_count: u64) -> OllamaReply {
        self.counts = Some((prompt_eval_count, eval_count));
        self
    }
}

/// A model listed by `GET /api/tags`.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaModel {
    /// The model name with its tag, e.g. `qwen2.5-coder:7b` (used for both `name` and `model`).
    pub name: String,
    /// Size on disk in bytes.
    pub size: u64,
    /// The manifest digest: 64 hex digits, no `sha256:` prefix (as `/api/tags` shows it).
    pub digest: String,
    /// `details.family`, e.g. `qwen2`.
    pub family: String,
    /// `details.parameter_size`, e.g. `7.6B`.
    pub parameter_size: String,
    /// `details.quantization_level`, e.g. `Q4_K_M`.
    pub quantization_level: String,
    /// `modified_at`, RFC 3339.
    pub modified_at: String,
}

impl OllamaModel {
    /// A model named `name` with plausible details (a 7.6B Q4_K_M gguf of the qwen2 family).
    pub fn new(name: impl Into<String>) -> OllamaModel {
        let name = name.into();
        // A stable fake digest derived from the name.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let digest: String = (0..64)
            .map(|i| {
                let b = name.as_bytes().get(i % name.len().max(1)).copied().unwrap_or(0);
                h = (h ^ u64::from(b) ^ i as u64).wrapping_mul(0x0100_0000_01b3);
                char::from_digit(((h >> 32) % 16) as u32, 16).unwrap_or('0')
            })
            .collect();
        OllamaModel {
            name,
            size: 4_683_087_332,
            digest,
            family: "qwen2".into(),
            parameter_size: "7.6B".into(),
            quantization_level: "Q4_K_M".into(),
            modified_at: "2025-09-18T10:11:12.123456789Z".into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": self.family,
                "families": [self.family],
                "parameter_size": self.parameter_size,
                "quantization_level": self.quantization_level,
            }
        })
    }
}

struct State {
    script: VecDeque<OllamaReply>,
    /// Replies kept for requests whose text contains a marker, checked in order before the script.
    routes: Vec<(String, VecDeque<OllamaReply>)>,
    requests: Vec<RecordedRequest>,
    models: Vec<OllamaModel>,
}

/// A running fake Ollama server on `127.0.0.1:<random port>`. It runs on its own thread and stops when
/// dropped; use it from synchronous tests or from inside a tokio runtime alike.
pub struct FakeOllama {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl FakeOllama {
    /// Start the server with this script of replies, consumed in order by `POST /api/chat` and
    /// `POST /api/generate` requests. When the script is exhausted, further requests get HTTP 500 with an
    /// `{"error": ...}` that says so.
    pub fn start(script: impl IntoIterator<Item = OllamaReply>) -> FakeOllama {
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().collect(),
            routes: Vec::new(),
            requests: Vec::new(),
            models: vec![OllamaModel::new("qwen2.5-coder:7b")],
        }));
        let handler_state = state.clone();
        let server = Server::start(
            "fake-ollama",
            Arc::new(move |req| {
                let state = handler_state.clone();
                async move { respond(&state, req).await }.boxed()
            }),
        );
        FakeOllama { state, server }
    }

    /// `http://127.0.0.1:<port>` (what `OLLAMA_HOST` or a provider's base URL should be).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Append a reply to the end of the script.
    pub fn push(&self, reply: OllamaReply) {
        self.lock().script.push_back(reply);
    }

    /// Keep `reply` for the next request whose text (messages or prompt) contains `marker`, e.g. a task's
    /// title or `"prompt_type": "error_analysis"`: such requests take their replies from this queue, in order,
    /// before the script. Lets a test script replies by what is asked rather than by arrival order.
    pub fn route(&self, marker: impl Into<String>, reply: OllamaReply) {
        let marker = marker.into();
        let mut state = self.lock();
        match state.routes.iter_mut().find(|(m, _)| *m == marker) {
            Some((_, queue)) => queue.push_back(reply),
            None => state.routes.push((marker, VecDeque::from([reply]))),
        }
    }

    /// How many scripted replies have not been consumed yet.
    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }

    /// Replace the models `GET /api/tags` lists.
    pub fn set_models(&self, models: Vec<OllamaModel>) {
        self.lock().models = models;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The requests whose path (without query) is `path`, e.g. `"/api/chat"`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.lock().requests.iter().filter(|r| r.path_only() == path).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error_json(status: StatusCode, message: &str) -> Response<Body> {
    server::text_response(status, JSON_CT, json!({"error": message}).to_string())
}

async fn respond(state: &Mutex<State>, req: RecordedRequest) -> Response<Body> {
    let method = req.method.clone();
    let path = req.path_only().to_string();
    state.lock().unwrap_or_else(|e| e.into_inner()).requests.push(req.clone());
    match (method.as_str(), path.as_str()) {
        ("GET" | "HEAD", "/") => {
            server::text_response(StatusCode::OK, "text/plain; charset=utf-8", "Ollama is running")
        }
        ("GET" | "HEAD", "/api/version") => {
            server::text_response(StatusCode::OK, JSON_CT, json!({"version": OLLAMA_VERSION}).to_string())
        }
        ("GET" | "HEAD", "/api/tags") => {
            let models: Vec<Value> =
                state.lock().unwrap_or_else(|e| e.into_inner()).models.iter().map(OllamaModel::to_json).collect();
            server::text_response(StatusCode::OK, JSON_CT, json!({"models": models}).to_string())
        }
        ("POST", "/api/chat") => generate(state, &req, Endpoint::Chat).await,
        ("POST", "/api/generate") => generate(state, &req, Endpoint::Generate).await,
        _ => server::text_response(StatusCode::NOT_FOUND, "text/plain", "404 page not found"),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Chat,
    Generate,
}

/// Validate a chat/generate request as Ollama does: the model name, or the message of an HTTP 400.
fn validate(req: &RecordedRequest) -> Result<String, String> {
    if req.body.is_empty() {
        return Err("missing request body".into());
    }
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        let msg = match serde_json::from_slice::<Value>(&req.body) {
            Err(e) => format!("invalid JSON in request body: {e}"),
            Ok(_) => "request body must be a JSON object".to_string(),
        };
        return Err(msg);
    };
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if model.is_empty() {
        return Err("model is required".into());
    }
    match body.get("format") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(s)) if s.is_empty() || s == "json" => {}
        Some(_) => {
            return Err("invalid format: expected \"json\" or a valid JSON schema".into());
        }
    }
    Ok(model.to_string())
}

async fn generate(state: &Mutex<State>, req: &RecordedRequest, endpoint: Endpoint) -> Response<Body> {
    let model = match validate(req) {
        Ok(model) => model,
        Err(message) => return error_json(StatusCode::BAD_REQUEST, &message),
    };
    let streaming = req.stream_or(true);
    let is_load_only = match endpoint {
        Endpoint::Chat => req.pointer("/messages").and_then(Value::as_array).is_none_or(Vec::is_empty),
        Endpoint::Generate => req.pointer("/prompt").and_then(Value::as_str).is_none_or(str::is_empty),
    };
    if is_load_only {
        let unload = matches!(req.pointer("/keep_alive"), Some(v) if v == 0 || v == "0" || v == "0s");
        let mut obj = piece(endpoint, &model, "");
        obj.insert("done_reason".into(), json!(if unload { "unload" } else { "load" }));
        obj.insert("done".into(), json!(true));
        return server::text_response(StatusCode::OK, JSON_CT, format!("{}\n", Value::Object(obj)));
    }
    let reply = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let text = req.all_text();
        let routed = state
            .routes
            .iter_mut()
            .find(|(marker, queue)| !queue.is_empty() && text.contains(marker.as_str()))
            .and_then(|(_, queue)| queue.pop_front());
        routed.or_else(|| state.script.pop_front())
    };
    let Some(reply) = reply else {
        return error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "obra-testkit FakeOllama: the script has no reply left for POST {} (push more replies)",
                req.path_only()
            ),
        );
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let prompt_tokens = (req.all_text().len() as u64 / 4).max(1);
    match &reply.kind {
        Kind::ModelNotFound => {
            error_json(StatusCode::NOT_FOUND, &format!("model \"{model}\" not found, try pulling it first"))
        }
        Kind::Error { status, message } => {
            error_json(StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message)
        }
        Kind::ErrorMidStream { before, message } => {
            if !streaming {
                return error_json(StatusCode::INTERNAL_SERVER_ERROR, message);
            }
            let mut lines: Vec<(Duration, Bytes)> = server::token_pieces(before)
                .iter()
                .map(|p| (reply.chunk_delay, line(Value::Object(piece(endpoint, &model, p)))))
                .collect();
            lines.push((reply.chunk_delay, line(json!({"error": message}))));
            server::streamed_response(StatusCode::OK, NDJSON_CT, lines)
        }
        Kind::Content(content) => {
            let pieces = server::token_pieces(content);
            let (prompt_eval_count, eval_count) = reply.counts.unwrap_or((prompt_tokens, (pieces.len() as u64).max(1)));
            let mut last = piece(endpoint, &model, if streaming { "" } else { content });
            last.insert("done_reason".into(), json!(reply.done_reason));
            last.insert("done".into(), json!(true));
            if endpoint == Endpoint::Generate {
                let n = (prompt_eval_count + eval_count).min(32);
                last.insert("context".into(), json!((1..=n).map(|i| 100 + i * 7).collect::<Vec<_>>()));
            }
            let load_duration: u64 = 12_345_678;
            let prompt_eval_duration = prompt_eval_count * 250_000;
            let eval_duration = eval_count * 20_000_000;
            last.insert(
                "total_duration".into(),
                json!(load_duration + prompt_eval_duration + eval_duration + 1_500_000),
            );
            last.insert("load_duration".into(), json!(load_duration));
            last.insert("prompt_eval_count".into(), json!(prompt_eval_count));
            last.insert("prompt_eval_duration".into(), json!(prompt_eval_duration));
            last.insert("eval_count".into(), json!(eval_count));
            last.insert("eval_duration".into(), json!(eval_duration));
            if !streaming {
                return server::text_response(StatusCode::OK, JSON_CT, Value::Object(last).to_string());
            }
            let mut lines: Vec<(Duration, Bytes)> =
                pieces.iter().map(|p| (reply.chunk_delay, line(Value::Object(piece(endpoint, &model, p))))).collect();
            lines.push((reply.chunk_delay, line(Value::Object(last))));
            server::streamed_response(StatusCode::OK, NDJSON_CT, lines)
        }
    }
}

/// A `done: false` object carrying one piece of content (the final object is built from it too).
fn piece(endpoint: Endpoint, model: &str, content: &str) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("model".into(), json!(model));
    obj.insert("created_at".into(), json!(server::rfc3339_now()));
    match endpoint {
        Endpoint::Chat => {
            obj.insert("message".into(), json!({"role": "assistant", "content": content}));
        }
        Endpoint::Generate => {
            obj.insert("response".into(), json!(content));
        }
    }
    obj.insert("done".into(), json!(false));
    obj
}

fn line(value: Value) -> Bytes {
    Bytes::from(format!("{value}\n"))
}
