//! The parser against REAL output of the pinned Claude Code CLI, recorded in `tests/fixtures/claude/` (see its
//! README.md for each scenario's command line, fake-server script and exit code).

use obra_plugin_sdk::{Outcome, RunResult};
use serde_json::Value;

use crate::stream::{Normalised, ProcessEnd, StreamParser};

macro_rules! stdout {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/claude/", $name, ".stdout.jsonl"))
    };
}

/// Feed a recorded stdout through the parser as the plugin does, line by line.
fn replay(stdout: &str, exit_code: i32, stderr: &str) -> (Vec<String>, Normalised) {
    let mut parser = StreamParser::new("/tmp/ws");
    let mut progress = Vec::new();
    for line in stdout.lines() {
        progress.extend(parser.feed(line));
    }
    let end = ProcessEnd {
        exit_code: Some(exit_code),
        stderr: stderr.to_string(),
        duration_ms: 1,
        timeout_ms: 120_000,
        ..ProcessEnd::default()
    };
    (progress, parser.finish(&end))
}

/// The fixture's own `result` event, to compare the normalised result with (values change on re-recording).
fn result_event(stdout: &str) -> Value {
    stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")
        .expect("the fixture has a result event")
}

/// Check the fields copied from the result event: session id, turns, duration, usage, cost.
fn assert_copied(r: &RunResult, stdout: &str) {
    let ev = result_event(stdout);
    assert_eq!(r.session_id.as_deref(), ev["session_id"].as_str());
    assert_eq!(Some(u64::from(r.turns)), ev["num_turns"].as_u64());
    assert_eq!(Some(r.duration_ms), ev["duration_ms"].as_u64());
    assert_eq!(Some(r.usage.input_tokens), ev["usage"]["input_tokens"].as_u64());
    assert_eq!(Some(r.usage.output_tokens), ev["usage"]["output_tokens"].as_u64());
    assert_eq!(Some(r.usage.cache_read_tokens), ev["usage"]["cache_read_input_tokens"].as_u64());
    assert_eq!(Some(r.usage.cache_write_tokens), ev["usage"]["cache_creation_input_tokens"].as_u64());
    assert_eq!(r.usage.cost_usd, ev["total_cost_usd"].as_f64());
}

fn result(stdout: &str, exit_code: i32) -> RunResult {
    let (_, n) = replay(stdout, exit_code, "");
    assert!(n.warnings.is_empty(), "{:?}", n.warnings);
    n.result
}

#[test]
fn success_write() {
    let stdout = stdout!("success_write");
    let (progress, n) = replay(stdout, 0, "");
    assert_eq!(progress, ["Write hello.txt"]);
    let r = n.result;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(Some(r.summary.as_str()), result_event(stdout)["result"].as_str());
    assert!(!r.summary.is_empty());
    assert_copied(&r, stdout);
    assert_eq!(r.turns, 2);
    assert!(r.usage.cost_usd.unwrap() > 0.0);
    assert_eq!(r.exit_code, Some(0));
    assert!(r.permission_denials.is_empty());
}

#[test]
fn error_max_turns() {
    let stdout = stdout!("error_max_turns");
    let (progress, n) = replay(stdout, 1, "");
    assert_eq!(progress, ["Write notes.txt"]);
    let r = n.result;
    assert_eq!(r.outcome, Outcome::MaxTurns);
    assert_eq!(r.summary, "claude stopped at its turn limit after 2 turns: Reached maximum number of turns (1)");
    assert_copied(&r, stdout);
}

#[test]
fn api_429_is_rate_limited() {
    let r = result(stdout!("api_429"), 1);
    assert_copied(&r, stdout!("api_429"));
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert_eq!(r.api_status, Some(429));
    assert!(r.summary.contains("exceed your organization's rate limit"), "{}", r.summary);
    // The result event carries no retry-after, and with CLAUDE_CODE_MAX_RETRIES=0 there was no retry event.
    assert_eq!(r.retry_after_ms, None);
}

#[test]
fn api_429_retried_succeeds_and_reports_the_retry() {
    let (progress, n) = replay(stdout!("api_429_retried"), 0, "");
    assert_eq!(progress, ["API error (HTTP 429), retrying (attempt 1/1) in 1.0 s"]);
    assert_eq!(n.result.outcome, Outcome::Success);
    assert_eq!(Some(n.result.summary.as_str()), result_event(stdout!("api_429_retried"))["result"].as_str());
}

#[test]
fn server_errors_are_api_errors_with_status() {
    for (stdout, status) in
        [(stdout!("api_500"), 500), (stdout!("api_529_overloaded"), 529), (stdout!("stream_error_persistent"), 529)]
    {
        let r = result(stdout, 1);
        assert_copied(&r, stdout);
        assert_eq!(r.outcome, Outcome::ApiError);
        assert_eq!(r.api_status, Some(status));
        assert!(
            r.summary.starts_with(&format!("model API error (HTTP {status}): API Error: {status}")),
            "{}",
            r.summary
        );
        assert_eq!(r.exit_code, Some(1));
    }
}

