//! The conformance suite every scheduler passes, native or WASM plugin (DESIGN.md, house
//! style 8). It is ordinary library code, not `cfg(test)`, so the plugin host can run it
//! against its schedulers.
//!
//! # API
//!
//! - [`check_all`]`(factory, promise) -> Result<(), Failure>`: every check below; `promise`
//!   says which algorithm-specific spread to hold the scheduler to ([`Promise::Any`] for the
//!   universal checks only). [`promise_of`]`(name)` gives the promise of a native scheduler.
//! - The checks one by one, each `fn(&dyn SchedulerFactory, ...) -> Result<(), Failure>`:
//!   - [`check_eligibility`]: over randomized services (0..=12 destinations, random weights
//!     with zeros, unavailable, inhibited and overloaded destinations, random scheduler
//!     flags, counters moved by the scheduler's own choices), a pick is `None` or an index in
//!     range of an eligible destination ([`rvs_core::sched::eligible`]);
//!   - [`check_none_when_unavailable`]: `None` when no destination can take a connection
//!     (empty service, all drained, all unavailable, all inhibited, all overloaded, mixed);
//!   - [`check_deterministic`]: two instances made with the same lcore and seed give the same
//!     decisions for the same inputs ([`same_decisions`] of the factory with itself);
//!   - [`check_spread`]: the promise of the algorithm (see [`Promise`]).
//! - [`same_decisions`]`(a, b, &Drive) -> Result<u64, Box<Mismatch>>`: drive two schedulers with
//!   identical randomized inputs (destinations, weights, flags, counters, flows, time, with
//!   re-snapshots and `refresh` between rounds) and report the first differing decision, or
//!   the number of decisions compared. The plugin host uses it to show that a WASM `wlc`
//!   decides exactly as the native one.
//! - Building blocks for other harnesses: [`Drive`] (what to randomize), [`test_service`]
//!   (a service with the factory's tables built), [`FlowBuf`] (an owned flow).
//!
//! Every check is deterministic (fixed seeds), allocates only outside `pick`, and names the
//! check, the scheduler and the inputs in its [`Failure`].
//!
//! Not covered here: "pick does not allocate" needs a counting global allocator, so it is an
//! integration test of this crate (`tests/no_alloc.rs`) rather than a library check.

use std::fmt;
use std::sync::Arc;

use rvs_core::addr::{Addr, Af, Proto};
use rvs_core::load::{Counter, LoadTable};
use rvs_core::rng::SplitMix64;
use rvs_core::sched::{Flow, SchedCx, SchedError, Scheduler, SchedulerFactory, eligible};
use rvs_core::service::{Dest, DestFlags, DestId, Forward, SchedFlags, Service, ServiceKey};
use rvs_core::time::Now;

pub use crate::least::Formula;

/// What an algorithm promises beyond the universal checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Nothing beyond the universal checks (twos, or a plugin of unknown algorithm).
    Any,
    /// rr: eligible destinations in list order, cyclically, each exactly once per cycle.
    RoundRobin,
    /// wrr: over `k` cycles of `sum(weights)` picks, each destination is picked `k * weight`
    /// times give or take its weight (within one cycle), drained ones never.
    WeightedRoundRobin,
    /// lc/wlc/sed/nq: the pick is the minimum of the formula among eligible destinations,
    /// ties to the earlier one.
    LeastConnection(Formula),
    /// fo: the eligible destination of highest weight, ties to the earlier one.
    HighestWeight,
    /// ovf: the highest-weight eligible destination with active <= weight, ties to the earlier.
    Overflow,
    /// sh/mh/conhash (key [`HashKey::Source`]) and dh (key [`HashKey::Destination`]): the same
    /// key gives the same destination, whatever else differs, in a fresh instance, and after
    /// the tables are rebuilt and the instance refreshed with unchanged destinations.
    StableHash(HashKey),
    /// lblc/lblcr: with counters unchanged, the same destination address keeps its server.
    Locality,
}

/// What a hashing scheduler keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKey {
    /// The client address (with default flags).
    Source,
    /// The destination (virtual) address.
    Destination,
}

