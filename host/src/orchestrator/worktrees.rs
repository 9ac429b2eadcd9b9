//! Git worktrees for parallel tasks: each task of `obra run --parallel N` works in its own checkout
//! (`.obra/worktrees/task-<id>`, on branch `obra/task-<id>-<slug>` made from the project's HEAD), so agents
//! never see each other's half-done work. When a task completes, its work is committed on its branch and merged
//! back into the branch the project's checkout is on; a conflict leaves the project's checkout as it was and
//! is reported with the branch to merge by hand.
//!
//! The git command line does the worktree and merge work (it knows how to merge into a working tree safely and
//! refuses to overwrite uncommitted changes), each command an async child process with `git.command_timeout_secs`
//! as its limit ([`Git`]), so a slow merge or push never holds up the other tasks of the run; git2 reads the
//! repository's state, in `spawn_blocking`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use git2::Repository;

use crate::workspace::git::{Git, unfinished};

/// Where the worktrees live, under the project root.
const WORKTREES_DIR: &str = ".obra/worktrees";

/// The longest slug of a task title in a branch name.
const MAX_SLUG: usize = 40;

/// The project's repository, for making and merging task worktrees.
#[derive(Debug)]
pub struct Worktrees {
    /// The project's checkout (the repository's working tree).
    checkout: PathBuf,
    /// The project root relative to the checkout (empty when the project is the whole repository).
    prefix: PathBuf,
    /// `<project root>/.obra/worktrees`.
    dir: PathBuf,
    /// How git runs, with its time limit.
    git: Git,
}

/// One task's worktree.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskWorktree {
    /// The task.
    pub task_id: i64,
    /// The worktree's checkout.
    pub path: PathBuf,
    /// Where the task's workspace is inside it (the project root's counterpart).
    pub workspace: PathBuf,
    /// Its branch, e.g. `obra/task-3-add-login`.
    pub branch: String,
    /// The commit it started from.
    pub base: String,
    /// Whether an existing worktree (from an earlier, unfinished execution) was reused.
    pub reused: bool,
}

/// What bringing a task's work back did.
#[derive(Debug, Clone, PartialEq)]
pub enum Integration {
    /// The task changed nothing: nothing to merge.
    NothingToMerge,
    /// Merged into the project's branch as this merge commit.
    Merged {
        /// The merge commit.
        commit: String,
    },
    /// The merge would conflict (or was refused): the project's checkout is unchanged, and the work stays
    /// on the task's branch.
    Conflict {
        /// The conflicting paths (empty when git refused for another reason, e.g. uncommitted changes).
        paths: Vec<String>,
        /// What git said.
        detail: String,
    },
}

/// Where task `task_id`'s worktree is (or would be) in the project at `root`.
pub fn worktree_path(root: &Path, task_id: i64) -> PathBuf {
    root.join(WORKTREES_DIR).join(task_dir(task_id))
}

/// The directory name of a task's worktree.
fn task_dir(task_id: i64) -> String {
    format!("task-{task_id}")
}

/// A branch-safe slug of a title: lower-case ASCII letters and digits joined by `-`, at most 40 characters.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for word in title.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        let sep = usize::from(!out.is_empty());
        if out.len() + sep + word.len() > MAX_SLUG {
            if out.is_empty() {
                out.push_str(&word[..MAX_SLUG]);
            }
            break;
        }
        if sep == 1 {
            out.push('-');
        }
        out.push_str(&word);
    }
    if out.is_empty() { "task".into() } else { out }
}

/// The branch of a task: `obra/task-<id>-<slug>`.
pub fn branch_name(task_id: i64, title: &str) -> String {
    format!("obra/task-{task_id}-{}", slug(title))
}

