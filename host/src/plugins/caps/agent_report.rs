//! The `agent-report` capability (ADR 0033): an agent plugin reports the failed actions of its run — what the
//! agent's own transcript says went wrong — while `agent.run` is in progress. Always granted; the host bounds
//! what it keeps ([`MAX_FAILED_ACTIONS`] lines of at most [`MAX_REPORTED_LINE_CHARS`](crate::contract::MAX_REPORTED_LINE_CHARS) characters), since the
//! plugin is untrusted, and ignores reports outside `agent.run`.

use crate::plugins::bindings::v0_1_0::caps::agent_report::Host;
use crate::plugins::instance_state::StoreState;

/// Most failed actions kept per run.
pub const MAX_FAILED_ACTIONS: usize = crate::contract::MAX_REPORTED_LINES;

/// `action` as one trimmed line of at most [`MAX_REPORTED_LINE_CHARS`](crate::contract::MAX_REPORTED_LINE_CHARS) characters (`…` marks a cut); none when
/// it is empty.
pub(crate) fn one_line(action: &str) -> Option<String> {
    crate::contract::one_line(action)
}

/// Add `action` to `list` unless it is full, empty, or a repeat of a line already there.
pub(crate) fn record(list: &mut Vec<String>, action: &str) {
    if list.len() >= MAX_FAILED_ACTIONS {
        return;
    }
    if let Some(line) = one_line(action)
        && !list.contains(&line)
    {
        list.push(line);
    }
}

impl Host for StoreState {
    async fn failed_action(&mut self, action: String) -> wasmtime::Result<()> {
        if self.call.function != "agent.run" {
            tracing::debug!(plugin = %self.plugin, function = self.call.function, "agent-report outside agent.run ignored");
            return Ok(());
        }
        tracing::debug!(plugin = %self.plugin, failed_action = %crate::contract::bounded_to(action.clone(), 1024));
        record(&mut self.call.failed_actions, &action);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_one_line_bounded_and_capped_in_count() {
        let mut list = Vec::new();
        record(&mut list, "Edit a.py:\n  File has not been read yet.");
        record(&mut list, "Edit a.py: File has not been read yet.");
        record(&mut list, "   ");
        assert_eq!(list, vec!["Edit a.py: File has not been read yet.".to_string()]);
        record(&mut list, &"x".repeat(1000));
        assert_eq!(list[1].chars().count(), crate::contract::MAX_REPORTED_LINE_CHARS);
        assert!(list[1].ends_with('…'));
        for i in 0..50 {
            record(&mut list, &format!("Bash false #{i}: exit 1"));
        }
        assert_eq!(list.len(), MAX_FAILED_ACTIONS);
    }
}
