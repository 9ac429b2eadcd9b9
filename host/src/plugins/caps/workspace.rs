//! The `workspace` capability: read, list, write and remove files of the call's workspace.
//!
//! Paths are relative to the workspace root. Every access is resolved by [`Jail`] one component at a time, each
//! opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the descriptor of the directory
//! before it, starting from a descriptor of the root opened once per call (ADR 0035). Symbolic links are followed
//! by the jail itself, which reads each link through its descriptor: a relative target inside the workspace is
//! followed, an absolute target or a `..` above the root is refused. Nothing is checked by name and opened again
//! later, so a directory swapped for a symbolic link meanwhile cannot lead outside.
//!
//! Only regular files are read or written and only directories listed: a FIFO, socket or device is refused
//! (files are opened with `O_NONBLOCK` and their type is read from the open descriptor). `.obra/` and the git
//! directory (`.git/`, or the directories a worktree's `.git` file names, when inside the workspace) are
//! protected, checked on the resolved path and on the identity (device and inode) of every directory passed:
//! never written, and read only where `plugins.grants.<name>.read_protected` names the path. Reading needs the
//! `read` grant, writing and removing the `write` grant; grants are checked before any file is touched.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::{WitError, timed};
use crate::contract::PluginError;
use crate::plugins::bindings::v0_1_0::caps::workspace::{DirEntry, Host};
use crate::plugins::grants::WorkspaceOp;
use crate::plugins::instance_state::StoreState;
use crate::workspace::beneath::{self, Beneath, Kind, Opened};

/// How many symbolic links one path may go through (as the kernel's own limit).
const MAX_LINKS: usize = 40;

/// A directory plugins may not write and may read only where a grant names the path.
#[derive(Debug)]
struct ProtectedDir {
    /// Its path relative to the root, by component.
    parts: Vec<OsString>,
    /// What it is, for messages: "Obra's own directory", "the git directory".
    what: &'static str,
    /// Its device and inode, when it exists.
    id: Option<(u64, u64)>,
}

/// One path component still to resolve.
enum Step {
    Name(OsString),
    Up,
}

/// A path resolved beneath the root: the directories passed (each open), and the final name in the last of
/// them (none: the last directory itself is the target).
struct Target {
    dirs: Vec<(OwnedFd, OsString, (u64, u64))>,
    name: Option<OsString>,
}

impl Target {
    /// The resolved path, by component.
    fn parts(&self) -> Vec<OsString> {
        self.dirs.iter().map(|(_, n, _)| n.clone()).chain(self.name.clone()).collect()
    }

    /// The resolved path as `a/b/c` ("." for the root).
    fn shown(&self) -> String {
        let parts = self.parts();
        if parts.is_empty() {
            return ".".into();
        }
        parts.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/")
    }

    /// The directory the final name is in (or the target directory itself, when there is no name).
    fn dir<'a>(&'a self, root: &'a Beneath) -> BorrowedFd<'a> {
        self.dirs.last().map_or(root.fd(), |(fd, _, _)| fd.as_fd())
    }
}

/// Resolves plugin-given relative paths inside one workspace root (see the module documentation).
#[derive(Debug)]
pub(crate) struct Jail {
    plugin: String,
    root: PathBuf,
    dir: Beneath,
    protected: Vec<ProtectedDir>,
    /// Protected paths the user's grant lets the plugin read, by component.
    readable: Vec<Vec<OsString>>,
}

impl Jail {
    /// A jail for `plugin` rooted at `root` (which must exist), with no protected path readable.
    pub(crate) fn new(plugin: &str, root: &Path) -> Result<Self, PluginError> {
        let cannot =
            |e: std::io::Error| PluginError::Fatal(format!("the workspace {} cannot be opened: {e}", root.display()));
        let root = root.canonicalize().map_err(cannot)?;
        let dir = Beneath::open(&root).map_err(cannot)?;
        let mut jail = Self { plugin: plugin.to_string(), root, dir, protected: Vec::new(), readable: Vec::new() };
        jail.protected = jail.find_protected();
        Ok(jail)
    }

    /// Let the plugin read these protected paths (`plugins.grants.<name>.read_protected`).
    pub(crate) fn reading(mut self, paths: &[String]) -> Self {
        self.readable = paths.iter().map(|p| normal_parts(p)).filter(|p| !p.is_empty()).collect();
        self
    }

