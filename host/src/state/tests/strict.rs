//! The strict data model (ADR 0040) on both databases: the upgrade to level 5 keeps every row and the schema,
//! refuses (changing nothing) a database with rows its constraints would refuse, naming them; the constraints
//! hold every value the code writes and no other; and a row that breaks the model all the same is an error
//! naming it on every read, never a guess.

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use super::*;
use crate::state::strict::{COLUMNS, STRICT_LEVEL, Shape};

/// A database that no obra opened yet, and a raw pool on it.
struct Fresh {
    target: Target,
    pool: AnyPool,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

impl Fresh {
    async fn sqlite() -> Fresh {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obra.db");
        let pool = AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
        Fresh { target: Target::Sqlite(path), pool, _dir: Some(dir), _pg: None }
    }

    async fn postgres() -> Option<Fresh> {
        sqlx::any::install_default_drivers();
        let pg = TestDatabase::create().await?;
        let pool = AnyPool::connect(pg.url()).await.unwrap();
        Some(Fresh { target: Target::Postgres(pg.url().to_string()), pool, _dir: None, _pg: Some(pg) })
    }

    fn backend(&self) -> Backend {
        match self.target {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend() {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    /// Bring the database to `level` the way an older obra left it.
    async fn at_level(&self, level: i64) {
        self.migrator().run_to(level, &self.pool).await.unwrap();
    }

    /// Open it as obra does (upgrading it).
    async fn open(&self) -> Result<StateManager> {
        match &self.target {
            Target::Sqlite(path) => StateManager::open(path).await,
            Target::Postgres(url) => StateManager::connect(url).await,
        }
    }

    async fn run(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn level(&self) -> i64 {
        let (level,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&self.pool).await.unwrap();
        level.unwrap_or(0)
    }

    async fn columns(&self, table: &str) -> Vec<String> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
            Backend::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql).bind(table).fetch_all(&self.pool).await.unwrap();
        rows.into_iter().map(|(c,)| c).collect()
    }

    /// Every row of every table, as text, in a stable order.
    async fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        for table in TABLES {
            let cells: Vec<String> = self
                .columns(table)
                .await
                .iter()
                .map(|c| match (*table, self.backend()) {
                    // Bytes as hex: they need not be text.
                    ("plugin_kv", Backend::Sqlite) if c == "value" => "hex(value)".to_string(),
                    ("plugin_kv", Backend::Postgres) if c == "value" => "encode(value, 'hex')".to_string(),
                    _ => format!("COALESCE(CAST({c} AS TEXT), '<null>')"),
                })
                .collect();
            let sql = format!("SELECT {} AS line FROM {table} ORDER BY line", cells.join(" || '|' || "));
            let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&self.pool).await.unwrap();
            out.extend(rows.into_iter().map(|(line,)| format!("{table}: {line}")));
        }
        out
    }

    /// The schema apart from CHECK constraints: every column with its type, nullability and default, every
    /// foreign key and every index.
    async fn schema(&self) -> Vec<String> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT m.name || '.' || c.name || ' ' || c.type || ' notnull=' || c.\"notnull\" || ' default='
                        || COALESCE(c.dflt_value, '-') || ' pk=' || c.pk
                   FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table'
                 UNION ALL
                 SELECT m.name || '.' || f.\"from\" || ' -> ' || f.\"table\" || '(' || f.\"to\" || ')'
                   FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'
                 UNION ALL
                 SELECT 'index ' || name || ' on ' || tbl_name || ': ' || COALESCE(sql, 'automatic')
                   FROM sqlite_master WHERE type = 'index'"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable
                        || ' default=' || COALESCE(column_default, '-') AS TEXT)
                   FROM information_schema.columns WHERE table_schema = current_schema()
                 UNION ALL
                 SELECT CAST(conrelid::regclass AS TEXT) || ' ' || pg_get_constraintdef(oid)
                   FROM pg_constraint WHERE contype IN ('f', 'p', 'u') AND connamespace = current_schema()::regnamespace
                 UNION ALL
                 SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            }
        };
        let mut rows: Vec<String> = sqlx::query_as::<_, (String,)>(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(r,)| r)
            .filter(|r| !r.contains("_sqlx_migrations"))
            .collect();
        rows.sort();
        rows
    }
}

