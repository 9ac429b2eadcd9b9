//! Constructors and conversions for [`PluginError`], the error every plugin call returns.
//!
//! The host's retry policy classifies a failure by its variant alone, so pick the constructor that says what a
//! retry would do: [`PluginError::retryable`] for transient failures, [`PluginError::rate_limited`] when an
//! upstream asked to slow down, [`PluginError::timeout`] when a time limit passed, [`PluginError::fatal`] when
//! retrying cannot help (bad configuration, invalid input). [`PluginError::denied`] is what the host returns when
//! a capability is refused; plugins rarely create it themselves.

use crate::{PluginError, RateLimit};

impl PluginError {
    /// A transient failure: the same call may succeed later.
    ///
    /// ```
    /// # use obra_plugin_sdk::PluginError;
    /// let err = PluginError::retryable("server answered 503");
    /// assert!(err.is_retryable());
    /// ```
    pub fn retryable(message: impl Into<String>) -> Self {
        PluginError::Retryable(message.into())
    }

    /// A permanent failure (bad configuration, authentication, invalid input): retrying cannot help.
    ///
    /// ```
    /// # use obra_plugin_sdk::PluginError;
    /// let err = PluginError::fatal("config: `model` is empty");
    /// assert_eq!(err.message(), "config: `model` is empty");
    /// ```
    pub fn fatal(message: impl Into<String>) -> Self {
        PluginError::Fatal(message.into())
    }

    /// A time limit passed; the message should say which one.
    pub fn timeout(message: impl Into<String>) -> Self {
        PluginError::Timeout(message.into())
    }

    /// A capability was refused. The host creates these; a plugin passes them on unchanged.
    pub fn denied(message: impl Into<String>) -> Self {
        PluginError::Denied(message.into())
    }

    /// The upstream refused for rate or quota reasons; retry no sooner than `retry_after_ms` when given.
    ///
    /// ```
    /// # use obra_plugin_sdk::PluginError;
    /// let err = PluginError::rate_limited("429 Too Many Requests", Some(30_000));
    /// assert_eq!(err.retry_after_ms(), Some(30_000));
    /// ```
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        PluginError::RateLimited(RateLimit { message: message.into(), retry_after_ms })
    }

    /// The human-readable message, without the variant name.
    pub fn message(&self) -> &str {
        match self {
            PluginError::Retryable(m) | PluginError::Timeout(m) | PluginError::Denied(m) | PluginError::Fatal(m) => m,
            PluginError::RateLimited(r) => &r.message,
        }
    }

    /// The variant's name in WIT spelling: `retryable`, `rate-limited`, `timeout`, `denied` or `fatal`.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Retryable(_) => "retryable",
            PluginError::RateLimited(_) => "rate-limited",
            PluginError::Timeout(_) => "timeout",
            PluginError::Denied(_) => "denied",
            PluginError::Fatal(_) => "fatal",
        }
    }

    /// Whether retrying the same call can help (retryable, rate-limited or timeout).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PluginError::Retryable(_) | PluginError::RateLimited(_) | PluginError::Timeout(_))
    }

    /// The retry-after hint of a rate-limit error.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            PluginError::RateLimited(r) => r.retry_after_ms,
            _ => None,
        }
    }

    /// Put `prefix: ` before the message, keeping the variant (and any retry-after hint).
    ///
    /// ```
    /// # use obra_plugin_sdk::PluginError;
    /// let err = PluginError::retryable("connection refused").context("GET http://127.0.0.1:11434/api/tags");
    /// assert_eq!(err.message(), "GET http://127.0.0.1:11434/api/tags: connection refused");
    /// assert!(err.is_retryable());
    /// ```
    pub fn context(self, prefix: impl AsRef<str>) -> Self {
        let prefix = prefix.as_ref();
        match self {
            PluginError::Retryable(m) => PluginError::Retryable(format!("{prefix}: {m}")),
            PluginError::Timeout(m) => PluginError::Timeout(format!("{prefix}: {m}")),
            PluginError::Denied(m) => PluginError::Denied(format!("{prefix}: {m}")),
            PluginError::Fatal(m) => PluginError::Fatal(format!("{prefix}: {m}")),
            PluginError::RateLimited(r) => PluginError::RateLimited(RateLimit {
                message: format!("{prefix}: {}", r.message),
                retry_after_ms: r.retry_after_ms,
            }),
        }
    }
}

/// JSON that does not parse or does not fit the expected type is a fatal error (the same input fails again).
/// Where malformed JSON is transient, e.g. an LLM's reply, map it with [`PluginError::retryable`] instead.
impl From<serde_json::Error> for PluginError {
    fn from(err: serde_json::Error) -> Self {
        PluginError::Fatal(format!("invalid JSON: {err}"))
    }
}

/// Bytes that are not UTF-8 where text was expected: fatal.
impl From<std::string::FromUtf8Error> for PluginError {
    fn from(err: std::string::FromUtf8Error) -> Self {
        PluginError::Fatal(format!("invalid UTF-8: {err}"))
    }
}

/// Extension methods for `Result<T, PluginError>`.
pub trait ResultExt<T> {
    /// Put `prefix: ` before the error's message, keeping its variant.
    ///
    /// ```
    /// # use obra_plugin_sdk::{PluginError, ResultExt};
    /// let r: Result<(), PluginError> = Err(PluginError::fatal("no such file"));
    /// let err = r.context("reading recording.json").unwrap_err();
    /// assert_eq!(err.message(), "reading recording.json: no such file");
    /// ```
    fn context(self, prefix: impl AsRef<str>) -> Result<T, PluginError>;

    /// Like [`ResultExt::context`], building the prefix only on error.
    fn with_context<S: AsRef<str>>(self, prefix: impl FnOnce() -> S) -> Result<T, PluginError>;
}

impl<T, E: Into<PluginError>> ResultExt<T> for Result<T, E> {
    fn context(self, prefix: impl AsRef<str>) -> Result<T, PluginError> {
        self.map_err(|e| e.into().context(prefix))
    }

    fn with_context<S: AsRef<str>>(self, prefix: impl FnOnce() -> S) -> Result<T, PluginError> {
        self.map_err(|e| e.into().context(prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_pick_the_variant() {
        assert_eq!(PluginError::fatal("x").kind(), "fatal");
        assert_eq!(PluginError::retryable("x").kind(), "retryable");
        assert_eq!(PluginError::timeout("x").kind(), "timeout");
        assert_eq!(PluginError::denied("x").kind(), "denied");
        assert_eq!(PluginError::rate_limited("x", None).kind(), "rate-limited");
        assert!(!PluginError::fatal("x").is_retryable());
        assert!(!PluginError::denied("x").is_retryable());
    }

    #[test]
    fn context_keeps_variant_and_retry_after() {
        let err = PluginError::rate_limited("slow down", Some(5)).context("POST /api/chat");
        assert_eq!(err.message(), "POST /api/chat: slow down");
        assert_eq!(err.retry_after_ms(), Some(5));
    }

    #[test]
    fn serde_json_errors_are_fatal() {
        let err: PluginError = serde_json::from_str::<u32>("x").unwrap_err().into();
        assert_eq!(err.kind(), "fatal");
        assert!(err.message().starts_with("invalid JSON"));
    }
}
