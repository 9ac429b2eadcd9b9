//! The `kv` capability: small persistent state private to each plugin, kept by the [`KvStore`] the host was
//! given. Needs the `kv` grant; keys and values are capped in size.
//!
//! [`KvStore`]: crate::contract::KvStore

use std::sync::Arc;

use super::{WitError, timed};
use crate::contract::{KvStore, PluginError};
use crate::plugins::bindings::v0_1_0::caps::kv::Host;
use crate::plugins::store::StoreState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

impl StoreState {
    /// Check the grant and the key; the store and the plugin's name to use.
    fn kv(&self, key: &str) -> Result<(Arc<dyn KvStore>, Arc<str>), PluginError> {
        self.grant.check_kv()?;
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(PluginError::Fatal(format!(
                "plugin {:?} used a kv key of {} bytes; keys must have 1 to {MAX_KEY_BYTES} bytes",
                self.plugin,
                key.len()
            )));
        }
        let store = self.services.kv.clone().ok_or_else(|| {
            PluginError::Fatal(format!("plugin {:?} used kv, but this Obra has no key-value store", self.plugin))
        })?;
        Ok((store, self.plugin.clone()))
    }
}

fn store_error(e: anyhow::Error) -> PluginError {
    PluginError::Retryable(format!("the key-value store failed: {e:#}"))
}

impl Host for StoreState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        let work =
            self.kv(&key).map(|(store, plugin)| async move { store.get(&plugin, &key).await.map_err(store_error) });
        timed(self.timer("kv.get"), work).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), WitError>> {
        let work = self.kv(&key).and_then(|(store, plugin)| {
            if value.len() > MAX_VALUE_BYTES {
                return Err(PluginError::Fatal(format!(
                    "plugin {plugin:?} tried to store {} bytes under {key:?}; values are capped at {MAX_VALUE_BYTES} bytes",
                    value.len()
                )));
            }
            Ok(async move { store.set(&plugin, &key, &value).await.map_err(store_error) })
        });
        timed(self.timer("kv.set"), work).await
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), WitError>> {
        let work =
            self.kv(&key).map(|(store, plugin)| async move { store.delete(&plugin, &key).await.map_err(store_error) });
        timed(self.timer("kv.delete"), work).await
    }
}
