//! The production log: one JSON object per line in `.obra/logs/obra.jsonl` (the seeds' production monitoring),
//! written as the loop goes. Every line has `ts`, `event`, `run_id` (one per `obra` process) and, once known,
//! `task_id` and `session_id`; events carry their durations, confidence and quality. Text is redacted
//! ([`super::redact`]) unless `logging.redact` is off. The file rotates by size: at `logging.max_bytes` it becomes
//! `obra.1.jsonl` (older ones shift up to `logging.keep`, the oldest is deleted).
//!
//! Events: `run_started`, `user_input` (a human's decision or instruction: task created, breakpoint resolved),
//! `task_started`, `iteration_started`, `checkpoint`, `retry`, `execution_result` (the agent's run),
//! `quality` (a gate), `llm_opinion`, `rule`, `decision`, `breakpoint`, `rate_limited`, `git_commit`,
//! `config_reloaded`, `config_rejected`, `policy_refused` (the agent changed a policy file; ADR 34),
//! `task_finished`, `run_finished` and `error` ([`EVENTS`]).

/// Every event the production log writes, in the order a run writes them (`obra logs --event` takes these).
pub const EVENTS: &[&str] = &[
    "run_started",
    "user_input",
    "task_started",
    "iteration_started",
    "checkpoint",
    "retry",
    "execution_result",
    "quality",
    "llm_opinion",
    "rule",
    "decision",
    "breakpoint",
    "rate_limited",
    "git_commit",
    "config_reloaded",
    "config_rejected",
    "policy_refused",
    "task_finished",
    "run_finished",
    "error",
];

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::redact::redact_json;
use crate::engine::{LoopObserver, Step};

/// `logging:` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Write the production log.
    #[serde(default)]
    pub production: bool,
    /// Its file, relative to the project root unless absolute.
    #[serde(default)]
    pub path: String,
    /// Rotate when the file reaches this many bytes.
    #[serde(default)]
    pub max_bytes: u64,
    /// Rotated files kept (`obra.1.jsonl` ... `obra.N.jsonl`).
    #[serde(default)]
    pub keep: u32,
    /// Redact secrets and personal data in the log and in what the store keeps of prompts and agent output.
    #[serde(default)]
    pub redact: bool,
}

impl LoggingConfig {
    /// Check values types cannot: returns the key and the problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.production && self.path.trim().is_empty() {
            return Err(("logging.path".into(), "is empty; name the log file, e.g. .obra/logs/obra.jsonl".into()));
        }
        if self.max_bytes < 4096 {
            return Err(("logging.max_bytes".into(), format!("{} is too small; use at least 4096", self.max_bytes)));
        }
        Ok(())
    }

    /// The log file of project `project` at `root`: `path` as is when absolute; relative to the project root
    /// when the project has its own `.obra/` (made by `obra init`); else, for projects of the user's store, in
    /// the user's state directory (`~/.local/state/obra/logs/<project>/`), so no `.obra/` appears in a directory
    /// that had none.
    pub fn file(&self, root: &Path, project: &str) -> PathBuf {
        let path = Path::new(&self.path);
        if path.is_absolute() || root.join(".obra").is_dir() {
            return root.join(path);
        }
        let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("obra.jsonl"));
        let safe: String =
            project.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .unwrap_or_else(std::env::temp_dir)
            .join("obra")
            .join("logs")
            .join(safe)
            .join(name)
    }
}

/// The open log: where lines go, and what every line carries.
pub struct ProductionLog {
    writer: Mutex<Writer>,
    run_id: String,
    redact: bool,
}

/// The file, its size, and the rotation policy.
struct Writer {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    keep: u32,
    /// Whether a write error was already reported (said once, then the log goes quiet).
    failed: bool,
}

/// The `i`-th rotated file of `path`: `obra.jsonl` -> `obra.<i>.jsonl`.
pub fn rotated(path: &Path, i: u32) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("obra");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("jsonl");
    path.with_file_name(format!("{stem}.{i}.{ext}"))
}

