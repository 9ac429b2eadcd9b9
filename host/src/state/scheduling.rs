//! The store's side of scheduling: tasks `blocked` behind a failed or cancelled dependency (set and lifted
//! in the same transaction as the change that causes it), the dependency-depth limit, tasks that wait for
//! an agent's rate limit to reset, and the recovery of tasks a killed process left `running`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use anyhow::{Result, bail};

use super::models::{Task, TaskStatus};
use super::{DbResult, StateManager, Tx, now, strict};

/// The seeds' limit on dependency chains (`engine.max_dependency_depth`).
pub const DEFAULT_MAX_DEPENDENCY_DEPTH: usize = 10;

/// Longest excerpt of a failed task's reason quoted in its dependents' reasons.
const QUOTED_REASON_CHARS: usize = 200;

/// What the blocking rules need of a task.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GraphRow {
    pub id: i64,
    pub title: String,
    pub status: TaskStatus,
    pub status_reason: Option<String>,
    pub depends_on: Vec<i64>,
}

/// A status change the blocking rules make.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change {
    pub id: i64,
    pub status: TaskStatus,
    pub reason: String,
}

/// `text` on one line, at most `max` characters.
fn excerpt(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max { line.chars().take(max).collect::<String>() + "..." } else { line }
}

/// Task ids in an order that puts each after its dependencies (within `rows`); tasks on a cycle are left
/// out (the store refuses to create one).
pub(super) fn topological(rows: &HashMap<i64, GraphRow>) -> Vec<i64> {
    let mut waiting: HashMap<i64, usize> = rows.keys().map(|id| (*id, 0)).collect();
    let mut dependents: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in rows.values() {
        for dep in row.depends_on.iter().filter(|d| rows.contains_key(d)) {
            *waiting.get_mut(&row.id).expect("every row is counted") += 1;
            dependents.entry(*dep).or_default().push(row.id);
        }
    }
    let mut free: Vec<i64> = waiting.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
    free.sort_unstable_by(|a, b| b.cmp(a));
    let mut order = Vec::with_capacity(rows.len());
    while let Some(id) = free.pop() {
        order.push(id);
        for dependent in dependents.get(&id).map(Vec::as_slice).unwrap_or_default() {
            let n = waiting.get_mut(dependent).expect("every row is counted");
            *n -= 1;
            if *n == 0 {
                free.push(*dependent);
            }
        }
    }
    order
}

