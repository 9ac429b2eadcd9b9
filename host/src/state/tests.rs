//! The store's tests. Every test in `on_both!` runs twice: on a SQLite file and on a fresh PostgreSQL database
//! (from `OBRA_TEST_POSTGRES_URL`; see obra_testkit::postgres — skipped with a note locally when unset, a
//! failure under CI=true).

use std::path::PathBuf;

use obra_testkit::postgres::TestDatabase;

use super::*;
use crate::contract::{ChangeKind, Outcome, Usage};

mod strict;

/// A store under test and what it takes to open it again.
struct Db {
    state: StateManager,
    target: Target,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    async fn reopen(&self) -> Result<StateManager> {
        match &self.target {
            Target::Sqlite(path) => StateManager::open(path).await,
            Target::Postgres(url) => StateManager::connect(url).await,
        }
    }
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("obra.db");
    let state = StateManager::open(&path).await.unwrap();
    Db { state, target: Target::Sqlite(path), _dir: Some(dir), _pg: None }
}

async fn postgres_db() -> Option<Db> {
    let pg = TestDatabase::create().await?;
    let state = StateManager::connect(pg.url()).await.unwrap();
    assert_eq!(state.backend(), Backend::Postgres);
    Some(Db { state, target: Target::Postgres(pg.url().to_string()), _dir: None, _pg: Some(pg) })
}

/// For each named `async fn name(db: Db)`, a module `name` with a `sqlite` and a `postgres` test.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::sqlite_db().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = super::postgres_db().await {
                    super::$name(db).await;
                }
            }
        }
    )*};
}

on_both!(
    creates_projects_and_tasks_with_dependencies,
    missing_task_error_says_where_to_look,
    an_iteration_is_recorded_from_prompt_to_breakpoint,
    a_failed_transaction_leaves_nothing_behind,
    refuses_a_database_from_a_newer_obra_and_changes_nothing,
    plugin_kv_round_trips,
    no_loop_write_brings_a_cancelled_task_back,
    plugin_kv_total_quota_is_checked_in_the_write,
    resolving_a_breakpoint_moves_the_task_and_keeps_the_feedback,
    sessions_add_up_over_interactions,
    update_task_rejects_bad_dependencies_and_cycles,
    concurrent_dependency_edits_never_close_a_cycle,
    cancel_and_retry,
    list_tasks_filters_and_orders,
    ready_tasks_wait_for_their_dependencies,
    git_metadata_is_kept,
    checkpoints_are_recorded_and_rolled_back,
    activity_is_a_timeline,
    decision_outcomes_feed_calibration_and_the_report,
    a_failure_blocks_dependents_in_its_transaction_and_a_retry_unblocks_them,
    dependency_depth_is_limited_and_a_refused_change_changes_nothing,
    a_killed_iteration_is_recovered_as_interrupted_with_its_session_kept,
    a_rate_limited_task_waits_with_its_session_until_its_next_iteration,
    a_backlog_is_created_whole_or_not_at_all,
);

fn new_project(name: &str) -> NewProject {
    NewProject { name: name.into(), workspace: PathBuf::from("/tmp/ws"), description: String::new(), profile: None }
}

fn new_task(project_id: i64, title: &str) -> NewTask {
    NewTask {
        project_id,
        title: title.into(),
        description: "do it".into(),
        priority: 5,
        depends_on: vec![],
        max_iterations: None,
        profile: None,
    }
}

fn result(outcome: Outcome) -> RunResult {
    RunResult {
        outcome,
        summary: "done".into(),
        session_id: Some("s-1".into()),
        turns: 3,
        usage: Usage { input_tokens: 10, output_tokens: 20, cost_usd: Some(0.01), ..Default::default() },
        duration_ms: 5,
        api_status: None,
        retry_after_ms: None,
        permission_denials: vec![],
        exit_code: Some(0),
        failed_actions: vec![],
    }
}

fn decision(action: Action, explanation: &str) -> DecisionRecord {
    DecisionRecord {
        action,
        confidence: 0.4,
        heuristic_score: 0.4,
        llm_score: None,
        llm_reasoning: None,
        explanation: explanation.into(),
        verified_by: String::new(),
    }
}

/// Open a breakpoint on a task through a real iteration; returns its id.
async fn pause(state: &StateManager, task_id: i64) -> i64 {
    let i = state.begin_interaction(task_id, 1, "replay", "p").await.unwrap();
    state
        .conclude_iteration(&IterationRecord {
            task_id,
            interaction_id: i,
            gates: &[],
            decision: &decision(Action::Escalate, "bad"),
            task_status: TaskStatus::Paused,
            status_reason: None,
            session_id: None,
            breakpoint: Some(("decision".into(), "bad".into())),
        })
        .await
        .unwrap()
        .unwrap()
}

async fn creates_projects_and_tasks_with_dependencies(db: Db) {
    let state = &db.state;
    assert_eq!(state.schema_level().await.unwrap(), 5);
    let p = state
        .create_project(&NewProject {
            description: "a demo".into(),
            profile: Some("fast".into()),
            ..new_project("demo")
        })
        .await
        .unwrap();
    assert_eq!((p.description.as_str(), p.profile.as_deref()), ("a demo", Some("fast")));
    assert!(state.create_project(&new_project("demo")).await.is_err(), "names are unique");
    assert!(state.create_project(&new_project(" ")).await.is_err());
    assert_eq!(state.project_by_ref(&p.id.to_string()).await.unwrap().unwrap().name, "demo");
    assert_eq!(state.project_by_ref("demo").await.unwrap().unwrap().id, p.id);
    assert!(state.project_by_ref("nope").await.unwrap().is_none());
    state.set_project_profile(p.id, None).await.unwrap();
    assert_eq!(state.project(p.id).await.unwrap().unwrap().profile, None);
    assert!(state.set_project_profile(999, Some("x")).await.is_err());

    let a = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let mut b = new_task(p.id, "b");
    b.depends_on = vec![a.id];
    b.profile = Some("careful".into());
    let b = state.create_task(&b).await.unwrap();
    assert_eq!(b.dependencies(), vec![a.id]);
    assert_eq!(b.profile.as_deref(), Some("careful"));
    let mut bad = new_task(p.id, "c");
    bad.depends_on = vec![999];
    let err = state.create_task(&bad).await.unwrap_err().to_string();
    assert!(err.contains("task 999") && err.contains("does not exist"), "{err}");
    assert!(state.create_task(&new_task(p.id, "  ")).await.is_err());
    assert_eq!(state.tasks(p.id).await.unwrap().len(), 2);
    assert_eq!(state.projects().await.unwrap().len(), 1);
}

async fn missing_task_error_says_where_to_look(db: Db) {
    let err = db.state.require_task(42).await.unwrap_err().to_string();
    assert!(err.contains("task 42 does not exist") && err.contains("obra status"), "{err}");
}

