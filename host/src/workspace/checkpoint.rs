//! Checkpoints: snapshots of the workspace's working tree, stored as commits under private git refs.
//!
//! A checkpoint is a commit pointed at by `refs/obra/checkpoints/<id>`, where `<id>` is a sequence number
//! (`1`, `2`, ...). Taking or restoring one never touches the user's HEAD, branches or index file: trees are
//! built in an in-memory index and files are read and written directly, as raw bytes (no clean/smudge or
//! line-ending filters), so a restore is byte-identical.
//!
//! What a checkpoint holds: every file and symbolic link under the workspace, tracked or untracked, except
//! files git ignores (`.gitignore`, `.git/info/exclude`, `core.excludesFile`; a tracked file is never
//! ignored) and anything under a directory named `.git` or `.obra`. Executable bits and symbolic links are
//! kept. When the workspace is a subdirectory of the repository, the checkpoint's scope is that subdirectory:
//! the commit's tree is HEAD's tree with the subdirectory replaced by the snapshot, so `git diff HEAD <ref>`
//! shows exactly what the checkpoint changed, and a restore only writes inside the workspace. All workspaces
//! of one repository share the same list of checkpoints.
//!
//! Cost (ADR 0041): a number is allocated from one symbolic ref, `refs/obra/checkpoint-counter` (pointing at
//! the newest checkpoint's ref), not by listing every checkpoint's ref; the objects a checkpoint writes are
//! collected in memory (libgit2's mempack backend) and stored as one pack, not as one loose file each; and with
//! a retention ([`Checkpoints::with_retention`], `engine.checkpoint_retention`) each new checkpoint prunes the
//! refs of older ones, so their number stays bounded however long the backlog.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::beneath::{Beneath, Kind as FileKind, Opened};
use super::watcher::ChangeTracker;
use git2::{Commit, ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Oid, Repository, Signature, TreeWalkMode};

/// Where the checkpoints' refs live.
const REF_PREFIX: &str = "refs/obra/checkpoints/";

/// The symbolic ref naming the newest checkpoint's ref: where the next number is allocated from.
const COUNTER_REF: &str = "refs/obra/checkpoint-counter";

/// Where the pack of a checkpoint's objects is built: an empty bare repository inside the git directory.
const PACKER_DIR: &str = "obra-packer";

/// How many times moving the counter on is tried again when another process moved it meanwhile.
const COUNTER_RETRIES: u32 = 50;

/// Directory names never captured, written or removed: version control and Obra's own state.
const SKIPPED_NAMES: &[&str] = &[".git", ".obra"];

/// How many times creating a checkpoint's ref is tried again while another process holds its lock file.
const REF_LOCK_RETRIES: u32 = 400;
/// The pause between those tries (400 x 5 ms: two seconds in all).
const REF_LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// How many changed paths a refused restore names.
const LISTED_PATHS: usize = 10;

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Short unique name (a sequence number), the last component of `git_ref`.
    pub id: String,
    /// The ref that holds it: `refs/obra/checkpoints/<id>`.
    pub git_ref: String,
    /// The commit's sha, in hex.
    pub commit: String,
    /// The label given when it was taken (the commit message).
    pub label: String,
    /// When it was taken, in seconds since the Unix epoch (the commit time).
    pub time: i64,
    /// Number of files (and symbolic links) it holds within the workspace.
    pub files: usize,
}

/// What [`Checkpoints::restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Files written (created, replaced, or whose executable bit changed).
    pub written: usize,
    /// Files removed because the checkpoint does not hold them.
    pub removed: usize,
    /// The checkpoint of the state before the restore; `None` when the working tree already matched.
    pub safety_checkpoint: Option<CheckpointInfo>,
}

/// What [`Checkpoints::diff`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointDiff {
    /// Each changed path, sorted.
    pub changes: Vec<PathChange>,
    /// The unified diff.
    pub patch: String,
}

/// One changed path of a [`CheckpointDiff`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathChange {
    /// Path relative to the workspace, `/`-separated.
    pub path: String,
    /// `added`, `modified`, `deleted`, `type changed` (file and symbolic link) or `mode changed`.
    pub change: &'static str,
}

/// Kind of a captured entry, as git's file modes tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Exec,
    Link,
}

impl Kind {
    fn mode(self) -> u32 {
        match self {
            Kind::File => 0o100644,
            Kind::Exec => 0o100755,
            Kind::Link => 0o120000,
        }
    }

    fn from_mode(mode: i32) -> Option<Self> {
        match mode {
            0o100644 => Some(Kind::File),
            0o100755 => Some(Kind::Exec),
            0o120000 => Some(Kind::Link),
            _ => None,
        }
    }
}

/// Entries of a tree, by `/`-separated path relative to the workspace.
type Entries = BTreeMap<String, (Kind, Oid)>;

/// Size, modification time (ns) and inode of a file that decides what git ignores or tracks.
type Stamp = Option<(u64, i128, u64)>;

/// What the next checkpoint of a workspace may build on: the tree of the last one, kept by the workspace's
/// change tracker ([`ChangeTracker`]), whose watcher has seen every change since (ADR 0041).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The workspace, canonical.
    root: PathBuf,
    /// The tree of the workspace as the last checkpoint holds it.
    tree: Oid,
    /// How many files (and links) it holds.
    files: usize,
    /// The stamps of the files that decide what is ignored or tracked, when it was taken.
    stamps: Vec<Stamp>,
}

/// What was at a path in a base tree.
enum Before {
    File(Kind, Oid),
    Tree(Oid),
}

/// The checkpoints of one workspace.
pub struct Checkpoints {
    repo: Repository,
    /// The workspace, canonical.
    root: PathBuf,
    /// The workspace's path within the repository's working directory: empty, or ending in `/`.
    prefix: String,
    /// How many of the newest checkpoints keep their ref; 0 keeps all.
    retention: u64,
    /// How many scans of the whole workspace this has made (for tests and benchmarks).
    full_scans: std::cell::Cell<usize>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("root", &self.root)
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish()
    }
}

impl Checkpoints {
    /// Open the checkpoints of `workspace`: `None` when it is not inside a git repository, an error when the
    /// repository is bare.
    pub fn open(workspace: &Path) -> Result<Option<Self>> {
        let root = workspace
            .canonicalize()
            .with_context(|| format!("cannot open the workspace {}; check that it exists", workspace.display()))?;
        let repo = match Repository::discover(&root) {
            Ok(repo) => repo,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot open the git repository of {}", root.display())),
        };
        let Some(workdir) = repo.workdir() else {
            bail!(
                "{} is in a bare git repository ({}); checkpoints need a working tree, so run obra in a clone",
                root.display(),
                repo.path().display()
            );
        };
        let workdir = workdir.canonicalize().with_context(|| format!("cannot open {}", workdir.display()))?;
        let relative = root.strip_prefix(&workdir).with_context(|| {
            format!("the workspace {} is outside its repository's working tree {}", root.display(), workdir.display())
        })?;
        let mut prefix = String::new();
        for component in relative.components() {
            let name = component.as_os_str().to_str().with_context(|| {
                format!("the workspace path {} is not UTF-8; move the workspace to a UTF-8 path", root.display())
            })?;
            if SKIPPED_NAMES.contains(&name) {
                bail!(
                    "the workspace {} is inside a {name} directory; open the project's own directory",
                    root.display()
                );
            }
            prefix.push_str(name);
            prefix.push('/');
        }
        Ok(Some(Self { repo, root, prefix, retention: 0, full_scans: Default::default() }))
    }

    /// Keep the refs of the newest `keep` checkpoints only: each checkpoint taken from now on deletes the refs
    /// of older ones (their commits are then left to `git gc`). 0 (the default) keeps every checkpoint.
    pub fn with_retention(mut self, keep: u64) -> Self {
        self.retention = keep;
        self
    }

    /// How many times this has scanned the whole workspace (a checkpoint that could not be incremental, a
    /// restore, a diff against the working tree).
    pub fn full_scans(&self) -> usize {
        self.full_scans.get()
    }

    /// Whether the checkpoint recorded as `git_ref` with commit `commit` (hex) still exists: its ref was not
    /// pruned (or deleted) and still points at that commit.
    pub fn is_kept(&self, git_ref: &str, commit: &str) -> bool {
        let Ok(commit) = Oid::from_str(commit) else { return false };
        self.repo.find_reference(git_ref).ok().and_then(|r| r.target()) == Some(commit)
    }

    /// Take a checkpoint of the working tree, with `label` as its commit message. Its parent is HEAD's commit
    /// (none in a repository without commits); author and committer are the repository's configured user, or
    /// `obra <obra@localhost>` when there is none.
    pub fn create(&self, label: &str) -> Result<CheckpointInfo> {
        Ok(self.create_with_entries(label)?.0)
    }

