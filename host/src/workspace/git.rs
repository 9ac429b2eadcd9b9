//! Git operations on the user's repository through the git command line: committing a task's work (the seeds'
//! auto-commit), the commit message's trailers, pushing a task branch and opening its pull request with `gh`,
//! and refusing to work on a repository in the middle of a merge or rebase.
//!
//! Writes go through `git` itself, not git2, so the user's configuration applies as it does to their own
//! commits: identity, commit signing, hooks. Reads of the repository's state use git2 (callers in async code
//! run them in `spawn_blocking`).
//!
//! Every `git` and `gh` runs as an async child process ([`Git`]) with a time limit, `git.command_timeout_secs`:
//! a push to a slow remote, a hook that hangs or a credential helper waiting for input never blocks the
//! executor (the other tasks of a parallel run go on), and one that runs past the limit is stopped, with
//! everything it started (it leads its own process group), and reported naming the command and the key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use git2::{Repository, RepositoryState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The key of the time limit on each git and gh command.
pub const TIMEOUT_KEY: &str = "git.command_timeout_secs";

/// The identity of commits in a repository that has none configured.
const FALLBACK_IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "Obra"),
    ("GIT_AUTHOR_EMAIL", "obra@localhost"),
    ("GIT_COMMITTER_NAME", "Obra"),
    ("GIT_COMMITTER_EMAIL", "obra@localhost"),
];

/// Commits made by this process so far (their temporary files are named by it).
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The git commands that make commits, and so need an identity.
const COMMITTING: &[&str] = &["commit", "merge"];

/// Runs `git` and `gh` as async child processes, each stopped (with everything it started) when it runs longer
/// than `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Git {
    /// How long one command may run (`git.command_timeout_secs`).
    pub timeout: Duration,
}

/// A child leading its own process group. Dropped before it was reaped (its time limit passed, or the task
/// awaiting it was cancelled), it and its whole group are SIGKILLed. The leader is reaped only after its output
/// pipes closed, so while anything it started still holds them the leader is at least a zombie and its group id
/// cannot have been reused.
struct GroupChild {
    child: tokio::process::Child,
    /// The group (the leader's pid), while the leader is unreaped.
    group: Option<libc::pid_t>,
}

impl GroupChild {
    /// Wait for the leader and reap it; from then on the group is no longer ours to signal.
    async fn reap(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        self.group = None;
        status
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            // SAFETY: kill(2) has no memory-safety preconditions; the negated pid names the process group our
            // unreaped child leads since `process_group(0)`.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        // `kill_on_drop` kills the leader too and hands it to tokio to reap.
    }
}

/// One command to run: the program, its arguments, where, and what else it gets.
struct Invocation<'a> {
    program: &'a str,
    args: &'a [&'a str],
    dir: &'a Path,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl Invocation<'_> {
    /// The command line for messages: `git push --quiet origin obra/task-3-x`.
    fn shown(&self) -> String {
        let mut words = vec![self.program.to_string()];
        words.extend(self.args.iter().map(|a| a.lines().next().unwrap_or_default().chars().take(80).collect()));
        words.join(" ")
    }
}

impl Git {
    /// Commands that may each run for `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// Commands limited by `git.command_timeout_secs` as `config` has it.
    pub fn from_config(config: &crate::config::GitConfig) -> Self {
        Self::new(Duration::from_secs(config.command_timeout_secs))
    }

