//! Golden tests of the first packet path through `rvs replay`'s engine, closed loop: clients
//! and real servers are simulated here, answering what rvs emits, so FNAT, NAT and DR are
//! checked in both directions. Every frame rvs emits is decoded by the test kit's independent
//! decoder, which recomputes every checksum from the bytes; every expected field is computed
//! here from the simulated endpoints' own view (a client must see acknowledgements of its own
//! sequence numbers, a real server must see the client's payload), never read back from rvs.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::{Decoded, decode_checked};

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const VPORT: u16 = 80;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fnat,
    Nat,
    Dr,
}

fn rs_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + i as u8)
}
fn rs_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, 0x11 + i as u8]
}
fn rs_port(mode: Mode) -> u16 {
    if mode == Mode::Dr { VPORT } else { 8080 }
}

fn config(mode: Mode, sched: &str, weights: &[u32], defence: bool) -> String {
    let fwd = match mode {
        Mode::Fnat => "fnat",
        Mode::Nat => "nat",
        Mode::Dr => "dr",
    };
    let mut s = format!(
        r#"
[defence]
tcp_drop = {defence}

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[neighbor]]
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "{sched}"
forward = "{fwd}"
local_addresses = ["198.18.1.1"]
"#
    );
    for (i, w) in weights.iter().enumerate() {
        s += &format!(
            "\n[[service.dest]]\nip = \"{}\"\nport = {}\nweight = {w}\n",
            rs_ip(i),
            rs_port(mode)
        );
    }
    for i in 0..weights.len() {
        let m = rs_mac(i);
        s += &format!(
            "\n[[neighbor]]\nip = \"{}\"\nmac = \"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"\n",
            rs_ip(i),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        );
    }
    s
}

/// One simulated connection: the client's and the real server's own view.
#[derive(Debug, Clone, Default)]
struct Flow {
    client: Option<Ipv4Addr>,
    cport: u16,
    c_isn: u32,
    /// Which real server got it, and the source address and port it saw.
    rs: Option<usize>,
    rs_peer: Option<(Ipv4Addr, u16)>,
    /// The sequence number the real server saw on the SYN (FNAT shifts it).
    rs_seen_isn: u32,
    r_isn: u32,
    /// What each side received, in order (flags, payload).
    client_got: Vec<(u8, Vec<u8>)>,
    rs_got: Vec<(u8, Vec<u8>)>,
    /// Every frame rvs emitted for this flow, in order.
    frames: Vec<Vec<u8>>,
}

const REQ: &[u8] = b"GET /flow HTTP/1.0\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nhello";

struct Net {
    mode: Mode,
    flows: Vec<Flow>,
    engine: Engine,
    t: u64,
    by_client: HashMap<(Ipv4Addr, u16), usize>,
    by_rs_peer: HashMap<(usize, Ipv4Addr, u16), usize>,
}

fn ip4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("unexpected IPv6 {a}"),
    }
}

