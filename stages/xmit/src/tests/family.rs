//! IPv6 for NAT, FNAT and DR; NAT64 (FNAT, IPv6 client and VIP, IPv4 local and real
//! addresses); SNAT.

use super::common::*;
use super::*;
use rvs_conn::ConnFlags;

fn fnat6(proto: Proto) -> Conn {
    conn_any(Forward::Fnat, proto, a6(C6), a6(VIP6), a6(RS6), a6(L6), DELTA)
}

#[test]
fn ipv6_fnat_tcp_handshake_toa_and_sack() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(fnat6(Proto::Tcp));
    let syn = from_client6()
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .mss(1440)
        .sack_perm()
        .timestamps(9, 0)
        .build();
    let want = to_rs6(L6)
        .tcp(LPORT, RPORT)
        .flags(SYN)
        .seq(CISN.wrapping_add(DELTA))
        .mss(1440)
        .sack_perm()
        .tcp_opt_raw(&[1; 10])
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    // SYN-ACK: MSS lowered by the 20-byte IPv6 TOA.
    let synack = from_rs6(L6)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .mss(1440)
        .build();
    let want = to_client6()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .mss(1420)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    // The handshake ACK carries the 20-byte TOA.
    let ack = from_client6()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .build();
    let want = to_rs6(L6)
        .tcp(LPORT, RPORT)
        .flags(ACK)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .toa_v6(CPORT, C6)
        .build();
    h.expect(ack, id, Dir::In, 0, want);
    let s = |x: u32| (CISN + x).wrapping_add(DELTA);
    let data = from_rs6(L6)
        .tcp(RPORT, LPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(s(1))
        .nop()
        .nop()
        .sack(&[(s(100), s(200))])
        .payload(b"hello")
        .build();
    let want = to_client6()
        .tcp(VPORT, CPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(CISN + 1)
        .nop()
        .nop()
        .sack(&[(CISN + 100, CISN + 200)])
        .payload(b"hello")
        .build();
    h.expect(data, id, Dir::Out, 1, want);
    let c = h.node.stage.counters();
    assert_eq!(
        (c.fnat_in, c.fnat_out, c.toa_inserted, c.mss_clamped, c.nat64),
        (2, 2, 1, 1, 0)
    );
}

#[test]
fn ipv6_fnat_udp_both_ways_uoa_skipped() {
    let mut h = Harness::new(l2_dual());
    // ipo mode (opp carries it over IPv6: `client_addr::uoa_opp_*`).
    h.node.stage.uoa = crate::toa::UoaConfig {
        mode: crate::toa::UoaMode::Ipo,
        max_trail: 3,
    };
    let id = h.add(fnat6(Proto::Udp));
    let q = from_client6().udp(CPORT, VPORT).payload(b"query").build();
    let want = to_rs6(L6).udp(LPORT, RPORT).payload(b"query").build();
    h.expect(q, id, Dir::In, 0, want);
    let r = from_rs6(L6).udp(RPORT, LPORT).payload(b"answer").build();
    let want = to_client6().udp(VPORT, CPORT).payload(b"answer").build();
    h.expect(r, id, Dir::Out, 1, want);
    // IPv6 has no IPv4 option: due, skipped, counted (DPVS's ipo mode does the same).
    assert_eq!(h.node.stage.counters().uoa_skipped, 1);
}

#[test]
fn ipv6_nat_and_dr() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(Forward::Nat, Proto::Tcp, a6(C6), a6(VIP6), a6(RS6), a6(L6), 0));
    let syn = from_client6()
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(C6, RS6)
        .hop_limit(63)
        .tcp(CPORT, RPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    let synack = Pkt::eth(RS_MAC, PORT0_MAC)
        .ipv6(RS6, C6)
        .tcp(RPORT, CPORT)
        .flags(SYN | ACK)
        .mss(1440)
        .build();
    let want = to_client6().tcp(VPORT, CPORT).flags(SYN | ACK).mss(1440).build();
    h.expect(synack, id, Dir::Out, 1, want);
    // An extension header in front of the upper layer is walked and kept.
    let q = from_client6().dst_opts(&[]).udp(CPORT, VPORT).payload(b"u").build();
    let uid = h.add(conn_any(Forward::Nat, Proto::Udp, a6(C6), a6(VIP6), a6(RS6), a6(L6), 0));
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(C6, RS6)
        .hop_limit(63)
        .dst_opts(&[])
        .udp(CPORT, RPORT)
        .payload(b"u")
        .build();
    h.expect(q, uid, Dir::In, 0, want);
    // DR: the MACs only.
    let mut d = conn_any(Forward::Dr, Proto::Tcp, a6(C6), a6(VIP6), a6(RS6), a6(L6), 0);
    d.out_tuple.sport = VPORT;
    d.in_tuple.sport = 7;
    let did = h.add(d);
    let syn = from_client6().tcp(7, VPORT).flags(SYN).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(C6, VIP6)
        .tcp(7, VPORT)
        .flags(SYN)
        .build();
    h.expect(syn, did, Dir::In, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.nat_in, c.nat_out, c.dr), (2, 1, 1));
}

