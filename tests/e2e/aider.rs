//! The built-in `aider` agent plugin driving the REAL Aider (PyPI aider-chat, pinned) against a scripted fake
//! OpenAI chat-completions server: it edits the file, makes no commit of its own, leaves none of its files in the
//! workspace, and `obra doctor` reports it.

mod common;

use std::process::Command;

use common::{Project, text};
use obra_testkit::aider::{AiderEnv, install_hint, require_aider};
use obra_testkit::{ChatReply, FakeOpenAiChat};

#[test]
fn aider_edits_without_committing_or_leaving_its_own_files_and_doctor_reports_it() {
    let Some(bin) = require_aider() else {
        eprintln!("skipped: {}", install_hint());
        return;
    };
    let fake = FakeOpenAiChat::start([ChatReply::text("notes.md\n```\n# Notes\nfirst line\n```\n")]);
    let env = AiderEnv::new(&bin, &fake.base_url());
    let mut project = Project::new();
    for (k, v) in env.vars() {
        project.set_env(k, v);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{path}", bin.parent().unwrap().display()));
    project.write_config(
        "agent:\n  plugin: aider\n  timeout_secs: 120\nagents:\n  aider:\n    model: openai/gpt-4o-mini\n    \
         edit_format: whole\nllm:\n  provider: none\nengine:\n  max_iterations: 1\n",
    );
    let git = |args: &[&str]| {
        let out = Command::new("git").current_dir(project.path()).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = git(&["rev-parse", "HEAD"]);
    let id = project.create_task("Notes", "Create notes.md with a heading and one line");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("notes.md")).unwrap(), "# Notes\nfirst line\n");
    assert_eq!(git(&["rev-parse", "HEAD"]), before, "Aider made no commit: Obra owns the history");
    let leftovers: Vec<String> = std::fs::read_dir(project.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".aider"))
        .collect();
    assert!(leftovers.is_empty(), "no Aider files in the workspace: {leftovers:?}");
    assert!(!std::fs::read_to_string(project.path().join(".gitignore")).unwrap_or_default().contains(".aider"));

    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let i = &shown["interactions"][0]["interaction"];
    assert_eq!(i["outcome"], "success", "{shown}");
    // Aider prints its own token count ("Tokens: 1.2k sent, 13 received. Cost: ..."), not the server's.
    assert!(i["input_tokens"].as_i64().unwrap() > 500 && i["output_tokens"].as_i64().unwrap() > 0, "{i}");
    assert!(i["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{i}");
    let request = fake.chat_requests()[0].all_text();
    assert!(request.contains("Create notes.md"), "Obra's prompt reached the model");

    let doctor = text(&project.obra(&["doctor"]));
    assert!(doctor.contains("ok    agent aider") && doctor.contains(obra_testkit::aider::pinned_version()), "{doctor}");
}
