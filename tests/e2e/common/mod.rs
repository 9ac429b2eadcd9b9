//! Helpers shared by the end-to-end tests: a scratch project (a git repository with `.obra/`) and a way to
//! run the real `obra` binary in it with a hermetic HOME.

#![allow(dead_code)]

pub mod claude;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The `obra` binary under test: the one named by `$OBRA_BIN` when it is set (e.g. a release build, as `.ci/run`
/// runs the hostile suite), else the one cargo built for these tests.
pub fn obra_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("OBRA_BIN") {
        Ok(bin) if !bin.is_empty() => {
            let path = std::fs::canonicalize(&bin).unwrap_or_else(|e| panic!("OBRA_BIN={bin}: {e}"));
            assert!(path.is_file(), "OBRA_BIN={bin} names no file");
            path.display().to_string()
        }
        _ => env!("CARGO_BIN_EXE_obra").to_string(),
    })
}

/// The directory where `host/build.rs` put every built plugin (built-ins and test plugins), one per name.
pub fn built_plugins_dir() -> PathBuf {
    PathBuf::from(env!("OBRA_BUILT_PLUGINS_DIR"))
}

/// A compile cache shared by all tests of a run, so each component is compiled once.
pub fn shared_cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("obra-e2e-cache");
    std::fs::create_dir_all(&dir).expect("create the shared compile cache dir");
    dir
}

/// A scratch project: a temporary git repository, a temporary HOME, and `obra init` done.
pub struct Project {
    dir: TempDir,
    home: TempDir,
    env: Vec<(String, String)>,
}

impl Project {
    /// A new git repository with one commit and `obra init` run in it.
    pub fn new() -> Project {
        let project = Project::uninitialised();
        project.git(&["init", "-q"]);
        std::fs::write(project.path().join("README.md"), "# scratch\n").unwrap();
        project.git(&["add", "."]);
        project.git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]);
        let out = project.obra(&["init", "--name", "scratch"]);
        assert!(out.status.success(), "obra init failed: {}", text(&out));
        project
    }

    /// A project (as [`Project::new`]) whose agent is echo-agent (changes nothing, reports the prompt's size),
    /// with no LLM, one iteration, the response-format gate and a tests gate running `gate_command`, and
    /// `rules` (YAML list items, or `  []`) as the breakpoint rules.
    pub fn with_echo_agent(gate_command: &str, rules: &str) -> Project {
        let project = Project::new();
        project.install_plugin("echo-agent");
        let gate_command = serde_json::to_string(gate_command).unwrap();
        project.write_config(&format!(
            r#"agent:
  plugin: echo-agent
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: {gate_command}
rules:
{rules}
plugins:
  grants:
    echo-agent:
      commands: [ {{ program: echo, args: ["**"] }} ]
      workspace: write
"#
        ));
        project
    }

    /// A temporary directory that is not a project yet.
    pub fn uninitialised() -> Project {
        let dir = tempfile::Builder::new().prefix("obra-e2e-").tempdir().unwrap();
        let home = tempfile::Builder::new().prefix("obra-e2e-home-").tempdir().unwrap();
        let env = vec![
            ("HOME".to_string(), home.path().display().to_string()),
            ("XDG_CONFIG_HOME".to_string(), home.path().join(".config").display().to_string()),
            ("XDG_DATA_HOME".to_string(), home.path().join(".local/share").display().to_string()),
            ("XDG_CACHE_HOME".to_string(), shared_cache_dir().display().to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        Project { dir, home, env }
    }

    /// The project root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The temporary HOME of the project's `obra` runs (user profiles go in `.config/obra/profiles/`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Add an environment variable for every later `obra` run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Write `.obra/config.yaml`; when it grants capabilities or pins plugins, approve it with `obra config
    /// trust` as the user who wrote it would (a config that does not load is left for the test to see).
    pub fn write_config(&self, yaml: &str) {
        self.write_config_untrusted(yaml);
        if yaml.contains("grants:") || yaml.contains("pins:") {
            self.obra(&["config", "trust"]);
        }
    }

    /// Write `.obra/config.yaml` without approving its grants: runs refuse to start until `obra config trust`.
    pub fn write_config_untrusted(&self, yaml: &str) {
        std::fs::create_dir_all(self.path().join(".obra")).unwrap();
        std::fs::write(self.path().join(".obra/config.yaml"), yaml).unwrap();
    }

    /// Write a `.obra/config.yaml` for the replay agent playing `recording`, without an LLM, one iteration per
    /// task, and a `tests` gate running `gate_command`.
    pub fn write_replay_config(&self, recording: &serde_json::Value, gate_command: &str) {
        self.write_config(&format!(
            "agent:\n  plugin: replay\nagents:\n  replay:\n    recording: {recording}\nllm:\n  provider: none\n\
             engine:\n  max_iterations: 1\ngates:\n  - plugin: tests\n    enabled: true\n    config:\n      \
             command: {gate_command}\n"
        ));
    }

    /// Copy a built plugin (by name) into the project's `.obra/plugins/`.
    pub fn install_plugin(&self, name: &str) {
        let from = built_plugins_dir().join(name);
        let to = self.path().join(".obra/plugins").join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    /// Run `obra` in the project.
    pub fn obra(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(obra_bin());
        cmd.current_dir(self.path()).args(args).stdin(std::process::Stdio::null());
        cmd.env_remove("OBRA_PROFILE").env_remove("OBRA_PROJECT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run obra")
    }

    /// An `obra` command set up to run in the project (its environment, its directory), not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(obra_bin());
        cmd.current_dir(self.path()).args(args);
        cmd.env_remove("OBRA_PROFILE").env_remove("OBRA_PROJECT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run `obra ... --json` and parse stdout, asserting the exit code.
    pub fn obra_json(&self, args: &[&str], expect_code: i32) -> serde_json::Value {
        let out = self.obra(args);
        assert_eq!(out.status.code(), Some(expect_code), "obra {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("obra {args:?} printed no JSON ({e}): {}", text(&out)))
    }

    /// Create a task and return its id.
    pub fn create_task(&self, title: &str, description: &str) -> i64 {
        let v = self.obra_json(&["task", "create", title, "--description", description, "--json"], 0);
        v["id"].as_i64().unwrap()
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git").current_dir(self.path()).args(args).status().expect("run git");
        assert!(status.success(), "git {args:?} failed");
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The head of one HTTP/1.1 request (request line and header lines, each with its CRLF) read from `reader`, up to
/// the blank line that ends it or the end of the stream; for the test servers that play a plugin's origin.
pub fn read_request_head(reader: &mut impl std::io::BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}
