//! Change tracking during agent runs: a hash index of the tree plus a file watcher (ADR 0025).
//!
//! [`ChangeTracker::start`] loads the index saved by the previous run (`.obra/watch-index`), scans the tree (only
//! files whose size or modification time differ from the index are hashed again) and reports what changed while
//! no agent ran. It then watches every non-ignored directory. [`ChangeTracker::take`] waits for the debounce
//! window, rehashes only the paths that had events (and walks directories that appeared) and returns the changes
//! with their content hashes before and after. Without a watcher (`workspace.watch: false`, or too few inotify
//! watches) `take` rescans the whole tree against the index instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};

use super::beneath::{Beneath, Kind, Opened};
use crate::config::WorkspaceConfig;
use crate::contract::{ChangeKind, FileChange};

/// Directories never tracked: version control and Obra's own state.
const ALWAYS_IGNORED: &[&str] = &[".git", ".obra"];
/// Where the index is kept between runs, relative to the workspace root.
const INDEX_FILE: &str = ".obra/watch-index";
/// Obra's own ignore file, relative to the workspace root.
const OBRA_IGNORE_FILE: &str = ".obra/ignore";
/// The file written to flush the watcher's event queue, relative to the workspace root.
const FLUSH_FILE: &str = ".obra/watch-flush";
/// How long to wait for the flush file's own event before relying on the quiet time alone.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// The longest `take` waits for the tree to become quiet.
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// One changed file with its content hashes (lowercase hex SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedChange {
    /// The path, kind and size.
    pub change: FileChange,
    /// Content hash before the change; none for a created file.
    pub hash_before: Option<String>,
    /// Content hash after the change; none for a deleted file.
    pub hash_after: Option<String>,
}

/// Size, modification time and content hash of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    hash: [u8; 32],
}

/// Which paths are never tracked: `.git/`, `.obra/`, every `.gitignore` in the tree, `.obra/ignore` and
/// `workspace.ignore`.
#[derive(Debug)]
pub struct IgnoreRules {
    root: PathBuf,
    global: Gitignore,
    nested: BTreeMap<PathBuf, Gitignore>,
}

impl IgnoreRules {
    /// The rules of `root`: `.obra/ignore`, the configured patterns and every `.gitignore` outside ignored
    /// directories.
    pub fn load(root: &Path, patterns: &[String]) -> Result<Self> {
        let mut builder = GitignoreBuilder::new(root);
        let obra_ignore = root.join(OBRA_IGNORE_FILE);
        if obra_ignore.is_file()
            && let Some(error) = builder.add(&obra_ignore)
        {
            anyhow::bail!("cannot read {}: {error}; fix or remove the file", obra_ignore.display());
        }
        for pattern in patterns {
            builder
                .add_line(None, pattern)
                .with_context(|| format!("workspace.ignore: `{pattern}` is not a valid gitignore pattern"))?;
        }
        let global = builder.build().context("cannot build the workspace ignore rules")?;
        let mut rules = Self { root: root.to_path_buf(), global, nested: BTreeMap::new() };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            rules.add_gitignore(&dir);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) && !rules.is_ignored(&path, true) {
                    stack.push(path);
                }
            }
        }
        Ok(rules)
    }

    fn add_gitignore(&mut self, dir: &Path) {
        let file = dir.join(".gitignore");
        if file.is_file() {
            let (gitignore, _) = Gitignore::new(&file);
            self.nested.insert(dir.to_path_buf(), gitignore);
        }
    }

    /// Whether the absolute `path` (a directory when `is_dir`) is ignored, itself or through a parent directory.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else { return true };
        if rel.as_os_str().is_empty() {
            return false;
        }
        if rel.components().next().is_some_and(|c| ALWAYS_IGNORED.iter().any(|s| c.as_os_str() == *s)) {
            return true;
        }
        if self.global.matched_path_or_any_parents(rel, is_dir).is_ignore() {
            return true;
        }
        // Deeper .gitignore files are asked last and win, as in git.
        let mut ignored = false;
        for (dir, gitignore) in &self.nested {
            if path.starts_with(dir) && path != dir {
                let m = gitignore.matched_path_or_any_parents(path, is_dir);
                if m.is_ignore() {
                    ignored = true;
                } else if m.is_whitelist() {
                    ignored = false;
                }
            }
        }
        ignored
    }
}

