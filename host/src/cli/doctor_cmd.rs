//! `obra doctor`: check what a run needs — the configuration, the store, git, the plugins, the agent's CLI and
//! the LLM endpoint — and say what to fix. Exit code 1 when any check fails.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::args::GlobalArgs;
use super::open_options;
use super::output::print_json;
use crate::contract::CallContext;
use crate::orchestrator::Orchestrator;
use crate::workspace::checkpoint::Checkpoints;

/// How long an agent's or LLM's health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// One check's result.
#[derive(Debug, Clone, Serialize)]
struct Check {
    /// What was checked.
    name: String,
    /// Whether it is fine (`warn` counts as fine for the exit code).
    status: Status,
    /// What was found.
    detail: String,
    /// What to do about it, when something is wrong.
    fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

pub(super) async fn run(g: &GlobalArgs, json: bool) -> Result<ExitCode> {
    let checks = checks(g).await;
    if json {
        print_json(&checks)?;
    } else {
        std::io::stdout().lock().write_all(render(&checks).as_bytes())?;
    }
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn checks(g: &GlobalArgs) -> Vec<Check> {
    let mut out = vec![git_binary().await];
    let obra = match Orchestrator::open(open_options(g)).await {
        Ok(o) => o,
        Err(e) => {
            let fix = "run `obra init` in the project's directory, or fix the configuration the message names";
            let start = open_options(g).start_dir().ok();
            let in_project = start.as_deref().is_some_and(|d| d.ancestors().any(|a| a.join(".obra").is_dir()));
            if in_project {
                out.insert(0, Check::fail("project", format!("{e:#}"), fix));
            } else {
                // Before `obra init`: what a project will need can be checked already.
                out.insert(0, Check::warn("project", format!("{e:#}"), fix));
                out.extend(outside_project(g, start).await);
            }
            return out;
        }
    };
    let config = &obra.config().config;
    let effective = super::config_cmd::effective(config, &obra.resolved_config());
    out.insert(
        0,
        Check::ok(
            "configuration",
            format!(
                "valid; {}; a run uses {} iteration(s), gates {}; agent {}, LLM {}",
                effective["profile"].as_str().map_or("no profile".to_string(), |p| format!("profile {p}")),
                config.engine.max_iterations,
                config.gates.iter().filter(|g| g.enabled).map(|g| g.display_name()).collect::<Vec<_>>().join(", "),
                config.agent.plugin,
                config.llm.provider
            ),
        ),
    );
    out.push(trust(&obra));
    out.push(store(&obra).await);
    out.push(workspace_git(&obra));
    out.extend(git_integration(&obra).await);

    let loaded = match obra.plugins().await {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::fail("plugins", format!("{e:#}"), "check plugins.* in the configuration"));
            return out;
        }
    };
    if loaded.load_errors.is_empty() {
        out.push(Check::ok("plugins", format!("{} loaded", loaded.host.list().len())));
    } else {
        for e in &loaded.load_errors {
            out.push(Check::warn(
                "plugins",
                e.to_string(),
                "fix or remove the broken plugin (`obra plugin check PATH`)",
            ));
        }
    }
    let plugins = match obra.resolve_loop_plugins(config).await {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::fail(
                "configured plugins",
                format!("{e:#}"),
                "name installed plugins in agent.plugin, llm.provider, gates and rules (`obra plugin list`)",
            ));
            return out;
        }
    };
    out.push(Check::ok(
        "configured plugins",
        format!(
            "agent {}, {} gate(s) ({}), {} rule(s){}",
            plugins.agent.name(),
            plugins.gates.len(),
            plugins.gates.iter().map(|(g, _)| g.display_name()).collect::<Vec<_>>().join(", "),
            plugins.rules.len(),
            plugins.llm.as_ref().map(|l| format!(", LLM {}", l.name())).unwrap_or_default()
        ),
    ));

    out.push(grants(&loaded.host, &plugins));

    // The agent's transport first: its health check runs the agent's CLI there.
    let transport = match config.agent.transport.build() {
        Ok(t) => t.map(std::sync::Arc::new),
        Err(e) => {
            out.push(Check::fail("transport", e.to_string(), "fix agent.transport (see docs/agents.md)"));
            return out;
        }
    };
    if let Some(t) = &transport {
        match tokio::time::timeout(HEALTH_TIMEOUT * 4, t.connect()).await {
            Ok(Ok(detail)) => out.push(Check::ok("transport", detail)),
            Ok(Err(e)) => {
                out.push(Check::fail("transport", e.to_string(), "fix agent.transport (see docs/agents.md)"));
                return out;
            }
            Err(_) => {
                out.push(Check::fail("transport", format!("{}: no answer", t.describe()), "check the network"));
                return out;
            }
        }
    }
    let sandbox = crate::sandbox::SandboxSpec::for_workspace(&config.sandbox, obra.root(), Some(&config.agent.plugin));
    out.push(sandbox_check(config, sandbox.as_ref(), obra.root(), transport.is_some()));
    let agent = &plugins.agent;
    let name = format!("agent {}", agent.name());
    out.push(match agent_health(obra.root(), config, agent.as_ref(), transport, sandbox).await {
        Ok(detail) => Check::ok(&name, detail),
        Err(e) => Check::fail(&name, health_error(e.as_ref()), agent_fix(agent.name())),
    });
    out.push(llm_check(plugins.llm.as_deref()).await);
    out
}

