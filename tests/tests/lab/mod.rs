//! A simulated network around one `rvs replay` engine, for the closed-loop matrix tests
//! (`replay_matrix.rs`) and the ICMP error tests (`replay_icmp.rs`).
//!
//! Topology (one configuration text per case, one service in it):
//!
//! ```text
//! clients 198.18.128.0/24, 2001:db8:80::/64          outside servers 198.19.7.0/24, 2001:db8:99::/64
//!            \  (gateway 198.18.0.254, 2001:db8::fe)  /
//!   wan (port 0): 198.18.0.1 .11 .12, 2001:db8::1 ::11 ::12    VIPs 198.18.0.100, 2001:db8::100
//!   lan (port 1): 198.18.1.1 .2, 2001:db8:1::1 ::2
//!            /                                        \
//! real servers 198.18.1.11.., 2001:db8:1::11..        internal hosts 198.18.1.64.., 2001:db8:1::64..
//! ```
//!
//! VIP modes (FNAT, NAT, DR, TUNNEL, NAT64) take clients on wan to real servers on lan; SNAT
//! takes internal hosts on lan to outside servers behind the gateway on wan, through the
//! SNAT addresses wan .11 and .12. Every frame rvs emits is decoded by the test kit's
//! independent decoder ([`decode_checked`]: every checksum recomputed from the bytes, both
//! layers of a tunnel and the quoted packet of an ICMP error included), and every expected
//! field is computed here from the endpoints' own view: what a client sent and must see
//! answered, what a server must see from the peer it knows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::csum;
use rvs_testkit::decode::{Decoded, Ip, TcpOpt, decode_checked};
use rvs_testkit::pcap::{self, Record, Resolution};

pub const WAN: u16 = 0;
pub const LAN: u16 = 1;
pub const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const VPORT: u16 = 80;
/// The real servers' port for NAT, FNAT and NAT64 (DR and TUNNEL keep the VIP port).
pub const RPORT: u16 = 8080;
/// The outside servers' port for SNAT.
pub const SPORT: u16 = 443;
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const PSH: u8 = 0x08;
/// Servers of each case (real servers, or outside servers for SNAT).
pub const SERVERS: usize = 3;
/// Flows of each case.
pub const FLOWS: usize = 6;
/// The lowest local port sa_pool hands out.
pub const PORT_MIN: u16 = 1025;
/// TTL / hop limit of every packet the simulated endpoints send.
pub const TTL: u8 = 64;
/// TOS / traffic class clients and servers send.
pub const C_TOS: u8 = 0x20;
pub const S_TOS: u8 = 0x08;
pub const REQ: &[u8] = b"GET /matrix HTTP/1.0\r\n\r\n";
pub const RESP: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nhello from the server";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fnat,
    Nat,
    Dr,
    Tunnel,
    /// FNAT with an IPv6 VIP and IPv4 local and real-server addresses.
    Nat64,
    Snat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One cell of the matrix: mode, protocol, and the client side's address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub mode: Mode,
    pub proto: Proto,
    pub fam: Fam,
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("an IPv6 literal"))
}
fn v6_last(prefix: &str, last: u16) -> IpAddr {
    v6(&format!("{prefix}{last:x}"))
}
pub fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
pub fn rs_mac(s: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, 0x11 + s as u8]
}
pub fn host_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x16, 0x64 + i as u8]
}

/// An IP layer of the right family.
pub fn ip_layer(p: Pkt, src: IpAddr, dst: IpAddr) -> Pkt {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => p.ipv4(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => p.ipv6(s, d),
        _ => panic!("mixed families {src} -> {dst}"),
    }
}

pub fn add(a: u32, b: u32) -> u32 {
    a.wrapping_add(b)
}

