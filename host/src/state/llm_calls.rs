//! Every attempt of every call the loop makes to the LLM (its opinion, an error analysis, a session summary,
//! ...), with its duration, tokens and error: what `obra report` and `task show` count.

use anyhow::Result;
use serde::Serialize;

use super::{DbResult, StateManager, now};

/// One attempt of an LLM call, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLlmCall<'a> {
    /// The task the call was about.
    pub task_id: i64,
    /// The agent run it judged, if any.
    pub interaction_id: Option<i64>,
    /// What it was for: `opinion`, `error-analysis`, `clarification`, `session-summary`, ...
    pub purpose: &'a str,
    /// The provider plugin.
    pub provider: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How long it took, ms.
    pub duration_ms: u64,
    /// Prompt tokens, when the provider reported them.
    pub input_tokens: Option<u64>,
    /// Output tokens, when reported.
    pub output_tokens: Option<u64>,
    /// Why the attempt failed (no answer, or an answer that could not be used).
    pub error: Option<String>,
}

/// A recorded LLM call attempt.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LlmCall {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Agent run judged.
    pub interaction_id: Option<i64>,
    /// What it was for.
    pub purpose: String,
    /// Provider plugin.
    pub provider: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Start time.
    pub started_at: String,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl StateManager {
    /// Record one attempt of an LLM call.
    pub async fn record_llm_call(&self, call: &NewLlmCall<'_>) -> Result<()> {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO llm_calls (task_id, interaction_id, purpose, provider, attempt, started_at, duration_ms,
             input_tokens, output_tokens, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(call.task_id)
        .bind(call.interaction_id)
        .bind(call.purpose)
        .bind(call.provider)
        .bind(i64::from(call.attempt))
        .bind(now())
        .bind(clamp(call.duration_ms))
        .bind(call.input_tokens.map(clamp))
        .bind(call.output_tokens.map(clamp))
        .bind(call.error.as_deref().map(|e| self.storable(e).into_owned()))
        .execute(&self.pool)
        .await
        .db(self)?;
        Ok(())
    }

    /// The LLM call attempts about a task, in order.
    pub async fn llm_calls(&self, task_id: i64) -> Result<Vec<LlmCall>> {
        sqlx::query_as::<_, LlmCall>("SELECT * FROM llm_calls WHERE task_id = $1 ORDER BY id")
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }
}
