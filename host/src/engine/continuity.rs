//! The engine's side of session management and of an LLM that is down: which session a task starts with,
//! refreshing a session whose context is filling up, the turn limit of a task's runs, and deciding on
//! heuristics alone (said once) while the LLM does not answer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Engine;
use super::events::Step;
use super::llm_ask::complete_within;
use super::session_policy::{self, ContextState};
use crate::contract::{CompletionRequest, Message, Role};
use crate::state::{NewLlmCall, Task};

/// How long the loop decides without the LLM after it failed, before asking it again.
pub const LLM_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Most run summaries a session refresh reads.
const SUMMARY_SOURCES: i64 = 40;

/// Whether the LLM answered lately, shared by every task execution of one `obra` process so that its going
/// down (or being absent) is said once.
#[derive(Debug, Default)]
pub struct LlmHealth {
    down: Mutex<Option<Down>>,
    said_absent: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    since_wall: String,
    error: String,
}

impl LlmHealth {
    /// Why the LLM is not asked now (it failed less than [`LLM_RETRY_AFTER`] ago), if so.
    pub fn skip_reason(&self) -> Option<String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let d = down.as_ref()?;
        (d.since.elapsed() < LLM_RETRY_AFTER).then(|| {
            format!(
                "the LLM has not answered since {} ({}); deciding on heuristics until it answers again",
                d.since_wall, d.error
            )
        })
    }

    /// Record an answer (`Ok`) or a failure; returns what changed, to be said once: `Some(true)` when the
    /// LLM just went down, `Some(false)` when it came back.
    fn record(&self, answered: bool, error: Option<&str>) -> Option<bool> {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match (answered, down.as_mut()) {
            (true, Some(_)) => {
                *down = None;
                Some(false)
            }
            (true, None) => None,
            (false, Some(d)) => {
                // Still down: start the quiet period again, keep the first failure's time.
                d.since = Instant::now();
                d.error = error.unwrap_or("no answer").to_string();
                None
            }
            (false, None) => {
                *down = Some(Down {
                    since: Instant::now(),
                    since_wall: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    error: error.unwrap_or("no answer").to_string(),
                });
                Some(true)
            }
        }
    }
}

impl Engine {
    /// The session a task's execution resumes: the task's own, else (with continuity on) the one its
    /// milestone's tasks last used and did not end.
    pub(super) async fn starting_session(&self, task: &Task) -> Result<Option<String>> {
        let current = self.current();
        if !current.config.sessions.continuity {
            return Ok(None);
        }
        if task.session_id.is_some() {
            return Ok(task.session_id.clone());
        }
        let Some(milestone) = task.milestone.as_deref() else { return Ok(None) };
        let agent = current.plugins.agent.name().to_string();
        let found = self.state.milestone_session(task.project_id, milestone, &agent).await?;
        if let Some(id) = &found {
            self.observer.step(&Step::Progress(format!(
                "continuing agent session {id} of milestone {milestone:?} (earlier tasks' context)"
            )));
        }
        Ok(found)
    }

