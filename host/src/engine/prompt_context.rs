//! The task prompt's context within a token budget (`engine.context`, ADR 0013).
//!
//! Always in: the task (title, description), a human's breakpoint feedback and the prompt rules — the
//! template renders them, and that rendering is the base cost. Then, by priority, each item whole, else
//! shortened, else left out with a note in the prompt:
//! 1. the latest iteration's feedback (item by item);
//! 2. earlier iterations of this task from the store, one line each (outcome, failed gates, decision);
//! 3. what completed dependencies did (their final summary and the files they changed);
//! 4. the project description;
//! 5. earlier tasks of the same milestone.
//!
//! Tokens are estimated: no public tokenizer exists for Claude models and Ollama has no tokenize endpoint.
//! [`TokenEstimator`] learns characters per token from the store (prompt length against the input tokens a
//! one-turn run reported), keeping only plausible samples, and falls back to `engine.context.chars_per_token`.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;

use super::Engine;
use super::prompt::TaskPromptInput;
use crate::config::ContextConfig;
use crate::state::{Project, StateManager, Task, TaskStatus};

/// Learned ratios outside this range are not measuring our prompt (an agent's own system prompt and tools
/// dominate its input), and a configured value is clamped to it too.
pub const MIN_CHARS_PER_TOKEN: f64 = 2.0;
/// See [`MIN_CHARS_PER_TOKEN`].
pub const MAX_CHARS_PER_TOKEN: f64 = 6.0;
/// Plausible samples needed before the learned ratio replaces the configured one.
pub const MIN_SAMPLES: usize = 3;
/// Samples read from the store.
const SAMPLE_LIMIT: i64 = 50;
/// Tokens kept free for the note of what was left out.
const NOTE_RESERVE: usize = 60;
/// Interactions of the task summarised at most (the newest).
const HISTORY_LIMIT: usize = 30;
/// Changed files listed per dependency at most.
const FILES_PER_DEPENDENCY: usize = 20;

/// One titled block of context in the task prompt.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Section {
    /// Heading, e.g. "Earlier iterations of this task".
    pub title: String,
    /// The text.
    pub body: String,
}

/// What the context builder selected for one task prompt.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PromptContext {
    /// The blocks of context, by priority.
    pub sections: Vec<Section>,
    /// What was shortened or left out to fit, one phrase each.
    pub omitted: Vec<String>,
    /// The feedback items that fit.
    pub feedback: Vec<String>,
    /// The token budget.
    pub budget_tokens: usize,
    /// The estimated size of the whole prompt.
    pub estimated_tokens: usize,
    /// The characters-per-token ratio used.
    pub chars_per_token: f64,
}

impl PromptContext {
    /// A context with every kind of content, for checking templates.
    pub fn sample() -> Self {
        Self {
            sections: vec![
                Section { title: "Earlier iterations of this task".into(), body: "- iteration 1: success".into() },
                Section { title: "Project".into(), body: "A demo project.".into() },
            ],
            omitted: vec!["2 earlier tasks of milestone m1".into()],
            feedback: vec![],
            budget_tokens: 12000,
            estimated_tokens: 300,
            chars_per_token: 4.0,
        }
    }
}

/// Estimates tokens from characters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenEstimator {
    /// Characters per token.
    pub chars_per_token: f64,
    /// How many store samples it was learned from (0: the configured value).
    pub samples: usize,
}

impl TokenEstimator {
    /// The median ratio of the plausible `(chars, tokens)` samples when there are at least
    /// [`MIN_SAMPLES`], else `configured` (clamped to the plausible range).
    pub fn from_samples(samples: &[(i64, i64)], configured: f64) -> Self {
        let mut ratios: Vec<f64> = samples
            .iter()
            .filter(|(c, t)| *c > 0 && *t > 0)
            .map(|(c, t)| *c as f64 / *t as f64)
            .filter(|r| (MIN_CHARS_PER_TOKEN..=MAX_CHARS_PER_TOKEN).contains(r))
            .collect();
        if ratios.len() < MIN_SAMPLES {
            return Self { chars_per_token: configured.clamp(MIN_CHARS_PER_TOKEN, MAX_CHARS_PER_TOKEN), samples: 0 };
        }
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = if ratios.len().is_multiple_of(2) { (ratios[mid - 1] + ratios[mid]) / 2.0 } else { ratios[mid] };
        Self { chars_per_token: median, samples: ratios.len() }
    }

