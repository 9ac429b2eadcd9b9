//! `obra logs`: the project's activity, from the store.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::args::{GlobalArgs, LogsArgs};
use super::open_options;
use super::output::one_line;
use crate::orchestrator::Orchestrator;
use crate::state::ActivityEvent;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

pub(super) async fn run(g: &GlobalArgs, a: LogsArgs) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    if let Some(task) = a.task {
        obra.task(task).await?;
    }
    let project = obra.project().id;
    let events = obra.state().latest_activity(project, a.task, a.limit).await?;
    let mut seen: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
    let mut last = None;
    print_events(&events, a.json, &mut seen, &mut last)?;
    if a.follow {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            // Only events after the last one shown; `seen` guards against printing one twice.
            let new = obra.state().activity(project, a.task, last.as_deref(), 10_000).await?;
            print_events(&new, a.json, &mut seen, &mut last)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_events(
    events: &[ActivityEvent],
    json: bool,
    seen: &mut std::collections::HashSet<(String, i64)>,
    last: &mut Option<String>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for e in events {
        if !seen.insert((e.kind.clone(), e.ref_id)) {
            continue;
        }
        if json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            let task = e.task_id.map(|t| format!("task {t:<4}")).unwrap_or_else(|| " ".repeat(9));
            writeln!(out, "{}  {task} {:<20} {}", e.at, e.kind, one_line(&e.text, 160))?;
        }
        *last = Some(e.at.clone());
    }
    out.flush()?;
    Ok(())
}
