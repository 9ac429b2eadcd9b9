//! The `obra` command line: argument parsing, command handlers and output. Handlers are thin: they call the
//! [`Orchestrator`] and print.

pub mod args;
pub mod backlog;
mod checkpoint_cmd;
mod config_cmd;
mod demo;
pub mod deps;
mod doctor_cmd;
mod logs_cmd;
pub mod output;
pub mod pipe;
mod plugin_cmd;
mod profile_cmd;
mod project_cmd;
pub mod repl;
mod replay_cmd;
mod report_cmd;
mod report_html;
mod run_cmd;
pub mod setup;
mod task_cmd;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

pub use args::Cli;
use args::{BreakpointCommand, Command, GlobalArgs};
use output::{one_line, print_json};

use crate::engine::scheduler::TaskWait;
use crate::orchestrator::{OpenOptions, Orchestrator};
use crate::state::{Resolution, TaskStatus};

/// Exit code: a task paused at a breakpoint.
pub const EXIT_PAUSED: u8 = 3;
/// Exit code: a task failed.
pub const EXIT_FAILED: u8 = 4;
/// Exit code: a task was cancelled while it ran (`obra task cancel` from another command).
pub const EXIT_CANCELLED: u8 = 5;

/// Parse the process arguments, run the command, and turn errors into a message on stderr and exit code 1.
pub fn main() -> ExitCode {
    pipe::install_panic_hook();
    raise_open_file_limit();
    let cli = Cli::parse();
    crate::telemetry::init(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if pipe::is_closed_stdout(&e) => pipe::exit_quietly(),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    };
    // Dropping the runtime would wait for every blocking task, and one stuck in a system call (a plugin's host
    // call that timed out) would keep `obra` from ever exiting: give them a moment, then leave them behind.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

/// Raise the soft limit on open files towards the hard one (at most [`OPEN_FILES_WANTED`]): the plugins'
/// quotas bound what each holds (`plugins.limits.max_children`, `max_http_streams`), but their sum plus the
/// store, the watcher and the component cache can pass the common default of 1024. Children inherit it, so it
/// stays modest. Failing to raise it is not an error.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < OPEN_FILES_WANTED {
            limit.rlim_cur = OPEN_FILES_WANTED.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The soft limit on open files `obra` asks for.
const OPEN_FILES_WANTED: libc::rlim_t = 8192;

/// How long `obra` waits at exit for blocking work still running (e.g. after a host call timed out).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Run one parsed command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Init(a) => project_cmd::init(&g, a).await,
        Command::Project(cmd) => project_cmd::run(&g, cmd).await,
        Command::Task(cmd) => task_cmd::run(&g, cmd).await,
        Command::Run(a) => run_cmd::run(&g, a).await,
        Command::Logs(a) => logs_cmd::run(&g, a).await,
        Command::Report(a) => report_cmd::run(&g, a).await,
        Command::Doctor(a) => doctor_cmd::run(&g, a.json).await,
        Command::Replay(a) => replay_cmd::run(&g, a).await,
        Command::Checkpoint(cmd) => checkpoint_cmd::run(&g, cmd).await,
        Command::Completions(a) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut command, "obra", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => status(&g, a.json).await,
        Command::Breakpoint(cmd) => breakpoint(&g, cmd).await,
        Command::Plugin(cmd) => plugin_cmd::run(&g, cmd).await,
        Command::Demo(a) => demo::run(&g, a).await,
        Command::Config(cmd) => config_cmd::run(&g, cmd).await,
        Command::Profile(cmd) => profile_cmd::run(&g, cmd),
        Command::Interactive(a) => Box::pin(repl::run(&g, a)).await,
    }
}

fn open_options(g: &GlobalArgs) -> OpenOptions {
    OpenOptions {
        dir: g.dir.clone(),
        profile: g.profile.clone(),
        sets: g.sets.clone(),
        project: g.project.clone(),
        preparing_plugins: Some(preparing_plugins_notice()),
    }
}

/// "preparing plugins… (first run only)" on stderr when it is a terminal (said once per process).
pub(crate) fn preparing_plugins_notice() -> crate::orchestrator::Notice {
    crate::orchestrator::Notice(std::sync::Arc::new(|| {
        static SAID: std::sync::Once = std::sync::Once::new();
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            SAID.call_once(|| eprintln!("preparing plugins… (first run only)"));
        }
    }))
}