    /// Estimated tokens of `text` (rounded up).
    pub fn tokens(&self, text: &str) -> usize {
        (text.chars().count() as f64 / self.chars_per_token).ceil() as usize
    }

    /// How many characters fit in `tokens`.
    pub fn chars(&self, tokens: usize) -> usize {
        (tokens as f64 * self.chars_per_token).floor() as usize
    }
}

/// A candidate block of context: its full text and, when it can be summarised, a shorter one.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextItem {
    /// Lower is more important.
    pub priority: u8,
    /// The section heading.
    pub title: String,
    /// How the note names it when shortened or left out ("the project description").
    pub label: String,
    /// The full text.
    pub full: String,
    /// A summary, if there is one.
    pub short: Option<String>,
}

/// Everything the store says about a task's surroundings, ready to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered {
    /// Candidate blocks.
    pub items: Vec<ContextItem>,
    /// The estimator learned from the store.
    pub estimator: TokenEstimator,
}

/// Learn the token estimator of a project from the store (once per task execution: see
/// [`Engine::build_task_prompt`]).
pub async fn learn_estimator(state: &StateManager, project_id: i64, config: &ContextConfig) -> Result<TokenEstimator> {
    let samples = state.prompt_token_samples(project_id, SAMPLE_LIMIT).await?;
    Ok(TokenEstimator::from_samples(&samples, config.chars_per_token))
}

/// Read the context candidates of `task` from the store.
pub async fn gather(
    state: &StateManager,
    project: &Project,
    task: &Task,
    estimator: TokenEstimator,
) -> Result<Gathered> {
    let mut items = Vec::new();

    // Earlier iterations of this task, one line each.
    // A task that never ran has no history to read.
    let interactions = if task.attempts > 0 { state.interactions(task.id).await? } else { Vec::new() };
    let mut lines = Vec::new();
    for i in interactions.iter().rev().take(HISTORY_LIMIT).rev() {
        let decision = state.decision(i.id).await?;
        if decision.is_none() && i.error.is_none() {
            continue; // an attempt that was retried, or one still running
        }
        let failed: Vec<String> =
            state.gate_results(i.id).await?.into_iter().filter(|g| !g.passed).map(|g| g.gate).collect();
        let mut line = format!(
            "iteration {}: {}",
            i.iteration,
            match (&i.outcome, &i.error) {
                (Some(o), _) => format!("outcome {o}"),
                (None, Some(e)) => format!("the agent could not run ({})", cut(e, 120)),
                (None, None) => "no outcome".into(),
            }
        );
        if !failed.is_empty() {
            line.push_str(&format!("; failed gates: {}", failed.join(", ")));
        }
        if let Some(d) = decision {
            line.push_str(&format!("; decision {} (confidence {:.2})", d.action, d.confidence));
        }
        lines.push(format!("- {line}"));
    }
    if !lines.is_empty() {
        let short = (lines.len() > 3).then(|| {
            let mut s = vec![format!("- ({} earlier iterations not shown)", lines.len() - 3)];
            s.extend(lines[lines.len() - 3..].iter().cloned());
            s.join("\n")
        });
        items.push(ContextItem {
            priority: 2,
            title: "Earlier iterations of this task".into(),
            label: format!("{} earlier iteration(s)", lines.len()),
            full: lines.join("\n"),
            short,
        });
    }

    // What completed dependencies did.
    let mut deps_full = Vec::new();
    let mut deps_short = Vec::new();
    for id in task.dependencies() {
        let Some(dep) = state.task(id).await? else { continue };
        if dep.status() != TaskStatus::Completed {
            continue;
        }
        let runs = state.interactions(id).await?;
        let summary = runs.iter().rev().find_map(|i| i.summary.clone()).unwrap_or_default();
        let mut files = BTreeSet::new();
        for run in &runs {
            for change in state.file_changes(run.id).await? {
                files.insert(change.path);
            }
        }
        let mut listed: Vec<String> = files.iter().take(FILES_PER_DEPENDENCY).cloned().collect();
        if files.len() > FILES_PER_DEPENDENCY {
            listed.push(format!("and {} more", files.len() - FILES_PER_DEPENDENCY));
        }
        let files = if listed.is_empty() { "none".to_string() } else { listed.join(", ") };
        deps_full.push(format!("- task #{id} \"{}\": {}\n  files changed: {files}", dep.title, summary.trim()));
        deps_short.push(format!("- task #{id} \"{}\": {}\n  files changed: {files}", dep.title, cut(&summary, 200)));
    }
    if !deps_full.is_empty() {
        items.push(ContextItem {
            priority: 3,
            title: "Completed tasks this one builds on".into(),
            label: format!("what {} dependenc(ies) did", deps_full.len()),
            full: deps_full.join("\n"),
            short: Some(deps_short.join("\n")),
        });
    }

    if !project.description.trim().is_empty() {
        items.push(ContextItem {
            priority: 4,
            title: "About the project".into(),
            label: "the project description".into(),
            full: project.description.trim().to_string(),
            short: Some(cut(&project.description, 400)),
        });
    }

    if task.milestone.is_some() {
        items.extend(milestone_item(task, &state.tasks(project.id).await?));
    }
    Ok(Gathered { items, estimator })
}

