//! Prompts, prompt rules, template overrides and structured LLM replies through `obra task execute`, with
//! echo-agent as the agent and a fake Ollama server as the LLM: a malformed reply repaired and used by the
//! decision, one rejected (the loop goes on without it and says why), the error analysis and the rules in the
//! next prompt, a project's template override, a broken override reported with file and line.

mod common;

use common::{Project, text};
use obra_testkit::{FakeOllama, OllamaReply};
use serde_json::{Value, json};

/// echo-agent with the fake Ollama as the LLM, `iterations` iterations, the response-format gate and a tests
/// gate running `gate_command`, no breakpoint rules, quick retries.
fn project(ollama: &FakeOllama, iterations: u32, gate_command: &str, extra: &str) -> Project {
    let project = Project::new();
    project.install_plugin("echo-agent");
    let gate_command = serde_json::to_string(gate_command).unwrap();
    project.write_config(&format!(
        r#"agent:
  plugin: echo-agent
llm:
  provider: ollama
  timeout_secs: 30
llms:
  ollama:
    base_url: {url}
    model: qwen2.5-coder:7b
engine:
  max_iterations: {iterations}
  decision:
    escalate_threshold: 0.3
  retry:
    max_attempts: 2
    base_delay_ms: 1
    max_delay_ms: 5
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: {gate_command}
rules: []
{extra}plugins:
  grants:
    echo-agent:
      commands: [ {{ program: echo, args: ["**"] }} ]
      workspace: write
"#,
        url = ollama.base_url()
    ));
    project
}

fn execute(project: &Project, id: i64) -> std::process::Output {
    project.obra(&["task", "execute", &id.to_string()])
}

fn shown(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

fn prompts(shown: &Value) -> Vec<String> {
    shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interaction"]["prompt"].as_str().unwrap().into())
        .collect()
}

fn metadata(prompt: &str) -> Value {
    let meta = prompt.split("<METADATA>").nth(1).unwrap().split("</METADATA>").next().unwrap();
    serde_json::from_str(meta).unwrap()
}

#[test]
fn a_repaired_llm_reply_is_used_by_the_decision_and_clarify_asks_the_llm_for_the_request() {
    // The opinion's confidence comes as a string and its concerns as one string: both repaired. 0.3 with the
    // heuristic 0.95 gives 0.69: CLARIFY, whose request the LLM writes; then 0.95 proceeds.
    let ollama = FakeOllama::start([
        OllamaReply::json(
            &json!({ "confidence": "0.3", "reasoning": "no greeting is shown", "concerns": "no output" }),
        ),
        OllamaReply::json(
            &json!({ "clarification": "Print the greeting you wrote.", "questions": ["Which file holds it?"] }),
        ),
        OllamaReply::json(&json!({ "confidence": 0.95, "reasoning": "done" })),
    ]);
    let project = project(&ollama, 2, "true", "");
    let id = project.create_task("greet", "print hello");
    let out = execute(&project, id);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("repaired the LLM's opinion reply"), "{}", text(&out));

    let task = shown(&project, id);
    assert_eq!(task["task"]["status"], "completed");
    let first = &task["interactions"][0]["decision"];
    assert_eq!(first["action"], "clarify");
    assert!((first["llm_score"].as_f64().unwrap() - 0.3).abs() < 1e-6, "{first}");
    let reasoning = first["llm_reasoning"].as_str().unwrap();
    assert!(reasoning.contains("Obra repaired the reply") && reasoning.contains("$.confidence"), "{reasoning}");

    let second = &prompts(&task)[1];
    assert!(second.contains("The supervisor asks you to clarify: Print the greeting you wrote."), "{second}");
    assert!(second.contains("- Which file holds it?"), "{second}");
    assert!(second.contains("Reviewer concern: no output"), "{second}");
    assert_eq!(ollama.remaining(), 0);
}

#[test]
fn a_reply_that_cannot_be_repaired_is_rejected_and_the_loop_goes_on_without_it() {
    let bad = || OllamaReply::json(&json!({ "confidence": "high", "reasoning": "fine" }));
    let ollama = FakeOllama::start([bad(), bad()]);
    let project = project(&ollama, 1, "true", "");
    let id = project.create_task("greet", "print hello");
    let out = execute(&project, id);
    assert!(out.status.success(), "{}", text(&out));

    let task = shown(&project, id);
    assert_eq!(task["task"]["status"], "completed", "the heuristics alone proceed");
    let decision = &task["interactions"][0]["decision"];
    assert!(decision["llm_score"].is_null(), "{decision}");
    let explanation = decision["explanation"].as_str().unwrap();
    assert!(explanation.contains("no LLM opinion"), "{explanation}");
    assert!(explanation.contains("$.confidence should be number, but is a string"), "{explanation}");
    assert_eq!(ollama.requests_to("/api/chat").len(), 2, "asked again under engine.retry");
}

