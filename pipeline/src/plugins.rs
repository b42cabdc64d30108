//! WASM scheduler plugins for `scheduler = "wasm:PATH"`: one plugin host per process,
//! created on first use (in `rvs run` that is after the EAL started, as wasmtime's signal
//! handlers must come after DPDK's), and each module compiled once.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rvs_core::sched::SchedulerFactory;
use rvs_plugin_host::{Host, HostConfig};

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();

/// The process's plugin host.
pub fn host() -> Result<&'static Host, String> {
    HOST.get_or_init(|| Host::new(HostConfig::default()).map_err(|e| format!("cannot start the plugin host: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// Load `path` with its configuration blob and native fallback.
pub fn load(
    path: &Path,
    config: &[u8],
    fallback: Arc<dyn SchedulerFactory>,
) -> Result<Arc<dyn SchedulerFactory>, String> {
    let f = host()?.load_file(path, config, fallback).map_err(|e| e.to_string())?;
    Ok(f)
}