/// The watcher's events, shared between its callback thread and [`ChangeTracker::take`], which waits on
/// `arrived` instead of polling, so it wakes as soon as the flush file's event is in.
#[derive(Debug, Default)]
struct Inbox {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

/// Events seen by the watcher since the last [`ChangeTracker::take`].
#[derive(Debug, Default)]
struct Pending {
    paths: BTreeSet<PathBuf>,
    last_event: Option<Instant>,
    flushed: bool,
    error: Option<String>,
    /// Every path with an event since the last [`ChangeTracker::journal`], ignored ones included.
    journal: BTreeSet<PathBuf>,
    /// Whether events may have been lost since the last journal (a watcher error, a queue overflow).
    journal_lost: bool,
    /// The sequence number of the newest journal flush file whose write was seen to end.
    journal_flushed: u64,
}

/// Tracks the changes made to a workspace tree (see the module documentation).
pub struct ChangeTracker {
    root: PathBuf,
    /// The root's directory descriptor: every listing, stat and read goes through it (ADR 0035).
    dir: Beneath,
    rules: IgnoreRules,
    index: BTreeMap<String, Entry>,
    debounce: Duration,
    /// Whether `index` differs from the saved one.
    dirty: bool,
    /// The configuration it was started with.
    config: WorkspaceConfig,
    /// Size and modification time of `.obra/ignore` when the rules were read (none: no such file).
    obra_ignore: Option<(u64, i128)>,
    /// Whether a `.gitignore` in the tree changed since the rules were read.
    gitignore_changed: bool,
    watcher: Option<(notify::RecommendedWatcher, Arc<Inbox>)>,
    /// Why the tree is rescanned instead of watched, if it is.
    pub fallback_reason: Option<String>,
    /// The sequence number of the last journal flush file written.
    journal_flushes: u64,
    /// What the next checkpoint of this tree may build on (ADR 0041); kept here because it is only valid
    /// while this tracker's watcher has run without a gap since it was taken.
    pub(crate) checkpoint_base: Option<super::checkpoint::Base>,
}

impl ChangeTracker {
    /// Scan `root` against the index saved by the previous run, save the new index and start watching (when
    /// `config.watch`). Returns the tracker and the changes made since the previous run's index was saved (none
    /// when there was no saved index).
    pub fn start(root: &Path, config: &WorkspaceConfig) -> Result<(Self, Vec<TrackedChange>)> {
        let obra_ignore = stamp(&root.join(OBRA_IGNORE_FILE));
        let rules = IgnoreRules::load(root, &config.ignore)?;
        let saved = load_index(&root.join(INDEX_FILE));
        let had_index = saved.is_some();
        let dir = Beneath::open(root).with_context(|| format!("cannot open the workspace {}", root.display()))?;
        let mut tracker = Self {
            root: root.to_path_buf(),
            dir,
            rules,
            index: saved.unwrap_or_default(),
            dirty: !had_index,
            config: config.clone(),
            obra_ignore,
            gitignore_changed: false,
            debounce: Duration::from_millis(config.debounce_ms),
            watcher: None,
            fallback_reason: None,
            journal_flushes: 0,
            checkpoint_base: None,
        };
        let offline = tracker.rescan()?;
        let offline = if had_index { offline } else { Vec::new() };
        if config.watch {
            match tracker.watch() {
                Ok(watcher) => tracker.watcher = Some(watcher),
                Err(reason) => tracker.fallback_reason = Some(reason),
            }
        } else {
            tracker.fallback_reason = Some("workspace.watch is false".into());
        }
        tracker.save_index();
        Ok((tracker, offline))
    }

    /// Whether this tracker can go on tracking `root` under `config`: the same tree and configuration, and
    /// ignore rules that did not change since it read them (`.obra/ignore`, and any `.gitignore` it saw
    /// change); otherwise a new one has to be started.
    pub fn serves(&self, root: &Path, config: &WorkspaceConfig) -> bool {
        self.root == root
            && self.config == *config
            && !self.gitignore_changed
            && stamp(&root.join(OBRA_IGNORE_FILE)) == self.obra_ignore
    }

