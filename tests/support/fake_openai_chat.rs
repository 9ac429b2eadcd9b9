//! A scripted fake of the OpenAI chat-completions API (what vLLM, LM Studio, llama.cpp's server and OpenAI
//! itself serve), for the `openai` LLM provider and for Aider.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: each takes the next [`ChatReply`] of the script. With `"stream": true` the
//!   reply is Server-Sent Events (`text/event-stream`): a first chunk with `delta.role`, one chunk per piece of
//!   content (`delta.content`), a last chunk with `finish_reason`, then — when the request asked for
//!   `stream_options.include_usage` — a chunk with empty `choices` and the `usage`, and `data: [DONE]`.
//!   Without `stream`, one `chat.completion` object with `usage`. Request validation as OpenAI: an invalid
//!   body or a missing `model` or `messages` gives HTTP 400 with an `invalid_request_error`.
//! - `GET /v1/models`: the models set with [`FakeOpenAiChat::set_models`] (default `gpt-4o-mini`).
//!
//! Errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status, or an `error` object in
//! the middle of a stream. Every request is recorded, headers included (`authorization`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::server::{self, Body, RecordedRequest, Server};

const JSON_CT: &str = "application/json";
const SSE_CT: &str = "text/event-stream; charset=utf-8";

#[derive(Debug, Clone)]
enum Kind {
    Content(String),
    Error { status: u16, kind: String, message: String },
    MalformedChunk { before: String },
    ErrorMidStream { before: String, message: String },
}

/// One scripted answer to a `POST /v1/chat/completions`.
#[derive(Debug, Clone)]
pub struct ChatReply {
    kind: Kind,
    delay: Duration,
    chunk_delay: Duration,
    usage: Option<(u64, u64)>,
    finish_reason: String,
    retry_after: Option<String>,
}

impl ChatReply {
    fn new(kind: Kind) -> ChatReply {
        ChatReply {
            kind,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            usage: None,
            finish_reason: "stop".into(),
            retry_after: None,
        }
    }

    /// The model answers `content` (in small pieces when the request streams).
    pub fn text(content: impl Into<String>) -> ChatReply {
        ChatReply::new(Kind::Content(content.into()))
    }

    /// The model answers this JSON value, serialised (what `response_format: json_schema` produces).
    pub fn json(value: &Value) -> ChatReply {
        ChatReply::text(value.to_string())
    }

    /// An HTTP error with OpenAI's error object, e.g. `(401, "invalid_request_error", "Incorrect API key")`.
    pub fn error(status: u16, kind: impl Into<String>, message: impl Into<String>) -> ChatReply {
        ChatReply::new(Kind::Error { status, kind: kind.into(), message: message.into() })
    }

    /// HTTP 429 `rate_limit_exceeded` with `retry-after: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> ChatReply {
        let mut reply = ChatReply::error(429, "requests", "Rate limit reached for requests. Please try again later.");
        reply.retry_after = Some(retry_after_secs.to_string());
        reply
    }

    /// HTTP 500 `server_error`.
    pub fn server_error() -> ChatReply {
        ChatReply::error(500, "server_error", "The server had an error while processing your request.")
    }

    /// Streams `before` and then a chunk that is not JSON (a server or proxy garbling the stream).
    pub fn malformed_chunk(before: impl Into<String>) -> ChatReply {
        ChatReply::new(Kind::MalformedChunk { before: before.into() })
    }

    /// Streams `before` and then an `{"error": ...}` event, with HTTP 200 (as vLLM does on an engine failure).
    pub fn error_mid_stream(before: impl Into<String>, message: impl Into<String>) -> ChatReply {
        ChatReply::new(Kind::ErrorMidStream { before: before.into(), message: message.into() })
    }

    /// Wait this long before answering (a slow model; longer than the client's timeout for a hang).
    pub fn delay(mut self, delay: Duration) -> ChatReply {
        self.delay = delay;
        self
    }

    /// Wait this long between streamed chunks.
    pub fn chunk_delay(mut self, delay: Duration) -> ChatReply {
        self.chunk_delay = delay;
        self
    }

    /// Report these token counts (default: estimated from the text).
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> ChatReply {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// The `finish_reason` (default `stop`; `length` for a reply cut at max_tokens).
    pub fn finish_reason(mut self, reason: impl Into<String>) -> ChatReply {
        self.finish_reason = reason.into();
        self
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<ChatReply>,
    requests: Vec<RecordedRequest>,
    models: Vec<String>,
}

/// A running fake chat-completions server on `127.0.0.1:<random port>`; stops when dropped.
pub struct FakeOpenAiChat {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl FakeOpenAiChat {
    /// Start the server with this script of replies, consumed in order by `POST /v1/chat/completions`. When
    /// the script is exhausted, further requests get HTTP 500 saying so.
    pub fn start(script: impl IntoIterator<Item = ChatReply>) -> FakeOpenAiChat {
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().collect(),
            requests: Vec::new(),
            models: vec!["gpt-4o-mini".into()],
        }));
        let handler_state = state.clone();
        let server = Server::start(
            "fake-openai-chat",
            Arc::new(move |req| {
                let state = handler_state.clone();
                async move { respond(&state, req).await }.boxed()
            }),
        );
        FakeOpenAiChat { state, server }
    }

    /// `http://127.0.0.1:<port>` (without `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `http://127.0.0.1:<port>/v1`: what OpenAI clients take as their base URL.
    pub fn v1_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Append a reply to the end of the script.
    pub fn push(&self, reply: ChatReply) {
        self.lock().script.push_back(reply);
    }

    /// Replace the models `GET /v1/models` lists.
    pub fn set_models(&self, models: &[&str]) {
        self.lock().models = models.iter().map(|m| m.to_string()).collect();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The `POST /v1/chat/completions` requests, in order.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.iter().filter(|r| r.path_only() == "/v1/chat/completions").cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error_body(kind: &str, message: &str, code: Option<&str>) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

async fn respond(state: &Mutex<State>, req: RecordedRequest) -> Response<Body> {
    let path = req.path_only().to_string();
    state.lock().unwrap_or_else(|e| e.into_inner()).requests.push(req.clone());
    match (req.method.as_str(), path.as_str()) {
        ("GET", "/v1/models") => {
            let models = state.lock().unwrap_or_else(|e| e.into_inner()).models.clone();
            let data: Vec<Value> = models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "obra-testkit"}))
                .collect();
            server::text_response(StatusCode::OK, JSON_CT, json!({"object": "list", "data": data}).to_string())
        }
        ("POST", "/v1/chat/completions") => complete(state, &req).await,
        _ => server::text_response(
            StatusCode::NOT_FOUND,
            JSON_CT,
            error_body("invalid_request_error", &format!("Unknown request URL: {} {path}", req.method), None),
        ),
    }
}

