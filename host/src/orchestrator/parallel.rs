//! `obra run --parallel N`: up to N ready tasks at once, each in its own git worktree on its own branch
//! ([`super::worktrees`]). Ready tasks are independent by construction (every task they depend on has
//! completed), and a completed task's branch is merged back before the next pick, so a dependent always starts
//! from its dependencies' merged work. A merge that conflicts pauses the task at a `merge-conflict` breakpoint
//! instead of failing the run, with the branch to merge by hand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::Orchestrator;
use super::runner::{Idle, RunOptions, RunSummary};
use super::worktrees::{Integration, TaskWorktree, Worktrees};
use crate::engine::events::TaskTagged;
use crate::engine::scheduler::Schedule;
use crate::engine::{LoopObserver, Step, TaskOutcome};
use crate::state::{MERGE_CONFLICT_RULE, Task, TaskStatus};

impl Orchestrator {
    /// The parallel form of [`Orchestrator::run_project`] (the run lock is held by the caller), also used one
    /// task at a time with `git.branch_per_task`.
    pub(super) async fn run_parallel(
        &self,
        options: &RunOptions,
        observer: Arc<dyn LoopObserver>,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let worktrees = Worktrees::open(self.root(), self.git()).await?;
        let width = options.parallel.max(1);
        let branch = worktrees.project_branch().await?;
        observer.step(&Step::Progress(format!(
            "up to {width} tasks at a time, each in its own worktree under .obra/worktrees/, merged into {branch} \
             when done"
        )));
        self.settle_leftovers(&worktrees, observer.as_ref()).await?;

        // Every await below goes through `alongside`, so the running tasks are driven while the loop waits
        // (see there), and tasks that finish meanwhile wait in `finished`.
        let mut running = FuturesUnordered::new();
        let mut finished: VecDeque<(TaskWorktree, Result<TaskOutcome>)> = VecDeque::new();
        let mut in_flight: HashSet<i64> = HashSet::new();
        let mut started = 0usize;
        let mut idle = Idle::default();
        let mut breaker = super::runner::CircuitBreaker::default();
        let breaker_limit = self.config().config.engine.circuit_breaker;
        let mut tripped: Option<String> = None;
        loop {
            // Every finished task is brought back before the next pick, so a dependent starts from its
            // dependencies' merged work.
            while let Some((wt, result)) = finished.pop_front() {
                in_flight.remove(&wt.task_id);
                let mut outcome = result?;
                let brought_back = self.bring_back(&worktrees, &wt, &mut outcome, observer.as_ref());
                alongside(&mut running, &mut finished, brought_back).await?;
                if let Some(reason) = breaker.record(&outcome, breaker_limit) {
                    tripped.get_or_insert(reason);
                }
                summary.executions.push(outcome);
            }
            let limit_reached = options.max_tasks.is_some_and(|max| started >= max as usize);
            let stopping = options.stop.load(Ordering::SeqCst) || limit_reached || tripped.is_some();
            if !stopping && in_flight.len() < width {
                let tasks = alongside(&mut running, &mut finished, self.state().tasks(self.project().id)).await?;
                let schedule = Schedule::of_tasks(&tasks);
                let by_id: HashMap<i64, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
                // A task whose dependency is still in flight waits, even when the store says that dependency
                // completed: its branch is merged only once it is brought back (a task that finished during
                // the awaits above is in `finished`, not yet merged).
                let waits_on_in_flight =
                    |id: &i64| by_id.get(id).is_some_and(|t| t.dependencies().iter().any(|d| in_flight.contains(d)));
                let ready: Vec<i64> = schedule
                    .ready_at(SystemTime::now())
                    .into_iter()
                    .filter(|id| !in_flight.contains(id) && !waits_on_in_flight(id))
                    .collect();
                let pending = tasks.iter().filter(|t| t.status() == TaskStatus::Pending).count();
                let ready_count = ready.len();
                for id in ready {
                    if in_flight.len() >= width || options.max_tasks.is_some_and(|max| started >= max as usize) {
                        break;
                    }
                    let Some(task) = by_id.get(&id) else { continue };
                    // git runs as an async process, and the running tasks are driven while it does.
                    let wt = alongside(&mut running, &mut finished, worktrees.add(id, &task.title)).await?;
                    let recorded = self.state().set_task_git(id, Some(&wt.branch), Some(&wt.base), None);
                    alongside(&mut running, &mut finished, recorded).await?;
                    observer.step(&Step::TaskPicked {
                        task_id: id,
                        title: task.title.clone(),
                        ready: ready_count,
                        pending,
                    });
                    observer.step(&Step::Progress(format!(
                        "task {id} works in {} on branch {}{}",
                        wt.path.strip_prefix(self.root()).unwrap_or(&wt.path).display(),
                        wt.branch,
                        if wt.reused { " (its worktree from an earlier execution, with its work)" } else { "" }
                    )));
                    in_flight.insert(id);
                    started += 1;
                    let observer: Arc<dyn LoopObserver> = Arc::new(TaskTagged { inner: observer.clone(), task_id: id });
                    running.push(async move {
                        let result = self.execute_locked_in(id, wt.workspace.clone(), observer).await;
                        (wt, result)
                    });
                }
            }
            if running.is_empty() && finished.is_empty() {
                if stopping {
                    summary.stopped_because = if let Some(reason) = tripped.take() {
                        reason
                    } else if limit_reached {
                        format!("reached --max-tasks {}", options.max_tasks.unwrap_or_default())
                    } else {
                        "stopped by the user".into()
                    };
                    break;
                }
                match self.when_idle(options, observer.as_ref(), &mut idle).await? {
                    Some(reason) => {
                        summary.stopped_because = reason;
                        break;
                    }
                    None => continue,
                }
            }
            if finished.is_empty()
                && let Some(done) = running.next().await
            {
                finished.push_back(done);
            }
        }
        Ok(())
    }

