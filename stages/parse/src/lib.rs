//! rvs-parse: the parse stage. It reads each packet once through the typed views of
//! [`rvs_core::wire`] -- Ethernet (one optional 802.1Q tag), IPv4 (options skipped by IHL,
//! header checksum verified), IPv6 (extension headers walked to the upper layer), TCP, UDP,
//! ICMP, ICMPv6 -- and fills its [`PacketMeta`], DPVS's `dp_vs_iphdr` plus ports (the echo
//! identifier for ICMP queries), TCP flags, ICMP type and code, TTL.
//!
//! Dispositions:
//! - IPv4 and IPv6 packets whose upper layer is TCP, UDP, ICMP or ICMPv6 go on to
//!   [`ParseNext::Ip`]; Ethernet padding after the IP total length is trimmed off the buffer
//!   so later stages see exactly the IP packet;
//! - ARP frames go on to [`ParseNext::Arp`], the ARP/ND stage (`rvs_xmit::arp`) that answers
//!   for VIPs and local addresses and learns neighbours; with [`Parse::arp_to_stage`] off they
//!   go to the host path instead (a host stack resolving for the balancer);
//! - other frames that are not IP (LLDP, ...) and IP packets of other protocols (ESP, GRE,
//!   SCTP, no-next-header) go to the host path, counted in [`ParseCounters`]: DPVS's
//!   `dp_vs_in` returns `INET_ACCEPT` for a protocol it does not balance, handing it to its
//!   IP stack and on to the kernel;
//! - truncated or inconsistent packets are dropped with a [`ParseDrop`] reason of class
//!   [`Cause::InvalidPacket`] (never a panic: every header is read through a checked view);
//! - **fragment policy**: IPv4 fragments (MF set or a non-zero offset) and IPv6 packets
//!   with a fragment header are dropped, counted as [`ParseDrop::Fragment`] of class
//!   [`Cause::NotSupported`], as DPVS does (it never reassembles nor forwards fragments).
//!   Atomic IPv6 fragments (RFC 6946) are dropped too, as DPVS drops them.
//!
//! Not done here, on purpose: L4 checksums are not verified (the end hosts do; xmit's
//! incremental updates, RFC 1624, keep a bad checksum bad), nor are IPv4 options interpreted
//! (they are skipped; DPVS does the same). A hardware "IPv4 checksum good" flag from the port
//! is not consulted yet: [`Parse::verify_ipv4_checksum`] turns the software check off for a
//! port that verifies.
//!
//! Cost per packet, vectors of 32 over heap buffers on the shared 2-core development
//! machine (noisy: figures from one run): through [`rvs_core::stage::Node::run`] (TSC reads,
//! counter flush, queue moves included) 35-55 ns for IPv4 TCP, 35-45 ns for IPv4 UDP and IPv6
//! TCP behind a destination-options header; the header walk [`parse`] alone 18-26 ns.
//! Measured with `cargo bench -p rvs-parse --bench parse`.

#![forbid(unsafe_code)]

