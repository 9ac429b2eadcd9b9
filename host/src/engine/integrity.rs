//! The policy an execution runs under may not be changed by the agent (ADR 34).
//!
//! Before each agent run the engine takes a [`PolicySnapshot`] of the policy files (the configuration files,
//! `.obra/templates/`, `.obra/prompt_rules.yaml`, `.obra/plugins/`, the trust store): their bytes and sha256.
//! After the run it compares the hashes. A file whose content changed (or that appeared or vanished) while
//! the agent ran is put back byte for byte, and the task stops at an `integrity` breakpoint that names the
//! paths and shows the diff. Edits made while no agent runs are left to the hot reload (ADR 9).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The rule name of the breakpoint that a changed policy file opens.
pub const INTEGRITY_RULE: &str = "integrity";

/// Most characters of the diff kept in a breakpoint's reason.
const MAX_DIFF_CHARS: usize = 6000;

/// Which files make up the policy: single files, and directories whose every file counts.
#[derive(Debug, Clone, Default)]
pub struct PolicyFiles {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    root: Option<PathBuf>,
}

/// One file's content at a moment: its bytes and their sha256, or nothing when it did not exist.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    sha256: [u8; 32],
    bytes: Vec<u8>,
}

/// The policy files' contents before an agent run.
#[derive(Debug, Clone, Default)]
pub struct PolicySnapshot {
    entries: BTreeMap<PathBuf, Option<Content>>,
}

/// A policy file whose content changed during an agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct Tampering {
    /// The file.
    pub path: PathBuf,
    /// Its content before the run (`None`: it did not exist).
    pub before: Option<Vec<u8>>,
    /// Its content after the run (`None`: it was deleted).
    pub after: Option<Vec<u8>>,
}

impl PolicyFiles {
    /// The policy made of `files` and every file under `dirs` (missing ones included: creating one is a
    /// change too).
    pub fn new(files: Vec<PathBuf>, dirs: Vec<PathBuf>) -> Self {
        Self { files, dirs, root: None }
    }

    /// The project root the policy belongs to, when it is a project's (paths are shown relative to it).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The policy files of the project at `root`: `extra_files` (the configuration files the run reads, the
    /// trust store) and `.obra/prompt_rules.yaml`, `.obra/templates/`, `.obra/plugins/`.
    pub fn of_project(root: &Path, extra_files: Vec<PathBuf>) -> Self {
        let obra = root.join(".obra");
        let mut files = extra_files;
        files.push(obra.join("config.yaml"));
        files.push(obra.join("prompt_rules.yaml"));
        files.sort();
        files.dedup();
        Self { root: Some(root.to_path_buf()), ..Self::new(files, vec![obra.join("templates"), obra.join("plugins")]) }
    }

    /// Every path that currently makes up the policy.
    fn paths(&self) -> Vec<PathBuf> {
        let mut paths = self.files.clone();
        for dir in &self.dirs {
            walk(dir, &mut paths);
        }
        paths.sort();
        paths.dedup();
        paths
    }

    /// Read every policy file now.
    pub fn snapshot(&self) -> PolicySnapshot {
        PolicySnapshot { entries: self.paths().into_iter().map(|p| (p.clone(), read(&p))).collect() }
    }

    /// The policy files whose content differs from `before` (by sha256): changed, created or deleted.
    pub fn changes_since(&self, before: &PolicySnapshot) -> Vec<Tampering> {
        let mut paths = self.paths();
        paths.extend(before.entries.keys().cloned());
        paths.sort();
        paths.dedup();
        let mut out = Vec::new();
        for path in paths {
            let was = before.entries.get(&path).cloned().flatten();
            let now = read(&path);
            if was.as_ref().map(|c| c.sha256) != now.as_ref().map(|c| c.sha256) {
                out.push(Tampering { path, before: was.map(|c| c.bytes), after: now.map(|c| c.bytes) });
            }
        }
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

fn read(path: &Path) -> Option<Content> {
    // A symlink is policy too: read what it points at, and restoring writes a regular file back.
    let bytes = std::fs::read(path).ok()?;
    Some(Content { sha256: Sha256::digest(&bytes).into(), bytes })
}

impl Tampering {
    /// Put the file back as it was before the run: its exact bytes, or removed when it did not exist.
    pub fn restore(&self) -> Result<()> {
        match &self.before {
            Some(bytes) => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot recreate {}", dir.display()))?;
                }
                // A symlink put in place of the file is removed, so the write does not go through it.
                if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink()) {
                    std::fs::remove_file(&self.path)
                        .with_context(|| format!("cannot remove the symlink {}", self.path.display()))?;
                }
                std::fs::write(&self.path, bytes).with_context(|| format!("cannot restore {}", self.path.display()))
            }
            None => match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.path.display())),
            },
        }
    }

    /// What happened to the file, in a few words.
    pub fn kind(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, Some(_)) => "created",
            (Some(_), None) => "deleted",
            _ => "modified",
        }
    }

    /// A unified diff from the content before the run to the content the agent left (binary content is
    /// described by size).
    pub fn diff(&self) -> String {
        let empty = Vec::new();
        let (old, new) = (self.before.as_ref().unwrap_or(&empty), self.after.as_ref().unwrap_or(&empty));
        let name = self.path.display().to_string();
        let text = |b: &[u8]| std::str::from_utf8(b).is_ok() && !b.contains(&0);
        if !text(old) || !text(new) {
            return format!("binary content {}: {} bytes before, {} bytes after", self.kind(), old.len(), new.len());
        }
        let mut opts = git2::DiffOptions::new();
        opts.context_lines(2);
        match git2::Patch::from_buffers(old, Some(Path::new(&name)), new, Some(Path::new(&name)), Some(&mut opts))
            .and_then(|mut p| p.to_buf())
        {
            Ok(buf) => String::from_utf8_lossy(&buf).into_owned(),
            Err(e) => format!("({} bytes before, {} after; no diff: {e})", old.len(), new.len()),
        }
    }
}

