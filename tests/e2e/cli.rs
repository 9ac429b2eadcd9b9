//! The CLI end to end: projects, task management, `obra run`, `obra logs`, completions, and bad input that
//! must leave the store unchanged. `--json` output is parsed back everywhere.

mod common;

use common::{Project, text};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ids(list: &serde_json::Value) -> Vec<i64> {
    list.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect()
}

#[test]
fn projects_are_created_listed_shown_and_chosen_by_flag_or_by_use() {
    let project = Project::new();
    let other_dir = tempfile::tempdir().unwrap();
    let other_path = other_dir.path().to_str().unwrap();
    let created = project.obra_json(
        &[
            "project",
            "create",
            "other",
            "--workspace",
            other_path,
            "--description",
            "a second one",
            "--profile",
            "minimal",
            "--json",
        ],
        0,
    );
    assert_eq!(created["name"], "other");
    assert_eq!(created["profile"], "minimal");
    let other_id = created["id"].as_i64().unwrap();

    let list = project.obra_json(&["project", "list", "--json"], 0);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<&str> =
        list.iter().filter(|p| p["current"] == true).map(|p| p["project"]["name"].as_str().unwrap()).collect();
    assert_eq!(current, vec!["scratch"], "the project whose workspace holds the current directory is current");

    // --project chooses another project for one command.
    let task = project.obra_json(&["task", "create", "in other", "--project", "other", "--json"], 0);
    assert_eq!(task["project_id"].as_i64(), Some(other_id));
    let here = project.obra_json(&["task", "list", "--json"], 0);
    assert!(here.as_array().unwrap().is_empty(), "the task went to the other project: {here}");
    // A task of another project is not reachable through this one.
    let out = project.obra(&["task", "show", &task["id"].to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("belongs to project \"other\""), "{}", text(&out));

    // `project use` makes it current for later commands.
    let out = project.obra(&["project", "use", "other"]);
    assert!(out.status.success(), "{}", text(&out));
    let there = project.obra_json(&["task", "list", "--json"], 0);
    assert_eq!(ids(&there), vec![task["id"].as_i64().unwrap()]);
    let shown = project.obra_json(&["project", "show", "--json"], 0);
    assert_eq!(shown["project"]["name"], "other");
    assert_eq!(shown["project"]["description"], "a second one");
    assert_eq!(shown["task_counts"]["pending"], 1);

    // An unknown project is an error that lists the real ones.
    let out = project.obra(&["task", "list", "--project", "othr"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("no project \"othr\"") && err.contains("did you mean \"other\"?"), "{err}");
    // A project name is unique.
    let out = project.obra(&["project", "create", "other", "--workspace", other_path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("already exists"), "{}", text(&out));
}

#[test]
fn outside_any_project_the_user_store_holds_projects() {
    let scratch = Project::uninitialised();
    let out = scratch.obra(&["project", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No projects"), "{}", text(&out));
    let created = scratch.obra_json(&["project", "create", "solo", "--json"], 0);
    assert_eq!(
        created["workspace"].as_str().map(std::path::PathBuf::from),
        Some(scratch.path().canonicalize().unwrap())
    );
    let task = scratch.obra_json(&["task", "create", "first", "--json"], 0);
    assert_eq!(task["project_id"], created["id"]);
    // The store is the user's, not a .obra/ in the directory.
    assert!(!scratch.path().join(".obra").exists());
}

#[test]
fn task_flags_filters_updates_and_the_dependency_graph() {
    let project = Project::new();
    let a = project.obra_json(&["task", "create", "Build", "--priority", "3", "--json"], 0);
    let b = project.obra_json(
        &["task", "create", "Test \"all\"", "--priority", "8", "--depends-on", "1", "--max-iterations", "4", "--json"],
        0,
    );
    let c =
        project.obra_json(&["task", "create", "Deploy", "--depends-on", "1,2", "--profile", "minimal", "--json"], 0);
    assert_eq!(b["max_iterations"], 4);
    assert_eq!(b["depends_on"], "[1]");
    assert_eq!(c["profile"], "minimal");
    let (a, b, c) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap(), c["id"].as_i64().unwrap());

    assert_eq!(ids(&project.obra_json(&["task", "list", "--json"], 0)), vec![b, c, a], "priority first");
    assert_eq!(ids(&project.obra_json(&["task", "list", "--min-priority", "5", "--json"], 0)), vec![b, c]);
    assert_eq!(ids(&project.obra_json(&["task", "list", "--search", "dEpLoY", "--json"], 0)), vec![c]);
    assert_eq!(ids(&project.obra_json(&["task", "list", "--limit", "1", "--json"], 0)), vec![b]);
    assert_eq!(ids(&project.obra_json(&["task", "list", "--ready", "--json"], 0)), vec![a], "only Build can run");

    let updated = project.obra_json(&["task", "update", &a.to_string(), "--priority", "9", "--json"], 0);
    assert_eq!(updated["priority"], 9);

    let tree = project.obra(&["task", "deps"]);
    assert!(tree.status.success(), "{}", text(&tree));
    let tree = String::from_utf8_lossy(&tree.stdout).into_owned();
    assert!(tree.starts_with(&format!("{c}: Deploy [pending]\n├── {a}: Build [pending]\n└── {b}: Test")), "{tree}");
    let dot = String::from_utf8_lossy(&project.obra(&["task", "deps", "--format", "dot"]).stdout).into_owned();
    assert!(dot.contains(&format!("t{a} -> t{b};")) && dot.contains(&format!("t{b} -> t{c};")), "{dot}");
    let mermaid = String::from_utf8_lossy(&project.obra(&["task", "deps", "--format", "mermaid"]).stdout).into_owned();
    assert!(mermaid.starts_with("flowchart LR") && mermaid.contains(&format!("t{a} --> t{c}")), "{mermaid}");
    let graph = project.obra_json(&["task", "deps", &b.to_string(), "--json"], 0);
    assert_eq!(graph["edges"], serde_json::json!([{ "from": a, "to": b }]), "only B and what it needs");

    // A cycle is refused, named, and nothing changes.
    let out = project.obra(&["task", "update", &a.to_string(), "--depends-on", &c.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("cycle") || stderr(&out).contains("already depends on"), "{}", text(&out));
    let shown = project.obra_json(&["task", "show", &a.to_string(), "--json"], 0);
    assert_eq!(shown["task"]["depends_on"], "[]");

    // Cancel and retry.
    let out = project.obra(&["task", "cancel", &c.to_string(), "--reason", "not needed"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ids(&project.obra_json(&["task", "list", "--status", "cancelled", "--json"], 0)), vec![c]);
    let out = project.obra(&["task", "cancel", &c.to_string()]);
    assert_eq!(out.status.code(), Some(1), "cancelling twice is refused: {}", text(&out));
    let retried = project.obra_json(&["task", "retry", &c.to_string(), "--json"], 0);
    assert_eq!(retried["status"], "pending");
    let out = project.obra(&["task", "retry", &a.to_string()]);
    assert_eq!(out.status.code(), Some(1), "a pending task cannot be retried: {}", text(&out));
}

#[test]
fn run_executes_ready_tasks_in_dependency_order_and_logs_show_it() {
    let project = Project::with_echo_agent("true", "  []");
    let first = project.create_task("first", "one");
    let second = project
        .obra_json(&["task", "create", "second", "--depends-on", &first.to_string(), "--priority", "10", "--json"], 0)
        ["id"]
        .as_i64()
        .unwrap();
    let third = project.create_task("third", "three");
    let summary = project.obra_json(&["run", "--json"], 0);
    let order: Vec<i64> =
        summary["executions"].as_array().unwrap().iter().map(|o| o["task_id"].as_i64().unwrap()).collect();
    // `second` has the highest priority but waits for `first`; once `first` completes it goes before `third`.
    assert_eq!(order, vec![first, second, third], "{summary}");
    assert!(summary["executions"].as_array().unwrap().iter().all(|o| o["status"] == "completed"), "{summary}");
    assert_eq!(summary["stopped_because"], "no task is ready");

    let out = project.obra(&["logs", "--activity", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["task_created", "iteration_started", "iteration_finished", "decision"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let only_second = project.obra(&["logs", "--activity", "--task", &second.to_string(), "--json"]);
    assert!(
        String::from_utf8_lossy(&only_second.stdout)
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["task_id"] == second),
        "{}",
        text(&only_second)
    );
    let limited = project.obra(&["logs", "--activity", "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&limited.stdout).lines().count(), 2, "{}", text(&limited));
}

/// An agent that reports no usage (echo-agent): each run says so, no token count or cost is made up, and
/// `status` says none was reported.
#[test]
fn an_agent_that_reports_no_usage_shows_no_tokens_or_cost() {
    let project = Project::with_echo_agent("true", "  []");
    project.create_task("first", "one");
    project.create_task("second", "two");
    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let usage: Vec<&str> = said.lines().filter(|l| l.contains("usage")).collect();
    assert_eq!(usage, vec!["  usage: not reported by the agent"; 2], "{said}");
    assert!(!said.contains(" tokens") && !said.contains('$'), "{said}");
    let status = project.obra(&["status"]);
    assert!(text(&status).contains("  agent usage: none reported yet\n"), "{}", text(&status));
}

/// An agent that reports tokens but no cost (the replay agent plays recorded runs): each run shows its tokens
/// with `cost not reported`, the task's total so far, and `obra run` ends with the run's total.
#[test]
fn tokens_without_a_cost_are_shown_per_run_with_the_task_and_run_totals() {
    let project = Project::new();
    let run = |input: u64, output: u64, path: &str| {
        serde_json::json!({ "writes": [{ "path": path, "content": "x\n" }], "result": { "outcome": "success",
            "summary": "done", "turns": 1, "usage": { "input_tokens": input, "output_tokens": output } } })
    };
    let recording = serde_json::json!({ "tasks": {
        "1": { "iterations": [run(1000, 100, "a.txt"), run(500, 50, "b.txt")] },
        "2": { "iterations": [run(30, 3, "c.txt")] },
    }});
    // The gate passes once b.txt or c.txt exists: the first task takes two iterations (a RETRY, not a pause).
    project.write_replay_config(&recording, "'test -f b.txt || test -f c.txt'");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config.replace("max_iterations: 1", "max_iterations: 2\n  decision:\n    escalate_threshold: 0.5");
    project.write_config(&format!("{config}rules: []\n"));
    project.create_task("first", "one");
    project.create_task("second", "two");
    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let usage: Vec<&str> = said.lines().filter(|l| l.contains("usage")).collect();
    assert_eq!(
        usage,
        vec![
            "  usage: 1100 tokens (1000 in, 100 out), cost not reported; task so far: 1100 tokens (1000 in, 100 \
             out), cost not reported",
            "  usage: 550 tokens (500 in, 50 out), cost not reported; task so far: 1650 tokens (1500 in, 150 out), \
             cost not reported",
            "  usage: 33 tokens (30 in, 3 out), cost not reported; task so far: 33 tokens (30 in, 3 out), cost not \
             reported",
            "Agent usage of this run: 1683 tokens (1530 in, 153 out), cost not reported",
        ],
        "{said}"
    );
    let status = project.obra(&["status"]);
    assert!(
        text(&status).contains("  agent usage: 1683 tokens (1530 in, 153 out), cost not reported, as the agents"),
        "{}",
        text(&status)
    );
}

#[test]
fn a_failed_task_blocks_its_dependents_and_run_exits_4() {
    let project = Project::with_echo_agent(
        "echo failing; exit 1",
        "  - plugin: max-iterations\n    config:\n      action: abort\n",
    );
    let doomed = project.create_task("doomed", "never passes");
    let waits = project.obra_json(&["task", "create", "waits", "--depends-on", &doomed.to_string(), "--json"], 0)["id"]
        .as_i64()
        .unwrap();
    let behind =
        project.obra_json(&["task", "create", "behind", "--depends-on", &waits.to_string(), "--json"], 0)["id"]
            .as_i64()
            .unwrap();
    let out = project.obra(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["executions"].as_array().unwrap().len(), 1);
    assert_eq!(summary["blocked"][0]["task_id"], waits);
    assert_eq!(summary["blocked"][0]["dependency_status"], "failed");
    // A task further down the chain is blocked by the same failure, through the task it waits for.
    assert_eq!(summary["blocked"][1]["task_id"], behind, "{summary}");
    assert_eq!(summary["blocked"][1]["waits_for"], doomed);
    assert_eq!(summary["blocked"][1]["via"], waits);
    // Progress went to stderr as plain lines (not a terminal): the task header and its decision.
    let progress = stderr(&out);
    assert!(progress.contains(&format!("task {doomed}: doomed")), "{progress}");
    assert!(!progress.contains('\u{1b}'), "no escape codes when not a terminal: {progress}");
}

#[test]
fn breakpoint_show_explains_the_pause() {
    let project = Project::with_echo_agent("echo 'assertion failed'; exit 1", "  - plugin: max-iterations\n");
    let id = project.create_task("stuck", "gate fails");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let bp = open[0]["id"].as_i64().unwrap();
    let shown = project.obra_json(&["breakpoint", "show", &bp.to_string(), "--json"], 0);
    assert_eq!(shown["breakpoint"]["rule"], "max-iterations");
    assert_eq!(shown["task"]["id"], id);
    assert!(shown["gates"].as_array().unwrap().iter().any(|g| g["gate"] == "tests" && g["passed"] == false), "{shown}");
    let text_out = project.obra(&["breakpoint", "show", &bp.to_string()]);
    assert!(
        String::from_utf8_lossy(&text_out.stdout).contains("Resolve with: obra breakpoint resolve"),
        "{}",
        text(&text_out)
    );
    // Cancelling the task closes its breakpoint.
    assert!(project.obra(&["task", "cancel", &id.to_string()]).status.success());
    let open = project.obra_json(&["breakpoint", "list", "--json"], 0);
    assert!(open.as_array().unwrap().is_empty(), "{open}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let project = Project::uninitialised();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = project.obra(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("obra") && script.contains("breakpoint"), "{shell}: {script}");
    }
    let out = project.obra(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Every command given an id that does not exist says so, exits 1, and changes nothing.
#[test]
fn unknown_ids_are_errors_that_change_nothing() {
    let project = Project::new();
    let id = project.create_task("only", "one");
    let before = project.obra_json(&["task", "list", "--json"], 0);
    for args in [
        vec!["task", "show", "999"],
        vec!["task", "execute", "999"],
        vec!["task", "cancel", "999"],
        vec!["task", "retry", "999"],
        vec!["task", "update", "999", "--priority", "2"],
        vec!["task", "deps", "999"],
        vec!["breakpoint", "show", "999"],
        vec!["breakpoint", "resolve", "999", "--approve"],
        vec!["logs", "--task", "999"],
    ] {
        let out = project.obra(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("999") && stderr(&out).contains("does not exist"), "{args:?}: {}", text(&out));
    }
    for args in [
        vec!["task", "create", "x", "--depends-on", "999"],
        vec!["task", "update", &id.to_string(), "--depends-on", &id.to_string()],
    ] {
        let out = project.obra(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
    let out = project.obra(&["task", "update", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("nothing to change"), "{}", text(&out));
    assert_eq!(project.obra_json(&["task", "list", "--json"], 0), before);
}

#[test]
fn malformed_set_and_unreadable_config_are_explained() {
    let project = Project::new();
    project.create_task("kept", "");
    for set in ["engine.max_iterations", "engine.max_iterations=abc", "=3"] {
        let out = project.obra(&["task", "list", "--set", set]);
        assert_eq!(out.status.code(), Some(1), "--set {set}: {}", text(&out));
        assert!(
            stderr(&out).contains("--set") || stderr(&out).contains("max_iterations"),
            "--set {set}: {}",
            text(&out)
        );
    }
    // The project's config file is a directory: unreadable.
    std::fs::remove_file(project.path().join(".obra/config.yaml")).unwrap();
    std::fs::create_dir(project.path().join(".obra/config.yaml")).unwrap();
    let out = project.obra(&["task", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("cannot read the config file"), "{}", text(&out));
    std::fs::remove_dir(project.path().join(".obra/config.yaml")).unwrap();
    let list = project.obra_json(&["task", "list", "--json"], 0);
    assert_eq!(list.as_array().unwrap().len(), 1, "the task is still there");
}

#[test]
fn a_locked_database_is_reported_and_nothing_is_lost() {
    let project = Project::new();
    project.create_task("kept", "");
    let db = project.path().join(".obra/obra.db");
    // Another process holds the write lock.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(30)",
            db.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (it holds the lock for this test)");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let out = project.obra(&["task", "create", "blocked", "--set", "database.busy_timeout_ms=300"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("locked"), "{}", text(&out));
    let list = project.obra_json(&["task", "list", "--json"], 0);
    let titles: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, vec!["kept"]);
}

#[test]
fn an_unreachable_postgresql_is_reported_without_its_password() {
    let project = Project::uninitialised();
    let out = project.obra(&["project", "list", "--set", "database.url=postgres://obra:s3cret@127.0.0.1:1/obra"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1") && err.contains("database.url"), "{err}");
    assert!(!err.contains("s3cret"), "the password leaked: {err}");
}

/// Two machines (two workspaces, two HOMEs) share one PostgreSQL store through `database.url`: a project
/// made on one is seen, given tasks and run from the other, and the whole loop's history lands there.
#[test]
fn a_team_shares_one_postgresql_store() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(database) = runtime.block_on(obra_testkit::postgres::TestDatabase::create()) else { return };
    let machine = || {
        let mut m = Project::uninitialised();
        m.set_env("OBRA_DATABASE__URL", database.url());
        let git = std::process::Command::new("git").current_dir(m.path()).args(["init", "-q"]).status().unwrap();
        assert!(git.success());
        m
    };
    let alpha = machine();
    let out = alpha.obra(&["init", "--name", "alpha"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alpha.path().join(".obra/obra.db").exists(), "no SQLite file when database.url names the store");
    alpha.install_plugin("echo-agent");
    alpha.write_config(
        r#"agent:
  plugin: echo-agent
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
plugins:
  grants:
    echo-agent:
      commands: [ { program: echo, args: ["**"] } ]
      workspace: write
"#,
    );

    let beta = machine();
    let projects = beta.obra_json(&["project", "list", "--json"], 0);
    assert_eq!(projects[0]["project"]["name"], "alpha", "{projects}");
    let task = beta.obra_json(&["task", "create", "from beta", "--project", "alpha", "--json"], 0);
    let id = task["id"].as_i64().unwrap();

    let summary = alpha.obra_json(&["run", "--json"], 0);
    assert_eq!(summary["executions"][0]["task_id"], id, "{summary}");
    assert_eq!(summary["executions"][0]["status"], "completed", "{summary}");
    let shown = beta.obra_json(&["task", "show", &id.to_string(), "--project", "alpha", "--json"], 0);
    assert_eq!(shown["task"]["status"], "completed");
    assert_eq!(shown["interactions"][0]["decision"]["action"], "proceed", "{shown}");
    // The URL (with its password) is never printed.
    let out = beta.obra(&["project", "show", "alpha"]);
    let password = url::Url::parse(database.url()).unwrap().password().map(str::to_string);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains(":***@127.0.0.1"), "{}", text(&out));
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        assert!(!shown.contains(&format!(":{password}@")), "{}", text(&out));
    }
    drop(alpha);
    drop(beta);
    runtime.block_on(database.cleanup());
}

/// A checkpoint is taken before each agent run; rolling back restores the files and makes the task pending,
/// and the safety checkpoint taken first undoes the rollback.
#[test]
fn checkpoints_are_listed_and_rolled_back_through_the_cli() {
    let project = Project::with_echo_agent("true", "  []");
    std::fs::write(project.path().join("notes.txt"), "before the agent\n").unwrap();
    let id = project.create_task("touch nothing", "");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("obra checkpoint rollback"), "{}", text(&out));
    let list = project.obra_json(&["checkpoint", "list", "--json"], 0);
    let checkpoint = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["task_id"], id);

    // Later edits: the rollback refuses them without --force, and changes nothing.
    std::fs::write(project.path().join("notes.txt"), "edited later\n").unwrap();
    std::fs::write(project.path().join("new.txt"), "new\n").unwrap();
    let out = project.obra(&["checkpoint", "rollback", &checkpoint.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("notes.txt")).unwrap(), "edited later\n");

    let rolled = project.obra_json(&["checkpoint", "rollback", &checkpoint.to_string(), "--force", "--json"], 0);
    assert_eq!(std::fs::read_to_string(project.path().join("notes.txt")).unwrap(), "before the agent\n");
    assert!(!project.path().join("new.txt").exists());
    assert_eq!(project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)["task"]["status"], "pending");
    // The safety checkpoint brings the later edits back, without --force (the tree matches a checkpoint).
    let safety = rolled["safety_checkpoint"].as_i64().unwrap();
    let out = project.obra(&["checkpoint", "rollback", &safety.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(project.path().join("notes.txt")).unwrap(), "edited later\n");
    assert_eq!(std::fs::read_to_string(project.path().join("new.txt")).unwrap(), "new\n");

    let out = project.obra(&["checkpoint", "rollback", "999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", text(&out));
}

/// The files of the project outside `.git/` and `.obra/`, with their contents.
fn project_files(root: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".git" || rel == ".obra" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// `engine.checkpoint_retention` over one `obra run` of four tasks (eight checkpoints, all but the first
/// ones built on the one before): only the newest refs stay, the list marks the others pruned, a rollback to
/// a pruned one is refused with what to do, and a rollback to a kept one restores the tree exactly (a
/// deleted file back, a created one gone).
#[test]
fn checkpoint_retention_prunes_old_refs_and_rollback_stays_exact() {
    let project = Project::new();
    let run = |writes: serde_json::Value, deletes: serde_json::Value| {
        serde_json::json!({ "writes": writes, "deletes": deletes,
            "result": { "outcome": "success", "summary": "done", "turns": 1 } })
    };
    let recording = serde_json::json!({ "tasks": {
        "1": { "iterations": [run(serde_json::json!([{ "path": "a/t1.txt", "content": "one\n" }]), serde_json::json!([]))] },
        "2": { "iterations": [run(serde_json::json!([{ "path": "t2.txt", "content": "two\n" }]), serde_json::json!(["a/t1.txt"]))] },
        "3": { "iterations": [run(
            serde_json::json!([{ "path": "deep/er/t3.txt", "content": "three\n" }, { "path": "README.md", "content": "# edited\n" }]),
            serde_json::json!([]))] },
        "4": { "iterations": [run(serde_json::json!([{ "path": "t4.txt", "content": "four\n" }]), serde_json::json!(["t2.txt"]))] },
    }});
    project.write_replay_config(&recording, "'true'");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(&config.replace("max_iterations: 1", "max_iterations: 1\n  checkpoint_retention: 3"));
    for title in ["one", "two", "three", "four"] {
        project.create_task(title, "");
    }
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = project_files(project.path());
    assert_eq!(after.get("t4.txt").map(String::as_str), Some("four\n"), "{after:?}");
    // The file counts the checkpoints report, built on the one before from the third on: README.md, then
    // +a/t1.txt, -a/t1.txt +t2.txt, +deep/er/t3.txt, -t2.txt +t4.txt.
    let said = text(&out);
    let counts: Vec<&str> = said
        .lines()
        .filter_map(|l| l.trim().strip_prefix("checkpoint ")?.split_once(" (")?.1.split_once(' ').map(|(n, _)| n))
        .collect();
    assert_eq!(counts, ["1", "2", "2", "2", "2", "3", "3", "3"], "{said}");

    let refs = |project: &Project| {
        let out = std::process::Command::new("git")
            .current_dir(project.path())
            .args(["for-each-ref", "--format=%(refname)", "refs/obra/checkpoints/"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(refs(&project).len(), 3, "{:?}", refs(&project));
    let list = project.obra_json(&["checkpoint", "list", "--json"], 0);
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 8, "{list}");
    let pruned: Vec<bool> = rows.iter().map(|r| r["pruned"].as_bool().unwrap()).collect();
    assert_eq!(pruned, [false, false, false, true, true, true, true, true], "newest first: {list}");
    let listed = text(&project.obra(&["checkpoint", "list"]));
    assert_eq!(listed.matches("(pruned)").count(), 5, "{listed}");

    // The oldest is pruned: refused, with what to do.
    let oldest = rows[7]["id"].as_i64().unwrap();
    let out = project.obra(&["checkpoint", "rollback", &oldest.to_string(), "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("was pruned"), "{}", text(&out));
    assert!(stderr(&out).contains("engine.checkpoint_retention"), "{}", text(&out));
    assert_eq!(project_files(project.path()), after, "a refused rollback changes nothing");

    // The one before task 4's agent ran is kept: the tree comes back exactly as it was then.
    let before_four =
        rows.iter().find(|r| r["label"].as_str().unwrap().starts_with("task 4 iteration 1: before")).unwrap();
    assert_eq!(before_four["pruned"], false, "{list}");
    let out = project.obra(&["checkpoint", "rollback", &before_four["id"].as_i64().unwrap().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut expected = after.clone();
    expected.remove("t4.txt");
    expected.insert("t2.txt".into(), "two\n".into());
    assert_eq!(project_files(project.path()), expected);
    // The safety checkpoint the rollback took pruned one more: still three refs.
    assert_eq!(refs(&project).len(), 3, "{:?}", refs(&project));
    let fsck =
        std::process::Command::new("git").current_dir(project.path()).args(["fsck", "--no-dangling"]).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
}

/// On a terminal, a spinner with the elapsed time stays under the lines while the checks run; the lines are
/// the same as without a terminal.
#[test]
fn a_terminal_shows_a_spinner_while_the_work_is_checked() {
    let project = Project::with_echo_agent("sleep 2; true", "  []");
    let id = project.create_task("slow gate", "");
    let mut cmd = project.command(&["task", "execute", &id.to_string()]);
    cmd.env("TERM", "xterm");
    let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).expect("start obra in a pty");
    session.exp_string("checking the work").expect("the spinner's message while the gates run");
    session.exp_string(&format!("task {id} is completed")).expect("the task completes");
    session.exp_eof().expect("obra exits");
}

/// `obra logs --activity --follow` prints what happens after it started, as it happens.
#[test]
fn logs_follow_prints_new_events() {
    let project = Project::new();
    project.create_task("before", "");
    let mut follower = project
        .command(&["logs", "--activity", "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start obra logs --follow");
    // If an expected line never comes, end the follower so the test fails instead of hanging.
    let pid = follower.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = std::process::Command::new("kill").arg(&pid).status();
    });
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["text"], "before", "the existing event is printed first: {first}");
    let id = project.create_task("after", "");
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert_eq!(next["kind"], "task_created");
    assert_eq!(next["task_id"], id, "{next}");
}

/// Run `obra args` with stdout a pipe that `reader` reads (or, with `None`, whose reader is already gone), and
/// return the exit status and stderr.
fn obra_into_closed_pipe(
    project: &Project,
    args: &[&str],
    reader: Option<fn(std::io::PipeReader)>,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let (read_end, write_end) = std::io::pipe().unwrap();
    let mut cmd = project.command(args);
    cmd.stdin(std::process::Stdio::null()).stdout(write_end).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start obra");
    // The command holds the write end from here; dropping ours leaves the reader as the only other end.
    drop(cmd);
    match reader {
        Some(read) => read(read_end),
        None => drop(read_end),
    }
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn a_reader_that_closes_early_ends_every_command_quietly() {
    let project = Project::with_echo_agent("true", "  []");
    for i in 0..3 {
        project.create_task(&format!("task {i}"), "something to do");
    }
    let out = project.obra(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let commands: &[&[&str]] = &[
        &["task", "show", "1"],
        &["task", "show", "1", "--json"],
        &["task", "list"],
        &["task", "deps", "--format", "dot"],
        &["logs"],
        &["logs", "--json"],
        &["status"],
        &["status", "--json"],
        &["config", "show"],
        &["report"],
        &["breakpoint", "list", "--all"],
        &["completions", "bash"],
        &["--help"],
    ];
    // `head -1`: the first line is read, then the reader goes; and a reader that was gone before obra started,
    // so every write obra makes fails.
    let head_1: fn(std::io::PipeReader) = |r| {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(r).read_line(&mut line).unwrap();
    };
    for args in commands {
        for reader in [Some(head_1), None] {
            let (status, err) = obra_into_closed_pipe(&project, args, reader);
            assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "obra {args:?}: {err}");
            assert!(!err.contains("error"), "obra {args:?}: {err}");
            assert_eq!(status.code(), Some(0), "obra {args:?} ({status}): {err}");
        }
    }
}

#[test]
fn what_failed_is_shown_by_execute_task_show_breakpoint_show_and_logs() {
    let project = Project::with_echo_agent(
        "echo 'assertion failed: expected 42, got 41'; exit 1",
        "  - plugin: max-iterations\n",
    );
    let id = project.create_task("answer", "make it 42");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let finding = "assertion failed: expected 42, got 41";
    assert!(String::from_utf8_lossy(&out.stdout).contains(finding), "execute shows the finding: {}", text(&out));

    let shown = project.obra(&["task", "show", &id.to_string()]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(finding), "{}", text(&shown));

    let bp = project.obra_json(&["breakpoint", "list", "--json"], 0)[0]["id"].as_i64().unwrap();
    let shown = project.obra(&["breakpoint", "show", &bp.to_string()]);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(said.contains(finding), "{said}");
    // The iteration's diff, from the checkpoint before it: echo-agent wrote echo-agent.txt.
    assert!(said.contains("diff of the iteration (checkpoint "), "{said}");
    assert!(said.contains("+++ b/echo-agent.txt"), "{said}");
    let json = project.obra_json(&["breakpoint", "show", &bp.to_string(), "--json"], 0);
    assert_eq!(json["diff"]["changes"][0]["path"], "echo-agent.txt", "{json}");

    // The production log keeps the findings themselves, and `obra logs` shows the first.
    let out = project.obra(&["logs", "--event", "quality", "--json"]);
    let failed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["passed"] == false)
        .collect();
    assert_eq!(failed[0]["findings_count"], 1, "{failed:?}");
    assert!(failed[0]["findings"][0]["message"].as_str().unwrap().contains(finding), "{failed:?}");
    let out = project.obra(&["logs", "--event", "quality"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("The tests `echo"), "{}", text(&out));
}

/// A description longer than an argument may be (the OS caps one at 128 KB) arrives whole through
/// `--description-file` and through `-d -` (stdin).
#[test]
fn long_descriptions_come_from_a_file_or_stdin() {
    let project = Project::new();
    let spec: String = (0..7000).map(|n| format!("requirement {n:05}: the parser handles case {n}\n")).collect();
    assert!(spec.len() > 300 * 1024, "{}", spec.len());
    let file = project.path().join("spec.md");
    std::fs::write(&file, &spec).unwrap();
    let from_file = project.obra_json(&["task", "create", "From a file", "--description-file", "spec.md", "--json"], 0);
    let shown = project.obra_json(&["task", "show", &from_file["id"].to_string(), "--json"], 0);
    assert_eq!(shown["task"]["description"].as_str().unwrap(), spec);

    let mut cmd = project.command(&["task", "create", "From stdin", "-d", "-", "--json"]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let spec = spec.clone();
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, spec.as_bytes()).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = project.obra_json(&["task", "show", &created["id"].to_string(), "--json"], 0);
    assert_eq!(shown["task"]["description"].as_str().unwrap(), spec);

    // A file that is not there is an error naming it, and creates nothing.
    let out = project.obra(&["task", "create", "Missing", "--description-file", "nope.md"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("nope.md"), "{}", text(&out));
    assert_eq!(ids(&project.obra_json(&["task", "list", "--json"], 0)).len(), 2);
}

/// A task's dependencies from its JSON (stored as a JSON list in a string).
fn deps_of(task: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(task["depends_on"].as_str().unwrap()).unwrap()
}

/// Run `obra task import` with `input` on stdin.
fn import_stdin(project: &Project, args: &[&str], input: &str) -> std::process::Output {
    let mut cmd = project.command(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn a_yaml_backlog_is_imported_with_its_dependencies_and_milestones() {
    let project = Project::new();
    let existing = project.create_task("Existing groundwork", "");
    let long = "x".repeat(200 * 1024);
    let yaml = format!(
        "- id: lexer\n  title: Add a lexer\n  priority: 8\n  milestone: v1\n  description: |\n    {long}\n\
         - title: Add a parser\n  depends_on: [lexer, {existing}]\n  milestone: v1\n\
         - title: Write the docs\n  priority: 2\n  depends_on: [\"Add a parser\"]\n  max_iterations: 3\n"
    );
    std::fs::write(project.path().join("backlog.yaml"), &yaml).unwrap();

    // --dry-run shows the plan and stores nothing.
    let out = project.obra(&["task", "import", "backlog.yaml", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Would create 3 task(s)"), "{said}");
    assert!(said.contains("#2  p5   Add a parser  after \"Add a lexer\", task 1  [milestone v1]"), "{said}");
    assert_eq!(ids(&project.obra_json(&["task", "list", "--json"], 0)), vec![existing]);

    let created = project.obra_json(&["task", "import", "backlog.yaml", "--json"], 0);
    let created = created.as_array().unwrap();
    assert_eq!(created.len(), 3);
    let (lexer, parser, docs) =
        (created[0]["id"].as_i64().unwrap(), created[1]["id"].as_i64().unwrap(), created[2]["id"].as_i64().unwrap());
    assert_eq!(created[0]["description"].as_str().unwrap(), format!("{long}\n"));
    assert_eq!(created[0]["milestone"], "v1");
    assert_eq!(created[0]["priority"], 8);
    assert_eq!(deps_of(&created[1]), serde_json::json!([existing, lexer]));
    assert_eq!(deps_of(&created[2]), serde_json::json!([parser]));
    assert_eq!(created[2]["max_iterations"], 3);
    // Only what depends on nothing unfinished is ready.
    let ready = ids(&project.obra_json(&["task", "list", "--ready", "--json"], 0));
    assert_eq!(ready, vec![lexer, existing]);
    assert!(!ready.contains(&docs));
}

#[test]
fn a_markdown_checklist_is_imported_from_stdin() {
    let project = Project::new();
    let checklist = "# Backlog\n\nSome prose about it.\n\n## Milestone: parsing\n\
                     - [ ] Add a lexer (priority: 8)\n  Tokenise identifiers and numbers.\n\n  Keep spans.\n\
                     - [x] Set up CI\n\
                     - [ ] Add a parser (after: Add a lexer; Set up CI)\n\
                     ## Later\n\
                     - [ ] Write the docs (after: Add a parser)\n";
    let out = import_stdin(&project, &["task", "import", "-", "--json"], checklist);
    assert!(out.status.success(), "{}", text(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let created = created.as_array().unwrap();
    let titles: Vec<&str> = created.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Add a lexer", "Add a parser", "Write the docs"]);
    assert_eq!(created[0]["description"], "Tokenise identifiers and numbers.\n\nKeep spans.");
    assert_eq!(created[0]["priority"], 8);
    assert_eq!(created[0]["milestone"], "parsing");
    assert_eq!(deps_of(&created[1]), serde_json::json!([created[0]["id"]]));
    assert_eq!(created[1]["milestone"], "parsing");
    assert_eq!(deps_of(&created[2]), serde_json::json!([created[1]["id"]]));
    assert!(created[2]["milestone"].is_null());
}

#[test]
fn a_bad_backlog_names_the_line_and_stores_nothing() {
    let project = Project::new();
    let cases: [(&str, &str, &str); 5] = [
        ("bad.yaml", "- title: A\n- title: B\n  dependz: [A]\n", "bad.yaml:3:3: "),
        ("bad.yaml", "- title: A\n- title: B\n  depends_on: [Z]\n", "bad.yaml:2: "),
        ("bad.yaml", "- title: A\n  depends_on: [B]\n- title: B\n  depends_on: [A]\n", "cycle"),
        ("bad.md", "- [ ] A\n- [ ] B\n- [ ] A\n", "bad.md:3: "),
        ("bad.md", "- [ ] A\n\n- [ ] B (after: #99)\n", "bad.md:3: "),
    ];
    for (name, content, expected) in cases {
        std::fs::write(project.path().join(name), content).unwrap();
        let out = project.obra(&["task", "import", name]);
        assert_eq!(out.status.code(), Some(1), "{content}: {}", text(&out));
        assert!(stderr(&out).contains(expected), "{content}: {}", text(&out));
        assert_eq!(ids(&project.obra_json(&["task", "list", "--json"], 0)), Vec::<i64>::new(), "{content}");
    }
}

/// `obra init` in `project` with `--set` flags first, without the LLM keys of the machine running the tests
/// (plus `env`).
fn init_here(project: &Project, sets: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut args = Vec::new();
    for set in sets {
        args.extend(["--set", *set]);
    }
    args.push("init");
    let mut cmd = project.command(&args);
    cmd.stdin(std::process::Stdio::null());
    for key in ["OPENAI_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"] {
        cmd.env_remove(key);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn init_enables_the_tests_gate_it_finds_and_no_llm_when_none_answers() {
    let project = Project::uninitialised();
    std::fs::write(project.path().join("Cargo.toml"), "[package]\nname = \"scratch\"\n").unwrap();
    let out = init_here(&project, &["llms.ollama.base_url=http://127.0.0.1:9"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tests: `cargo test` (found by Cargo.toml)"), "{said}");
    assert!(said.contains("LLM: none answers (no Ollama at http://127.0.0.1:9"), "{said}");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    assert!(!config.contains("Obra's sources") && !config.contains("default.yaml"), "{config}");
    assert!(config.contains("`obra config show`"), "{config}");
    assert!(
        config.contains("- plugin: tests\n    enabled: true\n    config:\n      command: \"cargo test\""),
        "{config}"
    );
    assert!(config.contains("llm:\n  provider: none"), "{config}");
    // What init wrote is what the project runs with.
    let shown = project.obra_json(&["config", "validate", "--json"], 0);
    assert_eq!(shown["effective"]["gates"], serde_json::json!(["response-format", "tests"]), "{shown}");
    assert_eq!(shown["effective"]["llm"], "none", "{shown}");
}

#[test]
fn init_chooses_an_ollama_that_answers_or_an_api_key_in_the_environment() {
    let ollama = obra_testkit::FakeOllama::start([]);
    let project = Project::uninitialised();
    std::fs::write(project.path().join("go.mod"), "module scratch\n").unwrap();
    let set = format!("llms.ollama.base_url={}", ollama.base_url());
    let out = init_here(&project, &[&set], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tests: `go test ./...` (found by go.mod)"), "{said}");
    assert!(said.contains(&format!("answers at {}", ollama.base_url())), "{said}");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    assert!(config.contains("llm:\n  provider: ollama"), "{config}");
    assert!(config.contains(&format!("base_url: {}", ollama.base_url())), "{config}");

    let keyed = Project::uninitialised();
    let out = init_here(&keyed, &["llms.ollama.base_url=http://127.0.0.1:9"], &[("OPENAI_API_KEY", "sk-test")]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tests: no test command found"), "{said}");
    assert!(said.contains("$OPENAI_API_KEY is set"), "{said}");
    let config = std::fs::read_to_string(keyed.path().join(".obra/config.yaml")).unwrap();
    assert!(config.contains("provider: openai") && config.contains("api_key_env: OPENAI_API_KEY"), "{config}");
    assert!(!config.contains("\ngates:"), "{config}");
}

/// Issue 18 item 5: `obra status` loads no plugin, so an empty compile cache stays empty (a cold first status
/// used to compile every built-in, seconds), yet a configured plugin that is not installed is still named; a
/// long backlog is paged.
#[test]
fn status_compiles_no_plugin_still_names_a_missing_one_and_pages_a_long_backlog() {
    let mut project = Project::new();
    let cache = tempfile::tempdir().unwrap();
    project.set_env("XDG_CACHE_HOME", &cache.path().display().to_string());
    let checklist: String = (0..60).map(|i| format!("- [ ] task {i}\n")).collect();
    std::fs::write(project.path().join("backlog.md"), checklist).unwrap();
    let out = project.obra(&["task", "import", "backlog.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = project.obra(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("agent: claude-code"), "{shown}");
    assert!(shown.contains("... and 10 more: `obra task list`"), "{shown}");
    assert_eq!(shown.lines().filter(|l| l.contains("pending") && l.contains("task ")).count(), 50, "{shown}");
    let compiled = walk_files(cache.path());
    assert!(compiled.is_empty(), "status compiled plugins: {compiled:?}");

    let out = project.obra(&["--set", "agent.plugin=no-such-agent", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["plugins"]["ok"], false, "{status}");
    assert!(status["plugins"]["error"].as_str().unwrap().contains("no-such-agent is not installed"), "{status}");
    assert_eq!(status["tasks"].as_array().unwrap().len(), 60, "--json lists every task");
}

/// Issue 18 item 6: a command compiles only the plugins its configuration uses (a cold first run used to
/// compile every built-in); the others stay uncompiled until a command needs one, and a warm run compiles
/// nothing.
#[test]
fn a_run_compiles_only_the_plugins_its_config_uses() {
    let mut project = Project::new();
    let cache = tempfile::tempdir().unwrap();
    project.set_env("XDG_CACHE_HOME", &cache.path().display().to_string());
    project.install_plugin("echo-agent");
    project.write_config(
        "agent:\n  plugin: echo-agent\nllm:\n  provider: none\ngates: []\nrules: []\nplugins:\n  grants:\n    \
         echo-agent:\n      commands: [ { program: echo, args: [\"**\"] } ]\n      workspace: write\n",
    );
    let id = project.create_task("one", "a task");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let compiled = walk_files(cache.path());
    assert_eq!(compiled.len(), 1, "only echo-agent was compiled: {compiled:?}");
    assert!(!stderr(&out).contains("preparing plugins"), "the notice is for a terminal only: {}", text(&out));

    let list = project.obra_json(&["plugin", "list", "--json"], 0);
    let plugins = list["plugins"].as_array().or(list.as_array()).expect("a list of plugins").clone();
    let cache_of = |name: &str| {
        plugins.iter().find(|p| p["name"] == name).map(|p| p["cache"].clone()).unwrap_or_else(|| panic!("{list:#}"))
    };
    assert_eq!(cache_of("echo-agent"), "hit", "{list:#}");
    assert_eq!(cache_of("claude-code"), "not-yet", "a built-in no command needed: {list:#}");
    assert_eq!(walk_files(cache.path()).len(), 1, "listing compiled nothing more");
}

/// Every file below `dir`.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk_files(&path)) } else { found.push(path) }
    }
    found
}

/// Edit the project's SQLite store past its CHECK constraints, as a hand edit with them switched off would.
fn edit_store_by_hand(project: &Project, sql: &str) {
    let db = project.path().join(".obra/obra.db");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA ignore_check_constraints = ON')\nc.execute(sys.argv[2])\nc.commit()",
            db.to_str().unwrap(),
            sql,
        ])
        .output()
        .expect("python3 runs (it edits the store for this test)");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_row_that_breaks_the_data_model_is_named_with_its_repair_never_guessed() {
    let project = Project::new();
    let first = project.create_task("first", "");
    let second = project.create_task("second", "");
    edit_store_by_hand(&project, &format!("UPDATE tasks SET status = 'runing' WHERE id = {second}"));
    // Every command that reads the backlog refuses, naming the row, the value and the repair; none lists the
    // task as pending (what it used to read as) or leaves it out.
    for args in [&["task", "list"][..], &["status"], &["task", "show", &second.to_string()], &["run"]] {
        let out = project.obra(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let said = stderr(&out);
        assert!(said.contains(&format!("task {second} has the unknown status \"runing\"")), "{args:?}: {said}");
        assert!(said.contains(".obra/obra.db") && said.contains("restore a backup"), "{args:?}: {said}");
        assert!(!said.contains("panicked"), "{args:?}: {said}");
    }
    // The repair the message names, run as it says.
    let said = stderr(&project.obra(&["task", "list"]));
    let sql = said.split("\"UPDATE ").nth(1).and_then(|rest| rest.split('"').next()).expect("an UPDATE to run");
    assert_eq!(sql, format!("tasks SET status = 'pending' WHERE id = {second}"));
    edit_store_by_hand(&project, &format!("UPDATE {sql}"));
    let list = project.obra_json(&["task", "list", "--json"], 0);
    assert_eq!(ids(&list), vec![first, second]);
    assert_eq!(list[1]["status"], "pending");

    // Dependencies that are not a list of ids: the task cannot be read, and `task update --no-deps` repairs it.
    edit_store_by_hand(&project, &format!("UPDATE tasks SET depends_on = '[\"{first}\"]' WHERE id = {second}"));
    let out = project.obra(&["task", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains(&format!("task {second} has unreadable dependencies")), "{}", text(&out));
    assert!(stderr(&out).contains(&format!("obra task update {second} --no-deps")), "{}", text(&out));
    let updated =
        project.obra_json(&["task", "update", &second.to_string(), "--depends-on", &first.to_string(), "--json"], 0);
    assert_eq!(updated["depends_on"], format!("[{first}]"));
    assert_eq!(project.obra_json(&["task", "list", "--json"], 0).as_array().unwrap().len(), 2);
}
