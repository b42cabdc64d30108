//! `pick` never allocates: a counting global allocator watches every native scheduler
//! through randomized picks (after `refresh`, which may allocate).

// A global allocator cannot be written without `unsafe`; this test binary is its only user.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rvs_core::load::{Counter, LoadTable};
use rvs_core::rng::SplitMix64;
use rvs_core::sched::SchedCx;
use rvs_core::service::{DestFlags, SchedFlags};
use rvs_core::{Now, Proto};
use rvs_schedulers::conformance::{FlowBuf, test_dest, test_service};
use rvs_schedulers::{NAMES, factory};

struct Counting;

// Counted per thread: the test harness allocates on its own threads meanwhile.
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let armed = ARMED.try_with(Cell::get).unwrap_or(false);
    if armed {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: as `alloc` and `dealloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn pick_does_not_allocate() {
    let mut rng = SplitMix64::new(9);
    for name in NAMES {
        let f = factory(name).expect("known");
        for flags in [
            0,
            SchedFlags::SH_FALLBACK | SchedFlags::MH_FALLBACK | SchedFlags::QUIC_CID,
            SchedFlags::SH_PORT | SchedFlags::MH_PORT,
        ] {
            let dests = (0..16)
                .map(|i| {
                    let mut d = test_dest(i);
                    d.weight = (i % 5) * 2;
                    if i % 7 == 3 {
                        d.flags.0 |= DestFlags::INHIBITED;
                    }
                    d
                })
                .collect();
            let svc = test_service(f.as_ref(), Proto::Udp, dests, SchedFlags(flags)).expect("tables");
            let loads = LoadTable::new(16);
            let mut s = f.instance(0, 1);
            s.refresh(&svc);
            let flows: Vec<FlowBuf> = (0..500).map(|_| FlowBuf::random(&mut rng)).collect();
            ALLOCS.set(0);
            ARMED.set(true);
            for (k, fb) in flows.iter().enumerate() {
                let cx = SchedCx {
                    svc: &svc,
                    loads: &loads,
                    now: Now::from_secs(k as u64 * 600),
                    lcore: 0,
                };
                if let Some(i) = s.pick(&cx, &fb.flow()) {
                    loads.inc(svc.dests[i].id, Counter::Active);
                }
            }
            ARMED.set(false);
            assert_eq!(ALLOCS.get(), 0, "{name} (flags {flags:#x}) allocated in pick");
        }
    }
}