impl Net {
    fn new(mode: Mode, sched: &str, weights: &[u32], flows: usize, vector: usize) -> Net {
        let cfg = Config::parse("golden.toml", &config(mode, sched, weights, true)).unwrap();
        let engine = Engine::new(&cfg, vector).unwrap();
        let mut fl = Vec::new();
        let mut by_client = HashMap::new();
        for i in 0..flows {
            let client = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 1)) + i as u32);
            let cport = 20000 + (i as u16 * 7) % 40000;
            by_client.insert((client, cport), i);
            fl.push(Flow {
                client: Some(client),
                cport,
                c_isn: 0x1000_0000u32.wrapping_mul(i as u32 + 1).wrapping_add(12345),
                r_isn: 0x7000_0000u32.wrapping_add(977 * i as u32),
                ..Default::default()
            });
        }
        Net {
            mode,
            flows: fl,
            engine,
            t: 1_000_000_000,
            by_client,
            by_rs_peer: HashMap::new(),
        }
    }

    /// Feed frames arriving at the balancer; route what comes out to clients and servers.
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
                assert_eq!(e.port, Some(0), "every frame leaves on port0; the host path got one");
                let d = decode_checked(&e.bytes).unwrap_or_else(|err| panic!("bad frame from rvs: {err}"));
                let eth = d.eth.clone().unwrap();
                assert_eq!(eth.src, LB_MAC, "source MAC is the interface's");
                d
            })
            .inspect(|d| {
                let _ = d;
            })
            .collect()
    }

    fn client_frame(&self, i: usize, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let f = &self.flows[i];
        let mut p = Pkt::eth(GW_MAC, LB_MAC)
            .ipv4(f.client.unwrap(), VIP)
            .tcp(f.cport, VPORT)
            .flags(flags)
            .seq(seq)
            .ack(ack)
            .window(1000 + i as u16);
        if flags & SYN != 0 {
            p = p.mss(1460).timestamps(777 + i as u32, 0);
        }
        p.payload(payload).build()
    }

    /// A frame from real server `rs` back to the peer it saw.
    fn rs_frame(&self, i: usize, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let f = &self.flows[i];
        let rs = f.rs.unwrap();
        let (peer, pport) = f.rs_peer.unwrap();
        let src = if self.mode == Mode::Dr { VIP } else { rs_ip(rs) };
        let mut p = Pkt::eth(rs_mac(rs), LB_MAC)
            .ipv4(src, peer)
            .tcp(rs_port(self.mode), pport)
            .flags(flags)
            .seq(seq)
            .ack(ack);
        if flags & SYN != 0 {
            p = p.mss(1460);
        }
        p.payload(payload).build()
    }

    /// Deliver what rvs emitted: to a real server (by destination MAC) or to a client (via
    /// the gateway). Returns (flow, to_rs, decoded).
    fn deliver(&mut self, outs: Vec<Decoded>) -> Vec<(usize, bool, Decoded)> {
        let mut got = Vec::new();
        for d in outs {
            let eth = d.eth.clone().unwrap();
            let ip = d.ip().unwrap().clone();
            let tcp = d.tcp().unwrap().clone();
            if eth.dst == GW_MAC {
                let dst = ip4(ip.dst());
                let i = *self
                    .by_client
                    .get(&(dst, tcp.dport))
                    .unwrap_or_else(|| panic!("frame to unknown client {dst}:{}", tcp.dport));
                assert_eq!(ip4(ip.src()), VIP, "clients see the VIP as source");
                assert_eq!(tcp.sport, VPORT);
                self.flows[i].client_got.push((tcp.flags, d.payload.clone()));
                got.push((i, false, d));
            } else {
                let rs = (0..8)
                    .find(|&r| rs_mac(r) == eth.dst)
                    .unwrap_or_else(|| panic!("frame to unknown MAC {:?}", eth.dst));
                let dst = ip4(ip.dst());
                match self.mode {
                    Mode::Dr => assert_eq!(dst, VIP, "DR leaves the destination address alone"),
                    _ => assert_eq!(
                        dst,
                        rs_ip(rs),
                        "NAT and FNAT rewrite the destination to the real server"
                    ),
                }
                assert_eq!(tcp.dport, rs_port(self.mode));
                let src = (ip4(ip.src()), tcp.sport);
                let i = if tcp.flags & SYN != 0 {
                    // The client is known by the window it sent (FNAT hides its address).
                    let i = (tcp.window - 1000) as usize;
                    let f = &mut self.flows[i];
                    assert!(
                        f.rs.is_none() || f.rs == Some(rs),
                        "flow {i} moved between real servers"
                    );
                    f.rs = Some(rs);
                    f.rs_peer = Some(src);
                    f.rs_seen_isn = tcp.seq;
                    self.by_rs_peer.insert((rs, src.0, src.1), i);
                    i
                } else {
                    *self
                        .by_rs_peer
                        .get(&(rs, src.0, src.1))
                        .unwrap_or_else(|| panic!("rs {rs} got a frame from unknown {src:?}"))
                };
                match self.mode {
                    Mode::Fnat => assert_eq!(src, (LADDR, src.1), "FNAT sources from the local address"),
                    _ => assert_eq!(
                        src,
                        (self.flows[i].client.unwrap(), self.flows[i].cport),
                        "NAT and DR keep the client"
                    ),
                }
                self.flows[i].rs_got.push((tcp.flags, d.payload.clone()));
                got.push((i, true, d));
            }
        }
        got
    }

    /// Run every flow through handshake, request, response and close.
    fn run(&mut self) {
        let n = self.flows.len();
        // 1. Clients' SYNs.
        let syns: Vec<_> = (0..n)
            .map(|i| self.client_frame(i, SYN, self.flows[i].c_isn, 0, &[]))
            .collect();
        let outs = self.send(syns);
        let got = self.deliver(outs);
        assert_eq!(got.len(), n, "one SYN per flow reaches a real server");
        for (i, to_rs, d) in &got {
            assert!(*to_rs);
            let tcp = d.tcp().unwrap();
            assert_eq!(tcp.flags, SYN);
            assert_eq!(tcp.mss(), Some(1460));
            let has_ts = tcp
                .options
                .iter()
                .any(|o| matches!(o, rvs_testkit::decode::TcpOpt::Timestamps(..)));
            if self.mode == Mode::Fnat {
                assert!(!has_ts, "FNAT replaces the SYN's timestamp option with NOPs");
            } else {
                assert!(has_ts, "NAT and DR leave options alone");
                assert_eq!(tcp.seq, self.flows[*i].c_isn);
            }
            self.flows[*i].frames.push(to_bytes(d));
        }
        // 2. Servers' SYN-ACKs (DR: straight to the client, not through rvs).
        let synacks: Vec<_> = (0..n)
            .map(|i| {
                self.rs_frame(
                    i,
                    SYN | ACK,
                    self.flows[i].r_isn,
                    self.flows[i].rs_seen_isn.wrapping_add(1),
                    &[],
                )
            })
            .collect();
        let mode = self.mode;
        self.exchange_from_rs(synacks, |f, tcp| {
            assert_eq!(tcp.flags, SYN | ACK);
            // FNAT lowers the server's MSS by the TOA length so no packet outgrows the path.
            let mss = if mode == Mode::Fnat { 1460 - 8 } else { 1460 };
            assert_eq!(tcp.mss(), Some(mss), "{mode:?}: MSS the client sees");
            assert_eq!(
                tcp.ack,
                f.c_isn.wrapping_add(1),
                "the client sees its own ISN acknowledged"
            );
            assert_eq!(tcp.seq, f.r_isn);
        });
        // 3. Clients' ACK with the request.
        let reqs: Vec<_> = (0..n)
            .map(|i| {
                let f = &self.flows[i];
                self.client_frame(i, ACK | PSH, f.c_isn.wrapping_add(1), f.r_isn.wrapping_add(1), REQ)
            })
            .collect();
        let outs = self.send(reqs);
        let got = self.deliver(outs);
        assert_eq!(got.len(), n);
        for (i, to_rs, d) in &got {
            assert!(*to_rs);
            let f = &self.flows[*i];
            let tcp = d.tcp().unwrap();
            assert_eq!(d.payload, REQ, "the request arrives intact");
            // FNAT hands the client's address to the server in TOA, in the first packet after
            // the handshake, as DPVS does.
            let want_toa = (self.mode == Mode::Fnat).then(|| (f.cport, IpAddr::V4(f.client.unwrap())));
            assert_eq!(tcp.toa(), want_toa, "{:?}: TOA on the first data packet", self.mode);
            assert_eq!(
                tcp.seq,
                f.rs_seen_isn.wrapping_add(1),
                "sequence numbers stay consistent for the server"
            );
            assert_eq!(tcp.ack, f.r_isn.wrapping_add(1));
            self.flows[*i].frames.push(to_bytes(d));
        }
        // 4. Servers' response with FIN.
        let resps: Vec<_> = (0..n)
            .map(|i| {
                let f = &self.flows[i];
                self.rs_frame(
                    i,
                    ACK | PSH | FIN,
                    f.r_isn.wrapping_add(1),
                    f.rs_seen_isn.wrapping_add(1 + REQ.len() as u32),
                    RESP,
                )
            })
            .collect();
        self.exchange_from_rs(resps, |f, tcp| {
            assert_eq!(
                tcp.ack,
                f.c_isn.wrapping_add(1 + REQ.len() as u32),
                "the client sees its request acknowledged"
            );
        });
        // 5. Clients' FIN-ACK.
        let fins: Vec<_> = (0..n)
            .map(|i| {
                let f = &self.flows[i];
                self.client_frame(
                    i,
                    ACK | FIN,
                    f.c_isn.wrapping_add(1 + REQ.len() as u32),
                    f.r_isn.wrapping_add(2 + RESP.len() as u32),
                    &[],
                )
            })
            .collect();
        let outs = self.send(fins);
        let got = self.deliver(outs);
        assert_eq!(got.len(), n);
        for (i, _, d) in &got {
            let f = &self.flows[*i];
            let tcp = d.tcp().unwrap();
            assert_eq!(tcp.flags, ACK | FIN);
            assert_eq!(tcp.seq, f.rs_seen_isn.wrapping_add(1 + REQ.len() as u32));
            self.flows[*i].frames.push(to_bytes(d));
        }
        // 6. Servers' last ACK.
        let lasts: Vec<_> = (0..n)
            .map(|i| {
                let f = &self.flows[i];
                self.rs_frame(
                    i,
                    ACK,
                    f.r_isn.wrapping_add(2 + RESP.len() as u32),
                    f.rs_seen_isn.wrapping_add(2 + REQ.len() as u32),
                    &[],
                )
            })
            .collect();
        self.exchange_from_rs(lasts, |f, tcp| {
            assert_eq!(tcp.ack, f.c_isn.wrapping_add(2 + REQ.len() as u32));
        });
    }

    /// Frames from real servers: through rvs for NAT and FNAT (checked on the client side
    /// with `check`), straight to the client for DR.
    fn exchange_from_rs(&mut self, frames: Vec<Vec<u8>>, check: impl Fn(&Flow, &rvs_testkit::decode::Tcp)) {
        let n = frames.len();
        if self.mode == Mode::Dr {
            for (i, f) in frames.iter().enumerate() {
                let d = decode_checked(f).unwrap();
                check(&self.flows[i], d.tcp().unwrap());
            }
            return;
        }
        let outs = self.send(frames);
        let got = self.deliver(outs);
        assert_eq!(got.len(), n, "every server frame reaches its client");
        for (i, to_rs, d) in &got {
            assert!(!*to_rs);
            check(&self.flows[*i], d.tcp().unwrap());
            self.flows[*i].frames.push(to_bytes(d));
        }
    }

    fn per_rs(&self) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for f in &self.flows {
            *m.entry(f.rs.unwrap()).or_default() += 1;
        }
        m
    }
}

