//! One task execution: iterations of prompt -> agent -> changes -> gates -> confidence -> rules -> decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::decision::{self, LlmOpinion};
use super::events::Step;
use super::integrity::{self, Tampering};
use super::llm_ask::LlmScope;
use super::prompt::{
    DECISION_SCHEMA, DecisionPromptInput, ERROR_ANALYSIS_SCHEMA, ErrorAnalysisPromptInput, OPINION_SCHEMA,
    ValidationPromptInput,
};
use super::protect;
use super::rate_limit;
use super::session_policy;
use super::{ConfigWatch, Engine};
use crate::contract::{
    CallContext, FileChange, GateInput, LoopEvent, Outcome, PluginError, RunRequest, RunResult, Severity, TaskInfo,
    Verdict,
};
use crate::sandbox::integrity::{Fingerprint, Tampered};
use crate::state::NewCheckpoint;
use crate::state::{Action, DecisionRecord, GateRecord, IterationRecord, Task, TaskCancelled, TaskStatus, UsageTotals};
use crate::workspace::checkpoint::{CheckpointInfo, Checkpoints};
use crate::workspace::watcher::Tracking;

/// How often a running agent's task is checked for a cancel from another command or process.
pub const CANCEL_POLL: Duration = Duration::from_secs(1);

/// Most feedback items carried into the next prompt, and the most characters of each.
const MAX_FEEDBACK_ITEMS: usize = 20;
const MAX_FEEDBACK_CHARS: usize = 2000;

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskOutcome {
    /// The task.
    pub task_id: i64,
    /// Its status now.
    pub status: TaskStatus,
    /// Iterations run in this execution.
    pub iterations: u32,
    /// The last decision.
    pub action: Option<Action>,
    /// The last confidence.
    pub confidence: Option<f32>,
    /// The breakpoint opened, if the task paused.
    pub breakpoint_id: Option<i64>,
    /// Why the task ended where it did.
    pub reason: String,
    /// The cause of an `agent-failed` breakpoint (the run's outcome and the first line of the agent's
    /// message), when the task paused at one: `obra run`'s circuit breaker compares them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_failure: Option<String>,
}

/// The rule of a breakpoint opened because the agent's run failed (an API error, a missing CLI, a timeout, a
/// stall, a permission refusal) rather than because its work was judged.
pub const AGENT_FAILED_RULE: &str = "agent-failed";

/// What the gates would say on a tree the agent never touched.
pub(super) const GATES_NOT_RUN: &str = "gates not run: the agent failed and changed nothing";

