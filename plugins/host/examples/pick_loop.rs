//! Runs N picks of an example plugin at 64 destinations with the bench's table upkeep, for
//! counting instructions and cycles per pick with `perf stat` (stable where wall time is not):
//!
//! `cargo run --release -p rvs-plugin-host --example pick_loop -- PLUGIN.wasm N`
//!
//! Run it twice (say N = 1,000,000 and 11,000,000) and divide the difference of the counts
//! by the difference of N: setup cancels out.

use std::sync::Arc;
use std::time::Duration;

use rvs_core::addr::{Addr, Proto};
use rvs_core::load::{Counter, LoadTable};
use rvs_core::sched::{Flow, SchedCx, SchedulerFactory};
use rvs_core::service::{Dest, DestId, Forward, Service, ServiceKey};
use rvs_core::time::Now;
use rvs_plugin_host::{Bound, Host, HostConfig};

const N: u32 = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u32>().ok())) else {
        eprintln!("usage: pick_loop PLUGIN.wasm N");
        std::process::exit(2);
    };
    let host = Host::new(HostConfig {
        bound: Bound::Epoch {
            tick: Duration::from_millis(1),
            deadline_ticks: 50,
            setup_ticks: 200,
        },
        max_faults: u32::MAX,
        // One store: a small pool keeps the address-space reservation within what valgrind
        // can map (a pick costs the same at any pool size).
        pool_instances: 2,
        ..HostConfig::default()
    })
    .expect("host");
    let wlc = rvs_schedulers::factory("wlc").expect("wlc");
    let factory: Arc<dyn SchedulerFactory> = host.load_file(path.as_ref(), &[], wlc).expect("plugin");
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Addr::v4([198, 18, 0, 100]),
        port: 80,
    };
    let mut svc = Service::new(key, Forward::Dr, factory.clone());
    svc.dests = (0..N)
        .map(|i| {
            let mut d = Dest::new(DestId(i), Addr::v4([198, 18, 1, (i + 1) as u8]), 80);
            d.weight = 1 + i % 5;
            d
        })
        .collect();
    svc.prepare().expect("service");
    let loads = LoadTable::new(N as usize);
    let mut s = factory.instance(0, 42);
    s.refresh(&svc);
    let mut sum = 0u64;
    for i in 0..n {
        let cx = SchedCx {
            svc: &svc,
            loads: &loads,
            now: Now(i as u64),
            lcore: 0,
        };
        let flow = Flow {
            af: rvs_core::Af::V4,
            proto: Proto::Tcp,
            saddr: Addr::from_v4_u32(0xc612_c800 ^ i.wrapping_mul(0x9e37_79b9)),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: (i as u16) | 1024,
            dport: 80,
            payload: &[],
        };
        if let Some(d) = s.pick(&cx, &flow) {
            loads.inc(svc.dests[d].id, Counter::Active);
            loads.dec(DestId(i % N), Counter::Active);
            sum += d as u64;
        }
    }
    println!("{n} picks, index sum {sum}");
}
