//! The kernel sandbox around the programs that plugins start on this machine (the agent above all).
//!
//! Everything Obra supervises is untrusted. Before a local program is exec'd, the child process:
//! - enters a private mount namespace in which Obra's own tree (`.obra/`) and git's internals (`.git/`, or the
//!   gitdir and common dir a worktree's `.git` file points to) are bound read-only over themselves, while the
//!   workspace stays writable (a workspace inside `.obra/`, i.e. a worktree of `obra run --parallel`, is bound
//!   writable over itself first);
//! - enters a PID namespace whose init is a small reaper of Obra's: when the agent exits, is killed, or Obra
//!   itself goes away (even by SIGKILL), every process the agent started dies with it, including those that
//!   called `setsid` or double-forked;
//! - is restricted by Landlock, which forbids it to change the mount topology (so the read-only binds cannot be
//!   undone) and, with `sandbox.restrict_writes`, to write anywhere but the workspace, the temp dir and the
//!   agent's own state directories.
//!
//! Without root, the namespaces are made inside an unprivileged user namespace that maps the user to itself.
//! Where the kernel refuses (user namespaces disabled, another OS), programs still run in a process group under
//! a subreaper that kills every descendant at the end, and the engine detects writes to the protected paths
//! after the fact instead ([`crate::sandbox::integrity`]).

pub mod integrity;
#[cfg(target_os = "linux")]
mod linux;
mod paths;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use paths::{ProtectedPaths, protected_paths};

/// `sandbox:` in the configuration (defaults in `config/default.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// `auto`: kernel protection when the kernel allows it, else detection after each run; `kernel`: refuse to
    /// run a program when the kernel cannot protect; `detect`: never use namespaces or Landlock, only detect;
    /// `off`: no protection and no detection (not recommended).
    #[serde(default)]
    pub mode: SandboxMode,
    /// Keep git's internals (`.git/`) read-only for the agent too (Obra commits the work itself).
    #[serde(default)]
    pub protect_git: bool,
    /// Landlock: nothing outside the workspace, the temp dir, `/dev` and the agent's state directories is
    /// writable for the agent.
    #[serde(default)]
    pub restrict_writes: bool,
    /// More paths the agent may write under `restrict_writes` (`~` is the home directory).
    #[serde(default)]
    pub writable: Vec<String>,
    /// The directories and files each agent keeps its own state in, by agent plugin name, writable under
    /// `restrict_writes` (`~` is the home directory; missing ones are skipped).
    #[serde(default)]
    pub agent_state: std::collections::BTreeMap<String, Vec<String>>,
    /// Files and directories of the user's that no agent may write (`~` is the home directory): the shell's
    /// startup files, SSH keys, git's and Obra's own user config and trust store. Existing ones are bound
    /// read-only; any change (creating a missing one included) is put back and stops the task.
    #[serde(default)]
    pub protect_home: Vec<String>,
}

/// How the sandbox protects the protected paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// The kernel when it can, detection otherwise.
    #[default]
    Auto,
    /// The kernel, or refuse to run.
    Kernel,
    /// Detection after each agent run only.
    Detect,
    /// Nothing.
    Off,
}

/// What this machine's kernel allows, probed once per process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelSupport {
    /// Mount and PID namespaces can be made (directly as root, or in a user namespace).
    pub namespaces: bool,
    /// They need a user namespace (Obra is not root).
    pub user_namespace: bool,
    /// Why namespaces cannot be made, when they cannot.
    pub namespaces_error: Option<String>,
    /// The Landlock ABI version, when the kernel has Landlock enabled.
    pub landlock_abi: Option<u32>,
    /// Why Landlock is not available, when it is not.
    pub landlock_error: Option<String>,
}

/// The kernel's support, probed on first use (a fork of a tiny child that tries the namespaces).
pub fn kernel_support() -> &'static KernelSupport {
    static SUPPORT: OnceLock<KernelSupport> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

#[cfg(target_os = "linux")]
fn probe() -> KernelSupport {
    linux::probe()
}

