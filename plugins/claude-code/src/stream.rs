//! Parsing Claude Code's `--output-format stream-json` output and normalising how a run ended. Pure: no host
//! calls, so it is unit-tested on the host target.
//!
//! The stream is one JSON object per line. The events that matter:
//! - `{"type":"system","subtype":"init","session_id":...,"model":...}` when the CLI starts;
//! - `{"type":"system","subtype":"api_retry","attempt":..,"max_retries":..,"retry_delay_ms":..,"error_status":..}`
//!   when a model API call failed and the CLI waits to retry;
//! - `{"type":"assistant","message":{"id":..,"content":[{"type":"text",..}|{"type":"tool_use","name":..,"input":{..}}],"usage":{..}}}`;
//! - `{"type":"result","subtype":"success"|"error_max_turns"|"error_during_execution"|...,"is_error":..,"result":..,
//!   "session_id":..,"num_turns":..,"duration_ms":..,"total_cost_usd":..,"usage":{..},"permission_denials":[..],
//!   "api_error_status":..}` at the end.
//!
//! - `{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":..,"is_error":true,"content":..}]}}`
//!   when a tool failed inside the CLI (an Edit of a file not read first, a refused command): each is one
//!   failed action, `<tool use>: <error text>` (see [`Normalised::failed_actions`]), as are the result's
//!   `permission_denials` not already reported that way.
//!
//! Anything else (successful tool results, unknown types, partial-message events) is ignored. A line that is not
//! JSON is counted and reported, never fatal. API failures are not a subtype of their own: the CLI ends with
//! `subtype: "success", is_error: true` (exit 1), after a synthetic assistant event whose top-level `error` is
//! e.g. `rate_limit` (see `tests/fixtures/claude/README.md`).
//!
//! How a run is classified ([`StreamParser::finish`]), first match wins:
//! - with a result event:
//!   1. `subtype: error_max_turns` -> `max-turns`;
//!   2. an error with HTTP 429, rate-limit wording, or a preceding `rate_limit` event or rejected
//!      `rate_limit_event` -> `rate-limited` (`retry-after-ms` from the result, its text, the CLI's last 429
//!      retry delay, or the time until the reset the CLI reported: `resetsAt`, `usage limit reached|<epoch>`);
//!   3. an error with `api_error_status` (or `API Error: NNN` in its text) -> `api-error` with `api-status`;
//!   4. permission denials, and an error or an incomplete result (not `success`, an empty result, a
//!      `terminal_reason` other than `completed`, or the agent's last tool use was the refused one) ->
//!      `permission-denied`;
//!   5. `subtype: error_max_budget_usd` -> `max-turns` (the run hit a limit it was given);
//!   6. any other error -> `api-error` when its text says `API Error`, else `crashed`;
//!   7. otherwise `success` (denials that the agent worked around are still listed).
//! - without one: killed at the time limit -> `timeout`; some output lines were not JSON (or the result event
//!   had no shape) -> `unparseable`; otherwise (no output, or only well-formed events) -> `crashed`, with the
//!   tail of stderr in the summary.

use obra_plugin_sdk::agent::FailedActions;
use obra_plugin_sdk::process::tail_str;
use obra_plugin_sdk::{Outcome, RunResult, Usage};
use serde_json::Value;

/// How much of stderr goes into a summary.
pub const STDERR_TAIL_BYTES: usize = 2000;

/// How the `claude` process ended, as the host reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessEnd {
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether the host killed it at the time limit.
    pub timed_out: bool,
    /// Its standard error (at most the output cap).
    pub stderr: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// The time limit it ran under, in milliseconds.
    pub timeout_ms: u64,
    /// When it ended (milliseconds since the Unix epoch), to turn a reset time the CLI reports into a wait.
    pub ended_at_ms: Option<u64>,
}

/// A normalised run: the result to return and warnings worth logging.
#[derive(Debug, Clone)]
pub struct Normalised {
    /// The run's result.
    pub result: RunResult,
    /// Things that went oddly but did not decide the outcome (e.g. non-JSON lines).
    pub warnings: Vec<String>,
    /// Tool uses that failed inside the CLI and permission refusals, for `agent-report`.
    pub failed_actions: FailedActions,
}