/// Why the agent's run failed, when it did: it could not run at all, or it ended with an outcome other than
/// success (a turn limit is not a failure: the work goes on in the next iteration). The outcome and the first
/// line of the agent's message.
pub(super) fn agent_failure(result: &Result<RunResult, PluginError>) -> Option<String> {
    let first_line = |text: &str| text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string();
    match result {
        Err(e) => Some(format!("the agent could not run: {}", first_line(&e.to_string()))),
        Ok(r) if matches!(r.outcome, Outcome::Success | Outcome::MaxTurns) => None,
        Ok(r) => {
            let message = first_line(&r.summary);
            Some(if message.is_empty() {
                format!("the agent's run ended with {}", r.outcome)
            } else {
                format!("the agent's run ended with {}: {message}", r.outcome)
            })
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct OpinionReply {
    confidence: f32,
    reasoning: String,
    #[serde(default)]
    concerns: Vec<String>,
}

/// The LLM's error analysis of a failed iteration.
#[derive(Debug, serde::Deserialize)]
struct ErrorAnalysis {
    diagnosis: String,
    #[serde(default)]
    suggested_fixes: Vec<String>,
}

/// The LLM's clarification request of a CLARIFY decision.
#[derive(Debug, serde::Deserialize)]
struct Clarification {
    clarification: String,
    #[serde(default)]
    questions: Vec<String>,
}

/// One agent run, all its attempts, as the loop goes on with it.
pub(super) struct AgentRun {
    /// The interaction of the last attempt.
    pub(super) interaction_id: i64,
    /// The last attempt's result.
    pub(super) result: Result<RunResult, PluginError>,
    /// What the run changed, all attempts together.
    pub(super) changes: Vec<FileChange>,
    /// Protected paths it changed (where the kernel does not keep it off them).
    pub(super) tampered: Vec<Tampered>,
    /// The tokens and cost every attempt reported, summed.
    pub(super) usage: UsageTotals,
}

impl Engine {
    /// Execute one task until it completes, pauses at a breakpoint, or fails.
    pub async fn execute_task(&self, task_id: i64) -> Result<TaskOutcome> {
        self.execute_task_watched(task_id, None).await
    }

    /// Like [`Engine::execute_task`], and at the top of each iteration after the first asks `watch` whether
    /// the configuration changed: a valid new one is swapped in whole for the rest of the task, an invalid
    /// one is reported and ignored.
    ///
    /// A task cancelled while it runs (`obra task cancel`, from this process or another) stops at the loop's
    /// next step: the agent is stopped within [`CANCEL_POLL`], and the outcome is `cancelled`.
    pub async fn execute_task_watched(&self, task_id: i64, watch: Option<&dyn ConfigWatch>) -> Result<TaskOutcome> {
        match self.execute_iterations(task_id, watch).await {
            Err(e) if TaskCancelled::is(&e) => {
                self.observer.step(&Step::TaskFinished { task_id, status: TaskStatus::Cancelled });
                Ok(TaskOutcome {
                    task_id,
                    status: TaskStatus::Cancelled,
                    iterations: 0,
                    action: None,
                    confidence: None,
                    breakpoint_id: None,
                    reason: e.to_string(),
                    agent_failure: None,
                })
            }
            other => other,
        }
    }

    /// The agent changed policy files (already restored): store the iteration as an ESCALATE whose
    /// explanation names the files and shows the diff, and pause the task at an `integrity` breakpoint.
    pub(super) async fn refuse_policy_change(
        &self,
        task_id: i64,
        iteration: u32,
        interaction_id: i64,
        (tampered, restore_errors): (&[Tampering], &[String]),
        session: Option<&str>,
    ) -> Result<TaskOutcome> {
        let root =
            self.policy.as_ref().and_then(|p| p.root().map(Into::into)).unwrap_or_else(|| self.workspace.clone());
        let reason = integrity::describe(tampered, restore_errors, &root);
        let rel = |p: &std::path::Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
        let paths: Vec<String> = tampered.iter().map(|t| format!("{} ({})", rel(&t.path), t.kind())).collect();
        let diff = reason.split_once("\n\n").map(|(_, d)| d.to_string()).unwrap_or_default();
        tracing::warn!("the agent changed policy files during its run (refused and restored): {}", paths.join(", "));
        self.observer.step(&Step::PolicyRefused { task_id, paths, errors: restore_errors.to_vec(), diff });
        let record = DecisionRecord {
            action: Action::Escalate,
            confidence: 0.0,
            heuristic_score: 0.0,
            llm_score: None,
            llm_reasoning: None,
            explanation: format!("Integrity: {reason}"),
            verified_by: String::new(),
        };
        let breakpoint = (integrity::INTEGRITY_RULE.to_string(), reason.clone());
        let status_reason = format!("breakpoint ({}): {reason}", integrity::INTEGRITY_RULE);
        let breakpoint_id = self
            .state
            .conclude_iteration(&IterationRecord {
                task_id,
                interaction_id,
                gates: &[],
                decision: &record,
                task_status: TaskStatus::Paused,
                status_reason: Some(&status_reason),
                session_id: session,
                breakpoint: Some(breakpoint),
            })
            .await?;
        self.observer.step(&Step::Decided {
            action: Action::Escalate,
            confidence: 0.0,
            explanation: record.explanation.clone(),
        });
        if let Some(id) = breakpoint_id {
            self.observer.step(&Step::BreakpointOpened { id, rule: integrity::INTEGRITY_RULE.into(), reason });
        }
        Ok(TaskOutcome {
            task_id,
            status: TaskStatus::Paused,
            iterations: iteration,
            action: Some(Action::Escalate),
            confidence: Some(0.0),
            breakpoint_id,
            reason: status_reason,
            agent_failure: None,
        })
    }

    /// The changes of an agent run to the gates' protected paths, each put back from the pre-run checkpoint
    /// `pre_run` (when there is one).
    pub(super) async fn guard_gates(
        &self,
        guards: &[protect::GateGuard],
        changes: &[FileChange],
        pre_run: Option<String>,
    ) -> Vec<protect::ProtectedChange> {
        if guards.is_empty() || !changes.iter().any(|c| guards.iter().any(|g| g.covers(c))) {
            return Vec::new();
        }
        let (guards, changes, workspace) = (guards.to_vec(), changes.to_vec(), self.workspace.clone());
        let found = tokio::task::spawn_blocking(move || {
            let checkpoints = pre_run.as_ref().and_then(|_| Checkpoints::open(&workspace).ok().flatten());
            let before = |path: &str| -> Option<Option<Vec<u8>>> {
                checkpoints.as_ref().and_then(|c| c.file_at(pre_run.as_deref()?, path).ok())
            };
            protect::check_and_restore(&guards, &changes, &workspace, &before)
        })
        .await
        .unwrap_or_default();
        for change in &found {
            self.observer.step(&Step::Progress(format!(
                "the agent {} {}, which gate {} depends on: {}",
                change.kind.as_str(),
                change.path,
                change.gate,
                if change.restored {
                    "put back as it was before the run; the gate checks that version"
                } else {
                    "NOT put back (no checkpoint from before the run; engine.checkpoints is off or this is no git \
                     repository)"
                }
            )));
        }
        found
    }

    /// Snapshot the workspace as a checkpoint (when it is in a git repository) and record it in the store.
    /// A workspace outside git is noted once per execution; a snapshot that fails is reported and the work
    /// goes on, since the agent's run does not depend on it.
    pub(super) async fn take_checkpoint(&self, task: &Task, label: &str, completed: bool) -> Result<Option<String>> {
        let workspace = self.workspace.clone();
        let label_owned = label.to_string();
        let retention = self.current().config.engine.checkpoint_retention;
        let tracker = self.tracker.clone();
        let taken = tokio::task::spawn_blocking(move || -> Result<Option<CheckpointInfo>> {
            match Checkpoints::open(&workspace)? {
                // With the workspace's watching tracker, in proportion to what changed since the last one.
                Some(checkpoints) => Ok(Some(tracker.lend(&workspace, |kept| {
                    let checkpoints = checkpoints.with_retention(retention);
                    match kept {
                        Some(kept) => checkpoints.create_tracked(&label_owned, kept),
                        None => checkpoints.create(&label_owned),
                    }
                })?)),
                None => Ok(None),
            }
        })
        .await?;
        match taken {
            Ok(Some(info)) => {
                let row = self
                    .state
                    .record_checkpoint(&NewCheckpoint {
                        project_id: task.project_id,
                        task_id: Some(task.id),
                        interaction_id: None,
                        label: label.to_string(),
                        git_ref: info.git_ref.clone(),
                        commit_sha: info.commit.clone(),
                    })
                    .await?;
                self.observer.step(&Step::CheckpointTaken { id: row.id, files: info.files, completed });
                return Ok(Some(info.commit));
            }
            Ok(None) => {
                if !self.warned_no_git.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    self.observer.step(&Step::Progress(format!(
                        "no checkpoint: {} is not in a git repository (`git init` there to be able to roll back)",
                        self.workspace.display()
                    )));
                }
            }
            Err(e) => self.observer.step(&Step::Progress(format!("checkpoint failed, continuing without: {e:#}"))),
        }
        Ok(None)
    }

    /// Run the agent under the retry policy. Every attempt is its own interaction row; the returned changes
    /// are everything that changed in the workspace over all attempts.
    pub(super) async fn run_agent(
        &self,
        info: &TaskInfo,
        prompt: &str,
        mut session: Option<String>,
        turns: Option<u32>,
    ) -> Result<AgentRun> {
        let current = self.current();
        let agent = &current.plugins.agent;
        if let Some(spec) = &current.sandbox
            && info.iteration == 1
        {
            self.observer.step(&Step::Progress(format!("sandbox: {}", spec.describe(&self.workspace))));
            for note in &spec.notes {
                self.observer.step(&Step::Progress(format!("sandbox: {note}")));
            }
        }
        // Where the kernel does not keep the agent off the protected paths, compare them before and after.
        let detection = current.sandbox.as_ref().filter(|s| s.needs_detection(current.transport.is_some()));
        let before = detection.map(|s| Fingerprint::take(&s.protected));
        // The user's protected files are compared in every mode: a missing one cannot be bound read-only.
        let user_before = current.sandbox.as_ref().map(|s| Fingerprint::take_user(&s.user_paths));
        let mut agent_config = current.config.agent_config(agent.name());
        super::gates::allow_commands(&mut agent_config, &super::gates::commands(&current.config.gates));
        let mut turn_limit = turns.filter(|t| session_policy::apply_max_turns(&mut agent_config, *t));
        let mut doubled = false;
        let mut config = serde_json::to_string(&agent_config)?;
        let timeout = Duration::from_secs(current.config.agent.timeout_secs);
        let (mut tracking, notes) = Tracking::start(&self.tracker, &self.workspace, &current.config.workspace).await?;
        for note in notes {
            self.observer.step(&Step::Progress(note));
        }
        let mut attempt = 0;
        let mut usage = UsageTotals::default();
        loop {
            attempt += 1;
            let interaction_id =
                self.state.begin_interaction(info.id as i64, info.iteration, agent.name(), prompt).await?;
            // A later attempt does not count what changed during the back-off (the run's total does).
            if attempt > 1 {
                tracking.take().await?;
            }
            let started = Instant::now();
            let request = RunRequest {
                task: info.clone(),
                prompt: prompt.to_string(),
                workspace: self.workspace.display().to_string(),
                resume_session: session.clone(),
                timeout_ms: timeout.as_millis() as u64,
                config: config.clone(),
            };
            let (mut ctx, forwarder) = self.call_context(Some(timeout + Duration::from_secs(30)));
            ctx.transport = self.current().transport.clone();
            ctx.stall =
                (current.config.agent.stall_secs > 0).then(|| Duration::from_secs(current.config.agent.stall_secs));
            // A plugin reports what it likes; what Obra keeps, shows and feeds back is bounded. A cancel of the
            // task drops the call, which ends the agent's whole process tree.
            let mut cancelled = false;
            let result = tokio::select! {
                result = agent.run(&ctx, &request) => result.map(RunResult::bounded).map_err(PluginError::bounded),
                () = self.cancellation_of(info.id as i64) => {
                    cancelled = true;
                    Err(PluginError::Fatal(
                        "the task was cancelled while the agent ran; the agent and everything it started were \
                         stopped"
                            .to_string(),
                    ))
                }
            };
            if let Ok(r) = &result {
                usage.add(&r.usage);
            }
            drop(ctx);
            let _ = forwarder.await;
            // With the kernel sandbox the agent's whole tree is gone now: no quiet window to wait for.
            let writers_gone = current.transport.is_none()
                && current.sandbox.as_ref().is_some_and(|spec| !spec.needs_detection(false));
            let tracked = tracking.take_settled(writers_gone).await?;
            let attempt_changes: Vec<FileChange> = tracked.iter().map(|c| c.change.clone()).collect();
            let stored = match &result {
                Ok(r) => Ok(r),
                Err(e) => Err(e.to_string()),
            };
            self.state
                .finish_interaction(
                    interaction_id,
                    stored.as_ref().map_err(String::as_str).copied(),
                    &attempt_changes,
                    started.elapsed(),
                )
                .await?;
            self.state.record_change_hashes(interaction_id, &tracked).await?;
            if cancelled {
                tracking.finish(&self.tracker).await;
                return Err(TaskCancelled { task_id: info.id as i64 }.into());
            }
            if let (Ok(r), Some(limit)) = (&result, turn_limit)
                && r.outcome == Outcome::MaxTurns
                && current.config.sessions.max_turns.retry_doubled
                && !doubled
            {
                // Once per iteration: the same session, at double the limit (the seeds' auto-retry).
                doubled = true;
                let double = limit.saturating_mul(2);
                session_policy::apply_max_turns(&mut agent_config, double);
                config = serde_json::to_string(&agent_config)?;
                turn_limit = Some(double);
                session = r.session_id.clone().or(session);
                self.observer.step(&Step::Retrying {
                    what: "agent",
                    attempt,
                    delay: Duration::ZERO,
                    reason: format!(
                        "stopped at its limit of {limit} turns; once more at {double}, resuming its session"
                    ),
                });
                continue;
            }
            let retry_error = match &result {
                Ok(r) => retryable_outcome(r),
                // The agent used its whole wall-clock limit (agent.timeout_secs): running it again would
                // likely take as long; the decision and its feedback handle it instead.
                Err(PluginError::Timeout(_)) => None,
                Err(e) => Some(e.clone()),
            };
            // A rate limit that outlasts the policy is not slept through here: the task pauses until the reset.
            if let Some(error) = retry_error
                && !rate_limit::pauses_instead_of_retrying(&error, &current.config.engine.retry)
                && let Some(delay) = current.retry.delay_after(attempt, &error)
            {
                self.observer.step(&Step::Retrying { what: "agent", attempt, delay, reason: error.to_string() });
                if let Ok(r) = &result {
                    session = r.session_id.clone().or(session);
                }
                tokio::time::sleep(delay).await;
                continue;
            }
            let total = tracking.total();
            tracking.finish(&self.tracker).await;
            let mut tampered = match (detection, before) {
                (Some(spec), Some(before)) => before.compare(&Fingerprint::take(&spec.protected), true),
                _ => Vec::new(),
            };
            if let (Some(spec), Some(user_before)) = (&current.sandbox, &user_before) {
                tampered.extend(user_before.compare_user(&spec.user_paths, true));
            }
            // Writes the sandbox refused still tell what the agent tried: a human looks at it.
            if let (Some(spec), Ok(r)) = (&current.sandbox, &result) {
                tampered.extend(refused_writes(spec, &r.failed_actions));
            }
            return Ok(AgentRun { interaction_id, result, changes: total, tampered, usage });
        }
    }

    /// What changed while the gates ran (a test runner's caches, Python's bytecode) is the gates' doing: it goes
    /// into the change tracker's baseline, so the next agent run neither reports it as changed outside agent
    /// runs nor charges it to its agent (ADR 38). Every write of the agent is in its run's changes already:
    /// its last take waited for the flush after it exited, and every process it started ended with it, under
    /// the sandbox. Where that is not sure (`sandbox.mode: off`, a remote transport), a process the agent left
    /// behind could write while the gates run, so those changes are shown.
    pub(super) async fn absorb_gate_writes(&self) {
        let current = self.current();
        let changes = match self.tracker.absorb(&self.workspace).await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!("cannot take what the gates wrote into the change tracker: {e:#}");
                return;
            }
        };
        if changes.is_empty() {
            return;
        }
        let listed = crate::workspace::watcher::listing(&changes);
        let agent_tree_ended = cfg!(target_os = "linux") && current.sandbox.is_some() && current.transport.is_none();
        if agent_tree_ended {
            tracing::debug!("{} file(s) changed while the gates ran, taken as theirs: {listed}", changes.len());
        } else {
            self.observer.step(&Step::Progress(format!(
                "{} file(s) changed while the gates ran, not charged to the agent (without the sandbox a process \
                 the agent left running could have written them too): {listed}",
                changes.len()
            )));
        }
    }

    /// Resolves once the task is found cancelled (checked every [`CANCEL_POLL`]); a store error is retried.
    async fn cancellation_of(&self, task_id: i64) {
        loop {
            tokio::time::sleep(CANCEL_POLL).await;
            if let Ok(true) = self.state.is_cancelled(task_id).await {
                return;
            }
        }
    }

    pub(super) async fn run_gates(
        &self,
        info: &TaskInfo,
        result: &RunResult,
        changes: &[FileChange],
    ) -> Vec<GateRecord> {
        let current = self.current();
        let mut records = Vec::new();
        for (index, (config, gate)) in current.plugins.gates.iter().enumerate() {
            let input = GateInput {
                task: info.clone(),
                agent_result: result.clone(),
                changes: changes.to_vec(),
                workspace: self.workspace.display().to_string(),
                config: config.config.to_string(),
            };
            let limit = Duration::from_secs(config.timeout_secs.max(1));
            let started = Instant::now();
            let (ctx, forwarder) = self.call_context(Some(limit));
            let outcome = gate.check(&ctx, &input).await;
            drop(ctx);
            let _ = forwarder.await;
            let elapsed = started.elapsed();
            // The key that raises the limit, by its index in the configured list (disabled gates included).
            let position = current.config.gates.iter().position(|g| g == config).unwrap_or(index);
            let record = super::gates::record(position, config, outcome, limit, elapsed);
            self.observer.step(&Step::GateFinished(record.clone()));
            records.push(record);
        }
        records
    }

    pub(super) async fn llm_opinion(
        &self,
        task: &Task,
        interaction_id: i64,
        result: &RunResult,
        changes: &[FileChange],
        gates: &[GateRecord],
    ) -> (Option<LlmOpinion>, Option<String>, Vec<String>) {
        if self.current().plugins.llm.is_none() {
            return (None, Some("no LLM is configured (llm.provider: none)".into()), vec![]);
        }
        let prompt = self.prompts().and_then(|p| {
            p.validation_prompt(&ValidationPromptInput {
                task,
                outcome: result.outcome.as_str(),
                summary: &result.summary,
                changes,
                gates,
            })
        });
        let prompt = match prompt {
            Ok(p) => p,
            Err(e) => return (None, Some(format!("cannot render the validation prompt: {e:#}")), vec![]),
        };
        match self
            .ask_llm::<OpinionReply>(LlmScope::new(task.id, interaction_id, "opinion"), prompt, OPINION_SCHEMA)
            .await
        {
            Ok(answer) => {
                let o = answer.value;
                let mut reasoning = o.reasoning;
                if !answer.repairs.is_empty() {
                    reasoning.push_str(&format!(" (Obra repaired the reply: {})", answer.repairs.join("; ")));
                }
                let opinion = LlmOpinion { confidence: o.confidence.clamp(0.0, 1.0), reasoning };
                self.observer
                    .step(&Step::LlmOpinion { confidence: Some(opinion.confidence), note: opinion.reasoning.clone() });
                (Some(opinion), None, o.concerns)
            }
            Err(note) => {
                self.observer.step(&Step::LlmOpinion { confidence: None, note: note.clone() });
                (None, Some(note), vec![])
            }
        }
    }

    /// Evaluate the rules in order; the first that pauses or aborts wins. A rule that fails pauses the task:
    /// when unsure, ask a human. Native rules (ADR 0014) also see this iteration's changes and gates and
    /// what the store knows (usage totals, earlier iterations).
    pub(super) async fn evaluate_rules(
        &self,
        event: &LoopEvent,
        changes: &[FileChange],
        gates: &[GateRecord],
    ) -> Option<(String, Verdict)> {
        let current = self.current();
        let mut facts = None;
        for (index, (config, rule)) in current.plugins.rules.iter().enumerate() {
            let verdict = match rule {
                super::rules::LoopRule::Plugin(plugin) => {
                    let mut event = event.clone();
                    event.config = config.config.to_string();
                    let (ctx, forwarder) = self.call_context(None);
                    let verdict = plugin.evaluate(&ctx, &event).await;
                    drop(ctx);
                    let _ = forwarder.await;
                    verdict
                }
                super::rules::LoopRule::Native(native) => {
                    if facts.is_none() {
                        let rules = &current.plugins.rules;
                        facts = Some(super::rules::gather(&self.state, event, changes, gates, rules).await);
                    }
                    let position = current.config.rules.iter().position(|r| r == config).unwrap_or(index);
                    match facts.as_ref().expect("gathered above") {
                        Ok(facts) => Ok(native.evaluate(facts, &format!("rules[{position}].config"))),
                        Err(e) => {
                            Err(PluginError::Fatal(format!("cannot read what the rule needs from the store: {e:#}")))
                        }
                    }
                }
            };
            let verdict = match verdict {
                Ok(Verdict::Proceed) => continue,
                Ok(v) => v,
                Err(e) => Verdict::Pause(format!("the rule could not be evaluated: {e}")),
            };
            self.observer.step(&Step::RuleFired { rule: rule.name().to_string(), verdict: verdict.clone() });
            return Some((rule.name().to_string(), verdict));
        }
        None
    }

    /// A call context for the workspace, with progress forwarded to the observer until the context drops.
    fn call_context(&self, timeout: Option<Duration>) -> (CallContext, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let observer = Arc::clone(&self.observer);
        let forwarder = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                observer.step(&Step::Progress(message));
            }
        });
        let current = self.current();
        let ctx = CallContext {
            workspace: Some(self.workspace.clone()),
            llm: current.plugins.llm.clone(),
            progress: Some(tx),
            timeout,
            transport: None,
            sandbox: current.sandbox.clone(),
            stall: None,
        };
        (ctx, forwarder)
    }
}

