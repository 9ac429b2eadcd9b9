//! A scripted fake of the Anthropic Messages API (`POST /v1/messages`), good enough for the real `claude` CLI.
//!
//! The script is a queue of [`AnthropicReply`]s; each `POST /v1/messages` of the main conversation takes the
//! next one. Streamed requests (`"stream": true`, which is what the CLI sends) get Server-Sent Events exactly
//! as the real API sends them (`message_start`, `ping`, `content_block_start`, `content_block_delta` with
//! `text_delta` / `input_json_delta`, `content_block_stop`, `message_delta` with `stop_reason` and `usage`,
//! `message_stop`); non-streamed requests get one `message` JSON object. Errors carry the real body shape
//! (`{"type":"error","error":{"type":...,"message":...},"request_id":...}`) and headers (`request-id`,
//! `retry-after`).
//!
//! What claude-code 2.1.197 sends in `-p` mode (observed with this fake, see `tests/fixtures/claude/README.md`):
//! a `HEAD /` pre-connect (answered 404, which the CLI ignores), then one streamed
//! `POST /v1/messages?beta=true` per model turn, all with the main model and the full tool list. Requests
//! that are not part of the main conversation (a `count_tokens` call, or a non-streamed request without
//! tools, such as a title or summary the CLI may ask a small model for) never consume the script: they are
//! answered with a neutral default and recorded like every other request.
//!
//! ```no_run
//! use obra_testkit::fake_anthropic::{AnthropicReply, FakeAnthropic};
//! let fake = FakeAnthropic::start([
//!     AnthropicReply::write_file("hello.txt", "hi\n"),
//!     AnthropicReply::text("Done."),
//! ]);
//! // point ANTHROPIC_BASE_URL at fake.base_url(), run the CLI, then:
//! assert_eq!(fake.message_requests().len(), 2);
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::server::{self, Body, RecordedRequest, Server};

