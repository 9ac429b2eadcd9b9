//! `obra run`: work through the project's backlog.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;

use super::args::{GlobalArgs, RunArgs};
use super::output::{StepPrinter, print_json, usage_text};
use super::{EXIT_FAILED, EXIT_PAUSED, open_options};
use crate::engine::scheduler::{Schedule, Wait};
use crate::orchestrator::{Orchestrator, RunOptions};
use crate::state::TaskStatus;

pub(super) async fn run(g: &GlobalArgs, a: RunArgs) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    let options = RunOptions {
        max_tasks: a.max_tasks,
        watch: a.watch.then(|| Duration::from_secs(a.poll)),
        stop: Default::default(),
        no_wait: a.no_wait,
        parallel: usize::from(a.parallel),
    };
    // The first Ctrl-C stops the run after the current task (or ends a wait for a rate limit's reset); the
    // second ends obra at once, and the next run recovers the interrupted task.
    let stop = options.stop.clone();
    let agent = obra.config().config.agent.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "\nobra: stopped; the next `obra run` resumes the interrupted task in the same agent session"
                );
                std::process::exit(130);
            }
            let stall = if agent.stall_secs > 0 {
                format!(", or sooner if it prints nothing for {} s (agent.stall_secs)", agent.stall_secs)
            } else {
                String::new()
            };
            eprintln!(
                "\nobra: stopping after the current task(s): waiting for the running agent and its checks to \
                 finish this iteration (the agent runs at most {} s, agent.timeout_secs{stall}). Press Ctrl-C \
                 again to stop now: the agent and everything it started are killed, and the next `obra run` \
                 resumes the task.",
                agent.timeout_secs
            );
        }
    });
    // The agent is checked once, before the first task: a missing CLI stops the run here, with the fix, instead
    // of failing task after task.
    let tasks = obra.state().tasks(obra.project().id).await?;
    let running = tasks.iter().any(|t| t.status() == TaskStatus::Running);
    if running || !Schedule::of_tasks(&tasks).ready_at(std::time::SystemTime::now()).is_empty() {
        super::doctor_cmd::check_agent_before_run(&obra).await?;
    }
    let printer = Arc::new(StepPrinter::new(a.json));
    let observer = obra.observed(printer.clone());
    eprintln!("Running project \"{}\" ({})", obra.project().name, obra.project().workspace);
    obra.log_run_started(
        "run",
        serde_json::json!({ "parallel": options.parallel, "max_tasks": options.max_tasks, "watch": a.watch }),
    );
    let summary = obra.run_project(&options, observer).await;
    obra.log_run_finished(summary.as_ref().map(|s| {
        serde_json::json!({ "executions": s.executions.len(), "completed": s.count(TaskStatus::Completed),
                            "paused": s.count(TaskStatus::Paused), "failed": s.count(TaskStatus::Failed),
                            "stopped_because": s.stopped_because })
    }));
    let summary = summary?;
    let (completed, paused, failed) =
        (summary.count(TaskStatus::Completed), summary.count(TaskStatus::Paused), summary.count(TaskStatus::Failed));
    // An execution that ends `pending` was paused by a rate limit (the task resumes after the reset).
    let rate_limited = summary.count(TaskStatus::Pending);
    if a.json {
        print_json(&summary)?;
    } else {
        let waited = if rate_limited > 0 { format!(", {rate_limited} paused by a rate limit") } else { String::new() };
        println!(
            "Run finished ({}): {} execution(s): {completed} completed, {paused} paused at a breakpoint, {failed} \
             failed{waited}",
            summary.stopped_because,
            summary.executions.len()
        );
        let used = printer.usage();
        if used.is_reported() {
            println!("Agent usage of this run: {}", usage_text(&used));
        }
        let blocked_tasks = summary.blocked.iter().filter(|b| b.dependency_status != "paused").count();
        if blocked_tasks > 0 {
            println!(
                "Blocked: {blocked_tasks} task(s) wait behind a failed or cancelled task (obra task list --status blocked)"
            );
        }
        for b in &summary.blocked {
            let via = if b.via == b.waits_for { String::new() } else { format!(" (through task {})", b.via) };
            println!("  task {} waits for task {}{via}, which is {}", b.task_id, b.waits_for, b.dependency_status);
        }
        let roots: std::collections::BTreeSet<i64> =
            summary.blocked.iter().filter(|b| b.dependency_status != "paused").map(|b| b.waits_for).collect();
        for root in roots {
            println!("Fix the cause, then `obra task retry {root}`: its blocked dependents become pending with it");
        }
        // What keeps the rest from running: paused tasks with their breakpoints, rate limits with their reset
        // (blocked tasks are listed above).
        let mut any_paused = false;
        for w in &summary.waiting {
            match &w.wait {
                Wait::Paused { breakpoint_id, .. } => {
                    any_paused |= breakpoint_id.is_some();
                    println!("  task {} is {}", w.task_id, w.wait);
                }
                Wait::RateLimited { .. } => println!(
                    "  task {} is {} (obra run waits for it unless --no-wait; obra task execute {} runs it now)",
                    w.task_id, w.wait, w.task_id
                ),
                Wait::BlockedBy { .. } => {}
            }
        }
        if paused > 0 || any_paused {
            println!("Open breakpoints: obra breakpoint list; resolve one with obra breakpoint resolve ID");
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else if paused > 0 {
        ExitCode::from(EXIT_PAUSED)
    } else {
        ExitCode::SUCCESS
    })
}