/// Each gate's finding for the protected paths of its that the agent changed.
pub(super) fn protected_findings(gates: &mut [GateRecord], guarded: &[protect::ProtectedChange]) {
    for change in guarded {
        if let Some(gate) = gates.iter_mut().find(|g| g.gate == change.gate) {
            gate.findings.push(crate::contract::Finding {
                severity: Severity::Error,
                message: format!(
                    "the agent {} {}, which this gate depends on ({}); do not change a gate's own files",
                    change.kind.as_str(),
                    change.path,
                    if change.restored { "it was put back and the gate checked the original" } else { "not put back" }
                ),
                path: Some(change.path.clone()),
                line: None,
            });
        }
    }
}

/// The reason of a `protected-change` breakpoint: the gates' files the agent changed, with its versions.
pub(super) fn protected_reason(guarded: &[protect::ProtectedChange]) -> Option<String> {
    if guarded.is_empty() {
        return None;
    }
    let listed: Vec<String> = guarded
        .iter()
        .map(|c| {
            let fate = if c.restored { "put back" } else { "NOT put back" };
            format!("{} ({} by the agent, {fate}; gate {})", c.path, c.kind.as_str(), c.gate)
        })
        .collect();
    let mut reason = format!(
        "the agent changed files the gates depend on: {}. The gates judged the versions from before the run. \
         Approve to accept the rest of the work as it is now, or give feedback to redo it. The agent's versions:",
        listed.join(", ")
    );
    for c in guarded.iter().take(10) {
        reason.push_str(&format!("\n--- {}\n{}", c.path, c.diff));
    }
    Some(crate::contract::bounded_text(reason))
}

