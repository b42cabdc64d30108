//! The lookup stage allocates nothing per vector: hits in both directions, misses, redirects,
//! tracing on.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, LcoreConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::meta::{PacketMeta, TcpFlags};
use rvs_core::service::{Forward, Snapshot};
use rvs_core::stage::{Exits, Node, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};

rvs_testkit::install_counting_allocator!();

fn packet(t: &Tuple, flags: u8) -> Packet<HeapMbuf> {
    let mut p = Packet::new(HeapMbuf::from_bytes(&[0u8; 60]));
    p.meta = PacketMeta {
        proto: 6,
        saddr: t.saddr,
        daddr: t.daddr,
        sport: t.sport,
        dport: t.dport,
        tcp_flags: TcpFlags(flags),
        ..PacketMeta::new()
    };
    p
}

#[test]
fn a_vector_allocates_nothing() {
    let laddr = Addr::v4([198, 18, 1, 1]);
    let mut table = LcoreConns::new(
        ConnConfig {
            capacity: 256,
            buckets_log2: 8,
            seed: 1,
            timer_tick_ms: 10,
        },
        0,
        2,
        Arc::new(LoadTable::new(4)),
    );
    table.ports().add_laddr(laddr);
    let mut pkts = Vec::new();
    for i in 0..16u16 {
        let inb = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::v4([198, 18, 5, 5]),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: 1000 + i,
            dport: 80,
        };
        let lport = table
            .ports()
            .take(laddr, Addr::v4([198, 18, 1, 11]), 8080)
            .expect("port");
        let c = Conn {
            in_tuple: inb,
            out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, Addr::v4([198, 18, 1, 11]), 8080, laddr, lport),
            fwd: Forward::Fnat,
            ..Default::default()
        };
        table.insert(c.clone(), Now::from_secs(1)).expect("insert");
        pkts.push(packet(&c.in_tuple, TcpFlags::SYN));
        pkts.push(packet(&c.out_tuple, TcpFlags::SYN | TcpFlags::ACK));
    }
    // Misses, and replies for lcore 1's ports (odd ports): redirected.
    for i in 0..8u16 {
        let t = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::v4([198, 18, 1, 11]),
            daddr: laddr,
            sport: 8080,
            dport: 3001 + 2 * i,
        };
        pkts.push(packet(&t, TcpFlags::ACK));
        let m = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::v4([198, 18, 6, 6]),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: 5000 + i,
            dport: 80,
        };
        pkts.push(packet(&m, TcpFlags::SYN));
    }
    let conns = Rc::new(RefCell::new(table));
    let mut node = Node::new(Lookup::new(conns), 64);
    node.stage.set_trace(16);
    let mut exits = Exits::new(1, 2, 64);
    let mut pool = HeapPool::new(4);
    let mut input = PacketVec::with_capacity(64);
    let snap = Snapshot::empty();
    let mut round = |input: &mut PacketVec<HeapMbuf>,
                     node: &mut Node<HeapMbuf, Lookup>,
                     exits: &mut Exits<HeapMbuf>,
                     pkts: &mut Vec<Packet<HeapMbuf>>| {
        for p in pkts.drain(..) {
            let _ = input.push(p);
        }
        let cx = StageCx {
            now: Now::from_secs(2),
            lcore: 0,
            snapshot: &snap,
        };
        node.run(&cx, input, exits, &mut pool);
        for l in [LookupNext::Hit, LookupNext::Miss] {
            pkts.extend(node.queue(l).drain());
        }
        pkts.extend(exits.redirect[1].drain());
    };
    round(&mut input, &mut node, &mut exits, &mut pkts); // warm-up
    let ((), n) = rvs_testkit::alloc::allocations_during(|| {
        for _ in 0..10 {
            round(&mut input, &mut node, &mut exits, &mut pkts);
        }
    });
    assert_eq!(pkts.len(), 48, "every packet came back");
    assert_eq!(n, 0, "allocations in 10 vectors");
    let k = node.stage.counters();
    assert_eq!(
        (k.hit_in, k.hit_out, k.miss, k.redirected),
        (16 * 11, 16 * 11, 8 * 11, 8 * 11)
    );
}