/// The promise of a native scheduler, by name.
pub fn promise_of(name: &str) -> Option<Promise> {
    Some(match name {
        "rr" => Promise::RoundRobin,
        "wrr" => Promise::WeightedRoundRobin,
        "lc" => Promise::LeastConnection(Formula::Lc),
        "wlc" => Promise::LeastConnection(Formula::Wlc),
        "sed" => Promise::LeastConnection(Formula::Sed),
        "nq" => Promise::LeastConnection(Formula::Nq),
        "fo" => Promise::HighestWeight,
        "ovf" => Promise::Overflow,
        "sh" | "mh" | "conhash" => Promise::StableHash(HashKey::Source),
        "dh" => Promise::StableHash(HashKey::Destination),
        "lblc" | "lblcr" => Promise::Locality,
        "twos" => Promise::Any,
        _ => return None,
    })
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check (`eligibility`, `none-when-unavailable`, `deterministic`, `spread`, `tables`).
    pub check: &'static str,
    /// The scheduler's name.
    pub scheduler: String,
    /// What happened, with the inputs.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scheduler {}: check {} failed: {}",
            self.scheduler, self.check, self.detail
        )
    }
}

impl std::error::Error for Failure {}

fn fail(check: &'static str, f: &dyn SchedulerFactory, detail: String) -> Failure {
    Failure {
        check,
        scheduler: f.name().to_string(),
        detail,
    }
}

/// Run every check against `factory`, holding it to `promise`.
pub fn check_all(factory: &dyn SchedulerFactory, promise: Promise) -> Result<(), Failure> {
    check_eligibility(factory)?;
    check_none_when_unavailable(factory)?;
    check_deterministic(factory)?;
    check_spread(factory, promise)
}

/// A placeholder in [`Service::sched`]: the suite hands schedulers the tables their own
/// factory built, and no pick reads `svc.sched`.
#[derive(Debug)]
struct Detached;

impl SchedulerFactory for Detached {
    fn name(&self) -> &str {
        "detached"
    }
    fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
        Box::new(DetachedSched)
    }
}

#[derive(Debug)]
struct DetachedSched;

impl Scheduler for DetachedSched {
    fn name(&self) -> &str {
        "detached"
    }
    fn pick(&mut self, _: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
        None
    }
}

/// The VIP of every test service (198.18.0.0/15, RFC 2544 benchmarking space).
pub const VIP: Addr = Addr::v4([198, 18, 0, 100]);

/// A service on [`VIP`] with `dests` and `flags`, its tables built by `factory`.
pub fn test_service(
    factory: &dyn SchedulerFactory,
    proto: Proto,
    dests: Vec<Dest>,
    flags: SchedFlags,
) -> Result<Service, SchedError> {
    let key = ServiceKey {
        proto,
        vip: VIP,
        port: 80,
    };
    let mut svc = Service::new(key, Forward::Dr, Arc::new(Detached));
    svc.sched_flags = flags;
    svc.sched_tables = factory.build_tables(&dests, flags)?;
    svc.dests = dests.into_boxed_slice();
    Ok(svc)
}

/// Destination `i` of the test services: id `i`, address 198.18.1.(i+1) (198.18.2.x beyond
/// 255), port 80, weight 1.
pub fn test_dest(i: u32) -> Dest {
    let a = Addr::from_v4_u32(0xc612_0100 + i + 1);
    Dest::new(DestId(i), a, 80)
}

/// An owned new-connection tuple (a [`Flow`] borrows its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowBuf {
    /// Protocol.
    pub proto: Proto,
    /// Client address.
    pub saddr: Addr,
    /// Virtual address.
    pub daddr: Addr,
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
    /// Payload bytes (the first `len` count).
    pub payload: [u8; 16],
    /// Payload length.
    pub len: u8,
}