/// Reads stream-json lines one at a time; see the module docs.
#[derive(Debug, Default)]
pub struct StreamParser {
    workspace: String,
    lines: u64,
    non_json: u64,
    first_non_json: Option<String>,
    session_id: Option<String>,
    result: Option<serde_json::Map<String, Value>>,
    malformed_result: Option<String>,
    /// Assistant messages seen (by id), with their latest usage: the CLI emits one event per content block,
    /// all carrying the message's usage.
    messages: Vec<(String, Usage)>,
    last_text: Option<String>,
    api_retries: u32,
    /// The `retry_delay_ms` of the last `api_retry` event caused by HTTP 429 (the CLI honours `retry-after`).
    rate_limit_delay_ms: Option<u64>,
    /// The top-level `error` of the last synthetic assistant event (`rate_limit`, `server_error`, ...).
    last_error_kind: Option<String>,
    /// When a rejected rate or usage limit resets (Unix seconds), from the CLI's last `rate_limit_event`
    /// whose status is `rejected` (the API's `anthropic-ratelimit-unified-reset`).
    limit_resets_at: Option<u64>,
    /// The id of the last `tool_use` block: when it was refused, the agent stopped at a denial.
    last_tool_use_id: Option<String>,
    /// Each tool use seen: its id and one-line description (`Edit calc.py`), to name a failed tool result.
    tool_uses: Vec<(String, String)>,
    /// Failed tool results and permission refusals.
    failed: FailedActions,
    /// The tool-use ids of the failed tool results, so a denial already reported is not listed twice.
    failed_ids: Vec<String>,
}

impl StreamParser {
    /// A parser for a run in `workspace` (absolute path; file paths under it are shown relative in progress).
    pub fn new(workspace: &str) -> Self {
        StreamParser { workspace: workspace.trim_end_matches('/').to_string(), ..Self::default() }
    }