fn to_bytes(d: &Decoded) -> Vec<u8> {
    // The decoded view is what the test compares across runs; render it canonically.
    format!("{d:?}").into_bytes()
}

fn golden(mode: Mode, sched: &str, weights: &[u32], flows: usize, vector: usize) -> Net {
    let mut net = Net::new(mode, sched, weights, flows, vector);
    net.run();
    let rep = net.engine.report();
    for st in &rep.stages {
        for d in &st.drops {
            assert_eq!(
                d.count, 0,
                "{mode:?}: stage {} dropped {} for {}",
                st.name, d.count, d.reason
            );
        }
    }
    assert_eq!(rep.host, 0, "{mode:?}: nothing went to the host path");
    assert_eq!(rep.created, flows as u64, "{mode:?}: one connection per flow");
    let expect_frames = if mode == Mode::Dr { 3 } else { 6 };
    for (i, f) in net.flows.iter().enumerate() {
        assert_eq!(f.frames.len(), expect_frames, "{mode:?}: flow {i} frames through rvs");
        assert_eq!(
            f.rs_got.len(),
            3,
            "{mode:?}: flow {i}: SYN, request and FIN reach the server"
        );
    }
    if mode == Mode::Fnat {
        let shifted = net.flows.iter().filter(|f| f.rs_seen_isn != f.c_isn).count();
        assert!(
            shifted * 10 > flows * 9,
            "FNAT shifts client sequence numbers ({shifted} of {flows})"
        );
        // Local ports come from DPVS's per-real-server pools: a port may serve connections to
        // several real servers at once, but toward one real server every connection has its own
        // (local address, port), so the real server's 5-tuples never collide.
        let tuples: std::collections::HashSet<(usize, Ipv4Addr, u16)> = net
            .flows
            .iter()
            .map(|f| (f.rs.unwrap(), f.rs_peer.unwrap().0, f.rs_peer.unwrap().1))
            .collect();
        assert_eq!(
            tuples.len(),
            flows,
            "FNAT gives every connection its own local address and port per real server"
        );
    }
    net
}

