//! The scheduler trait: one call per new connection, never per packet.
//!
//! Native schedulers (`rvs-schedulers`) and WASM plugins (`rvs-plugin-host`) implement the
//! same two traits and pass one conformance suite:
//!
//! - a [`SchedulerFactory`] lives in the service snapshot. The control plane asks it, once per
//!   snapshot, for the shared read-only tables it needs (hash rings, Maglev tables:
//!   [`SchedulerFactory::build_tables`]); those are published with the snapshot and never
//!   rebuilt on the fast path;
//! - each lcore asks the factory for its own [`Scheduler`] instance (per-lcore position of rr,
//!   wrr's current weight, lblc's cache, a plugin instance). The worker calls
//!   [`Scheduler::refresh`] when it sees a new snapshot of the service (off the packet path),
//!   then [`Scheduler::pick`] for each new connection.
//!
//! A pick sees the service (its destinations, weights, flags, tables), this lcore's
//! connection counters and the new flow, and answers a destination index or none. It must
//! not allocate. Eligibility (weight > 0, available, not inhibited, not overloaded) is the
//! scheduler's to check, with [`eligible`].

use std::any::Any;
use std::sync::Arc;

use crate::addr::{Addr, Af, Proto};
use crate::load::{Load, LoadTable};
use crate::service::{Dest, SchedFlags, Service};
use crate::time::Now;

/// The new connection a scheduler places.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    /// Address family.
    pub af: Af,
    /// Protocol.
    pub proto: Proto,
    /// Client address.
    pub saddr: Addr,
    /// Virtual address.
    pub daddr: Addr,
    /// Client port (ICMP: identifier).
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
    /// The first L4 payload bytes (DPVS's conhash reads a QUIC connection id from UDP).
    pub payload: &'a [u8],
}

/// What a pick is given besides the flow.
#[derive(Debug, Clone, Copy)]
pub struct SchedCx<'a> {
    /// The service, from the current snapshot.
    pub svc: &'a Service,
    /// This lcore's destination counters.
    pub loads: &'a LoadTable,
    /// The current time (lblc/lblcr expire cache entries).
    pub now: Now,
    /// This lcore.
    pub lcore: u16,
}

impl<'a> SchedCx<'a> {
    /// The service's destinations.
    #[inline]
    pub fn dests(&self) -> &'a [Dest] {
        &self.svc.dests
    }
    /// Counters of destination index `i` of the service.
    #[inline]
    pub fn load(&self, i: usize) -> Load {
        match self.svc.dests.get(i) {
            Some(d) => self.loads.get(d.id),
            None => Load::default(),
        }
    }
    /// True when destination index `i` can take a new connection.
    #[inline]
    pub fn eligible(&self, i: usize) -> bool {
        match self.svc.dests.get(i) {
            Some(d) => eligible(d, self.loads.get(d.id)),
            None => false,
        }
    }
    /// The shared tables the factory built for this snapshot, downcast to `T`.
    pub fn tables<T: Any>(&self) -> Option<&'a T> {
        self.svc.sched_tables.as_deref().and_then(|t| t.downcast_ref::<T>())
    }
}

/// A destination can take a new connection: weight > 0, available, not inhibited by a
/// health check, not overloaded.
#[inline]
pub fn eligible(d: &Dest, l: Load) -> bool {
    d.weight > 0 && d.flags.available() && !d.flags.inhibited() && !l.overloaded
}

/// One lcore's scheduler instance for one service.
pub trait Scheduler: Send + std::fmt::Debug {
    /// The scheduler's name (`wlc`, `wasm:PATH`).
    fn name(&self) -> &str;
    /// The service changed (destinations added, removed, re-weighted): rebuild per-lcore
    /// state. Called off the packet path, before the first pick on a new snapshot.
    fn refresh(&mut self, svc: &Service) {
        let _ = svc;
    }
    /// Pick the destination of a new connection: an index into `cx.svc.dests`, or `None`
    /// when no destination can take it.
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize>;
}

/// An error building a scheduler's tables or instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// A parameter is out of range.
    #[error("scheduler {sched}: {what}")]
    Invalid {
        /// Scheduler name.
        sched: String,
        /// What is wrong.
        what: String,
    },
}

/// Shared tables built by the control plane, published in the snapshot.
pub type SchedTables = Arc<dyn Any + Send + Sync>;

/// Makes per-lcore [`Scheduler`] instances and the shared tables they read.
pub trait SchedulerFactory: Send + Sync + std::fmt::Debug {
    /// The scheduler's name.
    fn name(&self) -> &str;
    /// Build the shared read-only tables for these destinations (hash rings, Maglev
    /// tables); `None` when the scheduler needs none. Runs on the control plane.
    fn build_tables(&self, dests: &[Dest], flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        let _ = (dests, flags);
        Ok(None)
    }
    /// A new instance for `lcore`, seeded (for schedulers that draw random numbers).
    fn instance(&self, lcore: u16, seed: u64) -> Box<dyn Scheduler>;
}
