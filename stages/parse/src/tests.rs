//! Parse stage tests: hand-built packets from the test kit's builder (its own checksum
//! code), expected metadata written out by hand, and a property test on arbitrary bytes.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use rvs_core::counters::StageReport;
use rvs_core::label::Label;
use rvs_core::mbuf::PacketPool;
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Exits, Node, Packet};
use rvs_core::time::Now;
use rvs_testkit::builder::{ACK, ECE, Pkt, SYN, mac};

const C: [u8; 4] = [198, 18, 5, 5];
const V: [u8; 4] = [198, 18, 0, 100];
const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

fn eth() -> Pkt {
    Pkt::eth(mac(1), mac(2))
}

struct Run {
    ip: Vec<Packet<HeapMbuf>>,
    arp: Vec<Packet<HeapMbuf>>,
    host: Vec<Packet<HeapMbuf>>,
    report: StageReport,
    counters: ParseCounters,
    pool_free: usize,
}

/// Run the stage once over `frames` as one vector.
fn run(frames: &[Vec<u8>]) -> Run {
    run_with(Parse::new(), frames)
}

/// Run `stage` once over `frames` as one vector.
fn run_with(stage: Parse, frames: &[Vec<u8>]) -> Run {
    let snap = Snapshot::empty();
    let cx = StageCx {
        now: Now::from_secs(1),
        lcore: 0,
        snapshot: &snap,
    };
    let mut node = Node::new(stage, 256);
    let mut exits = Exits::new(1, 1, 256);
    let mut pool = HeapPool::new(256);
    let mut input = PacketVec::with_capacity(256);
    for f in frames {
        input.push(Packet::new(pool.alloc_with(f).unwrap())).unwrap();
    }
    node.run(&cx, &mut input, &mut exits, &mut pool);
    let ip: Vec<_> = node.queue(ParseNext::Ip).drain().collect();
    let arp: Vec<_> = node.queue(ParseNext::Arp).drain().collect();
    let host: Vec<_> = exits.host.drain().collect();
    Run {
        ip,
        arp,
        host,
        report: node.stats().report(),
        counters: node.stage.counters(),
        pool_free: pool.available(),
    }
}

/// Run one frame that must go to `Ip`, returning its metadata and bytes.
fn accept(frame: Vec<u8>) -> (PacketMeta, Vec<u8>) {
    let r = run(&[frame]);
    assert_eq!(r.report.total_drops(), 0, "dropped: {:?}", r.report.drops);
    assert_eq!(r.ip.len(), 1);
    let p = &r.ip[0];
    (p.meta, p.mbuf.data().to_vec())
}

/// Run one frame that must be dropped for `reason`.
fn refuse(frame: Vec<u8>, reason: ParseDrop) {
    let r = run(&[frame]);
    assert_eq!(r.ip.len() + r.arp.len() + r.host.len(), 0);
    assert_eq!(r.report.dropped(reason.name()), 1, "drops: {:?}", r.report.drops);
    assert_eq!(r.report.total_drops(), 1);
}

#[test]
fn ipv4_tcp_syn() {
    let f = eth()
        .ipv4(C, V)
        .ttl(61)
        .tcp(40000, 80)
        .flags(SYN | ECE)
        .seq(7)
        .mss(1460)
        .sack_perm()
        .build();
    let (m, _) = accept(f);
    assert_eq!(m.af, Af::V4);
    assert_eq!(m.proto, 6);
    assert_eq!(m.vlan, 0);
    assert_eq!(m.l3_off, 14);
    assert_eq!(m.l4_off, 34);
    // 20 + MSS (4) + SACK-permitted (2), padded to 28.
    assert_eq!(m.l4_hdr_len, 28);
    assert_eq!(m.l3_len, 48);
    assert_eq!(m.saddr, Addr::v4(C));
    assert_eq!(m.daddr, Addr::v4(V));
    assert_eq!((m.sport, m.dport), (40000, 80));
    assert_eq!(m.tcp_flags, TcpFlags(0x42));
    assert!(m.tcp_flags.may_create());
    assert_eq!(m.ttl, 61);
    assert!(!m.fragment);
    assert_eq!(m.payload_len(), 0);
    assert_eq!(m.conn, rvs_core::meta::NO_CONN);
}

