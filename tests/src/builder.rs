//! A fluent packet builder producing wire bytes with correct checksums.
//!
//! ```
//! use rvs_testkit::builder::{Pkt, SYN};
//! let bytes = Pkt::eth([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
//!     .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
//!     .tcp(40000, 80)
//!     .flags(SYN)
//!     .seq(1)
//!     .mss(1460)
//!     .payload(b"x")
//!     .build();
//! assert!(rvs_testkit::decode::decode_checked(&bytes).is_ok());
//! ```
//!
//! Layers are stacked in call order: [`Pkt::eth`] (or [`Pkt::l3`] for a packet without
//! Ethernet, e.g. the inner packet of an ICMP error), an optional [`Pkt::vlan`], then one or
//! more IP layers (a second [`Pkt::ipv4`]/[`Pkt::ipv6`] encapsulates, IPIP style, and sets the
//! outer protocol to 4 or 41), then one L4 layer, then the payload. Setters act on the layer
//! they name: IP setters (`ttl`, `tos`, `id`, `df`, extension headers, ...) on the most recent
//! IP layer at the time of the call, TCP setters on the TCP header. Calling a setter whose
//! layer is missing panics with a message saying so (this is test code: a misuse is a test bug).
//!
//! Checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6, over the IPv4 or IPv6 pseudo-header, with
//! the final destination of a routing header for IPv6) are computed by [`crate::csum`], the
//! kit's own RFC 1071 code, never by rvs-core's. Knobs spoil a packet on purpose for negative
//! tests: [`Pkt::bad_ip_checksum`], [`Pkt::bad_l4_checksum`], [`Pkt::ip_len`], [`Pkt::ihl`],
//! [`Pkt::tcp_data_offset`], [`Pkt::udp_len`], [`Pkt::truncate`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::csum;

/// TCP FIN.
pub const FIN: u8 = 0x01;
/// TCP SYN.
pub const SYN: u8 = 0x02;
/// TCP RST.
pub const RST: u8 = 0x04;
/// TCP PSH.
pub const PSH: u8 = 0x08;
/// TCP ACK.
pub const ACK: u8 = 0x10;
/// TCP URG.
pub const URG: u8 = 0x20;
/// TCP ECE.
pub const ECE: u8 = 0x40;
/// TCP CWR.
pub const CWR: u8 = 0x80;

/// Ethertypes.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers (IANA).
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 no next header.
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// Reserved for experimentation (RFC 3692); the default of an IPv4 layer with no L4.
    pub const EXPERIMENTAL: u8 = 253;
}

/// TCP option kinds.
pub mod tcpopt {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation.
    pub const NOP: u8 = 1;
    /// Maximum segment size (RFC 9293).
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323).
    pub const WSCALE: u8 = 3;
    /// SACK permitted (RFC 2018).
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks (RFC 2018).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323).
    pub const TIMESTAMPS: u8 = 8;
    /// TOA, the client address DPVS inserts for FNAT (8 bytes for IPv4, 20 for IPv6).
    pub const TOA: u8 = 254;
}

/// How a checksum field is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Csum {
    /// The correct value.
    #[default]
    Auto,
    /// A wrong value (the correct one with bits flipped; never equal to it, nor to its
    /// one's-complement twin).
    Bad,
    /// Exactly this value.
    Value(u16),
}

impl Csum {
    fn apply(self, correct: u16) -> u16 {
        match self {
            Csum::Auto => correct,
            Csum::Bad => correct ^ 0x5a5a,
            Csum::Value(v) => v,
        }
    }
}

/// An IPv6 extension header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext6 {
    /// Hop-by-hop options: the option bytes (padded with Pad1/PadN to a multiple of 8).
    HopByHop(Vec<u8>),
    /// Routing header: type, segments left, and the type-specific data after those two
    /// bytes (zero-padded to a multiple of 8).
    Routing {
        /// Routing type.
        typ: u8,
        /// Segments left.
        segs_left: u8,
        /// Type-specific data.
        data: Vec<u8>,
    },
    /// Destination options: the option bytes (padded with Pad1/PadN).
    DstOpts(Vec<u8>),
    /// Fragment header.
    Fragment {
        /// Offset in 8-byte units.
        offset: u16,
        /// More fragments.
        mf: bool,
        /// Identification.
        id: u32,
    },
}

