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

/// The replay agent playing `iterations` (YAML list items), no LLM unless `llm` says otherwise, `max` iterations,
/// a tests gate running `gate`, and `extra` YAML appended to the config.
fn replay_project(iterations: &str, max: u32, gate: &str, llm: &str, extra: &str) -> Project {
    let project = Project::new();
    project.write_config(&format!(
        r#"agent:
  plugin: replay
llm:
{llm}
engine:
  max_iterations: {max}
  retry:
    max_attempts: 1
agents:
  replay:
    past_end: repeat-last
    recording:
      version: 1
      iterations:
{iterations}
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: {gate:?}
rules: []
{extra}"#
    ));
    project
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_session_is_warned_about_then_refreshed_with_a_summary_the_next_prompt_carries() {
    let iterations = r#"        - result: { outcome: success, summary: "Read the parser; the bug is in tokenize().", session_id: s1, turns: 3, duration_ms: 5, exit_code: 0, usage: { input_tokens: 700, output_tokens: 50, cache_read_tokens: 9000, cache_write_tokens: 0 } }
        - result: { outcome: success, summary: "Fixed tokenize() but tests still fail.", session_id: s1, turns: 2, duration_ms: 5, exit_code: 0, usage: { input_tokens: 100, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0 } }
        - writes: [{ path: done.txt, content: "done\n" }]
          result: { outcome: success, summary: "All tests pass.", session_id: s2, turns: 2, duration_ms: 5, exit_code: 0 }"#;
    let project = replay_project(
        iterations,
        3,
        "test -f done.txt || { echo 'done.txt is missing'; exit 1; }",
        "  provider: none",
        "sessions:\n  context_window_tokens: 1000\n",
    );
    let id = project.create_task("Fix the parser", "tokenize() drops the last token");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert_eq!(said.matches("has used 75% of its context window").count(), 1, "{said}");
    assert!(said.contains("agent session s1 refreshed (planned refresh at 85% of the context window)"), "{said}");
    assert_eq!(said.matches("decisions use the heuristics alone").count(), 1, "{said}");

    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let prompts: Vec<&str> = shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interaction"]["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts.len(), 3);
    assert!(!prompts[1].contains("Context carried over"), "{}", prompts[1]);
    let third = prompts[2];
    assert!(third.contains("Context carried over from the previous agent session"), "{third}");
    assert!(
        third.contains("task 1: Read the parser; the bug is in tokenize().") && third.contains("Fixed tokenize()"),
        "{third}"
    );
    let sessions = shown["sessions"].as_array().unwrap();
    let s1 = sessions.iter().find(|s| s["session_id"] == "s1").unwrap();
    assert_eq!(s1["ended_reason"], "planned refresh at 85% of the context window", "{s1}");
    assert!(s1["summary"].as_str().unwrap().contains("Fixed tokenize()"), "{s1}");
    let s2 = sessions.iter().find(|s| s["session_id"] == "s2").unwrap();
    assert!(s2["ended_reason"].is_null(), "{s2}");
}

#[test]
fn with_the_llm_down_clear_cases_proceed_and_only_doubtful_ones_ask_a_human() {
    // Every iteration writes hello.txt: the first task creates it (a clear success), the second finds it
    // already there and changes nothing, which leaves its confidence in the doubtful band.
    let iterations = r#"        - writes: [{ path: hello.txt, content: "hello\n" }]
          result: { outcome: success, summary: "Wrote hello.txt.", turns: 1, duration_ms: 5, exit_code: 0 }"#;
    let llm = "  provider: ollama\n  timeout_secs: 5";
    let extra = "engine:\n  max_iterations: 2\n  retry:\n    max_attempts: 1\n  decision:\n    proceed_threshold: 0.97\nllms:\n  ollama:\n    base_url: http://127.0.0.1:9\n";
    let project = replay_project(iterations, 2, "true", llm, "");
    // The engine section is replaced whole by the extra one (same keys, plus the stricter threshold).
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config.replace("engine:\n  max_iterations: 2\n  retry:\n    max_attempts: 1\n", "");
    project.write_config(&format!("{config}{extra}"));
    let first = project.create_task("Greeting", "write hello.txt");
    let second = project.create_task("Greeting again", "make sure hello.txt exists");

    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = stdout(&out);
    assert_eq!(said.matches("the LLM is unavailable").count(), 1, "said once per run: {said}");

    let status = |id: i64| project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let a = status(first);
    assert_eq!(a["task"]["status"], "completed", "{a}");
    let b = status(second);
    assert_eq!(b["task"]["status"], "paused", "{b}");
    assert_eq!(b["interactions"].as_array().unwrap().len(), 1, "a human is asked at once, no CLARIFY round: {b}");
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "llm-unavailable");
    assert!(open[0]["reason"].as_str().unwrap().contains("LLM"), "{}", open[0]);
}

#[test]
fn a_slow_llm_is_cut_off_at_its_time_limit_and_the_loop_decides_without_it() {
    use obra_testkit::{FakeOllama, OllamaReply};
    // The opinion comes after 30 s, far past the 2 s limit.
    let fake = FakeOllama::start([OllamaReply::json(
        &serde_json::json!({ "confidence": 0.2, "reasoning": "too late to count" }),
    )
    .delay(std::time::Duration::from_secs(30))]);
    let iterations = r#"        - writes: [{ path: hello.txt, content: "hello\n" }]
          result: { outcome: success, summary: "Wrote hello.txt.", turns: 1, duration_ms: 5, exit_code: 0 }"#;
    let llm = "  provider: ollama\n  timeout_secs: 2";
    let extra = format!("llms:\n  ollama:\n    base_url: {}\n", fake.base_url());
    let project = replay_project(iterations, 1, "true", llm, &extra);
    let slow = project.create_task("Greeting", "write hello.txt");

    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("the LLM is unavailable"), "the slow LLM is reported: {said}");
    let shown = project.obra_json(&["task", "show", &slow.to_string(), "--json"], 0);
    assert_eq!(shown["task"]["status"], "completed", "a clear success proceeds on heuristics: {shown}");
    let decision = &shown["interactions"][0]["decision"];
    assert!(decision["llm_score"].is_null(), "the late answer did not count: {decision}");
    let calls = shown["llm_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{shown}");
    let error = calls[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("time") || error.contains("timed out"), "the call is recorded as timed out: {error}");
    assert!(calls[0]["duration_ms"].as_i64().unwrap() < 30_000, "cut off before the reply came: {}", calls[0]);
}
