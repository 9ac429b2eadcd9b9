//! Detection after the fact, where the kernel cannot protect: a fingerprint of the protected paths taken before
//! an agent run and compared after it. What changed is restored from the pre-run copy and reported, so that the
//! engine can stop the task for a human.
//!
//! What is compared:
//! - `.obra/`: everything but what Obra itself writes while an agent runs (the store, logs, worktrees, the
//!   watcher's index, prompt files, run locks);
//! - git's internals: `config`, `HEAD`, `packed-refs`, `index`, `hooks/`, `info/`, `refs/` (but Obra's own
//!   checkpoint refs) and a worktree's own gitdir files, plus a worktree's `.git` file. Objects are
//!   content-addressed and only ever added, so they are not compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ProtectedPaths;

/// The largest file whose bytes are kept for restoring; larger ones are only hashed.
const MAX_KEPT_BYTES: u64 = 64 * 1024 * 1024;
/// The most files one fingerprint records (a hostile tree cannot make it unbounded).
const MAX_FILES: usize = 20_000;

/// Names under `.obra/` that Obra writes itself during a run.
const OBRA_OWN: &[&str] = &["obra.db", "logs", "worktrees", "watch-index", "watch-flush", "prompts", "cache"];

/// One protected file as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    sha256: [u8; 32],
    /// The bytes, when small enough to restore.
    bytes: Option<Vec<u8>>,
    mode: u32,
    symlink: Option<PathBuf>,
}

/// The protected files of a workspace at one moment.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    files: BTreeMap<PathBuf, Entry>,
    /// Set when the walk stopped at [`MAX_FILES`].
    pub truncated: bool,
}

/// One protected path an agent run changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tampered {
    /// The path.
    pub path: PathBuf,
    /// `created`, `modified` or `deleted`.
    pub kind: &'static str,
    /// A short unified diff for text files, or what is known.
    pub diff: String,
    /// Whether the pre-run state was put back.
    pub restored: bool,
}

fn is_obra_own(rel: &Path) -> bool {
    rel.components().next().and_then(|c| c.as_os_str().to_str()).is_some_and(|first| {
        OBRA_OWN.iter().any(|own| {
            first == *own
                || first.starts_with("obra.db-")
                || first.starts_with("run-")
                || first.starts_with("checkpoint-flush.")
        })
    })
}

/// Whether a path relative to a git dir is compared (or, for a directory, may hold compared files). For the
/// agent of a worktree only the shared settings and its own worktree's files count: the main checkout's HEAD,
/// index and refs change while it runs when `obra run --parallel` merges another task.
fn is_git_compared(rel: &Path, worktree: Option<&str>) -> bool {
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let own_worktree_file = |name: &str, file: &str| {
        worktree.is_none_or(|w| w == name) && matches!(file, "HEAD" | "commondir" | "gitdir" | "config.worktree")
    };
    match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["config" | "hooks" | "info", ..] => true,
        ["HEAD" | "packed-refs" | "index"] => worktree.is_none(),
        ["refs"] => worktree.is_none(),
        ["refs", second, ..] => worktree.is_none() && *second != "obra",
        ["worktrees"] => true,
        ["worktrees", name] => worktree.is_none_or(|w| w == *name),
        ["worktrees", name, file] => own_worktree_file(name, file),
        _ => false,
    }
}

