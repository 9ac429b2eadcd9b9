//! The background poller: every second (and right after each command) it reads the current project's tasks,
//! open breakpoints and the project list into a [`Snapshot`] for the completer, and announces breakpoints that
//! opened since the last poll.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::editor::Printer;
use super::{ProjectRef, Shared};
use crate::cli::output::one_line;
use crate::orchestrator::{OpenOptions, Store};
use crate::state::Breakpoint;

/// How often the store is polled.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// What the store held at the last poll.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// Every project.
    pub projects: Vec<ProjectRef>,
    /// The current project's tasks: id and title.
    pub tasks: Vec<(i64, String)>,
    /// The current project's open breakpoints: id and task id.
    pub breakpoints: Vec<(i64, i64)>,
}

/// Which breakpoints were announced already.
#[derive(Debug, Default)]
pub(crate) struct Announcer {
    seen: HashSet<i64>,
    project: Option<i64>,
}

impl Announcer {
    /// The lines to print for the open breakpoints of `project`: all of them (as already open) the first time
    /// a project is polled, afterwards only those not seen before (as just opened).
    pub(crate) fn lines(&mut self, project: i64, open: &[Breakpoint]) -> Vec<String> {
        let first = self.project != Some(project);
        self.project = Some(project);
        let mut lines = Vec::new();
        for b in open {
            let new = self.seen.insert(b.id);
            if first || new {
                let verb = if first { "is open" } else { "opened" };
                lines.push(format!(
                    "⚑ breakpoint {} {verb} on task {} ({}): {} — resolve with: breakpoint resolve {} --approve|--reject|--feedback \"...\"",
                    b.id,
                    b.task_id,
                    b.rule,
                    one_line(&b.reason, 160),
                    b.id
                ));
            }
        }
        lines
    }
}

/// Poll the store until aborted. Without a project (yet), it keeps trying to open one.
pub(crate) async fn watch(options: OpenOptions, shared: Arc<Shared>, mut printer: Option<Printer>) {
    let mut store: Option<Store> = None;
    let mut announcer = Announcer::default();
    let start = options.start_dir().ok();
    loop {
        if store.is_none() {
            store = Store::open(&options, false).await.ok();
        }
        if let (Some(s), Some(start)) = (&store, &start) {
            match poll(s, &shared, start).await {
                Ok(None) => {}
                Ok(Some((project, open))) => {
                    let lines = announcer.lines(project, &open);
                    if !lines.is_empty() {
                        printer = print(printer, lines.join("\n") + "\n").await;
                    }
                }
                Err(e) => {
                    tracing::debug!("interactive: polling the store failed: {e:#}");
                    store = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = shared.refresh.notified() => {}
        }
    }
}

/// Refresh the snapshot; the current project's id and open breakpoints (none while no project is chosen and
/// the store cannot choose one by itself).
async fn poll(
    store: &Store,
    shared: &Shared,
    start: &std::path::Path,
) -> anyhow::Result<Option<(i64, Vec<Breakpoint>)>> {
    let state = &store.state;
    let project = match shared.project() {
        Some(p) => p.id,
        None => match store.choose(None, start).await {
            Ok(p) => p.id,
            Err(_) => return Ok(None),
        },
    };
    let projects = state.projects().await?.into_iter().map(|p| ProjectRef { id: p.id, name: p.name }).collect();
    let tasks = state.tasks(project).await?.into_iter().map(|t| (t.id, t.title)).collect();
    let open = state.breakpoints(project, true).await?;
    let breakpoints = open.iter().map(|b| (b.id, b.task_id)).collect();
    *shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Snapshot { projects, tasks, breakpoints };
    Ok(Some((project, open)))
}

/// Print above the prompt (the printer may block briefly, so off the runtime's threads).
async fn print(printer: Option<Printer>, text: String) -> Option<Printer> {
    let Some(mut p) = printer else {
        eprint!("{text}");
        return None;
    };
    tokio::task::spawn_blocking(move || {
        if p.print(text).is_err() {
            return None;
        }
        Some(p)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(id: i64, task_id: i64) -> Breakpoint {
        Breakpoint {
            id,
            task_id,
            interaction_id: None,
            rule: "max-iterations".into(),
            reason: "iteration limit reached\nmore".into(),
            status: "open".into(),
            resolution: None,
            feedback: None,
            resolved_by: None,
            created_at: String::new(),
            resolved_at: None,
        }
    }

    #[test]
    fn open_breakpoints_are_listed_once_then_only_new_ones_are_announced() {
        let mut a = Announcer::default();
        let first = a.lines(1, &[bp(4, 2)]);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("⚑ breakpoint 4 is open on task 2 (max-iterations): iteration limit reached"));
        assert!(first[0].ends_with("breakpoint resolve 4 --approve|--reject|--feedback \"...\""), "{}", first[0]);
        assert!(a.lines(1, &[bp(4, 2)]).is_empty());
        let next = a.lines(1, &[bp(4, 2), bp(7, 3)]);
        assert_eq!(next.len(), 1);
        assert!(next[0].starts_with("⚑ breakpoint 7 opened on task 3"), "{}", next[0]);
        assert!(a.lines(1, &[]).is_empty());
        // Switching projects lists that project's open breakpoints once.
        assert_eq!(a.lines(2, &[bp(9, 5)]).len(), 1);
        assert!(a.lines(2, &[bp(9, 5)]).is_empty());
    }
}
