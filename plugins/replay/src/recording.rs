//! The recording format (see README.md) and the pure logic of choosing an iteration; no host calls here, so
//! this module is unit-tested on the host target.

use obra_plugin_sdk::{Outcome, PluginError, RunResult, Usage, parse_json};
use serde::{Deserialize, Deserializer};

/// The newest recording format version this plugin reads.
pub const FORMAT_VERSION: u32 = 1;

/// A recorded agent run: what the agent did and reported in each iteration of the supervision loop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Format version; 1.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Free text describing the story, for humans.
    #[serde(default)]
    pub description: String,
    /// The iterations, in order (for every task without its own entry in `tasks`).
    #[serde(default)]
    pub iterations: Vec<Iteration>,
    /// Iterations of particular tasks, by task id (`"3"`): a recorded backlog, where tasks differ.
    #[serde(default)]
    pub tasks: std::collections::BTreeMap<String, TaskRecording>,
}

/// The iterations recorded for one task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecording {
    /// The iterations, in order.
    pub iterations: Vec<Iteration>,
}

fn default_version() -> u32 {
    FORMAT_VERSION
}

/// What the agent did in one iteration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Iteration {
    /// The loop iteration (from 1) this entry answers; when no entry has one, entry N answers iteration N.
    #[serde(default)]
    pub iteration: Option<u32>,
    /// Progress lines to report, as the agent's tool uses would have been.
    #[serde(default)]
    pub progress: Vec<String>,
    /// Files to delete (relative to the workspace root), applied before `writes`.
    #[serde(default)]
    pub deletes: Vec<String>,
    /// Files to create or replace.
    #[serde(default)]
    pub writes: Vec<FileWrite>,
    /// What the agent reported.
    pub result: RecordedResult,
}

/// One file written by the agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWrite {
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    /// The whole new content (UTF-8 text).
    pub content: String,
}

/// The recorded `run-result`; every field but `outcome` and `summary` may be left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedResult {
    /// `success`, `max-turns`, `api-error`, `rate-limited`, `permission-denied`, `timeout`, `crashed` or
    /// `unparseable`.
    #[serde(deserialize_with = "deserialize_outcome")]
    pub outcome: Outcome,
    /// The agent's final message.
    pub summary: String,
    /// Session id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Model turns used.
    #[serde(default)]
    pub turns: u32,
    /// Tokens and cost.
    #[serde(default)]
    pub usage: RecordedUsage,
    /// Run time in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// HTTP status of an API error.
    #[serde(default)]
    pub api_status: Option<u16>,
    /// Retry-after of a rate limit, in milliseconds.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// Refused actions, one line each.
    #[serde(default)]
    pub permission_denials: Vec<String>,
    /// Exit code of the agent process.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Recorded token and cost accounting.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedUsage {
    /// Prompt tokens excluding cache reads.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens read from cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Cost in US dollars.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

fn deserialize_outcome<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
    let name = String::deserialize(d)?;
    Outcome::parse(&name).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown outcome `{name}`, expected one of success, max-turns, api-error, rate-limited, \
             permission-denied, timeout, crashed, unparseable"
        ))
    })
}

impl RecordedResult {
    /// The `run-result` to return.
    pub fn to_run_result(&self) -> RunResult {
        let mut r = RunResult::new(self.outcome, self.summary.clone());
        r.session_id = self.session_id.clone();
        r.turns = self.turns;
        r.usage = Usage {
            input_tokens: self.usage.input_tokens,
            output_tokens: self.usage.output_tokens,
            cache_read_tokens: self.usage.cache_read_tokens,
            cache_write_tokens: self.usage.cache_write_tokens,
            cost_usd: self.usage.cost_usd,
        };
        r.duration_ms = self.duration_ms;
        r.api_status = self.api_status;
        r.retry_after_ms = self.retry_after_ms;
        r.permission_denials = self.permission_denials.clone();
        r.exit_code = self.exit_code;
        r
    }
}

/// What to do when the loop asks for an iteration the recording does not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PastEnd {
    /// Fail the run with a fatal error (default).
    #[default]
    Error,
    /// Play the last iteration again.
    RepeatLast,
}

/// Parse a recording; `what` names it in errors (a file path, or `recording` for an inline one).
pub fn parse(what: &str, text: &str) -> Result<Recording, PluginError> {
    let rec: Recording = parse_json(what, text)?;
    validate(what, rec)
}

