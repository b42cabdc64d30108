//! SNAT through `rvs replay`'s engine, closed loop: internal hosts on the `lan` interface
//! reach outside servers through the `wan` interface, matched by DPVS-style match services
//! (source range, destination port range, output interface), and the outside servers answer
//! the SNAT source address and port they saw. Every frame rvs emits is decoded by the test
//! kit's independent decoder (every checksum recomputed from the bytes); every expected field
//! is computed here from the endpoints' own view: a server must see the internal host's
//! sequence numbers and payload from one of the configured SNAT addresses, an internal host
//! must see the server's own address, port, sequence numbers and payload. An ICMP
//! fragmentation-needed from a router past the gateway, quoting what rvs sent, must reach the
//! host quoting what the host sent (path MTU discovery through SNAT). Traffic no match service
//! takes (a port outside the range, a destination routed out of another interface, a source
//! outside the range, a SNAT address itself, a stray reply) goes to the host path untouched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{Decoded, TcpOpt, decode_checked};

const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0xfe];
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 254);
const SNAT_A: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const SNAT_B: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(198, 19, 53, 53);
const LAN_PORT: u16 = 0;
const WAN_PORT: u16 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
/// The lowest port sa_pool hands out.
const PORT_MIN: u16 = 1025;
const FLOWS: usize = 6;

fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 16, 10 + i as u8)
}
fn host_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x16, 0x10 + i as u8]
}
fn server_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 7, 1 + (i % 3) as u8)
}
fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Hosts 0..FLOWS and the UDP host (index 50) are static neighbours on lan.
fn config() -> String {
    let mut s = format!(
        r#"
[[interface]]
name = "lan"
mac = "{lan}"
addresses = ["198.18.16.1/24"]

[[interface]]
name = "wan"
mac = "{wan}"
addresses = ["198.18.2.1/24", "198.18.2.2/24"]

[[neighbor]]
ip = "{GW}"
mac = "{gw}"

[[route]]
prefix = "0.0.0.0/0"
via = "{GW}"

# TCP from the inside range, out through wan, over two SNAT addresses.
[[service]]
protocol = "tcp"
forward = "snat"
scheduler = "rr"
match = {{ src_range = "198.18.16.0-198.18.16.255", oif = "wan" }}

[[service.dest]]
ip = "{SNAT_A}"

[[service.dest]]
ip = "{SNAT_B}"

# DNS only, from the same range, through one address.
[[service]]
protocol = "udp"
forward = "snat"
scheduler = "rr"
match = {{ src_range = "198.18.16.0/24", dst_range = ":53" }}

[[service.dest]]
ip = "{SNAT_B}"
"#,
        lan = mac_text(LAN_MAC),
        wan = mac_text(WAN_MAC),
        gw = mac_text(GW_MAC),
    );
    for i in (0..FLOWS).chain([50]) {
        s += &format!(
            "\n[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\n",
            host_ip(i),
            mac_text(host_mac(i))
        );
    }
    s
}

fn ip4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("unexpected IPv6 {a}"),
    }
}

/// One TCP flow as its two endpoints see it.
#[derive(Debug, Clone, Default)]
struct Flow {
    cport: u16,
    c_isn: u32,
    s_isn: u32,
    /// The source address and port the outside server saw (the SNAT address and port).
    seen_from: Option<(Ipv4Addr, u16)>,
}

struct Net {
    engine: Engine,
    t: u64,
}

/// A frame rvs sent, decoded and checked for the interface it left by.
struct Out {
    port: Option<u16>,
    bytes: Vec<u8>,
    d: Decoded,
}

impl Net {
    fn new() -> Net {
        let cfg = Config::parse("snat.toml", &config()).unwrap();
        Net {
            engine: Engine::new(&cfg, 32).unwrap(),
            t: 1_000_000_000,
        }
    }

