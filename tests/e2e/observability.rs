//! The production log: JSON Lines with the loop's events, run and session ids on every line, redaction of
//! secrets and personal data in the log and in what the store keeps, size-based rotation, and `obra logs`
//! filtering by event, task, run and time, and following.

mod common;

use std::io::BufRead;

use common::{Project, text};
use serde_json::Value;

const SECRET: &str = "sk-ant-api03-Zq9Xv8Wt7Us6Rp5Qo4Nm3Lk2Jh1Gf0";
const EMAIL: &str = "ada.lovelace@example.org";

/// A project with the echo agent in `mirror` mode (its output is the prompt, secrets included).
fn project(extra: &str) -> Project {
    let project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(&format!("{config}agents:\n  echo-agent:\n    mode: mirror\n{extra}"));
    project
}

fn log_lines(project: &Project, file: &str) -> Vec<Value> {
    std::fs::read_to_string(project.path().join(".obra/logs").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_run_writes_its_events_with_ids_and_secrets_are_redacted_in_the_log_and_the_store() {
    let project = project("");
    let id = project.create_task("Deploy", &format!("Use the key {SECRET} and tell {EMAIL} at 10.1.2.3"));
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let lines = log_lines(&project, "obra.jsonl");
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    for event in [
        "user_input",
        "run_started",
        "task_started",
        "iteration_started",
        "execution_result",
        "quality",
        "decision",
        "task_finished",
        "run_finished",
    ] {
        assert!(events.contains(&event), "{event} in {events:?}");
    }
    assert!(lines.iter().all(|l| l["ts"].is_string() && l["run_id"].is_string()), "{lines:?}");
    let run_ids: std::collections::BTreeSet<&str> =
        lines.iter().filter(|l| l["event"] != "user_input").map(|l| l["run_id"].as_str().unwrap()).collect();
    assert_eq!(run_ids.len(), 1, "one run id for the whole `obra run`: {run_ids:?}");
    let result = lines.iter().find(|l| l["event"] == "execution_result").unwrap();
    assert_eq!(result["task_id"], id);
    assert!(result["duration_ms"].is_u64() && result["outcome"] == "success", "{result}");
    let decision = lines.iter().find(|l| l["event"] == "decision").unwrap();
    assert!(decision["confidence"].as_f64().unwrap() > 0.0 && decision["iteration_ms"].is_u64(), "{decision}");
    let quality = lines.iter().find(|l| l["event"] == "quality").unwrap();
    assert!(quality["quality"].is_number() && quality["gate"].is_string(), "{quality}");

    // Nothing secret in the log; the markers say what was there.
    let raw = std::fs::read_to_string(project.path().join(".obra/logs/obra.jsonl")).unwrap();
    for secret in [SECRET, EMAIL, "10.1.2.3"] {
        assert!(!raw.contains(secret), "{secret} leaked into the log");
    }
    assert!(raw.contains("[REDACTED:anthropic-key]") && raw.contains("[REDACTED:email]"), "{raw}");

    // Nor in what the store keeps of the prompt and the agent's output (the agent got the real text).
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let interaction = &shown["interactions"][0]["interaction"];
    for field in ["prompt", "summary"] {
        let text = interaction[field].as_str().unwrap();
        assert!(!text.contains(SECRET) && !text.contains(EMAIL), "{field}: {text}");
        assert!(text.contains("[REDACTED:anthropic-key]"), "{field}: {text}");
    }
    let result_json = interaction["result_json"].as_str().unwrap_or_default();
    assert!(!result_json.contains(SECRET), "{result_json}");
}

#[test]
fn obra_logs_filters_by_event_task_run_and_time() {
    let project = project("");
    let first = project.create_task("First", "one");
    let second = project.create_task("Second", "two");
    assert_eq!(project.obra(&["run"]).status.code(), Some(0));

    let decisions = json_lines(&project.obra(&["logs", "--event", "decision", "--json"]));
    assert_eq!(decisions.len(), 2);
    assert!(decisions.iter().all(|d| d["event"] == "decision"));
    let several = json_lines(&project.obra(&["logs", "--event", "decision,task_finished", "--json"]));
    assert_eq!(several.len(), 4);
    let of_second = json_lines(&project.obra(&["logs", "--task", &second.to_string(), "--json"]));
    assert!(!of_second.is_empty() && of_second.iter().all(|l| l["task_id"] == second), "{of_second:?}");
    let run_id = decisions[0]["run_id"].as_str().unwrap().to_string();
    let of_run = json_lines(&project.obra(&["logs", "--run", &run_id, "-n", "1000", "--json"]));
    assert!(of_run.iter().all(|l| l["run_id"] == run_id.as_str()) && of_run.len() > 4);
    assert!(json_lines(&project.obra(&["logs", "--run", "nope", "--json"])).is_empty());
    let recent = json_lines(&project.obra(&["logs", "--since", "1h", "-n", "1000", "--json"]));
    assert!(recent.len() >= of_run.len());
    assert!(json_lines(&project.obra(&["logs", "--until", "2000-01-01T00:00:00Z", "--json"])).is_empty());
    let limited = json_lines(&project.obra(&["logs", "-n", "3", "--json"]));
    assert_eq!(limited.len(), 3);
    assert_eq!(limited[2]["event"], "run_finished", "the last N, in order");

    let human = project.obra(&["logs", "--task", &first.to_string()]);
    let said = String::from_utf8_lossy(&human.stdout);
    assert!(said.contains("execution_result") && said.contains("success in"), "{said}");

    // `obra run`'s run_finished gives its executions.
    let finished = project.obra(&["logs", "--event", "run_finished"]);
    let said = String::from_utf8_lossy(&finished.stdout);
    assert!(said.contains("2 execution(s): 2 completed, 0 paused, 0 failed; no task is ready"), "{said}");

    // A mistyped event is refused with the closest one and every known one.
    let typo = project.obra(&["logs", "--event", "decison"]);
    assert_eq!(typo.status.code(), Some(2), "{}", text(&typo));
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(said.contains("'decision'"), "the closest is suggested: {said}");
    assert!(
        said.contains("run_started") && said.contains("execution_result") && said.contains("policy_refused"),
        "{said}"
    );

    // `obra task execute`'s run_finished names how the task ended, not "null execution(s)".
    let third = project.create_task("Third", "three");
    assert_eq!(project.obra(&["task", "execute", &third.to_string()]).status.code(), Some(0));
    let finished = project.obra(&["logs", "--event", "run_finished", "-n", "1"]);
    let said = String::from_utf8_lossy(&finished.stdout);
    assert!(said.contains(&format!("task {third}")) && said.contains("task completed"), "{said}");
    assert!(!said.contains("null"), "{said}");

    let bad = project.obra(&["logs", "--since", "yesterday-ish"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("neither a time") && text(&bad).contains("30m"), "{}", text(&bad));
}

#[test]
fn the_log_rotates_by_size_and_obra_logs_reads_across_the_files() {
    let project = project("logging:\n  max_bytes: 4096\n  keep: 3\n");
    for i in 0..6 {
        project.create_task(&format!("Task {i}"), &"a long description ".repeat(20));
    }
    assert_eq!(project.obra(&["run"]).status.code(), Some(0));
    let dir = project.path().join(".obra/logs");
    assert!(dir.join("obra.1.jsonl").exists(), "rotated at 4096 bytes");
    assert!(!dir.join("obra.4.jsonl").exists(), "at most `keep` rotated files");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let size = entry.unwrap().metadata().unwrap().len();
        assert!(size <= 4096, "{size}");
    }
    let all = json_lines(&project.obra(&["logs", "-n", "100000", "--json"]));
    let stamps: Vec<&str> = all.iter().map(|l| l["ts"].as_str().unwrap()).collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted, "oldest file first, each in order");
    assert_eq!(all.last().unwrap()["event"], "run_finished");
}

#[test]
fn obra_logs_follow_prints_events_as_they_are_written() {
    let project = project("");
    project.create_task("Before", "x");
    let mut follower = project
        .command(&["logs", "--follow", "--json", "--event", "user_input"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start obra logs --follow");
    let pid = follower.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = std::process::Command::new("kill").arg(&pid).status();
    });
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["title"], "Before");
    let id = project.create_task("After", "y");
    let next: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert_eq!((next["action"].as_str(), next["task_id"].as_i64()), (Some("task_created"), Some(id)), "{next}");
}

