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

/// How `--allowedTools "Bash(<prefix>:*)"` entries match what the Bash tool runs (claude 2.1.197, acceptEdits),
/// the facts behind the claude-code plugin's `allow_gate_commands` (ADR 32). Commands that acceptEdits allows
/// anyway (read-only ones such as `true`, or `cd`, `rm`, `mkdir` in the workspace) are not used here.
#[test]
fn allowed_tools_bash_prefixes_match_whole_words_and_every_part_of_a_compound_command() {
    let Some(cli) = cli_or_skip("allowed_tools_bash_prefixes_match_whole_words_and_every_part_of_a_compound_command")
    else {
        return;
    };
    let cases: &[(&[&str], &str, bool)] = &[
        (&["Bash(pytest:*)"], "pytest -q tests/", true),
        (&["Bash(pytest:*)"], "pytest", true),
        (&["Bash(pytest:*)"], "pytestx", false),
        (&["Bash(pytest:*)"], "python3 -c 'print(1)'", false),
        (&["Bash(pytest:*)"], "pytest && python3 -c 'print(1)'", false),
        (&["Bash(pytest:*)"], "pytest | python3 -c 'print(1)'", false),
        (&["Bash(pytest:*)"], "pytest -q 2>&1 > out.txt", true),
        (&["Bash(pytest:*)"], "cd sub && pytest", true),
        (&["Bash(pytest:*)"], "pytest $(python3 -c 'print(1)')", false),
        (&["Bash(pytest:*)"], "PYTHONPATH=. pytest", false),
        (&["Bash(python3 -m pytest:*)"], "python3 -m pytest -x -q", true),
        (&["Bash(python3 -m pytest:*)"], "python3 -c 'print(1)'", false),
        (&["Bash(python3 -m pytest -x -q:*)"], "python3 -m pytest -q", false),
        (&["Read", "Bash(ruff check .:*)", "Bash(pytest:*)"], "pytest", true),
        (&[], "pytest", false),
    ];
    for (allowed, command, runs) in cases {
        let fake = FakeAnthropic::start([AnthropicReply::bash(*command), AnthropicReply::text("done")]);
        let env = cli.env(&fake.base_url());
        std::fs::create_dir_all(env.workdir().join("sub")).unwrap();
        let mut extra = vec!["--permission-mode", "acceptEdits"];
        for tool in *allowed {
            extra.extend(["--allowedTools", tool]);
        }
        let out = env.run_print("Run the command", &extra);
        assert_eq!(out.exit_code, Some(0), "{command}: {}", out.stderr);
        let result = out.result().expect("a result event");
        let denied = result["permission_denials"].as_array().map_or(0, Vec::len);
        assert_eq!(denied == 0, *runs, "{allowed:?} and `{command}`: {result}");
    }
}

#[test]
fn the_prompt_on_stdin_reaches_the_model_byte_identical() {
    let Some(cli) = cli_or_skip("the_prompt_on_stdin_reaches_the_model_byte_identical") else {
        return;
    };
    let fake = FakeAnthropic::start([AnthropicReply::text("ok")]);
    let env = cli.env(&fake.base_url());
    let prompt = "<METADATA>\n{\"a\": 1}\n</METADATA>\n\n  Indented line, unicode é✓, $(no) `shell`\n\ttab\n";
    let mut child = env
        .command()
        .args(["-p", "--output-format", "stream-json", "--verbose"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), prompt.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let requests = fake.message_requests();
    let sent = requests[0].pointer("/messages/0/content").unwrap();
    let texts: Vec<&str> = match sent {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => vec![],
    };
    assert!(texts.contains(&prompt), "{sent}");
}
