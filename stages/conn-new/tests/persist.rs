//! Persistence end to end over the new-connection path (parse, lookup, schedule, conn-new),
//! with packets from the test kit and one template table shared by two lcores.

mod common;

use std::sync::Arc;

use common::{Lcore, RrFactory};
use rvs_conn::{NO_TEMPLATE, Templates};
use rvs_core::addr::{Addr, Proto};
use rvs_core::meta::Dir;
use rvs_core::service::{Defence, Dest, DestId, Forward, Persistence, Service, ServiceKey, Snapshot};
use rvs_core::time::Now;
use rvs_testkit::Pkt;
use rvs_testkit::builder::{ACK, SYN, mac};

const VIP: [u8; 4] = [198, 18, 0, 100];
const P24: Persistence = Persistence {
    timeout_secs: 20,
    netmask_v4: 24,
    netmask_v6: 64,
};

fn snapshot(generation: u64, proto: Proto, weights: &[u32], p: Option<Persistence>) -> Snapshot {
    let key = ServiceKey {
        proto,
        vip: Addr::v4(VIP),
        port: 80,
    };
    let mut s = Service::new(key, Forward::Nat, Arc::new(RrFactory));
    s.dests = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut d = Dest::new(DestId(i as u32), Addr::v4([198, 18, 1, 10 + i as u8]), 8080);
            d.fwd = Forward::Nat;
            d.weight = *w;
            d
        })
        .collect();
    s.persistence = p;
    s.timeouts.udp = 10;
    Snapshot::build(generation, 2, Defence::default(), vec![s]).unwrap()
}

fn syn(client: [u8; 4], sport: u16) -> Vec<u8> {
    Pkt::eth(mac(1), mac(2))
        .ipv4(client, VIP)
        .tcp(sport, 80)
        .flags(SYN)
        .seq(1)
        .build()
}

fn udp(client: [u8; 4], sport: u16) -> Vec<u8> {
    Pkt::eth(mac(1), mac(2))
        .ipv4(client, VIP)
        .udp(sport, 80)
        .payload(b"hello")
        .build()
}

/// The real server of the connection a packet went out on.
fn rs(l: &Lcore, conn: u32) -> Addr {
    l.conns.borrow().conn(conn).unwrap().daddr()
}

fn rs_of(i: u8) -> Addr {
    Addr::v4([198, 18, 1, 10 + i])
}

#[test]
fn netmask_groups_clients_onto_one_destination() {
    let t = Arc::new(Templates::new(64, 8, 1));
    let snap = snapshot(1, Proto::Tcp, &[1, 1, 1], Some(P24));
    let (mut l0, mut l1) = (Lcore::new(0, 2, Some(&t)), Lcore::new(1, 2, Some(&t)));
    // Lcore 0: 198.18.5.5 is scheduled (rr's first pick, destination 0).
    let a = l0.send(&snap, Now::from_secs(1), &[syn([198, 18, 5, 5], 1000)]);
    // Lcore 1: first another group (rr's first pick there is destination 0), then 198.18.5.77,
    // whose own rr turn would be destination 1, follows the 198.18.5.0/24 template instead.
    let b = l1.send(
        &snap,
        Now::from_secs(2),
        &[syn([198, 18, 7, 1], 2000), syn([198, 18, 5, 77], 2001)],
    );
    assert_eq!((a.len(), b.len()), (1, 2));
    assert_eq!(rs(&l0, a[0].conn), rs_of(0));
    assert_eq!(rs(&l1, b[0].conn), rs_of(0));
    assert_eq!(rs(&l1, b[1].conn), rs_of(0), "same /24 as 198.18.5.5: same real server");
    assert_eq!(a[0].template, b[1].template);
    assert_ne!(a[0].template, b[0].template);
    let s1 = l1.schedule().counters();
    assert_eq!((s1.persist_new, s1.persist_hit), (1, 1));
    // The template counts the connections of both lcores; each lcore counts its own
    // templates persistent.
    assert_eq!(t.get(a[0].template).unwrap().conns, 2);
    assert_eq!(
        (l0.loads.get(DestId(0)).persistent, l1.loads.get(DestId(0)).persistent),
        (1, 1)
    );
    assert_eq!(l1.conn_new().counters().template_attached, 2);
    // The handshake goes on through lookup (hits), not through schedule again.
    let ack = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 5, 77], VIP)
        .tcp(2001, 80)
        .flags(ACK)
        .build();
    let h = l1.send(&snap, Now::from_secs(3), &[ack]);
    assert_eq!((h[0].conn, h[0].dir, h[0].template), (b[1].conn, Dir::In, NO_TEMPLATE));
}

