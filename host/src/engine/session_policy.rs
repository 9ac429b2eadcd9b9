//! Session management (the seeds' README): which agent session a run continues, how full its context is
//! (warn at 70%, refresh with a summary at 80%, emergency refresh at 95%), and adaptive max turns from the
//! task's estimated complexity and type.

use crate::config::{MaxTurnsConfig, SessionsConfig};
use crate::state::{SessionUsage, Task};

/// The complexity levels `sessions.max_turns.by_complexity` must name, simplest first.
pub const COMPLEXITY_LEVELS: &[&str] = &["simple", "medium", "complex", "very_complex"];

/// The task types `sessions.max_turns.by_type` may name.
pub const TASK_TYPES: &[&str] = &["debugging", "code_generation", "validation", "refactoring", "documentation"];

/// Words that mark a task type, checked in this order (the first type with a match wins).
const TYPE_WORDS: &[(&str, &[&str])] = &[
    ("debugging", &["debug", "bug", "fix", "crash", "broken", "failing", "regression", "error"]),
    ("validation", &["validate", "verify", "check", "review", "audit"]),
    ("refactoring", &["refactor", "restructure", "rename", "clean up", "cleanup", "simplify"]),
    ("documentation", &["document", "docs", "readme", "docstring", "comment"]),
    ("code_generation", &["implement", "add", "create", "write", "build", "generate", "new"]),
];

/// Words that widen a task's scope.
const SCOPE_WORDS: &[&str] = &[
    "all ",
    "every",
    "across",
    "migrate",
    "migration",
    "architecture",
    "redesign",
    "multiple",
    "integrate",
    "concurrent",
    "performance",
    "security",
    "database",
    "api",
    "end-to-end",
    "distributed",
];

/// A task's estimated complexity and type, with the turn limit they give.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEstimate {
    /// One of [`COMPLEXITY_LEVELS`].
    pub complexity: &'static str,
    /// One of [`TASK_TYPES`], when recognised.
    pub task_type: Option<&'static str>,
    /// The limit for the run.
    pub max_turns: u32,
}

/// Estimate a task's complexity (0..) from its text and dependencies: long descriptions, scope words, file
/// names and dependencies each add to it.
pub fn complexity_score(task: &Task) -> u32 {
    let text = format!("{} {}", task.title, task.description).to_lowercase();
    let words = text.split_whitespace().count() as u32;
    let mut score = match words {
        0..=20 => 0,
        21..=60 => 1,
        61..=150 => 2,
        _ => 3,
    };
    score += SCOPE_WORDS.iter().filter(|w| text.contains(*w)).count().min(3) as u32;
    let files = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '`' || c == '(' || c == ')')
        .filter(|w| {
            let w = w.trim_end_matches(['.', ':', ';']);
            w.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty() && (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric())
            })
        })
        .count() as u32;
    score += files.min(6) / 2;
    score += (task.dependencies().len() as u32).min(2);
    score
}

/// The level of a complexity score.
pub fn complexity_level(score: u32) -> &'static str {
    match score {
        0..=1 => "simple",
        2..=3 => "medium",
        4..=5 => "complex",
        _ => "very_complex",
    }
}

/// The task's type, from words of its title (first) and description.
pub fn task_type(task: &Task) -> Option<&'static str> {
    let words = |text: &str| -> Vec<String> {
        text.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    for text in [&task.title, &task.description] {
        let lower = text.to_lowercase();
        let tokens = words(text);
        for (kind, markers) in TYPE_WORDS {
            let hit = markers.iter().any(|m| {
                if m.contains(' ') { lower.contains(m) } else { tokens.iter().any(|t| t == m || t.starts_with(m)) }
            });
            if hit {
                return Some(kind);
            }
        }
    }
    None
}

/// The turn limit for a run of `task`: the type's limit when the type has one, else the complexity's,
/// within `min..=max` and never above `agent_limit` (the agent's own configured `max_turns`).
pub fn estimate_turns(config: &MaxTurnsConfig, task: &Task, agent_limit: Option<u32>) -> TurnEstimate {
    let complexity = complexity_level(complexity_score(task));
    let kind = task_type(task);
    let by_type = kind.and_then(|k| config.by_type.get(k).copied());
    let by_complexity = config.by_complexity.get(complexity).copied().unwrap_or(config.max);
    let mut turns = by_type.unwrap_or(by_complexity).clamp(config.min, config.max.max(config.min));
    if let Some(limit) = agent_limit {
        turns = turns.min(limit.max(1));
    }
    TurnEstimate { complexity, task_type: kind, max_turns: turns }
}

/// Where a session stands against the context-window thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextState {
    /// Below the warning threshold.
    Fine,
    /// At or above `warn_at`.
    Warn,
    /// At or above `refresh_at`: summarise (with the LLM when there is one) and start a new session.
    Refresh,
    /// At or above `emergency_at`: start a new session now, with a summary made without the LLM.
    Emergency,
}

/// Classify a session's usage.
pub fn context_state(config: &SessionsConfig, usage: &SessionUsage) -> (ContextState, f64) {
    let share = usage.context_tokens().max(0) as f64 / config.context_window_tokens.max(1) as f64;
    let state = if share >= config.emergency_at {
        ContextState::Emergency
    } else if share >= config.refresh_at {
        ContextState::Refresh
    } else if share >= config.warn_at {
        ContextState::Warn
    } else {
        ContextState::Fine
    };
    (state, share)
}

