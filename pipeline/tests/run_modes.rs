//! Every forwarding mode through `rvs run`'s DPDK poll loop, against `rvs replay` on the same
//! trace and configuration.
//!
//! One `rvs run` process (one worker, one `net_pcap` port reading the trace and writing its
//! output) carries one service per case below, all in one configuration:
//!
//! | case | service | what the trace holds (per flow, 8 packets) |
//! |---|---|---|
//! | `dr-tcp-v4`, `dr-tcp-v6` | DR | the client's half only (SYN, ACK, data, FIN, ACK) |
//! | `tunnel-tcp-v4` (IPIP), `tunnel-tcp-v6` (ip6ip6) | TUNNEL | the client's half only |
//! | `fnat-tcp-v4`, `fnat-tcp-v6`, `nat-tcp-v4`, `nat-tcp-v6` | FNAT, NAT | handshake, request, response, FIN both ways, last ACK |
//! | `nat64-tcp`, `nat64-udp` | FNAT, IPv6 VIP, IPv4 local address and real servers | both ways |
//! | `fnat-udp-v4`, `fnat-udp-v6` | FNAT UDP, UOA in DPVS's default "opp" mode | four request/response rounds |
//! | `nat-udp-v4`, `nat-udp-v6` | NAT UDP | four rounds |
//! | `snat-tcp-v4`, `snat-udp-v4`, `snat-tcp-v6` | SNAT match services (`src_range`, `oif`) | internal hosts to outside servers, both ways |
//! | `snat-udp-v6` | SNAT match service over IPv6 | four rounds |
//! | `dr-udp-v4`, `tunnel-udp-v6` | DR, TUNNEL (ip6ip6) UDP | the client's datagrams only |
//! | `icmp-fnat-v4`, `icmpv6-fnat-v6`, `icmpv6-nat-v6`, `icmp-snat-v4` | `protocol = "icmp"` / `"icmpv6"` services, SNAT's a match service | four echo request/reply rounds |
//!
//! The trace is generated here, both directions: each client packet is fed to an in-process
//! `rvs replay` engine (the same configuration) one at a time, and the real server's (or outside
//! server's) answer is built from the frame the engine sent it, as that server would answer the
//! peer it saw. Every flow has a packet in every step and the steps are laid out flow after
//! flow, so a packet is always at least as many records after the one it answers as there are
//! flows (48), more than a vector (32): in `rvs run`, whose vectors are consecutive rx bursts,
//! a reply never shares a vector with the packet that creates its connection (in a vector graph a
//! packet in the same vector as the SYN before it misses the connection; no real server can
//! answer that fast, and with fewer flows than a vector both runs drop such replies alike).
//!
//! Checked:
//! - `rvs run`'s output equals `rvs replay`'s flow by flow (same frames per flow in the same
//!   order; a flow is outer addresses, inner addresses, protocol, ports or ICMP identifier);
//!   nothing is dropped by either; and each flow's frames are those the in-process engine
//!   emitted while the trace was built (so the servers' replies answer exactly what `rvs run`
//!   sent, and vectors of 1 and of 32 agree);
//! - every `rvs run` frame passes rvs-testkit's independent decoder with every checksum
//!   recomputed (both IP layers of a tunnel; the UDP checksum behind a UOA "opp" header is
//!   recomputed here with the kit's own sum, since the decoder stops at protocol 248);
//! - per mode, from what the test sent (not from rvs): DR keeps the IP packet byte for byte
//!   and only changes MACs; TUNNEL carries the client's packet byte for byte behind an outer
//!   IPv4 (protocol 4) or IPv6 (protocol 41) header to the real server; NAT keeps the client's
//!   address; FNAT and NAT64 send from the local address, with TOA (client port and address)
//!   on the handshake's ACK and UOA on the first UDP datagram; SNAT sends from the SNAT
//!   address to the outside server the host chose; ICMP echo keeps sequence and payload with
//!   the client's identifier given back; replies reach the client from the VIP and service
//!   port (SNAT: from the outside server); routed modes decrement the TTL once;
//! - every case's connections are created (one per flow) and the mempool is back to 0 mbufs
//!   in use at exit.
//!
//! The trace, the configuration and `rvs run`'s output are left in
//! `$CARGO_TARGET_TMPDIR/run-modes/` (`in.pcap`, `run.toml`, `out-run.pcap`); on a failure the
//! scratch directory with `rvs replay`'s output too is kept under the system's temporary
//! directory (`rvs-run-modes-PID`).

mod run_common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use run_common::{dpdk_missing, frames, rvs, rvs_run, scratch, stats};
use rvs_pipeline::config::Config;
use rvs_pipeline::replay::Engine;
use rvs_testkit::builder::Pkt;
use rvs_testkit::csum;
use rvs_testkit::decode::{Decoded, Ip, decode_checked};