    /// Read one line of output; returns the progress messages it produces (tool uses, API retries).
    pub fn feed(&mut self, line: &str) -> Vec<String> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        self.lines += 1;
        let event = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            _ => {
                self.non_json += 1;
                if self.first_non_json.is_none() {
                    self.first_non_json = Some(one_line(line, 120));
                }
                return Vec::new();
            }
        };
        if self.session_id.is_none()
            && let Some(id) = event.get("session_id").and_then(Value::as_str)
        {
            self.session_id = Some(id.to_string());
        }
        match event.get("type").and_then(Value::as_str) {
            Some("assistant") => self.assistant(&event),
            Some("user") => {
                self.tool_results(&event);
                Vec::new()
            }
            Some("system") => self.system(&event),
            Some("rate_limit_event") => {
                let info = event.get("rate_limit_info");
                if info.and_then(|i| i.get("status")).and_then(Value::as_str) == Some("rejected") {
                    self.limit_resets_at =
                        info.and_then(|i| i.get("resetsAt")).and_then(Value::as_f64).map(|s| s as u64);
                }
                Vec::new()
            }
            Some("result") => {
                if event.get("subtype").and_then(Value::as_str).is_some()
                    || event.get("is_error").and_then(Value::as_bool).is_some()
                {
                    self.result = Some(event);
                } else {
                    self.malformed_result = Some(one_line(line, 200));
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn assistant(&mut self, event: &serde_json::Map<String, Value>) -> Vec<String> {
        let mut progress = Vec::new();
        if let Some(kind) = event.get("error").and_then(Value::as_str) {
            self.last_error_kind = Some(kind.to_string());
        }
        let Some(message) = event.get("message") else {
            return progress;
        };
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            let usage = message.get("usage").map(usage_of).unwrap_or_default();
            match self.messages.iter_mut().find(|(m, _)| m == id) {
                Some(entry) => entry.1 = usage,
                None => self.messages.push((id.to_string(), usage)),
            }
        }
        for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    if let Some(id) = block.get("id").and_then(Value::as_str) {
                        self.last_tool_use_id = Some(id.to_string());
                    }
                    let name = block.get("name").and_then(Value::as_str).unwrap_or("tool");
                    let described = describe_tool(name, block.get("input"), &self.workspace);
                    if let Some(id) = block.get("id").and_then(Value::as_str) {
                        self.tool_uses.push((id.to_string(), described.clone()));
                    }
                    progress.push(described);
                }
                Some("text") => {
                    if let Some(text) = block.get("text").and_then(Value::as_str)
                        && !text.trim().is_empty()
                    {
                        self.last_text = Some(text.to_string());
                    }
                }
                _ => {}
            }
        }
        progress
    }

    /// Record the failed tool results of a `user` event (`is_error: true`).
    fn tool_results(&mut self, event: &serde_json::Map<String, Value>) {
        let blocks = event.get("message").and_then(|m| m.get("content")).and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            if block.get("type").and_then(Value::as_str) != Some("tool_result")
                || block.get("is_error").and_then(Value::as_bool) != Some(true)
            {
                continue;
            }
            let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
            let what = self.tool_uses.iter().rev().find(|(i, _)| i == id).map_or("tool", |(_, d)| d.as_str());
            let why = tool_error_text(block.get("content"));
            self.failed.push(what, &relative_in_text(&why, &self.workspace));
            self.failed_ids.push(id.to_string());
        }
    }

    fn system(&mut self, event: &serde_json::Map<String, Value>) -> Vec<String> {
        if event.get("subtype").and_then(Value::as_str) != Some("api_retry") {
            return Vec::new();
        }
        self.api_retries += 1;
        let attempt = event.get("attempt").and_then(Value::as_u64);
        let max = event.get("max_retries").and_then(Value::as_u64);
        let status = event.get("error_status").and_then(Value::as_u64);
        let delay = event.get("retry_delay_ms").and_then(Value::as_f64);
        if status == Some(429) || event.get("error").and_then(Value::as_str) == Some("rate_limit") {
            self.rate_limit_delay_ms = delay.map(|d| d as u64);
        }
        let mut msg = String::from("API error");
        if let Some(s) = status {
            msg.push_str(&format!(" (HTTP {s})"));
        }
        msg.push_str(", retrying");
        match (attempt, max) {
            (Some(a), Some(m)) => msg.push_str(&format!(" (attempt {a}/{m})")),
            (Some(a), None) => msg.push_str(&format!(" (attempt {a})")),
            _ => {}
        }
        if let Some(d) = delay {
            msg.push_str(&format!(" in {:.1} s", d / 1000.0));
        }
        vec![msg]
    }

    /// How many lines were read (blank lines not counted).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// How many of them were not JSON objects.
    pub fn non_json_lines(&self) -> u64 {
        self.non_json
    }

    /// Decide how the run ended, from the result object (if any) and the process's end.
    pub fn finish(self, end: &ProcessEnd) -> Normalised {
        let mut warnings = Vec::new();
        if self.non_json > 0 {
            warnings.push(format!(
                "ignored {} line(s) of claude output that were not JSON (first: {})",
                self.non_json,
                self.first_non_json.as_deref().unwrap_or("")
            ));
        }
        let result = match &self.result {
            Some(r) => self.with_result(r, end),
            None => self.without_result(end),
        };
        let mut failed_actions = self.failed;
        // Denials the stream did not already show as a failed tool result.
        let denials = self.result.as_ref().and_then(|r| r.get("permission_denials")).and_then(Value::as_array);
        for d in denials.into_iter().flatten() {
            let id = d.get("tool_use_id").and_then(Value::as_str);
            if id.is_none_or(|id| !self.failed_ids.iter().any(|f| f == id)) {
                failed_actions.push(&describe_denial(d, &self.workspace), "permission denied");
            }
        }
        Normalised { result, warnings, failed_actions }
    }

    fn base(&self, outcome: Outcome, summary: String, end: &ProcessEnd) -> RunResult {
        let mut r = RunResult::new(outcome, summary);
        r.session_id = self.session_id.clone();
        r.turns = self.messages.len() as u32;
        r.duration_ms = end.duration_ms;
        r.exit_code = end.exit_code;
        let mut usage = Usage::default();
        for (_, u) in &self.messages {
            usage.input_tokens = usage.input_tokens.saturating_add(u.input_tokens);
            usage.output_tokens = usage.output_tokens.saturating_add(u.output_tokens);
            usage.cache_read_tokens = usage.cache_read_tokens.saturating_add(u.cache_read_tokens);
            usage.cache_write_tokens = usage.cache_write_tokens.saturating_add(u.cache_write_tokens);
        }
        r.usage = usage;
        r
    }

    fn with_result(&self, res: &serde_json::Map<String, Value>, end: &ProcessEnd) -> RunResult {
        let subtype = res.get("subtype").and_then(Value::as_str).unwrap_or("");
        let is_error = res.get("is_error").and_then(Value::as_bool).unwrap_or(false) || subtype.starts_with("error");
        let text = res.get("result").and_then(Value::as_str).unwrap_or("").trim().to_string();
        let api_status = res
            .get("api_error_status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .or_else(|| if is_error { api_status_in_text(&text) } else { None });
        let denial_values: &[Value] =
            res.get("permission_denials").and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let denials: Vec<String> = denial_values.iter().map(|d| describe_denial(d, &self.workspace)).collect();
        // The agent's last action was refused: it stopped at the denial rather than working around it.
        let stopped_at_denial = self.last_tool_use_id.as_deref().is_some_and(|last| {
            denial_values.iter().any(|d| d.get("tool_use_id").and_then(Value::as_str) == Some(last))
        });
        let errors: Vec<String> = res
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_string).or_else(|| Some(e.to_string())))
            .collect();
        let detail = if !text.is_empty() {
            text.clone()
        } else if !errors.is_empty() {
            errors.join("; ")
        } else {
            String::new()
        };
        let terminal = res.get("terminal_reason").and_then(Value::as_str);
        let incomplete =
            subtype != "success" || text.is_empty() || terminal.is_some_and(|t| t != "completed") || stopped_at_denial;
        let rate_limited = api_status == Some(429)
            || mentions_rate_limit(&detail)
            || self.last_error_kind.as_deref() == Some("rate_limit")
            || self.limit_resets_at.is_some();

        let (outcome, summary) = if subtype == "error_max_turns" {
            let turns = res.get("num_turns").and_then(Value::as_u64).unwrap_or(0);
            (
                Outcome::MaxTurns,
                join(
                    &format!("claude stopped at its turn limit after {turns} turns"),
                    self.last_text.as_deref().unwrap_or(&detail),
                ),
            )
        } else if is_error && rate_limited {
            (Outcome::RateLimited, join("claude was rate limited", &detail))
        } else if is_error && api_status.is_some() {
            let status = api_status.unwrap_or_default();
            (Outcome::ApiError, join(&format!("model API error (HTTP {status})"), &detail))
        } else if !denials.is_empty() && (is_error || incomplete) {
            (
                Outcome::PermissionDenied,
                join(&format!("claude was refused permission: {}", denials.join("; ")), &detail),
            )
        } else if subtype == "error_max_budget_usd" {
            (Outcome::MaxTurns, join("claude stopped at its budget limit (error_max_budget_usd)", &detail))
        } else if is_error {
            if detail.contains("API Error") {
                (Outcome::ApiError, join("model API error", &detail))
            } else {
                let what = if subtype.is_empty() || subtype == "success" {
                    "claude reported an error".to_string()
                } else {
                    format!("claude reported {subtype}")
                };
                let mut s = join(&what, &detail);
                if detail.is_empty() {
                    s = join(&s, &stderr_part(end));
                }
                (Outcome::Crashed, s)
            }
        } else {
            let summary = if text.is_empty() { self.last_text.clone().unwrap_or_default() } else { text.clone() };
            (Outcome::Success, summary)
        };

        let mut r = self.base(outcome, summary, end);
        if let Some(id) = res.get("session_id").and_then(Value::as_str) {
            r.session_id = Some(id.to_string());
        }
        if let Some(n) = res.get("num_turns").and_then(Value::as_u64) {
            r.turns = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(d) = res.get("duration_ms").and_then(Value::as_u64) {
            r.duration_ms = d;
        }
        if let Some(u) = res.get("usage").filter(|u| u.is_object()) {
            r.usage = usage_of(u);
        }
        r.usage.cost_usd = res.get("total_cost_usd").and_then(Value::as_f64);
        r.api_status = if matches!(outcome, Outcome::ApiError | Outcome::RateLimited) { api_status } else { None };
        if outcome == Outcome::RateLimited {
            // A reset time (the CLI's rate_limit_event, or its "usage limit reached|<epoch>" text) becomes
            // the wait until then.
            let resets_at = reset_epoch_in_text(&detail).or(self.limit_resets_at);
            let until_reset =
                resets_at.zip(end.ended_at_ms).map(|(at, now)| at.saturating_mul(1000).saturating_sub(now));
            r.retry_after_ms = retry_after_ms(res, &detail).or(self.rate_limit_delay_ms).or(until_reset);
        }
        r.permission_denials = denials;
        r
    }

    fn without_result(&self, end: &ProcessEnd) -> RunResult {
        let how = match (end.exit_code, end.signal) {
            (_, Some(sig)) => format!("was killed by signal {sig}"),
            (Some(code), None) => format!("exited with code {code}"),
            (None, None) => "ended".to_string(),
        };
        let (outcome, summary) = if end.timed_out {
            let mut s =
                format!("claude did not finish within its time limit of {} s and was stopped", end.timeout_ms / 1000);
            if let Some(text) = &self.last_text {
                s = join(&s, &format!("last message: {}", one_line(text, 300)));
            }
            (Outcome::Timeout, join(&s, &stderr_part(end)))
        } else if self.non_json > 0 || self.malformed_result.is_some() {
            let mut s =
                format!("claude's output could not be understood: {} line(s), {} not JSON", self.lines, self.non_json);
            if let Some(first) = &self.first_non_json {
                s.push_str(&format!(" (first: {first})"));
            }
            if let Some(bad) = &self.malformed_result {
                s.push_str(&format!("; a result event without subtype or is_error: {bad}"));
            }
            s.push_str(&format!("; no result object; the process {how}"));
            (Outcome::Unparseable, join(&s, &stderr_part(end)))
        } else {
            let s = if self.lines == 0 {
                format!("claude {how} without printing anything")
            } else {
                format!("claude {how} without a result object after {} event(s)", self.lines)
            };
            (Outcome::Crashed, join(&s, &stderr_part(end)))
        };
        self.base(outcome, summary, end)
    }
}

