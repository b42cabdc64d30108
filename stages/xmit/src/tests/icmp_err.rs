//! ICMP/ICMPv6 errors about a connection's packets, translated with their quoted packet:
//! outer and inner addresses, ports, the FNAT sequence shift, inner IP and L4 checksums (the
//! decoder verifies the inner L4 checksum whenever the whole datagram is quoted); across NAT64
//! (RFC 7915 4.2 / 5.2); and ICMP echo forwarded through a connection (NAT, FNAT, SNAT,
//! IPv6, NAT64) with errors quoting it.

use super::common::*;
use super::*;
use rvs_core::meta::PacketMeta;
use std::net::Ipv6Addr;

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

/// The echo identifier the client uses.
const ECHO_ID: u16 = 0x1234;

/// An ICMP (or ICMPv6) echo connection as conn-new makes it: both ports of each tuple are the
/// identifier, the client's on the client side, the local port (FNAT, SNAT) or the client's
/// (NAT) on the server side.
fn echo_conn(fwd: Forward, client: Addr, vip: Addr, rs: Addr, l: Addr) -> Conn {
    let proto = if client.is_v4() { Proto::Icmp } else { Proto::Icmp6 };
    let inb = Tuple {
        proto,
        saddr: client,
        sport: ECHO_ID,
        daddr: vip,
        dport: ECHO_ID,
    };
    let lport = if matches!(fwd, Forward::Fnat | Forward::Snat) {
        LPORT
    } else {
        ECHO_ID
    };
    let mut out = Conn::out_tuple_for(fwd, &inb, rs, lport, l, lport);
    out.proto = if rs.is_v4() { Proto::Icmp } else { Proto::Icmp6 };
    Conn {
        in_tuple: inb,
        out_tuple: out,
        fwd,
        ..Conn::default()
    }
}

const PING: &[u8] = b"0123456789abcdef ping payload";

#[test]
fn fnat_echo_both_ways_translates_the_identifier() {
    let mut h = Harness::new(l2());
    let id = h.add(echo_conn(
        Forward::Fnat,
        Addr::v4(CLIENT),
        Addr::v4(VIP),
        Addr::v4(RS),
        Addr::v4(LADDR),
    ));
    let req = from_client().icmp_echo_request(ECHO_ID, 7).payload(PING).build();
    let want = to_rs(LADDR).icmp_echo_request(LPORT, 7).payload(PING).build();
    h.expect(req, id, Dir::In, 0, want);
    let rep = from_rs(LADDR).icmp_echo_reply(LPORT, 7).payload(PING).build();
    let want = to_client().icmp_echo_reply(ECHO_ID, 7).payload(PING).build();
    h.expect(rep, id, Dir::Out, 1, want);
    let c = h.node.stage.counters();
    assert_eq!((c.fnat_in, c.fnat_out, c.icmp_err), (1, 1, 0));
}

#[test]
fn nat_echo_keeps_the_identifier() {
    let mut h = Harness::new(l2());
    let id = h.add(echo_conn(
        Forward::Nat,
        Addr::v4(CLIENT),
        Addr::v4(VIP),
        Addr::v4(RS),
        Addr::v4(CLIENT),
    ));
    let req = from_client().icmp_echo_request(ECHO_ID, 1).payload(PING).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(CLIENT, RS)
        .ttl(63)
        .icmp_echo_request(ECHO_ID, 1)
        .payload(PING)
        .build();
    h.expect(req, id, Dir::In, 0, want);
    let rep = from_rs(CLIENT).icmp_echo_reply(ECHO_ID, 1).payload(PING).build();
    let want = to_client().icmp_echo_reply(ECHO_ID, 1).payload(PING).build();
    h.expect(rep, id, Dir::Out, 1, want);
}