async fn an_iteration_is_recorded_from_prompt_to_breakpoint(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "the prompt").await.unwrap();
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!((task.status(), task.attempts), (TaskStatus::Running, 1));
    let changes = vec![
        FileChange { path: "a.txt".into(), kind: ChangeKind::Created, size: Some(3) },
        FileChange { path: "old.txt".into(), kind: ChangeKind::Deleted, size: None },
    ];
    state.finish_interaction(i, Ok(&result(Outcome::Success)), &changes, Duration::from_millis(7)).await.unwrap();
    let gates = vec![GateRecord {
        gate: "tests".into(),
        passed: false,
        score: 0.0,
        summary: "1 failed".into(),
        findings: vec![],
        error: None,
        duration_ms: 3,
    }];
    let bp = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: i,
            gates: &gates,
            decision: &decision(Action::Escalate, "tests failed"),
            task_status: TaskStatus::Paused,
            status_reason: Some("low confidence"),
            session_id: Some("s-1"),
            breakpoint: Some(("low-confidence".into(), "0.40 < 0.65".into())),
        })
        .await
        .unwrap();
    assert!(bp.is_some());
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!(task.status(), TaskStatus::Paused);
    assert_eq!(task.session_id.as_deref(), Some("s-1"));
    let inter = &state.interactions(t.id).await.unwrap()[0];
    assert_eq!(inter.outcome.as_deref(), Some("success"));
    assert_eq!((inter.input_tokens, inter.cost_usd), (Some(10), Some(0.01)));
    let rows = state.file_changes(i).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].path.as_str(), rows[0].kind.as_str(), rows[0].size), ("a.txt", "created", Some(3)));
    assert_eq!((rows[1].kind.as_str(), rows[1].size, rows[1].hash_after.as_deref()), ("deleted", None, None));
    let gate_rows = state.gate_results(i).await.unwrap();
    assert_eq!(gate_rows.len(), 1);
    assert!(!gate_rows[0].passed);
    assert_eq!(state.decision(i).await.unwrap().unwrap().action, "escalate");
    assert_eq!(state.breakpoints(p.id, true).await.unwrap().len(), 1);
    assert_eq!(state.task_counts(p.id).await.unwrap(), vec![("paused".to_string(), 1)]);
    assert!(state.finish_interaction(999, Err("x"), &[], Duration::ZERO).await.is_err());
}

async fn a_failed_transaction_leaves_nothing_behind(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let gates = vec![GateRecord {
        gate: "tests".into(),
        passed: true,
        score: 1.0,
        summary: "ok".into(),
        findings: vec![],
        error: None,
        duration_ms: 1,
    }];
    // Interaction 999 does not exist: the foreign key fails half way, and the gate rows must not remain.
    let err = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: 999,
            gates: &gates,
            decision: &decision(Action::Proceed, "fine"),
            task_status: TaskStatus::Completed,
            status_reason: None,
            session_id: None,
            breakpoint: None,
        })
        .await;
    assert!(err.is_err());
    assert_eq!(state.require_task(t.id).await.unwrap().status(), TaskStatus::Pending);
    assert!(state.gate_results(999).await.unwrap().is_empty());
}

async fn refuses_a_database_from_a_newer_obra_and_changes_nothing(db: Db) {
    let p = db.state.create_project(&new_project("demo")).await.unwrap();
    db.state.create_task(&new_task(p.id, "a")).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, $1, 0)",
    )
    .bind(vec![0u8])
    .execute(&db.state.pool)
    .await
    .unwrap();
    db.state.pool.close().await;
    let err = format!("{:#}", db.reopen().await.unwrap_err());
    assert!(err.contains("newer Obra") && err.contains("9999") && err.contains("Nothing was changed"), "{err}");
    assert!(!err.contains(":obra@"), "no password in {err}");
    // Still readable by a tolerant reader: the rows are there, and no migration was added or removed.
    let pool = match &db.target {
        Target::Sqlite(path) => sqlx::AnyPool::connect(&format!("sqlite://{}", path.display())).await.unwrap(),
        Target::Postgres(url) => sqlx::AnyPool::connect(url).await.unwrap(),
    };
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_as::<_, (i64,)>(sql).fetch_one(&pool).await.unwrap().0 }
    };
    assert_eq!(count("SELECT COUNT(*) FROM projects").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM tasks").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM _sqlx_migrations").await, 6);
    pool.close().await;
}

async fn plugin_kv_round_trips(db: Db) {
    let state = &db.state;
    assert_eq!(state.get("p", "k").await.unwrap(), None);
    assert_eq!(state.set("p", "k", b"v1", u64::MAX).await.unwrap(), KvWrite::Stored);
    assert_eq!(state.set("p", "k", b"v2\0\xff", u64::MAX).await.unwrap(), KvWrite::Stored);
    assert_eq!(state.get("p", "k").await.unwrap().as_deref(), Some(&b"v2\0\xff"[..]));
    assert_eq!(state.get("other", "k").await.unwrap(), None);
    state.delete("p", "k").await.unwrap();
    assert_eq!(state.get("p", "k").await.unwrap(), None);
}

async fn no_loop_write_brings_a_cancelled_task_back(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    state.cancel_task(t.id, "stop").await.unwrap();
    let conclude = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: i,
            gates: &[],
            decision: &decision(Action::Escalate, "bad"),
            task_status: TaskStatus::Paused,
            status_reason: None,
            session_id: None,
            breakpoint: Some(("decision".into(), "bad".into())),
        })
        .await
        .unwrap_err();
    assert!(TaskCancelled::is(&conclude), "{conclude:#}");
    let next = state.begin_interaction(t.id, 2, "replay", "p").await.unwrap_err();
    assert!(TaskCancelled::is(&next), "{next:#}");
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let paused = state.pause_for_rate_limit(t.id, until, "429", None).await.unwrap_err();
    assert!(TaskCancelled::is(&paused), "{paused:#}");
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!((task.status(), task.status_reason.as_deref()), (TaskStatus::Cancelled, Some("stop")));
    assert_eq!(state.open_breakpoint_of_task(t.id).await.unwrap(), None);
    assert!(state.ensure_not_cancelled(t.id).await.is_err());
    // A missing task is an error of its own, not a cancellation.
    let missing = state.begin_interaction(9999, 1, "replay", "p").await.unwrap_err();
    assert!(!TaskCancelled::is(&missing), "{missing:#}");
    // Retried by the user, it runs again.
    state.retry_task(t.id).await.unwrap();
    state.begin_interaction(t.id, 2, "replay", "p").await.unwrap();
}

