//! Each misbehaving example ends in the documented containment (ABI.md section 6): the
//! connection goes to the native fallback, the right counter moves, the instance is rebuilt
//! after a backoff, and repeated faults disable the plugin for the service. Fuel bounds the
//! calls, so the outcome does not depend on how loaded the machine is.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::service::DestId;
use rvs_core::time::Now;
use rvs_plugin_host::{Bound, Host, HostConfig, PluginStats};

/// Drive `file` through `max_faults` (4) faults and check the counters kind by kind.
fn contained(file: &str, kind: fn(&PluginStats) -> u64) {
    let Some(path) = example(file) else { return };
    let host = fuel_host();
    let f = host.load_file(&path, &[], native("wlc")).expect(file);
    let svc = service(f.clone(), 8);
    let loads = LoadTable::new(8);
    // Make wlc's answer non-trivial: destination 0 is busy.
    for _ in 0..5 {
        loads.inc(DestId(0), Counter::Active);
    }
    let mut wlc = native("wlc").instance(0, 1);
    wlc.refresh(&svc);
    let mut s = f.prepare(0, 1);
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    let mut now = Now::from_secs(10);
    let pick = |s: &mut dyn rvs_core::sched::Scheduler, wlc: &mut Box<dyn rvs_core::sched::Scheduler>, now, i| {
        let c = cx(&svc, &loads, now);
        let got = s.pick(&c, &flow(i));
        assert_eq!(got, wlc.pick(&c, &flow(i)), "{file}: the fallback (wlc) decided");
        got
    };

    // First fault: counted, handed to wlc, instance dropped.
    assert!(pick(&mut s, &mut wlc, now, 1).is_some());
    let st = f.stats();
    assert_eq!(
        (kind(&st), st.faults(), st.fallback, st.rebuild, st.picks),
        (1, 1, 1, 0, 0),
        "{file}: {st:?}"
    );
    assert!(!s.is_live());

    // Within the backoff (1 ms): no rebuild, straight to the fallback.
    now = now.plus_nanos(500_000);
    pick(&mut s, &mut wlc, now, 2);
    let st = f.stats();
    assert_eq!((st.faults(), st.fallback, st.rebuild), (1, 2, 0), "{file}: {st:?}");

    // After it: rebuilt, faults again; the backoff doubled (2 ms now).
    now = now.plus_nanos(600_000);
    pick(&mut s, &mut wlc, now, 3);
    let st = f.stats();
    assert_eq!((kind(&st), st.rebuild, st.fallback), (2, 1, 3), "{file}: {st:?}");
    now = now.plus_nanos(1_500_000);
    pick(&mut s, &mut wlc, now, 4);
    assert_eq!(f.stats().rebuild, 1, "{file}: 1.5 ms is inside the 2 ms backoff");

    // Two more faults reach max_faults = 4: disabled for the service.
    for i in 0..2 {
        now = now.plus_secs(1);
        pick(&mut s, &mut wlc, now, 5 + i);
    }
    let st = f.stats();
    assert_eq!(
        (kind(&st), st.faults(), st.rebuild, st.disabled),
        (4, 4, 3, 1),
        "{file}: {st:?}"
    );
    assert!(f.is_disabled());

    // Disabled: every pick is the fallback's, the plugin is never called again, and new
    // instances of the factory start disabled too.
    for i in 0..20 {
        now = now.plus_secs(60);
        pick(&mut s, &mut wlc, now, 10 + i);
    }
    let mut s2 = f.prepare(1, 2);
    rvs_core::sched::Scheduler::refresh(&mut s2, &svc);
    pick(&mut s2, &mut wlc, now, 99);
    assert!(!s2.is_live());
    let end = f.stats();
    assert_eq!(
        (end.faults(), end.rebuild, end.disabled, end.picks),
        (4, 3, 1, 0),
        "{file}: {end:?}"
    );
    assert_eq!(end.fallback, st.fallback + 21, "{file}: {end:?}");
}

#[test]
fn infinite_loop_is_a_timeout() {
    contained("bad_loop.wasm", |s| s.timeout);
}

#[test]
fn trap_is_a_trap() {
    contained("bad_trap.wasm", |s| s.trap);
}

#[test]
fn out_of_range_answer_is_a_bad_answer() {
    contained("bad_range.wasm", |s| s.bad_answer);
}

#[test]
fn memory_hog_hits_the_cap() {
    contained("bad_hog.wasm", |s| s.memory);
}