    /// Whether a watcher runs (false: `take` rescans the tree).
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Number of files in the index.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the index has no files.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn watch(&self) -> std::result::Result<(notify::RecommendedWatcher, Arc<Inbox>), String> {
        let inbox = Arc::new(Inbox::default());
        let sink = inbox.clone();
        let flush_file = self.root.join(FLUSH_FILE);
        let obra_dir = self.root.join(".obra");
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let mut pending = sink.pending.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Ok(event) if event.need_rescan() => {
                    // The kernel's queue overflowed (or the platform lost track): events were dropped.
                    pending.error = Some("the file watcher lost events (its queue overflowed)".into());
                    pending.journal_lost = true;
                }
                Ok(event) => {
                    let ends_flush = ends_a_write(&event.kind);
                    // Opening, reading and closing a file (a checkpoint or a gate reading the tree) changes
                    // nothing; every write also brings a create, modify or remove event.
                    let is_access = matches!(event.kind, notify::EventKind::Access(_));
                    for path in event.paths {
                        if let Some(n) = journal_flush_number(&obra_dir, &path) {
                            if ends_flush {
                                pending.journal_flushed = pending.journal_flushed.max(n);
                            }
                            continue;
                        }
                        if !is_access && !path.starts_with(&obra_dir) {
                            if pending.journal.len() >= JOURNAL_LIMIT {
                                // Nobody drains it (checkpoints are off) or too much changed: the next
                                // checkpoint scans instead.
                                pending.journal.clear();
                                pending.journal_lost = true;
                            }
                            pending.journal.insert(path.clone());
                        }
                        if path == flush_file {
                            // Only the last event of the flush write counts: an earlier one would leave the
                            // write's later events to satisfy the next take's flush before its own arrived.
                            pending.flushed |= ends_flush;
                        } else if !is_access && !path.starts_with(&obra_dir) {
                            // Obra's own files (the index, the store) are neither changes nor agent activity.
                            pending.paths.insert(path);
                            pending.last_event = Some(Instant::now());
                        }
                    }
                }
                Err(e) => {
                    pending.error = Some(e.to_string());
                    pending.journal_lost = true;
                }
            }
            sink.arrived.notify_all();
        })
        .map_err(|e| format!("cannot start a file watcher ({e}); rescanning the tree after each run instead"))?;
        let _ = std::fs::create_dir_all(self.root.join(".obra"));
        let mut dirs = vec![self.root.clone(), self.root.join(".obra")];
        dirs.extend(self.directories());
        for dir in dirs {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                return Err(if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                    format!(
                        "too few inotify watches for {} directories (fs.inotify.max_user_watches); raise it, e.g. \
                         `sudo sysctl fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/), or ignore \
                         large directories in workspace.ignore; rescanning the tree after each run instead",
                        self.directories().len() + 2
                    )
                } else {
                    format!("cannot watch {} ({e}); rescanning the tree after each run instead", dir.display())
                });
            }
        }
        Ok((watcher, inbox))
    }

    /// The root the tracker watches, as it was given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Watch the directory `path` (under the root) too, whatever the tracker's own ignore rules say: for a
    /// checkpoint, which must see every change in what it captures. False when it cannot be watched.
    pub fn watch_dir(&mut self, path: &Path) -> bool {
        match &mut self.watcher {
            Some((watcher, _)) => watcher.watch(path, RecursiveMode::NonRecursive).is_ok(),
            None => false,
        }
    }

    /// Every path (ignored ones included, `.obra/` left out) that had an event since the previous call, once
    /// the event queue is flushed: every change made before this call is then in. `None` when that cannot be
    /// known complete: no watcher, a watcher error or overflow since the previous call, or a flush whose event
    /// did not come within two seconds. Independent of [`take`](Self::take), which still sees every event.
    pub fn journal(&mut self) -> Option<BTreeSet<PathBuf>> {
        let (_, inbox) = self.watcher.as_ref()?;
        let inbox = inbox.clone();
        self.journal_flushes += 1;
        let number = self.journal_flushes;
        let obra_dir = self.root.join(".obra");
        let file = obra_dir.join(format!("{JOURNAL_FLUSH_PREFIX}{number}"));
        let written = std::fs::create_dir_all(&obra_dir).and_then(|_| std::fs::write(&file, b"flush"));
        let started = Instant::now();
        let mut p = inbox.pending.lock().unwrap_or_else(|e| e.into_inner());
        let flushed = written.is_ok()
            && loop {
                if p.journal_flushed >= number {
                    break true;
                }
                let now = Instant::now();
                if now >= started + FLUSH_WAIT {
                    break false;
                }
                p = inbox.arrived.wait_timeout(p, started + FLUSH_WAIT - now).unwrap_or_else(|e| e.into_inner()).0;
            };
        let journal = std::mem::take(&mut p.journal);
        let lost = std::mem::take(&mut p.journal_lost);
        drop(p);
        // Its event is in (or given up on): the file has done its work.
        let _ = std::fs::remove_file(&file);
        (flushed && !lost).then_some(journal)
    }

    /// Every non-ignored directory below the root, from the index's paths and the tree.
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = self.dir.read_dir(&under(&self.root, &dir)) else { continue };
            for entry in entries {
                let path = dir.join(&entry.name);
                if entry.kind == Kind::Dir && !self.rules.is_ignored(&path, true) {
                    dirs.push(path.clone());
                    stack.push(path);
                }
            }
        }
        dirs
    }

    /// The changes since the previous `take` (or `start`), sorted by path; the index is updated (and saved by
    /// [`save_index`](Self::save_index), or when the tracker is dropped).
    /// With a watcher: waits until no event came for the debounce window (after flushing the event queue with a
    /// write to `.obra/watch-flush`), then rehashes the paths that had events. Without: rescans the tree.
    pub fn take(&mut self) -> Result<Vec<TrackedChange>> {
        let quiet = self.debounce;
        self.take_after(quiet)
    }

    /// Like [`take`](Self::take), without waiting for the tree to become quiet: only the flush. For the start
    /// of an agent run, where a write still going on belongs to the run either way (as with a start scan).
    pub fn take_flushed(&mut self) -> Result<Vec<TrackedChange>> {
        self.take_after(Duration::ZERO)
    }

    /// [`take`](Self::take) with `quiet` as the debounce window.
    fn take_after(&mut self, quiet: Duration) -> Result<Vec<TrackedChange>> {
        let Some((watcher, inbox)) = &mut self.watcher else {
            return self.rescan();
        };
        let flush_file = self.root.join(FLUSH_FILE);
        let started = Instant::now();
        let _ = std::fs::write(&flush_file, format!("{started:?}"));
        let (paths, error) = {
            let mut p = inbox.pending.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                // Done once the flush file's event is in (every earlier event is then in too) and no event came
                // for the debounce window; otherwise sleep until the next of those deadlines, or an event.
                let now = Instant::now();
                let quiet_at = p.last_event.map(|t| t + quiet).filter(|&at| at > now);
                let flush_by = (!p.flushed).then_some(started + FLUSH_WAIT).filter(|&by| by > now);
                let give_up = started + MAX_SETTLE;
                if (quiet_at.is_none() && flush_by.is_none()) || now >= give_up {
                    break;
                }
                let wake = [quiet_at, flush_by].into_iter().flatten().fold(give_up, Instant::min);
                p = inbox.arrived.wait_timeout(p, wake - now).unwrap_or_else(|e| e.into_inner()).0;
            }
            p.flushed = false;
            p.last_event = None;
            (std::mem::take(&mut p.paths), p.error.take())
        };
        if let Some(error) = error {
            // Events may have been lost (e.g. the kernel's queue overflowed): only a full rescan is sure.
            tracing::warn!("file watcher error ({error}); rescanning the tree");
            return self.rescan();
        }
        let mut candidates = BTreeSet::new();
        for path in paths {
            // What is there now, seen beneath the root without following links.
            let is_dir = self.dir.metadata(&under(&self.root, &path)).is_ok_and(|m| m.is_dir());
            if self.rules.is_ignored(&path, is_dir) {
                continue;
            }
            if is_dir {
                // A directory that appeared or changed: watch it and look at everything in it.
                let _ = watcher.watch(&path, RecursiveMode::NonRecursive);
                let mut stack = vec![path];
                while let Some(dir) = stack.pop() {
                    let Ok(entries) = self.dir.read_dir(&under(&self.root, &dir)) else { continue };
                    for entry in entries {
                        let p = dir.join(&entry.name);
                        let is_dir = entry.kind == Kind::Dir;
                        if self.rules.is_ignored(&p, is_dir) {
                            continue;
                        }
                        if is_dir {
                            let _ = watcher.watch(&p, RecursiveMode::NonRecursive);
                            stack.push(p);
                        } else {
                            candidates.insert(p);
                        }
                    }
                }
                continue;
            }
            if self.dir.metadata(&under(&self.root, &path)).is_err() {
                // A deleted directory takes everything indexed below it.
                let prefix = format!("{}/", relative(&self.root, &path));
                candidates.extend(
                    self.index.keys().filter(|k| k.starts_with(&prefix)).map(|k| self.root.join(k)).collect::<Vec<_>>(),
                );
            }
            candidates.insert(path);
        }
        let mut changes = Vec::new();
        for path in candidates {
            let rel = self.relative(&path);
            let now = match self.dir.metadata(&under(&self.root, &path)) {
                Ok(meta) if !meta.is_dir() => entry_of(&self.dir, &rel, &meta, None)?,
                _ => None,
            };
            if let Some(change) = self.update(rel, now) {
                changes.push(change);
            }
        }
        changes.sort_by(|a, b| a.change.path.cmp(&b.change.path));
        Ok(changes)
    }

    /// Scan the whole tree against the index (rehashing files whose size or modification time changed), update
    /// the index and return the differences.
    fn rescan(&mut self) -> Result<Vec<TrackedChange>> {
        let mut seen = BTreeSet::new();
        let mut changes = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match self.dir.read_dir(&under(&self.root, &dir)) {
                Ok(entries) => entries,
                // Gone, or swapped for a symbolic link, since it was listed: what was in it is reported deleted.
                Err(e) if dir != self.root => {
                    tracing::debug!("cannot list {} ({e}); skipping it", dir.display());
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
            };
            for entry in entries {
                let path = dir.join(&entry.name);
                let is_dir = entry.kind == Kind::Dir;
                if self.rules.is_ignored(&path, is_dir) {
                    continue;
                }
                if is_dir {
                    stack.push(path);
                    continue;
                }
                let rel = self.relative(&path);
                if entry.kind.is_special() {
                    skipped_special(&rel, entry.kind);
                    continue;
                }
                let Ok(meta) = self.dir.metadata(Path::new(&rel)) else { continue };
                let Some(now) = entry_of(&self.dir, &rel, &meta, self.index.get(&rel))? else { continue };
                seen.insert(rel.clone());
                if let Some(change) = self.update(rel, Some(now)) {
                    changes.push(change);
                }
            }
        }
        let gone: Vec<String> = self.index.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for rel in gone {
            if self.rules.is_ignored(&self.root.join(&rel), false) && self.dir.metadata(Path::new(&rel)).is_ok() {
                // Not deleted: ignored since it was indexed (a `.gitignore` appeared, e.g. the one pytest writes
                // in `.pytest_cache/`, or the patterns changed). It leaves the index unreported.
                self.index.remove(&rel);
                self.dirty = true;
                continue;
            }
            if let Some(change) = self.update(rel, None) {
                changes.push(change);
            }
        }
        changes.sort_by(|a, b| a.change.path.cmp(&b.change.path));
        Ok(changes)
    }

    /// Record `now` (none: the file is gone) for `rel`; the change against the index, if any.
    fn update(&mut self, rel: String, now: Option<Entry>) -> Option<TrackedChange> {
        let before = self.index.get(&rel).copied();
        let (kind, size) = match (before, now) {
            (None, None) => return None,
            (None, Some(n)) => (ChangeKind::Created, Some(n.size)),
            (Some(_), None) => (ChangeKind::Deleted, None),
            (Some(b), Some(n)) if b.hash == n.hash => {
                if b != n {
                    self.index.insert(rel, n);
                    self.dirty = true;
                }
                return None;
            }
            (Some(_), Some(n)) => (ChangeKind::Modified, Some(n.size)),
        };
        match now {
            Some(n) => self.index.insert(rel.clone(), n),
            None => self.index.remove(&rel),
        };
        self.dirty = true;
        if rel == ".gitignore" || rel.ends_with("/.gitignore") {
            self.gitignore_changed = true;
        }
        Some(TrackedChange {
            change: FileChange { path: rel, kind, size },
            hash_before: before.map(|b| hex(&b.hash)),
            hash_after: now.map(|n| hex(&n.hash)),
        })
    }

    fn relative(&self, path: &Path) -> String {
        relative(&self.root, path)
    }

    /// Save the index for the next run, when it changed since it was last saved; a failure only costs a full
    /// rehash next time.
    pub fn save_index(&mut self) {
        if !self.dirty {
            return;
        }
        let mut text = String::with_capacity(self.index.len() * 100);
        for (path, e) in &self.index {
            text.push_str(&format!("{} {} {} {}\n", hex(&e.hash), e.size, e.mtime_ns, path));
        }
        let file = self.root.join(INDEX_FILE);
        let tmp = file.with_extension("tmp");
        let saved = std::fs::create_dir_all(self.root.join(".obra"))
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, &file));
        match saved {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!("cannot save the workspace index {}: {e}", file.display()),
        }
    }
}