const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// Flows per case.
const FLOWS: usize = 2;
/// Packets per flow (every kind of case has eight steps).
const STEPS: usize = 8;
/// The vector size both runs use.
const VECTOR: usize = 32;
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// DPVS's private protocol carrying UOA in "opp" mode.
const IPPROTO_OPP: u8 = 248;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fnat,
    Nat,
    Dr,
    Tunnel,
    /// FNAT with an IPv6 VIP, IPv4 local address and real servers.
    Nat64,
    Snat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    /// ICMP echo (ICMPv6 for an IPv6 case).
    Icmp,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    k: usize,
    mode: Mode,
    proto: Proto,
    /// The client side is IPv6.
    v6: bool,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("an IPv6 literal"))
}
fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Case {
    fn name(&self) -> String {
        let m = format!("{:?}", self.mode).to_lowercase();
        let p = match (self.proto, self.v6) {
            (Proto::Icmp, true) => "icmpv6".to_string(),
            (p, _) => format!("{p:?}").to_lowercase(),
        };
        match (self.proto, self.mode) {
            (Proto::Icmp, _) => format!("{p}-{m}-{}", if self.v6 { "v6" } else { "v4" }),
            (_, Mode::Nat64) => format!("{m}-{p}"),
            _ => format!("{m}-{p}-{}", if self.v6 { "v6" } else { "v4" }),
        }
    }
    fn snat(&self) -> bool {
        self.mode == Mode::Snat
    }
    /// The balancer sees the servers' replies.
    fn both_ways(&self) -> bool {
        !matches!(self.mode, Mode::Dr | Mode::Tunnel)
    }
    fn server_v6(&self) -> bool {
        self.v6 && self.mode != Mode::Nat64
    }
    fn vip(&self) -> IpAddr {
        if self.v6 {
            v6(&format!("2001:db8::{:x}", 0x100 + self.k))
        } else {
            v4(198, 18, 0, 100 + self.k as u8)
        }
    }
    fn vport(&self) -> u16 {
        match self.proto {
            Proto::Tcp => 80,
            Proto::Udp => 53,
            Proto::Icmp => 0,
        }
    }
    /// The port real servers (or outside servers) listen on.
    fn rport(&self) -> u16 {
        match (self.mode, self.proto) {
            (_, Proto::Icmp) => 0,
            (Mode::Snat, Proto::Tcp) => 443,
            (Mode::Snat, _) => 53,
            (Mode::Dr | Mode::Tunnel, _) => self.vport(),
            (_, Proto::Tcp) => 8080,
            (_, Proto::Udp) => 5353,
        }
    }
    /// Server `s`: a real server, or (SNAT) an outside server behind the gateway.
    fn server(&self, s: usize) -> IpAddr {
        let n = 2 * self.k + s;
        match (self.snat(), self.server_v6()) {
            (true, false) => v4(198, 19, 7, 1 + n as u8),
            (true, true) => v6(&format!("2001:db8:99::{:x}", 1 + n)),
            (false, false) => v4(198, 18, 1, 11 + n as u8),
            (false, true) => v6(&format!("2001:db8:1::{:x}", 0x11 + n)),
        }
    }
    fn server_mac(&self, s: usize) -> [u8; 6] {
        if self.snat() {
            GW_MAC
        } else {
            [0x02, 0, 0, 0, 0x10 + self.k as u8, 1 + s as u8]
        }
    }
    fn client(&self, f: usize) -> IpAddr {
        let n = 2 * self.k + f;
        match (self.snat(), self.v6) {
            (true, false) => v4(198, 18, 1, 64 + n as u8),
            (true, true) => v6(&format!("2001:db8:1::{:x}", 0x64 + n)),
            (false, false) => v4(198, 18, 128 + self.k as u8, 1 + f as u8),
            (false, true) => v6(&format!("2001:db8:80::{:x}:{:x}", self.k, 1 + f)),
        }
    }
    fn client_mac(&self, f: usize) -> [u8; 6] {
        if self.snat() {
            [0x02, 0, 0, 0, 0x40 + self.k as u8, 1 + f as u8]
        } else {
            GW_MAC
        }
    }
    fn cport(&self, f: usize) -> u16 {
        20000 + 100 * self.k as u16 + 7 * f as u16
    }
    /// Where client `f` sends: the VIP, or (SNAT) an outside server.
    fn client_dst(&self, f: usize) -> (IpAddr, u16) {
        if self.snat() {
            (self.server(f % 2), self.rport())
        } else {
            (self.vip(), self.vport())
        }
    }
    /// The address the servers see traffic from (FNAT, NAT64: the local address; SNAT: the
    /// SNAT address), if not the client's.
    fn laddr(&self) -> Option<IpAddr> {
        match (self.mode, self.server_v6()) {
            (Mode::Fnat | Mode::Nat64, false) => Some(v4(198, 18, 1, 1)),
            (Mode::Fnat, true) => Some(v6("2001:db8:1::1")),
            (Mode::Snat, false) => Some(v4(198, 18, 0, 11)),
            (Mode::Snat, true) => Some(v6("2001:db8::11")),
            _ => None,
        }
    }
    fn config(&self) -> String {
        let mut s = String::new();
        let proto = match (self.proto, self.v6) {
            (Proto::Tcp, _) => "tcp",
            (Proto::Udp, _) => "udp",
            (Proto::Icmp, false) => "icmp",
            (Proto::Icmp, true) => "icmpv6",
        };
        if self.snat() {
            for f in 0..FLOWS {
                s += &format!(
                    "\n[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\n",
                    self.client(f),
                    mac_text(self.client_mac(f))
                );
            }
            let range = format!("{}-{}", self.client(0), self.client(FLOWS - 1));
            s += &format!(
                "\n[[service]]\nprotocol = \"{proto}\"\nforward = \"snat\"\nscheduler = \"rr\"\n\
                 match = {{ src_range = \"{range}\", oif = \"port0\" }}\n\n[[service.dest]]\nip = \"{}\"\n",
                self.laddr().unwrap()
            );
            return s;
        }
        for srv in 0..2 {
            s += &format!(
                "\n[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\n",
                self.server(srv),
                mac_text(self.server_mac(srv))
            );
        }
        let fwd = match self.mode {
            Mode::Fnat | Mode::Nat64 => "fnat",
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tunnel => "tunnel",
            Mode::Snat => unreachable!(),
        };
        s += &format!(
            "\n[[service]]\nprotocol = \"{proto}\"\nvip = \"{}\"\nport = {}\nscheduler = \"rr\"\nforward = \"{fwd}\"\n",
            self.vip(),
            self.vport()
        );
        if let Some(l) = self.laddr() {
            s += &format!("local_addresses = [\"{l}\"]\n");
        }
        for srv in 0..2 {
            s += &format!(
                "\n[[service.dest]]\nip = \"{}\"\nport = {}\n",
                self.server(srv),
                self.rport()
            );
        }
        s
    }
}