#[test]
fn snat_echo_goes_out_with_a_local_identifier_and_comes_back() {
    let mut h = Harness::new(l2_dual());
    let (host, far, wan) = ([198, 18, 1, 50], [203, 0, 113, 7], [198, 18, 2, 1]);
    let id = h.add(echo_conn(
        Forward::Snat,
        Addr::v4(host),
        Addr::v4(far),
        Addr::v4(far),
        Addr::v4(wan),
    ));
    let host_mac = [2, 0, 0, 0, 1, 0x50];
    let req = Pkt::eth(host_mac, PORT0_MAC)
        .ipv4(host, far)
        .icmp_echo_request(ECHO_ID, 3)
        .payload(PING)
        .build();
    let want = Pkt::eth(PORT1_MAC, GW_MAC)
        .ipv4(wan, far)
        .ttl(63)
        .icmp_echo_request(LPORT, 3)
        .payload(PING)
        .build();
    h.expect(req, id, Dir::In, 1, want);
    let rep = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(far, wan)
        .icmp_echo_reply(LPORT, 3)
        .payload(PING)
        .build();
    let want = Pkt::eth(PORT0_MAC, host_mac)
        .ipv4(far, host)
        .ttl(63)
        .icmp_echo_reply(ECHO_ID, 3)
        .payload(PING)
        .build();
    h.expect(rep, id, Dir::Out, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.snat_in, c.snat_out), (1, 1));
}

#[test]
fn ipv6_fnat_echo_updates_the_pseudo_header_sum() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(echo_conn(Forward::Fnat, a6(C6), a6(VIP6), a6(RS6), a6(L6)));
    let req = from_client6().icmpv6_echo_request(ECHO_ID, 9).payload(PING).build();
    let want = to_rs6(L6).icmpv6_echo_request(LPORT, 9).payload(PING).build();
    h.expect(req, id, Dir::In, 0, want);
    let rep = from_rs6(L6).icmpv6_echo_reply(LPORT, 9).payload(PING).build();
    let want = to_client6().icmpv6_echo_reply(ECHO_ID, 9).payload(PING).build();
    h.expect(rep, id, Dir::Out, 1, want);
}

#[test]
fn nat64_echo_maps_the_type_and_the_pseudo_header() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(echo_conn(
        Forward::Fnat,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
    ));
    // ICMPv6 echo request 128 -> ICMP 8 (RFC 7915 5.2), no pseudo-header any more.
    let req = from_client6().icmpv6_echo_request(ECHO_ID, 2).payload(PING).build();
    let want = to_rs(LADDR).icmp_echo_request(LPORT, 2).payload(PING).build();
    h.expect(req, id, Dir::In, 0, want);
    // ICMP echo reply 0 -> ICMPv6 129 (RFC 7915 4.2), pseudo-header added.
    let rep = from_rs(LADDR).icmp_echo_reply(LPORT, 2).payload(PING).build();
    let want = to_client6().icmpv6_echo_reply(ECHO_ID, 2).payload(PING).build();
    h.expect(rep, id, Dir::Out, 1, want);
    assert_eq!(h.node.stage.counters().nat64, 2);
}