    /// Feed frames arriving at the balancer; return what it emitted, decoded (the host path
    /// included, as `port: None`).
    fn send(&mut self, frames: Vec<Vec<u8>>) -> Vec<Out> {
        let recs: Vec<(u64, Vec<u8>)> = frames
            .into_iter()
            .map(|f| {
                self.t += 1_000;
                (self.t, f)
            })
            .collect();
        let mut out: Vec<Emitted> = Vec::new();
        self.engine
            .feed(&recs, |e| {
                out.push(e);
                Ok(())
            })
            .unwrap();
        self.t += 1_000_000;
        out.into_iter()
            .map(|e| {
                let d = decode_checked(&e.bytes).unwrap_or_else(|err| panic!("bad frame from rvs: {err}"));
                if let Some(port) = e.port {
                    let eth = d.eth.clone().unwrap();
                    let want = if port == WAN_PORT { WAN_MAC } else { LAN_MAC };
                    assert_eq!(eth.src, want, "source MAC is the output interface's");
                }
                Out {
                    port: e.port,
                    bytes: e.bytes,
                    d,
                }
            })
            .collect()
    }
}

fn host_frame(i: usize, f: &Flow, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Pkt::eth(host_mac(i), LAN_MAC)
        .ipv4(host_ip(i), server_ip(i))
        .ttl(64)
        .tcp(f.cport, 443)
        .flags(flags)
        .seq(seq)
        .ack(ack)
        .window(4000 + i as u16);
    if flags & SYN != 0 {
        p = p.mss(1460).timestamps(900 + i as u32, 0);
    }
    p.payload(payload).build()
}

/// The outside server's frame back to whoever it saw (through the gateway, onto wan).
fn server_frame(i: usize, f: &Flow, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let (to, to_port) = f.seen_from.expect("the server saw the SYN");
    let mut p = Pkt::eth(GW_MAC, WAN_MAC)
        .ipv4(server_ip(i), to)
        .ttl(50)
        .tcp(443, to_port)
        .flags(flags)
        .seq(seq)
        .ack(ack)
        .window(8000 + i as u16);
    if flags & SYN != 0 {
        p = p.mss(1400);
    }
    p.payload(payload).build()
}

/// Check a frame rvs sent toward an outside server for flow `i`: it leaves by wan to the
/// gateway, from a SNAT address, to the server's own address and port, TTL one less.
fn at_server(o: &Out, i: usize) -> (Ipv4Addr, u16) {
    assert_eq!(o.port, Some(WAN_PORT), "outbound SNAT leaves by wan");
    assert_eq!(o.d.eth.as_ref().unwrap().dst, GW_MAC, "to the default gateway");
    let ip = o.d.ipv4().expect("IPv4");
    let tcp = o.d.tcp().expect("TCP");
    assert_eq!(
        (ip.dst, tcp.dport),
        (server_ip(i), 443),
        "the original destination stays"
    );
    assert_eq!(ip.ttl, 63, "routed: TTL decremented once");
    assert!(
        [SNAT_A, SNAT_B].contains(&ip.src),
        "source is a SNAT address, got {}",
        ip.src
    );
    assert!(tcp.sport >= PORT_MIN, "source port from the pool, got {}", tcp.sport);
    (ip.src, tcp.sport)
}

/// Check a frame rvs sent toward internal host `i`: it leaves by lan to the host's MAC,
/// from the server's own address and port, to the host's address and port.
fn at_host(o: &Out, i: usize, f: &Flow) {
    assert_eq!(o.port, Some(LAN_PORT), "replies leave by lan");
    assert_eq!(o.d.eth.as_ref().unwrap().dst, host_mac(i));
    let ip = o.d.ipv4().expect("IPv4");
    let tcp = o.d.tcp().expect("TCP");
    assert_eq!(
        (ip.src, tcp.sport),
        (server_ip(i), 443),
        "the server's own address and port"
    );
    assert_eq!((ip.dst, tcp.dport), (host_ip(i), f.cport), "back to the internal host");
    assert_eq!(ip.ttl, 49, "routed: TTL decremented once");
}

/// The flow a frame to the server belongs to, by the window the host sent (SNAT leaves
/// the TCP header alone but for the port).
fn flow_of(o: &Out) -> usize {
    (o.d.tcp().unwrap().window - 4000) as usize
}

