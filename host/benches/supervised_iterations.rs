//! Supervised iterations per second through the whole loop as `obra run` drives it: the built-in `replay`
//! agent (WASM, writing one file per iteration), the `response-format` gate and the `low-confidence` and
//! `max-iterations` rules (WASM), no LLM, a SQLite store, in a git repository of 20 files. Measured with
//! checkpoints on (the default: a git2 snapshot before each agent run) and off.
//!
//! Run: `cargo bench -p obra --bench supervised_iterations`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use obra::engine::events::Silent;
use obra::orchestrator::{OpenOptions, Orchestrator, RunOptions};
use obra::state::{NewTask, TaskStatus};

const TASKS: usize = 150;
const WARM_UP: usize = 10;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").current_dir(dir).args(args).status().expect("git runs");
    assert!(status.success(), "git {args:?}");
}

async fn measure(checkpoints: bool, cache: &Path) -> (Duration, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    std::fs::create_dir_all(root.join("src")).unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("src/file{i}.rs")), format!("// file {i}\n")).unwrap();
    }
    git(root, &["add", "."]);
    git(root, &["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]);
    let options = OpenOptions::in_dir(root);
    drop(Orchestrator::init(options.clone(), Some("bench".into())).await.unwrap());
    std::fs::write(
        root.join(".obra/config.yaml"),
        format!(
            r#"agent:
  plugin: replay
llm:
  provider: none
engine:
  checkpoints: {checkpoints}
agents:
  replay:
    past_end: repeat-last
    recording:
      version: 1
      iterations:
        - writes: [{{ path: out.txt, content: "done\n" }}]
          result: {{ outcome: success, summary: "Wrote out.txt.", turns: 1, duration_ms: 1, exit_code: 0 }}
gates:
  - plugin: response-format
rules:
  - plugin: low-confidence
  - plugin: max-iterations
plugins:
  cache_dir: {cache:?}
"#
        ),
    )
    .unwrap();
    let obra = Orchestrator::open(options).await.unwrap();
    let mut per_task = Vec::with_capacity(TASKS);
    let mut total = Duration::ZERO;
    for i in 0..TASKS + WARM_UP {
        let task = obra
            .create_task(NewTask {
                project_id: obra.project().id,
                title: format!("task {i}"),
                description: "bench".into(),
                priority: 5,
                depends_on: vec![],
                max_iterations: None,
                profile: None,
            })
            .await
            .unwrap();
        // Each task changes out.txt, so every iteration has a real file change to record and score.
        std::fs::write(root.join("out.txt"), format!("before {i}\n")).unwrap();
        let started = Instant::now();
        let summary =
            obra.run_project(&RunOptions { max_tasks: Some(1), ..Default::default() }, Arc::new(Silent)).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(summary.executions.len(), 1);
        assert_eq!(summary.executions[0].status, TaskStatus::Completed, "{:?}", summary.executions[0]);
        assert_eq!(summary.executions[0].task_id, task.id);
        if i >= WARM_UP {
            per_task.push(elapsed);
            total += elapsed;
        }
    }
    (total, per_task)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        for checkpoints in [true, false] {
            let (total, mut samples) = measure(checkpoints, cache.path()).await;
            let label = format!(
                "supervised iteration, replay agent + response-format gate + 2 rules (WASM), checkpoints {}",
                if checkpoints { "on" } else { "off" }
            );
            support::report(&label, &mut samples, 2);
            support::value(
                &format!("supervised iterations per second, checkpoints {}", if checkpoints { "on" } else { "off" }),
                "per s",
                TASKS as f64 / total.as_secs_f64(),
            );
        }
    });
}
