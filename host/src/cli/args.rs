//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Obra supervises a coding agent (Claude Code, ...) through a backlog of tasks, checks every step with
/// quality gates, breakpoint rules and a local LLM, and stops only where a human is needed.
#[derive(Debug, Parser)]
#[command(name = "obra", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Start with `obra demo` (no setup needed), or `obra init` in your project.\n\
Exit codes: 0 success, 1 error, 2 bad arguments, 3 a task paused at a breakpoint, 4 a task failed.")]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Run as if obra was started in DIR.
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The project to work on, by name or id (default: the one `obra project use` chose, else the one whose
    /// workspace holds the current directory, else the only one).
    #[arg(long, global = true, value_name = "NAME|ID", env = "OBRA_PROJECT")]
    pub project: Option<String>,
    /// Apply a configuration profile (minimal, python_project, web_app, ml_project, microservice, production).
    #[arg(long, global = true, value_name = "NAME", env = "OBRA_PROFILE")]
    pub profile: Option<String>,
    /// Override a configuration key, e.g. --set engine.max_iterations=5 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the current directory an Obra project: creates .obra/ with its database and config (with
    /// --profile, the project keeps that profile).
    Init(InitArgs),
    /// Create, list, show and choose projects (a store can hold several).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Create, execute and inspect tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run the project's backlog: execute every ready task in dependency and priority order.
    Run(RunArgs),
    /// Show the project's tasks and open breakpoints.
    Status(JsonArg),
    /// List and resolve breakpoints (where a task waits for a human).
    #[command(subcommand)]
    Breakpoint(BreakpointCommand),
    /// List, describe and check plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List checkpoints (snapshots of the workspace taken before each agent run) and roll back to one.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Show the production log (runs, tasks, agent results, gates, decisions, breakpoints, errors), filtered
    /// by task, event, run and time; --activity for the store's timeline.
    Logs(LogsArgs),
    /// Check what a run needs (configuration, store, git, plugins, the agent's CLI, the LLM endpoint) and
    /// say what to fix; exit code 1 when a check fails.
    Doctor(JsonArg),
    /// How the project's tasks went: success and autonomy rates, breakpoints by rule, confidence calibration,
    /// tokens and cost, step durations; as text, --json, or a self-contained HTML page with charts (--html).
    Report(ReportArgs),
    /// Re-run a task's recorded iterations through today's gates, rules and thresholds, and show which
    /// decisions would change (nothing is stored; the agent does not run).
    Replay(ReplayArgs),
    /// Print a shell completion script, e.g. `obra completions bash > ~/.local/share/bash-completion/completions/obra`.
    Completions(CompletionsArgs),
    /// Run a whole supervised task in a scratch git repository, with the built-in replay agent and no LLM.
    Demo(DemoArgs),
    /// Show the resolved configuration with where each value comes from, or check it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List and describe configuration profiles (built-in and ~/.config/obra/profiles/*.yaml).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// A prompt for obra commands, with history, Tab completion and breakpoints announced as they open.
    Interactive(super::repl::InteractiveArgs),
}

/// `--json`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `obra report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write a self-contained HTML report with charts to this file (no network needed to view it).
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
}

/// `obra init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `obra project ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Add a project to the store (`--profile` is remembered as the project's profile).
    Create(ProjectCreateArgs),
    /// List the store's projects.
    List(JsonArg),
    /// Show a project (the current one unless named) with its task counts.
    Show(ProjectShowArgs),
    /// Make a project the current one for later commands on this store.
    Use(ProjectUseArgs),
}