/// The failed actions that were writes the sandbox refused ("Read-only file system" on a protected path, or
/// "Permission denied" under `sandbox.restrict_writes`): attempts on the supervision, each an entry of the
/// `integrity` breakpoint (nothing to restore).
fn refused_writes(spec: &crate::sandbox::SandboxSpec, failed: &[String]) -> Vec<Tampered> {
    failed
        .iter()
        .filter(|action| {
            action.contains("Read-only file system")
                || action.contains("EROFS")
                || (spec.landlock_writable.is_some() && action.contains("Permission denied"))
        })
        .take(10)
        .map(|action| Tampered {
            path: std::path::PathBuf::from(action.split(':').next().unwrap_or("").trim()),
            kind: "refused",
            diff: action.clone(),
            restored: true,
        })
        .collect()
}

/// The reason of an `integrity` breakpoint: which protected paths the agent run changed, whether each was put
/// back, and the diffs; none when nothing was touched.
pub(super) fn integrity_reason(root: &std::path::Path, tampered: &[Tampered]) -> Option<String> {
    if tampered.is_empty() {
        return None;
    }
    let name = |p: &std::path::Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let (refused, changed): (Vec<&Tampered>, Vec<&Tampered>) = tampered.iter().partition(|t| t.kind == "refused");
    let mut parts = Vec::new();
    if !changed.is_empty() {
        let listed: Vec<String> = changed
            .iter()
            .map(|t| {
                format!("{} ({}{})", name(&t.path), t.kind, if t.restored { ", restored" } else { ", NOT restored" })
            })
            .collect();
        parts.push(format!(
            "the agent changed protected paths, which Obra put back as they were before the run: {}",
            listed.join(", ")
        ));
    }
    if !refused.is_empty() {
        parts.push(format!(
            "the agent tried to write where the sandbox does not let it ({} refused write(s)); a human decides \
             whether its work can be trusted",
            refused.len()
        ));
    }
    let mut reason = parts.join("; ");
    for t in tampered.iter().filter(|t| !t.diff.is_empty()).take(10) {
        reason.push_str(&format!("\n--- {}\n{}", name(&t.path), t.diff));
    }
    Some(crate::contract::bounded_text(reason))
}