async fn plugin_kv_total_quota_is_checked_in_the_write(db: Db) {
    let state = &db.state;
    let per_key = KV_BYTES_PER_KEY;
    // Room for two keys of 100 bytes.
    let max = 2 * (100 + per_key);
    assert_eq!(state.set("p", "a", &[1; 100], max).await.unwrap(), KvWrite::Stored);
    assert_eq!(state.set("p", "b", &[2; 100], max).await.unwrap(), KvWrite::Stored);
    // A third key does not fit, and nothing of it is written.
    assert_eq!(state.set("p", "c", &[3; 1], max).await.unwrap(), KvWrite::OverQuota { used: max });
    assert_eq!(state.get("p", "c").await.unwrap(), None);
    // Replacing a key counts its new value, not its old one.
    assert_eq!(state.set("p", "a", &[4; 100], max).await.unwrap(), KvWrite::Stored);
    assert_eq!(state.set("p", "a", &[5; 101], max).await.unwrap(), KvWrite::OverQuota { used: 100 + per_key });
    assert_eq!(state.get("p", "a").await.unwrap().unwrap(), vec![4; 100], "the refused write left the old value");
    // Another plugin has its own quota; deleting makes room.
    assert_eq!(state.set("other", "c", &[6; 100], max).await.unwrap(), KvWrite::Stored);
    state.delete("p", "b").await.unwrap();
    assert_eq!(state.set("p", "c", &[3; 100], max).await.unwrap(), KvWrite::Stored);
}

async fn resolving_a_breakpoint_moves_the_task_and_keeps_the_feedback(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let bp = pause(state, t.id).await;
    assert_eq!(state.open_breakpoint_of_task(t.id).await.unwrap().unwrap().id, bp);
    let resolved = state.resolve_breakpoint(bp, Resolution::Feedback("use tabs".into()), "alice").await.unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(state.require_task(t.id).await.unwrap().status(), TaskStatus::Pending);
    assert_eq!(state.latest_breakpoint_feedback(t.id).await.unwrap().as_deref(), Some("use tabs"));
    // A later breakpoint resolved another way retires the old feedback.
    let later = pause(state, t.id).await;
    state.resolve_breakpoint(later, Resolution::Approve, "bob").await.unwrap();
    assert_eq!(state.latest_breakpoint_feedback(t.id).await.unwrap(), None);
    let again = state.resolve_breakpoint(bp, Resolution::Approve, "bob").await.unwrap_err().to_string();
    assert!(again.contains("already resolved") && again.contains("alice"), "{again}");
    let missing = state.resolve_breakpoint(77, Resolution::Approve, "bob").await.unwrap_err().to_string();
    assert!(missing.contains("breakpoint 77 does not exist"), "{missing}");
}

async fn sessions_add_up_over_interactions(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    for n in 1..=2 {
        let i = state.begin_interaction(t.id, n, "claude-code", "p").await.unwrap();
        state.finish_interaction(i, Ok(&result(Outcome::Success)), &[], Duration::from_millis(1)).await.unwrap();
    }
    let i = state.begin_interaction(t.id, 3, "claude-code", "p").await.unwrap();
    state.finish_interaction(i, Err("agent crashed"), &[], Duration::from_millis(1)).await.unwrap();
    let mut other = result(Outcome::Success);
    other.session_id = Some("s-2".into());
    other.usage.cost_usd = None;
    let i = state.begin_interaction(t.id, 4, "claude-code", "p").await.unwrap();
    state.finish_interaction(i, Ok(&other), &[], Duration::from_millis(1)).await.unwrap();
    let sessions = state.sessions(t.id).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let s1 = &sessions[0];
    assert_eq!((s1.session_id.as_str(), s1.agent.as_str(), s1.interactions), ("s-1", "claude-code", 2));
    assert_eq!((s1.input_tokens, s1.output_tokens), (20, 40));
    assert!((s1.cost_usd - 0.02).abs() < 1e-9, "{}", s1.cost_usd);
    assert!(s1.last_used_at >= s1.started_at);
    assert_eq!((sessions[1].session_id.as_str(), sessions[1].interactions, sessions[1].cost_usd), ("s-2", 1, 0.0));
}

async fn update_task_rejects_bad_dependencies_and_cycles(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let other = state.create_project(&new_project("other")).await.unwrap();
    let a = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let b = state.create_task(&NewTask { depends_on: vec![a.id], ..new_task(p.id, "b") }).await.unwrap();
    let c = state.create_task(&NewTask { depends_on: vec![b.id], ..new_task(p.id, "c") }).await.unwrap();
    let foreign = state.create_task(&new_task(other.id, "x")).await.unwrap();
    let deps = |ids: Vec<i64>| TaskUpdate { depends_on: Some(ids), ..TaskUpdate::default() };

    let err = state.update_task(a.id, &deps(vec![c.id])).await.unwrap_err().to_string();
    let expected = format!(
        "task {a} cannot depend on {c}: {c} already depends on {a} ({c} → {b} → {a})",
        a = a.id,
        b = b.id,
        c = c.id
    );
    assert_eq!(err, expected);
    let err = state.update_task(a.id, &deps(vec![a.id])).await.unwrap_err().to_string();
    assert!(err.contains("cannot depend on itself"), "{err}");
    let err = state.update_task(a.id, &deps(vec![4242])).await.unwrap_err().to_string();
    assert!(err.contains("task 4242") && err.contains("does not exist"), "{err}");
    let err = state.update_task(a.id, &deps(vec![foreign.id])).await.unwrap_err().to_string();
    assert!(err.contains("another project"), "{err}");
    let err = state.update_task(9999, &TaskUpdate::default()).await.unwrap_err().to_string();
    assert!(err.contains("task 9999 does not exist"), "{err}");
    assert!(state.update_task(a.id, &TaskUpdate { title: Some(" ".into()), ..TaskUpdate::default() }).await.is_err());
    assert_eq!(state.require_task(a.id).await.unwrap(), a, "nothing changed on error");

    let updated = state
        .update_task(
            c.id,
            &TaskUpdate {
                title: Some(" c2 ".into()),
                description: Some("new".into()),
                priority: Some(9),
                depends_on: Some(vec![a.id, b.id, a.id]),
            },
        )
        .await
        .unwrap();
    assert_eq!((updated.title.as_str(), updated.description.as_str(), updated.priority), ("c2", "new", 9));
    assert_eq!(updated.dependencies(), vec![a.id, b.id]);
    let kept = state.update_task(c.id, &TaskUpdate { priority: Some(2), ..TaskUpdate::default() }).await.unwrap();
    assert_eq!((kept.title.as_str(), kept.dependencies()), ("c2", vec![a.id, b.id]));
    let cleared = state.update_task(b.id, &deps(vec![])).await.unwrap();
    assert!(cleared.dependencies().is_empty());
}