    /// The canonical root.
    #[cfg(test)]
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `.obra/` and the git directory: `.git/`, or, when `.git` is a file (a worktree or submodule), the
    /// `gitdir:` it names and that directory's `commondir`, when they lie inside the workspace.
    fn find_protected(&self) -> Vec<ProtectedDir> {
        let mut found =
            vec![self.protected_dir(".obra", "Obra's own directory"), self.protected_dir(".git", "the git directory")];
        if let Ok(Opened::File(file, _)) = self.dir.open_file(Path::new(".git")) {
            let mut text = String::new();
            let _ = file.take(4096).read_to_string(&mut text);
            if let Some(gitdir) = text.lines().find_map(|l| l.strip_prefix("gitdir:")).map(str::trim) {
                let gitdir = self.root.join(gitdir);
                let mut dirs = vec![gitdir.clone()];
                if let Ok(common) = std::fs::read_to_string(gitdir.join("commondir")) {
                    dirs.push(gitdir.join(common.trim()));
                }
                for dir in dirs {
                    let Ok(real) = dir.canonicalize() else { continue };
                    if let Ok(rel) = real.strip_prefix(&self.root)
                        && !rel.as_os_str().is_empty()
                    {
                        found.push(self.protected_dir(&rel.to_string_lossy(), "the git directory"));
                    }
                }
            }
        }
        found
    }

    fn protected_dir(&self, rel: &str, what: &'static str) -> ProtectedDir {
        let id = self
            .dir
            .open_at(Path::new(rel), libc::O_PATH | libc::O_DIRECTORY, 0)
            .ok()
            .and_then(|fd| beneath::identity(fd.as_fd()).ok());
        ProtectedDir { parts: normal_parts(rel), what, id }
    }

    fn outside(&self, verb: &str, path: &str, why: &str) -> PluginError {
        PluginError::Denied(format!(
            "plugin {:?} may not {verb} {path:?}: {why}; plugins may only touch files inside the workspace {}",
            self.plugin,
            self.root.display()
        ))
    }

    /// The protected directory the resolved path of `target` (with `extra`, the identity of the opened target
    /// directory) lies in, if any.
    fn protected_by(&self, target: &Target, extra: Option<(u64, u64)>) -> Option<&ProtectedDir> {
        let parts = target.parts();
        let ids: Vec<(u64, u64)> = target.dirs.iter().map(|(_, _, id)| *id).chain(extra).collect();
        self.protected.iter().find(|p| parts.starts_with(&p.parts) || p.id.is_some_and(|id| ids.contains(&id)))
    }

    /// Refuse `target` when it is protected: always for writing, for reading unless a grant names the path.
    fn guard(&self, op: WorkspaceOp, rel: &str, target: &Target, extra: Option<(u64, u64)>) -> Result<(), PluginError> {
        let Some(protected) = self.protected_by(target, extra) else { return Ok(()) };
        let parts = target.parts();
        let shown = target.shown();
        let dir = protected.parts.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/");
        let via = if normal_parts(rel) == parts { String::new() } else { format!(" (it resolves to {shown})") };
        Err(PluginError::Denied(match op {
            WorkspaceOp::Write => format!(
                "plugin {:?} may not write {rel:?}{via}: it is inside {} {dir}/, which plugins may never write or \
                 remove in, whatever the grant (a grant can only let a plugin read there: \
                 plugins.grants.{}.read_protected)",
                self.plugin, protected.what, self.plugin
            ),
            WorkspaceOp::Read => {
                if self.readable.iter().any(|g| parts.starts_with(g)) {
                    return Ok(());
                }
                format!(
                    "plugin {:?} may not read {rel:?}{via}: it is inside {} {dir}/, which plugins may read only \
                     where a grant names the path; to allow reading it, add it to plugins.grants.{}.read_protected \
                     in your config (e.g. read_protected: [{shown:?}])",
                    self.plugin, protected.what, self.plugin
                )
            }
        }))
    }