impl Ext6 {
    fn kind(&self) -> u8 {
        match self {
            Ext6::HopByHop(_) => proto::HOPOPT,
            Ext6::Routing { .. } => proto::ROUTING,
            Ext6::DstOpts(_) => proto::DSTOPTS,
            Ext6::Fragment { .. } => proto::FRAGMENT,
        }
    }

    fn encode(&self, next: u8, out: &mut Vec<u8>) {
        match self {
            Ext6::HopByHop(opts) | Ext6::DstOpts(opts) => {
                let len = (2 + opts.len()).div_ceil(8) * 8;
                out.push(next);
                out.push((len / 8 - 1) as u8);
                out.extend_from_slice(opts);
                match len - 2 - opts.len() {
                    0 => {}
                    1 => out.push(0), // Pad1
                    n => {
                        out.push(1); // PadN
                        out.push((n - 2) as u8);
                        out.extend(std::iter::repeat_n(0, n - 2));
                    }
                }
            }
            Ext6::Routing { typ, segs_left, data } => {
                let len = (4 + data.len()).div_ceil(8) * 8;
                out.extend_from_slice(&[next, (len / 8 - 1) as u8, *typ, *segs_left]);
                out.extend_from_slice(data);
                out.extend(std::iter::repeat_n(0, len - 4 - data.len()));
            }
            Ext6::Fragment { offset, mf, id } => {
                let off = (offset << 3) | u16::from(*mf);
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&off.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }

    /// The final destination named by a routing header with segments left (RFC 8200
    /// section 8.1): the last address of type 0/2, the first segment of an SRH (type 4).
    fn final_dst(&self) -> Option<[u8; 16]> {
        match self {
            Ext6::Routing { typ, segs_left, data } if *segs_left > 0 && data.len() >= 20 => {
                let a: &[u8] = match typ {
                    0 | 2 => &data[data.len() - 16..],
                    4 => &data[4..20],
                    _ => return None,
                };
                a.try_into().ok()
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct V4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tos: u8,
    ttl: u8,
    id: u16,
    df: bool,
    mf: bool,
    frag_offset: u16,
    options: Vec<u8>,
    proto: Option<u8>,
    total_len: Option<u16>,
    ihl: Option<u8>,
    csum: Csum,
}

#[derive(Debug, Clone)]
struct V6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    tclass: u8,
    flow: u32,
    hop_limit: u8,
    exts: Vec<Ext6>,
    proto: Option<u8>,
    payload_len: Option<u16>,
}

#[derive(Debug, Clone)]
enum Ip {
    V4(V4),
    V6(V6),
}

#[derive(Debug, Clone)]
struct Tcp {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    opts: Vec<u8>,
    data_offset: Option<u8>,
}

#[derive(Debug, Clone)]
struct Udp {
    sport: u16,
    dport: u16,
    len: Option<u16>,
}

#[derive(Debug, Clone)]
struct Icmp {
    v6: bool,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
}

#[derive(Debug, Clone)]
struct Arp {
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
}

/// A packet under construction. Cheap to clone: a fixture can keep the builder of its input
/// and derive the expected output from a clone with a few fields changed.
#[derive(Debug, Clone, Default)]
pub struct Pkt {
    eth: Option<([u8; 6], [u8; 6])>,
    ethertype: Option<u16>,
    vlan: Option<(u8, u16)>,
    arp: Option<Arp>,
    ips: Vec<Ip>,
    l4: Option<L4>,
    l4_csum: Csum,
    payload: Vec<u8>,
    pad_to: usize,
    truncate: Option<usize>,
}

impl Pkt {
    /// An Ethernet frame from `src` to `dst`.
    pub fn eth(src: [u8; 6], dst: [u8; 6]) -> Self {
        Pkt {
            eth: Some((src, dst)),
            ..Pkt::default()
        }
    }
    /// A packet without Ethernet, starting at its first IP header (the inner packet of an
    /// ICMP error or a tunnel).
    pub fn l3() -> Self {
        Pkt::default()
    }

    // ---- Ethernet, VLAN, ARP ----

    /// Add an 802.1Q tag with priority 0.
    pub fn vlan(self, vid: u16) -> Self {
        self.vlan_pcp(0, vid)
    }
    /// Add an 802.1Q tag with priority `pcp`.
    pub fn vlan_pcp(mut self, pcp: u8, vid: u16) -> Self {
        self.vlan = Some((pcp, vid));
        self
    }
    /// Force the ethertype (of the VLAN tag's payload when tagged).
    pub fn ethertype(mut self, t: u16) -> Self {
        self.ethertype = Some(t);
        self
    }
    /// An ARP request for `tpa` from `sha`/`spa` (RFC 826).
    pub fn arp_request(mut self, sha: [u8; 6], spa: impl Into<Ipv4Addr>, tpa: impl Into<Ipv4Addr>) -> Self {
        self.arp = Some(Arp {
            op: 1,
            sha,
            spa: spa.into(),
            tha: [0; 6],
            tpa: tpa.into(),
        });
        self
    }
    /// An ARP reply from `sha`/`spa` to `tha`/`tpa`.
    pub fn arp_reply(mut self, sha: [u8; 6], spa: impl Into<Ipv4Addr>, tha: [u8; 6], tpa: impl Into<Ipv4Addr>) -> Self {
        self.arp = Some(Arp {
            op: 2,
            sha,
            spa: spa.into(),
            tha,
            tpa: tpa.into(),
        });
        self
    }

    // ---- IP ----

    /// Add an IPv4 header (TTL 64, DF clear, id 0). A second IP layer is encapsulated in the
    /// first (IPIP).
    pub fn ipv4(mut self, src: impl Into<Ipv4Addr>, dst: impl Into<Ipv4Addr>) -> Self {
        self.ips.push(Ip::V4(V4 {
            src: src.into(),
            dst: dst.into(),
            tos: 0,
            ttl: 64,
            id: 0,
            df: false,
            mf: false,
            frag_offset: 0,
            options: Vec::new(),
            proto: None,
            total_len: None,
            ihl: None,
            csum: Csum::Auto,
        }));
        self
    }
    /// Add an IPv6 header (hop limit 64, flow label 0).
    pub fn ipv6(mut self, src: impl Into<Ipv6Addr>, dst: impl Into<Ipv6Addr>) -> Self {
        self.ips.push(Ip::V6(V6 {
            src: src.into(),
            dst: dst.into(),
            tclass: 0,
            flow: 0,
            hop_limit: 64,
            exts: Vec::new(),
            proto: None,
            payload_len: None,
        }));
        self
    }

    fn ip_mut(&mut self, what: &str) -> &mut Ip {
        match self.ips.last_mut() {
            Some(ip) => ip,
            None => panic!("Pkt::{what}() needs an IP layer first (.ipv4() or .ipv6())"),
        }
    }
    fn v4_mut(&mut self, what: &str) -> &mut V4 {
        match self.ip_mut(what) {
            Ip::V4(v) => v,
            Ip::V6(_) => panic!("Pkt::{what}() applies to IPv4 only"),
        }
    }
    fn v6_mut(&mut self, what: &str) -> &mut V6 {
        match self.ip_mut(what) {
            Ip::V6(v) => v,
            Ip::V4(_) => panic!("Pkt::{what}() applies to IPv6 only"),
        }
    }

    /// IPv4 TTL or IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        match self.ip_mut("ttl") {
            Ip::V4(v) => v.ttl = ttl,
            Ip::V6(v) => v.hop_limit = ttl,
        }
        self
    }
    /// IPv6 hop limit (same as [`Pkt::ttl`]).
    pub fn hop_limit(self, h: u8) -> Self {
        self.ttl(h)
    }
    /// IPv4 type of service or IPv6 traffic class.
    pub fn tos(mut self, tos: u8) -> Self {
        match self.ip_mut("tos") {
            Ip::V4(v) => v.tos = tos,
            Ip::V6(v) => v.tclass = tos,
        }
        self
    }
    /// IPv4 identification.
    pub fn id(mut self, id: u16) -> Self {
        self.v4_mut("id").id = id;
        self
    }
    /// Set IPv4 don't-fragment.
    pub fn df(mut self) -> Self {
        self.v4_mut("df").df = true;
        self
    }
    /// Set IPv4 more-fragments.
    pub fn mf(mut self) -> Self {
        self.v4_mut("mf").mf = true;
        self
    }
    /// IPv4 fragment offset in 8-byte units.
    pub fn frag_offset(mut self, off: u16) -> Self {
        self.v4_mut("frag_offset").frag_offset = off & 0x1fff;
        self
    }
    /// IPv4 options bytes (zero-padded to a multiple of 4).
    pub fn ip_options(mut self, opts: &[u8]) -> Self {
        self.v4_mut("ip_options").options = opts.to_vec();
        self
    }
    /// IPv6 flow label (20 bits).
    pub fn flow_label(mut self, f: u32) -> Self {
        self.v6_mut("flow_label").flow = f & 0xf_ffff;
        self
    }
    /// Append an IPv6 hop-by-hop options header holding `opts`.
    pub fn hop_by_hop(mut self, opts: &[u8]) -> Self {
        self.v6_mut("hop_by_hop").exts.push(Ext6::HopByHop(opts.to_vec()));
        self
    }
    /// Append an IPv6 routing header.
    pub fn routing(mut self, typ: u8, segs_left: u8, data: &[u8]) -> Self {
        self.v6_mut("routing").exts.push(Ext6::Routing {
            typ,
            segs_left,
            data: data.to_vec(),
        });
        self
    }
    /// Append an IPv6 destination options header holding `opts`.
    pub fn dst_opts(mut self, opts: &[u8]) -> Self {
        self.v6_mut("dst_opts").exts.push(Ext6::DstOpts(opts.to_vec()));
        self
    }
    /// Append an IPv6 fragment header.
    pub fn frag6(mut self, offset: u16, mf: bool, id: u32) -> Self {
        self.v6_mut("frag6").exts.push(Ext6::Fragment {
            offset: offset & 0x1fff,
            mf,
            id,
        });
        self
    }
    /// Force the IP protocol / last next-header value (default: derived from what follows).
    pub fn ip_proto(mut self, p: u8) -> Self {
        match self.ip_mut("ip_proto") {
            Ip::V4(v) => v.proto = Some(p),
            Ip::V6(v) => v.proto = Some(p),
        }
        self
    }

    // ---- corruption knobs for IP ----

    /// Spoil the IPv4 header checksum of the most recent IPv4 layer.
    pub fn bad_ip_checksum(mut self) -> Self {
        self.v4_mut("bad_ip_checksum").csum = Csum::Bad;
        self
    }
    /// Put exactly `c` in the IPv4 header checksum.
    pub fn ip_checksum(mut self, c: u16) -> Self {
        self.v4_mut("ip_checksum").csum = Csum::Value(c);
        self
    }
    /// Force the IPv4 total length or the IPv6 payload length field.
    pub fn ip_len(mut self, len: u16) -> Self {
        match self.ip_mut("ip_len") {
            Ip::V4(v) => v.total_len = Some(len),
            Ip::V6(v) => v.payload_len = Some(len),
        }
        self
    }
    /// Force the IPv4 header length field (in 32-bit words; the bytes emitted do not change).
    pub fn ihl(mut self, ihl: u8) -> Self {
        self.v4_mut("ihl").ihl = Some(ihl & 0xf);
        self
    }

    // ---- TCP ----

    /// Add a TCP header (window 65535, no flag, no option).
    pub fn tcp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = Some(L4::Tcp(Tcp {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            urgent: 0,
            opts: Vec::new(),
            data_offset: None,
        }));
        self
    }
    fn tcp_mut(&mut self, what: &str) -> &mut Tcp {
        match &mut self.l4 {
            Some(L4::Tcp(t)) => t,
            _ => panic!("Pkt::{what}() needs .tcp() first"),
        }
    }
    /// TCP flags (`SYN | ACK`, ...).
    pub fn flags(mut self, f: u8) -> Self {
        self.tcp_mut("flags").flags = f;
        self
    }
    /// TCP sequence number.
    pub fn seq(mut self, s: u32) -> Self {
        self.tcp_mut("seq").seq = s;
        self
    }
    /// TCP acknowledgment number (the ACK flag is set with [`Pkt::flags`]).
    pub fn ack(mut self, a: u32) -> Self {
        self.tcp_mut("ack").ack = a;
        self
    }
    /// TCP window.
    pub fn window(mut self, w: u16) -> Self {
        self.tcp_mut("window").window = w;
        self
    }
    /// TCP urgent pointer.
    pub fn urgent(mut self, u: u16) -> Self {
        self.tcp_mut("urgent").urgent = u;
        self
    }
    /// Append raw TCP option bytes (the option list is zero-padded to a multiple of 4).
    pub fn tcp_opt_raw(mut self, bytes: &[u8]) -> Self {
        self.tcp_mut("tcp_opt_raw").opts.extend_from_slice(bytes);
        self
    }
    /// Append an MSS option.
    pub fn mss(self, mss: u16) -> Self {
        let m = mss.to_be_bytes();
        self.tcp_opt_raw(&[tcpopt::MSS, 4, m[0], m[1]])
    }
    /// Append a window-scale option.
    pub fn wscale(self, shift: u8) -> Self {
        self.tcp_opt_raw(&[tcpopt::WSCALE, 3, shift])
    }
    /// Append a SACK-permitted option.
    pub fn sack_perm(self) -> Self {
        self.tcp_opt_raw(&[tcpopt::SACK_PERM, 2])
    }
    /// Append a SACK option with `blocks` (left edge, right edge).
    pub fn sack(self, blocks: &[(u32, u32)]) -> Self {
        let mut o = vec![tcpopt::SACK, (2 + 8 * blocks.len()) as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        self.tcp_opt_raw(&o)
    }
    /// Append a timestamps option.
    pub fn timestamps(self, tsval: u32, tsecr: u32) -> Self {
        let mut o = vec![tcpopt::TIMESTAMPS, 10];
        o.extend_from_slice(&tsval.to_be_bytes());
        o.extend_from_slice(&tsecr.to_be_bytes());
        self.tcp_opt_raw(&o)
    }
    /// Append an IPv4 TOA option (kind 254, length 8: port, address), as DPVS inserts it.
    pub fn toa(self, port: u16, addr: impl Into<Ipv4Addr>) -> Self {
        let mut o = vec![tcpopt::TOA, 8];
        o.extend_from_slice(&port.to_be_bytes());
        o.extend_from_slice(&addr.into().octets());
        self.tcp_opt_raw(&o)
    }
    /// Append an IPv6 TOA option (kind 254, length 20: port, address).
    pub fn toa_v6(self, port: u16, addr: impl Into<Ipv6Addr>) -> Self {
        let mut o = vec![tcpopt::TOA, 20];
        o.extend_from_slice(&port.to_be_bytes());
        o.extend_from_slice(&addr.into().octets());
        self.tcp_opt_raw(&o)
    }
    /// Append a NOP option.
    pub fn nop(self) -> Self {
        self.tcp_opt_raw(&[tcpopt::NOP])
    }
    /// Append an end-of-list option.
    pub fn eol(self) -> Self {
        self.tcp_opt_raw(&[tcpopt::EOL])
    }
    /// Force the TCP data offset field (in 32-bit words; the bytes emitted do not change).
    pub fn tcp_data_offset(mut self, words: u8) -> Self {
        self.tcp_mut("tcp_data_offset").data_offset = Some(words & 0xf);
        self
    }

    // ---- UDP ----

    /// Add a UDP header.
    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = Some(L4::Udp(Udp {
            sport,
            dport,
            len: None,
        }));
        self
    }
    /// Force the UDP length field.
    pub fn udp_len(mut self, len: u16) -> Self {
        match &mut self.l4 {
            Some(L4::Udp(u)) => u.len = Some(len),
            _ => panic!("Pkt::udp_len() needs .udp() first"),
        }
        self
    }

    // ---- ICMP ----

    /// An ICMP (or, with `v6`, ICMPv6) message of any type: `rest` is the 4 bytes after the
    /// checksum, `body` what follows them.
    pub fn icmp_raw(mut self, v6: bool, typ: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Self {
        self.l4 = Some(L4::Icmp(Icmp {
            v6,
            typ,
            code,
            rest,
            body: body.to_vec(),
        }));
        self
    }
    fn id_seq(id: u16, seq: u16) -> [u8; 4] {
        let (i, s) = (id.to_be_bytes(), seq.to_be_bytes());
        [i[0], i[1], s[0], s[1]]
    }
    /// ICMP echo request (type 8); the data is the payload.
    pub fn icmp_echo_request(self, id: u16, seq: u16) -> Self {
        self.icmp_raw(false, 8, 0, Self::id_seq(id, seq), &[])
    }
    /// ICMP echo reply (type 0).
    pub fn icmp_echo_reply(self, id: u16, seq: u16) -> Self {
        self.icmp_raw(false, 0, 0, Self::id_seq(id, seq), &[])
    }
    /// ICMP destination unreachable (type 3) with code `code`, quoting `inner` (IP header
    /// onward, truncated as the caller chooses).
    pub fn icmp_dest_unreach(self, code: u8, inner: &[u8]) -> Self {
        self.icmp_raw(false, 3, code, [0; 4], inner)
    }
    /// ICMP fragmentation needed (type 3 code 4) with the next-hop MTU (RFC 1191).
    pub fn icmp_frag_needed(self, mtu: u16, inner: &[u8]) -> Self {
        let m = mtu.to_be_bytes();
        self.icmp_raw(false, 3, 4, [0, 0, m[0], m[1]], inner)
    }
    /// ICMP time exceeded (type 11) with code `code`.
    pub fn icmp_time_exceeded(self, code: u8, inner: &[u8]) -> Self {
        self.icmp_raw(false, 11, code, [0; 4], inner)
    }
    /// ICMPv6 echo request (type 128).
    pub fn icmpv6_echo_request(self, id: u16, seq: u16) -> Self {
        self.icmp_raw(true, 128, 0, Self::id_seq(id, seq), &[])
    }
    /// ICMPv6 echo reply (type 129).
    pub fn icmpv6_echo_reply(self, id: u16, seq: u16) -> Self {
        self.icmp_raw(true, 129, 0, Self::id_seq(id, seq), &[])
    }
    /// ICMPv6 destination unreachable (type 1).
    pub fn icmpv6_dest_unreach(self, code: u8, inner: &[u8]) -> Self {
        self.icmp_raw(true, 1, code, [0; 4], inner)
    }
    /// ICMPv6 packet too big (type 2) with the MTU (RFC 4443 section 3.2).
    pub fn icmpv6_packet_too_big(self, mtu: u32, inner: &[u8]) -> Self {
        self.icmp_raw(true, 2, 0, mtu.to_be_bytes(), inner)
    }
    /// ICMPv6 time exceeded (type 3).
    pub fn icmpv6_time_exceeded(self, code: u8, inner: &[u8]) -> Self {
        self.icmp_raw(true, 3, code, [0; 4], inner)
    }

    // ---- payload and whole-packet knobs ----

    /// Append payload bytes (after the L4 header, or after the last IP header if none).
    pub fn payload(mut self, p: &[u8]) -> Self {
        self.payload.extend_from_slice(p);
        self
    }
    /// Spoil the TCP, UDP, ICMP or ICMPv6 checksum.
    pub fn bad_l4_checksum(mut self) -> Self {
        self.l4_csum = Csum::Bad;
        self
    }
    /// Put exactly `c` in the L4 checksum (0 in UDP over IPv4 means "no checksum").
    pub fn l4_checksum(mut self, c: u16) -> Self {
        self.l4_csum = Csum::Value(c);
        self
    }
    /// Pad the frame with zeros to at least `n` bytes (Ethernet's 60-byte minimum), after
    /// the IP datagram.
    pub fn pad_to(mut self, n: usize) -> Self {
        self.pad_to = n;
        self
    }
    /// Cut the finished bytes to at most `n` (after every checksum is computed).
    pub fn truncate(mut self, n: usize) -> Self {
        self.truncate = Some(n);
        self
    }

    // ---- build ----

    /// The protocol number an IP layer at `i` carries.
    fn carried_proto(&self, i: usize) -> u8 {
        if let Some(next) = self.ips.get(i + 1) {
            return match next {
                Ip::V4(_) => proto::IPIP,
                Ip::V6(_) => proto::IPV6,
            };
        }
        match &self.l4 {
            Some(L4::Tcp(_)) => proto::TCP,
            Some(L4::Udp(_)) => proto::UDP,
            Some(L4::Icmp(i)) if i.v6 => proto::ICMPV6,
            Some(L4::Icmp(_)) => proto::ICMP,
            None => match self.ips.last() {
                Some(Ip::V6(_)) => proto::NONE,
                _ => proto::EXPERIMENTAL,
            },
        }
    }

    /// The pseudo-header sum for the innermost IP layer and `len` upper-layer bytes.
    fn pseudo(&self, p: u8, len: usize) -> u32 {
        match self.ips.last() {
            Some(Ip::V4(v)) => csum::pseudo_v4(v.src.octets(), v.dst.octets(), p, len),
            Some(Ip::V6(v)) => {
                let dst = v.exts.iter().find_map(Ext6::final_dst).unwrap_or(v.dst.octets());
                csum::pseudo_v6(v.src.octets(), dst, p, len)
            }
            None => 0,
        }
    }

    fn build_l4(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.l4 {
            None => out.extend_from_slice(&self.payload),
            Some(L4::Tcp(t)) => {
                let mut opts = t.opts.clone();
                opts.resize(opts.len().div_ceil(4) * 4, 0);
                let hlen = 20 + opts.len();
                let doff = t.data_offset.unwrap_or((hlen / 4) as u8);
                out.extend_from_slice(&t.sport.to_be_bytes());
                out.extend_from_slice(&t.dport.to_be_bytes());
                out.extend_from_slice(&t.seq.to_be_bytes());
                out.extend_from_slice(&t.ack.to_be_bytes());
                out.push(doff << 4);
                out.push(t.flags);
                out.extend_from_slice(&t.window.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&t.urgent.to_be_bytes());
                out.extend_from_slice(&opts);
                out.extend_from_slice(&self.payload);
                let c = csum::finish(csum::sum(self.pseudo(proto::TCP, out.len()), &out));
                out[16..18].copy_from_slice(&self.l4_csum.apply(c).to_be_bytes());
            }
            Some(L4::Udp(u)) => {
                let len = 8 + self.payload.len();
                out.extend_from_slice(&u.sport.to_be_bytes());
                out.extend_from_slice(&u.dport.to_be_bytes());
                out.extend_from_slice(&u.len.unwrap_or(len as u16).to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&self.payload);
                let c = csum::finish(csum::sum(self.pseudo(proto::UDP, out.len()), &out));
                // RFC 768: a computed zero is sent as all ones.
                let c = if c == 0 { 0xffff } else { c };
                out[6..8].copy_from_slice(&self.l4_csum.apply(c).to_be_bytes());
            }
            Some(L4::Icmp(i)) => {
                out.extend_from_slice(&[i.typ, i.code, 0, 0]);
                out.extend_from_slice(&i.rest);
                out.extend_from_slice(&i.body);
                out.extend_from_slice(&self.payload);
                let c = if i.v6 {
                    csum::finish(csum::sum(self.pseudo(proto::ICMPV6, out.len()), &out))
                } else {
                    csum::checksum(&out)
                };
                out[2..4].copy_from_slice(&self.l4_csum.apply(c).to_be_bytes());
            }
        }
        out
    }

    fn wrap_ip(&self, i: usize, inner: Vec<u8>) -> Vec<u8> {
        let p = self.carried_proto(i);
        let mut out = Vec::with_capacity(inner.len() + 60);
        match &self.ips[i] {
            Ip::V4(v) => {
                let mut opts = v.options.clone();
                opts.resize(opts.len().div_ceil(4) * 4, 0);
                let hlen = 20 + opts.len();
                let ihl = v.ihl.unwrap_or((hlen / 4) as u8);
                let total = v.total_len.unwrap_or((hlen + inner.len()) as u16);
                let frag = (u16::from(v.df) << 14) | (u16::from(v.mf) << 13) | v.frag_offset;
                out.push(0x40 | ihl);
                out.push(v.tos);
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&v.id.to_be_bytes());
                out.extend_from_slice(&frag.to_be_bytes());
                out.push(v.ttl);
                out.push(v.proto.unwrap_or(p));
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&v.src.octets());
                out.extend_from_slice(&v.dst.octets());
                out.extend_from_slice(&opts);
                let c = csum::checksum(&out);
                out[10..12].copy_from_slice(&v.csum.apply(c).to_be_bytes());
            }
            Ip::V6(v) => {
                let mut exts = Vec::new();
                for (k, e) in v.exts.iter().enumerate() {
                    let next = match v.exts.get(k + 1) {
                        Some(n) => n.kind(),
                        None => v.proto.unwrap_or(p),
                    };
                    e.encode(next, &mut exts);
                }
                let first = match v.exts.first() {
                    Some(e) => e.kind(),
                    None => v.proto.unwrap_or(p),
                };
                let plen = v.payload_len.unwrap_or((exts.len() + inner.len()) as u16);
                let w = (6u32 << 28) | (u32::from(v.tclass) << 20) | v.flow;
                out.extend_from_slice(&w.to_be_bytes());
                out.extend_from_slice(&plen.to_be_bytes());
                out.push(first);
                out.push(v.hop_limit);
                out.extend_from_slice(&v.src.octets());
                out.extend_from_slice(&v.dst.octets());
                out.extend_from_slice(&exts);
            }
        }
        out.extend_from_slice(&inner);
        out
    }