impl Drop for ChangeTracker {
    /// Save the index, so the next start reports only what changed after this tracker's last take.
    fn drop(&mut self) {
        self.save_index();
    }
}

/// The most paths the journal holds; past that it is dropped and the next checkpoint scans the whole tree.
const JOURNAL_LIMIT: usize = 100_000;

/// The journal's flush files, `.obra/checkpoint-flush.<n>`.
const JOURNAL_FLUSH_PREFIX: &str = "checkpoint-flush.";

/// The sequence number of a journal flush file, when `path` is one.
fn journal_flush_number(obra_dir: &Path, path: &Path) -> Option<u64> {
    if path.parent()? != obra_dir {
        return None;
    }
    path.file_name()?.to_str()?.strip_prefix(JOURNAL_FLUSH_PREFIX)?.parse().ok()
}

/// Size and modification time of a file; none when it does not exist.
fn stamp(path: &Path) -> Option<(u64, i128)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), mtime_ns(&meta)))
}

/// A file's modification time in nanoseconds since the Unix epoch; -1 when the platform cannot say.
fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as i128).unwrap_or(-1)
}

/// Whether an event is the last one a file write produces: its close after writing where the platform reports
/// closes (inotify), any event elsewhere.
fn ends_a_write(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    !cfg!(target_os = "linux") || matches!(kind, EventKind::Access(AccessKind::Close(AccessMode::Write)))
}

/// Log that a FIFO, socket or device was left out: Obra never opens one (reading a FIFO would block).
fn skipped_special(rel: &str, kind: Kind) {
    tracing::warn!("skipped special file {rel} ({})", kind.describe());
}

