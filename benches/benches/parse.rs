//! Wall time of the parse stage per vector of 32 and 256 frames over heap buffers (IPv4 TCP,
//! IPv6 TCP, IPv4 with options), through `Node::run`: `cargo bench -p rvs-benches --bench parse`.
//! Throughput is in packets; time per packet = time per vector / vector size.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{PARSE_KINDS, RING, VECTORS};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for kind in PARSE_KINDS {
        for v in VECTORS {
            let mut b = rvs_benches::parse(kind, v, RING);
            g.throughput(Throughput::Elements(v as u64));
            g.bench_function(BenchmarkId::new(kind, v), |t| t.iter_custom(|n| b.timed(n)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
