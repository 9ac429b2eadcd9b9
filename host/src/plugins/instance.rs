//! `PluginInstance`: one loaded plugin, its `InstancePre`, and a pool of lazily created Stores + instances reused
//! across calls.
//!
//! The wall-clock limit of a call is the caller's `CallContext::timeout`, capped by the plugin's effective
//! `call_timeout_secs`. A component instance is single-threaded, so each call takes an idle instance from the
//! pool (or instantiates a new one) and gives it back when it returns: concurrent calls (agents of parallel tasks)
//! never wait for each other, and the pool grows to the largest number of calls in flight. A call whose future is
//! dropped mid-way never gives its instance back, so a half-finished instance is never reused. Every export call runs under `tokio::time::timeout`, a guest CPU budget (epoch ticks;
//! the guest yields to the executor at each tick so the timeout can fire), and the store's memory limit. After a
//! trap, an exhausted CPU budget or a timeout, the Store is dropped (killing any child processes it owned) and the
//! next call instantiates afresh from the `InstancePre`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::bindings::{Bindings, ExportCall, ExportReturn, Pre};
use super::grants::EffectiveGrant;
use super::instance_state::{HostServices, StoreState};
use super::quota::PluginQuotas;
use super::wasm_engine::{EPOCH_TICK, PluginEngine};
use crate::contract::{CallContext, PluginError};

/// A Store with its instance (created on the first call that needs it).
struct Live {
    store: Store<StoreState>,
    bindings: Option<Bindings>,
}

/// One loaded plugin: what is needed to (re)instantiate it and the live instance.
pub(crate) struct PluginInstance {
    pub(crate) name: Arc<str>,
    pub(crate) grant: Arc<EffectiveGrant>,
    /// What the plugin holds now, over all its instances.
    pub(crate) quotas: Arc<PluginQuotas>,
    engine: Arc<PluginEngine>,
    services: Arc<HostServices>,
    pre: Pre,
    /// Idle instances, ready for the next call.
    idle: std::sync::Mutex<Vec<Live>>,
    instantiations: AtomicU64,
}

impl PluginInstance {
    /// A plugin ready to be called.
    pub(crate) fn new(
        name: &str,
        grant: EffectiveGrant,
        engine: Arc<PluginEngine>,
        services: Arc<HostServices>,
        pre: Pre,
    ) -> Self {
        Self {
            name: name.into(),
            grant: Arc::new(grant),
            quotas: Arc::default(),
            engine,
            services,
            pre,
            idle: std::sync::Mutex::new(Vec::new()),
            instantiations: AtomicU64::new(0),
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

        let mut slot: Option<Live> = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let outcome = tokio::time::timeout(timeout, async {
            let live = match slot.as_mut() {
                Some(live) => live,
                None => slot.insert(Live { store: self.new_store(), bindings: None }),
            };
            live.store.data_mut().begin_call(function, ctx, call.config(), ticks);
            live.store.set_epoch_deadline(1);
            if live.bindings.is_none() {
                live.bindings = Some(self.pre.instantiate(&mut live.store).await?);
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
