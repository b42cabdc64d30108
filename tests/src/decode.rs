//! An independent packet decoder for checking what rvs emits.
//!
//! It depends on no rvs crate: headers are cut with `etherparse`'s checked header slices and
//! every checksum is recomputed from the bytes with `etherparse`'s one's-complement sum (a
//! different implementation from both rvs-core's and the builder's), so a bug shared by the
//! code under test and the kit cannot hide itself.
//!
//! [`decode`] is best effort: it returns what it could read and lists each problem it found
//! (truncation, bad lengths, bad header fields) in [`Decoded::problems`] and each checksum with
//! its status in [`Decoded::checksums`]. [`decode_checked`] turns any problem or bad checksum
//! into an error. Neither panics, whatever the bytes (a property test holds it to that).
//!
//! What is decoded: Ethernet, 802.1Q/802.1ad tags, ARP (Ethernet/IPv4), IPv4 (options kept as
//! bytes, fragments), IPv6 with hop-by-hop, routing, destination-options and fragment headers,
//! IP-in-IP (4-in-4, 6-in-6, 6-in-4, 4-in-6) to any depth up to [`MAX_DEPTH`], TCP with its
//! options parsed (MSS, window scale, SACK-permitted, SACK, timestamps, TOA kind 254, NOP, EOL,
//! unknown kinds kept raw), UDP, ICMP and ICMPv6, with the IP packet quoted by an ICMP error
//! decoded leniently (it is usually truncated): its IP header checksum is checked, its L4
//! checksum only when the whole datagram is quoted.
//!
//! Not decoded: IPv6 authentication/ESP headers (the payload after them is left raw), IPv4
//! option contents (kept as bytes), TCP segments reassembled across fragments.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::checksum::Sum16BitWords;
use etherparse::{
    ArpPacketSlice, Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

/// Deepest nesting of IP-in-IP and ICMP-quoted packets the decoder follows.
pub const MAX_DEPTH: usize = 8;

/// Ethernet header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eth {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// The ethertype after all VLAN tags.
    pub ethertype: u16,
}

/// One VLAN tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    /// The tag protocol identifier (0x8100 or 0x88a8).
    pub tpid: u16,
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible.
    pub dei: bool,
    /// VLAN id.
    pub vid: u16,
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    /// Operation (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Header length in 32-bit words.
    pub ihl: u8,
    /// Type of service byte (DSCP and ECN).
    pub tos: u8,
    /// Total length field.
    pub total_len: u16,
    /// Identification.
    pub id: u16,
    /// Don't fragment.
    pub df: bool,
    /// More fragments.
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// TTL.
    pub ttl: u8,
    /// Protocol.
    pub proto: u8,
    /// Header checksum field.
    pub checksum: u16,
    /// Option bytes.
    pub options: Vec<u8>,
}

/// An IPv6 extension header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// Hop-by-hop options: the option bytes (padding included).
    HopByHop(Vec<u8>),
    /// Routing header.
    Routing {
        /// Routing type.
        typ: u8,
        /// Segments left.
        segs_left: u8,
        /// Bytes after the type and segments-left fields.
        data: Vec<u8>,
    },
    /// Destination options: the option bytes (padding included).
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

/// IPv6 header and its extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
    /// Payload length field.
    pub payload_len: u16,
    /// Next header field of the fixed header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers in order.
    pub exts: Vec<Ipv6Ext>,
    /// The upper-layer protocol after the extension headers.
    pub proto: u8,
}

/// An IP header of either family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip {
    /// IPv4.
    V4(Ipv4),
    /// IPv6.
    V6(Ipv6),
}

impl Ip {
    /// Source address.
    pub fn src(&self) -> IpAddr {
        match self {
            Ip::V4(h) => h.src.into(),
            Ip::V6(h) => h.src.into(),
        }
    }
    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            Ip::V4(h) => h.dst.into(),
            Ip::V6(h) => h.dst.into(),
        }
    }
    /// Upper-layer protocol.
    pub fn proto(&self) -> u8 {
        match self {
            Ip::V4(h) => h.proto,
            Ip::V6(h) => h.proto,
        }
    }
    /// TTL or hop limit.
    pub fn ttl(&self) -> u8 {
        match self {
            Ip::V4(h) => h.ttl,
            Ip::V6(h) => h.hop_limit,
        }
    }
}