/// The agent's health: its CLI found, its version, authenticated where the CLI can tell.
async fn agent_check(agent: &dyn crate::contract::Agent, ctx: &CallContext, agent_config: &str) -> Check {
    let name = format!("agent {}", agent.name());
    match tokio::time::timeout(HEALTH_TIMEOUT, agent.health(ctx, agent_config)).await {
        Ok(Ok(detail)) => Check::ok(&name, detail),
        Ok(Err(e)) => Check::fail(&name, e.to_string(), agent_fix(agent.name())),
        Err(_) => Check::fail(&name, "no answer within 30 s", agent_fix(agent.name())),
    }
}

/// The LLM endpoint's health (reachable, model present), or a warning that none is configured.
async fn llm_check(llm: Option<&dyn crate::contract::LlmProvider>) -> Check {
    let Some(llm) = llm else {
        return Check::warn(
            "LLM",
            "none configured (llm.provider: none): decisions use heuristics alone",
            "set llm.provider (e.g. ollama) and llms.<provider>.base_url for the LLM's opinion",
        );
    };
    let name = format!("LLM {}", llm.name());
    let fix = if llm.name() == "ollama" {
        "start the server llms.ollama.base_url points at and pull llms.ollama.model, or set llm.provider: none"
            .to_string()
    } else {
        format!(
            "start the server llms.{0}.base_url points at, check llms.{0}.model and its API key \
             (llms.{0}.api_key_env), or set llm.provider: none",
            llm.name()
        )
    };
    match tokio::time::timeout(HEALTH_TIMEOUT, llm.health()).await {
        Ok(Ok(detail)) => Check::ok(&name, detail),
        Ok(Err(e)) => Check::fail(&name, e.to_string(), fix),
        Err(_) => Check::fail(&name, "no answer within 30 s", fix),
    }
}

/// Outside any project (before `obra init`): the agent's CLI and the LLM as the user's configuration and the
/// defaults name them.
async fn outside_project(g: &GlobalArgs, start: Option<std::path::PathBuf>) -> Vec<Check> {
    let sources = crate::config::ConfigSources::from_process(None, g.profile.clone(), g.sets.clone());
    let config = match crate::config::load(&sources) {
        Ok(c) => c.config,
        Err(e) => {
            return vec![Check::fail("configuration", format!("{e:#}"), "fix the configuration the message names")];
        }
    };
    let mut out = vec![Check::ok(
        "configuration",
        format!(
            "no project yet: your configuration and the defaults name agent {}, LLM {}",
            config.agent.plugin, config.llm.provider
        ),
    )];
    let loaded = match crate::orchestrator::standalone_plugins(&open_options(g)).await {
        Ok(l) => l,
        Err(e) => {
            out.push(Check::fail("plugins", format!("{e:#}"), "check plugins.* in the configuration"));
            return out;
        }
    };
    if matches!(config.agent.transport.build(), Ok(Some(_))) {
        out.push(Check::warn(
            "transport",
            "the agent runs over agent.transport: its CLI is checked there once a project exists",
            "run `obra init`, then `obra doctor`",
        ));
    } else {
        match loaded.host.agent(loaded.resolve(&config.agent.plugin)) {
            Ok(agent) => {
                let ctx = CallContext {
                    workspace: start,
                    llm: None,
                    progress: None,
                    timeout: Some(HEALTH_TIMEOUT),
                    transport: None,
                    sandbox: None,
                    stall: None,
                };
                let agent_config = config.agent_config(agent.name()).to_string();
                out.push(agent_check(agent.as_ref(), &ctx, &agent_config).await);
            }
            Err(e) => out.push(Check::fail("agent", e.to_string(), "name an installed plugin in agent.plugin")),
        }
    }
    if config.llm.enabled() {
        let provider = loaded.resolve(&config.llm.provider);
        match loaded.host.llm_provider(provider, &config.llm_config(provider).to_string()) {
            Ok(llm) => out.push(llm_check(Some(llm.as_ref())).await),
            Err(e) => out.push(Check::fail("LLM", e.to_string(), "name an installed plugin in llm.provider")),
        }
    } else {
        out.push(llm_check(None).await);
    }
    out
}

