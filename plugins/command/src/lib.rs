//! `command`: an Obra agent plugin that runs ANY agent CLI (the seeds' CustomAgent), so users can plug in agents
//! Obra does not know yet.
//!
//! `run` builds the command line from `agents.command.args` (placeholders `{prompt}`, `{prompt_file}`,
//! `{workspace}`, `{session_id}`, `{task_id}`, `{task_title}`, `{iteration}`), gives the prompt as an argument,
//! on standard input, or as the file `{prompt_file}` (`/dev/stdin`, carrying it), streams the output and turns it into a
//! `run-result`: text (the tail is the summary, the exit code decides) or JSON lines (the final event's fields by
//! JSON pointer). `health` runs the program with `version_args`. The program must be granted in
//! `plugins.grants.command.commands`: the manifest asks for `*`, so the user's grant decides (nothing by default).

pub mod config;
pub mod outcome;

/// The test kit's mutation fuzzer (std only), shared with the host's fuzz tests.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;
#[cfg(test)]
mod fuzz_tests;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::process::Flow;
use obra_plugin_sdk::{PluginError, ResultExt, RunResult, export_agent, log, process, progress};

use config::{Config, PromptVia, Values};
use outcome::{Collector, End};

/// The agent.
pub struct CommandAgent;

fn command(cfg: &Config, args: Vec<String>) -> process::Command {
    let mut cmd = process::command(cfg.program.clone()).args(args);
    for (k, v) in &cfg.env {
        cmd = cmd.env(k, v);
    }
    if let Some(max) = cfg.max_output_bytes {
        cmd = cmd.max_output_bytes(max);
    }
    cmd
}

impl Agent for CommandAgent {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "command".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs any agent CLI from an argument template (text or JSON-lines output)".into(),
            supports_resume: true,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let out = command(&cfg, cfg.version_args.clone())
            .timeout_ms(30_000)
            .run()
            .with_context(|| format!("running `{} {}`", cfg.program, cfg.version_args.join(" ")))?;
        if !out.success() {
            return Err(PluginError::fatal(format!(
                "`{} {}` failed (exit {:?}): {}",
                cfg.program,
                cfg.version_args.join(" "),
                out.exit_code,
                out.tail(500).trim()
            )));
        }
        let first = out.stdout.lines().next().unwrap_or("").trim();
        Ok(format!("{} {first}", cfg.program))
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg = Config::parse(&request.config)?;
        // `{prompt_file}` names the program's standard input, which carries the prompt: a path a program can
        // open and read like a file, with no copy of the prompt on disk and none in Obra's own directory
        // (which plugins may not write).
        let values = Values {
            prompt: &request.prompt,
            prompt_file: if cfg.prompt_via() == PromptVia::File { PROMPT_FILE } else { "" },
            workspace: &request.workspace,
            session_id: request.resume_session.as_deref().unwrap_or(""),
            task_id: request.task.id,
            task_title: &request.task.title,
            iteration: request.task.iteration,
        };
        let args = cfg.arguments(&values)?;
        let mut cmd = command(&cfg, args).timeout_ms(request.timeout_ms);
        if matches!(cfg.prompt_via(), PromptVia::Stdin | PromptVia::File) {
            cmd = cmd.stdin(request.prompt.clone());
        }
        run_child(&cfg, &cmd, request.timeout_ms)
    }
}

/// What `{prompt_file}` expands to: the program's standard input, which holds the prompt.
const PROMPT_FILE: &str = "/dev/stdin";

/// Start the program, read its output as it comes, and normalise how it ended.
fn run_child(cfg: &Config, cmd: &process::Command, timeout_ms: u64) -> Result<RunResult, PluginError> {
    let child = cmd.spawn().with_context(|| format!("starting {}", cfg.program))?;
    let mut collector = Collector::new();
    let ended = child.read_to_end(&cfg.program, timeout_ms, |line| {
        if let Some(message) = collector.feed(cfg, line) {
            progress(&message);
        }
        Flow::Continue
    })?;
    let end = End {
        exit_code: ended.exit_code,
        signal: ended.signal,
        timed_out: ended.timed_out,
        stderr: ended.stderr,
        duration_ms: ended.duration_ms,
    };
    if collector.bad_lines > 0 {
        log::warn(&format!("{} printed {} line(s) that are not JSON objects", cfg.program, collector.bad_lines));
    }
    Ok(collector.finish(cfg, &end))
}

export_agent!(CommandAgent);
