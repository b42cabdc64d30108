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
//! Not here: errors across NAT64 (ICMP <-> ICMPv6, RFC 7915 4.2/5.2) and errors quoting an
//! echo, shown byte for byte at the stage (rvs-xmit's `icmp_err::nat64_*` and
//! `errors_quoting_an_echo_*`; an error quoting a forwarded echo also runs through the whole
//! graph in `replay_icmp_echo.rs`); DR and TUNNEL, whose errors from the client side go to the
//! real server unchanged (rvs-xmit's stage tests).
//!
//! Each case writes its frames to `$CARGO_TARGET_TMPDIR/golden/icmp-<case>.in.pcap` and
//! `.out.pcap`.

#[allow(dead_code)]
mod lab;

use std::net::IpAddr;

use lab::{ACK, Case, Fam, GW_MAC, Lab, Mode, Out, Proto, REQ, RESP, TTL, WAN, WAN_MAC, ip_layer, ip_of};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{CheckStatus, Decoded, decode_checked};

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

/// The quoted packet's headers and checksums: addresses, ports, and for TCP seq and ack.
fn check_quote(name: &str, sent: &Decoded, got: &Out, want: (IpAddr, u16, IpAddr, u16), seq_ack: Option<(u32, u32)>) {
    let (si, gi) = (sent.icmp().unwrap(), got.d.icmp().expect("an ICMP message"));
    assert_eq!(
        (gi.v6, gi.typ, gi.code, gi.rest),
        (si.v6, si.typ, si.code, si.rest),
        "{name}: type, code and MTU kept"
    );
    let inner = gi.inner.as_ref().expect("the quoted packet");
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
    let sent_inner = si.inner.as_ref().unwrap();
    assert_eq!(inner.payload, sent_inner.payload, "{name}: quoted payload kept");
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
    let case = Case::new(mode, proto, fam);
    let mut lab = Lab::new(case, 32);
    // TCP up to the request; UDP four rounds, so the quoted datagrams carry no UOA (an error
    // quoting a datagram with UOA is not covered here).
    lab.run(proto == Proto::Udp);
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
        check_quote(&name, &sent, o, (f.client, f.cport, f.dst.0, f.dst.1), seq_ack);

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
        check_quote(&name, &sent, o, (server, case.server_port(), seen.0, seen.1), seq_ack);
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
