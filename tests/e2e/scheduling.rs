//! Scheduling through the real `obra` binary: a failure blocks its dependents (and a retry unblocks them),
//! dependency depth and cycles are refused without changing anything, a SIGKILLed `obra run` is resumed by
//! the next one without losing or duplicating an interaction (and a concurrent run is refused), and a rate
//! limit reported by the real claude CLI pauses the task until the reset, then resumes the same session.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::claude::setup;
use common::{Project, text};
use obra_testkit::{AnthropicReply, FakeAnthropic, FakeOllama, OllamaReply};
use serde_json::{Value, json};

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

fn status_of(project: &Project, id: i64) -> String {
    show(project, id)["task"]["status"].as_str().unwrap().to_string()
}

fn reason_of(project: &Project, id: i64) -> String {
    show(project, id)["task"]["status_reason"].as_str().unwrap_or_default().to_string()
}

/// Create a task with extra `task create` arguments; returns its id.
fn create(project: &Project, title: &str, extra: &[&str]) -> i64 {
    let args = [&["task", "create", title, "--description", "do it", "--json"][..], extra].concat();
    project.obra_json(&args, 0)["id"].as_i64().unwrap()
}

/// A project whose agent is echo-agent (no LLM, one iteration), with two user profiles: `ok` (a gate that
/// passes, no rules) and `broken` (a tests gate that passes only once `fixed` exists in the workspace, and a
/// rule that aborts, so the task fails).
fn project_with_profiles() -> Project {
    let project = Project::new();
    project.install_plugin("echo-agent");
    project.write_config(
        r#"agent:
  plugin: echo-agent
llm:
  provider: none
engine:
  max_iterations: 1
plugins:
  grants:
    echo-agent:
      commands: [ { program: echo, args: ["**"] } ]
      workspace: write
"#,
    );
    let profiles = project.home().join(".config/obra/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("ok.yaml"),
        "gates:\n  - plugin: response-format\n  - plugin: tests\n    enabled: true\n    config:\n      command: \"true\"\nrules: []\n",
    )
    .unwrap();
    std::fs::write(
        profiles.join("broken.yaml"),
        "gates:\n  - plugin: response-format\n  - plugin: tests\n    enabled: true\n    config:\n      command: \"test -f fixed || { echo 'fixed is missing'; exit 1; }\"\nrules:\n  - plugin: max-iterations\n    config:\n      action: abort\n",
    )
    .unwrap();
    project
}

#[test]
fn a_failure_blocks_its_dependents_until_it_is_retried_and_then_they_run_in_order() {
    let project = project_with_profiles();
    let a = create(&project, "Add parser", &["--profile", "broken", "--priority", "9"]);
    let b = create(&project, "Use parser", &["--profile", "ok", "--depends-on", &a.to_string()]);
    let c = create(&project, "Document parser", &["--profile", "ok", "--depends-on", &b.to_string()]);
    let d = create(&project, "Independent", &["--profile", "ok", "--priority", "1"]);

    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(4), "a task failed: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 completed") && stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains(&format!("obra task retry {a}")), "the run says what to retry: {stdout}");
    assert_eq!(status_of(&project, a), "failed");
    assert_eq!(status_of(&project, d), "completed", "an independent task still runs");
    assert_eq!(status_of(&project, b), "blocked");
    assert_eq!(status_of(&project, c), "blocked");
    let b_reason = reason_of(&project, b);
    assert!(b_reason.starts_with(&format!("blocked: depends on task {a} (Add parser), which failed")), "{b_reason}");
    let c_reason = reason_of(&project, c);
    assert_eq!(
        c_reason,
        format!("blocked: depends on task {b} (Use parser), blocked by task {a} (Add parser) which failed")
    );
    let blocked = project.obra_json(&["task", "list", "--status", "blocked", "--json"], 0);
    let ids: Vec<i64> = blocked.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![b, c]);
    let shown = project.obra(&["task", "show", &c.to_string()]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("blocked by task"), "{}", text(&shown));

    // Retrying a blocked task names the one to retry.
    let refused = project.obra(&["task", "retry", &c.to_string()]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&format!("obra task retry {a}")), "{}", text(&refused));

    // Retrying the root makes the chain pending; they wait for it.
    let retried = project.obra(&["task", "retry", &a.to_string()]);
    assert!(retried.status.success(), "{}", text(&retried));
    assert_eq!((status_of(&project, b), status_of(&project, c)), ("pending".into(), "pending".into()));
    assert_eq!(reason_of(&project, b), format!("unblocked: task {a} was retried"));

    // Fix the cause; the next run completes A, B, C in dependency order.
    std::fs::write(project.path().join("fixed"), "").unwrap();
    let summary = project.obra_json(&["run", "--json"], 0);
    let order: Vec<(i64, String)> = summary["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["task_id"].as_i64().unwrap(), e["status"].as_str().unwrap().to_string()))
        .collect();
    let done = |id| (id, "completed".to_string());
    assert_eq!(order, vec![done(a), done(b), done(c)]);
    assert!(summary["blocked"].as_array().unwrap().is_empty());
}

