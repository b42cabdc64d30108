//! Instruction counts of one vector through each stage (the fixture is built and warmed up
//! outside the measurement): `cargo bench -p rvs-benches --bench iai` (needs valgrind and
//! `iai-callgrind-runner` 0.16.1). `benches/iai-guard` runs this and compares every bench with
//! the baselines committed in `benches/iai-baselines.json`. Instructions per packet =
//! instructions / vector size (the id's last number).
//!
//! Tables are 64k connections here (a 1M table takes too long to build under valgrind for a
//! CI guard; instruction counts do not depend on the table size when the hash load is the
//! same, which the criterion benches show in time).

use std::hint::black_box;

use iai_callgrind::{library_benchmark, library_benchmark_group, main};
use rvs_benches::{Bench, GraphBench};
use rvs_conn_new::ConnNew;
use rvs_core::meta::Dir;
use rvs_core::service::Forward;
use rvs_lookup::Lookup;
use rvs_parse::Parse;
use rvs_schedule::Schedule;
use rvs_xmit::Xmit;

const K64: usize = 1 << 16;

#[library_benchmark]
#[bench::ipv4_tcp_32(rvs_benches::parse("ipv4_tcp", 32, 32))]
#[bench::ipv4_tcp_256(rvs_benches::parse("ipv4_tcp", 256, 256))]
#[bench::ipv6_tcp_32(rvs_benches::parse("ipv6_tcp", 32, 32))]
#[bench::ipv6_tcp_256(rvs_benches::parse("ipv6_tcp", 256, 256))]
#[bench::ipv4_opts_tcp_32(rvs_benches::parse("ipv4_opts_tcp", 32, 32))]
#[bench::ipv4_opts_tcp_256(rvs_benches::parse("ipv4_opts_tcp", 256, 256))]
fn parse(mut b: Bench<Parse>) -> Bench<Parse> {
    b.run();
    black_box(b)
}

#[library_benchmark]
#[bench::hit_64k_32(rvs_benches::lookup(K64, true, 32, 32))]
#[bench::hit_64k_256(rvs_benches::lookup(K64, true, 256, 256))]
#[bench::miss_64k_32(rvs_benches::lookup(K64, false, 32, 32))]
#[bench::miss_64k_256(rvs_benches::lookup(K64, false, 256, 256))]
fn lookup(mut b: Bench<Lookup>) -> Bench<Lookup> {
    b.run();
    black_box(b)
}

#[library_benchmark]
#[bench::rr_8_32(rvs_benches::schedule("rr", 8, 32, 32))]
#[bench::rr_256_32(rvs_benches::schedule("rr", 256, 32, 32))]
#[bench::wlc_8_32(rvs_benches::schedule("wlc", 8, 32, 32))]
#[bench::wlc_256_32(rvs_benches::schedule("wlc", 256, 32, 32))]
#[bench::wlc_256_256(rvs_benches::schedule("wlc", 256, 256, 256))]
#[bench::sh_8_32(rvs_benches::schedule("sh", 8, 32, 32))]
#[bench::sh_256_32(rvs_benches::schedule("sh", 256, 32, 32))]
#[bench::mh_8_32(rvs_benches::schedule("mh", 8, 32, 32))]
#[bench::mh_256_32(rvs_benches::schedule("mh", 256, 32, 32))]
#[bench::mh_256_256(rvs_benches::schedule("mh", 256, 256, 256))]
fn schedule(mut b: Bench<Schedule>) -> Bench<Schedule> {
    b.run();
    black_box(b)
}

#[library_benchmark]
#[bench::fnat_32(rvs_benches::conn_new(Forward::Fnat, 32, 32))]
#[bench::fnat_256(rvs_benches::conn_new(Forward::Fnat, 256, 256))]
#[bench::nat_32(rvs_benches::conn_new(Forward::Nat, 32, 32))]
#[bench::nat_256(rvs_benches::conn_new(Forward::Nat, 256, 256))]
fn conn_new(mut b: Bench<ConnNew>) -> Bench<ConnNew> {
    b.run();
    black_box(b)
}

#[library_benchmark]
#[bench::fnat_in_32(rvs_benches::xmit(Forward::Fnat, Dir::In, 32, 32))]
#[bench::fnat_in_256(rvs_benches::xmit(Forward::Fnat, Dir::In, 256, 256))]
#[bench::fnat_out_32(rvs_benches::xmit(Forward::Fnat, Dir::Out, 32, 32))]
#[bench::fnat_out_256(rvs_benches::xmit(Forward::Fnat, Dir::Out, 256, 256))]
#[bench::nat_in_32(rvs_benches::xmit(Forward::Nat, Dir::In, 32, 32))]
#[bench::nat_out_32(rvs_benches::xmit(Forward::Nat, Dir::Out, 32, 32))]
#[bench::dr_in_32(rvs_benches::xmit(Forward::Dr, Dir::In, 32, 32))]
fn xmit(mut b: Bench<Xmit>) -> Bench<Xmit> {
    b.run();
    black_box(b)
}

#[library_benchmark]
#[bench::established_32(GraphBench::new("established", 32, 32))]
#[bench::established_256(GraphBench::new("established", 256, 256))]
#[bench::new_conn_32(GraphBench::new("new_conn", 32, 32))]
#[bench::new_conn_256(GraphBench::new("new_conn", 256, 256))]
fn graph(mut b: GraphBench) -> GraphBench {
    b.run();
    black_box(b)
}

library_benchmark_group!(name = stages; benchmarks = parse, lookup, schedule, conn_new, xmit);
library_benchmark_group!(name = whole; benchmarks = graph);
main!(library_benchmark_groups = stages, whole);
