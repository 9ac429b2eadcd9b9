//! Run programs through the host (`obra:plugin/process`).
//!
//! Every program and argument list must match a command pattern granted by both the plugin's manifest
//! (`[capabilities] commands`) and the user's config; the child sees only the environment variables the grant
//! passes through. Paths (`cwd`) are relative to the workspace root.
//!
//! ```no_run
//! use obra_plugin_sdk::process;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), obra_plugin_sdk::PluginError> {
//! // Run to completion with the grant's default limits:
//! let out = process::run("git", ["status", "--short"])?;
//! println!("{}", out.stdout);
//!
//! // With options:
//! let out = process::Command::new("sh")
//!     .args(["-c", "cargo test"])
//!     .cwd("crates/core")
//!     .env("RUST_BACKTRACE", "1")
//!     .timeout(Duration::from_secs(600))
//!     .max_output_bytes(256 * 1024)
//!     .run()?;
//! if !out.success() {
//!     println!("failed:\n{}", out.tail(4000));
//! }
//!
//! // Stream a child's output line by line:
//! let child = process::spawn("claude", ["--version"])?;
//! for line in child.lines() {
//!     println!("{}", line?);
//! }
//! let status = child.wait()?;
//! # let _ = status; Ok(()) }
//! ```

use std::time::Duration;

use crate::PluginError;
use crate::bindings::caps::obra::plugin::process as wit;
use crate::bindings::caps::obra::plugin::types::KeyValue;

/// What a finished program left behind: exit code or signal, captured output (each stream at most the output
/// cap), whether output was cut, whether the host killed it at its time limit, and how long it ran.
pub type Output = wit::ProcessOutput;

impl Output {
    /// Whether the program exited with code 0 (and was not killed).
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// The last `max_bytes` bytes of stdout followed by stderr (cut at a character boundary), for error
    /// messages and feedback.
    pub fn tail(&self, max_bytes: usize) -> String {
        let mut all = String::with_capacity(self.stdout.len() + self.stderr.len() + 1);
        all.push_str(&self.stdout);
        if !self.stderr.is_empty() {
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&self.stderr);
        }
        tail_str(&all, max_bytes).to_string()
    }
}

/// The last `max_bytes` bytes of `s`, starting at a character boundary.
///
/// ```
/// assert_eq!(obra_plugin_sdk::process::tail_str("hello world", 5), "world");
/// assert_eq!(obra_plugin_sdk::process::tail_str("h\u{e9}", 1), "");
/// ```
pub fn tail_str(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut start = s.len() - max_bytes;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A program to run, with its arguments and options; finish with [`Command::run`] or [`Command::spawn`].
#[derive(Debug, Clone)]
pub struct Command {
    program: String,
    args: Vec<String>,
    options: wit::RunOptions,
}

impl Command {
    /// A command running `program` (looked up on the host's `PATH`) with no arguments, stdin from /dev/null,
    /// in the workspace root, with the grant's time and output limits.
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            options: wit::RunOptions {
                cwd: None,
                env: Vec::new(),
                stdin: None,
                timeout_ms: None,
                max_output_bytes: None,
            },
        }
    }

    /// Add one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Run in this directory, relative to the workspace root (not inside `.obra/` or the git directory).
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.options.cwd = Some(dir.into());
        self
    }

    /// Set an environment variable for the child; its name must be granted (`[capabilities] env`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.env.push(KeyValue { key: key.into(), value: value.into() });
        self
    }

    /// Write this text to the child's standard input (the default is /dev/null).
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.options.stdin = Some(text.into());
        self
    }

    /// Kill the child after this long (the grant's limit still applies).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.options.timeout_ms = Some(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Kill the child after this many milliseconds (the grant's limit still applies).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.options.timeout_ms = Some(ms);
        self
    }

    /// Keep at most this many bytes of each of stdout and stderr (the grant's cap still applies).
    pub fn max_output_bytes(mut self, bytes: u64) -> Self {
        self.options.max_output_bytes = Some(bytes);
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments so far.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// Run to completion and capture the output. A program that exits non-zero is an `Ok` [`Output`]; `Err` means
    /// it could not run (denied by the grant, not found, ...).
    pub fn run(&self) -> Result<Output, PluginError> {
        wit::run(&self.program, &self.args, &self.options)
    }

    /// Start the program and read its standard output line by line.
    pub fn spawn(&self) -> Result<Child, PluginError> {
        wit::spawn(&self.program, &self.args, &self.options)
            .map(|inner| Child { inner, done: std::cell::Cell::new(false) })
    }
}

/// A command for `program` with no arguments yet: `process::command("git").args(["log", "-1"]).run()`.
pub fn command(program: impl Into<String>) -> Command {
    Command::new(program)
}

/// Run `program` with `args` to completion with default options (see [`Command`] for options).
pub fn run<I, S>(program: &str, args: I) -> Result<Output, PluginError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Command::new(program).args(args).run()
}

