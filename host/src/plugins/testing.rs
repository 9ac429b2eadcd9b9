//! Helpers for tests and benchmarks: the plugins `host/build.rs` built (the built-ins and the test plugins of
//! `plugins/testing/`), each in `<dir>/<name>/` with its `plugin.toml` (sha256 pinned) and component.
//!
//! The directory is `OBRA_TEST_PLUGINS_DIR` at run time when set (plugins built elsewhere, e.g. by
//! `plugins/build.sh`), otherwise the one the build made (`OBRA_BUILT_PLUGINS_DIR`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root (the directory holding `host/`, `plugins/`, `wit/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// The directory holding the built plugins.
pub fn test_plugins_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(locate_test_plugins).as_deref().map_err(Clone::clone)
}

/// The directory of one built plugin, e.g. `echo-agent` (looked up in `testing/` first, then among the
/// built-ins).
pub fn test_plugin(name: &str) -> Result<PathBuf, String> {
    let root = test_plugins_dir()?;
    [root.join("testing").join(name), root.join(name)]
        .into_iter()
        .find(|dir| dir.join("plugin.toml").is_file())
        .ok_or_else(|| {
            format!(
                "{} has no plugin {name}: is there a plugins/{name}/ or plugins/testing/{name}/ with a plugin.toml?",
                root.display()
            )
        })
}

fn locate_test_plugins() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("OBRA_TEST_PLUGINS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let dir = PathBuf::from(crate::builtin::BUILT_PLUGINS_DIR);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("{} does not exist: rebuild obra (host/build.rs builds the plugins there)", dir.display()))
    }
}
