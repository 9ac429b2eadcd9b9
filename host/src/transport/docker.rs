//! The Docker transport: run the agent's program in a container with the Docker CLI, either in a running
//! container (`docker exec`) or in a fresh one from an image with the workspace mounted (`docker run --rm`).
//!
//! No shell is involved: the program and its arguments go to Docker as separate words. Variables travel by
//! name (`-e NAME`, the value taken from the client's environment), so their values never appear on a command
//! line. Untested against a real engine on Obra's CI machines (none runs there): the command construction and
//! the errors of an unreachable daemon are.

use serde::{Deserialize, Serialize};

use super::{Invocation, TransportConfigError, Wrapped, inherited, probe, resolve_local, tail};
use crate::contract::PluginError;

/// `agent.transport.docker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// `exec` into a running container, or `run` a new one per command.
    #[serde(default)]
    pub mode: DockerMode,
    /// The running container (`exec`).
    #[serde(default)]
    pub container: Option<String>,
    /// The image to start (`run`).
    #[serde(default)]
    pub image: Option<String>,
    /// The workspace's path inside the container (`run` mounts the workspace there).
    #[serde(default)]
    pub workdir: String,
    /// `--user` inside the container; none for the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// More arguments for `docker run` before the image (e.g. `["--network", "host"]`).
    #[serde(default)]
    pub run_args: Vec<String>,
}

/// How the Docker transport reaches its container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerMode {
    /// `docker exec` into a running container.
    #[default]
    Exec,
    /// `docker run --rm` of an image, per command.
    Run,
}

/// A checked Docker transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Docker {
    mode: DockerMode,
    target: String,
    workdir: String,
    user: Option<String>,
    run_args: Vec<String>,
}

/// Local variables the `docker` client itself may need.
const CLIENT_ENV: [&str; 9] = [
    "HOME",
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "XDG_RUNTIME_DIR",
    "USER",
];

const FIX_CLIENT: &str = "install the Docker CLI, or set agent.transport.kind: local";

impl Docker {
    /// Check the config.
    pub fn new(cfg: &DockerConfig) -> Result<Docker, TransportConfigError> {
        let bad = |key: &str, msg: String| TransportConfigError::new(&format!("docker.{key}"), msg);
        let (key, value, what) = match cfg.mode {
            DockerMode::Exec => ("container", &cfg.container, "the running container to exec into"),
            DockerMode::Run => ("image", &cfg.image, "the image to run"),
        };
        let target = match value.as_deref().map(str::trim) {
            None | Some("") => return Err(bad(key, format!("is not set: name {what}"))),
            Some(t) if t.starts_with('-') || t.contains(char::is_whitespace) => {
                return Err(bad(key, format!("{t:?} is not a container or image name")));
            }
            Some(t) => t.to_string(),
        };
        if !cfg.workdir.starts_with('/') {
            return Err(bad("workdir", format!("{:?} must be an absolute path inside the container", cfg.workdir)));
        }
        if let Some(user) = &cfg.user
            && (user.is_empty() || user.starts_with('-'))
        {
            return Err(bad("user", format!("{user:?} is not a user")));
        }
        Ok(Docker {
            mode: cfg.mode,
            target,
            workdir: cfg.workdir.trim_end_matches('/').to_string(),
            user: cfg.user.clone(),
            run_args: cfg.run_args.clone(),
        })
    }

    /// `docker exec into NAME` or `docker run of IMAGE`.
    pub fn describe(&self) -> String {
        match self.mode {
            DockerMode::Exec => format!("docker exec into container {}", self.target),
            DockerMode::Run => format!("docker run of image {}", self.target),
        }
    }

    /// The arguments after `docker`.
    pub fn arguments(&self, inv: &Invocation<'_>) -> Vec<String> {
        let dir = if self.workdir.is_empty() { "/".to_string() } else { self.workdir.clone() };
        let dir = if inv.cwd.is_empty() { dir } else { format!("{}/{}", dir.trim_end_matches('/'), inv.cwd) };
        let mut args: Vec<String> = match self.mode {
            DockerMode::Exec => vec!["exec".into(), "-i".into()],
            DockerMode::Run => vec!["run".into(), "--rm".into(), "-i".into(), "--init".into()],
        };
        if let Some(user) = &self.user {
            args.extend(["--user".into(), user.clone()]);
        }
        if self.mode == DockerMode::Run
            && let Some(local) = inv.workspace
        {
            args.extend(["--volume".into(), format!("{}:{}", local.display(), self.workdir)]);
            // Obra's tree and git's internals inside the workspace are mounted again, read-only, over it (the
            // container's own sandbox, as the local one's read-only binds; ADR 31).
            let root = local.canonicalize().unwrap_or_else(|_| local.to_path_buf());
            for protected in crate::sandbox::protected_paths(local, true).all() {
                if let Ok(relative) = protected.strip_prefix(&root) {
                    let inside = format!("{}/{}", self.workdir.trim_end_matches('/'), relative.display());
                    args.extend(["--volume".into(), format!("{}:{inside}:ro", protected.display())]);
                }
            }
        }
        args.extend(["--workdir".into(), dir]);
        for (name, _) in inv.env {
            args.extend(["--env".into(), name.clone()]);
        }
        if self.mode == DockerMode::Run {
            args.extend(self.run_args.iter().cloned());
        }
        args.push(self.target.clone());
        args.push(inv.program.to_string());
        args.extend(inv.args.iter().cloned());
        args
    }

