//! Per-plugin quotas on what a plugin holds at once: live child processes and HTTP streams (ADR 37).
//!
//! One [`PluginQuotas`] belongs to each loaded plugin and is shared by every instance of it, so concurrent calls
//! (the agents of parallel tasks) count together. A [`Permit`] is taken before the resource is created and
//! released when the resource is dropped, whichever way that happens: the guest drops its handle, the call's
//! store is discarded after a trap or timeout, or a `run` returns. A plugin over a quota is denied with an error
//! naming the quota's config key; nothing is taken from the other plugins, which have their own counters.
//!
//! The kv quotas are enforced by the store in one statement (see `caps::kv`), and the per-call log and progress
//! volume by the call's state (see `caps::log`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::contract::PluginError;

/// A resource counted against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// A program started by `process.run` (while it runs) or `process.spawn` (until its handle is dropped).
    Child,
    /// An HTTP request in flight, or a response stream not yet dropped.
    HttpStream,
}

impl Counted {
    /// The key under `plugins.limits` (and the manifest's `[limits]`) that sets the quota.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Child => "max_children",
            Self::HttpStream => "max_http_streams",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Child => "live child processes",
            Self::HttpStream => "open HTTP requests and streams",
        }
    }

    fn how_to_free(self) -> &'static str {
        match self {
            Self::Child => "wait for or drop a child first",
            Self::HttpStream => "read a stream to its end and drop it first",
        }
    }
}

/// The live-resource counters of one plugin.
#[derive(Debug, Default)]
pub(crate) struct PluginQuotas {
    children: Arc<AtomicU64>,
    http_streams: Arc<AtomicU64>,
    /// Serialises this plugin's kv writes in this process, so the total checked is the total written.
    pub(crate) kv_writes: tokio::sync::Mutex<()>,
}

impl PluginQuotas {
    fn counter(&self, counted: Counted) -> &Arc<AtomicU64> {
        match counted {
            Counted::Child => &self.children,
            Counted::HttpStream => &self.http_streams,
        }
    }

    /// How many of `counted` the plugin holds now.
    #[cfg(test)]
    pub(crate) fn held(&self, counted: Counted) -> u64 {
        self.counter(counted).load(Ordering::Acquire)
    }

    /// Take one of `counted` if the plugin holds fewer than `limit`; the permit gives it back when dropped.
    pub(crate) fn take(&self, plugin: &str, counted: Counted, limit: u64) -> Result<Permit, PluginError> {
        let counter = self.counter(counted);
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| (held < limit).then_some(held + 1)).map_err(
            |held| {
                PluginError::Denied(format!(
                    "plugin {plugin:?} is at its quota of {limit} {} (it holds {held}; plugins.limits.{key}): {}, \
                     or raise plugins.limits.{key} in your config",
                    counted.what(),
                    counted.how_to_free(),
                    key = counted.key(),
                ))
            },
        )?;
        Ok(Permit { counter: counter.clone() })
    }
}

/// One unit of a quota, held by the resource it was taken for.
#[derive(Debug)]
pub(crate) struct Permit {
    counter: Arc<AtomicU64>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_up_to_the_limit_and_come_back_when_dropped() {
        let quotas = PluginQuotas::default();
        let first = quotas.take("p", Counted::Child, 2).unwrap();
        let _second = quotas.take("p", Counted::Child, 2).unwrap();
        let PluginError::Denied(message) = quotas.take("p", Counted::Child, 2).unwrap_err() else { panic!() };
        assert!(message.contains("plugins.limits.max_children") && message.contains("quota of 2"), "{message}");
        assert_eq!(quotas.held(Counted::Child), 2);
        // The other quota is counted apart.
        let _stream = quotas.take("p", Counted::HttpStream, 1).unwrap();
        drop(first);
        assert_eq!(quotas.held(Counted::Child), 1);
        let _third = quotas.take("p", Counted::Child, 2).unwrap();
        let PluginError::Denied(message) = quotas.take("p", Counted::HttpStream, 1).unwrap_err() else { panic!() };
        assert!(message.contains("plugins.limits.max_http_streams"), "{message}");
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let quotas = Arc::new(PluginQuotas::default());
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (quotas, held) = (quotas.clone(), held.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if let Ok(permit) = quotas.take("p", Counted::Child, 5) {
                            held.lock().unwrap().push(permit);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(held.lock().unwrap().len(), 5);
        assert_eq!(quotas.held(Counted::Child), 5);
    }
}
