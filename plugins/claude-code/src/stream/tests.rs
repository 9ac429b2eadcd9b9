//! Unit tests of the stream-json parser on hand-written streams shaped like the CLI's output. Tests against
//! recorded real CLI output live in `fixtures.rs`.

use super::*;

const WS: &str = "/tmp/ws";

fn init() -> String {
    r#"{"type":"system","subtype":"init","cwd":"/tmp/ws","session_id":"sess-1","tools":["Bash","Read","Write"],"model":"claude-sonnet-4-5","permissionMode":"acceptEdits","uuid":"u0"}"#.to_string()
}

fn assistant(id: &str, content: &str, output_tokens: u64) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"id":"{id}","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{content}],"usage":{{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":{output_tokens}}}}},"parent_tool_use_id":null,"session_id":"sess-1"}}"#
    )
}

fn tool_result() -> String {
    r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"ok"}]},"session_id":"sess-1"}"#.to_string()
}

fn run(lines: &[String], end: ProcessEnd) -> (Vec<String>, Normalised) {
    let mut p = StreamParser::new(WS);
    let mut progress = Vec::new();
    for l in lines {
        progress.extend(p.feed(l));
    }
    (progress, p.finish(&end))
}

fn exited(code: i32) -> ProcessEnd {
    ProcessEnd { exit_code: Some(code), duration_ms: 777, timeout_ms: 60_000, ..ProcessEnd::default() }
}

#[test]
fn successful_run_reports_result_usage_and_tool_progress() {
    let lines = vec![
        init(),
        assistant(
            "msg_1",
            r#"{"type":"text","text":"I'll write it."},{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"/tmp/ws/calc.sh","content":"echo"}}"#,
            20,
        ),
        tool_result(),
        assistant(
            "msg_2",
            r#"{"type":"tool_use","id":"t2","name":"Bash","input":{"command":"sh test.sh\necho done","description":"Run tests"}}"#,
            30,
        ),
        tool_result(),
        r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":5012,"duration_api_ms":4800,"num_turns":3,"result":"Created calc.sh; tests pass.","session_id":"sess-1","total_cost_usd":0.0123,"usage":{"input_tokens":30,"cache_creation_input_tokens":200,"cache_read_input_tokens":400,"output_tokens":60,"service_tier":"standard"},"permission_denials":[],"uuid":"u9"}"#.to_string(),
    ];
    let (progress, n) = run(&lines, exited(0));
    assert_eq!(progress, ["Write calc.sh", "Bash sh test.sh echo done"]);
    let r = n.result;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.summary, "Created calc.sh; tests pass.");
    assert_eq!(r.session_id.as_deref(), Some("sess-1"));
    assert_eq!(r.turns, 3);
    assert_eq!(r.duration_ms, 5012);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.usage.input_tokens, 30);
    assert_eq!(r.usage.output_tokens, 60);
    assert_eq!(r.usage.cache_read_tokens, 400);
    assert_eq!(r.usage.cache_write_tokens, 200);
    assert_eq!(r.usage.cost_usd, Some(0.0123));
    assert!(r.permission_denials.is_empty());
    assert!(n.warnings.is_empty());
}

