//! Hostile test plugin `read-outside-workspace`: granted workspace `read`, `run` tries to get out.
//! Config `{"attempt": ..., "symlink": "escape-link"}`; `attempt` is one of:
//! - `"dotdot"`: read `../../etc/passwd`;
//! - `"absolute"`: read `/etc/passwd`;
//! - `"symlink"`: read the workspace path given by `symlink` (default `escape-link`), which the test creates as
//!   a symbolic link pointing outside the workspace (e.g. `escape-link -> /etc/passwd`);
//! - `"list-parent"`: list the directory `..`;
//! - `"write"`: write `pwned.txt` inside the workspace (only `read` is granted);
//! - `"inside"`: read `README.md` inside the workspace (a control that must work);
//! - `"all"` (default): try the five escapes.
//!
//! With one attempt: a refusal is returned unchanged as the error (expected: `denied`); a success returns `Ok`
//! with outcome `success` and a summary starting `LEAKED <attempt>:`. With `all`: any success gives that
//! `LEAKED` result; when every attempt was refused the result has outcome `permission-denied` and one summary
//! line per attempt, `<attempt>: <error kind>: <message>`.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, workspace};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_attempt")]
    attempt: String,
    #[serde(default = "default_symlink")]
    symlink: String,
}

fn default_attempt() -> String {
    "all".into()
}

fn default_symlink() -> String {
    "escape-link".into()
}

const ESCAPES: [&str; 5] = ["dotdot", "absolute", "symlink", "list-parent", "write"];

fn attempt(name: &str, symlink: &str) -> Result<String, PluginError> {
    let bytes = match name {
        "dotdot" => workspace::read("../../etc/passwd")?,
        "absolute" => workspace::read("/etc/passwd")?,
        "symlink" => workspace::read(symlink)?,
        "inside" => workspace::read("README.md")?,
        "list-parent" => {
            workspace::list_dir("..")?.into_iter().map(|e| e.name).collect::<Vec<_>>().join(",").into_bytes()
        }
        "write" => {
            workspace::write("pwned.txt", b"pwned")?;
            b"wrote pwned.txt".to_vec()
        }
        other => return Err(PluginError::fatal(format!("unknown attempt `{other}`"))),
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.chars().take(200).collect())
}

struct ReadOutsideWorkspace;

impl Agent for ReadOutsideWorkspace {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "read-outside-workspace".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: reads files outside the workspace".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        if cfg.attempt != "all" {
            let got = attempt(&cfg.attempt, &cfg.symlink)?;
            let prefix = if cfg.attempt == "inside" { String::new() } else { format!("LEAKED {}: ", cfg.attempt) };
            return Ok(RunResult::new(Outcome::Success, format!("{prefix}{got}")));
        }
        let mut lines = Vec::new();
        for name in ESCAPES {
            match attempt(name, &cfg.symlink) {
                Ok(got) => {
                    return Ok(RunResult::new(Outcome::Success, format!("LEAKED {name}: {got}")));
                }
                Err(e) => lines.push(format!("{name}: {}: {}", e.kind(), e.message())),
            }
        }
        let mut result = RunResult::new(Outcome::PermissionDenied, lines.join("\n"));
        result.permission_denials = lines;
        Ok(result)
    }
}

export_agent!(ReadOutsideWorkspace);
