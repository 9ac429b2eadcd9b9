//! The queries of schema level 2: task lists and edits, cancel and retry, git metadata, checkpoints and the
//! activity timeline.

use std::collections::{HashMap, HashSet, VecDeque};

use anyhow::{Result, bail};
use sqlx::AssertSqlSafe;

use super::models::*;
use super::scheduling::check_depth;
use super::{Backend, DbResult, StateManager, now, strict};

/// Numbered placeholders (`$1`, `$2`, ...) for SQL assembled at run time.
#[derive(Default)]
struct Placeholders(usize);

impl Placeholders {
    fn next(&mut self) -> String {
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

    // ----- checkpoints -----

    /// Record a checkpoint. Its task, when it names one, must belong to the project.
    pub async fn record_checkpoint(&self, new: &NewCheckpoint) -> Result<Checkpoint> {
        if let Some(task_id) = new.task_id {
            let task = self.require_task(task_id).await?;
            if task.project_id != new.project_id {
                bail!("task {task_id} belongs to another project, not to project {}", new.project_id);
            }
        }
        sqlx::query_as::<_, Checkpoint>(
            "INSERT INTO checkpoints (project_id, task_id, interaction_id, label, git_ref, commit_sha, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(new.project_id)
        .bind(new.task_id)
        .bind(new.interaction_id)
        .bind(&new.label)
        .bind(&new.git_ref)
        .bind(&new.commit_sha)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .db(self)
    }

    /// The checkpoints of a project (only those of `task` when given), newest first.
    pub async fn checkpoints(&self, project_id: i64, task: Option<i64>) -> Result<Vec<Checkpoint>> {
        match task {
            Some(task_id) => sqlx::query_as::<_, Checkpoint>(
                "SELECT * FROM checkpoints WHERE project_id = $1 AND task_id = $2 ORDER BY id DESC",
            )
            .bind(project_id)
            .bind(task_id),
            None => sqlx::query_as::<_, Checkpoint>("SELECT * FROM checkpoints WHERE project_id = $1 ORDER BY id DESC")
                .bind(project_id),
        }
        .fetch_all(&self.pool)
        .await
        .db(self)
    }

    /// A checkpoint by id.
    pub async fn checkpoint(&self, id: i64) -> Result<Option<Checkpoint>> {
        sqlx::query_as::<_, Checkpoint>("SELECT * FROM checkpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// Record that the workspace was rolled back to a checkpoint and, when given, set a task's status and
    /// reason after the rollback — in one transaction.
    pub async fn mark_rolled_back(
        &self,
        id: i64,
        task_status_after: Option<(i64, TaskStatus, &str)>,
    ) -> Result<Checkpoint> {
        let mut tx = self.begin().await?;
        let ts = now();
        let checkpoint: Option<Checkpoint> =
            sqlx::query_as("UPDATE checkpoints SET rolled_back_at = $1 WHERE id = $2 RETURNING *")
                .bind(&ts)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .db(self)?;
        let Some(checkpoint) = checkpoint else {
            bail!("checkpoint {id} does not exist; `obra checkpoint list` lists them");
        };
        if let Some((task_id, status, reason)) = task_status_after {
            let done = sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(reason)
                .bind(&ts)
                .bind(task_id)
                .execute(&mut *tx)
                .await
                .db(self)?;
            if done.rows_affected() == 0 {
                bail!("task {task_id} does not exist; nothing was rolled back in the store");
            }
            self.unsettle_accepted_decision(&mut tx, task_id, &ts).await?;
            self.cascade_from(&mut tx, task_id, &format!("unblocked: task {task_id} was rolled back")).await?;
        }
        tx.commit().await.db(self)?;
        Ok(checkpoint)
    }

    // ----- activity -----

    /// A project's timeline (only `task`'s when given), oldest first: tasks created, iterations started and
    /// finished, decisions, breakpoints opened and resolved, checkpoints. `after` (a timestamp) skips
    /// everything up to and including it, so a follower can poll with the last `at` it printed.
    pub async fn activity(
        &self,
        project_id: i64,
        task: Option<i64>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ActivityEvent>> {
        self.timeline(project_id, task, after, limit, false).await
    }

    /// The newest `limit` events of [`activity`](Self::activity), oldest first (the tail `obra logs` shows).
    pub async fn latest_activity(&self, project_id: i64, task: Option<i64>, limit: i64) -> Result<Vec<ActivityEvent>> {
        let mut events = self.timeline(project_id, task, None, limit, true).await?;
        events.reverse();
        Ok(events)
    }

    /// The timeline query: oldest first, or with `newest_first` the other way round, at most `limit` events.
    async fn timeline(
        &self,
        project_id: i64,
        task: Option<i64>,
        after: Option<&str>,
        limit: i64,
        newest_first: bool,
    ) -> Result<Vec<ActivityEvent>> {
        let mut n = Placeholders::default();
        let project = n.next();
        let task_param = task.map(|_| n.next());
        let only = |column: &str| task_param.as_ref().map(|p| format!(" AND {column} = {p}")).unwrap_or_default();
        let mut sql = format!(
            "SELECT at, kind, task_id, ref_id, text FROM (
               SELECT t.created_at AS at, 'task_created' AS kind, 1 AS ord, t.id AS task_id, t.id AS ref_id,
                      t.title AS text
                 FROM tasks t WHERE t.project_id = {project}{task_t}
               UNION ALL
               SELECT i.started_at, 'iteration_started', 2, i.task_id, i.id,
                      'iteration ' || CAST(i.iteration AS TEXT) || ' started (' || i.agent || ')'
                 FROM interactions i JOIN tasks t ON t.id = i.task_id WHERE t.project_id = {project}{task_i}
               UNION ALL
               SELECT i.finished_at, 'iteration_finished', 3, i.task_id, i.id,
                      'iteration ' || CAST(i.iteration AS TEXT) || ' ' || i.status
                      || COALESCE(': ' || i.outcome, '') || COALESCE(': ' || i.error, '')
                 FROM interactions i JOIN tasks t ON t.id = i.task_id
                WHERE t.project_id = {project} AND i.finished_at IS NOT NULL{task_i}
               UNION ALL
               SELECT d.created_at, 'decision', 4, i.task_id, d.id, d.action || ': ' || d.explanation
                 FROM decisions d JOIN interactions i ON i.id = d.interaction_id JOIN tasks t ON t.id = i.task_id
                WHERE t.project_id = {project}{task_i}
               UNION ALL
               SELECT b.created_at, 'breakpoint_opened', 5, b.task_id, b.id, b.rule || ': ' || b.reason
                 FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.project_id = {project}{task_b}
               UNION ALL
               SELECT b.resolved_at, 'breakpoint_resolved', 6, b.task_id, b.id,
                      COALESCE(b.resolution, '?') || ' by ' || COALESCE(b.resolved_by, '?')
                 FROM breakpoints b JOIN tasks t ON t.id = b.task_id
                WHERE t.project_id = {project} AND b.resolved_at IS NOT NULL{task_b}
               UNION ALL
               SELECT c.created_at, 'checkpoint', 7, c.task_id, c.id, c.label || ' (' || c.commit_sha || ')'
                 FROM checkpoints c WHERE c.project_id = {project}{task_c}
             ) e",
            task_t = only("t.id"),
            task_i = only("i.task_id"),
            task_b = only("b.task_id"),
            task_c = only("c.task_id"),
        );
        if after.is_some() {
            sql.push_str(&format!(" WHERE e.at > {}", n.next()));
        }
        let order = if newest_first { "e.at DESC, e.ord DESC, e.ref_id DESC" } else { "e.at, e.ord, e.ref_id" };
        sql.push_str(&format!(" ORDER BY {order} LIMIT {}", n.next()));
        let mut query = sqlx::query_as::<_, ActivityEvent>(AssertSqlSafe(sql)).bind(project_id);
        if let Some(task_id) = task {
            query = query.bind(task_id);
        }
        if let Some(after) = after {
            query = query.bind(after);
        }
        query.bind(limit.max(0)).fetch_all(&self.pool).await.db(self)
    }
}
