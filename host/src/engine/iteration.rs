//! One task execution as explicit steps. [`Engine::execute_iterations`] is the driver; each step is a small
//! function that reads what the earlier steps produced and returns its own value:
//!
//! 1. [`Engine::begin`]: may the task run? The [`Execution`] state it carries from iteration to iteration.
//! 2. [`Engine::reload_config`]: a changed configuration, from the second iteration on.
//! 3. [`Engine::prepare`]: the task as it is now, the session, the prompt, the pre-run checkpoint
//!    ([`Prepared`]).
//! 4. [`Engine::run_agent`] (run.rs): the agent's run with its retries ([`AgentRun`]).
//! 5. [`Engine::stop_early`]: a changed policy or a rate limit ends the execution here.
//! 6. [`Engine::check`]: the gates ([`Checked`]).
//! 7. [`Engine::judge`]: heuristic, the LLM's opinion, the proposed decision ([`Judged`]).
//! 8. [`Engine::fire_rules`]: integrity, protected changes, agent failures and the breakpoint rules.
//! 9. [`settle`]: where the iteration leaves the task ([`Settled`]), a pure function.
//! 10. [`Engine::conclude`]: the store, the step output, the commit of completed work.
//! 11. [`Engine::next_feedback`] (run.rs): what the next prompt is told.
//!
//! A task cancelled meanwhile ends the execution at the next step that reads or writes its status
//! ([`TaskCancelled`](crate::state::TaskCancelled)).

use anyhow::{Result, bail};

use super::decision::{self, Heuristic, LlmOpinion};
use super::events::{RunUsage, Step};
use super::integrate::{CompletedWork, Completion};
use super::protect::{self, GateGuard, ProtectedChange};
use super::run::{
    AGENT_FAILED_RULE, AgentRun, GATES_NOT_RUN, TaskOutcome, agent_failure, integrity_reason, loop_event,
    protected_findings, protected_reason, task_info,
};
use super::{ConfigPoll, ConfigWatch, Engine};
use crate::contract::{TaskInfo, Verdict};
use crate::state::{Action, DecisionRecord, GateRecord, IterationRecord, Project, Task, TaskStatus};

/// What an execution carries from one iteration to the next.
pub(super) struct Execution {
    /// The task, as read when the execution began.
    first: Task,
    /// Its project.
    project: Project,
    /// The task's own iteration limit, when it has one.
    task_limit: Option<u32>,
    /// The iteration limit now (a reloaded configuration may change it).
    max_iterations: u32,
    /// The feedback a human gave at the task's last breakpoint.
    human_feedback: Option<String>,
    /// What the last iteration's outcome tells the next prompt.
    feedback: Vec<String>,
    /// The agent session to resume.
    session: Option<String>,
    /// The summary of a session that was refreshed, carried into the next one.
    carried_summary: Option<String>,
    /// The agent's turn limit.
    turns: Option<u32>,
}

/// One iteration, ready for the agent.
pub(super) struct Prepared {
    /// The task as it is now.
    task: Task,
    /// Which iteration.
    iteration: u32,
    /// The prompt.
    prompt: String,
    /// What the plugins are told about the task.
    info: TaskInfo,
    /// The checkpoint taken before the agent runs, when checkpoints are on.
    pre_run: Option<String>,
    /// What the gates depend on, as it is before the agent runs.
    guards: Vec<GateGuard>,
}

/// What the checks of an agent run found.
pub(super) struct Checked {
    /// The gates' own files the agent changed, put back.
    guarded: Vec<ProtectedChange>,
    /// Why the agent failed, when it did.
    failure: Option<String>,
    /// The agent failed and changed nothing: the gates did not run.
    untouched_failure: bool,
    /// Each enabled gate's result.
    gates: Vec<GateRecord>,
}

/// The judgement of an iteration, before the rules.
pub(super) struct Judged {
    /// The score from the agent's outcome, the gates and the changes.
    heuristic: Heuristic,
    /// The LLM's opinion, when one was asked and answered.
    opinion: Option<LlmOpinion>,
    /// The LLM's concerns, for the next prompt.
    concerns: Vec<String>,
    /// The proposed decision.
    verdict: decision::Verdict,
    /// The decision needs an LLM that did not answer.
    needs_llm: bool,
}