/// The earlier tasks (lower ids) of `task`'s milestone among `tasks`: full with why each ended where it did,
/// short with titles and statuses only.
fn milestone_item(task: &Task, tasks: &[Task]) -> Option<ContextItem> {
    let milestone = task.milestone.as_ref()?;
    let earlier: Vec<&Task> =
        tasks.iter().filter(|t| t.id < task.id && t.milestone.as_ref() == Some(milestone)).collect();
    if earlier.is_empty() {
        return None;
    }
    let full: Vec<String> = earlier
        .iter()
        .map(|t| match &t.status_reason {
            Some(r) if !r.is_empty() => format!("- #{} {} ({}): {}", t.id, t.title, t.status, cut(r, 200)),
            _ => format!("- #{} {} ({})", t.id, t.title, t.status),
        })
        .collect();
    let short: Vec<String> = earlier.iter().map(|t| format!("- #{} {} ({})", t.id, t.title, t.status)).collect();
    Some(ContextItem {
        priority: 5,
        title: format!("Earlier tasks of milestone \"{milestone}\""),
        label: format!("{} earlier task(s) of milestone {milestone}", earlier.len()),
        full: full.join("\n"),
        short: Some(short.join("\n")),
    })
}

/// `text` cut to `max` characters (with "..." when cut), on one line.
fn cut(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max { one_line.chars().take(max).collect::<String>() + "..." } else { one_line }
}

