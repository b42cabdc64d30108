//! Golden closed-loop tests for every forwarding mode x protocol x address family x direction
//! through `rvs replay`'s engine (the whole stage graph, built from a configuration text):
//! FNAT, NAT, DR, TUNNEL (IPIP for IPv4, ip6ip6 for IPv6), NAT64 (FNAT with an IPv6 VIP and
//! IPv4 local and real-server addresses) and SNAT (match services), each for TCP (handshake,
//! the first ACK, a request, a response, FIN both ways, the last ACK) and UDP (four
//! request/response rounds), over IPv4 and IPv6.
//!
//! Clients and servers are simulated in `lab/`: they answer what rvs emits, as the peer they
//! saw, with their own sequence numbers. Every frame rvs emits is decoded by the test kit's
//! independent decoder with every checksum recomputed (both layers of a tunnel included), and
//! checked against what the test computes from the endpoints' view:
//!
//! - addresses and ports per mode (FNAT/NAT64/SNAT: a local address and a pool port, one per
//!   connection; NAT: the client stays the source; DR: only the MACs change; TUNNEL: an outer
//!   header from lan's first address of the server's family, TTL 64, TOS, DF and id copied,
//!   and the inner packet byte for byte what the client sent);
//! - TTL / hop limit decremented once where rvs routes (NAT, FNAT, NAT64, SNAT), untouched by
//!   DR; TOS / traffic class kept (translated for NAT64);
//! - FNAT's sequence shift seen consistently by both ends (the server sees the client's
//!   numbers shifted by one delta on every segment; the client sees its own numbers acked),
//!   the SYN's timestamps replaced by NOPs, TOA (8 bytes IPv4, 20 bytes IPv6 and NAT64) on the
//!   handshake's ACK only, the SYN-ACK's MSS lowered to make room for it (and for the IPv6
//!   header with NAT64); UOA (the client's port and address, 8 bytes for an IPv4 client, 20 for
//!   IPv6) on the first three datagrams of FNAT over IPv4 and IPv6 and of NAT64, in DPVS's
//!   default carrier, the protocol-248 "opp" header in front of UDP (taken apart by `lab`'s
//!   own parser, the UDP checksum and the IP lengths verified); with `[udp] uoa_mode = "ipo"`
//!   as IPv4 option 31 (IPv4 FNAT, NAT64; IPv6 FNAT then carries none), and with
//!   `uoa_max_trail` 1 and 0 on the first datagram only or none;
//! - three real servers (two SNAT addresses) under rr: the flows are counted per server, by
//!   what the servers saw and by rvs's own per-destination counters;
//! - active connections (ESTABLISHED) after the request, none after the close;
//! - nothing dropped, nothing sent to the host path; vectors of 1 and 32 emit the same frames.
//!
//! Each case writes what it fed and what rvs emitted to
//! `$CARGO_TARGET_TMPDIR/golden/<case>.in.pcap` and `.out.pcap` (e.g.
//! `target/tmp/golden/fnat-tcp-ipv6.out.pcap`) for Wireshark.
//!
//! SNAT's match-service selection, unmatched traffic, two-address round robin and expiry are
//! in `replay_snat.rs`; here SNAT runs the same closed loop as every other mode.
//!
//! TUNNEL's MTU cost through the whole graph (`tunnel_ipip_*_over_the_mtu*`): a client datagram
//! of 1500 bytes (the wan port's MTU) needs 1520 with the outer IPv4 header, more than the lan
//! port's 1500 (the default: the configuration has no per-interface MTU setting). Without DF
//! the real server gets RFC 791 fragments, which the test checks one by one (header checksum,
//! identification, MF, offsets, sizes) and puts back together into the client's packet, byte
//! for byte; with DF the client gets a fragmentation needed carrying 1500 - 20 (RFC 1191).

#[allow(dead_code)]
mod lab;

use lab::{Carrier, Case, FLOWS, Fam, Lab, Mode, Proto, SERVERS, Uoa};

fn matrix(mode: Mode, proto: Proto, fam: Fam) {
    matrix_with(mode, proto, fam, Uoa::DEFAULT, "");
}

