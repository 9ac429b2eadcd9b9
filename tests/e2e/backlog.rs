//! A backlog of dependent tasks through `obra run` with the REAL claude CLI, a scripted fake Anthropic server
//! and a fake Ollama as the supervising LLM: every decision path of the loop in one night's work — PROCEED,
//! RETRY with the gate's findings and the LLM's diagnosis, CLARIFY with the LLM's request, ESCALATE to a
//! breakpoint, and the resume after a human answers with feedback.

mod common;

use common::claude::{opinion, setup, show};
use common::{Project, text};
use obra_testkit::{AnthropicReply, FakeAnthropic, FakeOllama, OllamaReply};
use serde_json::json;

/// The project's test gate: each script that exists must print what it should.
const CHECK: &str = r#"for pair in greet.sh:hello farewell.sh:bye; do
  file=${pair%%:*}; want=${pair#*:}
  if [ -f "$file" ]; then
    got=$(sh "$file")
    [ "$got" = "$want" ] || { echo "$file: expected $want but got $got"; exit 1; }
  fi
done
echo "all scripts print what they should""#;

fn create(project: &Project, title: &str, description: &str, priority: &str, depends_on: &str) -> i64 {
    let mut args = vec!["task", "create", title, "-d", description, "-p", priority, "--json"];
    if !depends_on.is_empty() {
        args.extend(["--depends-on", depends_on]);
    }
    project.obra_json(&args, 0)["id"].as_i64().unwrap()
}

fn actions(shown: &serde_json::Value) -> Vec<String> {
    shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["decision"]["action"].as_str().unwrap_or("none").to_string())
        .collect()
}

