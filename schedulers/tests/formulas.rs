//! Each algorithm against hand-computed cases (the oracles are worked out in the comments,
//! not by calling the code under test).

use rvs_core::load::{Counter, LoadTable};
use rvs_core::sched::{SchedCx, Scheduler};
use rvs_core::service::{DestFlags, DestId, SchedFlags, Service};
use rvs_core::{Addr, Now, Proto};
use rvs_schedulers::conformance::{FlowBuf, test_dest, test_service};
use rvs_schedulers::{factory, factory_with};

/// A service of `weights.len()` destinations with those weights, tables built by `name`.
fn setup(name: &str, weights: &[u32], flags: u32) -> (Service, LoadTable, Box<dyn Scheduler>) {
    let f = factory(name).expect("known");
    let dests = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let mut d = test_dest(i as u32);
            d.weight = w;
            d
        })
        .collect();
    let svc = test_service(f.as_ref(), Proto::Udp, dests, SchedFlags(flags)).expect("tables");
    let mut s = f.instance(0, 42);
    s.refresh(&svc);
    (svc, LoadTable::new(weights.len()), s)
}

fn set(loads: &LoadTable, i: u32, active: u32, inactive: u32) {
    loads.reset(DestId(i));
    for _ in 0..active {
        loads.inc(DestId(i), Counter::Active);
    }
    for _ in 0..inactive {
        loads.inc(DestId(i), Counter::Inactive);
    }
}

fn pick_at(s: &mut dyn Scheduler, svc: &Service, loads: &LoadTable, fb: &FlowBuf, now: Now) -> Option<usize> {
    let cx = SchedCx {
        svc,
        loads,
        now,
        lcore: 0,
    };
    s.pick(&cx, &fb.flow())
}

fn pick(s: &mut dyn Scheduler, svc: &Service, loads: &LoadTable) -> Option<usize> {
    pick_at(
        s,
        svc,
        loads,
        &FlowBuf::tcp(Addr::v4([198, 18, 9, 9]), 4000),
        Now::from_secs(1),
    )
}

#[test]
fn wlc_is_overhead_over_weight() {
    // A: w1, 1 active        -> 256/1 = 256
    // B: w2, 1 active 10 ina -> 266/2 = 133
    // C: w3, 2 active        -> 512/3 = 170.7
    let (svc, l, mut s) = setup("wlc", &[1, 2, 3], 0);
    set(&l, 0, 1, 0);
    set(&l, 1, 1, 10);
    set(&l, 2, 2, 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(1));
    // 3/4 = 0.75 against 2/3 = 0.67: integer division would call both 0 and take A.
    let (svc, l, mut s) = setup("wlc", &[4, 3], 0);
    set(&l, 0, 0, 3);
    set(&l, 1, 0, 2);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(1));
    // Equal loads per weight: 2/4 and 1/2 tie, the earlier wins.
    set(&l, 0, 0, 2);
    set(&l, 1, 0, 1);
    let (svc2, _, mut s2) = setup("wlc", &[4, 2], 0);
    assert_eq!(pick(s2.as_mut(), &svc2, &l), Some(0));
}

#[test]
fn lc_ignores_weights() {
    // A: 1 active = 256; B: 300 inactive = 300 -> A despite B's weight 100.
    let (svc, l, mut s) = setup("lc", &[1, 100], 0);
    set(&l, 0, 1, 0);
    set(&l, 1, 0, 300);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(0));
    set(&l, 1, 0, 255);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(1));
}

#[test]
fn sed_is_active_plus_one_over_weight_and_nq_prefers_idle() {
    // A: w1, 0 active -> 1/1 = 1; B: w3, 2 active -> 3/3 = 1: tie, A.
    let (svc, l, mut s) = setup("sed", &[1, 3], 0);
    set(&l, 0, 0, 50);
    set(&l, 1, 2, 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(0));
    // B: w4 -> 3/4 < 1: B.
    let (svc, _, mut s) = setup("sed", &[1, 4], 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(1));
    // nq: A is idle (no active connection) so it wins though sed would take B
    // (A: 1/1 = 1 against B: 2/100).
    let (svc, l, mut s) = setup("nq", &[1, 100], 0);
    set(&l, 0, 0, 7);
    set(&l, 1, 1, 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(0));
    let (svc_sed, _, mut sed) = setup("sed", &[1, 100], 0);
    assert_eq!(pick(sed.as_mut(), &svc_sed, &l), Some(1));
    // No idle one: nq is sed. A: 2/1, B: 3/100 -> B.
    set(&l, 0, 1, 0);
    set(&l, 1, 2, 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), Some(1));
}

