//! A synproxy FNAT service through the whole graph as `rvs replay` runs it: the balancer
//! answers the client's SYN with a cookie SYN-ACK and creates nothing; the client's ACK
//! with a valid cookie makes the connection and a SYN to the real server; the server's
//! SYN-ACK is acknowledged by the balancer and the held ACK released; data then flows both
//! ways with sequence numbers adjusted so each side sees its own numbers acknowledged.

use std::net::{IpAddr, Ipv4Addr};

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{Decoded, decode_checked};

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const RS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 130, 7);
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

const CONFIG: &str = r#"
[defence]
tcp_drop = true

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

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]
synproxy = true

[[service.dest]]
ip = "198.18.1.11"
port = 8080
"#;

fn ip4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("{a}"),
    }
}

struct Net {
    e: Engine,
    t: u64,
}

impl Net {
    fn send(&mut self, f: Vec<u8>) -> Vec<Decoded> {
        self.t += 1_000_000;
        let mut out: Vec<Emitted> = Vec::new();
        self.e
            .feed(&[(self.t, f)], |x| {
                out.push(x);
                Ok(())
            })
            .unwrap();
        out.into_iter()
            .map(|x| {
                assert_eq!(x.port, Some(0));
                decode_checked(&x.bytes).unwrap()
            })
            .collect()
    }
}

fn client(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Pkt::eth(GW_MAC, LB_MAC)
        .ipv4(CLIENT, VIP)
        .tcp(41000, 80)
        .flags(flags)
        .seq(seq)
        .ack(ack);
    if flags & SYN != 0 {
        p = p.mss(1460);
    }
    p.payload(payload).build()
}

#[test]
fn synproxy_handshake_then_data_both_ways() {
    let cfg = Config::parse("sp.toml", CONFIG).unwrap();
    let mut n = Net {
        e: Engine::new(&cfg, 32).unwrap(),
        t: 1_000_000_000,
    };
    let c_isn = 1_000_000u32;

    // 1. SYN: answered by the balancer, nothing created.
    let out = n.send(client(SYN, c_isn, 0, &[]));
    assert_eq!(out.len(), 1);
    let synack = &out[0];
    let t = synack.tcp().unwrap();
    assert_eq!(t.flags, SYN | ACK);
    assert_eq!(t.ack, c_isn + 1, "the cookie SYN-ACK acknowledges the client's SYN");
    assert_eq!(ip4(synack.ip().unwrap().src()), VIP);
    assert_eq!(ip4(synack.ip().unwrap().dst()), CLIENT);
    assert_eq!(synack.eth.as_ref().unwrap().dst, GW_MAC);
    assert!(t.mss().is_some(), "the SYN-ACK carries an MSS");
    let cookie = t.seq;
    assert_eq!(n.e.report().created, 0, "step 1 creates nothing");

    // 2. The client's ACK of the cookie: a connection and a SYN to the real server.
    let out = n.send(client(ACK, c_isn + 1, cookie.wrapping_add(1), &[]));
    assert_eq!(out.len(), 1, "the ACK is held; a SYN goes to the server");
    let rs_syn = &out[0];
    let t = rs_syn.tcp().unwrap();
    assert_eq!(t.flags & (SYN | ACK), SYN);
    assert_eq!(rs_syn.eth.as_ref().unwrap().dst, RS_MAC);
    assert_eq!(ip4(rs_syn.ip().unwrap().dst()), RS);
    assert_eq!(ip4(rs_syn.ip().unwrap().src()), LADDR);
    assert_eq!(t.dport, 8080);
    let (lport, rs_seen_isn) = (t.sport, t.seq);
    assert_eq!(n.e.report().created, 1);

    // 3. The server's SYN-ACK: acknowledged by the balancer; the held ACK released.
    let r_isn = 0x5555_0000u32;
    let f = Pkt::eth(RS_MAC, LB_MAC)
        .ipv4(RS, LADDR)
        .tcp(8080, lport)
        .flags(SYN | ACK)
        .seq(r_isn)
        .ack(rs_seen_isn + 1)
        .mss(1460)
        .build();
    let out = n.send(f);
    assert!(!out.is_empty(), "the server's SYN-ACK is answered");
    for d in &out {
        let t = d.tcp().unwrap();
        assert_eq!(
            d.eth.as_ref().unwrap().dst,
            RS_MAC,
            "nothing from the handshake reaches the client"
        );
        assert_eq!(t.flags & (SYN | 0x04), 0);
        assert_eq!(t.ack, r_isn + 1, "the server sees its SYN acknowledged");
        assert_eq!(t.seq, rs_seen_isn + 1);
    }

    // 4. Data from the client reaches the server with numbers it recognises.
    let req = b"GET / HTTP/1.0\r\n\r\n";
    let out = n.send(client(ACK | PSH, c_isn + 1, cookie.wrapping_add(1), req));
    assert_eq!(out.len(), 1);
    let d = &out[0];
    let t = d.tcp().unwrap();
    assert_eq!(d.payload, req);
    assert_eq!(t.seq, rs_seen_isn + 1);
    assert_eq!(
        t.ack,
        r_isn + 1,
        "the client's ack of the cookie becomes the server's ISN + 1"
    );

    // 5. The server's answer reaches the client with the cookie's numbering.
    let resp = b"HTTP/1.0 200 OK\r\n\r\n";
    let f = Pkt::eth(RS_MAC, LB_MAC)
        .ipv4(RS, LADDR)
        .tcp(8080, lport)
        .flags(ACK | PSH)
        .seq(r_isn + 1)
        .ack(rs_seen_isn + 1 + req.len() as u32)
        .payload(resp)
        .build();
    let out = n.send(f);
    assert_eq!(out.len(), 1);
    let d = &out[0];
    let t = d.tcp().unwrap();
    assert_eq!(ip4(d.ip().unwrap().dst()), CLIENT);
    assert_eq!(ip4(d.ip().unwrap().src()), VIP);
    assert_eq!(d.payload, resp);
    assert_eq!(
        t.seq,
        cookie.wrapping_add(1),
        "the client sees the cookie's sequence space"
    );
    assert_eq!(
        t.ack,
        c_isn + 1 + req.len() as u32,
        "the client sees its request acknowledged"
    );
    let rep = n.e.report();
    for st in &rep.stages {
        for dr in &st.drops {
            // The server's SYN-ACK is consumed by step 3 (the client got the cookie's).
            let want = u64::from(st.name == "synproxy-seq" && dr.reason == "synack_absorbed");
            assert_eq!(dr.count, want, "stage {} dropped for {}", st.name, dr.reason);
        }
    }
}
