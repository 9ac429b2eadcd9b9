//! HTTP requests made by the host (`obra:plugin/http`).
//!
//! The request's origin (scheme, host, port) must be granted (`[capabilities] http` in the manifest, e.g.
//! `"config:base_url"`, and the user's config). Redirects are not followed. Bodies are capped by the host.
//!
//! ```no_run
//! use obra_plugin_sdk::http;
//!
//! # fn main() -> Result<(), obra_plugin_sdk::PluginError> {
//! let version: serde_json::Value = http::get("http://127.0.0.1:11434/api/version")?.json()?;
//!
//! // Stream NDJSON (or SSE) lines as they arrive:
//! let body = serde_json::json!({"model": "qwen2.5-coder", "messages": [], "stream": true});
//! let stream = http::Request::post("http://127.0.0.1:11434/api/chat").json(&body)?.send_streaming()?;
//! for line in stream.lines() {
//!     let line = line?;
//!     // parse `line` as one JSON object, or use obra_plugin_sdk::sse_data(&line) for SSE
//! #   let _ = line;
//! }
//! # let _ = version; Ok(()) }
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;
use crate::bindings::caps::obra::plugin::http as wit;
use crate::bindings::caps::obra::plugin::types::KeyValue;
use crate::lines::LineSplitter;

/// An HTTP request; build it with [`Request::get`], [`Request::post`] or [`Request::new`], then
/// [`Request::send`] or [`Request::send_streaming`].
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    /// A request with this method (`GET`, `POST`, ...) and absolute URL, no headers, no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            inner: wit::Request {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
            },
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push(KeyValue { key: name.into(), value: value.into() });
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Set a JSON body and the `content-type: application/json` header.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, PluginError> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Give up after this long (the grant's limit still applies).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.inner.timeout_ms = Some(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Send and read the whole response. Any HTTP status is `Ok`; `Err` is for requests that got no response
    /// (refused grant, connection failure, time limit).
    pub fn send(&self) -> Result<Response, PluginError> {
        wit::send(&self.inner)
    }

    /// Send and stream the response body (see [`Stream`]).
    pub fn send_streaming(&self) -> Result<Stream, PluginError> {
        wit::send_streaming(&self.inner).map(|inner| Stream {
            inner,
            splitter: RefCell::new(LineSplitter::new()),
            queued: RefCell::new(VecDeque::new()),
            ended: std::cell::Cell::new(false),
        })
    }
}

/// `GET url` and read the whole response.
pub fn get(url: &str) -> Result<Response, PluginError> {
    Request::get(url).send()
}

/// `POST url` with `body` as JSON and read the whole response.
pub fn post_json<T: Serialize + ?Sized>(url: &str, body: &T) -> Result<Response, PluginError> {
    Request::post(url).json(body)?.send()
}

/// A complete HTTP response: status, headers, body (at most the host's body cap).
pub type Response = wit::Response;

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; a body that does not parse is a fatal error quoting its start.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PluginError::fatal(format!(
                "HTTP {} response is not the expected JSON ({e}): {}",
                self.status,
                excerpt(&self.text(), 200)
            ))
        })
    }

    /// The `retry-after` header in milliseconds, when it is a number of seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after").and_then(parse_retry_after_ms)
    }
}

/// A response whose body arrives in pieces. Read it as lines with [`Stream::lines`] / [`Stream::next_line`]
/// (NDJSON, or SSE together with [`crate::sse_data`]), or as raw chunks with [`Stream::next_chunk`]; do not mix
/// the two.
#[derive(Debug)]
pub struct Stream {
    inner: wit::ResponseStream,
    splitter: RefCell<LineSplitter>,
    queued: RefCell<VecDeque<String>>,
    ended: std::cell::Cell<bool>,
}

