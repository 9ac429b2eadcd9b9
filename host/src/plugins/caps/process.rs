//! The `process` capability: run a program to completion, or spawn it and stream its stdout line by line.
//!
//! Before anything is started, the program and arguments must match the effective grant and every variable the
//! plugin sets must be granted. The child's environment is built only from the granted variables present in
//! Obra's environment plus the plugin's (granted) explicit ones. The working directory resolves inside the
//! workspace, never inside `.obra/` or the git directory, and a local child enters it by the descriptor the check
//! opened (`fchdir`), not by its path. Output is capped per stream; a child is killed at its time limit, when its resource is dropped,
//! and when the instance is discarded (`kill_on_drop`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdout, Command};
use wasmtime::component::Resource;

use super::WitError;
use super::workspace::Jail;
use crate::contract::PluginError;
use crate::plugins::bindings::v0_1_0::caps::process::{Host, HostChild, ProcessOutput, RunOptions};
use crate::plugins::grants::display_command;
use crate::plugins::instance_state::StoreState;
use crate::plugins::quota::{Counted, Permit};
use crate::transport::{Invocation, Transport};

/// How long to wait for a child's pipes to close after it exited or was killed (a grandchild may hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How long a sandbox supervisor gets to kill its tree and exit before its process group is SIGKILLed.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);

/// A started child, leader of its own process group. On timeout, on `kill` and on drop its whole tree is
/// killed (an agent's own children, e.g. the shell commands of its tools, must not outlive it). Under the
/// sandbox the child is a supervisor that does that itself, even for descendants that left the group, when its
/// keep-alive closes (which also happens when Obra exits however it exits); otherwise the group is SIGKILLed, as
/// long as the leader has not been reaped (so the group id cannot have been reused).
struct GroupChild(tokio::process::Child, crate::sandbox::KeepAlive);

impl GroupChild {
    /// Start ending the tree (see [`GroupChild::end`] to wait for it).
    fn kill_all(&mut self) {
        if self.1.supervised() {
            self.1.release();
            self.signal(libc::SIGTERM, false);
            return;
        }
        self.signal(libc::SIGKILL, true);
        let _ = self.0.start_kill();
    }