/// `a: b`, or `a` alone when `b` is empty.
fn join(a: &str, b: &str) -> String {
    if b.trim().is_empty() { a.to_string() } else { format!("{a}: {}", b.trim()) }
}

fn stderr_part(end: &ProcessEnd) -> String {
    let tail = tail_str(end.stderr.trim(), STDERR_TAIL_BYTES);
    if tail.is_empty() { "stderr was empty".to_string() } else { format!("stderr: {tail}") }
}

/// The token counts of a Messages API `usage` object.
fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_tokens: n("cache_read_input_tokens"),
        cache_write_tokens: n("cache_creation_input_tokens"),
        cost_usd: None,
    }
}

/// `text` on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    obra_plugin_sdk::http::excerpt(text, max)
}

/// One line for a tool use: `Write calc.sh`, `Bash sh test.sh`, `TodoWrite (3 items)`.
pub fn describe_tool(name: &str, input: Option<&Value>, workspace: &str) -> String {
    let Some(input) = input.filter(|i| i.is_object()) else {
        return name.to_string();
    };
    if let Some(todos) = input.get("todos").and_then(Value::as_array) {
        return format!("{name} ({} items)", todos.len());
    }
    const KEYS: [&str; 10] =
        ["file_path", "notebook_path", "path", "command", "pattern", "url", "query", "description", "prompt", "skill"];
    for key in KEYS {
        if let Some(v) = input.get(key).and_then(Value::as_str) {
            let v = if key.ends_with("path") { relative(v, workspace) } else { v };
            return format!("{name} {}", one_line(v, 100));
        }
    }
    name.to_string()
}