/// The index entry of the file `rel` (a symbolic link: of its target text), read beneath the root `dir`; the
/// hash is reused from `known` when the size and modification time are unchanged. None when it is a special
/// file (skipped, with a note in the log) or is gone.
fn entry_of(dir: &Beneath, rel: &str, meta: &std::fs::Metadata, known: Option<&Entry>) -> Result<Option<Entry>> {
    let kind = Kind::of(meta.file_type());
    if kind.is_special() {
        skipped_special(rel, kind);
        return Ok(None);
    }
    let mtime_ns = mtime_ns(meta);
    if let Some(k) = known
        && k.size == meta.len()
        && k.mtime_ns == mtime_ns
        && mtime_ns >= 0
    {
        return Ok(Some(*k));
    }
    let (size, hash) = if kind == Kind::Symlink {
        let Ok(target) = dir.read_link(Path::new(rel)) else { return Ok(None) };
        let text = target.to_string_lossy();
        (text.len() as u64, Sha256::digest(text.as_bytes()).into())
    } else {
        match dir.open_file(Path::new(rel)) {
            Ok(Opened::File(file, _)) => hash_file(file).with_context(|| format!("cannot read {rel}"))?,
            Ok(Opened::Other(kind)) => {
                if kind.is_special() {
                    skipped_special(rel, kind);
                }
                return Ok(None);
            }
            // Gone or replaced by a symbolic link meanwhile: the next event or scan sees what is there.
            Err(_) => return Ok(None),
        }
    };
    Ok(Some(Entry { size, mtime_ns, hash }))
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Read;
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

/// `path` (under `root`) relative to it, for [`Beneath`] ("" for the root itself).
fn under(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// `path` relative to `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The saved index; none when there is none or it cannot be read (then nothing is reported as changed offline).
fn load_index(file: &Path) -> Option<BTreeMap<String, Entry>> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut index = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let hash = unhex(parts.next()?)?;
        let size = parts.next()?.parse().ok()?;
        let mtime_ns = parts.next()?.parse().ok()?;
        index.insert(parts.next()?.to_string(), Entry { size, mtime_ns, hash });
    }
    Some(index)
}

/// Where a [`ChangeTracker`] waits between agent runs, so its watcher and index outlive one iteration (and one
/// task, when an orchestrator hands the same slot to the engines of its workspace) instead of being started,
/// with a scan of the tree, for every agent run.
#[derive(Default)]
pub struct TrackerSlot(Mutex<Option<ChangeTracker>>);

impl TrackerSlot {
    /// Run `f` (blocking code) with the kept tracker of `root` when there is one that watches, else with
    /// `None`; the tracker is put back afterwards.
    pub fn lend<T>(&self, root: &Path, f: impl FnOnce(Option<&mut ChangeTracker>) -> T) -> T {
        match self.take_tracker() {
            Some(mut tracker) if tracker.root == root && tracker.is_watching() => {
                let out = f(Some(&mut tracker));
                self.put(tracker);
                out
            }
            other => {
                if let Some(tracker) = other {
                    self.put(tracker);
                }
                f(None)
            }
        }
    }

    fn take_tracker(&self) -> Option<ChangeTracker> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, tracker: ChangeTracker) {
        // A tracker put back by another engine meanwhile is replaced (and saves its index as it drops).
        let replaced = self.0.lock().unwrap_or_else(|e| e.into_inner()).replace(tracker);
        drop(replaced);
    }

    /// Take what changed in `root` since the kept tracker was put back (when the last agent run ended) into its
    /// index as Obra's own doing, and save the index: for the files the gates' commands write (a test runner's
    /// `.pytest_cache/`, Python's `__pycache__/`), called as soon as the gates have run. The next agent run
    /// then neither reports them as changed outside agent runs nor charges them to its agent (ADR 38). Returns
    /// those changes; none when no tracker of `root` is kept (nothing is taken: the saved index may be older
    /// than the last run, and what changed since is the next start's to report).
    pub async fn absorb(&self, root: &Path) -> Result<Vec<TrackedChange>> {
        let Some(mut tracker) = self.take_tracker() else { return Ok(Vec::new()) };
        if tracker.root != root {
            self.put(tracker);
            return Ok(Vec::new());
        }
        let (tracker, changes) = tokio::task::spawn_blocking(move || {
            // The gates' processes have ended: once the flush's event is in, so are all of theirs.
            let changes = tracker.take_flushed();
            tracker.save_index();
            (tracker, changes)
        })
        .await
        .context("tracker")?;
        self.put(tracker);
        changes
    }
}

/// A [`ChangeTracker`] for async code: its blocking work runs on tokio's blocking pool, and it remembers every
/// take so the changes of a whole agent run (all its attempts) can be had at the end.
pub struct Tracking {
    tracker: Option<ChangeTracker>,
    takes: Vec<Vec<TrackedChange>>,
}

impl Tracking {
    /// Start tracking `root`, with the tracker waiting in `slot` when it still [serves](ChangeTracker::serves)
    /// (its first take gives the changes made since it was put back) or a new one (whose start scan gives the
    /// changes since the previous run's saved index). Also returns progress lines to show: those changes, made
    /// outside agent runs, and why the tree is rescanned instead of watched, if it is and a new tracker started.
    pub async fn start(slot: &TrackerSlot, root: &Path, config: &WorkspaceConfig) -> Result<(Self, Vec<String>)> {
        let kept = slot.take_tracker();
        let (root, config) = (root.to_path_buf(), config.clone());
        let (tracker, offline, fresh) = tokio::task::spawn_blocking(move || -> Result<_> {
            match kept {
                Some(mut tracker) if tracker.serves(&root, &config) => {
                    let offline = tracker.take_flushed()?;
                    // As a new tracker does after its scan: a crash during this run then reports only the
                    // run's own changes at the next start.
                    tracker.save_index();
                    Ok((tracker, offline, false))
                }
                stale => {
                    drop(stale);
                    let (tracker, offline) = ChangeTracker::start(&root, &config)?;
                    Ok((tracker, offline, true))
                }
            }
        })
        .await
        .context("tracker")??;
        let mut notes = Vec::new();
        if fresh
            && let Some(reason) = &tracker.fallback_reason
            && config_watch_was_asked(reason)
        {
            notes.push(reason.clone());
        }
        if !offline.is_empty() {
            notes.push(format!(
                "{} file(s) changed outside agent runs since the last one: {}",
                offline.len(),
                listing(&offline)
            ));
        }
        Ok((Self { tracker: Some(tracker), takes: Vec::new() }, notes))
    }