/// Most characters of a summary made without the LLM.
const MAX_FALLBACK_SUMMARY_CHARS: usize = 4000;

/// A summary of a session made from its runs' final messages (task id, message), newest kept when it is too
/// long: what an emergency refresh, or a refresh without an LLM, carries over.
pub fn fallback_summary(summaries: &[(i64, String)]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0;
    for (task, text) in summaries.iter().rev() {
        let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let one: String = one.chars().take(600).collect();
        let line = format!("- task {task}: {one}");
        total += line.chars().count() + 1;
        if total > MAX_FALLBACK_SUMMARY_CHARS {
            break;
        }
        lines.push(line);
    }
    lines.reverse();
    if lines.is_empty() {
        "The previous session left no summary.".into()
    } else {
        format!("What the previous agent session did, oldest first:\n{}", lines.join("\n"))
    }
}

/// Set the agent config's `max_turns` to `turns` when the agent takes that key; returns whether it did.
pub fn apply_max_turns(agent_config: &mut serde_json::Value, turns: u32) -> bool {
    match agent_config.as_object_mut() {
        Some(map) if map.contains_key("max_turns") => {
            map.insert("max_turns".into(), serde_json::json!(turns));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::embedded_defaults;

    fn task(title: &str, description: &str, deps: &[i64]) -> Task {
        Task {
            title: title.into(),
            description: description.into(),
            depends_on: deps.to_vec(),
            ..crate::engine::prompt::sample::task()
        }
    }

    #[test]
    fn complexity_grows_with_length_scope_files_and_dependencies() {
        let simple = task("Greeting", "Print hello", &[]);
        assert_eq!(complexity_level(complexity_score(&simple)), "simple");
        let long = "Move the storage layer across every service to the new database API, keep the migration \
                    reversible, and update src/db.rs, src/api.rs, src/main.rs, tests/db.rs and docs/storage.md. "
            .repeat(3);
        let big = task("Storage migration", &long, &[1, 2, 3]);
        assert_eq!(complexity_level(complexity_score(&big)), "very_complex", "{}", complexity_score(&big));
        assert!(complexity_score(&task("x", "y", &[1, 2])) > complexity_score(&task("x", "y", &[])));
    }

    #[test]
    fn task_types_come_from_title_then_description() {
        assert_eq!(task_type(&task("Fix the login crash", "", &[])), Some("debugging"));
        assert_eq!(task_type(&task("Parser", "Implement a JSON parser", &[])), Some("code_generation"));
        assert_eq!(task_type(&task("Review the API", "add notes", &[])), Some("validation"));
        assert_eq!(task_type(&task("Misc", "tidy", &[])), None);
    }

    #[test]
    fn estimate_uses_type_then_complexity_within_bounds_and_the_agent_ceiling() {
        let config = &embedded_defaults().sessions.max_turns;
        let e = estimate_turns(config, &task("Fix the login crash", "", &[]), Some(30));
        assert_eq!((e.task_type, e.max_turns), (Some("debugging"), 20));
        let e = estimate_turns(config, &task("Misc", "tidy", &[]), Some(30));
        assert_eq!((e.complexity, e.max_turns), ("simple", 6));
        assert_eq!(estimate_turns(config, &task("Misc", "tidy", &[]), Some(2)).max_turns, 2, "the agent's cap wins");
        let mut narrow = config.clone();
        narrow.min = 8;
        assert_eq!(estimate_turns(&narrow, &task("Misc", "tidy", &[]), None).max_turns, 8);
    }

    #[test]
    fn context_thresholds_classify_usage() {
        let config = &embedded_defaults().sessions;
        let usage =
            |tokens: i64| SessionUsage { interactions: 1, input_tokens: tokens, output_tokens: 0, ended: false };
        assert_eq!(context_state(config, &usage(10_000)).0, ContextState::Fine);
        assert_eq!(context_state(config, &usage(140_000)).0, ContextState::Warn);
        assert_eq!(context_state(config, &usage(160_000)).0, ContextState::Refresh);
        let (state, share) = context_state(config, &usage(195_000));
        assert_eq!((state, (share * 1000.0).round()), (ContextState::Emergency, 975.0));
    }

    #[test]
    fn fallback_summary_keeps_the_newest_within_the_limit() {
        let many: Vec<(i64, String)> = (1..=100).map(|i| (i, format!("did step {i} {}", "x".repeat(200)))).collect();
        let s = fallback_summary(&many);
        assert!(s.chars().count() <= MAX_FALLBACK_SUMMARY_CHARS + 100);
        assert!(s.contains("task 100: did step 100") && !s.contains("task 1: did step 1 "));
        assert_eq!(fallback_summary(&[]), "The previous session left no summary.");
    }

    #[test]
    fn max_turns_is_set_only_for_agents_that_take_it() {
        let mut claude = serde_json::json!({"max_turns": 30, "model": null});
        assert!(apply_max_turns(&mut claude, 12));
        assert_eq!(claude["max_turns"], 12);
        let mut other = serde_json::json!({"recording": "r.json"});
        assert!(!apply_max_turns(&mut other, 12));
        assert!(other.get("max_turns").is_none());
    }
}