    /// `obra task execute` with `git.branch_per_task` (the run lock is held by the caller): the task runs in
    /// its own worktree on its own branch, and its work is brought back as in a parallel run.
    pub(super) async fn execute_in_worktree(
        &self,
        task_id: i64,
        observer: Arc<dyn LoopObserver>,
    ) -> Result<TaskOutcome> {
        let worktrees = Worktrees::open(self.root(), self.git()).await?;
        self.settle_leftovers(&worktrees, observer.as_ref()).await?;
        let task = self.task(task_id).await?;
        let wt = worktrees.add(task_id, &task.title).await?;
        self.state().set_task_git(task_id, Some(&wt.branch), Some(&wt.base), None).await?;
        observer.step(&Step::Progress(format!(
            "task {task_id} works in {} on branch {}",
            wt.path.strip_prefix(self.root()).unwrap_or(&wt.path).display(),
            wt.branch
        )));
        let mut outcome = self.execute_locked_in(task_id, wt.workspace.clone(), observer.clone()).await?;
        self.bring_back(&worktrees, &wt, &mut outcome, observer.as_ref()).await?;
        Ok(outcome)
    }

    /// Bring a finished task's work back: merge it when the task completed, keep the worktree when the task
    /// will run again, and keep the work on its branch when it failed.
    async fn bring_back(
        &self,
        worktrees: &Worktrees,
        wt: &TaskWorktree,
        outcome: &mut TaskOutcome,
        observer: &dyn LoopObserver,
    ) -> Result<()> {
        let id = wt.task_id;
        let title = self.task(id).await?.title;
        let git_config = &self.config().config.git;
        match outcome.status {
            TaskStatus::Completed if git_config.create_pr => {
                match worktrees.propose(wt, &title, &git_config.remote, git_config.pr_draft).await {
                    Ok(None) => observer.step(&Step::Progress(format!("task {id} changed nothing: no pull request"))),
                    Ok(Some(url)) => {
                        observer.step(&Step::Progress(format!("task {id}'s pull request ({}): {url}", wt.branch)))
                    }
                    Err(e) => {
                        observer.step(&Step::Progress(format!(
                            "task {id}'s work is committed on branch {}, but no pull request was opened:",
                            wt.branch
                        )));
                        // A line per cause, so the one that matters (e.g. the time limit) is not cut off.
                        for cause in e.chain() {
                            observer.step(&Step::Progress(format!("  {cause}")));
                        }
                    }
                }
            }
            TaskStatus::Completed => match worktrees.integrate(wt, &title).await? {
                Integration::NothingToMerge => {
                    observer.step(&Step::Progress(format!("task {id} changed nothing: no merge")));
                }
                Integration::Merged { commit } => {
                    self.state().set_task_git(id, None, None, Some(&commit)).await?;
                    observer.step(&Step::Progress(format!(
                        "merged task {id} ({}) as {}",
                        wt.branch,
                        &commit[..commit.len().min(10)]
                    )));
                }
                Integration::Conflict { paths, detail } => {
                    let what = if paths.is_empty() {
                        format!("git refused the merge: {}", detail.lines().next().unwrap_or("").trim())
                    } else {
                        format!("it conflicts in {}", paths.join(", "))
                    };
                    let reason = format!(
                        "its branch {} does not merge into {}: {what}. Merge it yourself (`git merge {}`), then \
                         approve the breakpoint; or give feedback to redo the task on the merged work",
                        wt.branch,
                        worktrees.project_branch().await.unwrap_or_else(|_| "HEAD".into()),
                        wt.branch
                    );
                    let bp = self.state().pause_for_merge_conflict(id, &reason).await?;
                    observer.step(&Step::BreakpointOpened {
                        id: bp,
                        rule: MERGE_CONFLICT_RULE.into(),
                        reason: reason.clone(),
                    });
                    outcome.status = TaskStatus::Paused;
                    outcome.breakpoint_id = Some(bp);
                    outcome.reason = format!("breakpoint ({MERGE_CONFLICT_RULE}): {reason}");
                }
            },
            TaskStatus::Failed | TaskStatus::Cancelled => {
                let left = format!("obra: task {id} ({title}), left {}", outcome.status.as_str());
                let kept = worktrees.commit(wt, &left).await?;
                worktrees.remove(wt, false).await?;
                if kept.is_some() {
                    observer.step(&Step::Progress(format!("task {id}'s unfinished work is on branch {}", wt.branch)));
                }
            }
            _ => observer.step(&Step::Progress(format!(
                "task {id} is {}: its worktree stays for its next execution",
                outcome.status.as_str()
            ))),
        }
        Ok(())
    }