fn cases() -> Vec<Case> {
    use Mode::*;
    use Proto::*;
    let list = [
        (Dr, Tcp, false),
        (Dr, Tcp, true),
        (Tunnel, Tcp, false),
        (Tunnel, Tcp, true),
        (Fnat, Tcp, false),
        (Fnat, Tcp, true),
        (Nat, Tcp, false),
        (Nat, Tcp, true),
        (Nat64, Tcp, true),
        (Nat64, Udp, true),
        (Fnat, Udp, false),
        (Fnat, Udp, true),
        (Nat, Udp, false),
        (Nat, Udp, true),
        (Snat, Tcp, false),
        (Snat, Udp, false),
        (Snat, Tcp, true),
        (Snat, Udp, true),
        (Dr, Udp, false),
        (Tunnel, Udp, true),
        (Fnat, Icmp, false),
        (Fnat, Icmp, true),
        (Nat, Icmp, true),
        (Snat, Icmp, false),
    ];
    list.iter()
        .enumerate()
        .map(|(k, &(mode, proto, v6))| Case { k, mode, proto, v6 })
        .collect()
}

fn config(cases: &[Case], input: &std::path::Path, output: &std::path::Path) -> String {
    let mut s = format!(
        r#"
[pipeline]
vector = {VECTOR}

[[interface]]
name = "port0"
mac = "{port}"
device = "net_pcap0,rx_pcap={input},tx_pcap={output}"
addresses = ["198.18.0.1/24", "198.18.1.1/24", "198.18.0.11/24", "2001:db8::1/64", "2001:db8:1::1/64", "2001:db8::11/64"]

[[neighbor]]
ip = "198.18.0.254"
mac = "{gw}"

[[neighbor]]
ip = "2001:db8::fe"
mac = "{gw}"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[[route]]
prefix = "::/0"
via = "2001:db8::fe"
"#,
        port = mac_text(PORT_MAC),
        gw = mac_text(GW_MAC),
        input = input.display(),
        output = output.display(),
    );
    for c in cases {
        s += &c.config();
    }
    s
}

