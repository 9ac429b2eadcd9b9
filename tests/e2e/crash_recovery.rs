//! `obra run` killed with SIGKILL at random points (seeded, so a failure replays) over a backlog of tasks,
//! restarted each time: in the end every task is completed exactly once, every interaction is finished or
//! marked interrupted (none left running, none duplicated), every decision belongs to its own finished
//! interaction, and every finished agent run has its file change recorded exactly once. The agent is a
//! script run by the `command` agent that works for a moment and writes a file unique to the run, so kills
//! land before, during and after agent runs, gates and decisions.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Project, text};
use serde_json::Value;

/// Tasks in the backlog.
const TASKS: i64 = 10;
/// Kills before the run is let finish.
const KILLS: usize = 14;

/// xorshift64*: the kill delays, reproducible from `OBRA_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn project() -> Project {
    let mut project = Project::new();
    let bin = project.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Works for 0.1-0.3 s, then writes out/task-<id>.txt with this run's pid, so every run changes the file.
    // A token unique to the run (not `$$`: the agent runs in a PID namespace of its own, where every run's
    // shell has the same small pid).
    let script = "#!/bin/sh\nrun=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')\nsleep 0.$((1 + run % 3))\n\
                  mkdir -p out\necho \"task $1 by run $run\" > out/task-$1.txt\necho \"wrote out/task-$1.txt\"\n";
    std::fs::write(bin.join("worker"), script).unwrap();
    std::fs::set_permissions(bin.join("worker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    project.set_env("PATH", &path);
    project.write_config(
        r#"agent:
  plugin: command
  timeout_secs: 30
agents:
  command:
    program: worker
    args: ["{task_id}", "{prompt}"]
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
  - plugin: tests
    config:
      command: "sleep 0.1; ls out/task-*.txt > /dev/null"
plugins:
  grants:
    command:
      commands: [{ program: worker, args: ["**"] }]
      env: [PATH]
"#,
    );
    project
}

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing_and_the_run_resumes() {
    let seed: u64 = std::env::var("OBRA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0B5A_2026);
    let mut rng = Rng(seed | 1);
    let project = project();
    for i in 1..=TASKS {
        project.create_task(&format!("Task {i}"), "write your file");
    }

    let mut kills = 0;
    let mut delays = Vec::new();
    while kills < KILLS {
        let mut run = project.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let delay = Duration::from_millis(150 + rng.below(1500));
        delays.push(delay.as_millis());
        let deadline = Instant::now() + delay;
        let mut finished = None;
        while Instant::now() < deadline {
            if let Some(status) = run.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match finished {
            Some(status) => {
                let out = run.wait_with_output().unwrap();
                assert!(status.success(), "a run between kills failed (seed {seed}): {}", text(&out));
                break; // everything is done before the next kill
            }
            None => {
                run.kill().unwrap(); // SIGKILL
                run.wait().unwrap();
                kills += 1;
            }
        }
    }

    // The last run, unkilled, finishes the backlog.
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "seed {seed}, kills after {delays:?} ms: {}", text(&out));

    let mut seen_interactions = HashSet::new();
    for id in 1..=TASKS {
        let shown = show(&project, id);
        let context = format!("task {id}, seed {seed}, kills after {delays:?} ms: {shown}");
        assert_eq!(shown["task"]["status"], "completed", "{context}");
        let content = std::fs::read_to_string(project.path().join(format!("out/task-{id}.txt"))).unwrap();
        assert!(content.starts_with(&format!("task {id} by run ")), "{context}");

        let mut decided = 0;
        for entry in shown["interactions"].as_array().unwrap() {
            let interaction = &entry["interaction"];
            let interaction_id = interaction["id"].as_i64().unwrap();
            assert!(seen_interactions.insert(interaction_id), "interaction {interaction_id} listed twice: {context}");
            let status = interaction["status"].as_str().unwrap();
            let changes = entry["changes"].as_array().unwrap();
            match status {
                "finished" => {
                    // The agent ran to its end: its one file change is recorded once.
                    let paths: Vec<&str> = changes.iter().map(|c| c["path"].as_str().unwrap()).collect();
                    assert_eq!(paths, [format!("out/task-{id}.txt")], "interaction {interaction_id}: {context}");
                }
                "interrupted" => {
                    assert!(changes.is_empty(), "an interrupted run stored no changes: {context}");
                    assert!(entry["decision"].is_null(), "no decision on an interrupted run: {context}");
                }
                other => panic!("interaction {interaction_id} is {other} after the runs ended: {context}"),
            }
            if !entry["decision"].is_null() {
                assert_eq!(status, "finished", "{context}");
                decided += 1;
            }
        }
        assert_eq!(decided, 1, "exactly one decision completed the task: {context}");
        let last = shown["interactions"].as_array().unwrap().iter().rev().find(|e| !e["decision"].is_null()).unwrap();
        assert_eq!(last["decision"]["action"], "proceed", "{context}");
    }
    // The kills did land: at least one run was interrupted somewhere.
    let interrupted = (1..=TASKS)
        .flat_map(|id| show(&project, id)["interactions"].as_array().unwrap().clone())
        .filter(|e| e["interaction"]["status"] == "interrupted")
        .count();
    assert!(kills > 0 && interrupted > 0, "kills {kills}, interrupted runs {interrupted}, delays {delays:?}");
}
