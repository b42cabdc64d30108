//! TUNNEL: IPIP, ip6ip6, 6-over-4 and 4-in-6 encapsulation; the MTU cost; the ICMP answer to
//! a packet too big.

use super::common::*;
use super::*;

fn tun(client: Addr, vip: Addr, rs: Addr, sport: u16) -> Conn {
    let mut c = conn_any(Forward::Tunnel, Proto::Tcp, client, vip, rs, rs, 0);
    c.in_tuple.sport = sport;
    c.out_tuple.sport = VPORT; // the real server's port is the service port
    c.out_tuple.dport = sport;
    c
}

#[test]
fn ipip_copies_df_tos_and_id_with_ttl_64() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(tun(Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS), CPORT));
    let inner = || {
        Pkt::l3()
            .ipv4(CLIENT, VIP)
            .ttl(17)
            .tos(0xb8)
            .id(0x1234)
            .df()
            .tcp(CPORT, VPORT)
            .flags(ACK | PSH)
            .seq(CISN)
            .payload(b"payload")
    };
    let frame = from_client()
        .ttl(17)
        .tos(0xb8)
        .id(0x1234)
        .df()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN)
        .payload(b"payload")
        .build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(P0_V4, RS)
        .ttl(64)
        .tos(0xb8)
        .id(0x1234)
        .df()
        .ipv4(CLIENT, VIP)
        .ttl(17)
        .tos(0xb8)
        .id(0x1234)
        .df()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN)
        .payload(b"payload")
        .build();
    h.expect(frame.clone(), id, Dir::In, 0, want.clone());
    // The inner packet is byte for byte what the client sent.
    assert_eq!(&want[34..], &frame[14..]);
    assert_eq!(inner().build(), frame[14..].to_vec());
    assert_eq!(h.node.stage.counters().tunnel, 1);
    assert_eq!(
        rvs_xmit_tunnel_source(&h),
        Some(Addr::v4(P0_V4)),
        "the outer source is port 0's first IPv4 address"
    );
}

fn rvs_xmit_tunnel_source(h: &Harness) -> Option<Addr> {
    crate::tunnel::tunnel_source(h.node.stage.l2(), Addr::v4(RS))
}

#[test]
fn ip6ip6_and_6_over_4_and_4_in_6() {
    let mut h = Harness::new(l2_dual());
    // IPv6 client, IPv6 real server: ip6ip6 from port 0's first IPv6 address.
    let id = h.add(tun(a6(C6), a6(VIP6), a6(RS6), CPORT));
    let frame = from_client6().tos(0x10).tcp(CPORT, VPORT).flags(SYN).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(L6, RS6)
        .tos(0x10)
        .hop_limit(64)
        .ipv6(C6, VIP6)
        .tos(0x10)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .build();
    h.expect(frame, id, Dir::In, 0, want);
    // IPv6 client, IPv4 real server: 6-over-4 (protocol 41), DF set.
    let id = h.add(tun(a6(C6), a6(VIP6), Addr::v4(RS), 2));
    let frame = from_client6().tcp(2, VPORT).flags(SYN).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(P0_V4, RS)
        .ttl(64)
        .df()
        .ipv6(C6, VIP6)
        .tcp(2, VPORT)
        .flags(SYN)
        .build();
    h.expect(frame, id, Dir::In, 0, want);
    // IPv4 client, IPv6 real server: 4-in-6.
    let id = h.add(tun(Addr::v4(CLIENT), Addr::v4(VIP), a6(RS6), 3));
    let frame = from_client().tcp(3, VPORT).flags(SYN).build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv6(L6, RS6)
        .hop_limit(64)
        .ipv4(CLIENT, VIP)
        .tcp(3, VPORT)
        .flags(SYN)
        .build();
    h.expect(frame, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().tunnel, 3);
}

#[test]
fn too_big_with_df_is_dropped_and_answered_with_frag_needed() {
    let mut l2 = l2_dual();
    assert!(l2.set_mtu(0, 1400));
    let mut h = Harness::new(l2);
    let id = h.add(tun(Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS), CPORT));
    // 1400 bytes of IP: fits alone, not with 20 more.
    let body = vec![0x42; 1400 - 40];
    let ip = || {
        Pkt::l3()
            .ipv4(CLIENT, VIP)
            .df()
            .tcp(CPORT, VPORT)
            .flags(ACK)
            .seq(CISN)
            .payload(&body)
    };
    let frame = from_client()
        .df()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN)
        .payload(&body)
        .build();
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert_eq!(report.dropped(XmitDrop::FragNeeded.name()), 1);
    // The client hears the tunnel's MTU (1400 - 20), quoting 576 - 28 bytes of its packet.
    let quoted = ip().build();
    let want = Pkt::eth(PORT1_MAC, GW_MAC)
        .ipv4(VIP, CLIENT)
        .icmp_frag_needed(1380, &quoted[..548])
        .build();
    check(&sent, 1, &want);
    assert_eq!(h.node.stage.counters().frag_needed_sent, 1);
    // Without DF: dropped, not answered (rvs fragments nothing).
    let frame = from_client()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN)
        .payload(&body)
        .build();
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::TooBig.name()), 1);
    // 20 bytes less fits exactly.
    let frame = from_client()
        .df()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(CISN)
        .payload(&body[20..])
        .build();
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert_eq!(report.tx, 1 + 1);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bytes.len(), 14 + 1400);
}

#[test]
fn ipv6_too_big_is_answered_with_packet_too_big() {
    let mut l2 = l2_dual();
    assert!(l2.set_mtu(0, 1300));
    let mut h = Harness::new(l2);
    let id = h.add(tun(a6(C6), a6(VIP6), a6(RS6), CPORT));
    let body = vec![0x24; 1300 - 60];
    let frame = from_client6().tcp(CPORT, VPORT).flags(ACK).payload(&body).build();
    let quoted = Pkt::l3()
        .ipv6(C6, VIP6)
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .payload(&body)
        .build();
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert_eq!(report.dropped(XmitDrop::FragNeeded.name()), 1);
    let want = Pkt::eth(PORT1_MAC, GW_MAC)
        .ipv6(VIP6, C6)
        .icmpv6_packet_too_big(1260, &quoted[..1232])
        .build();
    check(&sent, 1, &want);
}