#[test]
fn ipv4_options_and_vlan() {
    let f = eth()
        .vlan(100)
        .ipv4(C, V)
        .ip_options(&[0x94, 0x04, 0, 0]) // router alert
        .tcp(40000, 80)
        .flags(ACK)
        .payload(b"hello")
        .build();
    let (m, _) = accept(f);
    assert_eq!(m.vlan, 100);
    assert_eq!(m.l3_off, 18);
    assert_eq!(m.l4_off, 18 + 24);
    assert_eq!(m.l4_hdr_len, 20);
    assert_eq!(m.l3_len, 24 + 20 + 5);
    assert_eq!(m.payload_off(), 18 + 44);
    assert_eq!(m.payload_len(), 5);
}

#[test]
fn ethernet_padding_is_trimmed() {
    let f = eth().ipv4(C, V).tcp(40000, 80).flags(ACK).pad_to(60).build();
    assert_eq!(f.len(), 60);
    let r = run(&[f]);
    assert_eq!(r.ip.len(), 1);
    assert_eq!(r.ip[0].mbuf.len(), 54);
    assert_eq!(r.counters.trimmed, 1);
}

#[test]
fn udp_and_icmp() {
    let (m, _) = accept(eth().ipv4(C, V).udp(5353, 53).payload(b"q").build());
    assert_eq!(
        (m.proto, m.sport, m.dport, m.l4_hdr_len, m.tcp_flags),
        (17, 5353, 53, 8, TcpFlags(0))
    );
    let (m, _) = accept(eth().ipv4(C, V).icmp_echo_request(0x1234, 9).payload(b"ping").build());
    assert_eq!(
        (m.proto, m.icmp_type, m.icmp_code, m.sport, m.dport),
        (1, 8, 0, 0x1234, 0x1234)
    );
    assert_eq!(m.l4_hdr_len, 8);
    // An error quotes a packet: no identifier, type and code kept.
    let inner = Pkt::l3().ipv4(V, C).udp(53, 5353).build();
    let (m, _) = accept(eth().ipv4([198, 18, 9, 9], C).icmp_dest_unreach(3, &inner).build());
    assert_eq!((m.icmp_type, m.icmp_code, m.sport, m.dport), (3, 3, 0, 0));
}

