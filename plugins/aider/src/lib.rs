//! `aider`: an Obra agent plugin that runs [Aider](https://aider.chat) headless and normalises its outcome.
//!
//! `run` starts `aider --model M --message <prompt> --yes-always ... [files]` in the workspace (prompts over
//! 100 KB go through `--message-file` under `.obra/prompts/`). Aider never commits and writes no history files
//! into the workspace (`--no-auto-commits`, `--no-dirty-commits`, `--no-gitignore`, histories to /dev/null):
//! Obra's checkpoints and git policy own the repository. Aider prints no JSON, so the outcome comes from its
//! output (see [`output`]); the files it changed are what Obra's change tracking records. No session resume:
//! each iteration's prompt carries the history. `health` runs `aider --version`.

pub mod config;
pub mod output;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{PluginError, ResultExt, RunResult, export_agent, log, process, progress, workspace};

use config::Config;
use output::{End, Transcript};

/// The agent.
pub struct Aider;

fn aider(cfg: &Config) -> process::Command {
    // Use the model list bundled with litellm instead of fetching it from GitHub at every start.
    let mut cmd = process::command("aider").env("LITELLM_LOCAL_MODEL_COST_MAP", "True");
    for (k, v) in &cfg.env {
        cmd = cmd.env(k, v);
    }
    cmd
}

impl Agent for Aider {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "aider".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs Aider headless (aider --message) and normalises its outcome from its output".into(),
            supports_resume: false,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let out = aider(&cfg).arg("--version").timeout_ms(60_000).run().context("running `aider --version`")?;
        if !out.success() {
            return Err(PluginError::fatal(format!("`aider --version` failed: {}", out.tail(500).trim())));
        }
        Ok(out.stdout.lines().last().unwrap_or("").trim().to_string())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg = Config::parse(&request.config)?;
        let long = request.prompt.len() > config::MAX_PROMPT_ARG_BYTES;
        let rel = format!(".obra/prompts/aider-task-{}-iteration-{}.md", request.task.id, request.task.iteration);
        let abs = format!("{}/{rel}", request.workspace.trim_end_matches('/'));
        if long {
            workspace::write(&rel, request.prompt.as_bytes())
                .with_context(|| format!("writing the prompt to {rel}"))?;
        }
        let args = config::arguments(&cfg, &request.prompt, long.then_some(abs.as_str()));
        let result = run_aider(&cfg, args, request.timeout_ms);
        if long && let Err(e) = workspace::remove(&rel) {
            log::warn(&format!("could not remove {rel}: {}", e.message()));
        }
        result
    }
}

fn run_aider(cfg: &Config, args: Vec<String>, timeout_ms: u64) -> Result<RunResult, PluginError> {
    let child = aider(cfg).args(args).timeout_ms(timeout_ms).spawn().context("starting aider")?;
    let mut transcript = Transcript::new();
    let mut timed_out = false;
    loop {
        match child.next_line() {
            Ok(Some(line)) => {
                if let Some(message) = transcript.feed(&line) {
                    progress(&message);
                }
            }
            Ok(None) => break,
            Err(PluginError::Timeout(_)) => {
                timed_out = true;
                break;
            }
            Err(e) => {
                child.kill();
                return Err(e.context("reading aider's output"));
            }
        }
    }
    let end = match child.wait() {
        Ok(out) => End {
            exit_code: out.exit_code,
            signal: out.signal,
            timed_out: timed_out || out.timed_out,
            stderr: out.stderr,
            duration_ms: out.duration_ms,
        },
        Err(_) if timed_out => End { timed_out: true, duration_ms: timeout_ms, ..End::default() },
        Err(e) => return Err(e.context("waiting for aider")),
    };
    Ok(transcript.finish(&end))
}

export_agent!(Aider);