/// What the blocking rules say about the backlog `rows`: every pending task that depends, directly or
/// through blocked tasks, on a failed or cancelled one becomes `blocked` with a reason naming the chain;
/// every blocked task that no longer does becomes `pending` with `unblocked_reason`; a blocked task whose
/// chain changed gets the new reason. A paused dependency blocks nothing: a human resolves it.
pub(super) fn plan(rows: &HashMap<i64, GraphRow>, unblocked_reason: &str) -> Vec<Change> {
    // The root (failed or cancelled task) each task is blocked behind, as the rules leave it.
    let mut root: HashMap<i64, i64> = HashMap::new();
    let mut changes = Vec::new();
    for id in topological(rows) {
        let row = &rows[&id];
        match row.status {
            TaskStatus::Failed | TaskStatus::Cancelled => {
                root.insert(id, id);
            }
            TaskStatus::Pending | TaskStatus::Blocked => {
                let blocker = row.depends_on.iter().find_map(|dep| root.get(dep).map(|r| (*dep, *r)));
                match blocker {
                    Some((dep, r)) => {
                        root.insert(id, r);
                        let reason = blocked_reason(&rows[&dep], &rows[&r]);
                        if row.status != TaskStatus::Blocked || row.status_reason.as_deref() != Some(&reason) {
                            changes.push(Change { id, status: TaskStatus::Blocked, reason });
                        }
                    }
                    None if row.status == TaskStatus::Blocked => {
                        changes.push(Change { id, status: TaskStatus::Pending, reason: unblocked_reason.into() })
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    changes
}

/// "blocked: depends on task 3 (Add parser), which failed: ..." or, through a blocked task, "blocked:
/// depends on task 5 (Wire it), blocked by task 3 (Add parser) which failed".
fn blocked_reason(dep: &GraphRow, root: &GraphRow) -> String {
    let what = |row: &GraphRow| if row.status == TaskStatus::Cancelled { "was cancelled" } else { "failed" };
    if dep.id == root.id {
        let why = match root.status_reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => format!(": {}", excerpt(r, QUOTED_REASON_CHARS)),
            None => String::new(),
        };
        format!("blocked: depends on task {} ({}), which {}{why}", dep.id, excerpt(&dep.title, 80), what(root))
    } else {
        format!(
            "blocked: depends on task {} ({}), blocked by task {} ({}) which {}",
            dep.id,
            excerpt(&dep.title, 80),
            root.id,
            excerpt(&root.title, 80),
            what(root)
        )
    }
}

/// The failed or cancelled task a blocked task waits behind (nearest first), if any.
pub(super) fn root_of(rows: &HashMap<i64, GraphRow>, id: i64) -> Option<i64> {
    let mut seen = HashSet::from([id]);
    let mut queue = VecDeque::from([id]);
    while let Some(at) = queue.pop_front() {
        for dep in rows.get(&at).map(|r| r.depends_on.as_slice()).unwrap_or_default() {
            match rows.get(dep).map(|r| r.status) {
                Some(TaskStatus::Failed | TaskStatus::Cancelled) => return Some(*dep),
                Some(TaskStatus::Blocked) if seen.insert(*dep) => queue.push_back(*dep),
                _ => {}
            }
        }
    }
    None
}

/// The longest dependency chain through `task` in the acyclic `graph` (task -> the tasks it depends on),
/// from its first task to its last.
pub(super) fn longest_chain_through(graph: &HashMap<i64, Vec<i64>>, task: i64) -> Vec<i64> {
    let rows: HashMap<i64, GraphRow> = graph
        .iter()
        .map(|(id, deps)| {
            let row = GraphRow {
                id: *id,
                title: String::new(),
                status: TaskStatus::Pending,
                status_reason: None,
                depends_on: deps.clone(),
            };
            (*id, row)
        })
        .collect();
    let order = topological(&rows);
    // Longest chain ending at each task (through its dependencies) and starting at it (through its
    // dependents), as a length and the next task on it.
    let mut up: HashMap<i64, (usize, Option<i64>)> = HashMap::with_capacity(order.len());
    for id in &order {
        let best = graph[id].iter().filter_map(|d| up.get(d).map(|(n, _)| (*n, *d))).max();
        up.insert(*id, best.map_or((1, None), |(n, d)| (n + 1, Some(d))));
    }
    let mut dependents: HashMap<i64, Vec<i64>> = HashMap::new();
    for (id, deps) in graph {
        for d in deps {
            dependents.entry(*d).or_default().push(*id);
        }
    }
    let mut down: HashMap<i64, (usize, Option<i64>)> = HashMap::with_capacity(order.len());
    for id in order.iter().rev() {
        let best = dependents
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| down.get(t).map(|(n, _)| (*n, *t)))
            .max();
        down.insert(*id, best.map_or((1, None), |(n, t)| (n + 1, Some(t))));
    }
    let mut chain = Vec::new();
    let mut at = Some(task);
    while let Some(id) = at {
        chain.push(id);
        at = up.get(&id).and_then(|(_, next)| *next);
    }
    chain.reverse();
    let mut at = down.get(&task).and_then(|(_, next)| *next);
    while let Some(id) = at {
        chain.push(id);
        at = down.get(&id).and_then(|(_, next)| *next);
    }
    chain
}

/// Refuse a dependency change that makes a chain through `task` longer than `limit` tasks (0: no limit).
/// With `shown_as_new`, `task` is a placeholder id for a task being created (shown as "the new task").
pub(super) fn check_depth(graph: &HashMap<i64, Vec<i64>>, task: i64, shown_as_new: bool, limit: usize) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let chain = longest_chain_through(graph, task);
    if chain.len() <= limit {
        return Ok(());
    }
    let name = |id: &i64| if shown_as_new && *id == task { "new".to_string() } else { id.to_string() };
    let shown: Vec<String> = chain.iter().map(name).collect();
    let subject = if shown_as_new { "the new task".to_string() } else { format!("task {task}") };
    bail!(
        "{subject} would be on a dependency chain of {} tasks ({}), longer than engine.max_dependency_depth \
         ({limit}) allows; depend on a task nearer the start of the chain, or raise the limit (e.g. \
         --set engine.max_dependency_depth={}). Nothing was changed.",
        chain.len(),
        shown.join(" → "),
        chain.len()
    )
}

impl StateManager {
    /// The dependency graph rows of a project, read on `conn` (a transaction's, or a pooled one).
    pub(super) async fn graph_rows(
        &self,
        conn: &mut sqlx::AnyConnection,
        project_id: i64,
    ) -> Result<HashMap<i64, GraphRow>> {
        let rows: Vec<(i64, String, String, Option<String>, String)> =
            sqlx::query_as("SELECT id, title, status, status_reason, depends_on FROM tasks WHERE project_id = $1")
                .bind(project_id)
                .fetch_all(&mut *conn)
                .await
                .db(self)?;
        let mut graph = HashMap::with_capacity(rows.len());
        for (id, title, status, status_reason, depends_on) in rows {
            let row = GraphRow {
                id,
                title,
                status: strict::task_status(id, &status).db(self)?,
                status_reason,
                depends_on: strict::task_ids(id, &depends_on).db(self)?,
            };
            graph.insert(id, row);
        }
        Ok(graph)
    }

    /// Apply the blocking rules ([`plan`]) to a project inside `tx`: the caller's change and the cascade it
    /// causes commit together. Returns the tasks changed.
    pub(super) async fn cascade(&self, tx: &mut Tx, project_id: i64, unblocked_reason: &str) -> Result<Vec<Change>> {
        let rows = self.graph_rows(tx, project_id).await?;
        let changes = plan(&rows, unblocked_reason);
        let ts = now();
        for change in &changes {
            sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
                .bind(change.status.as_str())
                .bind(&change.reason)
                .bind(&ts)
                .bind(change.id)
                .execute(&mut **tx)
                .await
                .db(self)?;
        }
        Ok(changes)
    }

    /// [`cascade`](Self::cascade) for the project of `task_id`.
    pub(super) async fn cascade_from(&self, tx: &mut Tx, task_id: i64, unblocked_reason: &str) -> Result<()> {
        let project: Option<(i64,)> = sqlx::query_as("SELECT project_id FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&mut **tx)
            .await
            .db(self)?;
        if let Some((project_id,)) = project {
            self.cascade(tx, project_id, unblocked_reason).await?;
        }
        Ok(())
    }

    /// The error for retrying a blocked task: it names the task to retry instead.
    pub(super) async fn blocked_retry_error(&self, task: &Task) -> anyhow::Error {
        let root = async {
            let mut conn = self.pool.acquire().await.db(self)?;
            let rows = self.graph_rows(&mut conn, task.project_id).await?;
            Ok::<_, anyhow::Error>(root_of(&rows, task.id).and_then(|r| rows.get(&r).cloned()))
        }
        .await;
        match root {
            Ok(Some(root)) => anyhow::anyhow!(
                "task {} is blocked: it waits behind task {} ({}), which {}. Retry that one: `obra task retry {}` \
                 (its blocked dependents become pending with it)",
                task.id,
                root.id,
                root.title,
                if root.status == TaskStatus::Cancelled { "was cancelled" } else { "failed" },
                root.id
            ),
            Ok(None) | Err(_) => anyhow::anyhow!(
                "task {} is blocked ({}); retry the failed or cancelled task it depends on",
                task.id,
                task.status_reason.as_deref().unwrap_or("no reason recorded")
            ),
        }
    }

    /// Put a task back to `pending` until `resume_after` because its agent hit a rate limit or quota, keeping
    /// the agent session (`session_id`, when given, replaces the stored one) so the same session resumes. A
    /// cancelled task stays cancelled ([`super::TaskCancelled`]).
    pub async fn pause_for_rate_limit(
        &self,
        task_id: i64,
        resume_after: SystemTime,
        reason: &str,
        session_id: Option<&str>,
    ) -> Result<Task> {
        let task: Option<Task> = sqlx::query_as(
            "UPDATE tasks SET status = 'pending', status_reason = $1, resume_after = $2,
             session_id = COALESCE($3, session_id), updated_at = $4 WHERE id = $5 AND status <> 'cancelled'
             RETURNING *",
        )
        .bind(reason)
        .bind(humantime::format_rfc3339_millis(resume_after).to_string())
        .bind(session_id)
        .bind(now())
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await
        .db(self)?;
        match task {
            Some(task) => Ok(task),
            None => {
                self.require_task(task_id).await?;
                Err(super::TaskCancelled { task_id }.into())
            }
        }
    }

    /// Recover a project's tasks that a killed or crashed process left `running`, in one transaction: their
    /// unfinished interactions become `interrupted` (finished now, with a summary saying so) and each task
    /// returns to `pending` with its agent session kept, so the next execution resumes that session. Call it
    /// only while holding the project's run lock (no other process can be executing them). Returns the
    /// recovered tasks.
    pub async fn recover_interrupted(&self, project_id: i64) -> Result<Vec<Task>> {
        let mut tx = self.begin().await?;
        let running: Vec<Task> = sqlx::query_as("SELECT * FROM tasks WHERE project_id = $1 AND status = 'running'")
            .bind(project_id)
            .fetch_all(&mut *tx)
            .await
            .db(self)?;
        let ts = now();
        let mut recovered = Vec::with_capacity(running.len());
        for task in running {
            let last: Option<(i64,)> =
                sqlx::query_as("SELECT iteration FROM interactions WHERE task_id = $1 ORDER BY id DESC LIMIT 1")
                    .bind(task.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .db(self)?;
            sqlx::query(
                "UPDATE interactions SET status = 'interrupted', finished_at = $1,
                 summary = 'interrupted: the obra process running this iteration stopped before it finished; \
                 the task resumes the same agent session'
                 WHERE task_id = $2 AND status = 'running'",
            )
            .bind(&ts)
            .bind(task.id)
            .execute(&mut *tx)
            .await
            .db(self)?;
            let reason = match last {
                Some((iteration,)) => {
                    format!("interrupted during iteration {iteration}; resumes the same agent session")
                }
                None => "interrupted before its first iteration".to_string(),
            };
            let task: Task = sqlx::query_as(
                "UPDATE tasks SET status = 'pending', status_reason = $1, updated_at = $2 WHERE id = $3 RETURNING *",
            )
            .bind(&reason)
            .bind(&ts)
            .bind(task.id)
            .fetch_one(&mut *tx)
            .await
            .db(self)?;
            recovered.push(task);
        }
        tx.commit().await.db(self)?;
        Ok(recovered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use TaskStatus::{Blocked, Cancelled, Completed, Failed, Paused, Pending};

    fn rows(list: &[(i64, TaskStatus, &[i64])]) -> HashMap<i64, GraphRow> {
        list.iter()
            .map(|(id, status, deps)| {
                let row = GraphRow {
                    id: *id,
                    title: format!("T{id}"),
                    status: *status,
                    status_reason: (*status == Failed).then(|| "tests failed".to_string()),
                    depends_on: deps.to_vec(),
                };
                (*id, row)
            })
            .collect()
    }

    fn apply(rows: &mut HashMap<i64, GraphRow>, changes: &[Change]) {
        for c in changes {
            let row = rows.get_mut(&c.id).unwrap();
            row.status = c.status;
            row.status_reason = Some(c.reason.clone());
        }
    }

    #[test]
    fn a_failure_blocks_its_pending_dependents_transitively_and_names_the_chain() {
        let mut r = rows(&[
            (1, Failed, &[]),
            (2, Pending, &[1]),
            (3, Pending, &[2]),
            (4, Pending, &[]),
            (5, Paused, &[]),
            (6, Pending, &[5]),
            (7, Completed, &[1]),
            (8, Pending, &[7]),
        ]);
        let changes = plan(&r, "unblocked");
        let ids: Vec<(i64, TaskStatus)> = changes.iter().map(|c| (c.id, c.status)).collect();
        assert_eq!(ids, vec![(2, Blocked), (3, Blocked)], "a paused or completed dependency blocks nothing");
        assert_eq!(changes[0].reason, "blocked: depends on task 1 (T1), which failed: tests failed");
        assert_eq!(changes[1].reason, "blocked: depends on task 2 (T2), blocked by task 1 (T1) which failed");
        apply(&mut r, &changes);
        assert!(plan(&r, "unblocked").is_empty(), "applying the plan settles it");

        // Retrying the root unblocks the whole chain.
        r.get_mut(&1).unwrap().status = Pending;
        let changes = plan(&r, "unblocked: task 1 was retried");
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.status == Pending && c.reason == "unblocked: task 1 was retried"));
    }

    #[test]
    fn a_task_blocked_behind_two_roots_stays_blocked_until_both_are_retried() {
        let mut r = rows(&[(1, Failed, &[]), (2, Cancelled, &[]), (3, Pending, &[1, 2])]);
        let changes = plan(&r, "-");
        apply(&mut r, &changes);
        assert_eq!(r[&3].status, Blocked);
        assert_eq!(root_of(&r, 3), Some(1));
        r.get_mut(&1).unwrap().status = Pending;
        let changes = plan(&r, "-");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].status, Blocked);
        assert!(changes[0].reason.contains("task 2 (T2), which was cancelled"), "{}", changes[0].reason);
        apply(&mut r, &changes);
        assert_eq!(root_of(&r, 3), Some(2));
    }

    #[test]
    fn the_longest_chain_through_a_task_runs_through_its_dependencies_and_its_dependents() {
        let graph: HashMap<i64, Vec<i64>> =
            [(1, vec![]), (2, vec![1]), (3, vec![2]), (4, vec![3]), (5, vec![]), (6, vec![5, 2])].into();
        assert_eq!(longest_chain_through(&graph, 2), vec![1, 2, 3, 4]);
        assert_eq!(longest_chain_through(&graph, 6), vec![1, 2, 6]);
        assert_eq!(longest_chain_through(&graph, 5), vec![5, 6]);
        assert!(check_depth(&graph, 2, false, 4).is_ok());
        assert!(check_depth(&graph, 2, false, 0).is_ok(), "0 is no limit");
        let err = check_depth(&graph, 2, false, 3).unwrap_err().to_string();
        assert!(err.contains("task 2 would be on a dependency chain of 4 tasks (1 → 2 → 3 → 4)"), "{err}");
        assert!(err.contains("engine.max_dependency_depth (3)") && err.contains("Nothing was changed"), "{err}");
    }
}
