//! `obra logs`: the production log (JSON Lines, see `telemetry::production`), filtered and followed; or, with
//! `--activity`, the project's activity timeline from the store.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::args::{GlobalArgs, LogsArgs};
use super::open_options;
use super::output::one_line;
use crate::orchestrator::Orchestrator;
use crate::state::ActivityEvent;
use crate::telemetry::production::rotated;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

pub(super) async fn run(g: &GlobalArgs, a: LogsArgs) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    if let Some(task) = a.task {
        obra.task(task).await?;
    }
    if a.activity {
        return activity(&obra, &a).await;
    }
    let logging = &obra.config().config.logging;
    let path = logging.file(obra.root(), &obra.project().name);
    let filter = Filter::new(&a)?;
    let files = log_files(&path, logging.keep);
    if files.is_empty() && !a.follow {
        let hint = if logging.production {
            "nothing has been logged yet (`obra run` and `obra task execute` write it)"
        } else {
            "logging.production is off; turn it on, or use `obra logs --activity` for the store's timeline"
        };
        eprintln!("no production log at {}: {hint}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut shown: Vec<Value> = Vec::new();
    let mut bad_lines = 0usize;
    for file in &files {
        let reader = std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        for line in reader.lines() {
            let line = line.with_context(|| format!("cannot read {}", file.display()))?;
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if filter.matches(&v) => shown.push(v),
                Ok(_) => {}
                Err(_) if line.trim().is_empty() => {}
                Err(_) => bad_lines += 1,
            }
        }
    }
    if bad_lines > 0 {
        eprintln!("obra: skipped {bad_lines} line(s) of {} that are not JSON", path.display());
    }
    let skip = shown.len().saturating_sub(a.limit as usize);
    print(&shown[skip..], a.json)?;
    if a.follow {
        follow(&path, &filter, a.json).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The log files, oldest first: the rotated ones (`obra.N.jsonl` ... `obra.1.jsonl`), then the current one.
fn log_files(path: &Path, keep: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=keep.max(1)).rev().map(|i| rotated(path, i)).filter(|p| p.exists()).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Print new lines of the current log file as they are written; a rotation starts over on the new file.
async fn follow(path: &Path, filter: &Filter, json: bool) -> Result<()> {
    let mut offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut partial = String::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let Ok(meta) = std::fs::metadata(path) else { continue };
        if meta.len() < offset {
            offset = 0;
            partial.clear();
        }
        if meta.len() == offset {
            continue;
        }
        let mut file = std::fs::File::open(path)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        let mut chunk = String::new();
        let read = std::io::Read::read_to_string(&mut file, &mut chunk)?;
        offset += read as u64;
        partial.push_str(&chunk);
        let mut events = Vec::new();
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            if let Ok(v) = serde_json::from_str::<Value>(line.trim())
                && filter.matches(&v)
            {
                events.push(v);
            }
        }
        print(&events, json)?;
    }
}

/// Which lines to show.
struct Filter {
    task: Option<i64>,
    events: Vec<String>,
    run: Option<String>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
}

/// A time given as RFC 3339 or as an age before now (`30m`, `2h`, `1d`).
fn parse_time(flag: &str, text: &str) -> Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    match humantime::parse_duration(text) {
        Ok(age) => Ok(SystemTime::now() - age),
        Err(_) => {
            bail!("{flag} {text:?} is neither a time (2026-11-22T10:00:00Z) nor an age (30m, 2h, 1d); use one of those")
        }
    }
}

impl Filter {
    fn new(a: &LogsArgs) -> Result<Filter> {
        Ok(Filter {
            task: a.task,
            events: a.event.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
            run: a.run.clone(),
            since: a.since.as_deref().map(|t| parse_time("--since", t)).transpose()?,
            until: a.until.as_deref().map(|t| parse_time("--until", t)).transpose()?,
        })
    }

    fn matches(&self, v: &Value) -> bool {
        if self.task.is_some_and(|t| v["task_id"].as_i64() != Some(t)) {
            return false;
        }
        if !self.events.is_empty() && !self.events.iter().any(|e| v["event"] == e.as_str()) {
            return false;
        }
        if self.run.as_deref().is_some_and(|r| v["run_id"] != r) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(at) = v["ts"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else { return false };
            if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at >= u) {
                return false;
            }
        }
        true
    }
}

