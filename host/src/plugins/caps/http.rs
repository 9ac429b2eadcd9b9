//! The `http` capability: requests made by the host with reqwest.
//!
//! The URL's origin (scheme, host, port) must be granted by both manifest and config (checked before anything
//! is sent); redirects are never followed, so a granted origin cannot send the plugin elsewhere. Bodies are
//! capped while they stream in; every request has a time limit.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::component::Resource;

use super::{WitError, timed};
use crate::contract::PluginError;
use crate::plugins::bindings::v0_1_0::caps::http::{Host, HostResponseStream, Request, Response};
use crate::plugins::bindings::v0_1_0::caps::types::KeyValue;
use crate::plugins::store::StoreState;

/// A response whose body is read chunk by chunk (the WIT `response-stream` resource).
pub struct ResponseStream {
    status: u16,
    headers: Vec<KeyValue>,
    response: Option<reqwest::Response>,
    read: u64,
    cap: u64,
    deadline: tokio::time::Instant,
    url: String,
}

/// A request checked against the grant, ready to send.
struct Prepared {
    request: reqwest::RequestBuilder,
    timeout: Duration,
    cap: u64,
    url: String,
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

fn headers_of(response: &reqwest::Response) -> Vec<KeyValue> {
    response
        .headers()
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect()
}

impl Prepared {
    async fn send(self) -> Result<(reqwest::Response, u64, String), PluginError> {
        let response = self.request.send().await.map_err(|e| classify(&self.url, e))?;
        if response.content_length().is_some_and(|len| len > self.cap) {
            return Err(too_big(&self.url, self.cap));
        }
        Ok((response, self.cap, self.url))
    }
}

impl StoreState {
    /// Check the origin and build the request; nothing is sent here.
    fn prepare_request(&self, req: Request) -> Result<Prepared, PluginError> {
        let url = self.grant.check_url(&req.url, &self.call.config)?;
        let bad =
            |what: String| PluginError::Fatal(format!("plugin {:?} sent an invalid request: {what}", self.plugin));
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| bad(format!("{:?} is not an HTTP method", req.method)))?;
        let mut headers = HeaderMap::new();
        for kv in &req.headers {
            let name =
                HeaderName::from_bytes(kv.key.as_bytes()).map_err(|_| bad(format!("bad header name {:?}", kv.key)))?;
            let value = self.with_secrets(&kv.value)?;
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
        tracing::debug!(plugin = %self.plugin, method = %req.method, url = %url, "http request");
        Ok(Prepared { request, timeout, cap: limits.max_http_body_bytes, url: url.to_string() })
    }
}

impl StoreState {
    /// A header value with each `{env:NAME}` replaced by the value of Obra's environment variable `NAME`, which
    /// must be granted to the plugin (`env` in its manifest and in `plugins.grants.<plugin>.env`): how a plugin
    /// sends an API key it never sees. Only to origins its grant allows, like every request.
    fn with_secrets(&self, value: &str) -> Result<String, PluginError> {
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
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(chunk))) => {
                s.read += chunk.len() as u64;
                if s.read > s.cap { Err(too_big(&s.url, s.cap)) } else { Ok(Some(chunk.to_vec())) }
            }
        };
        if !matches!(result, Ok(Some(_))) {
            s.response = None;
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
            let (mut response, cap, url) = p.send().await?;
            let status = response.status().as_u16();
            let headers = headers_of(&response);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(&url, e))? {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(too_big(&url, cap));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response { status, headers, body })
        });
        timed(self.timer("http.send"), work).await
    }

    async fn send_streaming(&mut self, req: Request) -> wasmtime::Result<Result<Resource<ResponseStream>, WitError>> {
        let work = self.prepare_request(req).map(|p| async move {
            let deadline = tokio::time::Instant::now() + p.timeout;
            let (response, cap, url) = p.send().await?;
            Ok(ResponseStream {
                status: response.status().as_u16(),
                headers: headers_of(&response),
                response: Some(response),
                read: 0,
                cap,
                deadline,
                url,
            })
        });
        let stream = match timed(self.timer("http.send-streaming"), work).await? {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(stream)?))
    }
}