    /// Resolve `rel` beneath the root (see the module documentation). `follow_last`: a symbolic link as the last
    /// component is followed (otherwise it is the target itself). `create`: missing directories on the way are
    /// made, after checking that none is protected. A missing last component is returned as the name.
    fn walk(&self, verb: &str, rel: &str, follow_last: bool, create: bool) -> Result<Target, PluginError> {
        let mut queue = VecDeque::new();
        for component in Path::new(rel).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.outside(verb, rel, "it is an absolute path"));
                }
                Component::CurDir => {}
                Component::ParentDir => queue.push_back(Step::Up),
                Component::Normal(name) => queue.push_back(Step::Name(name.to_os_string())),
            }
        }
        let mut target = Target { dirs: Vec::new(), name: None };
        let mut links = 0;
        while let Some(step) = queue.pop_front() {
            let name = match step {
                Step::Up => {
                    if target.dirs.pop().is_none() {
                        let why = if links == 0 {
                            "its `..` leaves the workspace".to_string()
                        } else {
                            "it leaves the workspace through a symbolic link".to_string()
                        };
                        return Err(self.outside(verb, rel, &why));
                    }
                    continue;
                }
                Step::Name(name) => name,
            };
            let last = queue.is_empty();
            if last && !follow_last {
                target.name = Some(name);
                break;
            }
            let at = target.dir(&self.dir);
            let fd = match beneath::open_beneath(at, Path::new(&name), libc::O_PATH, 0) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && last => {
                    target.name = Some(name);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    // Never make a directory inside a protected one (the final guard comes after the walk).
                    let mut parts = target.parts();
                    parts.push(name.clone());
                    if let Some(p) = self.protected.iter().find(|p| parts.starts_with(&p.parts)) {
                        return Err(PluginError::Denied(format!(
                            "plugin {:?} may not write {rel:?}: it is inside {} {}/, which plugins may never write \
                             or remove in, whatever the grant",
                            self.plugin,
                            p.what,
                            p.parts.iter().map(|x| x.to_string_lossy()).collect::<Vec<_>>().join("/")
                        )));
                    }
                    match beneath::make_dir_at(at, &name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_error(rel, e)),
                    }
                    beneath::open_beneath(at, Path::new(&name), libc::O_PATH | libc::O_DIRECTORY, 0)
                        .map_err(|e| io_error(rel, e))?
                }
                Err(e) => return Err(io_error(rel, e)),
            };
            let meta = std::fs::File::from(fd.try_clone().map_err(|e| io_error(rel, e))?)
                .metadata()
                .map_err(|e| io_error(rel, e))?;
            match Kind::of(meta.file_type()) {
                Kind::Dir => {
                    use std::os::unix::fs::MetadataExt;
                    target.dirs.push((fd, name, (meta.dev(), meta.ino())));
                }
                Kind::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(PluginError::Fatal(format!("{rel:?}: too many levels of symbolic links")));
                    }
                    let link = beneath::read_link_fd(fd.as_fd()).map_err(|e| io_error(rel, e))?;
                    let link_path = Path::new(&link);
                    if link_path.is_absolute() {
                        return Err(self.outside(
                            verb,
                            rel,
                            &format!("it goes through a symbolic link to the absolute path {}", link_path.display()),
                        ));
                    }
                    for component in link_path.components().rev() {
                        match component {
                            Component::ParentDir => queue.push_front(Step::Up),
                            Component::Normal(n) => queue.push_front(Step::Name(n.to_os_string())),
                            _ => {}
                        }
                    }
                }
                _ if last => {
                    target.name = Some(name);
                    break;
                }
                _ => {
                    return Err(PluginError::Fatal(format!("{rel:?}: {} is not a directory", name.to_string_lossy())));
                }
            }
        }
        Ok(target)
    }

    /// The working directory of a program: the existing directory `rel`, resolved beneath the root (following
    /// links inside), as an open descriptor (which a local child enters with `fchdir`, so a directory swapped
    /// for a link to outside after this check cannot move it outside) and as its path (for a transport, which
    /// names it on the other side). Refused inside `.obra/` or the git directory, whatever the grant: a program
    /// that starts there sits beneath the read-only mounts the sandbox lays over them, and would write there
    /// through relative paths.
    pub(crate) fn working_dir(&self, rel: &str) -> Result<(OwnedFd, PathBuf), PluginError> {
        let verb = "run a program in";
        let target = self.walk(verb, rel, true, false)?;
        if target.name.is_some() {
            return Err(PluginError::Fatal(format!("the working directory {rel:?} is not an existing directory")));
        }
        if let Some(protected) = self.protected_by(&target, None) {
            let dir = protected.parts.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/");
            return Err(PluginError::Denied(format!(
                "plugin {:?} may not run a program in {rel:?}: it is inside {} {dir}/, which programs started for \
                 plugins may not work in (their writes there would not be read-only); run it in the workspace",
                self.plugin, protected.what
            )));
        }
        let fd = match target.dirs.last() {
            Some((fd, _, _)) => fd.try_clone(),
            None => self.dir.fd().try_clone_to_owned(),
        }
        .map_err(|e| io_error(rel, e))?;
        Ok((fd, target.parts().iter().fold(self.root.clone(), |p, part| p.join(part))))
    }

    fn refuse_kind(&self, verb: &str, rel: &str, kind: Kind) -> PluginError {
        PluginError::Denied(format!(
            "plugin {:?} may not {verb} {rel:?}: it is {}, not a regular file; plugins may only read and write \
             regular files and list directories",
            self.plugin,
            kind.describe()
        ))
    }

    /// Read the regular file `rel`, at most `cap` bytes.
    pub(crate) fn read(&self, rel: &str, cap: u64) -> Result<Vec<u8>, PluginError> {
        let target = self.walk("read", rel, true, false)?;
        self.guard(WorkspaceOp::Read, rel, &target, None)?;
        let Some(name) = &target.name else {
            return Err(PluginError::Fatal(format!("{rel:?} is a directory; list it with list-dir instead")));
        };
        let file = match beneath::open_file_at(target.dir(&self.dir), Path::new(name)).map_err(|e| io_error(rel, e))? {
            Opened::File(file, _) => file,
            Opened::Other(Kind::Dir) => {
                return Err(PluginError::Fatal(format!("{rel:?} is a directory; list it with list-dir instead")));
            }
            Opened::Other(kind) => return Err(self.refuse_kind("read", rel, kind)),
        };
        let mut bytes = Vec::new();
        file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| io_error(rel, e))?;
        if bytes.len() as u64 > cap {
            return Err(PluginError::Fatal(format!(
                "plugin {:?} may not read {rel:?}: it is larger than the read cap of {cap} bytes (plugins.limits.max_file_read_bytes)",
                self.plugin
            )));
        }
        Ok(bytes)
    }

    /// List the directory `rel`, sorted by name; special files are listed (not opened) as non-directories.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<DirEntry>, PluginError> {
        let target = self.walk("list", rel, true, false)?;
        let name = target.name.clone().unwrap_or_else(|| OsString::from("."));
        let fd = beneath::open_beneath(target.dir(&self.dir), Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| io_error(rel, e))?;
        let id = beneath::identity(fd.as_fd()).map_err(|e| io_error(rel, e))?;
        self.guard(WorkspaceOp::Read, rel, &target, Some(id))?;
        let probe = fd.try_clone().map_err(|e| io_error(rel, e))?;
        let mut entries = Vec::new();
        for entry in beneath::list(fd).map_err(|e| io_error(rel, e))? {
            let size = match entry.kind {
                Kind::File => beneath::metadata_at(probe.as_fd(), &entry.name).map(|m| m.len()).unwrap_or(0),
                _ => 0,
            };
            entries.push(DirEntry {
                name: entry.name.to_string_lossy().into_owned(),
                is_dir: entry.kind == Kind::Dir,
                size,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Create or replace the regular file `rel` with `contents`, making missing directories.
    pub(crate) fn write(&self, rel: &str, contents: &[u8]) -> Result<(), PluginError> {
        let target = self.walk("write", rel, true, true)?;
        let Some(name) = &target.name else {
            return Err(self.outside("write", rel, "it is a directory (or the workspace root itself)"));
        };
        self.guard(WorkspaceOp::Write, rel, &target, None)?;
        if let Ok(meta) = beneath::metadata_at(target.dir(&self.dir), name) {
            let kind = Kind::of(meta.file_type());
            if kind != Kind::File {
                return Err(self.refuse_kind("write", rel, kind));
            }
        }
        let fd = beneath::open_beneath(
            target.dir(&self.dir),
            Path::new(name),
            libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK | libc::O_NOCTTY,
            0o666,
        )
        .map_err(|e| match e.raw_os_error() {
            // A FIFO without a reader (O_NONBLOCK) or a directory: name what is there.
            Some(libc::ENXIO) | Some(libc::EISDIR) | Some(libc::ENOTDIR) => {
                match beneath::metadata_at(target.dir(&self.dir), name) {
                    Ok(meta) => self.refuse_kind("write", rel, Kind::of(meta.file_type())),
                    Err(_) => io_error(rel, e),
                }
            }
            _ => io_error(rel, e),
        })?;
        let mut file = std::fs::File::from(fd);
        let kind = Kind::of(file.metadata().map_err(|e| io_error(rel, e))?.file_type());
        if kind != Kind::File {
            return Err(self.refuse_kind("write", rel, kind));
        }
        file.set_len(0).map_err(|e| io_error(rel, e))?;
        file.write_all(contents).map_err(|e| io_error(rel, e))
    }

    /// Remove the file `rel` (a symbolic link itself, never its target).
    pub(crate) fn remove(&self, rel: &str) -> Result<(), PluginError> {
        let target = self.walk("remove", rel, false, false)?;
        let Some(name) = &target.name else {
            return Err(self.outside("remove", rel, "it is a directory (or the workspace root itself)"));
        };
        self.guard(WorkspaceOp::Write, rel, &target, None)?;
        let at = target.dir(&self.dir);
        let meta = beneath::metadata_at(at, name).map_err(|e| io_error(rel, e))?;
        match Kind::of(meta.file_type()) {
            Kind::Dir => Err(PluginError::Fatal(format!("{rel:?} is a directory; remove-file removes only files"))),
            kind if kind.is_special() => Err(self.refuse_kind("remove", rel, kind)),
            _ => beneath::unlink_at(at, name).map_err(|e| io_error(rel, e)),
        }
    }
}

/// A relative path's normal components (`.` dropped).
fn normal_parts(rel: &str) -> Vec<OsString> {
    Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect()
}

/// Why an entry of `plugins.grants.<name>.read_protected` is malformed, if it is.
pub(crate) fn protected_grant_problem(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.trim().is_empty() {
        return Err("the path is empty; name a file or directory, e.g. \".git/HEAD\"".into());
    }
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{path:?} must be relative to the workspace, without `..`, e.g. \".git/HEAD\""));
    }
    if path.bytes().any(|b| b == 0) || path.as_bytes().contains(&b'*') {
        return Err(format!("{path:?}: name the path itself (no wildcards); a directory grants what is below it"));
    }
    Ok(())
}

