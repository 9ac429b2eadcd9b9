//! Git integration (issue 6, the seeds' M9) through `obra run` in real git repositories: commits of completed
//! work with the LLM's conventional message and Obra's trailers, per task and per milestone, never when a gate
//! failed, never touching the user's other changes; a checkpoint of the finished work that `obra checkpoint
//! show|diff` read; a branch and a pull request per task (a stub `gh` records its arguments, since gh cannot
//! log in here; the push goes to a real bare repository); and a repository in the middle of a merge or rebase
//! refused with nothing changed. The agent is the replay plugin; the LLM is a fake Ollama.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Project, text};
use obra_testkit::{FakeOllama, OllamaReply};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// `git status --porcelain` (Obra's own `.obra/` left out) without trimming its leading spaces.
fn status(dir: &Path) -> String {
    let out =
        Command::new("git").current_dir(dir).args(["status", "--porcelain", "--", ".", ":!.obra"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// One replayed iteration writing `files` and reporting success with `summary`.
fn writes(files: &[(&str, &str)], summary: &str) -> Value {
    let writes: Vec<Value> = files.iter().map(|(p, c)| json!({ "path": p, "content": c })).collect();
    json!({ "iterations": [{ "writes": writes, "result": { "outcome": "success", "summary": summary, "turns": 1 } }] })
}

/// A config with the replay agent playing `tasks`, `llm` (YAML lines under `llm:`), and `rest` appended.
fn configure(project: &Project, tasks: Value, llm: &str, rest: &str) {
    let recording = json!({ "tasks": tasks });
    project.write_config(&format!(
        "agent:\n  plugin: replay\nagents:\n  replay:\n    recording: {recording}\nllm:\n{llm}\n\
         engine:\n  max_iterations: 1\n{rest}"
    ));
}

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

fn trailer(dir: &Path, commit: &str, key: &str) -> String {
    git(dir, &["log", "-1", &format!("--format=%(trailers:key={key},valueonly)"), commit]).trim().to_string()
}

#[test]
fn completed_tasks_are_committed_with_the_llms_message_and_trailers_and_the_users_own_changes_stay_put() {
    let project = Project::new();
    let root = project.path();
    // The user's own unfinished work: an unstaged edit and a staged new file.
    std::fs::write(root.join("README.md"), "# scratch\nmy edit\n").unwrap();
    std::fs::write(root.join("notes.txt"), "staged by me\n").unwrap();
    git(root, &["add", "notes.txt"]);

    let ollama = FakeOllama::start([]);
    ollama.route(
        "\"prompt_type\": \"commit_message\"",
        OllamaReply::json(
            &json!({ "subject": "feat(greet): add the greeting", "body": "Adds src/greet.txt, which says hello." }),
        ),
    );
    for title in ["Add the greeting", "Add b"] {
        ollama.route(title, OllamaReply::json(&json!({ "confidence": 0.95, "reasoning": "done", "concerns": [] })));
    }
    let tasks = json!({
        "1": writes(&[("src/greet.txt", "hello\n")], "Wrote the greeting."),
        "2": writes(&[("b.txt", "b\n")], "Wrote b."),
    });
    configure(
        &project,
        tasks,
        &format!("  provider: ollama\n  timeout_secs: 5\nllms:\n  ollama:\n    base_url: {}", ollama.base_url()),
        // The lint gate fails for task 2 only; it is not required and weighs little, so task 2 still completes.
        "git:\n  commit_strategy: per_task\ngates:\n  - plugin: tests\n    config:\n      command: \"true\"\n  - plugin: tests\n    name: lint\n    required: false\n    \
         weight: 0.05\n    config:\n      command: test ! -f b.txt\n",
    );
    let greet = project.create_task("Add the greeting", "src/greet.txt says hello");
    let b = project.create_task("Add b", "b.txt");
    let head_before = git(root, &["rev-parse", "HEAD"]);

    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("committed"), "{said}");
    assert!(said.contains("not committed: gate lint failed"), "{said}");

    // Exactly one commit, on the user's branch, holding exactly the task's file.
    assert_eq!(git(root, &["rev-list", "--count", &format!("{head_before}..HEAD")]), "1");
    let commit = git(root, &["rev-parse", "HEAD"]);
    assert_eq!(git(root, &["show", "--name-status", "--format=", &commit]), "A\tsrc/greet.txt");
    let message = git(root, &["log", "-1", "--format=%B", &commit]);
    assert!(
        message.starts_with("feat(greet): add the greeting\n\nAdds src/greet.txt, which says hello.\n\n"),
        "{message}"
    );
    assert_eq!(trailer(root, &commit, "Obra-Task"), "1");
    let confidence: f64 = trailer(root, &commit, "Obra-Confidence").parse().unwrap();
    assert!(confidence >= 0.7, "{message}");
    assert_eq!(trailer(root, &commit, "Obra-Quality"), "1.00");
    assert_eq!(show(&project, greet)["task"]["git_commit"], commit.as_str());

    // The LLM was asked for the message with the task and its files.
    let asked = ollama
        .requests()
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .find(|b| b.contains("commit_message"))
        .expect("a commit message request");
    assert!(asked.contains("Add the greeting") && asked.contains("src/greet.txt"), "{asked}");

    // Task 2 completed but its lint gate failed: its work is in the tree, uncommitted.
    assert_eq!(show(&project, b)["task"]["status"], "completed");
    assert!(show(&project, b)["task"]["git_commit"].is_null());
    assert_eq!(std::fs::read_to_string(root.join("b.txt")).unwrap(), "b\n");

    // The user's changes are as they were: README.md edited and unstaged, notes.txt staged.
    assert_eq!(status(root), " M README.md\nA  notes.txt\n?? b.txt\n", "{said}");

    // The checkpoint of the finished work, and what it changed since the one before the agent ran.
    let list = project.obra_json(&["checkpoint", "list", "--task", &greet.to_string(), "--json"], 0);
    let labels: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 2, "{list}");
    assert!(labels[0].contains("completed (PROCEED") && labels[1].contains("before the agent runs"), "{labels:?}");
    let (done, before) = (list[0]["id"].as_i64().unwrap(), list[1]["id"].as_i64().unwrap());
    let shown = project.obra_json(&["checkpoint", "show", &done.to_string(), "--json"], 0);
    assert_eq!(shown["changes"], json!([{ "path": "src/greet.txt", "change": "added" }]), "{shown}");
    let out = project.obra(&["checkpoint", "diff", &before.to_string(), &done.to_string()]);
    let patch = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && patch.contains("+++ b/src/greet.txt") && patch.contains("+hello"),
        "{}",
        text(&out)
    );
    // Against the working tree: task 2's b.txt is the difference.
    let diff = project.obra_json(&["checkpoint", "diff", &done.to_string(), "--stat", "--json"], 0);
    assert_eq!(diff["changes"], json!([{ "path": "b.txt", "change": "added" }]), "{diff}");
    assert!(diff["patch"].is_null());
    let out = project.obra(&["checkpoint", "show", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("checkpoint 999 does not exist"), "{}", text(&out));
}

#[test]
fn per_milestone_commits_once_when_the_milestones_last_task_completes_with_the_template_message() {
    let project = Project::new();
    let root = project.path();
    let tasks = json!({
        "1": writes(&[("m/one.txt", "1\n")], "One."),
        "2": writes(&[("m/two.txt", "2\n")], "Two."),
        "3": writes(&[("alone.txt", "3\n")], "Alone."),
    });
    configure(&project, tasks, "  provider: none", "git:\n  commit_strategy: per_milestone\n");
    for (title, milestone) in [("Write one", Some("docs")), ("Write two", Some("docs")), ("Fix alone", None)] {
        let mut args = vec!["task", "create", title, "--json"];
        if let Some(m) = milestone {
            args.extend(["--milestone", m]);
        }
        project.obra_json(&args, 0);
    }
    let head_before = git(root, &["rev-parse", "HEAD"]);
    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("milestone \"docs\" is committed when its last task completes (1 left)"), "{said}");

    let log = git(root, &["log", "--format=%H %s", &format!("{head_before}..HEAD")]);
    let commits: Vec<(&str, &str)> = log.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(commits.len(), 2, "{log}");
    // Newest first: task 3 (no milestone) per task, then the milestone.
    let (milestone, alone) = (commits[1], commits[0]);
    assert_eq!(milestone.1, "feat: milestone docs", "{log}");
    assert_eq!(git(root, &["show", "--name-only", "--format=", milestone.0]), "m/one.txt\nm/two.txt");
    assert_eq!(trailer(root, milestone.0, "Obra-Task"), "1, 2");
    assert_eq!(trailer(root, milestone.0, "Obra-Milestone"), "docs");
    assert_eq!(alone.1, "fix: alone", "the template drops the title's own leading verb: {log}");
    assert_eq!(git(root, &["show", "--name-only", "--format=", alone.0]), "alone.txt");
    for id in [1, 2] {
        assert_eq!(show(&project, id)["task"]["git_commit"], milestone.0, "task {id}");
    }
    assert_eq!(status(root), "", "everything the tasks did is committed");
}