/// Check a parsed recording: known version, at least one iteration, iteration numbers unique and used by all
/// entries or none.
pub fn validate(what: &str, rec: Recording) -> Result<Recording, PluginError> {
    if rec.version == 0 || rec.version > FORMAT_VERSION {
        return Err(PluginError::fatal(format!(
            "{what}: recording format version {} is not supported (this replay plugin reads version {FORMAT_VERSION})",
            rec.version
        )));
    }
    if rec.iterations.is_empty() && rec.tasks.is_empty() {
        return Err(PluginError::fatal(format!("{what}: the recording has no iterations")));
    }
    if !rec.iterations.is_empty() {
        validate_iterations(what, &rec.iterations)?;
    }
    for (task, recorded) in &rec.tasks {
        let here = format!("{what}: tasks.{task}");
        if task.parse::<u64>().is_err() {
            return Err(PluginError::fatal(format!("{here}: the key must be a task id (a number)")));
        }
        if recorded.iterations.is_empty() {
            return Err(PluginError::fatal(format!("{here}: the task has no iterations")));
        }
        validate_iterations(&here, &recorded.iterations)?;
    }
    Ok(rec)
}

/// Iteration numbers unique, and used by all entries or none.
fn validate_iterations(what: &str, iterations: &[Iteration]) -> Result<(), PluginError> {
    let numbered = iterations.iter().filter(|i| i.iteration.is_some()).count();
    if numbered != 0 && numbered != iterations.len() {
        return Err(PluginError::fatal(format!(
            "{what}: either every iteration has an `iteration` number or none does ({numbered} of {} have one)",
            iterations.len()
        )));
    }
    let mut seen: Vec<u32> = iterations.iter().filter_map(|i| i.iteration).collect();
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(PluginError::fatal(format!("{what}: iteration {} is recorded twice", w[0])));
    }
    Ok(())
}

/// The entry that answers loop iteration `iteration` (from 1) of task `task`: from the task's own recording
/// when `tasks` has one, else from `iterations`.
pub fn select(rec: &Recording, task: u64, iteration: u32, past_end: PastEnd) -> Result<&Iteration, PluginError> {
    let iterations = match rec.tasks.get(&task.to_string()) {
        Some(recorded) => &recorded.iterations,
        None if rec.iterations.is_empty() => {
            let ids: Vec<&str> = rec.tasks.keys().map(String::as_str).collect();
            return Err(PluginError::fatal(format!(
                "the recording has nothing for task {task} (it records tasks {}, and no `iterations` for the others)",
                ids.join(", ")
            )));
        }
        None => &rec.iterations,
    };
    let numbered = iterations.iter().any(|i| i.iteration.is_some());
    let found = if numbered {
        iterations.iter().find(|i| i.iteration == Some(iteration))
    } else {
        iteration.checked_sub(1).and_then(|i| iterations.get(i as usize))
    };
    if let Some(it) = found {
        return Ok(it);
    }
    let last_number = if numbered {
        iterations.iter().filter_map(|i| i.iteration).max().unwrap_or(0)
    } else {
        iterations.len() as u32
    };
    match past_end {
        PastEnd::RepeatLast if iteration > last_number => Ok(iterations
            .iter()
            .max_by_key(|i| i.iteration.unwrap_or(0))
            .filter(|_| numbered)
            .unwrap_or_else(|| iterations.last().expect("validated: not empty"))),
        _ => Err(PluginError::fatal(format!(
            "the recording has no iteration {iteration} (it records {}); set `past_end: repeat-last` in the \
             replay config to play the last one again",
            describe_iterations(iterations)
        ))),
    }
}

fn describe_iterations(iterations: &[Iteration]) -> String {
    if iterations.iter().any(|i| i.iteration.is_some()) {
        let nums: Vec<String> = iterations.iter().filter_map(|i| i.iteration.map(|n| n.to_string())).collect();
        format!("iterations {}", nums.join(", "))
    } else {
        format!("iterations 1 to {}", iterations.len())
    }
}

/// Where the recording comes from: a path, or the recording itself inline in the config.
#[derive(Debug, Clone)]
pub enum Source {
    /// A path relative to the workspace, or absolute.
    Path(String),
    /// The recording, as JSON.
    Inline(serde_json::Value),
}

