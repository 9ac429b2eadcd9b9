//! The `kv` capability: small persistent state private to each plugin, kept by the [`KvStore`] the host was
//! given. Needs the `kv` grant; keys are capped at [`MAX_KEY_BYTES`], values by the quota `kv_value_bytes`, and
//! the plugin's whole store by the quota `kv_total_bytes` (checked by the store in the same step as the write).
//!
//! [`KvStore`]: crate::contract::KvStore

use std::sync::Arc;

use super::{WitError, timed};
use crate::contract::{KV_BYTES_PER_KEY, KvStore, KvWrite, PluginError};
use crate::plugins::bindings::v0_1_0::caps::kv::Host;
use crate::plugins::instance_state::StoreState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

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
        let limits = self.grant.limits;
        let quotas = self.quotas.clone();
        let work = self.kv(&key).and_then(|(store, plugin)| {
            if value.len() as u64 > limits.kv_value_bytes {
                return Err(PluginError::Denied(format!(
                    "plugin {plugin:?} tried to store {} bytes under the kv key {key:?}, over its quota of {} bytes \
                     per value (plugins.limits.kv_value_bytes)",
                    value.len(),
                    limits.kv_value_bytes
                )));
            }
            Ok(async move {
                let _one_writer = quotas.kv_writes.lock().await;
                match store.set(&plugin, &key, &value, limits.kv_total_bytes).await.map_err(store_error)? {
                    KvWrite::Stored => Ok(()),
                    KvWrite::OverQuota { used } => Err(PluginError::Denied(format!(
                        "plugin {plugin:?} is at its kv quota of {} bytes (plugins.limits.kv_total_bytes): its other \
                         keys use {used} bytes and {key:?} would add {} (its value plus {KV_BYTES_PER_KEY} per key); \
                         delete keys first, or raise plugins.limits.kv_total_bytes in your config",
                        limits.kv_total_bytes,
                        value.len() as u64 + KV_BYTES_PER_KEY,
                    ))),
                }
            })
        });
        timed(self.timer("kv.set"), work).await
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), WitError>> {
        let work =
            self.kv(&key).map(|(store, plugin)| async move { store.delete(&plugin, &key).await.map_err(store_error) });
        timed(self.timer("kv.delete"), work).await
    }
}
