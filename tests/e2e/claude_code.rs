//! `obra task execute` supervising the REAL Claude Code CLI (the pinned npm package) through the built-in
//! `claude-code` WASM agent plugin, against a scripted fake Anthropic Messages server, with the built-in
//! `ollama` provider plugin asking a fake Ollama server for its opinion.

mod common;

use common::claude::{opinion, setup, setup_without_checks, show};
use common::text;
use obra_testkit::{AnthropicReply, FakeAnthropic, FakeOllama, OllamaReply};
use serde_json::{Value, json};

#[test]
fn a_write_tool_use_creates_the_file_the_tests_gate_passes_and_the_task_completes() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("hello.txt", "hello from claude\n"),
        AnthropicReply::text("Created hello.txt with the greeting."),
    ]);
    let ollama = FakeOllama::start([opinion(0.93, "hello.txt holds the requested line")]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "grep -qx 'hello from claude' hello.txt", "") else {
        return;
    };
    let id = project.create_task("Create hello.txt", "Write the line 'hello from claude' to hello.txt");

    let out = project.obra(&["task", "execute", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["status"], "completed", "{}", text(&out));
    assert_eq!(outcome["iterations"], 1);

    // The real CLI really wrote the file in the workspace.
    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello from claude\n");

    let shown = show(&project, id);
    let first = &shown["interactions"][0];
    assert_eq!(first["interaction"]["outcome"], "success");
    assert!(first["interaction"]["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(first["interaction"]["output_tokens"].as_i64().unwrap() > 0);
    // The project's totals are in `status`, as the agent reported them.
    let status = project.obra_json(&["status", "--json"], 0);
    assert_eq!(status["usage"]["output_tokens"], first["interaction"]["output_tokens"], "{status}");
    let said = text(&project.obra(&["status"]));
    assert!(said.contains("agent usage: ") && said.contains(" tokens ("), "{said}");
    assert!(first["changes"].as_array().unwrap().iter().any(|c| c["path"] == "hello.txt"));
    let gates = first["gates"].as_array().unwrap();
    assert!(gates.iter().all(|g| g["passed"] == true), "{gates:?}");
    assert_eq!(first["decision"]["action"], "proceed");
    assert!((first["decision"]["llm_score"].as_f64().unwrap() - 0.93).abs() < 1e-6, "the LLM's opinion took part");

    // The prompt reached the model, in the hybrid format, and the LLM was asked for schema'd JSON.
    let requests = anthropic.message_requests();
    assert_eq!(requests.len(), 2, "one request per model turn");
    let body = requests[0].all_text();
    assert!(body.contains("<METADATA>") && body.contains("Create hello.txt"), "{body}");
    let chats = ollama.requests_to("/api/chat");
    assert_eq!(chats.len(), 1);
    let chat: Value = chats[0].json.clone().expect("the chat request is JSON");
    assert_eq!(chat["model"], "qwen2.5-coder:7b");
    assert_eq!(chat["format"]["type"], "object", "the JSON schema went out as `format`: {chat}");
    assert_eq!(chat["options"]["num_ctx"], 16384);
}

#[test]
fn a_gate_that_keeps_failing_is_retried_with_its_findings_then_escalated_to_a_breakpoint() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("answer.txt", "41\n"),
        AnthropicReply::text("Wrote the answer."),
        AnthropicReply::write_file("answer.txt", "41\n"),
        AnthropicReply::text("Wrote the answer again."),
    ]);
    // The LLM is asked for its opinion, then (the required gate failed) for an error analysis, then for its
    // opinion of the second attempt.
    let analysis = OllamaReply::json(&json!({
        "diagnosis": "answer.txt holds 41, the test expects 42",
        "suggested_fixes": ["write 42 to answer.txt"]
    }));
    let ollama = FakeOllama::start([opinion(0.7, "plausible"), analysis, opinion(0.7, "plausible")]);
    let gate = "echo 'expected 42 but got 41'; exit 1";
    let Some((project, _env)) = setup(&anthropic, &ollama, gate, "") else { return };
    let id = project.create_task("Answer", "Write the answer to answer.txt");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "paused at a breakpoint: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("decision: RETRY") && stdout.contains("breakpoint 1"), "{stdout}");

    let shown = show(&project, id);
    let interactions = shown["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    assert_eq!(interactions[0]["decision"]["action"], "retry");
    assert_eq!(interactions[1]["decision"]["action"], "escalate");
    assert_eq!(shown["task"]["status"], "paused");

    // The gate's findings are in the second iteration's prompt, and that prompt reached the model.
    let second_prompt = interactions[1]["interaction"]["prompt"].as_str().unwrap();
    assert!(second_prompt.contains("expected 42 but got 41"), "{second_prompt}");
    assert!(second_prompt.contains("Diagnosis of the failure: answer.txt holds 41"), "{second_prompt}");
    assert!(second_prompt.contains("Suggested fix: write 42 to answer.txt"), "{second_prompt}");
    assert_eq!(ollama.remaining(), 0, "opinion, error analysis, opinion");
    let requests = anthropic.message_requests();
    assert_eq!(requests.len(), 4);
    assert!(requests[2].all_text().contains("expected 42 but got 41"), "the model saw the feedback");

    let breakpoints = project.obra_json(&["breakpoint", "list", "--json"], 0);
    assert_eq!(breakpoints.as_array().unwrap().len(), 1);
    assert_eq!(breakpoints[0]["rule"], "max-iterations");

    // Executing again is refused until a human resolves the breakpoint; feedback sends it back to the agent.
    let again = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("obra breakpoint resolve 1"), "{}", text(&again));
    let resolved = project.obra(&["breakpoint", "resolve", "1", "--feedback", "The answer is 42."]);
    assert!(resolved.status.success(), "{}", text(&resolved));
    assert_eq!(show(&project, id)["task"]["status"], "pending");
}

