//! Reading aider's plain-text output and normalising how a run ended. Pure: no host calls, so it is unit-tested
//! on the host target over output recorded from the real CLI (`tests/fixtures/aider/`).
//!
//! Aider prints no machine-readable output. With `--no-pretty`, `COLUMNS=4096` and `PYTHONUNBUFFERED=1` it
//! writes one message per line as it happens; the lines that matter:
//! - `Tokens: 2.4k sent[, 1.2k cache write][, 500 cache hit], 22 received.[ Cost: $0.01 message, $0.03 session.]`
//!   after each model reply (one per turn; counts under 10k have one decimal, above that are rounded);
//! - `Cost: $X message, $Y session.` (on its own line when both cache counts are reported);
//! - `Applied edit to <path>` for each file written;
//! - `litellm.<ErrorName>: <message>` when an API call failed, followed by `Retrying in N.N seconds...` when
//!   aider retries it (its exit code stays 0 when it gives up);
//! - `The LLM did not conform to the edit format.` when a reply's edits could not be applied, and
//!   `Only N reflections allowed, stopping.` when aider gave up asking for corrected edits;
//! - `An uncaught exception occurred:` when aider itself crashed;
//! - `## SearchReplaceNoExactMatch: This SEARCH block failed to exactly match lines in <path>` (one per
//!   SEARCH/REPLACE block it could not apply, under `# N SEARCH/REPLACE block(s) failed to match!`).
//!
//! Failed actions (for `agent-report`, [`OutputParser::failed_actions`]): each edit block aider could not
//! apply to a file it did not edit later in the run (`Edit <path>: <aider's reason>`), and its giving up
//! (`Only N reflections allowed, stopping.`).
//!
//! How a run is classified ([`OutputParser::finish`]), first match wins:
//! 1. killed at the time limit -> `timeout`;
//! 2. an uncaught exception (aider's own crash report) -> `crashed`, with the tail of the output;
//! 3. an API error after the last model reply (aider gave up, or the plugin stopped it after `api_retries`):
//!    `RateLimitError` -> `rate-limited` (HTTP 429); any other -> `api-error`, with the HTTP status the
//!    LiteLLM error class stands for (e.g. `BadRequestError` 400, `AuthenticationError` 401) when it has one;
//! 4. a signal (not the plugin's stop) or a non-zero exit code -> `crashed`, with the tail of the output;
//! 5. the last reply's edits could not be applied (edit-format failure with no edit applied after it) ->
//!    `unparseable`;
//! 6. no model reply at all (no `Tokens:` line) -> `unparseable`;
//! 7. otherwise `success`; the summary lists the files edited (or says none was).

use obra_plugin_sdk::agent::FailedActions;
use obra_plugin_sdk::process::tail_str;
use obra_plugin_sdk::{Outcome, RunResult, Usage};

/// How much of the output goes into a summary.
pub const SUMMARY_TAIL_BYTES: usize = 2000;

/// How the `aider` process ended, as the host reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessEnd {
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether the host killed it at the time limit.
    pub timed_out: bool,
    /// Whether the plugin stopped it (after an API error it would have retried past `api_retries`).
    pub stopped: bool,
    /// Its standard error (at most the output cap).
    pub stderr: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// The time limit it ran under, in milliseconds.
    pub timeout_ms: u64,
}

/// A LiteLLM error aider reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The LiteLLM exception class, e.g. `RateLimitError`.
    pub name: String,
    /// The rest of the line.
    pub message: String,
}

/// Reads aider's output lines one at a time; see the module docs.
#[derive(Debug, Default)]
pub struct OutputParser {
    /// Every line after the start-up banner (`Repo-map: ...`), for the summary.
    body: Vec<String>,
    banner_done: bool,
    replies: u32,
    usage: Usage,
    edited: Vec<String>,
    /// The last API error not followed by a model reply.
    api_error: Option<ApiError>,
    /// Retries aider announced for the current API error.
    retries: u32,
    /// An edit-format failure not followed by an applied edit.
    edit_failure: bool,
    uncaught: bool,
    /// Edit blocks that did not apply (the path, when the line names one, and the line), and aider giving up.
    failed_edits: Vec<(Option<String>, String)>,
}