use rvs_core::addr::{Addr, Af};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{PacketMeta, TcpFlags};
use rvs_core::stage::{Out, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::WireError;
use rvs_core::wire::ethernet::{EtherType, EthernetFrame};
use rvs_core::wire::icmp::{self, IcmpPacket};
use rvs_core::wire::icmpv6::{self, Icmpv6Packet};
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::ipv6::{self, Ipv6Packet};
use rvs_core::wire::tcp::TcpPacket;
use rvs_core::wire::udp::{self, UdpPacket};

rvs_core::labels! {
    /// Where parse sends a packet.
    pub enum ParseNext {
        /// An IPv4 or IPv6 packet with its metadata filled.
        Ip = ("ip", "IPv4/IPv6 packet of a balanced protocol, metadata filled"),
        /// An ARP frame, for the ARP/ND stage.
        Arp = ("arp", "ARP frame, for the ARP/ND stage"),
    }
}

rvs_core::labels! {
    /// Why parse drops a packet.
    pub enum ParseDrop {
        /// Shorter than its Ethernet or IP header.
        Truncated = ("truncated", "frame shorter than its Ethernet or IP header"),
        /// IP version field does not match the EtherType.
        BadVersion = ("bad_version", "IP version does not match the EtherType"),
        /// IPv4 IHL below 5 or past the buffer.
        BadIhl = ("bad_ihl", "IPv4 header length below 20 bytes or past the buffer"),
        /// IPv4 total length / IPv6 payload length beyond the buffer or below the header.
        BadTotalLen = ("bad_total_len", "IP total length beyond the buffer or below the header length"),
        /// IPv4 header checksum does not verify.
        BadChecksum = ("bad_ip_checksum", "IPv4 header checksum does not verify"),
        /// IPv6 extension header malformed, misplaced, or chain too long.
        BadExtHeader = ("bad_ext_header", "IPv6 extension header malformed, misplaced or chain too long"),
        /// An IP fragment (explicit policy, as DPVS: fragments are not supported).
        Fragment = ("fragment", "IP fragment: not reassembled nor forwarded (DPVS drops fragments)"),
        /// Shorter than its TCP, UDP or ICMP header.
        L4Truncated = ("l4_truncated", "IP payload shorter than the TCP, UDP or ICMP header"),
        /// TCP data offset below 5 or past the end of the segment.
        TcpBadOffset = ("tcp_bad_offset", "TCP data offset below 5 words or past the end of the segment"),
        /// UDP length below 8 or past the IP payload.
        UdpBadLength = ("udp_bad_length", "UDP length below 8 or past the end of the IP payload"),
    }
}

impl DropReason for ParseDrop {
    fn cause(self) -> Cause {
        match self {
            ParseDrop::Fragment => Cause::NotSupported,
            _ => Cause::InvalidPacket,
        }
    }
}

/// What parse decided for one packet: the trace record of the stage (a test, a bench or a
/// debugger reads it from [`parse`]; the stage itself only counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// An IP packet for [`ParseNext::Ip`]; `ip_end` is where the IP packet ends in the
    /// buffer (anything after it is Ethernet padding to trim).
    Ip {
        /// End of the IP packet (L3 offset + L3 length).
        ip_end: usize,
    },
    /// For the host path, and why.
    Host(HostReason),
}

/// Why a packet goes to the host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostReason {
    /// An ARP frame.
    Arp,
    /// Another EtherType (LLDP, a second VLAN tag, ...).
    OtherEthertype,
    /// An IP packet of a protocol rvs does not balance.
    OtherProtocol,
}

/// Counters of the parse stage beyond the per-label ones of [`rvs_core::counters`]: which
/// kinds of packet went to the host path. Per lcore; counted in locals, added once per vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseCounters {
    /// ARP frames (to [`ParseNext::Arp`], or to the host path with [`Parse::arp_to_stage`] off).
    pub arp: u64,
    /// Frames of other EtherTypes handed to the host path.
    pub other_ethertype: u64,
    /// IP packets of unbalanced protocols handed to the host path.
    pub other_protocol: u64,
    /// Packets whose Ethernet padding was trimmed.
    pub trimmed: u64,
}

/// The parse stage. Stateless but for its counters and one switch.
#[derive(Debug, Clone)]
pub struct Parse {
    /// Verify the IPv4 header checksum in software (on by default; a port whose hardware
    /// verifies and drops bad headers can turn it off).
    pub verify_ipv4_checksum: bool,
    /// Send ARP frames to [`ParseNext::Arp`] (on by default); off, they go to the host path.
    pub arp_to_stage: bool,
    counters: ParseCounters,
}

impl Default for Parse {
    fn default() -> Self {
        Self::new()
    }
}

impl Parse {
    /// A parse stage that verifies IPv4 header checksums.
    pub fn new() -> Self {
        Parse {
            verify_ipv4_checksum: true,
            arp_to_stage: true,
            counters: ParseCounters::default(),
        }
    }
    /// The host-path and trim counters so far.
    pub fn counters(&self) -> ParseCounters {
        self.counters
    }
}

