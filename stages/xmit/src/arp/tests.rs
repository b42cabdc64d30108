//! ARP/ND stage tests: requests and echo built by the test kit's builder, parsed by
//! rvs-parse, answered by the stage; every answer compared byte for byte with the frame the
//! builder makes from scratch (its own checksum code) and run through the kit's independent
//! decoder.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::neigh::{NeighCache, NeighConfig};
use rvs_core::counters::StageReport;
use rvs_core::label::Label;
use rvs_core::mbuf::{HeapMbuf, HeapPool, PacketPool};
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::{Defence, Forward, Service, ServiceKey};
use rvs_core::stage::{Exits, Node};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::decode_checked;

const CLIENT: [u8; 4] = [198, 18, 5, 5];
const VIP: [u8; 4] = [198, 18, 0, 100];
const LOCAL: [u8; 4] = [198, 18, 1, 1];
const OTHER: [u8; 4] = [198, 18, 1, 77];
const PEER: [u8; 4] = [198, 18, 1, 11];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const LOCAL6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

#[derive(Debug)]
struct First;
impl Scheduler for First {
    fn name(&self) -> &str {
        "first"
    }
    fn pick(&mut self, _: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
        Some(0)
    }
}
impl SchedulerFactory for First {
    fn name(&self) -> &str {
        "first"
    }
    fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
        Box::new(First)
    }
}

/// TCP services on the IPv4 and IPv6 VIPs (the VIPs are on no interface).
fn snapshot() -> Snapshot {
    let svc = |vip: Addr| {
        Service::new(
            ServiceKey {
                proto: Proto::Tcp,
                vip,
                port: 80,
            },
            Forward::Dr,
            Arc::new(First),
        )
    };
    Snapshot::build(1, 1, Defence::default(), vec![svc(Addr::v4(VIP)), svc(Addr::v6(V6))]).unwrap()
}

fn l2() -> L2 {
    let mut l2 = L2::new();
    l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.1.1/24", "2001:db8:1::1/64"])
        .unwrap();
    l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])
        .unwrap();
    l2
}

struct Run {
    tx: Vec<(u16, Vec<u8>)>,
    host: usize,
    report: StageReport,
}

struct Rig {
    node: Node<HeapMbuf, Arp>,
    pool: HeapPool,
    snap: Snapshot,
}

impl Rig {
    fn new() -> Self {
        let cache = NeighCache::shared(NeighConfig::default());
        Rig {
            node: Node::new(Arp::new(Arc::new(l2()), cache), 16),
            pool: HeapPool::new(16),
            snap: snapshot(),
        }
    }
    /// Parse `frame` as parse would (ARP frames are not IP: metadata left empty), receive it
    /// on `port`, run one vector.
    fn run(&mut self, port: u16, frame: &[u8]) -> Run {
        let mut p = Packet::new(self.pool.alloc_with(frame).unwrap());
        let _ = rvs_parse::parse(frame, &mut p.meta, true);
        p.mbuf.set_port(port);
        let mut input = PacketVec::with_capacity(4);
        input.push(p).unwrap();
        let mut exits = Exits::new(2, 1, 16);
        let cx = StageCx {
            now: Now::from_secs(5),
            lcore: 0,
            snapshot: &self.snap,
        };
        self.node.run(&cx, &mut input, &mut exits, &mut self.pool);
        let mut tx = Vec::new();
        for (port, q) in exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                tx.push((port as u16, p.mbuf.data().to_vec()));
                self.pool.free(p.mbuf);
            }
        }
        let host = exits.host.drain().map(|p| self.pool.free(p.mbuf)).count();
        Run {
            tx,
            host,
            report: self.node.stats().report(),
        }
    }
    fn learned(&self, a: Addr) -> Option<Mac> {
        self.node.stage.cache().borrow().lookup(a, Now::from_secs(5))
    }
}