#[test]
fn wrr_interleaves_by_gcd() {
    let seq = |w: &[u32], n: usize| {
        let (svc, l, mut s) = setup("wrr", w, 0);
        (0..n)
            .map(|_| pick(s.as_mut(), &svc, &l).expect("pick"))
            .collect::<Vec<_>>()
    };
    // 4,3,2: cw = 4: A; 3: A B; 2: A B C; 1: A B C.
    assert_eq!(
        seq(&[4, 3, 2], 18),
        [0, 0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1, 0, 1, 2, 0, 1, 2]
    );
    // 4,2: gcd 2, mw = 4 - 1 = 3: cw = 3: A; cw = 1: A B.
    assert_eq!(seq(&[4, 2], 6), [0, 0, 1, 0, 0, 1]);
    // A drained destination is skipped, the others keep their ratio.
    assert_eq!(seq(&[2, 0, 1], 6), [0, 0, 2, 0, 0, 2]);
    // All drained: none.
    let (svc, l, mut s) = setup("wrr", &[0, 0], 0);
    assert_eq!(pick(s.as_mut(), &svc, &l), None);
}

#[test]
fn rr_starts_per_lcore_and_skips_the_ineligible() {
    let f = factory("rr").expect("rr");
    let (mut svc, l, _) = setup("rr", &[1, 1, 1, 1], 0);
    let mut s = f.instance(1, 0);
    s.refresh(&svc);
    let got: Vec<_> = (0..5).map(|_| pick(s.as_mut(), &svc, &l).expect("pick")).collect();
    assert_eq!(got, [1, 2, 3, 0, 1]);
    let mut dests = svc.dests.to_vec();
    dests[2].flags.0 |= DestFlags::UNAVAILABLE;
    svc.dests = dests.into();
    s.refresh(&svc);
    let got: Vec<_> = (0..4).map(|_| pick(s.as_mut(), &svc, &l).expect("pick")).collect();
    assert_eq!(got, [1, 3, 0, 1]);
}

#[test]
fn fo_and_ovf_take_the_highest_weight() {
    let (svc, l, mut fo) = setup("fo", &[3, 5, 5], 0);
    assert_eq!(pick(fo.as_mut(), &svc, &l), Some(1));
    l.set_overloaded(DestId(1), true);
    assert_eq!(pick(fo.as_mut(), &svc, &l), Some(2));
    let (svc, l, mut ovf) = setup("ovf", &[3, 5, 5], 0);
    set(&l, 1, 6, 0); // 6 active > weight 5: overflows to the next
    set(&l, 2, 5, 0); // 5 <= 5: still takes connections
    assert_eq!(pick(ovf.as_mut(), &svc, &l), Some(2));
    set(&l, 2, 6, 0);
    assert_eq!(pick(ovf.as_mut(), &svc, &l), Some(0));
}

#[test]
fn twos_draws_by_weight_and_keeps_the_lighter() {
    // Weights 1 and 3; IPVS draws r in 0..=4 and takes A for r in {0, 1}: P(A) = 2/5.
    let (svc, l, mut s) = setup("twos", &[1, 3], 0);
    let n = 50_000;
    let a = (0..n).filter(|_| pick(s.as_mut(), &svc, &l) == Some(0)).count();
    assert!(
        (19_500..20_500).contains(&a),
        "A picked {a} of {n}, expected about 20000"
    );
    // A idle, B loaded: B wins only when both draws are B: P(A) = 1 - (3/5)^2 = 0.64.
    set(&l, 1, 1, 0);
    let a = (0..n).filter(|_| pick(s.as_mut(), &svc, &l) == Some(0)).count();
    assert!(
        (31_500..32_500).contains(&a),
        "A picked {a} of {n}, expected about 32000"
    );
}

