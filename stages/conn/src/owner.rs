//! The connection owner table shared by every lcore: DPVS's `dp_vs_redirect`.
//!
//! Each connection lives in the table of the lcore that created it. When a device cannot
//! steer a connection's packets to that lcore (virtual devices have no flow rules; RSS
//! hashes a NAT reply, whose tuple differs from the request's, to any queue), the lcore that
//! receives a packet it has no connection for asks this table which lcore owns the tuple and
//! hands the packet over (DPVS: `dp_vs_redirect_get` on a lookup miss, then a ring to that
//! lcore). FNAT and SNAT replies need no table: their local port names the owner
//! ([`crate::SaPool::owner_lcore`]).
//!
//! The table is a fixed array of 64-bit slots, open addressing with a bounded linear probe,
//! lock-free: a slot holds 48 bits of the tuple's hash (the fingerprint) and the owner lcore
//! in the low 16 bits. The slot index comes from the other bits of the hash, so a lookup
//! compares `48 + log2(slots)` bits of a 64-bit hash: two live tuples with the same
//! fingerprint and home slot are about as likely as a 64-bit hash collision. Such a
//! collision, or an entry overwritten when a probe window is full ([`OwnerTable::evicted`]),
//! sends a packet to an lcore that does not have its connection: that lcore finds itself
//! named by the table (the same slot answers it) and treats the packet as a plain miss, so
//! a packet is redirected at most once per table change and never ping-pongs.
//!
//! Entries are added by conn-new when it creates a connection and removed by the owner when
//! the connection expires ([`OwnerTable::remove`] only clears an entry that still names the
//! caller). Nothing allocates after [`OwnerTable::new`]. DPVS guards its table with a lock
//! per bucket; here one compare-and-swap per insert or remove and plain loads per lookup.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::conn::Tuple;
use crate::table::hash_tuple;

/// Slots probed from a tuple's home slot.
pub const PROBE: usize = 16;
const EMPTY: u64 = 0;
/// A removed entry: skipped by lookups, reused by inserts.
const TOMB: u64 = 0xffff;
const SEED: u64 = 0x6f77_6e65_7273_2121;

/// Which lcore owns a connection, by tuple, for every lcore to read.
#[derive(Debug)]
pub struct OwnerTable {
    slots: Box<[AtomicU64]>,
    mask: usize,
    evicted: AtomicU64,
}

#[inline]
fn fingerprint(h: u64) -> u64 {
    // 48 high bits; never 0 so that an entry is never EMPTY or TOMB.
    let f = h & !0xffff;
    if f == 0 { 1 << 16 } else { f }
}