impl Worktrees {
    /// The worktrees of the project at `root`, worked on by `git`: it must be in a git repository with at least
    /// one commit, not in the middle of a merge or rebase.
    pub async fn open(root: &Path, git: Git) -> Result<Worktrees> {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&root, git)).await?
    }

    /// [`open`](Self::open), reading the repository with git2 on this thread.
    fn open_blocking(root: &Path, git: Git) -> Result<Worktrees> {
        let root = root.canonicalize().with_context(|| format!("cannot open {}", root.display()))?;
        let repo = Repository::discover(&root).map_err(|_| {
            anyhow::anyhow!(
                "--parallel and git.branch_per_task run tasks in git worktrees, but {} is not in a git \
                 repository: `git init` and commit first, or run without them",
                root.display()
            )
        })?;
        let Some(workdir) = repo.workdir() else {
            bail!("{} is a bare repository; task worktrees need a checkout", repo.path().display());
        };
        let checkout = workdir.canonicalize()?;
        if repo.head().ok().and_then(|h| h.peel_to_commit().ok()).is_none() {
            bail!("each task's worktree is made from HEAD, but {} has no commit yet: commit first", checkout.display());
        }
        if let Some(what) = unfinished(repo.state()) {
            bail!("{} is in the middle of {what}; finish it before running tasks in worktrees", checkout.display());
        }
        let prefix = root.strip_prefix(&checkout).unwrap_or(Path::new("")).to_path_buf();
        Ok(Worktrees { checkout, prefix, dir: root.join(WORKTREES_DIR), git })
    }

    /// The path of task `task_id`'s worktree.
    pub fn path_of(&self, task_id: i64) -> PathBuf {
        self.dir.join(task_dir(task_id))
    }

    /// The branch the project's checkout is on (`HEAD` when detached).
    pub async fn project_branch(&self) -> Result<String> {
        self.git.run_ok(&self.checkout, &["rev-parse", "--abbrev-ref", "HEAD"]).await
    }

    /// Make (or reuse) the worktree of a task: branch `obra/task-<id>-<slug>` from HEAD. A worktree left by an
    /// earlier execution of the same task (paused, then given feedback) is reused with its work.
    pub async fn add(&self, task_id: i64, title: &str) -> Result<TaskWorktree> {
        let git = &self.git;
        let path = self.path_of(task_id);
        let branch = branch_name(task_id, title);
        let workspace = path.join(&self.prefix);
        if path.join(".git").exists() {
            let head = git.run_ok(&self.checkout, &["rev-parse", "HEAD"]).await?;
            let base = git.run_ok(&path, &["merge-base", "HEAD", &head]).await.unwrap_or_default();
            let on = git.run_ok(&path, &["rev-parse", "--abbrev-ref", "HEAD"]).await?;
            return Ok(TaskWorktree { task_id, path, workspace, branch: on, base, reused: true });
        }
        // A directory without its git link, or git's record of a worktree whose directory is gone (a whole
        // checkout, so removed off the executor).
        if path.exists() {
            let stale = path.clone();
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&stale))
                .await?
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        git.run_ok(&self.checkout, &["worktree", "prune"]).await?;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let base = git.run_ok(&self.checkout, &["rev-parse", "HEAD"]).await?;
        let path_text = path.to_str().context("the project path is not UTF-8")?;
        git.run_ok(&self.checkout, &["worktree", "add", "--quiet", "-B", &branch, path_text, &base]).await?;
        Ok(TaskWorktree { task_id, path, workspace, branch, base, reused: false })
    }

    /// Commit what the task changed in its worktree (everything but ignored files and `.obra/`) on its branch;
    /// returns the commit, or `None` when nothing changed since the branch's last commit.
    pub async fn commit(&self, wt: &TaskWorktree, message: &str) -> Result<Option<String>> {
        let git = &self.git;
        git.run_ok(&wt.path, &["add", "--all", "--", ".", ":(exclude,glob).obra/**", ":(exclude).obra"]).await?;
        let staged = git.run(&wt.path, &["diff", "--cached", "--quiet"]).await?;
        if staged.status.success() {
            return Ok(None);
        }
        git.run_ok(&wt.path, &["commit", "--quiet", "--no-verify", "-m", message]).await?;
        Ok(Some(git.run_ok(&wt.path, &["rev-parse", "HEAD"]).await?))
    }

    /// Commit a completed task's work on its branch and merge the branch into the project's branch. The
    /// worktree is removed either way (the work is committed); the branch is deleted once merged, and kept,
    /// for a merge by hand, when the merge conflicts.
    pub async fn integrate(&self, wt: &TaskWorktree, title: &str) -> Result<Integration> {
        let git = &self.git;
        self.commit(wt, &format!("obra: task {} ({title})", wt.task_id)).await?;
        let ahead = git.run_ok(&self.checkout, &["rev-list", "--count", &format!("HEAD..{}", wt.branch)]).await?;
        if ahead == "0" {
            self.remove(wt, true).await?;
            return Ok(Integration::NothingToMerge);
        }
        let message = format!("obra: merge task {} ({title})", wt.task_id);
        let merge = ["merge", "--no-ff", "--no-edit", "-m", &message, &wt.branch];
        let merged = git.run(&self.checkout, &merge).await.with_context(|| {
            format!(
                "the merge of {} into {} did not end; see `git status` there (a git stopped half-way can leave \
                 .git/index.lock behind: remove it once no git runs) and merge the branch by hand",
                wt.branch,
                self.checkout.display()
            )
        })?;
        if merged.status.success() {
            let commit = git.run_ok(&self.checkout, &["rev-parse", "HEAD"]).await?;
            self.remove(wt, true).await?;
            return Ok(Integration::Merged { commit });
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&merged.stdout).trim(),
            String::from_utf8_lossy(&merged.stderr).trim()
        );
        let conflicted =
            git.run_ok(&self.checkout, &["diff", "--name-only", "--diff-filter=U"]).await.unwrap_or_default();
        let paths: Vec<String> = conflicted.lines().map(str::to_string).filter(|l| !l.is_empty()).collect();
        // Leave the project's checkout exactly as it was before the merge.
        if self.checkout.join(".git").join("MERGE_HEAD").exists() || !paths.is_empty() {
            git.run_ok(&self.checkout, &["merge", "--abort"]).await?;
        }
        self.remove(wt, false).await?;
        Ok(Integration::Conflict { paths, detail: said })
    }

    /// Instead of merging: commit what is left of a completed task's work on its branch, remove the worktree,
    /// push the branch to `remote` and open a pull request into the project's branch with `gh`, titled and
    /// described by the branch's last commit. Returns the pull request's URL, or `None` when the task
    /// changed nothing (the branch is then deleted).
    pub async fn propose(&self, wt: &TaskWorktree, title: &str, remote: &str, draft: bool) -> Result<Option<String>> {
        let git = &self.git;
        self.commit(wt, &format!("obra: task {} ({title})", wt.task_id)).await?;
        let ahead = git.run_ok(&self.checkout, &["rev-list", "--count", &format!("HEAD..{}", wt.branch)]).await?;
        if ahead == "0" {
            self.remove(wt, true).await?;
            return Ok(None);
        }
        self.remove(wt, false).await?;
        let base = self.project_branch().await?;
        let message = git.run_ok(&self.checkout, &["log", "-1", "--format=%B", &wt.branch]).await?;
        let (subject, body) = crate::workspace::git::split_message(&message);
        let pr = crate::workspace::git::PullRequest { base: &base, head: &wt.branch, title: subject, body, draft };
        git.push_and_open_pr(&self.checkout, remote, &pr).await.map(Some)
    }

    /// Remove a task's worktree (its work is committed on its branch); delete the branch too when `merged`.
    pub async fn remove(&self, wt: &TaskWorktree, merged: bool) -> Result<()> {
        let path_text = wt.path.to_str().context("the project path is not UTF-8")?;
        self.git.run_ok(&self.checkout, &["worktree", "remove", "--force", path_text]).await?;
        if merged {
            self.git.run_ok(&self.checkout, &["branch", "--quiet", "-D", &wt.branch]).await?;
        }
        Ok(())
    }

    /// The worktrees left by earlier runs, by task id.
    pub fn existing(&self) -> Vec<i64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut ids: Vec<i64> =
            entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("task-")?.parse().ok()).collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Git for tests: a minute per command.
    const GIT: Git = Git { timeout: Duration::from_secs(60) };

    async fn git_ok(dir: &Path, args: &[&str]) -> Result<String> {
        GIT.run_ok(dir, args).await
    }

    async fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git_ok(dir.path(), &["init", "-q", "-b", "main"]).await.unwrap();
        std::fs::write(dir.path().join("shared.txt"), "base\n").unwrap();
        git_ok(dir.path(), &["add", "."]).await.unwrap();
        git_ok(dir.path(), &["commit", "-qm", "base"]).await.unwrap();
        dir
    }

    #[test]
    fn slugs_are_short_ascii_and_never_empty() {
        assert_eq!(slug("Add login (OAuth) to the API!"), "add-login-oauth-to-the-api");
        assert_eq!(slug("Ünïcödé ✓"), "n-c-d");
        assert_eq!(slug("✓✓"), "task");
        assert!(slug(&"word ".repeat(30)).len() <= MAX_SLUG);
        assert_eq!(slug(&"x".repeat(60)).len(), MAX_SLUG);
        assert_eq!(branch_name(7, "Fix bug"), "obra/task-7-fix-bug");
    }

    #[tokio::test]
    async fn independent_work_merges_and_a_conflict_leaves_the_checkout_untouched() {
        let dir = repo().await;
        let wts = Worktrees::open(dir.path(), GIT).await.unwrap();
        let a = wts.add(1, "Write a").await.unwrap();
        let b = wts.add(2, "Write b").await.unwrap();
        let c = wts.add(3, "Edit shared").await.unwrap();
        let d = wts.add(4, "Edit shared too").await.unwrap();
        std::fs::write(a.workspace.join("a.txt"), "a\n").unwrap();
        std::fs::write(b.workspace.join("b.txt"), "b\n").unwrap();
        std::fs::write(c.workspace.join("shared.txt"), "from c\n").unwrap();
        std::fs::write(d.workspace.join("shared.txt"), "from d\n").unwrap();

        assert!(matches!(wts.integrate(&a, "Write a").await.unwrap(), Integration::Merged { .. }));
        assert!(matches!(wts.integrate(&b, "Write b").await.unwrap(), Integration::Merged { .. }));
        assert!(matches!(wts.integrate(&c, "Edit shared").await.unwrap(), Integration::Merged { .. }));
        let Integration::Conflict { paths, .. } = wts.integrate(&d, "Edit shared too").await.unwrap() else {
            panic!("the second edit of shared.txt conflicts");
        };
        assert_eq!(paths, ["shared.txt"]);
        let root = dir.path();
        assert_eq!(std::fs::read_to_string(root.join("shared.txt")).unwrap(), "from c\n");
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a\n");
        assert!(!root.join(".git/MERGE_HEAD").exists(), "no merge left half-done");
        assert!(git_ok(root, &["status", "--porcelain", "--untracked-files=no"]).await.unwrap().is_empty());
        // The conflicting work stays on its branch; merged branches are gone; no worktree is left.
        let branches = git_ok(root, &["branch", "--list", "obra/*"]).await.unwrap();
        assert!(branches.contains("obra/task-4-edit-shared-too") && !branches.contains("task-1"), "{branches}");
        assert_eq!(wts.existing(), Vec::<i64>::new());
        assert_eq!(wts.project_branch().await.unwrap(), "main");
    }

    #[tokio::test]
    async fn a_task_that_changed_nothing_has_nothing_to_merge_and_a_reused_worktree_keeps_its_work() {
        let dir = repo().await;
        let wts = Worktrees::open(dir.path(), GIT).await.unwrap();
        let idle = wts.add(1, "Nothing").await.unwrap();
        assert_eq!(wts.integrate(&idle, "Nothing").await.unwrap(), Integration::NothingToMerge);
        let first = wts.add(2, "Paused").await.unwrap();
        std::fs::write(first.workspace.join("wip.txt"), "half\n").unwrap();
        let again = wts.add(2, "Paused").await.unwrap();
        assert!(again.reused && again.workspace.join("wip.txt").exists());
        assert_eq!(wts.existing(), vec![2]);
    }

    #[tokio::test]
    async fn a_repository_mid_merge_or_without_commits_is_refused() {
        let empty = tempfile::tempdir().unwrap();
        git_ok(empty.path(), &["init", "-q"]).await.unwrap();
        let err = Worktrees::open(empty.path(), GIT).await.unwrap_err().to_string();
        assert!(err.contains("no commit yet"), "{err}");
        let dir = repo().await;
        std::fs::write(dir.path().join(".git/MERGE_HEAD"), git_ok(dir.path(), &["rev-parse", "HEAD"]).await.unwrap())
            .unwrap();
        let err = Worktrees::open(dir.path(), GIT).await.unwrap_err().to_string();
        assert!(err.contains("git merge --abort"), "{err}");
        let plain = tempfile::tempdir().unwrap();
        assert!(Worktrees::open(plain.path(), GIT).await.unwrap_err().to_string().contains("not in a git repository"));
    }
}
