//! The agent conformance harness: six scenarios every agent plugin must pass through its REAL client program, so
//! that switching `agent.plugin` changes nothing else. A driver (one file per agent beside this one) knows how to
//! wire its CLI to a scripted fake model server and how to provoke each scenario; the harness writes the rest of
//! the config, runs the task through the `obra` binary, and checks the same things for every agent.

use std::any::Any;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Project, text};

/// The file the agent must write in [`Scenario::Success`], and its exact content.
pub const SUCCESS_FILE: &str = "hello.txt";
/// The content of [`SUCCESS_FILE`], byte for byte.
pub const SUCCESS_CONTENT: &str = "hello from conformance\n";
/// The agent's wall-clock limit in [`Scenario::Timeout`], in seconds.
pub const TIMEOUT_SECS: u64 = 6;
/// How long a hanging fake model server holds its reply: longer than any scenario waits.
pub const HANG: Duration = Duration::from_secs(90);
/// The `retry-after` (seconds) a driver's fake sends with its 429 in [`Scenario::RateLimit`].
pub const RETRY_AFTER_SECS: u64 = 120;

/// One situation every agent must handle the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The model makes the agent write [`SUCCESS_FILE`] with [`SUCCESS_CONTENT`] through a real tool call of the
    /// CLI, then says it is done: the run is a success and the task completes.
    Success,
    /// The model API answers a non-retryable error (e.g. HTTP 400 or 500): the run is not a success.
    Failure,
    /// The model server hangs: the agent is stopped at `agent.timeout_secs` ([`TIMEOUT_SECS`]).
    Timeout,
    /// The model API answers 429 with `retry-after: RETRY_AFTER_SECS`: the run is rate limited and the task
    /// waits for the reset instead of failing.
    RateLimit,
    /// The model server hangs and the harness SIGKILLs the agent's process tree: the run crashed.
    Crash,
    /// The agent's output cannot be understood (the driver provokes this its own realistic way): the run is
    /// never taken for a success.
    Garbage,
}

/// What a driver prepared for one scenario.
pub struct Arranged {
    /// The project, with the environment the CLI needs (`Project::set_env`): PATH to the pinned CLI, a
    /// hermetic HOME, the fake server's URL, dummy keys.
    pub project: Project,
    /// Top-level YAML added to the harness's config: the agent's section under `agents:` and its grants
    /// under `plugins:` (not `agent:`, `llm:`, `engine:` or `gates:`, which the harness writes).
    pub config_yaml: String,
    /// YAML added under `agent:`, indented by two spaces (e.g. `  transport: ...`); usually empty.
    pub agent_yaml: String,
    /// The names of the variables set for `obra` (for grants of agents that pass variables by name).
    pub env_names: Vec<String>,
    /// Keeps the fake servers (and anything else) alive until the scenario ends.
    pub keep_alive: Box<dyn Any>,
    /// How many requests the fake model server has received so far: the harness waits for the first one
    /// before it kills the agent in [`Scenario::Crash`].
    pub model_requests: Box<dyn Fn() -> usize>,
}

/// An agent under test.
pub trait AgentDriver {
    /// The agent plugin's name, as in `agent.plugin`.
    const PLUGIN: &'static str;
    /// Prepare a project for `scenario`, with the fake model scripted for it. `None` when the agent's CLI is
    /// not installed and this is not CI (the driver prints why); in CI a missing CLI must fail the test.
    fn arrange(scenario: Scenario) -> Option<Arranged>;
}

/// What one scenario's run left behind.
pub struct Ran {
    /// `obra task execute`'s exit code.
    pub exit_code: Option<i32>,
    /// `obra task show --json` afterwards.
    pub shown: Value,
    /// The project (for file checks).
    pub project: Project,
    /// stdout and stderr of `obra task execute`, for messages.
    pub output: String,
}

impl Ran {
    /// The one stored interaction of the task (panics, naming the scenario, unless there is exactly one).
    pub fn interaction(&self) -> &Value {
        let runs = self.shown["interactions"].as_array().expect("task show lists interactions");
        assert_eq!(runs.len(), 1, "exactly one agent run is stored, none lost or repeated: {}", self.shown);
        &runs[0]["interaction"]
    }

    /// The stored outcome of the run, e.g. `success` or `rate-limited`.
    pub fn outcome(&self) -> &str {
        self.interaction()["outcome"].as_str().unwrap_or("")
    }

    /// The task's status after the run.
    pub fn task_status(&self) -> &str {
        self.shown["task"]["status"].as_str().unwrap_or("")
    }
}

