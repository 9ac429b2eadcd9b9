//! `obra task execute` supervising the REAL Aider CLI (the pinned PyPI package `aider-chat`) through the
//! built-in `aider` WASM agent plugin, against the scripted fake OpenAI chat-completions server.

mod common;

use common::{Project, text};
use obra_testkit::{ChatReply, FakeOpenAiChat, require_aider};
use serde_json::Value;

/// What the fake model answers to make aider (edit format `whole`) write `hello.txt`.
const WRITE_HELLO: &str = "hello.txt\n```\nhello from aider\n```\n";

/// A project whose agent is the real aider talking to `fake`, with no LLM, the response-format gate and a
/// tests gate running `gate`, and a retry policy that sleeps through at most 1 s. `None` (with a notice)
/// when aider is missing outside CI; in CI a missing CLI fails the test.
fn setup(fake: &FakeOpenAiChat, gate: &str, max_attempts: u32) -> Option<Project> {
    let cli = require_aider()?;
    let mut project = Project::new();
    for (k, v) in cli.vars(&fake.base_url(), project.home()) {
        if k != "HOME" {
            project.set_env(&k, &v);
        }
    }
    let gate = serde_json::to_string(gate).unwrap();
    project.write_config(&format!(
        r#"
agent:
  plugin: aider
  timeout_secs: 120
agents:
  aider:
    model: {model}
    edit_format: whole
llm:
  provider: none
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: {gate}
engine:
  max_iterations: 1
  retry:
    max_attempts: {max_attempts}
    base_delay_ms: 50
    max_delay_ms: 1000
    jitter: 0.0
"#,
        model = obra_testkit::aider::MODEL,
    ));
    Some(project)
}

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

fn git(project: &Project, args: &[&str]) -> String {
    let out = std::process::Command::new("git").current_dir(project.path()).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Every interaction's (outcome, api_status).
fn attempts(shown: &Value) -> Vec<(String, Option<i64>)> {
    shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (i["interaction"]["outcome"].as_str().unwrap_or("").to_string(), i["interaction"]["api_status"].as_i64())
        })
        .collect()
}

#[test]
fn the_model_reply_makes_aider_write_the_file_and_the_task_completes_without_commits_or_aider_files() {
    let fake = FakeOpenAiChat::start([ChatReply::text(WRITE_HELLO).usage(834, 56)]);
    let Some(project) = setup(&fake, "grep -qx 'hello from aider' hello.txt", 1) else { return };
    let head_before = git(&project, &["rev-parse", "HEAD"]);
    let id = project.create_task("Create hello.txt", "Write the line 'hello from aider' to hello.txt");

    let out = project.obra(&["task", "execute", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["status"], "completed", "{}", text(&out));

    // The real aider wrote the file, exactly.
    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello from aider\n");

    let shown = show(&project, id);
    let first = &shown["interactions"][0];
    assert_eq!(first["interaction"]["outcome"], "success", "{shown}");
    // Counts under 1000 are printed exactly (aider rounds larger ones to 1.2k).
    assert_eq!(first["interaction"]["input_tokens"], 834, "{shown}");
    assert_eq!(first["interaction"]["output_tokens"], 56, "{shown}");
    assert!(first["changes"].as_array().unwrap().iter().any(|c| c["path"] == "hello.txt"), "{shown}");

    // The prompt reached the model.
    let requests = fake.chat_requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].body.windows(16).any(|w| w == b"Create hello.txt"), "the task's prompt went out");

    // Aider made no commit, and left none of its own files in the workspace.
    assert_eq!(git(&project, &["rev-parse", "HEAD"]), head_before, "aider committed");
    let status = git(&project, &["status", "--porcelain", "--ignored", "--untracked-files=all"]);
    let aider_files: Vec<&str> = status.lines().filter(|l| l.contains(".aider")).collect();
    assert!(aider_files.is_empty(), "aider's files in the workspace: {aider_files:?}\n{status}");
    assert!(status.lines().any(|l| l.ends_with("hello.txt")), "{status}");
}

#[test]
fn a_bad_request_is_an_api_error_400_and_the_task_does_not_complete() {
    let fake = FakeOpenAiChat::start([ChatReply::error(400, "invalid_request_error", "Unsupported parameter: 'x'")]);
    let Some(project) = setup(&fake, "true", 1) else { return };
    let id = project.create_task("Create hello.txt", "Write the line 'hello from aider' to hello.txt");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let shown = show(&project, id);
    assert_eq!(attempts(&shown), vec![("api-error".to_string(), Some(400))], "{shown}");
    let summary = shown["interactions"][0]["interaction"]["summary"].as_str().unwrap_or("");
    assert!(summary.contains("Unsupported parameter"), "{summary}");
    assert_ne!(shown["task"]["status"], "completed");
    assert!(!project.path().join("hello.txt").exists());
}

#[test]
fn a_rate_limit_stops_aider_is_rate_limited_and_the_retry_succeeds() {
    // Aider's OpenAI client retries a 429 twice itself before aider sees it: three replies per agent run.
    let mut script = vec![ChatReply::rate_limited(1); 3];
    script.push(ChatReply::text(WRITE_HELLO));
    let fake = FakeOpenAiChat::start(script);
    let Some(project) = setup(&fake, "grep -qx 'hello from aider' hello.txt", 3) else { return };
    let id = project.create_task("Create hello.txt", "Write the line 'hello from aider' to hello.txt");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = show(&project, id);
    assert_eq!(
        attempts(&shown),
        vec![("rate-limited".to_string(), Some(429)), ("success".to_string(), None)],
        "{shown}"
    );
    assert_eq!(shown["task"]["status"], "completed");
    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello from aider\n");
    assert_eq!(fake.chat_requests().len(), 4, "three 429s, then the reply");
}
