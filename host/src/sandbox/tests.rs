//! The sandbox with real processes: what a program can write, and what is left of its tree afterwards.

use std::path::Path;
use std::time::Duration;

use super::*;

/// A project with `.obra/` and a git repository.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status().unwrap();
    assert!(ok.success());
    std::fs::create_dir(dir.path().join(".obra")).unwrap();
    std::fs::write(dir.path().join(".obra/config.yaml"), "gates: []\n").unwrap();
    dir
}

fn spec(root: &Path, mode: SandboxMode) -> SandboxSpec {
    let config = SandboxConfig { mode, ..SandboxConfig::default() };
    SandboxSpec::for_workspace(&config, root, None).unwrap()
}

/// Whether the kernel makes the namespaces; fails the test when it does not, unless `OBRA_TEST_SKIP` names
/// `namespaces` (the one way to skip, as in the test kit's `requirements`).
fn kernel_available() -> bool {
    let support = kernel_support();
    let opted_out = std::env::var("OBRA_TEST_SKIP")
        .is_ok_and(|l| l.split(|c: char| c == ',' || c.is_whitespace()).any(|i| i == "namespaces" || i == "all"));
    if !support.namespaces && !opted_out {
        panic!(
            "this kernel cannot make the sandbox's namespaces: {:?}; set OBRA_TEST_SKIP=namespaces to skip",
            support.namespaces_error
        );
    }
    support.namespaces
}

async fn sh(spec: &SandboxSpec, root: &Path, script: &str) -> (std::process::Output, KeepAlive) {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.args(["-c", script]).current_dir(root).stdin(std::process::Stdio::null());
    command.process_group(0);
    let keep = spec.apply(&mut command).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), command.output()).await.expect("finished").unwrap();
    (out, keep)
}

#[tokio::test]
async fn the_kernel_keeps_obra_and_git_read_only_and_the_workspace_writable() {
    if !kernel_available() {
        return;
    }
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let spec = spec(&root, SandboxMode::Auto);
    assert_eq!(spec.enforcement(), Enforcement::Kernel);
    let script = "echo work > src.txt && echo ok-workspace; \
                  echo 'gates: []' > .obra/config.yaml 2>/dev/null || echo refused-config; \
                  rm -f .obra/config.yaml 2>/dev/null || echo refused-remove; \
                  printf '[core]\\n\\tfsmonitor = touch /tmp/x\\n' >> .git/config 2>/dev/null || echo refused-git; \
                  touch .git/hooks/pre-commit 2>/dev/null || echo refused-hook; \
                  mount -o remount,rw .obra 2>/dev/null || echo refused-remount; \
                  umount .obra 2>/dev/null || echo refused-umount; \
                  echo again > .obra/config.yaml 2>/dev/null || echo still-refused";
    let (out, _keep) = sh(&spec, &root, script).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "ok-workspace",
        "refused-config",
        "refused-remove",
        "refused-git",
        "refused-hook",
        "refused-remount",
        "refused-umount",
        "still-refused",
    ] {
        assert!(stdout.contains(expected), "{expected} missing from: {stdout}");
    }
    assert_eq!(std::fs::read_to_string(root.join("src.txt")).unwrap(), "work\n");
    assert_eq!(std::fs::read_to_string(root.join(".obra/config.yaml")).unwrap(), "gates: []\n");
    assert!(!std::fs::read_to_string(root.join(".git/config")).unwrap().contains("fsmonitor"));
    // Nothing leaked into Obra's own mount namespace.
    std::fs::write(root.join(".obra/after"), "obra can still write").unwrap();
}

#[tokio::test]
async fn exit_codes_and_signals_of_the_program_come_through() {
    let dir = project();
    for mode in [SandboxMode::Auto, SandboxMode::Detect] {
        if mode == SandboxMode::Auto && !kernel_available() {
            continue;
        }
        let spec = spec(dir.path(), mode);
        let (out, _) = sh(&spec, dir.path(), "echo hi; echo err >&2; exit 7").await;
        assert_eq!(out.status.code(), Some(7), "{mode:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        let (out, _) = sh(&spec, dir.path(), "kill -KILL $$").await;
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(9), "{mode:?}: {out:?}");
    }
}

/// A program that leaves a `setsid` grandchild behind, which keeps rewriting `beat` with a counter.
fn escapee(beat: &Path) -> String {
    format!(
        "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > {0}.tmp; mv {0}.tmp {0}; sleep 0.05; done' \
         </dev/null >/dev/null 2>&1 &",
        beat.display()
    )
}

async fn beating(beat: &Path) -> bool {
    let first = std::fs::read_to_string(beat).ok();
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::read_to_string(beat).ok() != first
}