/// The closed loop of one case, with `uoa` as the `[udp]` section; `suffix` names the pcaps.
fn matrix_with(mode: Mode, proto: Proto, fam: Fam, uoa: Uoa, suffix: &str) {
    let case = Case::new(mode, proto, fam);
    let name = case.name() + suffix;
    let mut lab = Lab::with_uoa(case, 32, uoa);
    lab.run(true);
    lab.check_clean();
    let rep = lab.engine.report();
    assert_eq!(rep.created, FLOWS as u64, "{name}: one connection per flow");
    assert_eq!(
        rep.connections, FLOWS,
        "{name}: every connection alive until it expires"
    );
    let per_flow = match (proto, case.both_ways()) {
        (Proto::Tcp, true) => 8,
        (Proto::Tcp, false) => 5,
        (Proto::Udp, true) => 8,
        (Proto::Udp, false) => 4,
    };
    for (i, f) in lab.flows.iter().enumerate() {
        assert_eq!(f.frames.len(), per_flow, "{name}: flow {i}: frames through rvs");
    }

    // rr over the destinations: exactly even, as the servers saw it and as rvs counted it.
    let n = if case.snat() { 2 } else { SERVERS };
    let dist = lab.distribution();
    assert_eq!(dist.len(), n, "{name}: every destination used: {dist:?}");
    assert!(
        dist.values().all(|&c| c == FLOWS / n),
        "{name}: rr spreads evenly: {dist:?}"
    );
    let created: Vec<u64> = rep.services[0].dests.iter().map(|d| d.created).collect();
    assert_eq!(
        created,
        vec![(FLOWS / n) as u64; n],
        "{name}: rvs's per-destination counts"
    );
    let inactive: u32 = rep.services[0].dests.iter().map(|d| d.inactive).sum();
    assert_eq!(
        inactive, FLOWS as u32,
        "{name}: closed (or UDP) connections count inactive"
    );

    if case.local_port() {
        // DPVS's per-real-server port pools: a local (address, port) may serve several real
        // servers at once, but never two connections toward the same one.
        let peers: std::collections::HashSet<_> = lab
            .flows
            .iter()
            .map(|f| (f.server.unwrap(), f.seen_from.unwrap()))
            .collect();
        assert_eq!(
            peers.len(),
            FLOWS,
            "{name}: every connection its own local address and port toward its real server"
        );
    }
    if proto == Proto::Tcp && matches!(mode, Mode::Fnat | Mode::Nat64) {
        let shifted = lab.flows.iter().filter(|f| f.seen_isn != f.c_isn).count();
        assert!(
            shifted >= FLOWS - 1,
            "{name}: FNAT shifts the client's sequence numbers"
        );
    }
    lab.write_pcaps(&name);

    // Vectors change nothing: one packet at a time gives every flow the same frames.
    let mut one = Lab::with_uoa(case, 1, uoa);
    one.run(true);
    for (i, (a, b)) in lab.flows.iter().zip(&one.flows).enumerate() {
        assert_eq!(a.frames, b.frames, "{name}: flow {i}: vector 1 and 32 differ");
    }
}

macro_rules! cases {
    ($($test:ident: $mode:ident $proto:ident $fam:ident;)*) => {
        $(
            #[test]
            fn $test() {
                matrix(Mode::$mode, Proto::$proto, Fam::$fam);
            }
        )*
    };
}

cases! {
    fnat_tcp_ipv4: Fnat Tcp V4;
    fnat_tcp_ipv6: Fnat Tcp V6;
    fnat_udp_ipv4: Fnat Udp V4;
    fnat_udp_ipv6: Fnat Udp V6;
    nat_tcp_ipv4: Nat Tcp V4;
    nat_tcp_ipv6: Nat Tcp V6;
    nat_udp_ipv4: Nat Udp V4;
    nat_udp_ipv6: Nat Udp V6;
    dr_tcp_ipv4: Dr Tcp V4;
    dr_tcp_ipv6: Dr Tcp V6;
    dr_udp_ipv4: Dr Udp V4;
    dr_udp_ipv6: Dr Udp V6;
    tunnel_ipip_tcp: Tunnel Tcp V4;
    tunnel_ip6ip6_tcp: Tunnel Tcp V6;
    tunnel_ipip_udp: Tunnel Udp V4;
    tunnel_ip6ip6_udp: Tunnel Udp V6;
    nat64_tcp: Nat64 Tcp V6;
    nat64_udp: Nat64 Udp V6;
    snat_tcp_ipv4: Snat Tcp V4;
    snat_tcp_ipv6: Snat Tcp V6;
    snat_udp_ipv4: Snat Udp V4;
    snat_udp_ipv6: Snat Udp V6;
}