fn nat64(proto: Proto) -> Conn {
    conn_any(
        Forward::Fnat,
        proto,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
        DELTA,
    )
}

#[test]
fn nat64_tcp_translates_headers_both_ways() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(nat64(Proto::Tcp));
    let syn = from_client6()
        .tos(0x28)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .mss(1440)
        .timestamps(3, 0)
        .build();
    // RFC 7915 5.1: TOS from the traffic class, DF clear (small), TTL = hop limit - 1, the
    // identification from the translator's generator (this lcore's first: 0, then 16, 32...).
    let want = to_rs(LADDR)
        .tos(0x28)
        .tcp(LPORT, RPORT)
        .flags(SYN)
        .seq(CISN.wrapping_add(DELTA))
        .mss(1440)
        .tcp_opt_raw(&[1; 10])
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    // SYN-ACK from the IPv4 server: MSS - 20 (IPv6 TOA) - 20 (IPv6 header).
    let synack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .mss(1460)
        .build();
    let want = to_client6()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .mss(1420)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    // The handshake ACK: IPv6 TOA inside the IPv4 packet.
    let ack = from_client6()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .build();
    let want = to_rs(LADDR)
        .id(1 << 4)
        .tcp(LPORT, RPORT)
        .flags(ACK)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .toa_v6(CPORT, C6)
        .build();
    h.expect(ack, id, Dir::In, 0, want);
    // A large segment gets DF; it still acknowledges the first-data sequence, so it carries
    // TOA as well (DPVS).
    let big = vec![7u8; 1300];
    let data = from_client6()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .payload(&big)
        .build();
    let want = to_rs(LADDR)
        .df()
        .tcp(LPORT, RPORT)
        .flags(ACK | PSH)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .toa_v6(CPORT, C6)
        .payload(&big)
        .build();
    h.expect(data, id, Dir::In, 0, want);
    // IPv4 options are dropped on the way to IPv6.
    let fin = from_rs(LADDR)
        .ip_options(&[1, 1, 1, 1])
        .tcp(RPORT, LPORT)
        .flags(FIN | ACK)
        .seq(SISN + 1)
        .ack((CISN + 1).wrapping_add(DELTA))
        .build();
    let want = to_client6()
        .tcp(VPORT, CPORT)
        .flags(FIN | ACK)
        .seq(SISN + 1)
        .ack(CISN + 1)
        .build();
    h.expect(fin, id, Dir::Out, 1, want);
    assert_eq!(h.node.stage.counters().nat64, 5);
}