/// The one frame answered on `port` must be exactly `want`.
fn answered(r: &Run, port: u16, want: &[u8]) {
    assert_eq!(r.host, 0);
    assert_eq!(r.tx.len(), 1, "{:?}", r.report);
    assert_eq!(r.tx[0].0, port);
    let d = decode_checked(&r.tx[0].1);
    assert!(d.is_ok(), "decoder: {d:?}");
    assert!(r.tx[0].1 == want, "{}", rvs_testkit::hex::diff(want, &r.tx[0].1));
}

fn who_has(target: [u8; 4]) -> Vec<u8> {
    Pkt::eth(PEER_MAC, [0xff; 6])
        .arp_request(PEER_MAC, PEER, target)
        .pad_to(60)
        .build()
}

/// RFC 826's reply to `who_has(target)` sent from `mac`.
fn is_at(target: [u8; 4], mac: Mac) -> Vec<u8> {
    Pkt::eth(mac, PEER_MAC)
        .arp_reply(mac, target, PEER_MAC, PEER)
        .pad_to(60)
        .build()
}

#[test]
fn arp_request_for_a_vip_is_answered_and_its_sender_learned() {
    let mut rig = Rig::new();
    let r = rig.run(0, &who_has(VIP));
    answered(&r, 0, &is_at(VIP, PORT0_MAC));
    assert_eq!(rig.learned(Addr::v4(PEER)), Some(PEER_MAC));
    let c = rig.node.stage.counters();
    assert_eq!((c.arp_replied, c.arp_learned, c.arp_to_host), (1, 1, 0));
    // The same request on port 1 is answered with port 1's MAC, on port 1.
    let r = rig.run(1, &who_has(VIP));
    answered(&r, 1, &is_at(VIP, PORT1_MAC));
    // A tagged request gets a tagged answer.
    let tagged = Pkt::eth(PEER_MAC, [0xff; 6])
        .vlan(7)
        .arp_request(PEER_MAC, PEER, VIP)
        .pad_to(64)
        .build();
    let want = Pkt::eth(PORT0_MAC, PEER_MAC)
        .vlan(7)
        .arp_reply(PORT0_MAC, VIP, PEER_MAC, PEER)
        .pad_to(64)
        .build();
    answered(&rig.run(0, &tagged), 0, &want);
}

#[test]
fn arp_request_for_an_interface_address_is_answered() {
    let mut rig = Rig::new();
    answered(&rig.run(0, &who_has(LOCAL)), 0, &is_at(LOCAL, PORT0_MAC));
}

#[test]
fn other_arp_goes_to_the_host_and_teaches_nothing_new() {
    let mut rig = Rig::new();
    let r = rig.run(0, &who_has(OTHER));
    assert_eq!((r.tx.len(), r.host), (0, 1));
    assert_eq!(rig.learned(Addr::v4(PEER)), None, "not for us, not known: not learned");
    // A gratuitous ARP (sender = target) for a VIP: not answered.
    let grat = Pkt::eth(PEER_MAC, [0xff; 6])
        .arp_request(PEER_MAC, VIP, VIP)
        .pad_to(60)
        .build();
    let r = rig.run(0, &grat);
    assert_eq!((r.tx.len(), r.host), (0, 1));
    // Once known, any ARP from the sender refreshes or updates it (RFC 826 merge).
    rig.run(0, &who_has(VIP));
    let moved = [2, 0, 0, 0, 9, 9];
    let reply_elsewhere = Pkt::eth(moved, [0xff; 6])
        .arp_reply(moved, PEER, [2, 0, 0, 0, 7, 7], OTHER)
        .pad_to(60)
        .build();
    let r = rig.run(0, &reply_elsewhere);
    assert_eq!(r.host, 1);
    assert_eq!(rig.learned(Addr::v4(PEER)), Some(moved));
    let c = rig.node.stage.counters();
    assert_eq!((c.arp_to_host, c.arp_replied), (3, 1));
    assert_eq!(r.report.host, 3);
}

