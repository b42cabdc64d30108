//! Source hashing (`sh`) and destination hashing (`dh`), as `ip_vs_sh.c` and `ip_vs_dh.c`:
//! a 256-bucket table built by the control plane, read by every lcore.
//!
//! - `sh` fills the buckets walking the destination list, giving each destination `weight`
//!   consecutive buckets (IPVS's `++d_count >= weight`, so a weight-0 destination still holds
//!   one bucket, and when the weights add up to more than 256 the last destinations get none,
//!   exactly as IPVS). Key: the client address, folded to 32 bits, plus the client port with
//!   `sh-port` (TCP and UDP only), hashed with the kernel's `hash_32`. With `sh-fallback`, an
//!   ineligible bucket makes it probe `hash(key + offset)` for every offset, as IPVS does.
//! - `dh` gives the buckets to the destinations in turn, ignoring weights, keyed by the
//!   destination address (`(addr * 2654435761) & 255` as IPVS, which in effect hashes the low
//!   octet). No flags.
//!
//! An ineligible hashed destination gives none (no fallback), as IPVS.

use rvs_core::Proto;
use rvs_core::sched::{Flow, SchedCx, SchedError, SchedTables, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, SchedFlags};
use std::sync::Arc;

use crate::util::{NONE, addr_fold, hash_32};

/// Table size of sh and dh (`IP_VS_SH_TAB_BITS = 8`).
pub const BUCKETS: usize = 256;
const BITS: u32 = 8;

/// The published bucket table: destination index per bucket, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// Destination index of each bucket (`u32::MAX` when the service has no destination).
    pub slots: Box<[u32; BUCKETS]>,
}

impl Buckets {
    #[inline]
    fn get(&self, b: u32) -> Option<usize> {
        match self.slots[(b as usize) & (BUCKETS - 1)] {
            NONE => None,
            i => Some(i as usize),
        }
    }
}

/// IPVS's `ip_vs_sh_reassign`.
pub fn sh_buckets(dests: &[Dest]) -> Buckets {
    let mut slots = Box::new([NONE; BUCKETS]);
    if !dests.is_empty() {
        let (mut p, mut count) = (0usize, 0u32);
        for s in slots.iter_mut() {
            *s = p as u32;
            count += 1;
            if count >= dests[p].weight {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }
    Buckets { slots }
}

/// IPVS's `ip_vs_dh_reassign`.
pub fn dh_buckets(dests: &[Dest]) -> Buckets {
    let mut slots = Box::new([NONE; BUCKETS]);
    if !dests.is_empty() {
        for (i, s) in slots.iter_mut().enumerate() {
            *s = (i % dests.len()) as u32;
        }
    }
    Buckets { slots }
}

/// `ip_vs_sh_hashkey`.
#[inline]
fn sh_hash(fold: u32, port: u16, offset: u32) -> u32 {
    offset.wrapping_add(hash_32((port as u32).wrapping_add(fold), BITS)) & (BUCKETS as u32 - 1)
}

/// `sh`: static hash on the client address.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShFactory;

impl SchedulerFactory for ShFactory {
    fn name(&self) -> &str {
        "sh"
    }
    fn build_tables(&self, dests: &[Dest], _flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        Ok(Some(Arc::new(sh_buckets(dests))))
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Sh)
    }
}

/// One `sh` instance (stateless: the table is in the snapshot).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sh;

/// The port a hash may use: TCP and UDP client ports only (IPVS's `ip_vs_sh_get_port`).
#[inline]
pub(crate) fn l4_port(flow: &Flow<'_>) -> u16 {
    match flow.proto {
        Proto::Tcp | Proto::Udp => flow.sport,
        _ => 0,
    }
}

impl Scheduler for Sh {
    fn name(&self) -> &str {
        "sh"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let t = cx.tables::<Buckets>()?;
        let flags = cx.svc.sched_flags;
        let port = if flags.has(SchedFlags::SH_PORT) {
            l4_port(flow)
        } else {
            0
        };
        let fold = addr_fold(flow.saddr);
        let ihash = sh_hash(fold, port, 0);
        let first = t.get(ihash)?;
        if cx.eligible(first) {
            return Some(first);
        }
        if !flags.has(SchedFlags::SH_FALLBACK) {
            return None;
        }
        for offset in 0..BUCKETS as u32 {
            let roffset = (offset + ihash) % BUCKETS as u32;
            if let Some(i) = t.get(sh_hash(fold, port, roffset))
                && cx.eligible(i)
            {
                return Some(i);
            }
        }
        None
    }
}

/// `dh`: static hash on the destination address.
#[derive(Debug, Clone, Copy, Default)]
pub struct DhFactory;

impl SchedulerFactory for DhFactory {
    fn name(&self) -> &str {
        "dh"
    }
    fn build_tables(&self, dests: &[Dest], _flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        Ok(Some(Arc::new(dh_buckets(dests))))
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Dh)
    }
}

/// One `dh` instance (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Dh;

impl Scheduler for Dh {
    fn name(&self) -> &str {
        "dh"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let t = cx.tables::<Buckets>()?;
        let b = addr_fold(flow.daddr).wrapping_mul(2_654_435_761);
        let i = t.get(b)?;
        cx.eligible(i).then_some(i)
    }
}
