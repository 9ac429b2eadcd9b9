//! A scripted fake of the OpenAI Responses API (`POST /v1/responses`, streamed as Server-Sent Events), for the
//! real Codex CLI. Each request takes the next [`ResponsesReply`]: a message, a call of Codex's `exec_command`
//! tool (which makes the real CLI run a shell command, e.g. to write a file), or an OpenAI error. Events as
//! OpenAI sends them: `response.created`, `response.output_item.done` (the item), `response.completed` with
//! `usage` (`input_tokens`, `input_tokens_details.cached_tokens`, `output_tokens`, ...).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::server::{self, Body, RecordedRequest, Server};

#[derive(Debug, Clone)]
enum Kind {
    Message(String),
    Shell(String),
    Error { status: u16, kind: String, message: String, retry_after: Option<u64> },
}

/// One scripted answer to `POST /v1/responses`.
#[derive(Debug, Clone)]
pub struct ResponsesReply {
    kind: Kind,
    delay: Duration,
    usage: (u64, u64),
}

impl ResponsesReply {
    fn new(kind: Kind) -> ResponsesReply {
        ResponsesReply { kind, delay: Duration::ZERO, usage: (100, 10) }
    }

    /// The model answers with a message (Codex's `agent_message`).
    pub fn text(text: impl Into<String>) -> ResponsesReply {
        ResponsesReply::new(Kind::Message(text.into()))
    }

    /// The model calls Codex's `exec_command` tool with this shell command (the real CLI runs it).
    pub fn shell(command: impl Into<String>) -> ResponsesReply {
        ResponsesReply::new(Kind::Shell(command.into()))
    }

    /// The model writes `content` to `path` through a shell command.
    pub fn write_file(path: &str, content: &str) -> ResponsesReply {
        let quoted = content.replace('\'', r"'\''");
        ResponsesReply::shell(format!("printf '%s' '{quoted}' > '{path}'"))
    }

    /// An HTTP error with OpenAI's error object.
    pub fn error(status: u16, kind: impl Into<String>, message: impl Into<String>) -> ResponsesReply {
        ResponsesReply::new(Kind::Error { status, kind: kind.into(), message: message.into(), retry_after: None })
    }

    /// HTTP 429 with `retry-after`.
    pub fn rate_limited(retry_after_secs: u64) -> ResponsesReply {
        ResponsesReply::new(Kind::Error {
            status: 429,
            kind: "requests".into(),
            message: "Rate limit reached for requests".into(),
            retry_after: Some(retry_after_secs),
        })
    }

    /// Wait before answering (longer than the agent's limit for a hang).
    pub fn delay(mut self, delay: Duration) -> ResponsesReply {
        self.delay = delay;
        self
    }

    /// The usage this response reports.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> ResponsesReply {
        self.usage = (input_tokens, output_tokens);
        self
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<ResponsesReply>,
    requests: Vec<RecordedRequest>,
}

/// A running fake Responses API on `127.0.0.1:<random port>`; stops when dropped.
pub struct FakeResponses {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl FakeResponses {
    /// Start with this script, consumed one reply per `POST /v1/responses`; past its end, HTTP 500.
    pub fn start(script: impl IntoIterator<Item = ResponsesReply>) -> FakeResponses {
        let state = Arc::new(Mutex::new(State { script: script.into_iter().collect(), requests: Vec::new() }));
        let handler_state = state.clone();
        let server = Server::start(
            "fake-responses",
            Arc::new(move |req| {
                let state = handler_state.clone();
                async move { respond(&state, req).await }.boxed()
            }),
        );
        FakeResponses { state, server }
    }

    /// `http://127.0.0.1:<port>` (without `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Append a reply.
    pub fn push(&self, reply: ResponsesReply) {
        self.lock().script.push_back(reply);
    }

    /// The `POST /v1/responses` requests, in order.
    pub fn response_requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path_only() == "/v1/responses")
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error_response(status: u16, kind: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    server::text_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body.to_string(),
    )
}

async fn respond(state: &Mutex<State>, req: RecordedRequest) -> Response<Body> {
    let reply = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push(req.clone());
        if req.method != "POST" || req.path_only() != "/v1/responses" {
            return error_response(404, "invalid_request_error", &format!("Unknown request URL: {}", req.path));
        }
        st.script.pop_front()
    };
    let Some(reply) = reply else {
        return error_response(500, "server_error", "obra-testkit FakeResponses: the script has no reply left");
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let id = format!("resp_{}", server::unique_id(16));
    let item = match &reply.kind {
        Kind::Error { status, kind, message, retry_after } => {
            let mut resp = error_response(*status, kind, message);
            if let Some(secs) = retry_after {
                server::set_header(&mut resp, "retry-after", &secs.to_string());
            }
            return resp;
        }
        Kind::Message(text) => {
            json!({"type": "message", "role": "assistant", "id": format!("msg_{}", server::unique_id(12)),
            "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
        Kind::Shell(command) => json!({"type": "function_call", "id": format!("fc_{}", server::unique_id(12)),
            "call_id": format!("call_{}", server::unique_id(12)), "name": "exec_command", "status": "completed",
            "arguments": json!({"cmd": command}).to_string()}),
    };
    let (input, output) = reply.usage;
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let events = vec![
        (
            Duration::ZERO,
            event(
                "response.created",
                json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
            ),
        ),
        (
            Duration::ZERO,
            event(
                "response.output_item.done",
                json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
            ),
        ),
        (
            Duration::ZERO,
            event(
                "response.completed",
                json!({"type": "response.completed", "response": {"id": id, "status": "completed", "usage": {
                    "input_tokens": input, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output,
                    "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input + output}}}),
            ),
        ),
    ];
    server::streamed_response(StatusCode::OK, "text/event-stream", events)
}