#[test]
fn sh_hashes_the_source_into_weighted_buckets() {
    // Weights 2, 1: buckets go 0 0 1 0 0 1 ...; bucket = hash_32(addr, 8) (kernel formula).
    let (svc, l, mut s) = setup("sh", &[2, 1], 0);
    for last in 0..50u32 {
        let a = 0xc612_0000 | last;
        let bucket = a.wrapping_mul(0x61C8_8647) >> 24;
        let want = if bucket % 3 < 2 { 0 } else { 1 };
        let fb = FlowBuf::tcp(Addr::from_v4_u32(a), 1000 + last as u16);
        assert_eq!(
            pick_at(s.as_mut(), &svc, &l, &fb, Now(0)),
            Some(want),
            "addr {a:#x} bucket {bucket}"
        );
    }
    // The hashed destination inhibited: none without sh-fallback, the other with it.
    let mut dests = svc.dests.to_vec();
    dests[0].flags.0 |= DestFlags::INHIBITED;
    let f = factory("sh").expect("sh");
    let fb = (0..50u32)
        .map(|i| FlowBuf::tcp(Addr::from_v4_u32(0xc612_0000 | i), 1))
        .find(|fb| (fb.saddr.v4_u32().wrapping_mul(0x61C8_8647) >> 24) % 3 < 2)
        .expect("some address hashes to dest 0");
    let plain = test_service(f.as_ref(), Proto::Tcp, dests.clone(), SchedFlags(0)).expect("tables");
    assert_eq!(pick_at(s.as_mut(), &plain, &l, &fb, Now(0)), None);
    let fall = test_service(f.as_ref(), Proto::Tcp, dests, SchedFlags(SchedFlags::SH_FALLBACK)).expect("tables");
    assert_eq!(pick_at(s.as_mut(), &fall, &l, &fb, Now(0)), Some(1));
}

#[test]
fn dh_hashes_the_destination() {
    let (svc, l, mut s) = setup("dh", &[5, 1, 1], 0);
    for last in 0..40u32 {
        let d = 0xc613_0100 | last;
        let bucket = d.wrapping_mul(2_654_435_761) & 255;
        let mut fb = FlowBuf::tcp(Addr::v4([198, 18, 3, 3]), 999);
        fb.daddr = Addr::from_v4_u32(d);
        assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, Now(0)), Some((bucket % 3) as usize));
    }
}

#[test]
fn maglev_population_matches_the_papers_example() {
    // Eisenbud et al. 2016, table 1: M = 7; B0 offset 3 skip 4, B1 offset 0 skip 2, B2 offset 3
    // skip 1 give the lookup table B1 B0 B1 B0 B2 B2 B0.
    let mut slots = [u32::MAX; 7];
    rvs_schedulers::mh::populate(&mut slots, &mut [3, 0, 3], &[4, 2, 1], &[1, 1, 1]);
    assert_eq!(slots, [1, 0, 1, 0, 2, 2, 0]);
}

#[test]
fn maglev_is_weight_aware_and_sized_by_option() {
    let (svc, _, _) = setup("mh", &[1, 3], 0);
    let t = svc
        .sched_tables
        .as_deref()
        .and_then(|t| t.downcast_ref::<rvs_schedulers::mh::MaglevTable>())
        .expect("table");
    assert_eq!(t.size(), 4093);
    let b = t.slots.iter().filter(|&&i| i == 1).count() as f64 / 4093.0;
    assert!((0.74..0.76).contains(&b), "weight 3 of 4 holds {b} of the table");
    let mut o = rvs_schedulers::SchedOptions::default();
    o.set("mh-table-size", "65537").expect("prime");
    let f = factory_with("mh", &o).expect("mh");
    let dests = (0..3).map(test_dest).collect();
    let svc = test_service(f.as_ref(), Proto::Tcp, dests, SchedFlags(0)).expect("tables");
    let t = svc
        .sched_tables
        .as_deref()
        .and_then(|t| t.downcast_ref::<rvs_schedulers::mh::MaglevTable>())
        .expect("table");
    assert_eq!(t.size(), 65537);
    // Too many destinations for the table is a clear error.
    assert!(rvs_schedulers::mh::MaglevTable::build(&(0..300).map(test_dest).collect::<Vec<_>>(), 251).is_err());
}

