//! The SSH transport: run the agent's program on another machine with the system's OpenSSH client.
//!
//! Safety by construction: `BatchMode=yes` (never a prompt), public-key authentication only, strict host key
//! checking (an unknown or changed host key is an error, never accepted silently), and the remote command is
//! built from the plugin's argument list with every word quoted for a POSIX shell ([`super::quote`]), so no
//! text of a prompt can run as a command. Before each command a probe connects, retrying connection failures
//! with exponential back-off; refused keys and host key problems fail at once with what to fix.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::quote::{sh_join, sh_quote};
use super::{Invocation, TransportConfigError, Wrapped, inherited, probe, resolve_local, tail};
use crate::contract::PluginError;

/// `agent.transport.ssh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// The remote host (name or address).
    #[serde(default)]
    pub host: Option<String>,
    /// The remote user; none for ssh's default (your ~/.ssh/config or local user name).
    #[serde(default)]
    pub user: Option<String>,
    /// The remote port.
    #[serde(default)]
    pub port: u16,
    /// The private key to log in with (`~/` allowed); none for ssh's defaults and the ssh agent.
    #[serde(default)]
    pub identity_file: Option<String>,
    /// The known_hosts file that must hold the host's key; none for ssh's default (~/.ssh/known_hosts).
    #[serde(default)]
    pub known_hosts_file: Option<String>,
    /// The workspace's path on the remote machine; none for the same path as here (a shared file system).
    #[serde(default)]
    pub remote_workspace: Option<String>,
    /// Seconds to wait for the connection (ssh's ConnectTimeout).
    #[serde(default)]
    pub connect_timeout_secs: u64,
    /// Connection attempts before giving up (the first included).
    #[serde(default)]
    pub connect_attempts: u32,
    /// Delay before the second attempt, in milliseconds; each later one doubles it.
    #[serde(default)]
    pub backoff_ms: u64,
    /// Wrap the remote command in coreutils `timeout`, so it cannot outlive Obra's limit when the connection
    /// drops (needs `timeout` on the remote machine).
    #[serde(default)]
    pub remote_timeout: bool,
}

/// A checked SSH transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Ssh {
    host: String,
    user: Option<String>,
    port: u16,
    identity_file: Option<String>,
    known_hosts_file: Option<String>,
    remote_workspace: Option<String>,
    connect_timeout: Duration,
    attempts: u32,
    backoff: Duration,
    remote_timeout: bool,
}

/// Local variables the `ssh` client itself may need: where its keys and known_hosts are, and the agent socket.
const CLIENT_ENV: [&str; 5] = ["HOME", "USER", "LOGNAME", "PATH", "SSH_AUTH_SOCK"];

/// Extra seconds the remote `timeout` gives the program beyond Obra's own limit, and its kill grace.
const REMOTE_GRACE_SECS: u64 = 5;

