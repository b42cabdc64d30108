//! A loaded plugin ([`PluginFactory`], the `SchedulerFactory` a service snapshot holds) and
//! its per-lcore instances ([`PluginScheduler`], the `Scheduler` a worker calls), with the
//! containment rules of ABI.md section 6.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rvs_core::load::LoadTable;
use rvs_core::rng::SplitMix64;
use rvs_core::sched::{Flow, SchedCx, SchedError, SchedTables, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, SchedFlags, Service};
use rvs_core::time::Now;
use wasmtime::{InstancePre, Memory, ResourceLimiter, Store, Trap, TypedFunc};

use crate::abi;
use crate::error::LoadError;
use crate::host::{Bound, HostInner};

/// Store data of one instance: its memory limiter and log limiter.
pub struct Guest {
    limiter: Limiter,
    name: Arc<str>,
    lcore: u16,
    log_window: Option<Instant>,
    log_lines: u32,
    log_dropped: u64,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("name", &self.name)
            .field("lcore", &self.lcore)
            .finish()
    }
}

/// Log lines a plugin instance may emit per second.
const LOG_PER_SEC: u32 = 10;

impl Guest {
    fn new(cap: usize, name: Arc<str>, lcore: u16) -> Self {
        Guest {
            limiter: Limiter { cap, denied: false },
            name,
            lcore,
            log_window: None,
            log_lines: 0,
            log_dropped: 0,
        }
    }

    /// The `rvs.log` import: read at most [`abi::LOG_MAX`] bytes, rate-limited.
    pub(crate) fn log(&mut self, level: i32, mem: &[u8], ptr: i32, len: i32) {
        let now = Instant::now();
        match self.log_window {
            Some(w) if now.duration_since(w).as_secs() < 1 => {
                if self.log_lines >= LOG_PER_SEC {
                    self.log_dropped += 1;
                    return;
                }
            }
            _ => {
                self.log_window = Some(now);
                self.log_lines = 0;
            }
        }
        self.log_lines += 1;
        let (Ok(p), Ok(n)) = (usize::try_from(ptr), usize::try_from(len)) else {
            return;
        };
        let Some(bytes) = mem.get(p..p.saturating_add(n.min(abi::LOG_MAX))) else {
            return;
        };
        let msg = String::from_utf8_lossy(bytes);
        let (name, lcore, dropped) = (&*self.name, self.lcore, self.log_dropped);
        match level {
            0 => tracing::error!(plugin = name, lcore, dropped, "{msg}"),
            1 => tracing::warn!(plugin = name, lcore, dropped, "{msg}"),
            2 => tracing::info!(plugin = name, lcore, dropped, "{msg}"),
            3 => tracing::debug!(plugin = name, lcore, dropped, "{msg}"),
            _ => tracing::trace!(plugin = name, lcore, dropped, "{msg}"),
        }
    }
}

/// Caps linear memory growth; a refused growth traps and is remembered, so the fault is
/// counted as `memory` rather than `trap`.
struct Limiter {
    cap: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = true;
            return Err(wasmtime::format_err!(
                "plugin memory would grow to {desired} bytes, beyond the cap of {} bytes",
                self.cap
            ));
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Kinds of fault (ABI.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The plugin trapped (or could not be instantiated).
    Trap,
    /// The call ran past its deadline (epoch) or budget (fuel).
    Timeout,
    /// The memory cap was hit.
    Memory,
    /// An answer out of range or naming an ineligible destination, or a bad table address.
    BadAnswer,
}

impl FaultKind {
    /// Lower-case name, as counted.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::Memory => "memory",
            FaultKind::BadAnswer => "bad_answer",
        }
    }
}

type Fault = (FaultKind, String);

fn fault_of(e: &wasmtime::Error, guest: &mut Guest) -> Fault {
    if std::mem::take(&mut guest.limiter.denied) {
        return (FaultKind::Memory, format!("{e:#}"));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) | Some(Trap::OutOfFuel) => (FaultKind::Timeout, format!("{e:#}")),
        _ => (FaultKind::Trap, format!("{e:#}")),
    }
}

