//! `obra run`: execute a project's ready tasks one after another, in dependency and priority order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use super::Orchestrator;
use crate::engine::rate_limit::clock_utc;
use crate::engine::scheduler::{Blocked, Schedule, TaskWait, waits_of};
use crate::engine::{LoopObserver, Step, TaskOutcome};
use crate::state::TaskStatus;

/// How long `obra run` goes on.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many task executions.
    pub max_tasks: Option<u32>,
    /// When no task is ready, wait this long and look again, instead of stopping.
    pub watch: Option<Duration>,
    /// Set (e.g. by Ctrl-C) to stop before the next task.
    pub stop: Arc<AtomicBool>,
    /// When the only tasks left wait for a rate limit to reset, stop instead of waiting for the reset.
    pub no_wait: bool,
    /// Run up to this many ready tasks at once, each in its own git worktree (0 or 1: one at a time, in the
    /// project's checkout, or in a worktree of its own with `git.branch_per_task`).
    pub parallel: usize,
}

/// What the run said while waiting with nothing ready, so it is said once.
#[derive(Debug, Default)]
pub(super) struct Idle {
    announced_reset: Option<(i64, SystemTime)>,
}

/// `obra run`'s circuit breaker: consecutive executions that paused at an `agent-failed` breakpoint with the
/// same cause (`engine.circuit_breaker` of them stop the run, instead of one breakpoint per task).
#[derive(Debug, Default)]
pub(super) struct CircuitBreaker {
    cause: Option<String>,
    count: u32,
}

