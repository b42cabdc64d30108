//! DPVS's consistent hashing (`conhash`, `src/ipvs/ip_vs_conhash.c` over libconhash): a ring
//! with `160 * weight / gcd(weights)` virtual nodes per destination (a weight-0 destination
//! has none), looked up by the first virtual node at or after the key's hash, wrapping.
//!
//! The key is the client address folded to 32 bits as DPVS does, or, with the `quic-cid`
//! flag on a UDP service, the 8-byte connection id of a gQUIC packet (public flags byte with
//! bit 0x08 set, then the id: DPVS's `get_quic_hash_target`), falling back to the client
//! address when the payload carries none. DPVS refuses `quic-cid` on a non-UDP service at
//! schedule time; rvs keys such a service by the client address instead. libconhash hashes
//! strings with MD5; rvs hashes the same values with [`rvs_core::hash`] (no string
//! formatting, no allocation), so the ring positions differ from DPVS's while the
//! properties (spread, minimal disruption) are the same. An ineligible destination on the
//! ring gives none, as DPVS's `dp_vs_dest_is_valid` check.

use std::sync::Arc;

use rvs_core::Proto;
use rvs_core::hash::{hash_addr_port, mix64};
use rvs_core::sched::{Flow, SchedCx, SchedError, SchedTables, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, SchedFlags};

use crate::util::{addr_fold, weight_gcd};

/// Virtual nodes per unit of (gcd-reduced) weight (DPVS's `REPLICA`).
pub const REPLICAS: u32 = 160;
const SEED_NODE: u64 = 0x636f_6e68_6173_6801;
const SEED_SIP: u64 = 0x636f_6e68_6173_6802;
const SEED_CID: u64 = 0x636f_6e68_6173_6803;
/// gQUIC public flag: an 8-byte connection id follows.
const QUIC_8BYTE_CID: u8 = 1 << 3;

/// The published ring: virtual nodes sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// (position, destination index), sorted by position.
    pub nodes: Box<[(u64, u32)]>,
}

impl Ring {
    /// Build the ring for `dests`.
    pub fn build(dests: &[Dest]) -> Ring {
        let g = weight_gcd(dests);
        let mut nodes = Vec::new();
        for (i, d) in dests.iter().enumerate() {
            let base = hash_addr_port(d.addr, d.port, SEED_NODE);
            for r in 0..d.weight.checked_div(g).unwrap_or(0) * REPLICAS {
                nodes.push((mix64(base ^ r as u64), i as u32));
            }
        }
        nodes.sort_unstable();
        Ring {
            nodes: nodes.into_boxed_slice(),
        }
    }

    /// The destination index owning hash `h`.
    #[inline]
    pub fn lookup(&self, h: u64) -> Option<usize> {
        let p = self.nodes.partition_point(|n| n.0 < h);
        let n = self.nodes.get(p).or_else(|| self.nodes.first())?;
        Some(n.1 as usize)
    }
}

/// The hash key of a flow under `flags`.
#[inline]
pub fn key_hash(flow: &Flow<'_>, flags: SchedFlags) -> u64 {
    if flags.has(SchedFlags::QUIC_CID)
        && flow.proto == Proto::Udp
        && let Some(cid) = quic_cid(flow.payload)
    {
        return mix64(cid ^ SEED_CID);
    }
    mix64(addr_fold(flow.saddr) as u64 ^ SEED_SIP)
}

/// The gQUIC 8-byte connection id at the start of a UDP payload, if the public flags say
/// one is there.
#[inline]
pub fn quic_cid(payload: &[u8]) -> Option<u64> {
    let flags = *payload.first()?;
    if flags & QUIC_8BYTE_CID == 0 {
        return None;
    }
    let b: [u8; 8] = payload.get(1..9)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// `conhash`: DPVS's consistent hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConhashFactory;

impl SchedulerFactory for ConhashFactory {
    fn name(&self) -> &str {
        "conhash"
    }
    fn build_tables(&self, dests: &[Dest], _flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        Ok(Some(Arc::new(Ring::build(dests))))
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Conhash)
    }
}

/// One `conhash` instance (stateless: the ring is in the snapshot).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conhash;

impl Scheduler for Conhash {
    fn name(&self) -> &str {
        "conhash"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let ring = cx.tables::<Ring>()?;
        let i = ring.lookup(key_hash(flow, cx.svc.sched_flags))?;
        cx.eligible(i).then_some(i)
    }
}
