//! ICMP and ICMPv6 errors about established connections, through `rvs replay`'s engine (the
//! whole graph: parse, lookup matching the quoted packet, xmit translating it), closed loop
//! with the simulated endpoints of `lab/`.
//!
//! For NAT, FNAT and SNAT, over IPv4 and IPv6, TCP and UDP: connections are set up (TCP:
//! handshake, the server's greeting, the client's request; UDP: one round), then
//!
//! - from the server side, a fragmentation needed / packet too big, a destination
//!   unreachable and a time exceeded, each quoting the packet rvs sent the server, must reach
//!   the client quoting what the client itself sent: its own address and port, the address and
//!   port it sent to, its own sequence and acknowledgement numbers (FNAT's shift taken back),
//!   from the address it sent to, TTL one less, type, code and MTU kept;
//! - from the client side (a router near the client), the same three kinds quoting what rvs
//!   sent the client must reach the server quoting what the server itself sent: its own
//!   address, port and numbers, to the peer it knows (FNAT's local address and port with the
//!   acknowledgement shifted forward again; SNAT's source address and port).
//!
//! Every frame is decoded by the test kit's independent decoder, with the outer header's, the
//! ICMP message's and the quoted IP and TCP/UDP checksums recomputed from the bytes (the whole
//! datagram is quoted, so the quoted TCP/UDP checksum must verify too).
//!
//! Also: ICMP and ICMPv6 echo to a VIP is answered by the balancer.
//!
//! Across NAT64 (`nat64_tcp`, `nat64_udp`: IPv6 clients, IPv4 real servers) the errors change
//! family as RFC 7915 says, and the test computes what must arrive from the RFC's tables, not
//! from rvs: from the IPv4 side (section 4.2) fragmentation needed (MTU 1400) becomes packet
//! too big with min(MTU + 20, the IPv6 port's MTU, the IPv4 port's MTU + 20) = 1420, host
//! unreachable becomes no route (1/0), port unreachable port unreachable (1/4), time exceeded
//! 3 with its code; from the IPv6 side (section 5.2) packet too big (1280) becomes
//! fragmentation needed with min(MTU - 20, the IPv4 port's MTU, the IPv6 port's MTU - 20) =
//! 1260, address unreachable host unreachable (3/1), port unreachable 3/3, time exceeded 11.
//! The quoted header is translated as sections 4.1 / 5.1 translate a header (TOS <-> traffic
//! class, TTL <-> hop limit as quoted, lengths, IPv4 identification 0 and DF clear for a packet
//! of 1260 bytes or less), so each addressee finds the packet it sent itself, its quoted
//! TCP/UDP checksum valid over the new pseudo-header.
//!
//! Errors quoting a datagram that carried FNAT's UOA (`*_uoa_ipo`): after one UDP round the
//! real server's error quotes the first datagram as it got it, IPv4 option 31 included; it is
//! matched to the connection and reaches the client (IPv4 FNAT: the option stays in the quoted
//! header; NAT64: the quoted IPv4 header, option and all, becomes an IPv6 header). The same
//! with DPVS's default carrier, the protocol-248 opp header (`*_uoa_opp`: IPv4, IPv6, NAT64):
//! the client gets a quote of plain UDP, the opp header taken out and the lengths shortened.
//!
//! Not here: errors quoting an echo (rvs-xmit's `icmp_err::errors_quoting_an_echo_*`; an error
//! quoting a forwarded echo runs through the whole graph in `replay_icmp_echo.rs`); DR and
//! TUNNEL, whose errors from the client side go to the real server unchanged (rvs-xmit's stage
//! tests).
//!
//! Each case writes its frames to `$CARGO_TARGET_TMPDIR/golden/icmp-<case>.in.pcap` and
//! `.out.pcap`.

#[allow(dead_code)]
mod lab;

use std::net::IpAddr;

use lab::{
    ACK, C_TOS, Carrier, Case, Fam, GW_MAC, Lab, Mode, Out, Proto, REQ, RESP, S_TOS, TTL, Uoa, WAN, WAN_MAC, ip_layer,
    ip_of,
};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{CheckStatus, Decoded, Ip, decode_checked};

#[derive(Debug, Clone, Copy)]
enum Kind {
    TooBig,
    Unreachable,
    TimeExceeded,
}

const KINDS: [Kind; 3] = [Kind::TooBig, Kind::Unreachable, Kind::TimeExceeded];