/// The event breakpoint rules see for an iteration: how the agent's run ended, the scored and proposed
/// decision, whether the gates passed, and how many files changed or were deleted.
pub(super) fn loop_event(
    info: &TaskInfo,
    outcome: Option<Outcome>,
    verdict: &decision::Verdict,
    gates: &[GateRecord],
    changes: &[FileChange],
) -> LoopEvent {
    LoopEvent {
        task: info.clone(),
        outcome: outcome.unwrap_or(Outcome::Crashed),
        confidence: verdict.confidence,
        gates_passed: gates.iter().all(|g| g.passed),
        proposed_decision: verdict.action.as_str().to_string(),
        files_changed: changes.len() as u32,
        files_deleted: changes.iter().filter(|c| c.kind == crate::contract::ChangeKind::Deleted).count() as u32,
        config: String::new(),
    }
}

pub(super) fn task_info(task: &Task, iteration: u32, max_iterations: u32) -> TaskInfo {
    TaskInfo {
        id: task.id as u64,
        title: task.title.clone(),
        description: task.description.clone(),
        iteration,
        max_iterations,
    }
}

/// Outcomes an agent reports that a later attempt may not have: rate limits and server-side API errors.
fn retryable_outcome(r: &RunResult) -> Option<PluginError> {
    match r.outcome {
        Outcome::RateLimited => {
            Some(PluginError::RateLimited { message: r.summary.clone(), retry_after_ms: r.retry_after_ms })
        }
        Outcome::ApiError if r.api_status.is_some_and(|s| s >= 500) => {
            Some(PluginError::Retryable(format!("API error {}: {}", r.api_status.unwrap_or(0), r.summary)))
        }
        _ => None,
    }
}