/// Run `scenario` against agent `D` and check what every agent must do in it.
pub fn check<D: AgentDriver>(scenario: Scenario) {
    let Some(arranged) = D::arrange(scenario) else { return };
    let ran = run::<D>(scenario, arranged);
    let plugin = D::PLUGIN;
    let context = || format!("{plugin} in {scenario:?}\n{}\n--- task show\n{:#}", ran.output, ran.shown);
    let outcome = ran.outcome().to_string();
    eprintln!(
        "conformance: {plugin} {scenario:?}: outcome {outcome}, task {}, exit {:?}",
        ran.task_status(),
        ran.exit_code
    );
    let summary = ran.interaction()["summary"].as_str().unwrap_or("").to_string();
    match scenario {
        Scenario::Success => {
            assert_eq!(outcome, "success", "{}", context());
            assert_eq!(ran.exit_code, Some(0), "{}", context());
            assert_eq!(ran.task_status(), "completed", "{}", context());
            let written = std::fs::read_to_string(ran.project.path().join(SUCCESS_FILE))
                .unwrap_or_else(|e| panic!("{SUCCESS_FILE} was not written ({e}): {}", context()));
            assert_eq!(written, SUCCESS_CONTENT, "{}", context());
            let changes = ran.shown["interactions"][0]["changes"].as_array().cloned().unwrap_or_default();
            assert!(
                changes.iter().any(|c| c["path"] == SUCCESS_FILE && c["kind"] == "created"),
                "the change is recorded against the run: {}",
                context()
            );
        }
        Scenario::Failure => {
            assert!(["api-error", "crashed"].contains(&outcome.as_str()), "{}", context());
            assert!(!summary.trim().is_empty(), "a failed run says why: {}", context());
            assert_ne!(ran.task_status(), "completed", "{}", context());
            assert_ne!(ran.exit_code, Some(0), "{}", context());
        }
        Scenario::Timeout => {
            assert_eq!(outcome, "timeout", "{}", context());
            assert_ne!(ran.task_status(), "completed", "{}", context());
            let ms = ran.interaction()["duration_ms"].as_i64().unwrap_or(0);
            assert!(ms >= (TIMEOUT_SECS * 1000 - 500) as i64, "the agent ran up to its limit, {ms} ms: {}", context());
        }
        Scenario::RateLimit => {
            assert_eq!(outcome, "rate-limited", "{}", context());
            assert_eq!(ran.task_status(), "pending", "a rate limit waits for its reset, not a failure: {}", context());
            assert!(
                ran.shown["task"]["resume_after"].as_str().is_some_and(|s| !s.is_empty()),
                "the task knows when to resume: {}",
                context()
            );
        }
        Scenario::Crash => {
            assert_eq!(outcome, "crashed", "{}", context());
            assert_ne!(ran.task_status(), "completed", "{}", context());
            assert!(!summary.trim().is_empty(), "a crash says what happened: {}", context());
        }
        Scenario::Garbage => {
            assert!(["unparseable", "api-error", "crashed"].contains(&outcome.as_str()), "{}", context());
            assert_ne!(ran.task_status(), "completed", "garbage is never taken for success: {}", context());
        }
    }
}

/// Write the harness's config around the driver's, create the task and execute it (killing the agent in
/// [`Scenario::Crash`]).
fn run<D: AgentDriver>(scenario: Scenario, arranged: Arranged) -> Ran {
    let Arranged { project, config_yaml, agent_yaml, keep_alive, model_requests, .. } = arranged;
    let timeout_secs = if scenario == Scenario::Timeout { TIMEOUT_SECS } else { 120 };
    project.write_config(&format!(
        r#"agent:
  plugin: {plugin}
  timeout_secs: {timeout_secs}
{agent_yaml}
llm:
  provider: none
engine:
  max_iterations: 1
  retry:
    max_attempts: 1
    base_delay_ms: 50
    max_delay_ms: 1000
    jitter: 0.0
gates:
  - plugin: response-format
{config_yaml}
"#,
        plugin = D::PLUGIN
    ));
    let id = project.create_task(
        "Write hello.txt",
        &format!("Create the file {SUCCESS_FILE} containing exactly the line 'hello from conformance'."),
    );
    let args = ["task", "execute", &id.to_string()];
    let (exit_code, output) = if scenario == Scenario::Crash {
        let child = project.command(&args).stdout(std::process::Stdio::piped()).spawn().expect("start obra");
        let deadline = Instant::now() + Duration::from_secs(60);
        while model_requests() == 0 {
            assert!(Instant::now() < deadline, "{}: the agent never reached the model server", D::PLUGIN);
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = kill_descendants(child.id());
        assert!(!killed.is_empty(), "{}: obra has no agent process to kill", D::PLUGIN);
        let out = child.wait_with_output().expect("wait for obra");
        (out.status.code(), format!("killed pids {killed:?}\n{}", text(&out)))
    } else {
        let out = project.obra(&args);
        (out.status.code(), text(&out))
    };
    drop(keep_alive);
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    Ran { exit_code, shown, project, output }
}

/// SIGKILL every descendant of `pid` (not `pid` itself); returns the pids killed.
fn kill_descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The parent pid is the second field after the parenthesised command name.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((child, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(child, _)| *child));
        i += 1;
    }
    let victims: Vec<u32> = tree.into_iter().skip(1).collect();
    if !victims.is_empty() {
        let mut kill = Command::new("kill");
        kill.arg("-KILL").args(victims.iter().map(u32::to_string));
        let _ = kill.status();
    }
    victims
}

/// One test per scenario for an agent driver: `conformance_suite!(claude_code, claude::Claude);`.
macro_rules! conformance_suite {
    ($name:ident, $driver:ty) => {
        mod $name {
            use crate::harness::{Scenario, check};

            #[test]
            fn writes_a_file_and_the_task_completes() {
                check::<$driver>(Scenario::Success);
            }

            #[test]
            fn a_model_api_error_is_a_failed_run() {
                check::<$driver>(Scenario::Failure);
            }

            #[test]
            fn a_hanging_model_is_stopped_at_the_agent_timeout() {
                check::<$driver>(Scenario::Timeout);
            }

            #[test]
            fn a_rate_limit_waits_for_its_reset() {
                check::<$driver>(Scenario::RateLimit);
            }

            #[test]
            fn a_killed_agent_is_a_crash() {
                check::<$driver>(Scenario::Crash);
            }

            #[test]
            fn garbage_output_is_never_a_success() {
                check::<$driver>(Scenario::Garbage);
            }
        }
    };
}
