//! Plugin host benches at 64 destinations, through rvs-core's `Scheduler` trait, with table
//! upkeep included: every iteration picks, then moves two counters (the new connection on
//! its destination, one connection ending elsewhere) the way the pipeline does, so the
//! plugin host mirrors two changed counter records into plugin memory per pick.
//!
//! `cargo bench -p rvs-plugin-host --bench plugin` (builds plugins/examples with clang first).
//! Native schedulers run in the same process, same run, for ratios.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::{Counter, LoadTable};
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, DestId, Forward, Service, ServiceKey};
use rvs_core::time::Now;
use rvs_plugin_host::{Bound, Host, HostConfig, PluginFactory};

const N: u32 = 64;

fn examples() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = std::env::temp_dir().join("rvs-plugin-bench-examples");
    let st = Command::new("sh").arg(root.join("build.sh")).arg(&out).status();
    assert!(
        st.is_ok_and(|s| s.success()),
        "plugins/examples/build.sh failed (clang and lld installed?)"
    );
    out
}

fn service(sched: Arc<dyn SchedulerFactory>) -> Service {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Addr::v4([198, 18, 0, 100]),
        port: 80,
    };
    let mut s = Service::new(key, Forward::Dr, sched);
    s.dests = (0..N)
        .map(|i| {
            let mut d = Dest::new(DestId(i), Addr::v4([198, 18, 1, (i + 1) as u8]), 80);
            d.weight = 1 + i % 5;
            d
        })
        .collect();
    s.prepare().expect("service");
    s
}

fn loads() -> LoadTable {
    let t = LoadTable::new(N as usize);
    for i in 0..N {
        for _ in 0..(i * 7 % 13) {
            t.inc(DestId(i), Counter::Active);
        }
    }
    t
}

fn flow(i: u32) -> Flow<'static> {
    Flow {
        af: rvs_core::Af::V4,
        proto: Proto::Tcp,
        saddr: Addr::from_v4_u32(0xc612_c800 ^ i.wrapping_mul(0x9e37_79b9)),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: (i as u16) | 1024,
        dport: 80,
        payload: &[],
    }
}

/// Pick with upkeep: the new connection counts on its destination, one ends elsewhere.
fn bench_pick(c: &mut Criterion, name: &str, factory: Arc<dyn SchedulerFactory>) {
    let svc = service(factory.clone());
    let loads = loads();
    let mut s = factory.instance(0, 42);
    s.refresh(&svc);
    let mut i = 0u32;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let cx = SchedCx {
                svc: &svc,
                loads: &loads,
                now: Now(i as u64),
                lcore: 0,
            };
            let got = s.pick(&cx, &flow(i));
            if let Some(d) = got {
                loads.inc(svc.dests[d].id, Counter::Active);
                loads.dec(DestId(i % N), Counter::Active);
            }
            black_box(got)
        })
    });
}

fn report(name: &str, f: &PluginFactory) {
    let s = f.stats();
    eprintln!(
        "{name}: plugin picks {}, fallback {}, faults {} (timeouts {})",
        s.picks,
        s.fallback,
        s.faults(),
        s.timeout
    );
}

fn benches(c: &mut Criterion) {
    let dir = examples();
    // Epoch deadline on every call, as in production. The deadline's length does not change
    // what a call costs; 50 ticks (50 ms) rather than the default 2 keeps a descheduled
    // bench thread on this shared, loaded machine from being cut short and its picks
    // measured through the fallback (the fault counts printed below should be 0).
    let host = Host::new(HostConfig {
        bound: Bound::Epoch {
            tick: Duration::from_millis(1),
            deadline_ticks: 50,
            setup_ticks: 200,
        },
        pool_instances: 64,
        max_faults: u32::MAX,
        ..HostConfig::default()
    })
    .expect("host");
    let wlc = rvs_schedulers::factory("wlc").expect("wlc");
    let sh = rvs_schedulers::factory("sh").expect("sh");
    let wasm_wlc = host
        .load_file(&dir.join("wlc.wasm"), &[], wlc.clone())
        .expect("wlc.wasm");
    let wasm_hash = host
        .load_file(&dir.join("hash.wasm"), &[], wlc.clone())
        .expect("hash.wasm");

    bench_pick(c, "pick64/native_wlc", wlc.clone());
    bench_pick(c, "pick64/wasm_wlc", wasm_wlc.clone());
    bench_pick(c, "pick64/native_sh", sh);
    bench_pick(c, "pick64/wasm_hash_o1", wasm_hash.clone());
    report("wasm_wlc", &wasm_wlc);
    report("wasm_hash", &wasm_hash);

    // Instance rebuild: a new store and instance from the shared InstancePre, version
    // check, configuration (what a fault's rebuild does before its table write), and the
    // old one dropped.
    let svc = service(wasm_wlc.clone());
    let loads = loads();
    c.bench_function("instance/rebuild", |b| {
        b.iter(|| black_box(wasm_wlc.prepare(0, 1)));
    });

    // Hot swap on one lcore: a new instance, its 64-destination table written (refresh),
    // the first pick (all 64 counters mirrored), the old instance dropped.
    let mut current: Box<dyn Scheduler> = wasm_wlc.instance(0, 1);
    current.refresh(&svc);
    c.bench_function("instance/hot_swap", |b| {
        b.iter(|| {
            let mut next: Box<dyn Scheduler> = Box::new(wasm_hash.prepare(0, 1));
            next.refresh(&svc);
            let cx = SchedCx {
                svc: &svc,
                loads: &loads,
                now: Now(1),
                lcore: 0,
            };
            black_box(next.pick(&cx, &flow(7)));
            current = next;
        })
    });
    report("after swaps: wasm_hash", &wasm_hash);
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(group);