    /// The wire bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut body = if let Some(a) = &self.arp {
            let mut o = vec![0, 1, 0x08, 0x00, 6, 4];
            o.extend_from_slice(&a.op.to_be_bytes());
            o.extend_from_slice(&a.sha);
            o.extend_from_slice(&a.spa.octets());
            o.extend_from_slice(&a.tha);
            o.extend_from_slice(&a.tpa.octets());
            o.extend_from_slice(&self.payload);
            o
        } else {
            let mut b = self.build_l4();
            for i in (0..self.ips.len()).rev() {
                b = self.wrap_ip(i, b);
            }
            b
        };
        let mut out = Vec::with_capacity(body.len() + 18);
        if let Some((src, dst)) = self.eth {
            let inner_type = self.ethertype.unwrap_or(if self.arp.is_some() {
                ethertype::ARP
            } else {
                match self.ips.first() {
                    Some(Ip::V4(_)) => ethertype::IPV4,
                    Some(Ip::V6(_)) => ethertype::IPV6,
                    None => 0x88b5, // IEEE local experimental
                }
            });
            out.extend_from_slice(&dst);
            out.extend_from_slice(&src);
            if let Some((pcp, vid)) = self.vlan {
                out.extend_from_slice(&ethertype::VLAN.to_be_bytes());
                let tci = (u16::from(pcp & 7) << 13) | (vid & 0x0fff);
                out.extend_from_slice(&tci.to_be_bytes());
            }
            out.extend_from_slice(&inner_type.to_be_bytes());
        }
        out.append(&mut body);
        if out.len() < self.pad_to {
            out.resize(self.pad_to, 0);
        }
        if let Some(n) = self.truncate {
            out.truncate(n);
        }
        out
    }

    /// Length of the L2 header (Ethernet plus VLAN tag) this packet will have.
    pub fn l2_len(&self) -> usize {
        match (self.eth, self.vlan) {
            (None, _) => 0,
            (Some(_), None) => 14,
            (Some(_), Some(_)) => 18,
        }
    }
}

