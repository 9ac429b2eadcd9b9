//! Hot reload: notice that a configuration file changed, load and check the whole configuration again, and
//! hand it over only when it is valid as a whole (see docs/decisions/0009-config-hot-reload.md).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use super::layers::ConfigError;
use super::types::Config;
use super::{ConfigSources, LoadedConfig, load};

/// What a [`ConfigReloader::check`] found.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    /// No file layer changed, or the change does not change any resolved value (e.g. a comment).
    Unchanged,
    /// A valid new configuration and the keys whose value changed.
    Reloaded(Box<LoadedConfig>, Vec<String>),
    /// A file changed but the configuration it makes is invalid; the current one stays.
    Rejected(ConfigError),
}

/// Watches the file layers of one configuration (profile file, project and user config) by content hash.
#[derive(Debug, Clone)]
pub struct ConfigReloader {
    sources: ConfigSources,
    current: LoadedConfig,
    fingerprints: Vec<(PathBuf, Fingerprint)>,
}

/// The content hash of a file, or that it is missing or unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fingerprint {
    Missing,
    Content(u64),
    Unreadable(u64),
}

impl ConfigReloader {
    /// A reloader for `sources`, whose configuration is now `current`; the files are fingerprinted now.
    pub fn new(sources: ConfigSources, current: LoadedConfig) -> Self {
        let mut reloader = Self { sources, current, fingerprints: Vec::new() };
        reloader.fingerprints = reloader.take_fingerprints();
        reloader
    }

    /// The configuration in force: the initial one or the last one reloaded.
    pub fn current(&self) -> &LoadedConfig {
        &self.current
    }

    /// Make `config` the configuration in force again without touching the fingerprints (for a caller that
    /// could not apply a reloaded configuration after all).
    pub fn restore(&mut self, config: LoadedConfig) {
        self.current = config;
    }

    /// The files watched, whether they exist or not (creating one is a change too).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.sources.files()
    }

    fn take_fingerprints(&self) -> Vec<(PathBuf, Fingerprint)> {
        self.watched_files()
            .into_iter()
            .map(|path| {
                let print = match std::fs::read(&path) {
                    Ok(bytes) => Fingerprint::Content(hash(&bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fingerprint::Missing,
                    Err(e) => Fingerprint::Unreadable(hash(e.to_string().as_bytes())),
                };
                (path, print)
            })
            .collect()
    }

    /// Whether a file layer changed since the last check and, if so, the new configuration or why it is
    /// refused. A refused edit is reported once: the next check is `Unchanged` until the files change again.
    pub fn check(&mut self) -> ReloadOutcome {
        let prints = self.take_fingerprints();
        if prints == self.fingerprints {
            return ReloadOutcome::Unchanged;
        }
        self.fingerprints = prints;
        match load(&self.sources) {
            Err(e) => ReloadOutcome::Rejected(e),
            Ok(loaded) => {
                let changed = changed_keys(&self.current, &loaded);
                self.current = loaded.clone();
                if changed.is_empty() {
                    ReloadOutcome::Unchanged
                } else {
                    ReloadOutcome::Reloaded(Box::new(loaded), changed)
                }
            }
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The keys whose resolved value differs between two configurations (added and removed keys included).
pub fn changed_keys(old: &LoadedConfig, new: &LoadedConfig) -> Vec<String> {
    let (old, new) = (old.provenance(), new.provenance());
    let mut changed: Vec<String> = Vec::new();
    for n in &new {
        if old.iter().find(|o| o.key == n.key).map(|o| &o.value) != Some(&n.value) {
            changed.push(n.key.clone());
        }
    }
    for o in &old {
        if !new.iter().any(|n| n.key == o.key) {
            changed.push(o.key.clone());
        }
    }
    changed
}

/// Whether a change to `key` can only take effect when Obra starts again: the store (`database.*`), the plugin
/// runtime (`plugins.*`: search path, cache, limits, grants) and the agent plugin itself (`agent.plugin`).
pub fn needs_restart(key: &str) -> bool {
    key == "database"
        || key.starts_with("database.")
        || key == "plugins"
        || key.starts_with("plugins.")
        || key == "agent.plugin"
}

/// The configuration to run with after a reload: `new`, except the settings that need a restart, which keep
/// their `running` values.
pub fn live_part(running: &Config, new: &Config) -> Config {
    let mut live = new.clone();
    live.database = running.database.clone();
    live.plugins = running.plugins.clone();
    live.agent.plugin = running.agent.plugin.clone();
    live
}
