//! Lookup stage cost per packet: hits and misses, in tables of 64k and 1M connections.
//!
//! `CARGO_TARGET_DIR=/work/target-conn cargo bench -p rvs-lookup --bench lookup`
//!
//! Each measured iteration runs the stage (through `Node::run`, as the graph does, counters
//! and cycle reads included) over one vector of 32 heap packets whose metadata is filled as
//! parse would, drawn in turn from 8192 packets of distinct random flows, so consecutive
//! vectors touch different connections (the connection records are not cache-hot as they
//! would be if one vector were replayed). Hits are ACKs on FNAT connections, half inbound
//! (client -> VIP) and half outbound (real server -> local address); misses are SYNs of
//! flows the table does not hold. Moving the packets back into the input queue is included.
//! The table has one bucket per tuple (2n buckets for n connections, each hashed twice).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_conn::{Conn, ConnConfig, LcoreConns, SharedConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::meta::{PacketMeta, TcpFlags};
use rvs_core::rng::SplitMix64;
use rvs_core::service::{Forward, Snapshot};
use rvs_core::stage::{Exits, Node, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};

const VEC: usize = 32;
const RING: usize = 8192;

fn in_tuple(rng: &mut SplitMix64) -> Tuple {
    Tuple {
        proto: Proto::Tcp,
        saddr: Addr::from_v4_u32(0xc612_0000 | rng.below(1 << 16) as u32),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: 1024 + rng.below(60000) as u16,
        dport: 80,
    }
}

fn packet(t: &Tuple, flags: u8) -> Packet<HeapMbuf> {
    let mut p = Packet::new(HeapMbuf::from_bytes(&[0u8; 64]));
    p.meta = PacketMeta {
        proto: 6,
        saddr: t.saddr,
        daddr: t.daddr,
        sport: t.sport,
        dport: t.dport,
        tcp_flags: TcpFlags(flags),
        l3_off: 14,
        l4_off: 34,
        l4_hdr_len: 20,
        l3_len: 40,
        ..PacketMeta::new()
    };
    p
}

/// A table with `n` FNAT connections, plus packets hitting them and packets missing.
type Pkts = Vec<Packet<HeapMbuf>>;

fn setup(n: usize) -> (SharedConns, Pkts, Pkts) {
    let cfg = ConnConfig {
        capacity: n,
        buckets_log2: (n.next_power_of_two().trailing_zeros() + 1) as u8,
        seed: 9,
        timer_tick_ms: 10,
    };
    let mut t = LcoreConns::new(cfg, 0, 1, Arc::new(LoadTable::new(4)));
    let mut rng = SplitMix64::new(42);
    let laddr = Addr::v4([198, 18, 1, 1]);
    let mut conns = Vec::with_capacity(n);
    let mut lport = 0u32;
    while conns.len() < n {
        let inb = in_tuple(&mut rng);
        lport += 1;
        // Many local addresses so local ports never run out at 1M.
        let la = Addr::from_v4_u32(laddr.v4_u32() + (lport >> 16));
        let rs = Addr::from_v4_u32(0xc612_0b00 | rng.below(64) as u32);
        let c = Conn {
            in_tuple: inb,
            out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, rs, 8080, la, (lport & 0xffff) as u16),
            fwd: Forward::Fnat,
            ..Default::default()
        };
        if t.insert(c.clone(), Now::from_secs(1)).is_ok() {
            conns.push(c);
        }
    }
    let hits = (0..RING)
        .map(|i| {
            let c = &conns[rng.below(n as u64) as usize];
            if i % 2 == 0 {
                packet(&c.in_tuple, TcpFlags::ACK)
            } else {
                packet(&c.out_tuple, TcpFlags::ACK)
            }
        })
        .collect();
    let mut misses = Vec::with_capacity(RING);
    while misses.len() < RING {
        let mut tup = in_tuple(&mut rng);
        tup.daddr = Addr::v4([198, 18, 0, 101]);
        if t.lookup(&tup).is_none() {
            misses.push(packet(&tup, TcpFlags::SYN));
        }
    }
    (Rc::new(RefCell::new(t)), hits, misses)
}

rvs_core::labels! {
    /// The one exit of the pass-through baseline.
    enum PassNext {
        /// Every packet.
        Out = ("out", "every packet"),
    }
}

/// The harness alone: a stage that hands every packet on, so the cost of lookup proper is
/// the difference to it, measured in the same run (the machine is shared and noisy).
struct Pass;

impl rvs_core::stage::Stage<HeapMbuf> for Pass {
    type Next = PassNext;
    type Drop = rvs_core::label::Never;
    const NAME: &'static str = "pass";
    fn process(
        &mut self,
        _cx: &StageCx<'_>,
        input: &mut PacketVec<HeapMbuf>,
        out: &mut rvs_core::stage::Out<'_, HeapMbuf, PassNext, rvs_core::label::Never>,
    ) {
        for p in input.drain() {
            out.next(PassNext::Out, p);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(VEC as u64));
    g.sample_size(30);
    {
        let (_, hits, _) = setup(1 << 10);
        let mut node = Node::new(Pass, 4 * VEC);
        let mut ring: VecDeque<Packet<HeapMbuf>> = hits.into();
        let mut input = PacketVec::with_capacity(4 * VEC);
        let mut exits = Exits::new(1, 1, 4 * VEC);
        let mut pool = HeapPool::new(4);
        let snap = Snapshot::empty();
        g.bench_function("harness", |b| {
            b.iter(|| {
                for _ in 0..VEC {
                    if let Some(p) = ring.pop_front() {
                        let _ = input.push(p);
                    }
                }
                let cx = StageCx {
                    now: Now::from_secs(2),
                    lcore: 0,
                    snapshot: &snap,
                };
                node.run(&cx, &mut input, &mut exits, &mut pool);
                for p in node.queue(PassNext::Out).drain() {
                    ring.push_back(p);
                }
            })
        });
    }
    for n in [1usize << 16, 1 << 20] {
        let (conns, hits, misses) = setup(n);
        for (case, pkts, label) in [("hit", hits, LookupNext::Hit), ("miss", misses, LookupNext::Miss)] {
            let mut node = Node::new(Lookup::new(conns.clone()), 4 * VEC);
            let mut ring: VecDeque<Packet<HeapMbuf>> = pkts.into();
            let mut input = PacketVec::with_capacity(4 * VEC);
            let mut exits = Exits::new(1, 1, 4 * VEC);
            let mut pool = HeapPool::new(4);
            let snap = Snapshot::empty();
            let mut now = Now::from_secs(2);
            g.bench_function(BenchmarkId::new(case, format!("{}k", n >> 10)), |b| {
                b.iter(|| {
                    for _ in 0..VEC {
                        if let Some(p) = ring.pop_front() {
                            let _ = input.push(p);
                        }
                    }
                    now = now.plus_nanos(1000);
                    let cx = StageCx {
                        now,
                        lcore: 0,
                        snapshot: &snap,
                    };
                    node.run(&cx, &mut input, &mut exits, &mut pool);
                    for p in node.queue(label).drain() {
                        ring.push_back(p);
                    }
                })
            });
            assert_eq!(ring.len(), RING, "{case}: every packet went to {label:?}");
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
