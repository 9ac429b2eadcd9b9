//! Hostile test plugin `hostile-quotas` for the quota part of the security suite (tests/e2e/security.rs).
//!
//! One `agent.run` takes as much as it can of each per-plugin quota, in this order, and reports what it got:
//! - `children`: spawns `sleep <sleep_secs>` until a spawn fails (at most `tries` times), and keeps every child it got;
//! - `streams`: opens a streaming GET of `<base_url>/slow` (headers, then a body that never ends) until one
//!   fails, and keeps every stream it got;
//! - `kv`: stores values of `value_bytes` under new keys until a write fails, then tries one value of twice
//!   the kv value quota (`big_value_bytes`);
//! - `log`: writes `log_lines` log lines and as many progress lines of 1 KiB each.
//!
//! Then it writes the report to `quota-report.json` in the workspace, so the iteration has a change to check.
//!
//! Children and streams stay in a static, so they outlive the call: the next call of the same instance (and
//! every other instance of the plugin) finds the quota still taken. The summary is a JSON object: for each
//! part, how many it got and the first error, verbatim.

use std::sync::Mutex;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, http, kv, log, process, workspace};
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin's configuration.
#[derive(Deserialize)]
struct Config {
    /// The granted origin; `/slow` there sends headers and then holds the body open.
    base_url: String,
    /// How long each child sleeps (the test picks a number no other program uses, to count them).
    #[serde(default = "default_sleep_secs")]
    sleep_secs: u64,
    /// At most this many tries per quota.
    #[serde(default = "default_tries")]
    tries: usize,
    /// The size of each kv value.
    #[serde(default = "default_value_bytes")]
    value_bytes: usize,
    /// The size of the one oversized kv value tried.
    #[serde(default = "default_big_value_bytes")]
    big_value_bytes: usize,
    /// How many 1 KiB log lines, and as many progress lines, to write.
    #[serde(default = "default_log_lines")]
    log_lines: usize,
}

fn default_sleep_secs() -> u64 {
    600
}

fn default_tries() -> usize {
    5000
}

fn default_value_bytes() -> usize {
    1 << 20
}

fn default_big_value_bytes() -> usize {
    4 << 20
}

fn default_log_lines() -> usize {
    100_000
}

/// What the plugin holds on to between calls.
static HELD: Mutex<(Vec<process::Child>, Vec<http::Stream>)> = Mutex::new((Vec::new(), Vec::new()));

/// Try `take` up to `tries` times, stopping at the first error: how many succeeded, and that error.
fn take_until_denied(tries: usize, mut take: impl FnMut(usize) -> Result<(), PluginError>) -> Value {
    for i in 0..tries {
        if let Err(e) = take(i) {
            return json!({ "got": i, "error": e.to_string() });
        }
    }
    json!({ "got": tries, "error": null })
}

fn children(cfg: &Config) -> Value {
    take_until_denied(cfg.tries, |_| {
        let child = process::command("sleep").arg(cfg.sleep_secs.to_string()).spawn()?;
        HELD.lock().unwrap().0.push(child);
        Ok(())
    })
}

fn streams(cfg: &Config) -> Value {
    take_until_denied(cfg.tries, |_| {
        let stream = http::Request::get(format!("{}/slow", cfg.base_url)).send_streaming()?;
        HELD.lock().unwrap().1.push(stream);
        Ok(())
    })
}

fn kv_store(cfg: &Config) -> Value {
    let value = vec![7u8; cfg.value_bytes];
    let mut report = take_until_denied(cfg.tries, |i| kv::set(&format!("fill-{i}"), &value));
    let big = kv::set("big", &vec![8u8; cfg.big_value_bytes]);
    report["big"] = json!(big.err().map(|e| e.to_string()));
    report
}

fn flood(cfg: &Config) -> Value {
    let line = "f".repeat(1024);
    for i in 0..cfg.log_lines {
        log::info(&format!("{i} {line}"));
        log::progress(&format!("{i} {line}"));
    }
    json!({ "lines": cfg.log_lines })
}

struct HostileQuotas;

impl Agent for HostileQuotas {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-quotas".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Security test: takes as much of every per-plugin quota as it can and holds on to it".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let report = json!({
            "children": children(&cfg),
            "streams": streams(&cfg),
            "kv": kv_store(&cfg),
            "log": flood(&cfg),
        });
        workspace::write("quota-report.json", report.to_string().as_bytes())?;
        Ok(RunResult::new(Outcome::Success, report.to_string()))
    }
}

export_agent!(HostileQuotas);