/// What the test reads from a frame: outer and inner addresses, the transport protocol and
/// ports (ICMP: the echo identifier) found behind a UOA "opp" header too, TCP fields, the
/// payload, the UOA a frame carries.
#[derive(Debug, Clone)]
struct View {
    d: Decoded,
    src: IpAddr,
    dst: IpAddr,
    inner_src: IpAddr,
    inner_dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    /// (seq, ack, flags).
    tcp: Option<(u32, u32, u8)>,
    /// (type, identifier, sequence).
    icmp: Option<(u8, u16, u16)>,
    payload: Vec<u8>,
    /// (port, address) of a UOA option in an "opp" header.
    uoa: Option<(u16, IpAddr)>,
}

impl View {
    fn key(&self) -> String {
        format!(
            "{} {}>{} {}:{} > {}:{}",
            self.proto, self.src, self.dst, self.inner_src, self.sport, self.inner_dst, self.dport
        )
    }
    fn ttl(&self) -> u8 {
        self.d.ip().unwrap().ttl()
    }
    /// The TCP sequence space the segment takes (payload, SYN and FIN count one).
    fn seq_len(&self) -> u32 {
        let f = self.tcp.map_or(0, |t| t.2);
        self.payload.len() as u32 + u32::from(f & SYN != 0) + u32::from(f & FIN != 0)
    }
}

/// Decode `bytes` with the independent decoder (every checksum recomputed; a bad one or any
/// malformation fails the test) and read what the test compares.
fn view(bytes: &[u8]) -> View {
    let d = decode_checked(bytes).unwrap_or_else(|e| panic!("bad frame from rvs: {e}"));
    assert!(d.vlans.is_empty(), "no VLAN here");
    let outer = d.ip().expect("an IP packet").clone();
    let inner = d.inner_ip().unwrap().clone();
    let mut v = View {
        src: outer.src(),
        dst: outer.dst(),
        inner_src: inner.src(),
        inner_dst: inner.dst(),
        proto: inner.proto(),
        sport: 0,
        dport: 0,
        tcp: None,
        icmp: None,
        payload: d.payload.clone(),
        uoa: None,
        d,
    };
    if let Some(t) = v.d.tcp() {
        (v.sport, v.dport, v.tcp) = (t.sport, t.dport, Some((t.seq, t.ack, t.flags)));
    } else if let Some(u) = v.d.udp() {
        (v.sport, v.dport) = (u.sport, u.dport);
    } else if let Some(i) = v.d.icmp() {
        assert!(!i.is_error(), "only echo here");
        (v.sport, v.icmp) = (i.id(), Some((i.typ, i.id(), i.seq())));
    } else if v.proto == IPPROTO_OPP {
        opp(bytes, &mut v);
    } else {
        panic!("unexpected frame: {}", v.d);
    }
    v
}

/// UDP behind DPVS's UOA "opp" header (4 bytes: version, next protocol, length of header and
/// option; then the UOA option `31, len, port, address`): read it and verify the UDP checksum
/// with the test kit's own sum.
fn opp(bytes: &[u8], v: &mut View) {
    let (start, end) = match v.d.ip().unwrap() {
        Ip::V4(h) => (14 + 4 * h.ihl as usize, 14 + h.total_len as usize),
        Ip::V6(h) => {
            assert!(h.exts.is_empty(), "opp right after the IPv6 header");
            (54, 54 + h.payload_len as usize)
        }
    };
    let b = &bytes[start..end];
    assert!(b.len() >= 12, "opp header and UDP header");
    let (next, len) = (b[1], u16::from_be_bytes([b[2], b[3]]) as usize);
    assert_eq!(next, 17, "opp: next protocol UDP");
    let opt = &b[4..len];
    assert_eq!(opt[0], 31, "opp: the UOA option");
    assert_eq!(opt[1] as usize, opt.len(), "opp: one option");
    let port = u16::from_be_bytes([opt[2], opt[3]]);
    let addr = match opt.len() {
        8 => IpAddr::V4(Ipv4Addr::new(opt[4], opt[5], opt[6], opt[7])),
        20 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&opt[4..20]).unwrap())),
        n => panic!("opp: UOA option of {n} bytes"),
    };
    assert_eq!(
        b[0] >> 4,
        if opt.len() == 8 { 1 } else { 2 },
        "opp: version names the family"
    );
    let udp = &b[len..];
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    assert_eq!(ulen, udp.len(), "UDP length behind opp");
    let acc = match v.d.ip().unwrap() {
        Ip::V4(h) => csum::pseudo_v4(h.src.octets(), h.dst.octets(), 17, ulen),
        Ip::V6(h) => csum::pseudo_v6(h.src.octets(), h.dst.octets(), 17, ulen),
    };
    let stored = u16::from_be_bytes([udp[6], udp[7]]);
    assert!(
        csum::finish(csum::sum(acc, udp)) == 0 || (stored == 0 && matches!(v.d.ip().unwrap(), Ip::V4(_))),
        "UDP checksum behind opp: stored {stored:#06x}"
    );
    v.proto = 17;
    v.sport = u16::from_be_bytes([udp[0], udp[1]]);
    v.dport = u16::from_be_bytes([udp[2], udp[3]]);
    v.payload = udp[8..].to_vec();
    v.uoa = Some((port, addr));
}