#[test]
fn conhash_ring_has_160_replicas_per_weight_unit_and_keys_by_quic_cid() {
    let (svc, l, mut s) = setup("conhash", &[2, 4, 0], SchedFlags::QUIC_CID);
    let ring = svc
        .sched_tables
        .as_deref()
        .and_then(|t| t.downcast_ref::<rvs_schedulers::conhash::Ring>())
        .expect("ring");
    let count = |i| ring.nodes.iter().filter(|n| n.1 == i).count();
    assert_eq!((count(0), count(1), count(2)), (160, 320, 0));
    // The same connection id from many clients: one destination.
    let mut first = None;
    for c in 0..200u32 {
        let mut fb = FlowBuf::tcp(Addr::from_v4_u32(0xc612_0000 + c * 7), 2000 + c as u16);
        fb.proto = Proto::Udp;
        fb.payload[0] = 0x08;
        fb.payload[1..9].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        fb.len = 12;
        let r = pick_at(s.as_mut(), &svc, &l, &fb, Now(0));
        assert!(r.is_some());
        assert_eq!(*first.get_or_insert(r), r, "client {c}");
    }
    // Without the CID flag bit the client address is the key: same client, any payload.
    let mut seen = std::collections::HashSet::new();
    for c in 0..50u8 {
        let mut fb = FlowBuf::tcp(Addr::v4([198, 18, 5, 5]), 3000);
        fb.proto = Proto::Udp;
        fb.payload[0] = 0x00;
        fb.payload[1] = c;
        fb.len = 12;
        seen.insert(pick_at(s.as_mut(), &svc, &l, &fb, Now(0)));
    }
    assert_eq!(seen.len(), 1);
}

#[test]
fn lblc_keeps_locality_until_overloaded_or_expired() {
    let (svc, l, mut s) = setup("lblc", &[1, 1], 0);
    let mut fb = FlowBuf::tcp(Addr::v4([198, 18, 0, 9]), 1);
    fb.daddr = Addr::v4([198, 19, 0, 1]);
    let t0 = Now::from_secs(100);
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0), Some(0)); // all idle: the first
    set(&l, 0, 1, 0); // wlc would now take B, but A is not overloaded (1 active, weight 1)
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(1)), Some(0));
    set(&l, 0, 2, 0); // 2 > weight 1 while B has 0 * 2 < 1: overloaded, move to B
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(2)), Some(1));
    set(&l, 0, 0, 0);
    set(&l, 1, 1, 0); // wlc prefers A again, but B is cached and fine
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(3600)), Some(1));
    // Unused for more than 24 h: the entry is gone, wlc decides.
    assert_eq!(
        pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(3600 + 24 * 3600 + 1)),
        Some(0)
    );
}

#[test]
fn lblcr_grows_the_set_when_overloaded_and_sheds_the_busiest_later() {
    let (svc, l, mut s) = setup("lblcr", &[1, 1, 1], 0);
    let mut fb = FlowBuf::tcp(Addr::v4([198, 18, 0, 9]), 1);
    fb.daddr = Addr::v4([198, 19, 0, 2]);
    let t0 = Now::from_secs(100);
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0), Some(0));
    set(&l, 0, 2, 0);
    set(&l, 2, 1, 0);
    // A overloaded (2 > 1, B idle): B, the least loaded of the service, joins: set {A, B}.
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(1)), Some(1));
    assert_eq!(pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(12 * 3600)), Some(1));
    // More than 24 h since the set changed: A, the busiest member, is shed.
    assert_eq!(
        pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(24 * 3600 + 10)),
        Some(1)
    );
    set(&l, 0, 0, 0);
    set(&l, 1, 1, 0);
    set(&l, 2, 1, 0);
    // Were A still a member it would be the least loaded; the set is {B} now.
    assert_eq!(
        pick_at(s.as_mut(), &svc, &l, &fb, t0.plus_secs(24 * 3600 + 11)),
        Some(1)
    );
}