/// Whether `word` can go on ssh's command line as a host or user: not empty, not an option, no spaces or
/// control characters.
fn plain_name(word: &str) -> bool {
    !word.is_empty() && !word.starts_with('-') && !word.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Expand a leading `~/` with Obra's HOME.
fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

impl Ssh {
    /// Check the config.
    pub fn new(cfg: &SshConfig) -> Result<Ssh, TransportConfigError> {
        let bad = |key: &str, msg: String| TransportConfigError::new(&format!("ssh.{key}"), msg);
        let host = match cfg.host.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(bad("host", "is not set: name the machine to run the agent on".into()));
            }
            Some(h) if !plain_name(h) => {
                return Err(bad("host", format!("{h:?} is not a host name (no spaces, not starting with -)")));
            }
            Some(h) => h.to_string(),
        };
        if let Some(user) = &cfg.user
            && !plain_name(user)
        {
            return Err(bad("user", format!("{user:?} is not a user name (no spaces, not starting with -)")));
        }
        if cfg.port == 0 {
            return Err(bad("port", "must be 1..=65535".into()));
        }
        if cfg.connect_attempts == 0 {
            return Err(bad("connect_attempts", "must be at least 1".into()));
        }
        if cfg.connect_timeout_secs == 0 {
            return Err(bad("connect_timeout_secs", "must be at least 1".into()));
        }
        let file = |key: &str, value: &Option<String>| -> Result<Option<String>, TransportConfigError> {
            match value {
                None => Ok(None),
                Some(p) => {
                    let expanded = expand_home(p.trim());
                    if !expanded.starts_with('/') {
                        return Err(bad(key, format!("{p:?} must be an absolute path or start with ~/")));
                    }
                    Ok(Some(expanded))
                }
            }
        };
        Ok(Ssh {
            host,
            user: cfg.user.clone(),
            port: cfg.port,
            identity_file: file("identity_file", &cfg.identity_file)?,
            known_hosts_file: file("known_hosts_file", &cfg.known_hosts_file)?,
            remote_workspace: cfg.remote_workspace.clone().filter(|w| !w.trim().is_empty()),
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs),
            attempts: cfg.connect_attempts,
            backoff: Duration::from_millis(cfg.backoff_ms),
            remote_timeout: cfg.remote_timeout,
        })
    }

    /// `ssh to user@host:port`.
    pub fn describe(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("ssh to {user}{}:{}", self.host, self.port)
    }

    /// The options before the destination: safe defaults first (ssh takes the first value of an option).
    fn options(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-T".into()];
        let mut opt = |o: String| {
            args.push("-o".into());
            args.push(o);
        };
        opt("BatchMode=yes".into());
        opt("StrictHostKeyChecking=yes".into());
        opt("PasswordAuthentication=no".into());
        opt("KbdInteractiveAuthentication=no".into());
        opt("PubkeyAuthentication=yes".into());
        opt(format!("ConnectTimeout={}", self.connect_timeout.as_secs()));
        opt("ServerAliveInterval=15".into());
        opt("ServerAliveCountMax=4".into());
        if let Some(known) = &self.known_hosts_file {
            opt(format!("UserKnownHostsFile={known}"));
        }
        if let Some(key) = &self.identity_file {
            opt("IdentitiesOnly=yes".into());
            args.push("-i".into());
            args.push(key.clone());
        }
        args.push("-p".into());
        args.push(self.port.to_string());
        if let Some(user) = &self.user {
            args.push("-l".into());
            args.push(user.clone());
        }
        args.push("--".into());
        args.push(self.host.clone());
        args
    }

    /// The remote working directory for a command.
    fn remote_dir(&self, inv: &Invocation<'_>) -> Option<String> {
        let root = match (&self.remote_workspace, inv.workspace) {
            (Some(remote), _) => remote.clone(),
            (None, Some(local)) => local.display().to_string(),
            (None, None) => return None,
        };
        Some(if inv.cwd.is_empty() { root } else { format!("{}/{}", root.trim_end_matches('/'), inv.cwd) })
    }

    /// The shell text the remote side runs: `cd DIR && exec [timeout ...] [env K=V ...] PROGRAM ARGS...`, every
    /// word quoted.
    pub fn remote_command(&self, inv: &Invocation<'_>) -> String {
        let mut words: Vec<String> = Vec::new();
        if self.remote_timeout {
            let secs = inv.timeout.as_secs() + REMOTE_GRACE_SECS;
            words.extend(["timeout".into(), "-k".into(), format!("{REMOTE_GRACE_SECS}s"), format!("{secs}s")]);
        }
        if !inv.env.is_empty() {
            words.push("env".into());
            words.extend(inv.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        words.push(inv.program.to_string());
        words.extend(inv.args.iter().cloned());
        let command = format!("exec {}", sh_join(&words));
        match self.remote_dir(inv) {
            Some(dir) => format!("cd {} && {command}", sh_quote(&dir)),
            None => command,
        }
    }

    /// The local `ssh` command for `inv`.
    pub fn wrap(&self, inv: &Invocation<'_>) -> Result<Wrapped, PluginError> {
        let program = resolve_local("ssh", "install the OpenSSH client (e.g. apt install openssh-client)")?;
        let mut args = self.options();
        args.push(self.remote_command(inv));
        Ok(Wrapped { program, args, env: inherited(&CLIENT_ENV) })
    }

    /// Connect once (`exit 0` on the remote side), retrying connection failures with back-off.
    pub async fn connect(&self) -> Result<String, PluginError> {
        let program = resolve_local("ssh", "install the OpenSSH client (e.g. apt install openssh-client)")?;
        let mut args = self.options();
        args.push("exit 0".into());
        let env = inherited(&CLIENT_ENV);
        let limit = self.connect_timeout + Duration::from_secs(5);
        let mut delay = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let out = probe(&program, &args, &env, limit).await;
            match classify(out.code, &out.stderr) {
                Probe::Connected => {
                    return Ok(if attempt == 1 {
                        format!("{} answered", self.describe())
                    } else {
                        format!("{} answered (attempt {attempt} of {})", self.describe(), self.attempts)
                    });
                }
                Probe::Refused(why) => return Err(PluginError::Fatal(self.refusal(&why, &out.stderr))),
                Probe::Unreachable => {
                    last = tail(&out.stderr);
                    tracing::warn!(transport = %self.describe(), attempt, error = %last, "ssh connection failed");
                    if attempt < self.attempts {
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2);
                    }
                }
            }
        }
        Err(PluginError::Retryable(format!(
            "could not connect ({}) after {} attempts: {last}; check that the machine is up and sshd listens \
             there, or raise agent.transport.ssh.connect_attempts",
            self.describe(),
            self.attempts
        )))
    }

    fn refusal(&self, why: &Refusal, stderr: &str) -> String {
        let said = tail(stderr);
        match why {
            Refusal::Key => format!(
                "{} refused the login ({said}): only key authentication is used; check \
                 agent.transport.ssh.identity_file and that its public key is in the remote user's \
                 ~/.ssh/authorized_keys",
                self.describe()
            ),
            Refusal::HostKey => format!(
                "{} : the host key is unknown or has changed ({said}); verify the host's fingerprint, then add \
                 it with `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts` (or set \
                 agent.transport.ssh.known_hosts_file); Obra never accepts host keys on its own",
                self.describe(),
                self.port,
                self.host
            ),
            Refusal::Other => format!("{} failed: {said}", self.describe()),
        }
    }
}

