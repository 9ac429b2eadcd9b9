//! The store under a full disk and a read-only file system (a real tmpfs mounted over the project's `.obra/`):
//! every command says what happened and what to do, nothing already stored is lost or half-written, and once
//! the disk is fixed the same commands go on from where they stopped. Mounting needs root: outside CI the tests
//! skip with a notice when they cannot mount; with CI=true they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Project, text};
use serde_json::Value;

/// A tmpfs mounted over a directory, with the directory's previous content copied in; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn over(dir: &Path, size: &str) -> Option<Tmpfs> {
        let keep = tempfile::tempdir().unwrap();
        let copy = |from: &Path, to: &Path| {
            let status = Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status().unwrap();
            assert!(status.success(), "cp -a {} {}", from.display(), to.display());
        };
        copy(dir, keep.path());
        let mounted =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        match mounted {
            Ok(out) if out.status.success() => {}
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                let hint = format!("cannot mount a tmpfs (needs root): {}", why.trim());
                obra_testkit::requirements::missing("tmpfs", &hint);
                return None;
            }
        }
        copy(keep.path(), dir);
        Some(Tmpfs { dir: dir.to_path_buf() })
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.dir).status().unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn tasks(project: &Project) -> Vec<Value> {
    project.obra_json(&["task", "list", "--json"], 0).as_array().cloned().unwrap()
}

/// Fill the file system of `dir` until it is full; returns the filler to delete later.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status();
    // The last partial block, a byte at a time: a few free KiB would let a small write of the store through.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1", "status=none", "oflag=append", "conv=notrunc"])
        .arg(format!("of={}", filler.display()))
        .status();
    filler
}

#[test]
fn a_full_disk_is_reported_and_nothing_stored_is_lost() {
    let project = Project::with_echo_agent("true", "  []");
    let Some(fs) = Tmpfs::over(&project.path().join(".obra"), "4m") else { return };
    for i in 0..3 {
        project.create_task(&format!("Task {i}"), "before the disk filled up");
    }
    let filler = fill(&fs.dir);

    let big = "x".repeat(100_000);
    let out = project.obra(&["task", "create", "Too big", "--description", &big]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("is full") && said.contains("free some space"), "{said}");
    let run = project.obra(&["run"]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("full") || text(&run).contains("No space"), "{}", text(&run));

    std::fs::remove_file(filler).unwrap();
    let listed = tasks(&project);
    assert_eq!(listed.len(), 3, "the three tasks, and no half-created fourth: {listed:?}");
    let run = project.obra(&["run"]);
    assert_eq!(run.status.code(), Some(0), "the run goes on once there is space: {}", text(&run));
    assert!(tasks(&project).iter().all(|t| t["status"] == "completed"));
    for t in tasks(&project) {
        let shown = project.obra_json(&["task", "show", &t["id"].to_string(), "--json"], 0);
        let runs = shown["interactions"].as_array().unwrap();
        assert!(
            runs.iter().all(|i| i["interaction"]["status"] == "finished"),
            "no interaction left half-done: {shown}"
        );
    }
}

#[test]
fn a_read_only_store_is_reported_and_works_again_once_writable() {
    let project = Project::with_echo_agent("true", "  []");
    let Some(fs) = Tmpfs::over(&project.path().join(".obra"), "16m") else { return };
    project.create_task("Before", "x");
    fs.remount("ro");
    let out = project.obra(&["task", "create", "During", "--description", "y"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("read-only") && said.contains("Nothing was changed"), "{said}");
    fs.remount("rw");
    project.create_task("After", "z");
    let titles: Vec<String> = tasks(&project).iter().map(|t| t["title"].as_str().unwrap().to_string()).collect();
    assert_eq!(titles, ["Before", "After"]);
}

#[test]
fn a_disk_that_fills_up_in_the_middle_of_an_iteration_loses_nothing_and_the_next_run_resumes() {
    // The disk fills up (once) while the gate runs, after the agent ran: the store's next writes fail
    // mid-iteration. The gate runs in the sandbox, where `.obra/` is read-only, so it asks the test to fill
    // the disk and waits until it has.
    let project = Project::with_echo_agent(
        "[ -f filled-once ] || { touch fill-now; while [ ! -f filled-once ]; do sleep 0.02; done; }; true",
        "  []",
    );
    let Some(fs) = Tmpfs::over(&project.path().join(".obra"), "8m") else { return };
    let id = project.create_task("Fill the disk", "x");
    let (ask, done, dir) = (project.path().join("fill-now"), project.path().join("filled-once"), fs.dir.clone());
    let filler = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !ask.exists() && start.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Full first, then let the gate end (the marker is in the workspace, not on the full disk).
        let filler = fill(&dir);
        std::fs::write(done, "").unwrap();
        filler
    });
    let out = project.obra(&["run"]);
    filler.join().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("is full") && said.contains("free some space"), "{said}");

    std::fs::remove_file(fs.dir.join("filler")).unwrap();
    let out = project.obra(&["run"]);
    assert_eq!(out.status.code(), Some(0), "the next run recovers and completes: {}", text(&out));
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(shown["task"]["status"], "completed", "{shown}");
    let statuses: Vec<&str> = shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interaction"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.last(), Some(&"finished"), "{shown}");
    assert!(statuses.len() <= 2, "at most the interrupted attempt and the one that finished: {statuses:?}");
}
