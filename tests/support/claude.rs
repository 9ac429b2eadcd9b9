//! Find the pinned Claude Code CLI and prepare a hermetic environment to run it against a fake server.
//!
//! The version is pinned in `tests/agent-cli-versions.env`; `tests/install-agent-clis.sh` installs it into
//! `$OBRA_TOOLS_DIR` (default `<repo>/target/agent-clis`). Lookup order:
//! 1. `$OBRA_CLAUDE_BIN` (used as is, whatever its version);
//! 2. `$OBRA_TOOLS_DIR/bin/claude` or `<repo>/target/agent-clis/bin/claude`, if it is the pinned version;
//! 3. `claude` on `PATH`, if `claude --version` reports the pinned version.
//!
//! ```no_run
//! use obra_testkit::{AnthropicReply, FakeAnthropic, require_claude};
//! // None only when OBRA_TEST_SKIP opts out of this CLI (the skip is recorded); otherwise it panics.
//! let Some(cli) = require_claude() else { return };
//! let fake = FakeAnthropic::start([AnthropicReply::text("hello")]);
//! let env = cli.env(&fake.base_url());
//! let out = env.run_print("say hello", &[]);
//! assert_eq!(out.result().unwrap()["subtype"], "success");
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const VERSIONS_FILE: &str = include_str!("../agent-cli-versions.env");

/// How long [`ClaudeEnv::run`] lets the CLI run before killing it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn pinned(key: &str) -> &'static str {
    VERSIONS_FILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("tests/agent-cli-versions.env has no {key}= line"))
}

/// The pinned Claude Code version (from `tests/agent-cli-versions.env`), e.g. `"2.1.197"`.
pub fn pinned_version() -> &'static str {
    pinned("CLAUDE_CODE_VERSION")
}

/// The npm package of the Claude Code CLI (`@anthropic-ai/claude-code`).
pub fn package_name() -> &'static str {
    pinned("CLAUDE_CODE_PACKAGE")
}

/// The repository root (the parent of the test kit's crate directory).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The prefix the install script installs into: `$OBRA_TOOLS_DIR`, default `<repo>/target/agent-clis`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("OBRA_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target").join("agent-clis"),
    }
}

/// One line telling how to install the pinned CLI, for skip notices and CI failures.
pub fn install_hint() -> String {
    format!(
        "the Claude Code CLI {}@{} is not installed: run `{}/tests/install-agent-clis.sh` \
         (or set OBRA_CLAUDE_BIN to a claude binary)",
        package_name(),
        pinned_version(),
        repo_root().display()
    )
}

/// A located `claude` binary.
#[derive(Debug, Clone)]
pub struct ClaudeCli {
    path: PathBuf,
}

impl ClaudeCli {
    /// Find the CLI (see the module docs for the order). The result is computed once per process.
    ///
    /// # Panics
    /// When `OBRA_CLAUDE_BIN` is set to a path that is not a file.
    pub fn locate() -> Option<ClaudeCli> {
        static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
        FOUND.get_or_init(locate_uncached).clone().map(|path| ClaudeCli { path })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh environment (temporary HOME and working directory) whose CLI talks to `base_url`
    /// (e.g. [`crate::FakeAnthropic::base_url`]).
    pub fn env(&self, base_url: &str) -> ClaudeEnv {
        ClaudeEnv::new(self.path.clone(), base_url)
    }
}

fn locate_uncached() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("OBRA_CLAUDE_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "OBRA_CLAUDE_BIN={} is not a file", bin.display());
        return Some(bin);
    }
    let prefix = tools_dir();
    let bin = prefix.join("bin").join("claude");
    let package_json = prefix.join("lib").join("node_modules").join(package_name()).join("package.json");
    if bin.is_file() {
        let version = std::fs::read_to_string(&package_json)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string));
        if version.as_deref() == Some(pinned_version()) {
            return Some(bin);
        }
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("claude")).find(|p| p.is_file()))?;
    let out = Command::new(&on_path)
        .arg("--version")
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let reported = String::from_utf8_lossy(&out.stdout);
    let matches = reported.split_whitespace().next().is_some_and(|v| v == pinned_version());
    matches.then_some(on_path)
}

/// The CLI, or `None` when it is missing and `OBRA_TEST_SKIP` names `claude` (the skip is recorded).
///
/// # Panics
/// When the CLI is missing and the user did not opt out: the message says how to install it.
pub fn require_claude() -> Option<ClaudeCli> {
    let found = ClaudeCli::locate();
    if found.is_none() {
        crate::requirements::missing("claude", &install_hint());
    }
    found
}

/// A hermetic environment for one run (or several) of the CLI: a temporary HOME, a temporary working
/// directory and the environment variables that point the CLI at a fake server. Both directories are
/// deleted when this is dropped.
#[derive(Debug)]
pub struct ClaudeEnv {
    bin: PathBuf,
    home: TempDir,
    workdir: TempDir,
    vars: Vec<(String, String)>,
}

