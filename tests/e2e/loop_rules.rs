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