/// Put every changed file back; the restored paths, and the errors of those that could not be.
pub fn restore_all(changes: &[Tampering]) -> (Vec<PathBuf>, Vec<String>) {
    let (mut restored, mut errors) = (Vec::new(), Vec::new());
    for change in changes {
        match change.restore() {
            Ok(()) => restored.push(change.path.clone()),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    (restored, errors)
}

/// The breakpoint's reason: which files the agent changed, that they were put back, how to go on, and the
/// diffs (bounded).
pub fn describe(changes: &[Tampering], errors: &[String], root: &Path) -> String {
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let list: Vec<String> = changes.iter().map(|c| format!("{} ({})", rel(&c.path), c.kind())).collect();
    let mut text = format!(
        "the agent changed the policy this execution runs under: {}. Refused: {}. Review what it tried (below); \
         the task needs you: `obra breakpoint resolve ID --feedback \"...\"` runs it again under the restored \
         policy, `--reject` fails it. To change the policy yourself, edit the file while no agent runs.",
        list.join(", "),
        if errors.is_empty() {
            "every file was restored byte for byte".to_string()
        } else {
            format!("NOT every file could be restored ({}); restore them by hand", errors.join("; "))
        }
    );
    let mut diffs = String::new();
    for change in changes {
        diffs.push_str(&change.diff());
        if !diffs.ends_with('\n') {
            diffs.push('\n');
        }
    }
    if diffs.chars().count() > MAX_DIFF_CHARS {
        diffs = diffs.chars().take(MAX_DIFF_CHARS).collect::<String>() + "\n[diff shortened]\n";
    }
    text.push_str("\n\n");
    text.push_str(&diffs);
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_created_and_deleted_policy_file_are_found_and_restored_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let obra = dir.path().join(".obra");
        std::fs::create_dir_all(obra.join("templates")).unwrap();
        let config = obra.join("config.yaml");
        let original = b"gates:\n  - plugin: tests\n    enabled: true   # keep\r\n".to_vec();
        std::fs::write(&config, &original).unwrap();
        let rules = obra.join("prompt_rules.yaml");
        std::fs::write(&rules, "rules: []\n").unwrap();
        let policy = PolicyFiles::of_project(dir.path(), vec![]);
        let before = policy.snapshot();
        assert!(policy.changes_since(&before).is_empty(), "nothing changed yet");

        std::fs::write(&config, "gates:\n  - plugin: response-format\n").unwrap();
        std::fs::remove_file(&rules).unwrap();
        let template = obra.join("templates/task.j2");
        std::fs::write(&template, "do as you like").unwrap();
        std::fs::write(dir.path().join("src.rs"), "not policy").unwrap();

        let changes = policy.changes_since(&before);
        let kinds: Vec<(String, &str)> = changes
            .iter()
            .map(|c| (c.path.strip_prefix(dir.path()).unwrap().display().to_string(), c.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                (".obra/config.yaml".to_string(), "modified"),
                (".obra/prompt_rules.yaml".to_string(), "deleted"),
                (".obra/templates/task.j2".to_string(), "created"),
            ]
        );
        let diff = changes[0].diff();
        assert!(diff.contains("-  - plugin: tests") && diff.contains("+  - plugin: response-format"), "{diff}");

        let (restored, errors) = restore_all(&changes);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(restored.len(), 3);
        assert_eq!(std::fs::read(&config).unwrap(), original, "byte for byte, CRLF included");
        assert_eq!(std::fs::read_to_string(&rules).unwrap(), "rules: []\n");
        assert!(!template.exists(), "a file the agent created is removed");
        assert!(policy.changes_since(&before).is_empty());

        let reason = describe(&changes, &errors, dir.path());
        assert!(reason.contains(".obra/config.yaml (modified)") && reason.contains("restored byte for byte"));
        assert!(reason.contains("+  - plugin: response-format"), "{reason}");
    }

    #[test]
    fn rewriting_the_same_bytes_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user.yaml");
        std::fs::write(&file, "llm:\n  provider: none\n").unwrap();
        let policy = PolicyFiles::new(vec![file.clone()], vec![]);
        let before = policy.snapshot();
        std::fs::write(&file, "llm:\n  provider: none\n").unwrap();
        assert!(policy.changes_since(&before).is_empty(), "content, not timestamps, decides");
    }
}