/// Select what fits: `base_tokens` is the prompt without feedback and context (task, human feedback, rules,
/// template), `budget` the limit. Feedback first (item by item), then the items by priority.
pub fn fit(gathered: &Gathered, feedback: &[String], base_tokens: usize, budget: usize) -> PromptContext {
    let est = gathered.estimator;
    let mut remaining = budget.saturating_sub(base_tokens + NOTE_RESERVE);
    let mut ctx =
        PromptContext { budget_tokens: budget, chars_per_token: est.chars_per_token, ..PromptContext::default() };
    let (mut truncated, mut dropped) = (false, 0);
    for item in feedback {
        let cost = est.tokens(item) + 2;
        if cost <= remaining {
            ctx.feedback.push(item.clone());
            remaining -= cost;
        } else if !truncated && dropped == 0 && remaining > 60 {
            // Part of the item is better than none.
            let part = item.chars().take(est.chars(remaining - 10)).collect::<String>() + " [...]";
            remaining = remaining.saturating_sub(est.tokens(&part) + 2);
            ctx.feedback.push(part);
            truncated = true;
        } else {
            dropped += 1;
        }
    }
    if truncated {
        ctx.omitted.push("the end of a feedback item".into());
    }
    if dropped > 0 {
        ctx.omitted.push(format!("{dropped} feedback item(s)"));
    }
    let mut items: Vec<&ContextItem> = gathered.items.iter().collect();
    items.sort_by_key(|i| i.priority);
    for item in items {
        let cost = |text: &str| est.tokens(text) + est.tokens(&item.title) + 2;
        if cost(&item.full) <= remaining {
            remaining -= cost(&item.full);
            ctx.sections.push(Section { title: item.title.clone(), body: item.full.clone() });
        } else if let Some(short) = item.short.as_ref().filter(|s| cost(s) <= remaining) {
            remaining -= cost(short);
            ctx.sections.push(Section { title: item.title.clone(), body: short.clone() });
            ctx.omitted.push(format!("part of {} (summarised)", item.label));
        } else {
            ctx.omitted.push(item.label.clone());
        }
    }
    let used_budget = budget.saturating_sub(base_tokens + NOTE_RESERVE) - remaining;
    ctx.estimated_tokens = base_tokens + used_budget;
    ctx
}

impl Engine {
    /// The task prompt of an iteration: the context gathered from the store and fitted to
    /// `engine.context.max_tokens` around the rendering of the task itself.
    pub(super) async fn build_task_prompt(
        &self,
        project: &Project,
        task: &Task,
        iteration: u32,
        max_iterations: u32,
        feedback: &[String],
        human_feedback: Option<&str>,
    ) -> Result<String> {
        let config = self.current().config.engine.context.clone();
        let prompts = self.prompts()?;
        // Learned once per execution: the samples do not change meaningfully within one task.
        let estimator =
            *self.token_estimator.get_or_try_init(|| learn_estimator(&self.state, project.id, &config)).await?;
        let gathered = gather(&self.state, project, task, estimator).await?;
        let empty = PromptContext::default();
        let checks = super::gates::commands(&self.current().config.gates);
        let mut input = TaskPromptInput {
            project,
            task,
            iteration,
            max_iterations,
            feedback: &[],
            human_feedback,
            context: &empty,
            checks: &checks,
        };
        let base = prompts.task_prompt(&input)?;
        let ctx = fit(&gathered, feedback, gathered.estimator.tokens(&base), config.max_tokens as usize);
        input.feedback = &ctx.feedback;
        input.context = &ctx;
        prompts.task_prompt(&input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(priority: u8, label: &str, full_chars: usize, short_chars: Option<usize>) -> ContextItem {
        ContextItem {
            priority,
            title: label.to_string(),
            label: label.to_string(),
            full: "f".repeat(full_chars),
            short: short_chars.map(|n| "s".repeat(n)),
        }
    }

    fn gathered(items: Vec<ContextItem>) -> Gathered {
        Gathered { items, estimator: TokenEstimator { chars_per_token: 4.0, samples: 0 } }
    }

    #[test]
    fn the_estimator_learns_the_median_of_plausible_samples_and_falls_back_otherwise() {
        let e = TokenEstimator::from_samples(&[(400, 100), (350, 100), (300, 100), (100, 20000)], 4.0);
        assert_eq!((e.chars_per_token, e.samples), (3.5, 3));
        // An agent whose input is dominated by its own system prompt gives implausible ratios: ignored.
        let e = TokenEstimator::from_samples(&[(400, 20000), (300, 15000), (100, 9000), (10, 0)], 3.2);
        assert_eq!((e.chars_per_token, e.samples), (3.2, 0));
        assert_eq!(TokenEstimator::from_samples(&[], 9.0).chars_per_token, MAX_CHARS_PER_TOKEN);
        assert_eq!(e.tokens("abcdefg"), 3);
        assert_eq!(e.chars(10), 32);
    }

    #[test]
    fn everything_fits_in_priority_order_when_the_budget_allows() {
        let g = gathered(vec![item(5, "milestone", 40, None), item(2, "history", 40, None)]);
        let ctx = fit(&g, &["fix the test".into()], 100, 1000);
        let titles: Vec<&str> = ctx.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["history", "milestone"]);
        assert!(ctx.omitted.is_empty());
        assert_eq!(ctx.feedback, vec!["fix the test".to_string()]);
        assert!(ctx.estimated_tokens > 100 && ctx.estimated_tokens <= 1000);
    }

    #[test]
    fn lower_priorities_are_summarised_then_left_out_with_a_note() {
        // Budget after the base and the note reserve: 1000 - 100 - 60 = 840 tokens = 3360 characters.
        let g = gathered(vec![
            item(2, "history", 2000, Some(100)),
            item(3, "dependencies", 2000, Some(400)),
            item(4, "project", 4000, None),
        ]);
        let ctx = fit(&g, &[], 100, 1000);
        let titles: Vec<&str> = ctx.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["history", "dependencies"]);
        assert_eq!(ctx.sections[1].body, "s".repeat(400));
        assert_eq!(ctx.omitted, vec!["part of dependencies (summarised)".to_string(), "project".to_string()]);
        assert!(ctx.estimated_tokens <= 1000, "{}", ctx.estimated_tokens);
    }

