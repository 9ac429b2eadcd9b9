//! The `http` capability: requests made by the host with reqwest.
//!
//! The URL's origin (scheme, host, port) must be granted by both manifest and config (checked before anything
//! is sent); redirects are never followed, so a granted origin cannot send the plugin elsewhere, and a secret the
//! host filled into a header (`{env:NAME}`) goes to the granted origin only. The response's headers and body are
//! redacted of every secret the host filled in before the guest sees them, so a server that echoes the request
//! cannot hand the key to the plugin (ADR 36). The guest may not set `Host`, `Content-Length` or hop-by-hop
//! headers ([`FORBIDDEN_HEADERS`]). Bodies are capped while they stream in; every request has a time limit.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::component::Resource;

use super::{WitError, timed};
use crate::contract::PluginError;
use crate::plugins::bindings::v0_1_0::caps::http::{Host, HostResponseStream, Request, Response};
use crate::plugins::bindings::v0_1_0::caps::types::KeyValue;
use crate::plugins::instance_state::StoreState;
use crate::plugins::quota::{Counted, Permit};

/// Request headers a plugin may not set: the host derives them from the URL and body (`host`,
/// `content-length`) or they govern the connection, not the request (hop-by-hop headers, and every `proxy-*`).
pub const FORBIDDEN_HEADERS: &[&str] =
    &["host", "content-length", "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"];

/// Why the guest may not set header `name` (lowercase), if it may not.
fn forbidden_header(name: &str) -> Option<&'static str> {
    if name.starts_with("proxy-") {
        Some("it is meant for a proxy, and Obra's requests go through none")
    } else if name == "host" {
        Some("the host sets it from the URL, whose origin the grant checks")
    } else if name == "content-length" {
        Some("the host sets it from the body")
    } else if FORBIDDEN_HEADERS.contains(&name) {
        Some("it is a hop-by-hop header, which the host's HTTP client manages")
    } else {
        None
    }
}

/// The secrets the host filled into a request, and what each becomes in the response the guest sees.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Each secret's bytes and its replacement, longest first.
    secrets: Vec<(Vec<u8>, Vec<u8>)>,
    /// The end of the last chunk, held back while it could be the start of a secret.
    held: Vec<u8>,
}

