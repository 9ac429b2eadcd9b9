//! `aider`: an Obra agent plugin that runs Aider headless and normalises its outcome.
//!
//! `run` starts `aider --message-file=/dev/stdin <fixed flags> [options]` in the workspace with the prompt on
//! standard input (never on the command line, where `ps` shows it to every user), under the request's time limit, reports
//! each applied edit, API error and retry as live progress, stops aider once it would retry an API error
//! more than `api_retries` times (Obra's retry policy decides instead), and turns its plain-text output into
//! a `run-result` (see [`output`]). Aider keeps no resumable session, so `supports_resume` is false. `health`
//! runs `aider --version`.
//!
//! Config keys (all optional; see [`config::Config`]): `model`, `edit_format`, `files`, `read`,
//! `map_tokens`, `stream`, `api_retries`, `extra_args`, `env`.

pub mod config;
pub mod output;

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

use config::Config;
use output::{OutputParser, ProcessEnd};

/// The agent.
pub struct Aider;

impl Agent for Aider {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "aider".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs Aider headless (aider --message-file=/dev/stdin) and normalises its outcome".into(),
            supports_resume: false,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let mut cmd = process::command("aider").arg("--version").timeout_ms(60_000).max_output_bytes(16 * 1024);
        for (k, v) in &cfg.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run().context("running `aider --version`")?;
        if !out.success() {
            return Err(PluginError::fatal(format!(
                "`aider --version` failed ({}): {}",
                match (out.exit_code, out.timed_out) {
                    (_, true) => "timed out".to_string(),
                    (Some(c), _) => format!("exit code {c}"),
                    (None, _) => format!("signal {}", out.signal.unwrap_or(0)),
                },
                out.tail(1000).trim()
            )));
        }
        let version = out.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        Ok(version.to_string())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg = Config::parse(&request.config)?;
        let inv = config::invocation(&cfg, &request.prompt);
        let mut cmd = process::command("aider").args(inv.args).timeout_ms(request.timeout_ms);
        cmd = cmd.stdin(inv.stdin);
        for (k, v) in &inv.env {
            cmd = cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting aider")?;
        let mut parser = OutputParser::new();
        let ended = child.read_to_end("aider", request.timeout_ms, |line| {
            for message in parser.feed(line) {
                progress(&message);
            }
            if parser.retries_of_current_error() > cfg.api_retries {
                log::info("stopping aider: it is retrying an API error past `api_retries`");
                return Flow::Stop;
            }
            Flow::Continue
        })?;
        let end = ProcessEnd {
            exit_code: ended.exit_code,
            signal: ended.signal,
            timed_out: ended.timed_out,
            stopped: ended.stopped,
            stderr: ended.stderr,
            duration_ms: ended.duration_ms,
            timeout_ms: request.timeout_ms,
        };
        parser.failed_actions().report();
        Ok(parser.finish(&end))
    }
}

export_agent!(Aider);