/// A MAC address from its last byte, in the locally administered range (`02:00:00:00:00:xx`).
pub const fn mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_layout_matches_hand_computed_bytes() {
        let b = Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2])
            .id(0x1234)
            .df()
            .tcp(0x1000, 80)
            .flags(SYN)
            .seq(0x01020304)
            .mss(1460)
            .build();
        assert_eq!(b.len(), 14 + 20 + 24);
        assert_eq!(&b[0..6], &mac(2));
        assert_eq!(&b[6..12], &mac(1));
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[14], 0x45);
        assert_eq!(&b[16..18], &44u16.to_be_bytes());
        assert_eq!(&b[18..20], &[0x12, 0x34]);
        assert_eq!(&b[20..22], &[0x40, 0x00]);
        assert_eq!(b[23], 6);
        assert_eq!(csum::checksum(&b[14..34]), 0, "IPv4 header sums to zero");
        assert_eq!(b[34 + 12], 6 << 4, "data offset 6 words");
        assert_eq!(b[34 + 13], SYN);
        assert_eq!(&b[54..58], &[2, 4, 0x05, 0xb4]);
        let ps = csum::pseudo_v4([198, 18, 0, 1], [198, 18, 0, 2], 6, 24);
        assert_eq!(csum::finish(csum::sum(ps, &b[34..])), 0, "TCP sums to zero");
    }

    #[test]
    fn options_are_padded_and_ext_headers_chained() {
        let b = Pkt::l3()
            .ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2])
            .hop_by_hop(&[])
            .dst_opts(&[0x1e, 1, 0])
            .frag6(0, true, 7)
            .udp(1, 2)
            .payload(&[1, 2, 3])
            .build();
        // HBH: next = DSTOPTS, len 0, then PadN of 4 zeros.
        assert_eq!(b[6], proto::HOPOPT);
        assert_eq!(&b[40..48], &[proto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(&b[48..56], &[proto::FRAGMENT, 0, 0x1e, 1, 0, 1, 1, 0]);
        assert_eq!(&b[56..64], &[proto::UDP, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&b[4..6], &(24u16 + 11).to_be_bytes());
    }

    #[test]
    fn corruption_knobs_change_only_their_field() {
        let good = Pkt::eth(mac(1), mac(2)).ipv4([1, 1, 1, 1], [2, 2, 2, 2]).udp(1, 2);
        let g = good.clone().build();
        let b = good.clone().bad_ip_checksum().build();
        assert_ne!(g[24..26], b[24..26]);
        assert_eq!(g[..24], b[..24]);
        assert_eq!(g[26..], b[26..]);
        let t = good.clone().truncate(20).build();
        assert_eq!(t, g[..20]);
        let l = good.ihl(4).build();
        assert_eq!(l[14], 0x44);
    }

    #[test]
    #[should_panic(expected = "needs .tcp() first")]
    fn tcp_setter_without_tcp_panics_with_a_clear_message() {
        let _ = Pkt::l3().ipv4([1, 1, 1, 1], [2, 2, 2, 2]).udp(1, 2).seq(3);
    }
}