    #[test]
    fn feedback_is_cut_item_by_item_and_the_note_counts_what_was_dropped() {
        let g = gathered(vec![item(2, "history", 40, None)]);
        let feedback: Vec<String> = vec!["a".repeat(200), "b".repeat(2000), "c".repeat(200)];
        let ctx = fit(&g, &feedback, 100, 500);
        assert_eq!(ctx.feedback.len(), 2);
        assert!(ctx.feedback[1].starts_with('b') && ctx.feedback[1].ends_with(" [...]"));
        assert!(ctx.omitted.contains(&"the end of a feedback item".to_string()), "{:?}", ctx.omitted);
        assert!(ctx.omitted.contains(&"1 feedback item(s)".to_string()), "{:?}", ctx.omitted);
        assert!(ctx.omitted.contains(&"history".to_string()), "{:?}", ctx.omitted);
        // A base larger than the budget leaves room for nothing but what is always in.
        let ctx = fit(&g, &feedback, 5000, 500);
        assert!(ctx.feedback.is_empty() && ctx.sections.is_empty());
        assert_eq!(ctx.omitted, vec!["3 feedback item(s)".to_string(), "history".to_string()]);
    }

    #[test]
    fn the_milestone_item_lists_earlier_tasks_of_the_same_milestone_only() {
        let mk = |id: i64, milestone: Option<&str>, reason: Option<&str>| {
            let mut t = crate::engine::prompt::sample::task();
            t.id = id;
            t.title = format!("task {id}");
            t.status = TaskStatus::Completed;
            t.milestone = milestone.map(str::to_string);
            t.status_reason = reason.map(str::to_string);
            t
        };
        let tasks = vec![
            mk(1, Some("m1"), Some("Confidence 0.90 ...\n PROCEED.")),
            mk(2, Some("m2"), None),
            mk(3, None, None),
            mk(4, Some("m1"), None),
            mk(5, Some("m1"), None),
        ];
        let item = milestone_item(&tasks[3], &tasks).unwrap();
        assert_eq!(item.title, "Earlier tasks of milestone \"m1\"");
        assert_eq!(item.full, "- #1 task 1 (completed): Confidence 0.90 ... PROCEED.");
        assert_eq!(item.short.as_deref(), Some("- #1 task 1 (completed)"));
        assert!(milestone_item(&tasks[1], &tasks).is_none(), "the first task of its milestone");
        assert!(milestone_item(&tasks[2], &tasks).is_none(), "no milestone");
    }

