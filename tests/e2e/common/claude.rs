//! A scratch project wired to the REAL claude CLI (the pinned npm package) through the built-in
//! `claude-code` plugin, with a scripted fake Anthropic server for the model and a fake Ollama for the LLM.

use obra_testkit::{ClaudeEnv, FakeAnthropic, FakeOllama, OllamaReply, require_claude};
use serde_json::{Value, json};

use super::Project;

/// A project wired to the real claude CLI and both fakes, with a retry policy that sleeps through at most 1 s
/// (a longer rate limit pauses the task until its reset). `None` (with a notice) when the CLI is missing
/// outside CI; in CI a missing CLI fails the test.
pub fn setup(
    anthropic: &FakeAnthropic,
    ollama: &FakeOllama,
    test_command: &str,
    extra: &str,
) -> Option<(Project, ClaudeEnv)> {
    let (project, claude_env) = wired(anthropic)?;
    project.write_config(&format!(
        r#"
agent:
  plugin: claude-code
  timeout_secs: 120
agents:
  claude-code:
    permission_mode: acceptEdits
    max_turns: 5
llm:
  provider: ollama
  timeout_secs: 30
llms:
  ollama:
    base_url: {ollama}
    model: qwen2.5-coder:7b
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: "{test_command}"
engine:
  max_iterations: 2
  retry:
    max_attempts: 3
    base_delay_ms: 50
    max_delay_ms: 1000
    jitter: 0.0
{extra}
"#,
        ollama = ollama.base_url(),
    ));
    Some((project, claude_env))
}

/// A project wired to the real claude CLI with the default checks only: the `response-format` gate, no tests
/// gate and no LLM (`llm.provider: none`), three iterations. `None` as for [`setup`].
pub fn setup_without_checks(anthropic: &FakeAnthropic) -> Option<(Project, ClaudeEnv)> {
    let (project, claude_env) = wired(anthropic)?;
    project.write_config(
        r#"
agent:
  plugin: claude-code
  timeout_secs: 120
agents:
  claude-code:
    permission_mode: acceptEdits
    max_turns: 5
llm:
  provider: none
engine:
  max_iterations: 2
"#,
    );
    Some((project, claude_env))
}

/// A new project whose environment runs the real claude CLI against `anthropic` (its hermetic HOME, the fake
/// server's URL, the CLI on PATH); `None` only when `OBRA_TEST_SKIP` opts out of claude.
pub fn wired(anthropic: &FakeAnthropic) -> Option<(Project, ClaudeEnv)> {
    let cli = require_claude()?;
    let claude_env = cli.env(&anthropic.base_url());
    let mut project = Project::new();
    for (k, v) in claude_env.vars() {
        project.set_env(k, v);
    }
    let bin_dir = claude_env.bin().parent().unwrap().display().to_string();
    let path = claude_env.vars().iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    project.set_env("PATH", &format!("{bin_dir}:{path}"));
    Some((project, claude_env))
}

pub fn opinion(confidence: f64, reasoning: &str) -> OllamaReply {
    OllamaReply::json(&json!({ "confidence": confidence, "reasoning": reasoning, "concerns": [] }))
}

pub fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}
