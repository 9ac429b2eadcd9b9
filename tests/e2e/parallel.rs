//! `obra run --parallel N`: independent tasks run at the same time in their own git worktrees and branches, are
//! merged back in dependency order, and a conflicting pair pauses the second at a `merge-conflict` breakpoint
//! with the project's checkout left clean. The agent is the replay plugin with a recorded backlog; the gate is a
//! rendezvous script that only passes when the two tasks of a pair run at the same time (so a serial run fails
//! the test rather than slowing it down). A push that hangs in one task holds up neither the other task nor
//! the run: it is stopped at `git.command_timeout_secs` with everything it started.

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

/// Whether process `pid` still runs (a zombie has ended).
#[cfg(target_os = "linux")]
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    !matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('Z' | 'X') | None)
}

#[cfg(target_os = "linux")]
#[test]
fn a_hanging_push_in_one_task_does_not_freeze_the_other_and_ends_at_the_time_limit() {
    let mut project = Project::new();
    let root = project.path().to_path_buf();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare"]);
    git(&root, &["remote", "add", "origin", remote.path().to_str().unwrap()]);
    // A stub gh (gh cannot log in here) that prints a pull request's URL.
    let bin = tempfile::tempdir().unwrap();
    std::fs::write(bin.path().join("gh"), "#!/bin/sh\necho https://github.test/o/r/pull/2\n").unwrap();
    std::fs::set_permissions(bin.path().join("gh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    project.set_env("PATH", &format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap()));

    // Task 1's push hangs: its pre-push hook says so, waits until Obra has taken task 2 through a second
    // iteration (which only a loop not blocked by the push can do), notes that, and then hangs for good, with a
    // grandchild of its own. Other pushes go through.
    let second_iteration = root.join(".obra/worktrees/task-2/b2.txt");
    let hook = root.join(".git/hooks/pre-push");
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
grep -q 'task-1-' || exit 0
touch {m}/push-started
i=0
while [ ! -f '{b2}' ]; do i=$((i+1)); if [ $i -gt 2400 ]; then exit 1; fi; sleep 0.05; done
touch {m}/saw-task-2-go-on
sleep 600 &
echo $! > {m}/grandchild
sleep 600
"#,
            b2 = second_iteration.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Task 2's first iteration fails its gate once task 1's push has started; its second passes.
    std::fs::write(
        root.join("gate.sh"),
        format!(
            r#"if [ -f b.txt ] && [ ! -f b2.txt ]; then
  i=0; while [ ! -f {m}/push-started ]; do i=$((i+1)); if [ $i -gt 2400 ]; then echo "no push started" >&2; exit 1; fi; sleep 0.05; done
  echo "task 2 goes round once more" >&2; exit 1
fi
exit 0
"#
        ),
    )
    .unwrap();
    git(&root, &["add", "gate.sh"]);
    git(&root, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "gate"]);

    let done = json!({ "outcome": "success", "summary": "done", "turns": 1 });
    let recording = json!({ "tasks": {
        "1": writes(&[("a.txt", "a\n")]),
        "2": { "iterations": [
            { "writes": [{ "path": "b.txt", "content": "b\n" }], "result": done },
            { "writes": [{ "path": "b2.txt", "content": "b2\n" }], "result": done },
        ] },
    }});
    project.write_config(&format!(
        "agent:\n  plugin: replay\nagents:\n  replay:\n    recording: {recording}\nllm:\n  provider: none\n\
         engine:\n  max_iterations: 2\n  decision:\n    escalate_threshold: 0.3\nrules: []\ngates:\n  - plugin: tests\n    enabled: true\n    config:\n      \
         command: sh gate.sh\ngit:\n  create_pr: true\n  command_timeout_secs: 20\n"
    ));
    assert_eq!(project.create_task("Write a", "a.txt"), 1);
    assert_eq!(project.create_task("Write b", "b.txt"), 2);

    let out = project.obra(&["run", "--parallel", "2"]);
    let said = text(&out);
    assert!(marks.path().join("saw-task-2-go-on").exists(), "task 2 went on while task 1's push hung: {said}");
    // Task 1's push ended at the limit, named with its key; its work stays on its branch.
    assert!(
        said.contains(
            "`git push --quiet --set-upstream origin obra/task-1-write-a` ran into the time limit \
             git.command_timeout_secs (20s) and was stopped"
        ),
        "{said}"
    );
    assert!(said.contains("task 1's work is committed on branch obra/task-1-write-a, but no pull request"), "{said}");
    let grandchild: i32 = std::fs::read_to_string(marks.path().join("grandchild")).unwrap().trim().parse().unwrap();
    assert!(!alive(grandchild), "the hook's own child was stopped with the push");
    // Task 2 was proposed as usual.
    assert!(said.contains("task 2's pull request (obra/task-2-write-b): https://github.test/o/r/pull/2"), "{said}");
    let pushed = git(remote.path(), &["branch", "--list"]);
    assert!(pushed.contains("obra/task-2-write-b") && !pushed.contains("task-1"), "{pushed}");
    for id in [1, 2] {
        let task = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
        assert_eq!(task["task"]["status"], "completed", "task {id}: {said}");
    }
    assert_eq!(out.status.code(), Some(0), "{said}");
}
