//! Instructions of one scheduling decision per native scheduler, with 8 and 256 destinations
//! (the fixture is built outside the measurement): `cargo bench -p rvs-schedulers --bench iai`
//! (needs valgrind and `iai-callgrind-runner` 0.16.1).

use std::hint::black_box;

use iai_callgrind::{library_benchmark, library_benchmark_group, main};

mod common;
use common::Fixture;

#[library_benchmark]
#[bench::rr_8(Fixture::new("rr", 8))]
#[bench::rr_256(Fixture::new("rr", 256))]
#[bench::wrr_8(Fixture::new("wrr", 8))]
#[bench::wrr_256(Fixture::new("wrr", 256))]
#[bench::lc_8(Fixture::new("lc", 8))]
#[bench::lc_256(Fixture::new("lc", 256))]
#[bench::wlc_8(Fixture::new("wlc", 8))]
#[bench::wlc_256(Fixture::new("wlc", 256))]
#[bench::sed_8(Fixture::new("sed", 8))]
#[bench::sed_256(Fixture::new("sed", 256))]
#[bench::nq_8(Fixture::new("nq", 8))]
#[bench::nq_256(Fixture::new("nq", 256))]
#[bench::sh_8(Fixture::new("sh", 8))]
#[bench::sh_256(Fixture::new("sh", 256))]
#[bench::dh_8(Fixture::new("dh", 8))]
#[bench::dh_256(Fixture::new("dh", 256))]
#[bench::lblc_8(Fixture::new("lblc", 8))]
#[bench::lblc_256(Fixture::new("lblc", 256))]
#[bench::lblcr_8(Fixture::new("lblcr", 8))]
#[bench::lblcr_256(Fixture::new("lblcr", 256))]
#[bench::fo_8(Fixture::new("fo", 8))]
#[bench::fo_256(Fixture::new("fo", 256))]
#[bench::ovf_8(Fixture::new("ovf", 8))]
#[bench::ovf_256(Fixture::new("ovf", 256))]
#[bench::mh_8(Fixture::new("mh", 8))]
#[bench::mh_256(Fixture::new("mh", 256))]
#[bench::conhash_8(Fixture::new("conhash", 8))]
#[bench::conhash_256(Fixture::new("conhash", 256))]
#[bench::twos_8(Fixture::new("twos", 8))]
#[bench::twos_256(Fixture::new("twos", 256))]
fn pick(mut fx: Fixture) -> Option<usize> {
    black_box(fx.pick())
}

library_benchmark_group!(name = schedulers; benchmarks = pick);
main!(library_benchmark_groups = schedulers);