#[test]
fn errors_quoting_an_echo_are_translated_both_ways() {
    let mut h = Harness::new(l2());
    let id = h.add(echo_conn(
        Forward::Fnat,
        Addr::v4(CLIENT),
        Addr::v4(VIP),
        Addr::v4(RS),
        Addr::v4(LADDR),
    ));
    // A router near the real server: the echo request the balancer sent timed out.
    let sent_rs = Pkt::l3()
        .ipv4(LADDR, RS)
        .ttl(1)
        .icmp_echo_request(LPORT, 5)
        .payload(PING)
        .build();
    let err = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv4(ROUTER, LADDR)
        .icmp_time_exceeded(0, &sent_rs)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let client_req = Pkt::l3()
        .ipv4(CLIENT, VIP)
        .ttl(1)
        .icmp_echo_request(ECHO_ID, 5)
        .payload(PING)
        .build();
    let want = to_client().icmp_time_exceeded(0, &client_req).build();
    check(&sent, 1, &want);
    // Only 8 bytes of the echo quoted: identifier and checksum still translated.
    let err = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv4(ROUTER, LADDR)
        .icmp_time_exceeded(0, &sent_rs[..28])
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let want = to_client().icmp_time_exceeded(0, &client_req[..28]).build();
    check(&sent, 1, &want);
    // A router near the client: the echo reply the balancer sent could not be delivered.
    let sent_client = Pkt::l3()
        .ipv4(VIP, CLIENT)
        .ttl(63)
        .icmp_echo_reply(ECHO_ID, 5)
        .payload(PING)
        .build();
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4(ROUTER, VIP)
        .icmp_dest_unreach(1, &sent_client)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(false));
    let rs_reply = Pkt::l3()
        .ipv4(RS, LADDR)
        .ttl(63)
        .icmp_echo_reply(LPORT, 5)
        .payload(PING)
        .build();
    let want = to_rs(LADDR).icmp_dest_unreach(1, &rs_reply).build();
    check(&sent, 0, &want);
    assert_eq!(h.node.stage.counters().icmp_err, 3);
}

#[test]
fn ipv6_error_quoting_an_echo() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(echo_conn(Forward::Fnat, a6(C6), a6(VIP6), a6(RS6), a6(L6)));
    let sent_rs = Pkt::l3()
        .ipv6(L6, RS6)
        .hop_limit(63)
        .icmpv6_echo_request(LPORT, 4)
        .payload(PING)
        .build();
    let err = from_rs6(L6).icmpv6_dest_unreach(4, &sent_rs).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(true));
    let client_req = Pkt::l3()
        .ipv6(C6, VIP6)
        .hop_limit(63)
        .icmpv6_echo_request(ECHO_ID, 4)
        .payload(PING)
        .build();
    let want = to_client6().icmpv6_dest_unreach(4, &client_req).build();
    check(&sent, 1, &want);
}

fn nat64_tcp() -> Conn {
    conn_any(
        Forward::Fnat,
        Proto::Tcp,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
        DELTA,
    )
}

#[test]
fn nat64_frag_needed_becomes_packet_too_big_with_the_mtu_plus_20() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(nat64_tcp());
    // The IPv4 side's router: the segment the balancer sent the real server was too big.
    let quoted = to_rs_segment().tos(0x28).build();
    let err = from_rs(LADDR).icmp_frag_needed(1400, &quoted).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    // RFC 7915 4.2: type 2 code 0, MTU min(1400 + 20, 1500, 1500 + 20); the quoted header
    // translated as 4.1 does (traffic class = TOS, hop limit = TTL, addresses of the client's
    // own segment), TCP ports and sequence as the client sent them.
    let client_seg = Pkt::l3()
        .ipv6(C6, VIP6)
        .tos(0x28)
        .hop_limit(63)
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .payload(b"a request")
        .build();
    let want = to_client6().icmpv6_packet_too_big(1420, &client_seg).build();
    check(&sent, 1, &want);
    // A router that gives no MTU (pre-RFC 1191): the greatest RFC 1191 plateau below the
    // quoted total length; 49 bytes is below them all, so IPv4's minimum 68, plus 20.
    let err = from_rs(LADDR).icmp_raw(false, 3, 4, [0; 4], &quoted).build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let want = to_client6().icmpv6_packet_too_big(88, &client_seg).build();
    check(&sent, 1, &want);
    // Port unreachable -> ICMPv6 destination unreachable code 4; time exceeded keeps its code.
    for (t4, c4, t6, c6) in [(3u8, 3u8, 1u8, 4u8), (11, 1, 3, 1), (3, 13, 1, 1)] {
        let err = from_rs(LADDR).icmp_raw(false, t4, c4, [0; 4], &quoted).build();
        let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
        let want = to_client6().icmp_raw(true, t6, c6, [0; 4], &client_seg).build();
        check(&sent, 1, &want);
    }
    assert_eq!(h.node.stage.counters().nat64, 5);
}

