//! Wall time of the schedule stage per vector of 32 and 256 SYNs of new flows, for rr, wlc,
//! sh and mh over 8 and 256 destinations: `cargo bench -p rvs-benches --bench schedule`.
//! This is the whole stage (service lookup, defence checks, follower set, the scheduler's
//! pick); one decision of every scheduler alone is `cargo bench -p rvs-schedulers`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_benches::{DEST_COUNTS, RING, SCHED_NAMES, VECTORS};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    for name in SCHED_NAMES {
        for n in DEST_COUNTS {
            for v in VECTORS {
                let mut b = rvs_benches::schedule(name, n, v, RING);
                g.throughput(Throughput::Elements(v as u64));
                g.bench_function(BenchmarkId::new(format!("{name}/{n}"), v), |t| {
                    t.iter_custom(|k| b.timed(k))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
