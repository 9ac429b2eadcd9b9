//! The HTTP plumbing shared by the fake servers: a hyper HTTP/1 server on `127.0.0.1:0` that runs on its
//! own thread with its own single-threaded tokio runtime, so it works the same from synchronous tests and
//! from inside any tokio runtime (a blocking call in the test never starves the server), and stops when
//! its handle is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

/// One HTTP request as a fake server received it, kept so that tests can assert on what a client sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, upper case (`"POST"`, `"GET"`, `"HEAD"`).
    pub method: String,
    /// Path with the query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw request body.
    pub body: Bytes,
    /// The body parsed as JSON, or `None` when it is empty or not JSON.
    pub json: Option<Value>,
}

impl RecordedRequest {
    /// The path without the query string (`/v1/messages` for `/v1/messages?beta=true`).
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The JSON value at `pointer` (RFC 6901, e.g. `"/options/num_ctx"`) in the parsed body.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        self.json.as_ref()?.pointer(pointer)
    }

    /// The body's top-level `"model"` string, if any.
    pub fn model(&self) -> Option<&str> {
        self.pointer("/model")?.as_str()
    }

    /// Whether the body asked for a streamed reply (`"stream": true`). `default` is what the protocol assumes
    /// when the field is absent (false for Anthropic, true for Ollama).
    pub fn stream_or(&self, default: bool) -> bool {
        self.pointer("/stream").and_then(Value::as_bool).unwrap_or(default)
    }

    /// Every piece of text anywhere in the JSON body (system prompt, messages, tool results...), joined with
    /// newlines. Handy for `assert!(req.all_text().contains("the feedback"))`.
    pub fn all_text(&self) -> String {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                Value::Object(map) => map.values().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(v) = &self.json {
            walk(v, &mut out);
        }
        out.join("\n")
    }
}

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What a fake does with a request.
pub(crate) type Handler = Arc<dyn Fn(RecordedRequest) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// A running server; dropping it stops the server thread (open connections are closed).
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind `127.0.0.1:0` and serve `handler` on a dedicated thread named `name`.
    pub(crate) fn start(name: &str, handler: Handler) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{name}: cannot bind 127.0.0.1:0: {e}"));
        listener.set_nonblocking(true).expect("set listener non-blocking");
        let addr = listener.local_addr().expect("listener address");
        let (tx, rx) = oneshot::channel::<()>();
        let thread_name = format!("{name}-{}", addr.port());
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the fake server's tokio runtime");
                rt.block_on(accept_loop(listener, handler, rx));
                // Dropping the runtime cancels the connection tasks still running.
            })
            .expect("spawn the fake server thread");
        Server { addr, shutdown: Some(tx), thread: Some(thread) }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: std::net::TcpListener, handler: Handler, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener with tokio");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handle(req, handler).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn handle(req: Request<hyper::body::Incoming>, handler: Handler) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return text_response(StatusCode::BAD_REQUEST, "text/plain", format!("cannot read body: {e}"));
        }
    };
    let json = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    let path =
        parts.uri.path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| parts.uri.path().to_string());
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let recorded = RecordedRequest { method: parts.method.as_str().to_string(), path, headers, body, json };
    if std::env::var_os("OBRA_TESTKIT_LOG").is_some() {
        eprintln!(
            "[obra-testkit] {} {} model={:?} stream={:?}",
            recorded.method,
            recorded.path,
            recorded.model(),
            recorded.pointer("/stream")
        );
    }
    handler(recorded).await
}

/// A complete (non-streamed) response with a content type.
pub(crate) fn text_response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    set_header(&mut resp, "content-type", content_type);
    resp
}

/// A complete JSON response.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    text_response(status, "application/json", value.to_string())
}

/// A streamed (chunked) response: each chunk is written after waiting its delay.
pub(crate) fn streamed_response(
    status: StatusCode,
    content_type: &str,
    chunks: Vec<(Duration, Bytes)>,
) -> Response<Body> {
    let stream = futures_util::stream::iter(chunks).then(|(delay, chunk)| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(Frame::data(chunk))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *resp.status_mut() = status;
    set_header(&mut resp, "content-type", content_type);
    resp
}

/// Set (replace) a header; silently ignores names or values that are not valid HTTP.
pub(crate) fn set_header(resp: &mut Response<Body>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        resp.headers_mut().insert(n, v);
    }
}

/// Seconds and nanoseconds since the Unix epoch.
fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Current UTC time as RFC 3339 with nanoseconds, like Go's `time.Time` JSON (`2024-05-01T10:20:30.123456789Z`).
pub(crate) fn rfc3339_now() -> String {
    let now = now();
    let secs = now.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A process-unique, random-looking id suffix (base62) for message ids, request ids and tool-use ids.
pub(crate) fn unique_id(len: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 over (time, counter, pid): unique within the process, varied across processes.
    let mut state = (now().as_nanos() as u64) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.push(ALPHABET[(z % 62) as usize] as char);
    }
    out
}

/// Split `text` into small pieces the way a model streams tokens: words with their following whitespace, long
/// words cut every 12 characters. Concatenating the pieces gives back `text` exactly.
pub(crate) fn token_pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        let is_space = ch.is_whitespace();
        if (!is_space && in_space) || current.chars().count() >= 12 {
            pieces.push(std::mem::take(&mut current));
        }
        in_space = is_space;
        current.push(ch);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_pieces_concatenate_back_to_the_text() {
        for text in ["", "a", "hello world  foo\nbar", "{\"a\": [1, 2, 3], \"long\": \"abcdefghijklmnopqrstuvwxyz\"}"] {
            let pieces = token_pieces(text);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert!(token_pieces("one two three").len() >= 3);
    }

    #[test]
    fn civil_from_days_matches_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let s = rfc3339_now();
        assert_eq!(s.len(), "2024-05-01T10:20:30.123456789Z".len(), "{s}");
    }

    #[test]
    fn unique_ids_differ() {
        let a = unique_id(24);
        let b = unique_id(24);
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
