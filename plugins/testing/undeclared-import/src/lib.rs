//! Hostile test plugin `undeclared-import`: `run` calls `process::run("echo", ["hi"])`, so the component
//! imports `obra:plugin/process`, while its manifest declares no commands. The host must refuse to load it.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, export_agent, process};

struct UndeclaredImport;

impl Agent for UndeclaredImport {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "undeclared-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: imports process without declaring it".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(_request: RunRequest) -> Result<RunResult, PluginError> {
        let out = process::run("echo", ["hi"])?;
        Ok(RunResult::new(Outcome::Success, out.stdout))
    }
}

export_agent!(UndeclaredImport);