impl FlowBuf {
    /// A TCP flow from `saddr:sport` to the VIP, port 80, no payload.
    pub fn tcp(saddr: Addr, sport: u16) -> Self {
        FlowBuf {
            proto: Proto::Tcp,
            saddr,
            daddr: VIP,
            sport,
            dport: 80,
            payload: [0; 16],
            len: 0,
        }
    }
    /// The borrowed view schedulers take.
    pub fn flow(&self) -> Flow<'_> {
        Flow {
            af: if self.saddr.is_v4() { Af::V4 } else { Af::V6 },
            proto: self.proto,
            saddr: self.saddr,
            daddr: self.daddr,
            sport: self.sport,
            dport: self.dport,
            payload: &self.payload[..self.len as usize],
        }
    }
    /// A random flow: clients in 198.18.0.0/15 (one in eight IPv6, 2001:db8::/32), TCP or
    /// UDP, UDP payloads that sometimes carry a gQUIC 8-byte connection id.
    pub fn random(rng: &mut SplitMix64) -> Self {
        let saddr = if rng.below(8) == 0 {
            Addr(0x2001_0db8_u128 << 96 | rng.next_u64() as u128)
        } else {
            Addr::from_v4_u32(0xc612_0000 | (rng.below(1 << 17) as u32))
        };
        let udp = rng.below(2) == 0;
        let mut payload = [0u8; 16];
        payload.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        let len = if udp { rng.below(17) as u8 } else { 0 };
        FlowBuf {
            proto: if udp { Proto::Udp } else { Proto::Tcp },
            saddr,
            daddr: VIP,
            sport: 1024 + rng.below(64_000) as u16,
            dport: 80,
            payload,
            len,
        }
    }
}

/// What [`same_decisions`] (and the randomized checks) vary, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drive {
    /// Seed of the inputs.
    pub seed: u64,
    /// Snapshots (each a fresh random set of destinations, tables rebuilt, `refresh` called).
    pub rounds: u32,
    /// Picks per snapshot.
    pub picks: u32,
    /// Most destinations per snapshot (at least 1; some rounds have none).
    pub max_dests: u32,
    /// Largest weight (weights are drawn in `0..=max_weight`, zero one time in five).
    pub max_weight: u32,
    /// Mark destinations unavailable, inhibited and overloaded at random.
    pub flags: bool,
    /// Draw the scheduler flags (sh-/mh-fallback, -port, quic-cid) at random.
    pub sched_flags: bool,
    /// The lcore the instances are made for.
    pub lcore: u16,
    /// The seed the instances are made with.
    pub sched_seed: u64,
}

impl Default for Drive {
    fn default() -> Self {
        Drive {
            seed: 0x5eed_0001,
            rounds: 40,
            picks: 200,
            max_dests: 12,
            max_weight: 8,
            flags: true,
            sched_flags: true,
            lcore: 0,
            sched_seed: 7,
        }
    }
}

/// The first decision on which two schedulers differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Snapshot round.
    pub round: u32,
    /// Pick within the round.
    pub pick: u32,
    /// The flow.
    pub flow: FlowBuf,
    /// Destinations: (weight, flags, active, inactive, overloaded) per index.
    pub dests: Vec<(u32, u16, u32, u32, bool)>,
    /// Scheduler flags.
    pub sched_flags: u32,
    /// What the first scheduler answered.
    pub a: Option<usize>,
    /// What the second answered.
    pub b: Option<usize>,
    /// Names of the two.
    pub names: (String, String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {} pick {}: {} chose {:?}, {} chose {:?}; flow {:?} {}:{} -> {}:{} payload {:02x?}; sched flags {:#x}; \
             dests (weight, flags, active, inactive, overloaded) {:?}",
            self.round,
            self.pick,
            self.names.0,
            self.a,
            self.names.1,
            self.b,
            self.flow.proto,
            self.flow.saddr,
            self.flow.sport,
            self.flow.daddr,
            self.flow.dport,
            &self.flow.payload[..self.flow.len as usize],
            self.sched_flags,
            self.dests
        )
    }
}

/// One random snapshot's destinations (ids `0..n`) and scheduler flags.
fn random_round(rng: &mut SplitMix64, d: &Drive) -> (Vec<Dest>, SchedFlags) {
    let n = if rng.below(10) == 0 {
        0
    } else {
        1 + rng.below(d.max_dests.max(1) as u64) as u32
    };
    let mut dests = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut dest = test_dest(i);
        dest.weight = if rng.below(5) == 0 {
            0
        } else {
            1 + rng.below(d.max_weight.max(1) as u64) as u32
        };
        if d.flags {
            if rng.below(8) == 0 {
                dest.flags.0 |= DestFlags::UNAVAILABLE;
            }
            if rng.below(8) == 0 {
                dest.flags.0 |= DestFlags::INHIBITED;
            }
        }
        dests.push(dest);
    }
    let flags = if d.sched_flags {
        SchedFlags(rng.below(32) as u32)
    } else {
        SchedFlags(0)
    };
    (dests, flags)
}

