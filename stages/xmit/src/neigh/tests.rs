//! Neighbour cache and hold-queue tests: packets from the test kit's builder parsed by
//! rvs-parse, xmit and the ARP/ND stage run as nodes sharing one cache, every frame that
//! leaves compared byte for byte with one the builder makes from scratch (its own checksum
//! code) and run through the kit's independent decoder.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::arp::Arp;
use rvs_conn::{ConnConfig, LcoreConns, SharedConns};
use rvs_core::addr::Proto;
use rvs_core::counters::StageReport;
use rvs_core::label::Label;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool, PacketPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Exits, Node};
use rvs_testkit::builder::{Pkt, SYN};
use rvs_testkit::decode::decode_checked;

const CLIENT: [u8; 4] = [198, 18, 5, 5];
const VIP: [u8; 4] = [198, 18, 0, 100];
const RS: [u8; 4] = [198, 18, 1, 11];
const RS2: [u8; 4] = [198, 18, 1, 12];
const PORT0_IP: [u8; 4] = [198, 18, 1, 1];
const CPORT: u16 = 40000;
const VPORT: u16 = 80;
const RPORT: u16 = 8080;
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const RS6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
const PORT0_IP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Port 0 faces the real servers (no static neighbour for them), port 1 the clients
/// through a default gateway with a static entry.
fn l2() -> L2 {
    let mut l2 = L2::new();
    l2.add_interface(
        "port0",
        "02:00:00:00:00:01",
        &["198.18.0.1/24", "198.18.1.1/24", "2001:db8:1::1/64"],
    )
    .unwrap();
    l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])
        .unwrap();
    l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe").unwrap();
    l2.set_default_gateway("198.18.2.254").unwrap();
    l2
}

struct Rig {
    conns: SharedConns,
    cache: SharedNeigh,
    xmit: Node<HeapMbuf, Xmit>,
    arp: Node<HeapMbuf, Arp>,
    pool: HeapPool,
}

/// What left on the wire during one call, per port in order.
#[derive(Debug, Default)]
struct Wire {
    tx: Vec<(u16, Vec<u8>)>,
    host: usize,
}

impl Rig {
    fn new(cfg: NeighConfig) -> Self {
        let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(
            ConnConfig {
                capacity: 64,
                buckets_log2: 6,
                ..ConnConfig::default()
            },
            0,
            1,
            Arc::new(LoadTable::new(16)),
        )));
        let cache = NeighCache::shared(cfg);
        let l2 = Arc::new(l2());
        let xmit = Node::new(Xmit::new(conns.clone(), l2.clone()).with_neigh(cache.clone()), 64);
        let arp = Node::new(Arp::new(l2, cache.clone()), 64);
        Rig {
            conns,
            cache,
            xmit,
            arp,
            pool: HeapPool::new(128),
        }
    }
    fn conn(&self, fwd: Forward, client: Addr, vip: Addr, rs: Addr) -> u32 {
        let inb = Tuple {
            proto: Proto::Tcp,
            saddr: client,
            sport: CPORT,
            daddr: vip,
            dport: VPORT,
        };
        let out = Conn::out_tuple_for(fwd, &inb, rs, RPORT, Addr::UNSPECIFIED, 0);
        let c = Conn {
            in_tuple: inb,
            out_tuple: out,
            fwd,
            ..Conn::default()
        };
        self.conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap()
    }
    fn drain(exits: &mut Exits<HeapMbuf>, pool: &mut HeapPool) -> Wire {
        let mut w = Wire::default();
        for (port, q) in exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                w.tx.push((port as u16, p.mbuf.data().to_vec()));
                pool.free(p.mbuf);
            }
        }
        for p in exits.host.drain() {
            w.host += 1;
            pool.free(p.mbuf);
        }
        w
    }
    /// Parse each frame, attach the connection, run one xmit vector at `now`.
    fn xmit(&mut self, now: Now, frames: &[Vec<u8>], id: u32) -> Wire {
        let mut input = PacketVec::with_capacity(64);
        for f in frames {
            let mut p = Packet::new(self.pool.alloc_with(f).unwrap());
            assert!(matches!(
                rvs_parse::parse(f, &mut p.meta, true),
                Ok(rvs_parse::Parsed::Ip { .. })
            ));
            p.meta.conn = id;
            p.meta.dir = Dir::In;
            input.push(p).unwrap();
        }
        let mut exits = Exits::new(2, 1, 64);
        let snap = Snapshot::empty();
        let cx = StageCx {
            now,
            lcore: 0,
            snapshot: &snap,
        };
        self.xmit.run(&cx, &mut input, &mut exits, &mut self.pool);
        Self::drain(&mut exits, &mut self.pool)
    }
    fn poll(&mut self, now: Now) -> Wire {
        let mut exits = Exits::new(2, 1, 64);
        let snap = Snapshot::empty();
        let cx = StageCx {
            now,
            lcore: 0,
            snapshot: &snap,
        };
        self.xmit.poll(&cx, &mut exits, &mut self.pool);
        Self::drain(&mut exits, &mut self.pool)
    }
    /// Run a frame (ARP, or an IP frame parse accepts) through the ARP/ND stage on port 0.
    fn arp(&mut self, now: Now, frame: &[u8]) -> Wire {
        let mut p = Packet::new(self.pool.alloc_with(frame).unwrap());
        let _ = rvs_parse::parse(frame, &mut p.meta, true);
        let mut input = PacketVec::with_capacity(4);
        input.push(p).unwrap();
        let mut exits = Exits::new(2, 1, 64);
        let snap = Snapshot::empty();
        let cx = StageCx {
            now,
            lcore: 0,
            snapshot: &snap,
        };
        self.arp.run(&cx, &mut input, &mut exits, &mut self.pool);
        Self::drain(&mut exits, &mut self.pool)
    }
    fn report(&self) -> StageReport {
        self.xmit.stats().report()
    }
    fn counters(&self) -> ResolveCounters {
        self.xmit.stage.resolve_counters()
    }
}

