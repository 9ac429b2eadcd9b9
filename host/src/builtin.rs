//! The built-in plugins, compiled from `plugins/` for wasm32-wasip2 by `host/build.rs` and embedded here.

use crate::plugins::BuiltinPlugin;

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The directory where the build put every plugin it built (built-ins and the test plugins of
/// `plugins/testing/`), one `<name>/` each with its `plugin.toml` and component. For tests and benchmarks.
pub const BUILT_PLUGINS_DIR: &str = env!("OBRA_BUILT_PLUGINS_DIR");
