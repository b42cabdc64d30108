//! EAL singleton, lcore launch, thread registration and SPSC rings, in one process.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rvs_core::mbuf::Mbuf;
use rvs_dpdk::{Eal, Error, Mempool, Ring, RteMbuf, lcore};

fn second_init_is_an_error(_eal: &Eal) {
    let args = [
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "--no-shconf",
        "--file-prefix=rvs-test-never",
    ];
    assert_eq!(Eal::init(&args).unwrap_err(), Error::AlreadyInitialized);
    // Still usable afterwards.
    assert!(Eal::get().is_some());
}

fn version_matches_bindings(_eal: &Eal) {
    let v = rvs_dpdk::eal::version();
    let short: String = dpdk_sys::DPDK_VERSION.split('.').take(2).collect::<Vec<_>>().join(".");
    assert!(v.contains(&short), "{v} vs {}", dpdk_sys::DPDK_VERSION);
}

fn main_and_worker_lcores(eal: &Eal) {
    assert_eq!(lcore::current(), Some(eal.main_lcore()));
    assert!(lcore::is_main());
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert!(eal.tsc_hz() > 1_000_000);
}

fn launch_runs_on_the_worker_and_returns(eal: &Eal) {
    let main = eal.main_lcore();
    let h = eal
        .launch(1, move || {
            let me = lcore::current();
            let sum: u64 = (1..=1000u64).sum();
            (me, sum, me != Some(main))
        })
        .expect("launch");
    assert_eq!(h.lcore(), 1);
    let (me, sum, other) = h.wait().expect("wait");
    assert_eq!(me, Some(1));
    assert_eq!(sum, 500_500);
    assert!(other);
    // The lcore is free again.
    assert_eq!(eal.launch(1, || 7u8).expect("relaunch").wait(), Ok(7));
}

fn launch_errors(eal: &Eal) {
    // A panic on the worker comes back as an error, and the lcore is usable afterwards.
    let h = eal
        .launch(1, || -> u32 { panic!("boom (expected by the test)") })
        .expect("launch");
    assert_eq!(h.wait(), Err(Error::LcorePanicked(1)));
    // The main lcore and unknown lcores are not workers.
    assert!(matches!(
        eal.launch(eal.main_lcore(), || ()),
        Err(Error::LcoreUnavailable(0))
    ));
    assert!(matches!(eal.launch(5, || ()), Err(Error::LcoreUnavailable(5))));
    // Launching from another thread is refused.
    let e = *eal;
    let r = std::thread::spawn(move || e.launch(1, || ()).err())
        .join()
        .expect("thread");
    assert_eq!(r, Some(Error::NotMainLcore("Eal::launch")));
    // A busy lcore cannot take a second job.
    let gate = Arc::new(AtomicU32::new(0));
    let g = gate.clone();
    let h = eal
        .launch(1, move || {
            while g.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
        })
        .expect("launch");
    assert!(matches!(eal.launch(1, || ()), Err(Error::LcoreUnavailable(1))));
    gate.store(1, Ordering::Release);
    h.wait().expect("wait");
}

fn registered_thread_gets_an_lcore_id(eal: &Eal) {
    let e = *eal;
    let (before, got, after) = std::thread::spawn(move || {
        let before = lcore::current();
        let got = e.register_thread();
        let after = lcore::current();
        e.unregister_thread();
        (before, got, after)
    })
    .join()
    .expect("thread");
    assert_eq!(before, None);
    let id = got.expect("register");
    assert_eq!(after, Some(id));
    assert!(
        id >= 2,
        "registered lcore {id} must not collide with enabled lcores 0-1"
    );
}

fn spsc_ring_of_messages_across_lcores(eal: &Eal) {
    let (mut tx, mut rx) = Ring::spsc::<Box<u64>>(eal, "t_msgs", 64, None).expect("ring");
    const N: u64 = 10_000;
    let h = eal
        .launch(1, move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            let mut last = 0u64;
            let mut in_order = true;
            let mut buf = Vec::with_capacity(16);
            while got < N {
                rx.dequeue_burst(&mut buf);
                for m in buf.drain(..) {
                    in_order &= *m == last + 1;
                    last = *m;
                    sum += *m;
                    got += 1;
                }
            }
            (sum, in_order, rx.is_empty())
        })
        .expect("launch");
    let mut pending: Vec<Box<u64>> = Vec::with_capacity(8);
    let mut next = 1u64;
    while next <= N || !pending.is_empty() {
        while pending.len() < 8 && next <= N {
            pending.push(Box::new(next));
            next += 1;
        }
        if pending.len() == 1 {
            if let Err(m) = tx.enqueue(pending.pop().expect("one")) {
                pending.push(m);
            }
        } else {
            tx.enqueue_burst(&mut pending);
        }
    }
    let (sum, in_order, empty) = h.wait().expect("wait");
    assert_eq!(sum, N * (N + 1) / 2);
    assert!(in_order);
    assert!(empty);
}

fn ring_capacity_and_drop_frees_what_is_left(eal: &Eal) {
    let pool = Mempool::new(eal, "t_ringpool", 255, 0, rvs_dpdk::mempool::DEFAULT_DATA_ROOM, None).expect("pool");
    let start = pool.available();
    assert_eq!(start, 255);
    let (mut tx, mut rx) = Ring::spsc::<RteMbuf>(eal, "t_mbufs", 16, None).expect("ring");
    let mut v = Vec::with_capacity(20);
    assert_eq!(pool.alloc_bulk(&mut v, 20), 20);
    for (i, m) in v.iter_mut().enumerate() {
        m.append(1).expect("room")[0] = i as u8;
    }
    // Exactly 16 fit; the other 4 stay in the vector, in order.
    assert_eq!(tx.enqueue_burst(&mut v), 16);
    assert_eq!(v.len(), 4);
    assert_eq!(v[0].data(), &[16]);
    assert_eq!(tx.free(), 0);
    assert_eq!(rx.len(), 16);
    let first = rx.dequeue().expect("one");
    assert_eq!(first.data(), &[0]);
    drop(first);
    drop(v);
    assert_eq!(pool.in_use(), 15);
    // Dropping both ends frees the 15 mbufs still in the ring.
    drop(tx);
    drop(rx);
    assert_eq!(pool.available(), start);
    assert_eq!(pool.in_use(), 0);
    // A ring name is unique.
    let _keep = Ring::spsc::<Box<u8>>(eal, "t_dup", 4, None).expect("ring");
    assert!(Ring::spsc::<Box<u8>>(eal, "t_dup", 4, None).is_err());
}

fn main() {
    let Some(eal) = common::eal("eal", "0-1", &[]) else {
        return;
    };
    common::run(
        eal,
        &[
            ("second_init_is_an_error", second_init_is_an_error),
            ("version_matches_bindings", version_matches_bindings),
            ("main_and_worker_lcores", main_and_worker_lcores),
            (
                "launch_runs_on_the_worker_and_returns",
                launch_runs_on_the_worker_and_returns,
            ),
            ("launch_errors", launch_errors),
            ("registered_thread_gets_an_lcore_id", registered_thread_gets_an_lcore_id),
            (
                "spsc_ring_of_messages_across_lcores",
                spsc_ring_of_messages_across_lcores,
            ),
            (
                "ring_capacity_and_drop_frees_what_is_left",
                ring_capacity_and_drop_frees_what_is_left,
            ),
        ],
    );
    // After cleanup the EAL cannot start again in this process.
    assert_eq!(Eal::init(&["--no-huge"]).unwrap_err(), Error::AlreadyInitialized);
    assert!(Eal::get().is_none());
}