#[test]
fn fnat_udp_ipv4_uoa_ipo() {
    let ipo = Uoa {
        mode: Carrier::Ipo,
        max_trail: 3,
    };
    matrix_with(Mode::Fnat, Proto::Udp, Fam::V4, ipo, "-uoa-ipo");
}

#[test]
fn fnat_udp_ipv6_uoa_ipo_carries_none() {
    let ipo = Uoa {
        mode: Carrier::Ipo,
        max_trail: 3,
    };
    matrix_with(Mode::Fnat, Proto::Udp, Fam::V6, ipo, "-uoa-ipo");
}

#[test]
fn nat64_udp_uoa_ipo() {
    let ipo = Uoa {
        mode: Carrier::Ipo,
        max_trail: 3,
    };
    matrix_with(Mode::Nat64, Proto::Udp, Fam::V6, ipo, "-uoa-ipo");
}

#[test]
fn fnat_udp_uoa_max_trail_one_and_zero() {
    for (fam, mode) in [
        (Fam::V4, Carrier::Opp),
        (Fam::V6, Carrier::Opp),
        (Fam::V4, Carrier::Ipo),
    ] {
        for max_trail in [1, 0] {
            let uoa = Uoa { mode, max_trail };
            matrix_with(
                Mode::Fnat,
                Proto::Udp,
                fam,
                uoa,
                &format!("-uoa-{mode:?}-trail-{max_trail}"),
            );
        }
    }
}

/// A client datagram of `len` bytes (IP header included) to the VIP, DF as asked.
fn big_datagram(lab: &Lab, i: usize, len: usize, df: bool) -> Vec<u8> {
    let c = lab.case;
    let f = &lab.flows[i];
    let body: Vec<u8> = (0..len - 28).map(|k| (k * 7 + i) as u8).collect();
    let mut p = lab::ip_layer(rvs_testkit::Pkt::eth(lab::GW_MAC, lab::WAN_MAC), f.client, c.vip())
        .ttl(lab::TTL)
        .tos(lab::C_TOS)
        .id(0x5100 + i as u16);
    if df {
        p = p.df();
    }
    p.udp(f.cport, lab::VPORT).payload(&body).build()
}

/// The lan port's MTU (the default; the configuration sets none).
const LAN_MTU: usize = 1500;

#[test]
fn tunnel_ipip_over_the_mtu_without_df_goes_out_as_rfc791_fragments() {
    let case = Case::new(Mode::Tunnel, Proto::Udp, Fam::V4);
    let mut lab = Lab::new(case, 32);
    let name = "tunnel-ipip-fragments";
    for i in 0..2 {
        let sent = big_datagram(&lab, i, LAN_MTU, false);
        let outs = lab.send_raw(vec![sent.clone()]);
        // 1520 bytes of outer datagram: the first fragment carries as many 8-byte blocks as
        // fit in 1500 - 20, the rest follows (RFC 791: offsets in 8-byte units).
        let payload = 20 + sent.len() - 14;
        let per = (LAN_MTU - 20) / 8 * 8;
        let want_frags = payload.div_ceil(per);
        assert_eq!(outs.len(), want_frags, "{name}: datagram {i}: fragments");
        let mut whole = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut server_mac = None;
        for (k, (port, b)) in outs.iter().enumerate() {
            assert_eq!(*port, Some(lab::LAN), "{name}: fragment {k} toward the real servers");
            assert_eq!(&b[6..12], &lab::LAN_MAC, "{name}: fragment {k}: from lan's MAC");
            let dst_mac: [u8; 6] = b[0..6].try_into().unwrap();
            assert_eq!(*server_mac.get_or_insert(dst_mac), dst_mac, "{name}: one next hop");
            assert_eq!(&b[12..14], &[0x08, 0x00], "{name}: IPv4");
            let ip = &b[14..];
            assert_eq!(ip[0], 0x45, "{name}: fragment {k}: IPv4, no options");
            assert!(ip.len() <= LAN_MTU, "{name}: fragment {k} fits the MTU: {}", ip.len());
            assert_eq!(
                u16::from_be_bytes([ip[2], ip[3]]) as usize,
                ip.len(),
                "{name}: total length"
            );
            let sum = rvs_testkit::csum::finish(rvs_testkit::csum::sum(0, &ip[..20]));
            assert_eq!(sum, 0, "{name}: fragment {k}: header checksum");
            ids.insert(u16::from_be_bytes([ip[4], ip[5]]));
            let flags_off = u16::from_be_bytes([ip[6], ip[7]]);
            let (df, mf, off) = (
                flags_off & 0x4000 != 0,
                flags_off & 0x2000 != 0,
                (flags_off & 0x1fff) as usize,
            );
            assert!(!df, "{name}: fragment {k}: DF clear, as the client sent it");
            assert_eq!(mf, k + 1 < outs.len(), "{name}: fragment {k}: MF on all but the last");
            assert_eq!(
                off * 8,
                whole.len(),
                "{name}: fragment {k}: offset where the last ended"
            );
            if mf {
                assert_eq!((ip.len() - 20) % 8, 0, "{name}: fragment {k}: 8-byte blocks");
            }
            assert_eq!((ip[8], ip[1], ip[9]), (64, lab::C_TOS, 4), "{name}: TTL 64, TOS, IPIP");
            let (src, dst): ([u8; 4], [u8; 4]) = (ip[12..16].try_into().unwrap(), ip[16..20].try_into().unwrap());
            assert_eq!(std::net::IpAddr::from(src), case.tunnel_src(), "{name}: outer source");
            let s = (0..SERVERS)
                .find(|&s| lab::rs_mac(s) == dst_mac)
                .expect("a real server's MAC");
            assert_eq!(std::net::IpAddr::from(dst), case.server(s), "{name}: outer destination");
            whole.extend_from_slice(&ip[20..]);
        }
        assert_eq!(ids.len(), 1, "{name}: one identification for all fragments");
        assert_eq!(whole.len(), sent.len() - 14, "{name}: reassembled length");
        assert!(
            whole == sent[14..],
            "{name}: reassembled, the client's packet byte for byte"
        );
        let d = rvs_testkit::decode::decode_ip_checked(&whole).expect("the reassembled packet decodes clean");
        assert_eq!(
            d.ports(),
            Some((lab.flows[i].cport, lab::VPORT)),
            "{name}: the client's ports"
        );
        assert_eq!(d.payload, sent[14 + 28..], "{name}: the client's payload");
    }
    lab.check_clean();
    lab.write_pcaps(name);
}