#[test]
fn nat64_packet_too_big_becomes_frag_needed_with_the_mtu_minus_20() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(nat64_tcp());
    // The IPv6 side's router: the balancer's segment to the client did not fit. It carries
    // the client's sequence space in its ack.
    let to_client_seg = Pkt::l3()
        .ipv6(VIP6, C6)
        .hop_limit(63)
        .tcp(VPORT, CPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(CISN + 1)
        .payload(&[9; 40])
        .build();
    let r6: Ipv6Addr = "2001:db8:2::77".parse().unwrap();
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv6(r6, VIP6)
        .icmpv6_packet_too_big(1300, &to_client_seg)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(true));
    // RFC 7915 5.2: type 3 code 4, MTU min(1300 - 20, 1500, 1500 - 20); quoted IPv4 header
    // as 5.1 (TTL = hop limit, id 0, DF clear under 1260), what the server itself sent.
    let server_seg = Pkt::l3()
        .ipv4(RS, LADDR)
        .ttl(63)
        .tcp(RPORT, LPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack((CISN + 1).wrapping_add(DELTA))
        .payload(&[9; 40])
        .build();
    let want = to_rs(LADDR).icmp_frag_needed(1280, &server_seg).build();
    check(&sent, 0, &want);
    // Parameter problem, erroneous header field at the hop limit (7) -> IPv4 pointer 8 (TTL);
    // unrecognized next header -> protocol unreachable.
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv6(r6, VIP6)
        .icmp_raw(true, 4, 0, 7u32.to_be_bytes(), &to_client_seg)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(true));
    // The translator's identification generator (RFC 7915 5.1, DF clear): the lcore's second
    // IPv4 datagram made fragmentable.
    let want = to_rs(LADDR)
        .id(1 << 4)
        .icmp_raw(false, 12, 0, [8, 0, 0, 0], &server_seg)
        .build();
    check(&sent, 0, &want);
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv6(r6, VIP6)
        .icmp_raw(true, 4, 1, 6u32.to_be_bytes(), &to_client_seg)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::In, mark(true));
    let want = to_rs(LADDR)
        .id(2 << 4)
        .icmp_raw(false, 3, 2, [0; 4], &server_seg)
        .build();
    check(&sent, 0, &want);
    // Unrecognized IPv6 option (parameter problem code 2) has no IPv4 counterpart: dropped.
    let err = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv6(r6, VIP6)
        .icmp_raw(true, 4, 2, 40u32.to_be_bytes(), &to_client_seg)
        .build();
    let (sent, report) = h.run_meta(&err, id, Dir::In, mark(true));
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::IcmpUntranslatable.name()), 1);
}

#[test]
fn nat64_error_quoting_an_echo() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(echo_conn(
        Forward::Fnat,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
    ));
    let sent_rs = Pkt::l3()
        .ipv4(LADDR, RS)
        .ttl(1)
        .icmp_echo_request(LPORT, 6)
        .payload(PING)
        .build();
    let err = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv4(ROUTER, LADDR)
        .icmp_time_exceeded(0, &sent_rs)
        .build();
    let (sent, _) = h.run_meta(&err, id, Dir::Out, mark(false));
    let client_req = Pkt::l3()
        .ipv6(C6, VIP6)
        .hop_limit(1)
        .icmpv6_echo_request(ECHO_ID, 6)
        .payload(PING)
        .build();
    let want = to_client6().icmpv6_time_exceeded(0, &client_req).build();
    check(&sent, 1, &want);
    // The host-precedence violation code has no ICMPv6 counterpart (RFC 7915 4.2): dropped.
    let err = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv4(ROUTER, LADDR)
        .icmp_dest_unreach(14, &sent_rs)
        .build();
    let (sent, report) = h.run_meta(&err, id, Dir::Out, mark(false));
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::IcmpUntranslatable.name()), 1);
}