fn relative<'a>(path: &'a str, workspace: &str) -> &'a str {
    if workspace.is_empty() {
        return path;
    }
    path.strip_prefix(workspace).and_then(|rest| rest.strip_prefix('/')).filter(|rest| !rest.is_empty()).unwrap_or(path)
}

/// One line for a permission denial `{tool_name, tool_use_id, tool_input}` (or a plain string).
fn describe_denial(d: &Value, workspace: &str) -> String {
    match d {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let name = o.get("tool_name").or_else(|| o.get("tool")).and_then(Value::as_str).unwrap_or("tool");
            describe_tool(name, o.get("tool_input").or_else(|| o.get("input")), workspace)
        }
        other => one_line(&other.to_string(), 200),
    }
}

/// The text of a tool result's `content` (a string, or text blocks), without the CLI's `<tool_use_error>` tags.
fn tool_error_text(content: Option<&Value>) -> String {
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let text = text.replace("<tool_use_error>", "").replace("</tool_use_error>", "");
    let text = text.trim();
    if text.is_empty() {
        "failed (no error text)".to_string()
    } else {
        text.strip_prefix("Error: ").unwrap_or(text).to_string()
    }
}

/// `text` with the workspace's absolute path prefix removed, so error texts name paths as the agent's tools do.
fn relative_in_text(text: &str, workspace: &str) -> String {
    if workspace.is_empty() { text.to_string() } else { text.replace(&format!("{workspace}/"), "") }
}