async fn wait_for_beat(beat: &Path) {
    for _ in 0..250 {
        if beat.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the escapee never started");
}

#[tokio::test]
async fn descendants_that_called_setsid_die_when_the_program_exits() {
    let dir = project();
    for mode in [SandboxMode::Auto, SandboxMode::Detect] {
        if mode == SandboxMode::Auto && !kernel_available() {
            continue;
        }
        let beat = dir.path().join(format!("beat-{mode:?}"));
        let spec = spec(dir.path(), mode);
        let script = format!("{} while [ ! -e {} ]; do sleep 0.02; done; exit 0", escapee(&beat), beat.display());
        let (out, _keep) = sh(&spec, dir.path(), &script).await;
        assert_eq!(out.status.code(), Some(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!beating(&beat).await, "{mode:?}: the setsid grandchild outlived the program");
    }
}

#[tokio::test]
async fn releasing_the_keep_alive_kills_the_whole_tree_at_once() {
    let dir = project();
    for mode in [SandboxMode::Auto, SandboxMode::Detect] {
        if mode == SandboxMode::Auto && !kernel_available() {
            continue;
        }
        let beat = dir.path().join(format!("running-{mode:?}"));
        let spec = spec(dir.path(), mode);
        let mut command = tokio::process::Command::new("/bin/sh");
        let script = format!("{} sleep 60", escapee(&beat));
        command.args(["-c", &script]).current_dir(dir.path()).stdin(std::process::Stdio::null());
        command.process_group(0);
        let mut keep = spec.apply(&mut command).unwrap();
        let mut child = command.spawn().unwrap();
        wait_for_beat(&beat).await;
        assert!(beating(&beat).await);
        keep.release();
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("ended").unwrap();
        assert!(!status.success());
        assert!(!beating(&beat).await, "{mode:?}: the tree survived the release");
    }
}

#[tokio::test]
async fn a_worktree_inside_obra_stays_writable_while_the_rest_of_obra_does_not() {
    if !kernel_available() {
        return;
    }
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let ws = root.join(".obra/worktrees/task-1");
    std::fs::create_dir_all(&ws).unwrap();
    let spec = spec(&ws, SandboxMode::Auto);
    let (out, _) =
        sh(&spec, &ws, "echo x > work.txt && echo ok; echo y > ../../config.yaml 2>/dev/null || echo refused").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok") && stdout.contains("refused"), "{stdout}");
    assert!(ws.join("work.txt").exists());
}

#[tokio::test]
async fn restrict_writes_confines_writes_to_the_workspace_temp_and_state_directories() {
    if !kernel_available() || kernel_support().landlock_abi.is_none() {
        return;
    }
    let dir = project();
    // Outside the workspace and outside the temp dir (which stays writable), wherever the checkout is.
    let outside = tempfile::Builder::new().prefix("obra-outside").tempdir_in(outside_of_temp()).unwrap();
    let state = tempfile::Builder::new().prefix("obra-state").tempdir_in(outside_of_temp()).unwrap();
    let mut config = SandboxConfig { restrict_writes: true, ..SandboxConfig::default() };
    config.agent_state.insert("claude-code".into(), vec![state.path().display().to_string()]);
    let spec = SandboxSpec::for_workspace(&config, dir.path(), Some("claude-code")).unwrap();
    let script = format!(
        "echo a > in.txt && echo ok-ws; echo b > {}/x 2>/dev/null || echo refused-outside; \
         echo c > {}/s && echo ok-state; echo d > /dev/null && echo ok-null",
        outside.path().display(),
        state.path().display()
    );
    let (out, _) = sh(&spec, dir.path(), &script).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in ["ok-ws", "refused-outside", "ok-state", "ok-null"] {
        assert!(stdout.contains(expected), "{expected} missing: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!outside.path().join("x").exists());
}

/// A directory outside the temp dir: `/var/tmp` (not writable under `restrict_writes`, unlike the temp dir).
fn outside_of_temp() -> std::path::PathBuf {
    let var_tmp = std::path::PathBuf::from("/var/tmp");
    assert!(!var_tmp.starts_with(std::env::temp_dir()), "TMPDIR must not be /var/tmp for this test");
    var_tmp
}

#[test]
fn the_description_names_what_is_protected_and_how() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let text = spec(&root, SandboxMode::Detect).describe(&root);
    assert!(text.starts_with("detect only: .obra/, .git/"), "{text}");
    assert!(text.contains("sandbox.mode is detect"), "{text}");
    if kernel_available() {
        let text = spec(&root, SandboxMode::Auto).describe(&root);
        assert!(text.starts_with("kernel: .obra/, .git/ read-only (mount + PID namespace"), "{text}");
    }
    assert!(
        SandboxSpec::for_workspace(&SandboxConfig { mode: SandboxMode::Off, ..Default::default() }, &root, None)
            .is_none()
    );
}