/// Pairs of tasks made to depend on each other by two edits at the same time: one of each pair is refused,
/// whatever the interleaving (on PostgreSQL the edits of a project take turns on its row).
async fn concurrent_dependency_edits_never_close_a_cycle(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let mut pairs = Vec::new();
    for i in 0..12 {
        let x = state.create_task(&new_task(p.id, &format!("x{i}"))).await.unwrap().id;
        let y = state.create_task(&new_task(p.id, &format!("y{i}"))).await.unwrap().id;
        pairs.push((x, y));
    }
    let deps = |id: i64| TaskUpdate { depends_on: Some(vec![id]), ..TaskUpdate::default() };
    let edits = pairs.iter().map(|&(x, y)| {
        let (to_y, to_x) = (deps(y), deps(x));
        async move { tokio::join!(state.update_task(x, &to_y), state.update_task(y, &to_x)) }
    });
    for (i, (first, second)) in futures_util::future::join_all(edits).await.into_iter().enumerate() {
        let refused: Vec<String> = [first, second].into_iter().filter_map(|r| r.err()).map(|e| e.to_string()).collect();
        assert_eq!(refused.len(), 1, "pair {i}: exactly one edit is refused: {refused:?}");
        assert!(refused[0].contains("already depends on"), "{}", refused[0]);
    }
    for (x, y) in pairs {
        let (x, y) = (state.require_task(x).await.unwrap(), state.require_task(y).await.unwrap());
        assert!(!(x.dependencies().contains(&y.id) && y.dependencies().contains(&x.id)), "a cycle was stored");
    }
}

async fn cancel_and_retry(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let bp = pause(state, t.id).await;
    let err = state.retry_task(t.id).await.unwrap_err().to_string();
    assert!(err.contains("is paused") && err.contains("only failed or cancelled"), "{err}");

    let cancelled = state.cancel_task(t.id, "not needed any more").await.unwrap();
    assert_eq!(
        (cancelled.status(), cancelled.status_reason.as_deref()),
        (TaskStatus::Cancelled, Some("not needed any more"))
    );
    let bp = state.breakpoint(bp).await.unwrap().unwrap();
    assert_eq!((bp.status.as_str(), bp.resolution.as_deref()), ("resolved", Some("cancelled")));
    assert!(state.open_breakpoint_of_task(t.id).await.unwrap().is_none());
    let err = state.cancel_task(t.id, "again").await.unwrap_err().to_string();
    assert!(err.contains("already cancelled") && err.contains("retry"), "{err}");

    let retried = state.retry_task(t.id).await.unwrap();
    assert_eq!((retried.status(), retried.status_reason.as_deref()), (TaskStatus::Pending, Some("retry requested")));

    state.set_task_status(t.id, TaskStatus::Failed, Some("boom")).await.unwrap();
    assert_eq!(state.retry_task(t.id).await.unwrap().status(), TaskStatus::Pending);
    state.set_task_status(t.id, TaskStatus::Completed, None).await.unwrap();
    let err = state.cancel_task(t.id, "late").await.unwrap_err().to_string();
    assert!(err.contains("already completed"), "{err}");
    assert!(state.cancel_task(999, "x").await.unwrap_err().to_string().contains("task 999 does not exist"));
    assert!(state.retry_task(999).await.unwrap_err().to_string().contains("task 999 does not exist"));
}

async fn list_tasks_filters_and_orders(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let other = state.create_project(&new_project("other")).await.unwrap();
    let mut ids = vec![];
    for (title, priority) in [("Fix login", 5), ("Add 100% coverage", 8), ("fix logout", 8), ("Docs_page", 1)] {
        ids.push(state.create_task(&NewTask { priority, ..new_task(p.id, title) }).await.unwrap().id);
    }
    state.create_task(&new_task(other.id, "fix elsewhere")).await.unwrap();
    state.set_task_status(ids[2], TaskStatus::Failed, None).await.unwrap();
    let list = |filter: TaskFilter| async move {
        state.list_tasks(&filter).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    let all = TaskFilter { project_id: p.id, ..TaskFilter::default() };
    assert_eq!(list(all.clone()).await, vec![ids[1], ids[2], ids[0], ids[3]]);
    assert_eq!(list(TaskFilter { statuses: vec![TaskStatus::Failed], ..all.clone() }).await, vec![ids[2]]);
    assert_eq!(
        list(TaskFilter { statuses: vec![TaskStatus::Pending, TaskStatus::Failed], ..all.clone() }).await.len(),
        4
    );
    assert_eq!(list(TaskFilter { min_priority: Some(6), ..all.clone() }).await, vec![ids[1], ids[2]]);
    assert_eq!(list(TaskFilter { title_contains: Some("FIX".into()), ..all.clone() }).await, vec![ids[2], ids[0]]);
    assert_eq!(list(TaskFilter { title_contains: Some("100%".into()), ..all.clone() }).await, vec![ids[1]]);
    assert_eq!(list(TaskFilter { title_contains: Some("s_p".into()), ..all.clone() }).await, vec![ids[3]]);
    assert!(list(TaskFilter { title_contains: Some("0%c".into()), ..all.clone() }).await.is_empty());
    assert!(list(TaskFilter { title_contains: Some("o_e".into()), ..all.clone() }).await.is_empty());
    assert!(list(TaskFilter { title_contains: Some("x%".into()), ..all.clone() }).await.is_empty());
    assert_eq!(list(TaskFilter { limit: Some(2), ..all.clone() }).await, vec![ids[1], ids[2]]);
    assert_eq!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Pending],
            min_priority: Some(2),
            title_contains: Some("i".into()),
            limit: Some(5),
            ..all
        })
        .await,
        vec![ids[0]]
    );
}

async fn ready_tasks_wait_for_their_dependencies(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let a = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let b = state.create_task(&NewTask { depends_on: vec![a.id], priority: 9, ..new_task(p.id, "b") }).await.unwrap();
    let c = state.create_task(&NewTask { priority: 7, ..new_task(p.id, "c") }).await.unwrap();
    let ids = |tasks: Vec<Task>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(state.ready_tasks(p.id).await.unwrap()), vec![c.id, a.id]);
    state.set_task_status(a.id, TaskStatus::Completed, None).await.unwrap();
    assert_eq!(ids(state.ready_tasks(p.id).await.unwrap()), vec![b.id, c.id]);
    state.set_task_status(c.id, TaskStatus::Running, None).await.unwrap();
    assert_eq!(ids(state.ready_tasks(p.id).await.unwrap()), vec![b.id]);
}

async fn git_metadata_is_kept(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    state.set_task_git(t.id, Some("obra/task-1"), Some("abc123"), None).await.unwrap();
    state.set_task_git(t.id, None, None, Some("def456")).await.unwrap();
    let t = state.require_task(t.id).await.unwrap();
    assert_eq!(
        (t.git_branch.as_deref(), t.git_base_commit.as_deref(), t.git_commit.as_deref()),
        (Some("obra/task-1"), Some("abc123"), Some("def456"))
    );
    assert!(state.set_task_git(999, Some("x"), None, None).await.is_err());
}

