//! The built-in `codex` agent plugin driving the REAL OpenAI Codex CLI (the pinned npm package) against a
//! scripted fake Responses API: a failed gate sends the task into a second iteration that resumes the same Codex
//! session (`codex exec resume`), each run's usage is its own share of the session's totals, and `obra doctor`
//! reports the CLI.

mod common;

use common::{Project, text};
use obra_testkit::codex::{CodexEnv, require_codex};
use obra_testkit::{FakeResponses, ResponsesReply};

fn project(fake: &FakeResponses) -> Option<(Project, CodexEnv)> {
    let bin = require_codex()?;
    let env = CodexEnv::new(&bin, &fake.base_url());
    let mut project = Project::new();
    for (k, v) in env.vars() {
        project.set_env(k, v);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{path}", bin.parent().unwrap().display()));
    project.write_config(
        r#"agent:
  plugin: codex
  timeout_secs: 120
agents:
  codex:
    bypass_approvals_and_sandbox: true
llm:
  provider: none
engine:
  max_iterations: 2
  decision:
    proceed_threshold: 0.85
    escalate_threshold: 0.3
rules: []
gates:
  - plugin: tests
    enabled: true
    config:
      command: "grep -qx 42 answer.txt"
"#,
    );
    Some((project, env))
}

#[test]
fn a_failed_gate_is_retried_in_the_same_codex_session_and_usage_is_counted_per_run() {
    let fake = FakeResponses::start([
        ResponsesReply::write_file("answer.txt", "41\n").usage(100, 10),
        ResponsesReply::text("Wrote 41.").usage(150, 5),
        ResponsesReply::write_file("answer.txt", "42\n").usage(300, 10),
        ResponsesReply::text("Now it is 42.").usage(350, 5),
    ]);
    let Some((project, _env)) = project(&fake) else { return };
    let id = project.create_task("The answer", "Write the answer to answer.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("answer.txt")).unwrap(), "42\n");

    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let runs = shown["interactions"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{shown}");
    let (first, second) = (&runs[0]["interaction"], &runs[1]["interaction"]);
    assert_eq!((first["outcome"].as_str(), second["outcome"].as_str()), (Some("success"), Some("success")));
    assert_eq!(first["summary"], "Wrote 41.");
    assert!(first["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(first["session_id"], second["session_id"], "the second run resumed the session: {shown}");
    assert_eq!(first["input_tokens"], 250, "{first}");
    assert_eq!(second["input_tokens"], 650, "the second run's own share, not the session's total: {second}");

    let requests = fake.response_requests();
    assert_eq!(requests.len(), 4);
    let resumed = requests[2].all_text();
    assert!(resumed.contains("Wrote 41."), "the resumed request carries the earlier conversation");
    assert!(resumed.contains("grep -qx 42 answer.txt"), "and the gate's finding in the new prompt");
}

#[test]
fn doctor_reports_the_codex_cli() {
    let fake = FakeResponses::start([]);
    let Some((project, _env)) = project(&fake) else { return };
    let out = project.obra(&["doctor"]);
    let said = text(&out);
    assert!(said.contains("ok    agent codex") && said.contains(obra_testkit::codex::pinned_version()), "{said}");
    assert!(fake.response_requests().is_empty(), "a health check costs no model call");
}
