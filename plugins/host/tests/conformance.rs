//! The wasm examples against the shared conformance suite, and the C wlc against native wlc
//! decision by decision, with no fallback.

mod common;

use common::*;
use rvs_core::sched::SchedulerFactory;
use rvs_schedulers::conformance::{self, Drive, HashKey, Promise};

#[test]
fn wasm_wlc_decides_exactly_as_native_wlc_with_no_fallback() {
    let Some(path) = example("wlc.wasm") else { return };
    let host = fuel_host();
    let wasm = host.load_file(&path, &[], native("wlc")).expect("load wlc.wasm");
    let native_wlc = native("wlc");
    let mut total = 0;
    for (seed, max_dests, max_weight) in [(1u64, 12u32, 8u32), (2, 64, 100), (3, 200, 65535), (4, 3, 1)] {
        let drive = Drive {
            seed,
            rounds: 30,
            picks: 300,
            max_dests,
            max_weight,
            ..Drive::default()
        };
        let n = conformance::same_decisions(&*wasm, &*native_wlc, &drive).unwrap_or_else(|m| panic!("{m}"));
        // And the other way round (counters follow the native decisions).
        let m = conformance::same_decisions(&*native_wlc, &*wasm, &drive).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(n, m);
        total += n;
    }
    assert!(total > 20_000, "compared {total}");
    let s = wasm.stats();
    assert_eq!(s.fallback, 0, "{s:?}");
    assert_eq!(s.faults(), 0, "{s:?}");
    assert_eq!(s.defer, 0, "{s:?}");
    assert_eq!(s.picks, 2 * total, "every decision was the plugin's: {s:?}");
}

#[test]
fn wasm_wlc_passes_the_whole_suite_as_wlc() {
    let Some(path) = example("wlc.wasm") else { return };
    let wasm = fuel_host().load_file(&path, &[], native("wlc")).expect("load");
    let promise = conformance::promise_of("wlc").expect("wlc promise");
    conformance::check_all(&*wasm, promise).unwrap_or_else(|f| panic!("{f}"));
    let s = wasm.stats();
    assert_eq!((s.fallback, s.faults()), (0, 0), "{s:?}");
}

#[test]
fn other_examples_pass_the_universal_checks() {
    let Some(dir) = examples() else { return };
    let host = fuel_host();
    for (file, promise) in [
        ("p2c.wasm", Promise::Any),
        ("hash.wasm", Promise::Any),
        ("maglev.wasm", Promise::StableHash(HashKey::Source)),
        ("defer.wat", Promise::Any),
    ] {
        let f = host.load_file(&dir.join(file), &[], native("wlc")).expect(file);
        conformance::check_all(&*f, promise).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = f.stats();
        assert_eq!(s.faults(), 0, "{file}: {s:?}");
        if file == "defer.wat" {
            assert!(s.defer > 0 && s.picks == 0 && s.fallback == s.defer, "{s:?}");
        } else {
            assert!(s.picks > 0, "{file}: {s:?}");
        }
        assert_eq!(f.name(), format!("wasm:{}", dir.join(file).display()));
    }
}
