//! Peak memory (the kernel's high-water mark of the resident set, from `wait4`) and wall-clock time of `obra
//! run` over a backlog of 10 tasks with every kind of built-in plugin loaded: the replay agent, the Ollama
//! provider (a fake Ollama answering), the response-format, tests, expected-files and llm-review gates, and the
//! low-confidence and max-iterations rules (plus the host-native rules). Measured with a cold compile cache
//! (every built-in compiled by Cranelift in the run) and a warm one.
//!
//! Run: `cargo bench -p obra --bench peak_memory`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use obra_testkit::{FakeOllama, OllamaReply};
use serde_json::json;

mod support;

/// Tasks per run.
const TASKS: usize = 10;
/// Runs per cache state.
const RUNS: usize = 3;

fn obra(project: &Path, home: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_obra"));
    command
        .args(args)
        .current_dir(project)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", cache)
        .env("NO_COLOR", "1");
    command
}

/// Run `obra run` to its end; its peak RSS in MiB and its wall-clock time.
fn measured_run(project: &Path, home: &Path, cache: &Path) -> (f64, Duration) {
    let started = Instant::now();
    // Reaped by wait4 below, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = obra(project, home, cache, &["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start obra run");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 writes it for the child we started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not waited for elsewhere; status and usage are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "obra run failed (status {status})");
    // ru_maxrss is in KiB on Linux.
    (usage.ru_maxrss as f64 / 1024.0, elapsed)
}

/// A project whose backlog of [`TASKS`] tasks uses every kind of built-in plugin.
fn project(root: &Path, home: &Path, cache: &Path, ollama: &FakeOllama) {
    let run = |args: &[&str]| {
        let out = Command::new("git").current_dir(root).args(args).output().unwrap();
        assert!(out.status.success());
    };
    run(&["init", "-q"]);
    std::fs::write(root.join("README.md"), "# bench\n").unwrap();
    run(&["add", "."]);
    run(&["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]);
    let out = obra(root, home, cache, &["init", "--name", "bench"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tasks: serde_json::Map<String, serde_json::Value> = (1..=TASKS)
        .map(|i| {
            let iteration = json!({
                "writes": [{ "path": format!("src/m{i}.rs"), "content": format!("pub fn f{i}() {{}}\n") }],
                "result": { "outcome": "success", "summary": format!("Wrote src/m{i}.rs."), "turns": 1 },
            });
            (i.to_string(), json!({ "iterations": [iteration] }))
        })
        .collect();
    let recording = json!({ "tasks": tasks });
    std::fs::write(
        root.join(".obra/config.yaml"),
        format!(
            "agent:\n  plugin: replay\nagents:\n  replay:\n    recording: {recording}\nllm:\n  provider: ollama\n  \
             timeout_secs: 10\nllms:\n  ollama:\n    base_url: {}\nengine:\n  max_iterations: 1\ngates:\n  - plugin: \
             response-format\n  - plugin: tests\n    config:\n      command: \"true\"\n  - plugin: expected-files\n    \
             config:\n      must_change: [\"src/**\"]\n  - plugin: llm-review\nrules:\n  - plugin: low-confidence\n  - \
             plugin: max-iterations\n",
            ollama.base_url()
        ),
    )
    .unwrap();
    for i in 1..=TASKS {
        let out = obra(root, home, cache, &["task", "create", &format!("Write module {i}")]).output().unwrap();
        assert!(out.status.success());
    }
}

fn main() {
    let mut peaks = [Vec::new(), Vec::new()];
    let mut times = [Vec::new(), Vec::new()];
    let scratch = tempfile::tempdir().unwrap();
    let warm_cache = scratch.path().join("warm-cache");
    for run in 0..=RUNS {
        // Run 0 fills the warm cache (and is a cold run); the others are measured warm, each with a cold one.
        for (slot, cold) in [(0, true), (1, false)] {
            if run == 0 && !cold {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let (root, home) = (dir.path().join("p"), dir.path().join("h"));
            std::fs::create_dir_all(&root).unwrap();
            std::fs::create_dir_all(&home).unwrap();
            let cache = if cold { dir.path().join("cold-cache") } else { warm_cache.clone() };
            let review = json!({ "score": 0.9, "passed": true, "findings": [] });
            let opinion = json!({ "confidence": 0.95, "reasoning": "the module is there", "concerns": [] });
            let ollama = FakeOllama::start(
                (0..TASKS).flat_map(|_| [OllamaReply::json(&review), OllamaReply::json(&opinion)]).collect::<Vec<_>>(),
            );
            // Setting up uses a cache of its own, so a cold run starts from an empty one.
            project(&root, &home, &dir.path().join("setup-cache"), &ollama);
            let (peak, elapsed) = measured_run(&root, &home, if run == 0 { &warm_cache } else { &cache });
            assert_eq!(ollama.remaining(), 0, "every task asked the review and the opinion");
            peaks[slot].push(peak);
            times[slot].push(elapsed);
        }
    }
    for (slot, label) in [(0, "cold compile cache"), (1, "warm compile cache")] {
        let mut p = peaks[slot].clone();
        p.sort_by(f64::total_cmp);
        support::value(
            &format!("peak RSS of obra run, {TASKS} tasks, all built-in kinds, {label}"),
            "MB",
            p[p.len() / 2],
        );
        support::report(&format!("obra run of {TASKS} supervised tasks, {label}"), &mut times[slot], 0);
    }
}
