//! UDP through the new-connection path (parse, lookup, schedule, conn-new): `udp_conn_sched`
//! (any datagram to a service creates), FNAT local ports for UDP, no TCP sequence delta, UDP's
//! one state with the service's `udp` timeout, replies found in the outbound direction, and
//! expiry giving back the local port and the destination's counters.

mod common;

use std::sync::Arc;

use common::{Lcore, RrFactory};
use rvs_conn::SaPool;
use rvs_conn::state::NORMAL;
use rvs_core::addr::{Addr, Proto};
use rvs_core::meta::Dir;
use rvs_core::service::{Defence, Dest, DestId, Forward, Service, ServiceKey, Snapshot};
use rvs_core::time::Now;
use rvs_testkit::Pkt;
use rvs_testkit::builder::mac;

const VIP: [u8; 4] = [198, 18, 0, 100];
const LADDR: [u8; 4] = [198, 18, 1, 1];
const RS: [u8; 4] = [198, 18, 1, 11];
const CLIENT: [u8; 4] = [198, 18, 5, 5];
const UDP_TIMEOUT: u32 = 40;

fn snapshot(fwd: Forward) -> Snapshot {
    let key = ServiceKey {
        proto: Proto::Udp,
        vip: Addr::v4(VIP),
        port: 53,
    };
    let mut s = Service::new(key, fwd, Arc::new(RrFactory));
    let mut d = Dest::new(DestId(3), Addr::v4(RS), if fwd.keeps_port() { 53 } else { 5353 });
    d.fwd = fwd;
    s.dests = vec![d].into();
    s.local_addrs = vec![Addr::v4(LADDR)].into();
    s.timeouts.udp = UDP_TIMEOUT;
    Snapshot::build(1, 2, Defence::default(), vec![s]).unwrap()
}

fn query(sport: u16, dport: u16) -> Vec<u8> {
    Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, VIP)
        .udp(sport, dport)
        .payload(b"query")
        .build()
}

#[test]
fn fnat_udp_connection_lives_and_dies_by_the_udp_timeout() {
    let snap = snapshot(Forward::Fnat);
    let mut l = Lcore::new(1, 2, None);
    // Two datagrams of one flow in one vector: one connection, the second joins it.
    let out = l.send(&snap, Now::from_secs(0), &[query(40000, 53), query(40000, 53)]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].conn, out[1].conn);
    let id = out[0].conn;
    let (lport, laddr) = {
        let conns = l.conns.borrow();
        let c = conns.conn(id).unwrap();
        assert_eq!(
            (c.caddr(), c.cport(), c.vaddr(), c.vport()),
            (Addr::v4(CLIENT), 40000, Addr::v4(VIP), 53)
        );
        assert_eq!((c.daddr(), c.dport()), (Addr::v4(RS), 5353));
        assert_eq!(c.laddr(), Addr::v4(LADDR));
        assert!(c.lport() >= 1025);
        assert_eq!(SaPool::owner_lcore(c.lport(), 2), 1, "a local port of this lcore");
        assert_eq!((c.fnat_seq_delta, c.fnat_isn), (0, 0), "no TCP sequence delta for UDP");
        assert_eq!((c.state, c.timeout_secs), (NORMAL, UDP_TIMEOUT));
        assert!(c.expires >= Now::from_secs(40) && c.expires < Now::from_secs(41));
        (c.lport(), c.laddr())
    };
    // UDP connections count inactive (IPVS), and stay so.
    let load = l.loads.get(DestId(3));
    assert_eq!((load.active, load.inactive), (0, 1));
    assert_eq!(l.conn_new().counters().created, 1);

    // The real server's answer to the local address and port is found outbound.
    let reply = Pkt::eth(mac(3), mac(2))
        .ipv4(RS, LADDR)
        .udp(5353, lport)
        .payload(b"answer")
        .build();
    let r = l.send(&snap, Now::from_secs(30), &[reply]);
    assert_eq!((r[0].conn, r[0].dir), (id, Dir::Out));
    // The client's next datagram at 35 s is found inbound and pushes the expiry to 75 s.
    let q = l.send(&snap, Now::from_secs(35), &[query(40000, 53)]);
    assert_eq!((q[0].conn, q[0].dir), (id, Dir::In));
    assert_eq!(l.lookup().counters().hit_out, 1);
    assert_eq!(l.tick(&snap, Now::from_secs(74)), 0);
    assert_eq!(l.tick(&snap, Now::from_secs(76)), 1);
    // Expiry gave back the port and the count.
    let mut conns = l.conns.borrow_mut();
    assert!(conns.is_empty());
    let owned = conns.ports().owned(laddr);
    assert_eq!(conns.ports().available(laddr), owned);
    assert_eq!(l.loads.get(DestId(3)).inactive, 0);
}

#[test]
fn nat_udp_and_datagrams_without_a_service() {
    let snap = snapshot(Forward::Nat);
    let mut l = Lcore::new(0, 1, None);
    let out = l.send(
        &snap,
        Now::from_secs(0),
        &[query(1000, 53), query(1001, 53), query(1002, 54)],
    );
    // Each flow to the service makes its own connection; port 54 has no UDP service and goes
    // to the host path (defence_udp_drop is off).
    assert_eq!(out.len(), 2);
    assert_ne!(out[0].conn, out[1].conn);
    assert_eq!(l.host(), 1);
    let conns = l.conns.borrow();
    let c = conns.conn(out[1].conn).unwrap();
    // NAT: the reply goes back to the client's own address and port.
    assert_eq!((c.laddr(), c.lport()), (Addr::v4(CLIENT), 1001));
    assert_eq!(conns.lookup(&c.out_tuple), Some((out[1].conn, Dir::Out)));
    assert_eq!(l.loads.get(DestId(3)).inactive, 2);
}