#[test]
fn connection_refused_is_an_api_error_without_status() {
    let r = result(stdout!("connection_refused"), 1);
    assert_eq!(r.outcome, Outcome::ApiError);
    assert_eq!(r.api_status, None);
    assert!(r.summary.contains("ConnectionRefused"), "{}", r.summary);
}

#[test]
fn refused_and_given_up_is_permission_denied() {
    let (progress, n) = replay(stdout!("permission_denied"), 0, "");
    assert_eq!(progress, ["Bash python3 -c 'print(6*7)'"]);
    let r = n.result;
    assert_copied(&r, stdout!("permission_denied"));
    assert_eq!(r.outcome, Outcome::PermissionDenied);
    assert_eq!(r.permission_denials, ["Bash python3 -c 'print(6*7)'"]);
    assert!(r.summary.contains("I need permission to run python3."), "{}", r.summary);

    let r = result(stdout!("permission_denied_file_write"), 0);
    assert_eq!(r.outcome, Outcome::PermissionDenied);
    assert_eq!(r.permission_denials, ["Bash touch bash-was-here.txt"]);
}

#[test]
fn other_successes() {
    let r = result(stdout!("bypass_permissions_bash"), 0);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(Some(r.summary.as_str()), result_event(stdout!("bypass_permissions_bash"))["result"].as_str());
    let r = result(stdout!("stream_error_recovered"), 0);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(Some(r.summary.as_str()), result_event(stdout!("stream_error_recovered"))["result"].as_str());
    let (progress, n) = replay(stdout!("edit_after_read"), 0, "");
    assert_eq!(progress, ["Read greeting.txt", "Edit greeting.txt"]);
    assert_eq!(n.result.outcome, Outcome::Success);
    assert_eq!(n.result.turns, 3);
}

#[test]
fn root_without_is_sandbox_crashes_with_the_stderr() {
    let stderr = include_str!("../../../tests/fixtures/claude/root_without_is_sandbox.stderr.txt");
    let (_, n) = replay(stdout!("root_without_is_sandbox"), 1, stderr);
    let r = n.result;
    assert_eq!(r.outcome, Outcome::Crashed);
    assert!(r.summary.starts_with("claude exited with code 1 without printing anything"), "{}", r.summary);
    assert!(r.summary.contains("cannot be used with root/sudo privileges"), "{}", r.summary);
}

#[test]
fn a_run_cut_short_mid_stream_is_crashed_and_noise_is_unparseable() {
    let full = stdout!("success_write");
    let cut: String = full.lines().take(3).map(|l| format!("{l}\n")).collect();
    let r = result(&cut, 1);
    assert_eq!(r.outcome, Outcome::Crashed);
    assert_eq!(r.session_id.as_deref(), result_event(full)["session_id"].as_str());

    // The same lines split in the middle: the halves are not JSON.
    let mangled: String =
        full.lines().map(|l| format!("{}\n", l.chars().take(l.chars().count() / 2).collect::<String>())).collect();
    let (_, n) = replay(&mangled, 0, "");
    assert_eq!(n.result.outcome, Outcome::Unparseable);
}

#[test]
fn an_edit_the_cli_refused_is_a_failed_action_although_the_run_claims_success() {
    let stdout = stdout!("edit_without_read");
    let (progress, n) = replay(stdout, 0, "");
    assert_eq!(progress, ["Edit calc.py"]);
    assert_eq!(n.result.outcome, Outcome::Success);
    assert_eq!(n.result.summary, "Fixed add() to return the sum.");
    assert_eq!(
        n.failed_actions.lines(),
        ["Edit calc.py: File has not been read yet. Read it first before writing to it."]
    );
}

#[test]
fn refused_commands_are_failed_actions_listed_once_and_successful_tools_are_not() {
    let (_, n) = replay(stdout!("permission_denied"), 0, "");
    assert_eq!(n.failed_actions.lines().len(), 1, "{:?}", n.failed_actions);
    assert!(n.failed_actions.lines()[0].starts_with("Bash python3 -c 'print(6*7)': This command requires approval"));
    let (_, n) = replay(stdout!("permission_denied_file_write"), 0, "");
    assert_eq!(n.failed_actions.lines().len(), 1, "{:?}", n.failed_actions);
    assert!(n.failed_actions.lines()[0].contains("was blocked"), "{:?}", n.failed_actions);
    for ok in [stdout!("edit_after_read"), stdout!("success_write"), stdout!("bypass_permissions_bash")] {
        let (_, n) = replay(ok, 0, "");
        assert!(n.failed_actions.is_empty(), "{:?}", n.failed_actions);
    }
}