fn io_error(rel: &str, e: std::io::Error) -> PluginError {
    PluginError::Fatal(format!("{rel:?}: {e}"))
}

/// Run file work of a plugin on a blocking thread. Nothing in it can block for long: files are opened with
/// `O_NONBLOCK` and only regular files are read or written.
async fn blocking<T, F>(jail: Jail, what: &'static str, path: String, work: F) -> Result<T, PluginError>
where
    T: Send + 'static,
    F: FnOnce(Jail, &str) -> Result<T, PluginError> + Send + 'static,
{
    let shown = path.clone();
    tokio::task::spawn_blocking(move || work(jail, &path))
        .await
        .map_err(|e| PluginError::Fatal(format!("{what} {shown:?} failed: {e}")))?
}

impl StoreState {
    fn jail(&self) -> Result<Jail, PluginError> {
        let root = self.call.ctx.workspace.as_deref().ok_or_else(|| {
            PluginError::Fatal(format!(
                "plugin {:?} used the workspace capability but no workspace was given for {}",
                self.plugin, self.call.function
            ))
        })?;
        Ok(Jail::new(&self.plugin, root)?.reading(&self.grant.allowed.read_protected))
    }

    // Each operation checks the grant first (no side effect yet), then returns the work to do as an owned
    // future, which the host-call timer runs.

    fn read_file_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<Vec<u8>, PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Read, &path)?;
        let cap = self.grant.limits.max_file_read_bytes;
        Ok(blocking(self.jail()?, "reading", path, move |jail, path| jail.read(path, cap)))
    }

    fn list_dir_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<Vec<DirEntry>, PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Read, &path)?;
        Ok(blocking(self.jail()?, "listing", path, |jail, path| jail.list(path)))
    }

    fn write_file_work(
        &self,
        path: String,
        contents: Vec<u8>,
    ) -> Result<impl Future<Output = Result<(), PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Write, &path)?;
        Ok(blocking(self.jail()?, "writing", path, move |jail, path| jail.write(path, &contents)))
    }

    fn remove_file_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<(), PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Write, &path)?;
        Ok(blocking(self.jail()?, "removing", path, |jail, path| jail.remove(path)))
    }
}