/// The step output shows each agent run's tokens and cost as soon as it ends, with the task's total so far:
/// the token counts are the fake server's `usage`, summed over the model turns of the run, and the cost is the
/// one the real CLI reported, priced from those tokens.
#[test]
fn each_agent_run_shows_its_tokens_and_cost_and_the_tasks_total_in_the_step_output() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("answer.txt", "41\n").usage(1000, 200),
        AnthropicReply::text("Wrote the answer.").usage(1100, 50),
        AnthropicReply::write_file("answer.txt", "42\n").usage(1300, 210),
        AnthropicReply::text("Fixed the answer.").usage(1400, 40),
    ]);
    let analysis = OllamaReply::json(&json!({
        "diagnosis": "answer.txt holds 41, the test expects 42",
        "suggested_fixes": ["write 42 to answer.txt"]
    }));
    let ollama = FakeOllama::start([opinion(0.7, "plausible"), analysis, opinion(0.95, "42 it is")]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "grep -qx 42 answer.txt", "") else { return };
    // A model whose price the pinned CLI knows: $3 per million input tokens, $15 per million output tokens.
    let file = project.path().join(".obra/config.yaml");
    let config = std::fs::read_to_string(&file).unwrap();
    project.write_config(&config.replace("    max_turns: 5\n", "    max_turns: 5\n    model: claude-sonnet-4-5\n"));
    let id = project.create_task("Answer", "Write the answer to answer.txt");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = show(&project, id);
    let interactions = shown["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2, "{shown}");
    let stored = |i: usize, key: &str| interactions[i]["interaction"][key].clone();
    // The real CLI reported what the fake server said it used, and a cost.
    assert_eq!((stored(0, "input_tokens"), stored(0, "output_tokens")), (json!(2100), json!(250)), "{shown}");
    assert_eq!((stored(1, "input_tokens"), stored(1, "output_tokens")), (json!(2700), json!(250)), "{shown}");
    assert!(anthropic.message_requests().iter().all(|r| r.json.as_ref().unwrap()["model"] == "claude-sonnet-4-5"));
    let (first_cost, second_cost) = (stored(0, "cost_usd").as_f64().unwrap(), stored(1, "cost_usd").as_f64().unwrap());
    let priced = |input: f64, output: f64| (input * 3.0 + output * 15.0) / 1e6;
    assert!((first_cost - priced(2100.0, 250.0)).abs() < 1e-9, "{first_cost}");
    assert!((second_cost - priced(2700.0, 250.0)).abs() < 1e-9, "{second_cost}");

    let usage: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  usage: ")).collect();
    assert_eq!(
        usage,
        vec![
            format!(
                "  usage: 2350 tokens (2100 in, 250 out), ${first_cost:.4}; task so far: 2350 tokens (2100 in, 250 \
                 out), ${first_cost:.4}"
            ),
            format!(
                "  usage: 2950 tokens (2700 in, 250 out), ${second_cost:.4}; task so far: 5300 tokens (4800 in, 500 \
                 out), ${:.4}",
                first_cost + second_cost
            ),
        ],
        "{stdout}"
    );
    // Each shows as soon as its run ended: after the agent's line, before that run's gates.
    let at = |needle: &str, from: usize| stdout[from..].find(needle).map(|i| i + from).expect(needle);
    let first_agent = at("  agent: success", 0);
    let first_usage = at("  usage: 2350", first_agent);
    assert!(first_usage < at("  gate tests: FAIL", first_agent), "{stdout}");
    let second_usage = at("  usage: 2950", first_usage);
    assert!(second_usage < at("  gate tests: pass", first_usage), "{stdout}");
}

