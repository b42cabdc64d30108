//! Shared bench fixture: a service of `n` destinations (weights 1..=4, a few connections
//! each), the scheduler's tables built and an instance refreshed, and 1024 random flows.

// Each bench binary uses part of the fixture.
#![allow(dead_code)]

use rvs_core::load::{Counter, LoadTable};
use rvs_core::rng::SplitMix64;
use rvs_core::sched::{SchedCx, Scheduler};
use rvs_core::service::{DestId, SchedFlags, Service};
use rvs_core::{Now, Proto};
use rvs_schedulers::conformance::{FlowBuf, test_dest, test_service};

/// Destination counts every scheduler is measured with.
pub const SIZES: [u32; 2] = [8, 256];

/// One scheduler ready to decide.
#[derive(Debug)]
pub struct Fixture {
    pub svc: Service,
    pub loads: LoadTable,
    pub sched: Box<dyn Scheduler>,
    pub flows: Vec<FlowBuf>,
    pub k: usize,
}

impl Fixture {
    pub fn new(name: &str, n: u32) -> Self {
        let f = rvs_schedulers::factory(name).expect("known scheduler");
        let mut rng = SplitMix64::new(0xbe7c_4000 ^ n as u64);
        let dests = (0..n)
            .map(|i| {
                let mut d = test_dest(i);
                d.weight = 1 + (i % 4);
                d
            })
            .collect();
        let svc = test_service(f.as_ref(), Proto::Udp, dests, SchedFlags(0)).expect("tables");
        let loads = LoadTable::new(n as usize);
        for i in 0..n {
            for _ in 0..rng.below(8) {
                loads.inc(DestId(i), Counter::Active);
            }
            for _ in 0..rng.below(16) {
                loads.inc(DestId(i), Counter::Inactive);
            }
        }
        let mut sched = f.instance(0, 1);
        sched.refresh(&svc);
        let flows = (0..1024).map(|_| FlowBuf::random(&mut rng)).collect();
        Fixture {
            svc,
            loads,
            sched,
            flows,
            k: 0,
        }
    }

    /// One decision, for the next flow.
    #[inline]
    pub fn pick(&mut self) -> Option<usize> {
        self.k = (self.k + 1) & 1023;
        let cx = SchedCx {
            svc: &self.svc,
            loads: &self.loads,
            now: Now::from_secs(1),
            lcore: 0,
        };
        self.sched.pick(&cx, &self.flows[self.k].flow())
    }
}
