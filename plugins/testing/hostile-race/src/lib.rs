//! Hostile test plugin `hostile-race` for the hostile suite (tests/e2e/hostile_suite.rs), class (a): the
//! check-then-open race. While the test swaps the workspace directory `dir` with a symbolic link to a directory
//! outside the workspace (`renameat2(RENAME_EXCHANGE)` in a loop, from another thread), this agent reads, lists,
//! writes and removes in `dir` for `rounds` rounds, and runs `cat <file>` with `dir` as its working directory
//! until `process_rounds` runs got past the host's check of `dir` (the child enters it later: the race's window).
//! Each access is counted by where it landed:
//!
//! - `inside`: it saw the workspace's directory (the file begins with `inside`, the listing lacks `outside_only`);
//! - `outside`: it saw the outside directory (an escape; the first one is kept in `outside_example`);
//! - `refused`: the host refused it (`denied`), e.g. because `dir` was a symbolic link at that moment;
//! - `failed`: any other error (the first is kept in `failed_example`);
//! - `done`: a write or removal that succeeded; whether it landed outside only the test can tell, by looking at
//!   the outside directory.
//!
//! Last, it runs `touch <touched>` with its working directory in `.git/`, `.obra/` and `git_link` (a link to
//! `.git`): a program started there would sit beneath the read-only mounts the sandbox lays over them.
//!
//! The summary is one JSON object: `{"rounds": N, "read": {...}, "list": {...}, "write": {...}, "remove": {...},
//! "cwd": {...}, "protected_cwd": {...}, "elapsed_ms": N}`.

use std::time::Instant;

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, process, workspace};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The plugin's configuration (the test's `agents.hostile-race` section).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The workspace directory the test keeps swapping with a link to outside.
    dir: String,
    /// A file in `dir`: inside the workspace its text begins with `inside`, outside it does not.
    file: String,
    /// A name only the outside directory holds: a listing that shows it listed outside.
    outside_only: String,
    /// How many rounds of read, list, write and remove.
    rounds: u32,
    /// How many runs of `cat <file>` in `dir` must get past the host's check of the directory (refused runs
    /// do not count; at most 100 times as many are tried).
    process_rounds: u32,
    /// A relative link to `.git` the test made.
    git_link: String,
    /// The file `touch` tries to create in the protected working directories.
    touched: String,
}

/// Where the accesses of one kind landed (see the module documentation).
#[derive(Default, Serialize)]
struct Tally {
    /// Accesses that saw the workspace's directory.
    inside: u32,
    /// Accesses that saw the outside directory: escapes.
    outside: u32,
    /// Accesses the host refused.
    refused: u32,
    /// Accesses that failed otherwise.
    failed: u32,
    /// Writes or removals that succeeded (the test judges where they landed).
    done: u32,
    /// The first refusal, as the host worded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused_example: Option<String>,
    /// The first other failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_example: Option<String>,
    /// What the first escape saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    outside_example: Option<String>,
}

impl Tally {
    /// Count an error: a refusal or another failure.
    fn error(&mut self, e: PluginError) {
        match e {
            PluginError::Denied(message) => {
                self.refused += 1;
                self.refused_example.get_or_insert(message);
            }
            other => {
                self.failed += 1;
                self.failed_example.get_or_insert(other.to_string());
            }
        }
    }

    /// Count an access that saw the outside directory.
    fn escaped(&mut self, what: String) {
        self.outside += 1;
        self.outside_example.get_or_insert(what);
    }

    /// Count a write or removal by its result.
    fn done(&mut self, result: Result<(), PluginError>) {
        match result {
            Ok(()) => self.done += 1,
            Err(e) => self.error(e),
        }
    }
}