impl Writer {
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let bytes = line.len() as u64 + 1;
        if self.size > 0 && self.size + bytes > self.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(format!("{line}\n").as_bytes())?;
        self.size += bytes;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, self.keep));
            for i in (1..self.keep).rev() {
                let from = rotated(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.size = 0;
        Ok(())
    }
}

/// A new run id: 12 hex digits from the clock and the process id.
fn new_run_id() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:012x}", (nanos ^ (u128::from(std::process::id()) << 40)) & 0xffff_ffff_ffff)
}

impl ProductionLog {
    /// The log of project `project` at `root` (see [`LoggingConfig::file`]), or `None` when
    /// `logging.production` is off.
    pub fn open(config: &LoggingConfig, root: &Path, project: &str) -> Option<Arc<ProductionLog>> {
        if !config.production {
            return None;
        }
        let path = config.file(root, project);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Some(Arc::new(ProductionLog {
            writer: Mutex::new(Writer {
                path,
                file: None,
                size,
                max_bytes: config.max_bytes,
                keep: config.keep,
                failed: false,
            }),
            run_id: new_run_id(),
            redact: config.redact,
        }))
    }

    /// This process's run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Write one event: `fields` (an object) plus `ts`, `event` and `run_id`. A write failure is reported once
    /// on stderr and never stops the loop.
    pub fn event(&self, event: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("ts".into(), json!(humantime::format_rfc3339_millis(SystemTime::now()).to_string()));
        line.insert("event".into(), json!(event));
        line.insert("run_id".into(), json!(self.run_id));
        if let Value::Object(map) = fields {
            line.extend(map);
        }
        let mut value = Value::Object(line);
        if self.redact {
            redact_json(&mut value);
        }
        let text = value.to_string();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writer.write_line(&text)
            && !writer.failed
        {
            writer.failed = true;
            tracing::warn!("cannot write the production log {}: {e}", writer.path.display());
        }
    }
}

/// Turns the loop's steps into production log events, keeping the task, session and iteration timing each line
/// needs.
pub struct LogObserver {
    log: Arc<ProductionLog>,
    state: Mutex<ObserverState>,
}

#[derive(Default)]
struct ObserverState {
    /// The task of the sequential loop's current step (parallel steps come tagged).
    current_task: Option<i64>,
    sessions: HashMap<i64, String>,
    iteration_started: HashMap<i64, (u32, Instant)>,
}

impl LogObserver {
    /// An observer writing to `log`.
    pub fn new(log: Arc<ProductionLog>) -> Self {
        LogObserver { log, state: Mutex::new(ObserverState::default()) }
    }