impl Case {
    pub fn new(mode: Mode, proto: Proto, fam: Fam) -> Self {
        Case { mode, proto, fam }
    }
    pub fn name(&self) -> String {
        let m = format!("{:?}", self.mode).to_lowercase();
        let p = format!("{:?}", self.proto).to_lowercase();
        let f = match (self.mode, self.fam) {
            (Mode::Nat64, _) => "ipv6-ipv4",
            (_, Fam::V4) => "ipv4",
            (_, Fam::V6) => "ipv6",
        };
        format!("{m}-{p}-{f}")
    }
    pub fn v6(&self) -> bool {
        self.fam == Fam::V6
    }
    /// The servers' family (IPv4 for NAT64).
    pub fn server_v6(&self) -> bool {
        self.v6() && self.mode != Mode::Nat64
    }
    pub fn snat(&self) -> bool {
        self.mode == Mode::Snat
    }
    /// The balancer sees replies (NAT, FNAT, NAT64, SNAT), not only the inbound half.
    pub fn both_ways(&self) -> bool {
        !matches!(self.mode, Mode::Dr | Mode::Tunnel)
    }
    /// The source address rvs gives the server a new local port for (FNAT, NAT64, SNAT).
    pub fn local_port(&self) -> bool {
        matches!(self.mode, Mode::Fnat | Mode::Nat64 | Mode::Snat)
    }
    pub fn vip(&self) -> IpAddr {
        if self.v6() {
            v6("2001:db8::100")
        } else {
            v4([198, 18, 0, 100])
        }
    }
    pub fn client(&self, i: usize) -> IpAddr {
        match (self.snat(), self.v6()) {
            (true, false) => v4([198, 18, 1, 64 + i as u8]),
            (true, true) => v6_last("2001:db8:1::", 0x64 + i as u16),
            (false, false) => v4([198, 18, 128, 1 + i as u8]),
            (false, true) => v6_last("2001:db8:80::", 1 + i as u16),
        }
    }
    pub fn client_mac(&self, i: usize) -> [u8; 6] {
        if self.snat() { host_mac(i) } else { GW_MAC }
    }
    /// The interface clients are behind.
    pub fn client_iface(&self) -> u16 {
        if self.snat() { LAN } else { WAN }
    }
    pub fn server_iface(&self) -> u16 {
        if self.snat() { WAN } else { LAN }
    }
    pub fn iface_mac(port: u16) -> [u8; 6] {
        if port == WAN { WAN_MAC } else { LAN_MAC }
    }
    pub fn server(&self, s: usize) -> IpAddr {
        match (self.snat(), self.server_v6()) {
            (true, false) => v4([198, 19, 7, 1 + s as u8]),
            (true, true) => v6_last("2001:db8:99::", 1 + s as u16),
            (false, false) => v4([198, 18, 1, 11 + s as u8]),
            (false, true) => v6_last("2001:db8:1::", 0x11 + s as u16),
        }
    }
    /// The MAC frames toward server `s` go to.
    pub fn server_mac(&self, s: usize) -> [u8; 6] {
        if self.snat() { GW_MAC } else { rs_mac(s) }
    }
    pub fn server_port(&self) -> u16 {
        match self.mode {
            Mode::Snat => SPORT,
            Mode::Dr | Mode::Tunnel => VPORT,
            _ => RPORT,
        }
    }
    /// Where client `i` sends: the VIP, or (SNAT) outside server `i % SERVERS` directly.
    pub fn client_dst(&self, i: usize) -> (IpAddr, u16) {
        if self.snat() {
            (self.server(i % SERVERS), SPORT)
        } else {
            (self.vip(), VPORT)
        }
    }
    /// FNAT/NAT64 local addresses, or the SNAT source addresses.
    pub fn laddrs(&self) -> Vec<IpAddr> {
        match (self.mode, self.v6()) {
            (Mode::Snat, false) => vec![v4([198, 18, 0, 11]), v4([198, 18, 0, 12])],
            (Mode::Snat, true) => vec![v6("2001:db8::11"), v6("2001:db8::12")],
            (Mode::Fnat, true) => vec![v6("2001:db8:1::1"), v6("2001:db8:1::2")],
            _ => vec![v4([198, 18, 1, 1]), v4([198, 18, 1, 2])],
        }
    }
    /// The outer source of a tunnel to a real server: lan's first address of its family.
    pub fn tunnel_src(&self) -> IpAddr {
        if self.server_v6() {
            v6("2001:db8:1::1")
        } else {
            v4([198, 18, 1, 1])
        }
    }
    /// The MSS a client sees in a SYN-ACK whose server said 1460: FNAT makes room for TOA (8
    /// bytes for an IPv4 client, 20 for IPv6) and NAT64 for the longer IPv6 header.
    pub fn client_mss(&self) -> u16 {
        match (self.mode, self.v6()) {
            (Mode::Fnat, false) => 1460 - 8,
            (Mode::Fnat, true) => 1460 - 20,
            (Mode::Nat64, _) => 1460 - 20 - 20,
            _ => 1460,
        }
    }

    pub fn config(&self) -> String {
        let gw4 = "198.18.0.254";
        let gw6 = "2001:db8::fe";
        let mut s = format!(
            r#"
[defence]
tcp_drop = true

[[interface]]
name = "wan"
mac = "{wan}"
addresses = ["198.18.0.1/24", "198.18.0.11/24", "198.18.0.12/24", "2001:db8::1/64", "2001:db8::11/64", "2001:db8::12/64"]

[[interface]]
name = "lan"
mac = "{lan}"
addresses = ["198.18.1.1/24", "198.18.1.2/24", "2001:db8:1::1/64", "2001:db8:1::2/64"]

[[neighbor]]
ip = "{gw4}"
mac = "{gw}"

[[neighbor]]
ip = "{gw6}"
mac = "{gw}"

[[route]]
prefix = "0.0.0.0/0"
via = "{gw4}"

[[route]]
prefix = "::/0"
via = "{gw6}"
"#,
            wan = mac_text(WAN_MAC),
            lan = mac_text(LAN_MAC),
            gw = mac_text(GW_MAC),
        );
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        if self.snat() {
            for i in 0..FLOWS {
                s += &format!(
                    "\n[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\n",
                    self.client(i),
                    mac_text(host_mac(i))
                );
            }
            let range = if self.v6() {
                "2001:db8:1::64-2001:db8:1::7f"
            } else {
                "198.18.1.64-198.18.1.127"
            };
            s += &format!(
                r#"
[[service]]
protocol = "{proto}"
forward = "snat"
scheduler = "rr"
match = {{ src_range = "{range}", oif = "wan" }}
"#
            );
            for a in self.laddrs() {
                s += &format!("\n[[service.dest]]\nip = \"{a}\"\n");
            }
            return s;
        }
        for srv in 0..SERVERS {
            s += &format!(
                "\n[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\n",
                self.server(srv),
                mac_text(rs_mac(srv))
            );
        }
        let fwd = match self.mode {
            Mode::Fnat | Mode::Nat64 => "fnat",
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tunnel => "tunnel",
            Mode::Snat => unreachable!(),
        };
        let laddrs = if matches!(self.mode, Mode::Fnat | Mode::Nat64) {
            let l: Vec<String> = self.laddrs().iter().map(|a| format!("\"{a}\"")).collect();
            format!("local_addresses = [{}]", l.join(", "))
        } else {
            String::new()
        };
        s += &format!(
            r#"
[[service]]
protocol = "{proto}"
vip = "{vip}"
port = {VPORT}
scheduler = "rr"
forward = "{fwd}"
{laddrs}
"#,
            vip = self.vip()
        );
        for srv in 0..SERVERS {
            s += &format!(
                "\n[[service.dest]]\nip = \"{}\"\nport = {}\n",
                self.server(srv),
                self.server_port()
            );
        }
        s
    }
}