/// Every table of the store.
const TABLES: &[&str] = &[
    "projects",
    "tasks",
    "interactions",
    "gate_results",
    "decisions",
    "breakpoints",
    "file_changes",
    "agent_sessions",
    "checkpoints",
    "llm_calls",
    "failed_actions",
    "plugin_kv",
];

/// The CHECK constraints of level 5, by name (the same on both databases).
const CONSTRAINTS: &[(&str, &str)] = &[
    ("tasks", "tasks_status_known"),
    ("tasks", "tasks_depends_on_json"),
    ("interactions", "interactions_status_known"),
    ("interactions", "interactions_outcome_known"),
    ("interactions", "interactions_result_json"),
    ("gate_results", "gate_results_passed_flag"),
    ("gate_results", "gate_results_findings_json"),
    ("decisions", "decisions_action_known"),
    ("decisions", "decisions_outcome_known"),
    ("breakpoints", "breakpoints_status_known"),
    ("breakpoints", "breakpoints_resolution_known"),
    ("file_changes", "file_changes_kind_known"),
];

/// One row (at least) in every table, as level 4 holds them: task 3 is deleted again, so only the
/// AUTOINCREMENT counter remembers its id.
async fn fill_level_4(db: &Fresh) {
    db.run(
        r#"INSERT INTO projects (name, workspace, created_at, description) VALUES ('old', '/ws', '2025-01-01T00:00:00.000Z', 'p');
           INSERT INTO tasks (project_id, title, status, depends_on, created_at, updated_at, milestone)
             VALUES (1, 'done', 'completed', '[]', '2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z', 'm1');
           INSERT INTO tasks (project_id, title, status, status_reason, depends_on, created_at, updated_at)
             VALUES (1, 'waits', 'blocked', 'blocked: x', '[1]', '2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z');
           INSERT INTO tasks (project_id, title, created_at, updated_at) VALUES (1, 'gone', 'x', 'x');
           DELETE FROM tasks WHERE title = 'gone';
           INSERT INTO interactions (task_id, iteration, agent, prompt, status, outcome, summary, session_id, turns,
                                     input_tokens, output_tokens, cost_usd, exit_code, result_json, started_at,
                                     finished_at, duration_ms)
             VALUES (1, 1, 'replay', 'do it', 'finished', 'success', 'did it', 's-1', 1, 10, 20, 0.25, 0,
                     '{"outcome":"success","usage":{"input_tokens":10}}', '2025-01-01T00:00:03.000Z',
                     '2025-01-01T00:00:04.000Z', 1000);
           INSERT INTO interactions (task_id, iteration, agent, prompt, status, error, started_at)
             VALUES (2, 1, 'replay', 'p', 'interrupted', 'stopped', '2025-01-01T00:00:05.000Z');
           INSERT INTO gate_results (interaction_id, gate, passed, score, summary, findings_json, duration_ms)
             VALUES (1, 'tests', 1, 0.5, 'ok', '[{"severity":"warning","message":"slow","path":"a.rs","line":3}]', 7);
           INSERT INTO decisions (interaction_id, action, confidence, heuristic_score, llm_score, explanation,
                                  created_at, outcome, outcome_at, verified_by)
             VALUES (1, 'proceed', 0.9, 0.8, 0.95, 'fine', '2025-01-01T00:00:06.000Z', 'accepted',
                     '2025-01-01T00:00:06.000Z', 'tests');
           INSERT INTO breakpoints (task_id, interaction_id, rule, reason, status, resolution, resolved_by, created_at,
                                    resolved_at)
             VALUES (1, 1, 'decision', 'unsure', 'resolved', 'cancelled', 'obra', 'x', 'y');
           INSERT INTO breakpoints (task_id, rule, reason, created_at) VALUES (2, 'budget', 'over', 'x');
           INSERT INTO file_changes (interaction_id, path, kind, size, hash_before, hash_after)
             VALUES (1, 'a.rs', 'modified', 12, 'aa', 'bb');
           INSERT INTO agent_sessions (task_id, agent, session_id, started_at, last_used_at, interactions,
                                       input_tokens, output_tokens, cost_usd, ended_reason, summary)
             VALUES (1, 'replay', 's-1', 'x', 'y', 1, 10, 20, 0.25, 'refresh', 'sum');
           INSERT INTO checkpoints (project_id, task_id, interaction_id, label, git_ref, commit_sha, created_at)
             VALUES (1, 1, 1, 'before', 'refs/obra/checkpoints/1', 'abc', 'x');
           INSERT INTO llm_calls (task_id, interaction_id, purpose, provider, attempt, started_at, duration_ms,
                                  input_tokens, output_tokens, error)
             VALUES (1, 1, 'opinion', 'ollama', 1, 'x', 30, 5, 6, NULL);
           INSERT INTO failed_actions (interaction_id, action) VALUES (1, 'edit refused: a.rs');"#,
    )
    .await;
    sqlx::query("INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES ('p', 'k', $1, 'x')")
        .bind(vec![0u8, 255, 7])
        .execute(&db.pool)
        .await
        .unwrap();
}

