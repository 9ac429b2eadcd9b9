//! `replay`: an agent plugin that plays back a recorded agent run (see README.md for the format).
//!
//! For loop iteration N (`request.task.iteration`) it reports the iteration's progress lines, deletes and
//! writes its files through the workspace capability, and returns its recorded `run-result`.
//!
//! Config (JSON):
//! - `recording` (required): a path to the recording (relative to the workspace, or absolute inside it), or
//!   the recording itself as an object.
//! - `past_end` (default `"error"`): what to do for an iteration the recording does not have: `"error"` (a
//!   fatal error) or `"repeat-last"`.

pub mod recording;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{PluginError, ResultExt, RunResult, config, export_agent, log, progress, workspace};
use serde::Deserialize;

use recording::{PastEnd, Recording, Source};

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A path (string) or the recording itself (object).
    pub recording: serde_json::Value,
    /// What to do past the end of the recording.
    #[serde(default)]
    pub past_end: PastEnd,
}

impl Config {
    fn source(&self) -> Result<Source, PluginError> {
        match &self.recording {
            serde_json::Value::String(p) if !p.trim().is_empty() => Ok(Source::Path(p.clone())),
            serde_json::Value::Object(_) => Ok(Source::Inline(self.recording.clone())),
            _ => Err(PluginError::fatal(
                "invalid config: at `recording`: expected a path to a recording (string) or a recording \
                 (object with `iterations`)",
            )),
        }
    }
}

fn load(source: &Source) -> Result<Recording, PluginError> {
    match source {
        Source::Inline(value) => recording::parse("config `recording`", &value.to_string()),
        Source::Path(path) => {
            let rel = recording::workspace_relative(path, &workspace::root())?;
            let text = workspace::read_to_string(&rel).with_context(|| format!("reading recording {path}"))?;
            recording::parse(path, &text)
        }
    }
}

/// The agent.
pub struct Replay;

impl Agent for Replay {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "replay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Plays back a recorded agent run".into(),
            supports_resume: false,
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg: Config = config(&config_json)?;
        match cfg.source()? {
            Source::Inline(_) => {
                let rec = load(&cfg.source()?)?;
                Ok(format!(
                    "replay {}: inline recording with {} iteration(s)",
                    env!("CARGO_PKG_VERSION"),
                    rec.iterations.len()
                ))
            }
            Source::Path(p) => {
                Ok(format!("replay {}: recording {p} (read from the workspace at run time)", env!("CARGO_PKG_VERSION")))
            }
        }
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let rec = load(&cfg.source()?)?;
        let iteration = request.task.iteration;
        let entry = recording::select(&rec, request.task.id, iteration, cfg.past_end)?;
        log::info(&format!(
            "replaying iteration {iteration}: {} delete(s), {} write(s)",
            entry.deletes.len(),
            entry.writes.len()
        ));
        for line in &entry.progress {
            progress(line);
        }
        for path in &entry.deletes {
            if let Err(err) = workspace::remove(path) {
                // A file that is already gone is what the recording wanted.
                if matches!(err, PluginError::Denied(_)) || workspace::exists(path).unwrap_or(true) {
                    return Err(err.context(format!("deleting {path}")));
                }
                log::warn(&format!("{path} was already gone: {}", err.message()));
            }
        }
        for write in &entry.writes {
            workspace::write(&write.path, write.content.as_bytes())
                .with_context(|| format!("writing {}", write.path))?;
        }
        Ok(entry.result.to_run_result())
    }
}

export_agent!(Replay);
