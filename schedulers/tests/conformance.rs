//! Every native scheduler passes the shared conformance suite.

use rvs_schedulers::conformance::{self, Drive, Promise};
use rvs_schedulers::{NAMES, factory};

#[test]
fn every_native_scheduler_conforms() {
    for name in NAMES {
        let f = factory(name).expect("known");
        let promise = conformance::promise_of(name).expect("native promise");
        if let Err(e) = conformance::check_all(f.as_ref(), promise) {
            panic!("{e}");
        }
    }
}

#[test]
fn same_decisions_finds_a_difference_and_accepts_equals() {
    let wlc = factory("wlc").expect("wlc");
    let wlc2 = factory("wlc").expect("wlc");
    let n = conformance::same_decisions(wlc.as_ref(), wlc2.as_ref(), &Drive::default()).expect("equal");
    assert!(n > 1000, "compared only {n}");
    let sed = factory("sed").expect("sed");
    let m = conformance::same_decisions(wlc.as_ref(), sed.as_ref(), &Drive::default()).expect_err("must fail");
    assert_ne!(m.a, m.b);
    assert!(m.to_string().contains("wlc chose"), "{m}");
}

#[test]
fn the_suite_catches_wrong_schedulers() {
    // Holding a scheduler to another's promise must fail: the checks are not vacuous.
    for (name, wrong) in [
        ("wlc", Promise::LeastConnection(conformance::Formula::Lc)),
        ("rr", Promise::WeightedRoundRobin),
        ("wrr", Promise::RoundRobin),
        ("fo", Promise::Overflow),
        ("twos", Promise::LeastConnection(conformance::Formula::Wlc)),
        ("wlc", Promise::StableHash(conformance::HashKey::Source)),
        ("sh", Promise::StableHash(conformance::HashKey::Destination)),
        ("rr", Promise::Locality),
    ] {
        let f = factory(name).expect("known");
        assert!(
            conformance::check_spread(f.as_ref(), wrong).is_err(),
            "{name} passed {wrong:?}"
        );
    }
}