#[test]
fn too_deep_a_chain_and_a_cycle_are_refused_naming_them_and_nothing_changes() {
    let project = project_with_profiles();
    let one = create(&project, "one", &[]);
    let two = create(&project, "two", &["--depends-on", &one.to_string()]);
    let three = create(&project, "three", &["--depends-on", &two.to_string()]);
    let before = project.obra_json(&["task", "list", "--json"], 0);

    let limit = ["--set", "engine.max_dependency_depth=3"];
    let deep = project.obra(&[&limit[..], &["task", "create", "four", "--depends-on", &three.to_string()]].concat());
    assert_eq!(deep.status.code(), Some(1), "{}", text(&deep));
    let err = String::from_utf8_lossy(&deep.stderr);
    assert!(err.contains(&format!("{one} → {two} → {three} → new")), "the chain is named: {err}");
    assert!(err.contains("engine.max_dependency_depth (3)"), "the key and limit are named: {err}");

    let zero = create(&project, "zero", &[]);
    let before_update = project.obra_json(&["task", "list", "--json"], 0);
    let deep =
        project.obra(&[&limit[..], &["task", "update", &one.to_string(), "--depends-on", &zero.to_string()]].concat());
    assert_eq!(deep.status.code(), Some(1), "{}", text(&deep));
    assert!(
        String::from_utf8_lossy(&deep.stderr).contains(&format!("{zero} → {one} → {two} → {three}")),
        "{}",
        text(&deep)
    );

    let cycle = project.obra(&["task", "update", &one.to_string(), "--depends-on", &three.to_string()]);
    assert_eq!(cycle.status.code(), Some(1), "{}", text(&cycle));
    let err = String::from_utf8_lossy(&cycle.stderr);
    assert!(err.contains(&format!("{three} → {two} → {one}")), "the cycle is named: {err}");

    assert_eq!(project.obra_json(&["task", "list", "--json"], 0), before_update, "nothing was changed");
    assert_eq!(before_update.as_array().unwrap().len(), before.as_array().unwrap().len() + 1);
}