/// An IP layer of the right family.
fn ip_layer(p: Pkt, src: IpAddr, dst: IpAddr) -> Pkt {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => p.ipv4(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => p.ipv6(s, d),
        _ => panic!("mixed families {src} -> {dst}"),
    }
}

/// Who sends at a step, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Client,
    Server,
}

/// Step `i` of a flow of case `c`: sender, TCP flags (UDP/ICMP: 0), payload.
fn script(c: &Case, i: usize) -> (Who, u8, Vec<u8>) {
    use Who::*;
    match (c.proto, c.both_ways()) {
        (Proto::Tcp, true) => match i {
            0 => (Client, SYN, vec![]),
            1 => (Server, SYN | ACK, vec![]),
            2 => (Client, ACK, vec![]),
            3 => (Client, PSH | ACK, b"GET /run HTTP/1.0\r\n\r\n".to_vec()),
            4 => (Server, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec()),
            5 => (Client, FIN | ACK, vec![]),
            6 => (Server, FIN | ACK, vec![]),
            _ => (Client, ACK, vec![]),
        },
        (Proto::Tcp, false) => match i {
            0 => (Client, SYN, vec![]),
            1 | 4 | 5 | 7 => (Client, ACK, vec![]),
            2 | 3 => (Client, PSH | ACK, format!("request {i}").into_bytes()),
            _ => (Client, FIN | ACK, vec![]),
        },
        (_, true) if i.is_multiple_of(2) => (Client, 0, format!("query {i} of {}", c.name()).into_bytes()),
        (_, true) => (Server, 0, format!("answer {i} of {}", c.name()).into_bytes()),
        (_, false) => (Client, 0, format!("query {i}").into_bytes()),
    }
}

/// One connection as its two ends see it, and what went through rvs.
#[derive(Debug)]
struct Flow {
    case: Case,
    f: usize,
    c_next: u32,
    c_ack: u32,
    s_next: u32,
    s_ack: u32,
    /// The last frame the in-process engine sent toward the server.
    to_server: Option<View>,
    /// Frames the client and the server sent, in order.
    client_sent: Vec<Vec<u8>>,
    server_sent: Vec<Vec<u8>>,
    /// Keys of the frames rvs sends toward the server and toward the client.
    key_to_server: Option<String>,
    key_to_client: Option<String>,
    /// Frames the in-process engine sent toward the server and toward the client.
    emitted_to_server: Vec<Vec<u8>>,
    emitted_to_client: Vec<Vec<u8>>,
}

impl Flow {
    fn new(case: Case, f: usize) -> Flow {
        Flow {
            case,
            f,
            c_next: 0x1000_0000u32
                .wrapping_mul(f as u32 + 1)
                .wrapping_add(1000 * case.k as u32),
            c_ack: 0x7000_0000u32.wrapping_add(977 * case.k as u32),
            s_next: 0x7000_0000u32.wrapping_add(977 * case.k as u32),
            s_ack: 0,
            to_server: None,
            client_sent: Vec::new(),
            server_sent: Vec::new(),
            key_to_server: None,
            key_to_client: None,
            emitted_to_server: Vec::new(),
            emitted_to_client: Vec::new(),
        }
    }