/// Counters of one instance, written only by its lcore (relaxed loads and stores).
#[derive(Debug, Default)]
pub struct Counters {
    picks: AtomicU64,
    defer: AtomicU64,
    fallback: AtomicU64,
    trap: AtomicU64,
    timeout: AtomicU64,
    memory: AtomicU64,
    bad_answer: AtomicU64,
    rebuild: AtomicU64,
}

#[inline(always)]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl Counters {
    fn snapshot(&self) -> PluginStats {
        PluginStats {
            picks: self.picks.load(Relaxed),
            defer: self.defer.load(Relaxed),
            fallback: self.fallback.load(Relaxed),
            trap: self.trap.load(Relaxed),
            timeout: self.timeout.load(Relaxed),
            memory: self.memory.load(Relaxed),
            bad_answer: self.bad_answer.load(Relaxed),
            rebuild: self.rebuild.load(Relaxed),
            disabled: 0,
        }
    }
    fn fault(&self, k: FaultKind) {
        bump(match k {
            FaultKind::Trap => &self.trap,
            FaultKind::Timeout => &self.timeout,
            FaultKind::Memory => &self.memory,
            FaultKind::BadAnswer => &self.bad_answer,
        });
    }
}

/// What a plugin did, summed over its instances (current and retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PluginStats {
    /// Picks the plugin answered (an index or none).
    pub picks: u64,
    /// Picks the plugin deferred to the native scheduler.
    pub defer: u64,
    /// Picks the native fallback made for any reason (defer, fault, backoff, disabled, a
    /// table the plugin refused).
    pub fallback: u64,
    /// Traps.
    pub trap: u64,
    /// Deadline or fuel exhausted.
    pub timeout: u64,
    /// Memory cap hit.
    pub memory: u64,
    /// Out-of-range or ineligible answers, bad table addresses.
    pub bad_answer: u64,
    /// Instances rebuilt after a fault.
    pub rebuild: u64,
    /// Times the plugin was disabled for the service (0 or 1 per factory).
    pub disabled: u64,
}

impl PluginStats {
    /// All faults.
    pub fn faults(&self) -> u64 {
        self.trap + self.timeout + self.memory + self.bad_answer
    }
    fn add(&mut self, o: &PluginStats) {
        self.picks += o.picks;
        self.defer += o.defer;
        self.fallback += o.fallback;
        self.trap += o.trap;
        self.timeout += o.timeout;
        self.memory += o.memory;
        self.bad_answer += o.bad_answer;
        self.rebuild += o.rebuild;
        self.disabled += o.disabled;
    }
}

/// The compiled plugin and its configuration, shared by its instances.
pub(crate) struct Prepared {
    pub(crate) name: Arc<str>,
    pub(crate) pre: InstancePre<Guest>,
    pub(crate) config: Box<[u8]>,
    pub(crate) update: bool,
    pub(crate) configure: bool,
}

/// Why an instance could not be built.
enum BuildError {
    Fault(Fault),
    Minor(i32),
    ConfigTooLarge(usize),
    ConfigRejected(i32),
}

impl From<Fault> for BuildError {
    fn from(f: Fault) -> Self {
        BuildError::Fault(f)
    }
}

impl BuildError {
    fn into_fault(self) -> Fault {
        match self {
            BuildError::Fault(f) => f,
            BuildError::Minor(m) => (FaultKind::BadAnswer, format!("rvs_abi_v1 returned minor {m}")),
            BuildError::ConfigTooLarge(n) => (FaultKind::BadAnswer, format!("no buffer for {n} config bytes")),
            BuildError::ConfigRejected(c) => (FaultKind::BadAnswer, format!("rvs_configure returned {c}")),
        }
    }
}