    fn record(&self, task: Option<i64>, step: &Step) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let task = task.or(st.current_task);
        let (event, mut fields) = match step {
            Step::ForTask { task_id, step } => {
                drop(st);
                self.record(Some(*task_id), step);
                return;
            }
            Step::TaskPicked { task_id, title, ready, pending } => {
                st.current_task = Some(*task_id);
                ("task_started", json!({ "task_id": task_id, "title": title, "ready": ready, "pending": pending }))
            }
            Step::IterationStarted { task_id, iteration, max_iterations, prompt_chars } => {
                st.current_task = Some(*task_id);
                st.iteration_started.insert(*task_id, (*iteration, Instant::now()));
                (
                    "iteration_started",
                    json!({ "task_id": task_id, "iteration": iteration, "max_iterations": max_iterations,
                            "prompt_chars": prompt_chars }),
                )
            }
            Step::CheckpointTaken { id, files, completed } => {
                ("checkpoint", json!({ "checkpoint_id": id, "files": files, "task_completed": completed }))
            }
            Step::Committed { commit, subject, tasks, files } => {
                ("git_commit", json!({ "commit": commit, "subject": subject, "tasks": tasks, "files": files }))
            }
            Step::Progress(_) => return,
            Step::Retrying { what, attempt, delay, reason } => (
                "retry",
                json!({ "what": what, "attempt": attempt, "delay_ms": delay.as_millis() as u64, "reason": reason }),
            ),
            Step::AgentFinished { result, changes, .. } => match result {
                Ok(r) => {
                    if let (Some(t), Some(s)) = (task, &r.session_id) {
                        st.sessions.insert(t, s.clone());
                    }
                    (
                        "execution_result",
                        json!({ "outcome": r.outcome.as_str(), "summary": r.summary, "turns": r.turns,
                                "duration_ms": r.duration_ms, "input_tokens": r.usage.input_tokens,
                                "output_tokens": r.usage.output_tokens, "cost_usd": r.usage.cost_usd,
                                "api_status": r.api_status, "exit_code": r.exit_code,
                                "files_changed": changes.len() }),
                    )
                }
                Err(e) => ("error", json!({ "where": "agent", "error": e, "files_changed": changes.len() })),
            },
            Step::GateFinished(g) => (
                "quality",
                json!({ "gate": g.gate, "passed": g.passed, "quality": g.score, "summary": g.summary,
                        "findings": logged_findings(&g.findings), "findings_count": g.findings.len(),
                        "error": g.error, "duration_ms": g.duration_ms }),
            ),
            Step::LlmOpinion { confidence, note } => ("llm_opinion", json!({ "confidence": confidence, "note": note })),
            Step::RuleFired { rule, verdict } => ("rule", json!({ "rule": rule, "verdict": verdict })),
            Step::Decided { action, confidence, explanation } => {
                let iteration_ms =
                    task.and_then(|t| st.iteration_started.get(&t)).map(|(_, at)| at.elapsed().as_millis() as u64);
                (
                    "decision",
                    json!({ "action": action.as_str(), "confidence": confidence, "explanation": explanation,
                            "iteration": task.and_then(|t| st.iteration_started.get(&t)).map(|(i, _)| *i),
                            "iteration_ms": iteration_ms }),
                )
            }
            Step::BreakpointOpened { id, rule, reason } => {
                ("breakpoint", json!({ "breakpoint_id": id, "rule": rule, "reason": reason }))
            }
            Step::ConfigReloaded { applied, needs_restart } => {
                ("config_reloaded", json!({ "applied": applied, "needs_restart": needs_restart }))
            }
            Step::ConfigRejected { error } => ("config_rejected", json!({ "error": error })),
            Step::PolicyRefused { task_id, paths, errors, diff } => (
                "policy_refused",
                json!({ "task_id": task_id, "paths": paths, "restored": errors.is_empty(), "errors": errors,
                        "diff": diff }),
            ),
            Step::RateLimited { task_id, until, reason } => (
                "rate_limited",
                json!({ "task_id": task_id, "until": humantime::format_rfc3339_seconds(*until).to_string(),
                        "reason": reason }),
            ),
            Step::TaskFinished { task_id, status } => {
                ("task_finished", json!({ "task_id": task_id, "status": status.as_str() }))
            }
        };
        if let (Some(obj), Some(t)) = (fields.as_object_mut(), task) {
            obj.entry("task_id").or_insert(json!(t));
            if let Some(s) = st.sessions.get(&t) {
                obj.entry("session_id").or_insert(json!(s));
            }
        }
        drop(st);
        self.log.event(event, fields);
    }
}

/// At most this many findings of one gate go into a `quality` event (`findings_count` has them all).
const LOGGED_FINDINGS: usize = 10;
/// A logged finding's message is cut to this many characters.
const LOGGED_FINDING_CHARS: usize = 1000;