#[test]
fn snat_tcp_closed_loop_through_two_source_addresses() {
    let mut net = Net::new();
    let mut flows: Vec<Flow> = (0..FLOWS)
        .map(|i| Flow {
            cport: 30000 + 7 * i as u16,
            c_isn: 0x0100_0000u32.wrapping_mul(i as u32 + 3).wrapping_add(11),
            s_isn: 0x7000_0000u32.wrapping_add(4099 * i as u32),
            seen_from: None,
        })
        .collect();

    // 1. SYNs from the inside: out on wan, sources from the SNAT addresses.
    let syns = (0..FLOWS)
        .map(|i| host_frame(i, &flows[i], SYN, flows[i].c_isn, 0, &[]))
        .collect();
    let outs = net.send(syns);
    assert_eq!(outs.len(), FLOWS, "one SYN per flow leaves");
    // Local ports come from per-real-server pools (DPVS's sa_pool): toward one outside server
    // every flow has its own source address and port; toward different ones they may repeat.
    let mut by_seen: HashMap<(Ipv4Addr, (Ipv4Addr, u16)), usize> = HashMap::new();
    let mut syn_bytes: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut order = Vec::new();
    for o in &outs {
        let i = flow_of(o);
        let seen = at_server(o, i);
        let tcp = o.d.tcp().unwrap();
        assert_eq!(tcp.flags, SYN);
        assert_eq!(tcp.seq, flows[i].c_isn, "SNAT leaves sequence numbers alone");
        assert_eq!(tcp.mss(), Some(1460));
        assert!(
            tcp.options
                .iter()
                .any(|o| matches!(o, TcpOpt::Timestamps(v, 0) if *v == 900 + i as u32)),
            "SNAT leaves the SYN's options alone"
        );
        assert!(
            by_seen.insert((server_ip(i), seen), i).is_none(),
            "each flow its own address and port toward its server"
        );
        syn_bytes.insert(i, o.bytes.clone());
        flows[i].seen_from = Some(seen);
        order.push((i, seen.0));
    }
    // rr over two equal addresses: flows in arrival order alternate, three each.
    order.sort();
    for w in order.windows(2) {
        assert_ne!(w[0].1, w[1].1, "rr alternates between the SNAT addresses: {order:?}");
    }
    let per_addr: BTreeMap<Ipv4Addr, usize> = order.iter().fold(BTreeMap::new(), |mut m, (_, a)| {
        *m.entry(*a).or_default() += 1;
        m
    });
    assert_eq!(
        per_addr.values().copied().collect::<Vec<_>>(),
        vec![FLOWS / 2, FLOWS / 2]
    );

    // 2. The servers' SYN-ACKs to the address and port they saw: back to the hosts.
    let synacks = (0..FLOWS)
        .map(|i| {
            server_frame(
                i,
                &flows[i],
                SYN | ACK,
                flows[i].s_isn,
                flows[i].c_isn.wrapping_add(1),
                &[],
            )
        })
        .collect();
    let outs = net.send(synacks);
    assert_eq!(outs.len(), FLOWS);
    let mut answered = BTreeSet::new();
    for o in &outs {
        let tcp = o.d.tcp().unwrap();
        let i = (tcp.window - 8000) as usize;
        at_host(o, i, &flows[i]);
        assert_eq!(tcp.flags, SYN | ACK);
        assert_eq!((tcp.seq, tcp.ack), (flows[i].s_isn, flows[i].c_isn.wrapping_add(1)));
        assert_eq!(tcp.mss(), Some(1400), "no MSS clamping without TOA");
        answered.insert(i);
    }
    assert_eq!(answered.len(), FLOWS);

    // Path MTU discovery: a router past the gateway answers flow 0's SYN (as rvs sent it)
    // with fragmentation needed, to the SNAT address. The host must get it about its own
    // packet: quoted source its own address and port, from the server it wrote to.
    let syn0 = syn_bytes.get(&0).expect("flow 0's SYN").clone();
    let err = Pkt::eth(GW_MAC, WAN_MAC)
        .ipv4(Ipv4Addr::new(198, 19, 0, 1), flows[0].seen_from.unwrap().0)
        .ttl(60)
        .icmp_frag_needed(1280, &syn0[14..])
        .build();
    let outs = net.send(vec![err]);
    assert_eq!(
        outs.len(),
        1,
        "the error is translated, not dropped or sent to the host"
    );
    let o = &outs[0];
    assert_eq!((o.port, o.d.eth.as_ref().unwrap().dst), (Some(LAN_PORT), host_mac(0)));
    let ip = o.d.ipv4().unwrap();
    assert_eq!(
        (ip.src, ip.dst),
        (server_ip(0), host_ip(0)),
        "as IPVS: from the quoted destination"
    );
    let icmp = o.d.icmp().unwrap();
    assert_eq!((icmp.typ, icmp.code, icmp.mtu()), (3, 4, 1280));
    let inner = icmp.inner.as_ref().expect("the quoted packet");
    let (iip, itcp) = (inner.ipv4().unwrap(), inner.tcp().unwrap());
    assert_eq!(
        (iip.src, itcp.sport),
        (host_ip(0), flows[0].cport),
        "the host's own address and port"
    );
    assert_eq!((iip.dst, itcp.dport, itcp.seq), (server_ip(0), 443, flows[0].c_isn));

    // 3. Hosts' ACK with a request; 4. the servers' response with FIN.
    let req = |i: usize| format!("GET /{i} HTTP/1.0\r\n\r\n").into_bytes();
    let resp = |i: usize| format!("HTTP/1.0 200 OK\r\n\r\nflow {i}").into_bytes();
    let frames = (0..FLOWS)
        .map(|i| {
            let f = &flows[i];
            host_frame(
                i,
                f,
                ACK | PSH,
                f.c_isn.wrapping_add(1),
                f.s_isn.wrapping_add(1),
                &req(i),
            )
        })
        .collect();
    let outs = net.send(frames);
    assert_eq!(outs.len(), FLOWS);
    for o in &outs {
        let i = flow_of(o);
        assert_eq!(
            at_server(o, i),
            flows[i].seen_from.unwrap(),
            "the flow keeps its address and port"
        );
        assert_eq!(o.d.payload, req(i));
        assert_eq!(o.d.tcp().unwrap().seq, flows[i].c_isn.wrapping_add(1));
    }
    let frames = (0..FLOWS)
        .map(|i| {
            let f = &flows[i];
            let ack = f.c_isn.wrapping_add(1 + req(i).len() as u32);
            server_frame(i, f, ACK | PSH | FIN, f.s_isn.wrapping_add(1), ack, &resp(i))
        })
        .collect();
    let outs = net.send(frames);
    assert_eq!(outs.len(), FLOWS);
    for o in &outs {
        let tcp = o.d.tcp().unwrap();
        let i = (tcp.window - 8000) as usize;
        at_host(o, i, &flows[i]);
        assert_eq!(o.d.payload, resp(i));
        assert_eq!(tcp.flags, ACK | PSH | FIN);
        assert_eq!(tcp.ack, flows[i].c_isn.wrapping_add(1 + req(i).len() as u32));
    }

    // 5. Hosts close; the servers' last ACK comes back.
    let frames = (0..FLOWS)
        .map(|i| {
            let f = &flows[i];
            let seq = f.c_isn.wrapping_add(1 + req(i).len() as u32);
            let ack = f.s_isn.wrapping_add(2 + resp(i).len() as u32);
            host_frame(i, f, ACK | FIN, seq, ack, &[])
        })
        .collect();
    let outs = net.send(frames);
    assert_eq!(outs.len(), FLOWS);
    for o in &outs {
        let i = flow_of(o);
        assert_eq!(at_server(o, i), flows[i].seen_from.unwrap());
        assert_eq!(o.d.tcp().unwrap().flags, ACK | FIN);
    }
    let frames = (0..FLOWS)
        .map(|i| {
            let f = &flows[i];
            let seq = f.s_isn.wrapping_add(2 + resp(i).len() as u32);
            let ack = f.c_isn.wrapping_add(2 + req(i).len() as u32);
            server_frame(i, f, ACK, seq, ack, &[])
        })
        .collect();
    let outs = net.send(frames);
    assert_eq!(outs.len(), FLOWS);
    for o in &outs {
        let i = (o.d.tcp().unwrap().window - 8000) as usize;
        at_host(o, i, &flows[i]);
    }

    let rep = net.engine.report();
    assert_eq!((rep.created, rep.connections, rep.host), (FLOWS as u64, FLOWS, 0));
    assert_eq!(rep.packets_out, 6 * FLOWS as u64 + 1);
    let tcp_svc = &rep.services[0];
    assert_eq!(
        (tcp_svc.service.as_str(), tcp_svc.forward.as_str()),
        ("tcp match (ipv4)", "snat")
    );
    let created: Vec<u64> = tcp_svc.dests.iter().map(|d| d.created).collect();
    assert_eq!(
        created,
        vec![FLOWS as u64 / 2, FLOWS as u64 / 2],
        "connections per SNAT address"
    );

    // Expiry returns the ports: after the timeouts the table is empty and the same host
    // flow is translated afresh.
    net.engine.advance(net.t + 400_000_000_000).unwrap();
    let rep = net.engine.report();
    assert_eq!((rep.connections, rep.expired), (0, FLOWS as u64));
    let again = net.send(vec![host_frame(0, &flows[0], SYN, 5, 0, &[])]);
    assert_eq!(again.len(), 1);
    at_server(&again[0], 0);
    assert_eq!(net.engine.report().created, FLOWS as u64 + 1);
}

