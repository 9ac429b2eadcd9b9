//! `obra report`'s numbers, read from the store: how tasks ended, how often a human was needed, whether
//! confidence predicts success (calibration), what was spent, and how long the loop's steps take.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{DbResult, StateManager, strict};

/// Width of a calibration bucket: ten buckets over 0..=1.
const BUCKET_WIDTH: f64 = 0.1;

/// A project's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Tasks by status, and the rates derived from them.
    pub tasks: TaskStats,
    /// Decisions by action (`proceed`, `retry`, `clarify`, `escalate`).
    pub decisions: BTreeMap<String, i64>,
    /// Agent runs (interactions), and how many of them were retries of a failed call in the same iteration.
    pub agent_runs: AgentRuns,
    /// Breakpoints by rule.
    pub breakpoints: Vec<RuleStats>,
    /// Predicted confidence against what became of the work.
    pub calibration: Calibration,
    /// Tokens and cost by agent plugin.
    pub usage_by_agent: Vec<Usage>,
    /// Tokens and cost by task, most expensive first.
    pub usage_by_task: Vec<Usage>,
    /// LLM calls by provider and purpose (runs = attempts, failed ones included).
    pub usage_by_llm: Vec<Usage>,
    /// p50 / p95 durations of the loop's measured steps: the agent run and each gate.
    pub durations: Vec<StepDurations>,
}

/// How tasks ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskStats {
    /// All tasks.
    pub total: i64,
    /// Tasks by status.
    pub by_status: BTreeMap<String, i64>,
    /// Completed out of completed + failed; none before any task finished.
    pub success_rate: Option<f64>,
    /// Completed tasks that never stopped at a breakpoint, out of all completed; none before any completed.
    pub autonomous_completion_rate: Option<f64>,
    /// Completed tasks whose work no verifying gate passed and no LLM opinion checked (ADR 0033), by id.
    pub unverified: Vec<i64>,
}

/// Agent runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentRuns {
    /// Every agent run.
    pub total: i64,
    /// Runs that repeated an earlier run of the same task iteration (the retry policy at work).
    pub retried_calls: i64,
    /// Runs left unfinished by an interrupted obra.
    pub interrupted: i64,
}

/// Breakpoints opened by one rule and how they were resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleStats {
    /// The rule (`decision` for the decision engine's own escalations).
    pub rule: String,
    /// Opened.
    pub opened: i64,
    /// Still open.
    pub open: i64,
    /// Resolved with approve.
    pub approved: i64,
    /// Resolved with reject.
    pub rejected: i64,
    /// Resolved with feedback.
    pub feedback: i64,
}

/// Confidence calibration: does 0.9 confidence succeed 90% of the time?
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Calibration {
    /// Decisions whose outcome is known.
    pub settled: i64,
    /// Decisions still waiting for their outcome.
    pub unsettled: i64,
    /// Buckets of confidence with at least one settled decision, lowest first.
    pub buckets: Vec<CalibrationBucket>,
    /// Mean squared difference between confidence and success (0 is perfect, 0.25 is a coin toss).
    pub brier_score: Option<f64>,
    /// Expected calibration error: the decision-weighted mean gap between confidence and success rate.
    pub expected_calibration_error: Option<f64>,
}

/// One confidence bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CalibrationBucket {
    /// Lower bound (inclusive).
    pub from: f64,
    /// Upper bound (exclusive, except 1.0).
    pub to: f64,
    /// Settled decisions in the bucket.
    pub decisions: i64,
    /// Of which the work was accepted.
    pub accepted: i64,
    /// Mean confidence in the bucket.
    pub mean_confidence: f64,
    /// accepted / decisions.
    pub success_rate: f64,
}

/// Tokens and cost of a group of agent runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Agent name, or task id and title.
    pub key: String,
    /// Agent runs.
    pub runs: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// Durations of one loop step.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepDurations {
    /// `agent` or `gate <name>`.
    pub step: String,
    /// Measurements.
    pub count: usize,
    /// Median, ms.
    pub p50_ms: u64,
    /// 95th percentile, ms.
    pub p95_ms: u64,
}

