//! The queries breakpoint rules need: token and cost totals of a task and of a project (the budget rule), and
//! the concluded iterations of a task, newest first (the repeated-failure rule).

use anyhow::Result;

use super::models::GateResultRow;
use super::{DbResult, StateManager, strict};

/// What the agent runs of a task or a project used, summed over every interaction (retries included).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageTotals {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Cost in US dollars, of the interactions that reported one.
    pub cost_usd: f64,
    /// Whether any interaction reported a cost (otherwise `cost_usd` is 0 for want of one, not for free).
    pub cost_reported: bool,
}

impl UsageTotals {
    /// Prompt plus generated tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// The cost, when any interaction reported one.
    pub fn cost(&self) -> Option<f64> {
        self.cost_reported.then_some(self.cost_usd)
    }

    /// Whether there is anything to show: tokens or a cost.
    pub fn is_reported(&self) -> bool {
        self.tokens() > 0 || self.cost_reported
    }

    /// Add other totals.
    pub fn add_totals(&mut self, other: &UsageTotals) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_usd += other.cost_usd;
        self.cost_reported |= other.cost_reported;
    }

    /// Add what one agent run reported.
    pub fn add(&mut self, usage: &crate::contract::Usage) {
        self.input_tokens = self.input_tokens.saturating_add(usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(usage.output_tokens);
        if let Some(cost) = usage.cost_usd {
            self.cost_usd += cost;
            self.cost_reported = true;
        }
    }
}

/// One concluded iteration (an interaction with a decision) and its gate results.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcludedIteration {
    /// The interaction the decision was made on.
    pub interaction_id: i64,
    /// The agent's outcome (`success`, `crashed`, ...); none when the agent could not run.
    pub outcome: Option<String>,
    /// The gates' results, in the order they ran.
    pub gates: Vec<GateResultRow>,
}

/// The sums of one `SELECT` over interactions: integers and reals cast so both backends return the same types.
const SUMS: &str =
    "CAST(COALESCE(SUM(i.input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(i.output_tokens), 0) AS BIGINT),
     CAST(COALESCE(SUM(i.cost_usd), 0) AS DOUBLE PRECISION), CAST(COUNT(i.cost_usd) AS BIGINT)";

fn totals((input, output, cost, priced): (i64, i64, f64, i64)) -> UsageTotals {
    UsageTotals {
        input_tokens: input.max(0) as u64,
        output_tokens: output.max(0) as u64,
        cost_usd: cost,
        cost_reported: priced > 0,
    }
}

