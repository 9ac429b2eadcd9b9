//! Structured logging into the host's tracing, tagged with the plugin's name (`obra:plugin/log`, always
//! granted), and live progress messages for the user.
//!
//! ```no_run
//! use obra_plugin_sdk::log;
//! log::info("starting");
//! log::warn(&format!("retrying after {} ms", 500));
//! log::progress("Edit src/main.rs");
//! ```

use crate::bindings::caps::obra::plugin::log as wit;

/// A log line's level.
pub use wit::Level;

/// Write a log line at `level`.
pub fn log(level: Level, message: &str) {
    wit::log(level, message)
}

/// Detailed diagnostics.
pub fn debug(message: &str) {
    wit::log(Level::Debug, message)
}

/// Normal operation.
pub fn info(message: &str) {
    wit::log(Level::Info, message)
}

/// Something unexpected that did not stop the plugin.
pub fn warn(message: &str) {
    wit::log(Level::Warn, message)
}

/// A failure.
pub fn error(message: &str) {
    wit::log(Level::Error, message)
}

/// Report progress of a long operation (an agent's tool use, a token count); shown to the user live.
pub fn progress(message: &str) {
    wit::progress(message)
}