    /// Take a checkpoint as [`create`](Self::create) does, in proportion to what changed when it can: with
    /// the workspace's change tracker (whose watcher runs), the tree is the previous checkpoint's tree (kept
    /// by the tracker) with only the paths that had events since then read again. It falls back to a full scan
    /// when that cannot be known complete: no previous tree, a watcher error, overflow or flush that did not
    /// come, a changed `.git/index`, exclude file or git configuration, a workspace that is a subdirectory of
    /// its repository, or a path that turned from a file into a directory or back. Every directory a scan
    /// walks into is watched before it is listed, so nothing the checkpoint holds goes unwatched.
    pub fn create_tracked(&self, label: &str, tracker: &mut ChangeTracker) -> Result<CheckpointInfo> {
        if !self.prefix.is_empty() {
            return self.create(label);
        }
        // From here on, every change is in the next journal.
        let journal = tracker.journal();
        let base = tracker.checkpoint_base.take();
        let stamps = self.rule_stamps();
        let tracker_root = tracker.root().to_path_buf();
        let usable = match (base, journal) {
            (Some(base), Some(journal)) if base.root == self.root && base.stamps == stamps => Some((base, journal)),
            _ => None,
        };
        let mut watched_all = true;
        let mut watch = |rel: &str| {
            let ok = tracker.watch_dir(&tracker_root.join(rel));
            watched_all &= ok;
            ok
        };
        let (oid, tree, files) = self.in_memory(true, || {
            let updated = match &usable {
                Some((base, journal)) => self.update_tree(base, journal, &tracker_root, &mut watch)?,
                None => None,
            };
            let (tree, files) = match updated {
                Some(updated) => updated,
                None => {
                    let entries = self.scan_dir(true, "", &mut watch)?;
                    (self.tree_of(&entries)?, entries.len())
                }
            };
            let oid = self.commit_tree(label, tree)?;
            Ok((oid, tree, files))
        })?;
        let (id, fresh_counter) = self.allocate(oid, label)?;
        self.prune(id, fresh_counter);
        if watched_all {
            tracker.checkpoint_base = Some(Base { root: self.root.clone(), tree, files, stamps });
        }
        let commit = self.repo.find_commit(oid)?;
        Ok(CheckpointInfo {
            git_ref: format!("{REF_PREFIX}{id}"),
            id: id.to_string(),
            commit: oid.to_string(),
            label: label.to_string(),
            time: commit.time().seconds(),
            files,
        })
    }