/// What the next prompt should tell the agent without an LLM: how the run ended, that it claimed success
/// while no file changed, the actions that failed inside the agent's tools, failed gates' findings and the
/// warnings of passing gates (the response check's included), the LLM's concerns.
fn feedback_items(
    result: &Result<RunResult, PluginError>,
    changes: &[FileChange],
    gates: &[GateRecord],
    concerns: &[String],
) -> Vec<String> {
    let mut items = Vec::new();
    match result {
        Err(e) => items.push(format!("The previous run could not complete: {e}")),
        Ok(r) if r.outcome != Outcome::Success => {
            items.push(format!("The previous run ended with outcome {}: {}", r.outcome, r.summary))
        }
        Ok(_) if changes.is_empty() => items.push(
            "You reported success but no file changed in the workspace: check that your edits were applied \
             (read a file before editing it) and make the change."
                .to_string(),
        ),
        Ok(_) => {}
    }
    if let Ok(r) = result {
        for action in &r.failed_actions {
            items.push(format!("This action of yours failed: {action}"));
        }
    }
    let place = |f: &crate::contract::Finding| match (&f.path, f.line) {
        (Some(p), Some(l)) => format!(" ({p}:{l})"),
        (Some(p), None) => format!(" ({p})"),
        _ => String::new(),
    };
    for gate in gates {
        if !gate.passed {
            items.push(format!("Quality gate `{}` failed: {}", gate.gate, gate.summary));
            for f in gate.findings.iter().filter(|f| f.severity != Severity::Info) {
                items.push(format!("{}{}", f.message, place(f)));
            }
        } else {
            for f in gate.findings.iter().filter(|f| f.severity == Severity::Warning) {
                items.push(format!("Warning from `{}`: {}{}", gate.gate, f.message, place(f)));
            }
        }
    }
    for c in concerns {
        items.push(format!("Reviewer concern: {c}"));
    }
    items
}

