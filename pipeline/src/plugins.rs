//! WASM scheduler plugins for `scheduler = "wasm:PATH"`: one plugin host per process,
//! created on first use (in `rvs run` that is after the EAL started, as wasmtime's signal
//! handlers must come after DPDK's), and each module compiled once.
//!
//! Built without the `wasm` feature (the instruction-count benches are), a `wasm:` scheduler
//! is refused with a clear error.

use std::path::Path;
use std::sync::Arc;

use rvs_core::sched::SchedulerFactory;

#[cfg(feature = "wasm")]
static HOST: std::sync::OnceLock<Result<rvs_plugin_host::Host, String>> = std::sync::OnceLock::new();

/// The process's plugin host.
#[cfg(feature = "wasm")]
pub fn host() -> Result<&'static rvs_plugin_host::Host, String> {
    HOST.get_or_init(|| {
        rvs_plugin_host::Host::new(rvs_plugin_host::HostConfig::default())
            .map_err(|e| format!("cannot start the plugin host: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Load `path` with its configuration blob and native fallback.
#[cfg(feature = "wasm")]
pub fn load(
    path: &Path,
    config: &[u8],
    fallback: Arc<dyn SchedulerFactory>,
) -> Result<Arc<dyn SchedulerFactory>, String> {
    let f = host()?.load_file(path, config, fallback).map_err(|e| e.to_string())?;
    Ok(f)
}

/// Without the `wasm` feature a plugin cannot be loaded: say so.
#[cfg(not(feature = "wasm"))]
pub fn load(
    path: &Path,
    _config: &[u8],
    _fallback: Arc<dyn SchedulerFactory>,
) -> Result<Arc<dyn SchedulerFactory>, String> {
    Err(format!(
        "plugin {}: rvs was built without the wasm feature",
        path.display()
    ))
}