#[test]
fn malformed_arp_is_dropped() {
    let mut rig = Rig::new();
    let short = who_has(VIP)[..14 + 20].to_vec();
    let r = rig.run(0, &short);
    assert_eq!(r.report.dropped(ArpDrop::Invalid.name()), 1);
    // A broadcast sender MAC.
    let bad = Pkt::eth(PEER_MAC, [0xff; 6])
        .arp_request([0xff; 6], PEER, VIP)
        .pad_to(60)
        .build();
    let r = rig.run(0, &bad);
    assert_eq!(r.report.dropped(ArpDrop::Invalid.name()), 2);
    assert!(r.tx.is_empty());
    assert_eq!(rig.pool.available(), 16);
}

#[test]
fn echo_to_a_vip_is_answered_with_exact_bytes() {
    let mut rig = Rig::new();
    let data = b"abcdefghijklmnopqrstuvwabcdefghi";
    let req = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP)
        .ttl(57)
        .id(0x1234)
        .df()
        .icmp_echo_request(0x4242, 7)
        .payload(data)
        .build();
    let want = Pkt::eth(PORT0_MAC, PEER_MAC)
        .ipv4(VIP, CLIENT)
        .ttl(64)
        .id(0x1234)
        .df()
        .icmp_echo_reply(0x4242, 7)
        .payload(data)
        .build();
    answered(&rig.run(0, &req), 0, &want);
    // To an interface address as well; padding after the datagram is gone (parse trims it).
    let req = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, LOCAL)
        .icmp_echo_request(1, 2)
        .pad_to(60)
        .build();
    let want = Pkt::eth(PORT0_MAC, PEER_MAC)
        .ipv4(LOCAL, CLIENT)
        .icmp_echo_request(1, 2)
        .icmp_echo_reply(1, 2)
        .build();
    let mut p = Packet::new(rig.pool.alloc_with(&req).unwrap());
    let mut trimmed = req.clone();
    if let Ok(rvs_parse::Parsed::Ip { ip_end }) = rvs_parse::parse(&req, &mut p.meta, true) {
        trimmed.truncate(ip_end);
    }
    rig.pool.free(p.mbuf);
    answered(&rig.run(0, &trimmed), 0, &want);
    assert_eq!(rig.node.stage.counters().echo_replied, 2);
}

#[test]
fn other_icmp_goes_to_the_host_and_bad_echo_is_dropped() {
    let mut rig = Rig::new();
    let to_other = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, OTHER)
        .icmp_echo_request(1, 1)
        .build();
    let reply = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP)
        .icmp_echo_reply(1, 1)
        .build();
    let unreach = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP)
        .icmp_dest_unreach(3, &[0x45, 0, 0, 20])
        .build();
    for f in [to_other, reply, unreach] {
        let r = rig.run(0, &f);
        assert_eq!((r.tx.len(), r.host), (0, 1));
    }
    assert_eq!(rig.node.stage.counters().icmp_to_host, 3);
    let bad = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP)
        .icmp_echo_request(1, 1)
        .bad_l4_checksum()
        .build();
    let r = rig.run(0, &bad);
    assert_eq!(r.report.dropped(ArpDrop::BadChecksum.name()), 1);
}

#[test]
fn echo6_to_a_vip_is_answered_with_exact_bytes() {
    let mut rig = Rig::new();
    let req = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, V6)
        .hop_limit(50)
        .icmpv6_echo_request(0xbeef, 3)
        .payload(b"ping6 payload")
        .build();
    let want = Pkt::eth(PORT0_MAC, PEER_MAC)
        .ipv6(V6, C6)
        .hop_limit(64)
        .icmpv6_echo_reply(0xbeef, 3)
        .payload(b"ping6 payload")
        .build();
    answered(&rig.run(0, &req), 0, &want);
    assert_eq!(rig.node.stage.counters().echo6_replied, 1);
}

fn nd_body(target: [u8; 16], opt: u8, mac: Mac) -> Vec<u8> {
    let mut b = target.to_vec();
    b.extend_from_slice(&[opt, 1]);
    b.extend_from_slice(&mac);
    b
}