    fn signal(&mut self, signal: libc::c_int, group: bool) {
        if let (Ok(None), Some(pid)) = (self.0.try_wait(), self.0.id())
            && let Ok(pid) = libc::pid_t::try_from(pid)
        {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid (or, negated, the process group it
            // leads since `process_group(0)`) belongs to our live, unreaped child.
            unsafe {
                libc::kill(if group { -pid } else { pid }, signal);
            }
        }
    }

    /// End the tree and wait for the child: a supervisor gets [`SUPERVISOR_GRACE`], then its group is SIGKILLed.
    async fn end(&mut self) -> Option<std::process::ExitStatus> {
        self.kill_all();
        if let Ok(status) = tokio::time::timeout(SUPERVISOR_GRACE, self.0.wait()).await {
            return status.ok();
        }
        self.signal(libc::SIGKILL, true);
        self.0.wait().await.ok()
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Bytes of one stream kept up to a cap; the rest is read and dropped so the child never blocks.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

type SharedCapture = Arc<Mutex<Capture>>;

fn lock(c: &SharedCapture) -> std::sync::MutexGuard<'_, Capture> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read `reader` to its end into a capture holding at most `cap` bytes.
fn capture(
    mut reader: impl AsyncRead + Unpin + Send + 'static,
    cap: u64,
) -> (SharedCapture, tokio::task::JoinHandle<()>) {
    let shared = SharedCapture::default();
    let out = shared.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut c = lock(&out);
                    let room = (cap as usize).saturating_sub(c.bytes.len());
                    if n > room {
                        c.truncated = true;
                    }
                    c.bytes.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    });
    (shared, task)
}

/// Wait briefly for a capture task to finish, then take what it has.
async fn finish(shared: &SharedCapture, task: tokio::task::JoinHandle<()>) -> (String, bool) {
    let abort = task.abort_handle();
    if tokio::time::timeout(PIPE_GRACE, task).await.is_err() {
        abort.abort();
    }
    let c = lock(shared);
    (String::from_utf8_lossy(&c.bytes).into_owned(), c.truncated)
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// Find `program` on Obra's own `PATH` (the child's environment may have no `PATH`).
fn resolve_program(program: &str) -> Result<PathBuf, PluginError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| PluginError::Fatal(format!("program {program:?} was not found on PATH; is it installed?")))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// A command checked against the grant and ready to start.
struct Prepared {
    command: Command,
    keep_alive: crate::sandbox::KeepAlive,
    stdin: Option<String>,
    timeout: Duration,
    cap: u64,
    shown: String,
    /// The plugin's `max_children` quota unit, held while the program may run.
    permit: Permit,
}

impl StoreState {
    /// Check everything (the grant, the working directory, the `max_children` quota) and build the command;
    /// nothing is started here.
    fn prepare(&self, program: &str, args: &[String], options: RunOptions) -> Result<Prepared, PluginError> {
        self.grant.check_command(program, args)?;
        for kv in &options.env {
            self.grant.check_env(&kv.key)?;
        }
        // In a workspace, the working directory is held open from the check on (see `Jail::working_dir`).
        let (cwd, cwd_fd) = match (&self.call.ctx.workspace, &options.cwd) {
            (Some(root), cwd) => {
                let jail = Jail::new(&self.plugin, root)?;
                let (fd, dir) = jail.working_dir(cwd.as_deref().unwrap_or(""))?;
                (dir, Some(fd))
            }
            (None, None) => (std::env::temp_dir(), None),
            (None, Some(cwd)) => {
                return Err(PluginError::Fatal(format!(
                    "plugin {:?} asked for working directory {cwd:?} but no workspace was given for {}",
                    self.plugin, self.call.function
                )));
            }
        };
        let limits = &self.grant.limits;
        let permit = self.quotas.take(&self.plugin, Counted::Child, limits.max_children)?;
        let ceiling = Duration::from_secs(limits.host_call_timeout_secs);
        let timeout = options.timeout_ms.map_or(ceiling, |ms| Duration::from_millis(ms).min(ceiling));
        let cap = options.max_output_bytes.map_or(limits.max_output_bytes, |b| b.min(limits.max_output_bytes));

        let mut shown = display_command(program, args);
        let mut command = match &self.call.ctx.transport {
            None => {
                let mut command = Command::new(resolve_program(program)?);
                command
                    .args(args)
                    .env_clear()
                    .envs(self.grant.passed_through_env())
                    .envs(options.env.iter().map(|kv| (&kv.key, &kv.value)));
                command
            }
            Some(transport) => {
                let root = self.call.ctx.workspace.as_deref();
                let relative = root.and_then(|r| cwd.strip_prefix(r).ok()).map(|p| p.to_string_lossy().into_owned());
                let mut env: Vec<(String, String)> =
                    self.grant.passed_through_env().into_iter().filter(|(k, _)| transport.forwards(k)).collect();
                for kv in &options.env {
                    env.retain(|(k, _)| k != &kv.key);
                    env.push((kv.key.clone(), kv.value.clone()));
                }
                let wrapped = transport.wrap(&Invocation {
                    program,
                    args,
                    env: &env,
                    workspace: root,
                    cwd: relative.as_deref().unwrap_or(""),
                    timeout,
                })?;
                shown = format!("{shown} (by {})", transport.describe());
                let mut command = Command::new(wrapped.program);
                command.args(wrapped.args).env_clear().envs(wrapped.env);
                command
            }
        };
        match cwd_fd {
            // A local child enters the directory checked above by its descriptor, before anything else runs in
            // it (the sandbox's closure, registered after this one): by path, a directory swapped for a link
            // to outside after the check would be entered outside.
            Some(fd) if self.call.ctx.transport.is_none() => {
                // SAFETY: the closure makes one async-signal-safe system call on a descriptor it owns.
                unsafe {
                    command.pre_exec(move || {
                        if libc::fchdir(fd.as_raw_fd()) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
                    });
                }
            }
            _ => {
                command.current_dir(cwd);
            }
        }
        command
            .stdin(if options.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.process_group(0);
        let keep_alive = match (&self.call.ctx.sandbox, &self.call.ctx.transport) {
            (Some(sandbox), None) => sandbox
                .apply(&mut command)
                .map_err(|e| PluginError::Fatal(format!("cannot set up the sandbox for {shown}: {e}")))?,
            _ => crate::sandbox::KeepAlive::none(),
        };
        // A supervised child ends its own tree when its keep-alive closes; a SIGKILL of it alone would leave
        // the tree to its own devices where no PID namespace holds it.
        command.kill_on_drop(!keep_alive.supervised());
        Ok(Prepared { command, keep_alive, stdin: options.stdin, timeout, cap, shown, permit })
    }
}

impl Prepared {
    /// Start the program (the first side effect, after every check passed).
    fn start(mut self, plugin: &str) -> Result<(GroupChild, Prepared), PluginError> {
        let mut child = self
            .command
            .spawn()
            .map_err(|e| PluginError::Fatal(format!("plugin {plugin:?} could not start {:?}: {e}", self.shown)))?;
        let keep_alive = std::mem::replace(&mut self.keep_alive, crate::sandbox::KeepAlive::none());
        if let (Some(text), Some(mut stdin)) = (self.stdin.take(), child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(text.as_bytes()).await;
            });
        }
        tracing::debug!(plugin, command = %self.shown, "started a program");
        Ok((GroupChild(child, keep_alive), self))
    }