/// An ICMP error of `kind` from `src` to `dst` quoting `quote`.
fn error(eth: Pkt, src: IpAddr, dst: IpAddr, kind: Kind, proto: Proto, quote: &[u8]) -> Vec<u8> {
    let p = ip_layer(eth, src, dst).ttl(TTL);
    match (src.is_ipv6(), kind) {
        (false, Kind::TooBig) => p.icmp_frag_needed(1400, quote),
        // Host unreachable for TCP, port unreachable for UDP.
        (false, Kind::Unreachable) => p.icmp_dest_unreach(if proto == Proto::Tcp { 1 } else { 3 }, quote),
        (false, Kind::TimeExceeded) => p.icmp_time_exceeded(0, quote),
        (true, Kind::TooBig) => p.icmpv6_packet_too_big(1280, quote),
        // Address unreachable for TCP, port unreachable for UDP.
        (true, Kind::Unreachable) => p.icmpv6_dest_unreach(if proto == Proto::Tcp { 3 } else { 4 }, quote),
        (true, Kind::TimeExceeded) => p.icmpv6_time_exceeded(0, quote),
    }
    .build()
}

/// The port MTU of every interface in the lab's configuration (the default: none is set).
const PORT_MTU: u32 = 1500;

/// The ICMPv6 error an ICMPv4 error becomes, from RFC 7915 section 4.2's table (the rows these
/// tests send): (v6, type, code, rest of header).
fn rfc7915_4to6(typ: u8, code: u8, rest: [u8; 4]) -> (bool, u8, u8, [u8; 4]) {
    match (typ, code) {
        // Net or host unreachable: no route to destination.
        (3, 0 | 1) => (true, 1, 0, [0; 4]),
        // Port unreachable: port unreachable.
        (3, 3) => (true, 1, 4, [0; 4]),
        // Fragmentation needed: packet too big, the MTU adjusted for the 20 bytes more of
        // header: min(MTU + 20, MTU of the IPv6 next hop, MTU of the IPv4 next hop + 20).
        (3, 4) => {
            let mtu = u32::from(u16::from_be_bytes([rest[2], rest[3]]));
            (true, 2, 0, (mtu + 20).min(PORT_MTU).min(PORT_MTU + 20).to_be_bytes())
        }
        // Time exceeded: time exceeded, code unchanged.
        (11, c) => (true, 3, c, [0; 4]),
        _ => panic!("no row for ICMPv4 {typ}/{code} in this test"),
    }
}

/// The ICMPv4 error an ICMPv6 error becomes, from RFC 7915 section 5.2's table.
fn rfc7915_6to4(typ: u8, code: u8, rest: [u8; 4]) -> (bool, u8, u8, [u8; 4]) {
    match (typ, code) {
        // No route, beyond scope, address unreachable: host unreachable.
        (1, 0 | 2 | 3) => (false, 3, 1, [0; 4]),
        // Administratively prohibited: communication administratively prohibited.
        (1, 1) => (false, 3, 10, [0; 4]),
        // Port unreachable: port unreachable.
        (1, 4) => (false, 3, 3, [0; 4]),
        // Packet too big: fragmentation needed, min(MTU - 20, MTU of the IPv4 next hop, MTU of
        // the IPv6 next hop - 20) in the low 16 bits.
        (2, _) => {
            let mtu = u32::from_be_bytes(rest) - 20;
            let mtu = mtu.min(PORT_MTU).min(PORT_MTU - 20) as u16;
            (false, 3, 4, [0, 0, (mtu >> 8) as u8, mtu as u8])
        }
        // Time exceeded: time exceeded, code unchanged.
        (3, c) => (false, 11, c, [0; 4]),
        _ => panic!("no row for ICMPv6 {typ}/{code} in this test"),
    }
}

