//! What the loop reports as it goes, for the CLI's live output (and later the production log).

use std::time::{Duration, SystemTime};

use crate::contract::{FileChange, RunResult, Verdict};
use crate::state::{Action, GateRecord, TaskStatus, UsageTotals};

/// The tokens and cost of one agent run and of its task so far, as the agent plugin reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunUsage {
    /// This run, all its attempts (retries included) summed; nothing [reported](UsageTotals::is_reported) when
    /// the agent reports no usage.
    pub run: UsageTotals,
    /// Every agent run of the task so far, this one and earlier executions included: what the `budget` rule
    /// checks against `max_task_tokens` and `max_task_cost_usd`.
    pub task: UsageTotals,
}

/// One step of the loop.
#[derive(Debug, Clone)]
pub enum Step {
    /// `obra run` picked the next task.
    TaskPicked {
        /// Task.
        task_id: i64,
        /// Its title.
        title: String,
        /// Tasks ready to run now, this one included.
        ready: usize,
        /// Pending tasks in the project, ready or not.
        pending: usize,
    },
    /// An iteration begins.
    IterationStarted {
        /// Task.
        task_id: i64,
        /// Iteration number.
        iteration: u32,
        /// Limit.
        max_iterations: u32,
        /// Prompt size in characters.
        prompt_chars: usize,
    },
    /// The work of completed tasks was committed (`git.commit_strategy`).
    Committed {
        /// The commit's sha.
        commit: String,
        /// Its subject line.
        subject: String,
        /// The tasks whose work it holds.
        tasks: Vec<i64>,
        /// Paths it changed.
        files: usize,
    },
    /// The workspace was saved as a checkpoint (before the agent runs, and when a task completes).
    CheckpointTaken {
        /// Its id in the store (`obra checkpoint rollback ID`).
        id: i64,
        /// Files it holds.
        files: usize,
        /// Taken when the task completed (the finished work), not before an agent run.
        completed: bool,
    },
    /// A live message from the agent plugin (a tool use, an API retry).
    Progress(String),
    /// An attempt of a call failed and will be tried again.
    Retrying {
        /// What is retried (`agent`, `llm`).
        what: &'static str,
        /// The failed attempt, 1-based.
        attempt: u32,
        /// Wait before the next one.
        delay: Duration,
        /// Why it failed.
        reason: String,
    },
    /// The agent finished (or could not run).
    AgentFinished {
        /// Its result, or the error.
        result: Result<RunResult, String>,
        /// Files it changed.
        changes: Vec<FileChange>,
        /// What it used.
        usage: RunUsage,
    },
    /// A gate gave its verdict.
    GateFinished(GateRecord),
    /// The LLM gave (or failed to give) its opinion.
    LlmOpinion {
        /// Confidence it gave, if any.
        confidence: Option<f32>,
        /// Its reasoning, or why there is no opinion.
        note: String,
    },
    /// A breakpoint rule asked to stop.
    RuleFired {
        /// Rule plugin.
        rule: String,
        /// What it said.
        verdict: Verdict,
    },
    /// The iteration's decision.
    Decided {
        /// Action.
        action: Action,
        /// Combined confidence.
        confidence: f32,
        /// Why.
        explanation: String,
    },
    /// A breakpoint was opened.
    BreakpointOpened {
        /// Its id.
        id: i64,
        /// Rule.
        rule: String,
        /// Why.
        reason: String,
    },
    /// The configuration files changed and the new configuration is in force from this iteration on.
    ConfigReloaded {
        /// The keys whose value changed and now apply.
        applied: Vec<String>,
        /// The keys that changed but take effect only when Obra starts again.
        needs_restart: Vec<String>,
    },
    /// The configuration files changed but the result is invalid: the previous configuration stays.
    ConfigRejected {
        /// Why, naming the file, line and key.
        error: String,
    },
    /// Policy files (configuration, templates, prompt rules, plugins, the trust store) changed while the agent
    /// ran: the change was refused and the files put back as they were before the run (ADR 34).
    PolicyRefused {
        /// Task.
        task_id: i64,
        /// The files, each with what happened to it (`.obra/config.yaml (modified)`).
        paths: Vec<String>,
        /// Files that could not be restored, with why (empty when every one was).
        errors: Vec<String>,
        /// The unified diff of what the agent wrote (bounded).
        diff: String,
    },
    /// The agent hit a rate limit or quota that outlasts the retry policy: the task is back to pending until
    /// `until`, keeping its agent session, and this execution ends.
    RateLimited {
        /// Task.
        task_id: i64,
        /// When it may run again.
        until: SystemTime,
        /// The stored reason ("rate limited until ...: the agent's message").
        reason: String,
    },
    /// The execution ended.
    TaskFinished {
        /// Task.
        task_id: i64,
        /// Final status.
        status: TaskStatus,
    },
    /// A step of one task among several running at once (`obra run --parallel`): shown tagged with the task.
    ForTask {
        /// The task.
        task_id: i64,
        /// What happened.
        step: Box<Step>,
    },
}

/// Receives the loop's steps.
pub trait LoopObserver: Send + Sync {
    /// Called for each step, in order.
    fn step(&self, step: &Step);
}

/// An observer that ignores everything.
pub struct Silent;

impl LoopObserver for Silent {
    fn step(&self, _: &Step) {}
}

/// Tags every step with its task, for tasks that run at the same time and share one observer.
pub struct TaskTagged {
    /// Where the tagged steps go.
    pub inner: std::sync::Arc<dyn LoopObserver>,
    /// The task.
    pub task_id: i64,
}

impl LoopObserver for TaskTagged {
    fn step(&self, step: &Step) {
        self.inner.step(&Step::ForTask { task_id: self.task_id, step: Box::new(step.clone()) });
    }
}
