//! Hostile test plugin `hostile-options` for the hostile suite (tests/e2e/hostile_suite.rs), class (d): options
//! smuggled through the wildcards of a command grant. Its manifest asks for `git log -**` and `git diff -**`
//! (any arguments, options included); the user grants `git log **` and `git diff **` (any arguments but
//! options), and the narrower side must win. Config: `{"outside": DIR}`, a directory outside the workspace that
//! must stay untouched. The summary is a JSON object with one entry per try: `"denied: <the host's error>"`,
//! `"error: <error>"` or `"ran: exit <code>: <first line of output>"`; the test decides which are acceptable.
//!
//! The tries: `git log` and `git diff` with `--output=DIR/x` (and `--output DIR/x`, and after a revision),
//! `-c core.pager=...` (after and before the subcommand), `--exec=`, `--upload-pack=`, `--git-dir=`,
//! `--work-tree=`, `--no-index`, `--ext-diff`, `--end-of-options`, `--`, a short option, an upper-case option,
//! `-` alone; options disguised by a leading space, a Unicode minus or a newline (which git does not take for
//! options); git's own variables set for the child (`GIT_DIR`, `GIT_CONFIG_PARAMETERS`, `GIT_EXTERNAL_DIFF`,
//! `GIT_PAGER`); the working directory `..` or `/`; and `git` by absolute path. `granted` (`git log HEAD`) must
//! run.

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, process};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The plugin's configuration (the test's `agents.hostile-options` section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// A directory outside the workspace that every try aims at.
    outside: String,
}

/// What one command gave.
fn outcome(result: Result<process::Output, PluginError>) -> Value {
    Value::String(match result {
        Ok(o) => {
            let text = if o.stdout.trim().is_empty() { &o.stderr } else { &o.stdout };
            format!("ran: exit {:?}: {}", o.exit_code, text.lines().next().unwrap_or(""))
        }
        Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
        Err(e) => format!("error: {e}"),
    })
}

/// Run `git` with `args`.
fn git(args: &[&str]) -> Value {
    outcome(process::command("git").args(args.iter().copied()).run())
}

/// Run `git` with `args` and one variable set for the child.
fn git_with(var: &str, value: &str, args: &[&str]) -> Value {
    outcome(process::command("git").args(args.iter().copied()).env(var, value).run())
}

/// Every try (see the module documentation).
fn tries(outside: &str) -> Map<String, Value> {
    let out = format!("--output={outside}/x");
    let target = format!("{outside}/x");
    let pager = format!("core.pager=touch {outside}/pager");
    let exec = format!("--exec=touch {outside}/exec");
    let upload = format!("--upload-pack=touch {outside}/upload");
    let git_dir = format!("--git-dir={outside}");
    let work_tree = format!("--work-tree={outside}");
    let mut t = Map::new();
    t.insert("granted".into(), git(&["log", "HEAD"]));
    t.insert("log --output=".into(), git(&["log", &out]));
    t.insert("log --output FILE".into(), git(&["log", "--output", &target]));
    t.insert("log REV --output=".into(), git(&["log", "HEAD", &out]));
    t.insert("diff --output=".into(), git(&["diff", &out]));
    t.insert("diff REV REV --output=".into(), git(&["diff", "HEAD", "HEAD", &out]));
    t.insert("log -c".into(), git(&["log", "-c", &pager]));
    t.insert("-c before log".into(), git(&["-c", &pager, "log"]));
    t.insert("log --exec=".into(), git(&["log", &exec]));
    t.insert("log --upload-pack=".into(), git(&["log", &upload]));
    t.insert("log --git-dir=".into(), git(&["log", &git_dir]));
    t.insert("--git-dir before log".into(), git(&[&git_dir, "log"]));
    t.insert("log --work-tree=".into(), git(&["log", &work_tree]));
    t.insert("diff --no-index".into(), git(&["diff", "--no-index", &format!("{outside}/a"), &target]));
    t.insert("diff --ext-diff".into(), git(&["diff", "--ext-diff", "HEAD"]));
    t.insert("log --end-of-options".into(), git(&["log", "--end-of-options", "HEAD"]));
    t.insert("log --".into(), git(&["log", "--", "README.md"]));
    t.insert("log -p".into(), git(&["log", "-p"]));
    t.insert("log --OUTPUT=".into(), git(&["log", &format!("--OUTPUT={outside}/x")]));
    t.insert("log -".into(), git(&["log", "-"]));
    // Not options to git either: they must not write anything, whatever the matcher says of them.
    t.insert("log ' --output='".into(), git(&["log", &format!(" {out}")]));
    t.insert("log unicode minus".into(), git(&["log", &format!("\u{2212}-output={target}")]));
    t.insert("log newline then option".into(), git(&["log", &format!("HEAD\n{out}")]));
    // git's own variables, which would redirect it as options do.
    t.insert("GIT_DIR".into(), git_with("GIT_DIR", outside, &["log", "HEAD"]));
    t.insert(
        "GIT_CONFIG_PARAMETERS".into(),
        git_with("GIT_CONFIG_PARAMETERS", &format!("'{pager}'"), &["log", "HEAD"]),
    );
    t.insert(
        "GIT_EXTERNAL_DIFF".into(),
        git_with("GIT_EXTERNAL_DIFF", &format!("touch {outside}/extdiff"), &["diff", "HEAD"]),
    );
    t.insert("GIT_PAGER".into(), git_with("GIT_PAGER", &format!("touch {outside}/pager"), &["log", "HEAD"]));
    t.insert("cwd ..".into(), outcome(process::command("git").args(["log", "HEAD"]).cwd("..").run()));
    t.insert("cwd /".into(), outcome(process::command("git").args(["log", "HEAD"]).cwd("/").run()));
    t.insert("absolute program".into(), outcome(process::command("/usr/bin/git").args(["log", "HEAD"]).run()));
    t
}

/// The agent.
struct HostileOptions;

impl Agent for HostileOptions {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-options".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile suite (d): options and git variables through wildcard grants".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        Ok(RunResult::new(Outcome::Success, json!(tries(&cfg.outside)).to_string()))
    }
}

export_agent!(HostileOptions);
