//! Maglev hashing (`mh`): Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, section 3.4, made weight-aware the way `ip_vs_mh.c` does it.
//!
//! Each destination gets a permutation of the `M` table slots from two hashes of its address
//! and port: `offset = h1 mod M`, `skip = h2 mod (M - 1) + 1`, `permutation[j] = (offset + j *
//! skip) mod M`. The destinations then take turns claiming their next preferred empty slot
//! until the table is full (the paper's population algorithm, its Pseudocode 1). As IPVS, a
//! destination claims `weight / gcd` slots per turn (shifted right so the largest claim is
//! under 64), and a weight-0 destination claims none: rvs keeps no "last weight", so draining
//! a destination gives its slots to the others, as removing it would.
//!
//! `M` must be a prime (so every `skip` generates the whole table) of at least the number of
//! destinations; the default is 4093 as IPVS and DPVS, the paper uses 65537, and any prime up
//! to [`MAX_TABLE`] is accepted. A lookup hashes the client address folded to 32 bits (plus the
//! client port with `mh-port`) and reads one slot; with `mh-fallback` an ineligible slot makes
//! it probe `hash(key + offset)` for each offset as IPVS does, otherwise it gives none.
//!
//! The table is built by the control plane in [`SchedulerFactory::build_tables`] and only
//! read on the packet path. Measured spread and disruption are in the crate documentation.

use std::sync::Arc;

use rvs_core::hash::{hash_addr_port, mix64};
use rvs_core::sched::{Flow, SchedCx, SchedError, SchedTables, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, SchedFlags};

use crate::hashing::l4_port;
use crate::util::{NONE, addr_fold, fls, is_prime, weight_gcd};

/// IPVS's and DPVS's default table size.
pub const DEFAULT_TABLE: u32 = 4093;
/// Largest table accepted (a prime; 16 MiB of `u32` slots).
pub const MAX_TABLE: u32 = 4_194_301;
/// `IP_VS_MH_TAB_BITS`: the largest per-turn claim is kept under `2^6`.
const TAB_BITS: u32 = 6;
const SEED_OFFSET: u64 = 2_654_435_761;
const SEED_SKIP: u64 = 2_654_446_892;
const SEED_LOOKUP: u64 = 0x6d68_5f6c_6f6f_6b75;

/// The published Maglev lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// Destination index per slot (`u32::MAX` when no destination has a positive weight).
    pub slots: Box<[u32]>,
}

impl MaglevTable {
    /// Table size `M`.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Populate a table of `m` slots for `dests` (paper's Pseudocode 1, IPVS's weighted
    /// turns). Errors when `m` is not a prime in `2..=MAX_TABLE` or smaller than the number
    /// of destinations.
    pub fn build(dests: &[Dest], m: u32) -> Result<Self, SchedError> {
        check_size(m)?;
        if dests.len() > m as usize {
            return Err(SchedError::Invalid {
                sched: "mh".into(),
                what: format!("{} destinations do not fit a table of {m} slots", dests.len()),
            });
        }
        let mut slots = vec![NONE; m as usize].into_boxed_slice();
        let g = weight_gcd(dests);
        if g == 0 {
            return Ok(MaglevTable { slots });
        }
        let mw = dests.iter().map(|d| d.weight).max().unwrap_or(0) / g;
        let rshift = fls(mw).saturating_sub(TAB_BITS);
        let mut next: Vec<u64> = Vec::with_capacity(dests.len());
        let mut skip: Vec<u64> = Vec::with_capacity(dests.len());
        let mut turns: Vec<u32> = Vec::with_capacity(dests.len());
        let m64 = m as u64;
        for d in dests {
            next.push(hash_addr_port(d.addr, d.port, SEED_OFFSET) % m64);
            skip.push(hash_addr_port(d.addr, d.port, SEED_SKIP) % (m64 - 1) + 1);
            let t = (d.weight / g) >> rshift;
            turns.push(if t > 0 { t } else { (d.weight != 0) as u32 });
        }
        populate(&mut slots, &mut next, &skip, &turns);
        Ok(MaglevTable { slots })
    }

