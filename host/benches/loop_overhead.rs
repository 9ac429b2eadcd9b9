//! The supervision loop's own overhead per iteration: an agent that answers instantly (in process, no WASM),
//! no gates, no rules, no LLM, a real SQLite file in WAL mode. What remains is prompt rendering, the change
//! tracker's two takes (its flush round trips; the tracker is kept between runs, ADR 30), the decision and the
//! store reads and writes of one iteration.
//!
//! Run: `cargo bench -p obra --bench loop_overhead` (prints median and p95 per iteration). Checkpoints are off
//! (the workspace is not a git repository); `BENCH_CHECKPOINTS=1` turns the (then no-op) check on.

use std::sync::Arc;
use std::time::Instant;

mod support;

use obra::config::Config;
use obra::contract::{Agent, CallContext, Outcome, PluginError, RunRequest, RunResult, Usage};
use obra::engine::{Engine, LoopPlugins, events::Silent};
use obra::state::{NewProject, NewTask, StateManager, TaskStatus};

struct InstantAgent;

#[async_trait::async_trait]
impl Agent for InstantAgent {
    fn name(&self) -> &str {
        "instant"
    }

    async fn health(&self, _: &CallContext, _: &str) -> Result<String, PluginError> {
        Ok("instant".into())
    }

    async fn run(&self, _: &CallContext, request: &RunRequest) -> Result<RunResult, PluginError> {
        Ok(RunResult {
            outcome: Outcome::Success,
            summary: format!("did task {}", request.task.id),
            session_id: None,
            turns: 1,
            usage: Usage::default(),
            duration_ms: 0,
            api_status: None,
            retry_after_ms: None,
            permission_denials: vec![],
            failed_actions: vec![],
            exit_code: Some(0),
        })
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(workspace.join("src")).unwrap();
        for i in 0..20 {
            std::fs::write(workspace.join(format!("src/file{i}.rs")), format!("// file {i}\n")).unwrap();
        }
        let state = StateManager::open(&dir.path().join("obra.db")).await.unwrap();
        let project = state
            .create_project(&NewProject {
                name: "bench".into(),
                workspace: workspace.clone(),
                description: String::new(),
                profile: None,
            })
            .await
            .unwrap();
        let mut config = Config::default();
        config.llm.provider = "none".into();
        config.engine.max_iterations = 1;
        config.engine.checkpoints = std::env::var("BENCH_CHECKPOINTS").is_ok();
        let plugins = LoopPlugins { agent: Arc::new(InstantAgent), llm: None, gates: vec![], rules: vec![] };
        let engine = Engine::new(config, state.clone(), plugins, workspace, Arc::new(Silent));

        let iterations = 300;
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + 20 {
            let task = state
                .create_task(&NewTask {
                    project_id: project.id,
                    title: format!("task {i}"),
                    description: "bench".into(),
                    priority: 5,
                    depends_on: vec![],
                    max_iterations: None,
                    profile: None,
                })
                .await
                .unwrap();
            let started = Instant::now();
            let outcome = engine.execute_task(task.id).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(outcome.status, TaskStatus::Completed);
            if i >= 20 {
                samples.push(elapsed); // the first 20 warm the caches
            }
        }
        support::report("loop overhead per iteration (instant agent, SQLite WAL, 20-file workspace)", &mut samples, 3);
    });
}