impl StateManager {
    /// Compute the report of a project.
    pub async fn report(&self, project_id: i64) -> Result<Report> {
        Ok(Report {
            tasks: self.task_stats(project_id).await?,
            decisions: self.decision_counts(project_id).await?,
            agent_runs: self.agent_runs(project_id).await?,
            breakpoints: self.rule_stats(project_id).await?,
            calibration: self.calibration(project_id).await?,
            usage_by_agent: self.usage(project_id, false).await?,
            usage_by_task: self.usage(project_id, true).await?,
            usage_by_llm: self.llm_usage(project_id).await?,
            durations: self.step_durations(project_id).await?,
        })
    }

    async fn task_stats(&self, project_id: i64) -> Result<TaskStats> {
        let by_status: BTreeMap<String, i64> = self.task_counts(project_id).await?.into_iter().collect();
        let count = |s: &str| by_status.get(s).copied().unwrap_or(0);
        let (completed, failed) = (count("completed"), count("failed"));
        let (autonomous,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM tasks t WHERE t.project_id = $1 AND t.status = 'completed'
               AND NOT EXISTS (SELECT 1 FROM breakpoints b WHERE b.task_id = t.id)",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await
        .db(self)?;
        Ok(TaskStats {
            total: by_status.values().sum(),
            success_rate: ratio(completed, completed + failed),
            autonomous_completion_rate: ratio(autonomous, completed),
            by_status,
            unverified: self.unverified_tasks(project_id).await?,
        })
    }

    /// The project's completed tasks whose last decision was taken on work that no verifying gate passed and
    /// no LLM opinion checked (`decisions.verified_by = ''`; decisions older than schema level 4 are not
    /// counted, their evidence unknown), by id.
    pub async fn unverified_tasks(&self, project_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT t.id FROM tasks t WHERE t.project_id = $1 AND t.status = 'completed'
               AND (SELECT d.verified_by FROM decisions d JOIN interactions i ON i.id = d.interaction_id
                     WHERE i.task_id = t.id ORDER BY d.id DESC LIMIT 1) = ''
             ORDER BY t.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn decision_counts(&self, project_id: i64) -> Result<BTreeMap<String, i64>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT d.id, d.action FROM decisions d JOIN interactions i ON i.id = d.interaction_id
             JOIN tasks t ON t.id = i.task_id WHERE t.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut counts = BTreeMap::new();
        for (id, action) in rows {
            strict::text(&strict::DECISION_ACTION, id, Some(&action)).db(self)?;
            *counts.entry(action).or_insert(0) += 1;
        }
        Ok(counts)
    }

    async fn agent_runs(&self, project_id: i64) -> Result<AgentRuns> {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT i.id, i.task_id, i.iteration, i.status FROM interactions i JOIN tasks t ON t.id = i.task_id
             WHERE t.project_id = $1 ORDER BY i.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        for (id, _, _, status) in &rows {
            strict::text(&strict::INTERACTION_STATUS, *id, Some(status)).db(self)?;
        }
        // Consecutive runs of one task with the same iteration number are the retry policy's attempts; a new
        // execution of the task starts again at iteration 1.
        let mut retried = 0;
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for (_, task, iteration, _) in &rows {
            if last.insert(*task, *iteration) == Some(*iteration) {
                retried += 1;
            }
        }
        Ok(AgentRuns {
            total: rows.len() as i64,
            retried_calls: retried,
            interrupted: rows.iter().filter(|(_, _, _, s)| s == "interrupted").count() as i64,
        })
    }

    async fn rule_stats(&self, project_id: i64) -> Result<Vec<RuleStats>> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT b.id, b.rule, b.status, b.resolution FROM breakpoints b JOIN tasks t ON t.id = b.task_id
             WHERE t.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut by_rule: BTreeMap<String, RuleStats> = BTreeMap::new();
        for (id, rule, status, resolution) in rows {
            strict::text(&strict::BREAKPOINT_STATUS, id, Some(&status)).db(self)?;
            strict::text(&strict::BREAKPOINT_RESOLUTION, id, resolution.as_deref()).db(self)?;
            let s = by_rule.entry(rule.clone()).or_insert(RuleStats {
                rule,
                opened: 0,
                open: 0,
                approved: 0,
                rejected: 0,
                feedback: 0,
            });
            s.opened += 1;
            match (status.as_str(), resolution.as_deref()) {
                ("open", _) => s.open += 1,
                (_, Some("approve")) => s.approved += 1,
                (_, Some("reject")) => s.rejected += 1,
                (_, Some("feedback")) => s.feedback += 1,
                _ => {}
            }
        }
        let mut stats: Vec<RuleStats> = by_rule.into_values().collect();
        stats.sort_by(|a, b| b.opened.cmp(&a.opened).then(a.rule.cmp(&b.rule)));
        Ok(stats)
    }

