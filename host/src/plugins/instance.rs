//! `PluginInstance`: one loaded plugin, its `InstancePre`, and a pool of lazily created Stores + instances reused
//! across calls.
//!
//! A plugin loaded from the built-ins or the search path is compiled when it is first needed, not when it is
//! loaded ([`PluginInstance::prepare`]): a command compiles only the plugins it uses (issue 18 item 6).
//!
//! The wall-clock limit of a call is the caller's `CallContext::timeout`, capped by the plugin's effective
//! `call_timeout_secs`. A component instance is single-threaded, so each call takes an idle instance from the
//! pool (or instantiates a new one) and gives it back when it returns: concurrent calls (agents of parallel tasks)
//! never wait for each other, and the pool grows to the largest number of calls in flight. A call whose future is
//! dropped mid-way never gives its instance back, so a half-finished instance is never reused. Every export call runs under `tokio::time::timeout`, a guest CPU budget (epoch ticks;
//! the guest yields to the executor at each tick so the timeout can fire), and the store's memory limit. After a
//! trap, an exhausted CPU budget or a timeout, the Store is dropped (killing any child processes it owned) and the
//! next call instantiates afresh from the `InstancePre`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::bindings::{Bindings, ExportCall, ExportReturn, Pre};
use super::cache::CacheOutcome;
use super::grants::EffectiveGrant;
use super::instance_state::{HostServices, StoreState};
use super::manifest::PluginKind;
use super::quota::PluginQuotas;
use super::wasm_engine::{EPOCH_TICK, PluginEngine};
use crate::contract::{CallContext, PluginError};

/// A Store with its instance (created on the first call that needs it).
struct Live {
    store: Store<StoreState>,
    bindings: Option<Bindings>,
}

/// A component that passed every load check but is not compiled yet: what compiling and linking it takes.
pub(crate) struct Deferred {
    /// The component's bytes.
    pub(crate) wasm: Arc<[u8]>,
    /// Their sha256 (the compile cache's key).
    pub(crate) sha256: String,
    /// The plugin API version its manifest names.
    pub(crate) api_version: String,
    /// The plugin's kind (which export it must have).
    pub(crate) kind: PluginKind,
}

/// A compiled and linked component, and whether the compile cache had it.
pub(crate) struct Prepared {
    pre: Pre,
    cache: CacheOutcome,
}

impl Prepared {
    /// Whether the compile cache had the component.
    pub(crate) fn cache(&self) -> CacheOutcome {
        self.cache
    }
}

/// Compile `wasm` (or load it from the cache) and link it against the host: what a call instantiates from.
/// Blocks: compiling takes CPU time.
pub(crate) fn compile_and_link(
    engine: &PluginEngine,
    name: &str,
    wasm: &[u8],
    sha256: &str,
    api_version: &str,
    kind: PluginKind,
) -> Result<Prepared, CompileFailure> {
    let (component, cache) = engine.compile(wasm, sha256, name).map_err(CompileFailure::Compile)?;
    let pre = engine
        .linker
        .instantiate_pre(&component)
        .and_then(|pre| Pre::new(api_version, kind, pre))
        .map_err(|e| CompileFailure::Link(format!("it does not link against this host: {e:#}")))?;
    Ok(Prepared { pre, cache })
}

/// Why a component could not be made ready.
#[derive(Debug, Clone)]
pub(crate) enum CompileFailure {
    /// Cranelift refused it.
    Compile(String),
    /// It does not link against this host's imports or lacks its kind's export.
    Link(String),
}

impl std::fmt::Display for CompileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileFailure::Compile(e) => write!(f, "it does not compile: {e}"),
            CompileFailure::Link(e) => f.write_str(e),
        }
    }
}

/// One loaded plugin: what is needed to (re)instantiate it and the live instance.
pub(crate) struct PluginInstance {
    pub(crate) name: Arc<str>,
    pub(crate) grant: Arc<EffectiveGrant>,
    /// What the plugin holds now, over all its instances.
    pub(crate) quotas: Arc<PluginQuotas>,
    engine: Arc<PluginEngine>,
    services: Arc<HostServices>,
    /// The compiled, linked component: set at load, or on first need from `deferred`.
    prepared: OnceLock<Result<Prepared, CompileFailure>>,
    /// What compiling on first need takes (None when it was compiled at load).
    deferred: Option<Deferred>,
    /// Held while compiling, so two callers never compile the same component at once.
    preparing: Mutex<()>,
    /// Idle instances, ready for the next call.
    idle: std::sync::Mutex<Vec<Live>>,
    instantiations: AtomicU64,
}

impl PluginInstance {
    /// A plugin compiled at load (`Ok`), or to be compiled when first needed (`Err`).
    pub(crate) fn new(
        name: &str,
        grant: EffectiveGrant,
        engine: Arc<PluginEngine>,
        services: Arc<HostServices>,
        component: Result<Prepared, Deferred>,
    ) -> Self {
        let (prepared, deferred) = match component {
            Ok(prepared) => (OnceLock::from(Ok(prepared)), None),
            Err(deferred) => (OnceLock::new(), Some(deferred)),
        };
        Self {
            name: name.into(),
            grant: Arc::new(grant),
            quotas: Arc::default(),
            engine,
            services,
            prepared,
            deferred,
            preparing: Mutex::new(()),
            idle: std::sync::Mutex::new(Vec::new()),
            instantiations: AtomicU64::new(0),
        }
    }