/// What a probe's exit tells.
#[derive(Debug, PartialEq)]
enum Probe {
    Connected,
    Unreachable,
    Refused(Refusal),
}

/// Failures no retry can fix.
#[derive(Debug, PartialEq)]
enum Refusal {
    Key,
    HostKey,
    Other,
}

/// Classify a probe: exit 0 is connected; ssh's own failures exit 255, and their text says which kind.
fn classify(code: Option<i32>, stderr: &str) -> Probe {
    if code == Some(0) {
        return Probe::Connected;
    }
    let s = stderr.to_ascii_lowercase();
    if s.contains("host key verification failed")
        || s.contains("remote host identification has changed")
        || s.contains("no matching host key")
        || s.contains("host key is known")
    {
        Probe::Refused(Refusal::HostKey)
    } else if s.contains("permission denied") || s.contains("too many authentication failures") {
        Probe::Refused(Refusal::Key)
    } else if code == Some(255) || code.is_none() {
        Probe::Unreachable
    } else {
        Probe::Refused(Refusal::Other)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(yaml: &str) -> SshConfig {
        let mut cfg: SshConfig = serde_yaml::from_str(
            "{port: 22, connect_timeout_secs: 10, connect_attempts: 3, backoff_ms: 100, remote_timeout: true}",
        )
        .unwrap();
        let extra: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let mut merged = serde_yaml::to_value(&cfg).unwrap();
        for (k, v) in extra {
            merged.as_mapping_mut().unwrap().insert(k, v);
        }
        cfg = serde_yaml::from_value(merged).unwrap();
        cfg
    }

    fn inv<'a>(args: &'a [String], env: &'a [(String, String)]) -> Invocation<'a> {
        Invocation {
            program: "claude",
            args,
            env,
            workspace: Some(Path::new("/work/my project")),
            cwd: "",
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn options_are_batch_mode_key_only_and_strict_about_host_keys() {
        let ssh =
            Ssh::new(&config("{host: box, user: dev, port: 2222, identity_file: /k/id, known_hosts_file: /k/known}"))
                .unwrap();
        let args = ssh.options().join(" ");
        for want in [
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o PasswordAuthentication=no",
            "-o KbdInteractiveAuthentication=no",
            "-o UserKnownHostsFile=/k/known",
            "-o IdentitiesOnly=yes -i /k/id",
            "-p 2222 -l dev -- box",
        ] {
            assert!(args.contains(want), "{want} in {args}");
        }
        assert_eq!(ssh.describe(), "ssh to dev@box:2222");
    }

    #[test]
    fn the_remote_command_quotes_every_word_and_changes_to_the_workspace() {
        let ssh = Ssh::new(&config("{host: box}")).unwrap();
        let args = vec!["-p".to_string(), "fix $(rm -rf ~); it's \"done\"".to_string()];
        let env = vec![("IS_SANDBOX".to_string(), "1 && reboot".to_string())];
        let cmd = ssh.remote_command(&inv(&args, &env));
        assert_eq!(
            cmd,
            "cd '/work/my project' && exec timeout -k 5s 65s env 'IS_SANDBOX=1 && reboot' claude -p \
             'fix $(rm -rf ~); it'\\''s \"done\"'"
        );
    }

    #[test]
    fn a_remote_workspace_and_cwd_replace_the_local_path() {
        let ssh = Ssh::new(&config("{host: box, remote_workspace: /srv/ws, remote_timeout: false}")).unwrap();
        let mut i = inv(&[], &[]);
        i.cwd = "sub/dir";
        assert_eq!(ssh.remote_command(&i), "cd /srv/ws/sub/dir && exec claude");
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (yaml, key) in [
            ("{}", "agent.transport.ssh.host"),
            ("{host: '-oProxyCommand=evil'}", "agent.transport.ssh.host"),
            ("{host: 'a b'}", "agent.transport.ssh.host"),
            ("{host: h, user: '-l'}", "agent.transport.ssh.user"),
            ("{host: h, port: 0}", "agent.transport.ssh.port"),
            ("{host: h, connect_attempts: 0}", "agent.transport.ssh.connect_attempts"),
            ("{host: h, identity_file: keys/id}", "agent.transport.ssh.identity_file"),
        ] {
            let err = Ssh::new(&config(yaml)).unwrap_err();
            assert_eq!(err.key, key, "{yaml}: {err}");
        }
    }

    #[test]
    fn probe_failures_are_classified_by_what_ssh_said() {
        assert_eq!(classify(Some(0), ""), Probe::Connected);
        assert_eq!(
            classify(Some(255), "ssh: connect to host 127.0.0.1 port 2: Connection refused"),
            Probe::Unreachable
        );
        assert_eq!(classify(Some(255), "dev@box: Permission denied (publickey)."), Probe::Refused(Refusal::Key));
        assert_eq!(
            classify(
                Some(255),
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict \
                                 checking.\r\nHost key verification failed."
            ),
            Probe::Refused(Refusal::HostKey)
        );
        assert_eq!(classify(None, "no answer"), Probe::Unreachable);
    }
}