/// One connection as its two endpoints see it.
#[derive(Debug, Clone)]
pub struct Flow {
    pub client: IpAddr,
    pub cport: u16,
    /// Where the client sends (VIP and port, or the outside server's own).
    pub dst: (IpAddr, u16),
    pub c_isn: u32,
    pub s_isn: u32,
    /// The server that got the flow.
    pub server: Option<usize>,
    /// The source address and port the server saw (its peer).
    pub seen_from: Option<(IpAddr, u16)>,
    /// The client's ISN as the server saw it (FNAT and NAT64 shift it).
    pub seen_isn: u32,
    /// The last frame rvs delivered to each side, as sent (for ICMP errors quoting it).
    pub last_to_server: Vec<u8>,
    pub last_to_client: Vec<u8>,
    /// Every frame rvs emitted for this flow, in order.
    pub frames: Vec<Vec<u8>>,
}

/// A frame rvs emitted, decoded.
#[derive(Debug, Clone)]
pub struct Out {
    pub port: Option<u16>,
    pub bytes: Vec<u8>,
    pub d: Decoded,
}

/// A TCP segment (offsets from the sender's ISN and the acknowledged side's ISN) or a UDP
/// datagram.
#[derive(Debug, Clone)]
pub struct Seg {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn tcp(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Self {
        Seg {
            flags,
            seq,
            ack,
            payload: payload.to_vec(),
        }
    }
    pub fn udp(payload: &[u8]) -> Self {
        Seg::tcp(0, 0, 0, payload)
    }
}

/// The carrier of FNAT's UOA (DPVS's `[udp] uoa_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// DPVS's default: the protocol-248 "opp" header in front of UDP.
    Opp,
    /// IPv4 option 31.
    Ipo,
}

/// The `[udp]` section of a case's configuration: UOA carrier and `uoa_max_trail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uoa {
    pub mode: Carrier,
    pub max_trail: u8,
}

impl Uoa {
    /// What rvs does without a `[udp]` section (DPVS's defaults: opp, 3 datagrams).
    pub const DEFAULT: Uoa = Uoa {
        mode: Carrier::Opp,
        max_trail: 3,
    };
    fn section(&self) -> String {
        if *self == Uoa::DEFAULT {
            return String::new();
        }
        let mode = match self.mode {
            Carrier::Opp => "opp",
            Carrier::Ipo => "ipo",
        };
        format!("\n[udp]\nuoa_mode = \"{mode}\"\nuoa_max_trail = {}\n", self.max_trail)
    }
    /// The carrier a datagram of `case` takes UOA in, if any: FNAT and NAT64 only; "ipo" is an
    /// IPv4 option, so an IPv6 FNAT packet cannot carry it (DPVS skips it too), while NAT64's
    /// IPv4 packet toward the real server can.
    pub fn carrier(&self, case: &Case) -> Option<Carrier> {
        match (case.mode, self.mode) {
            (Mode::Fnat, Carrier::Ipo) if case.v6() => None,
            (Mode::Fnat | Mode::Nat64, m) => Some(m),
            _ => None,
        }
    }
}

pub struct Lab {
    pub case: Case,
    pub uoa: Uoa,
    pub engine: Engine,
    pub flows: Vec<Flow>,
    pub t: u64,
    /// Every frame fed to rvs and every frame it emitted, for the pcap files.
    pub inputs: Vec<Record>,
    pub outputs: Vec<Record>,
    by_client: HashMap<(IpAddr, u16), usize>,
    by_peer: HashMap<(usize, IpAddr, u16), usize>,
}

pub fn ip_of(ip: &Ip) -> (IpAddr, IpAddr, u8, u8) {
    match ip {
        Ip::V4(h) => (IpAddr::V4(h.src), IpAddr::V4(h.dst), h.ttl, h.tos),
        Ip::V6(h) => (IpAddr::V6(h.src), IpAddr::V6(h.dst), h.hop_limit, h.traffic_class),
    }
}

