//! Wall time of the lookup stage per vector of 32 and 256 packets, hits and misses, in tables
//! of 64k and 1M FNAT connections: `cargo bench -p rvs-benches --bench lookup`. Consecutive
//! vectors are drawn from 8192 packets of random connections, so records are not cache-hot by
//! replay. Throughput is in packets. The lookup crate's own bench
//! (`cargo bench -p rvs-lookup --bench lookup`) measures the same cases at vector 32 with
//! metadata filled by hand; this one feeds frames parsed by the real parse function.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{RING, VECTORS};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.sample_size(30);
    for n in [1usize << 16, 1 << 20] {
        for hit in [true, false] {
            for v in VECTORS {
                let mut b = rvs_benches::lookup(n, hit, v, RING);
                g.throughput(Throughput::Elements(v as u64));
                let id = format!("{}/{}k", if hit { "hit" } else { "miss" }, n >> 10);
                g.bench_function(BenchmarkId::new(id, v), |t| t.iter_custom(|k| b.timed(k)));
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