#[test]
fn a_branch_per_task_is_pushed_and_proposed_as_a_pull_request_instead_of_merged() {
    let mut project = Project::new();
    let root = project.path().to_path_buf();
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare"]);
    git(&root, &["remote", "add", "origin", remote.path().to_str().unwrap()]);
    let branch = git(&root, &["rev-parse", "--abbrev-ref", "HEAD"]);
    // A stub gh: records its arguments, one per line, and prints the PR's URL like gh does.
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("gh-args");
    std::fs::write(
        bin.path().join("gh"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {}\necho https://github.test/o/r/pull/7\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.path().join("gh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    project.set_env("PATH", &format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap()));

    configure(
        &project,
        json!({
            "1": writes(&[("feature.txt", "new\n")], "Added the feature."),
            "2": writes(&[("merged.txt", "merged\n")], "Added merged.txt."),
        }),
        "  provider: none",
        "git:\n  commit_strategy: per_task\n  branch_per_task: true\n  create_pr: true\n",
    );
    let id = project.create_task("Add the feature", "feature.txt");
    let out = project.obra(&["run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("pull request") && said.contains("https://github.test/o/r/pull/7"), "{said}");

    let task_branch = "obra/task-1-add-the-feature";
    assert_eq!(show(&project, id)["task"]["git_branch"], task_branch);
    // The branch is on the remote with the task's commit; the user's checkout is untouched.
    let pushed = git(remote.path(), &["log", "--format=%s", task_branch]);
    assert_eq!(pushed.lines().next(), Some("feat: add the feature"), "{pushed}");
    assert_eq!(git(&root, &["rev-parse", "--abbrev-ref", "HEAD"]), branch);
    assert!(!root.join("feature.txt").exists(), "not merged into the checkout");
    assert!(!root.join(".obra/worktrees/task-1").exists(), "the worktree is removed");
    let args = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        &args[..8],
        ["pr", "create", "--base", &branch, "--head", task_branch, "--title", "feat: add the feature"]
    );
    assert_eq!(args[8], "--body");
    assert!(args.contains(&"Obra-Task: 1") && args.last() == Some(&"--draft"), "{args:?}");

    // `task execute` works in a worktree too; without create_pr the branch is merged back and deleted.
    let second = project.create_task("Add merged", "merged.txt");
    let out = project.obra(&["--set", "git.create_pr=false", "task", "execute", &second.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("works in .obra/worktrees/task-2 on branch obra/task-2-add-merged"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(root.join("merged.txt")).unwrap(), "merged\n");
    assert_eq!(git(&root, &["log", "-1", "--format=%s"]), "obra: merge task 2 (Add merged)");
    assert_eq!(git(&root, &["log", "-1", "--format=%s", "HEAD^2"]), "feat: add merged", "the task's own commit");
    assert!(git(&root, &["branch", "--list", "obra/task-2-*"]).is_empty(), "the merged branch is deleted");
}

#[test]
fn a_repository_in_the_middle_of_a_merge_or_a_rebase_is_refused_and_nothing_changes() {
    let project = Project::new();
    let root = project.path();
    configure(&project, json!({ "1": writes(&[("x.txt", "x\n")], "x") }), "  provider: none", "");
    let id = project.create_task("Write x", "x.txt");
    let id_text = id.to_string();
    let commit = |m: &str| git(root, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", m]);
    let main = git(root, &["rev-parse", "--abbrev-ref", "HEAD"]);
    git(root, &["checkout", "-qb", "other"]);
    std::fs::write(root.join("README.md"), "other\n").unwrap();
    commit("other");
    git(root, &["checkout", "-q", &main]);
    std::fs::write(root.join("README.md"), "mine\n").unwrap();
    commit("mine");

    // With an identity of its own: a user without one (a fresh machine) would get no MERGE_HEAD at all.
    let merge = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "merge", "other"])
        .output()
        .unwrap();
    assert!(!merge.status.success(), "the merge conflicts");
    assert!(root.join(".git/MERGE_HEAD").exists(), "git stopped in the middle of the merge: {}", text(&merge));
    let conflicted = std::fs::read(root.join("README.md")).unwrap();
    for args in [&["run"][..], &["task", "execute", &id_text]] {
        let out = project.obra(args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("in the middle of a merge") && text(&out).contains("git merge --abort"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(std::fs::read(root.join("README.md")).unwrap(), conflicted, "the conflicted file is as git left it");
    assert!(root.join(".git/MERGE_HEAD").exists(), "the merge is still there to finish");
    assert!(!root.join("x.txt").exists());
    let shown = show(&project, id);
    assert_eq!(shown["task"]["status"], "pending");
    assert_eq!(shown["interactions"], json!([]));
    git(root, &["merge", "--abort"]);

    let rebase = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "rebase", "other"])
        .output()
        .unwrap();
    assert!(!rebase.status.success(), "the rebase conflicts");
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("in the middle of a rebase") && text(&out).contains("git rebase --abort"),
        "{}",
        text(&out)
    );
    assert_eq!(show(&project, id)["interactions"], json!([]));
    git(root, &["rebase", "--abort"]);

    // Once finished, the task runs.
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(root.join("x.txt")).unwrap(), "x\n");
}

#[test]
fn obra_init_keeps_its_machine_local_state_out_of_git_and_the_configuration_in() {
    let project = Project::new();
    let root = project.path();
    configure(&project, json!({ "1": writes(&[("x.txt", "x\n")], "x") }), "  provider: none", "");
    project.create_task("Write x", "x.txt");
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(root.join(".obra/obra.db").exists() && root.join(".obra/watch-index").exists());
    let untracked = git(root, &["status", "--porcelain", "--untracked-files=all", "--", ".obra"]);
    assert_eq!(untracked, "?? .obra/.gitignore\n?? .obra/config.yaml", "{untracked}");
}

#[test]
fn work_a_human_approves_at_a_breakpoint_is_committed_with_the_approver_in_a_trailer() {
    let project = Project::new();
    let root = project.path();
    let iteration = json!({
        "writes": [{ "path": "approved.txt", "content": "ok\n" }],
        "result": { "outcome": "success", "summary": "Wrote approved.txt.", "turns": 1,
                    "usage": { "input_tokens": 500, "output_tokens": 50 } },
    });
    configure(
        &project,
        json!({ "1": { "iterations": [iteration] } }),
        "  provider: none",
        // A token budget of 100 pauses the task although its gate passed.
        "git:\n  commit_strategy: per_task\ngates:\n  - plugin: tests\n    config:\n      command: \"true\"\n\
         rules:\n  - plugin: budget\n    config:\n      max_task_tokens: 100\n",
    );
    let id = project.create_task("Write approved", "approved.txt");
    let head_before = git(root, &["rev-parse", "HEAD"]);
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(3), "the budget pauses the task: {}", text(&out));
    assert_eq!(git(root, &["rev-parse", "HEAD"]), head_before, "nothing committed while paused");

    let breakpoint = project.obra_json(&["breakpoint", "list", "--json"], 0)[0]["id"].as_i64().unwrap();
    let mut approve = project.command(&["breakpoint", "resolve", &breakpoint.to_string(), "--approve"]);
    let out = approve.env("USER", "reviewer").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("committed"), "{}", text(&out));
    let commit = git(root, &["rev-parse", "HEAD"]);
    assert_ne!(commit, head_before);
    assert_eq!(git(root, &["show", "--name-only", "--format=", &commit]), "approved.txt");
    assert_eq!(trailer(root, &commit, "Obra-Approved-By"), "reviewer");
    assert_eq!(trailer(root, &commit, "Obra-Task"), id.to_string());
    assert_eq!(show(&project, id)["task"]["git_commit"], commit.as_str());
}