async fn checkpoints_are_recorded_and_rolled_back(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    let new = |task_id, interaction_id, label: &str| NewCheckpoint {
        project_id: p.id,
        task_id,
        interaction_id,
        label: label.into(),
        git_ref: format!("refs/obra/checkpoints/{label}"),
        commit_sha: "0123abcd".into(),
    };
    let first = state.record_checkpoint(&new(None, None, "start")).await.unwrap();
    let second = state.record_checkpoint(&new(Some(t.id), Some(i), "after-1")).await.unwrap();
    assert_eq!((second.task_id, second.interaction_id, second.rolled_back_at.clone()), (Some(t.id), Some(i), None));
    let ids = |c: Vec<Checkpoint>| c.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(state.checkpoints(p.id, None).await.unwrap()), vec![second.id, first.id]);
    assert_eq!(ids(state.checkpoints(p.id, Some(t.id)).await.unwrap()), vec![second.id]);
    assert_eq!(state.checkpoint(first.id).await.unwrap().unwrap(), first);
    assert!(state.checkpoint(999).await.unwrap().is_none());

    // A rollback that names a missing task changes nothing.
    assert!(state.mark_rolled_back(second.id, Some((999, TaskStatus::Pending, "x"))).await.is_err());
    assert_eq!(state.checkpoint(second.id).await.unwrap().unwrap().rolled_back_at, None);

    let rolled = state
        .mark_rolled_back(second.id, Some((t.id, TaskStatus::Pending, "rolled back to checkpoint")))
        .await
        .unwrap();
    assert!(rolled.rolled_back_at.is_some());
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!(
        (task.status(), task.status_reason.as_deref()),
        (TaskStatus::Pending, Some("rolled back to checkpoint"))
    );
    assert!(state.mark_rolled_back(999, None).await.unwrap_err().to_string().contains("checkpoint 999"));
    let other = state.create_project(&new_project("other")).await.unwrap();
    let err = state
        .record_checkpoint(&NewCheckpoint { project_id: other.id, ..new(Some(t.id), None, "x") })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("another project"), "{err}");
}

async fn activity_is_a_timeline(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "first")).await.unwrap();
    let bp = pause(state, t.id).await;
    let interaction = state.interactions(t.id).await.unwrap()[0].id;
    state.finish_interaction(interaction, Err("boom"), &[], Duration::ZERO).await.unwrap();
    state.resolve_breakpoint(bp, Resolution::Approve, "alice").await.unwrap();
    let checkpoint = NewCheckpoint {
        project_id: p.id,
        task_id: None,
        interaction_id: None,
        label: "start".into(),
        git_ref: "refs/obra/checkpoints/1".into(),
        commit_sha: "abc".into(),
    };
    state.record_checkpoint(&checkpoint).await.unwrap();
    let u = state.create_task(&new_task(p.id, "second")).await.unwrap();
    let other = state.create_project(&new_project("other")).await.unwrap();
    state.create_task(&new_task(other.id, "elsewhere")).await.unwrap();

    let events = state.activity(p.id, None, None, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"task_created"));
    assert!(events.iter().any(|e| e.kind == "task_created" && e.ref_id == u.id));
    for kind in ["iteration_started", "iteration_finished", "decision", "breakpoint_opened", "breakpoint_resolved"] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kind} in {kinds:?}");
    }
    assert!(kinds.contains(&"checkpoint"));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    assert_eq!(events.len(), 8);
    let finished = events.iter().find(|e| e.kind == "iteration_finished").unwrap();
    assert_eq!((finished.task_id, finished.ref_id), (Some(t.id), interaction));
    assert!(finished.text.contains("failed") && finished.text.contains("boom"), "{}", finished.text);
    assert!(events.iter().any(|e| e.kind == "breakpoint_resolved" && e.text.contains("approve by alice")));
    assert!(events.iter().any(|e| e.kind == "checkpoint" && e.task_id.is_none() && e.text.contains("start")));

    let of_u = state.activity(p.id, Some(u.id), None, 100).await.unwrap();
    assert_eq!(of_u.len(), 1);
    assert_eq!((of_u[0].kind.as_str(), of_u[0].ref_id, of_u[0].text.as_str()), ("task_created", u.id, "second"));
    assert_eq!(state.activity(p.id, None, None, 3).await.unwrap(), &events[..3]);
    assert_eq!(state.latest_activity(p.id, None, 3).await.unwrap(), &events[events.len() - 3..]);
    assert_eq!(state.latest_activity(p.id, Some(u.id), 100).await.unwrap(), of_u);
    let later = state.activity(p.id, None, Some(&events[0].at), 100).await.unwrap();
    assert!(later.iter().all(|e| e.at > events[0].at));
    assert!(state.activity(p.id, None, Some("9999"), 100).await.unwrap().is_empty());
}

// ----- SQLite only -----

/// SHA-384 of migrations/0001_initial.sql as Obra's level 1 shipped it: the checksum existing databases keep
/// in `_sqlx_migrations`. The file moved to migrations/sqlite/ with the same bytes.
const LEVEL_1_CHECKSUM: &str =
    "1888771995567fe103b07a3d06e45f0df3ca63f016c668c919806e74c0e01f343b4c939382b7ca5e87eb642dbf7da4e1";

#[tokio::test]
async fn upgrades_a_level_1_sqlite_database_in_place() {
    let first = SQLITE_MIGRATOR.iter().next().unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(hex::encode(&*first.checksum), LEVEL_1_CHECKSUM, "0001_initial.sql must keep its bytes");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("obra.db");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    SQLITE_MIGRATOR.run_to(1, &pool).await.unwrap();
    let (stored,): (Vec<u8>,) =
        sqlx::query_as("SELECT checksum FROM _sqlx_migrations WHERE version = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(hex::encode(stored), LEVEL_1_CHECKSUM);
    sqlx::raw_sql(
        r#"INSERT INTO projects (name, workspace, created_at) VALUES ('old', '/ws', '2025-01-01T00:00:00.000Z');
           INSERT INTO tasks (project_id, title, depends_on, created_at, updated_at)
             VALUES (1, 'kept', '[]', '2025-01-01T00:00:01.000Z', '2025-01-01T00:00:01.000Z');
           INSERT INTO interactions (task_id, iteration, agent, prompt, status, changes_json, started_at)
             VALUES (1, 1, 'replay', 'p', 'finished',
                     '[{"path":"a.txt","kind":"created","size":3},{"path":"b.txt","kind":"deleted","size":null}]',
                     '2025-01-01T00:00:02.000Z');
           INSERT INTO interactions (task_id, iteration, agent, prompt, started_at)
             VALUES (1, 2, 'replay', 'p', '2025-01-01T00:00:03.000Z');"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let state = StateManager::open(&path).await.unwrap();
    assert_eq!(state.schema_level().await.unwrap(), 5);
    let project = state.project_by_ref("old").await.unwrap().unwrap();
    assert_eq!((project.description.as_str(), project.profile.clone()), ("", None));
    let task = state.require_task(1).await.unwrap();
    assert_eq!((task.title.as_str(), task.status(), task.git_branch.clone()), ("kept", TaskStatus::Pending, None));
    assert_eq!(state.interactions(1).await.unwrap().len(), 2);
    let changes = state.file_changes(1).await.unwrap();
    let seen: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.kind.as_str(), c.size)).collect();
    assert_eq!(seen, vec![("a.txt", "created", Some(3)), ("b.txt", "deleted", None)]);
    assert!(state.file_changes(2).await.unwrap().is_empty());
    // Opening again is a no-op.
    state.pool.close().await;
    assert_eq!(StateManager::open(&path).await.unwrap().schema_level().await.unwrap(), 5);
}

