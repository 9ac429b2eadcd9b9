//! The `workspace` capability: read, list, write and remove files of the call's workspace.
//!
//! Paths are relative to the workspace root. Absolute paths, `..` that leaves the root, and symbolic links that
//! resolve outside it are refused (every path is canonicalized and checked against the canonical root). Reading
//! needs the `read` grant, writing and removing the `write` grant; grants are checked before any file is touched.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::{WitError, timed};
use crate::contract::PluginError;
use crate::plugins::bindings::v0_1_0::caps::workspace::{DirEntry, Host};
use crate::plugins::grants::WorkspaceOp;
use crate::plugins::store::StoreState;

/// Resolves plugin-given relative paths inside one workspace root.
#[derive(Debug, Clone)]
pub(crate) struct Jail {
    plugin: String,
    root: PathBuf,
}

impl Jail {
    /// A jail for `plugin` rooted at `root` (which must exist).
    pub(crate) fn new(plugin: &str, root: &Path) -> Result<Self, PluginError> {
        let root = root
            .canonicalize()
            .map_err(|e| PluginError::Fatal(format!("the workspace {} cannot be opened: {e}", root.display())))?;
        Ok(Self { plugin: plugin.to_string(), root })
    }

    /// The canonical root.
    #[cfg(test)]
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn outside(&self, verb: &str, path: &str, why: &str) -> PluginError {
        PluginError::Denied(format!(
            "plugin {:?} may not {verb} {path:?}: {why}; plugins may only touch files inside the workspace {}",
            self.plugin,
            self.root.display()
        ))
    }

    /// The path `rel` names lexically (no filesystem access): refuses absolute paths and `..` leaving the root.
    fn lexical(&self, verb: &str, rel: &str) -> Result<PathBuf, PluginError> {
        let path = Path::new(rel);
        let mut out = self.root.clone();
        let mut depth = 0usize;
        for component in path.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.outside(verb, rel, "it is an absolute path"));
                }
                Component::CurDir => {}
                Component::ParentDir if depth == 0 => {
                    return Err(self.outside(verb, rel, "its `..` leaves the workspace"));
                }
                Component::ParentDir => {
                    depth -= 1;
                    out.pop();
                }
                Component::Normal(part) => {
                    depth += 1;
                    out.push(part);
                }
            }
        }
        Ok(out)
    }

    fn check_inside(&self, verb: &str, rel: &str, real: &Path) -> Result<(), PluginError> {
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(self.outside(verb, rel, &format!("it resolves (through a symbolic link) to {}", real.display())))
        }
    }

    /// Resolve an existing path (following links), refusing anything outside the root.
    pub(crate) fn existing(&self, verb: &str, rel: &str) -> Result<PathBuf, PluginError> {
        let lexical = self.lexical(verb, rel)?;
        let real = lexical.canonicalize().map_err(|e| io_error(rel, e))?;
        self.check_inside(verb, rel, &real)?;
        Ok(real)
    }

    /// Resolve a path that may not exist yet: its deepest existing ancestor (and the path itself, when it exists)
    /// must resolve inside the root.
    pub(crate) fn for_write(&self, verb: &str, rel: &str) -> Result<PathBuf, PluginError> {
        let lexical = self.lexical(verb, rel)?;
        if lexical == self.root {
            return Err(self.outside(verb, rel, "it is the workspace root itself"));
        }
        if lexical.symlink_metadata().is_ok() {
            // Exists (maybe as a link): where it really points must be inside.
            if let Ok(real) = lexical.canonicalize() {
                self.check_inside(verb, rel, &real)?;
                return Ok(real);
            }
            // A dangling link: refuse, we cannot tell where a write would land.
            return Err(self.outside(verb, rel, "it is a symbolic link to nowhere"));
        }
        let mut ancestor = lexical.parent();
        while let Some(dir) = ancestor {
            if let Ok(real) = dir.canonicalize() {
                self.check_inside(verb, rel, &real)?;
                let rest = lexical.strip_prefix(dir).unwrap_or(Path::new(""));
                return Ok(real.join(rest));
            }
            ancestor = dir.parent();
        }
        Err(self.outside(verb, rel, "no part of it exists"))
    }
}

fn io_error(rel: &str, e: std::io::Error) -> PluginError {
    PluginError::Fatal(format!("{rel:?}: {e}"))
}

impl StoreState {
    fn jail(&self) -> Result<Jail, PluginError> {
        let root = self.call.ctx.workspace.as_deref().ok_or_else(|| {
            PluginError::Fatal(format!(
                "plugin {:?} used the workspace capability but no workspace was given for {}",
                self.plugin, self.call.function
            ))
        })?;
        Jail::new(&self.plugin, root)
    }

