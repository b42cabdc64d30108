//! ICMP/ICMPv6 errors about a connection's packets, translated with their quoted packet:
//! outer and inner addresses, ports, the FNAT sequence shift, inner IP and L4 checksums (the
//! decoder verifies the inner L4 checksum whenever the whole datagram is quoted).

use super::common::*;
use super::*;
use rvs_core::meta::PacketMeta;

const ROUTER: [u8; 4] = [203, 0, 113, 1];

/// What lookup sets for an ICMP error: the flag and the quoted headers' offsets.
fn mark(v6: bool) -> impl Fn(&mut PacketMeta) {
    move |m: &mut PacketMeta| {
        m.icmp_err = true;
        m.inner_l3_off = m.l4_off + 8;
        m.inner_l4_off = m.inner_l3_off + if v6 { 40 } else { 20 };
    }
}

/// FNAT: the quoted packet the balancer sent the real server (seq shifted).
fn to_rs_segment() -> Pkt {
    Pkt::l3()
        .ipv4(LADDR, RS)
        .ttl(63)
        .df()
        .tcp(LPORT, RPORT)
        .flags(ACK | PSH)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .payload(b"a request")
}

/// What the client sent (what it must see quoted).
fn client_segment() -> Pkt {
    Pkt::l3()
        .ipv4(CLIENT, VIP)
        .ttl(63)
        .df()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .payload(b"a request")
}

#[test]
fn fnat_frag_needed_from_the_server_side_reaches_the_client() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // The whole datagram quoted: the inner TCP checksum must verify after translation.
    let quoted = to_rs_segment().build();
    let err = from_rs(LADDR).icmp_frag_needed(1400, &quoted).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let want = to_client().icmp_frag_needed(1400, &client_segment().build()).build();
    check(&sent, 1, &want);
    assert_eq!(h.node.stage.counters().icmp_err, 1);
    // Only the first 8 bytes of TCP quoted (RFC 792): ports and seq still translated.
    let err = from_rs(LADDR).icmp_frag_needed(1400, &quoted[..28]).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let want = to_client()
        .icmp_frag_needed(1400, &client_segment().build()[..28])
        .build();
    check(&sent, 1, &want);
}

#[test]
fn fnat_error_from_the_client_side_reaches_the_server() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // A router near the client: the balancer's reply VIP -> client did not fit.
    let sent_to_client = Pkt::l3()
        .ipv4(VIP, CLIENT)
        .ttl(63)
        .tcp(VPORT, CPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(CISN + 1)
        .payload(&[9; 40])
        .build();
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(ROUTER, VIP)
        .icmp_frag_needed(1280, &sent_to_client)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(false));
    // The server sees its own segment: RS -> local address, ack shifted forward again.
    let server_sent = Pkt::l3()
        .ipv4(RS, LADDR)
        .ttl(63)
        .tcp(RPORT, LPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack((CISN + 1).wrapping_add(DELTA))
        .payload(&[9; 40])
        .build();
    let want = to_rs(LADDR).icmp_frag_needed(1280, &server_sent).build();
    check(&sent, 0, &want);
}

#[test]
fn nat_errors_both_ways_and_udp() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Nat, Proto::Tcp, 0));
    // From the client side: the outer source stays the router's (as IPVS).
    let q = Pkt::l3().ipv4(VIP, CLIENT).ttl(63).tcp(VPORT, CPORT).flags(ACK).build();
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(ROUTER, VIP)
        .icmp_time_exceeded(0, &q)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(false));
    let q2 = Pkt::l3().ipv4(RS, CLIENT).ttl(63).tcp(RPORT, CPORT).flags(ACK).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(ROUTER, RS)
        .ttl(63)
        .icmp_time_exceeded(0, &q2)
        .build();
    check(&sent, 0, &want);
    // From the server side: outer source becomes the VIP.
    let q = Pkt::l3().ipv4(CLIENT, RS).ttl(63).tcp(CPORT, RPORT).flags(SYN).build();
    let err = from_rs(CLIENT).icmp_dest_unreach(3, &q).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let q2 = Pkt::l3().ipv4(CLIENT, VIP).ttl(63).tcp(CPORT, VPORT).flags(SYN).build();
    let want = to_client().icmp_dest_unreach(3, &q2).build();
    check(&sent, 1, &want);
    // UDP, FNAT, port unreachable from the server; a zero UDP checksum stays zero.
    let uid = h.add(Conn {
        in_tuple: Tuple {
            sport: 5,
            ..in_tuple(Proto::Udp)
        },
        ..conn(Forward::Fnat, Proto::Udp, 0)
    });
    let c = h.conns.borrow().conn(uid).unwrap().clone();
    let lport = c.lport();
    for ck in [None, Some(0)] {
        let mk = |p: Pkt| match ck {
            Some(v) => p.l4_checksum(v),
            None => p,
        };
        let q = mk(Pkt::l3().ipv4(LADDR, RS).ttl(63).udp(lport, RPORT).payload(b"dns?")).build();
        let err = from_rs(LADDR).icmp_dest_unreach(3, &q).build();
        let (sent, _) = h.run_meta(&err, uid, Dir::Out, mark(false));
        let q2 = mk(Pkt::l3().ipv4(CLIENT, VIP).ttl(63).udp(5, VPORT).payload(b"dns?")).build();
        let want = to_client().icmp_dest_unreach(3, &q2).build();
        check(&sent, 1, &want);
    }
}

#[test]
fn ipv6_packet_too_big_through_fnat() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(
        Forward::Fnat,
        Proto::Tcp,
        a6(C6),
        a6(VIP6),
        a6(RS6),
        a6(L6),
        DELTA,
    ));
    let q = Pkt::l3()
        .ipv6(L6, RS6)
        .hop_limit(63)
        .tcp(LPORT, RPORT)
        .flags(ACK)
        .seq((CISN + 1).wrapping_add(DELTA))
        .payload(&[1; 30])
        .build();
    let err = from_rs6(L6).icmpv6_packet_too_big(1280, &q).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(true));
    let q2 = Pkt::l3()
        .ipv6(C6, VIP6)
        .hop_limit(63)
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN + 1)
        .payload(&[1; 30])
        .build();
    let want = to_client6().icmpv6_packet_too_big(1280, &q2).build();
    check(&sent, 1, &want);
}

#[test]
fn errors_across_nat64_are_not_translated_yet() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(
        Forward::Fnat,
        Proto::Tcp,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
        DELTA,
    ));
    let q = Pkt::l3().ipv4(LADDR, RS).tcp(LPORT, RPORT).flags(ACK).build();
    let err = from_rs(LADDR).icmp_frag_needed(1400, &q).build();
    let (sent, report) = h.run_meta(&err, id, Dir::Out, mark(false));
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::NotSupported.name()), 1);
}