#[test]
fn fnat_rr_closed_loop() {
    let net = golden(Mode::Fnat, "rr", &[1, 1, 1], 300, 32);
    assert_eq!(
        net.per_rs().values().copied().collect::<Vec<_>>(),
        vec![100, 100, 100],
        "rr is exactly even"
    );
}

#[test]
fn nat_rr_closed_loop() {
    let net = golden(Mode::Nat, "rr", &[1, 1, 1], 300, 32);
    assert_eq!(net.per_rs().values().copied().collect::<Vec<_>>(), vec![100, 100, 100]);
}

#[test]
fn dr_wrr_closed_loop() {
    let net = golden(Mode::Dr, "wrr", &[3, 2, 1], 300, 32);
    assert_eq!(
        net.per_rs().values().copied().collect::<Vec<_>>(),
        vec![150, 100, 50],
        "wrr in proportion to weights"
    );
}

#[test]
fn fnat_wrr_closed_loop() {
    let net = golden(Mode::Fnat, "wrr", &[3, 2, 1], 300, 256);
    assert_eq!(net.per_rs().values().copied().collect::<Vec<_>>(), vec![150, 100, 50]);
}

#[test]
fn vector_size_changes_nothing() {
    for mode in [Mode::Fnat, Mode::Nat, Mode::Dr] {
        let base = golden(mode, "rr", &[1, 1, 1], 120, 1);
        for v in [2, 32, 256] {
            let other = golden(mode, "rr", &[1, 1, 1], 120, v);
            for (i, (a, b)) in base.flows.iter().zip(other.flows.iter()).enumerate() {
                assert_eq!(a.rs, b.rs, "{mode:?} vector {v}: flow {i} on another server");
                assert_eq!(a.frames, b.frames, "{mode:?} vector {v}: flow {i} frames differ");
            }
            assert_eq!(base.engine.report().created, other.engine.report().created);
        }
    }
}