/// Start `program` with `args` with default options and stream its standard output (see [`Command::spawn`]).
pub fn spawn<I, S>(program: &str, args: I) -> Result<Child, PluginError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Command::new(program).args(args).spawn()
}

/// A running child process. Read its output with [`Child::lines`] or [`Child::next_line`], then collect its
/// exit status and stderr with [`Child::wait`]. Dropping it without waiting lets the host kill it.
#[derive(Debug)]
pub struct Child {
    inner: wit::Child,
    done: std::cell::Cell<bool>,
}

impl Child {
    /// The next line of standard output (without its line ending), or `None` at the end of output. Fails with
    /// a `timeout` error when the child's time limit passes (the host then kills it).
    pub fn next_line(&self) -> Result<Option<String>, PluginError> {
        if self.done.get() {
            return Ok(None);
        }
        let line = self.inner.next_line();
        if !matches!(line, Ok(Some(_))) {
            self.done.set(true);
        }
        line
    }

    /// An iterator over the remaining lines of standard output. It yields an error at most once and then ends.
    pub fn lines(&self) -> Lines<'_> {
        Lines { child: self }
    }

    /// Wait for the child to exit; the returned [`Output`] has its exit status and stderr (`stdout` is empty: it
    /// was read through the lines).
    pub fn wait(&self) -> Result<Output, PluginError> {
        self.inner.wait()
    }

    /// Kill the child now.
    pub fn kill(&self) {
        self.inner.kill()
    }
}

/// What a reader wants after a line of output (see [`Child::read_to_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading.
    Continue,
    /// Kill the child now and stop reading.
    Stop,
}

/// How a child whose output was read to the end ended (see [`Child::read_to_end`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ended {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether the host stopped it at its time limit.
    pub timed_out: bool,
    /// Whether the reader stopped it ([`Flow::Stop`]).
    pub stopped: bool,
    /// Its standard error (at most the output cap).
    pub stderr: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

impl Child {
    /// Give every line of standard output to `on_line` (which may stop the child), then wait for the child.
    /// A time limit passing while reading ends with `timed_out` (the host killed it); when waiting fails after
    /// a stop or a timeout, `timeout_ms` stands in for the run time. Any other failure kills the child and is
    /// returned with `what` (e.g. `"claude"`) in its context.
    pub fn read_to_end(
        &self,
        what: &str,
        timeout_ms: u64,
        mut on_line: impl FnMut(&str) -> Flow,
    ) -> Result<Ended, PluginError> {
        let (mut timed_out, mut stopped) = (false, false);
        loop {
            match self.next_line() {
                Ok(Some(line)) => {
                    if on_line(&line) == Flow::Stop {
                        self.kill();
                        stopped = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(PluginError::Timeout(msg)) => {
                    crate::log::warn(&format!("{what} hit its time limit: {msg}"));
                    timed_out = true;
                    break;
                }
                Err(err) => {
                    self.kill();
                    return Err(err.context(format!("reading the output of {what}")));
                }
            }
        }
        match self.wait() {
            Ok(out) => Ok(Ended {
                exit_code: out.exit_code,
                signal: out.signal,
                timed_out: timed_out || out.timed_out,
                stopped,
                stderr: out.stderr,
                duration_ms: out.duration_ms,
            }),
            Err(err) if timed_out || stopped => {
                crate::log::warn(&format!("waiting for {what} after stopping it: {}", err.message()));
                Ok(Ended { timed_out, stopped, duration_ms: timeout_ms, ..Ended::default() })
            }
            Err(err) => Err(err.context(format!("waiting for {what}"))),
        }
    }
}

/// Iterator over a [`Child`]'s output lines; see [`Child::lines`].
#[derive(Debug)]
pub struct Lines<'a> {
    child: &'a Child,
}

impl Iterator for Lines<'_> {
    type Item = Result<String, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.child.next_line().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(stdout: &str, stderr: &str) -> Output {
        Output {
            exit_code: Some(1),
            signal: None,
            stdout: stdout.into(),
            stderr: stderr.into(),
            truncated: false,
            timed_out: false,
            duration_ms: 1,
        }
    }

    #[test]
    fn tail_joins_stdout_and_stderr() {
        assert_eq!(output("a", "b").tail(100), "a\nb");
        assert_eq!(output("abc\n", "").tail(2), "c\n");
        assert!(!output("", "").success());
    }

    #[test]
    fn builder_collects_options() {
        let c = Command::new("sh")
            .arg("-c")
            .arg("true")
            .cwd("sub")
            .env("A", "1")
            .stdin("x")
            .timeout(Duration::from_secs(2))
            .max_output_bytes(10);
        assert_eq!(c.program(), "sh");
        assert_eq!(c.get_args(), ["-c", "true"]);
        assert_eq!(c.options.timeout_ms, Some(2000));
        assert_eq!(c.options.cwd.as_deref(), Some("sub"));
        assert_eq!(c.options.env[0].key, "A");
    }
}