/// The quoted packet's headers and checksums: addresses, ports, and for TCP seq and ack; type,
/// code and rest of header as the error's family wants them (kept within a family, RFC 7915's
/// tables across NAT64). `tos`: the TOS / traffic class the quoted packet's sender used.
fn check_quote(
    name: &str,
    sent: &Decoded,
    got: &Out,
    want: (IpAddr, u16, IpAddr, u16),
    seq_ack: Option<(u32, u32)>,
    tos: u8,
) {
    let (si, gi) = (sent.icmp().unwrap(), got.d.icmp().expect("an ICMP message"));
    let v6_out = !want.0.is_ipv4();
    let want_icmp = match (si.v6, v6_out) {
        (false, true) => rfc7915_4to6(si.typ, si.code, si.rest),
        (true, false) => rfc7915_6to4(si.typ, si.code, si.rest),
        _ => (si.v6, si.typ, si.code, si.rest),
    };
    assert_eq!(
        (gi.v6, gi.typ, gi.code, gi.rest),
        want_icmp,
        "{name}: type, code and MTU kept, or mapped as RFC 7915 says"
    );
    let inner = gi.inner.as_ref().expect("the quoted packet");
    let sent_inner = si.inner.as_ref().unwrap();
    // A quote of a datagram that carried UOA in DPVS's opp header (protocol 248, its length at
    // bytes 2..4): the addressee never saw that header, so the quote it gets has plain UDP.
    let opp = match sent_inner.ip().unwrap() {
        Ip::V4(h) if h.proto == 248 => u16::from_be_bytes([sent_inner.payload[2], sent_inner.payload[3]]) as usize,
        Ip::V6(h) if h.proto == 248 => u16::from_be_bytes([sent_inner.payload[2], sent_inner.payload[3]]) as usize,
        _ => 0,
    };
    if opp != 0 {
        let got_proto = match inner.ip().unwrap() {
            Ip::V4(h) => h.proto,
            Ip::V6(h) => h.proto,
        };
        assert_eq!(got_proto, 17, "{name}: the opp header taken out of the quote");
    }
    if si.v6 != v6_out {
        // The quoted header translated as RFC 7915 4.1 / 5.1 translate a header: the upper
        // layer's length and protocol, TOS <-> traffic class, TTL <-> hop limit as quoted (one
        // less than the sender's: rvs forwarded it), no extension headers or options.
        let (l4_len, proto) = match sent_inner.ip().unwrap() {
            Ip::V4(h) => (h.total_len as usize - 4 * h.ihl as usize, h.proto),
            Ip::V6(h) => (h.payload_len as usize, h.proto),
        };
        let (l4_len, proto) = if opp != 0 { (l4_len - opp, 17) } else { (l4_len, proto) };
        match inner.ip().unwrap() {
            Ip::V6(h) => {
                let got = (h.traffic_class, h.flow_label, h.hop_limit, h.payload_len as usize);
                assert_eq!(got, (tos, 0, TTL - 1, l4_len), "{name}: quoted IPv6 header");
                assert!(
                    h.exts.is_empty() && h.next_header == proto,
                    "{name}: quoted next header"
                );
            }
            Ip::V4(h) => {
                let got = (h.ihl, h.tos, h.ttl, h.total_len as usize, h.proto);
                assert_eq!(got, (5, tos, TTL - 1, 20 + l4_len, proto), "{name}: quoted IPv4 header");
                // 1260 bytes or less: identification 0 as rvs writes it, DF clear (RFC 7915 5.1).
                assert_eq!(
                    (h.id, h.df, h.mf, h.frag_offset),
                    (0, false, false, 0),
                    "{name}: quoted id and flags"
                );
            }
        }
        let quoted_ip4: Vec<_> = got
            .d
            .checksums
            .iter()
            .filter(|c| c.what.ends_with("icmp/ipv4"))
            .map(|c| c.status)
            .collect();
        let want: Vec<_> = (!v6_out).then_some(CheckStatus::Ok).into_iter().collect();
        assert_eq!(quoted_ip4, want, "{name}: quoted IPv4 header checksum");
    }
    let (src, dst, _, _) = ip_of(inner.ip().expect("quoted IP header"));
    let (sport, dport) = inner.ports().expect("quoted ports");
    assert_eq!(
        (src, sport, dst, dport),
        want,
        "{name}: the quoted packet as its addressee sent it"
    );
    if let Some((seq, ack)) = seq_ack {
        let t = inner.tcp().expect("the whole TCP header quoted");
        assert_eq!(
            (t.seq, t.ack),
            (seq, ack),
            "{name}: the addressee's own sequence numbers"
        );
    }
    // Behind an opp header the decoder of the sent frame stopped: its "payload" starts with the
    // opp header and the UDP header.
    let sent_payload = if opp != 0 {
        &sent_inner.payload[opp + 8..]
    } else {
        &sent_inner.payload[..]
    };
    assert_eq!(inner.payload, sent_payload, "{name}: quoted payload kept");
    // The decoder verified the quoted L4 checksum (the whole datagram is quoted).
    let quoted_l4 = got
        .d
        .checksums
        .iter()
        .filter(|c| c.what.contains("icmp") && (c.what.ends_with("/tcp") || c.what.ends_with("/udp")))
        .collect::<Vec<_>>();
    assert_eq!(
        quoted_l4.len(),
        1,
        "{name}: one quoted L4 checksum: {:?}",
        got.d.checksums
    );
    assert_eq!(
        quoted_l4[0].status,
        CheckStatus::Ok,
        "{name}: quoted L4 checksum verified"
    );
}