    /// Run `invocation` to its end, or stop it at the time limit.
    async fn output(&self, invocation: Invocation<'_>) -> Result<Output> {
        let shown = invocation.shown();
        let mut command = tokio::process::Command::new(invocation.program);
        command
            .current_dir(invocation.dir)
            .args(invocation.args)
            .envs(invocation.env.iter().map(|(k, v)| (*k, v)))
            .stdin(if invocation.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let child = command.spawn().with_context(|| match invocation.program {
            "gh" => format!(
                "cannot run `{shown}`: install GitHub's CLI (https://cli.github.com) or set git.create_pr: false"
            ),
            _ => format!("cannot run `{shown}`; is {} installed?", invocation.program),
        })?;
        let group = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok());
        let mut child = GroupChild { child, group };
        let stdin = child.child.stdin.take();
        let mut stdout = child.child.stdout.take().context("the child has no standard output")?;
        let mut stderr = child.child.stderr.take().context("the child has no standard error")?;
        let input = invocation.stdin;
        let finished = tokio::time::timeout(self.timeout, async {
            // Written while the output is read, so a child that answers as it reads never waits on a full pipe.
            let write = async move {
                if let (Some(mut pipe), Some(input)) = (stdin, input) {
                    let _ = pipe.write_all(&input).await;
                }
            };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (_, read_out, read_err) =
                tokio::join!(write, stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            read_out.and(read_err)?;
            // Reaped only once nothing holds its pipes (see `GroupChild`).
            let status = child.reap().await?;
            Ok::<_, std::io::Error>(Output { status, stdout: out, stderr: err })
        })
        .await;
        match finished {
            Ok(done) => done.with_context(|| format!("`{shown}` failed in {}", invocation.dir.display())),
            Err(_) => {
                drop(child);
                bail!(
                    "`{shown}` ran into the time limit {TIMEOUT_KEY} ({}) and was stopped with all it started; raise \
                     the limit if it needs longer",
                    humantime::format_duration(self.timeout),
                )
            }
        }
    }

    /// Run git in `dir` with `env` (and `stdin`), with no terminal prompts; a command that makes commits gets
    /// Obra's identity when the repository has none (asking git costs two processes, so only those ask).
    async fn git_with(
        &self,
        dir: &Path,
        args: &[&str],
        mut env: Vec<(&'static str, OsString)>,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output> {
        env.push(("GIT_TERMINAL_PROMPT", "0".into()));
        if args.first().is_some_and(|verb| COMMITTING.contains(verb)) {
            for key in ["user.email", "user.name"] {
                let config =
                    Invocation { program: "git", args: &["config", "--get", key], dir, env: vec![], stdin: None };
                let set = self.output(config).await?;
                if !set.status.success() || set.stdout.trim_ascii().is_empty() {
                    env.extend(FALLBACK_IDENTITY.map(|(k, v)| (k, OsString::from(v))));
                    break;
                }
            }
        }
        self.output(Invocation { program: "git", args, dir, env, stdin }).await
    }

    /// Run git in `dir` and return what it did, whatever its exit status.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> Result<Output> {
        self.git_with(dir, args, Vec::new(), None).await
    }

    /// Run GitHub's `gh` in `dir` (never prompting) and return what it did, whatever its exit status.
    pub async fn gh(&self, dir: &Path, args: &[&str]) -> Result<Output> {
        let env = vec![("GH_PROMPT_DISABLED", OsString::from("1"))];
        self.output(Invocation { program: "gh", args, dir, env, stdin: None }).await
    }

    /// Run git and fail with its message unless it succeeds; returns its stdout, trimmed.
    pub async fn run_ok(&self, dir: &Path, args: &[&str]) -> Result<String> {
        checked(self.run(dir, args).await?, dir, args)
    }
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

impl Git {
    /// Commit `paths` (relative to `workspace`, `/`-separated) as they are in the working tree, onto the branch
    /// checked out there, with `message`. Only those paths go into the commit: whatever else the user changed
    /// or staged stays as it was, changed or staged. Ignored paths are left out. Returns the new commit, or
    /// `None` when the paths hold no change against HEAD.
    ///
    /// The commit is made with a temporary index (HEAD's tree plus the paths), so the user's index is not
    /// used; afterwards the user's index entries of the paths are set to the new commit's, so `git status`
    /// does not show the committed work as staged or unstaged.
    pub async fn commit_paths(&self, workspace: &Path, paths: &[String], message: &str) -> Result<Option<String>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let git_dir = PathBuf::from(self.run_ok(workspace, &["rev-parse", "--absolute-git-dir"]).await?);
        let has_head = self.run(workspace, &["rev-parse", "--verify", "--quiet", "HEAD"]).await?.status.success();
        // Unique per commit, so commits made at the same time in one repository keep apart.
        let unique = format!("{}-{}", std::process::id(), COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let index = git_dir.join(format!("obra-commit-index-{unique}"));
        let message_file = git_dir.join(format!("obra-commit-message-{unique}"));
        let _cleanup = RemoveOnDrop(vec![index.clone(), message_file.clone()]);
        let with_index = |args: &'static [&'static str]| {
            let env = vec![("GIT_INDEX_FILE", index.clone().into_os_string())];
            async move { self.git_with(workspace, args, env, None).await }
        };
        let read: &'static [&'static str] = if has_head { &["read-tree", "HEAD"] } else { &["read-tree", "--empty"] };
        checked(with_index(read).await?, workspace, read)?;

        let kept = self.not_ignored(workspace, &index, paths).await?;
        if kept.is_empty() {
            return Ok(None);
        }
        // Paths gone from both the working tree and HEAD (created and removed again) are nothing to commit.
        let tracked = self.tracked_in(workspace, &index).await?;
        let existing: Vec<String> = kept
            .into_iter()
            .filter(|p| workspace.join(p).symlink_metadata().is_ok() || tracked.contains(p.as_bytes()))
            .map(|p| format!(":(literal){p}"))
            .collect();
        if existing.is_empty() {
            return Ok(None);
        }
        // The paths go on standard input, so a task that changed thousands of files stays under the argument
        // limit.
        let add = ["add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul"];
        checked(self.with_stdin(workspace, Some(&index), &add, &existing).await?, workspace, &add)?;
        if with_index(&["diff", "--cached", "--quiet"]).await?.status.success() {
            return Ok(None);
        }
        tokio::fs::write(&message_file, message)
            .await
            .with_context(|| format!("cannot write {}", message_file.display()))?;
        let message_path = message_file.to_str().context("the repository's path is not UTF-8")?;
        let commit = ["commit", "--quiet", "--cleanup=verbatim", "-F", message_path];
        let env = vec![("GIT_INDEX_FILE", index.clone().into_os_string())];
        checked(self.git_with(workspace, &commit, env, None).await?, workspace, &commit)?;
        let sha = self.run_ok(workspace, &["rev-parse", "HEAD"]).await?;
        // The user's index: the committed paths now match HEAD; everything else in it is untouched.
        let reset = ["reset", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul"];
        let out = self.with_stdin(workspace, None, &reset, &existing).await?;
        if !out.status.success() {
            tracing::warn!(
                "committed {sha}, but could not refresh the index for its paths: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Some(sha))
    }

    /// The paths among `paths` that git does not ignore (a path tracked in `index` is never ignored).
    async fn not_ignored(&self, workspace: &Path, index: &Path, paths: &[String]) -> Result<Vec<String>> {
        let out = self.with_stdin(workspace, Some(index), &["check-ignore", "--stdin", "-z"], paths).await?;
        // Exit 1 means "none ignored"; 0 lists the ignored ones.
        if !(out.status.success() || out.status.code() == Some(1)) {
            bail!(
                "`git check-ignore` failed in {}: {}",
                workspace.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ignored: Vec<&[u8]> = out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
        Ok(paths.iter().filter(|p| !ignored.contains(&p.as_bytes())).cloned().collect())
    }

    /// The paths (relative to `workspace`) that `index` holds, from one `git ls-files`.
    async fn tracked_in(&self, workspace: &Path, index: &Path) -> Result<std::collections::HashSet<Vec<u8>>> {
        let env = vec![("GIT_INDEX_FILE", index.as_os_str().to_owned())];
        let out = self.git_with(workspace, &["ls-files", "-z"], env, None).await?;
        if !out.status.success() {
            bail!("`git ls-files` failed in {}: {}", workspace.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect())
    }

    /// Run git (with the temporary `index`, when given), giving it `items` NUL-separated on its standard input.
    async fn with_stdin(
        &self,
        workspace: &Path,
        index: Option<&Path>,
        args: &[&str],
        items: &[String],
    ) -> Result<Output> {
        let env = index.map(|i| ("GIT_INDEX_FILE", i.as_os_str().to_owned())).into_iter().collect();
        let input: Vec<u8> = items.iter().flat_map(|p| p.bytes().chain([0])).collect();
        self.git_with(workspace, args, env, Some(input)).await
    }
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

impl Git {
    /// Push `branch` to `remote` and open its pull request with `gh pr create`, run in `dir`. Returns what gh
    /// printed (the pull request's URL).
    pub async fn push_and_open_pr(&self, dir: &Path, remote: &str, pr: &PullRequest<'_>) -> Result<String> {
        self.run_ok(dir, &["push", "--quiet", "--set-upstream", remote, pr.head]).await.with_context(|| {
            format!("cannot push branch {} to the remote {remote:?} (git.remote) for its pull request", pr.head)
        })?;
        let args = pr_create_args(pr);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.gh(dir, &args).await?;
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

    /// Commands for tests: a minute each.
    const GIT: Git = Git { timeout: Duration::from_secs(60) };

    async fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for args in [&["init", "-q", "-b", "main"][..], &["config", "user.name", "T"], &["config", "user.email", "t@x"]]
        {
            GIT.run_ok(dir.path(), args).await.unwrap();
        }
        std::fs::write(dir.path().join("kept.txt"), "base\n").unwrap();
        std::fs::write(dir.path().join("gone.txt"), "base\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "build/\n").unwrap();
        GIT.run_ok(dir.path(), &["add", "."]).await.unwrap();
        GIT.run_ok(dir.path(), &["commit", "-qm", "base"]).await.unwrap();
        dir
    }

    #[tokio::test]
    async fn only_the_named_paths_are_committed_and_the_users_other_changes_stay_as_they_were() {
        let dir = repo().await;
        let root = dir.path();
        // The user's own work: one staged file and one unstaged edit.
        std::fs::write(root.join("staged.txt"), "mine, staged\n").unwrap();
        GIT.run_ok(root, &["add", "staged.txt"]).await.unwrap();
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
        let sha = GIT.commit_paths(root, &paths, "feat: add new\n\nObra-Task: 1").await.unwrap().expect("a commit");

        let files = GIT.run_ok(root, &["show", "--name-status", "--format=", &sha]).await.unwrap();
        assert_eq!(files, "D\tgone.txt\nA\tsrc/a b/new[1].rs", "{files}");
        assert_eq!(GIT.run_ok(root, &["log", "-1", "--format=%B"]).await.unwrap(), "feat: add new\n\nObra-Task: 1");
        let status = String::from_utf8(GIT.run(root, &["status", "--porcelain"]).await.unwrap().stdout).unwrap();
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

    #[tokio::test]
    async fn nothing_to_commit_is_none_and_an_unborn_branch_gets_its_first_commit() {
        let dir = repo().await;
        assert_eq!(GIT.commit_paths(dir.path(), &["kept.txt".into()], "x").await.unwrap(), None);
        assert_eq!(GIT.commit_paths(dir.path(), &[], "x").await.unwrap(), None);
        let fresh = tempfile::tempdir().unwrap();
        GIT.run_ok(fresh.path(), &["init", "-q"]).await.unwrap();
        std::fs::write(fresh.path().join("a.txt"), "a").unwrap();
        let sha = GIT.commit_paths(fresh.path(), &["a.txt".into()], "feat: first").await.unwrap();
        assert!(sha.is_some());
        assert_eq!(GIT.run_ok(fresh.path(), &["log", "--format=%s"]).await.unwrap(), "feat: first");
    }

    #[tokio::test]
    async fn a_failing_hook_fails_the_commit_and_leaves_the_work_in_the_tree() {
        let dir = repo().await;
        let hook = dir.path().join(".git/hooks/pre-commit");
        std::fs::write(&hook, "#!/bin/sh\necho 'lint failed' >&2\nexit 1\n").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("new.txt"), "n").unwrap();
        let err = GIT.commit_paths(dir.path(), &["new.txt".into()], "feat: x").await.unwrap_err().to_string();
        assert!(err.contains("lint failed"), "{err}");
        assert_eq!(GIT.run_ok(dir.path(), &["rev-list", "--count", "HEAD"]).await.unwrap(), "1");
        assert_eq!(GIT.run_ok(dir.path(), &["status", "--porcelain"]).await.unwrap(), "?? new.txt");
    }

    /// Whether process `pid` still runs (a zombie has ended; it waits only for its parent to reap it).
    #[cfg(target_os = "linux")]
    fn alive(pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // The state follows the parenthesised command name.
        !matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('Z' | 'X') | None)
    }

    /// The pids written, one a line, to `file` by a fake command.
    #[cfg(target_os = "linux")]
    fn pids_in(file: &Path) -> Vec<i32> {
        std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Wait until none of `pids` runs; false when some still do after half a minute (a SIGKILLed process group
    /// is gone at once; the bound only keeps a failing test from hanging).
    #[cfg(target_os = "linux")]
    async fn all_gone(pids: &[i32]) -> bool {
        for _ in 0..300 {
            if !pids.iter().any(|p| alive(*p)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_hook_past_the_time_limit_is_stopped_with_everything_it_started_and_named_with_the_key() {
        let dir = repo().await;
        let pids = dir.path().join("pids");
        let hook = dir.path().join(".git/hooks/pre-commit");
        // The hook starts a grandchild (which also holds git's output pipes), then hangs itself.
        let script = format!("#!/bin/sh\nsleep 600 &\necho $! >> '{0}'\necho $$ >> '{0}'\nsleep 600\n", pids.display());
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("new.txt"), "n").unwrap();

        let short = Git::new(Duration::from_secs(2));
        let err = short.commit_paths(dir.path(), &["new.txt".into()], "feat: x").await.unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("`git commit --quiet --cleanup=verbatim -F"), "names the command: {err}");
        assert!(
            err.contains(&format!("ran into the time limit {TIMEOUT_KEY} (2s) and was stopped")),
            "names the key: {err}"
        );
        let started = pids_in(&pids);
        assert_eq!(started.len(), 2, "the hook ran and started its grandchild: {started:?}");
        assert!(all_gone(&started).await, "the hook and its grandchild were killed with git: {started:?}");
        // Nothing was committed; the work stays in the tree.
        assert_eq!(GIT.run_ok(dir.path(), &["rev-list", "--count", "HEAD"]).await.unwrap(), "1");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_command_that_exited_leaving_a_child_on_its_output_is_stopped_with_that_child() {
        let dir = repo().await;
        let pids = dir.path().join("pids");
        // git runs the alias in a shell that starts a grandchild and exits at once; git exits with it, but
        // the grandchild keeps git's output open, so the command has not finished.
        let alias = format!("alias.linger=!sleep 600 & echo $! >> '{}'", pids.display());
        let short = Git::new(Duration::from_secs(2));
        let err = format!("{:#}", short.run(dir.path(), &["-c", &alias, "linger"]).await.unwrap_err());
        assert!(err.contains("`git -c alias.linger=") && err.contains(TIMEOUT_KEY), "{err}");
        let started = pids_in(&pids);
        assert_eq!(started.len(), 1, "{started:?}");
        assert!(all_gone(&started).await, "the grandchild was killed with the group: {started:?}");
    }

    #[tokio::test]
    async fn a_command_within_its_limit_returns_its_output_and_its_exit_status() {
        let dir = repo().await;
        let short = Git::new(Duration::from_secs(30));
        assert_eq!(short.run_ok(dir.path(), &["config", "--get", "user.name"]).await.unwrap(), "T");
        let out = short.run(dir.path(), &["config", "--get", "no.such-key"]).await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = short.run_ok(dir.path(), &["rev-parse", "--verify", "no-such-ref"]).await.unwrap_err();
        assert!(err.to_string().contains("`git rev-parse --verify no-such-ref` failed"), "{err}");
        let missing = short.gh(dir.path(), &["--version"]);
        if let Err(e) = missing.await {
            assert!(format!("{e:#}").contains("install GitHub's CLI"), "{e:#}");
        }
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

    #[tokio::test]
    async fn a_repository_mid_rebase_is_refused_and_one_outside_git_is_not() {
        let dir = repo().await;
        ensure_not_mid_operation(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join(".git/rebase-merge")).unwrap();
        let err = ensure_not_mid_operation(dir.path()).unwrap_err().to_string();
        assert!(err.contains("git rebase --abort") && err.contains("nothing was changed"), "{err}");
        ensure_not_mid_operation(tempfile::tempdir().unwrap().path()).unwrap();
    }
}