/// Where an iteration leaves the task.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settled {
    /// The task's new status (`running`: another iteration follows).
    status: TaskStatus,
    /// The breakpoint to open: its rule and reason.
    breakpoint: Option<(String, String)>,
    /// The decision's action.
    action: Action,
}

impl Engine {
    /// Drive one execution of `task_id` through its iterations (see the module documentation).
    pub(super) async fn execute_iterations(
        &self,
        task_id: i64,
        watch: Option<&dyn ConfigWatch>,
    ) -> Result<TaskOutcome> {
        let mut exec = self.begin(task_id).await?;
        let mut last = TaskOutcome {
            task_id,
            status: TaskStatus::Running,
            iterations: 0,
            action: None,
            confidence: None,
            breakpoint_id: None,
            reason: String::new(),
            agent_failure: None,
        };
        let mut iteration = 0;
        while iteration < exec.max_iterations {
            iteration += 1;
            if iteration > 1
                && let Some(watch) = watch
            {
                self.reload_config(&mut exec, iteration, watch).await;
            }
            let prepared = self.prepare(&mut exec, iteration).await?;
            // The policy files include `.obra/plugins/` (WebAssembly of megabytes), read off the executor.
            let policy_before = match self.policy.clone() {
                Some(policy) => Some(tokio::task::spawn_blocking(move || policy.snapshot()).await?),
                None => None,
            };
            let resume = if self.current().config.sessions.continuity { exec.session.clone() } else { None };
            let run = self.run_agent(&prepared.info, &prepared.prompt, resume, exec.turns).await?;
            if let Some(stopped) = self.stop_early(&mut exec, &prepared, &run, policy_before).await? {
                last = stopped;
                break;
            }
            // A task cancelled while the agent ran stops here, before its checks.
            self.state.ensure_not_cancelled(task_id).await?;
            let checked = self.check(&prepared, &run).await;
            let mut judged = self.judge(&exec, &prepared, &run, &checked).await;
            self.state.ensure_not_cancelled(task_id).await?;
            let fired = self.fire_rules(&prepared, &run, &checked, &judged).await;
            let settled = settle(fired.as_ref(), &mut judged.verdict, checked.failure.as_deref(), judged.needs_llm);
            last = self.conclude(&exec, &prepared, &run, &checked, &judged, &settled).await?;
            if settled.status != TaskStatus::Running {
                break;
            }
            exec.feedback = self
                .next_feedback(
                    &prepared.task,
                    (iteration, exec.max_iterations, run.interaction_id),
                    &run.result,
                    &run.changes,
                    &checked.gates,
                    &judged.concerns,
                    (settled.action, judged.verdict.confidence, &judged.verdict.explanation),
                )
                .await;
        }
        self.observer.step(&Step::TaskFinished { task_id, status: last.status });
        Ok(last)
    }

    /// Step 1: refuse a task that may not run (completed, cancelled, paused at an open breakpoint, waiting for
    /// a dependency), and set up what the execution carries.
    async fn begin(&self, task_id: i64) -> Result<Execution> {
        let task = self.state.require_task(task_id).await?;
        match task.status() {
            TaskStatus::Completed => bail!("task {task_id} is already completed; create a new task for further work"),
            TaskStatus::Cancelled => {
                bail!("task {task_id} is cancelled; `obra task retry {task_id}` makes it pending again")
            }
            TaskStatus::Paused => {
                if let Some(bp) = self.state.open_breakpoint_of_task(task_id).await? {
                    bail!(
                        "task {task_id} is paused at breakpoint {} ({}): {}. Resolve it first: \
                         `obra breakpoint resolve {} --approve`, `--reject`, `--feedback \"...\"` or `--retry`",
                        bp.id,
                        bp.rule,
                        bp.reason,
                        bp.id
                    );
                }
            }
            _ => {}
        }
        for dep in task.dependencies() {
            let dep_task = self.state.require_task(dep).await?;
            if dep_task.status() != TaskStatus::Completed {
                bail!(
                    "task {task_id} depends on task {dep} ({}), which is {}; execute task {dep} first",
                    dep_task.title,
                    dep_task.status
                );
            }
        }
        let project = self
            .state
            .project(task.project_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("task {task_id} belongs to a project that no longer exists"))?;
        let task_limit = task.max_iterations.map(|m| m as u32);
        if self.current().plugins.llm.is_none() {
            self.note_no_llm();
        }
        Ok(Execution {
            project,
            task_limit,
            max_iterations: task_limit.unwrap_or(self.current().config.engine.max_iterations).max(1),
            human_feedback: self.state.latest_breakpoint_feedback(task_id).await?,
            feedback: Vec::new(),
            session: self.starting_session(&task).await?,
            carried_summary: None,
            turns: self.turn_limit(&task),
            first: task,
        })
    }