fn errors(mode: Mode, proto: Proto, fam: Fam) {
    errors_with(mode, proto, fam, Uoa::DEFAULT, false);
}

/// `uoa`: the `[udp]` section. With the default, UDP runs four rounds, so the quoted datagrams
/// carry no UOA; otherwise one, so the quote from the server side is of a datagram with UOA.
fn errors_with(mode: Mode, proto: Proto, fam: Fam, uoa: Uoa, with_uoa: bool) {
    let case = Case::new(mode, proto, fam);
    let mut lab = Lab::with_uoa(case, 32, uoa);
    // TCP up to the request; UDP four rounds (one to quote UOA).
    lab.run(proto == Proto::Udp && !with_uoa);
    let (rq, rs) = (REQ.len() as u32, RESP.len() as u32);
    for (k, kind) in KINDS.iter().enumerate() {
        // Flow k: a different connection (and server) for each kind.
        let i = k;
        let name = format!("{}: flow {i}: {kind:?}", case.name());
        let f = lab.flows[i].clone();
        let s = f.server.unwrap();
        let seen = f.seen_from.unwrap();

        // From the server side, about what rvs sent the server.
        let quote = &f.last_to_server[14..];
        if with_uoa {
            let u = lab::udp_seen(&Out {
                port: None,
                bytes: f.last_to_server.clone(),
                d: decode_checked(&f.last_to_server).unwrap(),
            });
            assert_eq!(u.carrier, uoa.carrier(&case), "{name}: the quoted datagram carries UOA");
            assert!(u.uoa.is_some());
        }
        let eth = Pkt::eth(case.server_mac(s), Case::iface_mac(case.server_iface()));
        let err = error(eth, case.server(s), seen.0, *kind, proto, quote);
        let sent = decode_checked(&err).unwrap();
        let outs = lab.send(vec![err]);
        assert_eq!(outs.len(), 1, "{name}: the error from the server side is forwarded");
        let o = &outs[0];
        assert_eq!(o.port, Some(case.client_iface()), "{name}: toward the client");
        assert_eq!(o.d.eth.as_ref().unwrap().dst, case.client_mac(i));
        let (src, dst, ttl, _) = ip_of(&o.d.ips[0]);
        assert_eq!(
            (src, dst, ttl),
            (f.dst.0, f.client, TTL - 1),
            "{name}: to the client from the address it sent to"
        );
        let seq_ack = (proto == Proto::Tcp).then_some((f.c_isn.wrapping_add(1), f.s_isn.wrapping_add(1 + rs)));
        check_quote(&name, &sent, o, (f.client, f.cport, f.dst.0, f.dst.1), seq_ack, C_TOS);

        // From the client side, about what rvs sent the client.
        let quote = &f.last_to_client[14..];
        let (router, eth) = if case.snat() {
            let r: IpAddr = if case.v6() {
                "2001:db8:1::fe".parse().unwrap()
            } else {
                "198.18.1.254".parse().unwrap()
            };
            (r, Pkt::eth([0x02, 0, 0, 0, 0x16, 0xfe], lab::LAN_MAC))
        } else {
            let r: IpAddr = if case.v6() {
                "2001:db8:c::1".parse().unwrap()
            } else {
                "198.19.0.1".parse().unwrap()
            };
            (r, Pkt::eth(GW_MAC, WAN_MAC))
        };
        let err = error(eth, router, f.dst.0, *kind, proto, quote);
        let sent = decode_checked(&err).unwrap();
        let outs = lab.send(vec![err]);
        assert_eq!(outs.len(), 1, "{name}: the error from the client side is forwarded");
        let o = &outs[0];
        assert_eq!(o.port, Some(case.server_iface()), "{name}: toward the server");
        assert_eq!(o.d.eth.as_ref().unwrap().dst, case.server_mac(s));
        let (src, dst, ttl, _) = ip_of(&o.d.ips[0]);
        // NAT keeps the router as the source (as IPVS: the real server routes back through
        // the balancer anyway); FNAT and SNAT send from the address the server knows.
        let want_src = if mode == Mode::Nat { router } else { seen.0 };
        let server = if case.snat() { f.dst.0 } else { case.server(s) };
        assert_eq!((src, dst, ttl), (want_src, server, TTL - 1), "{name}: to the server");
        let seq_ack = (proto == Proto::Tcp).then_some((f.s_isn.wrapping_add(1), f.seen_isn.wrapping_add(1)));
        check_quote(
            &name,
            &sent,
            o,
            (server, case.server_port(), seen.0, seen.1),
            seq_ack,
            S_TOS,
        );
    }
    lab.check_clean();
    assert_eq!(
        lab.engine.report().created,
        lab::FLOWS as u64,
        "no error made a connection"
    );
    lab.write_pcaps(&format!("icmp-{}", case.name()));
    // The connections still carry traffic after the errors.
    if proto == Proto::Tcp {
        lab.clients_send(|_| lab::Seg::tcp(ACK, 1 + rq, 1 + rs, &[]));
    }
}