/// A project whose echo-agent runs a slow `echo` (a script first on obra's PATH that sleeps, then echoes).
fn project_with_a_slow_agent(seconds: u32) -> Project {
    let mut project = Project::with_echo_agent("true", "  []");
    project.write_config(
        &(std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap()
            + "agents:\n  echo-agent:\n    mode: echo\n"),
    );
    let bin = project.home().join("slow-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("echo");
    std::fs::write(&script, format!("#!/bin/sh\n/bin/sleep {seconds}\nexec /bin/echo \"$@\"\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    project.set_env("PATH", &path);
    project
}

/// Wait until task `id` has an interaction under way (its agent is running) in the `obra run` `child`.
fn wait_for_a_running_interaction(project: &Project, id: i64, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let shown = show(project, id);
        if shown["interactions"].as_array().unwrap().iter().any(|i| i["interaction"]["status"] == "running") {
            return;
        }
        assert!(Instant::now() < deadline, "no interaction started: {shown}");
        assert!(child.try_wait().unwrap().is_none(), "obra run ended before its agent ran");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_stops_the_run_after_the_current_task_and_leaves_the_rest_pending() {
    let project = project_with_a_slow_agent(3);
    let first = project.create_task("First", "Takes a while");
    let second = project.create_task("Second", "Takes a while too");
    let mut run = project.command(&["run", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_a_running_interaction(&project, first, &mut run);

    let sent = std::process::Command::new("kill").args(["-INT", &run.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["stopped_because"], "stopped by the user", "{summary}");
    assert_eq!(summary["executions"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(status_of(&project, first), "completed", "the current task finished");
    assert_eq!(status_of(&project, second), "pending");
    assert!(show(&project, second)["interactions"].as_array().unwrap().is_empty());
}

#[test]
fn a_killed_run_is_resumed_by_the_next_without_losing_or_duplicating_an_interaction() {
    let project = project_with_a_slow_agent(4);
    let id = project.create_task("Slow work", "Takes a while");

    let mut first = project.command(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_a_running_interaction(&project, id, &mut first);

    // A second run of the same project is refused while the first holds it, naming the first's pid.
    let second = project.obra(&["run"]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(String::from_utf8_lossy(&second.stderr).contains(&format!("pid {}", first.id())), "{}", text(&second));

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(status_of(&project, id), "running", "a killed process leaves the task as it was");

    let summary = project.obra_json(&["run", "--json"], 0);
    assert_eq!(summary["executions"].as_array().unwrap().len(), 1, "{summary}");
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    let rows: Vec<&Value> = shown["interactions"].as_array().unwrap().iter().map(|i| &i["interaction"]).collect();
    let statuses: Vec<&str> = rows.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["interrupted", "finished"], "one interrupted, exactly one new one: {shown}");
    assert!(rows[0]["finished_at"].is_string());
    assert!(rows[0]["summary"].as_str().unwrap().contains("interrupted"), "{shown}");
    assert_eq!(shown["interactions"][1]["decision"]["action"], "proceed");
}

/// A 429 whose message asks for a 3 s wait (the CLI, its own retries off, passes the API's message on, and
/// the plugin reads the wait from it): more than the 1 s the retry policy sleeps through.
fn rate_limited_for_3_seconds() -> AnthropicReply {
    AnthropicReply::error(
        429,
        "rate_limit_error",
        "This request would exceed your organization's rate limit; retry after 3 seconds.",
    )
    .retry_after(3)
}

fn opinion() -> OllamaReply {
    OllamaReply::json(&json!({ "confidence": 0.95, "reasoning": "done", "concerns": [] }))
}

#[test]
fn a_rate_limit_from_the_real_claude_cli_pauses_the_task_until_the_reset_and_resumes_its_session() {
    let anthropic = FakeAnthropic::start([
        rate_limited_for_3_seconds(),
        AnthropicReply::write_file("hello.txt", "hello from claude\n"),
        AnthropicReply::text("Created hello.txt."),
    ]);
    let ollama = FakeOllama::start([opinion()]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "grep -qx 'hello from claude' hello.txt", "") else {
        return;
    };
    let id = project.create_task("Create hello.txt", "Write 'hello from claude' to hello.txt");

    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("rate limited until"), "the pause is reported: {}", text(&out));
    assert!(
        format!("{stdout}{stderr}").contains(&format!("for the rate limit of task {id} to reset")),
        "the wait is announced: {}",
        text(&out)
    );
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    assert_eq!(shown["task"]["resume_after"], Value::Null);
    let rows: Vec<&Value> = shown["interactions"].as_array().unwrap().iter().map(|i| &i["interaction"]).collect();
    let outcomes: Vec<&str> = rows.iter().map(|i| i["outcome"].as_str().unwrap_or("")).collect();
    assert_eq!(outcomes, vec!["rate-limited", "success"], "{shown}");
    let reported: Value = serde_json::from_str(rows[0]["result_json"].as_str().unwrap()).unwrap();
    assert_eq!(reported["retry_after_ms"], 3000, "the wait came from the agent: {reported}");
    let first_session = rows[0]["session_id"].as_str().expect("the rate-limited run named its session");
    assert_eq!(rows[1]["session_id"].as_str(), Some(first_session), "the same agent session resumed: {shown}");
    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello from claude\n");
}

#[test]
fn run_no_wait_stops_at_a_rate_limit_and_an_explicit_execute_resumes_the_session_at_once() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::error(429, "rate_limit_error", "Usage limit reached; retry after 600 seconds.")
            .retry_after(600),
        AnthropicReply::write_file("hello.txt", "hello from claude\n"),
        AnthropicReply::text("Created hello.txt."),
    ]);
    let ollama = FakeOllama::start([opinion()]);
    let Some((project, _env)) = setup(&anthropic, &ollama, "grep -qx 'hello from claude' hello.txt", "") else {
        return;
    };
    let id = project.create_task("Create hello.txt", "Write 'hello from claude' to hello.txt");

    let summary = project.obra_json(&["run", "--no-wait", "--json"], 0);
    let stopped = summary["stopped_because"].as_str().unwrap();
    assert!(stopped.contains(&format!("task {id} waits until")) && stopped.contains("--no-wait"), "{summary}");
    assert_eq!(summary["executions"][0]["status"], "pending", "{summary}");
    let task = &show(&project, id)["task"];
    assert_eq!(task["status"], "pending");
    assert!(task["resume_after"].is_string(), "{task}");
    assert!(task["status_reason"].as_str().unwrap().starts_with("rate limited until "), "{task}");
    let session = task["session_id"].as_str().expect("the session is kept").to_string();

    // Ten minutes before the reset, nothing is handed out, and every view says why.
    let ready = project.obra_json(&["task", "list", "--ready", "--json"], 0);
    assert!(ready.as_array().unwrap().is_empty(), "not handed out before the reset: {ready}");
    let ready = project.obra(&["task", "list", "--ready"]);
    let ready = String::from_utf8_lossy(&ready.stdout);
    assert!(ready.contains("No task is ready") && ready.contains(&format!("task {id} rate-limited until ")), "{ready}");
    let status = project.obra_json(&["status", "--json"], 0);
    assert_eq!(status["waiting"][0]["task_id"], id, "{status}");
    assert_eq!(status["waiting"][0]["kind"], "rate_limited", "{status}");
    assert_eq!(status["waiting"][0]["until"], task["resume_after"], "{status}");
    assert_eq!(status["tasks"][0]["waiting"]["kind"], "rate_limited", "{status}");
    let status = project.obra(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("— rate-limited until "), "{}", text(&status));
    let listed = project.obra(&["task", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("— rate-limited until "), "{}", text(&listed));
    let again = project.obra_json(&["run", "--no-wait", "--json"], 0);
    assert!(again["executions"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["waiting"][0]["kind"], "rate_limited", "{again}");
    let again = project.obra(&["run", "--no-wait"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(&format!("task {id} is rate-limited until ")),
        "the run that ran nothing names the reset: {}",
        text(&again)
    );

    // A human may run it at once; it resumes the same session.
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    assert_eq!(shown["interactions"][1]["interaction"]["session_id"].as_str(), Some(session.as_str()), "{shown}");
}

#[test]
fn status_list_and_run_say_why_each_task_waits() {
    let project = Project::with_echo_agent("echo 'assertion failed'; exit 1", "  - plugin: max-iterations\n");
    let paused = create(&project, "paused", &[]);
    let behind = create(&project, "behind", &["--depends-on", &paused.to_string()]);
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let bp = project.obra_json(&["breakpoint", "list", "--json"], 0)[0]["id"].as_i64().unwrap();

    // A run with only the paused task (and its dependent) runs nothing and names the breakpoint.
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 execution(s)"), "{}", text(&out));
    assert!(stdout.contains(&format!("task {paused} is paused at breakpoint {bp} (max-iterations)")), "{}", text(&out));
    let summary = project.obra_json(&["run", "--json"], 0);
    let waiting = summary["waiting"].as_array().unwrap();
    assert_eq!(waiting.len(), 2, "{summary}");
    assert_eq!(
        waiting[0],
        json!({ "task_id": paused, "kind": "paused", "breakpoint_id": bp, "rule": "max-iterations" })
    );
    assert_eq!(
        waiting[1],
        json!({ "task_id": behind, "kind": "blocked_by", "waits_for": paused, "status": "paused", "via": paused })
    );

    let status = project.obra(&["status"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains(&format!("paused at breakpoint {bp} (max-iterations)")), "{}", text(&status));
    assert!(shown.contains(&format!("blocked by task {paused} (paused)")), "{}", text(&status));
    let ready = project.obra(&["task", "list", "--ready"]);
    let ready = String::from_utf8_lossy(&ready.stdout);
    assert!(ready.contains(&format!("task {paused} paused at breakpoint {bp}")), "{ready}");
    let listed = project.obra_json(&["task", "list", "--json"], 0);
    let kinds: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["waiting"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"paused") && kinds.contains(&"blocked_by"), "{listed}");
}

/// Live processes whose command line is exactly `sleep <secs>`.
fn sleeping(secs: u64) -> usize {
    let wanted = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
        .count()
}

/// Issue 17 item 4: `obra task cancel` of a task another `obra` is running reaches that loop. The agent (a
/// command agent that writes a marker and sleeps) and its process tree are stopped, the executing `obra` ends
/// with exit code 5, and nothing it writes afterwards brings the task back: it stays `cancelled` with no open
/// breakpoint, and a later `obra run` leaves it alone. `database_url` runs it on PostgreSQL.
fn cancel_reaches_a_running_task(database_url: Option<&str>, sleep_secs: u64) {
    let mut project = Project::uninitialised();
    if let Some(url) = database_url {
        project.set_env("OBRA_DATABASE__URL", url);
    }
    let git = std::process::Command::new("git").current_dir(project.path()).args(["init", "-q"]).status().unwrap();
    assert!(git.success());
    let out = project.obra(&["init", "--name", "cancel"]);
    assert!(out.status.success(), "{}", text(&out));
    project.write_config(&format!(
        r#"agent:
  plugin: command
  timeout_secs: 300
agents:
  command:
    program: sh
    args: ["-c", "echo started > started.txt; sleep {sleep_secs}; echo late > late.txt"]
llm:
  provider: none
engine:
  max_iterations: 3
gates:
  - plugin: tests
    enabled: true
    config:
      command: "echo gate > gate-ran.txt"
plugins:
  grants:
    command:
      commands: [{{ program: sh, args: ["-c", "*"] }}]
      env: [PATH]
"#
    ));
    let id = create(&project, "long", &[]);
    let mut running = project.command(&["task", "execute", &id.to_string()]);
    let child = running.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = project.path().join("started.txt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the agent never started");
    assert_eq!(status_of(&project, id), "running");
    // A rollback while a loop works in the tree is refused by the run lock, naming the holder.
    let checkpoints = project.obra_json(&["checkpoint", "list", "--json"], 0);
    let checkpoint = checkpoints[0]["id"].as_i64().unwrap_or_else(|| panic!("a checkpoint: {checkpoints}"));
    let out = project.obra(&["checkpoint", "rollback", &checkpoint.to_string(), "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already running tasks"), "{}", text(&out));
    assert!(started.exists(), "the refused rollback changed nothing");

    let out = project.obra(&["task", "cancel", &id.to_string(), "--reason", "changed my mind"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("It was running"), "{}", text(&out));

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "the running obra ends as cancelled: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is cancelled"), "{}", text(&out));
    assert_eq!(sleeping(sleep_secs), 0, "the agent's sleep outlived the cancel");
    assert!(!project.path().join("late.txt").exists(), "the agent went on after the cancel");
    assert!(!project.path().join("gate-ran.txt").exists(), "the gates ran for a cancelled task");

    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "cancelled", "{shown}");
    assert_eq!(shown["task"]["status_reason"], "changed my mind", "{shown}");
    let interactions = shown["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 1, "the stopped run is kept, no new one started: {shown}");
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    assert_eq!(open.as_array().map(Vec::len), Some(0), "no breakpoint for a cancelled task: {open}");
    // A later run does not pick it up, and it is still cancelled after.
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(status_of(&project, id), "cancelled");
    // The user can bring it back.
    let out = project.obra(&["task", "retry", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(status_of(&project, id), "pending");
}

#[test]
fn cancelling_a_running_task_stops_its_loop_and_nothing_brings_it_back_sqlite() {
    cancel_reaches_a_running_task(None, 7231);
}

#[test]
fn cancelling_a_running_task_stops_its_loop_and_nothing_brings_it_back_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(database) = runtime.block_on(obra_testkit::postgres::TestDatabase::create()) else { return };
    cancel_reaches_a_running_task(Some(database.url()), 7232);
}
