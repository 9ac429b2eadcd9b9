//! The file watcher (ADR 25) on a 100,000-file tree (1,000 directories of 100 files): start time (first start,
//! which hashes every file, and a start with the saved index, which only stats), the RSS it adds, the latency
//! from an agent's write to the change being taken (`take`: flush, debounce, rehash), and the whole-tree
//! snapshot diff (ADR 4) on the same tree for comparison.
//!
//! Run: `cargo bench -p obra --bench watcher` (prints median and p95 of each; `WATCHER_BENCH_FILES` changes the
//! tree size).

use std::time::{Duration, Instant};

use obra::config::WorkspaceConfig;
use obra::workspace::watcher::ChangeTracker;
use obra::workspace::{Snapshot, diff};

mod support;

/// The resident set size of this process, in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let files: usize = std::env::var("WATCHER_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::make_tree(root, files);
    let config = WorkspaceConfig { watch: true, debounce_ms: 50, ignore: vec![] };

    let rss_before = rss_kib();
    let started = Instant::now();
    let (tracker, _) = ChangeTracker::start(root, &config).unwrap();
    let first_start = started.elapsed();
    let rss_after = rss_kib();
    assert!(tracker.is_watching(), "{:?}", tracker.fallback_reason);
    assert_eq!(tracker.len(), files);
    let added_kib = rss_after.saturating_sub(rss_before);
    support::value(&format!("watcher first start ({files} files, hashes all)"), "ms", first_start.as_secs_f64() * 1e3);
    support::value(&format!("RSS added by the watcher and its index ({files} files)"), "MB", added_kib as f64 / 1024.0);
    support::value("RSS added per watched file", "bytes", (added_kib * 1024) as f64 / files as f64);
    drop(tracker);

    let mut starts = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        let (t, _) = ChangeTracker::start(root, &config).unwrap();
        starts.push(started.elapsed());
        last = Some(t);
    }
    let mut tracker = last.unwrap();
    support::report("watcher start with the saved index (stat only)", &mut starts, 0);

    let mut latencies = Vec::new();
    for i in 0..50 {
        let path = root.join(format!("d{:03}/f{}.rs", (i * 7) % (files / 100).max(1), i));
        let written = Instant::now();
        std::fs::write(&path, format!("// changed {i}\n")).unwrap();
        let changes = tracker.take().unwrap();
        latencies.push(written.elapsed());
        assert_eq!(changes.len(), 1, "{changes:?}");
    }
    support::report("write -> change taken (debounce 50 ms included)", &mut latencies, 1);
    let mut after_debounce: Vec<Duration> =
        latencies.iter().map(|d| d.saturating_sub(Duration::from_millis(config.debounce_ms))).collect();
    support::report("write -> change taken, minus the 50 ms debounce", &mut after_debounce, 1);
    drop(tracker);

    let mut snapshots = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        let before = Snapshot::take(root).unwrap();
        std::fs::write(root.join(format!("d000/f{i}.rs")), format!("// snapshot {i}\n")).unwrap();
        let after = Snapshot::take(root).unwrap();
        let changes = diff(&before, &after);
        snapshots.push(started.elapsed());
        assert_eq!(changes.len(), 1);
    }
    support::report("snapshot diff (two full hash scans) per agent run", &mut snapshots, 0);
}