    /// The local `docker` command for `inv`; the variables ride in the client's environment.
    pub fn wrap(&self, inv: &Invocation<'_>) -> Result<Wrapped, PluginError> {
        let program = resolve_local("docker", FIX_CLIENT)?;
        let mut env = inherited(&CLIENT_ENV);
        env.retain(|(k, _)| !inv.env.iter().any(|(name, _)| name == k));
        env.extend(inv.env.iter().cloned());
        Ok(Wrapped { program, args: self.arguments(inv), env })
    }

    /// Check that the daemon answers and, for `exec`, that the container runs.
    pub async fn connect(&self) -> Result<String, PluginError> {
        let program = resolve_local("docker", FIX_CLIENT)?;
        let env = inherited(&CLIENT_ENV);
        let limit = std::time::Duration::from_secs(20);
        let version =
            probe(&program, &["version".into(), "--format".into(), "{{.Server.Version}}".into()], &env, limit).await;
        if version.code != Some(0) {
            return Err(PluginError::Fatal(format!(
                "the Docker daemon is not reachable ({}): start Docker or point DOCKER_HOST at it, or set \
                 agent.transport.kind: local",
                tail(&version.stderr)
            )));
        }
        let server = version.stdout.trim().to_string();
        if self.mode == DockerMode::Exec {
            let args = ["inspect".into(), "--format".into(), "{{.State.Running}}".into(), self.target.clone()];
            let state = probe(&program, &args, &env, limit).await;
            if state.code != Some(0) || state.stdout.trim() != "true" {
                let said = if state.code == Some(0) { "it is stopped".to_string() } else { tail(&state.stderr) };
                return Err(PluginError::Fatal(format!(
                    "container {} is not running ({said}): start it with `docker start {}`, or fix \
                     agent.transport.docker.container",
                    self.target, self.target
                )));
            }
        }
        Ok(format!("{} (Docker {server})", self.describe()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn docker(yaml: &str) -> Result<Docker, TransportConfigError> {
        let mut value: serde_yaml::Value = serde_yaml::from_str("{workdir: /workspace}").unwrap();
        let extra: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        for (k, v) in extra {
            value.as_mapping_mut().unwrap().insert(k, v);
        }
        Docker::new(&serde_yaml::from_value(value).unwrap())
    }

    fn inv<'a>(args: &'a [String], env: &'a [(String, String)]) -> Invocation<'a> {
        Invocation {
            program: "claude",
            args,
            env,
            workspace: Some(Path::new("/home/me/proj")),
            cwd: "",
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn exec_passes_words_unquoted_and_variables_by_name() {
        let d = docker("{mode: exec, container: agent-box, user: dev}").unwrap();
        let args = vec!["-p".to_string(), "it's $(dangerous)".to_string()];
        let env = vec![("ANTHROPIC_API_KEY".to_string(), "sk-secret".to_string())];
        let got = d.arguments(&inv(&args, &env));
        assert_eq!(
            got,
            [
                "exec",
                "-i",
                "--user",
                "dev",
                "--workdir",
                "/workspace",
                "--env",
                "ANTHROPIC_API_KEY",
                "agent-box",
                "claude",
                "-p",
                "it's $(dangerous)"
            ]
        );
        assert!(!got.iter().any(|a| a.contains("sk-secret")), "values never go on the command line");
        let wrapped = d.wrap(&inv(&args, &env));
        if let Ok(w) = wrapped {
            assert!(w.env.contains(&("ANTHROPIC_API_KEY".to_string(), "sk-secret".to_string())));
        }
    }

    #[test]
    fn run_mounts_the_workspace_and_adds_run_args() {
        let d = docker("{mode: run, image: 'ghcr.io/me/agent:1', run_args: [--network, host]}").unwrap();
        let mut i = inv(&[], &[]);
        i.cwd = "src";
        assert_eq!(
            d.arguments(&i),
            [
                "run",
                "--rm",
                "-i",
                "--init",
                "--volume",
                "/home/me/proj:/workspace",
                "--workdir",
                "/workspace/src",
                "--network",
                "host",
                "ghcr.io/me/agent:1",
                "claude"
            ]
        );
        assert_eq!(d.describe(), "docker run of image ghcr.io/me/agent:1");
    }

    #[test]
    fn run_mounts_obra_and_git_read_only_over_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".obra")).unwrap();
        let ok = std::process::Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status().unwrap();
        assert!(ok.success());
        let root = dir.path().canonicalize().unwrap();
        let d = docker("{mode: run, image: img}").unwrap();
        let mut i = inv(&[], &[]);
        i.workspace = Some(&root);
        let args = d.arguments(&i);
        let volumes: Vec<&str> = args.windows(2).filter(|w| w[0] == "--volume").map(|w| w[1].as_str()).collect();
        assert_eq!(
            volumes,
            [
                format!("{}:/workspace", root.display()),
                format!("{}/.obra:/workspace/.obra:ro", root.display()),
                format!("{}/.git:/workspace/.git:ro", root.display()),
            ]
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (yaml, key) in [
            ("{mode: exec}", "agent.transport.docker.container"),
            ("{mode: run, container: x}", "agent.transport.docker.image"),
            ("{mode: exec, container: '--privileged'}", "agent.transport.docker.container"),
            ("{mode: exec, container: c, workdir: rel}", "agent.transport.docker.workdir"),
            ("{mode: exec, container: c, user: '-u'}", "agent.transport.docker.user"),
        ] {
            let err = docker(yaml).unwrap_err();
            assert_eq!(err.key, key, "{yaml}: {err}");
        }
    }
}
