//! Per-lcore destination counters: active, inactive and persistent connections and the
//! overload flag, indexed by the destination's stable [`DestId`].
//!
//! Each lcore owns one [`LoadTable`] and is its only writer, so counters need no lock; they are
//! atomics only so the control plane can read them for display (totals are sums over lcores).
//! Every change is also written to a small change log, so a consumer that mirrors the
//! counters elsewhere (the WASM plugin host keeps them in the plugin's memory) can copy just
//! the few that moved instead of the whole table.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::service::{Dest, DestId};

/// Length of the change log; a consumer further behind resynchronises everything.
pub const CHANGE_LOG: usize = 256;

/// One destination's counters on one lcore.
#[derive(Debug, Default)]
pub struct DestLoad {
    active: AtomicU32,
    inactive: AtomicU32,
    persistent: AtomicU32,
    overloaded: AtomicU32,
}

/// A plain copy of a destination's counters, what schedulers compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Active connections (TCP established).
    pub active: u32,
    /// Inactive connections (TCP not established, UDP, ICMP).
    pub inactive: u32,
    /// Persistence templates pointing here.
    pub persistent: u32,
    /// The overload flag (set at `max_conn`, cleared below the lower threshold).
    pub overloaded: bool,
}

impl Load {
    /// IPVS's overhead: `active * 256 + inactive` (`ip_vs_dest_conn_overhead`).
    pub const fn overhead(self) -> u64 {
        (self.active as u64) * 256 + self.inactive as u64
    }
    /// Connections bound (active + inactive), what thresholds compare.
    pub const fn conns(self) -> u64 {
        self.active as u64 + self.inactive as u64
    }
}

/// Counter deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Active connections.
    Active,
    /// Inactive connections.
    Inactive,
    /// Persistence templates.
    Persistent,
}

/// The counters of every destination slot on one lcore.
#[derive(Debug)]
pub struct LoadTable {
    loads: Box<[DestLoad]>,
    log: Box<[AtomicU32]>,
    seq: AtomicU64,
}

/// What changed since a consumer last looked.
#[derive(Debug)]
pub enum Changes<'a> {
    /// These destination ids changed (possibly repeated).
    Ids(&'a [AtomicU32], u64, u64),
    /// The consumer fell behind the log: treat everything as changed.
    All,
}

impl Changes<'_> {
    /// Visit the changed ids; `None` means "everything".
    pub fn for_each(&self, mut f: impl FnMut(DestId)) -> Option<()> {
        match self {
            Changes::Ids(log, from, to) => {
                for s in *from..*to {
                    f(DestId(log[(s as usize) % CHANGE_LOG].load(Relaxed)));
                }
                Some(())
            }
            Changes::All => None,
        }
    }
}