#[test]
fn template_expires_only_after_its_last_connection() {
    let t = Arc::new(Templates::new(64, 8, 1));
    // UDP connections live 10 s after their last datagram; templates 20 s.
    let snap = snapshot(1, Proto::Udp, &[1, 1], Some(P24));
    let (mut l0, mut l1) = (Lcore::new(0, 2, Some(&t)), Lcore::new(1, 2, Some(&t)));
    let a = l0.send(&snap, Now::from_secs(0), &[udp([198, 18, 5, 5], 1)]);
    let h = a[0].template;
    let b = l1.send(&snap, Now::from_secs(5), &[udp([198, 18, 5, 6], 2)]);
    assert_eq!((b[0].template, rs(&l1, b[0].conn)), (h, rs_of(0)));
    // Lcore 0's connection goes at 10 s (+ jitter); lcore 1's client keeps talking.
    assert_eq!(l0.tick(&snap, Now::from_secs(11)), 1);
    assert_eq!(t.get(h).unwrap().conns, 1);
    for s in [14, 23, 32, 41] {
        l1.send(&snap, Now::from_secs(s), &[udp([198, 18, 5, 6], 2)]);
        // Long past the template's own 20 s: still there, because a connection uses it.
        assert_eq!(l0.tick(&snap, Now::from_secs(s)), 0);
        assert!(t.get(h).is_some(), "at {s} s");
        assert_eq!(l0.loads.get(DestId(0)).persistent, 1);
    }
    // The last datagram was at 41 s: the connection expires by 52 s, then the template 20 s
    // after that, not before.
    assert_eq!(l1.tick(&snap, Now::from_secs(52)), 1);
    assert_eq!(t.get(h).unwrap().conns, 0);
    l0.tick(&snap, Now::from_secs(71));
    assert!(t.get(h).is_some());
    l0.tick(&snap, Now::from_secs(72));
    assert!(t.get(h).is_none());
    assert_eq!(l0.loads.get(DestId(0)).persistent, 0);
    assert_eq!(l0.schedule().counters().persist_expired, 1);
    // The group is scheduled afresh: lcore 0's rr moves on to destination 1.
    let c = l0.send(&snap, Now::from_secs(73), &[udp([198, 18, 5, 7], 3)]);
    assert_eq!(rs(&l0, c[0].conn), rs_of(1));
    assert_ne!(c[0].template, h);
}

#[test]
fn drained_destination_gets_a_fresh_pick() {
    let t = Arc::new(Templates::new(64, 8, 1));
    let mut l = Lcore::new(0, 1, Some(&t));
    let snap = snapshot(1, Proto::Tcp, &[1, 1], Some(P24));
    let a = l.send(&snap, Now::from_secs(1), &[syn([198, 18, 5, 5], 1000)]);
    assert_eq!(rs(&l, a[0].conn), rs_of(0));
    // Destination 0 drained: the existing connection keeps it, a new one from the same
    // group is re-picked onto destination 1 under a new template.
    let drained = snapshot(2, Proto::Tcp, &[0, 1], Some(P24));
    let ack = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 5, 5], VIP)
        .tcp(1000, 80)
        .flags(ACK)
        .build();
    let out = l.send(&drained, Now::from_secs(2), &[ack, syn([198, 18, 5, 9], 1001)]);
    assert_eq!(out[0].conn, a[0].conn);
    assert_eq!(rs(&l, out[0].conn), rs_of(0));
    assert_eq!(rs(&l, out[1].conn), rs_of(1));
    assert_ne!(out[1].template, a[0].template);
    assert_eq!(l.schedule().counters().persist_repick, 1);
    // The dropped template still counts its connection until that goes.
    assert_eq!(t.get(a[0].template).unwrap().conns, 1);
    assert_eq!(
        (l.loads.get(DestId(0)).persistent, l.loads.get(DestId(1)).persistent),
        (1, 1)
    );
}

#[test]
fn full_template_table_still_forwards() {
    let t = Arc::new(Templates::new(1, 1, 1));
    let mut l = Lcore::new(0, 1, Some(&t));
    let snap = snapshot(1, Proto::Tcp, &[1, 1], Some(P24));
    let out = l.send(
        &snap,
        Now::from_secs(1),
        &[
            syn([198, 18, 5, 5], 1),
            syn([198, 18, 6, 5], 2),
            syn([198, 18, 5, 6], 3),
        ],
    );
    assert_eq!(out.len(), 3, "every connection is made");
    assert_eq!(out[1].template, NO_TEMPLATE);
    assert_eq!(out[2].template, out[0].template);
    assert_eq!(l.schedule().counters().persist_no_template, 1);
    assert_eq!(t.stats.full.load(std::sync::atomic::Ordering::Relaxed), 1);
    let c = l.conn_new().counters();
    assert_eq!((c.created, c.template_attached), (3, 2));
}
