//! Hostile test plugin `hostile-fields` for the hostile suite (tests/e2e/hostile_suite.rs), class (c): unbounded
//! fields. Each run puts 100 MB into the one field its config's `field` names (wasmtime refuses to copy much more
//! than 100 MB out of one call, so one field per run), and otherwise answers a short summary that starts with
//! `{"huge": "<field>"}` (followed, for `kv`, by what the host answered):
//!
//! - `summary`: 100 MB of ASCII after the prefix; `summary-utf8`: 100 MB of four-byte characters (a cut must land
//!   on a character boundary);
//! - `session-id`: a session id of 100 MB;
//! - `denials`: one permission denial of 100 MB among 100,000 short ones;
//! - `reports`: a failed action (`agent-report`), a progress line and a log line at each level, 100 MB each;
//! - `many-reports`: 1,000 failed actions, 1,000 progress lines and 1,000 log lines of 100 KB each (100 MB of
//!   each kind across many calls; how many lines one call may report is the quotas' business, issue 15 item 5);
//! - `error-fatal`, `error-retryable`, `error-timeout`, `error-rate-limited`, `error-denied`: the run fails with
//!   that error and a 100 MB message;
//! - `kv`: stores a 100 MB value and a value under a 100 MB key, and reports the host's answers;
//! - `health`: `health` (called by `obra doctor`) answers 100 MB when its config names this field.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest, report_failed_action};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, kv, log};
use serde::Deserialize;

/// The plugin's configuration (the test's `agents.hostile-fields` section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Which field gets 100 MB.
    field: String,
}

/// How many bytes each huge field has: 100 MB.
const HUGE: usize = 100 * 1024 * 1024;

/// 100 MB of ASCII.
fn huge() -> String {
    "h".repeat(HUGE)
}

/// What the host answered to a `kv` call.
fn answered(result: Result<(), PluginError>) -> String {
    match result {
        Ok(()) => "stored".into(),
        Err(e) => format!("{}: {}", e.kind(), e.message().chars().take(300).collect::<String>()),
    }
}

/// A run result with 100 MB in `field` (see the module documentation).
fn run_with(field: &str) -> Result<RunResult, PluginError> {
    let mut result = RunResult::new(Outcome::Success, format!("{{\"huge\": {field:?}}}"));
    match field {
        "summary" => result.summary.push_str(&huge()),
        "summary-utf8" => result.summary.push_str(&"\u{1F600}".repeat(HUGE / 4)),
        "session-id" => result.session_id = Some(huge()),
        "denials" => {
            result.permission_denials = (0..100_000).map(|i| format!("tool {i}")).collect();
            result.permission_denials.insert(50_000, huge());
        }
        "reports" => {
            let huge = huge();
            report_failed_action(&huge);
            log::progress(&huge);
            log::debug(&huge);
            log::info(&huge);
            log::warn(&huge);
            log::error(&huge);
        }
        "many-reports" => {
            let line = "m".repeat(100 * 1024);
            for i in 0..1_000 {
                let line = format!("{i} {line}");
                report_failed_action(&line);
                log::progress(&line);
                log::info(&line);
            }
        }
        "error-fatal" => return Err(PluginError::fatal(huge())),
        "error-retryable" => return Err(PluginError::retryable(huge())),
        "error-timeout" => return Err(PluginError::timeout(huge())),
        "error-rate-limited" => return Err(PluginError::rate_limited(huge(), Some(1))),
        "error-denied" => return Err(PluginError::denied(huge())),
        "kv" => {
            let value = answered(kv::set("hostile-fields", huge().as_bytes()));
            let key = answered(kv::set(&huge(), b"small"));
            result.summary.push_str(&format!(" value: {value}; key: {key}"));
        }
        "health" => {}
        other => return Err(PluginError::fatal(format!("unknown field {other:?}"))),
    }
    Ok(result)
}

/// The agent.
struct HostileFields;

impl Agent for HostileFields {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-fields".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile suite (c): 100 MB in one returned or reported field per run".into(),
            supports_resume: false,
        }
    }

    fn health(config_text: String) -> Result<String, PluginError> {
        let cfg: Config = config(&config_text)?;
        Ok(if cfg.field == "health" { huge() } else { "ok".into() })
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        run_with(&cfg.field)
    }
}

export_agent!(HostileFields);