impl ClaudeEnv {
    fn new(bin: PathBuf, base_url: &str) -> ClaudeEnv {
        let home = tempfile::Builder::new().prefix("obra-claude-home-").tempdir().expect("create a temporary HOME");
        let workdir = tempfile::Builder::new()
            .prefix("obra-claude-work-")
            .tempdir()
            .expect("create a temporary working directory");
        let home_str = home.path().display().to_string();
        let mut vars: Vec<(String, String)> = vec![
            ("HOME".into(), home_str.clone()),
            ("CLAUDE_CONFIG_DIR".into(), format!("{home_str}/.claude")),
            ("ANTHROPIC_BASE_URL".into(), base_url.trim_end_matches('/').to_string()),
            ("ANTHROPIC_API_KEY".into(), "obra-testkit-dummy-api-key".into()),
            // One request per scripted reply: no silent retries that would eat the script.
            ("CLAUDE_CODE_MAX_RETRIES".into(), "0".into()),
            // No telemetry, error reporting, update checks or other calls to real Anthropic hosts.
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(), "1".into()),
            ("DISABLE_AUTOUPDATER".into(), "1".into()),
            ("DISABLE_TELEMETRY".into(), "1".into()),
            ("DISABLE_ERROR_REPORTING".into(), "1".into()),
            // Tests run as root: --dangerously-skip-permissions / bypassPermissions are refused as root
            // unless the CLI is told it is inside a sandbox.
            ("IS_SANDBOX".into(), "1".into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            ("TERM".into(), "dumb".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        for (key, default) in [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("LANG", "C.UTF-8")] {
            let value = std::env::var(key).unwrap_or_else(|_| default.to_string());
            vars.push((key.into(), value));
        }
        if Path::new("/bin/bash").is_file() {
            vars.push(("SHELL".into(), "/bin/bash".into()));
        }
        ClaudeEnv { bin, home, workdir, vars }
    }

    /// The `claude` binary this environment runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The temporary HOME (the CLI keeps its config and session transcripts under `HOME/.claude`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The temporary working directory [`ClaudeEnv::command`] runs the CLI in; relative paths in tool calls
    /// resolve against it.
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// The complete environment for the CLI, meant to be applied to an EMPTY environment (so that no
    /// credentials or proxies of the calling process leak in): HOME, CLAUDE_CONFIG_DIR, ANTHROPIC_BASE_URL,
    /// ANTHROPIC_API_KEY (dummy), CLAUDE_CODE_MAX_RETRIES=0, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1,
    /// DISABLE_AUTOUPDATER=1, DISABLE_TELEMETRY=1, DISABLE_ERROR_REPORTING=1, IS_SANDBOX=1, NO_PROXY, TERM,
    /// NO_COLOR, PATH, LANG, SHELL.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// Set (or replace) one environment variable for the CLI.
    pub fn set_var(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((key, value)),
        }
    }

    /// Remove one environment variable (e.g. `IS_SANDBOX`, to see the CLI refuse to bypass permissions as
    /// root).
    pub fn remove_var(&mut self, key: &str) {
        self.vars.retain(|(k, _)| k != key);
    }

    /// A `Command` for the CLI with a cleared environment plus [`ClaudeEnv::vars`], the working directory
    /// [`ClaudeEnv::workdir`] and stdin from `/dev/null` (an open stdin pipe makes the CLI wait 3 s for
    /// input). Add arguments and run it; for async code use `tokio::process::Command::from(env.command())`.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear().envs(self.vars.iter().map(|(k, v)| (k, v))).current_dir(self.workdir()).stdin(Stdio::null());
        cmd
    }

    /// The arguments for a headless run with machine-readable output:
    /// `-p PROMPT --output-format stream-json --verbose`.
    pub fn print_args(prompt: &str) -> Vec<String> {
        ["-p", prompt, "--output-format", "stream-json", "--verbose"].into_iter().map(str::to_string).collect()
    }

    /// Run `claude -p PROMPT --output-format stream-json --verbose EXTRA...` and capture its output.
    pub fn run_print(&self, prompt: &str, extra: &[&str]) -> ClaudeOutput {
        let mut args = ClaudeEnv::print_args(prompt);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.run(&args)
    }

    /// Run `claude ARGS...` (see [`ClaudeEnv::command`]) to completion, killing it after [`RUN_TIMEOUT`].
    /// Blocking; safe to call from a tokio test because the fake servers run on their own threads.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> ClaudeOutput {
        let mut child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + RUN_TIMEOUT;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for claude") {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait for killed claude");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        ClaudeOutput {
            exit_code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
        }
    }
}

/// What one run of the CLI printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ClaudeOutput {
    /// The exit code (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// Everything printed on stdout (JSON lines with `--output-format stream-json`).
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
    /// Whether the run was killed after [`RUN_TIMEOUT`].
    pub timed_out: bool,
}

impl ClaudeOutput {
    /// The stdout lines that parse as JSON (the stream-json events), in order.
    pub fn events(&self) -> Vec<Value> {
        self.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The last `{"type":"result", ...}` event, if any.
    pub fn result(&self) -> Option<Value> {
        self.events().into_iter().rev().find(|e| e["type"] == "result")
    }
}