fn syn(seq: u32) -> Vec<u8> {
    Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(CLIENT, VIP)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(seq)
        .build()
}

/// What NAT sends to the real server for `syn(seq)` once its MAC is known.
fn syn_to_rs(seq: u32) -> Vec<u8> {
    Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(CLIENT, RS)
        .ttl(63)
        .tcp(CPORT, RPORT)
        .flags(SYN)
        .seq(seq)
        .build()
}

fn arp_request_for(target: [u8; 4]) -> Vec<u8> {
    Pkt::eth(PORT0_MAC, [0xff; 6])
        .arp_request(PORT0_MAC, PORT0_IP, target)
        .pad_to(60)
        .build()
}

fn assert_frame(got: &[u8], want: &[u8]) {
    let d = decode_checked(got);
    assert!(d.is_ok(), "decoder: {d:?}");
    assert!(got == want, "{}", rvs_testkit::hex::diff(want, got));
}

#[test]
fn held_packets_go_out_in_order_once_the_reply_arrives() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);

    // Three packets to a real server nobody has resolved: held, one ARP request broadcast.
    let w = r.xmit(t0, &[syn(1), syn(2), syn(3)], id);
    assert_eq!(w.tx.len(), 1, "only the ARP request leaves: {w:?}");
    assert_eq!(w.tx[0].0, 0);
    assert_frame(&w.tx[0].1, &arp_request_for(RS));
    let rep = r.report();
    assert_eq!((rep.held, rep.total_drops(), rep.emitted), (3, 0, 1));
    assert_eq!(r.xmit.stage.held(), 3);
    assert_eq!(r.cache.borrow().entry(Addr::v4(RS)).unwrap().mac, None);

    // Nothing is due before the retransmission time.
    assert!(r.poll(t0.plus_nanos(500_000_000)).tx.is_empty());

    // The reply reaches the ARP/ND stage (it goes on to the host path once learned).
    let reply = Pkt::eth(RS_MAC, PORT0_MAC)
        .arp_reply(RS_MAC, RS, PORT0_MAC, PORT0_IP)
        .pad_to(60)
        .build();
    let w = r.arp(t0.plus_secs(1), &reply);
    assert_eq!((w.tx.len(), w.host), (0, 1));
    assert_eq!(r.cache.borrow().lookup(Addr::v4(RS), t0.plus_secs(1)), Some(RS_MAC));

    // The next vector: the held packets first, in arrival order, then the new one.
    let w = r.xmit(t0.plus_secs(1), &[syn(4)], id);
    let got: Vec<_> = w.tx.iter().map(|(p, b)| (*p, b.clone())).collect();
    assert_eq!(got.len(), 4);
    for (i, (port, bytes)) in got.iter().enumerate() {
        assert_eq!(*port, 0);
        assert_frame(bytes, &syn_to_rs(i as u32 + 1));
    }
    let c = r.counters();
    assert_eq!((c.held, c.released, c.arp_requests, c.unresolved), (3, 3, 1, 0));
    assert_eq!(r.xmit.stage.held(), 0);
    assert_eq!(r.xmit.stage.counters().nat_in, 4);
    // From now on the learned entry serves directly.
    let w = r.xmit(t0.plus_secs(2), &[syn(5)], id);
    assert_eq!(w.tx.len(), 1);
    assert_frame(&w.tx[0].1, &syn_to_rs(5));
}