/// A parsed TCP option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOpt {
    /// End of option list (kind 0).
    Eol,
    /// No operation (kind 1).
    Nop,
    /// Maximum segment size (kind 2).
    Mss(u16),
    /// Window scale (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks (kind 5).
    Sack(Vec<(u32, u32)>),
    /// Timestamps (kind 8): value, echo reply.
    Timestamps(u32, u32),
    /// TOA (kind 254): the client's port and address.
    Toa(u16, IpAddr),
    /// Any other kind, with its data.
    Unknown(u8, Vec<u8>),
}

/// TCP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Data offset in 32-bit words.
    pub data_offset: u8,
    /// Flags (FIN 0x01 ... CWR 0x80).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options in order (padding EOL and the zeros after it are reported as one `Eol`).
    pub options: Vec<TcpOpt>,
    /// The raw option bytes.
    pub options_raw: Vec<u8>,
}

impl Tcp {
    /// The MSS option, if present.
    pub fn mss(&self) -> Option<u16> {
        self.options.iter().find_map(|o| match o {
            TcpOpt::Mss(m) => Some(*m),
            _ => None,
        })
    }
    /// The TOA option, if present.
    pub fn toa(&self) -> Option<(u16, IpAddr)> {
        self.options.iter().find_map(|o| match o {
            TcpOpt::Toa(p, a) => Some((*p, *a)),
            _ => None,
        })
    }
}

/// UDP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length field.
    pub len: u16,
    /// Checksum field.
    pub checksum: u16,
}

/// ICMP or ICMPv6 header, with the packet an error message quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// Type.
    pub typ: u8,
    /// Code.
    pub code: u8,
    /// Checksum field.
    pub checksum: u16,
    /// The 4 bytes after the checksum (id and sequence, MTU, pointer, unused).
    pub rest: [u8; 4],
    /// The quoted packet of an error message, decoded leniently.
    pub inner: Option<Box<Decoded>>,
}

impl Icmp {
    /// True for the error types (v4: 3, 4, 5, 11, 12; v6: 1 to 4) that quote a packet.
    pub fn is_error(&self) -> bool {
        if self.v6 {
            (1..=4).contains(&self.typ)
        } else {
            matches!(self.typ, 3 | 4 | 5 | 11 | 12)
        }
    }
    /// Echo identifier.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }
    /// Echo sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
    /// Next-hop MTU of a v4 fragmentation-needed message (RFC 1191) or the MTU of a v6
    /// packet-too-big message (RFC 4443).
    pub fn mtu(&self) -> u32 {
        if self.v6 {
            u32::from_be_bytes(self.rest)
        } else {
            u32::from(u16::from_be_bytes([self.rest[2], self.rest[3]]))
        }
    }
}

/// The L4 layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp(Tcp),
    /// UDP.
    Udp(Udp),
    /// ICMP or ICMPv6.
    Icmp(Icmp),
    /// A TCP or UDP header cut short (inside an ICMP error): what could be read.
    Partial {
        /// Protocol.
        proto: u8,
        /// Source port (0 if fewer than 2 bytes).
        sport: u16,
        /// Destination port (0 if fewer than 4 bytes).
        dport: u16,
        /// The bytes present.
        bytes: Vec<u8>,
    },
}

/// Status of one recomputed checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The bytes sum to zero.
    Ok,
    /// They do not.
    Bad,
    /// UDP over IPv4 with checksum 0: none was computed (RFC 768).
    Absent,
    /// Cannot be checked: a fragment, or a quoted packet cut short.
    NotChecked,
}

/// One checksum recomputed from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which header, as a path: `ipv4`, `ipv4/tcp`, `ipv4/ipv6/udp`, `ipv6/icmpv6/ipv6/tcp`.
    pub what: String,
    /// The value in the packet.
    pub stored: u16,
    /// The value it should have (computed with the field zeroed).
    pub computed: u16,
    /// The verdict.
    pub status: CheckStatus,
}

