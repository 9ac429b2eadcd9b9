//! Quality gates and the built-in breakpoint rules through `obra run` (ADR 0014): gate names and timeouts,
//! the lint mode of the tests gate, expected-files, llm-review against a fake Ollama, and the host-native
//! destructive-change, budget and repeated-failure rules; a breakpoint pauses only its task, and feedback
//! given when resolving it reaches the next prompt.

mod common;

use common::{Project, text};
use obra_testkit::{FakeOllama, OllamaReply};
use serde_json::{Value, json};

/// A project whose agent is the built-in replay agent playing `iterations` (the last one repeats), with no
/// LLM, `max_iterations`, and `rest` (YAML: gates, rules, ...) appended.
fn replay_project(iterations: Value, max_iterations: u32, rest: &str) -> Project {
    let project = Project::new();
    configure_replay(&project, iterations, max_iterations, rest);
    project
}

/// Write the configuration [`replay_project`] describes into `project`.
fn configure_replay(project: &Project, iterations: Value, max_iterations: u32, rest: &str) {
    let recording = json!({ "version": 1, "iterations": iterations });
    project.write_config(&format!(
        "agent:\n  plugin: replay\nagents:\n  replay:\n    past_end: repeat-last\n    recording: {recording}\n\
         llm:\n  provider: none\nengine:\n  max_iterations: {max_iterations}\n  checkpoints: false\n{rest}"
    ));
}

/// One replayed iteration: `writes` (path, content), `deletes`, and a successful result using `tokens`.
fn iteration(writes: &[(&str, &str)], deletes: &[&str], tokens: (u64, u64)) -> Value {
    json!({
        "writes": writes.iter().map(|(p, c)| json!({ "path": p, "content": c })).collect::<Vec<_>>(),
        "deletes": deletes,
        "result": {
            "outcome": "success",
            "summary": "Did the work as asked.",
            "usage": { "input_tokens": tokens.0, "output_tokens": tokens.1, "cost_usd": 0.01 },
        },
    })
}

/// `obra run --json` with the expected exit code.
fn run(project: &Project, code: i32) -> Value {
    project.obra_json(&["run", "--json"], code)
}

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

fn open_breakpoints(project: &Project) -> Vec<Value> {
    project.obra_json(&["breakpoint", "list", "--json"], 0).as_array().unwrap().clone()
}

/// The gates of every iteration of a task, in order.
fn gates_of(project: &Project, id: i64) -> Vec<Vec<Value>> {
    show(project, id)["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["decision"].is_object())
        .map(|i| i["gates"].as_array().unwrap().clone())
        .collect()
}

fn prompts_of(project: &Project, id: i64) -> Vec<String> {
    show(project, id)["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interaction"]["prompt"].as_str().unwrap().to_string())
        .collect()
}

/// Write `n` files `old/fN.txt` before the run.
fn add_files(project: &Project, n: usize) -> Vec<String> {
    let paths: Vec<String> = (0..n).map(|i| format!("old/f{i}.txt")).collect();
    std::fs::create_dir_all(project.path().join("old")).unwrap();
    for p in &paths {
        std::fs::write(project.path().join(p), "x\n").unwrap();
    }
    paths
}