#[test]
fn release_in_poll_without_new_packets() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    r.xmit(t0, &[syn(7)], id);
    // A request from the real server for our address also teaches us its MAC.
    let req = Pkt::eth(RS_MAC, [0xff; 6])
        .arp_request(RS_MAC, RS, PORT0_IP)
        .pad_to(60)
        .build();
    let w = r.arp(t0, &req);
    assert_eq!(w.tx.len(), 1, "our reply");
    let w = r.poll(t0);
    assert_eq!(w.tx.len(), 1);
    assert_frame(&w.tx[0].1, &syn_to_rs(7));
    assert_eq!(
        r.xmit.stats().report().emitted,
        2,
        "the ARP request and the released packet"
    );
}

#[test]
fn a_full_hold_queue_drops_the_newest() {
    let cfg = NeighConfig {
        queue_per_hop: 8,
        queue_total: 10,
        ..NeighConfig::default()
    };
    let mut r = Rig::new(cfg);
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    let frames: Vec<_> = (1..=9).map(syn).collect();
    let w = r.xmit(t0, &frames, id);
    assert_eq!(w.tx.len(), 1);
    let rep = r.report();
    assert_eq!(rep.held, 8);
    assert_eq!(rep.dropped(XmitDrop::NeighQueueFull.name()), 1);

    // A second hop: only two more fit under the total bound of 10.
    let mut other = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(CLIENT, VIP)
        .tcp(CPORT + 1, VPORT)
        .flags(SYN);
    let inb = Tuple {
        proto: Proto::Tcp,
        saddr: Addr::v4(CLIENT),
        sport: CPORT + 1,
        daddr: Addr::v4(VIP),
        dport: VPORT,
    };
    let c2 = Conn {
        in_tuple: inb,
        out_tuple: Conn::out_tuple_for(Forward::Nat, &inb, Addr::v4(RS2), RPORT, Addr::UNSPECIFIED, 0),
        fwd: Forward::Nat,
        ..Conn::default()
    };
    let id2 = r.conns.borrow_mut().insert(c2, t0).unwrap();
    let frames: Vec<_> = (1..=3)
        .map(|s| {
            other = other.clone().seq(s);
            other.build()
        })
        .collect();
    let w = r.xmit(t0, &frames, id2);
    assert_eq!(w.tx.len(), 1);
    assert_frame(&w.tx[0].1, &arp_request_for(RS2));
    let rep = r.report();
    assert_eq!(rep.held, 10);
    assert_eq!(rep.dropped(XmitDrop::NeighQueueFull.name()), 2);
    assert_eq!(r.counters().queue_full, 2);
    assert_eq!(r.xmit.stage.held(), 10);
    // Every held buffer is accounted for: pool = capacity - held (the sent ones came back).
    assert_eq!(r.pool.available(), 128 - 10);
}

#[test]
fn an_unanswered_hop_is_probed_three_times_then_its_packets_dropped() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    let w = r.xmit(t0, &[syn(1), syn(2)], id);
    assert_eq!(w.tx.len(), 1);
    for k in 1..=2u64 {
        assert!(r.poll(t0.plus_nanos(k * 1_000_000_000 - 1)).tx.is_empty());
        let w = r.poll(t0.plus_secs(k));
        assert_eq!(w.tx.len(), 1, "probe {}", k + 1);
        assert_frame(&w.tx[0].1, &arp_request_for(RS));
    }
    assert_eq!(r.report().total_drops(), 0);
    let w = r.poll(t0.plus_secs(3));
    assert!(w.tx.is_empty());
    let rep = r.report();
    assert_eq!(rep.dropped(XmitDrop::NeighUnresolved.name()), 2);
    let c = r.counters();
    assert_eq!((c.arp_requests, c.unresolved, c.hops_failed, c.held), (3, 2, 1, 2));
    assert_eq!(r.xmit.stage.held(), 0);
    assert!(r.cache.borrow().entry(Addr::v4(RS)).is_none(), "forgotten");
    assert_eq!(r.pool.available(), 128);
    // A late reply addressed to someone else is not learned (RFC 826: not for us, not
    // known); one addressed to us is.
    let stray = Pkt::eth(RS_MAC, PORT0_MAC)
        .arp_reply(RS_MAC, RS, [2, 0, 0, 0, 1, 0x99], [198, 18, 1, 99])
        .build();
    r.arp(t0.plus_secs(4), &stray);
    assert!(r.cache.borrow().is_empty());
    let reply = Pkt::eth(RS_MAC, PORT0_MAC)
        .arp_reply(RS_MAC, RS, PORT0_MAC, PORT0_IP)
        .build();
    r.arp(t0.plus_secs(4), &reply);
    assert_eq!(r.cache.borrow().lookup(Addr::v4(RS), t0.plus_secs(4)), Some(RS_MAC));
}

