//! The file watcher (ADR 25) under the REAL claude CLI: the changes recorded for an agent run are the files the
//! CLI's tools wrote (with sizes and content hashes), ignored paths are not recorded, and a change made between
//! two runs, while Obra was not running, is reported at the start of the next run and not charged to the agent.
//! Within one `obra run` (the replay agent), the tracker kept between runs (ADR 30) restarts when a `.gitignore`
//! changed, and what the gates write (a script's report, the real pytest's caches) is theirs (ADR 38): no run
//! reports it as changed outside agent runs or deleted, and no agent is charged with it.

mod common;

use std::path::Path;

use common::claude::{opinion, setup, show};
use common::{Project, text};
use obra_testkit::{AnthropicReply, FakeAnthropic, FakeOllama};
use serde_json::Value;

/// The lowercase hex SHA-256 of `bytes`, from coreutils' `sha256sum`.
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) is installed");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// One recorded change: `(path, kind, size, hash_before, hash_after)`.
type Recorded = (String, String, Option<i64>, Option<String>, Option<String>);

/// Every recorded change of the task's interactions, in order.
fn changes(project: &Project, id: i64) -> Vec<Recorded> {
    let shown = show(project, id);
    let mut out = Vec::new();
    for interaction in shown["interactions"].as_array().unwrap() {
        for c in interaction["changes"].as_array().unwrap() {
            let s = |v: &Value| v.as_str().map(String::from);
            out.push((
                s(&c["path"]).unwrap(),
                s(&c["kind"]).unwrap(),
                c["size"].as_i64(),
                s(&c["hash_before"]),
                s(&c["hash_after"]),
            ));
        }
    }
    out
}

/// Let the agent run Bash (the default acceptEdits mode only lets it edit files).
fn allow_bash(project: &Project) {
    let file = project.path().join(".obra/config.yaml");
    let config = std::fs::read_to_string(&file).unwrap();
    let config = config.replace(
        "    max_turns: 5\n",
        "    max_turns: 5\n    extra_args: [\"--allowedTools\", \"Bash,Write,Read,Edit\"]\n",
    );
    std::fs::write(&file, config).unwrap();
}

fn write(root: &Path, path: &str, content: &str) {
    std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
    std::fs::write(root.join(path), content).unwrap();
}

