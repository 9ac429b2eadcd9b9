//! Supervision over time: `obra report` (outcomes, calibration, usage, durations) and `obra replay` (recorded
//! iterations through today's gates, rules and thresholds) on real runs of the loop.

mod common;

use common::{Project, text};

/// echo-agent (changes nothing), no LLM, two iterations, a tests gate that passes only when ok.txt exists.
fn project() -> Project {
    let project = Project::with_echo_agent("test -f ok.txt || { echo 'ok.txt is missing'; exit 1; }", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(&config.replace("max_iterations: 1", "max_iterations: 2"));
    project
}

#[test]
fn report_shows_outcomes_calibration_usage_and_durations() {
    let project = project();
    let failing = project.create_task("failing", "the gate never passes");
    let out = project.obra(&["task", "execute", &failing.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    std::fs::write(project.path().join("ok.txt"), "ok\n").unwrap();
    let passing = project.create_task("passing", "the gate passes");
    let out = project.obra(&["task", "execute", &passing.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let report = &project.obra_json(&["report", "--json"], 0)["report"];
    assert_eq!(report["tasks"]["total"], 2);
    assert_eq!(report["tasks"]["by_status"]["paused"], 1);
    assert_eq!(report["tasks"]["autonomous_completion_rate"], 1.0);
    assert_eq!(report["decisions"]["retry"], 1, "{report}");
    assert_eq!(report["decisions"]["escalate"], 1, "{report}");
    assert_eq!(report["decisions"]["proceed"], 1, "{report}");
    // The retried iteration and the proceed are settled; the escalation waits for a human.
    assert_eq!(
        (report["calibration"]["settled"].as_i64(), report["calibration"]["unsettled"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(report["breakpoints"][0]["rule"], "decision");
    assert_eq!(report["breakpoints"][0]["open"], 1);
    assert_eq!(report["agent_runs"]["total"], 3);
    assert_eq!(report["usage_by_agent"][0]["key"], "echo-agent");
    let steps: Vec<&str> =
        report["durations"].as_array().unwrap().iter().map(|d| d["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"agent") && steps.contains(&"gate tests"), "{steps:?}");

    // A human rejects the escalated work: its outcome is settled as rejected.
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let bp = open[0]["id"].as_i64().unwrap().to_string();
    assert!(project.obra(&["breakpoint", "resolve", &bp, "--reject"]).status.success());
    let report = &project.obra_json(&["report", "--json"], 0)["report"];
    assert_eq!(report["calibration"]["settled"], 3);
    assert_eq!(report["tasks"]["success_rate"], 0.5);

    let out = project.obra(&["report"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for part in [
        "Success      50% of 2 finished",
        "Breakpoints by rule",
        "decision",
        "Confidence calibration",
        "Brier score",
        "echo-agent",
        "gate tests",
    ] {
        assert!(shown.contains(part), "missing {part:?} in\n{shown}");
    }
}

#[test]
fn replay_reruns_gates_on_the_checkpointed_tree_and_shows_changed_decisions() {
    let project = project();
    let id = project.create_task("failing", "the gate never passes");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The current tree now passes the gate, but the tree iteration 1 left behind did not: replay judges the
    // iteration on the checkpoint taken before iteration 2, not on today's files.
    std::fs::write(project.path().join("ok.txt"), "ok\n").unwrap();

    let replay = project.obra_json(&["replay", &id.to_string(), "--json"], 0);
    let iterations = replay["iterations"].as_array().unwrap();
    assert_eq!(iterations.len(), 2, "{replay}");
    assert!(iterations[0]["gates_source"].as_str().unwrap().starts_with("re-run on checkpoint"), "{replay}");
    let tests_gate = iterations[0]["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "tests").unwrap();
    assert_eq!(tests_gate["passed"], false, "{replay}");
    assert!(iterations[1]["gates_source"].as_str().unwrap().starts_with("recorded"), "{replay}");
    assert_eq!(replay["changed"], 0, "same configuration, same decisions: {replay}");

    // Today's thresholds are stricter: the retried iteration would have been escalated at once.
    let out = project.obra(&["--set", "engine.decision.escalate_threshold=0.8", "replay", &id.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("recorded RETRY") && shown.contains("today ESCALATE") && shown.contains("[CHANGED]"),
        "{shown}"
    );
    assert!(shown.contains("1 of 2 decision(s) would change. Nothing was stored."), "{shown}");
    // Nothing was stored: the task and its decisions are as they were.
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(shown["task"]["status"], "paused");

    let missing = project.obra(&["replay", "99"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("task 99"), "{}", text(&missing));
}
