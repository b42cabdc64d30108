//! Shared by the integration tests: the example plugins built from source, hosts, services.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::sched::{Flow, SchedCx, SchedulerFactory};
use rvs_core::service::{Dest, DestId, Forward, Service, ServiceKey};
use rvs_core::time::Now;
use rvs_plugin_host::{Bound, Host, HostConfig};

/// Build plugins/examples with its own script, once per test binary. `None` (with a
/// message) when clang is missing outside CI; a panic when CI=true.
pub fn examples() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rvs-plugin-examples");
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let have_clang = Command::new("clang")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_clang {
            assert!(
                !ci,
                "CI=true and clang is missing: install clang and lld to build the example plugins"
            );
            eprintln!("SKIP: clang not found; the example plugins cannot be built (apt-get install clang lld)");
            return None;
        }
        let st = Command::new("sh")
            .arg(root.join("build.sh"))
            .arg(&out)
            .status()
            .expect("run plugins/examples/build.sh");
        assert!(st.success(), "plugins/examples/build.sh failed");
        Some(out)
    })
    .clone()
}

/// Path of a built example (`wlc.wasm`, `bad_loop.wasm`, `defer.wat`).
pub fn example(name: &str) -> Option<PathBuf> {
    examples().map(|d| d.join(name))
}

/// A fuel-bounded host (deterministic on a loaded machine), shared per test binary.
pub fn fuel_host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| {
        Host::new(HostConfig {
            bound: Bound::Fuel {
                pick: 200_000,
                setup: 50_000_000,
            },
            pool_instances: 64,
            max_faults: 4,
            ..HostConfig::default()
        })
        .expect("fuel host")
    })
    .clone()
}

/// The native scheduler `name`.
pub fn native(name: &str) -> Arc<dyn SchedulerFactory> {
    rvs_schedulers::factory(name).expect("native scheduler")
}

/// A TCP service on 198.18.0.100:80 with `n` destinations of weight `1 + i % 3`.
pub fn service(sched: Arc<dyn SchedulerFactory>, n: u32) -> Service {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Addr::v4([198, 18, 0, 100]),
        port: 80,
    };
    let mut s = Service::new(key, Forward::Dr, sched);
    s.dests = (0..n)
        .map(|i| {
            let mut d = Dest::new(DestId(i), Addr::v4([198, 18, 1, (i + 1) as u8]), 80);
            d.weight = 1 + i % 3;
            d
        })
        .collect();
    s.prepare().expect("service");
    s
}

/// A flow from 198.18.200.x.
pub fn flow(i: u32) -> Flow<'static> {
    Flow {
        af: rvs_core::Af::V4,
        proto: Proto::Tcp,
        saddr: Addr::v4([198, 18, 200, i as u8]),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: 10_000 + i as u16,
        dport: 80,
        payload: &[],
    }
}

/// A pick context.
pub fn cx<'a>(svc: &'a Service, loads: &'a LoadTable, now: Now) -> SchedCx<'a> {
    SchedCx {
        svc,
        loads,
        now,
        lcore: 0,
    }
}
