//! The real Claude Code CLI against the fake Messages API. Skipped (with a notice) when the pinned CLI is not
//! installed, except in CI (`CI=true`), where a missing CLI fails the test.

use obra_testkit::claude::install_hint;
use obra_testkit::{AnthropicReply, ClaudeCli, FakeAnthropic, require_claude};
use serde_json::Value;

fn cli_or_skip(test: &str) -> Option<ClaudeCli> {
    let cli = require_claude();
    if cli.is_none() {
        eprintln!("SKIPPED {test}: {}", install_hint());
    }
    cli
}

#[test]
fn write_tool_use_creates_the_file_and_succeeds() {
    let Some(cli) = cli_or_skip("write_tool_use_creates_the_file_and_succeeds") else {
        return;
    };
    let fake = FakeAnthropic::start([
        AnthropicReply::write_file("hello.txt", "Hello from Obra\n"),
        AnthropicReply::text("Created hello.txt."),
    ]);
    let env = cli.env(&fake.base_url());
    let out = env.run_print(
        "Create hello.txt. FEEDBACK FROM THE LAST ATTEMPT: keep the trailing newline",
        &["--permission-mode", "acceptEdits"],
    );
    assert_eq!(out.exit_code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(std::fs::read_to_string(env.workdir().join("hello.txt")).unwrap(), "Hello from Obra\n");
    let result = out.result().expect("a result event");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "Created hello.txt.");
    assert_eq!(result["num_turns"], 2);

    // What the model saw: the prompt (with the feedback) first, then the tool result.
    let requests = fake.message_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].all_text().contains("FEEDBACK FROM THE LAST ATTEMPT: keep the trailing newline"));
    assert!(requests[0].stream_or(false));
    assert!(requests[0].header("x-api-key").is_some());
    let messages = requests[1].pointer("/messages").and_then(Value::as_array).unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(fake.remaining(), 0);
}

#[test]
fn max_turns_stops_after_the_first_tool_use() {
    let Some(cli) = cli_or_skip("max_turns_stops_after_the_first_tool_use") else {
        return;
    };
    let fake =
        FakeAnthropic::start([AnthropicReply::write_file("notes.txt", "one\n"), AnthropicReply::text("never reached")]);
    let env = cli.env(&fake.base_url());
    let out = env.run_print("Write notes", &["--permission-mode", "acceptEdits", "--max-turns", "1"]);
    assert_eq!(out.exit_code, Some(1));
    let result = out.result().expect("a result event");
    assert_eq!(result["subtype"], "error_max_turns");
    assert_eq!(result["is_error"], true);
    assert_eq!(fake.message_requests().len(), 1);
}

#[test]
fn rate_limit_is_reported_without_retrying() {
    let Some(cli) = cli_or_skip("rate_limit_is_reported_without_retrying") else {
        return;
    };
    let fake = FakeAnthropic::start([AnthropicReply::rate_limited().retry_after(2), AnthropicReply::text("unused")]);
    let env = cli.env(&fake.base_url());
    let out = env.run_print("Say hello", &[]);
    assert_eq!(out.exit_code, Some(1));
    let result = out.result().expect("a result event");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 429);
    assert_eq!(fake.message_requests().len(), 1, "CLAUDE_CODE_MAX_RETRIES=0 is honoured");
}

#[test]
fn bash_is_denied_in_default_permission_mode() {
    let Some(cli) = cli_or_skip("bash_is_denied_in_default_permission_mode") else {
        return;
    };
    let fake = FakeAnthropic::start([
        AnthropicReply::bash("python3 -c 'print(6*7)'"),
        AnthropicReply::text("I was not allowed."),
    ]);
    let env = cli.env(&fake.base_url());
    let out = env.run_print("Compute 6*7 with python", &[]);
    assert_eq!(out.exit_code, Some(0));
    let result = out.result().expect("a result event");
    assert_eq!(result["is_error"], false);
    let denials = result["permission_denials"].as_array().unwrap();
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["tool_name"], "Bash");
}

#[tokio::test(flavor = "current_thread")]
async fn runs_from_inside_a_tokio_runtime() {
    let Some(cli) = cli_or_skip("runs_from_inside_a_tokio_runtime") else {
        return;
    };
    let fake = FakeAnthropic::start([AnthropicReply::text("hello from tokio")]);
    let env = cli.env(&fake.base_url());
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args(obra_testkit::ClaudeEnv::print_args("Say hello"));
    let out = cmd.output().await.unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["result"], "hello from tokio");
}