    #[inline]
    fn hash(&self, fold: u32, port: u16, offset: u32) -> usize {
        let v = offset.wrapping_add(port as u32).wrapping_add(fold);
        (mix64(v as u64 ^ SEED_LOOKUP) % self.slots.len() as u64) as usize
    }

    /// The slot a client address (and port, 0 without `mh-port`) hashes to.
    #[inline]
    pub fn slot_of(&self, saddr: rvs_core::Addr, port: u16) -> usize {
        self.hash(addr_fold(saddr), port, 0)
    }

    /// The destination index in slot `s`.
    #[inline]
    pub fn dest_at(&self, s: usize) -> Option<usize> {
        match self.slots.get(s) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }
}

/// The paper's population loop (Pseudocode 1) with IPVS's weighted turns: destination `i`
/// starts at `next[i]`, steps by `skip[i]`, and claims `turns[i]` empty slots per round until
/// every slot of `slots` (all `NONE` on entry) is taken. At least one turn must be positive.
pub fn populate(slots: &mut [u32], next: &mut [u64], skip: &[u64], turns: &[u32]) {
    let m = slots.len() as u64;
    if m == 0 || !turns.iter().any(|&t| t > 0) {
        return;
    }
    let mut filled = 0u64;
    loop {
        for (i, &t) in turns.iter().enumerate() {
            for _ in 0..t {
                let mut c = next[i];
                while slots[c as usize] != NONE {
                    c += skip[i];
                    if c >= m {
                        c -= m;
                    }
                }
                next[i] = c;
                slots[c as usize] = i as u32;
                filled += 1;
                if filled == m {
                    return;
                }
            }
        }
    }
}

fn check_size(m: u32) -> Result<(), SchedError> {
    if !(2..=MAX_TABLE).contains(&m) || !is_prime(m) {
        return Err(SchedError::Invalid {
            sched: "mh".into(),
            what: format!("table size {m} must be a prime between 2 and {MAX_TABLE} (e.g. 4093, 65537)"),
        });
    }
    Ok(())
}

/// `mh`: Maglev hashing on the client address.
#[derive(Debug, Clone, Copy)]
pub struct MhFactory {
    table: u32,
}

impl Default for MhFactory {
    fn default() -> Self {
        MhFactory { table: DEFAULT_TABLE }
    }
}

impl MhFactory {
    /// A factory building tables of `table` slots (a prime, see [`MAX_TABLE`]).
    pub fn new(table: u32) -> Result<Self, SchedError> {
        check_size(table)?;
        Ok(MhFactory { table })
    }
    /// The table size.
    pub fn table_size(&self) -> u32 {
        self.table
    }
}

impl SchedulerFactory for MhFactory {
    fn name(&self) -> &str {
        "mh"
    }
    fn build_tables(&self, dests: &[Dest], _flags: SchedFlags) -> Result<Option<SchedTables>, SchedError> {
        Ok(Some(Arc::new(MaglevTable::build(dests, self.table)?)))
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Mh)
    }
}

/// One `mh` instance (stateless: the table is in the snapshot).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mh;

impl Scheduler for Mh {
    fn name(&self) -> &str {
        "mh"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let t = cx.tables::<MaglevTable>()?;
        let flags = cx.svc.sched_flags;
        let port = if flags.has(SchedFlags::MH_PORT) {
            l4_port(flow)
        } else {
            0
        };
        let fold = addr_fold(flow.saddr);
        let ihash = t.hash(fold, port, 0);
        let first = t.dest_at(ihash)?;
        if cx.eligible(first) {
            return Some(first);
        }
        if !flags.has(SchedFlags::MH_FALLBACK) {
            return None;
        }
        let m = t.size();
        for offset in 0..m {
            let roffset = ((offset + ihash) % m) as u32;
            let i = t.dest_at(t.hash(fold, port, roffset))?;
            if cx.eligible(i) {
                return Some(i);
            }
        }
        None
    }
}
