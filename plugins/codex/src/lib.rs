//! `codex`: an Obra agent plugin that runs the OpenAI Codex CLI headless and normalises its outcome.
//!
//! `run` starts `codex exec --json [options] [resume <thread>] -` in the workspace with the prompt on
//! standard input (never on the command line, where `ps` shows it to every user), reports each command and file change as progress, and turns the JSON events into a
//! `run-result` (see [`events`]): the `thread_id` is the session, resumed with `codex exec resume`; a
//! `turn.failed` is an API error or a rate limit. Codex reports a session's cumulative usage, so the plugin keeps
//! the last totals per session (kv) and records each run's own share. `health` runs `codex --version` and
//! `codex login status`.
//!
//! Config keys (see [`config::Config`]): `model`, `sandbox`, `bypass_approvals_and_sandbox`, `approval_policy`,
//! `profile`, `config_overrides`, `extra_args`, `env`.

pub mod config;
pub mod events;

/// The test kit's mutation fuzzer (std only), shared with the host's fuzz tests.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;
#[cfg(test)]
mod fuzz_tests;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::process::Flow;
use obra_plugin_sdk::{PluginError, ResultExt, RunResult, export_agent, kv, log, process, progress};

use config::Config;
use events::{EventReader, ProcessEnd, Totals};

/// The agent.
pub struct Codex;

fn codex(cfg: &Config) -> process::Command {
    let mut cmd = process::command("codex");
    for (k, v) in &cfg.env {
        cmd = cmd.env(k, v);
    }
    cmd
}

fn totals_key(thread: &str) -> String {
    format!("usage/{thread}")
}

impl Agent for Codex {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "codex".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs OpenAI Codex CLI headless (codex exec --json) and normalises its outcome".into(),
            supports_resume: true,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let out = codex(&cfg).arg("--version").timeout_ms(30_000).run().context("running `codex --version`")?;
        if !out.success() {
            return Err(PluginError::fatal(format!("`codex --version` failed: {}", out.tail(500).trim())));
        }
        let version = out.stdout.lines().next().unwrap_or("").trim().to_string();
        // `codex login status` says how it is authenticated; an API key in the environment works without it.
        let auth = codex(&cfg).args(["login", "status"]).timeout_ms(30_000).run();
        let said = match auth {
            Ok(out) => format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim().to_string(),
            Err(e) => e.message().to_string(),
        };
        Ok(format!("{version} ({})", if said.is_empty() { "login status unknown".into() } else { said }))
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg = Config::parse(&request.config)?;
        let inv = config::invocation(&cfg, &request.prompt, request.resume_session.as_deref());
        let mut cmd = codex(&cfg).args(inv.args).timeout_ms(request.timeout_ms);
        cmd = cmd.stdin(inv.stdin);
        let child = cmd.spawn().context("starting codex")?;
        let mut reader = EventReader::new();
        let ended = child.read_to_end("codex", request.timeout_ms, |line| {
            if let Some(message) = reader.feed(line) {
                progress(&message);
            }
            Flow::Continue
        })?;
        let end = ProcessEnd {
            exit_code: ended.exit_code,
            signal: ended.signal,
            timed_out: ended.timed_out,
            stderr: ended.stderr,
            duration_ms: ended.duration_ms,
        };
        for warning in &reader.warnings {
            log::warn(&format!("codex: {warning}"));
        }
        reader.failed_actions.report();
        let previous = request
            .resume_session
            .as_deref()
            .and_then(|t| kv::get_json::<(u64, u64, u64)>(&totals_key(t)).ok().flatten())
            .map(|(input, cached, output)| Totals { input, cached, output });
        if let (Some(thread), Some(t)) = (reader.thread_id.clone(), reader.totals)
            && let Err(e) = kv::set_json(&totals_key(&thread), &(t.input, t.cached, t.output))
        {
            log::warn(&format!("could not keep the session's token totals: {}", e.message()));
        }
        Ok(reader.finish(&end, previous))
    }
}

export_agent!(Codex);