    /// Compile and link the component unless that was done (blocks while compiling; a failure is kept, so it is
    /// never tried twice).
    pub(crate) fn prepare(&self) -> Result<&Pre, CompileFailure> {
        if let Some(done) = self.prepared.get() {
            return done.as_ref().map(|p| &p.pre).map_err(Clone::clone);
        }
        let _only_one = self.preparing.lock().unwrap_or_else(|e| e.into_inner());
        if self.prepared.get().is_none() {
            let d = self.deferred.as_ref().expect("a plugin not prepared at load has its component deferred");
            let made = compile_and_link(&self.engine, &self.name, &d.wasm, &d.sha256, &d.api_version, d.kind);
            if let Err(e) = &made {
                tracing::error!(plugin = %self.name, "the plugin cannot be used: {e}");
            }
            let _ = self.prepared.set(made);
        }
        let done = self.prepared.get().expect("set above");
        done.as_ref().map(|p| &p.pre).map_err(Clone::clone)
    }

    /// Whether preparing the plugin would compile (it is not prepared, and the compile cache lacks it).
    pub(crate) fn needs_compiling(&self) -> bool {
        self.prepared.get().is_none()
            && self
                .deferred
                .as_ref()
                .is_some_and(|d| !self.engine.cache.path_for(&d.sha256).is_some_and(|cached| cached.is_file()))
    }

    /// How its component was obtained, once it was ([`CacheOutcome::NotYet`] before it is first needed).
    pub(crate) fn cache_outcome(&self) -> CacheOutcome {
        match self.prepared.get() {
            Some(Ok(prepared)) => prepared.cache,
            Some(Err(_)) | None => CacheOutcome::NotYet,
        }
    }

    /// [`Self::prepare`] from async code: on a multi-threaded runtime the compile moves off the executor's
    /// worker (`block_in_place`), so other tasks go on meanwhile.
    fn prepare_in_call(&self) -> Result<&Pre, PluginError> {
        let prepare =
            || self.prepare().map_err(|e| PluginError::Fatal(format!("plugin {:?} cannot be used: {e}", self.name)));
        if self.prepared.get().is_some() {
            return prepare();
        }
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(prepare),
            _ => prepare(),
        }
    }

    /// How many times a Store and instance were created (1 after the first call; +1 after each discard).
    pub(crate) fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    fn new_store(&self) -> Store<StoreState> {
        let state = StoreState::new(self.name.clone(), self.grant.clone(), self.quotas.clone(), self.services.clone());
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            let call = &mut ctx.data_mut().call;
            if call.cpu_ticks_left == 0 {
                call.cpu_exhausted = true;
                return Err(wasmtime::format_err!("the guest CPU budget of the call is used up"));
            }
            call.cpu_ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        store
    }

    /// Why the call failed, for a trap (including memory and CPU exhaustion).
    fn describe_trap(&self, function: &str, error: &wasmtime::Error, state: Option<&StoreState>) -> String {
        let plugin = &self.name;
        let limits = &self.grant.limits;
        if state.is_some_and(|s| s.limiter.exceeded) {
            return format!(
                "plugin {plugin:?} ran out of memory in {function} (limit {} MiB); the instance was discarded",
                limits.memory_mb
            );
        }
        if state.is_some_and(|s| s.call.cpu_exhausted) {
            return format!(
                "plugin {plugin:?} used up its CPU budget in {function} (limit {} ms of guest CPU per call); the instance was discarded",
                limits.cpu_ms_per_call
            );
        }
        let cause = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => error.to_string().lines().next().unwrap_or_default().to_string(),
        };
        let said = state
            .and_then(StoreState::last_stderr_line)
            .map(|line| format!(" (it last wrote: {line:?})"))
            .unwrap_or_default();
        format!("plugin {plugin:?} crashed in {function}: {cause}{said}; the instance was discarded")
    }

    /// Call one export under every limit. See the module documentation for what happens on failure.
    pub(crate) async fn call(&self, ctx: &CallContext, call: ExportCall<'_>) -> Result<ExportReturn, PluginError> {
        let function = call.function();
        let limits = self.grant.limits;
        let ceiling = Duration::from_secs(limits.call_timeout_secs);
        let timeout = ctx.timeout.map_or(ceiling, |t| t.min(ceiling));
        let ticks = (limits.cpu_ms_per_call / EPOCH_TICK.as_millis() as u64).max(1);
        let pre = self.prepare_in_call()?;

        let mut slot: Option<Live> = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let outcome = tokio::time::timeout(timeout, async {
            let live = match slot.as_mut() {
                Some(live) => live,
                None => slot.insert(Live { store: self.new_store(), bindings: None }),
            };
            live.store.data_mut().begin_call(function, ctx, call.config(), ticks);
            live.store.set_epoch_deadline(1);
            if live.bindings.is_none() {
                live.bindings = Some(pre.instantiate(&mut live.store).await?);
            }
            let bindings = live.bindings.as_ref().expect("instantiated above");
            bindings.call(&mut live.store, &call).await
        })
        .await;

        match outcome {
            Ok(Ok(result)) => {
                if let Some(mut live) = slot.take() {
                    live.store.data_mut().end_call();
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(live);
                }
                // The plugin's answer is untrusted text: bounded here, once, before anything keeps it.
                result.map(ExportReturn::bounded).map_err(PluginError::bounded)
            }
            Ok(Err(error)) => {
                let message = self.describe_trap(function, &error, slot.as_ref().map(|l| l.store.data()));
                drop(slot);
                tracing::error!(plugin = %self.name, function, "{message}");
                Err(PluginError::Trapped(message))
            }
            Err(_) => {
                drop(slot);
                let message = format!(
                    "plugin {:?} did not finish {function} within {} s (wall-clock limit); the instance was discarded",
                    self.name,
                    timeout.as_secs_f64()
                );
                tracing::error!(plugin = %self.name, function, "{message}");
                Err(PluginError::Timeout(message))
            }
        }
    }
}
