//! Wall-clock time of `obra status` as a user runs it: a new process that opens the project, loads the
//! configuration and the store, and checks the configured plugins by name (it loads none, so a cold compile
//! cache costs nothing). Measured with a filled and with a new, empty compile cache, and as the backlog grows
//! (1,000 and 10,000 tasks, imported as one Markdown checklist), to show the slope.
//!
//! Run: `cargo bench -p obra --bench cli_status` (prints median and p95 of each).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

fn obra(project: &Path, home: &Path, cache: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_obra"))
        .arg("status")
        .current_dir(project)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run obra");
    let elapsed = started.elapsed();
    assert!(out.status.success(), "obra status failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("agent: "), "status named the plugins: {stdout}");
    elapsed
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let warm_cache = dir.path().join("cache");
    let init = Command::new(env!("CARGO_BIN_EXE_obra"))
        .args(["init", "--name", "bench"])
        .current_dir(&project)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &warm_cache)
        .output()
        .unwrap();
    assert!(init.status.success());

    obra(&project, &home, &warm_cache);
    let mut warm: Vec<Duration> = (0..30).map(|_| obra(&project, &home, &warm_cache)).collect();
    let mut cold: Vec<Duration> =
        (0..5).map(|i| obra(&project, &home, &dir.path().join(format!("cold-cache-{i}")))).collect();
    support::report("obra status, empty backlog, warm compile cache (no plugin loaded)", &mut warm, 1);
    support::report("obra status, empty backlog, empty compile cache (no plugin loaded)", &mut cold, 1);
    let mut imported = 0;
    for total in [1_000, 10_000] {
        let checklist: String = (imported..total).map(|i| format!("- [ ] task {i}\n")).collect();
        let file = dir.path().join(format!("backlog-{total}.md"));
        std::fs::write(&file, checklist).unwrap();
        let import = Command::new(env!("CARGO_BIN_EXE_obra"))
            .args(["task", "import"])
            .arg(&file)
            .current_dir(&project)
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", &warm_cache)
            .output()
            .unwrap();
        assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
        imported = total;
        let mut runs: Vec<Duration> = (0..15).map(|_| obra(&project, &home, &warm_cache)).collect();
        support::report(&format!("obra status, {total} tasks"), &mut runs, 1);
    }
}