#[test]
fn a_connection_gone_while_held_is_dropped_on_release() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    r.xmit(t0, &[syn(1)], id);
    let snap = Snapshot::empty();
    r.conns.borrow_mut().remove(id, &snap).unwrap();
    r.cache.borrow_mut().learn(Addr::v4(RS), RS_MAC, t0, false);
    let w = r.poll(t0);
    assert!(w.tx.is_empty());
    assert_eq!(r.report().dropped(XmitDrop::NoConn.name()), 1);
    assert_eq!(r.counters().stale_conn, 1);
}

#[test]
fn without_a_cache_a_missing_neighbour_is_still_a_drop() {
    let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(
        ConnConfig {
            capacity: 8,
            buckets_log2: 4,
            ..ConnConfig::default()
        },
        0,
        1,
        Arc::new(LoadTable::new(4)),
    )));
    let mut r = Rig::new(NeighConfig::default());
    r.xmit = Node::new(Xmit::new(conns.clone(), Arc::new(l2())), 8);
    r.conns = conns;
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let w = r.xmit(Now::from_secs(1), &[syn(1)], id);
    assert!(w.tx.is_empty());
    assert_eq!(r.report().dropped(XmitDrop::NoNeighbor.name()), 1);
}

#[test]
fn an_ipv6_hop_is_solicited_and_released_by_the_advertisement() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Dr, Addr::v6(C6), Addr::v6(V6), Addr::v6(RS6));
    let t0 = Now::from_secs(10);
    let pkt = Pkt::eth(GW_MAC, PORT0_MAC)
        .ipv6(C6, V6)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(9);
    let w = r.xmit(t0, &[pkt.build()], id);
    assert_eq!(w.tx.len(), 1);
    // RFC 4861 7.2.2: to the solicited-node address, hop limit 255, our MAC in an option.
    let sn: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x11];
    let mut body = RS6.to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&PORT0_MAC);
    let ns = Pkt::eth(PORT0_MAC, [0x33, 0x33, 0xff, 0, 0, 0x11])
        .ipv6(PORT0_IP6, sn)
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &body)
        .build();
    assert_frame(&w.tx[0].1, &ns);
    assert_eq!(r.counters().solicitations, 1);

    // The real server's solicited advertisement (S and O set, its MAC in a target option).
    let mut body = RS6.to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&RS_MAC);
    let na = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv6(RS6, PORT0_IP6)
        .hop_limit(255)
        .icmp_raw(true, 136, 0, [0x60, 0, 0, 0], &body)
        .build();
    let w = r.arp(t0, &na);
    assert_eq!(w.host, 1);
    let w = r.poll(t0);
    assert_eq!(w.tx.len(), 1);
    // DR changes only the MACs.
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(C6, V6)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(9)
        .build();
    assert_frame(&w.tx[0].1, &want);
}