#[test]
fn tunnel_ipip_over_the_mtu_with_df_is_answered_with_frag_needed() {
    let case = Case::new(Mode::Tunnel, Proto::Udp, Fam::V4);
    let mut lab = Lab::new(case, 32);
    let name = "tunnel-ipip-frag-needed";
    let sent = big_datagram(&lab, 0, LAN_MTU, true);
    let outs = lab.send(vec![sent.clone()]);
    assert_eq!(outs.len(), 1, "{name}: one answer, nothing to the real server");
    let o = &outs[0];
    assert_eq!(o.port, Some(lab::WAN), "{name}: back toward the client");
    assert_eq!(o.d.eth.as_ref().unwrap().dst, lab::GW_MAC);
    let (src, dst, _, _) = lab::ip_of(&o.d.ips[0]);
    let f = &lab.flows[0];
    assert_eq!((src, dst), (case.vip(), f.client), "{name}: from the VIP to the client");
    let icmp = o.d.icmp().expect("ICMP");
    // RFC 1191: type 3 code 4, the next-hop MTU in the low 16 bits: what is left of the lan
    // port's MTU after the outer header.
    assert_eq!((icmp.typ, icmp.code), (3, 4), "{name}: fragmentation needed");
    assert_eq!(icmp.rest, [0, 0, 0x05, 0xc8], "{name}: MTU 1500 - 20 = 1480");
    assert_eq!(icmp.mtu() as usize, LAN_MTU - 20);
    let inner = icmp.inner.as_ref().expect("the quoted packet");
    let (qs, qd, _, _) = lab::ip_of(inner.ip().unwrap());
    assert_eq!((qs, qd), (f.client, case.vip()), "{name}: quoting the client's packet");
    assert_eq!(inner.ports(), Some((f.cport, lab::VPORT)));
    // RFC 1812 4.3.2.3: the error fits in 576 bytes, and quotes as much as fits.
    assert_eq!(o.bytes.len() - 14, 576, "{name}: 576 bytes");
    assert_eq!(
        &o.bytes[14 + 28..],
        &sent[14..14 + 576 - 28],
        "{name}: the quote is the client's bytes"
    );
    let rep = lab.engine.report();
    let dropped: u64 = rep
        .stages
        .iter()
        .flat_map(|s| s.drops.iter())
        .filter(|d| d.reason == "frag_needed")
        .map(|d| d.count)
        .sum();
    assert_eq!(dropped, 1, "{name}: the datagram dropped, counted frag_needed");
    lab.write_pcaps(name);
}
