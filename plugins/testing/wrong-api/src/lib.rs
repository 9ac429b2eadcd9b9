//! Hostile test plugin `wrong-api`: an agent built against `obra:plugin@0.2.0` (see `wit/`, a copy of the
//! real contract with the version bumped). It exports `obra:plugin/agent@0.2.0` and imports
//! `obra:plugin/log@0.2.0`, which no host of API 0.1.0 provides.

wit_bindgen::generate!({
    world: "agent-plugin",
    path: "wit",
});

use exports::obra::plugin::agent::{AgentInfo, Guest, RunRequest};
use obra::plugin::types::{Outcome, PluginError, RunResult, Usage};

struct WrongApi;

impl Guest for WrongApi {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "wrong-api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: built against obra:plugin@0.2.0".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        obra::plugin::log::log(obra::plugin::log::Level::Info, "wrong-api ran");
        Ok(RunResult {
            outcome: Outcome::Success,
            summary: format!("prompt has {} bytes", request.prompt.len()),
            session_id: None,
            turns: 0,
            usage: Usage {
                input_tokens: 0,
                output_tokens: 0,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: None,
            },
            duration_ms: 0,
            api_status: None,
            retry_after_ms: None,
            permission_denials: Vec::new(),
            exit_code: None,
        })
    }
}

export!(WrongApi);