#[test]
fn snat_udp_both_ways_and_what_no_match_takes_goes_to_the_host() {
    let mut net = Net::new();
    let (host, hport) = (host_ip(50), 5353);
    let query = b"query: example.invalid A".to_vec();
    let answer = b"answer: 198.19.9.9".to_vec();
    let out = net.send(vec![
        Pkt::eth(host_mac(50), LAN_MAC)
            .ipv4(host, DNS)
            .ttl(64)
            .udp(hport, 53)
            .payload(&query)
            .build(),
    ]);
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.port, Some(WAN_PORT));
    let (ip, udp) = (o.d.ipv4().unwrap(), o.d.udp().unwrap());
    assert_eq!(ip.src, SNAT_B, "the UDP service's only address");
    assert!(udp.sport >= PORT_MIN);
    assert_eq!((ip.dst, udp.dport, ip.ttl), (DNS, 53, 63));
    assert_ne!(udp.checksum, 0, "the checksum is kept (and the decoder recomputed it)");
    assert_eq!(o.d.payload, query);
    let lport = udp.sport;

    let back = net.send(vec![
        Pkt::eth(GW_MAC, WAN_MAC)
            .ipv4(DNS, SNAT_B)
            .ttl(60)
            .udp(53, lport)
            .payload(&answer)
            .build(),
    ]);
    assert_eq!(back.len(), 1);
    let o = &back[0];
    assert_eq!((o.port, o.d.eth.as_ref().unwrap().dst), (Some(LAN_PORT), host_mac(50)));
    let (ip, udp) = (o.d.ipv4().unwrap(), o.d.udp().unwrap());
    assert_eq!((ip.src, udp.sport, ip.dst, udp.dport), (DNS, 53, host, hport));
    assert_eq!(o.d.payload, answer);

    // What no match service takes goes to the host path untouched.
    let unmatched = vec![
        // UDP to a port outside dst_range :53.
        Pkt::eth(host_mac(50), LAN_MAC)
            .ipv4(host, DNS)
            .udp(hport, 54)
            .payload(b"x")
            .build(),
        // TCP to a destination routed out of lan (oif is wan).
        Pkt::eth(host_mac(0), LAN_MAC)
            .ipv4(host_ip(0), Ipv4Addr::new(198, 18, 16, 99))
            .tcp(30000, 80)
            .flags(SYN)
            .build(),
        // TCP from outside the source range.
        Pkt::eth(GW_MAC, WAN_MAC)
            .ipv4(Ipv4Addr::new(198, 19, 7, 1), Ipv4Addr::new(198, 19, 8, 1))
            .tcp(30000, 80)
            .flags(SYN)
            .build(),
        // TCP to a SNAT address itself.
        Pkt::eth(host_mac(0), LAN_MAC)
            .ipv4(host_ip(0), SNAT_A)
            .tcp(30001, 443)
            .flags(SYN)
            .build(),
        // A stray reply to a SNAT address and a port no connection holds.
        Pkt::eth(GW_MAC, WAN_MAC)
            .ipv4(Ipv4Addr::new(198, 19, 7, 1), SNAT_A)
            .tcp(443, 40000)
            .flags(ACK)
            .build(),
    ];
    let sent = unmatched.clone();
    let outs = net.send(unmatched);
    assert_eq!(outs.len(), sent.len());
    for (o, s) in outs.iter().zip(&sent) {
        assert_eq!(o.port, None, "to the host path");
        assert_eq!(
            decode_checked(s).unwrap().ip().map(|i| (ip4(i.src()), ip4(i.dst()))),
            o.d.ip().map(|i| (ip4(i.src()), ip4(i.dst()))),
            "untouched"
        );
    }
    let rep = net.engine.report();
    assert_eq!((rep.created, rep.host), (1, sent.len() as u64));
    assert_eq!(rep.schedule.get("host_not_vip"), Some(&(sent.len() as u64)));
}