    /// Worktrees an earlier parallel run left: a task completed since (its breakpoint approved) is merged now,
    /// a failed or cancelled one's work is committed on its branch and the worktree removed; the others stay.
    async fn settle_leftovers(&self, worktrees: &Worktrees, observer: &dyn LoopObserver) -> Result<()> {
        for id in worktrees.existing() {
            let Ok(task) = self.task(id).await else { continue };
            let status = task.status();
            if !matches!(status, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled) {
                continue;
            }
            let wt = worktrees.add(id, &task.title).await?;
            let mut outcome = TaskOutcome {
                task_id: id,
                status,
                iterations: 0,
                action: None,
                confidence: None,
                breakpoint_id: None,
                reason: String::new(),
                agent_failure: None,
            };
            observer.step(&Step::Progress(format!("task {id} is {} since the last run", status.as_str())));
            self.bring_back(worktrees, &wt, &mut outcome, observer).await?;
        }
        Ok(())
    }
}

/// Await `work` while the tasks in `running` keep being driven, keeping those that finish meanwhile in
/// `finished`.
///
/// A task's future is only driven while someone polls `running`. Left alone, it can be suspended half-way
/// through a database transaction, holding SQLite's write lock, and a write of `work` (recording a branch or
/// a merge) would then wait on that lock until the busy timeout and fail with "the database is locked".
async fn alongside<F: Future, T>(
    running: &mut FuturesUnordered<F>,
    finished: &mut VecDeque<F::Output>,
    work: impl Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(done) = running.next(), if !running.is_empty() => finished.push_back(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use sqlx::Connection;

    use super::*;
    use crate::state::{NewProject, OpenSettings, StateManager};

    fn project(name: &str) -> NewProject {
        NewProject { name: name.into(), workspace: PathBuf::from("/tmp/ws"), description: String::new(), profile: None }
    }

    /// A running task suspended inside a write transaction (its lock released only when it is polled again)
    /// does not block the loop's own writes made through `alongside`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_writes_while_a_running_task_holds_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obra.db");
        let settings = OpenSettings { busy_timeout: Duration::from_millis(1500) };
        let state = StateManager::open_with(&path, &settings).await.unwrap();
        let url = format!("sqlite://{}", path.display());

        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let mut running = FuturesUnordered::new();
        running.push(Box::pin(async move {
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
            locked_tx.send(()).unwrap();
            // Suspended here with the write lock held, until polled again.
            tokio::time::sleep(Duration::from_millis(50)).await;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
            "task done"
        }));
        let mut finished = VecDeque::new();
        // Drive the task up to its lock, as the loop does while it waits for the next one to finish.
        alongside(&mut running, &mut finished, locked_rx).await.unwrap();

        let created = alongside(&mut running, &mut finished, state.create_project(&project("demo"))).await;
        created.expect("the loop's write goes through once the task commits");
        assert_eq!(finished.pop_front(), Some("task done"));
        assert!(running.is_empty());
    }
}
