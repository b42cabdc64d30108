//! The host: one wasmtime [`Engine`] (pooling allocator, epoch interruption or fuel), the
//! clock thread advancing the epoch, the cache of compiled modules, and plugin loading with
//! every check ABI.md asks for.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_core::sched::SchedulerFactory;
use sha2::{Digest, Sha256};
use wasmtime::{
    Caller, Config, Engine, ExternType, InstanceAllocationStrategy, Linker, Module, OptLevel, PoolingAllocationConfig,
    ValType,
};

use crate::abi;
use crate::error::LoadError;
use crate::plugin::{Guest, PluginFactory, Prepared};

/// How calls into a plugin are bounded in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Epoch interruption (production): a clock thread advances the engine's epoch every
    /// `tick`; a pick may run `deadline_ticks` ticks, so it is stopped after between
    /// `deadline_ticks - 1` and `deadline_ticks` ticks (use 2 or more, or a pick that starts
    /// just before a tick is cut short). Load, configuration and table updates get
    /// `setup_ticks`.
    Epoch {
        /// Clock period.
        tick: Duration,
        /// Ticks a pick may run.
        deadline_ticks: u64,
        /// Ticks setup calls may run.
        setup_ticks: u64,
    },
    /// Fuel (tests: deterministic however loaded the machine is): a budget of wasm
    /// operations per pick and per setup call.
    Fuel {
        /// Fuel per pick.
        pick: u64,
        /// Fuel per setup call.
        setup: u64,
    },
}

impl Bound {
    /// The production default: 1 ms tick, 2-tick pick deadline, 200 ms for setup.
    pub const EPOCH_DEFAULT: Bound = Bound::Epoch {
        tick: Duration::from_millis(1),
        deadline_ticks: 2,
        setup_ticks: 200,
    };
    /// The test default: 1 M operations per pick, 200 M per setup call.
    pub const FUEL_DEFAULT: Bound = Bound::Fuel {
        pick: 1_000_000,
        setup: 200_000_000,
    };
}

/// Host settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Time bound on every call.
    pub bound: Bound,
    /// Cap on each instance's linear memory, bytes.
    pub memory_cap: usize,
    /// Native stack available to wasm, bytes.
    pub max_wasm_stack: usize,
    /// Instances the pooling allocator holds (one per lcore per service per plugin, plus
    /// instances being prepared during a reload and the load-time probes).
    pub pool_instances: u32,
    /// Where compiled modules are kept across runs (`None`: in memory only).
    pub cache_dir: Option<PathBuf>,
    /// Faults (all lcores of a service together) after which the plugin is disabled.
    pub max_faults: u32,
    /// Faults add up toward `max_faults` only while each comes within this long of the one
    /// before: after a quiet window the count starts again from zero, so a plugin that faults
    /// rarely (a call cut short once in a while on a loaded core) is never disabled for it.
    pub fault_window: Duration,
    /// First backoff before rebuilding a faulted instance; doubles per consecutive fault.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            bound: Bound::EPOCH_DEFAULT,
            memory_cap: 16 << 20,
            max_wasm_stack: 512 << 10,
            pool_instances: 256,
            cache_dir: None,
            max_faults: 8,
            fault_window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// Per-engine state shared with every factory (and the clock thread's stop flag).
pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Guest>,
    pub(crate) cfg: HostConfig,
    modules: Mutex<HashMap<[u8; 32], Module>>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for HostInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostInner")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut t) = self.ticker.lock()
            && let Some(h) = t.take()
        {
            let _ = h.join();
        }
    }
}

/// The plugin host. Create one per process (after DPDK's EAL init: wasmtime installs signal
/// handlers for its traps), load plugins with [`Host::load_file`] or [`Host::load_bytes`].
#[derive(Debug, Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