#[test]
fn snat_over_ipv6_both_ways() {
    use std::net::Ipv6Addr;
    let host: Ipv6Addr = "2001:db8:16::10".parse().unwrap();
    let server: Ipv6Addr = "2001:db8:99::7".parse().unwrap();
    let snat: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    let cfg = format!(
        r#"
[[interface]]
name = "lan"
mac = "{lan}"
addresses = ["2001:db8:16::1/64"]

[[interface]]
name = "wan"
mac = "{wan}"
addresses = ["2001:db8:2::1/64"]

[[neighbor]]
ip = "2001:db8:2::fe"
mac = "{gw}"

[[neighbor]]
ip = "{host}"
mac = "{hm}"

[[route]]
prefix = "::/0"
via = "2001:db8:2::fe"

[[service]]
protocol = "tcp"
forward = "snat"
match = {{ src_range = "2001:db8:16::/64", oif = "wan" }}

[[service.dest]]
ip = "{snat}"
"#,
        lan = mac_text(LAN_MAC),
        wan = mac_text(WAN_MAC),
        gw = mac_text(GW_MAC),
        hm = mac_text(host_mac(0)),
    );
    let mut net = Net {
        engine: Engine::new(&Config::parse("snat6.toml", &cfg).unwrap(), 32).unwrap(),
        t: 1_000_000_000,
    };
    let out = net.send(vec![
        Pkt::eth(host_mac(0), LAN_MAC)
            .ipv6(host, server)
            .hop_limit(64)
            .tcp(41000, 443)
            .flags(SYN)
            .seq(777)
            .mss(1440)
            .build(),
    ]);
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!((o.port, o.d.eth.as_ref().unwrap().dst), (Some(WAN_PORT), GW_MAC));
    let (ip, tcp) = (o.d.ipv6().unwrap(), o.d.tcp().unwrap());
    assert_eq!((ip.src, ip.dst, ip.hop_limit), (snat, server, 63));
    assert!(tcp.sport >= PORT_MIN);
    assert_eq!((tcp.dport, tcp.seq, tcp.flags), (443, 777, SYN));
    let lport = tcp.sport;

    let back = net.send(vec![
        Pkt::eth(GW_MAC, WAN_MAC)
            .ipv6(server, snat)
            .hop_limit(50)
            .tcp(443, lport)
            .flags(SYN | ACK)
            .seq(9000)
            .ack(778)
            .mss(1400)
            .build(),
    ]);
    assert_eq!(back.len(), 1);
    let o = &back[0];
    assert_eq!((o.port, o.d.eth.as_ref().unwrap().dst), (Some(LAN_PORT), host_mac(0)));
    let (ip, tcp) = (o.d.ipv6().unwrap(), o.d.tcp().unwrap());
    assert_eq!((ip.src, ip.dst, ip.hop_limit), (server, host, 49));
    assert_eq!((tcp.sport, tcp.dport, tcp.seq, tcp.ack), (443, 41000, 9000, 778));
    // An IPv4 flow (no IPv4 match service, no IPv4 route) goes to the host path.
    let v4 = net.send(vec![
        Pkt::eth(host_mac(0), LAN_MAC)
            .ipv4(host_ip(0), server_ip(0))
            .tcp(41001, 443)
            .flags(SYN)
            .build(),
    ]);
    assert_eq!(v4.iter().map(|o| o.port).collect::<Vec<_>>(), vec![None]);
}