/// One line per event: time, run, task, event, and what matters about it.
fn print(events: &[Value], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for v in events {
        if json {
            serde_json::to_writer(&mut out, v)?;
            writeln!(out)?;
            continue;
        }
        let task = v["task_id"].as_i64().map(|t| format!("task {t:<4}")).unwrap_or_else(|| " ".repeat(9));
        writeln!(
            out,
            "{}  {}  {task} {:<17} {}",
            v["ts"].as_str().unwrap_or(""),
            v["run_id"].as_str().unwrap_or(""),
            v["event"].as_str().unwrap_or("?"),
            one_line(&describe(v), 160)
        )?;
    }
    out.flush()?;
    Ok(())
}

/// The gist of an event for the terminal.
fn describe(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let n = |k: &str| v[k].as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    match v["event"].as_str().unwrap_or("") {
        "execution_result" => format!(
            "{} in {} ms, {} turn(s), {} file(s): {}",
            s("outcome"),
            v["duration_ms"],
            v["turns"],
            v["files_changed"],
            s("summary")
        ),
        "quality" => {
            let mut text = format!(
                "{} {} (quality {}) {}",
                s("gate"),
                if v["passed"] == true { "passed" } else { "failed" },
                n("quality"),
                s("summary")
            );
            // A failed gate's first finding, so the line says what failed (`--json` has them all).
            if v["passed"] != true
                && let Some(first) = v["findings"].as_array().and_then(|f| f.first())
            {
                let message = first["message"].as_str().unwrap_or("");
                let place = first["path"].as_str().map(|p| format!("{p}: ")).unwrap_or_default();
                text.push_str(&format!(" — {place}{}", message.lines().find(|l| !l.trim().is_empty()).unwrap_or("")));
            }
            text
        }
        "decision" => format!("{} at confidence {} after {} ms", s("action"), n("confidence"), v["iteration_ms"]),
        "breakpoint" => format!("{} ({}): {}", v["breakpoint_id"], s("rule"), s("reason")),
        "task_started" | "user_input" if v["title"].is_string() => s("title"),
        "user_input" => format!("{} {}", s("action"), s("resolution")),
        "task_finished" => s("status"),
        "run_started" => format!("{} ({})", s("command"), s("project")),
        "run_finished" => match v["executions"].as_u64() {
            // `obra run`: its executions and why it stopped.
            Some(executions) => format!(
                "{executions} execution(s): {} completed, {} paused, {} failed; {}",
                v["completed"].as_u64().unwrap_or(0),
                v["paused"].as_u64().unwrap_or(0),
                v["failed"].as_u64().unwrap_or(0),
                s("stopped_because")
            ),
            // `obra task execute`: the one task and how it ended.
            None => format!("task {}", s("status")),
        },
        "error" => s("error"),
        "llm_opinion" => format!("confidence {}: {}", n("confidence"), s("note")),
        _ => {
            let mut rest = v.clone();
            if let Some(obj) = rest.as_object_mut() {
                for k in ["ts", "event", "run_id", "task_id", "session_id"] {
                    obj.remove(k);
                }
            }
            rest.to_string()
        }
    }
}

/// `--activity`: the store's timeline, as before the production log.
async fn activity(obra: &Orchestrator, a: &LogsArgs) -> Result<ExitCode> {
    let project = obra.project().id;
    let events = obra.state().latest_activity(project, a.task, a.limit).await?;
    let mut seen: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
    let mut last = None;
    print_activity(&events, a.json, &mut seen, &mut last)?;
    if a.follow {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            // Only events after the last one shown; `seen` guards against printing one twice.
            let new = obra.state().activity(project, a.task, last.as_deref(), 10_000).await?;
            print_activity(&new, a.json, &mut seen, &mut last)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_activity(
    events: &[ActivityEvent],
    json: bool,
    seen: &mut std::collections::HashSet<(String, i64)>,
    last: &mut Option<String>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for e in events {
        if !seen.insert((e.kind.clone(), e.ref_id)) {
            continue;
        }
        if json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            let task = e.task_id.map(|t| format!("task {t:<4}")).unwrap_or_else(|| " ".repeat(9));
            writeln!(out, "{}  {task} {:<20} {}", e.at, e.kind, one_line(&e.text, 160))?;
        }
        *last = Some(e.at.clone());
    }
    out.flush()?;
    Ok(())
}