/// The UOA IPv4 option DPVS's "ipo" mode puts in: type 31, length, port, address.
pub fn uoa_option(port: u16, addr: IpAddr) -> Vec<u8> {
    let a = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut o = vec![31, 4 + a.len() as u8];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&a);
    o
}

impl Lab {
    pub fn new(case: Case, vector: usize) -> Lab {
        Lab::with_uoa(case, vector, Uoa::DEFAULT)
    }

    /// A lab whose configuration has `uoa` as its `[udp]` section.
    pub fn with_uoa(case: Case, vector: usize, uoa: Uoa) -> Lab {
        let text = case.config() + &uoa.section();
        let cfg = Config::parse(&format!("{}.toml", case.name()), &text)
            .unwrap_or_else(|e| panic!("{}: config: {e}", case.name()));
        let engine = Engine::new(&cfg, vector).unwrap();
        let mut flows = Vec::new();
        let mut by_client = HashMap::new();
        for i in 0..FLOWS {
            let client = case.client(i);
            let cport = 20000 + 7 * i as u16;
            by_client.insert((client, cport), i);
            flows.push(Flow {
                client,
                cport,
                dst: case.client_dst(i),
                c_isn: 0x1000_0000u32.wrapping_mul(i as u32 + 1).wrapping_add(12345),
                s_isn: 0x7000_0000u32.wrapping_add(977 * i as u32),
                server: None,
                seen_from: None,
                seen_isn: 0,
                last_to_server: Vec::new(),
                last_to_client: Vec::new(),
                frames: Vec::new(),
            });
        }
        Lab {
            case,
            uoa,
            engine,
            flows,
            t: 1_000_000_000,
            inputs: Vec::new(),
            outputs: Vec::new(),
            by_client,
            by_peer: HashMap::new(),
        }
    }

