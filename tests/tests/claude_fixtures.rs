//! The recorded Claude Code fixtures are complete and say what tests/fixtures/claude/README.md says they say.

use std::path::PathBuf;

use serde_json::Value;

fn fixture(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/claude").join(format!("{name}.stdout.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {l}"))).collect()
}

fn result(name: &str) -> Value {
    let events = fixture(name);
    assert_eq!(events[0]["type"], "system", "{name} starts with system/init");
    assert_eq!(events[0]["subtype"], "init");
    let last = events.last().unwrap().clone();
    assert_eq!(last["type"], "result", "{name} ends with the result");
    last
}

#[test]
fn every_fixture_ends_with_the_documented_result() {
    // (name, subtype, is_error, api_error_status)
    let expected: &[(&str, &str, bool, Option<u64>)] = &[
        ("success_write", "success", false, None),
        ("edit_after_read", "success", false, None),
        ("bypass_permissions_bash", "success", false, None),
        ("error_max_turns", "error_max_turns", true, None),
        ("api_429", "success", true, Some(429)),
        ("api_429_retried", "success", false, None),
        ("api_500", "success", true, Some(500)),
        ("api_529_overloaded", "success", true, Some(529)),
        ("stream_error_recovered", "success", false, None),
        ("stream_error_persistent", "success", true, Some(529)),
        ("connection_refused", "success", true, None),
        ("permission_denied", "success", false, None),
        ("permission_denied_file_write", "success", false, None),
    ];
    for (name, subtype, is_error, status) in expected {
        let r = result(name);
        assert_eq!(r["subtype"], *subtype, "{name}");
        assert_eq!(r["is_error"], *is_error, "{name}");
        assert_eq!(r["api_error_status"].as_u64(), *status, "{name}");
        assert!(r["session_id"].as_str().is_some(), "{name}");
    }
}

#[test]
fn fixtures_show_the_shapes_the_parser_must_handle() {
    assert!(result("error_max_turns").get("result").is_none());
    assert!(result("error_max_turns")["errors"].as_array().is_some());
    let denials = &result("permission_denied")["permission_denials"];
    assert_eq!(denials[0]["tool_name"], "Bash");
    let retry = fixture("api_429_retried")
        .into_iter()
        .find(|e| e["type"] == "system" && e["subtype"] == "api_retry")
        .expect("an api_retry event");
    assert_eq!(retry["error_status"], 429);
    assert!(retry["retry_delay_ms"].as_u64().is_some());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/claude/root_without_is_sandbox");
    assert!(std::fs::read_to_string(root.with_extension("stdout.jsonl")).unwrap().is_empty());
    assert!(std::fs::read_to_string(root.with_extension("stderr.txt")).unwrap().contains("root"));
}
