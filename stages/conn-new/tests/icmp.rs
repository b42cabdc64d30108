//! ICMP echo through the new-connection path (parse, lookup, schedule, conn-new), DPVS's
//! `icmp_conn_sched`: an echo request to a VIP with an ICMP service (port 0) creates a
//! connection keyed by the echo identifier; FNAT gives it a local port as the identifier
//! toward the real server, NAT keeps the client's; the reply is found outbound; ICMP's one
//! state with the service's `icmp` timeout; expiry gives the local port back.

mod common;

use std::sync::Arc;

use common::{Lcore, RrFactory};
use rvs_conn::SaPool;
use rvs_conn::state::NORMAL;
use rvs_core::addr::{Addr, Proto};
use rvs_core::meta::Dir;
use rvs_core::service::{Defence, Dest, DestId, Forward, Service, ServiceKey, Snapshot, Timeouts};
use rvs_core::time::Now;
use rvs_testkit::Pkt;
use rvs_testkit::builder::mac;

const VIP: [u8; 4] = [198, 18, 0, 100];
const LADDR: [u8; 4] = [198, 18, 1, 1];
const RS: [u8; 4] = [198, 18, 1, 11];
const CLIENT: [u8; 4] = [198, 18, 5, 5];

fn snapshot(fwd: Forward) -> Snapshot {
    let key = ServiceKey {
        proto: Proto::Icmp,
        vip: Addr::v4(VIP),
        port: 0,
    };
    let mut s = Service::new(key, fwd, Arc::new(RrFactory));
    let mut d = Dest::new(DestId(3), Addr::v4(RS), 0);
    d.fwd = fwd;
    s.dests = vec![d].into();
    s.local_addrs = vec![Addr::v4(LADDR)].into();
    Snapshot::build(1, 2, Defence::default(), vec![s]).unwrap()
}

fn ping(id: u16, seq: u16) -> Vec<u8> {
    Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, VIP)
        .icmp_echo_request(id, seq)
        .payload(b"ping")
        .build()
}

#[test]
fn fnat_echo_connection_takes_a_local_port_as_identifier() {
    let snap = snapshot(Forward::Fnat);
    let mut l = Lcore::new(1, 2, None);
    // Two requests of one identifier in one vector: one connection.
    let out = l.send(&snap, Now::from_secs(0), &[ping(0x1234, 1), ping(0x1234, 2)]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].conn, out[1].conn);
    let id = out[0].conn;
    let lport = {
        let conns = l.conns.borrow();
        let c = conns.conn(id).unwrap();
        assert_eq!(c.in_tuple.proto, Proto::Icmp);
        assert_eq!((c.cport(), c.vport()), (0x1234, 0x1234), "the identifier is both ports");
        assert_eq!((c.laddr(), c.daddr()), (Addr::v4(LADDR), Addr::v4(RS)));
        assert_eq!(SaPool::owner_lcore(c.lport(), 2), 1, "a local port of this lcore");
        assert_eq!(
            c.dport(),
            c.lport(),
            "the real server answers with the identifier it got"
        );
        assert_eq!((c.state, c.timeout_secs), (NORMAL, Timeouts::DPVS.icmp));
        assert_eq!(Timeouts::DPVS.icmp, 300);
        c.lport()
    };
    // The real server's reply, identifier = the local port, is found outbound.
    let reply = Pkt::eth(mac(3), mac(2))
        .ipv4(RS, LADDR)
        .icmp_echo_reply(lport, 1)
        .payload(b"ping")
        .build();
    let r = l.send(&snap, Now::from_secs(10), &[reply]);
    assert_eq!((r[0].conn, r[0].dir), (id, Dir::Out));
    // Expiry after 300 s of silence gives the port back.
    assert_eq!(l.tick(&snap, Now::from_secs(309)), 0);
    assert_eq!(l.tick(&snap, Now::from_secs(312)), 1);
    let mut conns = l.conns.borrow_mut();
    assert!(conns.is_empty());
    let owned = conns.ports().owned(Addr::v4(LADDR));
    assert_eq!(conns.ports().available(Addr::v4(LADDR)), owned);
}

#[test]
fn nat_echo_keeps_the_client_identifier_and_other_messages_do_not_create() {
    let snap = snapshot(Forward::Nat);
    let mut l = Lcore::new(0, 1, None);
    let reply_to_vip = Pkt::eth(mac(1), mac(2)).ipv4(CLIENT, VIP).icmp_echo_reply(9, 1).build();
    let out = l.send(&snap, Now::from_secs(0), &[ping(7, 1), ping(8, 1), reply_to_vip]);
    // Two identifiers, two connections; the stray echo reply (its own identifier) creates
    // nothing and goes on to the local stage (wired to the output here).
    assert_eq!(out.len(), 3);
    let (made, local): (Vec<&rvs_core::meta::PacketMeta>, Vec<_>) =
        out.iter().partition(|m| m.conn != rvs_core::meta::NO_CONN);
    assert_eq!((made.len(), local.len()), (2, 1));
    assert_eq!(local[0].icmp_type, 0);
    assert_eq!(l.schedule().counters().local_icmp, 1);
    assert_ne!(made[0].conn, made[1].conn);
    let conns = l.conns.borrow();
    let c = conns.conn(made[1].conn).unwrap();
    assert_eq!((c.laddr(), c.lport(), c.dport()), (Addr::v4(CLIENT), 8, 8));
    assert_eq!(conns.lookup(&c.out_tuple), Some((made[1].conn, Dir::Out)));
    assert_eq!(l.conn_new().counters().created, 2);
}
