//! A small key-value store private to the plugin, kept by the host across runs (`obra:plugin/kv`). Needs
//! `kv = true` in the manifest. Keys and values are capped in size by the host.
//!
//! ```no_run
//! use obra_plugin_sdk::kv;
//! # fn main() -> Result<(), obra_plugin_sdk::PluginError> {
//! let runs: u64 = kv::get_json("runs")?.unwrap_or(0);
//! kv::set_json("runs", &(runs + 1))?;
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;
use crate::bindings::caps::obra::plugin::kv as wit;

/// The bytes stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, PluginError> {
    wit::get(key)
}

/// Store `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), PluginError> {
    wit::set(key, value)
}

/// Remove `key` (no error when it is absent).
pub fn delete(key: &str) -> Result<(), PluginError> {
    wit::delete(key)
}

/// The value stored under `key`, parsed as JSON.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, PluginError> {
    match wit::get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Store `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), PluginError> {
    wit::set(key, &serde_json::to_vec(value)?)
}