impl Fingerprint {
    /// Fingerprint the protected paths.
    pub fn take(paths: &ProtectedPaths) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for dir in &paths.obra {
            fp.walk(dir, dir, &is_obra_own_negated);
        }
        let worktree = paths.worktree_gitdir.as_ref().and_then(|d| d.file_name()).map(|n| n.to_string_lossy());
        let worktree = worktree.as_deref();
        for git in &paths.git {
            if git.is_file() {
                fp.record(git);
            } else {
                fp.walk(git, git, &|rel: &Path| is_git_compared(rel, worktree));
            }
        }
        fp
    }

    /// Fingerprint the user's protected files and directories (`sandbox.protect_home`), whole; a missing one
    /// is simply absent, so creating it shows as `created`.
    pub fn take_user(paths: &[PathBuf]) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for path in paths {
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => fp.walk(path, path, &|_: &Path| true),
                Ok(_) => fp.record(path),
                Err(_) => {}
            }
        }
        fp
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Fingerprint `paths` again the way [`Fingerprint::take_user`] did, and compare.
    pub fn compare_user(&self, paths: &[PathBuf], restore: bool) -> Vec<Tampered> {
        self.compare(&Fingerprint::take_user(paths), restore)
    }

    fn walk(&mut self, root: &Path, dir: &Path, keep: &dyn Fn(&Path) -> bool) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                // The filters say true for a directory that may hold compared files.
                if keep(rel) {
                    self.walk(root, &path, keep);
                }
            } else if keep(rel) {
                self.record(&path);
            }
        }
    }

    fn record(&mut self, path: &Path) {
        if self.files.len() >= MAX_FILES {
            self.truncated = true;
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        let entry = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).unwrap_or_default();
            let sha256 = Sha256::digest(target.as_os_str().as_encoded_bytes()).into();
            Entry { sha256, bytes: None, mode, symlink: Some(target) }
        } else if meta.is_file() {
            let Ok(bytes) = std::fs::read(path) else { return };
            let sha256 = Sha256::digest(&bytes).into();
            Entry { sha256, bytes: (meta.len() <= MAX_KEPT_BYTES).then_some(bytes), mode, symlink: None }
        } else {
            // FIFOs, sockets and devices are never opened.
            return;
        };
        self.files.insert(path.to_path_buf(), entry);
    }

    /// What differs in `after` from this (pre-run) fingerprint, each put back as it was when `restore` is set.
    pub fn compare(&self, after: &Fingerprint, restore: bool) -> Vec<Tampered> {
        let mut out = Vec::new();
        for (path, before) in &self.files {
            match after.files.get(path) {
                Some(now) if now.sha256 == before.sha256 && now.mode == before.mode => {}
                now => {
                    let kind = if now.is_some() { "modified" } else { "deleted" };
                    let diff = match now {
                        Some(now) => text_diff(before.bytes.as_deref(), now.bytes.as_deref()),
                        None => "(deleted)".into(),
                    };
                    let restored = restore && put_back(path, before).is_ok();
                    out.push(Tampered { path: path.clone(), kind, diff, restored });
                }
            }
        }
        for (path, now) in &after.files {
            if !self.files.contains_key(path) {
                let diff = text_diff(Some(&[]), now.bytes.as_deref());
                let restored = restore && std::fs::remove_file(path).is_ok();
                out.push(Tampered { path: path.clone(), kind: "created", diff, restored });
            }
        }
        out
    }
}

fn is_obra_own_negated(rel: &Path) -> bool {
    !is_obra_own(rel)
}

fn put_back(path: &Path, before: &Entry) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Whatever is there now (a file, a symlink planted in its place) goes first.
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(path)?;
    }
    match (&before.symlink, &before.bytes) {
        (Some(target), _) => std::os::unix::fs::symlink(target, path),
        (None, Some(bytes)) => {
            std::fs::write(path, bytes)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(before.mode))
        }
        (None, None) => Err(std::io::Error::other("too large to have been kept")),
    }
}

/// A short line diff of two text files (at most 40 lines), or a note for binary content.
fn text_diff(before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let (Some(before), Some(after)) = (before, after) else { return "(too large to show)".into() };
    line_diff(before, after, 40)
}