    /// Step 2: swap in a valid changed configuration, whole, for the rest of the execution; an invalid one is
    /// reported and ignored.
    async fn reload_config(&self, exec: &mut Execution, iteration: u32, watch: &dyn ConfigWatch) {
        match watch.poll().await {
            ConfigPoll::Unchanged => {}
            ConfigPoll::Reloaded(update) => {
                let update = *update;
                // A new limit counts from the start of the execution; it cannot end the current iteration
                // before it ran.
                exec.max_iterations = exec.task_limit.unwrap_or(update.config.engine.max_iterations).max(iteration);
                self.replace_current(update.config, update.plugins);
                self.observer
                    .step(&Step::ConfigReloaded { applied: update.applied, needs_restart: update.needs_restart });
            }
            ConfigPoll::Rejected(error) => self.observer.step(&Step::ConfigRejected { error }),
        }
    }

    /// Step 3: the task as it is now (the first iteration uses the one read by [`Engine::begin`]), its session
    /// (refreshed when its context is full), the prompt, and the checkpoint before the agent runs.
    async fn prepare(&self, exec: &mut Execution, iteration: u32) -> Result<Prepared> {
        let task_id = exec.first.id;
        let task = if iteration == 1 { exec.first.clone() } else { self.state.require_task(task_id).await? };
        if let Some(summary) = self.check_session_context(&task, &mut exec.session).await? {
            exec.carried_summary = Some(summary);
        }
        if let Some(summary) = &exec.carried_summary
            && exec.session.is_none()
        {
            // A new session starts from the summary of the one that was refreshed.
            exec.feedback.insert(0, format!("Context carried over from the previous agent session:\n{summary}"));
        }
        let prompt = self
            .build_task_prompt(
                &exec.project,
                &task,
                iteration,
                exec.max_iterations,
                &exec.feedback,
                exec.human_feedback.as_deref(),
            )
            .await?;
        self.observer.step(&Step::IterationStarted {
            task_id,
            iteration,
            max_iterations: exec.max_iterations,
            prompt_chars: prompt.chars().count(),
        });
        let current = self.current();
        let pre_run = if current.config.engine.checkpoints {
            let label = format!("task {task_id} iteration {iteration}: before the agent runs");
            self.take_checkpoint(&task, &label, false).await?
        } else {
            None
        };
        let guards = protect::guards(&current.config.gates, &self.workspace);
        let info = task_info(&task, iteration, exec.max_iterations);
        Ok(Prepared { task, iteration, prompt, info, pre_run, guards })
    }

