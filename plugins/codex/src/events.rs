//! Reading `codex exec --json` (JSON Lines) into the normalised `run-result` (pure, unit-tested natively on
//! lines captured from the real CLI 0.169.0).
//!
//! Events: `thread.started` (`thread_id`: the session), `turn.started`, `item.started`/`item.completed` with an
//! `item` of type `agent_message` (`text`), `command_execution` (`command`, `exit_code`), `file_change`,
//! `reasoning`, `error` (a warning, the run goes on); `turn.completed` (`usage`: the session's totals so far),
//! `turn.failed` (`error.message`) and a top-level `error`.
//!
//! Failed actions (for `agent-report`): a completed `command_execution` whose `status` is `failed` or whose
//! `exit_code` is not 0 (`<command>: exit code N: <last output line>`), and a `file_change` whose `status` is
//! `failed` (`<kind> <path>: the change was not applied`).

use obra_plugin_sdk::agent::FailedActions;
use obra_plugin_sdk::http::excerpt;
use obra_plugin_sdk::{Outcome, RunResult, Usage};
use serde_json::Value;

/// How the process ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessEnd {
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal, when one killed it.
    pub signal: Option<i32>,
    /// Stopped at its time limit.
    pub timed_out: bool,
    /// Its error output.
    pub stderr: String,
    /// How long it ran.
    pub duration_ms: u64,
}

/// Token totals of a session as Codex reports them (cumulative over the session's runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Of which read from the cache.
    pub cached: u64,
    /// Generated tokens.
    pub output: u64,
}

/// The parser's state.
#[derive(Debug, Default)]
pub struct EventReader {
    /// The session (`thread_id`).
    pub thread_id: Option<String>,
    summary: Option<String>,
    turns: u32,
    /// The last totals reported.
    pub totals: Option<Totals>,
    failure: Option<String>,
    completed: bool,
    bad_lines: u64,
    first_bad: Option<String>,
    /// Warnings Codex reported as `error` items (the run went on).
    pub warnings: Vec<String>,
    /// Commands that failed and file changes that were not applied.
    pub failed_actions: FailedActions,
}