    #[tokio::test]
    async fn gather_reads_history_dependencies_project_and_milestone_from_the_store() {
        use crate::contract::{Outcome, RunResult};
        use crate::state::{Action, DecisionRecord, IterationRecord, NewProject, NewTask};
        let state = StateManager::open_in_memory().await.unwrap();
        let project = state
            .create_project(&NewProject {
                name: "p".into(),
                workspace: "/w".into(),
                description: "A calculator in shell.".into(),
                profile: None,
            })
            .await
            .unwrap();
        let new = |title: &str, deps: Vec<i64>| NewTask {
            project_id: project.id,
            title: title.into(),
            description: String::new(),
            priority: 5,
            depends_on: deps,
            max_iterations: None,
            profile: None,
        };
        let dep = state.create_task(&new("write add.sh", vec![])).await.unwrap();
        let task = state.create_task(&new("write mul.sh", vec![dep.id])).await.unwrap();
        let run = |summary: &str| {
            let mut r = RunResult {
                outcome: Outcome::Success,
                summary: summary.into(),
                session_id: None,
                turns: 1,
                usage: Default::default(),
                duration_ms: 1,
                api_status: None,
                retry_after_ms: None,
                permission_denials: vec![],
                exit_code: Some(0),
                failed_actions: vec![],
            };
            r.usage.input_tokens = 100;
            r
        };
        let changes = vec![crate::contract::FileChange {
            path: "add.sh".into(),
            kind: crate::contract::ChangeKind::Created,
            size: Some(3),
        }];
        for (t, status, summary) in
            [(&dep, TaskStatus::Completed, "Added add.sh."), (&task, TaskStatus::Running, "Tried.")]
        {
            let i = state.begin_interaction(t.id, 1, "echo", &"x".repeat(350)).await.unwrap();
            let files = if t.id == dep.id { changes.clone() } else { vec![] };
            state.finish_interaction(i, Ok(&run(summary)), &files, std::time::Duration::from_millis(1)).await.unwrap();
            let gate = crate::state::GateRecord {
                gate: "tests".into(),
                passed: t.id == dep.id,
                score: 0.0,
                summary: String::new(),
                findings: vec![],
                error: None,
                duration_ms: 1,
            };
            let decision = DecisionRecord {
                action: if t.id == dep.id { Action::Proceed } else { Action::Retry },
                confidence: 0.5,
                heuristic_score: 0.5,
                llm_score: None,
                llm_reasoning: None,
                explanation: "e".into(),
                verified_by: String::new(),
            };
            state
                .conclude_iteration(&IterationRecord {
                    task_id: t.id,
                    interaction_id: i,
                    gates: &[gate],
                    decision: &decision,
                    task_status: status,
                    status_reason: None,
                    session_id: None,
                    breakpoint: None,
                })
                .await
                .unwrap();
        }
        let config = ContextConfig { max_tokens: 12000, chars_per_token: 4.0 };
        let task = state.require_task(task.id).await.unwrap();
        let estimator = learn_estimator(&state, project.id, &config).await.unwrap();
        let g = gather(&state, &project, &task, estimator).await.unwrap();
        // Two samples of 350 characters for 100 tokens: fewer than MIN_SAMPLES, so the configured ratio.
        assert_eq!(g.estimator.samples, 0);
        let by_priority: Vec<(u8, &str)> = g.items.iter().map(|i| (i.priority, i.full.as_str())).collect();
        assert_eq!(
            by_priority[0],
            (2, "- iteration 1: outcome success; failed gates: tests; decision retry (confidence 0.50)")
        );
        assert_eq!(by_priority[1], (3, "- task #1 \"write add.sh\": Added add.sh.\n  files changed: add.sh"));
        assert_eq!(by_priority[2], (4, "A calculator in shell."));
        assert_eq!(g.items.len(), 3, "no milestone, no milestone item");
        assert_eq!(state.prompt_token_samples(project.id, 10).await.unwrap(), vec![(350, 100), (350, 100)]);
    }
}
