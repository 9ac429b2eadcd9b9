use super::*;
use crate::contract::{ChangeKind, Outcome, Usage};

fn new_task(project_id: i64, title: &str) -> NewTask {
    NewTask {
        project_id,
        title: title.into(),
        description: "do it".into(),
        priority: 5,
        depends_on: vec![],
        max_iterations: None,
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
    }
}

#[tokio::test]
async fn creates_projects_and_tasks_with_dependencies() {
    let state = StateManager::open_in_memory().await.unwrap();
    let p = state.create_project("demo", Path::new("/tmp/ws")).await.unwrap();
    assert!(state.create_project("demo", Path::new("/tmp/ws")).await.is_err(), "names are unique");
    let a = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let mut b = new_task(p.id, "b");
    b.depends_on = vec![a.id];
    let b = state.create_task(&b).await.unwrap();
    assert_eq!(b.dependencies(), vec![a.id]);
    let mut bad = new_task(p.id, "c");
    bad.depends_on = vec![999];
    let err = state.create_task(&bad).await.unwrap_err().to_string();
    assert!(err.contains("task 999") && err.contains("does not exist"), "{err}");
    assert!(state.create_task(&new_task(p.id, "  ")).await.is_err());
    assert_eq!(state.tasks(p.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn missing_task_error_says_where_to_look() {
    let state = StateManager::open_in_memory().await.unwrap();
    let err = state.require_task(42).await.unwrap_err().to_string();
    assert!(err.contains("task 42 does not exist") && err.contains("obra status"), "{err}");
}

#[tokio::test]
async fn an_iteration_is_recorded_from_prompt_to_breakpoint() {
    let state = StateManager::open_in_memory().await.unwrap();
    let p = state.create_project("demo", Path::new("/tmp/ws")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "the prompt").await.unwrap();
    let task = state.require_task(t.id).await.unwrap();
    assert_eq!((task.status(), task.attempts), (TaskStatus::Running, 1));
    let changes = vec![FileChange { path: "a.txt".into(), kind: ChangeKind::Created, size: Some(3) }];
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
    let decision = DecisionRecord {
        action: Action::Escalate,
        confidence: 0.4,
        heuristic_score: 0.4,
        llm_score: None,
        llm_reasoning: None,
        explanation: "tests failed".into(),
    };
    let bp = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: i,
            gates: &gates,
            decision: &decision,
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
    assert!(inter.changes_json.contains("a.txt"));
    assert_eq!(state.gate_results(i).await.unwrap().len(), 1);
    assert_eq!(state.decision(i).await.unwrap().unwrap().action, "escalate");
    assert_eq!(state.breakpoints(p.id, true).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_transaction_leaves_nothing_behind() {
    let state = StateManager::open_in_memory().await.unwrap();
    let p = state.create_project("demo", Path::new("/tmp/ws")).await.unwrap();
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
    let decision = DecisionRecord {
        action: Action::Proceed,
        confidence: 0.9,
        heuristic_score: 0.9,
        llm_score: None,
        llm_reasoning: None,
        explanation: "fine".into(),
    };
    // Interaction 999 does not exist: the foreign key fails half way, and the gate rows must not remain.
    let err = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: 999,
            gates: &gates,
            decision: &decision,
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

#[tokio::test]
async fn refuses_a_database_from_a_newer_obra_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("obra.db");
    let state = StateManager::open(&path).await.unwrap();
    state.create_project("demo", dir.path()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&state.pool)
    .await
    .unwrap();
    state.pool.close().await;
    let err = StateManager::open(&path).await.unwrap_err().to_string();
    assert!(err.contains("newer Obra") && err.contains("9999") && err.contains("Nothing was changed"), "{err}");
    // Still readable by a tolerant reader: the row is there.
    let pool = SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM projects").fetch_one(&pool).await.unwrap();
    assert_eq!(n.0, 1);
}

#[tokio::test]
async fn plugin_kv_round_trips() {
    let state = StateManager::open_in_memory().await.unwrap();
    assert_eq!(state.get("p", "k").await.unwrap(), None);
    state.set("p", "k", b"v1").await.unwrap();
    state.set("p", "k", b"v2").await.unwrap();
    assert_eq!(state.get("p", "k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(state.get("other", "k").await.unwrap(), None);
    state.delete("p", "k").await.unwrap();
    assert_eq!(state.get("p", "k").await.unwrap(), None);
}

#[tokio::test]
async fn resolving_a_breakpoint_moves_the_task_and_keeps_the_feedback() {
    let state = StateManager::open_in_memory().await.unwrap();
    let p = state.create_project("demo", Path::new("/tmp/ws")).await.unwrap();
    let t = state.create_task(&new_task(p.id, "a")).await.unwrap();
    let i = state.begin_interaction(t.id, 1, "replay", "p").await.unwrap();
    let decision = DecisionRecord {
        action: Action::Escalate,
        confidence: 0.3,
        heuristic_score: 0.3,
        llm_score: None,
        llm_reasoning: None,
        explanation: "bad".into(),
    };
    let bp = state
        .conclude_iteration(&IterationRecord {
            task_id: t.id,
            interaction_id: i,
            gates: &[],
            decision: &decision,
            task_status: TaskStatus::Paused,
            status_reason: None,
            session_id: None,
            breakpoint: Some(("decision".into(), "bad".into())),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.open_breakpoint_of_task(t.id).await.unwrap().unwrap().id, bp);
    let resolved = state.resolve_breakpoint(bp, Resolution::Feedback("use tabs".into()), "alice").await.unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(state.require_task(t.id).await.unwrap().status(), TaskStatus::Pending);
    assert_eq!(state.latest_breakpoint_feedback(t.id).await.unwrap().as_deref(), Some("use tabs"));
    let again = state.resolve_breakpoint(bp, Resolution::Approve, "bob").await.unwrap_err().to_string();
    assert!(again.contains("already resolved") && again.contains("alice"), "{again}");
    assert!(
        state
            .resolve_breakpoint(77, Resolution::Approve, "bob")
            .await
            .unwrap_err()
            .to_string()
            .contains("breakpoint 77 does not exist")
    );
}
