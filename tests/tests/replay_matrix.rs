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
//!   header with NAT64), UOA as IPv4 option 31 on the first three datagrams (IPv4 FNAT, NAT64);
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

#[allow(dead_code)]
mod lab;

use lab::{Case, FLOWS, Fam, Lab, Mode, Proto, SERVERS};

fn matrix(mode: Mode, proto: Proto, fam: Fam) {
    let case = Case::new(mode, proto, fam);
    let name = case.name();
    let mut lab = Lab::new(case, 32);
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
    let mut one = Lab::new(case, 1);
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