/// At most [`MAX_FEEDBACK_ITEMS`] items of at most [`MAX_FEEDBACK_CHARS`] characters.
fn cap_feedback(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .take(MAX_FEEDBACK_ITEMS)
        .map(|s| {
            if s.chars().count() > MAX_FEEDBACK_CHARS {
                s.chars().take(MAX_FEEDBACK_CHARS).collect::<String>() + " [...]"
            } else {
                s
            }
        })
        .collect()
}

impl Engine {
    /// What the next prompt should tell the agent: the [`feedback_items`]; after a failed iteration (the
    /// agent did not succeed or a required gate failed) the LLM's error analysis; and for CLARIFY the
    /// clarification request the LLM wrote (without an LLM, or when it fails, the decision's explanation).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn next_feedback(
        &self,
        task: &Task,
        (iteration, max_iterations, interaction_id): (u32, u32, i64),
        result: &Result<RunResult, PluginError>,
        changes: &[FileChange],
        gates: &[GateRecord],
        concerns: &[String],
        (action, confidence, explanation): (Action, f32, &str),
    ) -> Vec<String> {
        let mut items = feedback_items(result, changes, gates, concerns);
        let current = self.current();
        let required_failed =
            current.plugins.gates.iter().zip(gates).any(|((config, _), g)| config.required && !g.passed);
        // A success claim with no file changed is a failure to explain too.
        let failed =
            !matches!(result, Ok(r) if r.outcome == Outcome::Success && !changes.is_empty()) || required_failed;
        let llm = current.plugins.llm.is_some();
        let (outcome, summary) = match result {
            Ok(r) => (r.outcome.as_str().to_string(), r.summary.clone()),
            Err(e) => ("could-not-run".to_string(), e.to_string()),
        };
        if failed && llm {
            let prompt = self.prompts().and_then(|p| {
                p.error_analysis_prompt(&ErrorAnalysisPromptInput {
                    task,
                    iteration,
                    outcome: &outcome,
                    summary: &summary,
                    changes,
                    failures: &items,
                })
            });
            let answer = match prompt {
                Ok(prompt) => {
                    self.ask_llm::<ErrorAnalysis>(
                        LlmScope::new(task.id, interaction_id, "error analysis"),
                        prompt,
                        ERROR_ANALYSIS_SCHEMA,
                    )
                    .await
                }
                Err(e) => Err(format!("cannot render the error analysis prompt: {e:#}")),
            };
            match answer {
                Ok(a) => {
                    let a = a.value;
                    self.observer.step(&Step::Progress(format!("error analysis: {}", a.diagnosis.trim())));
                    items.insert(0, format!("Diagnosis of the failure: {}", a.diagnosis.trim()));
                    for (i, fix) in a.suggested_fixes.iter().enumerate() {
                        items.insert(1 + i, format!("Suggested fix: {}", fix.trim()));
                    }
                }
                Err(why) => self.observer.step(&Step::Progress(format!("no error analysis: {why}"))),
            }
        }
        if action == Action::Clarify {
            let mut request = None;
            if llm {
                let prompt = self.prompts().and_then(|p| {
                    p.decision_prompt(&DecisionPromptInput {
                        task,
                        iteration,
                        max_iterations,
                        confidence,
                        explanation,
                        summary: &summary,
                        concerns,
                        gates,
                    })
                });
                let answer = match prompt {
                    Ok(prompt) => {
                        self.ask_llm::<Clarification>(
                            LlmScope::new(task.id, interaction_id, "clarification"),
                            prompt,
                            DECISION_SCHEMA,
                        )
                        .await
                    }
                    Err(e) => Err(format!("cannot render the decision prompt: {e:#}")),
                };
                match answer {
                    Ok(a) => {
                        let mut text = a.value.clarification.trim().to_string();
                        for q in &a.value.questions {
                            text.push_str(&format!("\n  - {}", q.trim()));
                        }
                        request = Some(format!("The supervisor asks you to clarify: {text}"));
                    }
                    Err(why) => self.observer.step(&Step::Progress(format!("no clarification request: {why}"))),
                }
            }
            items.push(request.unwrap_or_else(|| {
                format!("The supervisor was not confident enough to accept the work: {explanation}")
            }));
        }
        cap_feedback(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retryable_outcomes_but_client_errors_are_not() {
        let mut r = RunResult {
            outcome: Outcome::RateLimited,
            summary: "429".into(),
            session_id: None,
            turns: 0,
            usage: Default::default(),
            duration_ms: 0,
            api_status: Some(429),
            retry_after_ms: Some(2000),
            permission_denials: vec![],
            exit_code: Some(1),
            failed_actions: vec![],
        };
        assert!(matches!(retryable_outcome(&r), Some(PluginError::RateLimited { retry_after_ms: Some(2000), .. })));
        r.outcome = Outcome::ApiError;
        r.api_status = Some(500);
        assert!(matches!(retryable_outcome(&r), Some(PluginError::Retryable(_))));
        r.api_status = Some(400);
        assert!(retryable_outcome(&r).is_none());
    }

    #[test]
    fn an_agent_failure_is_its_outcome_and_first_line_and_a_turn_limit_is_none() {
        let mut r = RunResult::new(Outcome::ApiError, "\nAPI Error: 401 invalid x-api-key\nsee the docs");
        assert_eq!(
            agent_failure(&Ok(r.clone())).as_deref(),
            Some("the agent's run ended with api-error: API Error: 401 invalid x-api-key")
        );
        r.summary = String::new();
        r.outcome = Outcome::Timeout;
        assert_eq!(agent_failure(&Ok(r.clone())).as_deref(), Some("the agent's run ended with timeout"));
        r.outcome = Outcome::MaxTurns;
        assert_eq!(agent_failure(&Ok(r.clone())), None);
        r.outcome = Outcome::Success;
        assert_eq!(agent_failure(&Ok(r)), None);
        let missing = PluginError::Fatal("cannot run `claude`: not found\nPATH=...".into());
        assert_eq!(
            agent_failure(&Err(missing)).as_deref(),
            Some("the agent could not run: fatal: cannot run `claude`: not found")
        );
    }

    #[test]
    fn feedback_carries_failed_gate_findings() {
        let gates = vec![GateRecord {
            gate: "tests".into(),
            passed: false,
            score: 0.0,
            summary: "1 test failed".into(),
            findings: vec![crate::contract::Finding {
                severity: Severity::Error,
                message: "assertion failed: greet() == \"hello\"".into(),
                path: Some("test.sh".into()),
                line: Some(3),
            }],
            error: None,
            duration_ms: 1,
        }];
        let items = feedback_items(&Err(PluginError::Fatal("x".into())), &[], &gates, &[]);
        assert!(items.iter().any(|i| i.contains("`tests` failed: 1 test failed")));
        assert!(items.iter().any(|i| i.contains("assertion failed") && i.contains("(test.sh:3)")));
    }

    #[test]
    fn warnings_of_passing_gates_reach_the_feedback_and_items_are_capped() {
        let gates = vec![GateRecord {
            gate: "response-format".into(),
            passed: true,
            score: 1.0,
            summary: "ok, 1 warning(s)".into(),
            findings: vec![crate::contract::Finding {
                severity: Severity::Warning,
                message: "The summary mentions a.sh as changed, but this run did not change it".into(),
                path: Some("a.sh".into()),
                line: None,
            }],
            error: None,
            duration_ms: 1,
        }];
        let items = feedback_items(&Err(PluginError::Fatal("x".into())), &[], &gates, &["no tests".into()]);
        assert!(items.iter().any(|i| i.starts_with("Warning from `response-format`: The summary mentions a.sh")));
        assert_eq!(items.last().unwrap(), "Reviewer concern: no tests");
        let capped = cap_feedback(vec!["x".repeat(3000); 30]);
        assert_eq!(capped.len(), MAX_FEEDBACK_ITEMS);
        assert!(capped[0].ends_with(" [...]") && capped[0].chars().count() == MAX_FEEDBACK_CHARS + 6);
    }

    #[test]
    fn a_success_claim_without_changes_feeds_back_that_and_each_failed_action() {
        let mut r = RunResult::new(Outcome::Success, "Fixed add() to return the sum.");
        r.failed_actions = vec!["Edit calc.py: File has not been read yet. Read it first before writing to it.".into()];
        let items = feedback_items(&Ok(r.clone()), &[], &[], &[]);
        assert!(items[0].starts_with("You reported success but no file changed"), "{items:?}");
        assert_eq!(
            items[1],
            "This action of yours failed: Edit calc.py: File has not been read yet. Read it first before writing to it."
        );
        let changed =
            [FileChange { path: "calc.py".into(), kind: crate::contract::ChangeKind::Modified, size: Some(9) }];
        let items = feedback_items(&Ok(r), &changed, &[], &[]);
        assert_eq!(items.len(), 1, "the failed action still, but no claim without evidence: {items:?}");
    }
}
