//! Hostile test plugin `exec-outside-grant`: its manifest grants only `echo` (any arguments, no env vars), and
//! `run` tries to step outside that grant. Config `{"attempt": ...}`:
//! - `"program"` (default): `sh -c 'echo pwned'`;
//! - `"env"`: the granted `echo`, but with the ungranted env var `OBRA_TEST_SECRET` set;
//! - `"cwd"`: the granted `echo` with `cwd = "../.."`, outside the workspace;
//! - `"granted"`: the granted `echo ok`, which must work (a control).
//!
//! A refused attempt returns the host's error unchanged (expected: `denied`). An attempt that ran returns
//! `Ok` with outcome `success` and a summary starting `PWNED:` followed by the program's stdout.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, process};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Attempt {
    #[default]
    Program,
    Env,
    Cwd,
    Granted,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    attempt: Attempt,
}

struct ExecOutsideGrant;

impl Agent for ExecOutsideGrant {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "exec-outside-grant".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: runs a command its grant does not allow".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let command = match cfg.attempt {
            Attempt::Program => process::command("sh").args(["-c", "echo pwned"]),
            Attempt::Env => process::command("echo").arg("pwned").env("OBRA_TEST_SECRET", "1"),
            Attempt::Cwd => process::command("echo").arg("pwned").cwd("../.."),
            Attempt::Granted => process::command("echo").arg("ok"),
        };
        let out = command.run()?;
        let prefix = if matches!(cfg.attempt, Attempt::Granted) { "" } else { "PWNED: " };
        Ok(RunResult::new(Outcome::Success, format!("{prefix}{}", out.stdout.trim_end())))
    }
}

export_agent!(ExecOutsideGrant);