impl StateManager {
    /// The tokens and cost every agent run of task `task_id` used.
    pub async fn task_usage(&self, task_id: i64) -> Result<UsageTotals> {
        let sql = format!("SELECT {SUMS} FROM interactions i WHERE i.task_id = $1");
        let row: (i64, i64, f64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(task_id).fetch_one(&self.pool).await.db(self)?;
        Ok(totals(row))
    }

    /// The tokens and cost every agent run of every task of project `project_id` used.
    pub async fn project_usage(&self, project_id: i64) -> Result<UsageTotals> {
        let sql = format!("SELECT {SUMS} FROM interactions i JOIN tasks t ON t.id = i.task_id WHERE t.project_id = $1");
        let row: (i64, i64, f64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project_id).fetch_one(&self.pool).await.db(self)?;
        Ok(totals(row))
    }

    /// The last `limit` concluded iterations of task `task_id`, newest first, with their gate results.
    pub async fn recent_iterations(&self, task_id: i64, limit: u32) -> Result<Vec<ConcludedIteration>> {
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT i.id, i.outcome FROM interactions i
             WHERE i.task_id = $1 AND EXISTS (SELECT 1 FROM decisions d WHERE d.interaction_id = i.id)
             ORDER BY i.id DESC LIMIT $2",
        )
        .bind(task_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut out = Vec::with_capacity(rows.len());
        for (interaction_id, outcome) in rows {
            strict::text(&strict::INTERACTION_OUTCOME, interaction_id, outcome.as_deref()).db(self)?;
            out.push(ConcludedIteration { interaction_id, outcome, gates: self.gate_results(interaction_id).await? });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::contract::{Outcome, RunResult, Usage};
    use crate::state::{Action, DecisionRecord, GateRecord, IterationRecord, NewProject, NewTask, TaskStatus};

    fn run(tokens: (u64, u64), cost: Option<f64>) -> RunResult {
        RunResult {
            outcome: Outcome::Success,
            summary: "done".into(),
            session_id: None,
            turns: 1,
            usage: Usage { input_tokens: tokens.0, output_tokens: tokens.1, cost_usd: cost, ..Default::default() },
            duration_ms: 1,
            api_status: None,
            retry_after_ms: None,
            permission_denials: vec![],
            exit_code: Some(0),
            failed_actions: vec![],
        }
    }

    async fn check(state: StateManager) {
        let project = |name: &str| NewProject {
            name: name.into(),
            workspace: PathBuf::from(format!("/tmp/{name}")),
            description: String::new(),
            profile: None,
        };
        let task = |project_id: i64| NewTask {
            project_id,
            title: "t".into(),
            description: String::new(),
            priority: 5,
            depends_on: vec![],
            max_iterations: None,
            profile: None,
        };
        let p = state.create_project(&project("usage-a")).await.unwrap();
        let other = state.create_project(&project("usage-b")).await.unwrap();
        let (a, b, c) = (
            state.create_task(&task(p.id)).await.unwrap(),
            state.create_task(&task(p.id)).await.unwrap(),
            state.create_task(&task(other.id)).await.unwrap(),
        );
        assert_eq!(state.task_usage(a.id).await.unwrap(), UsageTotals::default());
        for (t, tokens, cost) in [(a.id, (100, 20), Some(0.5)), (a.id, (10, 2), None), (b.id, (1, 1), Some(0.25))] {
            let i = state.begin_interaction(t, 1, "replay", "p").await.unwrap();
            state.finish_interaction(i, Ok(&run(tokens, cost)), &[], Duration::ZERO).await.unwrap();
        }
        let i = state.begin_interaction(c.id, 1, "replay", "p").await.unwrap();
        state.finish_interaction(i, Err("crashed"), &[], Duration::ZERO).await.unwrap();
        let ta = state.task_usage(a.id).await.unwrap();
        assert_eq!((ta.input_tokens, ta.output_tokens, ta.tokens(), ta.cost()), (110, 22, 132, Some(0.5)));
        let pa = state.project_usage(p.id).await.unwrap();
        assert_eq!((pa.tokens(), pa.cost()), (134, Some(0.75)));
        assert_eq!(state.project_usage(other.id).await.unwrap(), UsageTotals::default());
        // Tokens without any cost reported: the cost is unknown, not 0.
        let d = state.create_task(&task(p.id)).await.unwrap();
        let i = state.begin_interaction(d.id, 1, "replay", "p").await.unwrap();
        state.finish_interaction(i, Ok(&run((7, 3), None)), &[], Duration::ZERO).await.unwrap();
        let td = state.task_usage(d.id).await.unwrap();
        assert_eq!((td.tokens(), td.cost(), td.is_reported()), (10, None, true));
        assert!(!UsageTotals::default().is_reported());

        // Only interactions with a decision are concluded iterations; newest first, with their gates.
        assert!(state.recent_iterations(a.id, 5).await.unwrap().is_empty());
        let mut concluded = Vec::new();
        for (n, passed) in [(1, false), (2, true)] {
            let i = state.begin_interaction(a.id, n, "replay", "p").await.unwrap();
            state.finish_interaction(i, Ok(&run((0, 0), None)), &[], Duration::ZERO).await.unwrap();
            let gates = [GateRecord {
                gate: format!("gate-{n}"),
                passed,
                score: 1.0,
                summary: String::new(),
                findings: vec![],
                error: None,
                duration_ms: 1,
            }];
            let decision = DecisionRecord {
                action: Action::Retry,
                confidence: 0.7,
                heuristic_score: 0.7,
                llm_score: None,
                llm_reasoning: None,
                explanation: String::new(),
                verified_by: String::new(),
            };
            state
                .conclude_iteration(&IterationRecord {
                    task_id: a.id,
                    interaction_id: i,
                    gates: &gates,
                    decision: &decision,
                    task_status: TaskStatus::Running,
                    status_reason: None,
                    session_id: None,
                    breakpoint: None,
                })
                .await
                .unwrap();
            concluded.push(i);
        }
        let recent = state.recent_iterations(a.id, 5).await.unwrap();
        assert_eq!(recent.iter().map(|r| r.interaction_id).collect::<Vec<_>>(), vec![concluded[1], concluded[0]]);
        assert_eq!(recent[1].outcome.as_deref(), Some("success"));
        assert_eq!((recent[1].gates[0].gate.as_str(), recent[1].gates[0].passed), ("gate-1", false));
        assert_eq!(state.recent_iterations(a.id, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn totals_and_recent_iterations_on_sqlite() {
        check(StateManager::open_in_memory().await.unwrap()).await;
    }

    #[tokio::test]
    async fn totals_and_recent_iterations_on_postgres() {
        if let Some(pg) = obra_testkit::postgres::TestDatabase::create().await {
            check(StateManager::connect(pg.url()).await.unwrap()).await;
        }
    }
}
