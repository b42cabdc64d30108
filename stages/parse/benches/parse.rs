//! Wall-time cost of the parse stage per vector of 32 packets over heap buffers, through
//! `Node::run` (cycles counting, counter flush and queue moves included).
//!
//! `cargo bench -p rvs-parse --bench parse`

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Exits, Node, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_parse::{Parse, ParseNext};
use rvs_testkit::builder::{ACK, Pkt, mac};

const VEC: usize = 32;

fn frames(kind: &str) -> Vec<Vec<u8>> {
    (0..VEC as u16)
        .map(|i| {
            let e = Pkt::eth(mac(1), mac(2));
            match kind {
                "ipv4_tcp" => e
                    .ipv4([198, 18, 5, 5], [198, 18, 0, 100])
                    .tcp(1000 + i, 80)
                    .flags(ACK)
                    .payload(&[0; 64]),
                "ipv6_tcp_ext" => e
                    .ipv6(
                        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                    )
                    .dst_opts(&[])
                    .tcp(1000 + i, 80)
                    .flags(ACK)
                    .payload(&[0; 64]),
                _ => e
                    .ipv4([198, 18, 5, 5], [198, 18, 0, 100])
                    .udp(1000 + i, 53)
                    .payload(&[0; 64]),
            }
            .build()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let snap = Snapshot::empty();
    let cx = StageCx {
        now: Now::from_secs(1),
        lcore: 0,
        snapshot: &snap,
    };
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(VEC as u64));
    for kind in ["ipv4_tcp", "ipv4_udp", "ipv6_tcp_ext"] {
        let mut node = Node::new(Parse::new(), 256);
        let mut exits = Exits::<HeapMbuf>::new(1, 1, 256);
        let mut pool = HeapPool::new(VEC);
        let mut input = PacketVec::with_capacity(256);
        for f in frames(kind) {
            input.push(Packet::new(HeapMbuf::from_bytes(&f))).unwrap();
        }
        g.bench_function(kind, |b| {
            b.iter(|| {
                node.run(&cx, &mut input, &mut exits, &mut pool);
                for mut p in node.queue(ParseNext::Ip).drain() {
                    p.meta = rvs_core::meta::PacketMeta::new();
                    let _ = input.push(p);
                }
            })
        });
        assert_eq!(input.len(), VEC);
        // The pure header walk alone, without the stage machinery.
        let fs = frames(kind);
        g.bench_function(format!("{kind}_fn"), |b| {
            b.iter(|| {
                let mut m = rvs_core::meta::PacketMeta::new();
                for f in &fs {
                    let _ = std::hint::black_box(rvs_parse::parse(std::hint::black_box(f), &mut m, true));
                }
                m
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