/// How to read an absolute recording path through the workspace capability: the path relative to `root`,
/// or an error explaining why it cannot be read.
pub fn workspace_relative(path: &str, root: &str) -> Result<String, PluginError> {
    if !path.starts_with('/') {
        return Ok(path.to_string());
    }
    let root = root.trim_end_matches('/');
    match path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')) {
        Some(rel) if !rel.is_empty() => Ok(rel.to_string()),
        _ => Err(PluginError::fatal(format!(
            "recording {path} is outside the workspace {root}: the replay plugin reads files only through the \
             workspace capability. Put the recording inside the workspace (e.g. .obra/recording.json, with a \
             relative `recording` path) or give it inline as `recording: {{ iterations: [...] }}` in the agent's \
             config"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../../../config/demo/recording.json");

    fn rec(json: &str) -> Recording {
        parse("test", json).unwrap()
    }

    #[test]
    fn demo_recording_parses_and_tells_a_two_iteration_story() {
        let r = rec(DEMO);
        assert_eq!(r.iterations.len(), 2);
        let first = select(&r, 1, 1, PastEnd::Error).unwrap();
        let second = select(&r, 1, 2, PastEnd::Error).unwrap();
        assert!(!first.writes.is_empty());
        assert!(!second.writes.is_empty());
        assert_eq!(first.result.outcome, Outcome::Success);
        assert!(select(&r, 1, 3, PastEnd::Error).is_err());
    }

    #[test]
    fn unnumbered_entries_answer_by_position() {
        let r = rec(r#"{"iterations": [
            {"result": {"outcome": "success", "summary": "one"}},
            {"result": {"outcome": "max-turns", "summary": "two", "turns": 9}}
        ]}"#);
        assert_eq!(select(&r, 1, 2, PastEnd::Error).unwrap().result.summary, "two");
        let err = select(&r, 1, 3, PastEnd::Error).unwrap_err();
        assert!(err.message().contains("iterations 1 to 2"), "{}", err.message());
        assert!(select(&r, 1, 0, PastEnd::Error).is_err());
        assert_eq!(select(&r, 1, 7, PastEnd::RepeatLast).unwrap().result.summary, "two");
        let rr = select(&r, 1, 2, PastEnd::Error).unwrap().result.to_run_result();
        assert_eq!(rr.outcome, Outcome::MaxTurns);
        assert_eq!(rr.turns, 9);
    }

    #[test]
    fn numbered_entries_answer_by_number() {
        let r = rec(r#"{"iterations": [
            {"iteration": 3, "result": {"outcome": "success", "summary": "three"}},
            {"iteration": 1, "result": {"outcome": "crashed", "summary": "one", "exit_code": 1}}
        ]}"#);
        assert_eq!(select(&r, 1, 1, PastEnd::Error).unwrap().result.summary, "one");
        assert_eq!(select(&r, 1, 3, PastEnd::Error).unwrap().result.summary, "three");
        assert!(select(&r, 1, 2, PastEnd::RepeatLast).is_err());
        assert_eq!(select(&r, 1, 4, PastEnd::RepeatLast).unwrap().result.summary, "three");
    }

    #[test]
    fn bad_recordings_are_fatal_and_name_the_field() {
        let err = parse("rec.json", r#"{"iterations": [{"result": {"outcome": "won", "summary": ""}}]}"#).unwrap_err();
        assert_eq!(err.kind(), "fatal");
        assert!(err.message().contains("iterations[0].result.outcome"), "{}", err.message());
        assert!(err.message().contains("unknown outcome `won`"), "{}", err.message());
        assert!(parse("r", r#"{"iterations": []}"#).is_err());
        assert!(
            parse("r", r#"{"version": 2, "iterations": [{"result": {"outcome": "success", "summary": ""}}]}"#).is_err()
        );
        let mixed = r#"{"iterations": [
            {"iteration": 1, "result": {"outcome": "success", "summary": ""}},
            {"result": {"outcome": "success", "summary": ""}}]}"#;
        assert!(parse("r", mixed).is_err());
        let dup = r#"{"iterations": [
            {"iteration": 1, "result": {"outcome": "success", "summary": ""}},
            {"iteration": 1, "result": {"outcome": "success", "summary": ""}}]}"#;
        assert!(parse("r", dup).unwrap_err().message().contains("twice"));
    }

    #[test]
    fn absolute_paths_must_lie_in_the_workspace() {
        assert_eq!(workspace_relative("a/b.json", "/w").unwrap(), "a/b.json");
        assert_eq!(workspace_relative("/w/.obra/r.json", "/w/").unwrap(), ".obra/r.json");
        assert!(workspace_relative("/wx/r.json", "/w").is_err());
        assert!(workspace_relative("/w", "/w").is_err());
        let err = workspace_relative("/etc/r.json", "/w").unwrap_err();
        assert!(err.message().contains("inline"), "{}", err.message());
    }

    #[test]
    fn tasks_with_their_own_recording_get_it_and_the_others_the_shared_one() {
        let r = rec(r#"{
            "iterations": [{"result": {"outcome": "success", "summary": "shared"}}],
            "tasks": {"3": {"iterations": [{"result": {"outcome": "crashed", "summary": "three"}}]}}}"#);
        assert_eq!(select(&r, 3, 1, PastEnd::Error).unwrap().result.summary, "three");
        assert_eq!(select(&r, 4, 1, PastEnd::Error).unwrap().result.summary, "shared");
        let only = rec(r#"{"tasks": {"1": {"iterations": [{"result": {"outcome": "success", "summary": "one"}}]}}}"#);
        let err = select(&only, 2, 1, PastEnd::Error).unwrap_err();
        assert!(err.message().contains("nothing for task 2") && err.message().contains("tasks 1"), "{}", err.message());
        assert!(
            parse("r", r#"{"tasks": {"x": {"iterations": [{"result": {"outcome": "success", "summary": ""}}]}}}"#)
                .unwrap_err()
                .message()
                .contains("tasks.x")
        );
        assert!(parse("r", r#"{"tasks": {"1": {"iterations": []}}}"#).is_err());
    }
}
