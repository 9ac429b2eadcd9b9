//! Rate limits and quota exhaustion that outlast the retry policy: instead of failing, the task goes back to
//! `pending` until the reset time the agent reported, with its agent session kept, and the scheduler hands
//! it out again after the reset (docs/decisions/0012).

use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::Engine;
use super::events::Step;
use super::run::TaskOutcome;
use crate::config::RetryConfig;
use crate::contract::{Outcome, PluginError, RunResult};
use crate::state::TaskStatus;

/// A rate limit the agent ran into: what it said and how long it asked to wait, if it said.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// The agent's message.
    pub message: String,
    /// The wait it asked for.
    pub retry_after: Option<Duration>,
}

impl RateLimit {
    /// The rate limit an agent's result or error reports, if it is one.
    pub fn of(result: &Result<RunResult, PluginError>) -> Option<Self> {
        match result {
            Ok(r) if r.outcome == Outcome::RateLimited => {
                Some(Self { message: r.summary.clone(), retry_after: r.retry_after_ms.map(Duration::from_millis) })
            }
            Err(PluginError::RateLimited { message, retry_after_ms }) => {
                Some(Self { message: message.clone(), retry_after: retry_after_ms.map(Duration::from_millis) })
            }
            _ => None,
        }
    }

    /// Whether the wait is longer than the retry policy sleeps through (`engine.retry.max_delay_ms`), so
    /// the task is paused instead of retried in place.
    pub fn outlasts(&self, policy: &RetryConfig) -> bool {
        self.retry_after.is_some_and(|wait| wait > Duration::from_millis(policy.max_delay_ms))
    }

    /// When to try again: after the wait the agent asked for, else after the policy's longest delay.
    pub fn reset_at(&self, now: SystemTime, policy: &RetryConfig) -> SystemTime {
        now + self.retry_after.unwrap_or(Duration::from_millis(policy.max_delay_ms))
    }
}

/// `at` as `HH:MM:SS UTC`.
pub fn clock_utc(at: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", stamp.get(11..19).unwrap_or(&stamp))
}

/// Whether the agent's retryable `error` is a rate limit to wait out by pausing the task rather than by
/// sleeping in place.
pub fn pauses_instead_of_retrying(error: &PluginError, policy: &RetryConfig) -> bool {
    RateLimit::of(&Err(error.clone())).is_some_and(|limit| limit.outlasts(policy))
}

impl Engine {
    /// If the agent's final answer of an iteration is a rate limit (one the retry policy did not wait out),
    /// put the task back to `pending` until the reset, keeping `session`, report it, and return the outcome
    /// that ends this execution.
    pub(super) async fn pause_if_rate_limited(
        &self,
        task_id: i64,
        iteration: u32,
        result: &Result<RunResult, PluginError>,
        session: Option<&str>,
    ) -> Result<Option<TaskOutcome>> {
        let Some(limit) = RateLimit::of(result) else { return Ok(None) };
        let policy = self.current().config.engine.retry.clone();
        let until = limit.reset_at(SystemTime::now(), &policy);
        let message = limit.message.split_whitespace().collect::<Vec<_>>().join(" ");
        let reason = format!("rate limited until {}: {message}", clock_utc(until));
        self.state.pause_for_rate_limit(task_id, until, &reason, session).await?;
        self.observer.step(&Step::RateLimited { task_id, until, reason: reason.clone() });
        Ok(Some(TaskOutcome {
            task_id,
            status: TaskStatus::Pending,
            iterations: iteration,
            action: None,
            confidence: None,
            breakpoint_id: None,
            reason,
            agent_failure: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryConfig {
        RetryConfig { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 1000, multiplier: 2.0, jitter: 0.0 }
    }

    #[test]
    fn a_reported_wait_beyond_the_longest_delay_pauses_and_sets_the_reset() {
        let limited = |ms| Err(PluginError::RateLimited { message: "usage limit".into(), retry_after_ms: ms });
        let long = RateLimit::of(&limited(Some(5_000))).unwrap();
        assert!(long.outlasts(&policy()));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(long.reset_at(now, &policy()), now + Duration::from_secs(5));
        let short = RateLimit::of(&limited(Some(500))).unwrap();
        assert!(!short.outlasts(&policy()), "the retry policy waits this out in place");
        let unknown = RateLimit::of(&limited(None)).unwrap();
        assert!(!unknown.outlasts(&policy()));
        assert_eq!(unknown.reset_at(now, &policy()), now + Duration::from_secs(1), "no reset given: the policy's cap");
        assert!(RateLimit::of(&Err(PluginError::Retryable("503".into()))).is_none());
        assert!(pauses_instead_of_retrying(
            &PluginError::RateLimited { message: "x".into(), retry_after_ms: Some(2_000) },
            &policy()
        ));
        assert!(!pauses_instead_of_retrying(&PluginError::Timeout("slow".into()), &policy()));
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(3600 + 2 * 60 + 3);
        assert_eq!(clock_utc(at), "01:02:03 UTC");
    }
}