impl CircuitBreaker {
    /// Count `outcome`; `Some(why the run stops)` when the `limit`-th consecutive agent failure with the same
    /// cause just happened (a limit of 0 never stops).
    pub(super) fn record(&mut self, outcome: &TaskOutcome, limit: u32) -> Option<String> {
        let Some(cause) = &outcome.agent_failure else {
            *self = Self::default();
            return None;
        };
        if self.cause.as_ref() == Some(cause) {
            self.count += 1;
        } else {
            self.cause = Some(cause.clone());
            self.count = 1;
        }
        (limit > 0 && self.count >= limit).then(|| {
            format!(
                "circuit breaker: {} tasks in a row paused at agent-failed breakpoints with the same cause: {cause}. \
                 Fix that (`obra doctor` checks the agent), then `obra breakpoint resolve --all --rule agent-failed \
                 --retry` and run again (engine.circuit_breaker: {limit})",
                self.count
            )
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Every execution, in order.
    pub executions: Vec<TaskOutcome>,
    /// Pending tasks left that cannot run: a task they depend on, directly or not, failed, paused or was
    /// cancelled.
    pub blocked: Vec<Blocked>,
    /// Why the run stopped.
    pub stopped_because: String,
    /// Every task left that cannot run now, and why (paused at a breakpoint, rate-limited until a reset,
    /// blocked by a task), as the run ended.
    pub waiting: Vec<TaskWait>,
}

impl RunSummary {
    /// Executions that ended with `status`.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.executions.iter().filter(|o| o.status == status).count()
    }
}

impl Orchestrator {
    /// Execute the project's ready tasks (pending, every dependency completed; highest priority first, then
    /// oldest) until none is ready, `options.max_tasks` is reached, or `options.stop` is set. A task that
    /// pauses at a breakpoint or fails does not stop the run: tasks that do not depend on it go on (those
    /// that do are blocked). When the only tasks left wait for an agent's rate limit to reset, the run waits
    /// for the earliest reset and resumes that task (unless `options.no_wait`). With `options.watch`, the
    /// run waits for new ready tasks (added or unblocked by a resolved breakpoint from another process)
    /// instead of stopping.
    ///
    /// The run holds the project's run lock (a second run of the project fails at once, naming this one's
    /// pid) and first recovers tasks a killed run left `running`.
    pub async fn run_project(&self, options: &RunOptions, observer: Arc<dyn LoopObserver>) -> Result<RunSummary> {
        let _lock = self.lock_for_running(observer.as_ref()).await?;
        let mut summary = RunSummary::default();
        if options.parallel > 1 || self.config().config.git.branch_per_task {
            self.run_parallel(options, observer, &mut summary).await?;
            self.finish_summary(&mut summary).await?;
            return Ok(summary);
        }
        let mut idle = Idle::default();
        let mut breaker = CircuitBreaker::default();
        let breaker_limit = self.config().config.engine.circuit_breaker;
        loop {
            if options.stop.load(Ordering::SeqCst) {
                summary.stopped_because = "stopped by the user".into();
                break;
            }
            if let Some(max) = options.max_tasks
                && summary.executions.len() >= max as usize
            {
                summary.stopped_because = format!("reached --max-tasks {max}");
                break;
            }
            // One read of the backlog per pick: the ready set and the counts both come from it.
            let tasks = self.state().tasks(self.project().id).await?;
            let schedule = Schedule::of_tasks(&tasks);
            let now = SystemTime::now();
            let ready = schedule.ready_at(now);
            let Some(next) = ready.first().and_then(|id| tasks.iter().find(|t| t.id == *id)) else {
                match self.when_idle(options, observer.as_ref(), &mut idle).await? {
                    Some(reason) => {
                        summary.stopped_because = reason;
                        break;
                    }
                    None => continue,
                }
            };
            let pending = tasks.iter().filter(|t| t.status() == TaskStatus::Pending).count();
            observer.step(&Step::TaskPicked {
                task_id: next.id,
                title: next.title.clone(),
                ready: ready.len(),
                pending,
            });
            let outcome = self.execute_locked(next.id, observer.clone()).await?;
            let tripped = breaker.record(&outcome, breaker_limit);
            summary.executions.push(outcome);
            if let Some(reason) = tripped {
                summary.stopped_because = reason;
                break;
            }
        }
        self.finish_summary(&mut summary).await?;
        Ok(summary)
    }

    /// Fill in what the run leaves waiting: the blocked tasks and why each task left cannot run.
    async fn finish_summary(&self, summary: &mut RunSummary) -> Result<()> {
        let tasks = self.state().tasks(self.project().id).await?;
        let open = self.state().breakpoints(self.project().id, true).await?;
        summary.blocked = Schedule::of_tasks(&tasks).blocked();
        summary.waiting =
            waits_of(&tasks, &open).into_iter().map(|(task_id, wait)| TaskWait { task_id, wait }).collect();
        Ok(())
    }
}

impl Orchestrator {
    /// No task is ready: wait for the earliest rate-limit reset (unless `--no-wait`) or, with `--watch`, for new
    /// work; `Some(reason)` when the run should stop instead.
    pub(super) async fn when_idle(
        &self,
        options: &RunOptions,
        observer: &dyn LoopObserver,
        idle: &mut Idle,
    ) -> Result<Option<String>> {
        let tasks = self.state().tasks(self.project().id).await?;
        let now = SystemTime::now();
        let reset = Schedule::of_tasks(&tasks).next_reset(now);
        Ok(match (reset, options.watch) {
            (Some((task_id, at)), _) if !options.no_wait => {
                if idle.announced_reset != Some((task_id, at)) {
                    idle.announced_reset = Some((task_id, at));
                    observer.step(&Step::Progress(format!(
                        "waiting until {} for the rate limit of task {task_id} to reset; Ctrl-C stops",
                        clock_utc(at)
                    )));
                }
                let wait = at.duration_since(now).unwrap_or_default() + Duration::from_millis(50);
                wait_or_stop(options.watch.map_or(wait, |poll| poll.min(wait)), &options.stop).await;
                None
            }
            (_, Some(poll)) => {
                wait_or_stop(poll, &options.stop).await;
                None
            }
            (Some((task_id, at)), None) => Some(format!(
                "no task is ready; task {task_id} waits until {} for a rate limit to reset (--no-wait)",
                clock_utc(at)
            )),
            (None, None) => Some("no task is ready".into()),
        })
    }
}

/// Sleep for `total`, waking early when `stop` is set.
async fn wait_or_stop(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while waited < total && !stop.load(Ordering::SeqCst) {
        let nap = step.min(total - waited);
        tokio::time::sleep(nap).await;
        waited += nap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(task_id: i64, failure: Option<&str>) -> TaskOutcome {
        TaskOutcome {
            task_id,
            status: if failure.is_some() { TaskStatus::Paused } else { TaskStatus::Completed },
            iterations: 1,
            action: None,
            confidence: None,
            breakpoint_id: None,
            reason: String::new(),
            agent_failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn the_breaker_trips_on_the_same_cause_in_a_row_only() {
        let mut breaker = CircuitBreaker::default();
        assert!(breaker.record(&outcome(1, Some("crashed: no claude")), 2).is_none());
        assert!(breaker.record(&outcome(2, Some("timeout")), 2).is_none(), "another cause starts over");
        assert!(breaker.record(&outcome(3, None), 2).is_none(), "a task that ran well resets it");
        assert!(breaker.record(&outcome(4, Some("timeout")), 2).is_none());
        let why = breaker.record(&outcome(5, Some("timeout")), 2).expect("second in a row trips");
        assert!(why.starts_with("circuit breaker: 2 tasks in a row") && why.contains("timeout"), "{why}");
        let mut off = CircuitBreaker::default();
        assert!((0..5).all(|i| off.record(&outcome(i, Some("timeout")), 0).is_none()), "0 never trips");
    }
}