macro_rules! cases {
    ($($test:ident: $mode:ident $proto:ident $fam:ident;)*) => {
        $(
            #[test]
            fn $test() {
                errors(Mode::$mode, Proto::$proto, Fam::$fam);
            }
        )*
    };
}

cases! {
    nat_tcp_ipv4: Nat Tcp V4;
    nat_tcp_ipv6: Nat Tcp V6;
    nat_udp_ipv4: Nat Udp V4;
    nat_udp_ipv6: Nat Udp V6;
    fnat_tcp_ipv4: Fnat Tcp V4;
    fnat_tcp_ipv6: Fnat Tcp V6;
    fnat_udp_ipv4: Fnat Udp V4;
    fnat_udp_ipv6: Fnat Udp V6;
    snat_tcp_ipv4: Snat Tcp V4;
    snat_tcp_ipv6: Snat Tcp V6;
    snat_udp_ipv4: Snat Udp V4;
    snat_udp_ipv6: Snat Udp V6;
    nat64_tcp: Nat64 Tcp V6;
    nat64_udp: Nat64 Udp V6;
}

const IPO: Uoa = Uoa {
    mode: Carrier::Ipo,
    max_trail: 3,
};

#[test]
fn fnat_udp_ipv4_uoa_ipo() {
    errors_with(Mode::Fnat, Proto::Udp, Fam::V4, IPO, true);
}

#[test]
fn nat64_udp_uoa_ipo() {
    errors_with(Mode::Nat64, Proto::Udp, Fam::V6, IPO, true);
}

// The same with DPVS's default carrier, the protocol-248 opp header: xmit takes it out of the
// quote (protocol UDP again, lengths shorter by the header), in one family and across NAT64.
#[test]
fn fnat_udp_ipv4_uoa_opp() {
    errors_with(Mode::Fnat, Proto::Udp, Fam::V4, Uoa::DEFAULT, true);
}

#[test]
fn fnat_udp_ipv6_uoa_opp() {
    errors_with(Mode::Fnat, Proto::Udp, Fam::V6, Uoa::DEFAULT, true);
}

#[test]
fn nat64_udp_uoa_opp() {
    errors_with(Mode::Nat64, Proto::Udp, Fam::V6, Uoa::DEFAULT, true);
}

#[test]
fn echo_to_a_vip_is_answered_by_the_balancer() {
    for fam in [Fam::V4, Fam::V6] {
        let case = Case::new(Mode::Fnat, Proto::Tcp, fam);
        let name = format!("echo {fam:?}");
        let mut lab = Lab::new(case, 32);
        let client = case.client(0);
        let p = ip_layer(Pkt::eth(GW_MAC, WAN_MAC), client, case.vip()).ttl(50);
        let req = if case.v6() {
            p.icmpv6_echo_request(0x1234, 7)
        } else {
            p.icmp_echo_request(0x1234, 7)
        }
        .payload(b"ping payload")
        .build();
        let outs = lab.send(vec![req]);
        assert_eq!(outs.len(), 1, "{name}: answered");
        let o = &outs[0];
        assert_eq!(o.port, Some(WAN), "{name}: out of the port it came in on");
        assert_eq!(
            o.d.eth.as_ref().unwrap().dst,
            GW_MAC,
            "{name}: back to the sender's MAC"
        );
        let (src, dst, ttl, _) = ip_of(&o.d.ips[0]);
        assert_eq!(
            (src, dst, ttl),
            (case.vip(), client, 64),
            "{name}: from the VIP, TTL 64"
        );
        let icmp = o.d.icmp().unwrap();
        let want_type = if case.v6() { 129 } else { 0 };
        assert_eq!((icmp.typ, icmp.code, icmp.id(), icmp.seq()), (want_type, 0, 0x1234, 7));
        assert_eq!(o.d.payload, b"ping payload");
        assert_eq!(lab.engine.report().created, 0, "{name}: no connection");
        lab.write_pcaps(&format!("icmp-echo-{}", if case.v6() { "ipv6" } else { "ipv4" }));
    }
}
