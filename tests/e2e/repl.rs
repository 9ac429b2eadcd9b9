//! `obra interactive` through a real pseudo-terminal (commands, `use`, errors, Tab completion, history across
//! runs, breakpoints announced as they open) and with stdin piped.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Project, text};
use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

/// Start `obra interactive` in a pty, with its history under `state`.
fn repl(project: &Project, state: &Path) -> PtySession {
    let mut cmd = project.command(&["interactive"]);
    cmd.env("XDG_STATE_HOME", state).env("TERM", "xterm");
    let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).expect("start obra interactive in a pty");
    session.exp_string("obra> ").expect("the first prompt");
    session
}

/// Type a line and press Enter.
fn type_line(s: &mut PtySession, line: &str) {
    s.send(line).unwrap();
    s.send("\r").unwrap();
    s.flush().unwrap();
}

/// Wait for `needle` in the pty output, with the output so far in the panic message.
fn expect(s: &mut PtySession, needle: &str) -> String {
    s.exp_string(needle).unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"))
}

fn exit_and_check(mut s: PtySession) {
    type_line(&mut s, "exit");
    expect(&mut s, "Goodbye!");
    s.exp_eof().expect("obra interactive ends after exit");
    match s.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("obra interactive did not exit normally: {other:?}"),
    }
}

fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("obra-e2e-state-").tempdir().unwrap()
}

fn history_file(state: &Path) -> PathBuf {
    state.join("obra").join("history")
}

#[test]
fn a_session_runs_commands_switches_project_completes_and_keeps_its_history() {
    let project = Project::new();
    let state = state_dir();
    let mut s = repl(&project, state.path());

    type_line(&mut s, "task create \"hello world\"");
    expect(&mut s, "Created task 1: hello world");
    type_line(&mut s, "task list");
    expect(&mut s, "hello world");

    type_line(&mut s, "use scratch");
    expect(&mut s, "Using project #1: scratch");
    expect(&mut s, "obra[scratch]> ");

    type_line(&mut s, "use nowhere");
    expect(&mut s, "no project \"nowhere\"; known projects: #1 scratch");

    type_line(&mut s, "tsk list");
    expect(&mut s, "unrecognized subcommand 'tsk'");
    expect(&mut s, "[exit code 2]");
    type_line(&mut s, "task show 99");
    expect(&mut s, "error: ");
    expect(&mut s, "[exit code 1]");

    // Tab completes a partial command from the clap tree, then the line runs.
    s.send("ta\t").unwrap();
    s.flush().unwrap();
    expect(&mut s, "task ");
    type_line(&mut s, "show 1");
    expect(&mut s, "Task 1: hello world");

    type_line(&mut s, "status");
    expect(&mut s, "Project \"scratch\"");
    exit_and_check(s);

    let history = std::fs::read_to_string(history_file(state.path())).expect("the history file exists");
    for line in ["task create \"hello world\"", "use scratch", "task show 1", "status"] {
        assert!(history.contains(line), "{line:?} missing from the history:\n{history}");
    }
    assert!(!history.lines().any(|l| l == "exit"), "exit is not kept:\n{history}");

    // A second session recalls the last command with the up arrow.
    let mut s = repl(&project, state.path());
    s.send("\x1b[A").unwrap();
    s.flush().unwrap();
    expect(&mut s, "status");
    s.send("\r").unwrap();
    s.flush().unwrap();
    expect(&mut s, "Project \"scratch\"");
    exit_and_check(s);
}

/// echo-agent (a well-behaved agent), no LLM, one iteration, a tests gate that always fails, and the
/// max-iterations rule: executing a task opens a breakpoint.
fn project_that_pauses() -> Project {
    Project::with_echo_agent("echo 'assertion failed'; exit 1", "  - plugin: max-iterations")
}

#[test]
fn breakpoints_opened_by_another_process_are_announced_and_listed_at_start() {
    let project = project_that_pauses();
    let id = project.create_task("paused", "the tests never pass");
    let state = state_dir();
    let mut s = repl(&project, state.path());
    // Let the watcher take its first look at the store before the breakpoint opens.
    std::thread::sleep(Duration::from_secs(2));
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    expect(&mut s, &format!("opened on task {id} (max-iterations)"));
    expect(&mut s, "resolve with: breakpoint resolve 1 --approve|--reject|--feedback");
    // Still usable: the announcement did not eat the prompt.
    type_line(&mut s, "breakpoint list");
    expect(&mut s, "max-iterations");
    exit_and_check(s);

    // A new session lists the breakpoint that is already open, once.
    let mut s = repl(&project, state.path());
    expect(&mut s, &format!("breakpoint 1 is open on task {id}"));
    exit_and_check(s);
}

fn piped(project: &Project, input: &str) -> std::process::Output {
    let state = state_dir();
    let mut cmd = project.command(&["interactive"]);
    cmd.env("XDG_STATE_HOME", state.path()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start obra interactive");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!history_file(state.path()).exists(), "piped input is not written to the history");
    out
}

#[test]
fn piped_lines_run_in_turn_without_a_prompt_and_the_last_failure_sets_the_exit_code() {
    let project = Project::new();
    let out = piped(&project, "task create \"from a pipe\"\nuse 1\ntask list\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Created task 1: from a pipe"), "{}", text(&out));
    assert!(stdout.contains("Using project #1: scratch"), "{}", text(&out));
    assert!(stdout.contains("from a pipe"), "{}", text(&out));
    assert!(!stdout.contains("obra>") && !stdout.contains("Goodbye"), "no prompt decoration: {}", text(&out));

    let out = piped(&project, "bogus\ntask show 99\ntask list\n");
    assert_eq!(out.status.code(), Some(1), "the last failing line was `task show 99`: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unrecognized subcommand 'bogus'"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from a pipe"), "later lines still ran: {}", text(&out));

    let out = piped(&project, "status\nexit\ntask create never\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Created task"), "nothing runs after exit");
}
