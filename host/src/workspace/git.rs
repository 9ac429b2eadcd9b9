//! Git operations on the user's repository through the git command line: committing a task's work (the seeds'
//! auto-commit), the commit message's trailers, pushing a task branch and opening its pull request with `gh`,
//! and refusing to work on a repository in the middle of a merge or rebase.
//!
//! Writes go through `git` itself, not git2, so the user's configuration applies as it does to their own
//! commits: identity, commit signing, hooks. Reads of the repository's state use git2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};
use git2::{Repository, RepositoryState};

/// The identity of commits in a repository that has none configured.
const FALLBACK_IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "Obra"),
    ("GIT_AUTHOR_EMAIL", "obra@localhost"),
    ("GIT_COMMITTER_NAME", "Obra"),
    ("GIT_COMMITTER_EMAIL", "obra@localhost"),
];

/// The git commands that make commits, and so need an identity.
const COMMITTING: &[&str] = &["commit", "merge"];

/// A `git` command in `dir`, with no terminal prompts; a command that makes commits gets Obra's identity when
/// the repository has none (asking git costs two processes, so only those commands ask).
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command.current_dir(dir).args(args).env("GIT_TERMINAL_PROMPT", "0");
    if !args.first().is_some_and(|verb| COMMITTING.contains(verb)) {
        return command;
    }
    let has_identity = |key: &str| {
        Command::new("git")
            .current_dir(dir)
            .args(["config", "--get", key])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
    };
    if !has_identity("user.email") || !has_identity("user.name") {
        command.envs(FALLBACK_IDENTITY);
    }
    command
}

/// Run git in `dir` and return what it did, whatever its exit status.
pub fn run(dir: &Path, args: &[&str]) -> Result<Output> {
    command(dir, args).output().with_context(|| format!("cannot run `git {}`; is git installed?", args.join(" ")))
}

/// Run git and fail with its message unless it succeeds; returns its stdout, trimmed.
pub fn run_ok(dir: &Path, args: &[&str]) -> Result<String> {
    checked(run(dir, args)?, dir, args)
}