impl Prepared {
    /// The load-time probe: one instance, its version, its configuration, a one-entry table.
    pub(crate) fn probe(&self, host: &HostInner) -> Result<(), LoadError> {
        let name = self.name.to_string();
        let mut live = Live::build(host, self, 0, 0).map_err(|e| match e {
            BuildError::Fault((k, what)) => LoadError::Probe {
                name: name.clone(),
                what: format!("{}: {what}", k.name()),
            },
            BuildError::Minor(found) => LoadError::NewerMinor {
                name: name.clone(),
                major: abi::MAJOR,
                found: found.into(),
                supported: abi::MINOR,
            },
            BuildError::ConfigTooLarge(len) => LoadError::ConfigTooLarge {
                name: name.clone(),
                len,
            },
            BuildError::ConfigRejected(code) => LoadError::ConfigRejected {
                name: name.clone(),
                code,
            },
        })?;
        match live.ensure_area(host, 1) {
            Ok(true) => Ok(()),
            Ok(false) => Err(LoadError::Probe {
                name,
                what: "rvs_table(1) returned 0: the plugin cannot hold even one destination".into(),
            }),
            Err((k, what)) => Err(LoadError::Probe {
                name,
                what: format!("{}: {what}", k.name()),
            }),
        }
    }
}

fn arm_setup(host: &HostInner, store: &mut Store<Guest>) {
    match host.cfg.bound {
        Bound::Epoch { setup_ticks, .. } => store.set_epoch_deadline(setup_ticks),
        Bound::Fuel { setup, .. } => {
            let _ = store.set_fuel(setup);
        }
    }
}

/// The per-pick bound, resolved once.
#[derive(Debug, Clone, Copy)]
enum PickBound {
    Epoch(u64),
    Fuel(u64),
}

/// One live instance: its store, memory, cached function handles and the host area.
struct Live {
    store: Store<Guest>,
    memory: Memory,
    pick: TypedFunc<(), i32>,
    table: TypedFunc<i32, i32>,
    update: Option<TypedFunc<i32, i32>>,
    lcore: u16,
    seed: u64,
    area: usize,
    cap: usize,
    generation: u32,
    /// The service the static part was written for (pointer and length of its
    /// destination array).
    svc_key: (usize, usize),
    /// Whether the plugin accepted this table (area available, `rvs_table_update` ok).
    served: bool,
    /// The load table mirrored (its address) and the change-log position reached.
    loads_key: usize,
    seq: u64,
}

fn svc_key(svc: &Service) -> (usize, usize) {
    (svc.dests.as_ptr() as usize, svc.dests.len())
}

impl Live {
    fn build(host: &HostInner, p: &Prepared, lcore: u16, seed: u64) -> Result<Live, BuildError> {
        let mut store = Store::new(&host.engine, Guest::new(host.cfg.memory_cap, p.name.clone(), lcore));
        store.limiter(|g| &mut g.limiter);
        arm_setup(host, &mut store);
        let inst = p
            .pre
            .instantiate(&mut store)
            .map_err(|e| fault_of(&e, store.data_mut()))?;
        let missing = |what: &str| (FaultKind::Trap, format!("export {what} missing or mistyped"));
        let memory = inst
            .get_memory(&mut store, abi::export::MEMORY)
            .ok_or_else(|| missing(abi::export::MEMORY))?;
        let f0 =
            |store: &mut Store<Guest>, n: &str| inst.get_typed_func::<(), i32>(&mut *store, n).map_err(|_| missing(n));
        let f1 =
            |store: &mut Store<Guest>, n: &str| inst.get_typed_func::<i32, i32>(&mut *store, n).map_err(|_| missing(n));
        let marker = f0(&mut store, abi::export::MARKER_V1)?;
        let pick = f0(&mut store, abi::export::PICK)?;
        let table = f1(&mut store, abi::export::TABLE)?;
        let update = if p.update {
            Some(f1(&mut store, abi::export::TABLE_UPDATE)?)
        } else {
            None
        };
        arm_setup(host, &mut store);
        let minor = marker
            .call(&mut store, ())
            .map_err(|e| fault_of(&e, store.data_mut()))?;
        if minor < 0 || minor as u32 > abi::MINOR {
            return Err(BuildError::Minor(minor));
        }
        if p.configure {
            let buf = f1(&mut store, abi::export::CONFIG_BUF)?;
            let configure = f1(&mut store, abi::export::CONFIGURE)?;
            let len = p.config.len();
            let len32 = i32::try_from(len).map_err(|_| BuildError::ConfigTooLarge(len))?;
            arm_setup(host, &mut store);
            let at = buf
                .call(&mut store, len32)
                .map_err(|e| fault_of(&e, store.data_mut()))?;
            if len > 0 {
                let at = usize::try_from(at).ok().filter(|&a| a != 0);
                let dst = at.and_then(|a| memory.data_mut(&mut store).get_mut(a..a.checked_add(len)?));
                match dst {
                    Some(dst) => dst.copy_from_slice(&p.config),
                    None => return Err(BuildError::ConfigTooLarge(len)),
                }
            }
            arm_setup(host, &mut store);
            let code = configure
                .call(&mut store, len32)
                .map_err(|e| fault_of(&e, store.data_mut()))?;
            if code != 0 {
                return Err(BuildError::ConfigRejected(code));
            }
        }
        Ok(Live {
            store,
            memory,
            pick,
            table,
            update,
            lcore,
            seed,
            area: 0,
            cap: 0,
            generation: 0,
            svc_key: (0, usize::MAX),
            served: false,
            loads_key: 0,
            seq: 0,
        })
    }