    /// Save the index (when it changed) and put the tracker back in `slot` for the next agent run.
    pub async fn finish(mut self, slot: &TrackerSlot) {
        let Some(mut tracker) = self.tracker.take() else { return };
        if let Ok(tracker) = tokio::task::spawn_blocking(move || {
            tracker.save_index();
            tracker
        })
        .await
        {
            slot.put(tracker);
        }
    }

    /// The changes since the previous take (see [`ChangeTracker::take`]).
    pub async fn take(&mut self) -> Result<Vec<TrackedChange>> {
        self.take_settled(false).await
    }

    /// The changes of an agent run that just ended. When `writers_gone` (the kernel sandbox ended the agent's
    /// whole process tree with it), no write can still come: the watcher's queue is flushed and what it
    /// reported is rehashed, with no quiet window. Otherwise (programs Obra does not control may still write)
    /// as [`take`](Self::take), which waits for `workspace.debounce_ms` of quiet.
    pub async fn take_settled(&mut self, writers_gone: bool) -> Result<Vec<TrackedChange>> {
        let mut tracker = self.tracker.take().context("the change tracker was lost after a failure")?;
        let (tracker, changes) = tokio::task::spawn_blocking(move || {
            let changes = if writers_gone { tracker.take_flushed() } else { tracker.take() };
            (tracker, changes)
        })
        .await
        .context("tracker")?;
        self.tracker = Some(tracker);
        let changes = changes?;
        self.takes.push(changes.clone());
        Ok(changes)
    }

    /// All changes since the start, as one set (see [`combine`]).
    pub fn total(&self) -> Vec<FileChange> {
        combine(&self.takes).into_iter().map(|c| c.change).collect()
    }
}

/// Up to ten changes as `path (kind)`, comma-separated, and how many more there are.
pub fn listing(changes: &[TrackedChange]) -> String {
    let listed: Vec<String> =
        changes.iter().take(10).map(|c| format!("{} ({})", c.change.path, c.change.kind.as_str())).collect();
    let more = if changes.len() > 10 { format!(" and {} more", changes.len() - 10) } else { String::new() };
    format!("{}{more}", listed.join(", "))
}

/// Whether a fallback reason is worth showing: not when the configuration asked for no watching.
fn config_watch_was_asked(reason: &str) -> bool {
    !reason.starts_with("workspace.watch is false")
}

