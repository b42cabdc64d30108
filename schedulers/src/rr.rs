//! Round robin (`rr`) and weighted round robin (`wrr`), as `ip_vs_rr.c` and `ip_vs_wrr.c`.

use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, Service};

use crate::util::weight_gcd;

/// `rr`: the next eligible destination in list order after the previous pick. As DPVS, each
/// lcore starts at a different destination (lcore `k` first tries index `k mod n`), so lcores
/// do not all hit the first server at once; a refresh restarts there.
#[derive(Debug, Clone, Copy, Default)]
pub struct RrFactory;

impl SchedulerFactory for RrFactory {
    fn name(&self) -> &str {
        "rr"
    }
    fn instance(&self, lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Rr::new(lcore))
    }
}

/// One lcore's `rr` state.
#[derive(Debug, Clone)]
pub struct Rr {
    lcore: u16,
    next: usize,
}

impl Rr {
    /// A fresh instance for `lcore`.
    pub fn new(lcore: u16) -> Self {
        Rr {
            lcore,
            next: lcore as usize,
        }
    }
}

impl Scheduler for Rr {
    fn name(&self) -> &str {
        "rr"
    }
    fn refresh(&mut self, _svc: &Service) {
        self.next = self.lcore as usize;
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        let n = cx.dests().len();
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        for k in 0..n {
            let i = (start + k) % n;
            if cx.eligible(i) {
                self.next = i + 1;
                return Some(i);
            }
        }
        None
    }
}

/// `wrr`: LVS's interleaved weighted round robin. The current weight `cw` starts at the
/// maximum weight and steps down by the gcd of the weights; each pass through the list takes
/// the destinations whose weight is at least `cw`. Weights 4, 3, 2 give `A A B A B C A B C`.
/// As IPVS, `mw` is reduced by `gcd - 1` so the last pass runs at `cw = 1`, and a change of
/// destinations restarts from the list head keeping `cw` where it can.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrrFactory;

impl SchedulerFactory for WrrFactory {
    fn name(&self) -> &str {
        "wrr"
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Wrr::default())
    }
}

/// One lcore's `wrr` state (IPVS's `ip_vs_wrr_mark`). `cl == n` stands for the list head.
#[derive(Debug, Clone, Default)]
pub struct Wrr {
    ready: bool,
    n: usize,
    cl: usize,
    cw: i64,
    mw: i64,
    di: i64,
}

impl Wrr {
    fn reset(&mut self, dests: &[Dest]) {
        let g = weight_gcd(dests).max(1) as i64;
        let maxw = dests.iter().map(|d| d.weight).max().unwrap_or(0) as i64;
        self.n = dests.len();
        self.cl = self.n;
        self.di = g;
        self.mw = maxw - (g - 1);
        if !self.ready || self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
        self.ready = true;
    }
}

impl Scheduler for Wrr {
    fn name(&self) -> &str {
        "wrr"
    }
    fn refresh(&mut self, svc: &Service) {
        self.reset(&svc.dests);
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _flow: &Flow<'_>) -> Option<usize> {
        let dests = cx.dests();
        let n = dests.len();
        if !self.ready || self.n != n {
            self.reset(dests);
        }
        if self.mw <= 0 {
            return None;
        }
        let head = n;
        let last = self.cl.min(head);
        let mut stop = None;
        let (mut last_pass, mut restarted) = (false, false);
        let mut dest = last;
        loop {
            let mut i = if dest == head { 0 } else { dest + 1 };
            while i < n {
                if cx.eligible(i) && dests[i].weight as i64 >= self.cw {
                    self.cl = i;
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = i;
                    return None;
                }
                i += 1;
            }
            dest = head;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last == head {
                    self.cl = head;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last != head {
                stop = Some(last);
            }
        }
    }
}