    /// The frame of step `i`.
    fn frame(&mut self, i: usize) -> Vec<u8> {
        let c = self.case;
        let (who, flags, payload) = script(&c, i);
        let f = self.f;
        match who {
            Who::Client => {
                let (dst, dport) = c.client_dst(f);
                let p = ip_layer(Pkt::eth(c.client_mac(f), PORT_MAC), c.client(f), dst);
                let p = match c.proto {
                    Proto::Tcp => {
                        let p = p.tcp(c.cport(f), dport).flags(flags).seq(self.c_next);
                        let p = if flags & ACK != 0 { p.ack(self.c_ack) } else { p };
                        self.c_next = self
                            .c_next
                            .wrapping_add(payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0));
                        p
                    }
                    Proto::Udp => p.udp(c.cport(f), dport),
                    Proto::Icmp if c.v6 => p.icmpv6_echo_request(c.cport(f), i as u16),
                    Proto::Icmp => p.icmp_echo_request(c.cport(f), i as u16),
                };
                let b = p.payload(&payload).build();
                self.client_sent.push(b.clone());
                b
            }
            Who::Server => {
                let seen = self
                    .to_server
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: the server answers before it got anything", c.name()));
                let srv = (0..2)
                    .find(|&s| c.server(s) == seen.dst)
                    .unwrap_or_else(|| panic!("{}: sent to {}, not a server of the case", c.name(), seen.dst));
                let p = ip_layer(Pkt::eth(c.server_mac(srv), PORT_MAC), seen.dst, seen.src);
                let p = match c.proto {
                    Proto::Tcp => {
                        let p = p
                            .tcp(seen.dport, seen.sport)
                            .flags(flags)
                            .seq(self.s_next)
                            .ack(self.s_ack);
                        let p = if flags & SYN != 0 { p.mss(1460) } else { p };
                        self.s_next = self
                            .s_next
                            .wrapping_add(payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0));
                        p
                    }
                    Proto::Udp => p.udp(seen.dport, seen.sport),
                    Proto::Icmp => {
                        let (_, id, seq) = seen.icmp.expect("an echo request");
                        if matches!(seen.d.ip(), Some(Ip::V6(_))) {
                            p.icmpv6_echo_reply(id, seq)
                        } else {
                            p.icmp_echo_reply(id, seq)
                        }
                    }
                };
                let b = p.payload(&payload).build();
                self.server_sent.push(b.clone());
                b
            }
        }
    }

    /// Take a frame the in-process engine emitted for this flow.
    fn seen(&mut self, bytes: &[u8]) {
        let c = self.case;
        let v = view(bytes);
        let to_client = v.dst == c.client(self.f);
        let key = Some(v.key());
        if to_client {
            if let Some((seq, _, _)) = v.tcp {
                self.c_ack = seq.wrapping_add(v.seq_len());
            }
            assert!(
                self.key_to_client.is_none() || self.key_to_client == key,
                "{}: one flow toward the client",
                c.name()
            );
            self.key_to_client = key;
            self.emitted_to_client.push(bytes.to_vec());
        } else {
            if let Some((seq, _, _)) = v.tcp {
                self.s_ack = seq.wrapping_add(v.seq_len());
            }
            assert!(
                self.key_to_server.is_none() || self.key_to_server == key,
                "{}: one flow toward the server",
                c.name()
            );
            self.key_to_server = key;
            self.emitted_to_server.push(bytes.to_vec());
            self.to_server = Some(v);
        }
    }
}

/// Per mode, a frame rvs sent toward the server against what the client sent.
fn check_to_server(c: &Case, f: usize, i: usize, sent: &[u8], out: &[u8]) {
    let name = c.name();
    let (s, o) = (view(sent), view(out));
    assert_eq!(&out[6..12], &PORT_MAC, "{name}: source MAC is the port's");
    if c.mode == Mode::Dr {
        assert!(
            (0..2).any(|x| out[..6] == c.server_mac(x)),
            "{name}: flow {f}: DR sends to a real server's MAC"
        );
        assert_eq!(&out[12..], &sent[12..], "{name}: DR changes only the MACs");
        return;
    }
    let srv = (0..2)
        .find(|&x| c.server(x) == o.dst)
        .unwrap_or_else(|| panic!("{name}: flow {f} sent to {}, not one of its servers", o.dst));
    assert_eq!(
        &out[..6],
        &c.server_mac(srv),
        "{name}: destination MAC is the next hop's"
    );
    match c.mode {
        Mode::Dr => unreachable!(),
        Mode::Tunnel => {
            let (proto, hl) = if c.server_v6() { (41, 40) } else { (4, 20) };
            assert_eq!(o.d.ips.len(), 2, "{name}: IP in IP");
            assert_eq!(o.d.ip().unwrap().proto(), proto, "{name}: outer protocol");
            assert_eq!(
                &out[14 + hl..],
                &sent[14..],
                "{name}: the client's packet byte for byte inside"
            );
        }
        _ => {
            let from = c.laddr().filter(|_| c.mode != Mode::Nat).unwrap_or(c.client(f));
            assert_eq!(o.src, from, "{name}: source toward the server");
            assert_eq!(o.dport, c.rport(), "{name}: server port");
            if c.mode == Mode::Nat {
                assert_eq!(o.sport, c.cport(f), "{name}: client port (echo identifier) kept");
            }
            if c.snat() {
                assert_eq!(o.dst, s.dst, "{name}: the outside server the host chose");
            }
            assert_eq!(o.payload, s.payload, "{name}: payload");
            assert_eq!(o.ttl(), s.ttl() - 1, "{name}: routed once");
            assert_eq!(o.tcp.map(|t| t.2), s.tcp.map(|t| t.2), "{name}: TCP flags");
            if let (Some((_, _, seq)), Some((_, _, sseq))) = (o.icmp, s.icmp) {
                assert_eq!(seq, sseq, "{name}: echo sequence");
            }
            let toa = o.d.tcp().and_then(|t| t.toa());
            if matches!(c.mode, Mode::Fnat | Mode::Nat64) && c.proto == Proto::Tcp && i == 1 {
                assert_eq!(toa, Some((c.cport(f), c.client(f))), "{name}: TOA on the first ACK");
            }
            if matches!(c.mode, Mode::Fnat | Mode::Nat64) && c.proto == Proto::Udp && i == 0 {
                assert_eq!(
                    o.uoa,
                    Some((c.cport(f), c.client(f))),
                    "{name}: UOA on the first datagram"
                );
            }
        }
    }
}

