//! Checkpoints (ADR 5, ADR 41). Three parts, each skipped unless named in `CHECKPOINT_BENCH_ONLY`
//! (comma-separated; all three when unset):
//!
//! - `history`: a checkpoint after one file changed, in a 20-file repository that already holds 10, 1,000 and
//!   10,000 checkpoint refs: taking one must not cost more with a longer history.
//! - `size`: a checkpoint after one file changed, in a workspace of 10,000 untracked files plus 10,000, 30,000
//!   (and, with `CHECKPOINT_BENCH_SIZES=10000,30000,100000`, 100,000) tracked ones: a full scan
//!   (`Checkpoints::create`) and one built on the previous checkpoint with the watcher's journal
//!   (`Checkpoints::create_tracked`), with their ratio and their slope per 10,000 files.
//! - `tree`: a 100,000-file tree (1,000 directories of 100 files) committed in a git repository: taking one of
//!   the unchanged tree, taking one after an agent changed 100 files, the diff of a checkpoint against the
//!   working tree, rolling back those 100 files, and rolling back after 10,000 files were deleted
//!   (`CHECKPOINT_BENCH_FILES` changes the tree size).
//!
//! Run: `cargo bench -p obra --bench checkpoint`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use obra::config::WorkspaceConfig;
use obra::workspace::ChangeTracker;
use obra::workspace::checkpoint::{CheckpointInfo, Checkpoints};

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

/// Whether the part `name` is to run (`CHECKPOINT_BENCH_ONLY`).
fn wanted(name: &str) -> bool {
    match std::env::var("CHECKPOINT_BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only.split(',').any(|part| part.trim() == name),
        _ => true,
    }
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

/// A repository of 20 committed files in `root`.
fn small_repo(root: &Path) {
    git(root, &["init", "-q"]);
    for i in 0..20 {
        std::fs::write(root.join(format!("file{i}.rs")), format!("// file {i}\n")).unwrap();
    }
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "small"]);
}

/// `count` checkpoint refs, as a long history leaves them, all on HEAD's commit (one `git update-ref`).
fn history(root: &Path, count: usize) {
    use std::io::Write;
    let mut child = Command::new("git")
        .current_dir(root)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("git");
    let mut input = String::new();
    for n in 1..=count {
        input.push_str(&format!("create refs/obra/checkpoints/{n} HEAD\n"));
    }
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A checkpoint built on the previous one with the tracker's journal (ADR 41). To measure the code before it
/// (commit 5202e4e), this function's body becomes `checkpoints.create(label).unwrap()` (see
/// docs/PERFORMANCE.md, "Issue 18 item 2").
fn incremental(checkpoints: &Checkpoints, tracker: &mut ChangeTracker, label: &str) -> CheckpointInfo {
    checkpoints.create_tracked(label, tracker).unwrap()
}

/// Scans of the whole tree so far (none counted before ADR 41).
fn full_scans(checkpoints: &Checkpoints) -> usize {
    checkpoints.full_scans()
}

fn watching(root: &Path) -> ChangeTracker {
    let config = WorkspaceConfig { watch: true, debounce_ms: 10, ignore: Vec::new() };
    let (tracker, _) = ChangeTracker::start(root, &config).unwrap();
    assert!(tracker.is_watching(), "{:?}", tracker.fallback_reason);
    tracker
}

/// The history part: the median checkpoint after one changed file, with `prior` refs already there.
fn history_part() {
    const ROUNDS: usize = 20;
    let mut medians = Vec::new();
    for prior in [10, 1_000, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        small_repo(root);
        history(root, prior);
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let mut tracker = watching(root);
        // The first one numbers from the refs (once) and is the base of the next.
        incremental(&checkpoints, &mut tracker, "first");
        let (mut full, mut tracked) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            std::fs::write(root.join("file3.rs"), format!("// round {round}\n")).unwrap();
            timed(&mut full, || checkpoints.create("full").unwrap());
            std::fs::write(root.join("file4.rs"), format!("// round {round}\n")).unwrap();
            timed(&mut tracked, || incremental(&checkpoints, &mut tracker, "tracked"));
        }
        medians.push((prior, median_ms(&mut full), median_ms(&mut tracked)));
        support::report(&format!("checkpoint (full scan) of 20 files after {prior} checkpoints"), &mut full, 2);
        support::report(&format!("checkpoint (incremental) of 20 files after {prior} checkpoints"), &mut tracked, 2);
    }
    let (first, last) = (medians[0], medians[medians.len() - 1]);
    support::value("checkpoint cost at 10,000 prior checkpoints / at 10, full scan", "ratio", last.1 / first.1);
    support::value("checkpoint cost at 10,000 prior checkpoints / at 10, incremental", "ratio", last.2 / first.2);
}

/// The size part: full and incremental checkpoints of 10,000 untracked plus `tracked` files.
fn size_part() {
    const ROUNDS: usize = 5;
    let sizes: Vec<usize> = std::env::var("CHECKPOINT_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 30_000]);
    let mut medians = Vec::new();
    for &tracked_files in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        support::make_tree(root, tracked_files);
        git(root, &["init", "-q"]);
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "tree"]);
        for i in 0..10_000 {
            let dir = root.join(format!("u{:03}", i / 100));
            if i % 100 == 0 {
                std::fs::create_dir_all(&dir).unwrap();
            }
            std::fs::write(dir.join(format!("u{i}.txt")), format!("untracked {i}\n")).unwrap();
        }
        let files = tracked_files + 10_000;
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let mut tracker = watching(root);
        incremental(&checkpoints, &mut tracker, "first");
        let (mut full, mut built_on) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            std::fs::write(root.join("d000/f1.rs"), format!("// round {round}\n")).unwrap();
            let info = timed(&mut full, || checkpoints.create("full").unwrap());
            assert_eq!(info.files, files);
            std::fs::write(root.join("u000/u1.txt"), format!("round {round}\n")).unwrap();
            let info = timed(&mut built_on, || incremental(&checkpoints, &mut tracker, "tracked"));
            assert_eq!(info.files, files);
        }
        let scans = full_scans(&checkpoints);
        assert!(scans == 0 || scans == 1 + ROUNDS, "only the first tracked checkpoint and the full ones scan");
        medians.push((tracked_files, median_ms(&mut full), median_ms(&mut built_on)));
        let name = format!("10,000 untracked + {tracked_files} tracked files, one changed");
        support::report(&format!("checkpoint (full scan), {name}"), &mut full, 1);
        support::report(&format!("checkpoint (incremental), {name}"), &mut built_on, 2);
    }
    for &(tracked_files, full, incremental) in &medians {
        support::value(
            &format!("checkpoint full scan / incremental, 10,000 untracked + {tracked_files} tracked files"),
            "ratio",
            full / incremental,
        );
    }
    let (first, last) = (medians[0], medians[medians.len() - 1]);
    let per_10k = |a: f64, b: f64| (b - a) / ((last.0 - first.0) as f64 / 10_000.0);
    support::value("checkpoint (full scan) slope per 10,000 tracked files", "ms", per_10k(first.1, last.1));
    support::value("checkpoint (incremental) slope per 10,000 tracked files", "ms", per_10k(first.2, last.2));
}

fn main() {
    if wanted("history") {
        history_part();
    }
    if wanted("size") {
        size_part();
    }
    if wanted("tree") {
        tree_part();
    }
}

/// The tree part (see the module documentation).
fn tree_part() {
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