async fn complete(state: &Mutex<State>, req: &RecordedRequest) -> Response<Body> {
    let bad = |message: &str| {
        server::text_response(StatusCode::BAD_REQUEST, JSON_CT, error_body("invalid_request_error", message, None))
    };
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        return bad("We could not parse the JSON body of your request.");
    };
    let Some(model) = body.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return bad("you must provide a model parameter");
    };
    if body.get("messages").and_then(Value::as_array).is_none_or(|m| m.is_empty()) {
        return bad("'messages' is a required property");
    }
    let model = model.to_string();
    let reply = state.lock().unwrap_or_else(|e| e.into_inner()).script.pop_front();
    let Some(reply) = reply else {
        return server::text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON_CT,
            error_body("server_error", "obra-testkit FakeOpenAiChat: the script has no reply left", None),
        );
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let streaming = req.stream_or(false);
    let include_usage = req.pointer("/stream_options/include_usage") == Some(&json!(true));
    let id = format!("chatcmpl-{}", server::unique_id(24));
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "system_fingerprint": "fp_obra", "choices": [{"index": 0, "delta": delta, "logprobs": null,
               "finish_reason": finish}]})
    };
    let event = |v: &Value| Bytes::from(format!("data: {v}\n\n"));
    let pieces_of = |text: &str, delay| -> Vec<(Duration, Bytes)> {
        server::token_pieces(text).iter().map(|p| (delay, event(&chunk(json!({"content": p}), None)))).collect()
    };
    match &reply.kind {
        Kind::Error { status, kind, message } => {
            let code = (*status == 429).then_some("rate_limit_exceeded");
            let mut resp = server::text_response(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                JSON_CT,
                error_body(kind, message, code),
            );
            if let Some(after) = &reply.retry_after {
                server::set_header(&mut resp, "retry-after", after);
            }
            resp
        }
        Kind::MalformedChunk { before } | Kind::ErrorMidStream { before, .. } if streaming => {
            let mut events =
                vec![(reply.chunk_delay, event(&chunk(json!({"role": "assistant", "content": ""}), None)))];
            events.extend(pieces_of(before, reply.chunk_delay));
            match &reply.kind {
                Kind::MalformedChunk { .. } => events
                    .push((reply.chunk_delay, Bytes::from("data: {\"id\": \"chatcmpl-broken\", \"choices\": [{\n\n"))),
                Kind::ErrorMidStream { message, .. } => events.push((
                    reply.chunk_delay,
                    Bytes::from(format!("data: {}\n\n", error_body("server_error", message, None))),
                )),
                _ => {}
            }
            server::streamed_response(StatusCode::OK, SSE_CT, events)
        }
        Kind::MalformedChunk { .. } => {
            server::text_response(StatusCode::OK, JSON_CT, "{\"id\": \"chatcmpl-broken\", \"choices\": [")
        }
        Kind::ErrorMidStream { message, .. } => {
            server::text_response(StatusCode::INTERNAL_SERVER_ERROR, JSON_CT, error_body("server_error", message, None))
        }
        Kind::Content(content) => {
            let pieces = server::token_pieces(content);
            let prompt_tokens = (req.all_text().len() as u64 / 4).max(1);
            let (prompt, completion) = reply.usage.unwrap_or((prompt_tokens, (pieces.len() as u64).max(1)));
            let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion});
            if !streaming {
                let body = json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
                    "system_fingerprint": "fp_obra",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null},
                                 "logprobs": null, "finish_reason": reply.finish_reason}],
                    "usage": usage});
                return server::text_response(StatusCode::OK, JSON_CT, body.to_string());
            }
            let mut events =
                vec![(reply.chunk_delay, event(&chunk(json!({"role": "assistant", "content": ""}), None)))];
            events.extend(pieces_of(content, reply.chunk_delay));
            events.push((reply.chunk_delay, event(&chunk(json!({}), Some(&reply.finish_reason)))));
            if include_usage {
                let mut last = chunk(json!({}), None);
                last["choices"] = json!([]);
                last["usage"] = usage;
                events.push((reply.chunk_delay, event(&last)));
            }
            events.push((reply.chunk_delay, Bytes::from("data: [DONE]\n\n")));
            server::streamed_response(StatusCode::OK, SSE_CT, events)
        }
    }
}
