//! Content snapshots of a workspace tree and the changes between two of them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::beneath::{Beneath, Kind, Opened};
use crate::contract::{ChangeKind, FileChange};

/// Directories never scanned: version control and Obra's own state.
const SKIPPED_DIRS: &[&str] = &[".git", ".obra"];

/// Size and content hash of every file of a tree, by `/`-separated relative path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    files: BTreeMap<String, (u64, [u8; 32])>,
}

impl Snapshot {
    /// Scan `root`. Symbolic links are recorded by their target text, not followed; FIFOs, sockets and devices
    /// are skipped with a note in the log. Everything is listed and read beneath the root's descriptor.
    pub fn take(root: &Path) -> Result<Self> {
        let dir = Beneath::open(root).with_context(|| format!("cannot open {}", root.display()))?;
        let mut files = BTreeMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel_dir) = stack.pop() {
            let entries =
                dir.read_dir(&rel_dir).with_context(|| format!("cannot list {}", root.join(&rel_dir).display()))?;
            for entry in entries {
                let rel_path = rel_dir.join(&entry.name);
                if entry.kind == Kind::Dir {
                    if !SKIPPED_DIRS.iter().any(|s| entry.name == *s) {
                        stack.push(rel_path);
                    }
                    continue;
                }
                let rel = rel_path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                let value = match entry.kind {
                    Kind::Symlink => {
                        let target = dir.read_link(&rel_path).with_context(|| format!("cannot read the link {rel}"))?;
                        let text = target.to_string_lossy();
                        (text.len() as u64, Sha256::digest(text.as_bytes()).into())
                    }
                    _ => match dir.open_file(&rel_path).with_context(|| format!("cannot read {rel}"))? {
                        Opened::File(file, _) => hash_file(file).with_context(|| format!("cannot read {rel}"))?,
                        Opened::Other(kind) => {
                            tracing::warn!("skipped special file {rel} ({})", kind.describe());
                            continue;
                        }
                    },
                };
                files.insert(rel, value);
            }
        }
        Ok(Self { files })
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

/// The changes that turn `before` into `after`, sorted by path.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<FileChange> {
    let mut changes = Vec::new();
    for (path, (size, hash)) in &after.files {
        match before.files.get(path) {
            None => changes.push(FileChange { path: path.clone(), kind: ChangeKind::Created, size: Some(*size) }),
            Some((_, old)) if old != hash => {
                changes.push(FileChange { path: path.clone(), kind: ChangeKind::Modified, size: Some(*size) })
            }
            Some(_) => {}
        }
    }
    for path in before.files.keys() {
        if !after.files.contains_key(path) {
            changes.push(FileChange { path: path.clone(), kind: ChangeKind::Deleted, size: None });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_created_modified_and_deleted_files_and_skips_git_and_obra() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("src/keep.rs"), "same").unwrap();
        std::fs::write(root.join("src/edit.rs"), "old").unwrap();
        std::fs::write(root.join("gone.txt"), "bye").unwrap();
        let before = Snapshot::take(root).unwrap();
        std::fs::write(root.join("src/edit.rs"), "new!").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::write(root.join("new.txt"), "hi").unwrap();
        std::fs::write(root.join(".git/HEAD"), "x").unwrap();
        std::fs::create_dir_all(root.join(".obra")).unwrap();
        std::fs::write(root.join(".obra/obra.db"), "x").unwrap();
        let after = Snapshot::take(root).unwrap();
        let changes = diff(&before, &after);
        let got: Vec<(&str, ChangeKind)> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("gone.txt", ChangeKind::Deleted),
                ("new.txt", ChangeKind::Created),
                ("src/edit.rs", ChangeKind::Modified)
            ]
        );
        assert_eq!(changes[2].size, Some(4));
    }

    #[test]
    fn fifos_are_skipped_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let c = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let snapshot = Snapshot::take(&root).unwrap();
        assert_eq!(snapshot.files.keys().collect::<Vec<_>>(), ["a.txt", "up"]);
    }
}