/// Random counters and overload flags for destination ids `0..n`.
fn random_loads(rng: &mut SplitMix64, loads: &LoadTable, n: u32, overload: bool) {
    for i in 0..n {
        let id = DestId(i);
        loads.reset(id);
        for _ in 0..rng.below(6) {
            loads.inc(id, Counter::Active);
        }
        for _ in 0..rng.below(12) {
            loads.inc(id, Counter::Inactive);
        }
        if overload && rng.below(8) == 0 {
            loads.set_overloaded(id, true);
        }
    }
}

/// After a pick: the new connection counts on its destination; sometimes one ends.
fn account(rng: &mut SplitMix64, loads: &LoadTable, svc: &Service, pick: Option<usize>) {
    if let Some(d) = pick.and_then(|i| svc.dests.get(i)) {
        let c = if rng.below(3) == 0 {
            Counter::Inactive
        } else {
            Counter::Active
        };
        loads.inc(d.id, c);
    }
    if !svc.dests.is_empty() && rng.below(3) == 0 {
        let d = &svc.dests[rng.below(svc.dests.len() as u64) as usize];
        let c = if rng.below(2) == 0 {
            Counter::Inactive
        } else {
            Counter::Active
        };
        loads.dec(d.id, c);
    }
    if !svc.dests.is_empty() && rng.below(40) == 0 {
        let d = &svc.dests[rng.below(svc.dests.len() as u64) as usize];
        let on = !loads.get(d.id).overloaded;
        loads.set_overloaded(d.id, on);
    }
}

fn snapshot_of(svc: &Service, loads: &LoadTable) -> Vec<(u32, u16, u32, u32, bool)> {
    svc.dests
        .iter()
        .map(|d| {
            let l = loads.get(d.id);
            (d.weight, d.flags.0, l.active, l.inactive, l.overloaded)
        })
        .collect()
}

/// Drive `a` and `b` with identical randomized inputs and compare every decision. Both see
/// the same destinations, counters, flows and time; each reads the tables its own factory
/// built. Counters follow `a`'s decisions. Returns the number of decisions compared, or the
/// first mismatch. A factory whose `build_tables` refuses a snapshot is a mismatch only if
/// the other accepts it.
pub fn same_decisions(a: &dyn SchedulerFactory, b: &dyn SchedulerFactory, drive: &Drive) -> Result<u64, Box<Mismatch>> {
    let mut rng = SplitMix64::new(drive.seed);
    let loads = LoadTable::new(drive.max_dests.max(1) as usize);
    let mut ia = a.instance(drive.lcore, drive.sched_seed);
    let mut ib = b.instance(drive.lcore, drive.sched_seed);
    let mut now = Now::from_secs(1_000);
    let mut compared = 0u64;
    let names = (a.name().to_string(), b.name().to_string());
    for round in 0..drive.rounds {
        let (dests, flags) = random_round(&mut rng, drive);
        random_loads(&mut rng, &loads, dests.len() as u32, drive.flags);
        let proto = if rng.below(2) == 0 { Proto::Tcp } else { Proto::Udp };
        let sa = test_service(a, proto, dests.clone(), flags);
        let sb = test_service(b, proto, dests, flags);
        let (sa, sb) = match (sa, sb) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(_), Err(_)) => continue,
            (ra, rb) => {
                let svc = test_service(&Detached, proto, Vec::new(), flags).ok();
                return Err(Box::new(Mismatch {
                    round,
                    pick: 0,
                    flow: FlowBuf::tcp(VIP, 0),
                    dests: svc.map(|s| snapshot_of(&s, &loads)).unwrap_or_default(),
                    sched_flags: flags.0,
                    a: ra.ok().map(|_| usize::MAX),
                    b: rb.ok().map(|_| usize::MAX),
                    names,
                }));
            }
        };
        ia.refresh(&sa);
        ib.refresh(&sb);
        for pick in 0..drive.picks {
            let mut fb = FlowBuf::random(&mut rng);
            fb.proto = proto;
            if proto == Proto::Tcp {
                fb.len = 0;
            }
            let flow = fb.flow();
            now = now.plus_nanos(rng.below(5 * Now::SEC));
            let ca = SchedCx {
                svc: &sa,
                loads: &loads,
                now,
                lcore: drive.lcore,
            };
            let cb = SchedCx { svc: &sb, ..ca };
            let ra = ia.pick(&ca, &flow);
            let rb = ib.pick(&cb, &flow);
            if ra != rb {
                return Err(Box::new(Mismatch {
                    round,
                    pick,
                    flow: fb,
                    dests: snapshot_of(&sa, &loads),
                    sched_flags: flags.0,
                    a: ra,
                    b: rb,
                    names,
                }));
            }
            compared += 1;
            account(&mut rng, &loads, &sa, ra);
        }
        // Now and then a long idle gap, so time-based state (lblc expiry) is exercised.
        if rng.below(4) == 0 {
            now = now.plus_secs(2 * 24 * 3600);
        }
    }
    Ok(compared)
}

