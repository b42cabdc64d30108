//! Wall time of one lcore's whole graph (parse -> lookup -> {hit: xmit, miss: schedule ->
//! conn-new -> xmit}, `rvs_pipeline::worker::Worker` over heap buffers) per vector of 32 and
//! 256 raw frames: an established FNAT connection's ACK (8192 connections made by their own
//! SYNs during setup) and a new connection's SYN (wlc over 8 real servers, FNAT local port):
//! `cargo bench -p rvs-benches --bench graph`. Throughput is in packets; for new_conn it is
//! also new connections per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{GRAPH_CASES, GraphBench, RING, VECTORS};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("graph");
    for case in GRAPH_CASES {
        for v in VECTORS {
            let mut b = GraphBench::new(case, v, RING);
            g.throughput(Throughput::Elements(v as u64));
            g.bench_function(BenchmarkId::new(case, v), |t| t.iter_custom(|k| b.timed(k)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