    /// Feed frames arriving at the balancer; return what it emits (port, bytes), undecoded
    /// (e.g. IPv4 fragments, which the decoder judges as cut-short packets), recorded for the
    /// pcap files.
    pub fn send_raw(&mut self, frames: Vec<Vec<u8>>) -> Vec<(Option<u16>, Vec<u8>)> {
        let recs: Vec<(u64, Vec<u8>)> = frames
            .into_iter()
            .map(|f| {
                self.t += 1_000;
                (self.t, f)
            })
            .collect();
        self.inputs.extend(recs.iter().map(|(t, b)| Record::new(*t, b.clone())));
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
                self.outputs.push(Record::new(e.ts, e.bytes.clone()));
                (e.port, e.bytes)
            })
            .collect()
    }

    /// Feed frames arriving at the balancer; decode (checked) everything it emits.
    pub fn send(&mut self, frames: Vec<Vec<u8>>) -> Vec<Out> {
        let name = self.case.name();
        self.send_raw(frames)
            .into_iter()
            .map(|(port, bytes)| {
                let d = decode_checked(&bytes).unwrap_or_else(|err| panic!("{name}: bad frame from rvs: {err}"));
                if let Some(port) = port {
                    assert_eq!(
                        d.eth.as_ref().unwrap().src,
                        Case::iface_mac(port),
                        "{name}: source MAC is the output interface's"
                    );
                }
                Out { port, bytes, d }
            })
            .collect()
    }

    /// Write the frames fed and emitted so far as `golden/<name>.in.pcap` and `.out.pcap`
    /// below the target's temporary directory.
    pub fn write_pcaps(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("golden");
        std::fs::create_dir_all(&dir).unwrap();
        pcap::write(dir.join(format!("{name}.in.pcap")), Resolution::Nano, &self.inputs).unwrap();
        pcap::write(dir.join(format!("{name}.out.pcap")), Resolution::Nano, &self.outputs).unwrap();
        dir
    }

    /// Client `i`'s frame for `seg`.
    pub fn client_frame(&self, i: usize, seg: &Seg) -> Vec<u8> {
        let f = &self.flows[i];
        let c = self.case;
        let mut p = ip_layer(
            Pkt::eth(c.client_mac(i), Case::iface_mac(c.client_iface())),
            f.client,
            f.dst.0,
        )
        .ttl(TTL)
        .tos(C_TOS);
        if !c.v6() {
            p = p.df().id(0x4000 + i as u16);
        }
        match c.proto {
            Proto::Tcp => {
                let mut p = p
                    .tcp(f.cport, f.dst.1)
                    .flags(seg.flags)
                    .seq(add(f.c_isn, seg.seq))
                    .ack(if seg.flags & ACK != 0 { add(f.s_isn, seg.ack) } else { 0 })
                    .window(1000 + i as u16);
                if seg.flags & SYN != 0 {
                    p = p.mss(1460).sack_perm().timestamps(777 + i as u32, 0);
                }
                p.payload(&seg.payload).build()
            }
            Proto::Udp => p.udp(f.cport, f.dst.1).payload(&udp_payload(i, &seg.payload)).build(),
        }
    }

    /// Server frame for flow `i`, to the peer it saw (DR and TUNNEL servers answer from the
    /// VIP, straight to the client).
    pub fn server_frame(&self, i: usize, seg: &Seg) -> Vec<u8> {
        let f = &self.flows[i];
        let c = self.case;
        let s = f.server.expect("the server saw the flow");
        let (peer, pport) = f.seen_from.unwrap();
        let src = if c.both_ways() { c.server(s) } else { c.vip() };
        let mac = if c.snat() { GW_MAC } else { rs_mac(s) };
        let p = ip_layer(Pkt::eth(mac, Case::iface_mac(c.server_iface())), src, peer)
            .ttl(TTL)
            .tos(S_TOS);
        match c.proto {
            Proto::Tcp => {
                let mut p = p
                    .tcp(c.server_port(), pport)
                    .flags(seg.flags)
                    .seq(add(f.s_isn, seg.seq))
                    .ack(add(f.seen_isn, seg.ack))
                    .window(3000 + i as u16);
                if seg.flags & SYN != 0 {
                    p = p.mss(1460);
                }
                p.payload(&seg.payload).build()
            }
            Proto::Udp => p
                .udp(c.server_port(), pport)
                .payload(&udp_payload(i, &seg.payload))
                .build(),
        }
    }

    /// The flow an emitted frame toward a server belongs to (TCP: the window the client
    /// sent; UDP: the payload's tag; rvs changes neither).
    fn flow_of_inbound(&self, o: &Out) -> usize {
        match self.case.proto {
            Proto::Tcp => (o.d.tcp().expect("TCP").window - 1000) as usize,
            Proto::Udp => tag_of(&udp_seen(o).payload),
        }
    }

    /// Check a frame rvs sent toward a server and return its flow: L2, addresses, ports,
    /// TTL and TOS per mode; tunnels' outer header; the peer stays the same for the flow.
    pub fn at_server(&mut self, o: &Out, client_bytes: &HashMap<usize, Vec<u8>>) -> usize {
        let c = self.case;
        let name = c.name();
        assert_eq!(o.port, Some(c.server_iface()), "{name}: to the servers' interface");
        let i = self.flow_of_inbound(o);
        let eth = o.d.eth.as_ref().unwrap();
        let s = if c.snat() {
            i % SERVERS
        } else {
            (0..SERVERS)
                .find(|&s| rs_mac(s) == eth.dst)
                .unwrap_or_else(|| panic!("{name}: frame to unknown MAC {:?}", eth.dst))
        };
        assert_eq!(eth.dst, c.server_mac(s), "{name}: next hop of server {s}");
        let f = &self.flows[i];
        let (sport, dport) = match c.proto {
            Proto::Tcp => o.d.ports().expect("ports"),
            Proto::Udp => {
                let u = udp_seen(o);
                (u.sport, u.dport)
            }
        };
        assert_eq!(dport, c.server_port(), "{name}: server port");
        let peer = if c.mode == Mode::Tunnel {
            assert_eq!(o.d.ips.len(), 2, "{name}: one outer header");
            let (osrc, odst, ottl, otos) = ip_of(&o.d.ips[0]);
            assert_eq!((osrc, odst), (c.tunnel_src(), c.server(s)), "{name}: outer addresses");
            assert_eq!((ottl, otos), (64, C_TOS), "{name}: outer TTL 64, TOS copied");
            match &o.d.ips[0] {
                Ip::V4(h) => {
                    assert_eq!(h.proto, 4, "{name}: IPIP");
                    assert!(h.df, "{name}: DF copied from the inner header");
                    assert_eq!(h.id, 0x4000 + i as u16, "{name}: id copied");
                }
                Ip::V6(h) => {
                    assert_eq!(h.next_header, 41, "{name}: ip6ip6");
                    assert_eq!(h.flow_label, 0);
                }
            }
            let outer_len = if c.server_v6() { 40 } else { 20 };
            let sent = client_bytes.get(&i).expect("the client's frame");
            assert_eq!(
                &o.bytes[14 + outer_len..],
                &sent[14..],
                "{name}: the inner packet is what the client sent, byte for byte"
            );
            (f.client, sport)
        } else {
            assert_eq!(o.d.ips.len(), 1, "{name}: no encapsulation");
            let (src, dst, ttl, tos) = ip_of(&o.d.ips[0]);
            let want_dst = match c.mode {
                Mode::Dr => c.vip(),
                Mode::Snat => f.dst.0,
                _ => c.server(s),
            };
            assert_eq!(dst, want_dst, "{name}: destination address");
            let want_ttl = if c.mode == Mode::Dr { TTL } else { TTL - 1 };
            assert_eq!((ttl, tos), (want_ttl, C_TOS), "{name}: TTL/hop limit and TOS");
            if c.local_port() {
                assert!(c.laddrs().contains(&src), "{name}: source {src} is a local address");
                assert!(sport >= PORT_MIN, "{name}: local port {sport} from the pool");
            } else {
                assert_eq!((src, sport), (f.client, f.cport), "{name}: the client stays the source");
            }
            if c.mode == Mode::Nat64 {
                let h = o.d.ipv4().expect("NAT64: IPv4 toward the server");
                // RFC 7915 5.1: a small packet leaves DF clear, with an identification from
                // the translator's generator (lcore 0's: its low 4 bits are the lcore; the
                // exact sequence is rvs-xmit's `family::nat64_tcp_translates_headers_both_ways`).
                assert_eq!(
                    (h.df, h.id & 0xf),
                    (false, 0),
                    "{name}: RFC 7915 5.1: small packet, DF clear, generated id"
                );
            }
            (src, sport)
        };
        let f = &mut self.flows[i];
        match f.seen_from {
            None => {
                f.server = Some(s);
                f.seen_from = Some(peer);
                assert!(
                    self.by_peer.insert((s, peer.0, peer.1), i).is_none(),
                    "{name}: two flows share the peer {peer:?} at server {s}"
                );
            }
            Some(p) => {
                assert_eq!(f.server, Some(s), "{name}: flow {i} moved between servers");
                assert_eq!(p, peer, "{name}: flow {i}'s peer changed");
            }
        }
        f.last_to_server = o.bytes.clone();
        f.frames.push(o.bytes.clone());
        i
    }

    /// Check a frame rvs sent toward a client and return its flow.
    pub fn at_client(&mut self, o: &Out) -> usize {
        let c = self.case;
        let name = c.name();
        assert_eq!(o.port, Some(c.client_iface()), "{name}: to the clients' interface");
        assert_eq!(o.d.ips.len(), 1);
        let (src, dst, ttl, tos) = ip_of(&o.d.ips[0]);
        let (sport, dport) = o.d.ports().expect("ports");
        let i = *self
            .by_client
            .get(&(dst, dport))
            .unwrap_or_else(|| panic!("{name}: frame to unknown client {dst}:{dport}"));
        let f = &mut self.flows[i];
        assert_eq!(
            o.d.eth.as_ref().unwrap().dst,
            c.client_mac(i),
            "{name}: client next hop"
        );
        assert_eq!(
            (src, sport),
            f.dst,
            "{name}: the client sees what it sent to as the source"
        );
        assert_eq!((ttl, tos), (TTL - 1, S_TOS), "{name}: TTL/hop limit and TOS");
        f.last_to_client = o.bytes.clone();
        f.frames.push(o.bytes.clone());
        i
    }

    /// Every client sends `seg(i)`; each must reach its flow's server. Returns per flow what
    /// the server got.
    pub fn clients_send(&mut self, seg: impl Fn(usize) -> Seg) -> Vec<(usize, Seg, Out)> {
        let segs: Vec<Seg> = (0..FLOWS).map(&seg).collect();
        let frames: Vec<Vec<u8>> = (0..FLOWS).map(|i| self.client_frame(i, &segs[i])).collect();
        let by_flow: HashMap<usize, Vec<u8>> = frames.iter().cloned().enumerate().collect();
        let outs = self.send(frames);
        assert_eq!(
            outs.len(),
            FLOWS,
            "{}: every client frame reaches a server",
            self.case.name()
        );
        let mut got = Vec::new();
        for o in &outs {
            let i = self.at_server(o, &by_flow);
            got.push((i, segs[i].clone(), o.clone()));
        }
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..FLOWS).collect::<Vec<_>>()
        );
        for (i, seg, d) in &got {
            self.check_l4_at_server(*i, seg, d);
        }
        got
    }

    /// Every server answers `seg(i)`: through rvs where it sees replies (checked at the
    /// client), straight to the client for DR and TUNNEL.
    pub fn servers_send(&mut self, seg: impl Fn(usize) -> Seg) {
        if !self.case.both_ways() {
            return;
        }
        let segs: Vec<Seg> = (0..FLOWS).map(&seg).collect();
        let frames: Vec<Vec<u8>> = (0..FLOWS).map(|i| self.server_frame(i, &segs[i])).collect();
        let outs = self.send(frames);
        assert_eq!(
            outs.len(),
            FLOWS,
            "{}: every server frame reaches a client",
            self.case.name()
        );
        let mut seen = HashSet::new();
        for o in &outs {
            let i = self.at_client(o);
            assert!(seen.insert(i));
            self.check_l4_at_client(i, &segs[i], &o.d);
        }
    }

    fn check_l4_at_server(&mut self, i: usize, seg: &Seg, o: &Out) {
        let d = &o.d;
        let c = self.case;
        let name = c.name();
        let f = &mut self.flows[i];
        let shifts = matches!(c.mode, Mode::Fnat | Mode::Nat64);
        match c.proto {
            Proto::Tcp => {
                let t = d.tcp().unwrap();
                assert_eq!(t.flags, seg.flags, "{name}: flags");
                assert_eq!(d.payload, seg.payload, "{name}: payload intact");
                if seg.flags & SYN != 0 {
                    let ts = t.options.iter().any(|o| matches!(o, TcpOpt::Timestamps(..)));
                    assert_eq!(t.mss(), Some(1460), "{name}: the client's MSS");
                    assert_eq!(
                        ts, !shifts,
                        "{name}: FNAT replaces the SYN's timestamps with NOPs, others keep them"
                    );
                    f.seen_isn = t.seq;
                    if !shifts {
                        assert_eq!(t.seq, f.c_isn, "{name}: sequence numbers untouched");
                    }
                } else {
                    assert_eq!(
                        t.seq,
                        add(f.seen_isn, seg.seq),
                        "{name}: flow {i}: seq as the server knows it"
                    );
                    assert_eq!(
                        t.ack,
                        add(f.s_isn, seg.ack),
                        "{name}: flow {i}: the server's own seq acked"
                    );
                }
                // TOA: in the first packet acknowledging the SYN-ACK (the handshake's ACK).
                let want_toa =
                    (shifts && seg.flags & (SYN | ACK) == ACK && seg.ack == 1).then_some((f.cport, f.client));
                assert_eq!(t.toa(), want_toa, "{name}: flow {i}: TOA on {seg:?}");
            }
            Proto::Udp => {
                let u = udp_seen(o);
                assert_eq!(u.payload, udp_payload(i, &seg.payload), "{name}: payload intact");
                let round = seg.payload.first().map_or(0, |b| (b - b'0') as usize);
                // UOA: the client's port and address (8 bytes for an IPv4 client, 20 for IPv6)
                // on the first `uoa_max_trail` datagrams (DPVS's default 3) of FNAT and NAT64,
                // in the configured carrier (DPVS's default: the protocol-248 opp header).
                let carrier = self.uoa.carrier(&c).filter(|_| round < self.uoa.max_trail as usize);
                let want = carrier.map(|_| uoa_option(f.cport, f.client));
                assert_eq!(u.uoa, want, "{name}: flow {i} datagram {round}: UOA");
                assert_eq!(u.carrier, carrier, "{name}: flow {i} datagram {round}: UOA carrier");
            }
        }
    }

    fn check_l4_at_client(&mut self, i: usize, seg: &Seg, d: &Decoded) {
        let c = self.case;
        let name = c.name();
        let f = &self.flows[i];
        match c.proto {
            Proto::Tcp => {
                let t = d.tcp().unwrap();
                assert_eq!(t.flags, seg.flags, "{name}: flags");
                assert_eq!(d.payload, seg.payload, "{name}: payload intact");
                assert_eq!(t.seq, add(f.s_isn, seg.seq), "{name}: the server's seq untouched");
                assert_eq!(
                    t.ack,
                    add(f.c_isn, seg.ack),
                    "{name}: flow {i}: the client sees its own seq acked"
                );
                if seg.flags & SYN != 0 {
                    assert_eq!(t.mss(), Some(c.client_mss()), "{name}: SYN-ACK MSS");
                }
                assert_eq!(t.toa(), None);
            }
            Proto::Udp => assert_eq!(d.payload, udp_payload(i, &seg.payload), "{name}: payload intact"),
        }
    }

    /// TCP: handshake, the first ACK, the server's greeting, the client's request, FIN both
    /// ways, the last ACK (the server speaks first, as SMTP does, so only the handshake's ACK
    /// acknowledges the SYN-ACK alone: it carries TOA whether TOA goes on the first such packet
    /// or, as DPVS's `fdata_seq` test does, on every one). UDP: four request/response rounds.
    /// With `close` false TCP stops after the request and UDP after one round.
    pub fn run(&mut self, close: bool) {
        let (rq, rs) = (REQ.len() as u32, RESP.len() as u32);
        match self.case.proto {
            Proto::Tcp => {
                self.clients_send(|_| Seg::tcp(SYN, 0, 0, &[]));
                self.servers_send(|_| Seg::tcp(SYN | ACK, 0, 1, &[]));
                self.clients_send(|_| Seg::tcp(ACK, 1, 1, &[]));
                self.servers_send(|_| Seg::tcp(ACK | PSH, 1, 1, RESP));
                self.clients_send(|_| Seg::tcp(ACK | PSH, 1, 1 + rs, REQ));
                self.check_active(FLOWS as u32);
                if !close {
                    return;
                }
                self.clients_send(|_| Seg::tcp(ACK | FIN, 1 + rq, 1 + rs, &[]));
                self.servers_send(|_| Seg::tcp(ACK | FIN, 1 + rs, 2 + rq, &[]));
                self.clients_send(|_| Seg::tcp(ACK, 2 + rq, 2 + rs, &[]));
                self.check_active(0);
            }
            Proto::Udp => {
                for round in 0..if close { 4u8 } else { 1 } {
                    self.clients_send(|_| Seg::udp(&[b'0' + round, b'q']));
                    self.servers_send(|_| Seg::udp(&[b'0' + round, b'r']));
                }
            }
        }
    }

    /// Active connections over the service's destinations (IPVS counts ESTABLISHED).
    pub fn check_active(&self, want: u32) {
        let rep = self.engine.report();
        let active: u32 = rep.services[0].dests.iter().map(|d| d.active).sum();
        assert_eq!(active, want, "{}: active connections", self.case.name());
    }

    /// Flows per server (per SNAT source address for SNAT), as the servers saw them.
    pub fn distribution(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for f in &self.flows {
            let key = if self.case.snat() {
                f.seen_from.unwrap().0.to_string()
            } else {
                self.case.server(f.server.unwrap()).to_string()
            };
            *m.entry(key).or_default() += 1;
        }
        m
    }

    /// Nothing dropped, nothing to the host path.
    pub fn check_clean(&self) {
        let rep = self.engine.report();
        let name = self.case.name();
        for st in &rep.stages {
            for d in &st.drops {
                assert_eq!(
                    d.count, 0,
                    "{name}: stage {} dropped {} for {}",
                    st.name, d.count, d.reason
                );
            }
        }
        assert_eq!(rep.host, 0, "{name}: nothing to the host path");
        assert_eq!(rep.overflow, 0, "{name}: no queue overflow");
    }
}

