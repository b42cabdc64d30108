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
    // Without DF it goes out as fragments: `ipip_without_df_over_the_mtu_goes_out_as_fragments`.
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

/// The fragments RFC 791 makes of the IPv4 datagram `outer` (Ethernet header included) for
/// `mtu`, built from scratch by the kit: 8-byte-aligned pieces, as large as the MTU allows.
fn expected_fragments(inner: &[u8], mtu: usize, ident: u16) -> Vec<Vec<u8>> {
    let chunk = (mtu - 20) / 8 * 8;
    let mut v = Vec::new();
    let mut off = 0;
    while off < inner.len() {
        let len = chunk.min(inner.len() - off);
        let mut f = Pkt::eth(PORT0_MAC, RS_MAC)
            .ipv4(P0_V4, RS)
            .ttl(64)
            .id(ident)
            .frag_offset((off / 8) as u16)
            .ip_proto(4)
            .payload(&inner[off..off + len]);
        if off + len < inner.len() {
            f = f.mf();
        }
        v.push(f.build());
        off += len;
    }
    v
}

#[test]
fn ipip_without_df_over_the_mtu_goes_out_as_fragments() {
    let mut l2 = l2_dual();
    assert!(l2.set_mtu(0, 1280));
    let mut h = Harness::new(l2);
    // Buffers for a 3000-byte packet (a jumbo frame from the client side).
    h.pool = rvs_core::mbuf::HeapPool::with_buf_size(64, 4096);
    let id = h.add(tun(Addr::v4(CLIENT), Addr::v4(VIP), Addr::v4(RS), CPORT));
    // 3040 bytes of inner packet, 3060 with the outer header: 1256 + 1256 + 528.
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let frame = from_client()
        .id(0x4242)
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN)
        .payload(&body)
        .build();
    let inner = frame[14..].to_vec();
    for (n, ident) in [(0u16, 0u16), (1, 1 << 4)] {
        let (sent, report) = h.run(&[(frame.clone(), id, Dir::In)]);
        assert_eq!(report.total_drops(), 0, "drops: {:?}", report.drops);
        let want = expected_fragments(&inner, 1280, ident);
        assert_eq!(want.len(), 3);
        assert_eq!(sent.len(), 3, "datagram {n}");
        let mut whole = Vec::new();
        for (k, (s, w)) in sent.iter().zip(&want).enumerate() {
            assert_eq!(s.port, 0);
            assert!(s.bytes.len() - 14 <= 1280, "fragment {k} fits the MTU");
            // The kit's decoder recomputes each fragment's header checksum. (It also reads on
            // into the inner header of the first fragment and finds it cut short, which a
            // fragment is: only the outer header is judged here.)
            let d = rvs_testkit::decode::decode(&s.bytes);
            assert_eq!(
                d.checksum("ipv4"),
                Some(rvs_testkit::decode::CheckStatus::Ok),
                "fragment {k}"
            );
            if k > 0 {
                assert!(decode_checked(&s.bytes).is_ok(), "fragment {k}");
            }
            let ip = d.ipv4().unwrap();
            assert_eq!((ip.id, ip.mf, ip.frag_offset as usize), (ident, k < 2, k * 1256 / 8));
            assert!(s.bytes == *w, "fragment {k}: {}", rvs_testkit::hex::diff(w, &s.bytes));
            whole.extend_from_slice(&s.bytes[34..]);
        }
        // Put back together, the fragments are the client's packet, untouched.
        assert_eq!(whole, inner);
        let d = rvs_testkit::decode::decode_ip_checked(&whole).unwrap();
        assert!(d.is_clean());
    }
    let c = h.node.stage.counters();
    assert_eq!((c.tunnel, c.fragmented, c.fragments), (2, 2, 6));

    // A packet that fits is not touched by any of this.
    let small = from_client().tcp(CPORT, VPORT).flags(ACK).payload(&body[..500]).build();
    let (sent, _) = h.run(&[(small, id, Dir::In)]);
    assert_eq!(sent.len(), 1);
    assert_eq!(h.node.stage.counters().fragmented, 2);

    // An empty pool: the datagram is dropped and counted, nothing leaks (sent packets are
    // not given back by the harness: count from here).
    let before = h.pool.available();
    let mut taken = Vec::new();
    while h.pool.available() > 1 {
        taken.push(h.pool.alloc().unwrap());
    }
    let (sent, report) = h.run(&[(frame.clone(), id, Dir::In)]);
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::FragFailed.name()), 1);
    for m in taken {
        h.pool.free(m);
    }
    assert_eq!(h.pool.available(), before);
}

#[test]
fn four_in_six_without_df_over_the_mtu_is_dropped_too_big() {
    let mut l2 = l2_dual();
    assert!(l2.set_mtu(0, 1300));
    let mut h = Harness::new(l2);
    let id = h.add(tun(Addr::v4(CLIENT), Addr::v4(VIP), a6(RS6), CPORT));
    // 1280 bytes of IPv4 + 40 of IPv6 > 1300; IPv6 is not fragmented by rvs.
    let body = vec![0x11; 1280 - 40];
    let frame = from_client().tcp(CPORT, VPORT).flags(ACK).payload(&body).build();
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert!(sent.is_empty());
    assert_eq!(report.dropped(XmitDrop::TooBig.name()), 1);
    assert_eq!(h.node.stage.counters().fragmented, 0);
}
