//! Wall time of the xmit stage per vector of 32 and 256 packets: FNAT and NAT in both
//! directions, DR inbound, over 8192 connections: `cargo bench -p rvs-benches --bench xmit`.
//! Each vector is rebuilt from its templates outside the measurement (the stage rewrites in
//! place), so nothing is subtracted. The xmit crate's own bench (`cargo bench -p rvs-xmit`)
//! measures vector 32 over 32 connections, refill included.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{RING, VECTORS, XMIT_CASES};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmit");
    for (name, fwd, dir) in XMIT_CASES {
        for v in VECTORS {
            let mut b = rvs_benches::xmit(fwd, dir, v, RING);
            g.throughput(Throughput::Elements(v as u64));
            g.bench_function(BenchmarkId::new(name, v), |t| t.iter_custom(|k| b.timed(k)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
