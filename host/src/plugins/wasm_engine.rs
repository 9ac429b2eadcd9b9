//! `PluginEngine`: the one `wasmtime::Engine` of a host (component model, epoch interruption), its epoch ticker,
//! the `Linker` with the host capabilities and a locked-down WASI p2, and the compiled-component cache.
//!
//! Every plugin instance keeps an `Arc` of it, so the ticker runs as long as any instance can run guest code.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::bindings;
use super::cache::{CacheOutcome, ComponentCache};
use super::instance_state::StoreState;

/// How often the epoch advances; one tick is the unit of the guest CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A thread that increments the engine's epoch every [`EPOCH_TICK`]; stopped (and joined) on drop.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("obra-epoch-ticker".into()).spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                engine.increment_epoch();
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine, linker, ticker and cache shared by every plugin of one host.
pub(crate) struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) cache: ComponentCache,
    _ticker: EpochTicker,
}

impl PluginEngine {
    /// Build the engine and linker and start the ticker. `cache_dir`: where compiled components are cached.
    pub(crate) fn new(cache_dir: Option<PathBuf>) -> Result<Self, String> {
        let mut config = Config::new();
        // One compilation thread: a cold start (a component not in the cache yet, once per machine and wasmtime
        // version) takes about a fifth longer, but the peak memory of a run stays well under 64 MB (55 instead
        // of 63.6 MB with every built-in kind; docs/PERFORMANCE.md).
        config.wasm_component_model(true).epoch_interruption(true).parallel_compilation(false);
        let engine = Engine::new(&config).map_err(|e| format!("cannot create the WebAssembly engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| bindings::add_to_linker(&mut linker))
            .map_err(|e| format!("cannot link the host capabilities: {e}"))?;
        let ticker = EpochTicker::start(engine.clone()).map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        let cache = ComponentCache::new(&engine, cache_dir);
        Ok(Self { engine, linker, cache, _ticker: ticker })
    }

    /// Compile `bytes` (or load them from the cache). Blocks: compiling takes CPU time.
    pub(crate) fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        plugin: &str,
    ) -> Result<(Component, CacheOutcome), String> {
        self.cache.load_or_compile(&self.engine, bytes, sha256, plugin).map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::manifest::sha256_hex;

    /// The smallest valid component: the preamble of an empty one.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn compiled_components_are_cached_and_corrupt_files_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let engine = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
        let sha = sha256_hex(EMPTY_COMPONENT);
        let (_, first) = engine.compile(EMPTY_COMPONENT, &sha, "t").unwrap();
        assert_eq!(first, CacheOutcome::Compiled);
        let (_, second) = engine.compile(EMPTY_COMPONENT, &sha, "t").unwrap();
        assert_eq!(second, CacheOutcome::Hit);
        assert_eq!((engine.cache.hits(), engine.cache.compilations()), (1, 1));

        let path = engine.cache.path_for(&sha).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let (_, third) = engine.compile(EMPTY_COMPONENT, &sha, "t").unwrap();
        assert_eq!(third, CacheOutcome::Recompiled);
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(engine.compile(EMPTY_COMPONENT, &sha, "t").unwrap().1, CacheOutcome::Recompiled);
        assert_eq!(engine.compile(EMPTY_COMPONENT, &sha, "t").unwrap().1, CacheOutcome::Hit);
    }

    #[test]
    fn an_unwritable_cache_does_not_fail_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let engine = PluginEngine::new(Some(file.join("sub"))).unwrap();
        let (_, outcome) = engine.compile(EMPTY_COMPONENT, &sha256_hex(EMPTY_COMPONENT), "t").unwrap();
        assert_eq!(outcome, CacheOutcome::Uncached);
    }
}
