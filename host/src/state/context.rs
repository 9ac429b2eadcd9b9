//! Queries the prompt's context builder needs beyond the per-row reads: calibration samples of prompt size
//! against the tokens agents reported.

use anyhow::Result;
use sqlx::Row;

use super::{DbResult, StateManager, strict};

/// How many of the store's newest one-turn runs the samples are taken from (all projects), so the query's
/// cost stays flat however long the store's history grows.
const SAMPLE_WINDOW: i64 = 200;

impl StateManager {
    /// Up to `limit` of the project's newest finished interactions (among the store's newest
    /// [`SAMPLE_WINDOW`]) that ran in one turn and reported input tokens, as (prompt length in characters, input tokens + cache tokens). A one-turn run read the prompt
    /// once, so these pairs calibrate characters per token.
    pub async fn prompt_token_samples(&self, project_id: i64, limit: i64) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT i.id AS id, CAST(LENGTH(i.prompt) AS BIGINT) AS chars, i.input_tokens AS tokens,
                    i.result_json AS result
               FROM interactions i JOIN tasks t ON t.id = i.task_id
              WHERE i.id IN (SELECT id FROM interactions ORDER BY id DESC LIMIT $3)
                AND t.project_id = $1 AND i.input_tokens > 0 AND i.turns <= 1
              ORDER BY i.id DESC LIMIT $2",
        )
        .bind(project_id)
        .bind(limit)
        .bind(SAMPLE_WINDOW)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut samples = Vec::with_capacity(rows.len());
        for row in rows {
            let chars: i64 = row.try_get("chars").db(self)?;
            let mut tokens: i64 = row.try_get("tokens").db(self)?;
            // Cache reads and writes are prompt tokens too (the agent reports them apart).
            let id: i64 = row.try_get("id").db(self)?;
            let result: Option<String> = row.try_get("result").db(self)?;
            strict::text(&strict::INTERACTION_RESULT, id, result.as_deref()).db(self)?;
            let result: Option<serde_json::Value> = result.map(|r| serde_json::from_str(&r)).transpose()?;
            if let Some(usage) = result.as_ref().and_then(|v| v.get("usage")) {
                for key in ["cache_read_tokens", "cache_write_tokens"] {
                    tokens += usage.get(key).and_then(serde_json::Value::as_i64).unwrap_or(0);
                }
            }
            samples.push((chars, tokens));
        }
        Ok(samples)
    }
}