#[test]
fn recorded_changes_match_what_the_real_cli_wrote_ignored_paths_are_left_out_and_offline_changes_are_reported() {
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
        AnthropicReply::bash(
            "rm README.md && printf 'v2' > data.txt && echo noise > build.log && mkdir -p scratch \
             && echo x > scratch/tmp.txt && echo secret > private.key",
        ),
        AnthropicReply::text("Wrote src/lib.rs and updated data.txt."),
        AnthropicReply::write_file("second.txt", "2\n"),
        AnthropicReply::text("Wrote second.txt."),
    ]);
    let ollama = FakeOllama::start([opinion(0.95, "done"), opinion(0.95, "done")]);
    let extra = "workspace:\n  debounce_ms: 30\n  ignore: [\"scratch/\"]\n";
    let Some((project, _env)) = setup(&anthropic, &ollama, "true", extra) else { return };
    allow_bash(&project);
    let root = project.path();
    write(root, ".gitignore", "*.log\n");
    write(root, ".obra/ignore", "*.key\n");
    write(root, "data.txt", "v1");

    let first = project.create_task("Write lib", "Write src/lib.rs and update data.txt");
    let out = project.obra(&["task", "execute", &first.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The real CLI did write everything, ignored files included.
    assert_eq!(std::fs::read_to_string(root.join("data.txt")).unwrap(), "v2");
    assert!(
        root.join("build.log").exists() && root.join("scratch/tmp.txt").exists() && root.join("private.key").exists()
    );

    let lib = "pub fn answer() -> u32 { 42 }\n";
    assert_eq!(
        changes(&project, first),
        vec![
            ("README.md".into(), "deleted".into(), None, Some(sha256(b"# scratch\n")), None),
            ("data.txt".into(), "modified".into(), Some(2), Some(sha256(b"v1")), Some(sha256(b"v2"))),
            ("src/lib.rs".into(), "created".into(), Some(lib.len() as i64), None, Some(sha256(lib.as_bytes()))),
        ]
    );
    let shown = project.obra(&["task", "show", &first.to_string()]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let short = |h: String| h[..8].to_string();
    assert!(
        shown.contains(&format!("modified data.txt 2 B {}→{}", short(sha256(b"v1")), short(sha256(b"v2")))),
        "{shown}"
    );

    // While Obra is not running, someone edits data.txt; the next run reports it and does not charge it.
    write(root, "data.txt", "edited by hand");
    let second = project.create_task("Second", "Write second.txt");
    let out = project.obra(&["task", "execute", &second.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("changed outside agent runs") && all.contains("data.txt (modified)"), "{all}");
    let recorded: Vec<String> = changes(&project, second).into_iter().map(|c| c.0).collect();
    assert_eq!(recorded, vec!["second.txt".to_string()]);
}

/// One `obra run` of two tasks (the replay agent, no CLI needed): the change tracker is kept between the two
/// agent runs, so what a gate wrote in between is taken as the gate's (ADR 38): neither reported as changed
/// outside agent runs nor charged to either agent; and a `.gitignore` the first agent changed applies to the
/// second run.
#[test]
fn between_the_runs_of_one_obra_run_gate_output_is_not_charged_and_a_new_gitignore_applies() {
    let project = Project::new();
    let root = project.path();
    write(root, "gate.sh", "echo checked >> gate-report.txt\n");
    let recording = serde_json::json!({ "tasks": {
        "1": { "iterations": [{ "writes": [
            { "path": "a.txt", "content": "a\n" },
            { "path": ".gitignore", "content": "*.tmp\n" },
        ], "result": { "outcome": "success", "summary": "wrote a", "turns": 1 } }] },
        "2": { "iterations": [{ "writes": [
            { "path": "b.txt", "content": "b\n" },
            { "path": "scratch.tmp", "content": "ignored now\n" },
        ], "result": { "outcome": "success", "summary": "wrote b", "turns": 1 } }] },
    }});
    project.write_replay_config(&recording, "sh gate.sh");
    let first = project.create_task("Write a", "a.txt");
    let second = project.create_task("Write b", "b.txt");

    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let paths = |id: i64| -> Vec<String> { changes(&project, id).into_iter().map(|c| c.0).collect() };
    assert_eq!(paths(first), vec![".gitignore".to_string(), "a.txt".to_string()], "{said}");
    assert_eq!(paths(second), vec!["b.txt".to_string()], "the gate's file and the now ignored one: {said}");
    assert!(!said.contains("changed outside agent runs") && !said.contains("gate-report.txt"), "{said}");
    assert_eq!(std::fs::read_to_string(root.join("gate-report.txt")).unwrap(), "checked\nchecked\n");
}

/// The tests gate runs the REAL pytest after each agent run (the replay agent writes the code and the tests):
/// what pytest writes (`.pytest_cache/`, with its own `.gitignore`, and `__pycache__/`) is the gate's, so no
/// later run reports it as changed outside agent runs, nor, once pytest's `.gitignore` applies, as deleted while
/// it is still there; no agent is charged with it. What the user changes between runs is still reported.
#[test]
fn what_pytest_writes_as_a_gate_is_neither_an_outside_change_nor_deleted_later_and_user_edits_are_reported() {
    let Some(pytest) = obra_testkit::require_pytest() else { return };
    let project = Project::new();
    let root = project.path();
    let run = |writes: serde_json::Value| {
        serde_json::json!({ "iterations": [{ "writes": writes,
            "result": { "outcome": "success", "summary": "wrote the code and its test", "turns": 1 } }] })
    };
    let add = "def add(a, b):\n    return a + b\n";
    let add_sub = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";
    let recording = serde_json::json!({ "tasks": {
        "1": run(serde_json::json!([
            { "path": "calc.py", "content": add },
            { "path": "test_calc.py", "content": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n" },
        ])),
        "2": run(serde_json::json!([
            { "path": "calc.py", "content": add_sub },
            { "path": "test_sub.py", "content": "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n" },
        ])),
        "3": run(serde_json::json!([
            { "path": "test_more.py", "content": "from calc import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n" },
        ])),
        "4": run(serde_json::json!([{ "path": "done.txt", "content": "done\n" }])),
    }});
    project.write_replay_config(&recording, &format!("'{} -q'", pytest.display()));
    let tasks: Vec<i64> = (1..=3).map(|i| project.create_task(&format!("Step {i}"), "calc")).collect();

    // Three tasks in one `obra run`: the tracker is kept between them, and restarts once pytest's
    // `.pytest_cache/.gitignore` appeared.
    let out = project.obra(&["run"]);
    let mut said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(said.matches("gate tests: pass").count(), 3, "{said}");
    let no_gate_output = |said: &str| {
        for line in said.lines() {
            let names_gate_output = line.contains(".pytest_cache") || line.contains("__pycache__");
            assert!(!names_gate_output, "gate output named: {line}\n{said}");
        }
    };
    no_gate_output(&said);
    assert!(!said.contains("changed outside agent runs"), "{said}");
    // pytest did write its cache and bytecode in the workspace, and they are still there.
    assert!(root.join(".pytest_cache/.gitignore").is_file(), "{said}");
    assert!(root.join(".pytest_cache/v/cache/nodeids").is_file(), "{said}");
    let pycache: Vec<String> = std::fs::read_dir(root.join("__pycache__"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(pycache.iter().any(|f| f.starts_with("calc.")) && pycache.iter().any(|f| f.starts_with("test_calc.")));

    // Between runs, the user edits a file and adds one: the next run reports those, and only those.
    write(root, "README.md", "# scratch, edited by hand\n");
    write(root, "notes.txt", "mine\n");
    let fourth = project.create_task("Step 4", "done");
    let out = project.obra(&["task", "execute", &fourth.to_string()]);
    let fourth_said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{fourth_said}");
    assert!(
        fourth_said.contains(
            "2 file(s) changed outside agent runs since the last one: README.md (modified), notes.txt (created)"
        ),
        "{fourth_said}"
    );
    said.push_str(&fourth_said);

    let logs = project.obra(&["logs", "-n", "1000"]);
    assert!(logs.status.success(), "{}", text(&logs));
    let activity = project.obra(&["logs", "--activity"]);
    assert!(activity.status.success(), "{}", text(&activity));
    said.push_str(&text(&logs));
    said.push_str(&text(&activity));
    no_gate_output(&said);
    assert_eq!(said.matches("changed outside agent runs").count(), 1, "{said}");

    // No agent is charged with what pytest wrote.
    let paths = |id: i64| -> Vec<String> { changes(&project, id).into_iter().map(|c| c.0).collect() };
    assert_eq!(paths(tasks[0]), vec!["calc.py".to_string(), "test_calc.py".to_string()]);
    assert_eq!(paths(tasks[1]), vec!["calc.py".to_string(), "test_sub.py".to_string()]);
    assert_eq!(paths(tasks[2]), vec!["test_more.py".to_string()]);
    assert_eq!(paths(fourth), vec!["done.txt".to_string()]);
}

/// A FIFO in the workspace (git sees it as untracked) used to hang `obra task execute` after the first
/// checkpoint: the watcher's hash opened it and waited for a writer. It is now skipped, with a note, by the
/// watcher and the checkpoints, and the task completes. A run that never ends fails the test after a generous
/// deadline (a hang guard, not a timing assertion).
#[test]
fn a_fifo_in_the_workspace_is_skipped_with_a_note_and_the_task_completes() {
    let project = Project::with_echo_agent("true", "  []");
    let status = std::process::Command::new("mkfifo").arg(project.path().join("fifo")).status().unwrap();
    assert!(status.success(), "mkfifo (coreutils) is installed");
    let id = project.create_task("Leave the FIFO alone", "Nothing to change");
    let mut child = project
        .command(&["task", "execute", &id.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("obra task execute never finished with a FIFO in the workspace");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("skipped special file fifo (a FIFO)"), "{all}");
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
}