    /// The checkpoints, newest first.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>> {
        self.commits()?.into_iter().map(|(id, commit)| self.info(id, &commit)).collect()
    }

    /// Paths (relative to the workspace, sorted) whose working-tree content or kind differs from the
    /// checkpoint `commit` (an id, a ref or a commit sha): added, modified and deleted files.
    pub fn changes_since(&self, commit: &str) -> Result<Vec<String>> {
        let (_, commit) = self.resolve(commit)?;
        let saved = self.commit_entries(&commit)?;
        let current = self.scan(false)?;
        Ok(changed_paths(&saved, &current))
    }

    /// Make the working tree identical to the checkpoint `commit` (an id, a ref or a commit sha): files it
    /// holds are written with their bytes, executable bit and symlink targets, files it does not hold are
    /// removed (except ignored files and `.obra/`), and directories left empty are removed. HEAD, the index
    /// file and branches are not touched.
    ///
    /// A safety checkpoint labelled `before rollback to <id>` is taken first, so the restore can itself be
    /// undone; none is taken (and nothing written) when the working tree already matches.
    ///
    /// Without `force`, the restore is refused, and nothing changes, when the working tree has edits that no
    /// checkpoint holds: that is, when it matches none of the checkpoints (usually it matches the newest, or
    /// the one restored last). The error names up to ten of the paths that differ from the closest one.
    pub fn restore(&self, commit: &str, force: bool) -> Result<RestoreReport> {
        let (name, target_commit) = self.resolve(commit)?;
        let target = self.commit_entries(&target_commit)?;
        let current = self.scan(false)?;
        if current == target {
            return Ok(RestoreReport { written: 0, removed: 0, safety_checkpoint: None });
        }
        if !force && let Some((closest, changed)) = self.uncaptured(&current)? {
            let mut listed = changed.iter().take(LISTED_PATHS).cloned().collect::<Vec<_>>().join(", ");
            if changed.len() > LISTED_PATHS {
                listed.push_str(&format!(" and {} more", changed.len() - LISTED_PATHS));
            }
            let against = match closest {
                Some(id) => format!("compared with checkpoint {id}"),
                None => "there are no checkpoints".to_string(),
            };
            bail!(
                "the workspace has edits no checkpoint holds ({against}): {listed}; take a checkpoint to keep them, \
                 or use --force to discard them; a safety checkpoint is taken either way"
            );
        }

        let (safety, current) = self.create_with_entries(&format!("before rollback to {name}"))?;
        let mut removed = 0;
        for path in current.keys().filter(|p| !target.contains_key(*p)) {
            let file = self.root.join(path);
            match std::fs::remove_file(&file) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
            }
            self.remove_empty_parents(path);
        }
        let mut written = 0;
        for (path, &(kind, oid)) in &target {
            match current.get(path) {
                Some(&(old_kind, old_oid)) if old_kind == kind && old_oid == oid => continue,
                Some(&(old_kind, old_oid)) if old_oid == oid && old_kind != Kind::Link && kind != Kind::Link => {
                    platform::set_executable(&self.root.join(path), kind == Kind::Exec)?;
                }
                _ => self.write_entry(path, kind, oid)?,
            }
            written += 1;
        }
        Ok(RestoreReport { written, removed, safety_checkpoint: Some(safety) })
    }

    /// Write the workspace as checkpoint (or commit) `commit` holds it into `dir`, an empty directory outside
    /// the workspace, without touching the workspace, the index or any ref. Returns the number of files.
    pub fn export(&self, commit: &str, dir: &Path) -> Result<usize> {
        let (_, target_commit) = self.resolve(commit)?;
        let entries = self.commit_entries(&target_commit)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (path, &(kind, oid)) in &entries {
            self.write_entry_under(dir, path, kind, oid)?;
        }
        Ok(entries.len())
    }

    /// What changed from checkpoint (or commit) `from` to `to` (another one), or to the working tree when
    /// `to` is `None`: the paths with their change, and a unified diff of them (`Binary files differ` for
    /// binary content), both within the workspace and with the same rules as a checkpoint (ignored files and
    /// `.obra/` left out). Nothing in the workspace, the index or the refs changes.
    pub fn diff(&self, from: &str, to: Option<&str>) -> Result<CheckpointDiff> {
        // The working tree's blobs and both trees are only needed for the diff: held in memory, then dropped.
        self.in_memory(false, || self.diff_written(from, to))
    }

    fn diff_written(&self, from: &str, to: Option<&str>) -> Result<CheckpointDiff> {
        let (_, from_commit) = self.resolve(from)?;
        let old = self.commit_entries(&from_commit)?;
        let new = match to {
            Some(spec) => {
                let (_, to_commit) = self.resolve(spec)?;
                self.commit_entries(&to_commit)?
            }
            None => self.scan(true)?,
        };
        let old_tree = self.repo.find_tree(self.tree_of(&old)?)?;
        let new_tree = self.repo.find_tree(self.tree_of(&new)?)?;
        let mut options = git2::DiffOptions::new();
        options.context_lines(3);
        let diff = self.repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), Some(&mut options))?;
        let mut changes = Vec::new();
        for delta in diff.deltas() {
            let path = delta.new_file().path().or(delta.old_file().path());
            let path = path.map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
            let change = match delta.status() {
                git2::Delta::Added => "added",
                git2::Delta::Deleted => "deleted",
                git2::Delta::Typechange => "type changed",
                _ if delta.old_file().mode() != delta.new_file().mode()
                    && delta.old_file().id() == delta.new_file().id() =>
                {
                    "mode changed"
                }
                _ => "modified",
            };
            changes.push(PathChange { path, change });
        }
        let mut patch = Vec::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                patch.push(line.origin() as u8);
            }
            patch.extend_from_slice(line.content());
            true
        })?;
        Ok(CheckpointDiff { changes, patch: String::from_utf8_lossy(&patch).into_owned() })
    }

    /// Write `entries` (workspace-relative) as a tree; returns its id.
    fn tree_of(&self, entries: &Entries) -> Result<Oid> {
        let mut index = Index::new()?;
        for (path, &(kind, oid)) in entries {
            index.add(&index_entry(path.clone(), kind, oid))?;
        }
        index.write_tree_to(&self.repo).context("cannot write a tree to compare")
    }

    /// The content of `path` (workspace-relative, `/`-separated) in checkpoint `commit`: none when the file was
    /// not in it.
    pub fn file_at(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let commit = self.repo.find_commit(Oid::from_str(commit)?)?;
        let tree = commit.tree()?;
        match tree.get_path(Path::new(&format!("{}{path}", self.prefix))) {
            Ok(entry) => Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec())),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Take a checkpoint; also return the entries it holds.
    fn create_with_entries(&self, label: &str) -> Result<(CheckpointInfo, Entries)> {
        let (oid, entries) = self.in_memory(true, || self.write_commit(label))?;
        let (id, fresh_counter) = self.allocate(oid, label)?;
        self.prune(id, fresh_counter);
        let commit = self.repo.find_commit(oid)?;
        let info = CheckpointInfo {
            git_ref: format!("{REF_PREFIX}{id}"),
            id: id.to_string(),
            commit: oid.to_string(),
            label: label.to_string(),
            time: commit.time().seconds(),
            files: entries.len(),
        };
        Ok((info, entries))
    }

    /// Scan the working tree and write its checkpoint commit (no ref yet); returns the commit and the entries.
    fn write_commit(&self, label: &str) -> Result<(Oid, Entries)> {
        let entries = self.scan(true)?;
        let parent = self.head_commit()?;
        let mut index = Index::new()?;
        if !self.prefix.is_empty()
            && let Some(parent) = &parent
        {
            index.read_tree(&parent.tree()?)?;
            index.remove_dir(Path::new(self.prefix.trim_end_matches('/')), 0)?;
        }
        for (path, &(kind, oid)) in &entries {
            index.add(&index_entry(format!("{}{path}", self.prefix), kind, oid))?;
        }
        let tree =
            self.repo.find_tree(index.write_tree_to(&self.repo).context("cannot write the checkpoint's tree")?)?;
        let signature = match self.repo.signature() {
            Ok(signature) => signature,
            Err(_) => Signature::now("obra", "obra@localhost")?,
        };
        let parents = parent.iter().collect::<Vec<_>>();
        let oid = self
            .repo
            .commit(None, &signature, &signature, label, &tree, &parents)
            .context("cannot write the checkpoint's commit")?;
        Ok((oid, entries))
    }

    /// Write the commit of a checkpoint whose whole tree (the workspace is the repository's root) is `tree`.
    fn commit_tree(&self, label: &str, tree: Oid) -> Result<Oid> {
        let parent = self.head_commit()?;
        let tree = self.repo.find_tree(tree)?;
        let signature = match self.repo.signature() {
            Ok(signature) => signature,
            Err(_) => Signature::now("obra", "obra@localhost")?,
        };
        let parents = parent.iter().collect::<Vec<_>>();
        self.repo
            .commit(None, &signature, &signature, label, &tree, &parents)
            .context("cannot write the checkpoint's commit")
    }

    /// The stamps of what decides which files git ignores or tracks: the index, the exclude file, the
    /// repository's, the user's and the system's configuration and the global excludes file. Any change
    /// to one of them makes the next checkpoint a full scan.
    fn rule_stamps(&self) -> Vec<Stamp> {
        let mut files = vec![
            self.repo.path().join("index"),
            self.repo.commondir().join("info/exclude"),
            self.repo.commondir().join("config"),
            self.repo.path().join("config.worktree"),
        ];
        files.extend(
            [git2::Config::find_global(), git2::Config::find_xdg(), git2::Config::find_system()].into_iter().flatten(),
        );
        if let Ok(config) = self.repo.config()
            && let Ok(path) = config.get_path("core.excludesFile")
        {
            files.push(path);
        }
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
        if let Some(xdg) = xdg {
            files.push(xdg.join("git/ignore"));
        }
        files.iter().map(|file| platform::stamp(file)).collect()
    }

    /// The tree of `base` with every path of `journal` (absolute, under `tracker_root`) as it is now: a
    /// directory walked again whole (so is the directory of a changed `.gitignore`), a file read again, a
    /// path gone removed with all below it. `None` when this cannot be done exactly (then the caller scans).
    fn update_tree(
        &self,
        base: &Base,
        journal: &std::collections::BTreeSet<PathBuf>,
        tracker_root: &Path,
        watch: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<(Oid, usize)>> {
        let base_tree = self.repo.find_tree(base.tree)?;
        let mut paths = std::collections::BTreeSet::new();
        for abs in journal {
            let Ok(rel) = abs.strip_prefix(tracker_root) else { continue };
            if rel.as_os_str().is_empty() {
                continue;
            }
            // A name that is not UTF-8: the full scan says what to do about it.
            let Some(rel) = rel.to_str() else { return Ok(None) };
            if rel.split('/').any(|part| SKIPPED_NAMES.contains(&part)) {
                continue;
            }
            if rel == ".gitignore" {
                return Ok(None);
            }
            if let Some(dir) = rel.strip_suffix("/.gitignore") {
                paths.insert(dir.to_string());
            }
            paths.insert(rel.to_string());
        }
        let beneath =
            Beneath::open(&self.root).with_context(|| format!("cannot open the workspace {}", self.root.display()))?;
        let odb = self.repo.odb()?;
        let mut tracked: Option<Index> = None;
        let mut updates = git2::build::TreeUpdateBuilder::new();
        let mut files = base.files as i64;
        // Paths done with all below them (walked whole, or gone).
        let mut covered = std::collections::BTreeSet::new();
        for rel in &paths {
            // Sorted, so a directory comes before what lies below it.
            let mut ancestors = rel.match_indices('/').map(|(at, _)| &rel[..at]);
            if ancestors.any(|dir| covered.contains(dir)) {
                continue;
            }
            let before = self.before(&base_tree, rel)?;
            match beneath.metadata(Path::new(rel)) {
                // Gone, or below something that is no directory any more: not in the checkpoint.
                Err(_) => {
                    covered.insert(rel.as_str());
                    match before {
                        Some(Before::File(..)) => {
                            updates.remove(rel.as_str());
                            files -= 1;
                        }
                        Some(Before::Tree(id)) => {
                            updates.remove(rel.as_str());
                            files -= self.tree_entries(id, rel)?.len() as i64;
                        }
                        None => {}
                    }
                }
                Ok(meta) if meta.is_dir() => {
                    let old = match before {
                        Some(Before::File(..)) => return Ok(None),
                        Some(Before::Tree(id)) => self.tree_entries(id, rel)?,
                        None => Entries::new(),
                    };
                    let now = self.scan_dir(true, rel, watch)?;
                    for (path, &(kind, oid)) in &now {
                        if old.get(path) != Some(&(kind, oid)) {
                            updates.upsert(path.as_str(), oid, file_mode(kind));
                        }
                        if !old.contains_key(path) {
                            files += 1;
                        }
                    }
                    for path in old.keys().filter(|p| !now.contains_key(*p)) {
                        updates.remove(path.as_str());
                        files -= 1;
                    }
                    covered.insert(rel.as_str());
                }
                Ok(meta) => {
                    if matches!(before, Some(Before::Tree(_))) {
                        return Ok(None);
                    }
                    let kind = FileKind::of(meta.file_type());
                    let captured = if self.is_path_ignored(rel, rel)? {
                        // Ignored (itself or through a directory), unless tracked: the index, read only now.
                        if tracked.is_none() {
                            let mut index = self.repo.index().context("cannot read the repository's index")?;
                            index.read(false).context("cannot read the repository's index")?;
                            tracked = Some(index);
                        }
                        tracked.as_ref().is_some_and(|t| t.get_path(Path::new(rel), 0).is_some())
                    } else {
                        true
                    };
                    let now = if captured { self.capture(&beneath, &odb, rel, kind, &|_| None, true)? } else { None };
                    match (before, now) {
                        (Some(Before::File(k, o)), Some((kind, oid))) if (k, o) == (kind, oid) => {}
                        (before, Some((kind, oid))) => {
                            updates.upsert(rel.as_str(), oid, file_mode(kind));
                            if before.is_none() {
                                files += 1;
                            }
                        }
                        (Some(_), None) => {
                            updates.remove(rel.as_str());
                            files -= 1;
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        let tree = updates.create_updated(&self.repo, &base_tree).context("cannot write the checkpoint's tree")?;
        Ok(Some((tree, usize::try_from(files).unwrap_or(0))))
    }

    /// What `tree` holds at `rel`.
    fn before(&self, tree: &git2::Tree<'_>, rel: &str) -> Result<Option<Before>> {
        match tree.get_path(Path::new(rel)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Tree) => Ok(Some(Before::Tree(entry.id()))),
            Ok(entry) => Ok(Kind::from_mode(entry.filemode()).map(|kind| Before::File(kind, entry.id()))),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The entries of the tree `id`, which is at `rel` in the workspace, with their workspace paths.
    fn tree_entries(&self, id: Oid, rel: &str) -> Result<Entries> {
        let mut entries = Entries::new();
        self.repo.find_tree(id)?.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if let (Ok(name), Some(kind)) = (entry.name(), Kind::from_mode(entry.filemode())) {
                entries.insert(format!("{rel}/{dir}{name}"), (kind, entry.id()));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(entries)
    }

    /// Run `write` with every object it writes held in memory (libgit2's mempack backend in front of the
    /// repository's objects, which stay readable); then, with `keep`, store those objects as one pack (one
    /// `.pack` and one `.idx` file instead of a loose file per object), or else drop them.
    fn in_memory<T>(&self, keep: bool, write: impl FnOnce() -> Result<T>) -> Result<T> {
        let disk = self.repo.odb().context("cannot open the repository's objects")?;
        let memory = git2::Odb::new()?;
        let mempack = memory.add_new_mempack_backend(1000)?;
        let objects = self.repo.commondir().join("objects");
        let objects = objects.to_str().with_context(|| {
            format!("the repository's path {} is not UTF-8; move the repository to a UTF-8 path", objects.display())
        })?;
        // An alternate is read, never written: every new object lands in the mempack.
        memory.add_disk_alternate(objects).context("cannot open the repository's objects")?;
        self.repo.set_odb(&memory)?;
        let written = write().and_then(|value| {
            let mut pack = git2::Buf::new();
            if keep {
                // libgit2's pack builder lists every ref of the repository it works in (to order tags), so
                // it works in a repository of its own, with no refs, reading the same objects.
                let packer = self.packer()?;
                packer.set_odb(&memory)?;
                let mut builder = packer.packbuilder()?;
                // Only the objects in memory: `Mempack::dump` would add every object below each new commit,
                // the whole workspace's tree.
                mempack::write_new_objects(&mempack, &mut builder).context("cannot pack the checkpoint's objects")?;
                builder.write_buf(&mut pack).context("cannot pack the checkpoint's objects")?;
            }
            Ok((value, pack))
        });
        self.repo.set_odb(&disk).context("cannot reopen the repository's objects")?;
        let (value, pack) = written?;
        // A pack's header: "PACK", a version and the number of objects (big-endian), 12 bytes.
        let objects = pack.get(8..12).map_or(0, |n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]));
        if keep && objects > 0 {
            let mut writer = disk.packwriter().context("cannot write the checkpoint's pack")?;
            writer.write_all(&pack).context("cannot write the checkpoint's pack")?;
            writer.commit().context("cannot write the checkpoint's pack")?;
        }
        Ok(value)
    }

    /// The empty bare repository (`.git/obra-packer`, made on first use) where checkpoints' packs are built.
    fn packer(&self) -> Result<Repository> {
        let path = self.repo.commondir().join(PACKER_DIR);
        if let Ok(repo) = Repository::open_bare(&path) {
            return Ok(repo);
        }
        // Made aside and renamed into place, so that another process never opens one half made.
        let aside = self.repo.commondir().join(format!(
            "{PACKER_DIR}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&aside);
        Repository::init_bare(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
        if std::fs::rename(&aside, &path).is_err() {
            // Another one got there first.
            let _ = std::fs::remove_dir_all(&aside);
        }
        Repository::open_bare(&path).with_context(|| format!("cannot open {}", path.display()))
    }

    /// Give commit `oid` the next free checkpoint number: create `refs/obra/checkpoints/<n>` and move the
    /// counter on. Returns the number and whether the counter was missing (then the refs were listed once).
    fn allocate(&self, oid: Oid, label: &str) -> Result<(u64, bool)> {
        // Several workspaces of one repository (the worktrees of `obra run --parallel`) number their
        // checkpoints from the same refs. The counter only says where to start: the ref is created only if it
        // still does not exist once its lock is held (an all-zero "old value"; libgit2's own existence check
        // comes before the lock, so two creators could both pass it): a number another one has taken
        // (`Exists`, `Modified`) moves this one on, and a number another one is taking right now (`Locked`,
        // git's `<ref>.lock`) is tried again shortly.
        let (mut number, fresh_counter) = match self.counter()? {
            Some((last, _)) => (last + 1, false),
            None => (self.last_number_listed()? + 1, true),
        };
        let mut lock_waits = 0;
        loop {
            let name = format!("{REF_PREFIX}{number}");
            match self.repo.reference_matching(&name, oid, false, Oid::ZERO_SHA1, &format!("obra checkpoint: {label}"))
            {
                Ok(_) => break,
                Err(e) if matches!(e.code(), ErrorCode::Exists | ErrorCode::Modified) => number += 1,
                Err(e) if e.code() == ErrorCode::Locked && lock_waits < REF_LOCK_RETRIES => {
                    lock_waits += 1;
                    std::thread::sleep(REF_LOCK_PAUSE);
                }
                Err(e) if e.code() == ErrorCode::Locked => {
                    return Err(e).context(format!(
                        "cannot create the checkpoint's ref {name}: its lock file stayed for {} ms; if no other \
                         git or obra process is running, remove .git/{name}.lock",
                        (REF_LOCK_PAUSE * REF_LOCK_RETRIES).as_millis()
                    ));
                }
                Err(e) => return Err(e).context("cannot create the checkpoint's ref"),
            }
        }
        self.advance_counter(number);
        Ok((number, fresh_counter))
    }

    /// The newest number the counter names, with the counter's own value (`None` when there is no counter, or
    /// it names no checkpoint ref).
    fn counter(&self) -> Result<Option<(u64, String)>> {
        match self.repo.find_reference(COUNTER_REF) {
            Ok(reference) => Ok(reference.symbolic_target().ok().flatten().and_then(|target| {
                let n = target.strip_prefix(REF_PREFIX)?.parse::<u64>().ok()?;
                Some((n, target.to_string()))
            })),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e).context(format!("cannot read {COUNTER_REF}")),
        }
    }

    /// Point the counter at checkpoint `number` unless it names a newer one already. The counter is a hint
    /// (a ref's creation is what reserves a number), so a failure is only logged.
    fn advance_counter(&self, number: u64) {
        let target = format!("{REF_PREFIX}{number}");
        for _ in 0..COUNTER_RETRIES {
            let result = match self.counter() {
                Ok(Some((last, _))) if last >= number => return,
                Ok(Some((_, current))) => {
                    self.repo.reference_symbolic_matching(COUNTER_REF, &target, true, &current, "obra checkpoint")
                }
                // Missing (or not naming a checkpoint, which is then replaced).
                Ok(None) => self.repo.reference_symbolic(COUNTER_REF, &target, true, "obra checkpoint"),
                Err(e) => {
                    tracing::warn!("{e:#}");
                    return;
                }
            };
            match result {
                Ok(_) => return,
                Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked) => {
                    std::thread::sleep(REF_LOCK_PAUSE);
                }
                Err(e) => {
                    tracing::warn!("cannot move {COUNTER_REF} on to checkpoint {number}: {e}");
                    return;
                }
            }
        }
        tracing::warn!("cannot move {COUNTER_REF} on to checkpoint {number}: other processes kept moving it");
    }

    /// With a retention, delete the refs of the checkpoints that fall out of it now that `newest` was taken:
    /// the one `retention` numbers back, and every older one on a sweep. A sweep (one listing of the
    /// checkpoints' refs, at most about twice the retention of them) runs every `retention` checkpoints and
    /// when the counter had to be made, so leftovers (a lowered retention, numbers taken out of order by
    /// parallel workspaces, refs from before the counter) go too. Failures are only logged: a ref left behind
    /// is pruned by a later sweep.
    fn prune(&self, newest: u64, sweep: bool) {
        if self.retention == 0 || newest <= self.retention {
            return;
        }
        let floor = newest - self.retention;
        self.delete_checkpoint_ref(floor);
        if !(sweep || newest.is_multiple_of(self.retention)) {
            return;
        }
        let names = match self.repo.references_glob(&format!("{REF_PREFIX}*")) {
            Ok(mut refs) => refs
                .names()
                .filter_map(|name| name.ok()?.strip_prefix(REF_PREFIX)?.parse::<u64>().ok())
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!("cannot list the checkpoints to prune: {e}");
                return;
            }
        };
        for n in names.into_iter().filter(|&n| n < floor) {
            self.delete_checkpoint_ref(n);
        }
    }

    fn delete_checkpoint_ref(&self, number: u64) {
        let name = format!("{REF_PREFIX}{number}");
        match self.repo.find_reference(&name) {
            Ok(mut reference) => {
                if let Err(e) = reference.delete() {
                    tracing::warn!("cannot prune the checkpoint ref {name}: {e}");
                }
            }
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => tracing::warn!("cannot read the checkpoint ref {name} to prune it: {e}"),
        }
    }

    fn info(&self, id: String, commit: &Commit<'_>) -> Result<CheckpointInfo> {
        Ok(CheckpointInfo {
            git_ref: format!("{REF_PREFIX}{id}"),
            id,
            commit: commit.id().to_string(),
            label: commit.message().unwrap_or_default().to_string(),
            time: commit.time().seconds(),
            files: self.commit_entries(commit)?.len(),
        })
    }

    /// The checkpoints' ids and commits, newest first (by sequence number, then commit time).
    fn commits(&self) -> Result<Vec<(String, Commit<'_>)>> {
        let mut found = Vec::new();
        for reference in self.repo.references_glob(&format!("{REF_PREFIX}*"))? {
            let reference = reference?;
            let Some(id) = reference.name().ok().and_then(|n| n.strip_prefix(REF_PREFIX)) else { continue };
            let id = id.to_string();
            let commit = reference.peel_to_commit().with_context(|| format!("checkpoint {id} is not a commit"))?;
            found.push((id, commit));
        }
        found.sort_by_key(|(id, commit)| std::cmp::Reverse((id.parse::<u64>().unwrap_or(0), commit.time().seconds())));
        Ok(found)
    }

    /// The highest checkpoint number among the refs: one listing, made only when there is no counter yet.
    fn last_number_listed(&self) -> Result<u64> {
        let mut last = 0;
        for name in self.repo.references_glob(&format!("{REF_PREFIX}*"))?.names() {
            if let Some(n) = name?.strip_prefix(REF_PREFIX).and_then(|id| id.parse::<u64>().ok()) {
                last = last.max(n);
            }
        }
        Ok(last)
    }

    /// A checkpoint id, a ref or a commit sha; returns the name used in labels and the commit.
    fn resolve(&self, spec: &str) -> Result<(String, Commit<'_>)> {
        if let Ok(reference) = self.repo.find_reference(&format!("{REF_PREFIX}{spec}")) {
            return Ok((spec.to_string(), reference.peel_to_commit()?));
        }
        let commit = self.repo.revparse_single(spec).and_then(|o| o.peel_to_commit()).with_context(|| {
            format!("there is no checkpoint or commit {spec:?}; list the checkpoints to see their ids")
        })?;
        let name = match spec.strip_prefix(REF_PREFIX) {
            Some(id) => id.to_string(),
            None => commit.as_object().short_id()?.as_str().unwrap_or(spec).to_string(),
        };
        Ok((name, commit))
    }

    fn head_commit(&self) -> Result<Option<Commit<'_>>> {
        match self.repo.head() {
            Ok(head) => Ok(Some(head.peel_to_commit().context("cannot read HEAD's commit")?)),
            Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e).context("cannot read HEAD"),
        }
    }

    /// When no checkpoint holds `current`: the closest checkpoint's id (`None` if there are no checkpoints)
    /// and the paths that differ from it.
    fn uncaptured(&self, current: &Entries) -> Result<Option<(Option<String>, Vec<String>)>> {
        let mut closest: Option<(Option<String>, Vec<String>)> = None;
        let mut seen = Vec::new();
        for (id, commit) in self.commits()? {
            let tree_id = commit.tree_id();
            if seen.contains(&tree_id) {
                continue;
            }
            seen.push(tree_id);
            let changed = changed_paths(&self.commit_entries(&commit)?, current);
            if changed.is_empty() {
                return Ok(None);
            }
            if closest.as_ref().is_none_or(|(_, best)| changed.len() < best.len()) {
                closest = Some((Some(id), changed));
            }
        }
        Ok(Some(closest.unwrap_or_else(|| (None, current.keys().cloned().collect()))))
    }

    /// The entries of a commit's tree within the workspace.
    fn commit_entries(&self, commit: &Commit<'_>) -> Result<Entries> {
        let mut tree = commit.tree()?;
        if !self.prefix.is_empty() {
            match tree.get_path(Path::new(self.prefix.trim_end_matches('/'))) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => tree = self.repo.find_tree(entry.id())?,
                Ok(_) => return Ok(Entries::new()),
                Err(e) if e.code() == ErrorCode::NotFound => return Ok(Entries::new()),
                Err(e) => return Err(e.into()),
            }
        }
        let mut entries = Entries::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(name) = entry.name() else { return git2::TreeWalkResult::Skip };
            if SKIPPED_NAMES.contains(&name) {
                return git2::TreeWalkResult::Skip;
            }
            if let Some(kind) = Kind::from_mode(entry.filemode()) {
                entries.insert(format!("{dir}{name}"), (kind, entry.id()));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(entries)
    }

    /// The working tree's entries; with `store`, their contents are also written to the object database.
    fn scan(&self, store: bool) -> Result<Entries> {
        self.scan_dir(store, "", &mut |_| true)
    }

    /// The entries of the working tree at and below the directory `start` (relative to the workspace; empty:
    /// all of it), as [`scan`](Self::scan) sees them. `watch` is called with each directory walked into, before
    /// it is listed (so a change after the listing is seen by a watcher on it).
    fn scan_dir(&self, store: bool, start: &str, watch: &mut dyn FnMut(&str) -> bool) -> Result<Entries> {
        let mut tracked = self.repo.index().context("cannot read the repository's index")?;
        tracked.read(false).context("cannot read the repository's index")?;
        // Entries written in the same second as the index file may be "racily clean" (changed after git
        // recorded them without their stat data changing), so only older ones are trusted.
        let index_time = std::fs::metadata(self.repo.path().join("index")).ok().and_then(|m| platform::mtime(&m));
        let odb = self.repo.odb()?;
        // Everything is listed and read beneath the workspace's descriptor, following no link (ADR 0035).
        let beneath =
            Beneath::open(&self.root).with_context(|| format!("cannot open the workspace {}", self.root.display()))?;
        let mut entries = Entries::new();
        if start.is_empty() {
            self.full_scans.set(self.full_scans.get() + 1);
        }
        if !start.is_empty() && self.is_ignored_dir(start, &tracked)? {
            return Ok(entries);
        }
        let mut stack = vec![start.to_string()];
        while let Some(dir) = stack.pop() {
            let abs = self.root.join(&dir);
            watch(&dir);
            let listing =
                beneath.read_dir(Path::new(&dir)).with_context(|| format!("cannot list {}", abs.display()))?;
            for entry in listing {
                let path = abs.join(&entry.name);
                let Some(name) = entry.name.to_str() else {
                    bail!("cannot checkpoint {}: the name is not UTF-8; rename it", path.display());
                };
                if SKIPPED_NAMES.contains(&name) {
                    continue;
                }
                let rel = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
                let kind = entry.kind;
                if kind == FileKind::Dir {
                    if !self.is_ignored_dir(&rel, &tracked)? {
                        stack.push(rel);
                    }
                    continue;
                }
                // A tracked file is never ignored; asking the index first spares the ignore rules for most files.
                let index_path = format!("{}{rel}", self.prefix);
                let indexed = tracked.get_path(Path::new(&index_path), 0);
                if indexed.is_none() && self.is_path_ignored(&index_path, &rel)? {
                    continue;
                }
                // A tracked file whose stat data matches its index entry has the entry's content (the check
                // `git status` makes), so it is not read; its blob is in the object database.
                let cached = |meta: &std::fs::Metadata| {
                    indexed
                        .as_ref()
                        .filter(|entry| index_time.is_some_and(|t| platform::stat_matches(meta, entry, t)))
                        .map(|entry| entry.id)
                };
                if let Some(value) = self.capture(&beneath, &odb, &rel, kind, &cached, store)? {
                    entries.insert(rel, value);
                }
            }
        }
        Ok(entries)
    }

    /// The entry of the file or link `rel` (of `kind`, as listed), read beneath the workspace; none for a
    /// special file or one that became one. `cached` gives the blob id when the stat data vouch for it.
    fn capture(
        &self,
        beneath: &Beneath,
        odb: &git2::Odb<'_>,
        rel: &str,
        kind: FileKind,
        cached: &dyn Fn(&std::fs::Metadata) -> Option<Oid>,
        store: bool,
    ) -> Result<Option<(Kind, Oid)>> {
        let path = self.root.join(rel);
        if kind.is_special() {
            // A FIFO, socket or device: never opened (reading a FIFO would block the checkpoint).
            tracing::warn!("skipped special file {rel} ({})", kind.describe());
            return Ok(None);
        }
        if kind == FileKind::Symlink {
            let target = beneath
                .read_link(Path::new(rel))
                .with_context(|| format!("cannot read the link {}", path.display()))?
                .into_encoded_bytes();
            let oid = if store { self.repo.blob(&target)? } else { Oid::hash_object(ObjectType::Blob, &target)? };
            return Ok(Some((Kind::Link, oid)));
        }
        let (mut file, meta) = match beneath.open_file(Path::new(rel)) {
            Ok(Opened::File(file, meta)) => (file, meta),
            Ok(Opened::Other(kind)) => {
                tracing::warn!("skipped {rel}: it became {} while being checkpointed", kind.describe());
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let kind = if platform::is_executable(&meta) { Kind::Exec } else { Kind::File };
        let mut oid = match cached(&meta) {
            Some(oid) => oid,
            None => blob_id(&mut file, meta.len()).with_context(|| format!("cannot read {}", path.display()))?,
        };
        if store && !odb.exists(oid) {
            oid = store_file(odb, &mut file, meta.len(), &path)?;
        }
        Ok(Some((kind, oid)))
    }

    /// Whether git ignores the directory `rel` (relative to the workspace); an ignored directory is still walked
    /// when it holds tracked files.
    fn is_ignored_dir(&self, rel: &str, tracked: &Index) -> Result<bool> {
        let path = format!("{}{rel}/", self.prefix);
        // The index is sorted by path: any tracked file below `path` is found by a binary search.
        Ok(self.is_path_ignored(&path, rel)? && tracked.find_prefix(path.as_str()).is_err())
    }

    /// Whether git's ignore rules match `path` (relative to the repository; `rel` names it in errors).
    fn is_path_ignored(&self, path: &str, rel: &str) -> Result<bool> {
        self.repo.is_path_ignored(path).with_context(|| format!("cannot check whether {rel} is ignored"))
    }

    /// Write one entry of a checkpoint, replacing whatever is at its path.
    fn write_entry(&self, rel: &str, kind: Kind, oid: Oid) -> Result<()> {
        self.write_entry_under(&self.root, rel, kind, oid)
    }

    /// Write one entry of a checkpoint under `root` (the workspace, or an export directory).
    fn write_entry_under(&self, root: &Path, rel: &str, kind: Kind, oid: Oid) -> Result<()> {
        let mut dir = root.to_path_buf();
        let mut parts = rel.split('/').collect::<Vec<_>>();
        let name = parts.pop().unwrap_or_default();
        for part in parts {
            if part.is_empty() || part == "." || part == ".." {
                bail!("the checkpoint holds an invalid path {rel:?}");
            }
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => bail!(
                    "cannot restore {rel}: {} is in the way (git ignores it); move it away and restore again",
                    dir.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
            }
        }
        if name.is_empty() || name == "." || name == ".." {
            bail!("the checkpoint holds an invalid path {rel:?}");
        }
        let file = dir.join(name);
        match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(&file).with_context(|| {
                format!(
                    "cannot restore {rel}: the directory {} is in the way; move it away and restore again",
                    file.display()
                )
            })?,
            Ok(_) => std::fs::remove_file(&file).with_context(|| format!("cannot replace {}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
        let blob = self.repo.find_blob(oid).with_context(|| format!("the checkpoint's content of {rel} is missing"))?;
        if kind == Kind::Link {
            platform::symlink(blob.content(), &file)
        } else {
            std::fs::write(&file, blob.content()).with_context(|| format!("cannot write {}", file.display()))?;
            if kind == Kind::Exec { platform::set_executable(&file, true) } else { Ok(()) }
        }
    }

    /// Remove the directories above `rel` that are now empty, up to the workspace.
    fn remove_empty_parents(&self, rel: &str) {
        let mut dir = Path::new(rel).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if std::fs::remove_dir(self.root.join(d)).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// Paths whose entry differs between two trees, sorted.
fn changed_paths(a: &Entries, b: &Entries) -> Vec<String> {
    let mut paths = a.iter().filter(|(p, v)| b.get(*p) != Some(*v)).map(|(p, _)| p.clone()).collect::<Vec<_>>();
    paths.extend(b.keys().filter(|p| !a.contains_key(*p)).cloned());
    paths.sort();
    paths
}

/// The git file mode of an entry's kind.
fn file_mode(kind: Kind) -> git2::FileMode {
    match kind {
        Kind::File => git2::FileMode::Blob,
        Kind::Exec => git2::FileMode::BlobExecutable,
        Kind::Link => git2::FileMode::Link,
    }
}

fn index_entry(path: String, kind: Kind, id: Oid) -> IndexEntry {
    let zero = IndexTime::new(0, 0);
    IndexEntry {
        ctime: zero,
        mtime: zero,
        dev: 0,
        ino: 0,
        mode: kind.mode(),
        uid: 0,
        gid: 0,
        file_size: 0,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.into_bytes(),
    }
}

/// The git blob id of an open file of `size` bytes (SHA-1 of `blob <size>\0` and the bytes), read from its
/// start; an error when the file changed size while being read.
fn blob_id(file: &mut std::fs::File, size: u64) -> Result<Oid> {
    use sha1::Digest;
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {size}\0").as_bytes());
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buf[..n]);
    }
    if read != size {
        bail!("it changed while being read; take the checkpoint again");
    }
    Ok(Oid::from_bytes(&hasher.finalize())?)
}

/// Stream an open file's raw bytes (`size` of them) into the object database as a blob.
fn store_file(odb: &git2::Odb<'_>, file: &mut std::fs::File, size: u64, path: &Path) -> Result<Oid> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut writer = odb.writer(usize::try_from(size)?, ObjectType::Blob)?;
    std::io::copy(file, &mut writer).with_context(|| format!("cannot store {}", path.display()))?;
    writer.flush()?;
    writer.finalize().with_context(|| {
        format!("cannot store {}; it changed while being read, take the checkpoint again", path.display())
    })
}

/// What git2 does not wrap of libgit2's mempack backend.
mod mempack {
    use git2::Binding;

    unsafe extern "C" {
        /// libgit2 (since 1.8): insert every object of the mempack `backend`, and only those, into `pb`.
        fn git_mempack_write_thin_pack(backend: *mut std::ffi::c_void, pb: *mut std::ffi::c_void) -> i32;
    }

    /// Insert the objects held in `mempack` (and no others) into `builder`.
    pub fn write_new_objects(mempack: &git2::Mempack<'_>, builder: &mut git2::PackBuilder<'_>) -> anyhow::Result<()> {
        // SAFETY: both pointers come from live git2 objects (the mempack is owned by an odb that outlives
        // this call, the builder is borrowed mutably), and libgit2 only reads the mempack's object list and
        // inserts those objects into the builder.
        let rc = unsafe { git_mempack_write_thin_pack(mempack.raw().cast(), builder.raw().cast()) };
        if rc < 0 {
            return Err(git2::Error::last_error(rc).into());
        }
        Ok(())
    }
}

#[cfg(unix)]
mod platform {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use anyhow::{Context, Result};

    pub fn symlink(target: &[u8], path: &Path) -> Result<()> {
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path)
            .with_context(|| format!("cannot create the link {}", path.display()))
    }

    pub fn is_executable(meta: &std::fs::Metadata) -> bool {
        meta.permissions().mode() & 0o100 != 0
    }

    /// Size, modification time (ns) and inode of `path`; none when it cannot be read.
    pub fn stamp(path: &Path) -> Option<(u64, i128, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()), meta.ino()))
    }

    /// The modification time, in seconds and nanoseconds.
    pub fn mtime(meta: &std::fs::Metadata) -> Option<(i64, i64)> {
        use std::os::unix::fs::MetadataExt;
        Some((meta.mtime(), meta.mtime_nsec()))
    }

    /// Whether a file's stat data matches its index entry (size, modification time, inode, executable bit),
    /// and the entry is older than the index file (`index_time`), so it cannot be racily clean.
    pub fn stat_matches(meta: &std::fs::Metadata, entry: &git2::IndexEntry, index_time: (i64, i64)) -> bool {
        use std::os::unix::fs::MetadataExt;
        let entry_time = (i64::from(entry.mtime.seconds()), i64::from(entry.mtime.nanoseconds()));
        let mode = if is_executable(meta) { 0o100755 } else { 0o100644 };
        entry.mode == mode
            && u64::from(entry.file_size) == meta.len() & 0xFFFF_FFFF
            && entry_time == (meta.mtime(), meta.mtime_nsec())
            && u64::from(entry.ino) == meta.ino() & 0xFFFF_FFFF
            && entry_time < index_time
            && entry.id != git2::Oid::ZERO_SHA1
    }

    /// Set or clear the executable bits (set only where the file is readable, as `chmod +x` under a umask).
    pub fn set_executable(path: &Path, executable: bool) -> Result<()> {
        let mode =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
        let mode = if executable { mode | ((mode & 0o444) >> 2) } else { mode & !0o111 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot change the mode of {}", path.display()))
    }
}

#[cfg(not(unix))]
mod platform {
    use std::path::Path;

    use anyhow::{Context, Result, bail};

    pub fn symlink(_target: &[u8], path: &Path) -> Result<()> {
        bail!("cannot restore the symbolic link {}: not supported on this platform", path.display())
    }

    pub fn is_executable(_meta: &std::fs::Metadata) -> bool {
        false
    }

    pub fn mtime(_meta: &std::fs::Metadata) -> Option<(i64, i64)> {
        None
    }

    /// Never the same twice: without the platform's stat data every checkpoint is a full scan.
    pub fn stamp(_path: &Path) -> Option<(u64, i128, u64)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Some((NEXT.fetch_add(1, Ordering::Relaxed), 0, 0))
    }

    pub fn stat_matches(_meta: &std::fs::Metadata, _entry: &git2::IndexEntry, _index_time: (i64, i64)) -> bool {
        false
    }

    pub fn set_executable(_path: &Path, _executable: bool) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Files of a tree (skipping `.git`): bytes or link target, and whether executable.
    fn files(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                let kind = entry.file_type().unwrap();
                if entry.file_name() == ".git" {
                    continue;
                }
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_symlink() {
                    out.insert(
                        rel,
                        (format!("-> {}", std::fs::read_link(&path).unwrap().display()).into_bytes(), false),
                    );
                } else {
                    let exec = std::fs::metadata(&path).unwrap().permissions().mode() & 0o100 != 0;
                    out.insert(rel, (std::fs::read(&path).unwrap(), exec));
                }
            }
        }
        out
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn chmod(root: &Path, rel: &str, mode: u32) {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Stage everything in the repository's own index and commit it on the current branch.
    fn commit_all(repo: &Repository, message: &str) -> Oid {
        let mut index = repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("Test", "test@example.invalid").unwrap();
        let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
        let parents = parent.iter().collect::<Vec<_>>();
        repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &parents).unwrap()
    }

    /// What a checkpoint must never change: the index file's bytes, HEAD's, and every branch's commit.
    #[derive(Debug, PartialEq)]
    struct UserState(Option<Vec<u8>>, Vec<u8>, Vec<(String, Oid)>);

    fn user_state(repo: &Repository) -> UserState {
        let index = std::fs::read(repo.path().join("index")).ok();
        let head = std::fs::read(repo.path().join("HEAD")).unwrap();
        let branches = repo
            .branches(None)
            .unwrap()
            .map(|b| {
                let (b, _) = b.unwrap();
                (b.name().unwrap().unwrap().to_string(), b.get().target().unwrap())
            })
            .collect();
        UserState(index, head, branches)
    }

    fn paths(entries: &Entries) -> Vec<&str> {
        entries.keys().map(String::as_str).collect()
    }

    #[test]
    fn open_is_none_outside_a_repository_and_an_error_in_a_bare_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoints::open(dir.path()).unwrap().is_none());
        let bare = dir.path().join("bare.git");
        Repository::init_bare(&bare).unwrap();
        let err = Checkpoints::open(&bare).unwrap_err().to_string();
        assert!(err.contains("bare git repository"), "{err}");
    }

    #[test]
    fn workspaces_taking_checkpoints_at_once_get_distinct_numbers() {
        // The worktrees of `obra run --parallel` share the repository's refs; a number being taken by one
        // (its ref's lock file present) must not fail the other.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Repository::init(&root).unwrap();
        write(&root, "a.txt", "a\n");
        let threads = 4;
        let each = 25;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (root, barrier) = (root.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let checkpoints = Checkpoints::open(&root).unwrap().unwrap();
                    barrier.wait();
                    (0..each).map(|i| checkpoints.create(&format!("thread {t} #{i}")).unwrap().id).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<u64> =
            handles.into_iter().flat_map(|h| h.join().unwrap()).map(|id| id.parse().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=(threads * each) as u64).collect::<Vec<_>>());
    }

    #[test]
    fn creates_a_checkpoint_in_a_repository_without_commits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "README.md", "hello\n");
        write(root, "src/deep/lib.rs", "fn f() {}\n");
        let before = user_state(&repo);
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let info = checkpoints.create("first").unwrap();
        assert_eq!(info.id, "1");
        assert_eq!(info.git_ref, "refs/obra/checkpoints/1");
        assert_eq!(info.files, 2);
        assert_eq!(info.label, "first");
        let commit = repo.find_commit(Oid::from_str(&info.commit).unwrap()).unwrap();
        assert_eq!(commit.parent_count(), 0);
        assert_eq!(commit.message().unwrap(), "first");
        assert_eq!(repo.find_reference(&info.git_ref).unwrap().target().unwrap(), commit.id());
        assert!(repo.head().is_err(), "HEAD stays unborn");
        assert_eq!(user_state(&repo), before);
        assert_eq!(checkpoints.list().unwrap(), vec![info]);
    }

    #[test]
    fn captures_untracked_files_but_not_ignored_ones_or_obra() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, ".gitignore", "*.log\ntarget/\n");
        write(root, "tracked.log", "tracked although ignored\n");
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("tracked.log")).unwrap();
        index.write().unwrap();
        commit_all(&repo, "base");
        write(root, ".git/info/exclude", "secret.txt\n");
        write(root, "secret.txt", "excluded\n");
        write(root, "debug.log", "ignored\n");
        write(root, "target/out.bin", "ignored dir\n");
        write(root, "new/untracked.rs", "untracked\n");
        write(root, ".obra/obra.db", "state\n");
        write(root, "sub/.obra/x", "nested state\n");
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let info = checkpoints.create("cp").unwrap();
        let (_, commit) = checkpoints.resolve(&info.id).unwrap();
        let entries = checkpoints.commit_entries(&commit).unwrap();
        assert_eq!(paths(&entries), vec![".gitignore", "new/untracked.rs", "tracked.log"]);
        assert_eq!(info.files, 3);
        assert_eq!(commit.parent_id(0).unwrap(), repo.head().unwrap().target().unwrap());
    }

    #[test]
    fn round_trip_restores_bytes_exec_bits_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, ".gitignore", "*.log\n");
        write(root, "run.sh", "#!/bin/sh\necho hi\n");
        chmod(root, "run.sh", 0o755);
        write(root, "src/a.rs", "a\n");
        write(root, "src/b.rs", "b\n");
        write(root, "bin.dat", "\0\u{1}\r\n binary");
        std::os::unix::fs::symlink("src/a.rs", root.join("link")).unwrap();
        commit_all(&repo, "base");
        write(root, "untracked.txt", "untracked\n");
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        let saved = files(root);

        write(root, "src/a.rs", "changed\n");
        std::fs::remove_file(root.join("src/b.rs")).unwrap();
        std::fs::remove_file(root.join("untracked.txt")).unwrap();
        write(root, "added/deep/new.rs", "new\n");
        chmod(root, "run.sh", 0o644);
        std::fs::remove_file(root.join("link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", root.join("link")).unwrap();
        write(root, "debug.log", "ignored\n");
        write(root, ".obra/state", "state\n");
        assert_eq!(
            checkpoints.changes_since(&first.commit).unwrap(),
            vec!["added/deep/new.rs", "link", "run.sh", "src/a.rs", "src/b.rs", "untracked.txt"]
        );
        let second = checkpoints.create("second").unwrap();
        assert!(checkpoints.changes_since(&second.id).unwrap().is_empty());

        let before = user_state(&repo);
        let report = checkpoints.restore(&first.id, false).unwrap();
        assert_eq!(user_state(&repo), before);
        assert_eq!((report.written, report.removed), (5, 1));
        let mut expected = saved;
        expected.insert("debug.log".into(), (b"ignored\n".to_vec(), false));
        expected.insert(".obra/state".into(), (b"state\n".to_vec(), false));
        assert_eq!(files(root), expected);
        assert!(!root.join("added").exists(), "directories left empty are removed");
        assert!(checkpoints.changes_since(&first.id).unwrap().is_empty());

        let safety = report.safety_checkpoint.unwrap();
        assert_eq!(safety.label, "before rollback to 1");
        assert_eq!(safety.commit, checkpoints.resolve(&safety.id).unwrap().1.id().to_string());
        let ids = checkpoints.list().unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids, vec!["3", "2", "1"]);
        // Restoring what the tree already holds does nothing.
        let again = checkpoints.restore(&first.commit, false).unwrap();
        assert_eq!(again, RestoreReport { written: 0, removed: 0, safety_checkpoint: None });
    }

    #[test]
    fn restore_refuses_uncaptured_edits_without_force_and_the_safety_checkpoint_undoes_a_forced_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "one\n");
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        write(root, "a.txt", "two\n");
        write(root, "b.txt", "new\n");
        let edited = files(root);
        let before = user_state(&repo);

        let err = checkpoints.restore(&first.id, false).unwrap_err().to_string();
        assert!(err.contains("a.txt, b.txt"), "{err}");
        assert!(err.contains("use --force to discard them; a safety checkpoint is taken either way"), "{err}");
        assert_eq!(files(root), edited);
        assert_eq!(checkpoints.list().unwrap().len(), 1);
        assert_eq!(user_state(&repo), before);

        let report = checkpoints.restore(&first.id, true).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "one\n");
        assert!(!root.join("b.txt").exists());
        let safety = report.safety_checkpoint.unwrap();
        assert_eq!(checkpoints.list().unwrap()[0], safety);
        // The tree now matches checkpoint 1, which a checkpoint holds: undoing needs no force.
        checkpoints.restore(&safety.id, false).unwrap();
        assert_eq!(files(root), edited);
        assert_eq!(user_state(&repo), before);
    }

    #[test]
    fn restore_leaves_a_staged_index_and_the_branch_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "one\n");
        commit_all(&repo, "base");
        write(root, "a.txt", "staged\n");
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("a.txt")).unwrap();
        index.write().unwrap();
        let before = user_state(&repo);
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        assert_eq!(user_state(&repo), before);
        write(root, "a.txt", "later\n");
        checkpoints.create("second").unwrap();
        checkpoints.restore(&first.id, false).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "staged\n");
        assert_eq!(user_state(&repo), before);
        let statuses = repo.statuses(None).unwrap();
        assert_eq!(statuses.get(0).unwrap().status(), git2::Status::INDEX_MODIFIED);
    }

    #[test]
    fn a_subdirectory_workspace_is_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "outside.txt", "outside\n");
        write(root, "app/main.rs", "main\n");
        write(root, "app/lib/util.rs", "util\n");
        let head = commit_all(&repo, "base");
        write(root, "outside.txt", "edited outside\n");
        write(root, "app/main.rs", "edited main\n");
        let checkpoints = Checkpoints::open(&root.join("app")).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        assert_eq!(first.files, 2);
        let commit = repo.find_commit(Oid::from_str(&first.commit).unwrap()).unwrap();
        assert_eq!(commit.parent_id(0).unwrap(), head);
        let tree = commit.tree().unwrap();
        let blob_text = |path: &str| {
            let id = tree.get_path(Path::new(path)).unwrap().id();
            String::from_utf8(repo.find_blob(id).unwrap().content().to_vec()).unwrap()
        };
        assert_eq!(blob_text("outside.txt"), "outside\n", "outside the scope the tree is HEAD's");
        assert_eq!(blob_text("app/main.rs"), "edited main\n");

        write(root, "app/main.rs", "again\n");
        write(root, "app/new.rs", "new\n");
        write(root, "outside.txt", "edited twice\n");
        assert_eq!(checkpoints.changes_since(&first.id).unwrap(), vec!["main.rs", "new.rs"]);
        checkpoints.restore(&first.id, true).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("app/main.rs")).unwrap(), "edited main\n");
        assert!(!root.join("app/new.rs").exists());
        assert_eq!(std::fs::read_to_string(root.join("outside.txt")).unwrap(), "edited twice\n");
    }

    #[test]
    fn the_git_cli_sees_valid_objects_and_an_untouched_status() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "one\n");
        write(root, "dir/run.sh", "#!/bin/sh\n");
        chmod(root, "dir/run.sh", 0o755);
        commit_all(&repo, "base");
        write(root, "a.txt", "two\n");
        write(root, "b.txt", "new\n");
        let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(root).args(args).output();
        let Ok(status_before) = git(&["status", "--porcelain"]) else { return }; // no git CLI: nothing to check
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let info = checkpoints.create("cp").unwrap();
        let fsck = git(&["fsck", "--strict", "--no-dangling"]).unwrap();
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
        let diff = git(&["diff", "--name-status", "HEAD", &info.git_ref]).unwrap();
        assert_eq!(String::from_utf8_lossy(&diff.stdout), "M\ta.txt\nA\tb.txt\n");
        assert_eq!(git(&["status", "--porcelain"]).unwrap().stdout, status_before.stdout);
    }

    #[test]
    fn diff_compares_two_checkpoints_or_one_with_the_working_tree_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "keep.txt", "same\n");
        write(root, "edit.txt", "one\ntwo\n");
        write(root, "gone.txt", "bye\n");
        commit_all(&repo, "base");
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        write(root, "edit.txt", "one\n2\n");
        write(root, "new.bin", "\0\x01binary");
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        chmod(root, "keep.txt", 0o755);
        let before = user_state(&repo);

        let d = checkpoints.diff(&first.id, None).unwrap();
        let changes: Vec<(&str, &str)> = d.changes.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(
            changes,
            [("edit.txt", "modified"), ("gone.txt", "deleted"), ("keep.txt", "mode changed"), ("new.bin", "added")]
        );
        assert!(d.patch.contains("-two\n+2\n"), "{}", d.patch);
        assert!(d.patch.contains("-bye"), "{}", d.patch);
        assert!(d.patch.contains("Binary files"), "{}", d.patch);
        let second = checkpoints.create("second").unwrap();
        assert_eq!(checkpoints.diff(&first.id, Some(&second.id)).unwrap().changes, d.changes);
        assert!(checkpoints.diff(&second.id, None).unwrap().changes.is_empty());
        assert_eq!(user_state(&repo), before, "a diff changes nothing of the user's");
        assert!(checkpoints.diff("99", None).unwrap_err().to_string().contains("no checkpoint or commit"));
    }

    #[test]
    fn tracked_files_unchanged_since_the_index_are_not_reread_but_same_size_edits_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "aaa\n");
        write(root, "b.txt", "bbb\n");
        commit_all(&repo, "base");
        // Make the index file strictly newer than its entries, as it is after any pause.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut index = repo.index().unwrap();
        index.write().unwrap();
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let cached = checkpoints.scan(false).unwrap();
        let head = repo.head().unwrap().peel_to_tree().unwrap();
        assert_eq!(cached["a.txt"].1, head.get_path(Path::new("a.txt")).unwrap().id());
        // Same size, new content: the stat data changed, so the file is read again.
        write(root, "a.txt", "AAA\n");
        let info = checkpoints.create("edited").unwrap();
        let saved =
            checkpoints.commit_entries(&repo.find_commit(Oid::from_str(&info.commit).unwrap()).unwrap()).unwrap();
        assert_eq!(repo.find_blob(saved["a.txt"].1).unwrap().content(), b"AAA\n");
        assert_eq!(repo.find_blob(saved["b.txt"].1).unwrap().content(), b"bbb\n");
    }

    /// Loose object files under `.git/objects` (two-hex-digit directories), and pack files.
    fn object_files(root: &Path) -> (usize, usize) {
        let objects = root.join(".git/objects");
        let mut loose = 0;
        for dir in std::fs::read_dir(&objects).unwrap() {
            let dir = dir.unwrap();
            if dir.file_name().len() == 2 {
                loose += std::fs::read_dir(dir.path()).unwrap().count();
            }
        }
        let packs = std::fs::read_dir(objects.join("pack"))
            .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pack")).count())
            .unwrap_or(0);
        (loose, packs)
    }

    fn ref_ids(repo: &Repository) -> Vec<u64> {
        let mut ids: Vec<u64> = repo
            .references_glob(&format!("{REF_PREFIX}*"))
            .unwrap()
            .names()
            .map(|n| n.unwrap().strip_prefix(REF_PREFIX).unwrap().parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn objects_are_written_as_one_pack_per_checkpoint_not_loose() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        for i in 0..50 {
            write(root, &format!("dir{}/f{i}.txt", i % 5), &format!("file {i}\n"));
        }
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create("first").unwrap();
        // 50 blobs, 6 trees and a commit, all in one pack.
        assert_eq!(object_files(root), (0, 1));
        write(root, "dir1/f1.txt", "edited\n");
        let second = checkpoints.create("second").unwrap();
        assert_eq!(object_files(root), (0, 2));
        // Restoring reads the packed objects back (after a safety checkpoint, itself packed).
        checkpoints.restore(&first.id, true).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("dir1/f1.txt")).unwrap(), "file 1\n");
        assert_eq!(object_files(root), (0, 3));
        checkpoints.restore(&second.id, false).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("dir1/f1.txt")).unwrap(), "edited\n");
        // A diff against the working tree writes nothing to disk.
        write(root, "dir2/new.txt", "new\n");
        let before = object_files(root);
        assert_eq!(checkpoints.diff(&second.id, None).unwrap().changes.len(), 1);
        assert_eq!(object_files(root), before);
        let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(root).args(args).output();
        if let Ok(fsck) = git(&["fsck", "--strict", "--no-dangling"]) {
            assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
        }
        drop(repo);
    }

    #[test]
    fn the_counter_survives_reopening_and_pruning_and_takes_over_from_refs_made_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "a\n");
        // Checkpoints from before the counter: refs 1 to 5, with no counter ref.
        let legacy = Checkpoints::open(root).unwrap().unwrap();
        for i in 0..5 {
            legacy.create(&format!("old {i}")).unwrap();
        }
        repo.find_reference(COUNTER_REF).unwrap().delete().unwrap();
        drop(legacy);
        // The first checkpoint lists the refs once and makes the counter; later ones read only the counter.
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        assert_eq!(checkpoints.create("sixth").unwrap().id, "6");
        let counter = repo.find_reference(COUNTER_REF).unwrap();
        assert_eq!(counter.symbolic_target().unwrap(), Some("refs/obra/checkpoints/6"));
        // Even with every ref gone, the number goes on from the counter: no number is used twice.
        for id in ref_ids(&repo) {
            repo.find_reference(&format!("{REF_PREFIX}{id}")).unwrap().delete().unwrap();
        }
        let reopened = Checkpoints::open(root).unwrap().unwrap();
        assert_eq!(reopened.create("seventh").unwrap().id, "7");
        // A number taken behind the counter's back (another process between its ref and the counter) is skipped.
        let head = repo.find_reference("refs/obra/checkpoints/7").unwrap().target().unwrap();
        repo.reference("refs/obra/checkpoints/8", head, false, "test").unwrap();
        assert_eq!(reopened.create("ninth").unwrap().id, "9");
        assert_eq!(ref_ids(&repo), vec![7, 8, 9]);
    }

    #[test]
    fn retention_keeps_the_newest_refs_and_a_pruned_checkpoint_is_no_longer_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        let all = Checkpoints::open(root).unwrap().unwrap();
        let mut taken = Vec::new();
        for i in 0..7 {
            write(root, "a.txt", &format!("{i}\n"));
            taken.push(all.create(&format!("cp {i}")).unwrap());
        }
        assert_eq!(ref_ids(&repo), (1..=7).collect::<Vec<_>>(), "no retention: every ref stays");
        let kept = Checkpoints::open(root).unwrap().unwrap().with_retention(3);
        for i in 7..12 {
            write(root, "a.txt", &format!("{i}\n"));
            taken.push(kept.create(&format!("cp {i}")).unwrap());
            let newest = i as u64 + 1;
            let ids = ref_ids(&repo);
            assert!(ids.ends_with(&[newest - 2, newest - 1, newest]), "the newest three stay: {ids:?}");
            if newest == 9 {
                // 9 is a multiple of 3: that checkpoint swept the refs from before the retention.
                assert_eq!(ids, vec![7, 8, 9]);
            }
            if newest > 9 {
                assert_eq!(ids.len(), 3, "one ref pruned for each taken: {ids:?}");
            }
        }
        assert_eq!(ref_ids(&repo), vec![10, 11, 12]);
        assert!(!kept.is_kept(&taken[0].git_ref, &taken[0].commit));
        assert!(kept.is_kept(&taken[11].git_ref, &taken[11].commit));
        assert!(!kept.is_kept(&taken[11].git_ref, &taken[10].commit), "a ref must point at the recorded commit");
        // A lower retention takes effect at the next sweep; the list holds only what is kept.
        let one = Checkpoints::open(root).unwrap().unwrap().with_retention(1);
        write(root, "a.txt", "last\n");
        one.create("last").unwrap();
        assert_eq!(ref_ids(&repo), vec![13]);
        assert_eq!(one.list().unwrap().len(), 1);
    }

    fn tracker(root: &Path, watch: bool, ignore: &[&str]) -> ChangeTracker {
        let config = crate::config::WorkspaceConfig {
            watch,
            debounce_ms: 10,
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        };
        let (tracker, _) = ChangeTracker::start(root, &config).unwrap();
        assert_eq!(tracker.is_watching(), watch, "{:?}", tracker.fallback_reason);
        tracker
    }

    /// The files of the tree outside `.obra/` (where the tracker keeps its own files).
    fn user_files(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
        files(root).into_iter().filter(|(path, _)| !path.starts_with(".obra/")).collect()
    }

    /// The tree a full scan of the working tree gives now.
    fn full_tree(root: &Path) -> Oid {
        let fresh = Checkpoints::open(root).unwrap().unwrap();
        let entries = fresh.scan(true).unwrap();
        fresh.tree_of(&entries).unwrap()
    }

    fn tree_of_commit(repo: &Repository, info: &CheckpointInfo) -> Oid {
        repo.find_commit(Oid::from_str(&info.commit).unwrap()).unwrap().tree_id()
    }

    #[test]
    fn an_incremental_checkpoint_holds_exactly_what_a_full_scan_does_and_rolls_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        let repo = Repository::init(root).unwrap();
        write(root, ".gitignore", "*.log\nbuild/\n");
        write(root, "keep.log", "tracked although ignored\n");
        write(root, "src/a.rs", "a\n");
        write(root, "src/b.rs", "b\n");
        write(root, "src/deep/c.rs", "c\n");
        write(root, "old/x.txt", "x\n");
        write(root, "old/y/z.txt", "z\n");
        write(root, "run.sh", "#!/bin/sh\n");
        std::os::unix::fs::symlink("src/a.rs", root.join("link")).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("keep.log")).unwrap();
        index.write().unwrap();
        commit_all(&repo, "base");
        write(root, "untracked.txt", "u\n");
        // The tracker ignores data/ (workspace.ignore), which git does not: the checkpoint watches it itself.
        write(root, "data/table.csv", "1,2\n");
        let mut tracker = tracker(root, true, &["data/"]);
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        let first = checkpoints.create_tracked("first", &mut tracker).unwrap();
        assert_eq!(checkpoints.full_scans(), 1);
        assert_eq!(tree_of_commit(&repo, &first), full_tree(root));
        let at_first = user_files(root);

        write(root, "src/a.rs", "edited\n");
        std::fs::remove_file(root.join("src/b.rs")).unwrap();
        std::fs::remove_dir_all(root.join("old")).unwrap();
        write(root, "new/deeper/n.rs", "n\n");
        chmod(root, "run.sh", 0o755);
        std::fs::remove_file(root.join("link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", root.join("link")).unwrap();
        write(root, "debug.log", "ignored\n");
        write(root, "build/out.bin", "ignored dir\n");
        write(root, "keep.log", "tracked, ignored, edited\n");
        write(root, "data/table.csv", "3,4\n");
        std::fs::rename(root.join("src/deep"), root.join("src/moved")).unwrap();
        write(root, "src/moved/c.rs", "c after the move\n");
        write(root, ".obra/state", "state\n");
        let second = checkpoints.create_tracked("second", &mut tracker).unwrap();
        assert_eq!(checkpoints.full_scans(), 1, "the second checkpoint builds on the first");
        assert_eq!(tree_of_commit(&repo, &second), full_tree(root));
        assert_eq!(second.files, Checkpoints::open(root).unwrap().unwrap().scan(false).unwrap().len());
        let at_second = user_files(root);

        // Nothing changed: the same tree again, still incremental.
        let third = checkpoints.create_tracked("third", &mut tracker).unwrap();
        assert_eq!(checkpoints.full_scans(), 1);
        assert_eq!(tree_of_commit(&repo, &third), tree_of_commit(&repo, &second));

        checkpoints.restore(&first.id, false).unwrap();
        let mut expected = at_first.clone();
        for ignored in ["debug.log", "build/out.bin"] {
            expected.insert(ignored.into(), at_second[ignored].clone());
        }
        assert_eq!(user_files(root), expected);
        checkpoints.restore(&second.id, false).unwrap();
        assert_eq!(user_files(root), at_second);

        // After the restores (their writes are in the journal too) the next one is still exact.
        write(root, "src/a.rs", "after the restores\n");
        let fourth = checkpoints.create_tracked("fourth", &mut tracker).unwrap();
        assert_eq!(tree_of_commit(&repo, &fourth), full_tree(root));

        // A changed index (a file staged) can change what is ignored: a full scan.
        let scans = checkpoints.full_scans();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("debug.log")).unwrap();
        index.write().unwrap();
        let fifth = checkpoints.create_tracked("fifth", &mut tracker).unwrap();
        assert_eq!(checkpoints.full_scans(), scans + 1);
        assert_eq!(tree_of_commit(&repo, &fifth), full_tree(root));
        assert!(
            repo.find_commit(Oid::from_str(&fifth.commit).unwrap())
                .unwrap()
                .tree()
                .unwrap()
                .get_path(Path::new("debug.log"))
                .is_ok()
        );

        // A changed .gitignore: its directory is walked again.
        write(root, "src/.gitignore", "moved/\n");
        let sixth = checkpoints.create_tracked("sixth", &mut tracker).unwrap();
        assert_eq!(tree_of_commit(&repo, &sixth), full_tree(root));
    }

    #[test]
    fn without_a_watcher_every_tracked_checkpoint_is_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        let repo = Repository::init(root).unwrap();
        write(root, "a.txt", "a\n");
        let mut tracker = tracker(root, false, &[]);
        let checkpoints = Checkpoints::open(root).unwrap().unwrap();
        checkpoints.create_tracked("first", &mut tracker).unwrap();
        write(root, "a.txt", "b\n");
        write(root, "b.txt", "b\n");
        let second = checkpoints.create_tracked("second", &mut tracker).unwrap();
        assert_eq!(checkpoints.full_scans(), 2);
        assert_eq!(tree_of_commit(&repo, &second), full_tree(root));
        assert_eq!(second.files, 2);
    }

    #[test]
    fn unknown_checkpoints_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init(dir.path()).unwrap();
        let checkpoints = Checkpoints::open(dir.path()).unwrap().unwrap();
        let err = checkpoints.restore("7", false).unwrap_err().to_string();
        assert!(err.contains("no checkpoint or commit \"7\""), "{err}");
    }
}