#[test]
fn nat64_udp_uoa_and_a_missing_checksum_filled() {
    let mut h = Harness::new(l2_dual());
    h.node.stage.uoa = crate::toa::UoaConfig {
        mode: crate::toa::UoaMode::Ipo,
        max_trail: 3,
    };
    let id = h.add(nat64(Proto::Udp));
    let q = from_client6().udp(CPORT, VPORT).payload(b"query").build();
    let mut uoa = vec![31, 20];
    uoa.extend_from_slice(&CPORT.to_be_bytes());
    uoa.extend_from_slice(&C6.octets());
    let want = to_rs(LADDR)
        .ip_options(&uoa)
        .udp(LPORT, RPORT)
        .payload(b"query")
        .build();
    h.expect(q, id, Dir::In, 0, want);
    // IPv4 UDP without a checksum: IPv6 needs one, computed.
    let r = from_rs(LADDR)
        .udp(RPORT, LPORT)
        .payload(b"reply")
        .l4_checksum(0)
        .build();
    let want = to_client6().udp(VPORT, CPORT).payload(b"reply").build();
    h.expect(r, id, Dir::Out, 1, want);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.nat64), (1, 2));
}

#[test]
fn nat_to_a_server_of_the_other_family_is_refused() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(
        Forward::Nat,
        Proto::Tcp,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
        0,
    ));
    let syn = from_client6().tcp(CPORT, VPORT).flags(SYN).build();
    h.expect_drop(syn, id, Dir::In, XmitDrop::NotSupported);
    assert_eq!(h.pool.available(), 64);
}

#[test]
fn snat_rewrites_the_source_out_and_the_destination_back() {
    let mut h = Harness::new(l2_dual());
    // Internal host 198.18.1.50:5000 to an outside server 203.0.113.7:443; the "real
    // server" of a SNAT connection is the original destination, the local address the
    // balancer's outside address 198.18.2.1.
    let host = Addr::v4([198, 18, 1, 50]);
    let far = Addr::v4([203, 0, 113, 7]);
    let wan = Addr::v4([198, 18, 2, 1]);
    let inb = Tuple {
        proto: Proto::Tcp,
        saddr: host,
        sport: 5000,
        daddr: far,
        dport: 443,
    };
    let c = Conn {
        in_tuple: inb,
        out_tuple: Conn::out_tuple_for(Forward::Snat, &inb, far, 443, wan, 1030),
        fwd: Forward::Snat,
        fnat_seq_delta: DELTA,
        ..Conn::default()
    };
    let id = h.add(c);
    let host_mac = [2, 0, 0, 0, 1, 0x50];
    let syn = Pkt::eth(host_mac, PORT0_MAC)
        .ipv4([198, 18, 1, 50], [203, 0, 113, 7])
        .tcp(5000, 443)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    // Source only; no FNAT sequence or option work.
    let want = Pkt::eth(PORT1_MAC, GW_MAC)
        .ipv4([198, 18, 2, 1], [203, 0, 113, 7])
        .ttl(63)
        .tcp(1030, 443)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    h.expect(syn, id, Dir::In, 1, want);
    let synack = Pkt::eth(GW_MAC, PORT1_MAC)
        .ipv4([203, 0, 113, 7], [198, 18, 2, 1])
        .tcp(443, 1030)
        .flags(SYN | ACK)
        .ack(CISN + 1)
        .mss(1460)
        .build();
    let want = Pkt::eth(PORT0_MAC, host_mac)
        .ipv4([203, 0, 113, 7], [198, 18, 1, 50])
        .ttl(63)
        .tcp(443, 5000)
        .flags(SYN | ACK)
        .ack(CISN + 1)
        .mss(1460)
        .build();
    h.expect(synack, id, Dir::Out, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.snat_in, c.snat_out, c.toa_inserted, c.mss_clamped), (1, 1, 0, 0));
    assert!(!h.conns.borrow().conn(id).unwrap().flags.has(ConnFlags::TOA_DONE));
}