/// Turn a finished git command into its stdout, or an error carrying what git said.
fn checked(out: Output, dir: &Path, args: &[&str]) -> Result<String> {
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = if said.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { said };
        bail!("`git {}` failed in {}: {}", args.join(" "), dir.display(), said.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What a repository is in the middle of, as the git command that finishes or aborts it.
pub fn unfinished(state: RepositoryState) -> Option<&'static str> {
    match state {
        RepositoryState::Clean => None,
        RepositoryState::Merge => Some("a merge (`git merge --continue` or `git merge --abort`)"),
        RepositoryState::Revert | RepositoryState::RevertSequence => {
            Some("a revert (`git revert --continue` or `git revert --abort`)")
        }
        RepositoryState::CherryPick | RepositoryState::CherryPickSequence => {
            Some("a cherry-pick (`git cherry-pick --continue` or `git cherry-pick --abort`)")
        }
        RepositoryState::Bisect => Some("a bisect (`git bisect reset`)"),
        RepositoryState::Rebase | RepositoryState::RebaseInteractive | RepositoryState::RebaseMerge => {
            Some("a rebase (`git rebase --continue` or `git rebase --abort`)")
        }
        RepositoryState::ApplyMailbox | RepositoryState::ApplyMailboxOrRebase => {
            Some("a `git am` (`git am --continue` or `git am --abort`)")
        }
    }
}

/// Refuse to let agents work in a repository that is in the middle of a merge, rebase, cherry-pick, revert,
/// bisect or `git am`: its working tree and index belong to that operation, and checkpoints and commits made
/// on top of it would mix the two. A workspace outside git is fine.
pub fn ensure_not_mid_operation(workspace: &Path) -> Result<()> {
    let Ok(repo) = Repository::discover(workspace) else { return Ok(()) };
    if let Some(what) = unfinished(repo.state()) {
        let place = repo.workdir().unwrap_or(repo.path());
        bail!(
            "{} is in the middle of {what}; finish or abort it first, then run obra again (nothing was changed)",
            place.display()
        );
    }
    Ok(())
}

/// A commit message with Obra's trailers appended as a final paragraph (`Key: value` lines, the form
/// `git interpret-trailers` reads).
pub fn with_trailers(message: &str, trailers: &[(&str, String)]) -> String {
    let mut out = message.trim_end().to_string();
    if trailers.is_empty() {
        return out;
    }
    // A message that already ends with trailers (e.g. `Obra-Task:` from the template) gets the rest appended
    // to that paragraph instead of a second one.
    let last_paragraph = out.rsplit("\n\n").next().unwrap_or_default().to_string();
    let ends_with_trailers = out.contains("\n\n")
        && !last_paragraph.is_empty()
        && last_paragraph.lines().all(|l| l.split_once(": ").is_some_and(|(k, _)| is_trailer_key(k)));
    out.push_str(if ends_with_trailers { "\n" } else { "\n\n" });
    let mut first = true;
    for (key, value) in trailers {
        if last_paragraph.lines().any(|l| l.starts_with(&format!("{key}: "))) {
            continue;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        out.push_str(&format!("{key}: {}", value.replace('\n', " ")));
    }
    out.truncate(out.trim_end().len());
    out
}

fn is_trailer_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Commit `paths` (relative to `workspace`, `/`-separated) as they are in the working tree, onto the branch
/// checked out there, with `message`. Only those paths go into the commit: whatever else the user changed or
/// staged stays as it was, changed or staged. Ignored paths are left out. Returns the new commit, or `None`
/// when the paths hold no change against HEAD.
///
/// The commit is made with a temporary index (HEAD's tree plus the paths), so the user's index is not
/// used; afterwards the user's index entries of the paths are set to the new commit's, so `git status`
/// does not show the committed work as staged or unstaged.
pub fn commit_paths(workspace: &Path, paths: &[String], message: &str) -> Result<Option<String>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let git_dir = PathBuf::from(run_ok(workspace, &["rev-parse", "--absolute-git-dir"])?);
    let has_head = run(workspace, &["rev-parse", "--verify", "--quiet", "HEAD"])?.status.success();
    let index = git_dir.join(format!("obra-commit-index-{}", std::process::id()));
    let message_file = git_dir.join(format!("obra-commit-message-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(vec![index.clone(), message_file.clone()]);
    let with_index = |args: &[&str]| -> Result<Output> {
        let mut c = command(workspace, args);
        c.env("GIT_INDEX_FILE", &index);
        c.output().with_context(|| format!("cannot run `git {}`; is git installed?", args.join(" ")))
    };
    let read = if has_head { vec!["read-tree", "HEAD"] } else { vec!["read-tree", "--empty"] };
    checked(with_index(&read)?, workspace, &read)?;

    let kept = not_ignored(workspace, &index, paths)?;
    if kept.is_empty() {
        return Ok(None);
    }
    // Paths gone from both the working tree and HEAD (created and removed again) are nothing to commit.
    let tracked = tracked_in(workspace, &index)?;
    let existing: Vec<String> = kept
        .into_iter()
        .filter(|p| workspace.join(p).symlink_metadata().is_ok() || tracked.contains(p.as_bytes()))
        .map(|p| format!(":(literal){p}"))
        .collect();
    if existing.is_empty() {
        return Ok(None);
    }
    // The paths go on standard input, so a task that changed thousands of files stays under the argument limit.
    let add = ["add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul"];
    checked(with_stdin(workspace, Some(&index), &add, &existing)?, workspace, &add)?;
    if with_index(&["diff", "--cached", "--quiet"])?.status.success() {
        return Ok(None);
    }
    std::fs::write(&message_file, message).with_context(|| format!("cannot write {}", message_file.display()))?;
    let message_path = message_file.to_str().context("the repository's path is not UTF-8")?;
    let commit = ["commit", "--quiet", "--cleanup=verbatim", "-F", message_path];
    checked(with_index(&commit)?, workspace, &commit)?;
    let sha = run_ok(workspace, &["rev-parse", "HEAD"])?;
    // The user's index: the committed paths now match HEAD; everything else in it is untouched.
    let reset = ["reset", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul"];
    let out = with_stdin(workspace, None, &reset, &existing)?;
    if !out.status.success() {
        tracing::warn!(
            "committed {sha}, but could not refresh the index for its paths: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Some(sha))
}

/// The paths among `paths` that git does not ignore (a path tracked in `index` is never ignored).
fn not_ignored(workspace: &Path, index: &Path, paths: &[String]) -> Result<Vec<String>> {
    let out = with_stdin(workspace, Some(index), &["check-ignore", "--stdin", "-z"], paths)?;
    // Exit 1 means "none ignored"; 0 lists the ignored ones.
    if !(out.status.success() || out.status.code() == Some(1)) {
        bail!("`git check-ignore` failed in {}: {}", workspace.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let ignored: Vec<&[u8]> = out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
    Ok(paths.iter().filter(|p| !ignored.contains(&p.as_bytes())).cloned().collect())
}

/// The paths (relative to `workspace`) that `index` holds, from one `git ls-files`.
fn tracked_in(workspace: &Path, index: &Path) -> Result<std::collections::HashSet<Vec<u8>>> {
    let args = ["ls-files", "-z"];
    let mut c = command(workspace, &args);
    c.env("GIT_INDEX_FILE", index);
    let out = c.output().context("cannot run `git ls-files`; is git installed?")?;
    if !out.status.success() {
        bail!("`git ls-files` failed in {}: {}", workspace.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect())
}

/// Run git (with the temporary `index`, when given), giving it `items` NUL-separated on its standard input.
fn with_stdin(workspace: &Path, index: Option<&Path>, args: &[&str], items: &[String]) -> Result<Output> {
    let mut c = command(workspace, args);
    if let Some(index) = index {
        c.env("GIT_INDEX_FILE", index);
    }
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().with_context(|| format!("cannot run `git {}`; is git installed?", args[0]))?;
    let input: Vec<u8> = items.iter().flat_map(|p| p.bytes().chain([0])).collect();
    let mut stdin = child.stdin.take().context("git has no standard input")?;
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().with_context(|| format!("`git {}` failed", args[0]))?;
    let _ = writer.join();
    Ok(out)
}

/// Files removed when dropped.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What a pull request for a task branch says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest<'a> {
    /// The branch to merge into.
    pub base: &'a str,
    /// The task's branch.
    pub head: &'a str,
    /// The title: the commit's subject.
    pub title: &'a str,
    /// The body: the commit's body and trailers.
    pub body: &'a str,
    /// Open it as a draft.
    pub draft: bool,
}

/// The arguments of `gh` that open `pr` (each one argument; no shell is involved).
pub fn pr_create_args(pr: &PullRequest<'_>) -> Vec<String> {
    let mut args: Vec<String> = ["pr", "create", "--base", pr.base, "--head", pr.head, "--title", pr.title, "--body"]
        .into_iter()
        .map(String::from)
        .collect();
    // An empty body would make gh ask for one interactively.
    args.push(if pr.body.trim().is_empty() { pr.title.to_string() } else { pr.body.to_string() });
    if pr.draft {
        args.push("--draft".into());
    }
    args
}

/// Push `branch` to `remote` and open its pull request with `gh pr create`, run in `dir`. Returns what gh
/// printed (the pull request's URL).
pub fn push_and_open_pr(dir: &Path, remote: &str, pr: &PullRequest<'_>) -> Result<String> {
    run_ok(dir, &["push", "--quiet", "--set-upstream", remote, pr.head]).with_context(|| {
        format!("cannot push branch {} to the remote {remote:?} (git.remote) for its pull request", pr.head)
    })?;
    let args = pr_create_args(pr);
    let out = Command::new("gh").current_dir(dir).args(&args).env("GH_PROMPT_DISABLED", "1").output().with_context(
        || "cannot run `gh` to open the pull request: install GitHub's CLI (https://cli.github.com) or set git.create_pr: false",
    )?;
    if !out.status.success() {
        bail!(
            "`gh pr create` failed: {}; the branch {} is pushed, open its pull request by hand (`gh auth login` \
             first if gh is not logged in)",
            String::from_utf8_lossy(&out.stderr).trim(),
            pr.head
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The subject (first line) and the rest of a commit message.
pub fn split_message(message: &str) -> (&str, &str) {
    match message.split_once('\n') {
        Some((subject, rest)) => (subject.trim(), rest.trim()),
        None => (message.trim(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for args in [&["init", "-q", "-b", "main"][..], &["config", "user.name", "T"], &["config", "user.email", "t@x"]]
        {
            run_ok(dir.path(), args).unwrap();
        }
        std::fs::write(dir.path().join("kept.txt"), "base\n").unwrap();
        std::fs::write(dir.path().join("gone.txt"), "base\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "build/\n").unwrap();
        run_ok(dir.path(), &["add", "."]).unwrap();
        run_ok(dir.path(), &["commit", "-qm", "base"]).unwrap();
        dir
    }

    #[test]
    fn only_the_named_paths_are_committed_and_the_users_other_changes_stay_as_they_were() {
        let dir = repo();
        let root = dir.path();
        // The user's own work: one staged file and one unstaged edit.
        std::fs::write(root.join("staged.txt"), "mine, staged\n").unwrap();
        run_ok(root, &["add", "staged.txt"]).unwrap();
        std::fs::write(root.join("kept.txt"), "mine, unstaged\n").unwrap();
        // The task's work: a new file in a new directory, a deletion, an ignored build output, and a path it
        // created and removed again.
        std::fs::create_dir_all(root.join("src/a b")).unwrap();
        std::fs::write(root.join("src/a b/new[1].rs"), "fn main() {}\n").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("build/out.bin"), "x").unwrap();
        let paths: Vec<String> =
            ["src/a b/new[1].rs", "gone.txt", "build/out.bin", "temp.txt"].into_iter().map(String::from).collect();
        let sha = commit_paths(root, &paths, "feat: add new\n\nObra-Task: 1").unwrap().expect("a commit");

        let files = run_ok(root, &["show", "--name-status", "--format=", &sha]).unwrap();
        assert_eq!(files, "D\tgone.txt\nA\tsrc/a b/new[1].rs", "{files}");
        assert_eq!(run_ok(root, &["log", "-1", "--format=%B"]).unwrap(), "feat: add new\n\nObra-Task: 1");
        let status = String::from_utf8(run(root, &["status", "--porcelain"]).unwrap().stdout).unwrap();
        assert_eq!(status, " M kept.txt\nA  staged.txt\n", "the user's changes are as they were: {status}");
        assert_eq!(std::fs::read_to_string(root.join("kept.txt")).unwrap(), "mine, unstaged\n");
        assert!(
            !root
                .join(".git")
                .read_dir()
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("obra-commit"))
        );
    }

    #[test]
    fn nothing_to_commit_is_none_and_an_unborn_branch_gets_its_first_commit() {
        let dir = repo();
        assert_eq!(commit_paths(dir.path(), &["kept.txt".into()], "x").unwrap(), None);
        assert_eq!(commit_paths(dir.path(), &[], "x").unwrap(), None);
        let fresh = tempfile::tempdir().unwrap();
        run_ok(fresh.path(), &["init", "-q"]).unwrap();
        std::fs::write(fresh.path().join("a.txt"), "a").unwrap();
        let sha = commit_paths(fresh.path(), &["a.txt".into()], "feat: first").unwrap();
        assert!(sha.is_some());
        assert_eq!(run_ok(fresh.path(), &["log", "--format=%s"]).unwrap(), "feat: first");
    }

    #[test]
    fn a_failing_hook_fails_the_commit_and_leaves_the_work_in_the_tree() {
        let dir = repo();
        let hook = dir.path().join(".git/hooks/pre-commit");
        std::fs::write(&hook, "#!/bin/sh\necho 'lint failed' >&2\nexit 1\n").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("new.txt"), "n").unwrap();
        let err = commit_paths(dir.path(), &["new.txt".into()], "feat: x").unwrap_err().to_string();
        assert!(err.contains("lint failed"), "{err}");
        assert_eq!(run_ok(dir.path(), &["rev-list", "--count", "HEAD"]).unwrap(), "1");
        assert_eq!(run_ok(dir.path(), &["status", "--porcelain"]).unwrap(), "?? new.txt");
    }

    #[test]
    fn trailers_form_one_final_paragraph() {
        let t = |k: &'static str, v: &str| (k, v.to_string());
        assert_eq!(
            with_trailers("feat: x\n\nbody", &[t("Obra-Task", "3"), t("Obra-Confidence", "0.91")]),
            "feat: x\n\nbody\n\nObra-Task: 3\nObra-Confidence: 0.91"
        );
        assert_eq!(
            with_trailers("feat: x\n\nObra-Task: 3", &[t("Obra-Task", "3"), t("Obra-Quality", "1.00")]),
            "feat: x\n\nObra-Task: 3\nObra-Quality: 1.00"
        );
        assert_eq!(with_trailers("fix: y\n", &[t("Obra-Task", "1")]), "fix: y\n\nObra-Task: 1");
    }

    #[test]
    fn pr_arguments_are_one_argument_each_and_never_empty() {
        let pr = PullRequest { base: "main", head: "obra/task-3-x", title: "feat: x; rm -rf /", body: "", draft: true };
        assert_eq!(
            pr_create_args(&pr),
            [
                "pr",
                "create",
                "--base",
                "main",
                "--head",
                "obra/task-3-x",
                "--title",
                "feat: x; rm -rf /",
                "--body",
                "feat: x; rm -rf /",
                "--draft"
            ]
        );
        let pr = PullRequest { draft: false, body: "b\n\nObra-Task: 3", ..pr };
        assert_eq!(pr_create_args(&pr).last().unwrap(), "b\n\nObra-Task: 3");
    }

    #[test]
    fn a_repository_mid_rebase_is_refused_and_one_outside_git_is_not() {
        let dir = repo();
        ensure_not_mid_operation(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join(".git/rebase-merge")).unwrap();
        let err = ensure_not_mid_operation(dir.path()).unwrap_err().to_string();
        assert!(err.contains("git rebase --abort") && err.contains("nothing was changed"), "{err}");
        ensure_not_mid_operation(tempfile::tempdir().unwrap().path()).unwrap();
    }
}