/// A UDP payload tagged with its flow.
pub fn udp_payload(i: usize, body: &[u8]) -> Vec<u8> {
    let mut p = format!("f{i:02}:").into_bytes();
    p.extend_from_slice(body);
    p
}

fn tag_of(p: &[u8]) -> usize {
    std::str::from_utf8(&p[1..3])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("UDP payload without a flow tag: {p:02x?}"))
}

/// A UDP datagram as the server got it, and the UOA option it carried if any.
#[derive(Debug, Clone)]
pub struct UdpSeen {
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    /// The UOA option (`31, len, port, address`), from either carrier.
    pub uoa: Option<Vec<u8>>,
    /// Which carrier it came in.
    pub carrier: Option<Carrier>,
}

/// DPVS's private "option protocol" carrying UOA in its "opp" mode.
pub const IPPROTO_OPP: u8 = 248;

/// The UDP datagram of an inbound frame. With DPVS's "ipo" UOA the option sits in the IPv4
/// header (the decoder reads it); with "opp" the IP protocol is 248 and a 4-byte header
/// (version: 1 for an IPv4 address, 2 for IPv6; next protocol 17; length of header and
/// options) and the option come before the UDP header. The decoder stops at protocol 248, so
/// that case is taken apart here and its UDP checksum verified with the kit's own sum.
pub fn udp_seen(o: &Out) -> UdpSeen {
    if let Some(u) = o.d.udp() {
        let uoa =
            o.d.ipv4()
                .filter(|h| h.options.first() == Some(&31))
                .map(|h| h.options[..h.options[1] as usize].to_vec());
        if let Some(h) = o.d.ipv4() {
            // The endpoints send no options: any option is UOA's, padded to 4 bytes.
            let want = uoa.as_ref().map_or(0, |u| u.len().div_ceil(4) * 4);
            assert_eq!(h.options.len(), want, "ipo: the IPv4 options are UOA's alone");
        }
        return UdpSeen {
            sport: u.sport,
            dport: u.dport,
            payload: o.d.payload.clone(),
            carrier: uoa.as_ref().map(|_| Carrier::Ipo),
            uoa,
        };
    }
    let (off, pseudo) = match o.d.ips.first() {
        Some(Ip::V4(h)) if h.proto == IPPROTO_OPP => (14 + 4 * h.ihl as usize, Pseudo::V4(h.src, h.dst)),
        Some(Ip::V6(h)) if h.proto == IPPROTO_OPP && h.exts.is_empty() => (14 + 40, Pseudo::V6(h.src, h.dst)),
        _ => panic!("neither UDP nor UDP behind a UOA opp header: {}", o.d),
    };
    let b = &o.bytes[off..];
    assert!(b.len() >= 4 + 8, "opp header and UDP header");
    let (ver, next, len) = (b[0] >> 4, b[1], u16::from_be_bytes([b[2], b[3]]) as usize);
    assert_eq!(next, 17, "opp: next protocol UDP");
    assert!(len >= 4 && b.len() >= len + 8, "opp: length {len}");
    let opt = b[4..len].to_vec();
    assert_eq!(opt.first(), Some(&31), "opp: the UOA option");
    assert_eq!(
        opt.get(1).copied(),
        Some(opt.len() as u8),
        "opp: one option, its length"
    );
    assert_eq!(
        ver,
        if opt.len() == 8 { 1 } else { 2 },
        "opp: version names the address family"
    );
    let udp = &b[len..];
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    assert_eq!(ulen, udp.len(), "opp: UDP length");
    // The IP length covers the opp header, the option and the whole datagram.
    match o.d.ips.first() {
        Some(Ip::V4(h)) => assert_eq!(
            h.total_len as usize,
            4 * h.ihl as usize + len + ulen,
            "opp: IPv4 total length"
        ),
        Some(Ip::V6(h)) => assert_eq!(h.payload_len as usize, len + ulen, "opp: IPv6 payload length"),
        None => unreachable!(),
    }
    let acc = match pseudo {
        Pseudo::V4(s, d) => csum::pseudo_v4(s.octets(), d.octets(), 17, ulen),
        Pseudo::V6(s, d) => csum::pseudo_v6(s.octets(), d.octets(), 17, ulen),
    };
    let ck = u16::from_be_bytes([udp[6], udp[7]]);
    if ck != 0 || matches!(pseudo, Pseudo::V6(..)) {
        assert_eq!(csum::finish(csum::sum(acc, udp)), 0, "opp: UDP checksum");
    }
    UdpSeen {
        sport: u16::from_be_bytes([udp[0], udp[1]]),
        dport: u16::from_be_bytes([udp[2], udp[3]]),
        payload: udp[8..].to_vec(),
        uoa: Some(opt),
        carrier: Some(Carrier::Opp),
    }
}

enum Pseudo {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}