/// What the run found, one tally per kind of access.
#[derive(Default, Serialize)]
struct Report {
    /// Rounds of read, list, write and remove made.
    rounds: u32,
    /// `workspace::read` of `dir/file`.
    read: Tally,
    /// `workspace::list_dir` of `dir`.
    list: Tally,
    /// `workspace::write` of `dir/written-<n>.txt`.
    write: Tally,
    /// `workspace::remove` of `dir/victim.txt` (written just before).
    remove: Tally,
    /// `cat <file>` with `dir` as its working directory.
    cwd: Tally,
    /// `touch` started with its working directory in `.git/`, `.obra/` or a link to `.git/` (programs started
    /// there would sit beneath the sandbox's read-only mounts): what each gave.
    protected_cwd: Map<String, Value>,
    /// How long the rounds took.
    elapsed_ms: u64,
}

/// One round of the four workspace accesses.
fn round(cfg: &Config, i: u32, report: &mut Report) {
    let file = format!("{}/{}", cfg.dir, cfg.file);
    match workspace::read(&file) {
        Ok(bytes) if bytes.starts_with(b"inside") => report.read.inside += 1,
        Ok(bytes) => report.read.escaped(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => report.read.error(e),
    }
    match workspace::list_dir(&cfg.dir) {
        Ok(entries) if entries.iter().any(|e| e.name == cfg.outside_only) => {
            report.list.escaped(entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(" "))
        }
        Ok(_) => report.list.inside += 1,
        Err(e) => report.list.error(e),
    }
    let written = format!("{}/written-{}.txt", cfg.dir, i % 4);
    report.write.done(workspace::write(&written, format!("written by hostile-race in round {i}\n").as_bytes()));
    let victim = format!("{}/victim.txt", cfg.dir);
    // Made inside for the removal to find; when `dir` is a link at that moment the write is refused, and the
    // removal is tried anyway (neither may reach outside).
    let _ = workspace::write(&victim, b"inside: a victim hostile-race made\n");
    report.remove.done(workspace::remove(&victim));
}

/// One run of `cat <file>` in `dir`: the working directory is checked by the host, then handed to the child.
fn cat_in_dir(cfg: &Config, report: &mut Report) {
    match process::command("cat").arg(&cfg.file).cwd(&cfg.dir).run() {
        Ok(out) if out.stdout.starts_with("inside") => report.cwd.inside += 1,
        Ok(out) if out.success() => report.cwd.escaped(out.stdout),
        Ok(out) => {
            report.cwd.failed += 1;
            report.cwd.failed_example.get_or_insert(format!("exit {:?}: {}", out.exit_code, out.stderr.trim_end()));
        }
        Err(e) => report.cwd.error(e),
    }
}

/// `touch <name>` in each protected working directory, as `"denied: ..."`, `"error: ..."` or `"ran: exit N"`.
fn protected_cwd(cfg: &Config) -> Map<String, Value> {
    let mut tries = Map::new();
    for dir in [".git", ".obra", &cfg.git_link] {
        let got = match process::command("touch").arg(&cfg.touched).cwd(dir).run() {
            Ok(out) => format!("ran: exit {:?} {}", out.exit_code, out.stderr.trim_end()),
            Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
            Err(e) => format!("error: {e}"),
        };
        tries.insert(dir.to_string(), Value::String(got));
    }
    tries
}

/// The agent.
struct HostileRace;

impl Agent for HostileRace {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-race".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile suite (a): accesses a directory swapped for a link to outside, counts escapes".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        let started = Instant::now();
        let mut report = Report::default();
        for i in 0..cfg.rounds {
            round(&cfg, i, &mut report);
            report.rounds += 1;
        }
        // Refusals are cheap (nothing is started): try until `process_rounds` runs got past the check.
        let mut attempts = 0;
        while report.cwd.inside + report.cwd.outside + report.cwd.failed < cfg.process_rounds
            && attempts < cfg.process_rounds.saturating_mul(100)
        {
            cat_in_dir(&cfg, &mut report);
            attempts += 1;
        }
        report.protected_cwd = protected_cwd(&cfg);
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        let summary = serde_json::to_string(&report)?;
        Ok(RunResult::new(Outcome::Success, summary))
    }
}

export_agent!(HostileRace);