/// The agent plugin's `health` in `root` (its CLI found and answering), within [`HEALTH_TIMEOUT`]: what it
/// reported, or its error (`None`: no answer in time).
async fn agent_health(
    root: &std::path::Path,
    config: &crate::config::Config,
    agent: &dyn crate::contract::Agent,
    transport: Option<std::sync::Arc<crate::transport::Transport>>,
    sandbox: Option<crate::sandbox::SandboxSpec>,
) -> Result<String, Option<crate::contract::PluginError>> {
    let ctx = CallContext {
        workspace: Some(root.to_path_buf()),
        llm: None,
        progress: None,
        timeout: Some(HEALTH_TIMEOUT),
        transport,
        sandbox: sandbox.map(std::sync::Arc::new),
        stall: None,
    };
    let agent_config = config.agent_config(agent.name()).to_string();
    match tokio::time::timeout(HEALTH_TIMEOUT, agent.health(&ctx, &agent_config)).await {
        Ok(result) => result.map_err(Some),
        Err(_) => Err(None),
    }
}

/// A failed health check, said.
fn health_error(e: Option<&crate::contract::PluginError>) -> String {
    e.map_or_else(|| "no answer within 30 s".to_string(), ToString::to_string)
}

/// `obra run`'s check before its first task: the configured agent's health, as `obra doctor` checks it. An
/// error names the cause and the fix. A probe the grants do not allow (e.g. `PROGRAM --version` when only
/// the run's own arguments are granted) says nothing about the run, which goes on with a note.
pub(super) async fn check_agent_before_run(obra: &Orchestrator) -> Result<()> {
    let config = &obra.config().config;
    let plugins = obra.resolve_loop_plugins(config).await?;
    let transport =
        config.agent.transport.build().map_err(|e| anyhow::anyhow!("agent.transport: {e}"))?.map(std::sync::Arc::new);
    let sandbox = crate::sandbox::SandboxSpec::for_workspace(&config.sandbox, obra.root(), Some(&config.agent.plugin));
    let agent = plugins.agent.as_ref();
    match agent_health(obra.root(), config, agent, transport, sandbox).await {
        Ok(_) => {}
        Err(Some(e @ crate::contract::PluginError::Denied(_))) => {
            eprintln!("note: the agent's health check could not run ({e}); the run goes on without it");
        }
        Err(cause) => anyhow::bail!(
            "the agent {} cannot run here, so no task was started: {}\n  fix: {} (`obra doctor` checks it)",
            agent.name(),
            health_error(cause.as_ref()),
            agent_fix(agent.name())
        ),
    }
    Ok(())
}

