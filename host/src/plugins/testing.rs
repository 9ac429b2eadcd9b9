//! Helpers for tests and benchmarks: the test plugins of the plugins workspace (`plugins/testing/`), built once.
//!
//! Where the built plugins are, in order of preference:
//! 1. `OBRA_TEST_PLUGINS_DIR` at run time: a directory of already built plugins (`<dir>/<name>/` or
//!    `<dir>/testing/<name>/`, each with `plugin.toml` and its `.wasm`);
//! 2. `OBRA_BUILT_PLUGINS_DIR` at compile time: the plugins `host/build.rs` built and laid out;
//! 3. otherwise `bash plugins/build.sh <target>/obra-test-plugins`, run once per process (a file lock keeps
//!    concurrent test processes from building at the same time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory holding `host/`, `plugins/`, `wit/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// The directory holding the built test plugins, building them on first use.
pub fn test_plugins_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(build_test_plugins).as_deref().map_err(Clone::clone)
}

/// The directory of one built plugin, e.g. `echo-agent` (looked up in `testing/` first, then among the
/// built-ins).
pub fn test_plugin(name: &str) -> Result<PathBuf, String> {
    let root = test_plugins_dir()?;
    [root.join("testing").join(name), root.join(name)]
        .into_iter()
        .find(|dir| dir.join("plugin.toml").is_file())
        .ok_or_else(|| format!("{} has no plugin {name}: does plugins/build.sh build it?", root.display()))
}

fn build_test_plugins() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("OBRA_TEST_PLUGINS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = option_env!("OBRA_BUILT_PLUGINS_DIR").map(PathBuf::from)
        && dir.is_dir()
    {
        return Ok(dir);
    }
    let script = workspace_root().join("plugins").join("build.sh");
    if !script.is_file() {
        return Err(format!("{} does not exist yet", script.display()));
    }
    let out = target_dir().join("obra-test-plugins");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let lock_path = target_dir().join("obra-test-plugins.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // The plugins workspace has its own target directory: do not inherit this build's (cargo may hold its lock
    // while tests run) nor its flags.
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    drop(lock);
    if !output.status.success() {
        return Err(format!(
            "{} {} failed ({}):\n{}\n{}",
            script.display(),
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(out)
}