#[test]
fn cache_merge_rule_expiry_and_bounds() {
    let mut c = NeighCache::new(NeighConfig {
        capacity: 2,
        reachable_secs: 60,
        ..NeighConfig::default()
    });
    let a = Addr::v4([198, 18, 1, 20]);
    let b = Addr::v4([198, 18, 1, 21]);
    let t = Now::from_secs(100);
    // RFC 826: an unknown sender is learned only when the message was for us.
    assert_eq!(c.learn(a, RS_MAC, t, false), Learn::Ignored);
    assert_eq!(c.learn(a, RS_MAC, t, true), Learn::Created);
    assert_eq!(c.learn(a, RS_MAC, t, false), Learn::Refreshed);
    let g = c.generation();
    assert_eq!(c.learn(a, GW_MAC, t, false), Learn::Updated, "the neighbour moved");
    assert!(c.generation() > g);
    // Addresses and MACs no neighbour can have.
    assert_eq!(c.learn(Addr::v4([0; 4]), RS_MAC, t, true), Learn::Ignored);
    assert_eq!(c.learn(Addr::v4([224, 0, 0, 1]), RS_MAC, t, true), Learn::Ignored);
    assert_eq!(c.learn(b, [0xff; 6], t, true), Learn::Ignored);
    assert_eq!(c.learn(b, [1, 0, 0x5e, 0, 0, 1], t, true), Learn::Ignored);
    // A hop being resolved takes its answer even without `create`.
    assert!(c.want(b));
    assert_eq!(c.lookup(b, t), None);
    assert_eq!(c.learn(b, RS_MAC, t, false), Learn::Updated);
    // Full.
    assert!(!c.want(Addr::v4([198, 18, 1, 22])));
    assert_eq!(c.learn(Addr::v4([198, 18, 1, 23]), RS_MAC, t, true), Learn::Full);
    assert_eq!(c.counters().full, 2);
    // Expiry 60 s after the last word from the neighbour, swept at most once a second.
    assert_eq!(c.learn(b, RS_MAC, t.plus_secs(30), false), Learn::Refreshed);
    assert_eq!(c.lookup(a, t.plus_secs(59)), Some(GW_MAC));
    assert_eq!(c.lookup(a, t.plus_secs(60)), None);
    assert_eq!(c.expire(t.plus_secs(61)), 1);
    assert_eq!(c.expire(t.plus_secs(61)), 0);
    assert_eq!(c.lookup(b, t.plus_secs(61)), Some(RS_MAC));
    assert_eq!(c.expire(t.plus_secs(95)), 1);
    assert!(c.is_empty());
    assert_eq!(c.counters().expired, 2);
}

#[test]
fn an_expired_entry_leaves_the_overlay() {
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    r.cache.borrow_mut().learn(Addr::v4(RS), RS_MAC, t0, true);
    let w = r.xmit(t0, &[syn(1)], id);
    assert_frame(&w.tx[0].1, &syn_to_rs(1));
    // 61 s later the entry is gone: the packet is held and the hop asked again.
    let w = r.xmit(t0.plus_secs(61), &[syn(2)], id);
    assert_eq!(w.tx.len(), 1);
    assert_frame(&w.tx[0].1, &arp_request_for(RS));
    assert_eq!(r.report().held, 1);
}

#[test]
fn probes_and_targets() {
    assert_eq!(
        solicited_node(RS6),
        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x11]
    );
    let l2 = l2();
    let port0 = &l2.interfaces()[0];
    assert_eq!(source_addr(port0, Addr::v4(RS)), Some(Addr::v4(PORT0_IP)));
    assert_eq!(
        source_addr(port0, Addr::v4([203, 0, 113, 1])),
        Some(Addr::v4([198, 18, 0, 1]))
    );
    assert_eq!(source_addr(&l2.interfaces()[1], Addr::v6(RS6)), None);
    let mut small = [0u8; 59];
    assert!(!write_arp_request(&mut small, PORT0_MAC, PORT0_IP, RS));
    assert!(!write_solicitation(&mut small, PORT0_MAC, PORT0_IP6, RS6));
    let _ = PORT1_MAC;
}

/// A neighbour that moves (its MAC changes in the cache) gets the next packet at its new
/// MAC: the stage's next-hop cache follows the learned overlay.
#[test]
fn a_neighbour_that_moves_gets_the_next_packet() {
    const MOVED: [u8; 6] = [2, 0, 0, 0, 1, 0x77];
    let mut r = Rig::new(NeighConfig::default());
    let id = r.conn(Forward::Nat, Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS));
    let t0 = Now::from_secs(10);
    r.cache.borrow_mut().learn(Addr::v4(RS), RS_MAC, t0, true);
    for seq in [1, 2] {
        let w = r.xmit(t0, &[syn(seq)], id);
        assert_frame(&w.tx[0].1, &syn_to_rs(seq));
    }
    r.cache.borrow_mut().learn(Addr::v4(RS), MOVED, t0.plus_secs(1), false);
    let w = r.xmit(t0.plus_secs(1), &[syn(3)], id);
    assert_eq!(w.tx.len(), 1);
    let mut want = syn_to_rs(3);
    want[..6].copy_from_slice(&MOVED);
    assert_frame(&w.tx[0].1, &want);
}
