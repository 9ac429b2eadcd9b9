//! The on-disk cache of compiled components.
//!
//! A compiled component is stored as `<cache_dir>/<sha256 of the component>-<engine compatibility hash>.cwasm`,
//! prefixed with a magic line and the sha256 of the artifact, so a truncated or corrupted file is detected
//! (and recompiled and overwritten) instead of being handed to `Component::deserialize`. Cache failures never fail
//! a load: the component is compiled in memory instead.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8] = b"OBRA-CWASM-1\n";

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled and stored in the cache.
    Compiled,
    /// The cached file was unusable; compiled again and overwritten.
    Recompiled,
    /// Compiled; the cache could not be used (no cache directory, or it is not writable).
    Uncached,
    /// Not compiled yet: no command in this process needed the plugin (it is compiled on first use).
    NotYet,
}

/// A `Hasher` feeding sha256, to turn the engine's compatibility hash into stable bytes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The compiled-component cache of one engine. Counts hits and compilations (observable in tests and logs).
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    compat: String,
    hits: AtomicU64,
    compilations: AtomicU64,
}

/// `$XDG_CACHE_HOME/obra/components`, or `~/.cache/obra/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("obra").join("components"))
}

impl ComponentCache {
    /// A cache in `dir` (none: no caching) for artifacts of `engine`.
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);
        Self { dir, compat, hits: AtomicU64::new(0), compilations: AtomicU64::new(0) }
    }

    /// The cache directory, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// How many components were loaded from the cache.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many components were compiled.
    pub(crate) fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// The cache file for a component whose sha256 is `sha256`.
    pub(crate) fn path_for(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    fn read(&self, engine: &Engine, path: &Path) -> Result<Component, String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        let rest = data.strip_prefix(MAGIC).ok_or("not an Obra cache file")?;
        if rest.len() < 32 {
            return Err("truncated".into());
        }
        let (digest, artifact) = rest.split_at(32);
        if Sha256::digest(artifact)[..] != *digest {
            return Err("checksum mismatch".into());
        }
        // SAFETY: the bytes are exactly what `Component::serialize` of an engine with the same compatibility hash
        // wrote (checked by the sha256 above, and by wasmtime's own header check), in a directory of this user.
        unsafe { Component::deserialize(engine, artifact) }.map_err(|e| e.to_string())
    }

    fn write(&self, path: &Path, component: &Component) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        let dir = path.parent().ok_or("no parent")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut data = Vec::with_capacity(MAGIC.len() + 32 + artifact.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&Sha256::digest(&artifact));
        data.extend_from_slice(&artifact);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("component"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, &data).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            e.to_string()
        })
    }

    /// The compiled component for `bytes` (whose sha256 is `sha256`): from the cache when possible, compiled
    /// (and cached) otherwise.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
        plugin: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(sha256);
        let mut stale = false;
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            match self.read(engine, path) {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(plugin, path = %path.display(), "compiled component loaded from the cache");
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(e) => {
                    stale = true;
                    tracing::warn!(plugin, path = %path.display(), "cached component unusable ({e}); recompiling");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let outcome = match path {
            Some(path) => match self.write(&path, &component) {
                Ok(()) if stale => CacheOutcome::Recompiled,
                Ok(()) => CacheOutcome::Compiled,
                Err(e) => {
                    tracing::warn!(plugin, path = %path.display(), "cannot write the component cache: {e}");
                    CacheOutcome::Uncached
                }
            },
            None => CacheOutcome::Uncached,
        };
        tracing::debug!(plugin, ?outcome, "component compiled");
        Ok((component, outcome))
    }
}