    /// Run to completion (or the time limit), capturing capped output.
    async fn run(self, plugin: &str) -> Result<ProcessOutput, PluginError> {
        let started = Instant::now();
        let (mut child, p) = self.start(plugin)?;
        let (out, out_task) = capture(child.0.stdout.take().expect("stdout is piped"), p.cap);
        let (err, err_task) = capture(child.0.stderr.take().expect("stderr is piped"), p.cap);
        let (status, timed_out) = match tokio::time::timeout(p.timeout, child.0.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => (child.end().await, true),
        };
        let (stdout, t1) = finish(&out, out_task).await;
        let (stderr, t2) = finish(&err, err_task).await;
        Ok(ProcessOutput {
            exit_code: status.and_then(|s| s.code()),
            signal: status.as_ref().and_then(signal_of),
            stdout,
            stderr,
            truncated: t1 || t2,
            timed_out,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

impl StoreState {
    fn spawn_inner(
        &mut self,
        program: String,
        args: Vec<String>,
        options: RunOptions,
    ) -> Result<Resource<ChildProcess>, PluginError> {
        let prepared = self.prepare(&program, &args, options)?;
        let started = Instant::now();
        let (mut child, p) = prepared.start(&self.plugin)?;
        let stdout = BufReader::new(child.0.stdout.take().expect("stdout is piped"));
        let (stderr, stderr_task) = capture(child.0.stderr.take().expect("stderr is piped"), p.cap);
        let resource = ChildProcess {
            child,
            stdout,
            stdout_done: false,
            truncated: false,
            stderr,
            stderr_task: Some(stderr_task),
            started,
            deadline: tokio::time::Instant::now() + p.timeout,
            timeout: p.timeout,
            stall: self.call.ctx.stall,
            cap: p.cap,
            shown: p.shown,
            timed_out: false,
            _permit: p.permit,
        };
        self.table.push(resource).map_err(|e| PluginError::Fatal(format!("too many open resources: {e}")))
    }
}

/// A running child whose stdout is read line by line (the WIT `child` resource).
pub struct ChildProcess {
    child: GroupChild,
    stdout: BufReader<ChildStdout>,
    stdout_done: bool,
    truncated: bool,
    stderr: SharedCapture,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    started: Instant,
    deadline: tokio::time::Instant,
    timeout: Duration,
    /// Stop the program when it prints no line for this long (`agent.stall_secs`).
    stall: Option<Duration>,
    cap: u64,
    shown: String,
    timed_out: bool,
    /// Counts this child against the plugin's `max_children` until the handle is dropped.
    _permit: Permit,
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // The child's group is killed when `child` drops.
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

impl ChildProcess {
    fn timeout_error(&mut self) -> PluginError {
        self.timed_out = true;
        self.child.kill_all();
        PluginError::Timeout(format!(
            "{} ran past its time limit of {} s and was killed",
            self.shown,
            self.timeout.as_secs_f64()
        ))
    }

    /// Read one line of at most `cap` bytes (the rest of a longer line is dropped).
    async fn read_line(&mut self) -> std::io::Result<Option<String>> {
        let mut line = Vec::new();
        let mut saw_any = false;
        loop {
            let buf = self.stdout.fill_buf().await?;
            if buf.is_empty() {
                break;
            }
            saw_any = true;
            let (take, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = (self.cap as usize).saturating_sub(line.len());
            if take > room {
                self.truncated = true;
            }
            line.extend_from_slice(&buf[..take.min(room)]);
            self.stdout.consume(take);
            if found {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Stop the program as stalled: it printed nothing for the stall limit.
    fn stall_error(&mut self, stall: Duration) -> PluginError {
        self.timed_out = true;
        self.child.kill_all();
        PluginError::Timeout(format!(
            "{} printed nothing for {} s and was stopped as stalled (agent.stall_secs)",
            self.shown,
            stall.as_secs()
        ))
    }

    async fn next_line(&mut self) -> Result<Option<String>, PluginError> {
        if self.stdout_done {
            return Ok(None);
        }
        let stalled_at = self.stall.map(|s| tokio::time::Instant::now() + s).filter(|at| *at < self.deadline);
        match tokio::time::timeout_at(stalled_at.unwrap_or(self.deadline), self.read_line()).await {
            Err(_) => match (stalled_at, self.stall) {
                (Some(_), Some(stall)) => Err(self.stall_error(stall)),
                _ => Err(self.timeout_error()),
            },
            Ok(Ok(None)) => {
                self.stdout_done = true;
                Ok(None)
            }
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(PluginError::Fatal(format!("reading the output of {} failed: {e}", self.shown))),
        }
    }

    async fn wait(&mut self) -> Result<ProcessOutput, PluginError> {
        let status = match tokio::time::timeout_at(self.deadline, self.child.0.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                self.timed_out = true;
                self.child.end().await
            }
        };
        let (stderr, truncated) = match self.stderr_task.take() {
            Some(task) => finish(&self.stderr, task).await,
            None => (String::new(), false),
        };
        Ok(ProcessOutput {
            exit_code: status.and_then(|s| s.code()),
            signal: status.as_ref().and_then(signal_of),
            stdout: String::new(),
            stderr,
            truncated: truncated || self.truncated,
            timed_out: self.timed_out,
            duration_ms: self.started.elapsed().as_millis() as u64,
        })
    }
}

impl HostChild for StoreState {
    async fn next_line(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<Result<Option<String>, WitError>> {
        let limit = self.host_call_timeout();
        let child = self.table.get_mut(&child)?;
        Ok(match tokio::time::timeout(limit, child.next_line()).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(child.timeout_error().into()),
        })
    }

    async fn wait(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<Result<ProcessOutput, WitError>> {
        let child = self.table.get_mut(&child)?;
        Ok(child.wait().await.map_err(Into::into))
    }

    async fn kill(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<()> {
        let child = self.table.get_mut(&child)?;
        child.child.kill_all();
        Ok(())
    }

    async fn drop(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}

impl Host for StoreState {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        options: RunOptions,
    ) -> wasmtime::Result<Result<ProcessOutput, WitError>> {
        let prepared = match self.prepare(&program, &args, options) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        if let Err(e) = connect_transport(self.call.ctx.transport.clone(), &self.plugin.clone()).await {
            return Ok(Err(e.into()));
        }
        let plugin = self.plugin.clone();
        let result = self.timer("process.run").run(prepared.run(&plugin)).await;
        Ok(result.map_err(Into::into))
    }

    async fn spawn(
        &mut self,
        program: String,
        args: Vec<String>,
        options: RunOptions,
    ) -> wasmtime::Result<Result<Resource<ChildProcess>, WitError>> {
        // Check everything before connecting, then connect before starting.
        if let Err(e) = self.prepare(&program, &args, options.clone()) {
            return Ok(Err(e.into()));
        }
        if let Err(e) = connect_transport(self.call.ctx.transport.clone(), &self.plugin.clone()).await {
            return Ok(Err(e.into()));
        }
        Ok(self.spawn_inner(program, args, options).map_err(Into::into))
    }
}

/// Reach a call's transport, when it has one, before a program is started there.
async fn connect_transport(transport: Option<Arc<Transport>>, plugin: &str) -> Result<(), PluginError> {
    let Some(transport) = transport else { return Ok(()) };
    let detail = transport.connect().await?;
    tracing::debug!(plugin, transport = %detail, "transport connected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_on_the_host_path() {
        assert!(resolve_program("sh").unwrap().is_absolute());
        assert_eq!(resolve_program("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
        assert!(resolve_program("surely-not-installed-xyz").is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        // The shell forks a grandchild that would write the marker after the time limit.
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let mut command = Command::new("/bin/sh");
        command.args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        command.process_group(0);
        let prepared = Prepared {
            command,
            keep_alive: crate::sandbox::KeepAlive::none(),
            stdin: None,
            timeout: Duration::from_millis(200),
            cap: 100,
            shown: "sh".into(),
            permit: crate::plugins::quota::PluginQuotas::default().take("p", Counted::Child, 1).unwrap(),
        };
        let out = prepared.run("p").await.unwrap();
        assert!(out.timed_out);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[tokio::test]
    async fn captures_are_capped_but_drained() {
        let data = vec![b'x'; 100_000];
        let (shared, task) = capture(std::io::Cursor::new(data), 1000);
        let (text, truncated) = finish(&shared, task).await;
        assert_eq!(text.len(), 1000);
        assert!(truncated);
    }
}
