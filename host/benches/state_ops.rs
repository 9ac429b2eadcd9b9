//! Latency of the store's everyday operations, on SQLite (a file in WAL mode) and, when
//! `OBRA_TEST_POSTGRES_URL` names a server, on a fresh PostgreSQL database: create, read and update a task,
//! begin and finish an interaction (with two file changes and an agent session), and `list_tasks` over a
//! project of 10,000 tasks (what `obra task list` runs).
//!
//! Run: `cargo bench -p obra --bench state_ops` (prints median and p95 of each).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use obra::contract::{ChangeKind, FileChange, Outcome, RunResult, Usage};
use obra::state::{NewProject, NewTask, StateManager, TaskFilter, TaskUpdate};
use obra_testkit::postgres::TestDatabase;

mod support;

const SAMPLES: usize = 500;
const LIST_SIZE: usize = 10_000;

fn new_task(project_id: i64, i: usize) -> NewTask {
    NewTask {
        project_id,
        title: format!("task {i}"),
        description: "benchmark task with a short description".into(),
        priority: (i % 10) as i64 + 1,
        depends_on: vec![],
        max_iterations: None,
        profile: None,
    }
}

async fn project(state: &StateManager, name: &str) -> i64 {
    let new =
        NewProject { name: name.into(), workspace: PathBuf::from("/ws"), description: String::new(), profile: None };
    state.create_project(&new).await.unwrap().id
}

async fn suite(backend: &str, state: &StateManager) {
    let p = project(state, "bench").await;
    let (mut create, mut read, mut update, mut begin, mut finish) = (vec![], vec![], vec![], vec![], vec![]);
    let result = RunResult {
        outcome: Outcome::Success,
        summary: "done".into(),
        session_id: Some("session-1".into()),
        turns: 3,
        usage: Usage { input_tokens: 1000, output_tokens: 200, cost_usd: Some(0.01), ..Default::default() },
        duration_ms: 5,
        api_status: None,
        retry_after_ms: None,
        permission_denials: vec![],
        failed_actions: vec![],
        exit_code: Some(0),
    };
    let changes = vec![
        FileChange { path: "src/lib.rs".into(), kind: ChangeKind::Modified, size: Some(1200) },
        FileChange { path: "src/new.rs".into(), kind: ChangeKind::Created, size: Some(300) },
    ];
    for i in 0..SAMPLES + 20 {
        let warm = i >= 20;
        let started = Instant::now();
        let task = state.create_task(&new_task(p, i)).await.unwrap();
        let t_create = started.elapsed();
        let started = Instant::now();
        state.require_task(task.id).await.unwrap();
        let t_read = started.elapsed();
        let started = Instant::now();
        state.update_task(task.id, &TaskUpdate { priority: Some(7), ..TaskUpdate::default() }).await.unwrap();
        let t_update = started.elapsed();
        let started = Instant::now();
        let interaction = state.begin_interaction(task.id, 1, "bench", "a prompt of modest length").await.unwrap();
        let t_begin = started.elapsed();
        let started = Instant::now();
        state.finish_interaction(interaction, Ok(&result), &changes, Duration::from_millis(5)).await.unwrap();
        let t_finish = started.elapsed();
        if warm {
            create.push(t_create);
            read.push(t_read);
            update.push(t_update);
            begin.push(t_begin);
            finish.push(t_finish);
        }
    }
    support::report(&format!("{backend} create_task"), &mut create, 3);
    support::report(&format!("{backend} task (read)"), &mut read, 3);
    support::report(&format!("{backend} update_task"), &mut update, 3);
    support::report(&format!("{backend} begin_interaction"), &mut begin, 3);
    support::report(&format!("{backend} finish_interaction"), &mut finish, 3);

    let big = project(state, "big").await;
    for i in 0..LIST_SIZE {
        state.create_task(&new_task(big, i)).await.unwrap();
    }
    let filter = TaskFilter { project_id: big, ..TaskFilter::default() };
    let mut list = vec![];
    for i in 0..25 {
        let started = Instant::now();
        let tasks = state.list_tasks(&filter).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(tasks.len(), LIST_SIZE);
        if i >= 5 {
            list.push(elapsed);
        }
    }
    support::report(&format!("{backend} list_tasks over {LIST_SIZE} tasks"), &mut list, 1);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = StateManager::open(&dir.path().join("obra.db")).await.unwrap();
        suite("sqlite", &state).await;
        match TestDatabase::create().await {
            Some(pg) => {
                let state = StateManager::connect(pg.url()).await.unwrap();
                suite("postgres", &state).await;
                drop(state);
                pg.cleanup().await;
            }
            None => println!("postgres: skipped (set OBRA_TEST_POSTGRES_URL to measure it)"),
        }
    });
}