#[tokio::test]
async fn a_locked_sqlite_database_is_reported_quickly_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("obra.db");
    let state = StateManager::open(&path).await.unwrap();
    state.create_project(&new_project("demo")).await.unwrap();
    state.pool.close().await;

    // Another process holds the write lock.
    let mut other = sqlx::AnyConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::raw_sql(
        "BEGIN IMMEDIATE; INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES ('x', 'k', x'00', 'now')",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let settings = OpenSettings { busy_timeout: Duration::from_millis(200) };
    let err = StateManager::open_with(&path, &settings).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(err.contains(&format!("the database {} is locked by another obra process", path.display())), "{err}");
    assert!(err.contains("busy_timeout_ms") && err.contains("Nothing was changed"), "{err}");
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let state = StateManager::open_with(&path, &settings).await.unwrap();
    assert_eq!(state.projects().await.unwrap().len(), 1);
    assert_eq!(state.get("x", "k").await.unwrap(), None);
}

#[tokio::test]
async fn in_memory_and_url_forms_open_sqlite() {
    let state = StateManager::open_in_memory().await.unwrap();
    assert_eq!((state.backend(), state.schema_level().await.unwrap()), (Backend::Sqlite, 5));
    state.create_project(&new_project("demo")).await.unwrap();
    let state = StateManager::connect("sqlite::memory:").await.unwrap();
    assert!(state.projects().await.unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub dir").join("obra #1.db");
    let state = StateManager::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    state.create_project(&new_project("demo")).await.unwrap();
    assert!(path.exists());
    let journal: (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&state.pool).await.unwrap();
    assert_eq!(journal.0, "wal");
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_say_what_to_do_without_the_password() {
    let err = StateManager::connect("mysql://root:hunter2@db/obra").await.unwrap_err().to_string();
    assert!(err.contains("unsupported database URL") && err.contains("postgres://") && err.contains("database.url"));
    assert!(!err.contains("hunter2"), "{err}");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://obra:s3cret-pw@127.0.0.1:{port}/obra");
    let started = std::time::Instant::now();
    let err = format!("{:#}", StateManager::connect(&url).await.unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let expected =
        format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; is the server running?");
    assert!(err.contains(&expected) && err.contains("check database.url"), "{err}");
    assert!(!err.contains("s3cret-pw") && err.contains("***"), "{err}");
    assert_eq!(redact_url("postgresql://u:p%40ss@h:1/d"), "postgresql://u:***@h:1/d");
    assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
}

#[tokio::test]
async fn wrong_postgres_password_is_reported_without_it() {
    let Some(pg) = TestDatabase::create().await else { return };
    let mut url = url::Url::parse(pg.url()).unwrap();
    url.set_password(Some("definitely-wrong")).unwrap();
    let err = format!("{:#}", StateManager::connect(url.as_str()).await.unwrap_err());
    assert!(err.contains("cannot connect to PostgreSQL") && err.contains("check database.url"), "{err}");
    assert!(!err.contains("definitely-wrong"), "{err}");
    pg.cleanup().await;
}

/// Conclude one iteration of `task_id` with `confidence`, `action` and the task's status after it.
async fn iterate(state: &StateManager, task_id: i64, confidence: f32, action: Action, status: TaskStatus) -> i64 {
    let i = state.begin_interaction(task_id, 1, "replay", "p").await.unwrap();
    state.finish_interaction(i, Ok(&result(Outcome::Success)), &[], Duration::from_millis(40)).await.unwrap();
    let breakpoint = (status == TaskStatus::Paused).then(|| ("low-confidence".to_string(), "unsure".to_string()));
    let mut d = decision(action, "why");
    d.confidence = confidence;
    state
        .conclude_iteration(&IterationRecord {
            task_id,
            interaction_id: i,
            gates: &[],
            decision: &d,
            task_status: status,
            status_reason: None,
            session_id: None,
            breakpoint,
        })
        .await
        .unwrap()
        .unwrap_or(i)
}

async fn decision_outcomes_feed_calibration_and_the_report(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let outcomes = |task_id: i64| async move {
        let mut all = Vec::new();
        for i in state.interactions(task_id).await.unwrap() {
            if let Some(d) = state.decision(i.id).await.unwrap() {
                all.push(d.outcome.unwrap_or_else(|| "open".into()));
            }
        }
        all
    };
    // A retry, then a proceed: the first iteration's work was superseded, the second accepted.
    let a = state.create_task(&new_task(p.id, "a")).await.unwrap();
    iterate(state, a.id, 0.7, Action::Retry, TaskStatus::Running).await;
    assert_eq!(outcomes(a.id).await, ["open"]);
    iterate(state, a.id, 0.92, Action::Proceed, TaskStatus::Completed).await;
    assert_eq!(outcomes(a.id).await, ["superseded", "accepted"]);
    // Escalated, then approved by a human: accepted, but not autonomous.
    let b = state.create_task(&new_task(p.id, "b")).await.unwrap();
    let bp = iterate(state, b.id, 0.5, Action::Escalate, TaskStatus::Paused).await;
    assert_eq!(outcomes(b.id).await, ["open"]);
    state.resolve_breakpoint(bp, Resolution::Approve, "alice").await.unwrap();
    assert_eq!(outcomes(b.id).await, ["accepted"]);
    // Escalated, then rejected.
    let c = state.create_task(&new_task(p.id, "c")).await.unwrap();
    let bp = iterate(state, c.id, 0.95, Action::Escalate, TaskStatus::Paused).await;
    state.resolve_breakpoint(bp, Resolution::Reject, "alice").await.unwrap();
    assert_eq!(outcomes(c.id).await, ["rejected"]);
    // Accepted, then rolled back.
    let d = state.create_task(&new_task(p.id, "d")).await.unwrap();
    iterate(state, d.id, 0.9, Action::Proceed, TaskStatus::Completed).await;
    let cp = state
        .record_checkpoint(&NewCheckpoint {
            project_id: p.id,
            task_id: Some(d.id),
            interaction_id: None,
            label: "before".into(),
            git_ref: "refs/obra/checkpoints/1".into(),
            commit_sha: "abc".into(),
        })
        .await
        .unwrap();
    state.mark_rolled_back(cp.id, Some((d.id, TaskStatus::Pending, "rolled back"))).await.unwrap();
    assert_eq!(outcomes(d.id).await, ["rolled-back"]);

    state
        .record_llm_call(&NewLlmCall {
            task_id: a.id,
            interaction_id: None,
            purpose: "opinion",
            provider: "ollama",
            attempt: 1,
            duration_ms: 30,
            input_tokens: Some(7),
            output_tokens: Some(3),
            error: None,
        })
        .await
        .unwrap();

    let report = state.report(p.id).await.unwrap();
    let llm = &report.usage_by_llm;
    assert_eq!(llm.len(), 1);
    assert_eq!(
        (llm[0].key.as_str(), llm[0].runs, llm[0].input_tokens, llm[0].output_tokens),
        ("ollama opinion", 1, 7, 3)
    );
    assert!(report.durations.iter().any(|d| d.step == "llm opinion" && d.p50_ms == 30), "{:?}", report.durations);
    assert_eq!(report.tasks.total, 4);
    assert_eq!(report.tasks.success_rate, Some(2.0 / 3.0), "{:?}", report.tasks);
    assert_eq!(report.tasks.autonomous_completion_rate, Some(0.5), "{:?}", report.tasks);
    assert_eq!(report.decisions.get("escalate"), Some(&2));
    let c = &report.calibration;
    assert_eq!((c.settled, c.unsettled), (5, 0));
    let buckets: Vec<_> = c.buckets.iter().map(|b| (b.from, b.decisions, b.accepted)).collect();
    assert_eq!(buckets, vec![(0.5, 1, 1), (0.7, 1, 0), (0.9, 3, 1)]);
    assert_eq!(report.breakpoints.len(), 1);
    assert_eq!(
        (report.breakpoints[0].opened, report.breakpoints[0].approved, report.breakpoints[0].rejected),
        (2, 1, 1)
    );
    assert_eq!(report.usage_by_agent.len(), 1);
    assert_eq!(
        (report.usage_by_agent[0].runs, report.usage_by_agent[0].input_tokens, report.usage_by_agent[0].output_tokens),
        (5, 50, 100)
    );
    assert!((report.usage_by_agent[0].cost_usd - 0.05).abs() < 1e-9);
    assert_eq!(report.usage_by_task.len(), 4);
    let agent = report.durations.iter().find(|s| s.step == "agent").unwrap();
    assert_eq!((agent.count, agent.p50_ms, agent.p95_ms), (5, 40, 40));
}

async fn a_failure_blocks_dependents_in_its_transaction_and_a_retry_unblocks_them(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let a = state.create_task(&new_task(p.id, "Add parser")).await.unwrap();
    let b = state.create_task(&NewTask { depends_on: vec![a.id], ..new_task(p.id, "Use parser") }).await.unwrap();
    let c = state.create_task(&NewTask { depends_on: vec![b.id], ..new_task(p.id, "Document it") }).await.unwrap();
    let d = state.create_task(&new_task(p.id, "Independent")).await.unwrap();

    // The iteration that fails A blocks B and C in the same transaction.
    let i = state.begin_interaction(a.id, 1, "replay", "p").await.unwrap();
    state.finish_interaction(i, Ok(&result(Outcome::Crashed)), &[], Duration::from_millis(1)).await.unwrap();
    state
        .conclude_iteration(&IterationRecord {
            task_id: a.id,
            interaction_id: i,
            gates: &[],
            decision: &decision(Action::Escalate, "rule aborted"),
            task_status: TaskStatus::Failed,
            status_reason: Some("the tests do not pass"),
            session_id: None,
            breakpoint: None,
        })
        .await
        .unwrap();
    let b_now = state.require_task(b.id).await.unwrap();
    let c_now = state.require_task(c.id).await.unwrap();
    assert_eq!((b_now.status(), c_now.status()), (TaskStatus::Blocked, TaskStatus::Blocked));
    assert_eq!(
        b_now.status_reason.as_deref(),
        Some(format!("blocked: depends on task {} (Add parser), which failed: the tests do not pass", a.id).as_str())
    );
    assert_eq!(
        c_now.status_reason.as_deref(),
        Some(
            format!(
                "blocked: depends on task {} (Use parser), blocked by task {} (Add parser) which failed",
                b.id, a.id
            )
            .as_str()
        )
    );
    assert_eq!(state.require_task(d.id).await.unwrap().status(), TaskStatus::Pending);
    let listed = state
        .list_tasks(&TaskFilter { project_id: p.id, statuses: vec![TaskStatus::Blocked], ..TaskFilter::default() })
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id, c.id]);

    // A new task behind a blocked one is blocked from the start.
    let e = state.create_task(&NewTask { depends_on: vec![c.id], ..new_task(p.id, "Late") }).await.unwrap();
    assert_eq!(e.status(), TaskStatus::Blocked);

    // Retrying a blocked task names the task to retry and changes nothing.
    let err = state.retry_task(c.id).await.unwrap_err().to_string();
    assert!(err.contains(&format!("obra task retry {}", a.id)) && err.contains("Add parser"), "{err}");
    assert_eq!(state.require_task(c.id).await.unwrap().status(), TaskStatus::Blocked);

    // Retrying the root returns the chain to pending; they wait for it.
    let retried = state.retry_task(a.id).await.unwrap();
    assert_eq!(retried.status(), TaskStatus::Pending);
    for id in [b.id, c.id, e.id] {
        let t = state.require_task(id).await.unwrap();
        let expected = format!("unblocked: task {} was retried", a.id);
        assert_eq!((t.status(), t.status_reason.as_deref()), (TaskStatus::Pending, Some(expected.as_str())));
    }
    let ready: Vec<i64> = state.ready_tasks(p.id).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(ready, vec![a.id, d.id]);

    // Cancelling blocks too; a paused dependency blocks nothing.
    state.cancel_task(a.id, "not now").await.unwrap();
    let b_now = state.require_task(b.id).await.unwrap();
    assert_eq!(b_now.status(), TaskStatus::Blocked);
    assert!(b_now.status_reason.unwrap().contains("which was cancelled: not now"));
    state.retry_task(a.id).await.unwrap();
    pause(state, a.id).await;
    assert_eq!(state.require_task(b.id).await.unwrap().status(), TaskStatus::Pending);

    // Rejecting at the breakpoint fails the task: its dependents are blocked again.
    let bp = state.open_breakpoint_of_task(a.id).await.unwrap().unwrap();
    state.resolve_breakpoint(bp.id, Resolution::Reject, "alice").await.unwrap();
    assert_eq!(state.require_task(c.id).await.unwrap().status(), TaskStatus::Blocked);
}

async fn dependency_depth_is_limited_and_a_refused_change_changes_nothing(db: Db) {
    let state = db.state.clone().with_max_dependency_depth(3);
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let one = state.create_task(&new_task(p.id, "one")).await.unwrap();
    let two = state.create_task(&NewTask { depends_on: vec![one.id], ..new_task(p.id, "two") }).await.unwrap();
    let three = state.create_task(&NewTask { depends_on: vec![two.id], ..new_task(p.id, "three") }).await.unwrap();
    let err = state
        .create_task(&NewTask { depends_on: vec![three.id], ..new_task(p.id, "four") })
        .await
        .unwrap_err()
        .to_string();
    let chain = format!("{} → {} → {} → new", one.id, two.id, three.id);
    assert!(err.contains(&chain) && err.contains("engine.max_dependency_depth (3)"), "{err}");
    assert_eq!(state.tasks(p.id).await.unwrap().len(), 3, "nothing was created");

    // Putting a task in front of the chain makes it too long through every task on it.
    let zero = state.create_task(&new_task(p.id, "zero")).await.unwrap();
    let update = TaskUpdate { depends_on: Some(vec![zero.id]), ..TaskUpdate::default() };
    let err = state.update_task(one.id, &update).await.unwrap_err().to_string();
    assert!(err.contains(&format!("{} → {} → {} → {}", zero.id, one.id, two.id, three.id)), "{err}");
    assert!(state.require_task(one.id).await.unwrap().dependencies().is_empty(), "nothing was changed");
    // Within the limit is fine.
    state.update_task(two.id, &TaskUpdate { depends_on: Some(vec![zero.id]), ..TaskUpdate::default() }).await.unwrap();
}

async fn a_killed_iteration_is_recovered_as_interrupted_with_its_session_kept(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    // Iteration 1 finished and named a session; iteration 2 was under way when the process died.
    let first = state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    state.finish_interaction(first, Ok(&result(Outcome::Success)), &[], Duration::from_millis(1)).await.unwrap();
    state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: first,
            gates: &[],
            decision: &decision(Action::Retry, "again"),
            task_status: TaskStatus::Running,
            status_reason: None,
            session_id: Some("s-1"),
            breakpoint: None,
        })
        .await
        .unwrap();
    let killed = state.begin_interaction(t.id, 2, "replay", "p").await.unwrap();

    let recovered = state.recover_interrupted(p.id).await.unwrap();
    assert_eq!(recovered.len(), 1);
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!(task.status(), TaskStatus::Pending);
    assert_eq!(task.status_reason.as_deref(), Some("interrupted during iteration 2; resumes the same agent session"));
    assert_eq!(task.session_id.as_deref(), Some("s-1"));
    let rows = state.interactions(t.id).await.unwrap();
    assert_eq!(rows.len(), 2, "nothing is lost or added");
    assert_eq!((rows[0].status.as_str(), rows[1].status.as_str()), ("finished", "interrupted"));
    assert_eq!(rows[1].id, killed);
    assert!(rows[1].finished_at.is_some() && rows[1].summary.as_deref().unwrap().contains("interrupted"));
    assert!(state.recover_interrupted(p.id).await.unwrap().is_empty(), "a second recovery finds nothing");
}

