//! ICMP echo forwarded through ICMP services, whole graph through `rvs replay`'s engine
//! (parse, lookup, schedule's `icmp_conn_sched`, conn-new, xmit), closed loop: the clients and
//! real servers are simulated here and answer what rvs emits. Every frame rvs emits goes
//! through the test kit's independent decoder (every checksum recomputed from the bytes, the
//! quoted ones included); what each side must see is computed from its own view.
//!
//! - FNAT (`protocol = "icmp"`, no port): each client's echo requests reach a real server
//!   (round robin) from the local address with a local port as identifier, payload and
//!   sequence kept; the server's replies reach the client with its own identifier; a time
//!   exceeded from a router near the server reaches the client quoting the client's own
//!   request.
//! - NAT: the identifier and the client's address are kept toward the real server.
//! - Echo to a VIP with only a TCP service is still answered by the balancer itself.

use std::net::Ipv4Addr;

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{Decoded, decode_checked};

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
const FNAT_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const NAT_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
const TCP_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 102);
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 250);

fn rs(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + i as u8)
}

const CONFIG: &str = r#"
[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[neighbor]]
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"

[[neighbor]]
ip = "198.18.1.12"
mac = "02:00:00:00:01:11"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[[service]]
protocol = "icmp"
vip = "198.18.0.100"
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]

[[service.dest]]
ip = "198.18.1.11"

[[service.dest]]
ip = "198.18.1.12"

[[service]]
protocol = "icmp"
vip = "198.18.0.101"
port = 0
scheduler = "wlc"
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"

[[service]]
protocol = "tcp"
vip = "198.18.0.102"
port = 80
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"
port = 80
"#;

struct Net {
    engine: Engine,
    t: u64,
}

impl Net {
    fn new() -> Net {
        let cfg = Config::parse("icmp.toml", CONFIG).unwrap();
        Net {
            engine: Engine::new(&cfg, 32).unwrap(),
            t: 1_000_000_000,
        }
    }
    /// Feed frames; every frame rvs emits, decoded (checksums verified) with its bytes.
    fn send(&mut self, frames: Vec<Vec<u8>>) -> Vec<Decoded> {
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
                assert_eq!(e.port, Some(0), "host path got a frame");
                decode_checked(&e.bytes).unwrap_or_else(|err| panic!("bad frame from rvs: {err}"))
            })
            .collect()
    }
}

fn client(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 128, 1 + i as u8)
}

fn payload(i: usize, seq: u16) -> Vec<u8> {
    format!("ping {i} {seq} abcdefghijklmnop").into_bytes()
}

/// (source, destination, type, identifier, sequence, payload) of an emitted echo message.
fn echo_of(d: &Decoded) -> (Ipv4Addr, Ipv4Addr, u8, u16, u16, Vec<u8>) {
    let ip = d.ipv4().expect("IPv4");
    let icmp = d.icmp().expect("ICMP");
    assert!(!icmp.v6);
    (ip.src, ip.dst, icmp.typ, icmp.id(), icmp.seq(), d.payload.clone())
}