    /// Step 5: report the agent's run, keep its session, and end the execution when the agent changed the
    /// policy it runs under (restored, then an `integrity` breakpoint) or hit a rate limit that outlasts the
    /// retry policy (the task waits for the reset).
    async fn stop_early(
        &self,
        exec: &mut Execution,
        prepared: &Prepared,
        run: &AgentRun,
        policy_before: Option<super::integrity::PolicySnapshot>,
    ) -> Result<Option<TaskOutcome>> {
        let task_id = prepared.task.id;
        // What the agent did to the policy (the config files it runs under, inside the workspace or not) is
        // undone before anything else reads it.
        let policy_tampered = match (self.policy.clone(), policy_before) {
            (Some(policy), Some(before)) => tokio::task::spawn_blocking(move || policy.changes_since(&before)).await?,
            _ => Vec::new(),
        };
        let restore_errors =
            if policy_tampered.is_empty() { Vec::new() } else { super::integrity::restore_all(&policy_tampered).1 };
        let usage = RunUsage { run: run.usage, task: self.state.task_usage(task_id).await? };
        self.observer.step(&Step::AgentFinished {
            result: run.result.clone().map_err(|e| e.to_string()),
            changes: run.changes.clone(),
            usage,
        });
        if let Ok(r) = &run.result
            && r.session_id.is_some()
        {
            exec.session = r.session_id.clone();
            exec.carried_summary = None;
        }
        if !policy_tampered.is_empty() {
            let refused = (&policy_tampered[..], &restore_errors[..]);
            let session = exec.session.as_deref();
            return Ok(Some(
                self.refuse_policy_change(task_id, prepared.iteration, run.interaction_id, refused, session).await?,
            ));
        }
        self.pause_if_rate_limited(task_id, prepared.iteration, &run.result, exec.session.as_deref()).await
    }

    /// Step 6: put back the gates' own files the agent changed, then run the gates, unless the agent failed
    /// and changed nothing (there is no work to judge).
    async fn check(&self, prepared: &Prepared, run: &AgentRun) -> Checked {
        let guarded = self.guard_gates(&prepared.guards, &run.changes, prepared.pre_run.clone()).await;
        let failure = agent_failure(&run.result);
        let untouched_failure = failure.is_some() && run.changes.is_empty() && run.tampered.is_empty();
        if untouched_failure {
            self.observer.step(&Step::Progress(GATES_NOT_RUN.to_string()));
        }
        let mut gates = match &run.result {
            Ok(r) if !untouched_failure => {
                let gates = self.run_gates(&prepared.info, r, &run.changes).await;
                self.absorb_gate_writes().await;
                gates
            }
            _ => Vec::new(),
        };
        protected_findings(&mut gates, &guarded);
        Checked { guarded, failure, untouched_failure, gates }
    }

    /// Step 7: the heuristic score, the LLM's opinion (when an LLM is configured and there is work to judge),
    /// and the decision they propose.
    async fn judge(&self, exec: &Execution, prepared: &Prepared, run: &AgentRun, checked: &Checked) -> Judged {
        let current = self.current();
        let result = &run.result;
        let gate_pairs: Vec<_> = current.plugins.gates.iter().map(|(c, _)| c).zip(checked.gates.iter()).collect();
        let heuristic = decision::heuristic(result.as_ref().ok(), &gate_pairs, run.changes.len());
        let (opinion, llm_note, concerns) = match result {
            Ok(_) if checked.untouched_failure => {
                (None, Some("not asked: the agent failed and changed nothing".to_string()), vec![])
            }
            Ok(r) => match self.llm_health.skip_reason() {
                Some(note) => (None, Some(note), vec![]),
                None => self.llm_opinion(&prepared.task, run.interaction_id, r, &run.changes, &checked.gates).await,
            },
            Err(_) => (None, Some("not asked: the agent could not run".to_string()), vec![]),
        };
        let llm_unavailable =
            result.is_ok() && !checked.untouched_failure && current.plugins.llm.is_some() && opinion.is_none();
        let mut verdict = decision::decide(
            &current.config.engine.decision,
            &heuristic,
            &decision::Context {
                opinion: opinion.as_ref(),
                llm_weight: current.config.llm.weight,
                llm_note: llm_note.as_deref(),
                outcome: result.as_ref().ok().map(|r| r.outcome),
                iteration: prepared.iteration,
                max_iterations: exec.max_iterations,
                files_changed: run.changes.len(),
                failed_actions: result.as_ref().map_or(0, |r| r.failed_actions.len()),
            },
        );
        if let Err(e) = result {
            verdict.explanation = format!("The agent could not run: {e}. {}", verdict.explanation);
        }
        if checked.untouched_failure {
            verdict.explanation.push_str(" Gates not run: the agent failed and changed nothing.");
        }
        let needs_llm = decision::without_llm(&mut verdict, llm_unavailable);
        Judged { heuristic, opinion, concerns, verdict, needs_llm }
    }