#[test]
fn the_prompt_after_a_failed_iteration_holds_the_error_analysis_history_and_prompt_rules() {
    let ollama = FakeOllama::start([
        OllamaReply::json(&json!({ "confidence": 0.5, "reasoning": "the tests fail" })),
        OllamaReply::json(&json!({
            "diagnosis": "greet.sh does not exist, so the test cannot run it",
            "suggested_fixes": ["create greet.sh printing hello", "make it executable"]
        })),
        OllamaReply::json(&json!({ "confidence": 0.5, "reasoning": "still failing" })),
    ]);
    let project = project(&ollama, 2, "echo 'greet.sh: not found'; exit 1", "");
    std::fs::write(
        project.path().join(".obra/prompt_rules.yaml"),
        "rules:\n  - id: use_tabs\n    text: Indent shell scripts with tabs.\n    applies_to: [task_execution]\n    \
         severity: high\n  - id: say_when_blocked\n    enabled: false\n",
    )
    .unwrap();
    let id = project.create_task("greet", "write greet.sh that prints hello");
    let out = execute(&project, id);
    assert_eq!(out.status.code(), Some(3), "the last iteration escalates: {}", text(&out));

    let task = shown(&project, id);
    let prompts = prompts(&task);
    assert_eq!(prompts.len(), 2);
    let second = &prompts[1];
    assert!(second.contains("Diagnosis of the failure: greet.sh does not exist"), "{second}");
    assert!(second.contains("Suggested fix: create greet.sh printing hello"), "{second}");
    assert!(second.contains("Suggested fix: make it executable"), "{second}");
    assert!(second.contains("Quality gate `tests` failed"), "{second}");
    assert!(second.contains("Earlier iterations of this task"), "{second}");
    assert!(second.contains("iteration 1: outcome success; failed gates: tests; decision retry"), "{second}");
    assert!(second.contains("[high] Indent shell scripts with tabs."), "{second}");
    assert!(second.contains("[critical] Never write credentials"), "{second}");
    assert!(!second.contains("say so plainly"), "the disabled rule is gone: {second}");
    let meta = metadata(second);
    let ids: Vec<&str> = meta["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"use_tabs") && ids.contains(&"stay_in_scope") && !ids.contains(&"json_only"), "{ids:?}");
    assert!(meta["context"]["estimated_tokens"].as_u64().unwrap() > 0);

    // The error-analysis request itself was a structured prompt with its rules and schema.
    let chats = ollama.requests_to("/api/chat");
    let analysis = chats[1].json.clone().unwrap();
    assert_eq!(analysis["format"]["required"], json!(["diagnosis", "suggested_fixes"]));
    let asked = analysis["messages"][0]["content"].as_str().unwrap();
    assert_eq!(metadata(asked)["prompt_type"], "error_analysis");
    assert!(asked.contains("greet.sh: not found"), "the gate's output is in the analysis prompt: {asked}");
}

#[test]
fn a_project_template_override_is_used_and_a_broken_one_is_reported_with_file_and_line() {
    let project = Project::with_echo_agent("true", "  []");
    let templates = project.path().join(".obra/templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("task_execution.j2"),
        "CUSTOM PROMPT for {{ task.title }}\n{% for rule in rules %}{{ rule.id }} {% endfor %}\n",
    )
    .unwrap();
    let id = project.create_task("greet", "print hello");
    let out = execute(&project, id);
    assert!(out.status.success(), "{}", text(&out));
    let prompt = &prompts(&shown(&project, id))[0];
    assert!(prompt.starts_with("CUSTOM PROMPT for greet\n"), "{prompt}");
    assert!(prompt.contains("stay_in_scope"), "{prompt}");

    std::fs::write(templates.join("error_analysis.j2"), "<METADATA>\n{% if %}\n").unwrap();
    let out = project.obra(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".obra/templates/error_analysis.j2, line 2") && stderr.contains("syntax error"),
        "{stderr}"
    );

    let second = project.create_task("again", "print hello again");
    let out = execute(&project, second);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error_analysis.j2, line 2"), "{}", text(&out));
    let task = shown(&project, second);
    assert_eq!(task["task"]["status"], "pending", "nothing ran, nothing is lost");
    assert!(task["interactions"].as_array().unwrap().is_empty());
}
