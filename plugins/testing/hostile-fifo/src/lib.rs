//! Hostile test plugin `hostile-fifo` for the hostile suite (tests/e2e/hostile_suite.rs), class (b): special
//! files and host calls that never return. Each run reads `{"attempt": NAME, ...}` from its config; the summary
//! is a JSON object with one entry per try, `{"outcome": "ran: ..." | "denied: ..." | "error: ...", "ms": N}`
//! (how long the host call took), as hostile-probe reports.
//!
//! Attempts:
//! - `fifo`: the test made the git-ignored FIFO `fifo` (nobody ever opens its other end), a relative link
//!   `fifo_link` to it and a listening Unix socket `socket`. The plugin reads the FIFO 100 times, writes and
//!   removes it, reads it through the link, reads and writes the socket and lists the root: each must be refused
//!   at once, never block. Then it makes host calls that never return by themselves: `cat` of the FIFO (blocks
//!   in `open` until a writer comes), `sleep 613`, and a GET of `<base_url>/hang`, which the test's server
//!   never answers. Each must end at `plugins.limits.host_call_timeout_secs`.
//! - `call-timeout`: `sleep 614` under a host-call limit longer than the call's own wall-clock limit
//!   (`call_timeout_secs`): the whole call must end at the call limit, its child with it, and obra must exit.

use std::time::Instant;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, http, process, workspace};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The plugin's configuration (the test's `agents.hostile-fifo` section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Which group of tries to make.
    attempt: String,
    /// The test server's base URL (`/hang` never answers).
    #[serde(default)]
    base_url: String,
    /// The FIFO, relative to the workspace.
    #[serde(default)]
    fifo: String,
    /// A relative symbolic link to the FIFO.
    #[serde(default)]
    fifo_link: String,
    /// A listening Unix socket.
    #[serde(default)]
    socket: String,
}

/// What one try gave and how long it took.
fn timed<T>(work: impl FnOnce() -> Result<T, PluginError>, show: impl FnOnce(T) -> String) -> Value {
    let started = Instant::now();
    let result = work();
    let ms = started.elapsed().as_millis() as u64;
    let outcome = match result {
        Ok(value) => format!("ran: {}", show(value)),
        Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
        Err(e) => format!("error: {e}"),
    };
    json!({"outcome": outcome, "ms": ms})
}

/// A process's output as one line: exit, whether it timed out, how long it ran.
fn shown(out: process::Output) -> String {
    format!("exit {:?} timed out {} after {} ms", out.exit_code, out.timed_out, out.duration_ms)
}

/// The `fifo` attempt (see the module documentation).
fn fifo(cfg: &Config) -> Map<String, Value> {
    let mut tries = Map::new();
    // A hundred reads: none may block, and none may leave a thread stuck behind.
    let started = Instant::now();
    let mut refused = 0;
    let mut other = Vec::new();
    for _ in 0..100 {
        match workspace::read(&cfg.fifo) {
            Err(PluginError::Denied(_)) => refused += 1,
            Err(e) => other.push(format!("error: {e}")),
            Ok(bytes) => other.push(format!("ran: {} bytes", bytes.len())),
        }
    }
    tries.insert(
        "read the FIFO 100 times".into(),
        json!({"refused": refused, "other": other, "ms": started.elapsed().as_millis() as u64}),
    );
    tries.insert("read the FIFO".into(), timed(|| workspace::read(&cfg.fifo), |b| format!("{} bytes", b.len())));
    tries.insert("write the FIFO".into(), timed(|| workspace::write(&cfg.fifo, b"hostile\n"), |()| "written".into()));
    tries.insert("remove the FIFO".into(), timed(|| workspace::remove(&cfg.fifo), |()| "removed".into()));
    tries.insert(
        "read the FIFO through a link".into(),
        timed(|| workspace::read(&cfg.fifo_link), |b| format!("{} bytes", b.len())),
    );
    tries.insert("read the socket".into(), timed(|| workspace::read(&cfg.socket), |b| format!("{} bytes", b.len())));
    tries.insert(
        "write the socket".into(),
        timed(|| workspace::write(&cfg.socket, b"hostile\n"), |()| "written".into()),
    );
    tries.insert(
        "list the root".into(),
        timed(
            || workspace::list_dir(""),
            |entries| entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(" "),
        ),
    );
    tries.insert("cat the FIFO".into(), timed(|| process::command("cat").arg(&cfg.fifo).run(), shown));
    tries.insert("sleep 613".into(), timed(|| process::command("sleep").arg("613").run(), shown));
    tries.insert(
        "a server that never answers".into(),
        timed(|| http::get(&format!("{}/hang", cfg.base_url)), |r| format!("status {}", r.status)),
    );
    tries
}

/// The agent.
struct HostileFifo;

impl Agent for HostileFifo {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-fifo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile suite (b): special files and host calls that never return".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let tries = match cfg.attempt.as_str() {
            "fifo" => fifo(&cfg),
            "call-timeout" => {
                // Only the call's wall-clock limit can end this; if it returns, say how.
                let mut tries = Map::new();
                tries.insert("sleep 614".into(), timed(|| process::command("sleep").arg("614").run(), shown));
                tries
            }
            other => return Err(PluginError::fatal(format!("unknown attempt {other:?}"))),
        };
        Ok(RunResult::new(Outcome::Success, json!(tries).to_string()))
    }
}

export_agent!(HostileFifo);
