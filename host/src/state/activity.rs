//! The activity timeline: what happened in a project (or to one task), oldest first, for `obra logs` and its
//! followers.

use anyhow::Result;
use sqlx::AssertSqlSafe;

use super::models::*;
use super::tasks::Placeholders;
use super::{DbResult, StateManager};

impl StateManager {
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
