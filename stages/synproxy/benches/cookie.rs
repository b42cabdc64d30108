//! Cookie make and check, IPv4 and IPv6: `cargo bench -p rvs-synproxy --bench cookie`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_core::addr::Addr;
use rvs_core::time::Now;
use rvs_synproxy::{CookieFlow, CookieKey, CookieOpts};

fn bench(c: &mut Criterion) {
    let key = CookieKey::from_seed(42);
    let opts = CookieOpts {
        mss: 1460,
        wscale: Some(7),
        sack: true,
        timestamps: false,
    };
    let flows = [
        (
            "v4",
            CookieFlow {
                saddr: Addr::v4([198, 18, 5, 5]),
                daddr: Addr::v4([198, 18, 0, 100]),
                sport: 40000,
                dport: 80,
            },
        ),
        (
            "v6",
            CookieFlow {
                saddr: Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
                daddr: Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
                sport: 40000,
                dport: 80,
            },
        ),
    ];
    let now = Now::from_secs(1_000_000);
    for (name, f) in flows {
        let mut isn = 1u32;
        c.bench_function(&format!("cookie_make_{name}"), |b| {
            b.iter(|| {
                isn = isn.wrapping_add(7919);
                black_box(key.make(black_box(&f), isn, &opts, now))
            })
        });
        let made: Vec<(u32, u32)> = (0..1024u32)
            .map(|i| {
                (
                    i.wrapping_mul(2_654_435_761),
                    key.make(&f, i.wrapping_mul(2_654_435_761), &opts, now),
                )
            })
            .collect();
        let mut i = 0usize;
        c.bench_function(&format!("cookie_check_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let (isn, ck) = made[i];
                black_box(key.check(black_box(&f), isn, ck, now))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
