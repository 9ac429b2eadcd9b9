//! The task aggregate's queries beyond creating and running one: lists and the ready set, edits (with the
//! dependency checks), cancel and retry, and a task's git metadata.

use std::collections::{HashMap, HashSet, VecDeque};

use anyhow::{Result, bail};
use sqlx::AssertSqlSafe;

use super::models::*;
use super::scheduling::check_depth;
use super::{Backend, DbResult, StateManager, now, strict};

/// Numbered placeholders (`$1`, `$2`, ...) for SQL assembled at run time.
#[derive(Default)]
pub(super) struct Placeholders(usize);

impl Placeholders {
    pub(super) fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}

/// `text` as a LIKE pattern that matches it anywhere, with `!` as the escape character.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The path `from → ... → to` along `depends_on` edges, if `to` is reachable from `from`.
fn dependency_path(graph: &HashMap<i64, Vec<i64>>, from: i64, to: i64) -> Option<Vec<i64>> {
    let mut came_from: HashMap<i64, i64> = HashMap::new();
    let mut seen = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            let mut at = to;
            while let Some(&prev) = came_from.get(&at) {
                path.push(prev);
                at = prev;
            }
            path.reverse();
            return Some(path);
        }
        for &next in graph.get(&node).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

impl StateManager {
    /// The tasks of a project that match `filter`, highest priority first, then oldest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let mut n = Placeholders::default();
        let mut sql = format!("SELECT * FROM tasks WHERE project_id = {}", n.next());
        if !filter.statuses.is_empty() {
            let list: Vec<String> = filter.statuses.iter().map(|_| n.next()).collect();
            sql.push_str(&format!(" AND status IN ({})", list.join(", ")));
        }
        if filter.min_priority.is_some() {
            sql.push_str(&format!(" AND priority >= {}", n.next()));
        }
        let pattern = filter.title_contains.as_deref().filter(|t| !t.is_empty()).map(contains_pattern);
        if pattern.is_some() {
            sql.push_str(&format!(" AND LOWER(title) LIKE {} ESCAPE '!'", n.next()));
        }
        sql.push_str(" ORDER BY priority DESC, id");
        if filter.limit.is_some() {
            sql.push_str(&format!(" LIMIT {}", n.next()));
        }
        let mut query = sqlx::query_as::<_, Task>(AssertSqlSafe(sql)).bind(filter.project_id);
        for status in &filter.statuses {
            query = query.bind(status.as_str());
        }
        if let Some(min) = filter.min_priority {
            query = query.bind(min);
        }
        if let Some(pattern) = pattern {
            query = query.bind(pattern);
        }
        if let Some(limit) = filter.limit {
            query = query.bind(limit.max(0));
        }
        query.fetch_all(&self.pool).await.db(self)
    }

    /// The pending tasks of a project whose dependencies are all completed and that wait for no rate limit
    /// to reset: what can be executed now, highest priority first, then oldest first.
    pub async fn ready_tasks(&self, project_id: i64) -> Result<Vec<Task>> {
        let now = std::time::SystemTime::now();
        let mut pending = self
            .list_tasks(&TaskFilter { project_id, statuses: vec![TaskStatus::Pending], ..TaskFilter::default() })
            .await?;
        pending.retain(|t| {
            t.resume_after.as_deref().and_then(|at| humantime::parse_rfc3339_weak(at).ok()).is_none_or(|at| at <= now)
        });
        if pending.iter().all(|t| t.dependencies().is_empty()) {
            return Ok(pending);
        }
        let completed: HashSet<i64> =
            sqlx::query_as::<_, (i64,)>("SELECT id FROM tasks WHERE project_id = $1 AND status = 'completed'")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await
                .db(self)?
                .into_iter()
                .map(|(id,)| id)
                .collect();
        Ok(pending.into_iter().filter(|t| t.dependencies().iter().all(|d| completed.contains(d))).collect())
    }

    /// Change a task's title, description, priority or dependencies, in one transaction.
    ///
    /// New dependencies must be existing tasks of the same project, not the task itself, must not close
    /// a cycle (the error names the cycle) and must not make a chain longer than the dependency-depth limit
    /// (the error names the chain). Nothing is changed when it fails. With new dependencies, the task is
    /// blocked or unblocked to match them, in the same transaction.
    pub async fn update_task(&self, id: i64, update: &TaskUpdate) -> Result<Task> {
        if update.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            bail!("a task needs a non-empty title");
        }
        let mut tx = self.begin().await?;
        // Only the project is read first: new dependencies replace the stored ones, which is how a task whose
        // stored dependencies cannot be read is repaired (`obra task update ID --no-deps`).
        let project: Option<(i64,)> = sqlx::query_as("SELECT project_id FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .db(self)?;
        let Some((project_id,)) = project else {
            bail!("task {id} does not exist; `obra status` lists the tasks of the project");
        };
        let mut depends_on = None;
        if let Some(deps) = &update.depends_on {
            let mut deps = deps.clone();
            let mut seen = HashSet::new();
            deps.retain(|d| seen.insert(*d));
            if self.backend == Backend::Postgres {
                // Under read committed, two edits could each check the graph without the other's new edge and
                // together close a cycle: the dependency edits of one project take turns on its row. (SQLite's
                // `BEGIN IMMEDIATE` already makes every write transaction take turns.)
                sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
                    .bind(project_id)
                    .execute(&mut *tx)
                    .await
                    .db(self)?;
            }
            let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, depends_on FROM tasks WHERE project_id = $1")
                .bind(project_id)
                .fetch_all(&mut *tx)
                .await
                .db(self)?;
            let mut graph: HashMap<i64, Vec<i64>> = HashMap::with_capacity(rows.len());
            for (t, d) in rows {
                // The task's own stored list is being replaced: it need not be readable.
                let deps = if t == id { Vec::new() } else { strict::task_ids(t, &d).db(self)? };
                graph.insert(t, deps);
            }
            for &dep in &deps {
                if dep == id {
                    bail!("task {id} cannot depend on itself");
                }
                if !graph.contains_key(&dep) {
                    let exists: Option<(i64,)> = sqlx::query_as("SELECT project_id FROM tasks WHERE id = $1")
                        .bind(dep)
                        .fetch_optional(&mut *tx)
                        .await
                        .db(self)?;
                    match exists {
                        Some(_) => bail!("task {dep} belongs to another project; task {id} cannot depend on it"),
                        None => bail!("task {dep} (in --depends-on) does not exist; `obra status` lists the tasks"),
                    }
                }
            }
            graph.insert(id, deps.clone());
            for &dep in &deps {
                if let Some(path) = dependency_path(&graph, dep, id) {
                    let shown: Vec<String> = path.iter().map(i64::to_string).collect();
                    bail!("task {id} cannot depend on {dep}: {dep} already depends on {id} ({})", shown.join(" → "));
                }
            }
            check_depth(&graph, id, false, self.max_dependency_depth)?;
            depends_on = Some(Task::ids_text(&deps));
        }
        let updated = sqlx::query_as::<_, Task>(
            "UPDATE tasks SET title = COALESCE($1, title), description = COALESCE($2, description),
             priority = COALESCE($3, priority), depends_on = COALESCE($4, depends_on), updated_at = $5
             WHERE id = $6 RETURNING *",
        )
        .bind(update.title.as_deref().map(str::trim))
        .bind(&update.description)
        .bind(update.priority)
        .bind(&depends_on)
        .bind(now())
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        if depends_on.is_some()
            && !self.cascade(&mut tx, project_id, "unblocked: its dependencies changed").await?.is_empty()
        {
            let updated = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .db(self)?;
            tx.commit().await.db(self)?;
            return Ok(updated);
        }
        tx.commit().await.db(self)?;
        Ok(updated)
    }

    /// Cancel a task, in one transaction: its status becomes `cancelled` with `reason`, its open
    /// breakpoints are resolved as `cancelled`, and its pending dependents (directly or not) become
    /// `blocked`. Completed and already cancelled tasks are refused.
    pub async fn cancel_task(&self, id: i64, reason: &str) -> Result<Task> {
        let mut tx = self.begin().await?;
        let task: Option<Task> =
            sqlx::query_as("SELECT * FROM tasks WHERE id = $1").bind(id).fetch_optional(&mut *tx).await.db(self)?;
        let Some(task) = task else {
            bail!("task {id} does not exist; `obra status` lists the tasks of the project");
        };
        match task.status() {
            TaskStatus::Completed => bail!("task {id} is already completed; there is nothing to cancel"),
            TaskStatus::Cancelled => bail!(
                "task {id} is already cancelled ({}); `obra task retry {id}` makes it pending again",
                task.status_reason.as_deref().unwrap_or("no reason given")
            ),
            _ => {}
        }
        let ts = now();
        let reason = if reason.trim().is_empty() { "cancelled" } else { reason.trim() };
        sqlx::query(
            "UPDATE breakpoints SET status = 'resolved', resolution = 'cancelled', resolved_by = 'obra',
             resolved_at = $1 WHERE task_id = $2 AND status = 'open'",
        )
        .bind(&ts)
        .bind(id)
        .execute(&mut *tx)
        .await
        .db(self)?;
        let cancelled = sqlx::query_as::<_, Task>(
            "UPDATE tasks SET status = 'cancelled', status_reason = $1, updated_at = $2 WHERE id = $3 RETURNING *",
        )
        .bind(reason)
        .bind(&ts)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        self.cascade(&mut tx, task.project_id, "unblocked").await?;
        tx.commit().await.db(self)?;
        Ok(cancelled)
    }

    /// Make a failed or cancelled task pending again (reason "retry requested"), and in the same transaction
    /// return the tasks blocked behind it to `pending` ("unblocked: task N was retried"); they wait for it
    /// and run when it completes. A blocked task is refused with an error naming the task to retry; other
    /// tasks are refused too. The result is the task as it is now (`blocked` again when another dependency
    /// of it still failed).
    pub async fn retry_task(&self, id: i64) -> Result<Task> {
        let mut tx = self.begin().await?;
        let retried: Option<Task> = sqlx::query_as(
            "UPDATE tasks SET status = 'pending', status_reason = 'retry requested', updated_at = $1
             WHERE id = $2 AND status IN ('failed', 'cancelled') RETURNING *",
        )
        .bind(now())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db(self)?;
        if let Some(task) = retried {
            self.cascade(&mut tx, task.project_id, &format!("unblocked: task {id} was retried")).await?;
            let task = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .db(self)?;
            tx.commit().await.db(self)?;
            return Ok(task);
        }
        tx.rollback().await.db(self)?;
        let task = self.require_task(id).await?;
        if task.status() == TaskStatus::Blocked {
            return Err(self.blocked_retry_error(&task).await);
        }
        bail!("task {id} is {}; only failed or cancelled tasks can be retried", task.status)
    }

    /// Record a task's git metadata: its branch, the commit the branch started from, and the commit with
    /// its work. `None` leaves a field as it is.
    pub async fn set_task_git(
        &self,
        id: i64,
        branch: Option<&str>,
        base_commit: Option<&str>,
        commit: Option<&str>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE tasks SET git_branch = COALESCE($1, git_branch), git_base_commit = COALESCE($2, git_base_commit),
             git_commit = COALESCE($3, git_commit), updated_at = $4 WHERE id = $5",
        )
        .bind(branch)
        .bind(base_commit)
        .bind(commit)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await
        .db(self)?;
        if done.rows_affected() == 0 {
            bail!("task {id} does not exist; `obra status` lists the tasks of the project");
        }
        Ok(())
    }
}
