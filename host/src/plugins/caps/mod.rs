//! Host capability implementations, one module per WIT interface. Each checks the plugin's effective grant
//! before any side effect and runs its work under the host-call time limit.

pub(crate) mod agent_report;
pub mod http;
pub(crate) mod kv;
pub(crate) mod llm;
pub(crate) mod log;
pub mod process;
pub(crate) mod workspace;

use crate::contract::PluginError;
use crate::plugins::instance_state::HostTimer;

/// The WIT `plugin-error` of the latest API version.
pub(crate) type WitError = crate::plugins::bindings::v0_1_0::caps::types::PluginError;

/// Run checked work under the host-call timer, converting errors to the WIT type. `work` is the result of the
/// checks: an error there means nothing was done.
pub(crate) async fn timed<T>(
    timer: HostTimer,
    work: Result<impl Future<Output = Result<T, PluginError>>, PluginError>,
) -> wasmtime::Result<Result<T, WitError>> {
    Ok(match work {
        Ok(work) => timer.run(work).await.map_err(Into::into),
        Err(e) => Err(e.into()),
    })
}

impl crate::plugins::bindings::v0_1_0::caps::types::Host for crate::plugins::instance_state::StoreState {}