/// For each named `async fn name(db: Fresh)`, a module `name` with a `sqlite` and a `postgres` test.
macro_rules! on_both_fresh {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Fresh::sqlite().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = super::Fresh::postgres().await {
                    super::$name(db).await;
                }
            }
        }
    )*};
}

on_both_fresh!(
    the_upgrade_keeps_every_row_and_the_schema,
    rows_the_constraints_refuse_stop_the_upgrade_and_change_nothing,
    the_migration_alone_rolls_back_on_a_refused_row,
    the_constraints_hold_every_value_the_code_writes_and_no_other,
    a_corrupt_row_is_an_error_naming_it_on_every_read,
);

async fn the_upgrade_keeps_every_row_and_the_schema(db: Fresh) {
    db.at_level(STRICT_LEVEL - 1).await;
    fill_level_4(&db).await;
    let (rows, schema) = (db.dump().await, db.schema().await);
    assert!(rows.len() >= TABLES.len() + 3, "{rows:?}");

    let state = db.open().await.unwrap();
    assert_eq!(state.schema_level().await.unwrap(), STRICT_LEVEL);
    assert_eq!(db.dump().await, rows, "every row, every value");
    assert_eq!(db.schema().await, schema, "the same columns, foreign keys and indexes");

    // The store reads them all, strictly.
    let task = state.require_task(2).await.unwrap();
    assert_eq!((task.status, task.depends_on.clone()), (TaskStatus::Blocked, vec![1]));
    let run = &state.interactions(1).await.unwrap()[0];
    assert_eq!((run.status.as_str(), run.outcome.as_deref()), ("finished", Some("success")));
    assert_eq!(state.gate_results(1).await.unwrap()[0].findings[0].message, "slow");
    assert_eq!(state.file_changes(1).await.unwrap()[0].kind, ChangeKind::Modified);
    assert_eq!(state.breakpoints(1, false).await.unwrap().len(), 2);
    assert_eq!(state.report(1).await.unwrap().tasks.total, 2);
    // The id of the deleted task 3 is not handed out again.
    assert_eq!(state.create_task(&new_task(1, "new")).await.unwrap().id, 4);
    // And the constraints now hold.
    let refused = sqlx::query("UPDATE tasks SET status = 'runing' WHERE id = 1").execute(&db.pool).await;
    assert!(refused.unwrap_err().to_string().contains("tasks_status_known"));
    let orphan = sqlx::query(
        "INSERT INTO interactions (task_id, iteration, agent, prompt, started_at) VALUES (99, 1, 'a', 'p', 'x')",
    )
    .execute(&db.pool)
    .await;
    assert!(orphan.unwrap_err().to_string().to_lowercase().contains("foreign key"));
    state.pool.close().await;
    assert_eq!(db.open().await.unwrap().schema_level().await.unwrap(), STRICT_LEVEL, "opening again is a no-op");
}

