//! The least-connection family (`lc`, `wlc`, `sed`, `nq`), the weight-order schedulers (`fo`,
//! `ovf`) and power of two choices (`twos`), as `ip_vs_lc.c`, `ip_vs_wlc.c`, `ip_vs_sed.c`,
//! `ip_vs_nq.c`, `ip_vs_fo.c`, `ip_vs_ovf.c` and `ip_vs_twos.c`.
//!
//! Loads are compared as IPVS does, by cross-multiplying (`a_load * b_weight >
//! b_load * a_weight`) and never by integer division, so 3/4 and 2/3 are told apart; ties go
//! to the earlier destination in the list.

use rvs_core::load::Load;
use rvs_core::rng::SplitMix64;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory, eligible};

use crate::util::{heavier, least_weighted};

/// The formula a least-connection scheduler minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Formula {
    /// `lc`: least `active * 256 + inactive` (weights only exclude drained destinations).
    Lc,
    /// `wlc`: least `(active * 256 + inactive) / weight`.
    Wlc,
    /// `sed`: least `(active + 1) / weight` (shortest expected delay).
    Sed,
    /// `nq`: the first destination with no active connection, else as `sed` (never queue).
    Nq,
}

impl Formula {
    /// The ipvsadm name.
    pub const fn name(self) -> &'static str {
        match self {
            Formula::Lc => "lc",
            Formula::Wlc => "wlc",
            Formula::Sed => "sed",
            Formula::Nq => "nq",
        }
    }
}

/// `ip_vs_sed_dest_overhead` / `ip_vs_nq_dest_overhead`: `active + 1`.
#[inline]
pub(crate) const fn sed_overhead(l: Load) -> u64 {
    l.active as u64 + 1
}

/// Factory of the least-connection schedulers.
#[derive(Debug, Clone, Copy)]
pub struct LeastFactory(pub Formula);

impl SchedulerFactory for LeastFactory {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Least(self.0))
    }
}

/// A least-connection scheduler (stateless: it reads this lcore's counters).
#[derive(Debug, Clone, Copy)]
pub struct Least(pub Formula);

impl Scheduler for Least {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        match self.0 {
            Formula::Lc => lc(cx),
            Formula::Wlc => least_weighted(cx, Load::overhead),
            Formula::Sed => least_weighted(cx, sed_overhead),
            Formula::Nq => nq(cx),
        }
    }
}

fn lc(cx: &SchedCx<'_>) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, d) in cx.dests().iter().enumerate() {
        let l = cx.loads.get(d.id);
        if !eligible(d, l) {
            continue;
        }
        let oh = l.overhead();
        match best {
            Some((_, b)) if oh >= b => {}
            _ => best = Some((i, oh)),
        }
    }
    best.map(|b| b.0)
}

fn nq(cx: &SchedCx<'_>) -> Option<usize> {
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, d) in cx.dests().iter().enumerate() {
        let l = cx.loads.get(d.id);
        if !eligible(d, l) {
            continue;
        }
        if l.active == 0 {
            return Some(i);
        }
        let oh = sed_overhead(l);
        match best {
            Some((_, boh, bw)) if !heavier(boh, bw, oh, d.weight) => {}
            _ => best = Some((i, oh, d.weight)),
        }
    }
    best.map(|b| b.0)
}

/// `fo`: weighted failover, the eligible destination with the highest weight (the first of
/// equals).
#[derive(Debug, Clone, Copy, Default)]
pub struct FoFactory;

impl SchedulerFactory for FoFactory {
    fn name(&self) -> &str {
        "fo"
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Fo)
    }
}

/// One `fo` instance (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn name(&self) -> &str {
        "fo"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        highest(cx, |_, _| true)
    }
}

fn highest(cx: &SchedCx<'_>, ok: impl Fn(&rvs_core::service::Dest, Load) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in cx.dests().iter().enumerate() {
        let l = cx.loads.get(d.id);
        if !eligible(d, l) || !ok(d, l) {
            continue;
        }
        match best {
            Some((_, w)) if d.weight <= w => {}
            _ => best = Some((i, d.weight)),
        }
    }
    best.map(|b| b.0)
}

/// `ovf`: weighted overflow, the highest-weight eligible destination whose active connections
/// do not exceed its weight (IPVS skips `activeconns > weight`); the first of equals.
#[derive(Debug, Clone, Copy, Default)]
pub struct OvfFactory;

impl SchedulerFactory for OvfFactory {
    fn name(&self) -> &str {
        "ovf"
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Ovf)
    }
}

/// One `ovf` instance (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn name(&self) -> &str {
        "ovf"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        highest(cx, |d, l| l.active <= d.weight)
    }
}

/// `twos`: power of two choices (Mitzenmacher, "The Power of Two Random Choices", 2001), as
/// `ip_vs_twos.c`: draw two destinations at random in proportion to their weights (IPVS draws
/// `r` in `0..=total` and walks the list subtracting weights until `r <= 0`, so the first
/// eligible destination gets one extra chance), keep the one with the lower
/// `overhead / weight` (the first draw on a tie). Random numbers come from a SplitMix64
/// seeded per instance, so a run can be replayed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TwosFactory;

impl SchedulerFactory for TwosFactory {
    fn name(&self) -> &str {
        "twos"
    }
    fn instance(&self, lcore: u16, seed: u64) -> Box<dyn Scheduler> {
        Box::new(Twos::new(seed ^ ((lcore as u64) << 48)))
    }
}

/// One lcore's `twos` state: its random source.
#[derive(Debug, Clone)]
pub struct Twos {
    rng: SplitMix64,
}

impl Twos {
    /// An instance drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Twos {
            rng: SplitMix64::new(seed),
        }
    }
}

impl Scheduler for Twos {
    fn name(&self) -> &str {
        "twos"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        let dests = cx.dests();
        let mut total: i64 = 0;
        for (i, d) in dests.iter().enumerate() {
            if cx.eligible(i) {
                total += d.weight as i64;
            }
        }
        if total == 0 {
            return None;
        }
        let mut r1 = self.rng.below(total as u64 + 1) as i64;
        let mut r2 = self.rng.below(total as u64 + 1) as i64;
        let mut c1: Option<(usize, u32, u64)> = None;
        let mut c2: Option<(usize, u32, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            let l = cx.loads.get(d.id);
            if !eligible(d, l) {
                continue;
            }
            r1 -= d.weight as i64;
            r2 -= d.weight as i64;
            if r1 <= 0 && c1.is_none() {
                c1 = Some((i, d.weight, l.overhead()));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((i, d.weight, l.overhead()));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        match (c1, c2) {
            (Some((i1, w1, o1)), Some((i2, w2, o2))) => Some(if heavier(o1, w1, o2, w2) { i2 } else { i1 }),
            (Some((i1, ..)), None) => Some(i1),
            (None, Some((i2, ..))) => Some(i2),
            (None, None) => None,
        }
    }
}