/// One block of an assistant message.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    /// Plain text, streamed as `text_delta`s.
    Text(String),
    /// A tool call, streamed as `input_json_delta`s. `id` is the `toolu_...` id the CLI echoes back in its
    /// `tool_result`.
    ToolUse {
        /// The tool-use id (`toolu_...`).
        id: String,
        /// The tool's name as the CLI declares it (`Write`, `Edit`, `Bash`, `Read`, ...).
        name: String,
        /// The tool's input object.
        input: Value,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> ContentBlock {
        ContentBlock::Text(text.into())
    }

    /// A tool-use block with a fresh `toolu_...` id.
    pub fn tool_use(name: impl Into<String>, input: Value) -> ContentBlock {
        ContentBlock::ToolUse { id: format!("toolu_01{}", server::unique_id(22)), name: name.into(), input }
    }

    fn to_json(&self) -> Value {
        match self {
            ContentBlock::Text(text) => json!({"type": "text", "text": text}),
            ContentBlock::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Message { content: Vec<ContentBlock>, stop_reason: Option<String> },
    Error { status: u16, error_type: String, message: String },
    StreamError { error_type: String, message: String },
}

/// One scripted answer of the fake Messages API. Build it with the constructors, then adjust it with the
/// `self`-taking modifiers (`retry_after`, `delay`, `usage`, ...).
#[derive(Debug, Clone)]
pub struct AnthropicReply {
    kind: Kind,
    delay: Duration,
    retry_after: Option<u64>,
    headers: Vec<(String, String)>,
    usage: Option<(u64, u64)>,
}

impl AnthropicReply {
    fn new(kind: Kind) -> AnthropicReply {
        AnthropicReply { kind, delay: Duration::ZERO, retry_after: None, headers: Vec::new(), usage: None }
    }

    /// An assistant message with these blocks. `stop_reason` is `tool_use` when a block is a tool call,
    /// `end_turn` otherwise (override with [`AnthropicReply::stop_reason`]).
    pub fn message(content: Vec<ContentBlock>) -> AnthropicReply {
        AnthropicReply::new(Kind::Message { content, stop_reason: None })
    }

    /// A plain text answer that ends the turn (`stop_reason: end_turn`).
    pub fn text(text: impl Into<String>) -> AnthropicReply {
        AnthropicReply::message(vec![ContentBlock::text(text)])
    }

    /// A single tool call (`stop_reason: tool_use`).
    pub fn tool_use(name: impl Into<String>, input: Value) -> AnthropicReply {
        AnthropicReply::message(vec![ContentBlock::tool_use(name, input)])
    }

    /// A `Write` tool call: `{"file_path": path, "content": content}`. The CLI resolves a relative path
    /// against its working directory.
    pub fn write_file(path: impl Into<String>, content: impl Into<String>) -> AnthropicReply {
        AnthropicReply::tool_use("Write", json!({"file_path": path.into(), "content": content.into()}))
    }

    /// An `Edit` tool call replacing `old_string` by `new_string` in `path`. The CLI refuses to edit a file it
    /// has not `Read` in the session, so script a `Read` (see [`AnthropicReply::read_file`]) first.
    pub fn edit_file(
        path: impl Into<String>,
        old_string: impl Into<String>,
        new_string: impl Into<String>,
    ) -> AnthropicReply {
        AnthropicReply::tool_use(
            "Edit",
            json!({"file_path": path.into(), "old_string": old_string.into(), "new_string": new_string.into()}),
        )
    }

    /// A `Read` tool call for `path`.
    pub fn read_file(path: impl Into<String>) -> AnthropicReply {
        AnthropicReply::tool_use("Read", json!({"file_path": path.into()}))
    }

    /// A `Bash` tool call running `command`.
    pub fn bash(command: impl Into<String>) -> AnthropicReply {
        let command = command.into();
        AnthropicReply::tool_use("Bash", json!({"command": command, "description": format!("Run {command}")}))
    }

    /// An HTTP error with the real body shape: `{"type":"error","error":{"type":error_type,"message":message},
    /// "request_id":"req_..."}`. Usual pairs: 400 `invalid_request_error`, 401 `authentication_error`,
    /// 403 `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`,
    /// 500 `api_error`, 529 `overloaded_error`.
    pub fn error(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> AnthropicReply {
        AnthropicReply::new(Kind::Error { status, error_type: error_type.into(), message: message.into() })
    }

    /// HTTP 429 `rate_limit_error` (add [`AnthropicReply::retry_after`] for the header).
    pub fn rate_limited() -> AnthropicReply {
        AnthropicReply::error(
            429,
            "rate_limit_error",
            "This request would exceed your organization's rate limit. Please try again later.",
        )
    }

    /// HTTP 500 `api_error`, as the real API answers an internal failure.
    pub fn server_error() -> AnthropicReply {
        AnthropicReply::error(500, "api_error", "Internal server error")
    }

    /// HTTP 529 `overloaded_error`.
    pub fn overloaded() -> AnthropicReply {
        AnthropicReply::error(529, "overloaded_error", "Overloaded")
    }

    /// A stream that starts normally (HTTP 200, `message_start`, `ping`) and then fails with an SSE
    /// `event: error` (`{"type":"error","error":{...}}`), as the real API does when it is overloaded
    /// mid-stream. A non-streamed request gets the error as HTTP 529 / 500 instead.
    pub fn stream_error(error_type: impl Into<String>, message: impl Into<String>) -> AnthropicReply {
        AnthropicReply::new(Kind::StreamError { error_type: error_type.into(), message: message.into() })
    }

    /// Send a `retry-after: <secs>` header (meaningful on errors).
    pub fn retry_after(mut self, secs: u64) -> AnthropicReply {
        self.retry_after = Some(secs);
        self
    }

    /// Wait this long before sending the response headers (a slow server).
    pub fn delay(mut self, delay: Duration) -> AnthropicReply {
        self.delay = delay;
        self
    }

    /// Add a response header (e.g. `x-should-retry: false`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> AnthropicReply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Report these token counts in `usage` (default: 100 input tokens, output ≈ 1 token per 4 characters).
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> AnthropicReply {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Override the message's `stop_reason` (`end_turn`, `tool_use`, `max_tokens`, `stop_sequence`, `refusal`).
    pub fn stop_reason(mut self, reason: impl Into<String>) -> AnthropicReply {
        if let Kind::Message { stop_reason, .. } = &mut self.kind {
            *stop_reason = Some(reason.into());
        }
        self
    }

    /// Prepend a text block (the model "thinking aloud" before its tool call).
    pub fn with_text_before(mut self, text: impl Into<String>) -> AnthropicReply {
        if let Kind::Message { content, .. } = &mut self.kind {
            content.insert(0, ContentBlock::text(text));
        }
        self
    }

    fn render(&self, req: &RecordedRequest) -> Response<Body> {
        let model = req.model().unwrap_or("claude-sonnet-4-5").to_string();
        let request_id = format!("req_011C{}", server::unique_id(20));
        let streaming = req.stream_or(false);
        let mut resp = match &self.kind {
            Kind::Message { content, stop_reason } => {
                let stop_reason = stop_reason.clone().unwrap_or_else(|| {
                    let tool = content.iter().any(|b| matches!(b, ContentBlock::ToolUse { .. }));
                    if tool { "tool_use" } else { "end_turn" }.to_string()
                });
                let (input_tokens, output_tokens) = self.usage.unwrap_or_else(|| {
                    let chars: usize = content.iter().map(|b| b.to_json().to_string().len()).sum();
                    (100, (chars as u64 / 4).max(1))
                });
                let msg = MessageParts {
                    id: format!("msg_01{}", server::unique_id(22)),
                    model,
                    content,
                    stop_reason: &stop_reason,
                    input_tokens,
                    output_tokens,
                };
                if streaming {
                    server::streamed_response(StatusCode::OK, "text/event-stream; charset=utf-8", msg.sse_events())
                } else {
                    server::json_response(StatusCode::OK, &msg.full_json())
                }
            }
            Kind::Error { status, error_type, message } => error_response(*status, error_type, message, &request_id),
            Kind::StreamError { error_type, message } => {
                if streaming {
                    let msg = MessageParts {
                        id: format!("msg_01{}", server::unique_id(22)),
                        model,
                        content: &[],
                        stop_reason: "end_turn",
                        input_tokens: 100,
                        output_tokens: 1,
                    };
                    let mut events = msg.sse_events();
                    events.truncate(2); // message_start, ping
                    let err = json!({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id});
                    events.push(sse("error", &err));
                    server::streamed_response(StatusCode::OK, "text/event-stream; charset=utf-8", events)
                } else {
                    let status = if error_type == "overloaded_error" { 529 } else { 500 };
                    error_response(status, error_type, message, &request_id)
                }
            }
        };
        let is_sse = resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if is_sse {
            server::set_header(&mut resp, "cache-control", "no-cache");
        }
        server::set_header(&mut resp, "request-id", &request_id);
        server::set_header(&mut resp, "anthropic-organization-id", "00000000-0000-4000-8000-000000000000");
        if let Some(secs) = self.retry_after {
            server::set_header(&mut resp, "retry-after", &secs.to_string());
        }
        for (name, value) in &self.headers {
            server::set_header(&mut resp, name, value);
        }
        resp
    }
}

fn error_response(status: u16, error_type: &str, message: &str, request_id: &str) -> Response<Body> {
    let body = json!({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    server::json_response(status, &body)
}

struct MessageParts<'a> {
    id: String,
    model: String,
    content: &'a [ContentBlock],
    stop_reason: &'a str,
    input_tokens: u64,
    output_tokens: u64,
}

impl MessageParts<'_> {
    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard"
        })
    }

    fn full_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content.iter().map(ContentBlock::to_json).collect::<Vec<_>>(),
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens),
        })
    }

    fn sse_events(&self) -> Vec<(Duration, Bytes)> {
        let mut events = Vec::new();
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": self.usage(1),
            }
        });
        events.push(sse("message_start", &start));
        events.push(sse("ping", &json!({"type": "ping"})));
        for (index, block) in self.content.iter().enumerate() {
            let (start_block, deltas) = match block {
                ContentBlock::Text(text) => (
                    json!({"type": "text", "text": ""}),
                    server::token_pieces(text)
                        .into_iter()
                        .map(|piece| json!({"type": "text_delta", "text": piece}))
                        .collect::<Vec<_>>(),
                ),
                ContentBlock::ToolUse { id, name, input } => {
                    let mut deltas = vec![json!({"type": "input_json_delta", "partial_json": ""})];
                    deltas.extend(
                        chunk_chars(&input.to_string(), 24)
                            .into_iter()
                            .map(|piece| json!({"type": "input_json_delta", "partial_json": piece})),
                    );
                    (json!({"type": "tool_use", "id": id, "name": name, "input": {}}), deltas)
                }
            };
            events.push(sse(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": start_block}),
            ));
            for delta in deltas {
                events.push(sse(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            events.push(sse("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        }
        events.push(sse(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": self.usage(self.output_tokens),
            }),
        ));
        events.push(sse("message_stop", &json!({"type": "message_stop"})));
        events
    }
}

fn sse(event: &str, data: &Value) -> (Duration, Bytes) {
    (Duration::ZERO, Bytes::from(format!("event: {event}\ndata: {data}\n\n")))
}

fn chunk_chars(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

#[derive(Default)]
struct State {
    script: VecDeque<AnthropicReply>,
    requests: Vec<RecordedRequest>,
}

/// Whether a `POST /v1/messages` is a side request (not part of the main conversation): it must not consume
/// the script. The CLI's main-loop requests always declare tools; they stream, except the non-streamed
/// fallback the CLI sends after repeatedly failed streams, which must consume the script like any turn.
fn is_side_request(req: &RecordedRequest) -> bool {
    let has_tools = req.pointer("/tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    !req.stream_or(false) && !has_tools
}

/// A running fake Anthropic Messages API on `127.0.0.1:<random port>`. It runs on its own thread and stops
/// when dropped; use it from synchronous tests or from inside a tokio runtime alike.
pub struct FakeAnthropic {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl FakeAnthropic {
    /// Start the server with this script of replies, consumed in order, one per main-conversation
    /// `POST /v1/messages`. When the script is exhausted, further requests get HTTP 500 `api_error` whose
    /// message says so.
    pub fn start(script: impl IntoIterator<Item = AnthropicReply>) -> FakeAnthropic {
        let state = Arc::new(Mutex::new(State { script: script.into_iter().collect(), requests: Vec::new() }));
        let handler_state = state.clone();
        let server = Server::start(
            "fake-anthropic",
            Arc::new(move |req| {
                let state = handler_state.clone();
                async move { respond(&state, req).await }.boxed()
            }),
        );
        FakeAnthropic { state, server }
    }

    /// `http://127.0.0.1:<port>`: the value for `ANTHROPIC_BASE_URL` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Append a reply to the end of the script.
    pub fn push(&self, reply: AnthropicReply) {
        self.lock().script.push_back(reply);
    }

    /// How many scripted replies have not been consumed yet.
    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }

    /// Every request received so far, in arrival order (pre-connect `HEAD /`, side requests, everything).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The main-conversation `POST /v1/messages` requests, i.e. those that consumed a scripted reply, in order.
    /// `message_requests()[n]` is the prompt the model saw before answering with `script[n]`.
    pub fn message_requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path_only() == "/v1/messages" && !is_side_request(r))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn respond(state: &Mutex<State>, req: RecordedRequest) -> Response<Body> {
    let path = req.path_only().to_string();
    let method = req.method.clone();
    let request_id = format!("req_011C{}", server::unique_id(20));
    let reply = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push(req.clone());
        if method == "POST" && path == "/v1/messages" && !is_side_request(&req) {
            Some(st.script.pop_front())
        } else {
            None
        }
    };
    let mut resp = match (method.as_str(), path.as_str(), reply) {
        (_, _, Some(Some(reply))) => {
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            return reply.render(&req);
        }
        (_, _, Some(None)) => {
            let n = state.lock().unwrap_or_else(|e| e.into_inner()).requests.len();
            error_response(
                500,
                "api_error",
                &format!(
                    "obra-testkit FakeAnthropic: the script has no reply left for request #{n} (push more replies)"
                ),
                &request_id,
            )
        }
        ("POST", "/v1/messages", None) => {
            // A side request (title, summary...): answer briefly, do not touch the script.
            AnthropicReply::text("Scripted session").render(&req)
        }
        ("POST", "/v1/messages/count_tokens", _) => {
            let tokens = (req.all_text().len() / 4).max(1);
            server::json_response(StatusCode::OK, &json!({"input_tokens": tokens}))
        }
        (_, "/v1/messages" | "/v1/messages/count_tokens", _) => {
            error_response(405, "invalid_request_error", &format!("Method {method} not allowed"), &request_id)
        }
        _ => error_response(404, "not_found_error", "Not Found", &request_id),
    };
    server::set_header(&mut resp, "request-id", &request_id);
    resp
}