impl Host {
    /// A host with these settings (starts the epoch clock thread in epoch mode).
    pub fn new(cfg: HostConfig) -> Result<Host, LoadError> {
        let mut c = Config::new();
        c.cranelift_opt_level(OptLevel::Speed);
        c.max_wasm_stack(cfg.max_wasm_stack);
        c.parallel_compilation(true);
        match cfg.bound {
            Bound::Epoch { .. } => {
                c.epoch_interruption(true);
            }
            Bound::Fuel { .. } => {
                c.consume_fuel(true);
            }
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(cfg.pool_instances);
        pool.total_memories(cfg.pool_instances);
        pool.total_tables(cfg.pool_instances);
        pool.max_memory_size(cfg.memory_cap);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(|e| LoadError::Engine(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                abi::IMPORT_MODULE,
                abi::IMPORT_LOG,
                |mut caller: Caller<'_, Guest>, level: i32, ptr: i32, len: i32| {
                    let Some(mem) = caller.get_export(abi::export::MEMORY).and_then(|e| e.into_memory()) else {
                        return;
                    };
                    let (data, guest) = mem.data_and_store_mut(&mut caller);
                    guest.log(level, data, ptr, len);
                },
            )
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = match cfg.bound {
            Bound::Epoch { tick, .. } => {
                let weak = engine.weak();
                let stop = stop.clone();
                let h = std::thread::Builder::new()
                    .name("rvs-wasm-epoch".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(tick);
                            match weak.upgrade() {
                                Some(e) => e.increment_epoch(),
                                None => break,
                            }
                        }
                    })
                    .map_err(|e| LoadError::Engine(format!("epoch clock thread: {e}")))?;
                Some(h)
            }
            Bound::Fuel { .. } => None,
        };
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cfg,
                modules: Mutex::new(HashMap::new()),
                stop,
                ticker: Mutex::new(ticker),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HostConfig {
        &self.inner.cfg
    }