    /// Make sure the area holds `n` destinations: `Ok(false)` when the plugin refuses.
    fn ensure_area(&mut self, host: &HostInner, n: usize) -> Result<bool, Fault> {
        let want = n.max(1);
        if self.area != 0 && want <= self.cap {
            return Ok(true);
        }
        let Ok(want32) = i32::try_from(want) else {
            return Ok(false);
        };
        arm_setup(host, &mut self.store);
        let at = self
            .table
            .call(&mut self.store, want32)
            .map_err(|e| fault_of(&e, self.store.data_mut()))?;
        if at == 0 {
            return Ok(false);
        }
        let size = self.memory.data_size(&self.store);
        let ok = usize::try_from(at)
            .ok()
            .filter(|&a| a % 8 == 0 && a.checked_add(abi::area_bytes(want)).is_some_and(|e| e <= size));
        match ok {
            Some(a) => {
                self.area = a;
                self.cap = want;
                Ok(true)
            }
            None => Err((
                FaultKind::BadAnswer,
                format!("rvs_table({want}) returned {at}: not 8-aligned or the area does not fit in memory"),
            )),
        }
    }

    /// Rewrite the header and the static part for `svc` (new generation), zero the
    /// counters (the next pick writes them all), and let the plugin update.
    fn sync_table(&mut self, host: &HostInner, svc: &Service) -> Result<(), Fault> {
        self.svc_key = svc_key(svc);
        self.loads_key = 0;
        self.served = false;
        if !self.ensure_area(host, svc.dests.len())? {
            return Ok(());
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        let hdr = abi::header(svc, self.generation, self.cap, self.lcore, self.seed);
        let mem = self.memory.data_mut(&mut self.store);
        abi::write_header(mem, self.area, &hdr);
        for (i, d) in svc.dests.iter().enumerate() {
            abi::write_dest(mem, self.area, i, &abi::dest(d));
        }
        if let Some(recs) = abi::loads_mut(mem, self.area, self.cap) {
            for i in 0..svc.dests.len() {
                abi::set_load(recs, i, Default::default());
            }
        }
        if let Some(u) = &self.update {
            arm_setup(host, &mut self.store);
            let code = u
                .call(&mut self.store, self.generation as i32)
                .map_err(|e| fault_of(&e, self.store.data_mut()))?;
            if code != 0 {
                return Ok(());
            }
        }
        self.served = true;
        Ok(())
    }

    /// Mirror the counters that changed since the last pick (all of them when the load
    /// table is new to us or we fell behind its change log), then write the flow record:
    /// one borrow of the plugin's memory for both.
    #[inline]
    fn sync_loads_and_flow(&mut self, svc: &Service, loads: &LoadTable, slots: &[u32], flow: &Flow<'_>, rand: u64) {
        let key = loads as *const LoadTable as usize;
        let (area, cap) = (self.area, self.cap);
        let mem = self.memory.data_mut(&mut self.store);
        if let Some(recs) = abi::loads_mut(mem, area, cap) {
            let all = |recs: &mut [u8]| {
                for (i, d) in svc.dests.iter().enumerate() {
                    abi::set_load(recs, i, loads.get(d.id));
                }
            };
            if self.loads_key != key {
                all(recs);
            } else {
                let done = loads.changes_since(self.seq).for_each(|id| {
                    if let Some(&i) = slots.get(id.0 as usize)
                        && i != u32::MAX
                    {
                        abi::set_load(recs, i as usize, loads.get(id));
                    }
                });
                if done.is_none() {
                    all(recs);
                }
            }
        }
        abi::put_flow(mem, area, flow, rand);
        self.loads_key = key;
        self.seq = loads.seq();
    }
}

/// State shared by a factory and its instances.
#[derive(Debug, Default)]
struct Shared {
    faults: AtomicU32,
    /// When the last fault was counted (`Now` nanoseconds), for `fault_window`.
    last_fault: AtomicU64,
    disabled: AtomicBool,
    disabled_events: AtomicU64,
    live: Mutex<Vec<Arc<Counters>>>,
    retired: Mutex<PluginStats>,
}

/// A loaded plugin for one service: the `SchedulerFactory` published in the snapshot.
pub struct PluginFactory {
    host: Arc<HostInner>,
    prepared: Arc<Prepared>,
    fallback: Arc<dyn SchedulerFactory>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PluginFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginFactory")
            .field("name", &self.prepared.name)
            .field("fallback", &self.fallback.name())
            .field("disabled", &self.is_disabled())
            .finish()
    }
}