#[test]
fn fnat_echo_closed_loop_with_an_error_quoting_the_request() {
    let mut net = Net::new();
    const CLIENTS: usize = 4;
    let ids: Vec<u16> = (0..CLIENTS).map(|i| 0x4000 + 17 * i as u16).collect();
    // Round 1 and 2: each client pings twice (two sequence numbers, one identifier).
    let mut seen_by_rs: Vec<Option<(usize, u16)>> = vec![None; CLIENTS];
    for seq in 1..=2u16 {
        let reqs = (0..CLIENTS)
            .map(|i| {
                Pkt::eth(GW_MAC, LB_MAC)
                    .ipv4(client(i), FNAT_VIP)
                    .icmp_echo_request(ids[i], seq)
                    .payload(&payload(i, seq))
                    .build()
            })
            .collect();
        let got = net.send(reqs);
        assert_eq!(got.len(), CLIENTS);
        let mut replies = Vec::new();
        for d in &got {
            let (src, dst, typ, id, s, data) = echo_of(d);
            assert_eq!(
                (src, typ, s),
                (LADDR, 8, seq),
                "from the local address, a request, seq kept"
            );
            assert_eq!(d.eth.as_ref().unwrap().dst, RS_MAC);
            // Which client: by the payload the client itself wrote.
            let i = (0..CLIENTS)
                .find(|&i| payload(i, seq) == data)
                .expect("a client's payload");
            let r = (0..2).find(|&r| rs(r) == dst).expect("a real server");
            assert_ne!(id, 0);
            // One connection per client: the same server and identifier for every request.
            match seen_by_rs[i] {
                None => seen_by_rs[i] = Some((r, id)),
                Some(prev) => assert_eq!(prev, (r, id), "client {i}: same server, same identifier"),
            }
            replies.push(
                Pkt::eth(RS_MAC, LB_MAC)
                    .ipv4(dst, src)
                    .icmp_echo_reply(id, s)
                    .payload(&data)
                    .build(),
            );
        }
        let back = net.send(replies);
        assert_eq!(back.len(), CLIENTS);
        for d in &back {
            let (src, dst, typ, id, s, data) = echo_of(d);
            let i = (0..CLIENTS).find(|&i| client(i) == dst).expect("a client");
            assert_eq!(d.eth.as_ref().unwrap().dst, GW_MAC);
            assert_eq!((src, typ, id, s, data), (FNAT_VIP, 0, ids[i], seq, payload(i, seq)));
        }
    }
    // Round robin over the two real servers; each flow a distinct (server, local port) pair
    // (the local ports come from per-real-server pools, as DPVS's sa_pool).
    let servers: Vec<usize> = seen_by_rs.iter().map(|x| x.unwrap().0).collect();
    assert_eq!(servers.iter().filter(|&&r| r == 0).count(), CLIENTS / 2);
    let mut pairs: Vec<(usize, u16)> = seen_by_rs.iter().map(|x| x.unwrap()).collect();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), CLIENTS);

    // A router near client 0's server: the request it was sent timed out.
    let (r, lport) = seen_by_rs[0].unwrap();
    let quoted = Pkt::l3()
        .ipv4(LADDR, rs(r))
        .ttl(1)
        .icmp_echo_request(lport, 3)
        .payload(&payload(0, 3))
        .build();
    let err = Pkt::eth(RS_MAC, LB_MAC)
        .ipv4(ROUTER, LADDR)
        .icmp_time_exceeded(0, &quoted)
        .build();
    let got = net.send(vec![err]);
    assert_eq!(got.len(), 1);
    let d = &got[0];
    let ip = d.ipv4().unwrap();
    assert_eq!((ip.src, ip.dst), (FNAT_VIP, client(0)));
    let icmp = d.icmp().unwrap();
    assert_eq!((icmp.typ, icmp.code), (11, 0));
    // The quote is what client 0 sent: its address, the VIP, its identifier.
    let inner = icmp.inner.as_ref().expect("a quoted packet");
    let iip = inner.ipv4().unwrap();
    assert_eq!((iip.src, iip.dst), (client(0), FNAT_VIP));
    let iicmp = inner.icmp().unwrap();
    assert_eq!((iicmp.typ, iicmp.id(), iicmp.seq()), (8, ids[0], 3));
    assert_eq!(inner.payload, payload(0, 3));

    let report = net.engine.report();
    assert_eq!(report.created, CLIENTS as u64);
    assert_eq!(report.connections, CLIENTS);
}

#[test]
fn nat_keeps_the_identifier_and_a_tcp_vip_still_answers_echo_itself() {
    let mut net = Net::new();
    let c = client(9);
    let req = Pkt::eth(GW_MAC, LB_MAC)
        .ipv4(c, NAT_VIP)
        .icmp_echo_request(0x77, 1)
        .payload(b"nat ping")
        .build();
    let got = net.send(vec![req]);
    assert_eq!(got.len(), 1);
    let (src, dst, typ, id, seq, data) = echo_of(&got[0]);
    assert_eq!(
        (src, dst, typ, id, seq, data.as_slice()),
        (c, rs(0), 8, 0x77, 1, &b"nat ping"[..])
    );
    let reply = Pkt::eth(RS_MAC, LB_MAC)
        .ipv4(rs(0), c)
        .icmp_echo_reply(0x77, 1)
        .payload(b"nat ping")
        .build();
    let got = net.send(vec![reply]);
    let (src, dst, typ, id, ..) = echo_of(&got[0]);
    assert_eq!((src, dst, typ, id), (NAT_VIP, c, 0, 0x77));

    // No ICMP service on this VIP: the balancer answers (addresses swapped, type 0).
    let req = Pkt::eth(GW_MAC, LB_MAC)
        .ipv4(c, TCP_VIP)
        .icmp_echo_request(0x78, 5)
        .payload(b"to the balancer")
        .build();
    let got = net.send(vec![req]);
    assert_eq!(got.len(), 1);
    let (src, dst, typ, id, seq, data) = echo_of(&got[0]);
    assert_eq!(
        (src, dst, typ, id, seq, data.as_slice()),
        (TCP_VIP, c, 0, 0x78, 5, &b"to the balancer"[..])
    );
    assert_eq!(net.engine.report().created, 1);
}

#[test]
fn icmp_service_config_errors_name_the_rule() {
    let bad_port = CONFIG.replacen("port = 0\n", "port = 7\n", 1);
    let e = Config::parse("icmp.toml", &bad_port).unwrap_err();
    assert!(e.msg.contains("has no port"), "{e}");
    let bad_family = CONFIG.replacen("protocol = \"icmp\"", "protocol = \"icmpv6\"", 1);
    let e = Config::parse("icmp.toml", &bad_family).unwrap_err();
    assert!(e.msg.contains("needs an IPv6 address"), "{e}");
    let no_port_tcp = CONFIG.replacen("port = 80\n", "", 1);
    let e = Config::parse("icmp.toml", &no_port_tcp).unwrap_err();
    assert!(e.msg.contains("missing field `port`"), "{e}");
}