#[cfg(not(target_os = "linux"))]
fn probe() -> KernelSupport {
    KernelSupport {
        namespaces: false,
        user_namespace: false,
        namespaces_error: Some("mount namespaces are Linux-only".into()),
        landlock_abi: None,
        landlock_error: Some("Landlock is Linux-only".into()),
    }
}

/// The protection one program gets: the paths it may not write and what it may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Paths bound read-only (directories or files), canonical.
    pub read_only: Vec<PathBuf>,
    /// Paths inside a read-only one that stay writable (the workspace of a worktree under `.obra/`).
    pub writable_inside: Vec<PathBuf>,
    /// Under `restrict_writes`: the only paths writable at all (Landlock); none leaves writes unrestricted.
    pub landlock_writable: Option<Vec<PathBuf>>,
    /// Refuse to run when the kernel cannot enforce this (mode `kernel`).
    pub require_kernel: bool,
    /// Use the kernel at all (false for mode `detect`: a process group and subreaper only).
    pub use_kernel: bool,
    /// Notes about the paths (e.g. a protected path that is a symlink), for the run output.
    pub notes: Vec<String>,
    /// The protected paths, for detection after the fact.
    pub protected: ProtectedPaths,
    /// The user's protected files and directories (`protect_home`, expanded), existing or not: always compared
    /// before and after an agent run.
    pub user_paths: Vec<PathBuf>,
}

/// How a program actually runs: what [`SandboxSpec::describe`] tells the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Mount and PID namespaces (and Landlock when available).
    Kernel,
    /// A process group under a subreaper; protected paths are checked after the run.
    DetectOnly,
}