impl PluginFactory {
    pub(crate) fn new(host: Arc<HostInner>, prepared: Prepared, fallback: Arc<dyn SchedulerFactory>) -> Self {
        PluginFactory {
            host,
            prepared: Arc::new(prepared),
            fallback,
            shared: Arc::default(),
        }
    }

    /// A new instance for `lcore` (a fresh store and instance, configured; its table is
    /// written at [`Scheduler::refresh`]). Takes no lock a pick holds: the control plane may
    /// prepare instances for every lcore off the data path and hand them over, or a worker
    /// may call it between vectors. If the instance cannot be built, the scheduler starts
    /// in backoff and the fault is counted.
    pub fn prepare(&self, lcore: u16, seed: u64) -> PluginScheduler {
        let counters = Arc::new(Counters::default());
        if let Ok(mut l) = self.shared.live.lock() {
            l.push(counters.clone());
        }
        let bound = match self.host.cfg.bound {
            Bound::Epoch { deadline_ticks, .. } => PickBound::Epoch(deadline_ticks),
            Bound::Fuel { pick, .. } => PickBound::Fuel(pick),
        };
        let mut s = PluginScheduler {
            host: self.host.clone(),
            prepared: self.prepared.clone(),
            shared: self.shared.clone(),
            counters,
            fallback: self.fallback.instance(lcore, seed),
            bound,
            lcore,
            seed,
            rng: SplitMix64::new(seed ^ ((lcore as u64) << 48)),
            live: None,
            slots: Vec::new(),
            svc_key: (0, usize::MAX),
            retry_at: Now(0),
            backoff_ns: self.host.cfg.backoff_min.as_nanos() as u64,
            backoff_min_ns: self.host.cfg.backoff_min.as_nanos() as u64,
            last_now: Now(0),
            log_window: None,
            log_lines: 0,
        };
        if !self.is_disabled() {
            match Live::build(&self.host, &self.prepared, lcore, seed) {
                Ok(l) => s.live = Some(l),
                Err(e) => s.fault(e.into_fault(), Now(0)),
            }
        }
        s
    }