    /// The engine (benches and tests advance its epoch by hand).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Load `path` as the scheduler `wasm:PATH`, with a configuration blob (empty: none)
    /// and the native scheduler that takes over on a fault. Compiles on the calling thread:
    /// call it off the data path (the control plane), then publish the factory in a new
    /// service snapshot.
    pub fn load_file(
        &self,
        path: &Path,
        config: &[u8],
        fallback: Arc<dyn SchedulerFactory>,
    ) -> Result<Arc<PluginFactory>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&format!("wasm:{}", path.display()), &bytes, config, fallback)
    }

    /// Load a plugin from its bytes (binary module or WAT text) under `name`.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        config: &[u8],
        fallback: Arc<dyn SchedulerFactory>,
    ) -> Result<Arc<PluginFactory>, LoadError> {
        let module = self.compile(name, bytes)?;
        let exports = check_module(name, &module, self.inner.cfg.memory_cap)?;
        if !config.is_empty() && !exports.configure {
            return Err(LoadError::ConfigUnsupported { name: name.into() });
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile {
                name: name.into(),
                reason: e.to_string(),
            })?;
        let prepared = Prepared {
            name: name.into(),
            pre,
            config: config.into(),
            update: exports.update,
            configure: exports.configure,
        };
        prepared.probe(&self.inner)?;
        Ok(Arc::new(PluginFactory::new(self.inner.clone(), prepared, fallback)))
    }

    /// The compiled module for `bytes`: from memory, from the cache directory, or compiled
    /// (and then stored in both).
    fn compile(&self, name: &str, bytes: &[u8]) -> Result<Module, LoadError> {
        classify(name, bytes)?;
        let key: [u8; 32] = Sha256::digest(bytes).into();
        if let Ok(m) = self.inner.modules.lock()
            && let Some(module) = m.get(&key)
        {
            return Ok(module.clone());
        }
        let cached = self.cache_path(&key);
        let mut module = None;
        if let Some(p) = cached.as_ref() {
            match std::fs::read(p) {
                Ok(artifact) => {
                    // SAFETY: `Module::deserialize` trusts its input to be an artifact that
                    // `Module::serialize` produced (it is machine code that will run). The
                    // file is named by the SHA-256 of the plugin's source bytes and a hash of
                    // this engine's compatibility settings; only `store_artifact` writes into
                    // the cache directory (atomically, by rename), from a module this host
                    // compiled itself; the directory belongs to the operator and is as
                    // trusted as the rvs binary. wasmtime still checks the artifact's
                    // wasmtime version and engine settings and refuses a mismatch. The bytes
                    // are read into memory first (not `deserialize_file`, which maps the
                    // file: truncating a mapped file would fault the process).
                    #[allow(unsafe_code)]
                    let m = unsafe { Module::deserialize(&self.inner.engine, &artifact) };
                    match m {
                        Ok(m) => module = Some(m),
                        Err(e) => tracing::warn!(plugin = name, cache = %p.display(), "ignoring cached module: {e}"),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(plugin = name, cache = %p.display(), "cannot read cached module: {e}"),
            }
        }
        let module = match module {
            Some(m) => m,
            None => {
                let m = Module::new(&self.inner.engine, bytes).map_err(|e| {
                    let reason = format!("{e:#}");
                    if reason.contains("pooling allocator") {
                        LoadError::Limits {
                            name: name.into(),
                            cap: self.inner.cfg.memory_cap,
                            reason,
                        }
                    } else {
                        LoadError::Compile {
                            name: name.into(),
                            reason,
                        }
                    }
                })?;
                if let Some(p) = cached {
                    store_artifact(&m, &p, name);
                }
                m
            }
        };
        if let Ok(mut m) = self.inner.modules.lock() {
            m.insert(key, module.clone());
        }
        Ok(module)
    }

    fn cache_path(&self, key: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.inner.cfg.cache_dir.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.engine.precompile_compatibility_hash().hash(&mut h);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{hex}-{:016x}.cwasm", h.finish())))
    }

    /// Compiled modules held in memory.
    pub fn cached_modules(&self) -> usize {
        self.inner.modules.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn store_artifact(m: &Module, path: &Path, name: &str) {
    let res = (|| -> std::io::Result<()> {
        let bytes = m.serialize().map_err(std::io::Error::other)?;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        tracing::warn!(plugin = name, cache = %path.display(), "cannot store compiled module: {e}");
    }
}

/// Binary core module, component, WAT text, or nothing we know.
fn classify(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if let Some(rest) = bytes.strip_prefix(b"\0asm") {
        // Core modules: version 1, layer 0. Components: layer 1.
        return match rest.get(..4) {
            Some([_, _, 1, 0]) => Err(LoadError::Component { name: name.into() }),
            _ => Ok(()),
        };
    }
    let text = std::str::from_utf8(bytes).ok().map(str::trim_start);
    match text {
        Some(t) if t.starts_with('(') || t.starts_with(";;") => Ok(()),
        _ => Err(LoadError::NotWasm { name: name.into() }),
    }
}

/// What the optional exports say.
pub(crate) struct Exports {
    update: bool,
    configure: bool,
}

fn func_sig(ty: &wasmtime::FuncType) -> String {
    let p: Vec<String> = ty.params().map(|t| t.to_string()).collect();
    let r: Vec<String> = ty.results().map(|t| t.to_string()).collect();
    format!("func ({}) -> ({})", p.join(", "), r.join(", "))
}

fn is_i32(t: &ValType) -> bool {
    matches!(t, ValType::I32)
}

/// Check exports and imports against ABI.md.
fn check_module(name: &str, module: &Module, memory_cap: usize) -> Result<Exports, LoadError> {
    for imp in module.imports() {
        let ok = imp.module() == abi::IMPORT_MODULE
            && imp.name() == abi::IMPORT_LOG
            && matches!(imp.ty(), ExternType::Func(f)
                if f.params().len() == 3 && f.params().all(|t| is_i32(&t)) && f.results().len() == 0);
        if !ok {
            return Err(LoadError::Import {
                name: name.into(),
                module: imp.module().into(),
                field: imp.name().into(),
            });
        }
    }
    let mut marker_majors = vec![];
    let mut have = HashMap::new();
    for exp in module.exports() {
        if let Some(v) = exp.name().strip_prefix(abi::MARKER_PREFIX)
            && let Ok(n) = v.parse::<u32>()
        {
            marker_majors.push(n);
        }
        have.insert(exp.name().to_string(), exp.ty());
    }
    if !marker_majors.contains(&abi::MAJOR) {
        return Err(match marker_majors.first() {
            Some(&found) => LoadError::UnknownMajor {
                name: name.into(),
                found,
                supported: abi::MAJOR,
            },
            None => LoadError::NoMarker { name: name.into() },
        });
    }
    let func = |export: &'static str, params: usize, required: bool| -> Result<bool, LoadError> {
        match have.get(export) {
            None if required => Err(LoadError::MissingExport {
                name: name.into(),
                export,
            }),
            None => Ok(false),
            Some(ExternType::Func(f))
                if f.params().len() == params
                    && f.params().all(|t| is_i32(&t))
                    && f.results().len() == 1
                    && f.results().all(|t| is_i32(&t)) =>
            {
                Ok(true)
            }
            Some(other) => Err(LoadError::ExportType {
                name: name.into(),
                export: export.into(),
                expected: if params == 0 {
                    "func () -> (i32)"
                } else {
                    "func (i32) -> (i32)"
                },
                found: match other {
                    ExternType::Func(f) => func_sig(f),
                    ExternType::Memory(_) => "a memory".into(),
                    ExternType::Table(_) => "a table".into(),
                    ExternType::Global(_) => "a global".into(),
                    _ => "something else".into(),
                },
            }),
        }
    };
    func(abi::export::MARKER_V1, 0, true)?;
    func(abi::export::PICK, 0, true)?;
    func(abi::export::TABLE, 1, true)?;
    let update = func(abi::export::TABLE_UPDATE, 1, false)?;
    let buf = func(abi::export::CONFIG_BUF, 1, false)?;
    let conf = func(abi::export::CONFIGURE, 1, false)?;
    if buf != conf {
        return Err(LoadError::MissingExport {
            name: name.into(),
            export: if buf {
                abi::export::CONFIGURE
            } else {
                abi::export::CONFIG_BUF
            },
        });
    }
    match have.get(abi::export::MEMORY) {
        None => {
            return Err(LoadError::MissingExport {
                name: name.into(),
                export: abi::export::MEMORY,
            });
        }
        Some(ExternType::Memory(m)) => {
            if m.is_64() || m.is_shared() {
                return Err(LoadError::Memory {
                    name: name.into(),
                    what: "must be a 32-bit, unshared memory".into(),
                });
            }
            let initial = m.minimum().saturating_mul(65536);
            if initial > memory_cap as u64 {
                return Err(LoadError::Memory {
                    name: name.into(),
                    what: format!(
                        "starts at {initial} bytes, beyond the host's cap of {memory_cap} bytes (a memory without a maximum is fine, but it must start below the cap)"
                    ),
                });
            }
        }
        Some(_) => {
            return Err(LoadError::ExportType {
                name: name.into(),
                export: abi::export::MEMORY.into(),
                expected: "a memory",
                found: "another kind of export".into(),
            });
        }
    }
    Ok(Exports {
        update,
        configure: conf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        assert!(classify("x", b"\0asm\x01\0\0\0").is_ok());
        assert!(matches!(
            classify("x", b"\0asm\x0d\0\x01\0"),
            Err(LoadError::Component { .. })
        ));
        assert!(classify("x", b"  (module)").is_ok());
        assert!(matches!(classify("x", b"\x7fELF...."), Err(LoadError::NotWasm { .. })));
    }
}
