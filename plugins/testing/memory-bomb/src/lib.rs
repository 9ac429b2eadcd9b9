//! Hostile test plugin `memory-bomb`: `run` allocates 1 MiB blocks, touching every page, and keeps them, until
//! the allocator fails (which aborts, i.e. traps) — the host's memory limit must make `memory.grow` fail.
//! `info` and `health` answer at once, so a test can check the plugin works again after the trap.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, export_agent};

struct MemoryBomb;

impl Agent for MemoryBomb {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "memory-bomb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: allocates memory without bound".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(_request: RunRequest) -> Result<RunResult, PluginError> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        // 1 TiB in 1 MiB blocks is far past any wasm32 memory: the loop only ends by a trap.
        for i in 0..(1usize << 20) {
            let mut block = vec![0u8; 1 << 20];
            for page in block.chunks_mut(4096) {
                page[0] = i as u8;
            }
            blocks.push(std::hint::black_box(block));
        }
        Ok(RunResult::new(Outcome::Success, format!("allocated {} MiB", blocks.len())))
    }
}

export_agent!(MemoryBomb);