impl Host for StoreState {
    async fn root(&mut self) -> wasmtime::Result<String> {
        Ok(self.call.ctx.workspace.as_deref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default())
    }

    async fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        timed(self.timer("workspace.read-file"), self.read_file_work(path)).await
    }

    async fn list_dir(&mut self, path: String) -> wasmtime::Result<Result<Vec<DirEntry>, WitError>> {
        timed(self.timer("workspace.list-dir"), self.list_dir_work(path)).await
    }

    async fn write_file(&mut self, path: String, contents: Vec<u8>) -> wasmtime::Result<Result<(), WitError>> {
        timed(self.timer("workspace.write-file"), self.write_file_work(path, contents)).await
    }

    async fn remove_file(&mut self, path: String) -> wasmtime::Result<Result<(), WitError>> {
        timed(self.timer("workspace.remove-file"), self.remove_file_work(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn setup() -> (tempfile::TempDir, Jail) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        let jail = Jail::new("p", &root).unwrap();
        (dir, jail)
    }

    fn denied(e: PluginError) -> String {
        match e {
            PluginError::Denied(m) => m,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn relative_paths_inside_resolve() {
        let (_d, jail) = setup();
        assert_eq!(jail.read("src/a.txt", 100).unwrap(), b"a");
        assert_eq!(jail.read("./src/../src/a.txt", 100).unwrap(), b"a");
        assert_eq!(jail.working_dir("").unwrap().1, jail.root());
        let (fd, path) = jail.working_dir("src/..//src").unwrap();
        assert_eq!(path, jail.root().join("src"));
        let held = beneath::identity(fd.as_fd()).unwrap();
        let named = std::fs::metadata(jail.root().join("src")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(held, (named.dev(), named.ino()), "the descriptor is the directory checked");
        jail.write("new/dir/b.txt", b"b").unwrap();
        assert_eq!(std::fs::read(jail.root().join("new/dir/b.txt")).unwrap(), b"b");
        let names: Vec<String> = jail.list("").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["new", "src"]);
        jail.remove("new/dir/b.txt").unwrap();
        assert!(!jail.root().join("new/dir/b.txt").exists());
    }

    #[test]
    fn absolute_and_dotdot_escapes_are_refused() {
        let (_d, jail) = setup();
        for bad in ["/etc/passwd", "../secret.txt", "src/../../secret.txt"] {
            let e = denied(jail.read(bad, 100).unwrap_err());
            assert!(e.contains("plugin \"p\" may not read"), "{bad}: {e}");
        }
        assert!(jail.write("../x.txt", b"x").is_err());
        assert!(!jail.root().parent().unwrap().join("x.txt").exists());
        assert!(jail.write("", b"x").is_err());
        assert!(jail.remove("../secret.txt").is_err());
        assert!(jail.root().parent().unwrap().join("secret.txt").exists());
    }

    #[test]
    fn symlinks_resolving_outside_are_refused_and_relative_links_inside_followed() {
        let (d, jail) = setup();
        let root = jail.root().to_path_buf();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(d.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", root.join("dots.txt")).unwrap();
        std::os::unix::fs::symlink("src/a.txt", root.join("inside.txt")).unwrap();
        std::os::unix::fs::symlink("src", root.join("srclink")).unwrap();
        let e = denied(jail.read("link.txt", 100).unwrap_err());
        assert!(e.contains("symbolic link to the absolute path"), "{e}");
        assert!(denied(jail.read("up/secret.txt", 100).unwrap_err()).contains("symbolic link"));
        assert!(denied(jail.read("dots.txt", 100).unwrap_err()).contains("through a symbolic link"));
        assert!(jail.write("link.txt", b"x").is_err());
        assert!(jail.write("up/new.txt", b"x").is_err());
        assert!(jail.list("up").is_err());
        assert_eq!(std::fs::read_to_string(d.path().join("secret.txt")).unwrap(), "s");
        assert!(!d.path().join("new.txt").exists());
        assert_eq!(jail.read("inside.txt", 100).unwrap(), b"a");
        assert_eq!(jail.read("srclink/a.txt", 100).unwrap(), b"a");
        // Removing a link removes the link, never its target.
        jail.remove("link.txt").unwrap();
        assert!(d.path().join("secret.txt").exists());
    }

    #[test]
    fn fifos_and_sockets_are_refused_without_blocking() {
        let (_d, jail) = setup();
        mkfifo(&jail.root().join("fifo"));
        let _socket = std::os::unix::net::UnixListener::bind(jail.root().join("sock")).unwrap();
        let e = denied(jail.read("fifo", 100).unwrap_err());
        assert!(e.contains("it is a FIFO, not a regular file"), "{e}");
        let e = denied(jail.write("fifo", b"x").unwrap_err());
        assert!(e.contains("it is a FIFO"), "{e}");
        assert!(denied(jail.read("sock", 100).unwrap_err()).contains("it is a socket"));
        assert!(denied(jail.read("../../../../../../dev/null", 100).unwrap_err()).contains("leaves the workspace"));
        assert!(denied(jail.remove("fifo").unwrap_err()).contains("a FIFO"));
        let listed: Vec<(String, bool)> = jail.list("").unwrap().into_iter().map(|e| (e.name, e.is_dir)).collect();
        assert!(listed.contains(&("fifo".into(), false)), "{listed:?}");
    }

    fn with_git(jail_root: &Path) {
        std::fs::create_dir_all(jail_root.join(".git/refs")).unwrap();
        std::fs::write(jail_root.join(".git/config"), "[core]\n").unwrap();
        std::fs::write(jail_root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(jail_root.join(".obra")).unwrap();
        std::fs::write(jail_root.join(".obra/config.yaml"), "x: 1\n").unwrap();
    }

    #[test]
    fn the_git_dir_and_obra_dir_are_refused_for_reads_writes_listing_and_links() {
        let (_d, jail) = setup();
        with_git(jail.root());
        let root = jail.root().to_path_buf();
        std::os::unix::fs::symlink(".git", root.join("gitlink")).unwrap();
        std::os::unix::fs::symlink(".obra/config.yaml", root.join("cfg")).unwrap();
        let jail = Jail::new("p", &root).unwrap();
        let e = denied(jail.read(".git/config", 100).unwrap_err());
        assert!(e.contains("the git directory .git/"), "{e}");
        assert!(e.contains("plugins.grants.p.read_protected"), "{e}");
        assert!(e.contains("read_protected: [\".git/config\"]"), "{e}");
        let e = denied(jail.read("gitlink/config", 100).unwrap_err());
        assert!(e.contains("it resolves to .git/config"), "{e}");
        let e = denied(jail.read("cfg", 100).unwrap_err());
        assert!(e.contains("Obra's own directory .obra/"), "{e}");
        assert!(denied(jail.list(".git").unwrap_err()).contains("may not read \".git\""));
        assert!(jail.list("gitlink").is_err());
        assert!(jail.list("src/../.obra").is_err());
        let e = denied(jail.write(".git/hooks/pre-commit", b"#!/bin/sh\n").unwrap_err());
        assert!(e.contains("may never write"), "{e}");
        assert!(!root.join(".git/hooks").exists(), "no directory was made in .git");
        assert!(jail.write("gitlink/config", b"x").is_err());
        assert!(jail.write(".obra/config.yaml", b"x").is_err());
        assert!(jail.remove(".git/HEAD").is_err());
        assert!(jail.remove("gitlink/HEAD").is_err());
        assert_eq!(std::fs::read_to_string(root.join(".git/config")).unwrap(), "[core]\n");
        assert!(root.join(".git/HEAD").exists());
        // No program may start in them: beneath the sandbox's read-only mounts it could write there.
        for dir in [".git", "gitlink", ".obra", "src/../.obra"] {
            let e = denied(jail.working_dir(dir).unwrap_err());
            assert!(e.contains("may not run a program in"), "{dir}: {e}");
        }
        assert!(jail.working_dir("src/a.txt").is_err(), "a file is no working directory");
        // The names themselves stay visible (so a plugin can tell a repository), not their contents.
        let names: Vec<String> = jail.list("").unwrap().into_iter().map(|e| e.name).collect();
        assert!(names.contains(&".git".to_string()), "{names:?}");
        // A fresh `.obra/` cannot be made through a plugin either.
        std::fs::remove_dir_all(root.join(".obra")).unwrap();
        let jail = Jail::new("p", &root).unwrap();
        assert!(jail.write(".obra/new/x", b"x").is_err());
        assert!(!root.join(".obra").exists());
    }

    #[test]
    fn a_grant_naming_a_protected_path_allows_reading_it_only() {
        let (_d, jail) = setup();
        with_git(jail.root());
        let root = jail.root().to_path_buf();
        std::os::unix::fs::symlink(".git/HEAD", root.join("head")).unwrap();
        let jail = Jail::new("p", &root).unwrap().reading(&[".git/HEAD".into(), ".git/refs".into()]);
        assert_eq!(jail.read(".git/HEAD", 100).unwrap(), b"ref: refs/heads/main\n");
        assert_eq!(jail.read("head", 100).unwrap(), b"ref: refs/heads/main\n");
        assert!(jail.list(".git/refs").unwrap().is_empty());
        assert!(jail.read(".git/config", 100).is_err(), "only the named paths");
        assert!(jail.list(".git").is_err());
        assert!(jail.write(".git/HEAD", b"x").is_err(), "never for writing");
        assert!(jail.write(".git/refs/x", b"x").is_err());
        assert!(jail.remove(".git/HEAD").is_err());
        assert!(protected_grant_problem("../x").is_err());
        assert!(protected_grant_problem("/abs").is_err());
        assert!(protected_grant_problem(".git/*").is_err());
        assert!(protected_grant_problem(".git/HEAD").is_ok());
    }

    #[test]
    fn a_worktrees_git_file_protects_the_gitdir_and_commondir_it_names() {
        let (_d, jail) = setup();
        let root = jail.root().to_path_buf();
        std::fs::create_dir_all(root.join("meta/common")).unwrap();
        std::fs::create_dir_all(root.join("meta/worktrees/wt")).unwrap();
        std::fs::write(root.join("meta/common/config"), "[core]\n").unwrap();
        std::fs::write(root.join("meta/worktrees/wt/HEAD"), "abc\n").unwrap();
        std::fs::write(root.join("meta/worktrees/wt/commondir"), "../../common\n").unwrap();
        std::fs::write(root.join(".git"), format!("gitdir: {}\n", root.join("meta/worktrees/wt").display())).unwrap();
        std::fs::write(root.join("meta/readme.txt"), "free\n").unwrap();
        let jail = Jail::new("p", &root).unwrap();
        assert!(denied(jail.read("meta/worktrees/wt/HEAD", 100).unwrap_err()).contains("the git directory"));
        assert!(denied(jail.read("meta/common/config", 100).unwrap_err()).contains("the git directory"));
        assert!(jail.write("meta/common/hooks/x", b"x").is_err());
        assert!(!root.join("meta/common/hooks").exists());
        assert_eq!(jail.read("meta/readme.txt", 100).unwrap(), b"free\n");
        // The `.git` file itself is protected too.
        assert!(jail.read(".git", 100).is_err());
        assert!(jail.write(".git", b"gitdir: /elsewhere\n").is_err());
    }

    /// Exchange two paths atomically (renameat2 RENAME_EXCHANGE).
    fn exchange(a: &std::ffi::CStr, b: &std::ffi::CStr) {
        // SAFETY: valid NUL-terminated paths relative to the working directory (AT_FDCWD); absolute here.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
    }

    /// The red team's race: a thread swaps a workspace directory with a symbolic link to an outside directory
    /// (renameat2 RENAME_EXCHANGE) in a loop, while the jail reads, writes, lists and removes in it 20,000 times
    /// each. Not one access may reach the outside directory.
    #[test]
    fn a_directory_swapped_for_an_outside_symlink_never_leads_outside() {
        const ROUNDS: usize = 20_000;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ws");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub/f.txt"), "inside").unwrap();
        std::fs::write(outside.join("f.txt"), "OUTSIDE").unwrap();
        std::fs::write(outside.join("r.txt"), "keep me").unwrap();
        std::fs::write(outside.join("only-outside"), "").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();
        let jail = Jail::new("p", &root).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let swapper = {
            let (stop, swaps) = (stop.clone(), swaps.clone());
            let a = std::ffi::CString::new(root.join("sub").as_os_str().as_encoded_bytes()).unwrap();
            let b = std::ffi::CString::new(root.join("swap").as_os_str().as_encoded_bytes()).unwrap();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    exchange(&a, &b);
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (mut escapes, mut ok, mut failed) = (0usize, 0usize, 0usize);
        let mut count = |r: bool| if r { ok += 1 } else { failed += 1 };
        for i in 0..ROUNDS {
            match jail.read("sub/f.txt", 100) {
                Ok(bytes) if bytes == b"OUTSIDE" => escapes += 1,
                r => count(r.is_ok()),
            }
            match jail.list("sub") {
                Ok(entries) if entries.iter().any(|e| e.name == "only-outside") => escapes += 1,
                r => count(r.is_ok()),
            }
            count(jail.write(&format!("sub/w{}.txt", i % 16), b"w").is_ok());
            count(jail.remove("sub/r.txt").is_ok());
            count(jail.write("sub/r.txt", b"r").is_ok());
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        let written_outside = std::fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "f.txt" && e.file_name() != "r.txt" && e.file_name() != "only-outside")
            .count();
        let removed_outside = usize::from(!outside.join("r.txt").exists());
        let overwritten = usize::from(std::fs::read_to_string(outside.join("f.txt")).unwrap() != "OUTSIDE");
        assert_eq!((escapes, written_outside, removed_outside, overwritten), (0, 0, 0, 0));
        // The race really ran: the swapper swapped, and the jail both succeeded and was refused.
        assert!(swaps.load(Ordering::Relaxed) > 0);
        assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    }
}
