//! Wall-clock time of `obra task list` as a user runs it, over a project with 10,000 tasks: a new process
//! that opens the project, the configuration and the store, and prints every task (text and `--json`). No
//! plugin is loaded by this command.
//!
//! Run: `cargo bench -p obra --bench cli_task_list` (prints median and p95 of each).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use obra::state::{NewTask, StateManager};

mod support;

const TASKS: usize = 10_000;

fn task_list(project: &Path, home: &Path, json: bool) -> Duration {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_obra"));
    cmd.args(["task", "list"]).current_dir(project).env("HOME", home).env("XDG_CONFIG_HOME", home.join(".config"));
    cmd.env("XDG_DATA_HOME", home.join(".local/share")).env("XDG_STATE_HOME", home.join(".local/state"));
    if json {
        cmd.arg("--json");
    }
    let started = Instant::now();
    let out = cmd.output().expect("run obra");
    let elapsed = started.elapsed();
    assert!(out.status.success(), "obra task list failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    assert!(lines >= TASKS, "every task was printed ({lines} lines)");
    elapsed
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let init = Command::new(env!("CARGO_BIN_EXE_obra"))
        .args(["init", "--name", "bench"])
        .current_dir(&project)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let state = StateManager::open(&project.join(".obra/obra.db")).await.unwrap();
        let project_id = state.projects().await.unwrap()[0].id;
        for i in 0..TASKS {
            let depends_on = if i > 0 && i % 10 == 0 { vec![i as i64] } else { vec![] };
            state
                .create_task(&NewTask {
                    project_id,
                    title: format!("task number {i} of the benchmark backlog"),
                    description: "a description of moderate length, as a user would write one for an agent".into(),
                    priority: (i % 10) as i64 + 1,
                    depends_on,
                    max_iterations: None,
                    profile: None,
                })
                .await
                .unwrap();
        }
    });

    task_list(&project, &home, false); // warm the page cache
    let mut text: Vec<Duration> = (0..20).map(|_| task_list(&project, &home, false)).collect();
    let mut json: Vec<Duration> = (0..20).map(|_| task_list(&project, &home, true)).collect();
    support::report(&format!("obra task list, {TASKS} tasks, text"), &mut text, 1);
    support::report(&format!("obra task list, {TASKS} tasks, --json"), &mut json, 1);
}
