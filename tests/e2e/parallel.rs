//! `obra run --parallel N`: independent tasks run at the same time in their own git worktrees and branches, are
//! merged back in dependency order, and a conflicting pair pauses the second at a `merge-conflict` breakpoint
//! with the project's checkout left clean. The agent is the replay plugin with a recorded backlog; the gate is a
//! rendezvous script that only passes when the two tasks of a pair run at the same time (so a serial run fails
//! the test rather than slowing it down).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Project, text};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One replayed iteration writing `files` and reporting success.
fn writes(files: &[(&str, &str)]) -> Value {
    let writes: Vec<Value> = files.iter().map(|(p, c)| json!({ "path": p, "content": c })).collect();
    json!({ "iterations": [{ "writes": writes, "result": { "outcome": "success", "summary": "done", "turns": 1 } }] })
}

#[test]
fn parallel_tasks_run_in_worktrees_merge_in_order_and_a_conflict_opens_a_breakpoint() {
    let project = Project::new();
    let root = project.path();
    let meet = tempfile::tempdir().unwrap();
    std::fs::write(
        root.join("gate.sh"),
        format!(
            r#"M={m}
meet() {{ touch "$M/$1"; i=0; while [ ! -f "$M/$2" ]; do i=$((i+1)); if [ $i -gt 600 ]; then echo "task $1 ran without $2 beside it" >&2; exit 1; fi; sleep 0.05; done; }}
if [ -f x4.txt ] && [ ! -f x5.txt ]; then meet 4 5
elif [ -f x5.txt ] && [ ! -f x4.txt ]; then meet 5 4
elif [ -f a.txt ] && [ ! -f b.txt ]; then meet a b
elif [ -f b.txt ] && [ ! -f a.txt ]; then meet b a
fi
if [ -f both.txt ] && ! {{ [ -f a.txt ] && [ -f b.txt ]; }}; then echo "task 3 started before a.txt and b.txt were merged" >&2; exit 1; fi
exit 0
"#,
            m = meet.path().display()
        ),
    )
    .unwrap();
    git(root, &["add", "gate.sh"]);
    git(root, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "gate"]);

    let recording = json!({ "tasks": {
        "1": writes(&[("a.txt", "a\n")]),
        "2": writes(&[("b.txt", "b\n")]),
        "3": writes(&[("both.txt", "saw a and b\n")]),
        "4": writes(&[("c.txt", "four\n"), ("x4.txt", "4\n")]),
        "5": writes(&[("c.txt", "five\n"), ("x5.txt", "5\n")]),
    }});
    project.write_replay_config(&recording, "sh gate.sh");
    let a = project.create_task("Write a", "a.txt");
    let b = project.create_task("Write b", "b.txt");
    let both = project
        .obra_json(&["task", "create", "Needs a and b", "--depends-on", &format!("{a},{b}"), "--json"], 0)["id"]
        .as_i64()
        .unwrap();
    let four = project.create_task("Write c four", "c.txt");
    let five = project.create_task("Write c five", "c.txt");
    assert_eq!((a, b, both, four, five), (1, 2, 3, 4, 5));

    let out = project.obra(&["run", "--parallel", "2"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "one task paused at a breakpoint: {said}");

    let show = |id: i64| project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    for id in [a, b, both] {
        assert_eq!(show(id)["task"]["status"], "completed", "task {id}: {said}");
    }
    let (s4, s5) = (show(four), show(five));
    let (merged, conflicted, content) = match (s4["task"]["status"].as_str(), s5["task"]["status"].as_str()) {
        (Some("completed"), Some("paused")) => (four, five, "four\n"),
        (Some("paused"), Some("completed")) => (five, four, "five\n"),
        other => panic!("one of tasks 4 and 5 merges, the other conflicts: {other:?}\n{said}"),
    };
    // The project's checkout has every merged task's work, and nothing of the conflicting one.
    for (file, want) in [("a.txt", "a\n"), ("b.txt", "b\n"), ("both.txt", "saw a and b\n"), ("c.txt", content)] {
        assert_eq!(std::fs::read_to_string(root.join(file)).unwrap(), want, "{file}: {said}");
    }
    assert!(root.join(format!("x{merged}.txt")).exists() && !root.join(format!("x{conflicted}.txt")).exists());
    assert_eq!(git(root, &["log", "--merges", "--oneline"]).lines().count(), 4, "one merge per completed task");
    assert_eq!(git(root, &["rev-parse", "--abbrev-ref", "HEAD"]), git(root, &["branch", "--show-current"]));
    assert!(git(root, &["status", "--porcelain", "--untracked-files=no"]).is_empty(), "no merge left half-done");
    assert!(!root.join(".git/MERGE_HEAD").exists());
    assert_eq!(git(root, &["worktree", "list"]).lines().count(), 1, "every worktree is removed");

    // The conflict is a breakpoint that names the file and the branch to merge by hand.
    let task = &show(conflicted)["task"];
    let branch = task["git_branch"].as_str().unwrap().to_string();
    assert!(branch.starts_with(&format!("obra/task-{conflicted}-write-c-")), "{task}");
    assert_eq!(git(root, &["branch", "--list", &branch]).trim_start_matches(['*', ' ']), branch);
    let bps = project.obra_json(&["breakpoint", "list", "--json"], 0);
    let bp = bps.as_array().unwrap().iter().find(|b| b["task_id"] == conflicted).expect("a breakpoint");
    assert_eq!(bp["rule"], "merge-conflict");
    let reason = bp["reason"].as_str().unwrap();
    assert!(reason.contains("c.txt") && reason.contains(&format!("git merge {branch}")), "{reason}");
    assert!(show(merged)["task"]["git_commit"].as_str().is_some_and(|c| c.len() == 40));

    // Merged by hand, then approved: the task is completed and a later parallel run has nothing left to do.
    let out = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "merge", "--no-edit", "-X", "theirs", &branch])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bp_id = bp["id"].as_i64().unwrap().to_string();
    let resolved = project.obra(&["breakpoint", "resolve", &bp_id, "--approve"]);
    assert!(resolved.status.success(), "{}", text(&resolved));
    assert_eq!(show(conflicted)["task"]["status"], "completed");
    let again = project.obra(&["run", "--parallel", "2"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("no task is ready"), "{}", text(&again));
}

#[test]
fn parallel_needs_a_git_repository_with_a_commit() {
    let project = Project::uninitialised();
    let out = project.obra(&["init", "--name", "plain"]);
    assert!(out.status.success(), "{}", text(&out));
    project.write_config("agent:\n  plugin: replay\nllm:\n  provider: none\n");
    project.create_task("Anything", "x");
    let out = project.obra(&["run", "--parallel", "2"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("not in a git repository"), "{}", text(&out));
    let shown = project.obra_json(&["task", "show", "1", "--json"], 0);
    assert_eq!(shown["task"]["status"], "pending", "nothing ran: {shown}");
    let out = project.obra(&["run", "--parallel", "0"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses 0: {}", text(&out));
}