/// A pick is `None` or an in-range index of an eligible destination, over randomized
/// services whose counters follow the scheduler's own choices.
pub fn check_eligibility(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    let drive = Drive::default();
    let mut rng = SplitMix64::new(0x0e11_91b1_u64);
    let loads = LoadTable::new(drive.max_dests as usize);
    let mut sched = factory.instance(0, 11);
    let mut now = Now::from_secs(1);
    for round in 0..drive.rounds {
        let (dests, flags) = random_round(&mut rng, &drive);
        random_loads(&mut rng, &loads, dests.len() as u32, true);
        let svc = test_service(factory, Proto::Udp, dests, flags)
            .map_err(|e| fail("tables", factory, format!("round {round}: build_tables refused: {e}")))?;
        sched.refresh(&svc);
        for pick in 0..drive.picks {
            let fb = FlowBuf::random(&mut rng);
            now = now.plus_nanos(rng.below(Now::SEC));
            let cx = SchedCx {
                svc: &svc,
                loads: &loads,
                now,
                lcore: 0,
            };
            let r = sched.pick(&cx, &fb.flow());
            if let Some(i) = r {
                let Some(d) = svc.dests.get(i) else {
                    return Err(fail(
                        "eligibility",
                        factory,
                        format!(
                            "round {round} pick {pick}: index {i} out of range ({} destinations)",
                            svc.dests.len()
                        ),
                    ));
                };
                let l = loads.get(d.id);
                if !eligible(d, l) {
                    return Err(fail(
                        "eligibility",
                        factory,
                        format!(
                            "round {round} pick {pick}: chose {i} (weight {}, flags {:#x}, overloaded {}); dests {:?}",
                            d.weight,
                            d.flags.0,
                            l.overloaded,
                            snapshot_of(&svc, &loads)
                        ),
                    ));
                }
            }
            account(&mut rng, &loads, &svc, r);
        }
    }
    Ok(())
}

