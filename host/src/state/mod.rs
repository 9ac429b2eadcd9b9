//! The StateManager: the only code in Obra that touches the database.
//!
//! Everything the loop learns is written here before the next step starts, so a killed process resumes
//! where it stood. Every change that touches more than one row is one transaction.

mod models;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use models::*;

use crate::contract::{FileChange, KvStore, RunResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The current time as an RFC 3339 string with milliseconds, the format of every timestamp in the store.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Handle to the store. Cheap to clone; all clones share one connection pool.
#[derive(Clone, Debug)]
pub struct StateManager {
    pool: SqlitePool,
}

impl StateManager {
    /// Open (creating if needed) the SQLite database at `path`, and bring its schema up to date.
    ///
    /// A database written by a newer Obra (one with migrations this build does not know) is refused and
    /// left untouched.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the directory {} for the database", parent.display()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        let state = Self { pool };
        state.migrate(path).await?;
        Ok(state)
    }

    /// Open an in-memory database (for tests and benchmarks).
    pub async fn open_in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        let state = Self { pool };
        state.migrate(Path::new(":memory:")).await?;
        Ok(state)
    }

    async fn migrate(&self, path: &Path) -> Result<()> {
        let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        let has_table: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_optional(&self.pool)
                .await?;
        if has_table.is_some() {
            let applied: Vec<(i64,)> =
                sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(&self.pool).await?;
            if let Some((newer,)) = applied.iter().find(|(v,)| !known.contains(v)) {
                bail!(
                    "the database {} was written by a newer Obra (schema level {newer}; this obra knows up to {}). \
                     Nothing was changed. Upgrade obra, or point --db at another database.",
                    path.display(),
                    known.iter().max().copied().unwrap_or(0)
                );
            }
        }
        MIGRATOR.run(&self.pool).await.with_context(|| format!("cannot upgrade the database {}", path.display()))?;
        Ok(())
    }

    /// The schema level of the database (the highest applied migration).
    pub async fn schema_level(&self) -> Result<i64> {
        let row: (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1").fetch_one(&self.pool).await?;
        Ok(row.0.unwrap_or(0))
    }

    // ----- projects -----

    /// Create a project. Names are unique.
    pub async fn create_project(&self, name: &str, workspace: &Path) -> Result<Project> {
        let name = name.trim();
        if name.is_empty() {
            bail!("a project needs a non-empty name");
        }
        if self.project_by_name(name).await?.is_some() {
            bail!("a project named \"{name}\" already exists");
        }
        let id = sqlx::query("INSERT INTO projects (name, workspace, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(workspace.display().to_string())
            .bind(now())
            .execute(&self.pool)
            .await?
            .last_insert_rowid();
        self.project(id).await?.context("project vanished after insert")
    }

    /// A project by id.
    pub async fn project(&self, id: i64) -> Result<Option<Project>> {
        Ok(sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A project by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        Ok(sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// All projects, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        Ok(sqlx::query_as::<_, Project>("SELECT * FROM projects ORDER BY id").fetch_all(&self.pool).await?)
    }

    // ----- tasks -----

    /// Create a task. Every dependency must be an existing task of the same project.
    pub async fn create_task(&self, new: &NewTask) -> Result<Task> {
        if new.title.trim().is_empty() {
            bail!("a task needs a non-empty title");
        }
        let mut tx = self.pool.begin().await?;
        for dep in &new.depends_on {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT project_id FROM tasks WHERE id = ?").bind(dep).fetch_optional(&mut *tx).await?;
            match row {
                None => bail!("task {dep} (in --depends-on) does not exist; `obra status` lists the tasks"),
                Some((p,)) if p != new.project_id => bail!("task {dep} belongs to another project"),
                Some(_) => {}
            }
        }
        let ts = now();
        let id = sqlx::query(
            "INSERT INTO tasks (project_id, title, description, priority, depends_on, max_iterations, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.project_id)
        .bind(new.title.trim())
        .bind(&new.description)
        .bind(new.priority)
        .bind(serde_json::to_string(&new.depends_on)?)
        .bind(new.max_iterations.map(i64::from))
        .bind(&ts)
        .bind(&ts)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        self.task(id).await?.context("task vanished after insert")
    }

    /// A task by id.
    pub async fn task(&self, id: i64) -> Result<Option<Task>> {
        Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = ?").bind(id).fetch_optional(&self.pool).await?)
    }

    /// A task by id, or an error that says how to find the right id.
    pub async fn require_task(&self, id: i64) -> Result<Task> {
        match self.task(id).await? {
            Some(task) => Ok(task),
            None => bail!("task {id} does not exist; `obra status` lists the tasks of the project"),
        }
    }

    /// The tasks of a project, highest priority first, then oldest first.
    pub async fn tasks(&self, project_id: i64) -> Result<Vec<Task>> {
        Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE project_id = ? ORDER BY priority DESC, id")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Set a task's status and the reason for it.
    pub async fn set_task_status(&self, id: i64, status: TaskStatus, reason: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE tasks SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(reason)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            bail!("task {id} does not exist");
        }
        Ok(())
    }

    // ----- interactions -----

    /// Record that an iteration starts: the interaction row with its prompt, the task's attempt count and
    /// its `running` status, in one transaction. Returns the interaction id.
    pub async fn begin_interaction(&self, task_id: i64, iteration: u32, agent: &str, prompt: &str) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let ts = now();
        let id = sqlx::query(
            "INSERT INTO interactions (task_id, iteration, agent, prompt, started_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(task_id)
        .bind(i64::from(iteration))
        .bind(agent)
        .bind(prompt)
        .bind(&ts)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        sqlx::query(
            "UPDATE tasks SET attempts = attempts + 1, status = 'running', status_reason = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(&ts)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Record what the agent produced (or the error that stopped it) and the files it changed.
    pub async fn finish_interaction(
        &self,
        id: i64,
        result: Result<&RunResult, &str>,
        changes: &[FileChange],
        duration: Duration,
    ) -> Result<()> {
        let changes_json = serde_json::to_string(changes)?;
        let query = match result {
            Ok(r) => sqlx::query(
                "UPDATE interactions SET status = 'finished', outcome = ?, summary = ?, session_id = ?, turns = ?,
                 input_tokens = ?, output_tokens = ?, cost_usd = ?, api_status = ?, exit_code = ?, result_json = ?,
                 changes_json = ?, finished_at = ?, duration_ms = ? WHERE id = ?",
            )
            .bind(r.outcome.as_str())
            .bind(&r.summary)
            .bind(&r.session_id)
            .bind(i64::from(r.turns))
            .bind(r.usage.input_tokens as i64)
            .bind(r.usage.output_tokens as i64)
            .bind(r.usage.cost_usd)
            .bind(r.api_status.map(i64::from))
            .bind(r.exit_code.map(i64::from))
            .bind(serde_json::to_string(r)?),
            Err(error) => sqlx::query(
                "UPDATE interactions SET status = 'failed', error = ?, changes_json = ?, finished_at = ?, duration_ms = ?
                 WHERE id = ?",
            )
            .bind(error),
        };
        query.bind(changes_json).bind(now()).bind(duration.as_millis() as i64).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The interactions of a task, in order.
    pub async fn interactions(&self, task_id: i64) -> Result<Vec<Interaction>> {
        Ok(sqlx::query_as::<_, Interaction>("SELECT * FROM interactions WHERE task_id = ? ORDER BY id")
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The gate results of an interaction, in the order the gates ran.
    pub async fn gate_results(&self, interaction_id: i64) -> Result<Vec<GateResultRow>> {
        Ok(sqlx::query_as::<_, GateResultRow>("SELECT * FROM gate_results WHERE interaction_id = ? ORDER BY id")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The decision made on an interaction, if one was made.
    pub async fn decision(&self, interaction_id: i64) -> Result<Option<DecisionRow>> {
        Ok(sqlx::query_as::<_, DecisionRow>("SELECT * FROM decisions WHERE interaction_id = ? ORDER BY id DESC")
            .bind(interaction_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Record the end of an iteration in one transaction: its gate results, its decision, the task's new
    /// status, and the breakpoint it opens (if any). Returns the breakpoint's id when one was opened.
    pub async fn conclude_iteration(&self, record: &IterationRecord<'_>) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let ts = now();
        for gate in record.gates {
            sqlx::query(
                "INSERT INTO gate_results (interaction_id, gate, passed, score, summary, findings_json, error, duration_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(record.interaction_id)
            .bind(&gate.gate)
            .bind(gate.passed)
            .bind(f64::from(gate.score))
            .bind(&gate.summary)
            .bind(serde_json::to_string(&gate.findings)?)
            .bind(&gate.error)
            .bind(gate.duration_ms as i64)
            .execute(&mut *tx)
            .await?;
        }
        let d = record.decision;
        sqlx::query(
            "INSERT INTO decisions (interaction_id, action, confidence, heuristic_score, llm_score, llm_reasoning,
             explanation, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.interaction_id)
        .bind(d.action.as_str())
        .bind(f64::from(d.confidence))
        .bind(f64::from(d.heuristic_score))
        .bind(d.llm_score.map(f64::from))
        .bind(&d.llm_reasoning)
        .bind(&d.explanation)
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tasks SET status = ?, status_reason = ?, session_id = COALESCE(?, session_id), updated_at = ? WHERE id = ?")
            .bind(record.task_status.as_str())
            .bind(record.status_reason)
            .bind(record.session_id)
            .bind(&ts)
            .bind(record.task_id)
            .execute(&mut *tx)
            .await?;
        let mut breakpoint_id = None;
        if let Some((rule, reason)) = &record.breakpoint {
            breakpoint_id = Some(
                sqlx::query(
                    "INSERT INTO breakpoints (task_id, interaction_id, rule, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(record.task_id)
                .bind(record.interaction_id)
                .bind(rule)
                .bind(reason)
                .bind(&ts)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid(),
            );
        }
        tx.commit().await?;
        Ok(breakpoint_id)
    }

    // ----- breakpoints -----

    /// Breakpoints of a project, newest first; only open ones when `open_only`.
    pub async fn breakpoints(&self, project_id: i64, open_only: bool) -> Result<Vec<Breakpoint>> {
        let sql = if open_only {
            "SELECT b.* FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.project_id = ? AND b.status = 'open' ORDER BY b.id DESC"
        } else {
            "SELECT b.* FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.project_id = ? ORDER BY b.id DESC"
        };
        Ok(sqlx::query_as::<_, Breakpoint>(sql).bind(project_id).fetch_all(&self.pool).await?)
    }

    /// A breakpoint by id.
    pub async fn breakpoint(&self, id: i64) -> Result<Option<Breakpoint>> {
        Ok(sqlx::query_as::<_, Breakpoint>("SELECT * FROM breakpoints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The open breakpoint of a task, if it has one.
    pub async fn open_breakpoint_of_task(&self, task_id: i64) -> Result<Option<Breakpoint>> {
        Ok(sqlx::query_as::<_, Breakpoint>(
            "SELECT * FROM breakpoints WHERE task_id = ? AND status = 'open' ORDER BY id DESC LIMIT 1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The feedback of the most recent breakpoint of a task that was resolved with feedback.
    pub async fn latest_breakpoint_feedback(&self, task_id: i64) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT feedback FROM breakpoints WHERE task_id = ? AND status = 'resolved' AND resolution = 'feedback'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(f,)| f))
    }

    /// Resolve an open breakpoint and move its task on, in one transaction: `approve` completes the task,
    /// `reject` fails it, `feedback` makes it pending again so the next execution carries the feedback.
    pub async fn resolve_breakpoint(&self, id: i64, resolution: Resolution, by: &str) -> Result<Breakpoint> {
        let mut tx = self.pool.begin().await?;
        let bp: Option<Breakpoint> =
            sqlx::query_as("SELECT * FROM breakpoints WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        let Some(bp) = bp else {
            bail!("breakpoint {id} does not exist; `obra breakpoint list` shows the open ones");
        };
        if bp.status != "open" {
            bail!(
                "breakpoint {id} is already resolved ({} by {} at {})",
                bp.resolution.as_deref().unwrap_or("?"),
                bp.resolved_by.as_deref().unwrap_or("?"),
                bp.resolved_at.as_deref().unwrap_or("?")
            );
        }
        let ts = now();
        let (name, feedback, status, reason) = match &resolution {
            Resolution::Approve => {
                ("approve", None, TaskStatus::Completed, format!("approved at breakpoint {id} by {by}"))
            }
            Resolution::Reject => ("reject", None, TaskStatus::Failed, format!("rejected at breakpoint {id} by {by}")),
            Resolution::Feedback(text) => (
                "feedback",
                Some(text.clone()),
                TaskStatus::Pending,
                format!("feedback given at breakpoint {id} by {by}; execute the task again"),
            ),
        };
        sqlx::query(
            "UPDATE breakpoints SET status = 'resolved', resolution = ?, feedback = ?, resolved_by = ?, resolved_at = ?
             WHERE id = ?",
        )
        .bind(name)
        .bind(&feedback)
        .bind(by)
        .bind(&ts)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tasks SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(&reason)
            .bind(&ts)
            .bind(bp.task_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.breakpoint(id).await?.context("breakpoint vanished after update")
    }

    /// Counts of tasks by status for a project.
    pub async fn task_counts(&self, project_id: i64) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM tasks WHERE project_id = ? GROUP BY status ORDER BY status")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("n"))).collect())
    }
}

#[async_trait::async_trait]
impl KvStore for StateManager {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM plugin_kv WHERE plugin = ? AND key = ?")
            .bind(plugin)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(v,)| v))
    }

    async fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(key)
        .bind(value)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM plugin_kv WHERE plugin = ? AND key = ?")
            .bind(plugin)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