impl OutputParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one line of output; returns the progress messages it produces (edits, API errors, retries).
    pub fn feed(&mut self, line: &str) -> Vec<String> {
        let line = line.trim_end();
        if !self.banner_done {
            if line.starts_with("Repo-map:") {
                self.banner_done = true;
                return Vec::new();
            }
        } else if !line.trim().is_empty() {
            self.body.push(line.to_string());
        }
        if let Some(rest) = line.strip_prefix("Tokens: ") {
            self.replies += 1;
            self.api_error = None;
            self.retries = 0;
            self.tokens(rest);
            if let Some(at) = rest.find("Cost: ") {
                self.cost(&rest[at + "Cost: ".len()..]);
            }
            return Vec::new();
        }
        if let Some(rest) = line.strip_prefix("Cost: ") {
            self.cost(rest);
            return Vec::new();
        }
        if let Some(path) = line.strip_prefix("Applied edit to ") {
            let path = path.trim().to_string();
            self.edit_failure = false;
            if !self.edited.contains(&path) {
                self.edited.push(path.clone());
            }
            return vec![format!("Edit {path}")];
        }
        if let Some(error) = api_error(line) {
            let msg = format!("API error: {} {}", error.name, excerpt(&error.message, 160));
            self.api_error = Some(error);
            return vec![msg];
        }
        if let Some(rest) = line.strip_prefix("Retrying in ") {
            self.retries += 1;
            return vec![format!("API retry {}: in {}", self.retries, rest.trim_end_matches("..."))];
        }
        if let Some(rest) = line.strip_prefix("## ")
            && let Some((kind, message)) = rest.split_once(": ")
            && !kind.contains(' ')
        {
            let path = message.rsplit_once(" lines in ").map(|(_, p)| p.trim().to_string());
            self.failed_edits.push((path, format!("{kind}: {}", message.trim())));
            return Vec::new();
        }
        if line.starts_with("Only ") && line.contains(" reflections allowed") {
            self.failed_edits.push((None, format!("aider gave up: {}", line.trim())));
        }
        if line.starts_with("The LLM did not conform to the edit format") {
            self.edit_failure = true;
            return vec!["the model's edits could not be applied".to_string()];
        }
        if line.starts_with("An uncaught exception occurred") {
            self.uncaught = true;
        }
        Vec::new()
    }

    /// How many retries aider announced for the API error it is on now (0 when there is none).
    pub fn retries_of_current_error(&self) -> u32 {
        if self.api_error.is_some() { self.retries } else { 0 }
    }

    /// The edit blocks that did not apply to a file aider did not edit later in the run, and its giving up.
    pub fn failed_actions(&self) -> FailedActions {
        let mut failed = FailedActions::new();
        for (path, line) in &self.failed_edits {
            match path {
                Some(p) if self.edited.contains(p) => {}
                Some(p) => failed.push(&format!("Edit {p}"), line),
                None => failed.push("", line),
            }
        }
        failed
    }

    /// Files aider reported editing, in order.
    pub fn edited(&self) -> &[String] {
        &self.edited
    }

    fn tokens(&mut self, rest: &str) {
        let counts = rest.split(" Cost: ").next().unwrap_or(rest).trim_end_matches('.');
        for part in counts.split(", ") {
            let Some((count, what)) = part.trim().split_once(' ') else { continue };
            let Some(n) = parse_count(count) else { continue };
            match what.trim_end_matches('.') {
                "sent" => self.usage.input_tokens = self.usage.input_tokens.saturating_add(n),
                "received" => self.usage.output_tokens = self.usage.output_tokens.saturating_add(n),
                "cache write" => self.usage.cache_write_tokens = self.usage.cache_write_tokens.saturating_add(n),
                "cache hit" => self.usage.cache_read_tokens = self.usage.cache_read_tokens.saturating_add(n),
                _ => {}
            }
        }
    }

    fn cost(&mut self, rest: &str) {
        // `$0.01 message, $0.03 session.`: the session total is the run's cost so far.
        let session = rest.split(", ").find_map(|p| p.trim().trim_end_matches('.').strip_suffix(" session"));
        if let Some(value) = session.and_then(|s| s.trim().strip_prefix('$')).and_then(|s| s.parse::<f64>().ok()) {
            self.usage.cost_usd = Some(value);
        }
    }

    /// Classify the run (see the module docs).
    pub fn finish(self, end: &ProcessEnd) -> RunResult {
        let tail = self.tail();
        let (outcome, summary, status) = if end.timed_out {
            (
                Outcome::Timeout,
                format!("aider ran past its time limit of {} ms; output ended with:\n{tail}", end.timeout_ms),
                None,
            )
        } else if self.uncaught {
            let stderr = tail_str(end.stderr.trim(), SUMMARY_TAIL_BYTES);
            (
                Outcome::Crashed,
                format!("aider crashed (uncaught exception):\n{tail}\n{stderr}").trim_end().to_string(),
                None,
            )
        } else if let Some(error) = &self.api_error {
            let status = http_status(&error.name);
            let outcome = if error.name == "RateLimitError" { Outcome::RateLimited } else { Outcome::ApiError };
            let how = if end.stopped {
                format!(" (stopped after {} of aider's retries)", self.retries)
            } else {
                String::new()
            };
            (outcome, format!("model API error{how}: litellm.{}: {}", error.name, error.message), status)
        } else if end.signal.is_some() || end.exit_code.is_some_and(|c| c != 0) {
            let how = match (end.exit_code, end.signal) {
                (_, Some(sig)) => format!("was killed by signal {sig}"),
                (code, _) => format!("exited with code {}", code.unwrap_or(-1)),
            };
            let stderr = tail_str(end.stderr.trim(), SUMMARY_TAIL_BYTES);
            (
                Outcome::Crashed,
                format!("aider {how}; output ended with:\n{tail}\n{stderr}").trim_end().to_string(),
                None,
            )
        } else if self.edit_failure {
            (Outcome::Unparseable, format!("aider could not apply the model's edits:\n{tail}"), None)
        } else if self.replies == 0 {
            (Outcome::Unparseable, format!("aider printed no model reply; output ended with:\n{tail}"), None)
        } else {
            let edits = if self.edited.is_empty() {
                "aider edited no file".to_string()
            } else {
                format!("aider edited {}", self.edited.join(", "))
            };
            (Outcome::Success, format!("{edits}.\n{tail}").trim_end().to_string(), None)
        };
        let mut result = RunResult::new(outcome, summary);
        result.turns = self.replies;
        result.usage = self.usage;
        result.duration_ms = end.duration_ms;
        result.api_status = status;
        result.exit_code = end.exit_code;
        result
    }

    fn tail(&self) -> String {
        tail_str(&self.body.join("\n"), SUMMARY_TAIL_BYTES).to_string()
    }
}