    /// Step 8: what pauses or aborts the task whatever the score says: the agent wrote a protected path or a
    /// gate's own files, or failed and changed nothing; otherwise the breakpoint rules, which see the proposed
    /// decision (a pause of an agent that failed after changing files names the failure).
    async fn fire_rules(
        &self,
        prepared: &Prepared,
        run: &AgentRun,
        checked: &Checked,
        judged: &Judged,
    ) -> Option<(String, Verdict)> {
        match (integrity_reason(&self.workspace, &run.tampered), protected_reason(&checked.guarded)) {
            (Some(reason), _) => Some(("integrity".to_string(), Verdict::Pause(reason))),
            (None, Some(reason)) => Some(("protected-change".to_string(), Verdict::Pause(reason))),
            // Another iteration would fail the same way until the cause is fixed.
            (None, None) if checked.untouched_failure => Some((
                AGENT_FAILED_RULE.to_string(),
                Verdict::Pause(format!("{}; {GATES_NOT_RUN}", checked.failure.clone().unwrap_or_default())),
            )),
            (None, None) => {
                let outcome = run.result.as_ref().ok().map(|r| r.outcome);
                let event = loop_event(&prepared.info, outcome, &judged.verdict, &checked.gates, &run.changes);
                match (self.evaluate_rules(&event, &run.changes, &checked.gates).await, &checked.failure) {
                    (Some((rule, Verdict::Pause(reason))), Some(cause)) => Some((
                        AGENT_FAILED_RULE.to_string(),
                        Verdict::Pause(format!("{cause} (rule {rule}: {reason})")),
                    )),
                    (fired, _) => fired,
                }
            }
        }
    }

    /// Step 10: store the iteration's conclusion (gates, decision, the task's status, the breakpoint) in one
    /// transaction, report it, and integrate completed work (commit, merge).
    async fn conclude(
        &self,
        exec: &Execution,
        prepared: &Prepared,
        run: &AgentRun,
        checked: &Checked,
        judged: &Judged,
        settled: &Settled,
    ) -> Result<TaskOutcome> {
        let (verdict, opinion) = (&judged.verdict, judged.opinion.as_ref());
        let record = DecisionRecord {
            action: settled.action,
            confidence: verdict.confidence,
            heuristic_score: judged.heuristic.score,
            llm_score: opinion.map(|o| o.confidence),
            llm_reasoning: opinion.map(|o| o.reasoning.clone()),
            explanation: verdict.explanation.clone(),
            verified_by: decision::verified_by(&judged.heuristic, opinion),
        };
        let reason = match &settled.breakpoint {
            Some((rule, reason)) => format!("breakpoint ({rule}): {reason}"),
            None => verdict.explanation.clone(),
        };
        let task_id = prepared.task.id;
        let breakpoint_id = self
            .state
            .conclude_iteration(&IterationRecord {
                task_id,
                interaction_id: run.interaction_id,
                gates: &checked.gates,
                decision: &record,
                task_status: settled.status,
                status_reason: Some(&reason),
                session_id: exec.session.as_deref(),
                breakpoint: settled.breakpoint.clone(),
            })
            .await?;
        self.observer.step(&Step::Decided {
            action: settled.action,
            confidence: verdict.confidence,
            explanation: verdict.explanation.clone(),
        });
        if let (Some(id), Some((rule, reason))) = (breakpoint_id, &settled.breakpoint) {
            self.observer.step(&Step::BreakpointOpened { id, rule: rule.clone(), reason: reason.clone() });
        }
        if settled.status == TaskStatus::Completed {
            let completion = Completion {
                iteration: prepared.iteration,
                work: CompletedWork {
                    interaction_id: run.interaction_id,
                    summary: run.result.as_ref().map(|r| r.summary.as_str()).unwrap_or_default(),
                    confidence: verdict.confidence,
                    quality: judged.heuristic.quality,
                    approved_by: None,
                },
                gates: &checked.gates,
            };
            self.on_completed(&exec.project, &prepared.task, &completion).await?;
        }
        Ok(TaskOutcome {
            task_id,
            status: settled.status,
            iterations: prepared.iteration,
            action: Some(settled.action),
            confidence: Some(verdict.confidence),
            breakpoint_id,
            reason,
            agent_failure: match &settled.breakpoint {
                Some((rule, _)) if rule == AGENT_FAILED_RULE => checked.failure.clone(),
                _ => None,
            },
        })
    }
}