    /// Counters summed over every instance this factory made.
    pub fn stats(&self) -> PluginStats {
        let mut s = self.shared.retired.lock().map(|r| *r).unwrap_or_default();
        if let Ok(l) = self.shared.live.lock() {
            for c in l.iter() {
                s.add(&c.snapshot());
            }
        }
        s.disabled = self.shared.disabled_events.load(Relaxed);
        s
    }

    /// True once repeated faults disabled the plugin for this service.
    pub fn is_disabled(&self) -> bool {
        self.shared.disabled.load(Relaxed)
    }

    /// The native scheduler that takes over on faults.
    pub fn fallback(&self) -> &Arc<dyn SchedulerFactory> {
        &self.fallback
    }
}

impl SchedulerFactory for PluginFactory {
    fn name(&self) -> &str {
        &self.prepared.name
    }
    /// The fallback's tables: it must be ready to take any pick.
    fn build_tables(&self, dests: &[Dest], flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        self.fallback.build_tables(dests, flags)
    }
    fn instance(&self, lcore: u16, seed: u64) -> Box<dyn Scheduler> {
        Box::new(self.prepare(lcore, seed))
    }
}

/// What one attempt at a plugin pick gave.
enum Outcome {
    Answer(Option<usize>),
    Defer,
    Fallback,
    Fault(Fault),
}

/// Fault log lines per second per instance.
const FAULT_LOG_PER_SEC: u32 = 5;

/// One lcore's plugin instance for one service, with its native fallback.
pub struct PluginScheduler {
    host: Arc<HostInner>,
    prepared: Arc<Prepared>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    fallback: Box<dyn Scheduler>,
    bound: PickBound,
    lcore: u16,
    seed: u64,
    rng: SplitMix64,
    live: Option<Live>,
    /// Destination id -> index in the service (`u32::MAX`: not in it).
    slots: Vec<u32>,
    svc_key: (usize, usize),
    retry_at: Now,
    backoff_ns: u64,
    backoff_min_ns: u64,
    last_now: Now,
    log_window: Option<Instant>,
    log_lines: u32,
}

impl std::fmt::Debug for PluginScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginScheduler")
            .field("name", &self.prepared.name)
            .field("lcore", &self.lcore)
            .field("live", &self.live.is_some())
            .field("fallback", &self.fallback.name())
            .finish()
    }
}

impl Drop for PluginScheduler {
    fn drop(&mut self) {
        let snap = self.counters.snapshot();
        if let Ok(mut r) = self.shared.retired.lock() {
            r.add(&snap);
        }
        if let Ok(mut l) = self.shared.live.lock() {
            l.retain(|c| !Arc::ptr_eq(c, &self.counters));
        }
    }
}

impl PluginScheduler {
    /// This instance's counters.
    pub fn stats(&self) -> PluginStats {
        self.counters.snapshot()
    }