impl OwnerTable {
    /// A table of at least `entries` slots (rounded up to a power of two, at least 64).
    /// Twice the most connections alive at once over all lcores keeps probes short.
    pub fn new(entries: usize) -> Self {
        let n = entries.clamp(64, 1 << 30).next_power_of_two();
        OwnerTable {
            slots: (0..n).map(|_| AtomicU64::new(EMPTY)).collect(),
            mask: n - 1,
            evicted: AtomicU64::new(0),
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries overwritten because a probe window was full (their packets become misses).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        // Low bits of the hash (the fingerprint keeps the high ones).
        (h as usize) & self.mask
    }

    /// Record that `lcore` owns connections with tuple `t`.
    pub fn insert(&self, t: &Tuple, lcore: u16) {
        let h = hash_tuple(t, SEED);
        let fp = fingerprint(h);
        let want = fp | lcore as u64;
        let home = self.home(h);
        // The tuple's own entry, else the first free or removed slot; a lost race for that
        // slot (another lcore took it) means scanning again, not evicting.
        for _ in 0..PROBE {
            let mut free = None;
            for i in 0..PROBE {
                let s = &self.slots[(home + i) & self.mask];
                let v = s.load(Ordering::Acquire);
                if v != EMPTY && v != TOMB && v & !0xffff == fp {
                    s.store(want, Ordering::Release);
                    return;
                }
                if free.is_none() && (v == EMPTY || v == TOMB) {
                    free = Some((s, v));
                }
                if v == EMPTY {
                    break;
                }
            }
            match free {
                Some((s, v)) => {
                    if s.compare_exchange(v, want, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        return;
                    }
                }
                None => break,
            }
        }
        // Window full: overwrite the last slot of the window, counted.
        self.evicted.fetch_add(1, Ordering::Relaxed);
        self.slots[(home + PROBE - 1) & self.mask].store(want, Ordering::Release);
    }

    /// The lcore owning `t`, if any.
    #[inline]
    pub fn owner(&self, t: &Tuple) -> Option<u16> {
        let h = hash_tuple(t, SEED);
        let fp = fingerprint(h);
        let home = self.home(h);
        for i in 0..PROBE {
            let v = self.slots[(home + i) & self.mask].load(Ordering::Acquire);
            if v == EMPTY {
                return None;
            }
            if v != TOMB && v & !0xffff == fp {
                return Some(v as u16);
            }
        }
        None
    }

    /// Forget `t` if its entry still names `lcore` (a newer owner's entry is kept).
    pub fn remove(&self, t: &Tuple, lcore: u16) {
        let h = hash_tuple(t, SEED);
        let want = fingerprint(h) | lcore as u64;
        let home = self.home(h);
        for i in 0..PROBE {
            let s = &self.slots[(home + i) & self.mask];
            let v = s.load(Ordering::Acquire);
            if v == EMPTY {
                return;
            }
            if v == want {
                let _ = s.compare_exchange(v, TOMB, Ordering::AcqRel, Ordering::Acquire);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::addr::{Addr, Proto};
    use std::collections::HashMap;

    fn t(i: u32) -> Tuple {
        Tuple {
            proto: Proto::Tcp,
            saddr: Addr::from_v4_u32(0xc612_0000 + i),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: 1024 + (i % 50_000) as u16,
            dport: 80,
        }
    }

    #[test]
    fn agrees_with_a_map_under_inserts_and_removes() {
        let tab = OwnerTable::new(16384);
        let mut model = HashMap::new();
        for i in 0..3000u32 {
            let l = (i % 3) as u16;
            tab.insert(&t(i), l);
            model.insert(i, l);
        }
        for i in (0..3000u32).step_by(2) {
            tab.remove(&t(i), model[&i]);
            model.remove(&i);
        }
        // Re-owning moves an entry; removing with the old owner keeps the new one.
        tab.insert(&t(1), 2);
        model.insert(1, 2);
        tab.remove(&t(1), 1);
        assert_eq!(tab.evicted(), 0);
        for i in 0..3000u32 {
            assert_eq!(tab.owner(&t(i)), model.get(&i).copied(), "tuple {i}");
        }
        // Tombstones are reused: the table does not fill up under churn.
        for round in 0..20u32 {
            for i in 0..3000u32 {
                tab.insert(&t(100_000 + i), round as u16);
            }
            for i in 0..3000u32 {
                assert_eq!(tab.owner(&t(100_000 + i)), Some(round as u16));
                tab.remove(&t(100_000 + i), round as u16);
            }
        }
        assert_eq!(tab.evicted(), 0);
    }

    #[test]
    fn a_full_window_evicts_and_counts() {
        let tab = OwnerTable::new(64);
        for i in 0..1000u32 {
            tab.insert(&t(i), 1);
        }
        assert!(tab.evicted() > 0);
        // Whatever is found names the only owner ever written.
        let found = (0..1000u32).filter(|&i| tab.owner(&t(i)) == Some(1)).count();
        assert!(found > 0 && found <= 64, "{found}");
    }

    #[test]
    fn concurrent_writers_and_readers_never_see_a_foreign_owner() {
        let tab = std::sync::Arc::new(OwnerTable::new(1 << 16));
        let hs: Vec<_> = (0..2u16)
            .map(|l| {
                let tab = tab.clone();
                std::thread::spawn(move || {
                    for k in 0..20_000u32 {
                        let i = k * 2 + l as u32;
                        tab.insert(&t(i), l);
                        assert_eq!(tab.owner(&t(i)), Some(l));
                        if k % 2 == 0 {
                            tab.remove(&t(i), l);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        for i in 0..40_000u32 {
            let k = i / 2;
            let want = (k % 2 == 1).then_some((i % 2) as u16);
            if tab.evicted() == 0 {
                assert_eq!(tab.owner(&t(i)), want, "tuple {i}");
            }
        }
    }
}