/// `litellm.RateLimitError: RateLimitError: OpenAIException - ...` -> `RateLimitError` and the message.
fn api_error(line: &str) -> Option<ApiError> {
    let rest = line.strip_prefix("litellm.")?;
    let (name, message) = rest.split_once(':')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if !(name.ends_with("Error") || name == "Timeout") {
        return None;
    }
    let message = message.trim();
    let message = message.strip_prefix(&format!("{name}:")).map(str::trim).unwrap_or(message);
    Some(ApiError { name: name.to_string(), message: message.to_string() })
}

/// The HTTP status a LiteLLM exception class stands for (litellm maps statuses to these classes).
pub fn http_status(name: &str) -> Option<u16> {
    Some(match name {
        "BadRequestError" | "ContextWindowExceededError" | "ContentPolicyViolationError" | "UnsupportedParamsError" => {
            400
        }
        "AuthenticationError" => 401,
        "PermissionDeniedError" => 403,
        "NotFoundError" => 404,
        "Timeout" => 408,
        "UnprocessableEntityError" => 422,
        "RateLimitError" => 429,
        "InternalServerError" => 500,
        "BadGatewayError" => 502,
        "ServiceUnavailableError" => 503,
        _ => return None,
    })
}

/// `22` -> 22, `2.4k` -> 2400, `12k` -> 12000, `1.5M` -> 1500000.
fn parse_count(text: &str) -> Option<u64> {
    let (num, mult) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1_000.0),
        'M' => (&text[..text.len() - 1], 1_000_000.0),
        _ => (text, 1.0),
    };
    let value: f64 = num.parse().ok()?;
    (value >= 0.0).then(|| (value * mult).round() as u64)
}

