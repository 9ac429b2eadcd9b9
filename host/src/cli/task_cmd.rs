//! `obra task ...`: create, execute, inspect and manage tasks.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::args::{GlobalArgs, GraphFormat, TaskCommand, TaskImportArgs};
use super::backlog::{self, BacklogFormat};
use super::deps::Graph;
use super::output::{StepPrinter, finding_lines, one_line, print_json, tasks_with_waits};
use super::{exit_for, open_options};
use crate::engine::scheduler::waits_of;
use crate::orchestrator::Orchestrator;
use crate::state::{NewTask, TaskFilter, TaskStatus, TaskUpdate};

pub(super) async fn run(g: &GlobalArgs, cmd: TaskCommand) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    match cmd {
        TaskCommand::Create(a) => {
            let description = match &a.description_file {
                Some(path) => read_input(path)?,
                None => stdin_if_dash(a.description)?,
            };
            let new = NewTask {
                project_id: obra.project().id,
                title: a.title,
                description,
                priority: a.priority,
                depends_on: a.depends_on,
                max_iterations: a.max_iterations,
                profile: g.profile.clone(),
            };
            let task = obra.create_task_in(new, a.milestone.as_deref()).await?;
            if a.json {
                print_json(&task)?;
            } else {
                println!("Created task {}: {}\nRun it with: obra task execute {}", task.id, task.title, task.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Import(a) => import(&obra, g, a).await,
        TaskCommand::Execute(a) => {
            let observer = obra.observed(Arc::new(StepPrinter::new(a.json)));
            obra.log_run_started("task execute", serde_json::json!({ "task_id": a.id }));
            let outcome = obra.execute_task(a.id, observer).await;
            obra.log_run_finished(
                outcome.as_ref().map(|o| serde_json::json!({ "task_id": o.task_id, "status": o.status.as_str() })),
            );
            let outcome = outcome?;
            if a.json {
                print_json(&outcome)?;
            }
            Ok(exit_for(outcome.status))
        }
        TaskCommand::Show(a) => {
            let task = obra.task(a.id).await?;
            let mut iterations = Vec::new();
            for i in obra.state().interactions(task.id).await? {
                let gates = obra.state().gate_results(i.id).await?;
                let decision = obra.state().decision(i.id).await?;
                let changes = obra.state().file_changes(i.id).await?;
                let failed = obra.state().failed_actions(i.id).await?;
                iterations.push((i, gates, decision, changes, failed));
            }
            // Completed work that no verifying gate passed and no LLM opinion checked (ADR 0033).
            let unverified = task.status() == TaskStatus::Completed
                && iterations.iter().rev().find_map(|(_, _, d, _, _)| d.as_ref()).is_some_and(|d| d.unverified());
            if a.json {
                let list: Vec<_> = iterations
                    .iter()
                    .map(|(i, g, d, c, f)| {
                        json!({ "interaction": i, "gates": g, "decision": d, "changes": c, "failed_actions": f })
                    })
                    .collect();
                let sessions = obra.state().sessions(task.id).await?;
                let llm_calls = obra.state().llm_calls(task.id).await?;
                print_json(&json!({ "task": task, "unverified": unverified, "interactions": list,
                                    "sessions": sessions, "llm_calls": llm_calls }))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Task {}: {}  [{}{}; priority {}; {} attempt(s)]",
                task.id,
                task.title,
                task.status,
                if unverified { ", unverified" } else { "" },
                task.priority,
                task.attempts
            );
            if unverified {
                println!("  unverified: no verifying gate (e.g. tests) passed and no LLM opinion checked this work");
            }
            if !task.description.is_empty() {
                println!("  {}", task.description);
            }
            if let Some(reason) = &task.status_reason {
                println!("  why: {}", one_line(reason, 300));
            }
            if let Some(milestone) = &task.milestone {
                println!("  milestone: {milestone}");
            }
            let deps = task.dependencies();
            if !deps.is_empty() {
                let list: Vec<String> = deps.iter().map(|d| d.to_string()).collect();
                println!("  depends on: {}", list.join(", "));
            }
            if let Some(profile) = &task.profile {
                println!("  profile: {profile}");
            }
            for (i, gates, decision, changes, failed) in &iterations {
                println!(
                    "  #{} iteration {} via {}: {} {}",
                    i.id,
                    i.iteration,
                    i.agent,
                    i.outcome.as_deref().unwrap_or(&i.status),
                    one_line(i.summary.as_deref().or(i.error.as_deref()).unwrap_or(""), 120)
                );
                for gate in gates {
                    println!(
                        "      gate {}: {} ({:.2}) {}",
                        gate.gate,
                        if gate.passed { "pass" } else { "FAIL" },
                        gate.score,
                        one_line(&gate.summary, 100)
                    );
                    if !gate.passed {
                        for line in finding_lines(&gate.findings) {
                            println!("          {line}");
                        }
                    }
                }
                if !changes.is_empty() {
                    let list: Vec<String> = changes.iter().take(10).map(describe_change).collect();
                    let more = changes.len().saturating_sub(10);
                    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                    println!("      changes: {}{more}", list.join(", "));
                } else if i.outcome.is_some() {
                    println!("      changes: none");
                }
                for action in failed {
                    println!("      failed: {}", one_line(action, 200));
                }
                if let Some(d) = decision {
                    println!("      decision {} at {:.2}", d.action.to_uppercase(), d.confidence);
                    super::print_llm_reasons(d);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::List(a) => {
            let tasks = if a.ready {
                let mut ready = obra.state().ready_tasks(obra.project().id).await?;
                ready.retain(|t| a.min_priority.is_none_or(|p| t.priority >= p));
                if let Some(text) = &a.search {
                    let text = text.to_lowercase();
                    ready.retain(|t| t.title.to_lowercase().contains(&text));
                }
                if let Some(limit) = a.limit {
                    ready.truncate(limit as usize);
                }
                ready
            } else {
                let statuses = a.status.iter().filter_map(|s| TaskStatus::parse(s)).collect();
                let filter = TaskFilter {
                    project_id: obra.project().id,
                    statuses,
                    min_priority: a.min_priority,
                    title_contains: a.search.clone(),
                    limit: a.limit,
                };
                obra.state().list_tasks(&filter).await?
            };
            let all = obra.state().tasks(obra.project().id).await?;
            let open = obra.state().breakpoints(obra.project().id, true).await?;
            let waits = waits_of(&all, &open);
            if a.json {
                print_json(&tasks_with_waits(&tasks, &waits)?)?;
            } else if tasks.is_empty() {
                let filtered = a.ready || !a.status.is_empty() || a.min_priority.is_some() || a.search.is_some();
                if a.ready && !waits.is_empty() {
                    // Say what keeps the backlog from being ready rather than only that nothing is.
                    println!("No task is ready:");
                    for (id, wait) in &waits {
                        println!("  task {id} {wait}");
                    }
                } else if filtered {
                    println!("No task matches.");
                } else {
                    println!("No tasks yet. Create one: obra task create \"title\" --description \"what to do\"");
                }
            } else {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
                for t in tasks {
                    let deps = t.dependencies();
                    let deps = if deps.is_empty() {
                        String::new()
                    } else {
                        format!("  (after {})", deps.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
                    };
                    let why = waits.get(&t.id).map(|w| format!("  — {w}")).unwrap_or_default();
                    writeln!(out, "{:>4}  {:<10} p{:<2}  {}{deps}{why}", t.id, t.status, t.priority, t.title)?;
                }
                out.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Update(mut a) => {
            if let Some(path) = &a.description_file {
                a.description = Some(read_input(path)?);
            } else if let Some(text) = a.description.take() {
                a.description = Some(stdin_if_dash(text)?);
            }
            let depends_on = if a.no_deps { Some(Vec::new()) } else { a.depends_on };
            let update = TaskUpdate { title: a.title, description: a.description, priority: a.priority, depends_on };
            let task = obra.update_task(a.id, update, a.milestone.as_deref()).await?;
            if a.json {
                print_json(&task)?;
            } else {
                println!("Updated task {}: {} [{}; priority {}]", task.id, task.title, task.status, task.priority);
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Deps(a) => {
            if let Some(id) = a.id {
                obra.task(id).await?;
            }
            let tasks = obra.state().tasks(obra.project().id).await?;
            let graph = Graph::new(&tasks, a.id);
            if a.json {
                let edges: Vec<_> = graph.edges().into_iter().map(|(d, t)| json!({ "from": d, "to": t })).collect();
                let nodes: Vec<_> = graph.nodes.values().collect();
                print_json(&json!({ "nodes": nodes, "edges": edges }))?;
            } else {
                let text = match a.format {
                    GraphFormat::Tree => graph.tree(),
                    GraphFormat::Dot => graph.dot(),
                    GraphFormat::Mermaid => graph.mermaid(),
                };
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Cancel(a) => {
            let done = obra.cancel_task(a.id, &a.reason).await?;
            println!("Cancelled task {}: {}", done.task.id, done.task.title);
            if done.was_running {
                println!(
                    "It was running: the obra running it stops its agent within {} s and records nothing more \
                     for it",
                    crate::engine::CANCEL_POLL.as_secs()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Retry(a) => {
            let done = obra.retry_task(a.id).await?;
            let task = done.task;
            if a.json {
                print_json(&task)?;
            } else if task.status() == TaskStatus::Blocked {
                println!(
                    "Task {} is {}",
                    task.id,
                    task.status_reason.as_deref().unwrap_or("blocked by another failed or cancelled task")
                );
            } else {
                println!("Task {} is pending again. Run it with: obra task execute {}", task.id, task.id);
                if !done.unblocked.is_empty() {
                    let ids: Vec<String> = done.unblocked.iter().map(|id| id.to_string()).collect();
                    println!("Unblocked: task(s) {} (they run after it completes: obra run)", ids.join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One recorded change for `task show`: kind, path, size and the short content hashes before and after.
fn describe_change(c: &crate::state::FileChangeRow) -> String {
    let short = |h: &Option<String>| h.as_deref().map(|h| h.chars().take(8).collect::<String>());
    let size = c.size.map(|s| format!(" {s} B")).unwrap_or_default();
    let hashes = match (short(&c.hash_before), short(&c.hash_after)) {
        (None, None) => String::new(),
        (b, a) => format!(" {}→{}", b.as_deref().unwrap_or("-"), a.as_deref().unwrap_or("-")),
    };
    format!("{} {}{size}{hashes}", c.kind.as_str(), c.path)
}

/// The text of `path`, or of stdin when it is `-`.
fn read_input(path: &std::path::Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// A description argument: itself, or stdin's text when it is `-`.
fn stdin_if_dash(text: String) -> Result<String> {
    if text == "-" { read_input(std::path::Path::new("-")) } else { Ok(text) }
}

/// `obra task import`: parse and validate the whole backlog, then create it in one transaction (or, with
/// `--dry-run`, print it).
async fn import(obra: &Orchestrator, g: &GlobalArgs, a: TaskImportArgs) -> Result<ExitCode> {
    let text = read_input(&a.file)?;
    let source = if a.file.as_os_str() == "-" { "stdin".to_string() } else { a.file.display().to_string() };
    let format = a.format.unwrap_or_else(|| BacklogFormat::detect(&source, &text));
    let parsed = backlog::parse(&text, &source, format)?;
    let tasks = backlog::resolve(&parsed, &source)?;
    for (n, (task, entry)) in tasks.iter().zip(&parsed.entries).enumerate() {
        for id in &task.depends_on {
            match obra.state().task(*id).await? {
                Some(t) if t.project_id == obra.project().id => {}
                _ => bail!(
                    "{}: \"{}\" depends on task {id}, which is not a task of this project; nothing was created",
                    backlog::location(&source, entry.line, n),
                    task.title
                ),
            }
        }
    }
    if a.dry_run {
        if a.json {
            let list: Vec<_> = tasks
                .iter()
                .map(|t| {
                    json!({ "title": t.title, "description": t.description, "priority": t.priority,
                            "depends_on": t.depends_on, "after": t.after.iter().map(|i| &tasks[*i].title).collect::<Vec<_>>(),
                            "milestone": t.milestone, "max_iterations": t.max_iterations })
                })
                .collect();
            print_json(&json!({ "dry_run": true, "tasks": list, "skipped_done": parsed.done }))?;
        } else {
            println!("Would create {} task(s) from {source} (nothing stored):", tasks.len());
            for (n, t) in tasks.iter().enumerate() {
                println!("  {}", describe_backlog_task(n + 1, t, &tasks));
            }
            if !parsed.done.is_empty() {
                println!("Skipped {} checked item(s): {}", parsed.done.len(), parsed.done.join(", "));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = obra.state().create_tasks(obra.project().id, g.profile.as_deref(), &tasks).await?;
    obra.log_user_input(
        "tasks_imported",
        json!({ "source": source, "task_ids": created.iter().map(|t| t.id).collect::<Vec<_>>() }),
    );
    if a.json {
        print_json(&created)?;
    } else {
        println!("Created {} task(s) from {source}:", created.len());
        for t in &created {
            let deps = t.dependencies();
            let deps = if deps.is_empty() {
                String::new()
            } else {
                format!("  (after {})", deps.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
            };
            println!("  {:>4}  p{:<2}  {}{deps}", t.id, t.priority, t.title);
        }
        if !parsed.done.is_empty() {
            println!("Skipped {} checked item(s): {}", parsed.done.len(), parsed.done.join(", "));
        }
        println!("Run them with: obra run");
    }
    Ok(ExitCode::SUCCESS)
}

/// One task of a dry run: its number in the backlog, priority, title, dependencies and description's size.
fn describe_backlog_task(n: usize, t: &crate::state::BacklogTask, all: &[crate::state::BacklogTask]) -> String {
    let mut after: Vec<String> = t.after.iter().map(|i| format!("\"{}\"", all[*i].title)).collect();
    after.extend(t.depends_on.iter().map(|id| format!("task {id}")));
    let after = if after.is_empty() { String::new() } else { format!("  after {}", after.join(", ")) };
    let milestone = t.milestone.as_deref().map(|m| format!("  [milestone {m}]")).unwrap_or_default();
    let size =
        if t.description.is_empty() { String::new() } else { format!("  ({} B description)", t.description.len()) };
    format!("#{n}  p{:<2}  {}{after}{milestone}{size}", t.priority, t.title)
}