/// Everything the decoder read from a packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// Ethernet header (absent when decoding from the IP header on).
    pub eth: Option<Eth>,
    /// VLAN tags, outer first.
    pub vlans: Vec<Vlan>,
    /// ARP.
    pub arp: Option<Arp>,
    /// IP headers, outer first (more than one for IP-in-IP).
    pub ips: Vec<Ip>,
    /// The L4 header of the innermost IP packet.
    pub l4: Option<L4>,
    /// The bytes after the L4 header (or after the innermost IP header for other protocols
    /// and non-first fragments; ICMP: after the 8-byte header, the quoted packet included).
    pub payload: Vec<u8>,
    /// Bytes after the outer IP datagram (Ethernet padding).
    pub trailer: Vec<u8>,
    /// Every checksum found, recomputed.
    pub checksums: Vec<Check>,
    /// Everything malformed.
    pub problems: Vec<String>,
}

impl Decoded {
    /// The outer IP header.
    pub fn ip(&self) -> Option<&Ip> {
        self.ips.first()
    }
    /// The innermost IP header.
    pub fn inner_ip(&self) -> Option<&Ip> {
        self.ips.last()
    }
    /// The outer IPv4 header.
    pub fn ipv4(&self) -> Option<&Ipv4> {
        match self.ips.first() {
            Some(Ip::V4(h)) => Some(h),
            _ => None,
        }
    }
    /// The outer IPv6 header.
    pub fn ipv6(&self) -> Option<&Ipv6> {
        match self.ips.first() {
            Some(Ip::V6(h)) => Some(h),
            _ => None,
        }
    }
    /// The TCP header.
    pub fn tcp(&self) -> Option<&Tcp> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some(t),
            _ => None,
        }
    }
    /// The UDP header.
    pub fn udp(&self) -> Option<&Udp> {
        match &self.l4 {
            Some(L4::Udp(u)) => Some(u),
            _ => None,
        }
    }
    /// The ICMP or ICMPv6 header.
    pub fn icmp(&self) -> Option<&Icmp> {
        match &self.l4 {
            Some(L4::Icmp(i)) => Some(i),
            _ => None,
        }
    }
    /// Source and destination ports of TCP or UDP (partial headers included).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some((t.sport, t.dport)),
            Some(L4::Udp(u)) => Some((u.sport, u.dport)),
            Some(L4::Partial { sport, dport, .. }) => Some((*sport, *dport)),
            _ => None,
        }
    }
    /// The checksums that are wrong.
    pub fn bad_checksums(&self) -> impl Iterator<Item = &Check> {
        self.checksums.iter().filter(|c| c.status == CheckStatus::Bad)
    }
    /// The status of the checksum named `what`, if one was found.
    pub fn checksum(&self, what: &str) -> Option<CheckStatus> {
        self.checksums.iter().find(|c| c.what == what).map(|c| c.status)
    }
    /// True when nothing is malformed and no checksum is bad.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.bad_checksums().next().is_none()
    }
}

/// Why [`decode_checked`] refused a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What the decoder found (problems and bad checksums are listed in it).
    pub decoded: Box<Decoded>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "packet is not clean:")?;
        for p in &self.decoded.problems {
            write!(f, " [{p}]")?;
        }
        for c in self.decoded.bad_checksums() {
            write!(
                f,
                " [bad {} checksum {:#06x}, want {:#06x}]",
                c.what, c.stored, c.computed
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

/// Decode an Ethernet frame, best effort.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    decode_eth(&mut d, bytes);
    d
}

/// Decode a packet that starts at its IP header (IPv4 or IPv6 by the version nibble).
pub fn decode_ip(bytes: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    match bytes.first().map(|b| b >> 4) {
        Some(4) => ip4(&mut d, bytes, "", 0, false),
        Some(6) => ip6(&mut d, bytes, "", 0, false),
        Some(v) => d.problems.push(format!("IP version {v}")),
        None => d.problems.push("empty packet".into()),
    }
    d
}

/// Decode an Ethernet frame; any problem or bad checksum is an error.
pub fn decode_checked(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    clean(decode(bytes))
}

/// Decode from the IP header on; any problem or bad checksum is an error.
pub fn decode_ip_checked(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    clean(decode_ip(bytes))
}

fn clean(d: Decoded) -> Result<Decoded, DecodeError> {
    if d.is_clean() {
        Ok(d)
    } else {
        Err(DecodeError { decoded: Box::new(d) })
    }
}

fn decode_eth(d: &mut Decoded, bytes: &[u8]) {
    let eth = match Ethernet2HeaderSlice::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            d.problems.push(format!("ethernet: {e}"));
            return;
        }
    };
    let mut ethertype = eth.ether_type().0;
    let mut rest = &bytes[eth.slice().len()..];
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        match SingleVlanHeaderSlice::from_slice(rest) {
            Ok(v) => {
                d.vlans.push(Vlan {
                    tpid: ethertype,
                    pcp: v.priority_code_point().value(),
                    dei: v.drop_eligible_indicator(),
                    vid: v.vlan_identifier().value(),
                });
                ethertype = v.ether_type().0;
                rest = &rest[v.slice().len()..];
            }
            Err(e) => {
                d.problems.push(format!("vlan: {e}"));
                rest = &[];
                break;
            }
        }
        if d.vlans.len() > MAX_DEPTH {
            d.problems.push("too many VLAN tags".into());
            return;
        }
    }
    d.eth = Some(Eth {
        src: eth.source(),
        dst: eth.destination(),
        ethertype,
    });
    match ethertype {
        0x0800 => ip4(d, rest, "", 0, false),
        0x86dd => ip6(d, rest, "", 0, false),
        0x0806 => arp(d, rest),
        _ => d.payload = rest.to_vec(),
    }
}