/// Which protection the agent's programs get here, and why when the kernel gives none.
fn sandbox_check(
    config: &crate::config::Config,
    spec: Option<&crate::sandbox::SandboxSpec>,
    root: &std::path::Path,
    remote: bool,
) -> Check {
    use crate::sandbox::{Enforcement, SandboxMode};
    let Some(spec) = spec else {
        return Check::warn(
            "sandbox",
            "off (sandbox.mode: off): the agent can rewrite .obra/ and .git/, and its processes can outlive it",
            "set sandbox.mode: auto",
        );
    };
    let mut detail = spec.describe(root);
    if remote {
        detail = format!(
            "the agent runs over {}: {detail} applies to the programs run here; \
                          on the remote machine protected paths are checked after each run",
            format!("{:?}", config.agent.transport.kind).to_lowercase()
        );
    }
    for note in &spec.notes {
        detail.push_str(&format!("; {note}"));
    }
    match (spec.enforcement(), config.sandbox.mode) {
        (Enforcement::Kernel, _) => Check::ok("sandbox", detail),
        (Enforcement::DetectOnly, SandboxMode::Kernel) => {
            Check::fail("sandbox", detail, "enable user namespaces, run on Linux, or set sandbox.mode: auto")
        }
        (Enforcement::DetectOnly, SandboxMode::Detect) => Check::ok("sandbox", detail),
        (Enforcement::DetectOnly, _) => Check::warn(
            "sandbox",
            detail,
            "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) for kernel protection",
        ),
    }
}

/// Whether each configured plugin has every capability its manifest asks for (what it lacks is refused at the
/// first use, with the config line to add).
fn grants(host: &crate::plugins::PluginHost, plugins: &crate::engine::LoopPlugins) -> Check {
    let mut names = vec![plugins.agent.name().to_string()];
    names.extend(plugins.llm.iter().map(|l| l.name().to_string()));
    names.extend(plugins.gates.iter().map(|(_, g)| g.name().to_string()));
    names.extend(plugins.rules.iter().map(|(_, r)| r.name().to_string()));
    let infos: Vec<_> = names.iter().filter_map(|n| host.info(n)).collect();
    let refused: Vec<String> =
        infos.iter().flat_map(|i| i.grant.refused.iter().map(move |r| format!("{}: {r}", i.name))).collect();
    if refused.is_empty() {
        Check::ok("grants", format!("the {} configured plugin(s) have every capability they ask for", infos.len()))
    } else {
        Check::warn(
            "grants",
            format!("not granted (refused when used): {}", refused.join("; ")),
            "if you trust the plugin, add what is named to plugins.grants.<plugin> (`obra plugin info NAME`)",
        )
    }
}

fn agent_fix(agent: &str) -> String {
    match agent {
        "claude-code" => "install Claude Code (`npm install -g @anthropic-ai/claude-code`), make sure `claude` is on \
                          PATH, and log in (`claude`) or set ANTHROPIC_API_KEY"
            .into(),
        "codex" => "install the Codex CLI (`npm install -g @openai/codex`), make sure `codex` is on PATH, and run \
                    `codex login` or set OPENAI_API_KEY"
            .into(),
        "aider" => "install Aider (`python3 -m pip install aider-chat`, or tests/install-agent-clis.sh), make sure \
                    `aider` is on PATH, and set the model provider's API key (e.g. OPENAI_API_KEY)"
            .into(),
        "command" => {
            "set agents.command.program and grant it in plugins.grants.command.commands (docs/agents.md)".into()
        }
        other => format!("check the {other} plugin's program and its grant (plugins.grants.{other})"),
    }
}

/// Whether the grants and pins the project's own files set are approved (ADR 34).
fn trust(obra: &Orchestrator) -> Check {
    match obra.trust_status() {
        Ok(status) if status.is_trusted() => Check::ok("project grants", status.summary()),
        Ok(status) => Check::fail(
            "project grants",
            status.summary(),
            "review what `obra config trust` shows it approves; runs are refused until you do",
        ),
        Err(e) => Check::fail("project grants", format!("{e:#}"), "fix the trust store the message names"),
    }
}

async fn store(obra: &Orchestrator) -> Check {
    let state = obra.state();
    match (state.schema_level().await, state.tasks(obra.project().id).await) {
        (Ok(level), Ok(tasks)) => Check::ok(
            "store",
            format!(
                "{} at {}, schema level {level}; project {} has {} task(s)",
                match state.backend() {
                    crate::state::Backend::Sqlite => "SQLite",
                    crate::state::Backend::Postgres => "PostgreSQL",
                },
                state.location(),
                obra.project().name,
                tasks.len()
            ),
        ),
        (Err(e), _) | (_, Err(e)) => {
            Check::fail("store", format!("{e:#}"), "check database.url / database.path and that the server runs")
        }
    }
}