/// The lines only in `before` (`-`) and only in `after` (`+`), at most `max_lines` of them and a count of the
/// rest; a note instead for binary content or files over 1 MiB. Lines are compared as sets (order and repeats
/// aside): enough to show a reviewer what was added or removed.
pub(crate) fn line_diff(before: &[u8], after: &[u8], max_lines: usize) -> String {
    const MAX_BYTES: usize = 1024 * 1024;
    if before.len() > MAX_BYTES || after.len() > MAX_BYTES {
        return format!("({} -> {} bytes: too large to show)", before.len(), after.len());
    }
    let (Ok(old), Ok(new)) = (std::str::from_utf8(before), std::str::from_utf8(after)) else {
        return format!("(binary: {} -> {} bytes)", before.len(), after.len());
    };
    let old_set: std::collections::HashSet<&str> = old.lines().collect();
    let new_set: std::collections::HashSet<&str> = new.lines().collect();
    let mut out: Vec<String> = old.lines().filter(|l| !new_set.contains(l)).map(|l| format!("-{l}")).collect();
    out.extend(new.lines().filter(|l| !old_set.contains(l)).map(|l| format!("+{l}")));
    let total = out.len();
    out.truncate(max_lines);
    if total > max_lines {
        out.push(format!("... {} more line(s)", total - max_lines));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> ProtectedPaths {
        ProtectedPaths { obra: vec![root.join(".obra")], git: vec![root.join(".git")], ..Default::default() }
    }

    #[test]
    fn changes_to_protected_files_are_found_and_put_back_but_obras_own_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".obra/logs")).unwrap();
        std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(root.join(".git/objects/ab")).unwrap();
        std::fs::write(root.join(".obra/config.yaml"), "gates:\n  - plugin: tests\n").unwrap();
        std::fs::write(root.join(".obra/obra.db"), "store").unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
        let before = Fingerprint::take(&paths(root));

        std::fs::write(root.join(".obra/config.yaml"), "gates: []\n").unwrap();
        std::fs::write(root.join(".obra/obra.db"), "store grew").unwrap();
        std::fs::write(root.join(".obra/logs/x.log"), "log").unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n\tfsmonitor = touch /tmp/pwned\n").unwrap();
        std::fs::write(root.join(".git/hooks/pre-commit"), "#!/bin/sh\n").unwrap();
        std::fs::write(root.join(".git/objects/ab/cdef"), "object").unwrap();
        let after = Fingerprint::take(&paths(root));

        let found = before.compare(&after, true);
        let names: Vec<(String, &str)> =
            found.iter().map(|t| (t.path.strip_prefix(root).unwrap().display().to_string(), t.kind)).collect();
        assert_eq!(
            names,
            [
                (".git/config".to_string(), "modified"),
                (".obra/config.yaml".to_string(), "modified"),
                (".git/hooks/pre-commit".to_string(), "created"),
            ]
        );
        assert!(found.iter().all(|t| t.restored));
        assert!(found[0].diff.contains("+\tfsmonitor = touch /tmp/pwned"), "{}", found[0].diff);
        assert_eq!(std::fs::read_to_string(root.join(".obra/config.yaml")).unwrap(), "gates:\n  - plugin: tests\n");
        assert_eq!(std::fs::read_to_string(root.join(".git/config")).unwrap(), "[core]\n");
        assert!(!root.join(".git/hooks/pre-commit").exists());
        assert_eq!(std::fs::read_to_string(root.join(".obra/obra.db")).unwrap(), "store grew");
        assert!(Fingerprint::take(&paths(root)).compare(&Fingerprint::take(&paths(root)), false).is_empty());
    }

    #[test]
    fn a_file_replaced_by_a_symlink_is_put_back_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".obra")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".obra/config.yaml"), "a: 1\n").unwrap();
        let before = Fingerprint::take(&paths(root));
        std::fs::remove_file(root.join(".obra/config.yaml")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join(".obra/config.yaml")).unwrap();
        let found = before.compare(&Fingerprint::take(&paths(root)), true);
        assert_eq!(found.len(), 1);
        assert!(!std::fs::symlink_metadata(root.join(".obra/config.yaml")).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(root.join(".obra/config.yaml")).unwrap(), "a: 1\n");
    }
}