impl SandboxSpec {
    /// The protection for a program whose workspace is `workspace`, run by agent plugin `agent` (for its state
    /// directories), under `config`. None when the mode is `off`.
    pub fn for_workspace(config: &SandboxConfig, workspace: &Path, agent: Option<&str>) -> Option<SandboxSpec> {
        if config.mode == SandboxMode::Off {
            return None;
        }
        let protected = protected_paths(workspace, config.protect_git);
        let mut notes = protected.notes.clone();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let user_paths: Vec<PathBuf> = config
            .protect_home
            .iter()
            .filter_map(|p| match p.strip_prefix("~/") {
                Some(rest) => home.as_ref().map(|h| h.join(rest)),
                None => Some(PathBuf::from(p)),
            })
            .collect();
        let workspace = workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf());
        let writable_inside =
            if protected.all().any(|p| workspace.starts_with(p)) { vec![workspace.clone()] } else { Vec::new() };
        let landlock_writable = config.restrict_writes.then(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let expand = |s: &str| -> Option<PathBuf> {
                match s.strip_prefix("~/") {
                    Some(rest) => home.as_ref().map(|h| h.join(rest)),
                    None if s == "~" => home.clone(),
                    None => Some(PathBuf::from(s)),
                }
            };
            let mut paths = vec![workspace.clone(), std::env::temp_dir(), PathBuf::from("/dev")];
            let state = agent.and_then(|a| config.agent_state.get(a)).into_iter().flatten();
            for entry in state.chain(config.writable.iter()) {
                match expand(entry) {
                    Some(p) if p.exists() => paths.push(p),
                    Some(p) => notes.push(format!("writable path {} does not exist; skipped", p.display())),
                    None => notes.push(format!("writable path {entry:?} needs HOME, which is not set; skipped")),
                }
            }
            paths
        });
        let mut read_only: Vec<PathBuf> = protected.all().cloned().collect();
        // The user's existing protected files (resolved: a bind follows symlinks) unless one is the workspace's.
        for path in user_paths.iter().filter_map(|p| p.canonicalize().ok()) {
            if !workspace.starts_with(&path) && !path.starts_with(&workspace) && !read_only.contains(&path) {
                read_only.push(path);
            }
        }
        Some(SandboxSpec {
            read_only,
            writable_inside,
            landlock_writable,
            require_kernel: config.mode == SandboxMode::Kernel,
            use_kernel: matches!(config.mode, SandboxMode::Auto | SandboxMode::Kernel),
            notes,
            protected,
            user_paths,
        })
    }

    /// How programs under this spec run on this machine.
    pub fn enforcement(&self) -> Enforcement {
        if self.use_kernel && kernel_support().namespaces { Enforcement::Kernel } else { Enforcement::DetectOnly }
    }

    /// Whether writes to the protected paths must be looked for after an agent run: the kernel does not
    /// enforce them here, or the agent runs elsewhere (`remote`: over SSH or in a container).
    pub fn needs_detection(&self, remote: bool) -> bool {
        remote || self.enforcement() == Enforcement::DetectOnly
    }

    /// One line for the run output and `obra doctor`: which protection is active, and why when none is.
    pub fn describe(&self, root: &Path) -> String {
        let support = kernel_support();
        let shown: Vec<String> = self
            .protected
            .all()
            .map(|p| match p.strip_prefix(root) {
                Ok(rel) => format!("{}/", rel.display()),
                Err(_) => p.display().to_string(),
            })
            .collect();
        let what = if shown.is_empty() { "nothing to protect".to_string() } else { shown.join(", ") };
        match self.enforcement() {
            Enforcement::Kernel => {
                let landlock = match (support.landlock_abi, &self.landlock_writable) {
                    (Some(abi), Some(_)) => format!(", Landlock ABI {abi} (writes only in the workspace, temp, state)"),
                    (Some(abi), None) => format!(", Landlock ABI {abi}"),
                    (None, _) => {
                        format!(", no Landlock ({})", support.landlock_error.as_deref().unwrap_or("not available"))
                    }
                };
                let userns = if support.user_namespace { " in a user namespace" } else { "" };
                format!("kernel: {what} read-only (mount + PID namespace{userns}{landlock})")
            }
            Enforcement::DetectOnly => {
                let why = if !self.use_kernel {
                    "sandbox.mode is detect".to_string()
                } else {
                    support.namespaces_error.clone().unwrap_or_else(|| "namespaces unavailable".into())
                };
                format!("detect only: {what} are checked after each agent run and restored ({why})")
            }
        }
    }

    /// Make `command` run under this protection: namespaces, read-only binds, Landlock and the reaper are set up
    /// in the child before exec. Returns the keep-alive handle that must live as long as the child: dropping it
    /// (or Obra exiting in any way) kills the child's whole process tree.
    #[cfg(target_os = "linux")]
    pub fn apply(&self, command: &mut tokio::process::Command) -> std::io::Result<KeepAlive> {
        let support = kernel_support();
        let kernel = self.use_kernel && support.namespaces;
        if self.require_kernel && !kernel {
            return Err(std::io::Error::other(format!(
                "sandbox.mode is kernel but the kernel cannot protect the workspace: {}; set sandbox.mode to auto \
                 to fall back to detection",
                support.namespaces_error.as_deref().unwrap_or("namespaces unavailable")
            )));
        }
        let landlock = if kernel { support.landlock_abi } else { None };
        linux::apply(self, kernel, support.user_namespace, landlock, command)
    }

    /// Elsewhere: no kernel protection; the child still runs in its own process group.
    #[cfg(not(target_os = "linux"))]
    pub fn apply(&self, _command: &mut tokio::process::Command) -> std::io::Result<KeepAlive> {
        if self.require_kernel {
            return Err(std::io::Error::other(
                "sandbox.mode is kernel but kernel protection is Linux-only; set sandbox.mode to auto",
            ));
        }
        Ok(KeepAlive { fd: None, supervised: false })
    }
}

/// The parent's end of a child's keep-alive pipe: while it is open the child's supervisor lets the program
/// run; when it closes (dropped, or Obra exits however it exits) the supervisor kills the whole tree.
#[derive(Debug)]
pub struct KeepAlive {
    fd: Option<std::os::fd::OwnedFd>,
    supervised: bool,
}

impl KeepAlive {
    /// No keep-alive: the child is not supervised.
    pub fn none() -> KeepAlive {
        KeepAlive { fd: None, supervised: false }
    }

    /// Whether the child runs under Obra's supervisor (so a SIGTERM to it, not a SIGKILL of its group, is the
    /// way to end the tree).
    pub fn supervised(&self) -> bool {
        self.supervised
    }

    /// Close the pipe now: the supervisor kills the tree and exits.
    pub fn release(&mut self) {
        self.fd = None;
    }
}

#[cfg(test)]
mod tests;