    // Each operation checks the grant and the path first (no side effect yet), then returns the work to do as an
    // owned future, which the host-call timer runs.

    fn read_file_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<Vec<u8>, PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Read, &path)?;
        let real = self.jail()?.existing("read", &path)?;
        let cap = self.grant.limits.max_file_read_bytes;
        let plugin = self.plugin.clone();
        Ok(async move {
            let shown = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&real).map_err(|e| io_error(&path, e))?;
                let mut bytes = Vec::new();
                file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| io_error(&path, e))?;
                if bytes.len() as u64 > cap {
                    return Err(PluginError::Fatal(format!(
                        "plugin {plugin:?} may not read {path:?}: it is larger than the read cap of {cap} bytes (plugins.limits.max_file_read_bytes)"
                    )));
                }
                Ok(bytes)
            })
            .await
            .map_err(|e| PluginError::Fatal(format!("reading {shown:?} failed: {e}")))?
        })
    }

    fn list_dir_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<Vec<DirEntry>, PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Read, &path)?;
        let real = self.jail()?.existing("list", &path)?;
        Ok(async move {
            let mut entries = Vec::new();
            let mut dir = tokio::fs::read_dir(&real).await.map_err(|e| io_error(&path, e))?;
            while let Some(entry) = dir.next_entry().await.map_err(|e| io_error(&path, e))? {
                let meta = entry.metadata().await.map_err(|e| io_error(&path, e))?;
                entries.push(DirEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    is_dir: meta.is_dir(),
                    size: if meta.is_dir() { 0 } else { meta.len() },
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
    }

    fn write_file_work(
        &self,
        path: String,
        contents: Vec<u8>,
    ) -> Result<impl Future<Output = Result<(), PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Write, &path)?;
        let jail = self.jail()?;
        let real = jail.for_write("write", &path)?;
        Ok(async move {
            if let Some(parent) = real.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| io_error(&path, e))?;
                // Re-check the (possibly just created) parent, in case a link was swapped in meanwhile.
                let parent_real = parent.canonicalize().map_err(|e| io_error(&path, e))?;
                jail.check_inside("write", &path, &parent_real)?;
            }
            tokio::fs::write(&real, contents).await.map_err(|e| io_error(&path, e))
        })
    }

    fn remove_file_work(
        &self,
        path: String,
    ) -> Result<impl Future<Output = Result<(), PluginError>> + use<>, PluginError> {
        self.grant.check_workspace(WorkspaceOp::Write, &path)?;
        let real = self.jail()?.existing("remove", &path)?;
        Ok(async move { tokio::fs::remove_file(&real).await.map_err(|e| io_error(&path, e)) })
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

    fn setup() -> (tempfile::TempDir, Jail) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        let jail = Jail::new("p", &root).unwrap();
        (dir, jail)
    }

    #[test]
    fn relative_paths_inside_resolve() {
        let (_d, jail) = setup();
        assert_eq!(jail.existing("read", "src/a.txt").unwrap(), jail.root().join("src/a.txt"));
        assert_eq!(jail.existing("read", "./src/../src/a.txt").unwrap(), jail.root().join("src/a.txt"));
        assert_eq!(jail.existing("list", "").unwrap(), jail.root());
        assert_eq!(jail.for_write("write", "new/dir/b.txt").unwrap(), jail.root().join("new/dir/b.txt"));
    }

    #[test]
    fn absolute_and_dotdot_escapes_are_refused() {
        let (_d, jail) = setup();
        for bad in ["/etc/passwd", "../secret.txt", "src/../../secret.txt"] {
            let e = jail.existing("read", bad).unwrap_err();
            assert!(matches!(&e, PluginError::Denied(m) if m.contains("plugin \"p\" may not read")), "{bad}: {e}");
        }
        assert!(jail.for_write("write", "../x.txt").is_err());
        assert!(jail.for_write("write", "").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_resolving_outside_are_refused() {
        let (d, jail) = setup();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), jail.root().join("link.txt")).unwrap();
        std::os::unix::fs::symlink(d.path(), jail.root().join("up")).unwrap();
        std::os::unix::fs::symlink(jail.root().join("src/a.txt"), jail.root().join("inside.txt")).unwrap();
        let e = jail.existing("read", "link.txt").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(jail.existing("read", "up/secret.txt").is_err());
        assert!(jail.for_write("write", "link.txt").is_err());
        assert!(jail.for_write("write", "up/new.txt").is_err());
        assert!(jail.existing("read", "inside.txt").is_ok());
    }
}
