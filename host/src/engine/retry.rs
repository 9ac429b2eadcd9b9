//! Retry policy (the seeds' M9): exponential back-off with jitter and a cap, retryable versus fatal by the
//! plugin-error variant, and `retry-after` honoured.

use std::time::Duration;

use crate::config::RetryConfig;
use crate::contract::PluginError;

/// The longest wait a `retry-after` may impose before Obra gives up on the call instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Computes back-off delays.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    /// A policy from `engine.retry`.
    pub fn new(config: RetryConfig) -> Self {
        Self { config }
    }

    /// Attempts allowed per call, at least 1.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts.max(1)
    }

    /// The delay before attempt `attempt + 1`, after `attempt` (1-based) failed with `error`; `None` when the
    /// error is not retryable or the attempts are used up.
    pub fn delay_after(&self, attempt: u32, error: &PluginError) -> Option<Duration> {
        if !error.is_retryable() || attempt >= self.max_attempts() {
            return None;
        }
        let backoff = self.backoff(attempt);
        match error {
            PluginError::RateLimited { retry_after_ms: Some(ms), .. } => {
                let asked = Duration::from_millis(*ms);
                (asked <= MAX_RETRY_AFTER).then(|| asked.max(backoff))
            }
            _ => Some(backoff),
        }
    }

    /// Exponential back-off with jitter for the given failed attempt (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.config;
        let exp = c.multiplier.max(1.0).powi(attempt.saturating_sub(1) as i32);
        let base = (c.base_delay_ms as f64 * exp).min(c.max_delay_ms as f64);
        let spread = c.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + spread * (rand::random::<f64>() * 2.0 - 1.0);
        Duration::from_millis((base * factor).max(0.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            max_attempts: 4,
            base_delay_ms: 100,
            max_delay_ms: 350,
            multiplier: 2.0,
            jitter,
        })
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy(0.0);
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let p = policy(0.1);
        for _ in 0..200 {
            let d = p.backoff(2).as_millis();
            assert!((180..=220).contains(&d), "{d}");
        }
    }

    #[test]
    fn only_retryable_errors_are_retried_and_only_while_attempts_remain() {
        let p = policy(0.0);
        assert!(p.delay_after(1, &PluginError::Retryable("503".into())).is_some());
        assert!(p.delay_after(1, &PluginError::Timeout("slow".into())).is_some());
        assert!(p.delay_after(1, &PluginError::Fatal("401".into())).is_none());
        assert!(p.delay_after(1, &PluginError::Denied("no".into())).is_none());
        assert!(p.delay_after(1, &PluginError::Trapped("oom".into())).is_none());
        assert!(p.delay_after(4, &PluginError::Retryable("503".into())).is_none());
    }

    #[test]
    fn retry_after_is_honoured_when_longer_than_the_backoff() {
        let p = policy(0.0);
        let e = |ms| PluginError::RateLimited { message: "slow down".into(), retry_after_ms: Some(ms) };
        assert_eq!(p.delay_after(1, &e(5_000)), Some(Duration::from_millis(5_000)));
        assert_eq!(p.delay_after(1, &e(10)), Some(Duration::from_millis(100)));
        assert_eq!(p.delay_after(1, &e(10 * 3600 * 1000)), None, "a ten-hour wait is not a retry");
    }
}