/// An answer naming an existing but ineligible destination is a bad answer too.
#[test]
fn ineligible_answer_is_a_bad_answer() {
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "rvs_abi_v1") (result i32) (i32.const 0))
        (func (export "rvs_table") (param i32) (result i32) (i32.const 1024))
        (func (export "rvs_pick") (result i32) (i32.const 0)))"#;
    let f = fuel_host()
        .load_bytes("first", wat.as_bytes(), &[], native("wlc"))
        .expect("load");
    let mut svc = service(f.clone(), 4);
    let loads = LoadTable::new(4);
    let mut s = f.prepare(0, 1);
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    let c = cx(&svc, &loads, Now::from_secs(1));
    assert_eq!(rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(1)), Some(0));
    loads.set_overloaded(DestId(0), true);
    let c = cx(&svc, &loads, Now::from_secs(2));
    assert_eq!(
        rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(1)),
        Some(1),
        "wlc's answer"
    );
    assert_eq!(f.stats().bad_answer, 1);
    // Draining (weight 0) after a refresh: the same.
    loads.set_overloaded(DestId(0), false);
    let mut dests = svc.dests.to_vec();
    dests[0].weight = 0;
    svc.dests = dests.into();
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    let c = cx(&svc, &loads, Now::from_secs(10));
    assert_eq!(rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(1)), Some(1));
    let st = f.stats();
    assert_eq!((st.bad_answer, st.rebuild, st.picks), (2, 1, 1), "{st:?}");
}

/// With the epoch deadline (production), a runaway pick is stopped after about the deadline
/// (2 ticks of 1 ms), and the data plane gets wlc's answer.
#[test]
fn runaway_plugin_is_stopped_by_the_epoch_deadline() {
    let Some(path) = example("bad_loop.wasm") else { return };
    let host = Host::new(HostConfig {
        bound: Bound::Epoch {
            tick: Duration::from_millis(1),
            deadline_ticks: 2,
            setup_ticks: 200,
        },
        pool_instances: 8,
        ..HostConfig::default()
    })
    .expect("epoch host");
    let f = host.load_file(&path, &[], native("wlc")).expect("load");
    let svc = service(f.clone(), 8);
    let loads = LoadTable::new(8);
    let mut s = f.prepare(0, 1);
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    let c = cx(&svc, &loads, Now::from_secs(1));
    let t = Instant::now();
    let got = rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(1));
    let took = t.elapsed();
    eprintln!("runaway pick stopped after {took:?} (deadline: 2 ticks of 1 ms)");
    assert_eq!(got, Some(0), "wlc with no connections picks the first destination");
    let st = f.stats();
    assert_eq!((st.timeout, st.fallback), (1, 1), "{st:?}");
    // Generous: the clock thread must get a core on a shared 2-core machine.
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(took >= Duration::from_millis(1), "stopped before one tick: {took:?}");
}

#[test]
fn defer_is_counted_and_not_a_fault() {
    let Some(path) = example("defer.wat") else { return };
    let f = fuel_host().load_file(&path, &[], native("wlc")).expect("load");
    let svc = service(f.clone(), 5);
    let loads = LoadTable::new(5);
    let mut s = f.prepare(0, 1);
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    for i in 0..50 {
        let c = cx(&svc, &loads, Now::from_secs(1));
        let got = rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(i));
        let d = svc.dests[got.expect("some")].id;
        loads.inc(d, Counter::Active);
    }
    let st = f.stats();
    assert_eq!(
        (st.defer, st.fallback, st.faults(), st.picks, st.disabled),
        (50, 50, 0, 0, 0),
        "{st:?}"
    );
    assert!(s.is_live());
    // wlc spread the 50 connections by weight (1, 2, 3, 1, 2: 9 shares).
    let got: Vec<u32> = (0..5).map(|i| loads.get(DestId(i)).active).collect();
    assert_eq!(got.iter().sum::<u32>(), 50);
    for (i, w) in [1u32, 2, 3, 1, 2].iter().enumerate() {
        let want = 50.0 * *w as f64 / 9.0;
        assert!((got[i] as f64 - want).abs() <= 1.0, "{got:?}");
    }
}

/// Faults spaced wider than `fault_window` (60 s by default) never add up to disabling the
/// plugin; the same number close together does.
#[test]
fn rare_faults_do_not_disable_the_plugin() {
    let Some(path) = example("bad_trap.wasm") else { return };
    let f = fuel_host().load_file(&path, &[], native("wlc")).expect("bad_trap");
    let svc = service(f.clone(), 8);
    let loads = LoadTable::new(8);
    let mut s = f.prepare(0, 1);
    rvs_core::sched::Scheduler::refresh(&mut s, &svc);
    let mut now = Now::from_secs(10);
    let mut pick = |now: Now, i: u32| {
        let c = cx(&svc, &loads, now);
        rvs_core::sched::Scheduler::pick(&mut s, &c, &flow(i))
    };
    // Six faults 61 s apart (max_faults is 4): each rebuilt after its backoff, never disabled.
    for i in 0..6 {
        pick(now, i);
        now = now.plus_secs(61);
    }
    let st = f.stats();
    assert_eq!((st.trap, st.disabled), (6, 0), "{st:?}");
    assert!(!f.is_disabled());
    // Four within a few seconds (each after its backoff, at most 10 s): disabled.
    for i in 0..4 {
        pick(now, 10 + i);
        now = now.plus_secs(11);
    }
    let st = f.stats();
    assert_eq!((st.trap, st.disabled), (10, 1), "{st:?}");
    assert!(f.is_disabled());
}