/// `obra project create`.
#[derive(Debug, Args)]
pub struct ProjectCreateArgs {
    /// A unique name.
    pub name: String,
    /// The directory the agents work in (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// What the project is about.
    #[arg(short, long, default_value = "")]
    pub description: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra project show`.
#[derive(Debug, Args)]
pub struct ProjectShowArgs {
    /// The project, by name or id (default: the current one).
    pub project: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra project use`.
#[derive(Debug, Args)]
pub struct ProjectUseArgs {
    /// The project, by name or id.
    pub project: String,
}

/// `obra run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop after this many task executions.
    #[arg(long, value_name = "N")]
    pub max_tasks: Option<u32>,
    /// When no task is ready, wait for new ones (checking every --poll seconds) instead of stopping; Ctrl-C
    /// stops after the current task.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between checks for new tasks with --watch.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub poll: u64,
    /// When the only tasks left wait for an agent's rate limit to reset, stop instead of waiting for the
    /// reset (a later `obra run` resumes them).
    #[arg(long)]
    pub no_wait: bool,
    /// Run up to N ready tasks at once, each in its own git worktree (.obra/worktrees/task-<id>) on its own
    /// branch (obra/task-<id>-<slug>), merged back into the current branch when the task completes; a merge
    /// conflict pauses the task at a breakpoint. Needs a git repository with a commit.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print a JSON summary at the end (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// `obra checkpoint ...`.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// List the project's checkpoints, newest first.
    List(CheckpointListArgs),
    /// Show a checkpoint: its task, label and commit, and what changed since the checkpoint before it.
    Show(CheckpointShowArgs),
    /// The unified diff from a checkpoint to the working tree, or to another checkpoint.
    Diff(CheckpointDiffArgs),
    /// Make the workspace what it was at a checkpoint, and its task pending again. A checkpoint of the
    /// current state is taken first, so a rollback can be undone.
    Rollback(CheckpointRollbackArgs),
}