/// The changes of several consecutive takes as one: the first hash before and the last hash after of each path;
/// a path back to its first content drops out.
pub fn combine(takes: &[Vec<TrackedChange>]) -> Vec<TrackedChange> {
    let mut by_path: BTreeMap<String, TrackedChange> = BTreeMap::new();
    for change in takes.iter().flatten() {
        match by_path.get_mut(&change.change.path) {
            None => {
                by_path.insert(change.change.path.clone(), change.clone());
            }
            Some(first) => {
                first.hash_after = change.hash_after.clone();
                first.change.size = change.change.size;
            }
        }
    }
    by_path
        .into_values()
        .filter_map(|mut c| {
            c.change.kind = match (&c.hash_before, &c.hash_after) {
                (None, None) => return None,
                (Some(b), Some(a)) if b == a => return None,
                (None, Some(_)) => ChangeKind::Created,
                (Some(_), None) => ChangeKind::Deleted,
                (Some(_), Some(_)) => ChangeKind::Modified,
            };
            Some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(watch: bool, ignore: &[&str]) -> WorkspaceConfig {
        WorkspaceConfig { watch, debounce_ms: 50, ignore: ignore.iter().map(|s| s.to_string()).collect() }
    }

    fn kinds(changes: &[TrackedChange]) -> Vec<(&str, ChangeKind)> {
        changes.iter().map(|c| (c.change.path.as_str(), c.change.kind)).collect()
    }

    #[test]
    fn ignore_rules_cover_nested_gitignores_obra_ignore_config_and_always_ignored_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::create_dir_all(root.join(".obra")).unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(root.join("sub/.gitignore"), "build/\n!keep.log\n").unwrap();
        std::fs::write(root.join(".obra/ignore"), "secret.txt\n").unwrap();
        let rules = IgnoreRules::load(root, &["*.tmp".to_string()]).unwrap();
        let ignored = |p: &str, d: bool| rules.is_ignored(&root.join(p), d);
        assert!(ignored("a.log", false));
        assert!(ignored("sub/deep/b.log", false));
        assert!(!ignored("sub/keep.log", false));
        assert!(ignored("sub/build", true));
        assert!(ignored("sub/build/x.rs", false));
        assert!(!ignored("build/x.rs", false));
        assert!(ignored("secret.txt", false));
        assert!(ignored("sub/x.tmp", false));
        assert!(ignored(".git/HEAD", false));
        assert!(ignored(".obra/obra.db", false));
        assert!(!ignored("sub/deep/main.rs", false));
    }

    #[test]
    fn watcher_coalesces_create_and_modify_and_sees_deletes_renames_and_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(root.join("old.txt"), "old").unwrap();
        std::fs::write(root.join("gone.txt"), "bye").unwrap();
        std::fs::write(root.join("edit.txt"), "v1").unwrap();
        let (mut tracker, offline) = ChangeTracker::start(root, &config(true, &[])).unwrap();
        assert!(offline.is_empty(), "no saved index yet: {offline:?}");
        assert!(tracker.is_watching(), "{:?}", tracker.fallback_reason);
        std::fs::write(root.join("new.txt"), "a").unwrap();
        std::fs::write(root.join("new.txt"), "ab").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::rename(root.join("old.txt"), root.join("renamed.txt")).unwrap();
        std::fs::write(root.join("edit.txt"), "v2").unwrap();
        std::fs::write(root.join("noise.log"), "x").unwrap();
        std::fs::create_dir_all(root.join("pkg/inner")).unwrap();
        std::fs::write(root.join("pkg/inner/lib.rs"), "fn f() {}").unwrap();
        let changes = tracker.take().unwrap();
        assert_eq!(
            kinds(&changes),
            vec![
                ("edit.txt", ChangeKind::Modified),
                ("gone.txt", ChangeKind::Deleted),
                ("new.txt", ChangeKind::Created),
                ("old.txt", ChangeKind::Deleted),
                ("pkg/inner/lib.rs", ChangeKind::Created),
                ("renamed.txt", ChangeKind::Created),
            ]
        );
        let new = &changes[2];
        assert_eq!(new.change.size, Some(2));
        assert_eq!(new.hash_before, None);
        assert_eq!(new.hash_after.as_deref(), Some(hex(&Sha256::digest(b"ab")).as_str()));
        let edit = &changes[0];
        assert_eq!(edit.hash_before.as_deref(), Some(hex(&Sha256::digest(b"v1")).as_str()));
        // A second take sees only what happened since the first, also inside the new directory.
        std::fs::write(root.join("pkg/inner/lib.rs"), "fn g() {}").unwrap();
        assert_eq!(kinds(&tracker.take().unwrap()), vec![("pkg/inner/lib.rs", ChangeKind::Modified)]);
        assert!(tracker.take().unwrap().is_empty());
    }

    #[test]
    fn changes_made_between_runs_are_found_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), "1").unwrap();
        std::fs::write(root.join("b.txt"), "1").unwrap();
        drop(ChangeTracker::start(root, &config(false, &[])).unwrap());
        std::fs::write(root.join("a.txt"), "22").unwrap();
        std::fs::remove_file(root.join("b.txt")).unwrap();
        std::fs::write(root.join("c.txt"), "3").unwrap();
        let (_, offline) = ChangeTracker::start(root, &config(true, &[])).unwrap();
        assert_eq!(
            kinds(&offline),
            vec![("a.txt", ChangeKind::Modified), ("b.txt", ChangeKind::Deleted), ("c.txt", ChangeKind::Created)]
        );
    }

    #[test]
    fn without_watching_take_rescans_and_skips_configured_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (mut tracker, _) = ChangeTracker::start(root, &config(false, &["out/"])).unwrap();
        assert!(!tracker.is_watching());
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("out/x.bin"), "x").unwrap();
        std::fs::write(root.join("main.rs"), "fn main() {}").unwrap();
        assert_eq!(kinds(&tracker.take().unwrap()), vec![("main.rs", ChangeKind::Created)]);
    }

    /// A kept tracker is resumed by the next agent run: what changed in between is reported as made outside
    /// agent runs, what the run changes is taken as before, and the index is only written when it changed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_tracker_resumes_and_reports_changes_made_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), "1").unwrap();
        let slot = TrackerSlot::default();
        let config = config(true, &[]);

        let (mut tracking, notes) = Tracking::start(&slot, root, &config).await.unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        std::fs::write(root.join("b.txt"), "agent").unwrap();
        assert_eq!(kinds(&tracking.take().await.unwrap()), vec![("b.txt", ChangeKind::Created)]);
        tracking.finish(&slot).await;
        let saved = std::fs::read_to_string(root.join(INDEX_FILE)).unwrap();
        assert!(saved.contains(" b.txt\n"), "the index is saved when the run ends: {saved}");

        // Between runs: a gate or the user edits a file.
        std::fs::write(root.join("a.txt"), "edited between runs").unwrap();
        let (mut tracking, notes) = Tracking::start(&slot, root, &config).await.unwrap();
        assert_eq!(notes, vec!["1 file(s) changed outside agent runs since the last one: a.txt (modified)"]);
        std::fs::remove_file(root.join("b.txt")).unwrap();
        assert_eq!(kinds(&tracking.take().await.unwrap()), vec![("b.txt", ChangeKind::Deleted)]);
        assert_eq!(kinds(&combine(&tracking.takes)), vec![("b.txt", ChangeKind::Deleted)]);
        tracking.finish(&slot).await;

        // Nothing changed: the run neither reports nor rewrites anything.
        let index = root.join(INDEX_FILE);
        let before = std::fs::metadata(&index).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (mut tracking, notes) = Tracking::start(&slot, root, &config).await.unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert!(tracking.take().await.unwrap().is_empty());
        tracking.finish(&slot).await;
        assert_eq!(std::fs::metadata(&index).unwrap().modified().unwrap(), before);
    }

    /// What the gates write after an agent run is taken in as theirs: the next run reports no change outside
    /// agent runs, and the files a `.gitignore` the gates wrote ignores (pytest's cache) are not reported
    /// deleted later, while they are still there. The agent's own writes to the same places, and the user's
    /// edits between runs, are still seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_gates_write_is_absorbed_and_not_reported_as_outside_or_deleted_later() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("calc.py"), "def add(a, b): return a + b\n").unwrap();
        let slot = TrackerSlot::default();
        let config = config(true, &[]);

        let (mut tracking, _) = Tracking::start(&slot, root, &config).await.unwrap();
        std::fs::write(root.join("test_calc.py"), "def test(): pass\n").unwrap();
        assert_eq!(kinds(&tracking.take().await.unwrap()), vec![("test_calc.py", ChangeKind::Created)]);
        tracking.finish(&slot).await;

        // The gate: pytest's cache (with its own `.gitignore` of `*`) and bytecode.
        std::fs::create_dir_all(root.join(".pytest_cache/v/cache")).unwrap();
        std::fs::write(root.join(".pytest_cache/.gitignore"), "*\n").unwrap();
        std::fs::write(root.join(".pytest_cache/v/cache/nodeids"), "[]").unwrap();
        std::fs::create_dir_all(root.join("__pycache__")).unwrap();
        std::fs::write(root.join("__pycache__/calc.cpython-311.pyc"), "bytecode 1").unwrap();
        let absorbed = slot.absorb(root).await.unwrap();
        assert_eq!(
            kinds(&absorbed),
            vec![
                (".pytest_cache/.gitignore", ChangeKind::Created),
                (".pytest_cache/v/cache/nodeids", ChangeKind::Created),
                ("__pycache__/calc.cpython-311.pyc", ChangeKind::Created),
            ]
        );
        assert!(slot.absorb(root).await.unwrap().is_empty(), "taken in once");

        // The next run (a new tracker: a `.gitignore` changed) reports nothing, deleted or otherwise.
        let (mut tracking, notes) = Tracking::start(&slot, root, &config).await.unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        // The agent rewriting the bytecode is its change.
        std::fs::write(root.join("__pycache__/calc.cpython-311.pyc"), "poisoned").unwrap();
        assert_eq!(
            kinds(&tracking.take().await.unwrap()),
            vec![("__pycache__/calc.cpython-311.pyc", ChangeKind::Modified)]
        );
        tracking.finish(&slot).await;
        let index = std::fs::read_to_string(root.join(INDEX_FILE)).unwrap();
        assert!(!index.contains(".pytest_cache/"), "ignored now, so out of the index: {index}");

        // The user's edit between runs is still reported; a run that absorbs nothing leaves it to the start.
        assert!(slot.absorb(root).await.unwrap().is_empty());
        std::fs::write(root.join("notes.txt"), "mine").unwrap();
        std::fs::remove_file(root.join("calc.py")).unwrap();
        let (tracking, notes) = Tracking::start(&slot, root, &config).await.unwrap();
        assert_eq!(
            notes,
            vec!["2 file(s) changed outside agent runs since the last one: calc.py (deleted), notes.txt (created)"]
        );
        tracking.finish(&slot).await;
        assert!(root.join(".pytest_cache/v/cache/nodeids").exists());
    }

    /// A file that an ignore rule covers since it was indexed is dropped from the index silently while it
    /// exists, and reported deleted when it is gone.
    #[test]
    fn a_newly_ignored_file_is_not_reported_deleted_while_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("kept.log"), "k").unwrap();
        std::fs::write(root.join("gone.log"), "g").unwrap();
        drop(ChangeTracker::start(root, &config(false, &[])).unwrap());
        std::fs::remove_file(root.join("gone.log")).unwrap();
        let (_, offline) = ChangeTracker::start(root, &config(false, &["*.log"])).unwrap();
        assert_eq!(kinds(&offline), vec![("gone.log", ChangeKind::Deleted)]);
        let index = std::fs::read_to_string(root.join(INDEX_FILE)).unwrap();
        assert!(!index.contains("kept.log"), "{index}");
    }

    #[test]
    fn a_tracker_stops_serving_when_its_configuration_or_ignore_rules_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let watching = config(true, &[]);
        let (tracker, _) = ChangeTracker::start(root, &watching).unwrap();
        assert!(tracker.serves(root, &watching));
        assert!(!tracker.serves(&root.join("sub"), &watching), "another tree");
        assert!(!tracker.serves(root, &config(true, &["*.log"])), "other patterns");
        assert!(!tracker.serves(root, &config(false, &[])), "not watching");

        std::fs::write(root.join(".obra/ignore"), "secret.txt\n").unwrap();
        assert!(!tracker.serves(root, &watching), ".obra/ignore appeared");
        let (mut tracker, _) = {
            drop(tracker);
            ChangeTracker::start(root, &watching).unwrap()
        };
        assert!(tracker.serves(root, &watching));
        std::fs::write(root.join("sub/.gitignore"), "build/\n").unwrap();
        assert_eq!(kinds(&tracker.take().unwrap()), vec![("sub/.gitignore", ChangeKind::Created)]);
        assert!(!tracker.serves(root, &watching), "a .gitignore changed");
    }

    #[test]
    fn reading_files_is_not_activity() {
        // A checkpoint or a gate reads the tree between agent runs; that must neither make the next take wait
        // for quiet nor rehash what was read.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("read.txt"), "r").unwrap();
        let (tracker, _) = ChangeTracker::start(root, &config(true, &[])).unwrap();
        let inbox = tracker.watcher.as_ref().map(|(_, inbox)| inbox.clone()).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("read.txt")).unwrap(), "r");
        std::fs::write(root.join("written.txt"), "w").unwrap();
        // inotify keeps one instance's events in order: once the write is in, so is the read.
        let started = Instant::now();
        let seen = loop {
            let paths = inbox.pending.lock().unwrap().paths.clone();
            if paths.contains(&root.join("written.txt")) || started.elapsed() > Duration::from_secs(5) {
                break paths;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(seen, BTreeSet::from([root.join("written.txt")]));
    }

    #[test]
    fn each_take_waits_for_its_own_flush() {
        // The flush write of one take must not let the next take return before the next write's events are
        // in: every write made just before a take is in that take.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (mut tracker, _) =
            ChangeTracker::start(root, &WorkspaceConfig { debounce_ms: 0, ..config(true, &[]) }).unwrap();
        for i in 0..50 {
            std::fs::write(root.join(format!("f{i}.txt")), "x").unwrap();
            let taken = tracker.take().unwrap();
            assert_eq!(kinds(&taken), vec![(format!("f{i}.txt").as_str(), ChangeKind::Created)], "take {i}");
        }
    }

    #[test]
    fn combine_keeps_first_before_and_last_after_and_drops_round_trips() {
        let t = |path: &str, kind, before: Option<&str>, after: Option<&str>| TrackedChange {
            change: FileChange { path: path.into(), kind, size: after.map(|_| 1) },
            hash_before: before.map(String::from),
            hash_after: after.map(String::from),
        };
        let first =
            vec![t("a", ChangeKind::Created, None, Some("1")), t("b", ChangeKind::Modified, Some("1"), Some("2"))];
        let second = vec![
            t("a", ChangeKind::Modified, Some("1"), Some("2")),
            t("b", ChangeKind::Modified, Some("2"), Some("1")),
        ];
        let combined = combine(&[first, second]);
        assert_eq!(kinds(&combined), vec![("a", ChangeKind::Created)]);
        assert_eq!(combined[0].hash_after.as_deref(), Some("2"));
    }
}
