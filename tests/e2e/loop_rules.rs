//! The loop's rule and breakpoint paths through the CLI: a rule that aborts fails the task (exit 4); a
//! breakpoint resolved with approve completes it, with reject fails it.

mod common;

use common::{Project, text};

/// echo-agent, no LLM, one iteration, a tests gate that always fails, and `rules`.
fn project_failing_tests(rules: &str) -> Project {
    Project::with_echo_agent("echo 'assertion failed'; exit 1", rules)
}

fn status_of(project: &Project, id: i64) -> String {
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    shown["task"]["status"].as_str().unwrap().to_string()
}

#[test]
fn a_rule_that_aborts_fails_the_task_with_exit_code_4() {
    let project = project_failing_tests("  - plugin: max-iterations\n    config:\n      action: abort\n");
    let id = project.create_task("doomed", "the tests never pass");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rule max-iterations: abort"), "{}", text(&out));
    assert_eq!(status_of(&project, id), "failed");
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    assert!(open.as_array().unwrap().is_empty(), "an abort opens no breakpoint");
}

#[test]
fn approving_a_breakpoint_completes_the_task_and_rejecting_fails_it() {
    let project = project_failing_tests("  - plugin: max-iterations\n");
    let a = project.create_task("a", "first");
    let b = project.create_task("b", "second");
    for id in [a, b] {
        let out = project.obra(&["task", "execute", &id.to_string()]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    }
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let ids: Vec<i64> = open.as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let bp_of = |task: i64| {
        open.as_array().unwrap().iter().find(|b| b["task_id"] == task).unwrap()["id"].as_i64().unwrap().to_string()
    };
    // The iteration's tests (a required gate) failed: approving is refused until --force says it is meant.
    let refused = project.obra(&["breakpoint", "resolve", &bp_of(a), "--approve"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("required gate(s) failed: tests") && said.contains("--approve --force"), "{said}");
    assert_eq!(status_of(&project, a), "paused", "a refused approval changes nothing");
    let forced = project.obra(&["breakpoint", "resolve", &bp_of(a), "--approve", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(String::from_utf8_lossy(&forced.stderr).contains("warning: approving over failed required gate(s): tests"));
    assert!(project.obra(&["breakpoint", "resolve", &bp_of(b), "--reject"]).status.success());
    assert_eq!(status_of(&project, a), "completed");
    assert_eq!(status_of(&project, b), "failed");
    let all = project.obra_json(&["breakpoint", "list", "--all", "--json"], 0);
    assert!(all.as_array().unwrap().iter().all(|b| b["status"] == "resolved" && b["resolved_by"].is_string()));
    assert!(project.obra_json(&["breakpoint", "list", "--json"], 0).as_array().unwrap().is_empty());
}

/// A project whose agent is the command agent running `program`; `failing-agent` on the project's PATH fails
/// with an API error (exit 1, two lines on stderr) until `fixed.flag` exists in the workspace, then appends
/// a line to done.txt and succeeds.
fn project_with_command_agent(program: &str) -> Project {
    use std::os::unix::fs::PermissionsExt;
    let mut project = Project::new();
    let bin = project.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
case "$1" in --version) echo "failing-agent 1.0"; exit 0;; esac
if [ -f fixed.flag ]; then echo "done $$" >> done.txt; echo "wrote done.txt"; exit 0; fi
echo "API Error: 401 invalid x-api-key" >&2
echo "see https://docs.example/auth" >&2
exit 1
"#;
    let path = bin.join("failing-agent");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sys_path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{sys_path}", bin.display()));
    project.write_config(&format!(
        r#"agent:
  plugin: command
  timeout_secs: 60
agents:
  command:
    program: {program}
    args: ["{{prompt}}"]
llm:
  provider: none
engine:
  max_iterations: 3
gates:
  - plugin: response-format
rules:
  - plugin: low-confidence
plugins:
  grants:
    command:
      commands: [{{ program: {program}, args: ["-**"] }}]
      env: [PATH]
"#
    ));
    project
}

fn open_breakpoints(project: &Project) -> Vec<serde_json::Value> {
    project.obra_json(&["breakpoint", "list", "--json"], 0).as_array().unwrap().clone()
}

#[test]
fn a_failed_agent_pauses_at_agent_failed_naming_the_cause_and_retry_runs_the_task_again() {
    let project = project_with_command_agent("failing-agent");
    let id = project.create_task("greet", "write done.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("gates not run: the agent failed and changed nothing"), "{}", text(&out));
    assert!(text(&out).contains("fix the cause, then obra breakpoint resolve 1 --retry"), "{}", text(&out));
    let open = open_breakpoints(&project);
    assert_eq!(open.len(), 1, "one breakpoint, at the first failure: {open:?}");
    assert_eq!(open[0]["rule"], "agent-failed", "{open:?}");
    let reason = open[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the agent's run ended with crashed: failing-agent exited with code 1: API Error: 401"),
        "{reason}"
    );
    assert!(reason.contains("gates not run"), "{reason}");
    assert!(!reason.contains("below"), "not the low-confidence rule's words: {reason}");

    // The setup is fixed; the task runs again as it was, with no feedback.
    std::fs::write(project.path().join("fixed.flag"), "").unwrap();
    let bp = open[0]["id"].as_i64().unwrap().to_string();
    let out = project.obra(&["breakpoint", "resolve", &bp, "--retry"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(agent-failed, retry); task 1 is now pending"), "{}", text(&out));
    assert_eq!(status_of(&project, id), "pending");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(status_of(&project, id), "completed");
    assert!(project.path().join("done.txt").exists());
    let all = project.obra_json(&["breakpoint", "list", "--all", "--json"], 0);
    assert_eq!(all[0]["resolution"], "retry", "{all}");
    assert!(all[0]["feedback"].is_null(), "a retry carries no feedback: {all}");
}

#[test]
fn run_stops_at_the_circuit_breaker_and_resolve_all_retries_every_agent_failure() {
    let project = project_with_command_agent("failing-agent");
    for name in ["one", "two", "three"] {
        project.create_task(name, "write done.txt");
    }
    // Without the breaker, every task pauses.
    let out = project.obra(&["run", "--set", "engine.circuit_breaker=0"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(open_breakpoints(&project).len(), 3, "{}", text(&out));
    let out = project.obra(&["breakpoint", "resolve", "--all", "--rule", "agent-failed", "--retry"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.matches("Resolved breakpoint").count(), 3, "{stdout}");
    assert!(open_breakpoints(&project).is_empty());

    // With the default breaker (2), the second failure with the same cause stops the run.
    let out = project.obra(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["executions"].as_array().unwrap().len(), 2, "{summary}");
    let why = summary["stopped_because"].as_str().unwrap();
    assert!(why.starts_with("circuit breaker: 2 tasks in a row") && why.contains("API Error: 401"), "{why}");
    assert_eq!(open_breakpoints(&project).len(), 2);
    let pending = project.obra_json(&["task", "list", "--status", "pending", "--json"], 0);
    assert_eq!(pending.as_array().unwrap().len(), 1, "the third task was not touched: {pending}");

    // Another rule's filter resolves nothing; then fixed, the failures are retried and the run completes all.
    let out = project.obra(&["breakpoint", "resolve", "--all", "--rule", "decision", "--reject"]);
    assert!(out.status.success() && text(&out).contains("No open breakpoints of rule decision"), "{}", text(&out));
    std::fs::write(project.path().join("fixed.flag"), "").unwrap();
    let out = project.obra(&["breakpoint", "resolve", "--all", "--retry"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let done = project.obra_json(&["task", "list", "--status", "completed", "--json"], 0);
    assert_eq!(done.as_array().unwrap().len(), 3, "{done}");
}

#[test]
fn run_checks_the_agent_first_and_stops_before_any_task_when_its_cli_is_missing() {
    let project = project_with_command_agent("no-such-agent");
    let id = project.create_task("greet", "write done.txt");
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the agent command cannot run here, so no task was started"), "{stderr}");
    assert!(stderr.contains("no-such-agent"), "the cause: {stderr}");
    assert!(stderr.contains("fix: set agents.command.program"), "the fix: {stderr}");
    assert!(open_breakpoints(&project).is_empty(), "no breakpoint");
    assert_eq!(status_of(&project, id), "pending", "no task touched");
}