impl Stream {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.inner.status()
    }

    /// All response headers.
    pub fn headers(&self) -> Vec<KeyValue> {
        self.inner.headers()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        find_header(&self.inner.headers(), name).map(str::to_string)
    }

    /// The `retry-after` header in milliseconds, when it is a number of seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after").as_deref().and_then(parse_retry_after_ms)
    }

    /// The next raw piece of the body, or `None` at its end.
    pub fn next_chunk(&self) -> Result<Option<Vec<u8>>, PluginError> {
        self.inner.next_chunk()
    }

    /// The next complete line of the body (without `\r\n` / `\n`), or `None` at its end; a last line without a
    /// newline is returned too.
    pub fn next_line(&self) -> Result<Option<String>, PluginError> {
        loop {
            if let Some(line) = self.queued.borrow_mut().pop_front() {
                return Ok(Some(line));
            }
            if self.ended.get() {
                return Ok(None);
            }
            match self.inner.next_chunk() {
                Ok(Some(chunk)) => {
                    let lines = self.splitter.borrow_mut().push(&chunk);
                    self.queued.borrow_mut().extend(lines);
                }
                Ok(None) => {
                    self.ended.set(true);
                    let last = self.splitter.borrow_mut().finish();
                    self.queued.borrow_mut().extend(last);
                }
                Err(e) => {
                    self.ended.set(true);
                    return Err(e);
                }
            }
        }
    }

    /// An iterator over the body's lines; it yields an error at most once and then ends.
    pub fn lines(&self) -> StreamLines<'_> {
        StreamLines { stream: self }
    }

    /// Read the rest of the body into memory (e.g. an error response) as text.
    pub fn read_to_string(&self) -> Result<String, PluginError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.inner.next_chunk()? {
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Iterator over a [`Stream`]'s lines; see [`Stream::lines`].
#[derive(Debug)]
pub struct StreamLines<'a> {
    stream: &'a Stream,
}

impl Iterator for StreamLines<'_> {
    type Item = Result<String, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next_line().transpose()
    }
}

fn find_header<'a>(headers: &'a [KeyValue], name: &str) -> Option<&'a str> {
    headers.iter().find(|kv| kv.key.eq_ignore_ascii_case(name)).map(|kv| kv.value.as_str())
}

/// Parse a `retry-after` value into milliseconds from now: (possibly fractional) seconds, or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), compared with the clock; a date in the past gives 0.
///
/// ```
/// use obra_plugin_sdk::http::parse_retry_after_ms;
/// assert_eq!(parse_retry_after_ms("30"), Some(30_000));
/// assert_eq!(parse_retry_after_ms(" 1.5 "), Some(1_500));
/// assert_eq!(parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
/// assert_eq!(parse_retry_after_ms("soon"), None);
/// ```
pub fn parse_retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64);
    }
    let at = http_date_secs(value)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now) * 1000)
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred form).
pub fn http_date_secs(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == month_name)? as u64
        + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).ok().map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

/// At most `max_chars` characters of `text` on one line, with `…` when cut: for quoting replies in errors.
///
/// ```
/// assert_eq!(obra_plugin_sdk::http::excerpt("a\nb", 10), "a b");
/// assert_eq!(obra_plugin_sdk::http::excerpt("abcdef", 3), "abc…");
/// ```
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let flat: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let mut s: String = flat.chars().take(max_chars).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 429,
            headers: vec![KeyValue { key: "Retry-After".into(), value: "2".into() }],
            body: b"{\"error\":\"slow\"}".to_vec(),
        };
        assert!(!r.is_success());
        assert_eq!(r.retry_after_ms(), Some(2000));
        assert_eq!(r.header("retry-after"), Some("2"));
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["error"], "slow");
        let bad = Response { status: 200, headers: vec![], body: b"<html>".to_vec() };
        let err = bad.json::<serde_json::Value>().unwrap_err();
        assert!(err.message().contains("<html>"), "{}", err.message());
    }

    #[test]
    fn request_builder() {
        let r = Request::post("http://x/y")
            .json(&serde_json::json!({"a": 1}))
            .unwrap()
            .timeout(Duration::from_millis(1500));
        assert_eq!(r.inner.method, "POST");
        assert_eq!(r.inner.timeout_ms, Some(1500));
        assert_eq!(r.inner.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(r.inner.headers[0].value, "application/json");
        assert_eq!(r.url(), "http://x/y");
    }

    #[test]
    fn http_dates_are_read() {
        assert_eq!(http_date_secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_secs("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(http_date_secs("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        let future = "Fri, 01 Jan 2100 00:00:00 GMT";
        assert!(parse_retry_after_ms(future).unwrap() > 1_000_000_000);
    }
}
