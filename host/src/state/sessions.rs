//! Agent sessions across iterations and tasks: how full a session's context is, which session a milestone
//! continues, and ending a session when its context is refreshed.

use anyhow::{Result, bail};
use serde::Serialize;

use super::{DbResult, StateManager, now};

/// What an agent session has used so far, over every task that continued it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionUsage {
    /// Agent runs in the session.
    pub interactions: i64,
    /// Prompt tokens added to the session's context (cache reads excluded: they re-read what is there).
    pub input_tokens: i64,
    /// Tokens the agent wrote.
    pub output_tokens: i64,
    /// Whether the session was ended (refreshed), so it must not be resumed.
    pub ended: bool,
}

impl SessionUsage {
    /// Tokens in the session's context: everything sent and written so far.
    pub fn context_tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }
}

impl StateManager {
    /// Put a task in a milestone (none takes it out). Tasks of one milestone continue one agent session.
    pub async fn set_task_milestone(&self, task_id: i64, milestone: Option<&str>) -> Result<()> {
        let milestone = milestone.map(str::trim).filter(|m| !m.is_empty());
        let done = sqlx::query("UPDATE tasks SET milestone = $1, updated_at = $2 WHERE id = $3")
            .bind(milestone)
            .bind(now())
            .bind(task_id)
            .execute(&self.pool)
            .await
            .db(self)?;
        if done.rows_affected() == 0 {
            bail!("task {task_id} does not exist; `obra task list` lists the tasks");
        }
        Ok(())
    }

    /// The usage of agent session `session_id` of `agent`, summed over the tasks that used it.
    pub async fn session_usage(&self, agent: &str, session_id: &str) -> Result<SessionUsage> {
        let row: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(interactions), 0) AS BIGINT), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT),
                    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN ended_reason IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT)
             FROM agent_sessions WHERE agent = $1 AND session_id = $2",
        )
        .bind(agent)
        .bind(session_id)
        .fetch_one(&self.pool)
        .await
        .db(self)?;
        Ok(SessionUsage { interactions: row.0, input_tokens: row.1, output_tokens: row.2, ended: row.3 > 0 })
    }

    /// The session the milestone's tasks last used with `agent` and did not end, for the next task of the
    /// milestone to continue.
    pub async fn milestone_session(&self, project_id: i64, milestone: &str, agent: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT s.session_id FROM agent_sessions s JOIN tasks t ON t.id = s.task_id
             WHERE t.project_id = $1 AND t.milestone = $2 AND s.agent = $3
               AND NOT EXISTS (SELECT 1 FROM agent_sessions e WHERE e.agent = s.agent
                               AND e.session_id = s.session_id AND e.ended_reason IS NOT NULL)
             ORDER BY s.last_used_at DESC, s.id DESC LIMIT 1",
        )
        .bind(project_id)
        .bind(milestone)
        .bind(agent)
        .fetch_optional(&self.pool)
        .await
        .db(self)?;
        Ok(row.map(|(s,)| s))
    }

    /// The final messages of the session's agent runs, oldest first (at most `limit`, the latest ones).
    pub async fn session_summaries(&self, session_id: &str, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT task_id, summary FROM interactions WHERE session_id = $1 AND summary IS NOT NULL
             ORDER BY id DESC LIMIT $2",
        )
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        rows.reverse();
        Ok(rows)
    }

    /// End agent session `session_id` of `agent` (every task's row of it), keeping why and the summary that
    /// carries its context over to the next session.
    pub async fn end_session(&self, agent: &str, session_id: &str, reason: &str, summary: &str) -> Result<()> {
        sqlx::query(
            "UPDATE agent_sessions SET ended_reason = $1, summary = $2 WHERE agent = $3 AND session_id = $4
             AND ended_reason IS NULL",
        )
        .bind(reason)
        .bind(summary)
        .bind(agent)
        .bind(session_id)
        .execute(&self.pool)
        .await
        .db(self)?;
        Ok(())
    }

    /// Forget a task's session (after a refresh), so its next execution starts a new one.
    pub async fn clear_task_session(&self, task_id: i64) -> Result<()> {
        sqlx::query("UPDATE tasks SET session_id = NULL WHERE id = $1")
            .bind(task_id)
            .execute(&self.pool)
            .await
            .db(self)?;
        Ok(())
    }
}
