//! Hostile test plugin `infinite-loop`: `run` spins forever in guest code without calling the host, so only
//! epoch interruption (or fuel) can stop it. `info` and `health` answer at once, so a test can check that the
//! host re-instantiated the plugin after the trap.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{PluginError, RunResult, export_agent};

struct InfiniteLoop;

impl Agent for InfiniteLoop {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "infinite-loop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: loops forever in guest code".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let mut x = request.prompt.len() as u64;
        loop {
            // black_box keeps the optimiser from proving anything about the loop.
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_agent!(InfiniteLoop);