#[test]
fn max_turns() {
    let lines = vec![
        init(),
        assistant("m1", r#"{"type":"text","text":"Still working on it"}"#, 5),
        r#"{"type":"result","subtype":"error_max_turns","is_error":true,"duration_ms":100,"num_turns":2,"session_id":"sess-1","total_cost_usd":0.001,"usage":{"input_tokens":1,"output_tokens":2},"permission_denials":[]}"#.to_string(),
    ];
    let r = run(&lines, exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::MaxTurns);
    assert!(r.summary.contains("turn limit after 2 turns"), "{}", r.summary);
    assert!(r.summary.contains("Still working on it"), "{}", r.summary);
    assert_eq!(r.exit_code, Some(1));
}

#[test]
fn api_error_with_status_and_rate_limits() {
    let api = r#"{"type":"result","subtype":"success","is_error":true,"duration_ms":900,"num_turns":1,"result":"API Error: 500 {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}","session_id":"s","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"permission_denials":[],"api_error_status":500}"#;
    let r = run(&[init(), api.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::ApiError);
    assert_eq!(r.api_status, Some(500));
    assert!(r.summary.starts_with("model API error (HTTP 500): API Error: 500"), "{}", r.summary);

    let limited = r#"{"type":"result","subtype":"success","is_error":true,"num_turns":1,"result":"API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Rate limited. Please retry after 30 seconds\"}}","session_id":"s","api_error_status":429}"#;
    let r = run(&[limited.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert_eq!(r.api_status, Some(429));
    assert_eq!(r.retry_after_ms, Some(30_000));

    // No api_error_status field: the status and the rate limit come from the text.
    let text_only = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 429 rate_limit_error: too many requests"}"#;
    let r = run(&[text_only.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert_eq!(r.api_status, Some(429));
    assert_eq!(r.retry_after_ms, None);

    let overloaded = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}"}"#;
    let r = run(&[overloaded.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::ApiError);
    assert_eq!(r.api_status, Some(529));

    let explicit = r#"{"type":"result","subtype":"success","is_error":true,"result":"Usage limit reached","api_error_status":429,"retry_after_ms":1500}"#;
    let r = run(&[explicit.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert_eq!(r.retry_after_ms, Some(1500));
}

#[test]
fn permission_denials() {
    let denied = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"","session_id":"s","permission_denials":[{"tool_name":"Write","tool_use_id":"t1","tool_input":{"file_path":"/tmp/ws/a.txt","content":"x"}},{"tool_name":"Bash","tool_use_id":"t2","tool_input":{"command":"rm -rf /"}}]}"#;
    let r = run(&[denied.to_string()], exited(0)).1.result;
    assert_eq!(r.outcome, Outcome::PermissionDenied);
    assert_eq!(r.permission_denials, ["Write a.txt", "Bash rm -rf /"]);
    assert!(r.summary.contains("refused permission: Write a.txt; Bash rm -rf /"), "{}", r.summary);

    // A complete, successful result with a denial along the way is still a success; the denial is listed.
    let fine = r#"{"type":"result","subtype":"success","is_error":false,"result":"Done another way.","permission_denials":[{"tool_name":"Bash","tool_input":{"command":"curl x"}}]}"#;
    let r = run(&[fine.to_string()], exited(0)).1.result;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.permission_denials, ["Bash curl x"]);
}

#[test]
fn timeout_without_result() {
    let lines = vec![init(), assistant("m1", r#"{"type":"text","text":"Looking around"}"#, 3)];
    let end = ProcessEnd {
        exit_code: None,
        signal: Some(9),
        timed_out: true,
        stderr: String::new(),
        duration_ms: 60_001,
        timeout_ms: 60_000,
        ended_at_ms: None,
    };
    let r = run(&lines, end).1.result;
    assert_eq!(r.outcome, Outcome::Timeout);
    assert!(r.summary.contains("time limit of 60 s"), "{}", r.summary);
    assert!(r.summary.contains("Looking around"), "{}", r.summary);
    assert_eq!(r.session_id.as_deref(), Some("sess-1"));
    assert_eq!(r.turns, 1);
    assert_eq!(r.usage.output_tokens, 3);
    assert_eq!(r.duration_ms, 60_001);
}

#[test]
fn crash_without_result_includes_the_stderr_tail() {
    let mut end = exited(1);
    end.stderr = format!("{}\nError: Invalid API key", "x".repeat(5000));
    let r = run(&[init()], end).1.result;
    assert_eq!(r.outcome, Outcome::Crashed);
    assert!(r.summary.starts_with("claude exited with code 1 without a result object"), "{}", r.summary);
    assert!(r.summary.ends_with("Error: Invalid API key"), "{}", r.summary);
    assert!(r.summary.len() < 2200);

    let mut end = exited(127);
    end.stderr = "sh: claude: not found".into();
    let r = run(&[], end).1.result;
    assert_eq!(r.outcome, Outcome::Crashed);
    assert!(r.summary.contains("without printing anything"), "{}", r.summary);
    assert!(r.summary.contains("claude: not found"), "{}", r.summary);

    let end = ProcessEnd { signal: Some(11), ..ProcessEnd::default() };
    let r = run(&[init()], end).1.result;
    assert!(r.summary.contains("killed by signal 11"), "{}", r.summary);
}

#[test]
fn non_json_lines_are_counted_not_fatal() {
    let result = r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#.to_string();
    let lines = vec!["Warning: something odd".to_string(), init(), "   ".to_string(), "42".to_string(), result];
    let (_, n) = run(&lines, exited(0));
    assert_eq!(n.result.outcome, Outcome::Success);
    assert_eq!(n.warnings.len(), 1);
    assert!(n.warnings[0].contains("2 line(s)"), "{}", n.warnings[0]);
    assert!(n.warnings[0].contains("Warning: something odd"), "{}", n.warnings[0]);

    let garbage = vec!["<html>502 Bad Gateway</html>".to_string(), init()];
    let r = run(&garbage, exited(0)).1.result;
    assert_eq!(r.outcome, Outcome::Unparseable);
    assert!(r.summary.contains("2 line(s), 1 not JSON"), "{}", r.summary);
    assert!(r.summary.contains("502 Bad Gateway"), "{}", r.summary);

    let shapeless = vec![r#"{"type":"result","text":"?"}"#.to_string()];
    let r = run(&shapeless, exited(0)).1.result;
    assert_eq!(r.outcome, Outcome::Unparseable);
}

#[test]
fn api_retry_events_become_progress_and_unknown_events_are_ignored() {
    let lines = vec![
        init(),
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":532.5,"error_status":529,"error":"overloaded","session_id":"sess-1"}"#.to_string(),
        r#"{"type":"system","subtype":"api_retry","attempt":2}"#.to_string(),
        r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#.to_string(),
        r#"{"type":"brand_new_event","x":1}"#.to_string(),
        r#"{"no_type":true}"#.to_string(),
        r#"{"type":"result","subtype":"success","is_error":false,"result":"fine"}"#.to_string(),
    ];
    let (progress, n) = run(&lines, exited(0));
    assert_eq!(progress, ["API error (HTTP 529), retrying (attempt 1/10) in 0.5 s", "API error, retrying (attempt 2)"]);
    assert_eq!(n.result.outcome, Outcome::Success);
    assert!(n.warnings.is_empty());
}

#[test]
fn usage_without_result_counts_each_message_once() {
    let lines = vec![
        assistant("m1", r#"{"type":"text","text":"a"}"#, 5),
        assistant("m1", r#"{"type":"tool_use","id":"t","name":"Read","input":{"file_path":"/elsewhere/x"}}"#, 7),
        assistant("m2", r#"{"type":"text","text":"b"}"#, 4),
    ];
    let (progress, n) = run(&lines, exited(1));
    assert_eq!(progress, ["Read /elsewhere/x"]);
    let r = n.result;
    assert_eq!(r.turns, 2);
    assert_eq!(r.usage.output_tokens, 11);
    assert_eq!(r.usage.input_tokens, 20);
    assert_eq!(r.usage.cache_read_tokens, 100);
    assert_eq!(r.usage.cache_write_tokens, 200);
    assert_eq!(r.usage.cost_usd, None);
}

#[test]
fn other_errors_are_crashes_and_budget_is_a_limit() {
    let during = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":1,"errors":["Tool execution failed"]}"#;
    let r = run(&[during.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::Crashed);
    assert_eq!(r.summary, "claude reported error_during_execution: Tool execution failed");

    let budget = r#"{"type":"result","subtype":"error_max_budget_usd","is_error":true,"total_cost_usd":1.02}"#;
    let r = run(&[budget.to_string()], exited(1)).1.result;
    assert_eq!(r.outcome, Outcome::MaxTurns);
    assert!(r.summary.contains("budget"), "{}", r.summary);
    assert_eq!(r.usage.cost_usd, Some(1.02));
}

#[test]
fn tool_descriptions() {
    let d = |name: &str, input: &str| describe_tool(name, Some(&serde_json::from_str(input).unwrap()), WS);
    assert_eq!(d("Edit", r#"{"file_path":"/tmp/ws/src/main.rs"}"#), "Edit src/main.rs");
    assert_eq!(d("Glob", r#"{"pattern":"**/*.rs"}"#), "Glob **/*.rs");
    assert_eq!(d("TodoWrite", r#"{"todos":[{},{},{}]}"#), "TodoWrite (3 items)");
    assert_eq!(d("Mystery", r#"{"x":1}"#), "Mystery");
    assert_eq!(describe_tool("Task", None, WS), "Task");
    let long = d("Bash", &format!(r#"{{"command":"{}"}}"#, "a".repeat(300)));
    assert_eq!(long.chars().count(), "Bash ".len() + 101);
}

#[test]
fn a_rejected_limit_reports_the_wait_until_its_reset() {
    let now_ms = 1_800_000_000_000u64;
    let reset = now_ms / 1000 + 90;
    let rate_event = format!(
        r#"{{"type":"rate_limit_event","rate_limit_info":{{"status":"rejected","resetsAt":{reset},"rateLimitType":"five_hour"}},"session_id":"sess-1"}}"#
    );
    let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your limit","session_id":"sess-1","num_turns":1}"#;
    let end = ProcessEnd { exit_code: Some(1), ended_at_ms: Some(now_ms), ..ProcessEnd::default() };
    let r = run(&[init(), rate_event, result.to_string()], end).1.result;
    assert_eq!(r.outcome, Outcome::RateLimited, "{}", r.summary);
    assert_eq!(r.retry_after_ms, Some(90_000));
    assert_eq!(r.session_id.as_deref(), Some("sess-1"));

    // The older CLIs' text form.
    let text = format!(
        r#"{{"type":"result","subtype":"success","is_error":true,"result":"Claude AI usage limit reached|{reset}","session_id":"sess-1"}}"#
    );
    let end = ProcessEnd { exit_code: Some(1), ended_at_ms: Some(now_ms), ..ProcessEnd::default() };
    let r = run(&[init(), text], end).1.result;
    assert_eq!((r.outcome, r.retry_after_ms), (Outcome::RateLimited, Some(90_000)));
}

#[test]
fn a_denial_without_a_failed_tool_result_is_still_a_failed_action() {
    let lines = vec![
        init(),
        assistant("msg_1", r#"{"type":"tool_use","id":"t9","name":"Write","input":{"file_path":"/tmp/ws/x.txt"}}"#, 5),
        r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t8","is_error":true,"content":[{"type":"text","text":"Error: exit code 2\n/tmp/ws/run.sh: not found"}]}]}}"#.to_string(),
        r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"Done.","session_id":"sess-1","permission_denials":[{"tool_name":"Write","tool_use_id":"t9","tool_input":{"file_path":"/tmp/ws/x.txt"}}]}"#.to_string(),
    ];
    let (_, n) = run(&lines, exited(0));
    assert_eq!(n.failed_actions.lines(), ["tool: exit code 2 run.sh: not found", "Write x.txt: permission denied"]);
}