impl LoadTable {
    /// Counters for destination ids `0..slots`.
    pub fn new(slots: usize) -> Self {
        LoadTable {
            loads: (0..slots).map(|_| DestLoad::default()).collect(),
            log: (0..CHANGE_LOG).map(|_| AtomicU32::new(0)).collect(),
            seq: AtomicU64::new(0),
        }
    }
    /// Number of destination slots.
    pub fn slots(&self) -> usize {
        self.loads.len()
    }
    /// A copy of destination `id`'s counters (zero for an id beyond the table).
    #[inline]
    pub fn get(&self, id: DestId) -> Load {
        match self.loads.get(id.0 as usize) {
            Some(l) => Load {
                active: l.active.load(Relaxed),
                inactive: l.inactive.load(Relaxed),
                persistent: l.persistent.load(Relaxed),
                overloaded: l.overloaded.load(Relaxed) != 0,
            },
            None => Load::default(),
        }
    }
    #[inline]
    fn logged(&self, id: DestId) {
        let s = self.seq.load(Relaxed);
        self.log[(s as usize) % CHANGE_LOG].store(id.0, Relaxed);
        self.seq.store(s + 1, Relaxed);
    }
    fn cell(&self, id: DestId, c: Counter) -> Option<&AtomicU32> {
        self.loads.get(id.0 as usize).map(|l| match c {
            Counter::Active => &l.active,
            Counter::Inactive => &l.inactive,
            Counter::Persistent => &l.persistent,
        })
    }
    /// Add one to a counter (only the owning lcore calls this).
    #[inline]
    pub fn inc(&self, id: DestId, c: Counter) {
        if let Some(a) = self.cell(id, c) {
            a.store(a.load(Relaxed).wrapping_add(1), Relaxed);
            self.logged(id);
        }
    }
    /// Take one from a counter, never below zero (only the owning lcore calls this).
    #[inline]
    pub fn dec(&self, id: DestId, c: Counter) {
        if let Some(a) = self.cell(id, c) {
            a.store(a.load(Relaxed).saturating_sub(1), Relaxed);
            self.logged(id);
        }
    }
    /// Move one connection between the active and inactive counters (a state change).
    #[inline]
    pub fn shift(&self, id: DestId, from: Counter, to: Counter) {
        if from != to {
            self.dec(id, from);
            self.inc(id, to);
        }
    }
    /// Set or clear the overload flag.
    #[inline]
    pub fn set_overloaded(&self, id: DestId, on: bool) {
        if let Some(l) = self.loads.get(id.0 as usize)
            && (l.overloaded.load(Relaxed) != 0) != on
        {
            l.overloaded.store(on as u32, Relaxed);
            self.logged(id);
        }
    }
    /// The seed's `dp_vs_conn_bind_dest` check, on this lcore's share of the limit: refuse
    /// (false, overload flag set) when the destination already holds its share of
    /// `max_conn`; otherwise true.
    pub fn admit(&self, dest: &Dest, lcores: u16) -> bool {
        let limit = dest.lcore_max_conn(lcores);
        if limit != 0 && self.get(dest.id).conns() >= limit as u64 {
            self.set_overloaded(dest.id, true);
            return false;
        }
        true
    }
    /// IPVS's rule for clearing the overload flag after a connection left: below the lower
    /// threshold, or below three quarters of the upper one when no lower threshold is set.
    pub fn relieve(&self, dest: &Dest, lcores: u16) {
        let l = self.get(dest.id);
        if !l.overloaded {
            return;
        }
        let upper = dest.lcore_max_conn(lcores) as u64;
        let lower = dest.lcore_min_conn(lcores) as u64;
        let clear = if upper == 0 {
            true
        } else if lower != 0 {
            l.conns() < lower
        } else {
            l.conns() * 4 < upper * 3
        };
        if clear {
            self.set_overloaded(dest.id, false);
        }
    }
    /// The change-log position now.
    pub fn seq(&self) -> u64 {
        self.seq.load(Relaxed)
    }
    /// What changed since position `since` (from [`LoadTable::seq`]).
    pub fn changes_since(&self, since: u64) -> Changes<'_> {
        let now = self.seq();
        if now.saturating_sub(since) > CHANGE_LOG as u64 || since > now {
            Changes::All
        } else {
            Changes::Ids(&self.log, since, now)
        }
    }
    /// Zero every counter of slot `id` (the control plane reuses a slot only after every
    /// lcore reports it empty).
    pub fn reset(&self, id: DestId) {
        if let Some(l) = self.loads.get(id.0 as usize) {
            l.active.store(0, Relaxed);
            l.inactive.store(0, Relaxed);
            l.persistent.store(0, Relaxed);
            l.overloaded.store(0, Relaxed);
            self.logged(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Dest;

    fn dest(max: u32, min: u32) -> Dest {
        let mut d = Dest::new(DestId(3), "198.18.1.11".parse().unwrap(), 80);
        d.max_conn = max;
        d.min_conn = min;
        d
    }

    #[test]
    fn overload_set_at_limit_and_cleared_below_three_quarters() {
        let t = LoadTable::new(8);
        let d = dest(8, 0);
        for _ in 0..8 {
            assert!(t.admit(&d, 1));
            t.inc(d.id, Counter::Inactive);
        }
        assert!(!t.admit(&d, 1));
        assert!(t.get(d.id).overloaded);
        t.dec(d.id, Counter::Inactive); // 7: 28 >= 24, stays
        t.relieve(&d, 1);
        assert!(t.get(d.id).overloaded);
        t.dec(d.id, Counter::Inactive); // 6: 24 >= 24, stays
        t.relieve(&d, 1);
        assert!(t.get(d.id).overloaded);
        t.dec(d.id, Counter::Inactive); // 5: 20 < 24, clears
        t.relieve(&d, 1);
        assert!(!t.get(d.id).overloaded);
    }

    #[test]
    fn lower_threshold_and_lcore_share() {
        let t = LoadTable::new(8);
        let d = dest(10, 2);
        // Two lcores: this lcore's share is 5 and 1.
        for _ in 0..5 {
            assert!(t.admit(&d, 2));
            t.inc(d.id, Counter::Active);
        }
        assert!(!t.admit(&d, 2));
        for _ in 0..4 {
            t.dec(d.id, Counter::Active);
            t.relieve(&d, 2);
            assert!(t.get(d.id).overloaded);
        }
        t.dec(d.id, Counter::Active);
        t.relieve(&d, 2);
        assert!(!t.get(d.id).overloaded);
    }

    #[test]
    fn change_log_lists_ids_then_overflows() {
        let t = LoadTable::new(600);
        let s = t.seq();
        t.inc(DestId(5), Counter::Active);
        t.shift(DestId(7), Counter::Inactive, Counter::Active);
        let mut seen = vec![];
        assert!(t.changes_since(s).for_each(|id| seen.push(id.0)).is_some());
        assert_eq!(seen, vec![5, 7, 7]);
        for i in 0..300 {
            t.inc(DestId(i), Counter::Inactive);
        }
        assert!(t.changes_since(s).for_each(|_| {}).is_none());
        assert_eq!(
            t.get(DestId(7)),
            Load {
                active: 1,
                inactive: 1,
                persistent: 0,
                overloaded: false
            }
        );
        assert_eq!(t.get(DestId(9999)), Load::default());
    }
}