fn workspace_git(obra: &Orchestrator) -> Check {
    match Checkpoints::open(obra.root()) {
        Ok(Some(_)) => {
            Check::ok("workspace", format!("{} is in a git repository (checkpoints work)", obra.root().display()))
        }
        Ok(None) => Check::warn(
            "workspace",
            format!("{} is not in a git repository: no checkpoints or rollback", obra.root().display()),
            "run `git init` in the project's directory",
        ),
        Err(e) => Check::fail("workspace", format!("{e:#}"), "open the project in a git working tree"),
    }
}

/// The git integration's needs (ADR 24): a repository not in the middle of a merge or rebase; one with a
/// commit for branches per task; for pull requests, the remote and a logged-in `gh`.
async fn git_integration(obra: &Orchestrator) -> Vec<Check> {
    use std::io::ErrorKind::NotFound;
    let git = &obra.config().config.git;
    let root = obra.root();
    let mut out = Vec::new();
    if let Err(e) = crate::workspace::git::ensure_not_mid_operation(root) {
        out.push(Check::fail(
            "git state",
            format!("{e:#}"),
            "finish or abort it; `obra run` refuses to start until then",
        ));
    }
    let writes = git.commit_strategy != crate::config::CommitStrategy::Manual || git.branch_per_task;
    if !writes {
        out.push(Check::ok("git integration", "git.commit_strategy: manual (Obra commits nothing)"));
        return out;
    }
    let repo = git2::Repository::discover(root);
    let Ok(repo) = repo else {
        out.push(Check::fail(
            "git integration",
            format!(
                "git.commit_strategy / git.branch_per_task need a git repository, and {} is in none",
                root.display()
            ),
            "run `git init` and commit, or set git.commit_strategy: manual",
        ));
        return out;
    };
    if git.branch_per_task && repo.head().ok().and_then(|h| h.peel_to_commit().ok()).is_none() {
        out.push(Check::fail(
            "git integration",
            "git.branch_per_task makes each task's worktree from HEAD, but the repository has no commit",
            "commit once (`git commit --allow-empty -m init`)",
        ));
        return out;
    }
    out.push(Check::ok(
        "git integration",
        format!("commits {:?}{}", git.commit_strategy, if git.branch_per_task { ", a branch per task" } else { "" }),
    ));
    if git.create_pr {
        if repo.find_remote(&git.remote).is_err() {
            out.push(Check::fail(
                "pull requests",
                format!("git.remote is {:?}, which the repository does not have", git.remote),
                format!("add it (`git remote add {} URL`) or set git.remote to one of `git remote`", git.remote),
            ));
        }
        out.push(match obra.git().gh(root, &["auth", "status"]).await {
            Ok(o) if o.status.success() => Check::ok("pull requests", "gh is installed and logged in"),
            Ok(o) => Check::warn(
                "pull requests",
                format!(
                    "gh is not logged in: {}",
                    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim()
                ),
                "run `gh auth login`; until then task branches are pushed but no pull request is opened",
            ),
            Err(e) if e.root_cause().downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == NotFound) => {
                Check::fail(
                    "pull requests",
                    "git.create_pr is on, but `gh` is not on PATH",
                    "install GitHub's CLI (https://cli.github.com) or set git.create_pr: false",
                )
            }
            // It did not answer within git.command_timeout_secs, or could not be started.
            Err(e) => Check::fail(
                "pull requests",
                format!("{e:#}"),
                "check `gh auth status` by hand, or set git.create_pr: false",
            ),
        });
    }
    out
}

/// Whether git runs (with the default time limit: no project's configuration is read yet).
async fn git_binary() -> Check {
    let git = crate::workspace::git::Git::from_config(&crate::config::GitConfig::default());
    let here = std::env::temp_dir();
    match git.run(&here, &["--version"]).await {
        Ok(out) if out.status.success() => Check::ok("git", String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(out) => Check::warn(
            "git",
            format!("`git --version` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            "reinstall git",
        ),
        Err(e) => {
            Check::warn("git", format!("git does not run: {e:#}"), "install git (the tests gate and agents use it)")
        }
    }
}

fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark}  {:<22} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      {:<22} fix: {fix}", "");
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    let _ = writeln!(
        out,
        "\n{}",
        match (failed, warned) {
            (0, 0) => "Everything obra needs is in place.".to_string(),
            (0, w) => format!("Ready, with {w} warning(s)."),
            (f, _) => format!("{f} check(s) failed: fix them before `obra run`."),
        }
    );
    out
}