    /// True while a live instance exists (false in backoff or when disabled).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    fn set_service(&mut self, svc: &Service) {
        self.svc_key = svc_key(svc);
        let max = svc.dests.iter().map(|d| d.id.0 as usize + 1).max().unwrap_or(0);
        self.slots.clear();
        self.slots.resize(max, u32::MAX);
        for (i, d) in svc.dests.iter().enumerate() {
            self.slots[d.id.0 as usize] = i as u32;
        }
    }

    fn fault(&mut self, (kind, what): Fault, now: Now) {
        self.counters.fault(kind);
        self.live = None;
        self.retry_at = now.plus_nanos(self.backoff_ns);
        let max = self.host.cfg.backoff_max.as_nanos() as u64;
        self.backoff_ns = self.backoff_ns.saturating_mul(2).min(max.max(1));
        let window = self.host.cfg.fault_window.as_nanos() as u64;
        let last = self.shared.last_fault.swap(now.0, Relaxed);
        if now.0.saturating_sub(last) > window {
            self.shared.faults.store(0, Relaxed);
        }
        let total = self.shared.faults.fetch_add(1, Relaxed) + 1;
        let disable = total >= self.host.cfg.max_faults && !self.shared.disabled.swap(true, Relaxed);
        if disable {
            self.shared.disabled_events.fetch_add(1, Relaxed);
            tracing::error!(
                plugin = &*self.prepared.name,
                faults = total,
                "plugin disabled for this service after repeated faults; the native fallback {} takes every connection",
                self.fallback.name()
            );
        }
        let t = Instant::now();
        match self.log_window {
            Some(w) if t.duration_since(w).as_secs() < 1 => {}
            _ => {
                self.log_window = Some(t);
                self.log_lines = 0;
            }
        }
        if self.log_lines < FAULT_LOG_PER_SEC {
            self.log_lines += 1;
            tracing::warn!(
                plugin = &*self.prepared.name,
                lcore = self.lcore,
                kind = kind.name(),
                "plugin fault, connection handed to {}: {what}",
                self.fallback.name()
            );
        }
    }

    #[inline]
    fn fall(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        bump(&self.counters.fallback);
        self.fallback.pick(cx, flow)
    }

    #[inline]
    fn attempt(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Outcome {
        if self.live.is_none() {
            if cx.now < self.retry_at {
                return Outcome::Fallback;
            }
            match Live::build(&self.host, &self.prepared, self.lcore, self.seed) {
                Ok(l) => {
                    self.live = Some(l);
                    bump(&self.counters.rebuild);
                }
                Err(e) => return Outcome::Fault(e.into_fault()),
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Outcome::Fallback;
        };
        if live.svc_key != self.svc_key
            && let Err(f) = live.sync_table(&self.host, cx.svc)
        {
            return Outcome::Fault(f);
        }
        if !live.served {
            return Outcome::Fallback;
        }
        live.sync_loads_and_flow(cx.svc, cx.loads, &self.slots, flow, self.rng.next_u64());
        match self.bound {
            PickBound::Epoch(t) => live.store.set_epoch_deadline(t),
            PickBound::Fuel(f) => {
                let _ = live.store.set_fuel(f);
            }
        }
        match live.pick.call(&mut live.store, ()) {
            Ok(i) if i >= 0 => {
                let i = i as usize;
                if i < cx.svc.dests.len() && cx.eligible(i) {
                    Outcome::Answer(Some(i))
                } else {
                    Outcome::Fault((
                        FaultKind::BadAnswer,
                        format!(
                            "answered {i}: out of range or not eligible ({} destinations)",
                            cx.svc.dests.len()
                        ),
                    ))
                }
            }
            Ok(abi::ANSWER_NONE) => Outcome::Answer(None),
            Ok(abi::ANSWER_DEFER) => Outcome::Defer,
            Ok(other) => Outcome::Fault((
                FaultKind::BadAnswer,
                format!("answered {other}, not an index, -1 or -2"),
            )),
            Err(e) => Outcome::Fault(fault_of(&e, live.store.data_mut())),
        }
    }
}

impl Scheduler for PluginScheduler {
    fn name(&self) -> &str {
        &self.prepared.name
    }

    fn refresh(&mut self, svc: &Service) {
        self.fallback.refresh(svc);
        self.set_service(svc);
        if let Some(live) = self.live.as_mut()
            && let Err(f) = live.sync_table(&self.host, svc)
        {
            let now = self.last_now;
            self.fault(f, now);
        }
    }

    #[inline]
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        self.last_now = cx.now;
        if svc_key(cx.svc) != self.svc_key {
            // The contract calls refresh first; a missed one costs a table rewrite, not a
            // wrong answer.
            self.refresh(cx.svc);
        }
        if self.shared.disabled.load(Relaxed) {
            self.live = None;
            return self.fall(cx, flow);
        }
        match self.attempt(cx, flow) {
            Outcome::Answer(a) => {
                bump(&self.counters.picks);
                self.backoff_ns = self.backoff_min_ns;
                a
            }
            Outcome::Defer => {
                bump(&self.counters.defer);
                self.fall(cx, flow)
            }
            Outcome::Fallback => self.fall(cx, flow),
            Outcome::Fault(f) => {
                self.fault(f, cx.now);
                self.fall(cx, flow)
            }
        }
    }
}