/// A frame rvs sent toward the client against what the server sent.
fn check_to_client(c: &Case, f: usize, sent: &[u8], out: &[u8]) {
    let name = c.name();
    let (s, o) = (view(sent), view(out));
    assert_eq!(&out[6..12], &PORT_MAC, "{name}: source MAC is the port's");
    assert_eq!(&out[..6], &c.client_mac(f), "{name}: toward the client's next hop");
    let (from, port) = c.client_dst(f);
    assert_eq!((o.src, o.dst), (from, c.client(f)), "{name}: reply addresses");
    if c.proto == Proto::Icmp {
        assert_eq!(o.icmp.map(|x| x.1), Some(c.cport(f)), "{name}: the client's identifier");
        assert_eq!(o.icmp.map(|x| x.2), s.icmp.map(|x| x.2), "{name}: echo sequence");
    } else {
        assert_eq!((o.sport, o.dport), (port, c.cport(f)), "{name}: reply ports");
    }
    assert_eq!(o.payload, s.payload, "{name}: payload");
    assert_eq!(o.ttl(), s.ttl() - 1, "{name}: routed once");
    if c.proto == Proto::Tcp && s.tcp.unwrap().2 & SYN != 0 {
        // The server said 1460: FNAT makes room for TOA (8 bytes with an IPv4 client, 20
        // with IPv6), NAT64 also for the IPv6 header being 20 bytes longer than IPv4's.
        let want = match (c.mode, c.v6) {
            (Mode::Fnat, false) => 1460 - 8,
            (Mode::Fnat, true) => 1460 - 20,
            (Mode::Nat64, _) => 1460 - 20 - 20,
            _ => 1460,
        };
        assert_eq!(o.d.tcp().unwrap().mss(), Some(want), "{name}: the SYN-ACK's MSS");
    }
}