#[test]
fn deleting_more_files_than_allowed_pauses_only_that_task_and_feedback_reaches_the_next_prompt() {
    // The default rules are in force: destructive-change pauses above 10 deleted files.
    let project = Project::new();
    let paths = add_files(&project, 12);
    let deletes: Vec<&str> = paths.iter().map(String::as_str).collect();
    // A tests gate verifies the runs that change nothing (the replay finds the files already gone): without
    // one, a change-free success claim never proceeds (ADR 33).
    let gates = "gates:\n  - plugin: response-format\n  - plugin: tests\n    enabled: true\n    config:\n      command: \"true\"\n";
    configure_replay(&project, json!([iteration(&[], &deletes, (0, 0))]), 1, gates);

    let cleanup =
        project.obra_json(&["task", "create", "clean up", "--priority", "9", "--json"], 0)["id"].as_i64().unwrap();
    let other = project.create_task("independent", "another piece of work");
    let summary = run(&project, 3);
    let executions = summary["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 2, "{summary}");
    assert_eq!((executions[0]["task_id"].as_i64(), executions[0]["status"].as_str()), (Some(cleanup), Some("paused")));
    let reason = executions[0]["reason"].as_str().unwrap();
    assert!(reason.contains("breakpoint (destructive-change)"), "{reason}");
    assert!(reason.contains("deleted 12 files") && reason.contains("max_deleted_files (10)"), "{reason}");
    assert!(reason.contains("--feedback"), "{reason}");
    // The paused task did not stop the independent one (its replay finds the files already gone).
    assert_eq!((executions[1]["task_id"].as_i64(), executions[1]["status"].as_str()), (Some(other), Some("completed")));

    let open = open_breakpoints(&project);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["rule"], "destructive-change");
    let bp = open[0]["id"].as_i64().unwrap().to_string();
    let out = project.obra(&["breakpoint", "resolve", &bp, "--feedback", "Keep the old files; archive them instead."]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = run(&project, 0);
    assert_eq!(summary["executions"][0]["task_id"].as_i64(), Some(cleanup), "{summary}");
    assert_eq!(summary["executions"][0]["status"], "completed", "{summary}");
    let prompts = prompts_of(&project, cleanup);
    assert_eq!(prompts.len(), 2);
    assert!(!prompts[0].contains("archive them instead"));
    assert!(prompts[1].contains("Keep the old files; archive them instead."), "{}", prompts[1]);
}

#[test]
fn touching_a_protected_path_pauses_the_task() {
    let project = replay_project(
        json!([iteration(&[("src/app.txt", "ok\n"), (".env", "SECRET=1\n")], &[], (0, 0))]),
        1,
        "gates:\n  - plugin: response-format\n",
    );
    let id = project.create_task("configure", "set things up");
    let summary = run(&project, 3);
    let reason = summary["executions"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("breakpoint (destructive-change)") && reason.contains("protected path"), "{reason}");
    assert!(reason.contains(".env created") && reason.contains("rules[2].config.protected"), "{reason}");
    assert!(!reason.contains("src/app.txt"), "{reason}");
    assert_eq!(show(&project, id)["task"]["status"], "paused");
}

#[test]
fn a_task_over_its_token_budget_pauses() {
    let project = replay_project(
        json!([iteration(&[("a.txt", "1\n")], &[], (400, 200))]),
        1,
        "gates:\n  - plugin: response-format\nrules:\n  - plugin: budget\n    config:\n      max_task_tokens: 500\n",
    );
    let id = project.create_task("costly", "uses many tokens");
    let summary = run(&project, 3);
    let reason = summary["executions"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("breakpoint (budget)"), "{reason}");
    assert!(reason.contains("the task used 600 tokens, over its budget of 500 tokens"), "{reason}");
    assert!(reason.contains("rules[0].config.max_task_tokens"), "{reason}");
    // Under the limit nothing fires.
    let cheap = replay_project(
        json!([iteration(&[("a.txt", "1\n")], &[], (100, 100))]),
        1,
        "gates:\n  - plugin: response-format\nrules:\n  - plugin: budget\n    config:\n      max_task_tokens: 500\n",
    );
    cheap.create_task("cheap", "few tokens");
    assert_eq!(run(&cheap, 0)["executions"][0]["status"], "completed");
    assert_eq!(show(&project, id)["task"]["status"], "paused");
}

#[test]
fn the_same_failing_test_twice_pauses_before_the_iteration_limit() {
    let project = Project::with_echo_agent(
        "echo 'FAIL test_add: expected 3, got 4'; exit 1",
        "  - plugin: repeated-failure\n  - plugin: max-iterations\n",
    );
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(
        &config.replace("  max_iterations: 1\n", "  max_iterations: 4\n  decision:\n    escalate_threshold: 0.0\n"),
    );
    let id = project.create_task("add", "make add work");
    let summary = run(&project, 3);
    let execution = &summary["executions"][0];
    assert_eq!(execution["iterations"], 2, "{summary}");
    let reason = execution["reason"].as_str().unwrap();
    assert!(reason.contains("breakpoint (repeated-failure)"), "{reason}");
    assert!(reason.contains("the same failure happened 2 times in a row"), "{reason}");
    assert!(reason.contains("gate `tests` failed"), "{reason}");
    assert_eq!(open_breakpoints(&project)[0]["rule"], "repeated-failure");
    assert_eq!(gates_of(&project, id).len(), 2);
}

#[test]
fn lint_findings_with_paths_and_lines_reach_the_next_prompt() {
    let project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let lint = "  - plugin: tests\n    name: lint\n    required: true\n    config:\n      command: \"printf 'src/calc.py:12:5: F841 local variable x is assigned to but never used\\\\n'; exit 1\"\n      findings: lines\nrules:\n";
    let config = config
        .replace("  max_iterations: 1\n", "  max_iterations: 2\n  decision:\n    escalate_threshold: 0.0\n")
        .replace("rules:\n", lint);
    project.write_config(&config);
    let id = project.create_task("tidy", "clean the code");
    run(&project, 3);
    let gates = gates_of(&project, id);
    let lint = gates[0].iter().find(|g| g["gate"] == "lint").unwrap_or_else(|| panic!("no lint gate: {gates:?}"));
    assert_eq!(lint["passed"], false);
    let findings: Value = serde_json::from_str(lint["findings_json"].as_str().unwrap()).unwrap();
    assert_eq!(findings[0]["path"], "src/calc.py");
    assert_eq!(findings[0]["line"], 12);
    assert_eq!(findings[0]["severity"], "error");
    // The two instances of the tests plugin are told apart.
    assert!(gates[0].iter().any(|g| g["gate"] == "tests"), "{gates:?}");
    let prompts = prompts_of(&project, id);
    assert!(prompts[1].contains("`lint` failed"), "{}", prompts[1]);
    assert!(
        prompts[1].contains("F841 local variable x is assigned to but never used (src/calc.py:12:5)"),
        "{}",
        prompts[1]
    );
}

#[test]
fn expected_files_fail_then_pass() {
    let project = replay_project(
        json!([
            iteration(&[("notes.txt", "todo\n")], &[], (0, 0)),
            iteration(&[("docs/guide.md", "# Guide\n")], &[], (0, 0))
        ]),
        2,
        "gates:\n  - plugin: expected-files\n    config:\n      must_exist: [\"docs/*.md\"]\n      \
         must_change: [\"docs/**\"]\n      must_not_change: [\"README.md\"]\nrules: []\n",
    );
    // Retry rather than escalate after the first, failing iteration.
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(
        &config.replace("  checkpoints: false\n", "  checkpoints: false\n  decision:\n    escalate_threshold: 0.0\n"),
    );
    let id = project.create_task("document", "write the guide");
    let summary = run(&project, 0);
    assert_eq!(summary["executions"][0]["status"], "completed", "{summary}");
    let gates = gates_of(&project, id);
    assert_eq!(gates.len(), 2);
    assert_eq!((gates[0][0]["gate"].as_str(), gates[0][0]["passed"].as_bool()), (Some("expected-files"), Some(false)));
    assert!(gates[0][0]["summary"].as_str().unwrap().contains("2 of 3"), "{:?}", gates[0][0]);
    assert_eq!(gates[1][0]["passed"], true, "{:?}", gates[1][0]);
    assert!(prompts_of(&project, id)[1].contains("No file matching `docs/*.md` exists"));
}

#[test]
fn a_gate_past_its_timeout_fails_with_a_finding_and_the_loop_goes_on() {
    let project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config.replace(
        "  - plugin: tests\n    enabled: true\n    config:\n      command: \"true\"\n",
        "  - plugin: tests\n    name: slow\n    enabled: true\n    required: false\n    timeout_secs: 1\n    config:\n      command: \"sleep 30\"\n  - plugin: tests\n    name: after\n    config:\n      command: \"true\"\n",
    );
    project.write_config(&config);
    let id = project.create_task("wait", "a gate hangs");
    // The loop scores the iteration and decides as usual: the timed-out gate is not required, so the work
    // (echo-agent.txt) proceeds with the failure in the explanation.
    let summary = run(&project, 0);
    assert_eq!(summary["executions"].as_array().unwrap().len(), 1, "{summary}");
    let reason = summary["executions"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("slow 0.00 FAILED") && reason.contains("after 1.00"), "{reason}");
    let gates = &gates_of(&project, id)[0];
    let slow = gates.iter().find(|g| g["gate"] == "slow").unwrap();
    assert_eq!(slow["passed"], false);
    assert!(slow["summary"].as_str().unwrap().contains("timed out after 1 s"), "{slow}");
    let findings: Value = serde_json::from_str(slow["findings_json"].as_str().unwrap()).unwrap();
    assert!(findings[0]["message"].as_str().unwrap().contains("gates[1].timeout_secs"), "{findings}");
    assert!(slow["duration_ms"].as_i64().unwrap() < 30_000);
    // The gate after it ran.
    assert_eq!(gates.iter().find(|g| g["gate"] == "after").unwrap()["passed"], true);
}

/// A project with echo-agent, the Ollama provider at `fake` and only the llm-review gate.
fn review_project(fake: &FakeOllama) -> Project {
    let project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config.replace("llm:\n  provider: none\n", "llm:\n  provider: ollama\n  weight: 0.1\n").replace(
        "  - plugin: tests\n    enabled: true\n    config:\n      command: \"true\"\n",
        "  - plugin: llm-review\n    config:\n      min_score: 0.6\n      instructions: \"Prefer small functions.\"\n",
    );
    project.write_config(&format!(
        "{config}llms:\n  ollama:\n    base_url: {}\n    model: qwen2.5-coder:7b\n",
        fake.base_url()
    ));
    project
}

#[test]
fn llm_review_asks_the_configured_llm_and_scores_its_verdict() {
    let opinion = || OllamaReply::json(&json!({ "confidence": 0.9, "reasoning": "fine" }));
    let good = json!({ "score": 0.9, "passed": true, "findings": [] });
    let bad = json!({ "score": 0.2, "passed": false, "findings": [
        { "severity": "error", "path": "src/calc.py", "line": 7, "message": "divides by zero when the list is empty" } ] });
    let fake = FakeOllama::start([OllamaReply::json(&good), opinion(), OllamaReply::json(&bad), opinion()]);
    let project = review_project(&fake);
    let first = project.create_task("review me", "add the calc module");
    let second = project.create_task("review me too", "fix the calc module");
    run(&project, 3);
    let passed = &gates_of(&project, first)[0];
    let review = passed.iter().find(|g| g["gate"] == "llm-review").unwrap();
    assert_eq!(review["passed"], true, "{review}");
    assert!(review["summary"].as_str().unwrap().contains("score 0.90"), "{review}");
    let failed = &gates_of(&project, second)[0];
    let review = failed.iter().find(|g| g["gate"] == "llm-review").unwrap();
    assert_eq!(review["passed"], false, "{review}");
    let findings: Value = serde_json::from_str(review["findings_json"].as_str().unwrap()).unwrap();
    assert_eq!((findings[0]["path"].as_str(), findings[0]["line"].as_i64()), (Some("src/calc.py"), Some(7)));
    // The review request carried the task, the agent's summary, the extra instructions and a JSON schema.
    let chats = fake.requests_to("/api/chat");
    let body = chats[0].json.clone().unwrap();
    let sent = body["messages"].to_string();
    assert!(sent.contains("add the calc module") && sent.contains("prompt has"), "{sent}");
    assert!(sent.contains("Prefer small functions."), "{sent}");
    assert_eq!(body["format"]["required"], json!(["score", "passed", "findings"]));
}

#[test]
fn llm_review_without_an_llm_is_a_gate_error_that_says_so() {
    let project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(&config.replace(
        "  - plugin: tests\n    enabled: true\n    config:\n      command: \"true\"\n",
        "  - plugin: llm-review\n",
    ));
    let id = project.create_task("review", "no llm");
    run(&project, 3);
    let review = gates_of(&project, id)[0].iter().find(|g| g["gate"] == "llm-review").cloned().unwrap();
    assert_eq!(review["passed"], false);
    let error = review["error"].as_str().unwrap();
    assert!(error.contains("llm-review could not ask the LLM") && error.contains("llm.provider"), "{error}");
}

#[test]
fn the_project_cost_budget_counts_every_task_of_the_project() {
    // Each replayed run costs $0.01; the project may spend $0.015.
    let project = replay_project(
        json!([iteration(&[("a.txt", "1\n")], &[], (10, 10))]),
        1,
        "gates:\n  - plugin: response-format\nrules:\n  - plugin: budget\n    config:\n      max_project_cost_usd: 0.015\n",
    );
    let first = project.create_task("first", "within budget");
    let second = project.create_task("second", "over the project's budget");
    let summary = run(&project, 3);
    let executions = summary["executions"].as_array().unwrap();
    assert_eq!((executions[0]["task_id"].as_i64(), executions[0]["status"].as_str()), (Some(first), Some("completed")));
    assert_eq!((executions[1]["task_id"].as_i64(), executions[1]["status"].as_str()), (Some(second), Some("paused")));
    let reason = executions[1]["reason"].as_str().unwrap();
    assert!(reason.contains("the project used $0.0200, over its budget of $0.0150"), "{reason}");
    assert!(reason.contains("rules[0].config.max_project_cost_usd"), "{reason}");
}