fn arp(d: &mut Decoded, bytes: &[u8]) {
    let a = match ArpPacketSlice::from_slice(bytes) {
        Ok(a) => a,
        Err(e) => {
            d.problems.push(format!("arp: {e}"));
            return;
        }
    };
    let ok =
        a.hw_addr_type().0 == 1 && a.proto_addr_type().0 == 0x0800 && a.hw_addr_size() == 6 && a.proto_addr_size() == 4;
    if !ok {
        d.problems.push(format!(
            "arp: not Ethernet/IPv4 (hw {} proto {:#06x} sizes {}/{})",
            a.hw_addr_type().0,
            a.proto_addr_type().0,
            a.hw_addr_size(),
            a.proto_addr_size()
        ));
        return;
    }
    let mac = |s: &[u8]| <[u8; 6]>::try_from(s).unwrap_or_default();
    let ip = |s: &[u8]| Ipv4Addr::from(<[u8; 4]>::try_from(s).unwrap_or_default());
    d.arp = Some(Arp {
        op: a.operation().0,
        sha: mac(a.sender_hw_addr()),
        spa: ip(a.sender_protocol_addr()),
        tha: mac(a.target_hw_addr()),
        tpa: ip(a.target_protocol_addr()),
    });
    d.trailer = bytes[a.slice().len()..].to_vec();
}

