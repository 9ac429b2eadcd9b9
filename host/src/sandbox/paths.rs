//! Which paths of a workspace are protected: Obra's own tree and git's internals.

use std::path::{Path, PathBuf};

/// The protected paths of one workspace, canonical, none inside another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedPaths {
    /// Obra's trees: the workspace's `.obra/`, and the `.obra/` a worktree workspace lies in.
    pub obra: Vec<PathBuf>,
    /// Git's internals: the `.git` directory (or a worktree's `.git` file, its gitdir and the common dir).
    pub git: Vec<PathBuf>,
    /// A worktree's own gitdir (`<common>/worktrees/<name>`), when the workspace's `.git` is a file.
    pub worktree_gitdir: Option<PathBuf>,
    /// What the user should know, e.g. that a protected path is a symlink and where it points.
    pub notes: Vec<String>,
}

impl ProtectedPaths {
    /// Every protected path.
    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.obra.iter().chain(self.git.iter())
    }
}

/// Find the protected paths of `workspace` (`protect_git` adds git's internals).
pub fn protected_paths(workspace: &Path, protect_git: bool) -> ProtectedPaths {
    let mut out = ProtectedPaths::default();
    let Ok(root) = workspace.canonicalize() else {
        out.notes.push(format!("the workspace {} does not exist", workspace.display()));
        return out;
    };
    let add = |list: &mut Vec<PathBuf>, notes: &mut Vec<String>, path: &Path| {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        let canonical = match path.canonicalize() {
            Ok(c) => c,
            Err(e) => {
                notes.push(format!("cannot resolve {}: {e}; it is not protected", path.display()));
                return;
            }
        };
        if meta.file_type().is_symlink() {
            notes.push(format!("{} is a symlink to {}; the target is protected", path.display(), canonical.display()));
        }
        if !list.contains(&canonical) {
            list.push(canonical);
        }
    };
    add(&mut out.obra, &mut out.notes, &root.join(".obra"));
    // A worktree of `obra run --parallel` lives in `<project>/.obra/worktrees/...`: protect that `.obra/` too.
    if let Some(enclosing) = root.ancestors().skip(1).find(|a| a.file_name().is_some_and(|n| n == ".obra")) {
        add(&mut out.obra, &mut out.notes, enclosing);
    }
    if protect_git {
        let dot_git = root.join(".git");
        add(&mut out.git, &mut out.notes, &dot_git);
        match git2::Repository::discover(&root) {
            Ok(repo) => {
                if repo.is_worktree() {
                    out.worktree_gitdir = repo.path().canonicalize().ok();
                }
                add(&mut out.git, &mut out.notes, repo.path());
                add(&mut out.git, &mut out.notes, repo.commondir());
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => {}
            Err(e) => out.notes.push(format!("cannot open the git repository of {}: {}", root.display(), e.message())),
        }
    }
    // A path inside another protected one needs no bind of its own, unless it lies in the workspace (a
    // worktree's `.git` file inside `.obra/`, where the workspace itself is bound writable again).
    let everything: Vec<PathBuf> = out.all().cloned().collect();
    let nested = |p: &PathBuf| !p.starts_with(&root) && everything.iter().any(|q| q != p && p.starts_with(q));
    out.obra.retain(|p| !nested(p));
    out.git.retain(|p| !nested(p));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    }

    #[test]
    fn a_plain_project_protects_its_obra_and_git_directories() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::create_dir(dir.path().join(".obra")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        let p = protected_paths(dir.path(), true);
        assert_eq!(p.obra, vec![root.join(".obra")]);
        assert_eq!(p.git, vec![root.join(".git")]);
        assert!(protected_paths(dir.path(), false).git.is_empty());
    }

    #[test]
    fn a_worktree_protects_its_git_file_its_gitdir_and_the_enclosing_obra() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("a"), "a").unwrap();
        git(dir.path(), &["add", "a"]);
        git(dir.path(), &["commit", "-qm", "a"]);
        std::fs::create_dir_all(dir.path().join(".obra/worktrees")).unwrap();
        git(dir.path(), &["worktree", "add", "-q", ".obra/worktrees/task-1", "-b", "t1"]);
        let root = dir.path().canonicalize().unwrap();
        let ws = root.join(".obra/worktrees/task-1");
        let p = protected_paths(&ws, true);
        assert_eq!(p.obra, vec![root.join(".obra")]);
        // The worktree's `.git` file (inside the workspace, which is writable again inside `.obra/`) and the
        // common dir, which holds the worktree's gitdir.
        assert_eq!(p.git, vec![ws.join(".git"), root.join(".git")]);
        assert_eq!(p.worktree_gitdir, Some(root.join(".git/worktrees/task-1")));
        let spec = super::super::SandboxSpec::for_workspace(&Default::default(), &ws, None).unwrap();
        assert_eq!(spec.writable_inside, vec![ws.clone()], "the worktree stays writable inside .obra/");
    }

    #[test]
    fn a_symlinked_obra_directory_protects_its_target_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join(".obra")).unwrap();
        let p = protected_paths(dir.path(), true);
        assert_eq!(p.obra, vec![elsewhere.path().canonicalize().unwrap()]);
        assert!(p.notes.iter().any(|n| n.contains("is a symlink to")), "{:?}", p.notes);
    }
}
