//! `StoreState`: the data of one plugin instance's `wasmtime::Store`.
//!
//! It owns the instance's WASI context (locked down: no preopened directories, no environment, no arguments,
//! no network), its resource table (child processes, HTTP streams), its memory limiter, and the state of the
//! current export call (the caller's [`CallContext`], the call's config, the CPU budget left). Host capability
//! implementations (`caps/`) are methods on it.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::grants::EffectiveGrant;
use super::quota::PluginQuotas;
use super::stdio::{GuestOutput, Stream};
use crate::contract::{CallContext, KvStore, PluginError};

/// Services shared by every plugin of one host: the HTTP client and the key-value store.
pub(crate) struct HostServices {
    /// The HTTP client (no redirects followed).
    pub(crate) http: reqwest::Client,
    /// Per-plugin persistent state, when the host was given one.
    pub(crate) kv: Option<Arc<dyn KvStore>>,
}

impl HostServices {
    /// Build the shared services.
    pub(crate) fn new(kv: Option<Arc<dyn KvStore>>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, kv })
    }
}

/// A memory limiter that remembers whether the guest hit its limit, so the error can say so.
pub(crate) struct Limiter {
    inner: StoreLimits,
    /// Set when a memory or table growth was refused.
    pub(crate) exceeded: bool,
}

impl Limiter {
    fn new(memory_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .table_elements(1_000_000)
            .instances(100)
            .tables(100)
            .memories(100)
            .trap_on_grow_failure(true)
            .build();
        Self { inner, exceeded: false }
    }

    fn note(&mut self, r: wasmtime::Result<bool>) -> wasmtime::Result<bool> {
        if !matches!(r, Ok(true)) {
            self.exceeded = true;
        }
        r
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        self.note(r)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exceeded = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let r = self.inner.table_growing(current, desired, maximum);
        self.note(r)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exceeded = true;
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The state of the export call in progress.
#[derive(Default)]
pub(crate) struct CallState {
    /// `agent.run`, `quality-gate.check`, ...
    pub(crate) function: &'static str,
    /// What the caller gave: workspace, LLM, progress channel.
    pub(crate) ctx: CallContext,
    /// The plugin's config section of this call, parsed (null when none or not JSON).
    pub(crate) config: serde_json::Value,
    /// Epoch ticks of guest execution left before the call is stopped.
    pub(crate) cpu_ticks_left: u64,
    /// Set when the CPU budget ran out.
    pub(crate) cpu_exhausted: bool,
    /// Failed actions an agent reported through `agent-report` during this `agent.run` (bounded there).
    pub(crate) failed_actions: Vec<String>,
    /// Bytes of log lines written in this call (quota `log_bytes_per_call`).
    pub(crate) log_bytes: u64,
    /// Bytes of progress lines sent in this call (quota `progress_bytes_per_call`).
    pub(crate) progress_bytes: u64,
}

/// The data of one plugin instance's store.
pub(crate) struct StoreState {
    /// The plugin's name.
    pub(crate) plugin: Arc<str>,
    /// What the plugin may do.
    pub(crate) grant: Arc<EffectiveGrant>,
    /// The plugin's live-resource counters, shared with its other instances.
    pub(crate) quotas: Arc<PluginQuotas>,
    /// Shared host services.
    pub(crate) services: Arc<HostServices>,
    /// The export call in progress.
    pub(crate) call: CallState,
    /// Host resources the guest holds handles to.
    pub(crate) table: ResourceTable,
    /// Memory limits.
    pub(crate) limiter: Limiter,
    wasi: WasiCtx,
    stdout: GuestOutput,
    stderr: GuestOutput,
}

impl StoreState {
    /// Fresh state for a new instance of `plugin`, counting against the plugin's `quotas`.
    pub(crate) fn new(
        plugin: Arc<str>,
        grant: Arc<EffectiveGrant>,
        quotas: Arc<PluginQuotas>,
        services: Arc<HostServices>,
    ) -> Self {
        let stdout = GuestOutput::new(plugin.clone(), Stream::Stdout);
        let stderr = GuestOutput::new(plugin.clone(), Stream::Stderr);
        // No preopens, no env, no args; stdin is empty. Sockets are refused at load time (see inspect.rs) and, in
        // depth, denied here too.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let memory_bytes = usize::try_from(grant.limits.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        Self {
            plugin,
            grant,
            quotas,
            services,
            call: CallState::default(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            wasi,
            stdout,
            stderr,
        }
    }

    /// Prepare for an export call.
    pub(crate) fn begin_call(&mut self, function: &'static str, ctx: &CallContext, config: Option<&str>, ticks: u64) {
        let config = config.and_then(|c| serde_json::from_str(c).ok()).unwrap_or(serde_json::Value::Null);
        self.call = CallState {
            function,
            ctx: ctx.clone(),
            config,
            cpu_ticks_left: ticks,
            cpu_exhausted: false,
            failed_actions: Vec::new(),
            log_bytes: 0,
            progress_bytes: 0,
        };
        self.limiter.exceeded = false;
        self.stdout.begin_call();
        self.stderr.begin_call();
    }

    /// Forget the caller's context once the call is over (so the store does not keep the LLM or channel alive).
    pub(crate) fn end_call(&mut self) {
        self.call.ctx = CallContext::default();
        self.call.config = serde_json::Value::Null;
    }

    /// The last line the guest wrote to stderr during this call.
    pub(crate) fn last_stderr_line(&self) -> Option<String> {
        self.stderr.last_line()
    }

    /// The wall-clock limit of one host call.
    pub(crate) fn host_call_timeout(&self) -> Duration {
        Duration::from_secs(self.grant.limits.host_call_timeout_secs)
    }

    /// A timer for one host call's work: the host-call time limit (epochs do not interrupt host code).
    pub(crate) fn timer(&self, what: &'static str) -> HostTimer {
        HostTimer { plugin: self.plugin.clone(), what, limit: self.host_call_timeout() }
    }
}

/// Runs one host call's work under the host-call time limit. Owned, so no borrow of the store is held while the
/// work is awaited.
pub(crate) struct HostTimer {
    plugin: Arc<str>,
    what: &'static str,
    limit: Duration,
}

impl HostTimer {
    /// Run `work`, failing with `timeout` when it takes longer than the limit.
    pub(crate) async fn run<T>(self, work: impl Future<Output = Result<T, PluginError>>) -> Result<T, PluginError> {
        tokio::time::timeout(self.limit, work).await.unwrap_or_else(|_| {
            Err(PluginError::Timeout(format!(
                "plugin {:?}: {} did not finish within the host-call limit of {} s (plugins.limits.host_call_timeout_secs)",
                self.plugin,
                self.what,
                self.limit.as_secs()
            )))
        })
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_remembers_a_refused_growth() {
        let mut l = Limiter::new(1024);
        assert!(l.memory_growing(0, 512, None).unwrap());
        assert!(!l.exceeded);
        assert!(l.memory_growing(512, 4096, None).is_err());
        assert!(l.exceeded);
    }
}