impl Redactor {
    /// Remember `secret` (the value of `{env:NAME}`) for redaction; an empty value is ignored.
    pub fn add(&mut self, name: &str, secret: &str) {
        if secret.is_empty() || self.secrets.iter().any(|(s, _)| s == secret.as_bytes()) {
            return;
        }
        let replacement = format!("[{{env:{name}}} redacted by Obra]").into_bytes();
        self.secrets.push((secret.as_bytes().to_vec(), replacement));
        self.secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `bytes` with every secret replaced.
    pub fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            for (secret, replacement) in &self.secrets {
                if bytes[i..].starts_with(secret) {
                    out.extend_from_slice(replacement);
                    i += secret.len();
                    continue 'scan;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// A response header's name with every secret replaced, ignoring ASCII case: the HTTP client lower-cases
    /// names, so a server that names a header after the secret hands it over lower-cased.
    pub fn redact_name(&self, name: &str) -> String {
        if self.is_empty() {
            return name.to_string();
        }
        let lower = Redactor {
            secrets: self.secrets.iter().map(|(s, r)| (s.to_ascii_lowercase(), r.clone())).collect(),
            held: Vec::new(),
        };
        String::from_utf8_lossy(&lower.redact(name.to_ascii_lowercase().as_bytes())).into_owned()
    }

    /// `text` with every secret replaced.
    pub fn redact_text(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }

    /// The next piece of a streamed body, redacted: a secret split across chunks is caught because the end of a
    /// chunk that could begin one is held back until the next chunk (or [`Redactor::finish`]).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return chunk.to_vec();
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        // Redact up to `safe`; the bytes after it may begin a secret the next chunk completes.
        let longest = self.secrets.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        'scan: while i < data.len() {
            for (secret, replacement) in &self.secrets {
                if data[i..].starts_with(secret) {
                    out.extend_from_slice(replacement);
                    i += secret.len();
                    continue 'scan;
                }
            }
            let rest = &data[i..];
            if rest.len() < longest && self.secrets.iter().any(|(s, _)| s.starts_with(rest)) {
                self.held = rest.to_vec();
                return out;
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    /// What [`Redactor::feed`] held back, at the end of the body.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// A response whose body is read chunk by chunk (the WIT `response-stream` resource).
pub struct ResponseStream {
    status: u16,
    headers: Vec<KeyValue>,
    response: Option<reqwest::Response>,
    read: u64,
    cap: u64,
    deadline: tokio::time::Instant,
    url: String,
    redactor: Redactor,
    /// The plugin's `max_http_streams` quota unit, given back when the body ends (or the handle is dropped).
    permit: Option<Permit>,
}

/// A request checked against the grant, ready to send.
struct Prepared {
    request: reqwest::RequestBuilder,
    timeout: Duration,
    cap: u64,
    url: String,
    redactor: Redactor,
    /// The plugin's `max_http_streams` quota unit, held while the request is in flight.
    permit: Permit,
}

/// A request sent: its response, whose body is still to read.
struct Sent {
    response: reqwest::Response,
    cap: u64,
    url: String,
    redactor: Redactor,
    permit: Permit,
}

fn classify(url: &str, e: reqwest::Error) -> PluginError {
    let what = format!("request to {url} failed: {e}");
    if e.is_timeout() {
        PluginError::Timeout(format!(
            "request to {url} got no answer within its time limit (the request's timeout, at most \
             plugins.limits.host_call_timeout_secs)"
        ))
    } else if e.is_builder() {
        PluginError::Fatal(what)
    } else {
        PluginError::Retryable(what)
    }
}

fn too_big(url: &str, cap: u64) -> PluginError {
    PluginError::Fatal(format!(
        "the response body of {url} is larger than the cap of {cap} bytes (plugins.limits.max_http_body_bytes)"
    ))
}

/// The response's headers as the guest sees them: every host-filled secret redacted, from values and names.
fn headers_of(response: &reqwest::Response, redactor: &Redactor) -> Vec<KeyValue> {
    response
        .headers()
        .iter()
        .map(|(k, v)| KeyValue {
            key: redactor.redact_name(k.as_str()),
            value: redactor.redact_text(&String::from_utf8_lossy(v.as_bytes())),
        })
        .collect()
}

impl Prepared {
    async fn send(self) -> Result<Sent, PluginError> {
        let response = self.request.send().await.map_err(|e| classify(&self.url, e))?;
        if response.content_length().is_some_and(|len| len > self.cap) {
            return Err(too_big(&self.url, self.cap));
        }
        Ok(Sent { response, cap: self.cap, url: self.url, redactor: self.redactor, permit: self.permit })
    }
}

impl StoreState {
    /// Check the origin, the headers and the `max_http_streams` quota, and build the request; nothing is sent
    /// here.
    fn prepare_request(&self, req: Request) -> Result<Prepared, PluginError> {
        let url = self.grant.check_url(&req.url, &self.call.config)?;
        let bad =
            |what: String| PluginError::Fatal(format!("plugin {:?} sent an invalid request: {what}", self.plugin));
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| bad(format!("{:?} is not an HTTP method", req.method)))?;
        let mut headers = HeaderMap::new();
        let mut redactor = Redactor::default();
        for kv in &req.headers {
            let name =
                HeaderName::from_bytes(kv.key.as_bytes()).map_err(|_| bad(format!("bad header name {:?}", kv.key)))?;
            if let Some(why) = forbidden_header(name.as_str()) {
                return Err(PluginError::Fatal(format!(
                    "plugin {:?} may not set the HTTP header {:?}: {why} (refused: Host, Content-Length, Connection, \
                     Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade)",
                    self.plugin, kv.key
                )));
            }
            let value = self.with_secrets(&kv.value, &mut redactor)?;
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| bad(format!("bad value for header {}", kv.key)))?;
            value.set_sensitive(kv.value.contains("{env:"));
            headers.append(name, value);
        }
        let limits = &self.grant.limits;
        let ceiling = Duration::from_secs(limits.host_call_timeout_secs);
        let timeout = req.timeout_ms.map_or(ceiling, |ms| Duration::from_millis(ms).min(ceiling));
        let mut request = self.services.http.request(method, url.clone()).headers(headers).timeout(timeout);
        if let Some(body) = req.body {
            request = request.body(body);
        }
        let permit = self.quotas.take(&self.plugin, Counted::HttpStream, limits.max_http_streams)?;
        tracing::debug!(plugin = %self.plugin, method = %req.method, url = %url, "http request");
        Ok(Prepared { request, timeout, cap: limits.max_http_body_bytes, url: url.to_string(), redactor, permit })
    }
}

impl StoreState {
    /// A header value with each `{env:NAME}` replaced by the value of Obra's environment variable `NAME`, which
    /// must be granted to the plugin (`env` in its manifest and in `plugins.grants.<plugin>.env`): how a plugin
    /// sends an API key it never sees. Only to origins its grant allows, like every request.
    /// Each secret filled in is added to `redactor`, which removes it from the response.
    fn with_secrets(&self, value: &str, redactor: &mut Redactor) -> Result<String, PluginError> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("{env:") {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 5..start + len];
            self.grant.check_env(name).map_err(|e| match e {
                PluginError::Denied(msg) => {
                    PluginError::Denied(msg.replace("pass the environment variable", "send the environment variable"))
                }
                other => other,
            })?;
            let secret = std::env::var(name).map_err(|_| {
                PluginError::Fatal(format!(
                    "the environment variable {name} is not set in Obra's environment: export it (plugin {:?} sends \
                     it as an HTTP header, e.g. an API key)",
                    self.plugin
                ))
            })?;
            redactor.add(name, &secret);
            out.push_str(&rest[..start]);
            out.push_str(&secret);
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl HostResponseStream for StoreState {
    async fn status(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&stream)?.status)
    }

    async fn headers(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<Vec<KeyValue>> {
        Ok(self.table.get(&stream)?.headers.clone())
    }

    async fn next_chunk(
        &mut self,
        stream: Resource<ResponseStream>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        let s = self.table.get_mut(&stream)?;
        let Some(response) = s.response.as_mut() else {
            return Ok(Ok(None));
        };
        let result = match tokio::time::timeout_at(s.deadline, response.chunk()).await {
            Err(_) => {
                Err(PluginError::Timeout(format!("the response of {} did not finish within its time limit", s.url)))
            }
            Ok(Err(e)) => Err(classify(&s.url, e)),
            Ok(Ok(None)) => {
                let held = s.redactor.finish();
                if held.is_empty() { Ok(None) } else { Ok(Some(held)) }
            }
            Ok(Ok(Some(chunk))) => {
                s.read += chunk.len() as u64;
                if s.read > s.cap { Err(too_big(&s.url, s.cap)) } else { Ok(Some(s.redactor.feed(&chunk))) }
            }
        };
        if !matches!(result, Ok(Some(_))) {
            s.response = None;
            s.permit = None;
        }
        Ok(result.map_err(Into::into))
    }

    async fn drop(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl Host for StoreState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, WitError>> {
        let work = self.prepare_request(req).map(|p| async move {
            let Sent { mut response, cap, url, redactor, permit: _permit } = p.send().await?;
            let status = response.status().as_u16();
            let headers = headers_of(&response, &redactor);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(&url, e))? {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(too_big(&url, cap));
                }
                body.extend_from_slice(&chunk);
            }
            let body = if redactor.is_empty() { body } else { redactor.redact(&body) };
            Ok(Response { status, headers, body })
        });
        timed(self.timer("http.send"), work).await
    }

    async fn send_streaming(&mut self, req: Request) -> wasmtime::Result<Result<Resource<ResponseStream>, WitError>> {
        let work = self.prepare_request(req).map(|p| async move {
            let deadline = tokio::time::Instant::now() + p.timeout;
            let Sent { response, cap, url, redactor, permit } = p.send().await?;
            Ok(ResponseStream {
                status: response.status().as_u16(),
                headers: headers_of(&response, &redactor),
                response: Some(response),
                read: 0,
                cap,
                deadline,
                url,
                redactor,
                permit: Some(permit),
            })
        });
        let stream = match timed(self.timer("http.send-streaming"), work).await? {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(stream)?))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::plugins::LimitsConfig;
    use crate::plugins::UserGrant;
    use crate::plugins::grants::EffectiveGrant;
    use crate::plugins::instance_state::HostServices;
    use crate::plugins::manifest::Capabilities;

    /// A loopback server: `/echo` answers with the request head in its body and each request header's value in
    /// an `x-echo-<name>` response header; `/redirect` answers 302 to `target`. Every request head is kept.
    fn server(target: String) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                kept.lock().unwrap().push(head.clone());
                let echoed: String = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| format!("x-echo-{k}: {v}\r\n"))
                    .collect();
                let (status, extra) = if head.starts_with("GET /redirect") {
                    ("302 Found", format!("Location: {target}\r\n"))
                } else {
                    ("200 OK", echoed)
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{head}",
                    head.len()
                );
            }
        });
        (url, heads)
    }

    /// A plugin state granted `origin` and the variable `PATH` (always set: it plays the secret here).
    fn state(origin: &str) -> StoreState {
        let requested =
            Capabilities { http: vec![origin.to_string()], env: vec!["PATH".into()], ..Capabilities::default() };
        let allowed = UserGrant { http: vec![origin.to_string()], env: vec!["PATH".into()], ..UserGrant::default() };
        let grant = EffectiveGrant::new("probe", &requested, &allowed, &LimitsConfig::default(), &Default::default());
        StoreState::new("probe".into(), Arc::new(grant), Default::default(), Arc::new(HostServices::new(None).unwrap()))
    }

    fn get(url: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: headers.iter().map(|(k, v)| KeyValue { key: k.to_string(), value: v.to_string() }).collect(),
            body: None,
            timeout_ms: Some(10_000),
        }
    }

    #[tokio::test]
    async fn a_host_filled_secret_echoed_back_is_redacted_in_headers_and_body_streamed_or_not() {
        let secret = std::env::var("PATH").unwrap();
        assert!(secret.len() > 4);
        let (url, heads) = server(String::new());
        let mut st = state(&url);
        let request = get(&format!("{url}/echo"), &[("x-key", "Bearer {env:PATH}")]);
        let response = Host::send(&mut st, request.clone()).await.unwrap().unwrap();
        assert_eq!(response.status, 200);
        assert!(heads.lock().unwrap()[0].contains(&format!("x-key: Bearer {secret}")), "the server got the secret");
        let body = String::from_utf8(response.body).unwrap();
        assert!(!body.contains(&secret), "{body}");
        assert!(body.contains("x-key: Bearer [{env:PATH} redacted by Obra]"), "{body}");
        let echoed = response.headers.iter().find(|h| h.key == "x-echo-x-key").expect("echoed header");
        assert_eq!(echoed.value, "Bearer [{env:PATH} redacted by Obra]");

        let stream = Host::send_streaming(&mut st, request).await.unwrap().unwrap();
        let headers = HostResponseStream::headers(&mut st, Resource::new_borrow(stream.rep())).await.unwrap();
        assert!(headers.iter().all(|h| !h.value.contains(&secret)));
        let mut body = Vec::new();
        while let Some(chunk) =
            HostResponseStream::next_chunk(&mut st, Resource::new_borrow(stream.rep())).await.unwrap().unwrap()
        {
            body.extend(chunk);
        }
        let body = String::from_utf8(body).unwrap();
        assert!(!body.contains(&secret) && body.contains("[{env:PATH} redacted by Obra]"), "{body}");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_so_the_secret_never_reaches_its_target() {
        let (target, target_heads) = server(String::new());
        let (url, heads) = server(format!("{target}/steal"));
        let mut st = state(&url);
        let response =
            Host::send(&mut st, get(&format!("{url}/redirect"), &[("authorization", "{env:PATH}")])).await.unwrap();
        let response = response.unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(heads.lock().unwrap().len(), 1);
        assert!(target_heads.lock().unwrap().is_empty(), "the redirect target got nothing");
        // A request to the target itself is refused: its origin is not granted.
        let refused = Host::send(&mut st, get(&target, &[("authorization", "{env:PATH}")])).await.unwrap();
        assert!(matches!(refused, Err(WitError::Denied(_))), "{refused:?}");
        assert!(target_heads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_guest_cannot_set_host_length_or_hop_by_hop_headers() {
        let (url, heads) = server(String::new());
        let mut st = state(&url);
        for name in [
            "Host",
            "host",
            "Content-Length",
            "Connection",
            "Keep-Alive",
            "Proxy-Authorization",
            "proxy-connection",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            let got = Host::send(&mut st, get(&url, &[(name, "169.254.169.254")])).await.unwrap();
            let Err(WitError::Fatal(message)) = got else { panic!("{name}: {got:?}") };
            assert!(message.contains("may not set the HTTP header") && message.contains(name), "{message}");
        }
        assert!(heads.lock().unwrap().is_empty(), "nothing was sent");
        let ok = Host::send(&mut st, get(&format!("{url}/echo"), &[("x-fine", "1")])).await.unwrap().unwrap();
        let head = String::from_utf8(ok.body).unwrap();
        assert!(head.contains(&format!("host: {}", url.trim_start_matches("http://"))), "{head}");
    }

    #[test]
    fn a_secret_as_a_response_headers_name_is_redacted_whatever_its_case() {
        let mut r = Redactor::default();
        r.add("KEY", "Sk-Live-abc123");
        assert_eq!(r.redact_name("sk-live-abc123"), "[{env:KEY} redacted by Obra]");
        assert_eq!(r.redact_name("x-sk-live-abc123-y"), "x-[{env:KEY} redacted by Obra]-y");
        assert_eq!(r.redact_name("content-type"), "content-type");
        assert_eq!(Redactor::default().redact_name("sk-live-abc123"), "sk-live-abc123");
    }

    #[test]
    fn a_secret_split_across_chunks_is_still_redacted() {
        let mut r = Redactor::default();
        r.add("K", "sk-secret-123");
        r.add("E", "");
        let body = b"before sk-secret-123 middle sk-secret-123 end sk-sec";
        for size in 1..body.len() {
            let mut r = r.clone();
            let mut out = Vec::new();
            for chunk in body.chunks(size) {
                out.extend(r.feed(chunk));
            }
            out.extend(r.finish());
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, "before [{env:K} redacted by Obra] middle [{env:K} redacted by Obra] end sk-sec", "{size}");
        }
        assert_eq!(r.redact_text("no secret"), "no secret");
    }
}