#[test]
fn every_mode_through_the_poll_loop_equals_replay_flow_by_flow() {
    let cases = cases();
    let nflows = cases.len() * FLOWS;
    assert!(
        nflows > VECTOR,
        "a reply must be more than a vector after what it answers"
    );
    let dir = scratch("run-modes");
    let input = dir.join("in.pcap");
    let out_run = dir.join("out-run.pcap");
    let out_replay = dir.join("out-replay.pcap");
    let text = config(&cases, &input, &out_run);
    let conf = dir.join("run.toml");
    std::fs::write(&conf, &text).expect("config");
    let cfg = Config::parse("run-modes.toml", &text).unwrap_or_else(|e| panic!("config: {e}"));

    // The trace: step after step, flow after flow; each packet fed alone to an in-process
    // engine so that what it emits is this flow's.
    let mut engine = Engine::new(&cfg, VECTOR).expect("engine");
    let mut flows: Vec<Flow> = cases
        .iter()
        .flat_map(|c| (0..FLOWS).map(|f| Flow::new(*c, f)))
        .collect();
    let mut trace: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    for i in 0..STEPS {
        for fl in flows.iter_mut() {
            let bytes = fl.frame(i);
            t += 1000;
            let rec = (t, bytes);
            let mut emitted = Vec::new();
            engine
                .feed(std::slice::from_ref(&rec), |e| {
                    emitted.push(e);
                    Ok(())
                })
                .expect("feed");
            assert_eq!(
                emitted.len(),
                1,
                "{} flow {} step {i}: one frame forwarded, got {emitted:?}",
                fl.case.name(),
                fl.f
            );
            assert_eq!(emitted[0].port, Some(0), "{}: transmitted", fl.case.name());
            fl.seen(&emitted[0].bytes);
            trace.push(rec);
        }
    }
    let mut w = rvs_pipeline::pcap::Writer::create(&input).expect("pcap");
    for (ts, f) in &trace {
        w.write(*ts, f).expect("write");
    }
    drop(w);

    let stats_file = dir.join("stats.json");
    let n = trace.len().to_string();
    let started = std::time::Instant::now();
    let out = rvs_run(
        &conf,
        "run-modes",
        &[
            "--packets",
            &n,
            "--idle-ms",
            "3000",
            "--stats",
            stats_file.to_str().unwrap(),
        ],
    );
    if dpdk_missing(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rvs run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("rvs run: {} records in {:?}", trace.len(), started.elapsed());

    let rep = Command::new(rvs())
        .args(["replay", "--config"])
        .arg(&conf)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out_replay)
        .output()
        .expect("start rvs replay");
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));

    let a = frames(&out_run);
    let b = frames(&out_replay);
    assert_eq!(b.len(), trace.len(), "rvs replay forwards every packet");
    assert_eq!(a.len(), b.len(), "rvs run forwards every packet");
    let group = |fs: &[Vec<u8>]| {
        let mut m: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for f in fs {
            m.entry(view(f).key()).or_default().push(f.clone());
        }
        m
    };
    let fa = group(&a);
    let fb = group(&b);
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the same flows"
    );
    for (k, v) in &fb {
        assert_eq!(&fa[k], v, "flow {k}: same frames in the same order");
    }

    // Per case, what rvs run sent against what the test's clients and servers sent.
    for fl in &flows {
        let c = &fl.case;
        let name = c.name();
        let ks = fl.key_to_server.as_ref().unwrap();
        let to_server = fa
            .get(ks)
            .unwrap_or_else(|| panic!("{name}: nothing reached the server"));
        assert_eq!(to_server.len(), fl.client_sent.len(), "{name}: every client packet");
        // The servers answered exactly what rvs run sent them (the trace's replies were built
        // from the in-process engine fed one packet at a time: vectors of 1 and 32 agree).
        assert_eq!(
            to_server, &fl.emitted_to_server,
            "{name}: flow {}: toward the server",
            fl.f
        );
        for (i, (s, o)) in fl.client_sent.iter().zip(to_server).enumerate() {
            check_to_server(c, fl.f, i, s, o);
        }
        if c.both_ways() {
            let kc = fl.key_to_client.as_ref().unwrap();
            let to_client = fa.get(kc).unwrap_or_else(|| panic!("{name}: nothing came back"));
            assert_eq!(to_client.len(), fl.server_sent.len(), "{name}: every reply");
            assert_eq!(
                to_client, &fl.emitted_to_client,
                "{name}: flow {}: toward the client",
                fl.f
            );
            for (s, o) in fl.server_sent.iter().zip(to_client) {
                check_to_client(c, fl.f, s, o);
            }
        } else {
            assert!(fl.server_sent.is_empty() && fl.key_to_client.is_none());
        }
    }
    // Each flow is its own connection (FNAT, NAT64 and SNAT: its own local address and port
    // toward the server), and rr spreads each VIP case's two flows over its two servers.
    let distinct = |ks: Vec<&String>| ks.iter().collect::<std::collections::BTreeSet<_>>().len() == ks.len();
    assert!(distinct(
        flows.iter().filter_map(|fl| fl.key_to_server.as_ref()).collect()
    ));
    assert!(distinct(
        flows.iter().filter_map(|fl| fl.key_to_client.as_ref()).collect()
    ));
    for c in cases.iter().filter(|c| !c.snat()) {
        let mut servers: Vec<usize> = flows
            .iter()
            .filter(|fl| fl.case.k == c.k)
            .map(|fl| {
                let out = &fa[fl.key_to_server.as_ref().unwrap()][0];
                (0..2)
                    .find(|&x| out[..6] == c.server_mac(x))
                    .expect("a real server's MAC")
            })
            .collect();
        servers.sort_unstable();
        assert_eq!(servers, vec![0, 1], "{}: rr over both real servers", c.name());
    }
    // The per-case keys cover the whole output: nothing else was sent.
    let known: usize = flows
        .iter()
        .flat_map(|fl| [&fl.key_to_server, &fl.key_to_client])
        .flatten()
        .map(|k| fa[k].len())
        .sum();
    assert_eq!(known, a.len(), "every frame belongs to a flow of the test");

    let s = stats(&stats_file);
    assert_eq!(s["packets_in"].as_u64(), Some(trace.len() as u64));
    assert_eq!(s["packets_out"].as_u64(), Some(a.len() as u64));
    assert_eq!(s["created"].as_u64(), Some(nflows as u64), "one connection per flow");
    assert_eq!(s["mempool_in_use"].as_u64(), Some(0), "every mbuf back in its pool");
    assert!(stdout.contains("mbufs in use at exit 0 of"), "{stdout}");
    // What went in and what `rvs run` sent, kept for Wireshark.
    let keep = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-modes");
    std::fs::create_dir_all(&keep).expect("keep dir");
    for f in ["in.pcap", "out-run.pcap", "run.toml"] {
        std::fs::copy(dir.join(f), keep.join(f)).expect("keep the trace");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
