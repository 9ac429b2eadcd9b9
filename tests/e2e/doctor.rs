//! `obra doctor`: what a run needs, checked for real — the claude CLI, the LLM endpoint, the store, git and the
//! plugins — with what to fix, and exit code 1 when something is missing.

mod common;

use common::claude::setup;
use common::{Project, text};
use obra_testkit::{FakeAnthropic, FakeOllama};

#[test]
fn doctor_names_what_is_missing_and_how_to_fix_it() {
    let mut project = Project::new();
    // No claude on PATH, and nothing listens where the LLM should be.
    project.set_env("PATH", "/usr/bin:/bin");
    project.write_config("llms:\n  ollama:\n    base_url: http://127.0.0.1:9\n");
    let out = project.obra(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("FAIL  agent claude-code") && said.contains("\"claude\" was not found on PATH"), "{said}");
    assert!(said.contains("npm install -g @anthropic-ai/claude-code"), "{said}");
    assert!(said.contains("FAIL  LLM ollama") && said.contains("http://127.0.0.1:9"), "{said}");
    assert!(said.contains("ok    store") && said.contains("schema level 5"), "{said}");
    assert!(said.contains("2 check(s) failed"), "{said}");
    assert!(said.contains("ok    grants"), "{said}");

    // A grant narrower than the manifest asks is shown with what to add.
    project.write_config(
        "llms:\n  ollama:\n    base_url: http://127.0.0.1:9\nplugins:\n  grants:\n    claude-code:\n      \
         commands: [{program: claude, args: [\"**\"]}]\n      env: [PATH]\n",
    );
    let said = text(&project.obra(&["doctor"]));
    assert!(said.contains("grants") && said.contains("claude-code: ") && said.contains("ANTHROPIC_API_KEY"), "{said}");

    let checks: serde_json::Value = serde_json::from_slice(&project.obra(&["doctor", "--json"]).stdout).unwrap();
    let failed: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["agent claude-code", "LLM ollama"], "{checks}");
    assert!(checks.as_array().unwrap().iter().all(|c| c["status"] == "ok" || c["fix"].is_string()), "{checks}");

    // Pull requests without the remote they push to, nor gh on PATH; and a merge left half-done.
    project.write_config(
        "llms:\n  ollama:\n    base_url: http://127.0.0.1:9\ngit:\n  commit_strategy: per_task\n  \
         branch_per_task: true\n  create_pr: true\n  remote: upstream\n",
    );
    let head = std::process::Command::new("git").current_dir(project.path()).args(["rev-parse", "HEAD"]).output();
    std::fs::write(project.path().join(".git/MERGE_HEAD"), head.unwrap().stdout).unwrap();
    let out = project.obra(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("FAIL  git state") && said.contains("git merge --abort"), "{said}");
    assert!(said.contains("FAIL  pull requests") && said.contains("\"upstream\""), "{said}");
    assert!(said.contains("git remote add upstream"), "{said}");
    let gh_installed = ["/usr/bin/gh", "/bin/gh"].iter().any(|p| std::path::Path::new(p).exists());
    assert!(gh_installed || said.contains("`gh` is not on PATH"), "{said}");
}

#[test]
fn doctor_passes_with_the_real_claude_cli_and_a_reachable_llm_with_its_model() {
    let anthropic = FakeAnthropic::start([]);
    let ollama = FakeOllama::start([]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "true", "") else { return };
    let out = project.obra(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ok    agent claude-code") && said.contains("Claude Code"), "{said}");
    assert!(said.contains("authenticated (api_key from ANTHROPIC_API_KEY)"), "{said}");
    assert!(said.contains("ok    LLM ollama") && said.contains("model qwen2.5-coder:7b present"), "{said}");
    assert!(said.contains("Everything obra needs is in place."), "{said}");
    assert!(anthropic.message_requests().is_empty(), "a health check costs no model call");

    // The model is gone from the server: the check says which one to pull.
    ollama.set_models(vec![]);
    let out = project.obra(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ollama pull qwen2.5-coder:7b"), "{}", text(&out));
}

#[test]
fn doctor_says_when_the_claude_cli_is_not_authenticated() {
    let anthropic = FakeAnthropic::start([]);
    let ollama = FakeOllama::start([]);
    let Some((mut project, _env)) = setup(&anthropic, &ollama, "true", "") else { return };
    // No key in the environment and no login in the (hermetic, empty) HOME.
    project.set_env("ANTHROPIC_API_KEY", "");
    let out = project.obra(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("FAIL  agent claude-code") && said.contains("not authenticated"), "{said}");
    assert!(said.contains("set ANTHROPIC_API_KEY"), "{said}");
}

#[test]
fn doctor_before_init_still_checks_the_agent_cli_and_the_llm() {
    let mut project = Project::uninitialised();
    project.set_env("PATH", "/usr/bin:/bin");
    let out = project.obra(&["--set", "llms.ollama.base_url=http://127.0.0.1:9", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("warn  project") && said.contains("obra init"), "{said}");
    assert!(said.contains("FAIL  agent claude-code") && said.contains("\"claude\" was not found on PATH"), "{said}");
    assert!(said.contains("FAIL  LLM ollama") && said.contains("http://127.0.0.1:9"), "{said}");
    assert!(!project.path().join(".obra").exists(), "doctor changed nothing");

    // With an LLM that answers, that check passes.
    let ollama = FakeOllama::start([]);
    let set = format!("llms.ollama.base_url={}", ollama.base_url());
    let out = project.obra(&["--set", &set, "--set", "llms.ollama.model=qwen2.5-coder:7b", "doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let llm = checks.as_array().unwrap().iter().find(|c| c["name"] == "LLM ollama").unwrap();
    assert_eq!(llm["status"], "ok", "{checks}");
}