/// A gate's findings as the production log keeps them: the first [`LOGGED_FINDINGS`], each with its severity,
/// place and message (cut to [`LOGGED_FINDING_CHARS`]; redacted with the rest of the line).
fn logged_findings(findings: &[crate::contract::Finding]) -> Vec<Value> {
    findings
        .iter()
        .take(LOGGED_FINDINGS)
        .map(|f| {
            let message: String = f.message.chars().take(LOGGED_FINDING_CHARS).collect();
            json!({ "severity": f.severity, "path": f.path, "line": f.line, "message": message })
        })
        .collect()
}

impl LoopObserver for LogObserver {
    fn step(&self, step: &Step) {
        self.record(None, step);
    }
}

/// Every step to several observers (the terminal and the production log).
pub struct Tee(pub Vec<Arc<dyn LoopObserver>>);

impl LoopObserver for Tee {
    fn step(&self, step: &Step) {
        for observer in &self.0 {
            observer.step(step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Outcome, RunResult};

    fn config(dir: &Path, max_bytes: u64, keep: u32) -> LoggingConfig {
        LoggingConfig {
            production: true,
            path: dir.join("obra.jsonl").display().to_string(),
            max_bytes,
            keep,
            redact: true,
        }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn steps_become_events_with_run_task_and_session_ids_and_redacted_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = ProductionLog::open(&config(dir.path(), 1 << 20, 2), dir.path(), "p").unwrap();
        let observer = LogObserver::new(log.clone());
        observer.step(&Step::TaskPicked { task_id: 7, title: "Fix it".into(), ready: 1, pending: 1 });
        observer.step(&Step::IterationStarted { task_id: 7, iteration: 1, max_iterations: 3, prompt_chars: 10 });
        let mut r =
            RunResult::new(Outcome::Success, "done; mailed ada@example.com the key sk-ant-api03-AbCdEfGhIjKlMnOpQr");
        r.session_id = Some("sess-1".into());
        observer.step(&Step::AgentFinished { result: Ok(r), changes: vec![], usage: Default::default() });
        observer.step(&Step::Progress("not logged".into()));
        observer.step(&Step::Decided {
            action: crate::state::Action::Proceed,
            confidence: 0.9,
            explanation: "ok".into(),
        });
        let got = lines(&dir.path().join("obra.jsonl"));
        let events: Vec<&str> = got.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["task_started", "iteration_started", "execution_result", "decision"]);
        assert!(got.iter().all(|l| l["run_id"] == log.run_id() && l["task_id"] == 7 && l["ts"].is_string()));
        assert_eq!(got[2]["summary"], "done; mailed [REDACTED:email] the key [REDACTED:anthropic-key]");
        assert_eq!(got[3]["session_id"], "sess-1");
        assert_eq!(got[3]["iteration"], 1);
        assert!(got[3]["iteration_ms"].is_u64());
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_configured_number() {
        let dir = tempfile::tempdir().unwrap();
        let log = ProductionLog::open(&config(dir.path(), 4096, 2), dir.path(), "p").unwrap();
        for i in 0..200 {
            log.event("tick", json!({ "i": i, "pad": "x".repeat(100) }));
        }
        let path = dir.path().join("obra.jsonl");
        for p in [&path, &rotated(&path, 1), &rotated(&path, 2)] {
            let size = std::fs::metadata(p).unwrap().len();
            assert!(size <= 4096, "{} has {size} bytes", p.display());
        }
        assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
        let newest = lines(&path);
        assert_eq!(newest.last().unwrap()["i"], 199);
        let older = lines(&rotated(&path, 1));
        assert_eq!(older.last().unwrap()["i"].as_i64().unwrap() + 1, newest[0]["i"].as_i64().unwrap());
    }

    #[test]
    fn off_means_no_log_and_bad_settings_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), 1 << 20, 1);
        cfg.production = false;
        assert!(ProductionLog::open(&cfg, dir.path(), "p").is_none());
        cfg.max_bytes = 10;
        assert_eq!(cfg.check().unwrap_err().0, "logging.max_bytes");
    }
}