/// The pseudo-header of the innermost IP layer.
#[derive(Clone, Copy)]
enum Pseudo {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Pseudo {
    fn sum(self, proto: u8, len: usize) -> Sum16BitWords {
        let mut s = Sum16BitWords::new();
        match self {
            Pseudo::V4(a, b) => {
                s = s.add_slice(&a).add_slice(&b).add_2bytes([0, proto]);
                s.add_2bytes((len as u16).to_be_bytes())
            }
            Pseudo::V6(a, b) => {
                s = s.add_slice(&a).add_slice(&b);
                s.add_4bytes((len as u32).to_be_bytes()).add_4bytes([0, 0, 0, proto])
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

/// Record the checksum of `data` whose checksum field is at `field`, summed after `start`.
fn check(d: &mut Decoded, what: String, start: Sum16BitWords, data: &[u8], field: usize, status: Option<CheckStatus>) {
    let stored = u16::from_be_bytes([data[field], data[field + 1]]);
    let mut zeroed = data.to_vec();
    zeroed[field] = 0;
    zeroed[field + 1] = 0;
    let computed = start.clone().add_slice(&zeroed).ones_complement().to_be();
    let verdict = start.add_slice(data).ones_complement() == 0;
    let status = status.unwrap_or(if verdict { CheckStatus::Ok } else { CheckStatus::Bad });
    d.checksums.push(Check {
        what,
        stored,
        computed,
        status,
    });
}

/// `lenient`: the bytes are a quote inside an ICMP error, which may be cut short.
fn ip4(d: &mut Decoded, bytes: &[u8], path: &str, depth: usize, lenient: bool) {
    let path = join(path, "ipv4");
    let h = match Ipv4HeaderSlice::from_slice(bytes) {
        Ok(h) => h,
        Err(e) => {
            d.problems.push(format!("{path}: {e}"));
            return;
        }
    };
    let hlen = h.slice().len();
    check(d, path.clone(), Sum16BitWords::new(), h.slice(), 10, None);
    let total = usize::from(h.total_len());
    let frag_offset = h.fragments_offset().value();
    d.ips.push(Ip::V4(Ipv4 {
        src: h.source_addr(),
        dst: h.destination_addr(),
        ihl: h.ihl(),
        tos: bytes[1],
        total_len: h.total_len(),
        id: h.identification(),
        df: h.dont_fragment(),
        mf: h.more_fragments(),
        frag_offset,
        ttl: h.ttl(),
        proto: h.protocol().0,
        checksum: h.header_checksum(),
        options: h.options().to_vec(),
    }));
    if total < hlen {
        d.problems
            .push(format!("{path}: total length {total} < header length {hlen}"));
        return;
    }
    let (end, complete) = if total > bytes.len() {
        if !lenient {
            d.problems
                .push(format!("{path}: total length {total} > {} bytes present", bytes.len()));
        }
        (bytes.len(), false)
    } else {
        (total, true)
    };
    if depth == 0 && !lenient {
        d.trailer = bytes[end..].to_vec();
    }
    let body = &bytes[hlen..end];
    if frag_offset != 0 {
        d.payload = body.to_vec();
        return;
    }
    let pseudo = Pseudo::V4(h.source(), h.destination());
    let whole = complete && !h.more_fragments();
    upper(d, h.protocol().0, body, pseudo, &path, depth, lenient, whole);
}

fn ip6(d: &mut Decoded, bytes: &[u8], path: &str, depth: usize, lenient: bool) {
    let path = join(path, "ipv6");
    let h = match Ipv6HeaderSlice::from_slice(bytes) {
        Ok(h) => h,
        Err(e) => {
            d.problems.push(format!("{path}: {e}"));
            return;
        }
    };
    let plen = usize::from(h.payload_length());
    let avail = bytes.len() - 40;
    let (end, complete) = if plen > avail {
        if !lenient {
            d.problems
                .push(format!("{path}: payload length {plen} > {avail} bytes present"));
        }
        (bytes.len(), false)
    } else {
        (40 + plen, true)
    };
    if depth == 0 && !lenient {
        d.trailer = bytes[end..].to_vec();
    }
    let mut rest = &bytes[40..end];
    let mut next = h.next_header().0;
    let mut exts = Vec::new();
    let mut final_dst = h.destination();
    let mut fragment = false;
    let mut first_fragment = true;
    loop {
        match next {
            0 | 43 | 60 => {
                if next == 0 && !exts.is_empty() {
                    d.problems.push(format!("{path}: hop-by-hop header not first"));
                }
                let e = match Ipv6RawExtHeaderSlice::from_slice(rest) {
                    Ok(e) => e,
                    Err(e) => {
                        d.problems.push(format!("{path}: extension header {next}: {e}"));
                        break;
                    }
                };
                let body = e.payload();
                exts.push(match next {
                    0 => Ipv6Ext::HopByHop(body.to_vec()),
                    60 => Ipv6Ext::DstOpts(body.to_vec()),
                    _ => {
                        let (typ, segs_left) = (body[0], body[1]);
                        let data = body[2..].to_vec();
                        if segs_left > 0 && data.len() >= 20 {
                            let a = match typ {
                                0 | 2 => Some(&data[data.len() - 16..]),
                                4 => Some(&data[4..20]),
                                _ => None,
                            };
                            if let Some(a) = a.and_then(|a| <[u8; 16]>::try_from(a).ok()) {
                                final_dst = a;
                            }
                        }
                        Ipv6Ext::Routing { typ, segs_left, data }
                    }
                });
                next = e.next_header().0;
                rest = &rest[e.slice().len()..];
            }
            44 => {
                let f = match Ipv6FragmentHeaderSlice::from_slice(rest) {
                    Ok(f) => f,
                    Err(e) => {
                        d.problems.push(format!("{path}: fragment header: {e}"));
                        break;
                    }
                };
                let offset = f.fragment_offset().value();
                exts.push(Ipv6Ext::Fragment {
                    offset,
                    mf: f.more_fragments(),
                    id: f.identification(),
                });
                fragment |= f.is_fragmenting_payload();
                first_fragment &= offset == 0;
                next = f.next_header().0;
                rest = &rest[f.slice().len()..];
            }
            _ => break,
        }
        if exts.len() > 16 {
            d.problems.push(format!("{path}: too many extension headers"));
            return;
        }
    }
    d.ips.push(Ip::V6(Ipv6 {
        src: h.source_addr(),
        dst: h.destination_addr(),
        traffic_class: h.traffic_class(),
        flow_label: h.flow_label().value(),
        payload_len: h.payload_length(),
        next_header: h.next_header().0,
        hop_limit: h.hop_limit(),
        exts,
        proto: next,
    }));
    if !first_fragment {
        d.payload = rest.to_vec();
        return;
    }
    let pseudo = Pseudo::V6(h.source(), final_dst);
    upper(d, next, rest, pseudo, &path, depth, lenient, complete && !fragment);
}

/// Decode what an IP header carries. `whole`: the bytes are the complete upper-layer
/// datagram, so its checksum can be verified.
#[allow(clippy::too_many_arguments)]
fn upper(
    d: &mut Decoded,
    proto: u8,
    body: &[u8],
    pseudo: Pseudo,
    path: &str,
    depth: usize,
    lenient: bool,
    whole: bool,
) {
    match proto {
        4 | 41 if depth + 1 >= MAX_DEPTH => d.problems.push(format!("{path}: IP-in-IP nested too deep")),
        4 => ip4(d, body, path, depth + 1, lenient),
        41 => ip6(d, body, path, depth + 1, lenient),
        6 => tcp(d, body, pseudo, path, lenient, whole),
        17 => udp(d, body, pseudo, path, lenient, whole),
        1 => icmp(d, body, pseudo, path, depth, lenient, whole, false),
        58 => icmp(d, body, pseudo, path, depth, lenient, whole, true),
        _ => d.payload = body.to_vec(),
    }
}

fn partial(d: &mut Decoded, proto: u8, body: &[u8]) {
    let port = |i: usize| body.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    d.l4 = Some(L4::Partial {
        proto,
        sport: port(0),
        dport: port(2),
        bytes: body.to_vec(),
    });
}

fn tcp(d: &mut Decoded, body: &[u8], pseudo: Pseudo, path: &str, lenient: bool, whole: bool) {
    let path = join(path, "tcp");
    let h = match TcpHeaderSlice::from_slice(body) {
        Ok(h) => h,
        Err(e) => {
            if lenient && !whole {
                partial(d, 6, body);
            } else {
                d.problems.push(format!("{path}: {e}"));
            }
            return;
        }
    };
    let (options, bad) = tcp_options(h.options());
    if let Some(b) = bad {
        d.problems.push(format!("{path}: options: {b}"));
    }
    let status = if whole { None } else { Some(CheckStatus::NotChecked) };
    check(d, path, pseudo.sum(6, body.len()), body, 16, status);
    d.l4 = Some(L4::Tcp(Tcp {
        sport: h.source_port(),
        dport: h.destination_port(),
        seq: h.sequence_number(),
        ack: h.acknowledgment_number(),
        data_offset: h.data_offset(),
        flags: body[13],
        window: h.window_size(),
        checksum: h.checksum(),
        urgent: h.urgent_pointer(),
        options,
        options_raw: h.options().to_vec(),
    }));
    d.payload = body[h.slice().len()..].to_vec();
}

/// Parse TCP options (RFC 9293 section 3.1 and the RFCs of each kind); the second value
/// describes the first malformed option, after which parsing stops.
pub fn tcp_options(mut b: &[u8]) -> (Vec<TcpOpt>, Option<String>) {
    let mut out = Vec::new();
    while let Some(&kind) = b.first() {
        match kind {
            0 => {
                out.push(TcpOpt::Eol);
                break;
            }
            1 => {
                out.push(TcpOpt::Nop);
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = b.get(1) else {
            return (out, Some(format!("kind {kind} has no length byte")));
        };
        let len = usize::from(len);
        if len < 2 || len > b.len() {
            return (
                out,
                Some(format!("kind {kind} length {len} with {} bytes left", b.len())),
            );
        }
        let data = &b[2..len];
        let be16 = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let want = |ok: bool| {
            if ok {
                None
            } else {
                Some(format!("kind {kind} has bad length {len}"))
            }
        };
        let (opt, err) = match kind {
            2 => (len == 4)
                .then(|| TcpOpt::Mss(be16(0)))
                .map_or((None, want(false)), |o| (Some(o), None)),
            3 => (len == 3)
                .then(|| TcpOpt::WindowScale(data[0]))
                .map_or((None, want(false)), |o| (Some(o), None)),
            4 => (len == 2)
                .then_some(TcpOpt::SackPermitted)
                .map_or((None, want(false)), |o| (Some(o), None)),
            5 => {
                if len >= 10 && (len - 2).is_multiple_of(8) {
                    let blocks = (0..(len - 2) / 8).map(|i| (be32(8 * i), be32(8 * i + 4))).collect();
                    (Some(TcpOpt::Sack(blocks)), None)
                } else {
                    (None, want(false))
                }
            }
            8 => (len == 10)
                .then(|| TcpOpt::Timestamps(be32(0), be32(4)))
                .map_or((None, want(false)), |o| (Some(o), None)),
            254 => match len {
                8 => {
                    let a = Ipv4Addr::new(data[2], data[3], data[4], data[5]);
                    (Some(TcpOpt::Toa(be16(0), a.into())), None)
                }
                20 => {
                    let a = <[u8; 16]>::try_from(&data[2..18])
                        .map(Ipv6Addr::from)
                        .unwrap_or(Ipv6Addr::UNSPECIFIED);
                    (Some(TcpOpt::Toa(be16(0), a.into())), None)
                }
                _ => (None, want(false)),
            },
            _ => (Some(TcpOpt::Unknown(kind, data.to_vec())), None),
        };
        match opt {
            Some(o) => out.push(o),
            None => return (out, err),
        }
        b = &b[len..];
    }
    (out, None)
}

fn udp(d: &mut Decoded, body: &[u8], pseudo: Pseudo, path: &str, lenient: bool, whole: bool) {
    let path = join(path, "udp");
    let h = match UdpHeaderSlice::from_slice(body) {
        Ok(h) => h,
        Err(e) => {
            if lenient && !whole {
                partial(d, 17, body);
            } else {
                d.problems.push(format!("{path}: {e}"));
            }
            return;
        }
    };
    let len = usize::from(h.length());
    let mut whole = whole;
    let seg = if len < 8 {
        d.problems.push(format!("{path}: length {len} < 8"));
        whole = false;
        body
    } else if len > body.len() {
        // A fragment or a quote may hold less than the UDP length says; a whole one may not.
        if whole {
            d.problems
                .push(format!("{path}: length {len} > {} bytes present", body.len()));
        }
        whole = false;
        body
    } else {
        &body[..len]
    };
    let status = if h.checksum() == 0 && matches!(pseudo, Pseudo::V4(..)) {
        Some(CheckStatus::Absent)
    } else if h.checksum() == 0 {
        // RFC 8200 section 8.1: a zero UDP checksum over IPv6 is to be discarded.
        Some(CheckStatus::Bad)
    } else if !whole {
        Some(CheckStatus::NotChecked)
    } else {
        None
    };
    check(d, path, pseudo.sum(17, seg.len()), seg, 6, status);
    d.l4 = Some(L4::Udp(Udp {
        sport: h.source_port(),
        dport: h.destination_port(),
        len: h.length(),
        checksum: h.checksum(),
    }));
    d.payload = seg[8..].to_vec();
}

#[allow(clippy::too_many_arguments)]
fn icmp(d: &mut Decoded, body: &[u8], pseudo: Pseudo, path: &str, depth: usize, lenient: bool, whole: bool, v6: bool) {
    let path = join(path, if v6 { "icmpv6" } else { "icmp" });
    if body.len() < 8 {
        if !lenient || whole {
            d.problems.push(format!("{path}: {} bytes, header needs 8", body.len()));
        }
        return;
    }
    let status = if whole { None } else { Some(CheckStatus::NotChecked) };
    let start = match (v6, pseudo) {
        (true, Pseudo::V6(..)) => pseudo.sum(58, body.len()),
        (true, Pseudo::V4(..)) => {
            d.problems.push(format!("{path}: ICMPv6 over IPv4"));
            Sum16BitWords::new()
        }
        (false, _) => Sum16BitWords::new(),
    };
    check(d, path.clone(), start, body, 2, status);
    let mut m = Icmp {
        v6,
        typ: body[0],
        code: body[1],
        checksum: u16::from_be_bytes([body[2], body[3]]),
        rest: [body[4], body[5], body[6], body[7]],
        inner: None,
    };
    if m.is_error() && body.len() > 8 && depth + 1 < MAX_DEPTH {
        let q = &body[8..];
        let mut inner = Decoded::default();
        match q[0] >> 4 {
            4 => ip4(&mut inner, q, &path, depth + 1, true),
            6 => ip6(&mut inner, q, &path, depth + 1, true),
            v => inner.problems.push(format!("{path}: quoted packet has IP version {v}")),
        }
        d.problems.extend(inner.problems.iter().cloned());
        d.checksums.extend(inner.checksums.iter().cloned());
        m.inner = Some(Box::new(inner));
    }
    d.l4 = Some(L4::Icmp(m));
    d.payload = body[8..].to_vec();
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl fmt::Display for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.eth {
            writeln!(
                f,
                "eth {} -> {} type {:#06x}",
                mac_str(&e.src),
                mac_str(&e.dst),
                e.ethertype
            )?;
        }
        for v in &self.vlans {
            writeln!(f, "vlan {} pcp {}", v.vid, v.pcp)?;
        }
        if let Some(a) = &self.arp {
            writeln!(
                f,
                "arp op {} {} {} -> {} {}",
                a.op,
                mac_str(&a.sha),
                a.spa,
                mac_str(&a.tha),
                a.tpa
            )?;
        }
        for ip in &self.ips {
            match ip {
                Ip::V4(h) => writeln!(
                    f,
                    "ipv4 {} -> {} proto {} ttl {} tos {:#04x} id {} df {} mf {} off {} len {} ihl {} opts {:02x?}",
                    h.src, h.dst, h.proto, h.ttl, h.tos, h.id, h.df, h.mf, h.frag_offset, h.total_len, h.ihl, h.options
                )?,
                Ip::V6(h) => writeln!(
                    f,
                    "ipv6 {} -> {} proto {} hlim {} tc {:#04x} flow {:#x} plen {} exts {:?}",
                    h.src, h.dst, h.proto, h.hop_limit, h.traffic_class, h.flow_label, h.payload_len, h.exts
                )?,
            }
        }
        match &self.l4 {
            Some(L4::Tcp(t)) => writeln!(
                f,
                "tcp {} -> {} flags {:#04x} seq {} ack {} win {} urg {} off {} opts {:?}",
                t.sport, t.dport, t.flags, t.seq, t.ack, t.window, t.urgent, t.data_offset, t.options
            )?,
            Some(L4::Udp(u)) => writeln!(f, "udp {} -> {} len {}", u.sport, u.dport, u.len)?,
            Some(L4::Icmp(i)) => {
                writeln!(
                    f,
                    "{} type {} code {} rest {:02x?}",
                    if i.v6 { "icmpv6" } else { "icmp" },
                    i.typ,
                    i.code,
                    i.rest
                )?;
                if let Some(inner) = &i.inner {
                    for line in inner.to_string().lines() {
                        writeln!(f, "  | {line}")?;
                    }
                }
            }
            Some(L4::Partial {
                proto,
                sport,
                dport,
                bytes,
            }) => writeln!(f, "partial l4 proto {proto} {sport} -> {dport} ({} bytes)", bytes.len())?,
            None => {}
        }
        if !self.payload.is_empty() {
            writeln!(f, "payload {} bytes", self.payload.len())?;
        }
        if !self.trailer.is_empty() {
            writeln!(f, "trailer {} bytes", self.trailer.len())?;
        }
        for c in &self.checksums {
            writeln!(
                f,
                "checksum {} {:?} stored {:#06x} computed {:#06x}",
                c.what, c.status, c.stored, c.computed
            )?;
        }
        for p in &self.problems {
            writeln!(f, "PROBLEM {p}")?;
        }
        Ok(())
    }
}