fn map_ip_error(e: WireError) -> ParseDrop {
    match e {
        WireError::Truncated => ParseDrop::Truncated,
        WireError::BadVersion => ParseDrop::BadVersion,
        WireError::BadHeaderLen => ParseDrop::BadIhl,
        WireError::BadLength => ParseDrop::BadTotalLen,
        WireError::BadChecksum => ParseDrop::BadChecksum,
        WireError::Unsupported | WireError::BadOption => ParseDrop::BadExtHeader,
    }
}

/// Parse the packet `data` into `meta` (its connection slots are left alone). Pure: no
/// state, no allocation; every read goes through a checked view.
pub fn parse(data: &[u8], meta: &mut PacketMeta, verify_ipv4_checksum: bool) -> Result<Parsed, ParseDrop> {
    let eth = EthernetFrame::new_checked(data).map_err(|_| ParseDrop::Truncated)?;
    let l3_off = eth.header_len();
    meta.vlan = eth.vlan_id();
    let l3 = eth.payload();
    match eth.ethertype() {
        EtherType::IPV4 => parse_ipv4(l3, l3_off, meta, verify_ipv4_checksum),
        EtherType::IPV6 => parse_ipv6(l3, l3_off, meta),
        EtherType::ARP => Ok(Parsed::Host(HostReason::Arp)),
        _ => Ok(Parsed::Host(HostReason::OtherEthertype)),
    }
}

fn parse_ipv4(l3: &[u8], l3_off: usize, meta: &mut PacketMeta, verify: bool) -> Result<Parsed, ParseDrop> {
    let ip = Ipv4Packet::new_checked(l3).map_err(map_ip_error)?;
    if verify && !ip.verify_checksum() {
        return Err(ParseDrop::BadChecksum);
    }
    let hl = ip.header_len();
    let l3_len = ip.total_len();
    meta.af = Af::V4;
    meta.l3_off = l3_off as u16;
    meta.l3_len = l3_len;
    meta.saddr = Addr::v4(ip.src());
    meta.daddr = Addr::v4(ip.dst());
    meta.ttl = ip.ttl();
    meta.proto = ip.protocol();
    meta.fragment = ip.is_fragment();
    if meta.fragment {
        return Err(ParseDrop::Fragment);
    }
    let l4_off = l3_off + hl;
    Ok(ip_or_host(
        parse_l4(ip.payload(), l4_off, meta, false)?,
        l3_off + l3_len as usize,
    ))
}

fn parse_ipv6(l3: &[u8], l3_off: usize, meta: &mut PacketMeta) -> Result<Parsed, ParseDrop> {
    let ip = Ipv6Packet::new_checked(l3).map_err(map_ip_error)?;
    let l3_len = ip.total_len();
    meta.af = Af::V6;
    meta.l3_off = l3_off as u16;
    meta.l3_len = l3_len as u16;
    meta.saddr = Addr::v6(ip.src());
    meta.daddr = Addr::v6(ip.dst());
    meta.ttl = ip.hop_limit();
    let up = ip.upper_layer().map_err(|_| ParseDrop::BadExtHeader)?;
    meta.proto = up.proto;
    meta.fragment = up.fragment.is_some();
    if meta.fragment {
        return Err(ParseDrop::Fragment);
    }
    let l4_off = l3_off + ipv6::HEADER_LEN + up.offset;
    let l4 = ip.payload().get(up.offset..).ok_or(ParseDrop::BadExtHeader)?;
    Ok(ip_or_host(parse_l4(l4, l4_off, meta, true)?, l3_off + l3_len))
}