/// `obra checkpoint list`.
#[derive(Debug, Args)]
pub struct CheckpointListArgs {
    /// Only this task's checkpoints.
    #[arg(long, value_name = "ID")]
    pub task: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra checkpoint show`.
#[derive(Debug, Args)]
pub struct CheckpointShowArgs {
    /// The checkpoint's id (see `obra checkpoint list`).
    pub id: i64,
    /// Also print the unified diff of what changed since the checkpoint before it.
    #[arg(long, short = 'p')]
    pub patch: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra checkpoint diff`.
#[derive(Debug, Args)]
pub struct CheckpointDiffArgs {
    /// The checkpoint to compare from.
    pub id: i64,
    /// The checkpoint to compare to (default: the working tree as it is now).
    pub to: Option<i64>,
    /// Only the changed paths, not the patch.
    #[arg(long)]
    pub stat: bool,
    /// Print JSON (the paths and the patch).
    #[arg(long)]
    pub json: bool,
}

/// `obra checkpoint rollback`.
#[derive(Debug, Args)]
pub struct CheckpointRollbackArgs {
    /// The checkpoint's id (see `obra checkpoint list`).
    pub id: i64,
    /// Roll back even when files changed after the newest checkpoint (they are kept in the safety
    /// checkpoint taken first).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this task's events.
    #[arg(long, value_name = "ID")]
    pub task: Option<i64>,
    /// Only these events (repeat, or comma-separated), e.g. `decision,breakpoint`.
    #[arg(long, value_name = "EVENT", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(crate::telemetry::production::EVENTS))]
    pub event: Vec<String>,
    /// Only this run's events (the `run_id` of a line).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Only events at or after this time: RFC 3339 (`2026-11-22T10:00:00Z`) or an age (`30m`, `2h`, `1d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Show at most the last N events.
    #[arg(short = 'n', long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub limit: i64,
    /// Keep printing new events as they happen (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// The store's activity timeline (tasks created, iterations, decisions, breakpoints, checkpoints) instead
    /// of the production log.
    #[arg(long)]
    pub activity: bool,
}

/// `obra replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The task whose recorded iterations to replay.
    #[arg(value_name = "TASK")]
    pub task: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `obra completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `obra task ...`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Add a task to the project's backlog (with --profile, the task keeps that profile and runs with it).
    Create(TaskCreateArgs),
    /// Add a whole backlog from a YAML list or a Markdown checklist (all of it, or nothing when it is invalid).
    Import(TaskImportArgs),
    /// Supervise one task until it completes, pauses at a breakpoint, or fails.
    Execute(TaskExecuteArgs),
    /// Show a task with its iterations, gate results and decisions.
    Show(TaskIdArgs),
    /// List the project's tasks (all, or those matching the filters).
    List(TaskListArgs),
    /// Change a task's title, description, priority or dependencies.
    Update(TaskUpdateArgs),
    /// Show the dependency graph of the project's tasks as a tree, DOT or Mermaid.
    Deps(TaskDepsArgs),
    /// Cancel a task: it will not run; its open breakpoint is closed.
    Cancel(TaskCancelArgs),
    /// Make a failed or cancelled task pending again.
    Retry(TaskIdArgs),
}

/// `obra task list`.
#[derive(Debug, Args)]
pub struct TaskListArgs {
    /// Only tasks with these statuses, e.g. --status pending,failed.
    #[arg(long, value_delimiter = ',', value_parser = ["pending", "running", "completed", "paused", "failed", "cancelled", "blocked"])]
    pub status: Vec<String>,
    /// Only tasks ready to run now (pending, with every dependency completed).
    #[arg(long, conflicts_with = "status")]
    pub ready: bool,
    /// Only tasks with at least this priority.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=10))]
    pub min_priority: Option<i64>,
    /// Only tasks whose title contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// At most N tasks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub limit: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra task update`.
#[derive(Debug, Args)]
pub struct TaskUpdateArgs {
    /// The task's id.
    pub id: i64,
    /// New title.
    #[arg(long)]
    pub title: Option<String>,
    /// New description (`-` reads it from stdin).
    #[arg(short, long)]
    pub description: Option<String>,
    /// Read the new description from this file (`-`: stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "description")]
    pub description_file: Option<std::path::PathBuf>,
    /// New priority from 1 (low) to 10 (high).
    #[arg(short, long, value_parser = clap::value_parser!(i64).range(1..=10))]
    pub priority: Option<i64>,
    /// New dependencies, replacing the old ones, e.g. --depends-on 1,3.
    #[arg(long, value_delimiter = ',', value_name = "IDS", conflicts_with = "no_deps")]
    pub depends_on: Option<Vec<i64>>,
    /// Remove every dependency.
    #[arg(long)]
    pub no_deps: bool,
    /// Move the task to this milestone ("" takes it out of its milestone).
    #[arg(long, value_name = "NAME")]
    pub milestone: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `obra task deps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// An indented tree: each task with the tasks it depends on under it.
    Tree,
    /// Graphviz DOT (`obra task deps --format dot | dot -Tsvg > deps.svg`).
    Dot,
    /// A Mermaid flowchart (paste into Markdown).
    Mermaid,
}

/// `obra task deps`.
#[derive(Debug, Args)]
pub struct TaskDepsArgs {
    /// Only this task and what it depends on, directly or not.
    pub id: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Tree)]
    pub format: GraphFormat,
    /// Print the graph as JSON (nodes and edges).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// `obra task cancel`.
#[derive(Debug, Args)]
pub struct TaskCancelArgs {
    /// The task's id.
    pub id: i64,
    /// Why (kept with the task).
    #[arg(long, default_value = "cancelled by the user")]
    pub reason: String,
}

/// `obra task create`.
#[derive(Debug, Args)]
pub struct TaskCreateArgs {
    /// Short title of the task.
    pub title: String,
    /// What to do, in as much detail as the agent needs (`-` reads it from stdin).
    #[arg(short, long, default_value = "")]
    pub description: String,
    /// Read the description from this file (`-`: stdin), for text longer than an argument may be.
    #[arg(long, value_name = "FILE", conflicts_with = "description")]
    pub description_file: Option<std::path::PathBuf>,
    /// Priority from 1 (low) to 10 (high).
    #[arg(short, long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=10))]
    pub priority: i64,
    /// Tasks that must complete first, e.g. --depends-on 1,3.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub depends_on: Vec<i64>,
    /// Iteration limit for this task (default: engine.max_iterations).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_iterations: Option<u32>,
    /// The milestone the task belongs to: tasks of one milestone continue one agent session.
    #[arg(long, value_name = "NAME")]
    pub milestone: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra task import`.
#[derive(Debug, Args)]
pub struct TaskImportArgs {
    /// The backlog file (`-`: stdin): a YAML list of tasks or a Markdown checklist.
    pub file: std::path::PathBuf,
    /// The file's format (default: by its extension, else a Markdown checklist when it has `- [ ]` items).
    #[arg(long, value_enum)]
    pub format: Option<super::backlog::BacklogFormat>,
    /// Validate and print what would be created; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra task execute`.
#[derive(Debug, Args)]
pub struct TaskExecuteArgs {
    /// The task's id (see `obra status`).
    pub id: i64,
    /// Print the outcome as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// A task id and `--json`.
#[derive(Debug, Args)]
pub struct TaskIdArgs {
    /// The task's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra breakpoint ...`.
#[derive(Debug, Subcommand)]
pub enum BreakpointCommand {
    /// List breakpoints (open ones unless --all).
    List(BreakpointListArgs),
    /// Show a breakpoint with the iteration that opened it.
    Show(BreakpointShowArgs),
    /// Resolve a breakpoint: approve the work, reject it, or send it back with feedback.
    Resolve(BreakpointResolveArgs),
}

/// `obra breakpoint show`.
#[derive(Debug, Args)]
pub struct BreakpointShowArgs {
    /// The breakpoint's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra breakpoint list`.
#[derive(Debug, Args)]
pub struct BreakpointListArgs {
    /// Include resolved breakpoints.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra breakpoint resolve`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("resolution").required(true).args(["approve", "reject", "feedback", "retry"]))]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all"]))]
pub struct BreakpointResolveArgs {
    /// The breakpoint's id.
    pub id: Option<i64>,
    /// Resolve every open breakpoint of the project (with --rule: of that rule), printing each.
    #[arg(long)]
    pub all: bool,
    /// With --all: only the open breakpoints of this rule (e.g. agent-failed).
    #[arg(long, requires = "all", value_name = "RULE")]
    pub rule: Option<String>,
    /// Accept the work: the task completes.
    #[arg(long)]
    pub approve: bool,
    /// Reject the work: the task fails.
    #[arg(long)]
    pub reject: bool,
    /// Send the task back to the agent with this feedback; `obra task execute` runs it again.
    #[arg(long, value_name = "TEXT")]
    pub feedback: Option<String>,
    /// Run the task again as it was, with no feedback (a fresh attempt once what made the agent fail, e.g.
    /// a missing CLI, is fixed): it becomes pending.
    #[arg(long)]
    pub retry: bool,
    /// With --approve: approve even though a required gate of the breakpoint's iteration failed (without it,
    /// such an approval is refused with the failed gates named).
    #[arg(long, requires = "approve")]
    pub force: bool,
}

/// `obra plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the plugins Obra can load (built-in and found on the search path).
    List(JsonArg),
    /// Describe one plugin: manifest, requested and effective capabilities, limits.
    Info(PluginInfoArgs),
    /// Check a plugin directory or plugin.toml: manifest, hash, compilation, imports against the manifest.
    Check(PluginCheckArgs),
}

/// `obra plugin info`.
#[derive(Debug, Args)]
pub struct PluginInfoArgs {
    /// The plugin's name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra plugin check`.
#[derive(Debug, Args)]
pub struct PluginCheckArgs {
    /// A plugin directory or its plugin.toml.
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `obra demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the scratch repository (default: a new temporary directory, kept afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the outcome as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

/// `obra config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every resolved key as `key = value    # layer` (inside a project its .obra/config.yaml applies).
    Show(ConfigShowArgs),
    /// Check every layer the current directory would use, or one file as a project config.
    Validate(ConfigValidateArgs),
    /// Approve the capability grants and plugin pins the project's own config sets (stored outside the
    /// workspace, for exactly this content; like `direnv allow`).
    Trust(ConfigTrustArgs),
}

/// `obra config trust`.
#[derive(Debug, Args)]
pub struct ConfigTrustArgs {
    /// Withdraw the approval instead: the project's grants and pins stop counting.
    #[arg(long)]
    pub revoke: bool,
    /// Print `{"status": .., "root": .., "sha256": .., "files": [..]}`.
    #[arg(long)]
    pub json: bool,
}

/// `obra config show`.
#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// Only this key, or the keys of this section (e.g. engine.max_iterations, engine.decision, gates).
    pub key: Option<String>,
    /// Print `[{"key": .., "value": .., "source": ..}]`.
    #[arg(long)]
    pub json: bool,
}

/// `obra config validate`.
#[derive(Debug, Args)]
pub struct ConfigValidateArgs {
    /// A file to check as a project config (.obra/config.yaml) on top of the defaults.
    pub file: Option<PathBuf>,
    /// Print `{"ok": .., "error": .., "layers": [..]}`.
    #[arg(long)]
    pub json: bool,
}

/// `obra profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in and user profiles.
    List(JsonArg),
    /// Show a profile's YAML and the keys it changes.
    Show(ProfileShowArgs),
}

/// `obra profile show`.
#[derive(Debug, Args)]
pub struct ProfileShowArgs {
    /// The profile's name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
