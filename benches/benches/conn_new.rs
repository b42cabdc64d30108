//! Wall time of the conn-new stage per vector of 32 and 256 SYNs, each creating a connection
//! (FNAT: local port, sequence delta; NAT) in a table already holding 64k connections:
//! `cargo bench -p rvs-benches --bench conn_new`. The connections are removed again between
//! vectors, outside the measurement.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{RING, VECTORS};
use rvs_core::service::Forward;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn_new");
    for fwd in [Forward::Fnat, Forward::Nat] {
        for v in VECTORS {
            let mut b = rvs_benches::conn_new(fwd, v, RING);
            g.throughput(Throughput::Elements(v as u64));
            g.bench_function(BenchmarkId::new(fwd.name(), v), |t| t.iter_custom(|k| b.timed(k)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