async fn rows_the_constraints_refuse_stop_the_upgrade_and_change_nothing(db: Fresh) {
    db.at_level(STRICT_LEVEL - 1).await;
    fill_level_4(&db).await;
    db.run(
        "UPDATE tasks SET status = 'runing' WHERE id = 1;
         UPDATE tasks SET depends_on = '[1,' WHERE id = 2;
         UPDATE interactions SET outcome = 'exploded' WHERE id = 2;
         UPDATE gate_results SET findings_json = 'none' WHERE id = 1;",
    )
    .await;
    if db.backend() == Backend::Sqlite {
        // Rows whose foreign key points nowhere: written with foreign keys off, as the sqlite3 shell does.
        let mut conn = sqlx::AnyConnection::connect(&format!(
            "sqlite://{}",
            match &db.target {
                Target::Sqlite(p) => p.display().to_string(),
                Target::Postgres(_) => unreachable!(),
            }
        ))
        .await
        .unwrap();
        sqlx::raw_sql(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO file_changes (interaction_id, path, kind) VALUES (77, 'x', 'created');
             INSERT INTO checkpoints (project_id, task_id, label, git_ref, commit_sha, created_at)
               VALUES (1, 55, 'l', 'r', 'c', 'x');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let (rows, schema) = (db.dump().await, db.schema().await);

    let err = format!("{:#}", db.open().await.unwrap_err());
    assert!(err.contains("cannot upgrade the database") && err.contains("schema level 5"), "{err}");
    assert!(err.contains("task 1 has the unknown status \"runing\""), "{err}");
    assert!(err.contains("UPDATE tasks SET status = 'pending' WHERE id = 1"), "{err}");
    assert!(err.contains("task 2 has malformed dependencies \"[1,\""), "{err}");
    assert!(err.contains("UPDATE tasks SET depends_on = '[]' WHERE id = 2"), "{err}");
    assert!(err.contains("interaction 2 has the unknown outcome \"exploded\""), "{err}");
    assert!(err.contains("gate result 1 has malformed findings \"none\""), "{err}");
    assert!(err.contains("Nothing was changed: the database stays at schema level 4"), "{err}");
    let client = if db.backend() == Backend::Sqlite { "`sqlite3 " } else { "`psql " };
    assert!(err.contains(client), "{err}");
    if db.backend() == Backend::Sqlite {
        assert!(err.contains("file change 2 refers to interaction 77, which does not exist"), "{err}");
        assert!(err.contains("DELETE FROM file_changes WHERE id = 2"), "{err}");
        assert!(err.contains("checkpoint 2 refers to task 55"), "{err}");
        assert!(err.contains("UPDATE checkpoints SET task_id = NULL WHERE id = 2"), "{err}");
    }
    assert_eq!(db.level().await, STRICT_LEVEL - 1);
    assert_eq!(db.dump().await, rows, "nothing was changed");
    assert_eq!(db.schema().await, schema);

    // The repairs the message names are enough.
    db.run(
        "UPDATE tasks SET status = 'pending' WHERE id = 1;
         UPDATE tasks SET depends_on = '[]' WHERE id = 2;
         UPDATE interactions SET outcome = NULL WHERE id = 2;
         UPDATE gate_results SET findings_json = '[]' WHERE id = 1;",
    )
    .await;
    if db.backend() == Backend::Sqlite {
        db.run("DELETE FROM file_changes WHERE id = 2; UPDATE checkpoints SET task_id = NULL WHERE id = 2;").await;
    }
    let state = db.open().await.unwrap();
    assert_eq!(state.schema_level().await.unwrap(), STRICT_LEVEL);
    assert_eq!(state.require_task(1).await.unwrap().status, TaskStatus::Pending);
    assert_eq!(state.tasks(1).await.unwrap().len(), 2);
}

async fn the_migration_alone_rolls_back_on_a_refused_row(db: Fresh) {
    db.at_level(STRICT_LEVEL - 1).await;
    fill_level_4(&db).await;
    db.run("UPDATE breakpoints SET resolution = 'maybe' WHERE id = 2").await;
    let (rows, schema) = (db.dump().await, db.schema().await);
    // Past obra's own check: the migration itself refuses the row and leaves nothing of itself behind.
    let err = db.migrator().run(&db.pool).await.unwrap_err().to_string();
    assert!(err.contains("breakpoints_resolution_known"), "{err}");
    assert_eq!(db.level().await, STRICT_LEVEL - 1);
    assert_eq!(db.dump().await, rows);
    assert_eq!(db.schema().await, schema);
}

async fn the_constraints_hold_every_value_the_code_writes_and_no_other(db: Fresh) {
    db.at_level(STRICT_LEVEL - 1).await;
    fill_level_4(&db).await;
    db.open().await.unwrap().pool.close().await;
    let set = |table: &str, column: &str, value: &str| {
        format!("UPDATE {table} SET {column} = {value} WHERE id = (SELECT MIN(id) FROM {table})")
    };
    for column in COLUMNS {
        let (good, bad): (Vec<String>, Vec<String>) = match column.shape {
            Shape::OneOf(allowed) if column.name == "passed" => {
                (allowed.iter().map(|v| v.to_string()).collect(), vec!["2".into(), "-1".into()])
            }
            Shape::OneOf(allowed) => {
                (allowed.iter().map(|v| format!("'{v}'")).collect(), vec!["'bogus'".into(), "''".into()])
            }
            Shape::TaskIds | Shape::Findings => {
                (vec!["'[]'".into()], vec!["'[1,'".into(), "'{}'".into(), "'3'".into()])
            }
            Shape::JsonObject => (vec!["'{}'".into()], vec!["'{'".into(), "'[]'".into()]),
        };
        for value in good.iter().chain(column.nullable.then(|| "NULL".to_string()).iter()) {
            sqlx::raw_sql(AssertSqlSafe(set(column.table, column.name, value)))
                .execute(&db.pool)
                .await
                .unwrap_or_else(|e| panic!("{}.{} = {value} is refused: {e}", column.table, column.name));
        }
        for value in &bad {
            let refused = sqlx::raw_sql(AssertSqlSafe(set(column.table, column.name, value))).execute(&db.pool).await;
            let err = refused.err().unwrap_or_else(|| panic!("{}.{} = {value} is taken", column.table, column.name));
            assert!(err.to_string().contains(&format!("{}_", column.table)), "{err}");
        }
    }
}

/// Write `sql` past the CHECK constraints, as a hand edit with them switched off would.
async fn corrupt(db: &Fresh, sql: &str) {
    match &db.target {
        Target::Sqlite(path) => {
            let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::raw_sql(AssertSqlSafe(format!("PRAGMA ignore_check_constraints = ON; {sql}")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        Target::Postgres(_) => {
            for (table, name) in CONSTRAINTS {
                db.run(&format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")).await;
            }
            db.run(sql).await;
        }
    }
}

async fn a_corrupt_row_is_an_error_naming_it_on_every_read(db: Fresh) {
    db.at_level(STRICT_LEVEL - 1).await;
    fill_level_4(&db).await;
    let state = db.open().await.unwrap();
    let location = state.location().to_string();
    let expect = |what: &str, err: anyhow::Error, names: &[&str]| {
        let err = format!("{err:#}");
        assert!(err.contains(&format!("the database {location} holds a row obra cannot read")), "{what}: {err}");
        for name in names {
            assert!(err.contains(name), "{what}: {name:?} not in {err}");
        }
        assert!(err.contains("restore a backup"), "{what}: {err}");
    };

    corrupt(&db, "UPDATE tasks SET status = 'runing' WHERE id = 1").await;
    let named = ["task 1 has the unknown status \"runing\"", "UPDATE tasks SET status = 'pending' WHERE id = 1"];
    expect("task", state.require_task(1).await.unwrap_err(), &named);
    expect("tasks", state.tasks(1).await.unwrap_err(), &named);
    expect("list", state.list_tasks(&TaskFilter { project_id: 1, ..Default::default() }).await.unwrap_err(), &named);
    expect("counts", state.task_counts(1).await.unwrap_err(), &named);
    expect("report", state.report(1).await.unwrap_err(), &named);
    // A change that re-reads the dependency graph refuses too, and changes nothing.
    expect("cascade", state.set_task_status(2, TaskStatus::Pending, None).await.unwrap_err(), &named);
    assert!(matches!(state.task(2).await, Ok(Some(t)) if t.status == TaskStatus::Blocked));
    corrupt(&db, "UPDATE tasks SET status = 'pending' WHERE id = 1").await;

    corrupt(&db, "UPDATE tasks SET status = 'pending', depends_on = '[\"1\"]' WHERE id = 2").await;
    let named = ["task 2 has unreadable dependencies", "obra task update 2 --no-deps"];
    expect("deps", state.require_task(2).await.unwrap_err(), &named);
    expect("ready", state.ready_tasks(1).await.unwrap_err(), &named);
    // The repair the message names: new dependencies replace the unreadable ones.
    let repaired = state.update_task(2, &TaskUpdate { depends_on: Some(vec![1]), ..Default::default() }).await.unwrap();
    assert_eq!(repaired.depends_on, vec![1]);

    corrupt(&db, "UPDATE interactions SET status = 'lost', result_json = '[1]' WHERE id = 1").await;
    expect(
        "interactions",
        state.interactions(1).await.unwrap_err(),
        &["interaction 1 has the unknown status \"lost\""],
    );
    corrupt(&db, "UPDATE interactions SET status = 'finished' WHERE id = 1").await;
    expect("result", state.interactions(1).await.unwrap_err(), &["interaction 1 has an unreadable agent result"]);
    expect("samples", state.prompt_token_samples(1, 5).await.unwrap_err(), &["interaction 1"]);
    corrupt(&db, "UPDATE interactions SET result_json = NULL, outcome = 'won' WHERE id = 1").await;
    expect("recent", state.recent_iterations(1, 5).await.unwrap_err(), &["interaction 1 has the unknown outcome"]);
    corrupt(&db, "UPDATE interactions SET outcome = NULL WHERE id = 1").await;

    corrupt(&db, "UPDATE gate_results SET findings_json = '[{\"message\":\"m\"}]' WHERE id = 1").await;
    expect("gates", state.gate_results(1).await.unwrap_err(), &["gate result 1 has unreadable findings"]);
    corrupt(&db, "UPDATE gate_results SET findings_json = '[]', passed = 7 WHERE id = 1").await;
    expect("passed", state.gate_results(1).await.unwrap_err(), &["gate result 1 has the unknown passed flag \"7\""]);

    corrupt(&db, "UPDATE decisions SET action = 'shrug' WHERE id = 1").await;
    expect("decision", state.decision(1).await.unwrap_err(), &["decision 1 has the unknown action \"shrug\""]);
    expect("decision counts", state.report(1).await.unwrap_err(), &["decision 1"]);
    corrupt(&db, "UPDATE decisions SET action = 'proceed', outcome = 'meh' WHERE id = 1").await;
    expect("calibration", state.calibration(1).await.unwrap_err(), &["decision 1 has the unknown outcome \"meh\""]);

    corrupt(&db, "UPDATE breakpoints SET resolution = 'shrug' WHERE id = 1").await;
    expect("breakpoints", state.breakpoints(1, false).await.unwrap_err(), &["breakpoint 1 has the unknown resolution"]);
    corrupt(&db, "UPDATE breakpoints SET resolution = 'cancelled', status = 'ajar' WHERE id = 2").await;
    expect("breakpoint", state.breakpoint(2).await.unwrap_err(), &["breakpoint 2 has the unknown status \"ajar\""]);

    corrupt(&db, "UPDATE file_changes SET kind = 'renamed' WHERE id = 1").await;
    expect("changes", state.file_changes(1).await.unwrap_err(), &["file change 1 has the unknown kind \"renamed\""]);
}