/// `None` when no destination can take a connection.
pub fn check_none_when_unavailable(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0ee0_0001);
    let loads = LoadTable::new(8);
    // 0: empty; 1: all weight 0; 2: all unavailable; 3: all inhibited; 4: all overloaded;
    // 5: each ineligible for a different reason.
    for case in 0..6u32 {
        let n = if case == 0 { 0 } else { 6 };
        let mut dests: Vec<Dest> = (0..n).map(test_dest).collect();
        for id in 0..8 {
            loads.reset(DestId(id));
        }
        for (i, d) in dests.iter_mut().enumerate() {
            d.weight = 1 + i as u32;
            let reason = if case == 5 { 1 + (i as u32 % 4) } else { case };
            match reason {
                1 => d.weight = 0,
                2 => d.flags.0 |= DestFlags::UNAVAILABLE,
                3 => d.flags.0 |= DestFlags::INHIBITED,
                _ => loads.set_overloaded(d.id, true),
            }
        }
        for flags in [
            0,
            SchedFlags::SH_FALLBACK | SchedFlags::MH_FALLBACK,
            SchedFlags::QUIC_CID,
        ] {
            let svc = test_service(factory, Proto::Udp, dests.clone(), SchedFlags(flags))
                .map_err(|e| fail("tables", factory, format!("case {case}: build_tables refused: {e}")))?;
            let mut sched = factory.instance(0, 3);
            sched.refresh(&svc);
            for pick in 0..50 {
                let fb = FlowBuf::random(&mut rng);
                let cx = SchedCx {
                    svc: &svc,
                    loads: &loads,
                    now: Now::from_secs(10 + pick),
                    lcore: 0,
                };
                if let Some(i) = sched.pick(&cx, &fb.flow()) {
                    return Err(fail(
                        "none-when-unavailable",
                        factory,
                        format!("case {case} flags {flags:#x}: chose {i} though no destination is eligible"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Two instances made with the same lcore and seed decide the same for the same inputs.
pub fn check_deterministic(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    for (seed, lcore) in [(1u64, 0u16), (0xdead_beef, 3)] {
        let drive = Drive {
            seed,
            lcore,
            sched_seed: seed ^ 0x55,
            ..Drive::default()
        };
        same_decisions(factory, factory, &drive)
            .map_err(|m| fail("deterministic", factory, format!("same seed, different decisions: {m}")))?;
    }
    Ok(())
}

/// Check the algorithm's promised spread.
pub fn check_spread(factory: &dyn SchedulerFactory, promise: Promise) -> Result<(), Failure> {
    match promise {
        Promise::Any => Ok(()),
        Promise::RoundRobin => spread_rr(factory),
        Promise::WeightedRoundRobin => spread_wrr(factory),
        Promise::LeastConnection(_) | Promise::HighestWeight | Promise::Overflow => spread_oracle(factory, promise),
        Promise::StableHash(key) => spread_stable(factory, key),
        Promise::Locality => spread_locality(factory),
    }
}

fn cx<'a>(svc: &'a Service, loads: &'a LoadTable, now: Now) -> SchedCx<'a> {
    SchedCx {
        svc,
        loads,
        now,
        lcore: 0,
    }
}

fn build(factory: &dyn SchedulerFactory, dests: Vec<Dest>) -> Result<Service, Failure> {
    test_service(factory, Proto::Tcp, dests, SchedFlags(0))
        .map_err(|e| fail("tables", factory, format!("build_tables refused: {e}")))
}

fn spread_rr(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0072_7200);
    for round in 0..20 {
        let n = 2 + rng.below(9) as u32;
        let mut dests: Vec<Dest> = (0..n).map(test_dest).collect();
        for d in &mut dests {
            d.weight = 1 + rng.below(5) as u32;
        }
        // Take up to two out, for different reasons.
        let out: Vec<usize> = (0..2).map(|_| rng.below(n as u64) as usize).collect();
        dests[out[0]].weight = 0;
        dests[out[1]].flags.0 |= DestFlags::INHIBITED;
        let elig: Vec<usize> = (0..n as usize).filter(|i| !out.contains(i)).collect();
        let svc = build(factory, dests)?;
        let loads = LoadTable::new(n as usize);
        let mut s = factory.instance(0, 1);
        s.refresh(&svc);
        let fb = FlowBuf::tcp(Addr::v4([198, 18, 7, 7]), 5000);
        let mut prev: Option<usize> = None;
        let mut counts = vec![0u32; n as usize];
        let cycles = 3;
        for k in 0..cycles * elig.len() {
            let r = s.pick(&cx(&svc, &loads, Now::from_secs(k as u64)), &fb.flow());
            let Some(i) = r.filter(|i| elig.contains(i)) else {
                return Err(fail(
                    "spread",
                    factory,
                    format!("round {round}: pick {k} gave {r:?}, eligible {elig:?}"),
                ));
            };
            if let Some(p) = prev {
                let pos = elig.iter().position(|&e| e == p).unwrap_or(0);
                let want = elig[(pos + 1) % elig.len()];
                if i != want {
                    return Err(fail(
                        "spread",
                        factory,
                        format!("round {round}: after {p} rr chose {i}, the next eligible in list order is {want}"),
                    ));
                }
            }
            prev = Some(i);
            counts[i] += 1;
        }
        for &e in &elig {
            if counts[e] != cycles as u32 {
                return Err(fail(
                    "spread",
                    factory,
                    format!("round {round}: {e} picked {} times in {cycles} cycles", counts[e]),
                ));
            }
        }
    }
    Ok(())
}

fn spread_wrr(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0077_7272);
    let mut cases: Vec<Vec<u32>> = vec![vec![4, 3, 2], vec![1, 1, 1], vec![6, 4, 0, 2], vec![100, 1]];
    for _ in 0..16 {
        let n = 1 + rng.below(8) as usize;
        cases.push((0..n).map(|_| rng.below(7) as u32).collect());
    }
    for weights in cases {
        let dests: Vec<Dest> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Dest {
                weight: w,
                ..test_dest(i as u32)
            })
            .collect();
        let g = crate::util::weight_gcd(&dests);
        let svc = build(factory, dests)?;
        let loads = LoadTable::new(weights.len());
        let mut s = factory.instance(0, 1);
        s.refresh(&svc);
        let fb = FlowBuf::tcp(Addr::v4([198, 18, 7, 8]), 5000);
        if g == 0 {
            if let Some(i) = s.pick(&cx(&svc, &loads, Now(0)), &fb.flow()) {
                return Err(fail(
                    "spread",
                    factory,
                    format!("weights {weights:?}: chose {i}, all drained"),
                ));
            }
            continue;
        }
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let k = 5u32;
        let mut counts = vec![0u32; weights.len()];
        for p in 0..k * cycle {
            match s.pick(&cx(&svc, &loads, Now(p as u64)), &fb.flow()) {
                Some(i) if i < counts.len() => counts[i] += 1,
                r => {
                    return Err(fail(
                        "spread",
                        factory,
                        format!("weights {weights:?}: pick {p} gave {r:?}"),
                    ));
                }
            }
        }
        for (i, &w) in weights.iter().enumerate() {
            let want = k * (w / g);
            if counts[i].abs_diff(want) > w / g {
                return Err(fail(
                    "spread",
                    factory,
                    format!(
                        "weights {weights:?}: {k} cycles gave counts {counts:?}, dest {i} should have {want} +- {}",
                        w / g
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The oracle for the least-connection family, fo and ovf: exact fractions compared in
/// 128-bit integers, written independently of the schedulers.
fn oracle(promise: Promise, svc: &Service, loads: &LoadTable) -> Option<usize> {
    let cand: Vec<(usize, &Dest, rvs_core::load::Load)> = svc
        .dests
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d, loads.get(d.id)))
        .filter(|(_, d, l)| eligible(d, *l))
        .collect();
    // (numerator, denominator) to minimise; fo/ovf maximise weight, i.e. minimise 1/weight.
    let key = |d: &Dest, l: rvs_core::load::Load| -> (u128, u128) {
        let (a, ina, w) = (l.active as u128, l.inactive as u128, d.weight as u128);
        match promise {
            Promise::LeastConnection(Formula::Lc) => (a * 256 + ina, 1),
            Promise::LeastConnection(Formula::Wlc) => (a * 256 + ina, w),
            Promise::LeastConnection(Formula::Sed | Formula::Nq) => (a + 1, w),
            _ => (1, w),
        }
    };
    let pool: Vec<_> = match promise {
        Promise::LeastConnection(Formula::Nq) => {
            if let Some(&(i, ..)) = cand.iter().find(|(_, _, l)| l.active == 0) {
                return Some(i);
            }
            cand
        }
        Promise::Overflow => cand.into_iter().filter(|(_, d, l)| l.active <= d.weight).collect(),
        _ => cand,
    };
    let mut best: Option<(usize, (u128, u128))> = None;
    for (i, d, l) in pool {
        let k = key(d, l);
        let better = match best {
            None => true,
            Some((_, b)) => k.0 * b.1 < b.0 * k.1,
        };
        if better {
            best = Some((i, k));
        }
    }
    best.map(|b| b.0)
}

fn spread_oracle(factory: &dyn SchedulerFactory, promise: Promise) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0a0a_0001);
    let drive = Drive {
        max_weight: 4,
        sched_flags: false,
        ..Drive::default()
    };
    let loads = LoadTable::new(drive.max_dests as usize);
    let mut s = factory.instance(0, 1);
    for round in 0..400 {
        let (dests, _) = random_round(&mut rng, &drive);
        random_loads(&mut rng, &loads, dests.len() as u32, true);
        let svc = build(factory, dests)?;
        s.refresh(&svc);
        let fb = FlowBuf::random(&mut rng);
        let got = s.pick(&cx(&svc, &loads, Now::from_secs(round)), &fb.flow());
        let want = oracle(promise, &svc, &loads);
        if got != want {
            return Err(fail(
                "spread",
                factory,
                format!(
                    "round {round}: chose {got:?}, {promise:?} gives {want:?}; dests (weight, flags, active, inactive, overloaded) {:?}",
                    snapshot_of(&svc, &loads)
                ),
            ));
        }
    }
    Ok(())
}

fn spread_stable(factory: &dyn SchedulerFactory, key: HashKey) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0057_ab1e);
    for round in 0..6 {
        let n = 2 + rng.below(15) as u32;
        let dests: Vec<Dest> = (0..n)
            .map(|i| Dest {
                weight: 1 + rng.below(4) as u32,
                ..test_dest(i)
            })
            .collect();
        let svc = build(factory, dests.clone())?;
        let again = build(factory, dests)?;
        let loads = LoadTable::new(n as usize);
        let mut s = factory.instance(0, 1);
        s.refresh(&svc);
        let mut other = factory.instance(5, 99);
        other.refresh(&svc);
        let mut seen = vec![0u32; n as usize];
        for k in 0..300 {
            let mut fb = FlowBuf::random(&mut rng);
            fb.proto = Proto::Tcp;
            fb.len = 0;
            if key == HashKey::Destination {
                fb.daddr = Addr::from_v4_u32(0xc612_4000 | rng.below(1 << 12) as u32);
            }
            let now = Now::from_secs(k);
            let first = s.pick(&cx(&svc, &loads, now), &fb.flow());
            let Some(i) = first else {
                return Err(fail(
                    "spread",
                    factory,
                    format!("round {round}: no pick though every destination is eligible"),
                ));
            };
            seen[i] += 1;
            // Vary what is not the key.
            let mut v = fb;
            v.sport = v.sport.wrapping_add(1 + rng.below(1000) as u16);
            match key {
                HashKey::Source => v.dport = 8080,
                HashKey::Destination => v.saddr = Addr::from_v4_u32(0xc612_0000 | rng.below(1 << 16) as u32),
            }
            let checks = [
                (
                    "same key, other fields varied",
                    s.pick(&cx(&svc, &loads, now), &v.flow()),
                ),
                (
                    "fresh instance, other lcore and seed",
                    other.pick(&cx(&svc, &loads, now), &fb.flow()),
                ),
            ];
            for (what, r) in checks {
                if r != first {
                    return Err(fail(
                        "spread",
                        factory,
                        format!("round {round}: {what}: {r:?} instead of {first:?}"),
                    ));
                }
            }
            s.refresh(&again);
            let r = s.pick(&cx(&again, &loads, now), &fb.flow());
            if r != first {
                return Err(fail(
                    "spread",
                    factory,
                    format!("round {round}: tables rebuilt with the same destinations: {r:?} instead of {first:?}"),
                ));
            }
            s.refresh(&svc);
        }
        if seen.iter().filter(|&&c| c > 0).count() < 2 {
            return Err(fail(
                "spread",
                factory,
                format!("round {round}: 300 keys all went to one destination: {seen:?}"),
            ));
        }
    }
    Ok(())
}

fn spread_locality(factory: &dyn SchedulerFactory) -> Result<(), Failure> {
    let mut rng = SplitMix64::new(0x0010_ca11);
    let n = 8u32;
    let dests: Vec<Dest> = (0..n)
        .map(|i| Dest {
            weight: 1 + rng.below(4) as u32,
            ..test_dest(i)
        })
        .collect();
    let svc = build(factory, dests)?;
    let loads = LoadTable::new(n as usize);
    random_loads(&mut rng, &loads, n, false);
    let mut s = factory.instance(0, 1);
    s.refresh(&svc);
    let daddrs: Vec<Addr> = (0..64).map(|i| Addr::v4([198, 19, 1, i])).collect();
    let mut first = vec![None; daddrs.len()];
    let mut order: Vec<usize> = (0..daddrs.len()).collect();
    for pass in 0..3 {
        // A different order each pass, so a scheduler that ignores the address cannot pass by
        // cycling in step with the list.
        for j in (1..order.len()).rev() {
            order.swap(j, rng.below(j as u64 + 1) as usize);
        }
        for &k in &order {
            let da = daddrs[k];
            let mut fb = FlowBuf::random(&mut rng);
            fb.daddr = da;
            let r = s.pick(&cx(&svc, &loads, Now::from_secs(100 + pass)), &fb.flow());
            if r.is_none() {
                return Err(fail(
                    "spread",
                    factory,
                    format!("{da}: no pick though every destination is eligible"),
                ));
            }
            match first[k] {
                None => first[k] = Some(r),
                Some(f) if f != r => {
                    return Err(fail(
                        "spread",
                        factory,
                        format!("{da}: pass {pass} chose {r:?}, first pass {f:?}, counters unchanged"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
