//! Wall time of one scheduling decision per native scheduler, with 8 and 256 destinations:
//! `cargo bench -p rvs-schedulers --bench criterion`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use common::{Fixture, SIZES};

fn decisions(c: &mut Criterion) {
    for name in rvs_schedulers::NAMES {
        let mut g = c.benchmark_group(format!("pick/{name}"));
        for n in SIZES {
            let mut fx = Fixture::new(name, n);
            g.bench_function(format!("{n}"), |b| b.iter(|| black_box(fx.pick())));
        }
        g.finish();
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
