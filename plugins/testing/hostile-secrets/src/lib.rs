//! Hostile test plugin `hostile-secrets` for the hostile suite (tests/e2e/hostile_suite.rs), class (e): secrets
//! echoed back by a granted origin, and headers the guest may not set. It sends `{env:OBRA_SUITE_SECRET}` (a
//! variable granted to it, whose value it never sees) in the header `x-hostile-credential` to the test's echo
//! server and reports everything that came back, so the test can look for the value in what the guest saw. Config:
//! `{"base_url": URL, "other_url": URL}`, the granted origin and one that is not. The summary is a JSON object with
//! one entry per try: `"denied: <the host's error>"`, `"error: <error>"` or `"ran: status <n> headers <name:
//! value ...> body <text>"`.
//!
//! The server's paths: `/echo` answers the request head in its body and each request header again as a response
//! header `x-echo-<name>`; `/echo-name` answers with a response header *named* after the credential's value;
//! `/stream` answers the request head in chunks of one to seven bytes; `/redirect-echo` answers 302 with the
//! value in the `Location`; `/forbidden` counts requests that should never have been sent.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::http::{Request, Response};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The plugin's configuration (the test's `agents.hostile-secrets` section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The granted origin (the echo server).
    base_url: String,
    /// An origin that is not granted.
    other_url: String,
}

/// The header the host fills with the secret.
const CREDENTIAL: &str = "x-hostile-credential";
/// Its value: the placeholder the host replaces with the variable's value.
const PLACEHOLDER: &str = "{env:OBRA_SUITE_SECRET}";

/// A response as the guest saw it, on one line.
fn shown(status: u16, headers: &[(String, String)], body: &str) -> String {
    let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("status {status} headers <{}> body {body}", headers.join(" | "))
}

/// What one request gave.
fn outcome(result: Result<Response, PluginError>) -> Value {
    Value::String(match result {
        Ok(r) => {
            let headers: Vec<(String, String)> =
                r.headers.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
            format!("ran: {}", shown(r.status, &headers, &r.text()))
        }
        Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
        Err(e) => format!("error: {e}"),
    })
}

/// A streamed request's whole answer, chunk by chunk as the guest got it.
fn streamed(request: Request) -> Value {
    let result = request.send_streaming().and_then(|stream| {
        let headers: Vec<(String, String)> =
            stream.headers().into_iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
        let mut body = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.next_chunk()? {
            chunks += 1;
            body.extend_from_slice(&chunk);
        }
        Ok(format!("{} in {chunks} chunks", shown(stream.status(), &headers, &String::from_utf8_lossy(&body))))
    });
    Value::String(match result {
        Ok(text) => format!("ran: {text}"),
        Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
        Err(e) => format!("error: {e}"),
    })
}

/// Every try (see the module documentation).
fn tries(cfg: &Config) -> Map<String, Value> {
    let base = &cfg.base_url;
    let with_secret = |path: &str| Request::get(format!("{base}{path}")).header(CREDENTIAL, PLACEHOLDER);
    let mut t = Map::new();
    t.insert("echo in body and headers".into(), outcome(with_secret("/echo").send()));
    t.insert(
        "echo with text around it".into(),
        outcome(Request::get(format!("{base}/echo")).header(CREDENTIAL, format!("key={PLACEHOLDER};")).send()),
    );
    t.insert("echo as a header name".into(), outcome(with_secret("/echo-name").send()));
    t.insert("echo streamed in small chunks".into(), streamed(with_secret("/stream")));
    t.insert("echo in a redirect's location".into(), outcome(with_secret("/redirect-echo").send()));
    t.insert("placeholder in the URL".into(), outcome(Request::get(format!("{base}/echo?k={PLACEHOLDER}")).send()));
    t.insert(
        "placeholder in the body".into(),
        outcome(Request::post(format!("{base}/echo")).body(PLACEHOLDER.as_bytes().to_vec()).send()),
    );
    t.insert(
        "placeholder to another origin".into(),
        outcome(Request::get(cfg.other_url.clone()).header(CREDENTIAL, PLACEHOLDER).send()),
    );
    t.insert(
        "ungranted variable".into(),
        outcome(Request::get(format!("{base}/echo")).header(CREDENTIAL, "{env:HOME}").send()),
    );
    t.insert(
        "nested placeholder".into(),
        outcome(Request::get(format!("{base}/echo")).header(CREDENTIAL, format!("{{env:{PLACEHOLDER}}}")).send()),
    );
    t.insert(
        "placeholder in a header name".into(),
        outcome(Request::get(format!("{base}/echo")).header(format!("x-{PLACEHOLDER}"), "1").send()),
    );
    t.insert(
        "CRLF in a header value".into(),
        outcome(Request::get(format!("{base}/forbidden")).header("x-a", "1\r\nx-injected: 1").send()),
    );
    for (name, value) in [
        ("Host", "169.254.169.254"),
        ("HOST", "169.254.169.254"),
        ("Content-Length", "5"),
        ("Connection", "close"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", PLACEHOLDER),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "x-late"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
    ] {
        let request = Request::post(format!("{base}/forbidden")).header(name, value).body(b"hello".to_vec());
        t.insert(format!("set {name}"), outcome(request.send()));
    }
    t
}

/// The agent.
struct HostileSecrets;

impl Agent for HostileSecrets {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-secrets".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile suite (e): a granted origin echoes a host-filled secret; forbidden headers".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        Ok(RunResult::new(Outcome::Success, json!(tries(&cfg)).to_string()))
    }
}

export_agent!(HostileSecrets);