fn excerpt(text: &str, max: usize) -> String {
    obra_plugin_sdk::http::excerpt(text, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: i32) -> ProcessEnd {
        ProcessEnd { exit_code: Some(code), duration_ms: 5, timeout_ms: 60_000, ..ProcessEnd::default() }
    }

    fn replay(stdout: &str, end: &ProcessEnd) -> (Vec<String>, RunResult) {
        let mut parser = OutputParser::new();
        let mut progress = Vec::new();
        for line in stdout.lines() {
            progress.extend(parser.feed(line));
        }
        (progress, parser.finish(end))
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/aider/", $name, ".stdout.txt"))
        };
    }

    #[test]
    fn a_whole_file_edit_is_a_success_with_its_usage() {
        let (progress, r) = replay(fixture!("success"), &ended(0));
        assert_eq!(r.outcome, Outcome::Success, "{}", r.summary);
        assert_eq!(progress, ["Edit hello.txt"]);
        assert!(r.summary.starts_with("aider edited hello.txt."), "{}", r.summary);
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (120, 30));
        assert_eq!(r.usage.cost_usd, None, "no price known for the fake model");
        assert_eq!(r.turns, 1);
        assert_eq!(r.exit_code, Some(0));
    }

    #[test]
    fn a_reply_without_edits_is_a_success_that_says_so() {
        let (_, r) = replay(fixture!("no-edit"), &ended(0));
        assert_eq!(r.outcome, Outcome::Success);
        assert!(r.summary.starts_with("aider edited no file."), "{}", r.summary);
        assert!(r.summary.contains("I cannot do that, sorry."), "{}", r.summary);
    }

    #[test]
    fn edits_that_never_apply_are_unparseable() {
        let (progress, r) = replay(fixture!("bad-edit"), &ended(0));
        assert_eq!(r.outcome, Outcome::Unparseable, "{}", r.summary);
        assert_eq!(r.turns, 4, "the reply and three reflections");
        assert!(progress.iter().all(|p| p == "the model's edits could not be applied"), "{progress:?}");
        assert!(r.summary.contains("Only 3 reflections allowed"), "{}", r.summary);
        let mut parser = OutputParser::new();
        for line in fixture!("bad-edit").lines() {
            parser.feed(line);
        }
        assert_eq!(
            parser.failed_actions().lines(),
            [
                "Edit README.md: SearchReplaceNoExactMatch: This SEARCH block failed to exactly match lines in README.md",
                "aider gave up: Only 3 reflections allowed, stopping.",
            ]
        );
        // Four replies of the fake server's usage (120 prompt, 30 completion tokens) each.
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (480, 120));
    }

    #[test]
    fn a_bad_request_is_an_api_error_400_although_aider_exits_0() {
        let (_, r) = replay(fixture!("bad-request"), &ended(0));
        assert_eq!(r.outcome, Outcome::ApiError);
        assert_eq!(r.api_status, Some(400));
        assert!(r.summary.contains("litellm.BadRequestError: OpenAIException - bad things"), "{}", r.summary);
    }

    #[test]
    fn a_rate_limit_the_plugin_stopped_is_rate_limited() {
        let end = ProcessEnd { stopped: true, signal: Some(9), exit_code: None, ..ended(0) };
        let (progress, r) = replay(fixture!("rate-limit-retries"), &end);
        assert_eq!(r.outcome, Outcome::RateLimited, "{}", r.summary);
        assert_eq!(r.api_status, Some(429));
        assert!(r.summary.contains("stopped after 1 of aider's retries"), "{}", r.summary);
        assert_eq!(progress.len(), 2, "{progress:?}");
        assert_eq!(r.retry_after_ms, None, "aider does not print the server's retry-after");
    }

    #[test]
    fn retries_are_counted_per_error_and_a_later_reply_clears_the_error() {
        let mut p = OutputParser::new();
        for line in [
            "Repo-map: disabled",
            "litellm.InternalServerError: InternalServerError: boom",
            "Retrying in 0.2 seconds...",
        ] {
            p.feed(line);
        }
        assert_eq!(p.retries_of_current_error(), 1);
        p.feed("Tokens: 1.2k sent, 12k received. Cost: $0.0012 message, $0.25 session.");
        p.feed("Applied edit to a.txt");
        assert_eq!(p.retries_of_current_error(), 0);
        let r = p.finish(&ended(0));
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens, r.usage.cost_usd), (1200, 12_000, Some(0.25)));
    }

    #[test]
    fn cache_counts_and_a_separate_cost_line_are_read() {
        let mut p = OutputParser::new();
        p.feed("Tokens: 3.0k sent, 1.5k cache write, 900 cache hit, 40 received.");
        p.feed("Cost: $0.02 message, $0.02 session.");
        let r = p.finish(&ended(0));
        assert_eq!(r.usage.cache_write_tokens, 1500);
        assert_eq!(r.usage.cache_read_tokens, 900);
        assert_eq!(r.usage.cost_usd, Some(0.02));
    }

    #[test]
    fn an_uncaught_exception_is_a_crash() {
        let (_, r) = replay(fixture!("uncaught-exception"), &ended(0));
        assert_eq!(r.outcome, Outcome::Crashed, "{}", r.summary);
        assert!(r.summary.contains("FileNotFoundError"), "{}", r.summary);
        assert!(r.summary.starts_with("aider crashed (uncaught exception)"), "an API error before it does not hide it");
    }

    #[test]
    fn no_output_a_signal_and_a_timeout_are_classified() {
        let (_, r) = replay("", &ended(0));
        assert_eq!(r.outcome, Outcome::Unparseable);
        let (_, r) = replay("", &ProcessEnd { exit_code: None, signal: Some(9), ..ended(0) });
        assert_eq!(r.outcome, Outcome::Crashed);
        assert!(r.summary.contains("signal 9"), "{}", r.summary);
        let (_, r) = replay("", &ProcessEnd { stderr: "ModuleNotFoundError: litellm".into(), ..ended(1) });
        assert_eq!(r.outcome, Outcome::Crashed);
        assert!(r.summary.contains("exited with code 1") && r.summary.contains("ModuleNotFoundError"));
        let (_, r) = replay(fixture!("rate-limit-retries"), &ProcessEnd { timed_out: true, ..ended(0) });
        assert_eq!(r.outcome, Outcome::Timeout);
    }

    #[test]
    fn error_classes_map_to_statuses() {
        assert_eq!(http_status("AuthenticationError"), Some(401));
        assert_eq!(http_status("ServiceUnavailableError"), Some(503));
        assert_eq!(http_status("APIConnectionError"), None);
        assert_eq!(api_error("litellm.APIConnectionError: Connection error.").unwrap().name, "APIConnectionError");
        assert!(api_error("litellm.foo.bar: x").is_none());
        assert_eq!(parse_count("2.4k"), Some(2400));
        assert_eq!(parse_count("1.5M"), Some(1_500_000));
        assert_eq!(parse_count("x"), None);
    }
}
