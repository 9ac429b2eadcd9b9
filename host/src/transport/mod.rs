//! Transports: where an agent's programs run. A transport is configuration of the agent (`agent.transport`),
//! not a separate agent: the agent plugin asks the `process` capability to run `claude ...` as always, the
//! grant is checked against that command, and only then does the host wrap it to run on another machine over
//! OpenSSH ([`ssh`]) or in a container through the Docker CLI ([`docker`]). Local runs are not wrapped.

pub mod docker;
pub mod quote;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contract::PluginError;

pub use docker::{DockerConfig, DockerMode};
pub use ssh::SshConfig;

/// `agent.transport`: where the agent's programs run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// `local`, `ssh` or `docker`.
    #[serde(default)]
    pub kind: TransportKind,
    /// Variables passed through to the agent (granted and set in Obra's environment) that also travel to the
    /// remote side; variables the plugin sets itself (its config's `env`) always do.
    #[serde(default)]
    pub forward_env: Vec<String>,
    /// Settings of the `ssh` transport.
    #[serde(default)]
    pub ssh: SshConfig,
    /// Settings of the `docker` transport.
    #[serde(default)]
    pub docker: DockerConfig,
}

/// The kinds of transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// A subprocess on this machine.
    #[default]
    Local,
    /// A command on another machine through OpenSSH.
    Ssh,
    /// A command in a container through the Docker CLI.
    Docker,
}

/// A configured remote transport (the local one needs no object): how to get there and which passed-through
/// variables travel along.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    way: Way,
    forward_env: Vec<String>,
}

/// The ways to reach the other side.
#[derive(Debug, Clone, PartialEq)]
enum Way {
    /// Over OpenSSH.
    Ssh(ssh::Ssh),
    /// Through the Docker CLI.
    Docker(docker::Docker),
}

/// A command as the plugin asked for it, after every grant check.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The program the plugin runs, e.g. `claude`.
    pub program: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Variables for the remote program: the plugin's own and the forwarded ones.
    pub env: &'a [(String, String)],
    /// The local workspace root, when the call has one.
    pub workspace: Option<&'a Path>,
    /// The working directory relative to the workspace root (`""` for the root).
    pub cwd: &'a str,
    /// The host's time limit of the command.
    pub timeout: Duration,
}

/// The local command that carries an [`Invocation`] to its transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapped {
    /// The local program (`ssh`, `docker`), resolved on Obra's `PATH`.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
}

/// A problem with `agent.transport`: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportConfigError {
    /// The full key, e.g. `agent.transport.ssh.host`.
    pub key: String,
    /// What is wrong and what to write.
    pub message: String,
}

impl TransportConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        TransportConfigError { key: format!("agent.transport.{key}"), message: message.into() }
    }
}

impl std::fmt::Display for TransportConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl TransportConfig {
    /// The transport this config describes (`None` for local), or the first problem with it.
    pub fn build(&self) -> Result<Option<Transport>, TransportConfigError> {
        for (i, name) in self.forward_env.iter().enumerate() {
            if !is_env_name(name) {
                return Err(TransportConfigError::new(
                    &format!("forward_env[{i}]"),
                    format!("{name:?} is not a variable name (letters, digits and _, not starting with a digit)"),
                ));
            }
        }
        let way = match self.kind {
            TransportKind::Local => return Ok(None),
            TransportKind::Ssh => Way::Ssh(ssh::Ssh::new(&self.ssh)?),
            TransportKind::Docker => Way::Docker(docker::Docker::new(&self.docker)?),
        };
        Ok(Some(Transport { way, forward_env: self.forward_env.clone() }))
    }
}

impl Transport {
    /// Whether the passed-through variable `name` travels to the remote side (variables the plugin sets
    /// itself always do).
    pub fn forwards(&self, name: &str) -> bool {
        self.forward_env.iter().any(|n| n == name)
    }

    /// One line for messages and `obra doctor`, e.g. `ssh to dev@build-box:22`.
    pub fn describe(&self) -> String {
        match &self.way {
            Way::Ssh(s) => s.describe(),
            Way::Docker(d) => d.describe(),
        }
    }

    /// The local command that runs `inv` on the transport.
    pub fn wrap(&self, inv: &Invocation<'_>) -> Result<Wrapped, PluginError> {
        match &self.way {
            Way::Ssh(s) => s.wrap(inv),
            Way::Docker(d) => d.wrap(inv),
        }
    }

    /// Make sure the other side is reachable before a command is started (SSH retries with back-off); returns
    /// a one-line description of what answered. Errors say what to fix.
    pub async fn connect(&self) -> Result<String, PluginError> {
        match &self.way {
            Way::Ssh(s) => s.connect().await,
            Way::Docker(d) => d.connect().await,
        }
    }
}

/// Whether `name` can be an environment variable's name.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Find `program` on Obra's own `PATH`.
fn resolve_local(program: &str, fix: &str) -> Result<PathBuf, PluginError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|c| c.is_file()).ok_or_else(|| {
        PluginError::Fatal(format!("the transport needs `{program}`, which is not on Obra's PATH: {fix}"))
    })
}

/// The named variables of Obra's own environment that are set.
fn inherited(names: &[&str]) -> Vec<(String, String)> {
    names.iter().filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v))).collect()
}

/// The last non-empty lines of a program's stderr, for messages.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Run a short local command to completion (the transports' probes), killing it at `limit`.
async fn probe(program: &Path, args: &[String], env: &[(String, String)], limit: Duration) -> ProbeOutput {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Err(_) => ProbeOutput { code: None, stdout: String::new(), stderr: format!("no answer within {limit:?}") },
        Ok(Err(e)) => ProbeOutput { code: None, stdout: String::new(), stderr: e.to_string() },
        Ok(Ok(out)) => ProbeOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
    }
}

/// What a probe printed and how it exited.
struct ProbeOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> TransportConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn local_is_the_default_and_builds_nothing() {
        let cfg = config("{}");
        assert_eq!(cfg.kind, TransportKind::Local);
        assert_eq!(cfg.build().unwrap(), None);
    }

    #[test]
    fn bad_forwarded_names_are_refused_by_key() {
        let err = config("forward_env: [GOOD, 'BAD NAME']").build().unwrap_err();
        assert_eq!(err.key, "agent.transport.forward_env[1]");
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        assert!(serde_yaml::from_str::<TransportConfig>("kind: telnet").is_err());
        assert!(serde_yaml::from_str::<TransportConfig>("ssh: {hostname: x}").is_err());
    }
}
