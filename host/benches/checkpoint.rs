//! Checkpoints (ADR 5) on a 100,000-file tree (1,000 directories of 100 files) committed in a git repository:
//! taking one of the unchanged tree, taking one after an agent changed 100 files, the diff of a checkpoint
//! against the working tree, rolling back those 100 files, and rolling back after 10,000 files were deleted.
//!
//! Run: `cargo bench -p obra --bench checkpoint` (`CHECKPOINT_BENCH_FILES` changes the tree size).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use obra::workspace::checkpoint::Checkpoints;

mod support;

/// Rounds of each measurement.
const ROUNDS: usize = 5;

fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An agent's edit: rewrite `count` files spread over the tree, each with content unique to `round`.
fn edit(root: &Path, files: usize, count: usize, round: usize) {
    for k in 0..count {
        let i = k * (files / count);
        let path = root.join(format!("d{:03}/f{i}.rs", i / 100));
        std::fs::write(path, format!("// file {i}, edited in round {round}\n")).unwrap();
    }
}

fn timed<T>(samples: &mut Vec<Duration>, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    samples.push(started.elapsed());
    out
}

fn main() {
    let files: usize = std::env::var("CHECKPOINT_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::make_tree(root, files);
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "tree"]);
    let checkpoints = Checkpoints::open(root).unwrap().unwrap();

    let mut unchanged = Vec::new();
    let mut changed = Vec::new();
    let mut diffs = Vec::new();
    let mut rollbacks = Vec::new();
    let mut big_rollbacks = Vec::new();
    for round in 0..ROUNDS {
        let before = timed(&mut unchanged, || checkpoints.create("before the agent").unwrap());
        assert_eq!(before.files, files);
        edit(root, files, 100, round);
        timed(&mut changed, || checkpoints.create("after the agent").unwrap());
        let diff = timed(&mut diffs, || checkpoints.diff(&before.id, None).unwrap());
        assert_eq!(diff.changes.len(), 100);
        let report = timed(&mut rollbacks, || checkpoints.restore(&before.id, false).unwrap());
        assert_eq!(report.written, 100);

        // A destructive agent: 10,000 files deleted, then rolled back.
        for i in (0..files).step_by(10) {
            std::fs::remove_file(root.join(format!("d{:03}/f{i}.rs", i / 100))).unwrap();
        }
        let report = timed(&mut big_rollbacks, || checkpoints.restore(&before.id, true).unwrap());
        assert_eq!(report.written, files / 10);
    }
    support::report(&format!("checkpoint of an unchanged {files}-file tree"), &mut unchanged, 0);
    support::report(&format!("checkpoint after 100 of {files} files changed"), &mut changed, 0);
    support::report(&format!("checkpoint diff against the working tree ({files} files, 100 changed)"), &mut diffs, 0);
    support::report(&format!("rollback of 100 changed files ({files}-file tree)"), &mut rollbacks, 0);
    support::report(&format!("rollback after {} of {files} files were deleted", files / 10), &mut big_rollbacks, 0);
}
