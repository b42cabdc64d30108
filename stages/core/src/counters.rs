//! Per-stage counters: vectors, packets, where packets went, drops by reason, cycles.
//!
//! A stage counts in a plain [`Tally`] while it processes a vector; the [`crate::stage::Graph`]
//! flushes the tally once per vector into the stage's [`StageStats`], whose atomics can be read
//! from another thread (the control plane, `show runtime`) without a lock. Each lcore writes
//! only its own stats, so the flush is a relaxed load and store, not a locked add.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::label::Label;
use crate::verdict::DropReason;

/// The most labels (next stages or drop reasons) one stage may declare.
pub const MAX_LABELS: usize = 32;

/// Counts for one vector through one stage, in plain integers.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Packets handed to each next stage, by next-label index.
    pub next: [u64; MAX_LABELS],
    /// Packets dropped, by drop-reason index.
    pub drops: [u64; MAX_LABELS],
    /// Packets queued for transmit.
    pub tx: u64,
    /// Packets handed to the host path.
    pub host: u64,
    /// Packets redirected to another lcore.
    pub redirect: u64,
    /// Packets the stage kept (synproxy's saved ACKs, packets waiting for a neighbour).
    pub held: u64,
    /// Packets the stage created (SYN-ACKs, ARP replies, RSTs, released held packets).
    pub emitted: u64,
}

/// Cumulative counters of one stage on one lcore.
#[derive(Debug)]
pub struct StageStats {
    name: &'static str,
    next_names: &'static [&'static str],
    drop_names: &'static [&'static str],
    drop_causes: &'static [&'static str],
    /// Vectors processed (calls with at least one packet).
    pub vectors: AtomicU64,
    /// Packets received.
    pub packets: AtomicU64,
    /// Cycles spent in the stage's per-vector calls (TSC deltas).
    pub cycles: AtomicU64,
    next: [AtomicU64; MAX_LABELS],
    drops: [AtomicU64; MAX_LABELS],
    tx: AtomicU64,
    host: AtomicU64,
    redirect: AtomicU64,
    held: AtomicU64,
    emitted: AtomicU64,
}

fn bump(a: &AtomicU64, d: u64) {
    if d != 0 {
        a.store(a.load(Relaxed).wrapping_add(d), Relaxed);
    }
}

/// Name tables for a label set, computed once per stage type.
fn names<L: Label>() -> &'static [&'static str] {
    let v: Vec<&'static str> = L::ALL.iter().map(|l| l.name()).collect();
    Box::leak(v.into_boxed_slice())
}

impl StageStats {
    /// Zeroed counters for a stage with these label sets.
    pub fn new<N: Label, D: DropReason>(name: &'static str) -> Self {
        let causes: Vec<&'static str> = D::ALL.iter().map(|d| d.cause().name()).collect();
        StageStats {
            name,
            next_names: names::<N>(),
            drop_names: names::<D>(),
            drop_causes: Box::leak(causes.into_boxed_slice()),
            vectors: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            next: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            tx: AtomicU64::new(0),
            host: AtomicU64::new(0),
            redirect: AtomicU64::new(0),
            held: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
        }
    }

    /// Add one vector's tally (single writer: the owning lcore).
    pub fn flush(&self, packets: u64, cycles: u64, t: &Tally) {
        if packets != 0 {
            bump(&self.vectors, 1);
            bump(&self.packets, packets);
        }
        bump(&self.cycles, cycles);
        for (a, &d) in self.next.iter().zip(t.next.iter()).take(self.next_names.len()) {
            bump(a, d);
        }
        for (a, &d) in self.drops.iter().zip(t.drops.iter()).take(self.drop_names.len()) {
            bump(a, d);
        }
        bump(&self.tx, t.tx);
        bump(&self.host, t.host);
        bump(&self.redirect, t.redirect);
        bump(&self.held, t.held);
        bump(&self.emitted, t.emitted);
    }

    /// A plain copy for display and JSON.
    pub fn report(&self) -> StageReport {
        let pick = |names: &'static [&'static str], a: &[AtomicU64; MAX_LABELS]| {
            names
                .iter()
                .zip(a.iter())
                .map(|(n, c)| (*n, c.load(Relaxed)))
                .collect::<Vec<_>>()
        };
        StageReport {
            name: self.name,
            vectors: self.vectors.load(Relaxed),
            packets: self.packets.load(Relaxed),
            cycles: self.cycles.load(Relaxed),
            next: pick(self.next_names, &self.next),
            drops: self
                .drop_names
                .iter()
                .zip(self.drop_causes.iter())
                .zip(self.drops.iter())
                .map(|((n, c), a)| DropCount {
                    reason: n,
                    cause: c,
                    count: a.load(Relaxed),
                })
                .collect(),
            tx: self.tx.load(Relaxed),
            host: self.host.load(Relaxed),
            redirect: self.redirect.load(Relaxed),
            held: self.held.load(Relaxed),
            emitted: self.emitted.load(Relaxed),
        }
    }

    /// Zero every counter (ipvsadm `-Z`).
    pub fn zero(&self) {
        for a in [
            &self.vectors,
            &self.packets,
            &self.cycles,
            &self.tx,
            &self.host,
            &self.redirect,
            &self.held,
            &self.emitted,
        ] {
            a.store(0, Relaxed);
        }
        for a in self.next.iter().chain(self.drops.iter()) {
            a.store(0, Relaxed);
        }
    }
}

/// One drop reason's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCount {
    /// The stage's reason name.
    pub reason: &'static str,
    /// Its DPVS class.
    pub cause: &'static str,
    /// Packets dropped for it.
    pub count: u64,
}

/// A stage's counters as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    /// Stage name.
    pub name: &'static str,
    /// Vectors processed.
    pub vectors: u64,
    /// Packets received.
    pub packets: u64,
    /// Cycles spent.
    pub cycles: u64,
    /// Packets per next stage.
    pub next: Vec<(&'static str, u64)>,
    /// Drops per reason.
    pub drops: Vec<DropCount>,
    /// Packets queued for transmit.
    pub tx: u64,
    /// Packets to the host path.
    pub host: u64,
    /// Packets redirected to other lcores.
    pub redirect: u64,
    /// Packets held.
    pub held: u64,
    /// Packets created.
    pub emitted: u64,
}

impl StageReport {
    /// Drops for the reason named `reason`.
    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops.iter().filter(|d| d.reason == reason).map(|d| d.count).sum()
    }
    /// Packets handed to the next stage named `next`.
    pub fn sent(&self, next: &str) -> u64 {
        self.next.iter().filter(|(n, _)| *n == next).map(|(_, c)| c).sum()
    }
    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|d| d.count).sum()
    }
    /// Cycles per packet (0 when no packet was seen).
    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.cycles as f64 / self.packets as f64
        }
    }
}
