//! The files of the task's workspace (`obra:plugin/workspace`). Paths are relative to the workspace root with
//! `/` separators; the host refuses absolute paths, `..` that leaves the root, and symbolic links pointing out of
//! it. Reading needs `workspace = "read"` (or `"write"`) in the manifest, writing needs `workspace = "write"`.
//!
//! ```no_run
//! use obra_plugin_sdk::workspace;
//! # fn main() -> Result<(), obra_plugin_sdk::PluginError> {
//! let manifest = workspace::read_to_string("Cargo.toml")?;
//! if !workspace::exists("README.md")? {
//!     workspace::write("README.md", b"# New project\n")?;
//! }
//! # let _ = manifest; Ok(()) }
//! ```

use crate::PluginError;
use crate::bindings::caps::obra::plugin::workspace as wit;

/// One entry of a directory listing: name, whether it is a directory, size in bytes.
pub use wit::DirEntry;

/// The absolute path of the workspace root (as the host sees it).
pub fn root() -> String {
    wit::root()
}

/// Read a whole file (at most the host's read cap).
pub fn read(path: &str) -> Result<Vec<u8>, PluginError> {
    wit::read_file(path)
}

/// Read a whole file as UTF-8 text; invalid UTF-8 is a fatal error naming the file.
pub fn read_to_string(path: &str) -> Result<String, PluginError> {
    String::from_utf8(wit::read_file(path)?).map_err(|_| PluginError::fatal(format!("{path}: not UTF-8 text")))
}

/// List a directory (`""` or `"."` for the root).
pub fn list_dir(path: &str) -> Result<Vec<DirEntry>, PluginError> {
    wit::list_dir(path)
}

/// Whether a file or directory exists, found by listing its parent directory. A refused path is an error
/// (`denied`); a missing parent directory means `false`.
pub fn exists(path: &str) -> Result<bool, PluginError> {
    let path = path.trim_end_matches('/');
    let (parent, name) = match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    };
    if name.is_empty() || name == "." {
        return Ok(true);
    }
    match wit::list_dir(parent) {
        Ok(entries) => Ok(entries.iter().any(|e| e.name == name)),
        Err(err @ PluginError::Denied(_)) => Err(err),
        Err(_) if !parent.is_empty() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Create or replace a file, creating missing parent directories.
pub fn write(path: &str, contents: &[u8]) -> Result<(), PluginError> {
    wit::write_file(path, contents)
}

/// Delete a file.
pub fn remove(path: &str) -> Result<(), PluginError> {
    wit::remove_file(path)
}