    /// The turn limit of the task's runs when adaptive max turns is on, said once per execution.
    pub(super) fn turn_limit(&self, task: &Task) -> Option<u32> {
        let current = self.current();
        let config = &current.config.sessions.max_turns;
        if !config.adaptive {
            return None;
        }
        let agent_config = current.config.agent_config(current.plugins.agent.name());
        let agent_limit = agent_config.get("max_turns")?.as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32);
        let estimate = session_policy::estimate_turns(config, task, agent_limit);
        self.observer.step(&Step::Progress(format!(
            "task {} looks {}{}: at most {} agent turns per run",
            task.id,
            estimate.complexity.replace('_', " "),
            estimate.task_type.map(|t| format!(" ({})", t.replace('_', " "))).unwrap_or_default(),
            estimate.max_turns
        )));
        Some(estimate.max_turns)
    }

    /// Check how full the session's context is before the next run. Warns once per session at `warn_at`; at
    /// `refresh_at` or beyond, ends the session and returns the summary the next prompt carries (`session`
    /// becomes `None`, so the next run starts a new session).
    pub(super) async fn check_session_context(
        &self,
        task: &Task,
        session: &mut Option<String>,
    ) -> Result<Option<String>> {
        let current = self.current();
        // Without continuity every run starts a new session: there is no context to watch or carry over.
        if !current.config.sessions.continuity {
            return Ok(None);
        }
        let Some(id) = session.clone() else { return Ok(None) };
        let agent = current.plugins.agent.name().to_string();
        let usage = self.state.session_usage(&agent, &id).await?;
        if usage.ended {
            *session = None;
            return Ok(None);
        }
        let (state, share) = session_policy::context_state(&current.config.sessions, &usage);
        let percent = (share * 100.0).round();
        match state {
            ContextState::Fine => Ok(None),
            ContextState::Warn => {
                let first = self.warned_sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
                if first {
                    self.observer.step(&Step::Progress(format!(
                        "agent session {id} has used {percent}% of its context window ({} of {} tokens); it is \
                         refreshed at {:.0}%",
                        usage.context_tokens(),
                        current.config.sessions.context_window_tokens,
                        current.config.sessions.refresh_at * 100.0
                    )));
                }
                Ok(None)
            }
            ContextState::Refresh | ContextState::Emergency => {
                let emergency = state == ContextState::Emergency;
                let sources = self.state.session_summaries(&id, SUMMARY_SOURCES).await?;
                let fallback = session_policy::fallback_summary(&sources);
                let summary = if emergency {
                    fallback
                } else {
                    self.llm_session_summary(task.id, &sources).await.unwrap_or(fallback)
                };
                let reason = format!(
                    "{} refresh at {percent}% of the context window",
                    if emergency { "emergency" } else { "planned" }
                );
                self.state.end_session(&agent, &id, &reason, &summary).await?;
                self.state.clear_task_session(task.id).await?;
                self.observer.step(&Step::Progress(format!(
                    "agent session {id} refreshed ({reason}); the next run starts a new session with its summary"
                )));
                *session = None;
                Ok(Some(summary))
            }
        }
    }

    /// Ask the LLM to summarise a session from its runs' final messages; `None` when there is no LLM or it
    /// does not answer (the caller falls back to the stored summaries).
    async fn llm_session_summary(&self, task_id: i64, sources: &[(i64, String)]) -> Option<String> {
        let current = self.current();
        let llm = current.plugins.llm.as_ref()?;
        if self.llm_health.skip_reason().is_some() {
            return None;
        }
        let mut prompt = String::from(
            "Summarise this coding agent session for the agent that continues the work in a new session. Keep \
             decisions made, files changed, what is done and what remains, in at most 300 words.\n\n",
        );
        for (task, text) in sources {
            prompt.push_str(&format!("Task {task}: {text}\n"));
        }
        let request = CompletionRequest {
            messages: vec![Message { role: Role::User, content: prompt }],
            json_schema: None,
            temperature: None,
            max_tokens: Some(1024),
        };
        let limit = Duration::from_secs(current.config.llm.timeout_secs);
        let started = Instant::now();
        let (summary, error, usage) = match complete_within(llm.as_ref(), &request, limit).await {
            Ok(c) if !c.text.trim().is_empty() => (Some(c.text.trim().to_string()), None, Some(c.usage)),
            Ok(c) => (None, Some("an empty answer".to_string()), Some(c.usage)),
            Err(e) => (None, Some(e.to_string()), None),
        };
        self.record_llm_call(&NewLlmCall {
            task_id,
            interaction_id: None,
            purpose: "session-summary",
            provider: llm.name(),
            attempt: 1,
            duration_ms: started.elapsed().as_millis() as u64,
            input_tokens: usage.as_ref().map(|u| u.input_tokens),
            output_tokens: usage.as_ref().map(|u| u.output_tokens),
            error,
        })
        .await;
        summary
    }

    /// Record whether the LLM answered, saying once when it goes down and when it comes back.
    pub(super) fn note_llm_health(&self, answered: bool, error: Option<&str>) {
        match self.llm_health.record(answered, error) {
            Some(true) => self.observer.step(&Step::Progress(format!(
                "the LLM is unavailable ({}); the loop goes on with heuristic decisions and asks a human only \
                 where the LLM's opinion was needed; it is asked again after {} s",
                error.unwrap_or("no answer"),
                LLM_RETRY_AFTER.as_secs()
            ))),
            Some(false) => self.observer.step(&Step::Progress("the LLM answers again".into())),
            None => {}
        }
    }

    /// Say once per process that no LLM is configured.
    pub(super) fn note_no_llm(&self) {
        if !self.llm_health.said_absent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.observer.step(&Step::Progress(
                "no LLM is configured (llm.provider: none): decisions use the heuristics alone".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_down_once_and_back_once() {
        let h = LlmHealth::default();
        assert_eq!(h.skip_reason(), None);
        assert_eq!(h.record(false, Some("connection refused")), Some(true));
        assert!(h.skip_reason().unwrap().contains("connection refused"));
        assert_eq!(h.record(false, Some("still refused")), None, "said once");
        assert_eq!(h.record(true, None), Some(false));
        assert_eq!(h.record(true, None), None);
        assert_eq!(h.skip_reason(), None);
    }
}