#[test]
fn http_429_then_500_are_classified_and_retried_until_the_run_succeeds() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::rate_limited().retry_after(1),
        AnthropicReply::server_error(),
        AnthropicReply::write_file("hello.txt", "hello from claude\n"),
        AnthropicReply::text("Created hello.txt."),
    ]);
    let ollama = FakeOllama::start([opinion(0.95, "done")]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "grep -qx 'hello from claude' hello.txt", "") else {
        return;
    };
    let id = project.create_task("Create hello.txt", "Write 'hello from claude' to hello.txt");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("retry"), "the retries are shown: {stdout}");

    let shown = show(&project, id);
    let attempts: Vec<(String, Option<i64>)> = shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (i["interaction"]["outcome"].as_str().unwrap_or("").to_string(), i["interaction"]["api_status"].as_i64())
        })
        .collect();
    assert_eq!(
        attempts,
        vec![("rate-limited".into(), Some(429)), ("api-error".into(), Some(500)), ("success".into(), None)],
        "every attempt is recorded with its classification"
    );
    assert_eq!(shown["task"]["status"], "completed");
    assert!(shown["interactions"].as_array().unwrap().iter().all(|i| i["interaction"]["iteration"] == 1));
}

#[test]
fn a_run_that_hits_its_turn_limit_runs_once_more_at_double_the_limit_resuming_its_session() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("a.txt", "a\n"),
        AnthropicReply::write_file("b.txt", "b\n"),
        AnthropicReply::text("Wrote a.txt and b.txt."),
    ]);
    let ollama = FakeOllama::start([opinion(0.95, "both files written")]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "true", "") else { return };
    let id = project.create_task("Two files", "Write a.txt and b.txt");
    let limits = ["--set", "agents.claude-code.max_turns=1", "--set", "engine.max_iterations=1"];
    let out = project.obra(&[&limits[..], &["task", "execute", &id.to_string()]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("at most 1 agent turns per run"), "the agent's max_turns caps the adaptive limit: {said}");
    assert!(said.contains("stopped at its limit of 1 turns; once more at 2, resuming its session"), "{said}");
    let shown = show(&project, id);
    let runs = shown["interactions"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{shown}");
    let (first, second) = (&runs[0]["interaction"], &runs[1]["interaction"]);
    assert_eq!(first["outcome"], "max-turns", "{shown}");
    assert_eq!(second["outcome"], "success", "{shown}");
    assert_eq!(first["session_id"], second["session_id"], "the doubled run resumes the session: {shown}");
    assert_eq!(first["iteration"], second["iteration"], "both runs are one iteration: {shown}");
    assert_eq!(shown["task"]["status"], "completed");
    assert!(project.path().join("a.txt").exists() && project.path().join("b.txt").exists());
    assert_eq!(anthropic.message_requests().len(), 3, "one Messages request per turn over both runs");
}

const NOT_READ: &str = "Edit calc.py: File has not been read yet. Read it first before writing to it.";
const CALC: &str = "def add(a, b):\n    return a - b\n";

#[test]
fn an_edit_the_cli_refused_followed_by_a_success_claim_is_retried_with_the_failure_then_escalated() {
    // The model edits calc.py without reading it first: the REAL CLI refuses the Edit (is_error), and the
    // model claims the fix anyway. Twice.
    let anthropic = FakeAnthropic::start([
        AnthropicReply::edit_file("calc.py", "return a - b", "return a + b"),
        AnthropicReply::text("Fixed add() to return the sum."),
        AnthropicReply::edit_file("calc.py", "return a - b", "return a + b"),
        AnthropicReply::text("Fixed add() to return the sum."),
    ]);
    let Some((project, _env)) = setup_without_checks(&anthropic) else { return };
    std::fs::write(project.path().join("calc.py"), CALC).unwrap();
    let id = project.create_task("Fix add", "add() in calc.py must return the sum");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "paused at a breakpoint, not completed: {}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("calc.py")).unwrap(), CALC, "the CLI refused the edit");

    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "paused");
    let interactions = shown["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    assert_eq!(interactions[0]["interaction"]["outcome"], "success", "the agent claimed success");
    assert_eq!(interactions[0]["failed_actions"], json!([NOT_READ]));
    assert_eq!(interactions[0]["decision"]["action"], "retry");
    assert!(interactions[0]["decision"]["confidence"].as_f64().unwrap() < 0.85);
    assert_eq!(interactions[1]["decision"]["action"], "escalate");

    // The next prompt, as the fake server received it, carries the failed action and the unsupported claim.
    let requests = anthropic.message_requests();
    assert_eq!(requests.len(), 4);
    let second = requests[2].all_text();
    assert!(second.contains(NOT_READ), "{second}");
    assert!(second.contains("You reported success but no file changed"), "{second}");

    // The last decision says why it escalated (the breakpoint itself is the max-iterations rule's).
    let why = interactions[1]["decision"]["explanation"].as_str().unwrap();
    assert!(why.contains("the agent reported success but no file changed and 1 of its actions failed"), "{why}");
    assert_eq!(project.obra_json(&["breakpoint", "list", "--json"], 0).as_array().map(Vec::len), Some(1));

    let shown_text = project.obra(&["task", "show", &id.to_string()]);
    assert!(
        String::from_utf8_lossy(&shown_text.stdout).contains(&format!("failed: {NOT_READ}")),
        "{}",
        text(&shown_text)
    );
}

#[test]
fn after_a_refused_edit_the_retry_reads_then_edits_and_the_task_completes_unverified() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::edit_file("calc.py", "return a - b", "return a + b"),
        AnthropicReply::text("Fixed add() to return the sum."),
        AnthropicReply::read_file("calc.py"),
        AnthropicReply::edit_file("calc.py", "return a - b", "return a + b"),
        AnthropicReply::text("Read calc.py, then fixed add() to return the sum."),
    ]);
    let Some((project, _env)) = setup_without_checks(&anthropic) else { return };
    std::fs::write(project.path().join("calc.py"), CALC).unwrap();
    let id = project.create_task("Fix add", "add() in calc.py must return the sum");

    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("calc.py")).unwrap(), "def add(a, b):\n    return a + b\n");
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "completed");
    let interactions = shown["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    assert_eq!(interactions[0]["decision"]["action"], "retry");
    assert_eq!(interactions[1]["failed_actions"], json!([]));
    assert_eq!(interactions[1]["decision"]["action"], "proceed");
    assert!(anthropic.message_requests()[2].all_text().contains(NOT_READ));

    // No tests gate and no LLM checked the work: it is marked unverified everywhere.
    assert_eq!(shown["unverified"], true);
    assert_eq!(interactions[1]["decision"]["verified_by"], "");
    let status = project.obra_json(&["status", "--json"], 0);
    assert_eq!(status["unverified_tasks"], json!([id]));
    let report = project.obra_json(&["report", "--json"], 0);
    assert_eq!(report["report"]["tasks"]["unverified"], json!([id]));
    let shown_text = project.obra(&["task", "show", &id.to_string()]);
    assert!(String::from_utf8_lossy(&shown_text.stdout).contains("completed, unverified"), "{}", text(&shown_text));
}

