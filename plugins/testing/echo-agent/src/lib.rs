//! `echo-agent`: a well-behaved minimal agent for the host's runtime tests and the call round-trip benchmark.
//!
//! Config (JSON, all optional): `{ "mode": "length" | "echo" | "mirror" }`
//! - `length` (default): the summary is `prompt has N bytes`; no capability is called but `log`.
//! - `echo`: runs the granted `echo prompt has N bytes` through `process::run` and returns its stdout as the
//!   summary, with the exit code.
//! - `mirror`: the summary is the prompt itself (a ~10 KB prompt makes a cheap 10 KB round trip).
//!
//! Every run also writes its summary to `echo-agent.txt` in the workspace (with the iteration, so each run
//! changes it), when the grant allows writing the workspace: a run that changes nothing would never PROCEED
//! (ADR 33), and the loop's tests are about what comes after the agent. Without the grant nothing is written.
//!
//! `health` runs nothing and answers `echo-agent <version>`.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, process, progress, workspace};
use serde::Deserialize;

/// What `run` does.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Report the prompt's length.
    #[default]
    Length,
    /// Report it through the granted `echo` program.
    Echo,
    /// Return the prompt unchanged.
    Mirror,
}

/// The plugin's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What `run` does; default `length`.
    #[serde(default)]
    pub mode: Mode,
}

/// The agent.
pub struct EchoAgent;

impl Agent for EchoAgent {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "echo-agent".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test agent that echoes the prompt's length".into(),
            supports_resume: false,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let _: Config = config(&config_json)?;
        Ok(format!("echo-agent {}", env!("CARGO_PKG_VERSION")))
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let text = format!("prompt has {} bytes", request.prompt.len());
        // Denied without a workspace grant: then the run changes nothing, as it did before.
        let note = format!("task {} iteration {}: {text}\n", request.task.id, request.task.iteration);
        let _ = workspace::write("echo-agent.txt", note.as_bytes());
        Ok(match cfg.mode {
            Mode::Length => RunResult::new(Outcome::Success, text),
            Mode::Mirror => RunResult::new(Outcome::Success, request.prompt),
            Mode::Echo => {
                progress(&format!("echo {text}"));
                let out = process::run("echo", [text])?;
                let mut result = RunResult::new(
                    if out.success() { Outcome::Success } else { Outcome::Crashed },
                    out.stdout.trim_end(),
                );
                result.exit_code = out.exit_code;
                result.duration_ms = out.duration_ms;
                result.turns = 1;
                result
            }
        })
    }
}

export_agent!(EchoAgent);