#[test]
fn with_logging_off_nothing_is_written_and_obra_logs_says_how_to_turn_it_on() {
    let project = project("logging:\n  production: false\n");
    project.create_task("Quiet", "x");
    assert_eq!(project.obra(&["run"]).status.code(), Some(0));
    assert!(!project.path().join(".obra/logs").exists());
    let out = project.obra(&["logs"]);
    assert!(out.status.success());
    assert!(text(&out).contains("logging.production is off") && text(&out).contains("--activity"), "{}", text(&out));
}

#[test]
fn obra_report_html_writes_a_self_contained_page_with_charts() {
    let project = project("");
    project.create_task("One", "x");
    project.create_task("Two", "y");
    assert_eq!(project.obra(&["run"]).status.code(), Some(0));
    let page_path = project.home().join("report.html");
    let out = project.obra(&["report", "--html", page_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("Obra report: scratch"), "{page}");
    for section in ["Tasks by status", "Decisions", "Breakpoints by rule", "Confidence calibration", "Usage by agent"] {
        assert!(page.contains(section), "{section}");
    }
    assert!(page.matches("<svg").count() >= 3, "charts are inline SVG");
    assert!(!page.contains("<script") && !page.contains("src=\"http"), "self-contained, no scripts");

    let both = project.obra(&["report", "--html", "x.html", "--json"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    let nowhere = project.obra(&["report", "--html", "/nonexistent-dir/r.html"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(text(&nowhere).contains("cannot write the HTML report to /nonexistent-dir/r.html"), "{}", text(&nowhere));
}