#[test]
fn ipv6_walks_extension_headers() {
    let f = eth()
        .ipv6(C6, V6)
        .hop_limit(50)
        .hop_by_hop(&[])
        .dst_opts(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .tcp(40000, 443)
        .flags(SYN)
        .build();
    let (m, _) = accept(f);
    assert_eq!(m.af, Af::V6);
    assert_eq!(m.proto, 6);
    assert_eq!(m.l3_off, 14);
    // 40 + hop-by-hop (8) + destination options (2 + 10 -> 16).
    assert_eq!(m.l4_off, 14 + 40 + 8 + 16);
    assert_eq!(m.l3_len, 40 + 8 + 16 + 20);
    assert_eq!(m.saddr, Addr::v6(C6));
    assert_eq!(m.daddr, Addr::v6(V6));
    assert_eq!((m.sport, m.dport, m.ttl), (40000, 443, 50));
    let (m, _) = accept(eth().ipv6(C6, V6).icmpv6_echo_request(77, 1).build());
    assert_eq!((m.proto, m.icmp_type, m.sport, m.dport), (58, 128, 77, 77));
}

#[test]
fn non_ip_and_other_protocols_go_to_the_host() {
    let arp = eth().arp_request(mac(1), [198, 18, 0, 1], [198, 18, 0, 100]).build();
    let lldp = eth().ethertype(0x88cc).payload(&[0; 46]).build();
    let gre = eth().ipv4(C, V).ip_proto(47).payload(&[0; 8]).build();
    let icmp_in_v6 = eth()
        .ipv6(C6, V6)
        .ip_proto(1)
        .payload(&[8, 0, 0, 0, 0, 0, 0, 0])
        .build();
    let r = run(&[arp.clone(), lldp.clone(), gre.clone(), icmp_in_v6.clone()]);
    assert_eq!(r.host.len(), 3);
    assert_eq!(r.ip.len(), 0);
    assert_eq!(r.report.host, 3);
    // ARP goes on to the ARP/ND stage, untouched.
    assert_eq!(r.arp.len(), 1);
    assert_eq!(r.arp[0].mbuf.data(), &arp[..]);
    assert_eq!(r.report.sent(ParseNext::Arp.name()), 1);
    assert_eq!(
        r.counters,
        ParseCounters {
            arp: 1,
            other_ethertype: 1,
            other_protocol: 2,
            trimmed: 0
        }
    );
    // With the ARP stage off, ARP goes to the host path like any other non-IP frame.
    let mut p = Parse::new();
    p.arp_to_stage = false;
    let r = run_with(p, &[arp, lldp, gre, icmp_in_v6]);
    assert_eq!((r.host.len(), r.arp.len(), r.counters.arp), (4, 0, 1));
}

#[test]
fn malformed_packets_are_dropped_with_their_reason() {
    let ok = || eth().ipv4(C, V).tcp(40000, 80).flags(ACK).payload(b"abcd");
    refuse(ok().truncate(13).build(), ParseDrop::Truncated);
    refuse(ok().truncate(14 + 19).build(), ParseDrop::Truncated);
    refuse(
        eth().vlan(5).ipv4(C, V).tcp(1, 2).truncate(17).build(),
        ParseDrop::Truncated,
    );
    refuse(
        eth().ethertype(0x0800).ipv6(C6, V6).tcp(1, 2).build(),
        ParseDrop::BadVersion,
    );
    refuse(ok().ihl(4).build(), ParseDrop::BadIhl);
    refuse(ok().ihl(15).truncate(14 + 50).ip_len(50).build(), ParseDrop::BadIhl);
    refuse(ok().ip_len(200).build(), ParseDrop::BadTotalLen);
    refuse(ok().ip_len(19).build(), ParseDrop::BadTotalLen);
    refuse(ok().bad_ip_checksum().build(), ParseDrop::BadChecksum);
    refuse(ok().tcp_data_offset(4).build(), ParseDrop::TcpBadOffset);
    refuse(ok().tcp_data_offset(15).build(), ParseDrop::TcpBadOffset);
    // Total length cuts the TCP header short: the segment is what the IP header says.
    refuse(ok().ip_len(20 + 10).build(), ParseDrop::L4Truncated);
    refuse(
        eth().ipv4(C, V).udp(1, 2).payload(b"xy").udp_len(11).build(),
        ParseDrop::UdpBadLength,
    );
    refuse(eth().ipv4(C, V).udp(1, 2).udp_len(7).build(), ParseDrop::UdpBadLength);
    refuse(
        eth().ipv4(C, V).ip_proto(1).payload(&[8, 0, 0]).build(),
        ParseDrop::L4Truncated,
    );
    refuse(eth().ipv6(C6, V6).tcp(1, 2).ip_len(100).build(), ParseDrop::BadTotalLen);
    refuse(
        eth().ipv6(C6, V6).tcp(1, 2).truncate(14 + 39).build(),
        ParseDrop::Truncated,
    );
    // A hop-by-hop header after a destination-options header (RFC 8200 4.1).
    refuse(
        eth().ipv6(C6, V6).dst_opts(&[]).hop_by_hop(&[]).tcp(1, 2).build(),
        ParseDrop::BadExtHeader,
    );
    // An extension header running past the payload.
    refuse(
        eth()
            .ipv6(C6, V6)
            .ip_proto(60)
            .payload(&[6, 3, 0, 0, 0, 0, 0, 0])
            .build(),
        ParseDrop::BadExtHeader,
    );
}

#[test]
fn fragments_are_dropped_by_policy() {
    let first = eth().ipv4(C, V).mf().udp(1, 2).payload(&[0; 16]).build();
    let later = eth().ipv4(C, V).frag_offset(3).ip_proto(17).payload(&[0; 16]).build();
    let v6 = eth().ipv6(C6, V6).frag6(0, true, 7).udp(1, 2).payload(&[0; 16]).build();
    let v6_atomic = eth().ipv6(C6, V6).frag6(0, false, 8).udp(1, 2).build();
    let r = run(&[first, later, v6, v6_atomic]);
    assert_eq!(r.report.dropped(ParseDrop::Fragment.name()), 4);
    assert_eq!(r.report.total_drops(), 4);
    assert_eq!(ParseDrop::Fragment.cause(), Cause::NotSupported);
    assert_eq!(ParseDrop::BadChecksum.cause(), Cause::InvalidPacket);
    // Dropped buffers go back to the pool, which is full again.
    assert_eq!(r.pool_free, 256);
}

#[test]
fn a_vector_keeps_order_and_disposes_of_everything() {
    let mut frames = Vec::new();
    for i in 0..32u16 {
        let f = match i % 4 {
            0 => eth().ipv4(C, V).tcp(1000 + i, 80).flags(SYN).build(),
            1 => eth().ipv4(C, V).tcp(1000 + i, 80).flags(ACK).bad_ip_checksum().build(),
            2 => eth().arp_request(mac(1), [198, 18, 0, 1], [198, 18, 0, 100]).build(),
            _ => eth().ipv6(C6, V6).udp(1000 + i, 53).build(),
        };
        frames.push(f);
    }
    let r = run(&frames);
    assert_eq!(r.ip.len(), 16);
    assert_eq!(r.arp.len(), 8);
    assert_eq!(r.host.len(), 0);
    assert_eq!(r.report.dropped("bad_ip_checksum"), 8);
    assert_eq!(r.report.packets, 32);
    let sports: Vec<u16> = r.ip.iter().map(|p| p.meta.sport).collect();
    let want: Vec<u16> = (0..32u16)
        .filter(|i| i % 4 == 0 || i % 4 == 3)
        .map(|i| 1000 + i)
        .collect();
    assert_eq!(sports, want);
}

#[test]
fn checksum_check_can_be_left_to_the_port() {
    let f = eth().ipv4(C, V).tcp(1, 2).bad_ip_checksum().build();
    let mut m = PacketMeta::new();
    assert_eq!(parse(&f, &mut m, true), Err(ParseDrop::BadChecksum));
    assert_eq!(parse(&f, &mut m, false), Ok(Parsed::Ip { ip_end: f.len() }));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    // Arbitrary bytes never panic; when parse accepts, every offset it reports is inside the
    // buffer.
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut m = PacketMeta::new();
        if let Ok(Parsed::Ip { ip_end }) = parse(&bytes, &mut m, true) {
            prop_assert!(ip_end <= bytes.len());
            prop_assert!((m.l4_off as usize) + (m.l4_hdr_len as usize) <= ip_end);
            prop_assert!((m.l3_off as usize) < (m.l4_off as usize));
        }
    }

    // Valid headers with random bytes after the Ethernet header: the interesting paths
    // (IPv4/IPv6 with random lengths and protocols) are reached often.
    #[test]
    fn never_panics_behind_a_valid_ethertype(v6 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut bytes = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        bytes.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let mut tail = tail;
        if let Some(b) = tail.first_mut() {
            *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x40 | (*b & 0x0f) };
        }
        bytes.extend_from_slice(&tail);
        let mut m = PacketMeta::new();
        if let Ok(Parsed::Ip { ip_end }) = parse(&bytes, &mut m, false) {
            prop_assert!(ip_end <= bytes.len());
            prop_assert!((m.l4_off as usize) + (m.l4_hdr_len as usize) <= ip_end);
        }
    }
}