    /// Confidence against outcome for a project's decisions.
    pub async fn calibration(&self, project_id: i64) -> Result<Calibration> {
        let rows: Vec<(i64, f64, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.confidence, d.outcome FROM decisions d JOIN interactions i ON i.id = d.interaction_id
             JOIN tasks t ON t.id = i.task_id WHERE t.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut samples = Vec::with_capacity(rows.len());
        for (id, confidence, outcome) in rows {
            strict::text(&strict::DECISION_OUTCOME, id, outcome.as_deref()).db(self)?;
            samples.push((confidence, outcome));
        }
        Ok(calibrate(&samples))
    }

    async fn usage(&self, project_id: i64, by_task: bool) -> Result<Vec<Usage>> {
        let key = if by_task { "CAST(t.id AS TEXT) || ' ' || t.title" } else { "i.agent" };
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS runs, CAST(COALESCE(SUM(i.input_tokens), 0) AS BIGINT) AS input_tokens,
               CAST(COALESCE(SUM(i.output_tokens), 0) AS BIGINT) AS output_tokens,
               CAST(COALESCE(SUM(i.cost_usd), 0) AS DOUBLE PRECISION) AS cost
             FROM interactions i JOIN tasks t ON t.id = i.task_id WHERE t.project_id = $1 GROUP BY k"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id).fetch_all(&self.pool).await.db(self)?;
        let mut usage: Vec<Usage> = rows.iter().map(usage_row).collect();
        usage.sort_by(|a, b| {
            (b.input_tokens + b.output_tokens)
                .cmp(&(a.input_tokens + a.output_tokens))
                .then(b.cost_usd.total_cmp(&a.cost_usd))
                .then(a.key.cmp(&b.key))
        });
        Ok(usage)
    }

    async fn llm_usage(&self, project_id: i64) -> Result<Vec<Usage>> {
        let rows = sqlx::query(
            "SELECT l.provider || ' ' || l.purpose AS k, COUNT(*) AS runs,
               CAST(COALESCE(SUM(l.input_tokens), 0) AS BIGINT) AS input_tokens,
               CAST(COALESCE(SUM(l.output_tokens), 0) AS BIGINT) AS output_tokens, CAST(0 AS DOUBLE PRECISION) AS cost
             FROM llm_calls l JOIN tasks t ON t.id = l.task_id WHERE t.project_id = $1 GROUP BY k ORDER BY k",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        Ok(rows.iter().map(usage_row).collect())
    }

    async fn step_durations(&self, project_id: i64) -> Result<Vec<StepDurations>> {
        let agent: Vec<(i64,)> = sqlx::query_as(
            "SELECT i.duration_ms FROM interactions i JOIN tasks t ON t.id = i.task_id
             WHERE t.project_id = $1 AND i.duration_ms IS NOT NULL",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let gates: Vec<(String, i64)> = sqlx::query_as(
            "SELECT g.gate, g.duration_ms FROM gate_results g JOIN interactions i ON i.id = g.interaction_id
             JOIN tasks t ON t.id = i.task_id WHERE t.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let llm: Vec<(String, i64)> = sqlx::query_as(
            "SELECT l.purpose, l.duration_ms FROM llm_calls l JOIN tasks t ON t.id = l.task_id WHERE t.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (purpose, ms) in llm {
            steps.entry(format!("llm {purpose}")).or_default().push(ms.max(0) as u64);
        }
        for (ms,) in agent {
            steps.entry("agent".into()).or_default().push(ms.max(0) as u64);
        }
        for (gate, ms) in gates {
            steps.entry(format!("gate {gate}")).or_default().push(ms.max(0) as u64);
        }
        Ok(steps
            .into_iter()
            .map(|(step, mut values)| {
                values.sort_unstable();
                StepDurations {
                    step,
                    count: values.len(),
                    p50_ms: percentile(&values, 0.50),
                    p95_ms: percentile(&values, 0.95),
                }
            })
            .collect())
    }
}

/// A usage row of the report's queries (columns `k`, `runs`, `input_tokens`, `output_tokens`, `cost`).
fn usage_row(r: &sqlx::any::AnyRow) -> Usage {
    Usage {
        key: r.get("k"),
        runs: r.get("runs"),
        input_tokens: r.get("input_tokens"),
        output_tokens: r.get("output_tokens"),
        cost_usd: r.get("cost"),
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Bucket (confidence, outcome) pairs; decisions without an outcome count as unsettled.
fn calibrate(rows: &[(f64, Option<String>)]) -> Calibration {
    let buckets_n = (1.0 / BUCKET_WIDTH).round() as usize;
    let mut sums = vec![(0i64, 0i64, 0f64); buckets_n];
    let mut brier = 0.0;
    let mut settled = 0i64;
    for (confidence, outcome) in rows {
        let Some(outcome) = outcome else { continue };
        let c = confidence.clamp(0.0, 1.0);
        let success = outcome == super::DecisionOutcome::Accepted.as_str();
        // The epsilon keeps 0.7 (0.69999... in binary, or stored through an f32) in the 0.7 bucket.
        let i = ((c / BUCKET_WIDTH + 1e-6) as usize).min(buckets_n - 1);
        sums[i].0 += 1;
        sums[i].1 += i64::from(success);
        sums[i].2 += c;
        brier += (c - if success { 1.0 } else { 0.0 }).powi(2);
        settled += 1;
    }
    let buckets: Vec<CalibrationBucket> = sums
        .iter()
        .enumerate()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(i, (n, accepted, sum))| CalibrationBucket {
            from: (i as f64 * BUCKET_WIDTH * 10.0).round() / 10.0,
            to: ((i + 1) as f64 * BUCKET_WIDTH * 10.0).round() / 10.0,
            decisions: *n,
            accepted: *accepted,
            mean_confidence: sum / *n as f64,
            success_rate: *accepted as f64 / *n as f64,
        })
        .collect();
    let ece = (settled > 0).then(|| {
        buckets.iter().map(|b| b.decisions as f64 * (b.mean_confidence - b.success_rate).abs()).sum::<f64>()
            / settled as f64
    });
    Calibration {
        settled,
        unsettled: rows.len() as i64 - settled,
        buckets,
        brier_score: (settled > 0).then(|| brier / settled as f64),
        expected_calibration_error: ece,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(c: f64, outcome: Option<&str>) -> (f64, Option<String>) {
        (c, outcome.map(str::to_string))
    }

    #[test]
    fn calibration_buckets_confidence_against_acceptance() {
        let rows = vec![
            row(0.92, Some("accepted")),
            row(0.95, Some("accepted")),
            row(0.91, Some("rejected")),
            row(0.7, Some("superseded")),
            row(0.72, Some("accepted")),
            row(1.0, Some("accepted")),
            row(0.5, None),
        ];
        let c = calibrate(&rows);
        assert_eq!((c.settled, c.unsettled), (6, 1));
        let b: Vec<_> = c.buckets.iter().map(|b| (b.from, b.to, b.decisions, b.accepted)).collect();
        assert_eq!(b, vec![(0.7, 0.8, 2, 1), (0.9, 1.0, 4, 3)]);
        assert!((c.buckets[1].success_rate - 0.75).abs() < 1e-9);
        let brier = c.brier_score.unwrap();
        let expected = (0.08f64.powi(2) + 0.05f64.powi(2) + 0.91f64.powi(2) + 0.7f64.powi(2) + 0.28f64.powi(2)) / 6.0;
        assert!((brier - expected).abs() < 1e-9, "{brier} vs {expected}");
        assert!(c.expected_calibration_error.unwrap() > 0.0);
    }

    #[test]
    fn no_settled_decision_means_no_scores() {
        let c = calibrate(&[row(0.9, None)]);
        assert_eq!((c.settled, c.brier_score, c.expected_calibration_error), (0, None, None));
        assert!(c.buckets.is_empty());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 0.5), percentile(&v, 0.95)), (50, 95));
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