impl EventReader {
    /// Nothing read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one line; returns a progress message for the user when the line is worth one.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.bad_lines += 1;
            if self.first_bad.is_none() {
                self.first_bad = Some(excerpt(line, 120));
            }
            return None;
        };
        let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "thread.started" => {
                self.thread_id = text(&v, "/thread_id");
                None
            }
            "turn.completed" => {
                self.turns += 1;
                self.completed = true;
                let n = |k: &str| v.pointer(&format!("/usage/{k}")).and_then(Value::as_u64).unwrap_or(0);
                self.totals = Some(Totals {
                    input: n("input_tokens"),
                    cached: n("cached_input_tokens"),
                    output: n("output_tokens"),
                });
                None
            }
            "turn.failed" => {
                self.failure = Some(text(&v, "/error/message").unwrap_or_else(|| "the turn failed".into()));
                None
            }
            "error" => {
                let message = text(&v, "/message").unwrap_or_else(|| v.to_string());
                self.failure.get_or_insert(message);
                None
            }
            "item.completed" => {
                let item = v.get("item")?;
                match item.get("type").and_then(Value::as_str).unwrap_or("") {
                    "agent_message" => {
                        self.summary = text(item, "/text");
                        None
                    }
                    "command_execution" => {
                        let command = text(item, "/command").unwrap_or_default();
                        let exit = item.get("exit_code").and_then(Value::as_i64);
                        let status = text(item, "/status").unwrap_or_default();
                        if status == "failed" || exit.is_some_and(|c| c != 0) {
                            let output = text(item, "/aggregated_output").unwrap_or_default();
                            let last = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                            let mut why = exit.map_or_else(|| "failed".to_string(), |c| format!("exit code {c}"));
                            if !last.is_empty() {
                                why.push_str(&format!(": {last}"));
                            }
                            self.failed_actions.push(&format!("ran {}", excerpt(&command, 100)), &why);
                        }
                        Some(format!(
                            "ran {} (exit {})",
                            excerpt(&command, 100),
                            item.get("exit_code").map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                        ))
                    }
                    "file_change" => {
                        let paths: Vec<String> = item
                            .get("changes")
                            .and_then(Value::as_array)
                            .map(|c| c.iter().filter_map(|x| text(x, "/path")).collect())
                            .unwrap_or_default();
                        if text(item, "/status").as_deref() == Some("failed") {
                            let changes = item.get("changes").and_then(Value::as_array);
                            for change in changes.into_iter().flatten() {
                                let kind = text(change, "/kind").unwrap_or_else(|| "change".into());
                                let path = text(change, "/path").unwrap_or_default();
                                self.failed_actions.push(&format!("{kind} {path}"), "the change was not applied");
                            }
                            if paths.is_empty() {
                                self.failed_actions.push("file change", "the change was not applied");
                            }
                        }
                        Some(format!("changed {}", if paths.is_empty() { "files".into() } else { paths.join(", ") }))
                    }
                    "error" => {
                        self.warnings.push(text(item, "/message").unwrap_or_default());
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The normalised result; `previous` is the session's totals after its earlier runs (Codex reports the
    /// session's cumulative usage), so this run's own usage is the difference.
    pub fn finish(self, end: &ProcessEnd, previous: Option<Totals>) -> RunResult {
        let mut r = RunResult::new(Outcome::Success, String::new());
        r.session_id = self.thread_id.clone();
        r.turns = self.turns;
        r.exit_code = end.exit_code;
        r.duration_ms = end.duration_ms;
        if let Some(t) = self.totals {
            let before = previous.unwrap_or_default();
            let input = t.input.saturating_sub(before.input);
            let cached = t.cached.saturating_sub(before.cached);
            r.usage = Usage {
                input_tokens: input.saturating_sub(cached),
                output_tokens: t.output.saturating_sub(before.output),
                cache_read_tokens: cached,
                ..Usage::default()
            };
        }
        let stderr = excerpt(obra_plugin_sdk::process::tail_str(&end.stderr, 600), 600);
        if end.timed_out {
            r.outcome = Outcome::Timeout;
            r.summary = "codex was stopped at its time limit".into();
        } else if let Some(sig) = end.signal {
            r.outcome = Outcome::Crashed;
            r.summary = format!("codex was killed by signal {sig}");
        } else if let Some(failure) = self.failure.filter(|_| !self.completed) {
            let detail = error_detail(&failure);
            let lower = failure.to_lowercase();
            r.api_status = status_in(&failure);
            r.outcome =
                if r.api_status == Some(429) || lower.contains("rate limit") || lower.contains("too many requests") {
                    Outcome::RateLimited
                } else {
                    Outcome::ApiError
                };
            r.summary = format!("codex: {detail}");
        } else if self.completed {
            r.summary = self.summary.unwrap_or_else(|| "codex finished without a final message".into());
            if end.exit_code.is_some_and(|c| c != 0) {
                r.outcome = Outcome::Crashed;
                r.summary = format!("codex exited with code {:?} after its turn: {stderr}", end.exit_code);
            }
        } else {
            r.outcome =
                if end.exit_code == Some(0) && self.bad_lines > 0 { Outcome::Unparseable } else { Outcome::Crashed };
            let bad = self
                .first_bad
                .map(|b| format!("; {} line(s) were not JSON, the first: {b}", self.bad_lines))
                .unwrap_or_default();
            r.summary = format!("codex ended without a turn.completed event (exit {:?}){bad}: {stderr}", end.exit_code);
        }
        r
    }
}

/// The message inside an OpenAI error body Codex passes on, else the text.
fn error_detail(failure: &str) -> String {
    serde_json::from_str::<Value>(failure)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| excerpt(failure, 400))
}

/// An HTTP status in Codex's error text (`last status: 429 Too Many Requests`).
fn status_in(failure: &str) -> Option<u16> {
    let at = failure.find("status: ")?;
    failure[at + 8..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `codex exec --json` 0.169.0 against the test kit's fake Responses API: a shell call, then a message.
    const SUCCESS: &[&str] = &[
        r#"{"type":"thread.started","thread_id":"01a202ef-ebe7-7dc0-93fa-a4311effadd6"}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `gpt-5` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"printf 'hello\\n' > hello.txt\"","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"printf 'hello\\n' > hello.txt\"","aggregated_output":"","exit_code":0,"status":"completed"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Created hello.txt."}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":250,"cached_input_tokens":50,"cache_write_input_tokens":0,"output_tokens":28,"reasoning_output_tokens":0}}"#,
    ];

    fn read(lines: &[&str], end: ProcessEnd, previous: Option<Totals>) -> (RunResult, Vec<String>) {
        let mut r = EventReader::new();
        let progress: Vec<String> = lines.iter().filter_map(|l| r.feed(l)).collect();
        (r.finish(&end, previous), progress)
    }

    fn exit(code: i32) -> ProcessEnd {
        ProcessEnd { exit_code: Some(code), duration_ms: 9, ..ProcessEnd::default() }
    }

    #[test]
    fn a_completed_turn_is_a_success_with_session_usage_and_progress() {
        let (r, progress) = read(SUCCESS, exit(0), None);
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.summary, "Created hello.txt.");
        assert_eq!(r.session_id.as_deref(), Some("01a202ef-ebe7-7dc0-93fa-a4311effadd6"));
        assert_eq!((r.usage.input_tokens, r.usage.cache_read_tokens, r.usage.output_tokens, r.turns), (200, 50, 28, 1));
        assert!(progress[0].starts_with("ran /bin/bash -lc") && progress[0].ends_with("(exit 0)"), "{progress:?}");
        // Resumed: the reported totals include the earlier runs.
        let (again, _) = read(SUCCESS, exit(0), Some(Totals { input: 100, cached: 50, output: 8 }));
        assert_eq!((again.usage.input_tokens, again.usage.output_tokens), (150, 20));
    }

    #[test]
    fn failed_turns_are_api_errors_or_rate_limits() {
        let bad_request = [
            r#"{"type":"thread.started","thread_id":"t"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"error","message":"{\"error\": {\"message\": \"Invalid request: conformance says no\", \"type\": \"invalid_request_error\"}}"}"#,
            r#"{"type":"turn.failed","error":{"message":"{\"error\": {\"message\": \"Invalid request: conformance says no\", \"type\": \"invalid_request_error\"}}"}}"#,
        ];
        let (r, _) = read(&bad_request, exit(1), None);
        assert_eq!((r.outcome, r.summary.as_str()), (Outcome::ApiError, "codex: Invalid request: conformance says no"));
        let limited = [
            r#"{"type":"turn.started"}"#,
            r#"{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}"#,
        ];
        let (r, _) = read(&limited, exit(1), None);
        assert_eq!((r.outcome, r.api_status), (Outcome::RateLimited, Some(429)));
    }

    #[test]
    fn crashes_timeouts_and_garbage_are_told_apart() {
        let (r, _) = read(&SUCCESS[..3], ProcessEnd { signal: Some(9), ..ProcessEnd::default() }, None);
        assert_eq!(r.outcome, Outcome::Crashed);
        let (r, _) = read(&SUCCESS[..3], ProcessEnd { timed_out: true, ..ProcessEnd::default() }, None);
        assert_eq!(r.outcome, Outcome::Timeout);
        let (r, _) = read(&["Hello! I am a chat bot.", "No JSON here."], exit(0), None);
        assert_eq!(r.outcome, Outcome::Unparseable);
        assert!(r.summary.contains("2 line(s) were not JSON"), "{}", r.summary);
        let (r, _) = read(&[], ProcessEnd { stderr: "error: unexpected argument".into(), ..exit(2) }, None);
        assert!(r.outcome == Outcome::Crashed && r.summary.contains("unexpected argument"), "{}", r.summary);
    }

    #[test]
    fn failed_commands_and_unapplied_file_changes_are_failed_actions() {
        let lines = [
            SUCCESS[0],
            r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'python3 -m pytest -q'","aggregated_output":"F\n1 failed in 0.02s\n","exit_code":1,"status":"failed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"/tmp/ws/calc.py","kind":"update"}],"status":"failed"}}"#,
            SUCCESS[4],
            r#"{"type":"item.completed","item":{"id":"item_3","type":"file_change","changes":[{"path":"/tmp/ws/ok.py","kind":"add"}],"status":"completed"}}"#,
            SUCCESS[5],
            SUCCESS[6],
        ];
        let mut r = EventReader::new();
        for l in lines {
            r.feed(l);
        }
        assert_eq!(
            r.failed_actions.lines(),
            [
                "ran /bin/bash -lc 'python3 -m pytest -q': exit code 1: 1 failed in 0.02s",
                "update /tmp/ws/calc.py: the change was not applied",
            ]
        );
        assert_eq!(r.finish(&exit(0), None).outcome, Outcome::Success);
    }
}
