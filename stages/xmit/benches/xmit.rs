//! Wall-time cost of the xmit stage per vector of 32 packets over heap buffers, through
//! `Node::run`. Each iteration first restores every buffer's original bytes (the stage
//! rewrites in place) and metadata; `refill_only` measures that restore alone, to subtract.
//! The first run of `fnat_in` inserts TOA once per connection; the steady state measured is
//! the packets after it.
//!
//! `cargo bench -p rvs-xmit --bench xmit`

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_conn::{Conn, ConnConfig, LcoreConns, SharedConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::meta::{Dir, PacketMeta};
use rvs_core::service::{Forward, Snapshot};
use rvs_core::stage::{Exits, Node, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_testkit::builder::{ACK, Pkt, mac};
use rvs_xmit::{L2, Xmit};

const VEC: usize = 32;

fn l2() -> L2 {
    let mut l2 = L2::new();
    l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24", "198.18.1.1/24"])
        .unwrap();
    l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])
        .unwrap();
    l2.add_neighbor("198.18.1.11", "02:00:00:00:01:11").unwrap();
    l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe").unwrap();
    l2.set_default_gateway("198.18.2.254").unwrap();
    l2
}

fn setup(fwd: Forward, dir: Dir) -> (SharedConns, Vec<(Vec<u8>, PacketMeta)>) {
    let cfg = ConnConfig {
        capacity: 1024,
        buckets_log2: 10,
        ..ConnConfig::default()
    };
    let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(cfg, 0, 1, Arc::new(LoadTable::new(4)))));
    let mut frames = Vec::new();
    for i in 0..VEC as u16 {
        let inb = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::v4([198, 18, 5, 5]),
            sport: 10000 + i,
            daddr: Addr::v4([198, 18, 0, 100]),
            dport: 80,
        };
        let rport = if matches!(fwd, Forward::Dr | Forward::Tunnel) {
            80
        } else {
            8080
        };
        let out = Conn::out_tuple_for(
            fwd,
            &inb,
            Addr::v4([198, 18, 1, 11]),
            rport,
            Addr::v4([198, 18, 1, 1]),
            2000 + i,
        );
        let c = Conn {
            in_tuple: inb,
            out_tuple: out,
            fwd,
            fnat_seq_delta: 0x1234_5678,
            ..Conn::default()
        };
        let id = conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap();
        let t = if dir == Dir::In { inb } else { out };
        let b = Pkt::eth(mac(9), mac(1))
            .ipv4(t.saddr.v4_octets(), t.daddr.v4_octets())
            .tcp(t.sport, t.dport)
            .flags(ACK)
            .seq(1000)
            .ack(2000);
        let b = if dir == Dir::Out {
            b.nop().nop().sack(&[(3000, 4000)])
        } else {
            b.nop().nop().timestamps(1, 2)
        };
        let bytes = b.payload(&[0; 64]).build();
        let mut m = PacketMeta::new();
        rvs_parse::parse(&bytes, &mut m, true).unwrap();
        m.conn = id;
        m.dir = dir;
        frames.push((bytes, m));
    }
    (conns, frames)
}

fn bench(c: &mut Criterion) {
    let snap = Snapshot::empty();
    let cx = StageCx {
        now: Now::from_secs(1),
        lcore: 0,
        snapshot: &snap,
    };
    let mut g = c.benchmark_group("xmit");
    g.throughput(Throughput::Elements(VEC as u64));
    let cases = [
        ("fnat_in", Forward::Fnat, Dir::In),
        ("fnat_out_sack", Forward::Fnat, Dir::Out),
        ("nat_in", Forward::Nat, Dir::In),
        ("dr_in", Forward::Dr, Dir::In),
        ("tunnel_in", Forward::Tunnel, Dir::In),
    ];
    for (name, fwd, dir) in cases {
        let (conns, frames) = setup(fwd, dir);
        let mut node = Node::new(Xmit::new(conns, Arc::new(l2())), 256);
        let mut exits = Exits::<HeapMbuf>::new(2, 1, 256);
        let mut pool = HeapPool::new(VEC);
        let mut input = PacketVec::with_capacity(256);
        for (b, m) in &frames {
            let mut p = Packet::new(HeapMbuf::from_bytes(b));
            p.meta = *m;
            input.push(p).unwrap();
        }
        g.bench_function(name, |bn| {
            bn.iter(|| {
                for (p, (b, m)) in input.as_mut_slice().iter_mut().zip(&frames) {
                    p.mbuf.fill(b);
                    p.meta = *m;
                }
                node.run(&cx, &mut input, &mut exits, &mut pool);
                for q in exits.tx.iter_mut() {
                    for p in q.drain() {
                        let _ = input.push(p);
                    }
                }
            })
        });
        assert_eq!(input.len(), VEC, "{name}: every packet must be sent");
        if name == "fnat_in" {
            g.bench_function("refill_only", |bn| {
                bn.iter(|| {
                    for (p, (b, m)) in input.as_mut_slice().iter_mut().zip(&frames) {
                        p.mbuf.fill(b);
                        p.meta = *m;
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