pub(crate) fn exit_for(status: TaskStatus) -> ExitCode {
    match status {
        TaskStatus::Paused => ExitCode::from(EXIT_PAUSED),
        TaskStatus::Failed => ExitCode::from(EXIT_FAILED),
        TaskStatus::Cancelled => ExitCode::from(EXIT_CANCELLED),
        _ => ExitCode::SUCCESS,
    }
}

/// At most this many tasks are listed by `obra status` (text); `--json` and `obra task list` give them all.
const STATUS_TASKS: usize = 50;

async fn status(g: &GlobalArgs, as_json: bool) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    let project = obra.project();
    let tasks = obra.state().tasks(project.id).await?;
    let open = obra.state().breakpoints(project.id, true).await?;
    let counts = obra.state().task_counts(project.id).await?;
    let usage = obra.state().project_usage(project.id).await?;
    let unverified = obra.state().unverified_tasks(project.id).await?;
    let waits = crate::engine::scheduler::waits_of(&tasks, &open);
    // The configured plugins by name, each checked to be installed; nothing is loaded (a cold compile cache
    // would cost seconds): `obra doctor` and every execution load them.
    let plugins = obra.configured_plugins().map_err(|e| format!("{e:#}"));
    // A task the store says is running while no obra runs this project was interrupted (obra was killed).
    let running_obra = obra.running_obra();
    let interrupted: Vec<i64> = if running_obra.is_some() {
        Vec::new()
    } else {
        tasks.iter().filter(|t| t.status() == TaskStatus::Running).map(|t| t.id).collect()
    };
    if as_json {
        let counts: serde_json::Map<String, serde_json::Value> =
            counts.into_iter().map(|(k, v)| (k, json!(v))).collect();
        print_json(&json!({
            "project": project,
            "agent": obra.config().config.agent.plugin,
            "llm": obra.config().config.llm.provider,
            "config": config_cmd::effective(&obra.config().config, &obra.resolved_config()),
            "plugins": match &plugins {
                Ok(p) => json!({ "ok": true, "resolved": p }),
                Err(e) => json!({ "ok": false, "error": e }),
            },
            "task_counts": counts,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": usage.cost_usd,
            },
            "running_obra_pid": running_obra,
            "interrupted_tasks": interrupted,
            "tasks": output::tasks_with_waits(&tasks, &waits)?,
            "waiting": waits.iter().map(|(id, w)| TaskWait { task_id: *id, wait: w.clone() }).collect::<Vec<_>>(),
            "unverified_tasks": unverified,
            "open_breakpoints": open,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Project \"{}\" in {}", project.name, project.workspace);
    match &plugins {
        Ok(p) => println!(
            "  agent: {}   llm: {}   gates: {}   rules: {}",
            p.agent,
            p.llm.as_deref().unwrap_or("none"),
            p.gates.join(", "),
            p.rules.join(", ")
        ),
        Err(e) => println!("  plugins: PROBLEM: {e}"),
    }
    println!(
        "  profile: {}   max iterations: {}",
        obra.resolved_config().sources.profile.as_deref().unwrap_or("none"),
        obra.config().config.engine.max_iterations
    );
    let summary: Vec<String> =
        counts
            .iter()
            .map(|(s, n)| {
                if s == "running" && !interrupted.is_empty() { format!("{n} interrupted") } else { format!("{n} {s}") }
            })
            .collect();
    println!("  tasks: {}", if summary.is_empty() { "none".to_string() } else { summary.join(", ") });
    if usage.is_reported() {
        println!("  agent usage: {}, as the agents reported it", output::usage_text(&usage));
    } else {
        println!("  agent usage: none reported yet");
    }
    // A long backlog is paged: the tasks that need attention first (running, paused, failed, then the rest in
    // the backlog's order), at most STATUS_TASKS of them.
    let rank = |t: &&crate::state::Task| match t.status() {
        TaskStatus::Running => 0,
        TaskStatus::Paused => 1,
        TaskStatus::Failed => 2,
        TaskStatus::Pending | TaskStatus::Blocked => 3,
        TaskStatus::Completed | TaskStatus::Cancelled => 4,
    };
    let mut shown: Vec<&crate::state::Task> = tasks.iter().collect();
    shown.sort_by_key(|t| rank(t));
    for t in shown.iter().take(STATUS_TASKS) {
        let status = if interrupted.contains(&t.id) { "interrupted".to_string() } else { t.status.to_string() };
        let mark = if unverified.contains(&t.id) { " (unverified: no verifying gate or LLM checked it)" } else { "" };
        let why = waits.get(&t.id).map(|w| format!("  — {w}")).unwrap_or_default();
        println!("  {:>4}  {:<11} {}{mark}{why}", t.id, status, t.title);
    }
    if tasks.len() > STATUS_TASKS {
        println!("  ... and {} more: `obra task list` (--status, --ready) lists them all", tasks.len() - STATUS_TASKS);
    }
    if !interrupted.is_empty() {
        println!("Interrupted: the obra that ran them stopped; `obra run` (or `obra task execute ID`) resumes them");
    }
    if !open.is_empty() {
        println!("Open breakpoints:");
        for b in &open {
            println!("  {:>4}  task {} ({}): {}", b.id, b.task_id, b.rule, one_line(&b.reason, 120));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn breakpoint(g: &GlobalArgs, cmd: BreakpointCommand) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    match cmd {
        BreakpointCommand::List(a) => {
            let list = obra.state().breakpoints(obra.project().id, !a.all).await?;
            if a.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No {}breakpoints.", if a.all { "" } else { "open " });
            } else {
                for b in list {
                    println!(
                        "{:>4}  {:<8} task {:<4} {:<16} {}",
                        b.id,
                        b.status,
                        b.task_id,
                        b.rule,
                        one_line(&b.reason, 100)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BreakpointCommand::Show(a) => {
            let Some(bp) = obra.state().breakpoint(a.id).await? else {
                anyhow::bail!("breakpoint {} does not exist; `obra breakpoint list --all` lists them", a.id);
            };
            let task = obra.task(bp.task_id).await?;
            let interaction = match bp.interaction_id {
                Some(id) => obra.state().interactions(task.id).await?.into_iter().find(|i| i.id == id),
                None => None,
            };
            let decision = match &interaction {
                Some(i) => obra.state().decision(i.id).await?,
                None => None,
            };
            let gates = match &interaction {
                Some(i) => obra.state().gate_results(i.id).await?,
                None => Vec::new(),
            };
            if a.json {
                let diff = match &interaction {
                    Some(i) => checkpoint_cmd::iteration_diff(&obra, task.id, i.iteration).await.ok().flatten(),
                    None => None,
                };
                print_json(&json!({
                    "breakpoint": bp,
                    "task": task,
                    "interaction": interaction,
                    "gates": gates,
                    "decision": decision,
                    "diff": diff.map(|(ends, d)| json!({ "between": ends, "changes": d.changes, "patch": d.patch })),
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("Breakpoint {} [{}] on task {}: {}", bp.id, bp.status, task.id, task.title);
            println!("  rule:    {}", bp.rule);
            println!("  reason:  {}", bp.reason);
            println!("  opened:  {}", bp.created_at);
            if let Some(resolution) = &bp.resolution {
                println!(
                    "  resolved: {resolution} by {} at {}",
                    bp.resolved_by.as_deref().unwrap_or("?"),
                    bp.resolved_at.as_deref().unwrap_or("?")
                );
            }
            if let Some(feedback) = &bp.feedback {
                println!("  feedback: {feedback}");
            }
            if let Some(i) = &interaction {
                println!(
                    "  iteration {} via {}: {} {}",
                    i.iteration,
                    i.agent,
                    i.outcome.as_deref().unwrap_or(&i.status),
                    one_line(i.summary.as_deref().or(i.error.as_deref()).unwrap_or(""), 200)
                );
            }
            for gate in &gates {
                println!(
                    "    gate {}: {} ({:.2}) {}",
                    gate.gate,
                    if gate.passed { "pass" } else { "FAIL" },
                    gate.score,
                    one_line(&gate.summary, 120)
                );
                if !gate.passed {
                    for line in output::finding_lines(&gate.findings) {
                        println!("        {line}");
                    }
                }
            }
            if let Some(d) = &decision {
                println!(
                    "    decision {} at {:.2}: {}",
                    d.action.to_uppercase(),
                    d.confidence,
                    one_line(&d.explanation, 200)
                );
                print_llm_reasons(d);
            }
            let diff = match &interaction {
                Some(i) => checkpoint_cmd::iteration_diff(&obra, task.id, i.iteration).await.unwrap_or_else(|e| {
                    println!("  diff: unavailable ({e:#})");
                    None
                }),
                None => None,
            };
            if let Some((ends, diff)) = &diff {
                if diff.changes.is_empty() {
                    println!("  diff of the iteration ({ends}): no change");
                } else {
                    println!("  diff of the iteration ({ends}):");
                    let lines: Vec<&str> = diff.patch.lines().collect();
                    for line in lines.iter().take(checkpoint_cmd::MAX_DIFF_LINES) {
                        println!("    {line}");
                    }
                    if lines.len() > checkpoint_cmd::MAX_DIFF_LINES {
                        println!(
                            "    [... {} more line(s): obra checkpoint diff shows it all]",
                            lines.len() - checkpoint_cmd::MAX_DIFF_LINES
                        );
                    }
                }
            }
            if bp.status == "open" {
                println!("Resolve with: {}", resolve_hint(bp.id, &bp.rule));
            }
            Ok(ExitCode::SUCCESS)
        }
        BreakpointCommand::Resolve(a) => {
            let resolution = match (a.approve, a.reject, a.retry, a.feedback) {
                (true, ..) => Resolution::Approve,
                (_, true, ..) => Resolution::Reject,
                (_, _, true, _) => Resolution::Retry,
                (.., Some(text)) if !text.trim().is_empty() => Resolution::Feedback(text),
                _ => anyhow::bail!("--feedback needs some text for the agent"),
            };
            let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let Some(id) = a.id.filter(|_| !a.all) else {
                return resolve_all(&obra, a.rule.as_deref(), &resolution, a.force, &by).await;
            };
            resolve_one(&obra, id, resolution, a.force, &by).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How to resolve breakpoint `id` of `rule`: an agent that failed is retried once its cause is fixed.
fn resolve_hint(id: i64, rule: &str) -> String {
    if rule == crate::engine::AGENT_FAILED_RULE {
        format!("fix the cause, then obra breakpoint resolve {id} --retry (or --reject)")
    } else {
        format!("obra breakpoint resolve {id} --approve | --reject | --feedback \"...\"")
    }
}

/// `obra breakpoint resolve --all [--rule R]`: every open breakpoint (of rule R), one after another, each
/// printed; one that cannot be resolved (an approval over failed required gates without --force) is reported
/// and the others go on (exit 1 then).
async fn resolve_all(
    obra: &Orchestrator,
    rule: Option<&str>,
    resolution: &Resolution,
    force: bool,
    by: &str,
) -> Result<ExitCode> {
    let open: Vec<_> = obra
        .state()
        .breakpoints(obra.project().id, true)
        .await?
        .into_iter()
        .filter(|bp| rule.is_none_or(|r| bp.rule == r))
        .collect();
    if open.is_empty() {
        println!("No open breakpoints{}.", rule.map(|r| format!(" of rule {r}")).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let mut refused = 0;
    for bp in open {
        if let Err(e) = resolve_one(obra, bp.id, resolution.clone(), force, by).await {
            eprintln!("error: {e:#}");
            refused += 1;
        }
    }
    Ok(if refused > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Resolve breakpoint `id` through the application (see [`Orchestrator::resolve_breakpoint`]) and print the
/// task's new status.
async fn resolve_one(obra: &Orchestrator, id: i64, resolution: Resolution, force: bool, by: &str) -> Result<()> {
    let observer = obra.observed(std::sync::Arc::new(output::StepPrinter::new(false)));
    let done = obra.resolve_breakpoint(id, resolution, force, by, observer).await?;
    let (bp, task) = (done.breakpoint, done.task);
    if !done.forced_over.is_empty() {
        eprintln!("warning: approving over failed required gate(s): {}", done.forced_over.join("; "));
    }
    println!(
        "Resolved breakpoint {} ({}, {}); task {} is now {}",
        bp.id,
        bp.rule,
        bp.resolution.as_deref().unwrap_or(""),
        task.id,
        task.status
    );
    if task.status() == TaskStatus::Pending {
        println!("Run it again with: obra task execute {} (or obra run)", task.id);
    }
    Ok(())
}

/// The LLM's reasons for a decision (its opinion's reasoning, first lines), when an LLM gave one.
pub(crate) fn print_llm_reasons(d: &crate::state::DecisionRow) {
    if let Some(reasoning) = d.llm_reasoning.as_deref().filter(|r| !r.trim().is_empty()) {
        let score = d.llm_score.map(|s| format!(" {s:.2}")).unwrap_or_default();
        for (i, line) in output::first_lines(reasoning, 6).iter().enumerate() {
            if i == 0 {
                println!("      llm{score}: {line}");
            } else {
                println!("        {line}");
            }
        }
    }
}