const fn ip_or_host(balanced: bool, ip_end: usize) -> Parsed {
    if balanced {
        Parsed::Ip { ip_end }
    } else {
        Parsed::Host(HostReason::OtherProtocol)
    }
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Fill the L4 fields from `l4` (the IP payload after the headers, up to the IP length).
/// True for a balanced protocol: TCP, UDP, ICMP over IPv4, ICMPv6 over IPv6 (ICMP over IPv6
/// and ICMPv6 over IPv4 are not, and go to the host like any other protocol).
fn parse_l4(l4: &[u8], l4_off: usize, meta: &mut PacketMeta, v6: bool) -> Result<bool, ParseDrop> {
    meta.l4_off = l4_off as u16;
    meta.sport = 0;
    meta.dport = 0;
    meta.tcp_flags = TcpFlags(0);
    meta.icmp_type = 0;
    meta.icmp_code = 0;
    meta.l4_hdr_len = 0;
    match meta.proto {
        PROTO_TCP => {
            let t = TcpPacket::new_checked(l4).map_err(|e| match e {
                WireError::Truncated => ParseDrop::L4Truncated,
                _ => ParseDrop::TcpBadOffset,
            })?;
            meta.sport = t.src_port();
            meta.dport = t.dst_port();
            meta.tcp_flags = TcpFlags(t.flags());
            meta.l4_hdr_len = t.header_len() as u16;
        }
        PROTO_UDP => {
            let u = UdpPacket::new_checked(l4).map_err(|e| match e {
                WireError::Truncated => ParseDrop::L4Truncated,
                _ => ParseDrop::UdpBadLength,
            })?;
            meta.sport = u.src_port();
            meta.dport = u.dst_port();
            meta.l4_hdr_len = udp::HEADER_LEN as u16;
        }
        PROTO_ICMP if !v6 => {
            let c = IcmpPacket::new_checked(l4).map_err(|_| ParseDrop::L4Truncated)?;
            meta.icmp_type = c.msg_type();
            meta.icmp_code = c.code();
            if icmp::is_echo(c.msg_type()) {
                meta.sport = c.echo_ident();
                meta.dport = c.echo_ident();
            }
            meta.l4_hdr_len = icmp::HEADER_LEN as u16;
        }
        PROTO_ICMPV6 if v6 => {
            let c = Icmpv6Packet::new_checked(l4).map_err(|_| ParseDrop::L4Truncated)?;
            meta.icmp_type = c.msg_type();
            meta.icmp_code = c.code();
            if icmpv6::is_echo(c.msg_type()) {
                meta.sport = c.echo_ident();
                meta.dport = c.echo_ident();
            }
            meta.l4_hdr_len = icmpv6::HEADER_LEN as u16;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

impl<M: Mbuf> Stage<M> for Parse {
    type Next = ParseNext;
    type Drop = ParseDrop;
    const NAME: &'static str = "parse";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, ParseNext, ParseDrop>) {
        let mut c = ParseCounters::default();
        for mut p in input.drain() {
            match parse(p.mbuf.data(), &mut p.meta, self.verify_ipv4_checksum) {
                Ok(Parsed::Ip { ip_end }) => {
                    let len = p.mbuf.len();
                    if ip_end < len && p.mbuf.trim(len - ip_end) {
                        c.trimmed += 1;
                    }
                    out.next(ParseNext::Ip, p);
                }
                Ok(Parsed::Host(HostReason::Arp)) if self.arp_to_stage => {
                    c.arp += 1;
                    out.next(ParseNext::Arp, p);
                }
                Ok(Parsed::Host(why)) => {
                    match why {
                        HostReason::Arp => c.arp += 1,
                        HostReason::OtherEthertype => c.other_ethertype += 1,
                        HostReason::OtherProtocol => c.other_protocol += 1,
                    }
                    out.host(p);
                }
                Err(r) => out.drop(r, p),
            }
        }
        self.counters.arp += c.arp;
        self.counters.other_ethertype += c.other_ethertype;
        self.counters.other_protocol += c.other_protocol;
        self.counters.trimmed += c.trimmed;
    }
}

#[cfg(test)]
mod tests;