#[test]
fn solicitation_for_a_vip_is_advertised_and_its_sender_learned() {
    let mut rig = Rig::new();
    let sn: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 1, 0];
    let ns = Pkt::eth(PEER_MAC, [0x33, 0x33, 0xff, 0, 1, 0])
        .ipv6(C6, sn)
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &nd_body(V6, 1, PEER_MAC))
        .build();
    // RFC 4861 7.2.4: from the target, to the solicitor, S and O set, our MAC as target option.
    let na = Pkt::eth(PORT0_MAC, PEER_MAC)
        .ipv6(V6, C6)
        .hop_limit(255)
        .icmp_raw(true, 136, 0, [0x60, 0, 0, 0], &nd_body(V6, 2, PORT0_MAC))
        .build();
    answered(&rig.run(0, &ns), 0, &na);
    assert_eq!(rig.learned(Addr::v6(C6)), Some(PEER_MAC));
    // Duplicate address detection (unspecified source, no option): to all-nodes, S clear.
    let dad = Pkt::eth(PEER_MAC, [0x33, 0x33, 0xff, 0, 0, 1])
        .ipv6([0; 16], [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1])
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &LOCAL6)
        .build();
    let all_nodes = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let na = Pkt::eth(PORT0_MAC, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6(LOCAL6, all_nodes)
        .hop_limit(255)
        .icmp_raw(true, 136, 0, [0x20, 0, 0, 0], &nd_body(LOCAL6, 2, PORT0_MAC))
        .build();
    answered(&rig.run(0, &dad), 0, &na);
    assert_eq!(rig.node.stage.counters().nd_replied, 2);
}

#[test]
fn nd_checks_and_other_targets() {
    let mut rig = Rig::new();
    // Not for us: to the host, sender not learned.
    let other = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77];
    let ns = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, other)
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &nd_body(other, 1, PEER_MAC))
        .build();
    let r = rig.run(0, &ns);
    assert_eq!((r.tx.len(), r.host), (0, 1));
    assert_eq!(rig.learned(Addr::v6(C6)), None);
    // Hop limit below 255 (RFC 4861 7.1.1: may have been forwarded): dropped.
    let forwarded = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, V6)
        .hop_limit(254)
        .icmp_raw(true, 135, 0, [0; 4], &nd_body(V6, 1, PEER_MAC))
        .build();
    // A zero-length option.
    let mut body = nd_body(V6, 1, PEER_MAC);
    body[17] = 0;
    let zero_opt = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, V6)
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &body)
        .build();
    let bad_ck = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, V6)
        .hop_limit(255)
        .icmp_raw(true, 135, 0, [0; 4], &nd_body(V6, 1, PEER_MAC))
        .bad_l4_checksum()
        .build();
    for f in [forwarded, zero_opt, bad_ck] {
        let r = rig.run(0, &f);
        assert!(r.tx.is_empty());
    }
    assert_eq!(rig.node.stats().report().dropped(ArpDrop::Invalid.name()), 3);
    // An unsolicited advertisement does not create an entry...
    let na = Pkt::eth(PEER_MAC, PORT0_MAC)
        .ipv6(C6, LOCAL6)
        .hop_limit(255)
        .icmp_raw(true, 136, 0, [0x20, 0, 0, 0], &nd_body(C6, 2, PEER_MAC))
        .build();
    assert_eq!(rig.run(0, &na).host, 1);
    assert_eq!(rig.learned(Addr::v6(C6)), None);
    // ... but answers a resolution in progress.
    assert!(rig.node.stage.cache().borrow_mut().want(Addr::v6(C6)));
    rig.run(0, &na);
    assert_eq!(rig.learned(Addr::v6(C6)), Some(PEER_MAC));
    assert_eq!(
        nd_lladdr(&[1, 1, 1, 2, 3, 4, 5, 6, 2, 1, 9, 9, 9, 9, 9, 9], 2),
        Some(Some([9; 6]))
    );
    assert_eq!(nd_lladdr(&[1, 2, 0, 0], 1), None);
    assert_eq!(nd_lladdr(&[], 1), Some(None));
}
