//! Failed actions of an agent run (WIT interface `agent-report`, ADR 0033): what the agent's own transcript
//! says went wrong — an edit its CLI refused, a command that exited non-zero, a permission refusal — reported
//! to the host so it can check the agent's claims against it.
//!
//! Collect them with [`FailedActions`] while reading the agent's output (pure, unit-testable on the host
//! target), then call [`FailedActions::report`] once in `run`.

/// Most failed actions the host keeps per run (it drops the rest).
pub const MAX_FAILED_ACTIONS: usize = 20;
/// Most characters the host keeps of one failed action.
pub const MAX_FAILED_ACTION_CHARS: usize = 300;

/// Report one failed action to the host during `agent.run` (one line; the host bounds it too).
pub fn report_failed_action(action: &str) {
    crate::bindings::agent_world::obra::plugin::agent_report::failed_action(action)
}

/// A bounded, de-duplicated list of failed actions, one line each: `<what>: <why>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedActions {
    lines: Vec<String>,
    /// How many were left out because the list was full.
    dropped: usize,
}

impl FailedActions {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `what: why` (`what` alone when `why` is empty) as one line of at most [`MAX_FAILED_ACTION_CHARS`]
    /// characters; a repeat of a line already there is ignored, and past [`MAX_FAILED_ACTIONS`] lines only
    /// counted.
    pub fn push(&mut self, what: &str, why: &str) {
        let what = flatten(what);
        let why = flatten(why);
        let line = match (what.is_empty(), why.is_empty()) {
            (true, true) => return,
            (false, true) => what,
            (true, false) => why,
            (false, false) => format!("{what}: {why}"),
        };
        let line = cut(line);
        if self.lines.contains(&line) {
            return;
        }
        if self.lines.len() >= MAX_FAILED_ACTIONS {
            self.dropped += 1;
            return;
        }
        self.lines.push(line);
    }

    /// The lines, in the order they happened.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// How many failed actions were left out because the list was full.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Report every line to the host (call once, from `run`). When some were left out, the last line says
    /// how many.
    pub fn report(&self) {
        for line in &self.lines {
            report_failed_action(line);
        }
        if self.dropped > 0 {
            report_failed_action(&format!("... and {} more failed action(s) not listed", self.dropped));
        }
    }
}

/// `text` on one line, whitespace runs collapsed.
fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(line: String) -> String {
    if line.chars().count() <= MAX_FAILED_ACTION_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_FAILED_ACTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_flat_bounded_deduplicated_and_capped() {
        let mut f = FailedActions::new();
        f.push("Edit calc.py", "File has not been read yet.\nRead it first before writing to it.");
        f.push("Edit calc.py", "File has not been read yet. Read it first before writing to it.");
        f.push("", "");
        assert_eq!(f.lines(), ["Edit calc.py: File has not been read yet. Read it first before writing to it."]);
        f.push("Bash", &"y".repeat(1000));
        assert_eq!(f.lines()[1].chars().count(), MAX_FAILED_ACTION_CHARS);
        for i in 0..30 {
            f.push(&format!("Bash false {i}"), "exit code 1");
        }
        assert_eq!(f.lines().len(), MAX_FAILED_ACTIONS);
        assert_eq!(f.dropped(), 12);
    }
}