/// A Python project whose test imports `calc.add` from a `calc.py` that does not exist yet. Its conftest
/// records the command line of every ancestor of each pytest run (`.argv/<pid>`), so a test can see what `ps`
/// showed of the agent that started it.
fn python_project(root: &std::path::Path) {
    std::fs::write(root.join("test_calc.py"), "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
        .unwrap();
    std::fs::write(
        root.join("conftest.py"),
        r#"import os

os.makedirs(".argv", exist_ok=True)
pid, lines = os.getpid(), []
while pid > 1:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        lines.append(f.read().replace(b"\0", b" ").decode("utf-8", "replace"))
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
with open(f".argv/{os.getpid()}", "w") as f:
    f.write("\n".join(lines))
"#,
    )
    .unwrap();
    std::fs::write(root.join(".gitignore"), ".argv/\n__pycache__/\n.pytest_cache/\n").unwrap();
}

/// The strings in the first user message the model received (the prompt, as the CLI sent it).
fn first_user_texts(request: &obra_testkit::RecordedRequest) -> Vec<String> {
    match request.pointer("/messages/0/content") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(|b| b["text"].as_str().map(str::to_string)).collect(),
        other => panic!("no first user message: {other:?}"),
    }
}

#[test]
fn the_agent_runs_the_configured_pytest_command_through_bash_and_the_task_proceeds() {
    let Some(pytest) = obra_testkit::require_pytest() else { return };
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("calc.py", "def add(a, b):\n    return a + b\n"),
        AnthropicReply::bash("python3 -m pytest -q"),
        AnthropicReply::text("Created calc.py with add(); `python3 -m pytest -q` passes (1 passed)."),
    ]);
    let ollama = FakeOllama::start([opinion(0.93, "calc.add exists and the test passes")]);
    let Some((mut project, env)) = setup(&anthropic, &ollama, "python3 -m pytest -q", "") else {
        return;
    };
    // `python3` first on PATH is the pinned pytest's venv interpreter, for the agent and the gate alike.
    let venv_bin = std::fs::canonicalize(&pytest).unwrap().parent().unwrap().to_path_buf();
    let claude_bin = env.bin().parent().unwrap().display().to_string();
    let system = env.vars().iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    project.set_env("PATH", &format!("{}:{claude_bin}:{system}", venv_bin.display()));
    python_project(project.path());
    let marker = "PROMPT-MARKER-b7e1";
    let id =
        project.create_task("Add calc.add", &format!("Create calc.py with add(a, b) so test_calc.py passes. {marker}"));

    let out = project.obra(&["task", "execute", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["status"], "completed", "{}", text(&out));

    let shown = show(&project, id);
    let first = &shown["interactions"][0];
    assert_eq!(first["interaction"]["outcome"], "success", "no permission denial: {first}");
    assert_eq!(first["decision"]["action"], "proceed");
    assert!(first["gates"].as_array().unwrap().iter().all(|g| g["passed"] == true), "{first}");

    // The CLI really ran pytest through its Bash tool: the tool result the model saw says so.
    let requests = anthropic.message_requests();
    assert_eq!(requests.len(), 3, "one request per model turn");
    let after_bash = requests[2].all_text();
    assert!(after_bash.contains("1 passed"), "{after_bash}");
    assert!(!after_bash.contains("requested permissions") && !after_bash.contains("haven't granted"), "{after_bash}");

    // The prompt named the command and reached the model byte-identical, through stdin ...
    let prompt = first["interaction"]["prompt"].as_str().unwrap();
    assert!(prompt.contains("- tests: `python3 -m pytest -q`"), "{prompt}");
    assert!(first_user_texts(&requests[0]).iter().any(|t| t == prompt), "the model got the stored prompt as it is");
    // ... and never into an argv: every ancestor of the agent's pytest run (claude among them) is free of it.
    let mut saw_claude = false;
    for entry in std::fs::read_dir(project.path().join(".argv")).unwrap() {
        let ancestors = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        saw_claude |= ancestors.contains("stream-json");
        assert!(!ancestors.contains(marker) && !ancestors.contains("<METADATA>"), "{ancestors}");
    }
    assert!(saw_claude, "the agent's own pytest run recorded claude's command line");
}

#[test]
fn a_command_outside_the_allowed_set_is_still_refused_and_reported_as_a_permission_denial() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::bash("python3 -c 'open(\"pwned.txt\", \"w\").write(\"x\")'"),
        AnthropicReply::text("I could not run it."),
        AnthropicReply::bash("python3 -c 'open(\"pwned.txt\", \"w\").write(\"x\")'"),
        AnthropicReply::text("I could not run it."),
    ]);
    let ollama = FakeOllama::start([]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "test -f ok.txt", "") else {
        return;
    };
    let id = project.create_task("Try", "Run a python one-liner");
    let out = project.obra(&["task", "execute", &id.to_string(), "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!project.path().join("pwned.txt").exists(), "the command did not run");
    let shown = show(&project, id);
    let first = &shown["interactions"][0]["interaction"];
    assert_eq!(first["outcome"], "permission-denied", "{first}");
    assert!(first["summary"].as_str().unwrap_or("").contains("Bash"), "{first}");
}
