//! `claude-code`: an Obra agent plugin that runs Claude Code headless and normalises its outcome.
//!
//! `run` starts `claude -p --output-format stream-json --verbose [options]` in the workspace with the prompt on
//! standard input (never on the command line, where `ps` shows it to every user), under the request's time limit, reports each
//! tool use and API retry as live progress, and turns the final `result` event (or its absence) into a
//! `run-result` (see [`stream`]); tool uses that failed inside the CLI and permission refusals are reported through
//! `agent-report`. `health` runs `claude --version`.
//!
//! Config keys (all optional; see [`config::Config`]): `model`, `max_turns`, `permission_mode`, `allowed_tools`,
//! `allow_gate_commands` (with `gate_commands`, filled in by Obra), `append_system_prompt`, `extra_args`, `env`,
//! `max_stderr_bytes`.

pub mod config;
pub mod stream;

/// The test kit's mutation fuzzer (std only), shared with the host's fuzz tests.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;
#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod fixtures;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::process::Flow;
use obra_plugin_sdk::{PluginError, ResultExt, RunResult, export_agent, log, process, progress};

use config::Config;
use stream::{ProcessEnd, StreamParser};

/// The agent.
pub struct ClaudeCode;

impl Agent for ClaudeCode {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "claude-code".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs Claude Code headless (claude -p) and normalises its outcome".into(),
            supports_resume: true,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let mut cmd = process::command("claude").arg("--version").timeout_ms(30_000).max_output_bytes(16 * 1024);
        for (k, v) in &cfg.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run().context("running `claude --version`")?;
        if !out.success() {
            return Err(PluginError::fatal(format!(
                "`claude --version` failed ({}): {}",
                match (out.exit_code, out.timed_out) {
                    (_, true) => "timed out".to_string(),
                    (Some(c), _) => format!("exit code {c}"),
                    (None, _) => format!("signal {}", out.signal.unwrap_or(0)),
                },
                out.tail(1000).trim()
            )));
        }
        let version = out.stdout.lines().next().unwrap_or("").trim().to_string();
        let mut auth =
            process::command("claude").args(["auth", "status"]).timeout_ms(30_000).max_output_bytes(16 * 1024);
        for (k, v) in &cfg.env {
            auth = auth.env(k, v);
        }
        // It exits 1 when logged out, with the same JSON on stdout.
        let said = match auth.run() {
            Ok(out) if out.success() || out.stdout.trim_start().starts_with('{') => config::auth_status(&out.stdout),
            Ok(out) => Err(format!("`claude auth status` failed: {}", out.tail(300).trim())),
            Err(e) => Err(format!("`claude auth status` could not run: {}", e.message())),
        };
        match said {
            Ok(config::Auth::LoggedIn(how)) => Ok(format!("claude {version}, authenticated ({how})")),
            Ok(config::Auth::LoggedOut) => Err(PluginError::fatal(format!(
                "claude {version} is installed but not authenticated: run `claude` once and log in, or set \
                 ANTHROPIC_API_KEY in Obra's environment (it is passed through when granted)"
            ))),
            Err(why) => Ok(format!("claude {version} (authentication not checked: {why})")),
        }
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg = Config::parse(&request.config)?;
        let inv = config::invocation(&cfg, &request.prompt, request.resume_session.as_deref());
        let mut cmd = process::command("claude").args(inv.args).timeout_ms(request.timeout_ms);
        cmd = cmd.stdin(inv.stdin);
        if let Some(max) = cfg.max_stderr_bytes {
            cmd = cmd.max_output_bytes(max);
        }
        for (k, v) in &cfg.env {
            cmd = cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting claude")?;
        let mut parser = StreamParser::new(&request.workspace);
        let ended = child.read_to_end("claude", request.timeout_ms, |line| {
            for message in parser.feed(line) {
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
            timeout_ms: request.timeout_ms,
            ended_at_ms: unix_ms(),
        };
        let normalised = parser.finish(&end);
        for warning in &normalised.warnings {
            log::warn(warning);
        }
        normalised.failed_actions.report();
        Ok(normalised.result)
    }
}

export_agent!(ClaudeCode);

/// The wall-clock time in milliseconds since the Unix epoch, if the clock is readable.
fn unix_ms() -> Option<u64> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