/// Step 9: where the iteration leaves the task. A rule's abort fails it and a rule's pause opens its
/// breakpoint (both noted in the explanation); otherwise the decision: PROCEED completes it, ESCALATE pauses it
/// (at `agent-failed` when the agent failed, at `llm-unavailable` when the decision needed an LLM that did not
/// answer, else at `decision`), and RETRY or CLARIFY goes on to another iteration.
fn settle(
    fired: Option<&(String, Verdict)>,
    verdict: &mut decision::Verdict,
    failure: Option<&str>,
    needs_llm: bool,
) -> Settled {
    let (status, breakpoint, action) = match (fired, verdict.action) {
        (Some((rule, Verdict::Abort(reason))), _) => {
            verdict.explanation.push_str(&format!(" Rule {rule} aborted the task: {reason}"));
            (TaskStatus::Failed, None, Action::Escalate)
        }
        (Some((rule, Verdict::Pause(reason))), _) => {
            verdict.explanation.push_str(&format!(" Rule {rule} paused the task: {reason}"));
            (TaskStatus::Paused, Some((rule.clone(), reason.clone())), Action::Escalate)
        }
        (_, Action::Proceed) => (TaskStatus::Completed, None, Action::Proceed),
        (_, Action::Escalate) => match failure {
            Some(cause) => (
                TaskStatus::Paused,
                Some((AGENT_FAILED_RULE.to_string(), format!("{cause} ({})", verdict.explanation))),
                Action::Escalate,
            ),
            None => {
                let rule = if needs_llm { "llm-unavailable" } else { "decision" };
                (TaskStatus::Paused, Some((rule.to_string(), verdict.explanation.clone())), Action::Escalate)
            }
        },
        (_, action) => (TaskStatus::Running, None, action),
    };
    Settled { status, breakpoint, action }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(action: Action) -> decision::Verdict {
        decision::Verdict { action, confidence: 0.5, explanation: "because".into() }
    }

    #[test]
    fn settle_follows_the_rules_then_the_decision() {
        let abort = ("budget".to_string(), Verdict::Abort("over".into()));
        let mut v = verdict(Action::Proceed);
        let s = settle(Some(&abort), &mut v, None, false);
        assert_eq!((s.status, s.breakpoint, s.action), (TaskStatus::Failed, None, Action::Escalate));
        assert!(v.explanation.ends_with("Rule budget aborted the task: over"), "{}", v.explanation);

        let pause = ("low-confidence".to_string(), Verdict::Pause("0.4".into()));
        let s = settle(Some(&pause), &mut verdict(Action::Proceed), None, false);
        assert_eq!(s.status, TaskStatus::Paused);
        assert_eq!(s.breakpoint, Some(("low-confidence".into(), "0.4".into())));

        let s = settle(None, &mut verdict(Action::Proceed), None, false);
        assert_eq!((s.status, s.action), (TaskStatus::Completed, Action::Proceed));

        let s = settle(None, &mut verdict(Action::Escalate), Some("claude: not found"), false);
        assert_eq!(s.breakpoint.as_ref().map(|b| b.0.as_str()), Some(AGENT_FAILED_RULE));
        assert!(s.breakpoint.unwrap().1.starts_with("claude: not found (because"));

        let s = settle(None, &mut verdict(Action::Escalate), None, true);
        assert_eq!(s.breakpoint.map(|b| b.0), Some("llm-unavailable".to_string()));
        let s = settle(None, &mut verdict(Action::Escalate), None, false);
        assert_eq!(s.breakpoint.map(|b| b.0), Some("decision".to_string()));

        let s = settle(None, &mut verdict(Action::Retry), None, false);
        assert_eq!((s.status, s.breakpoint, s.action), (TaskStatus::Running, None, Action::Retry));
    }
}
