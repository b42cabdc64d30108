//! Per-packet metadata: what parse learns once and every later stage reads, the
//! `dp_vs_iphdr` of DPVS plus the L4 ports (or ICMP id), ICMP type and TCP flags, and two
//! slots later stages fill (the connection and its direction).

use crate::addr::{Addr, Af};

/// TCP flags as in the header's flags byte (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// True when every bit of `bits` is set.
    pub const fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    /// SYN set.
    pub const fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.has(Self::RST)
    }
    /// DPVS's `tcp_conn_sched` test: only a SYN without ACK, FIN or RST may create a
    /// connection; ECE, CWR, PSH and URG do not matter.
    pub const fn may_create(self) -> bool {
        self.syn() && !self.ack() && !self.fin() && !self.rst()
    }
}

/// Direction of a packet relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dir {
    /// Client to real server (towards the VIP).
    #[default]
    In,
    /// Real server to client.
    Out,
}

/// "No connection" in [`PacketMeta::conn`].
pub const NO_CONN: u32 = u32::MAX;

/// What parse fills in for every accepted packet. Offsets are from the start of the packet
/// data (the Ethernet header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// Address family of the (outer) L3 header.
    pub af: Af,
    /// IP protocol number of the upper layer (after IPv6 extension headers).
    pub proto: u8,
    /// VLAN id of the one 802.1Q tag, 0 when untagged.
    pub vlan: u16,
    /// Offset of the L3 header.
    pub l3_off: u16,
    /// Offset of the L4 header.
    pub l4_off: u16,
    /// Length of the L4 header (TCP data offset x 4, 8 for UDP, 8 for ICMP).
    pub l4_hdr_len: u16,
    /// L3 length from the IP header: IPv4 total length, or IPv6 40 + payload length.
    pub l3_len: u16,
    /// Source address.
    pub saddr: Addr,
    /// Destination address.
    pub daddr: Addr,
    /// Source port; for ICMP queries the identifier.
    pub sport: u16,
    /// Destination port; for ICMP queries the identifier.
    pub dport: u16,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: TcpFlags,
    /// ICMP/ICMPv6 type (0 for other protocols).
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// True for an IP fragment (IPv4 MF or offset, IPv6 fragment header).
    pub fragment: bool,
    /// Hop limit / TTL.
    pub ttl: u8,
    /// Connection handle once lookup or conn-new found or made one ([`NO_CONN`] before).
    pub conn: u32,
    /// Direction relative to the connection.
    pub dir: Dir,
    /// Service index and destination index chosen by schedule for conn-new
    /// ([`NO_DEST`] before).
    pub sched: SchedChoice,
    /// The persistence template schedule used or made for this new connection, a handle into
    /// the global template table of rvs-conn (0: none). conn-new attaches the connection to it.
    pub template: u64,
    /// An ICMP/ICMPv6 error (destination unreachable, fragmentation needed / packet too big,
    /// time exceeded, ...) whose quoted packet belongs to connection `conn`: lookup set `conn`
    /// and `dir` from the quoted header and ran no state transition; xmit translates the outer
    /// and the quoted headers. False for every other packet.
    pub icmp_err: bool,
    /// With `icmp_err`: offset of the quoted IP header (from the start of the packet data).
    pub inner_l3_off: u16,
    /// With `icmp_err`: offset of the quoted upper-layer header.
    pub inner_l4_off: u16,
}

/// "No destination chosen" in [`SchedChoice::dest`].
pub const NO_DEST: u32 = u32::MAX;

/// What schedule hands conn-new: the service and the destination it picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedChoice {
    /// Service index in the snapshot.
    pub svc: u32,
    /// Destination index in the service.
    pub dest: u32,
    /// Schedule already bound the destination (admission checked, counted inactive), so
    /// that later picks of the same vector see it; conn-new adopts the count, or gives it
    /// back when the connection cannot be made.
    pub reserved: bool,
}

impl Default for SchedChoice {
    fn default() -> Self {
        SchedChoice {
            svc: NO_DEST,
            dest: NO_DEST,
            reserved: false,
        }
    }
}

impl PacketMeta {
    /// Metadata with no connection attached.
    pub fn new() -> Self {
        PacketMeta {
            conn: NO_CONN,
            ..Default::default()
        }
    }
    /// Offset of the L4 payload.
    pub const fn payload_off(&self) -> u16 {
        self.l4_off + self.l4_hdr_len
    }
    /// Length of the L4 payload according to the IP header.
    pub const fn payload_len(&self) -> u16 {
        let hdrs = self.l4_off - self.l3_off + self.l4_hdr_len;
        self.l3_len.saturating_sub(hdrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_conn_sched_creation_rule() {
        assert!(TcpFlags(TcpFlags::SYN).may_create());
        assert!(TcpFlags(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR | TcpFlags::PSH).may_create());
        assert!(!TcpFlags(TcpFlags::SYN | TcpFlags::ACK).may_create());
        assert!(!TcpFlags(TcpFlags::SYN | TcpFlags::FIN).may_create());
        assert!(!TcpFlags(TcpFlags::SYN | TcpFlags::RST).may_create());
        assert!(!TcpFlags(TcpFlags::ACK).may_create());
    }

    #[test]
    fn payload_length_from_headers() {
        let m = PacketMeta {
            l3_off: 14,
            l4_off: 34,
            l4_hdr_len: 20,
            l3_len: 60,
            ..PacketMeta::new()
        };
        assert_eq!(m.payload_off(), 54);
        assert_eq!(m.payload_len(), 20);
    }
}