async fn a_rate_limited_task_waits_with_its_session_until_its_next_iteration(db: Db) {
    let state = &db.state;
    let p = state.create_project(&new_project("demo")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    state.finish_interaction(i, Ok(&result(Outcome::RateLimited)), &[], Duration::from_millis(1)).await.unwrap();
    let reset = std::time::SystemTime::now() + Duration::from_secs(120);
    let paused = state.pause_for_rate_limit(t.id, reset, "rate limited until later: 429", Some("s-1")).await.unwrap();
    assert_eq!(paused.status(), TaskStatus::Pending);
    assert_eq!(paused.session_id.as_deref(), Some("s-1"));
    let stored = humantime::parse_rfc3339_weak(paused.resume_after.as_deref().unwrap()).unwrap();
    assert!(stored.duration_since(reset).unwrap_or_else(|e| e.duration()) < Duration::from_millis(2));
    assert!(state.ready_tasks(p.id).await.unwrap().is_empty(), "not ready before the reset");
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    state.pause_for_rate_limit(t.id, past, "rate limited until earlier: 429", None).await.unwrap();
    assert_eq!(state.ready_tasks(p.id).await.unwrap().len(), 1, "ready once the reset has passed");
    // The next iteration clears the wait.
    state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    assert_eq!(state.require_task(t.id).await.unwrap().resume_after, None);
    assert!(state.pause_for_rate_limit(999, reset, "x", None).await.is_err());
}

async fn a_backlog_is_created_whole_or_not_at_all(db: Db) {
    let state = &db.state;
    let project = state.create_project(&new_project("backlog")).await.unwrap();
    let other = state.create_project(&new_project("other")).await.unwrap();
    let existing = state.create_task(&new_task(project.id, "existing")).await.unwrap();
    let foreign = state.create_task(&new_task(other.id, "foreign")).await.unwrap();
    let task = |title: &str, after: Vec<usize>, depends_on: Vec<i64>| BacklogTask {
        title: title.into(),
        description: format!("{title} in detail"),
        priority: 6,
        depends_on,
        after,
        max_iterations: Some(2),
        milestone: Some("m1".into()),
    };
    // A dependency on a later entry works: ids follow the backlog's order.
    let created = state
        .create_tasks(
            project.id,
            Some("minimal"),
            &[task("docs", vec![1], vec![]), task("parser", vec![], vec![existing.id])],
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    assert!(created[0].id < created[1].id);
    assert_eq!(created[0].dependencies(), vec![created[1].id]);
    assert_eq!(created[1].dependencies(), vec![existing.id]);
    assert_eq!(created[1].milestone.as_deref(), Some("m1"));
    assert_eq!(created[1].profile.as_deref(), Some("minimal"));
    assert_eq!(created[1].max_iterations, Some(2));
    assert_eq!(created[1].description, "parser in detail");

    // A cycle, a task of another project or a missing one: refused, and nothing of the backlog is stored.
    let before = state.tasks(project.id).await.unwrap().len();
    let cycle = [task("a", vec![1], vec![]), task("b", vec![0], vec![])];
    let err = state.create_tasks(project.id, None, &cycle).await.unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
    let foreign_dep = [task("c", vec![], vec![]), task("d", vec![0], vec![foreign.id])];
    let err = state.create_tasks(project.id, None, &foreign_dep).await.unwrap_err().to_string();
    assert!(err.contains("another project"), "{err}");
    let missing = [task("e", vec![], vec![]), task("f", vec![], vec![9999])];
    let err = state.create_tasks(project.id, None, &missing).await.unwrap_err().to_string();
    assert!(err.contains("9999"), "{err}");
    assert_eq!(state.tasks(project.id).await.unwrap().len(), before);
}