#[test]
fn a_dependent_backlog_runs_unattended_through_every_decision_path_and_resumes_after_feedback() {
    let anthropic = FakeAnthropic::start([
        // Task 1: one run, PROCEED.
        AnthropicReply::write_file("greet.sh", "echo hello\n"),
        AnthropicReply::text("Created greet.sh."),
        // Task 2, iteration 1: a wrong script; the gate fails.
        AnthropicReply::write_file("farewell.sh", "echo by\n"),
        AnthropicReply::text("Created farewell.sh."),
        // Task 2, iteration 2: fixed after the findings.
        AnthropicReply::read_file("farewell.sh"),
        AnthropicReply::write_file("farewell.sh", "echo bye\n"),
        AnthropicReply::text("Fixed farewell.sh to print bye."),
        // Task 3, iteration 1: gates pass but the LLM doubts it; iteration 2 after the clarification request.
        AnthropicReply::write_file("SCRIPTS.md", "greet.sh prints hello.\n"),
        AnthropicReply::text("Documented greet.sh."),
        AnthropicReply::read_file("SCRIPTS.md"),
        AnthropicReply::write_file("SCRIPTS.md", "greet.sh prints hello.\nfarewell.sh prints bye.\n"),
        AnthropicReply::text("Documented both scripts."),
        // Task 4: the LLM has no confidence in it: a breakpoint.
        AnthropicReply::write_file("cleanup.txt", "removed old.txt\n"),
        AnthropicReply::text("Cleaned up."),
        // Task 4 again, after the human's feedback.
        AnthropicReply::text("Kept old.txt as you asked; nothing else to clean."),
    ]);
    let ollama = FakeOllama::start([]);
    // Scripted by what is asked: the error analysis and the clarification first (their prompts also name the
    // task), then each task's opinions by its title.
    ollama.route(
        "\"prompt_type\": \"error_analysis\"",
        OllamaReply::json(&json!({
            "diagnosis": "farewell.sh prints by, the check wants bye",
            "suggested_fixes": ["change the echo in farewell.sh to print bye"]
        })),
    );
    ollama.route(
        "\"prompt_type\": \"decision\"",
        OllamaReply::json(&json!({
            "clarification": "SCRIPTS.md documents greet.sh only; document farewell.sh too",
            "questions": []
        })),
    );
    ollama.route("Create greet.sh", opinion(0.95, "greet.sh prints hello"));
    ollama.route("Add farewell.sh", opinion(0.8, "looks right, but the check fails"));
    ollama.route("Add farewell.sh", opinion(0.93, "farewell.sh prints bye"));
    ollama.route("Document the scripts", opinion(0.5, "farewell.sh is not documented"));
    ollama.route("Document the scripts", opinion(0.95, "both scripts documented"));
    ollama.route("Risky cleanup", opinion(0.05, "it says it removed old.txt, which it must keep"));
    ollama.route("Risky cleanup", opinion(0.95, "nothing was removed"));

    let Some((project, _env)) = setup(&anthropic, &ollama, "sh .obra/check.sh", "") else { return };
    std::fs::write(project.path().join(".obra/check.sh"), CHECK).unwrap();
    let greet = create(&project, "Create greet.sh", "A script that prints hello", "9", "");
    let farewell = create(&project, "Add farewell.sh", "A script that prints bye", "8", &greet.to_string());
    let docs = create(&project, "Document the scripts", "Describe each script in SCRIPTS.md", "7", &greet.to_string());
    let cleanup = create(&project, "Risky cleanup", "Tidy the repository but keep old.txt", "1", "");

    // One unattended run: three tasks complete, the doubtful one waits for a human, the run goes on past it.
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(3), "exit 3: a task waits at a breakpoint\n{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.find("task 1,").unwrap() < said.find("task 2,").unwrap(), "dependencies first: {said}");

    let shown = show(&project, greet);
    assert_eq!((shown["task"]["status"].as_str(), actions(&shown)), (Some("completed"), vec!["proceed".to_string()]));
    assert_eq!(std::fs::read_to_string(project.path().join("greet.sh")).unwrap(), "echo hello\n");

    let shown = show(&project, farewell);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    assert_eq!(actions(&shown), ["retry", "proceed"], "{shown}");
    let second = shown["interactions"][1]["interaction"]["prompt"].as_str().unwrap();
    assert!(second.contains("farewell.sh: expected bye but got by"), "the gate's finding is fed back: {second}");
    assert!(second.contains("Diagnosis of the failure: farewell.sh prints by"), "the LLM's diagnosis: {second}");
    assert_eq!(std::fs::read_to_string(project.path().join("farewell.sh")).unwrap(), "echo bye\n");

    let shown = show(&project, docs);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    assert_eq!(actions(&shown), ["clarify", "proceed"], "{shown}");
    let second = shown["interactions"][1]["interaction"]["prompt"].as_str().unwrap();
    assert!(second.contains("document farewell.sh too"), "the LLM's clarification request: {second}");
    assert!(std::fs::read_to_string(project.path().join("SCRIPTS.md")).unwrap().contains("farewell.sh prints bye"));

    let shown = show(&project, cleanup);
    assert_eq!(shown["task"]["status"], "paused", "{shown}");
    assert_eq!(actions(&shown), ["escalate"], "{shown}");
    let first_session = shown["interactions"][0]["interaction"]["session_id"].as_str().unwrap().to_string();

    // The model saw each task's prompt in dependency and priority order.
    let requests = anthropic.message_requests();
    assert_eq!(requests.len(), 14, "one request per model turn");
    for (request, title) in
        [(0, "Create greet.sh"), (2, "Add farewell.sh"), (7, "Document the scripts"), (12, "Risky cleanup")]
    {
        assert!(requests[request].all_text().contains(title), "request {request} starts task {title:?}");
    }

    // A human answers with feedback; the next run resumes the task in the same agent session.
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let bp = open[0]["id"].as_i64().unwrap().to_string();
    let resolved = project.obra(&["breakpoint", "resolve", &bp, "--feedback", "Do not remove old.txt."]);
    assert!(resolved.status.success(), "{}", text(&resolved));
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = show(&project, cleanup);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    assert_eq!(actions(&shown), ["escalate", "proceed"], "{shown}");
    let resumed = &shown["interactions"][1]["interaction"];
    assert!(resumed["prompt"].as_str().unwrap().contains("Do not remove old.txt."), "{resumed}");
    assert_eq!(resumed["session_id"].as_str(), Some(first_session.as_str()), "the same agent session: {resumed}");
    assert_eq!(anthropic.message_requests().len(), 15);

    // The whole night in the report: four tasks done, one needed a human; the LLM was asked 9 times.
    let report = &project.obra_json(&["report", "--json"], 0)["report"];
    assert_eq!(report["tasks"]["by_status"]["completed"], 4, "{report}");
    assert_eq!(report["tasks"]["autonomous_completion_rate"], 0.75, "{report}");
    let llm_calls: i64 = report["usage_by_llm"].as_array().unwrap().iter().map(|u| u["runs"].as_i64().unwrap()).sum();
    assert_eq!(llm_calls, 9, "{report}");
}