/// Whether an error text speaks of rate or usage limits.
fn mentions_rate_limit(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["rate limit", "rate_limit", "ratelimit", "too many requests", "usage limit", "api error: 429", "you've hit your"]
        .iter()
        .any(|k| t.contains(k))
}

/// The reset time in the CLI's `Claude AI usage limit reached|<unix seconds>` text.
fn reset_epoch_in_text(text: &str) -> Option<u64> {
    let rest = &text[text.to_ascii_lowercase().find("limit reached|")? + "limit reached|".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|s| *s > 1_000_000_000)
}

/// The status in the CLI's `API Error: 529 {...}` texts.
fn api_status_in_text(text: &str) -> Option<u16> {
    let rest = &text[text.find("API Error:")? + "API Error:".len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    if digits.len() == 3 { digits.parse().ok() } else { None }
}

/// A retry-after hint: a `retry_after_ms` / `retry_after` (seconds) field of the result, or `retry after N`,
/// `retry-after: N` in the text (seconds unless followed by `ms` or `min`).
fn retry_after_ms(res: &serde_json::Map<String, Value>, text: &str) -> Option<u64> {
    if let Some(ms) = res.get("retry_after_ms").and_then(Value::as_u64) {
        return Some(ms);
    }
    if let Some(s) = res.get("retry_after").and_then(Value::as_f64) {
        return Some((s * 1000.0) as u64);
    }
    let lower = text.to_ascii_lowercase();
    for key in ["retry-after", "retry after", "retry_after"] {
        let Some(pos) = lower.find(key) else { continue };
        let rest = lower[pos + key.len()..].trim_start_matches([':', ' ', '=', '"']);
        let rest = rest.strip_prefix("in ").unwrap_or(rest);
        let num: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let Ok(value) = num.parse::<f64>() else {
            continue;
        };
        let unit = rest[num.len()..].trim_start();
        let ms = if unit.starts_with("ms") || unit.starts_with("milli") {
            value
        } else if unit.starts_with("min") {
            value * 60_000.0
        } else {
            value * 1000.0
        };
        return Some(ms as u64);
    }
    None
}

#[cfg(test)]
mod tests;
