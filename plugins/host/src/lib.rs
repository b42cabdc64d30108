//! rvs-plugin-host: the wasmtime host for WebAssembly scheduler plugins.
//!
//! A plugin is a core wasm module speaking the versioned ABI of `plugins/ABI.md` (records
//! and offsets in [`abi`], asserted at compile time). The host:
//!
//! - keeps **one [`wasmtime::Engine`]** per [`Host`], with the pooling allocator, a bounded
//!   wasm stack, and either epoch interruption (a clock thread advances the epoch; every
//!   pick gets a deadline) or fuel (deterministic; what the containment tests use);
//! - **compiles each module once** (by SHA-256 of its bytes, in memory, and optionally as
//!   precompiled artifacts in a cache directory) and checks exports, imports (only
//!   `rvs.log`, no WASI), the version marker and the memory before anything runs; a bad
//!   module is a [`LoadError`] naming what is wrong;
//! - gives each lcore its own store and instance from a shared `InstancePre`
//!   ([`PluginFactory`] implements rvs-core's `SchedulerFactory`, [`PluginScheduler`] its
//!   `Scheduler`), with typed function handles cached, memory capped by a resource limiter;
//! - keeps the service's destination table **in the plugin's memory**: the static part is
//!   rewritten with a new generation on `refresh`, and each pick writes only the counters that
//!   changed since the previous pick (from `LoadTable`'s change log), then the flow, then
//!   calls the typed pick function and checks the answer;
//! - **contains faults**: a trap, a timeout, the memory cap or a bad answer sends that pick to
//!   the service's native fallback scheduler, drops the instance and rebuilds it after an
//!   exponential backoff; after repeated faults the plugin is disabled for the service. Each
//!   case is counted by kind ([`PluginStats`]) and logged through `tracing`, rate-limited.
//!
//! Hot reload: [`Host::load_file`] compiles and probes a new plugin on the calling (control)
//! thread and returns a new factory; the control plane publishes it in the next service
//! snapshot, and each lcore builds its instance with [`PluginFactory::prepare`] (no lock a
//! pick takes), so existing connections, which keep their destinations in the connection
//! table, are untouched.
//!
//! Cost, measured by `cargo bench -p rvs-plugin-host --bench plugin` (64 destinations,
//! through the `Scheduler` trait, two counter changes mirrored per pick, epoch deadline set
//! on every call; 2 vCPU shared with other builds, load average 2 to 4 during the run; no
//! fault and no fallback counted during the run):
//!
//! | bench | time | target |
//! |---|---|---|
//! | native wlc pick | 138 ns | |
//! | wasm wlc (C) pick | 157 ns (1.14x native) | within 3x: met |
//! | native sh pick | 10.4 ns | |
//! | O(1) wasm pick (`hash.c`) | 32.7 ns (3.1x native sh) | <= 40 ns: met |
//! | instance rebuild (`prepare`) | 2.4 us | <= 15 us: met |
//! | hot swap on one lcore (new instance, 64-entry table, first pick, old dropped) | 6.2 us | <= 100 us: met |
//!
//! The pick path borrows the plugin's memory once per pick, mirrors the changed counter
//! records into one pre-checked slice, and encodes the flow record in place (no intermediate
//! copy). Instructions per pick, stable where wall time is not:
//! `cargo run --release -p rvs-plugin-host --example pick_loop -- hash.wasm N` under
//! `valgrind --tool=callgrind` at two values of N (the example says how): 673 per pick of
//! `hash.c` with the two counter updates and the loop included (756 before that change, when
//! the same bench gave 52 ns and 4.4x native sh). Of the 673, wasmtime's call (entry,
//! trampolines, trap catching) is about 160 and the plugin's own code about 75.
//!
//! Not done here: the whole-graph new-connections-per-second comparison (the pipeline's) and
//! the `scheduler = "wasm:PATH"` config parsing (the pipeline's control plane calls
//! [`Host::load_file`] with the fallback factory it resolved).
//!
//! The only `unsafe` is `Module::deserialize_file` of the artifact cache (see `host.rs`).

#![deny(unsafe_code)]

pub mod abi;
mod error;
mod host;
mod plugin;

pub use error::LoadError;
pub use host::{Bound, Host, HostConfig};
pub use plugin::{FaultKind, PluginFactory, PluginScheduler, PluginStats};
