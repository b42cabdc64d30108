//! Family-generic IP header work for xmit: where the headers of a parsed packet are, the
//! address and TTL rewrites of IPv4 (with RFC 1624 header-checksum updates) and IPv6 (no header
//! checksum), the length fields, and the IPv6 <-> IPv4 header translation of NAT64 (RFC 7915
//! sections 4.1 and 5.1).
//!
//! Upper-layer checksums cover a pseudo-header holding both addresses (RFC 9293 section 3.1,
//! RFC 768, RFC 8200 section 8.1). Its length and protocol fields carry the same values in both
//! families, so an address change -- within a family or across families -- is one RFC 1624
//! update from the one's-complement sum of the old addresses to the sum of the new ones
//! ([`pseudo_update`]).

use rvs_core::addr::Addr;
use rvs_core::checksum::{self, fold};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::PacketMeta;
use rvs_core::wire::ethernet::{EtherType, EthernetFrame};
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::ipv6::Ipv6Packet;

use crate::XmitDrop;

/// IPv4 header length without options.
pub(crate) const V4_HDR: usize = 20;
/// IPv6 fixed header length.
pub(crate) const V6_HDR: usize = 40;

/// Where the IP headers of a packet are (offsets from the start of the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hdr {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The IP header.
    pub l3: usize,
    /// The upper-layer header (after IPv4 options or IPv6 extension headers).
    pub l4: usize,
    /// End of the IP datagram (Ethernet padding after it excluded).
    pub end: usize,
}

impl Hdr {
    /// Locate the headers parse recorded in `meta`, checking them against the bytes (a stage
    /// between parse and xmit may have changed the packet): never trusted blindly.
    pub fn locate(data: &[u8], meta: &PacketMeta) -> Result<Hdr, XmitDrop> {
        let l3 = meta.l3_off as usize;
        let l4 = meta.l4_off as usize;
        let b = data.get(l3..).ok_or(XmitDrop::Invalid)?;
        let first = *b.first().ok_or(XmitDrop::Invalid)?;
        let (v6, end) = match first >> 4 {
            4 => {
                // Ipv4Packet::check's rules, read through a view of the fixed 20 bytes (no
                // bounds check per field): IHL at least 20 and within the data, total length
                // at least the header and within the data.
                let ip = Ipv4Packet::new_unchecked(b.first_chunk::<V4_HDR>().ok_or(XmitDrop::Invalid)?);
                let (hl, tl) = (ip.header_len(), ip.total_len() as usize);
                if hl < V4_HDR || hl > b.len() || tl < hl || tl > b.len() || l4 != l3 + hl {
                    return Err(XmitDrop::Invalid);
                }
                (false, l3 + tl)
            }
            6 => {
                let ip = Ipv6Packet::new_checked(b).map_err(|_| XmitDrop::Invalid)?;
                if l4 < l3 + V6_HDR {
                    return Err(XmitDrop::Invalid);
                }
                (true, l3 + ip.total_len())
            }
            _ => return Err(XmitDrop::Invalid),
        };
        if l4 > end || end > data.len() {
            return Err(XmitDrop::Invalid);
        }
        Ok(Hdr { v6, l3, l4, end })
    }
    /// Length of the IP header(s) in front of the upper layer.
    pub fn l3_hdr_len(&self) -> usize {
        self.l4 - self.l3
    }
}

/// One's-complement sum of an address's bytes in its family (4 or 16 bytes): the plain sum
/// of its 16-bit words (2 or 8 of them, so it cannot overflow), read from the address's
/// integer form rather than from bytes.
#[inline]
pub(crate) fn addr_sum(a: Addr) -> u32 {
    let v = a.0;
    let words =
        |x: u64| (x & 0xffff) as u32 + ((x >> 16) & 0xffff) as u32 + ((x >> 32) & 0xffff) as u32 + (x >> 48) as u32;
    if a.is_v4() {
        (v as u32 & 0xffff) + ((v as u32) >> 16)
    } else {
        words(v as u64) + words((v >> 64) as u64)
    }
}

/// The one's-complement sum of the 16-bit words of an address pair (folded), as the
/// pseudo-header sees them.
#[inline]
fn pair_sum(a: [Addr; 2]) -> u16 {
    fold(addr_sum(a[0]) + addr_sum(a[1]))
}

/// An upper-layer checksum after the pseudo-header addresses changed from `old` to `new`
/// (any families; RFC 1624 eqn. 3 with the folded sums as the changed word).
#[inline]
pub(crate) fn pseudo_update(ck: u16, old: [Addr; 2], new: [Addr; 2]) -> u16 {
    checksum::update16(ck, pair_sum(old), pair_sum(new))
}

/// Several RFC 1624 updates of one checksum gathered and applied at once: the terms
/// `~m + m'` of every changed word are added up and the checksum field is read and written
/// once (`HC' = ~(~HC + sum(~m + m'))`, eqn. 3 over all the words). The result is the same,
/// bit for bit, as applying [`checksum::update16`] word after word in any order: every
/// step's sum is congruent modulo 0xffff to the one-pass sum, and a sum folds to 0 (a field of
/// 0xffff rather than 0) only when `~HC` and every term are zero, in one pass as in many.
/// Every term the word-by-word code adds is added here too, unchanged words included, so even
/// that corner case matches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CkDelta(u32);

impl CkDelta {
    /// One 16-bit word changed from `old` to `new`.
    #[inline(always)]
    pub fn w16(&mut self, old: u16, new: u16) {
        self.0 += (!old) as u32 + new as u32;
    }
    /// One 32-bit field (two words) changed from `old` to `new`, as [`checksum::update32`].
    #[inline(always)]
    pub fn w32(&mut self, old: u32, new: u32) {
        self.w16((old >> 16) as u16, (new >> 16) as u16);
        self.w16(old as u16, new as u16);
    }
    /// The pseudo-header addresses changed from `old` to `new`, as [`pseudo_update`].
    #[inline(always)]
    pub fn pseudo(&mut self, old: [Addr; 2], new: [Addr; 2]) {
        self.w16(pair_sum(old), pair_sum(new));
    }
    /// As [`CkDelta::pseudo`] for four IPv4 addresses (two words each, read from their
    /// integer form without a family test).
    #[inline(always)]
    pub fn pseudo_v4(&mut self, old: [Addr; 2], new: [Addr; 2]) {
        let w = |a: Addr| (a.v4_u32() & 0xffff) + (a.v4_u32() >> 16);
        self.w16(fold(w(old[0]) + w(old[1])), fold(w(new[0]) + w(new[1])));
    }
    /// The checksum `ck` after every gathered change.
    #[inline(always)]
    pub fn apply(self, ck: u16) -> u16 {
        !fold((!ck) as u32 + self.0)
    }
}

/// The TTL / hop limit.
pub(crate) fn ttl(data: &[u8], h: &Hdr) -> u8 {
    data[h.l3 + if h.v6 { 7 } else { 8 }]
}

/// Rewrite the addresses (same family as the header) and decrement the TTL / hop limit;
/// returns the new TTL. IPv4's header checksum is updated incrementally, once for all the
/// changed words ([`CkDelta`]); an address already equal is not touched, a TTL of 0 stays 0.
#[inline]
pub(crate) fn rewrite_same_family(data: &mut [u8], h: &Hdr, src: Addr, dst: Addr, dec_ttl: bool) -> u8 {
    let b = &mut data[h.l3..h.end];
    if h.v6 {
        let mut ip = Ipv6Packet::new_unchecked(b);
        ip.set_src(src.octets());
        ip.set_dst(dst.octets());
        let t = ip.hop_limit();
        let t = if dec_ttl { t.saturating_sub(1) } else { t };
        ip.set_hop_limit(t);
        t
    } else {
        // The fixed header as a view of known length (locate checked it is there).
        let Some(hdr) = b.first_chunk_mut::<V4_HDR>() else {
            return 0;
        };
        let mut ip = Ipv4Packet::new_unchecked(hdr);
        let mut d = CkDelta::default();
        let (os, ns) = (u32::from_be_bytes(ip.src()), src.v4_u32());
        if os != ns {
            d.w32(os, ns);
            ip.set_src(src.v4_octets());
        }
        let (od, nd) = (u32::from_be_bytes(ip.dst()), dst.v4_u32());
        if od != nd {
            d.w32(od, nd);
            ip.set_dst(dst.v4_octets());
        }
        let ttl = ip.ttl();
        if !dec_ttl || ttl == 0 {
            if os != ns || od != nd {
                let ck = d.apply(ip.checksum());
                ip.set_checksum(ck);
            }
            return ttl;
        }
        // TTL shares its 16-bit word with the protocol byte.
        let proto = ip.protocol() as u16;
        d.w16((ttl as u16) << 8 | proto, ((ttl - 1) as u16) << 8 | proto);
        ip.set_ttl(ttl - 1);
        let ck = d.apply(ip.checksum());
        ip.set_checksum(ck);
        ttl - 1
    }
}

/// Grow (or shrink) the IP datagram length fields by `delta` bytes (IPv4 total length with
/// an incremental checksum update; IPv6 payload length).
pub(crate) fn add_len(data: &mut [u8], h: &Hdr, delta: isize) {
    let b = &mut data[h.l3..];
    if h.v6 {
        let mut ip = Ipv6Packet::new_unchecked(b);
        let v = (ip.payload_len() as isize + delta) as u16;
        ip.set_payload_len(v);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(b);
        let old = ip.total_len();
        let v = (old as isize + delta) as u16;
        let ck = checksum::update16(ip.checksum(), old, v);
        ip.set_total_len(v);
        ip.set_checksum(ck);
    }
}

/// Set the Ethernet type of the payload (NAT64 and tunnels change the family).
pub(crate) fn set_ethertype(data: &mut [u8], v6: bool) -> Result<(), XmitDrop> {
    let mut eth = EthernetFrame::new_checked(data).map_err(|_| XmitDrop::Invalid)?;
    eth.set_ethertype(if v6 { EtherType::IPV6 } else { EtherType::IPV4 });
    Ok(())
}

/// RFC 7915 section 5.1: IPv4 packets the translator makes from IPv6 get DF clear up to this
/// size, set above it.
pub(crate) const NAT64_DF_LIMIT: usize = 1260;

/// NAT64, IPv6 -> IPv4 (RFC 7915 section 5.1): replace the IPv6 header and its extension
/// headers by a 20-byte IPv4 header from `src` to `dst`: TOS = traffic class, identification
/// 0 (a packet left without DF gets one from the lcore's generator once it is sent, see the
/// crate's `finish`), DF set above [`NAT64_DF_LIMIT`] bytes, TTL = hop limit - 1, protocol =
/// the upper layer, checksum computed. The upper layer does not move; the headers in front of it move forward.
/// Returns the new header positions.
pub(crate) fn v6_to_v4<M: Mbuf>(m: &mut M, h: &Hdr, proto: u8, src: Addr, dst: Addr) -> Result<Hdr, XmitDrop> {
    let (tc, hop) = {
        let ip = Ipv6Packet::new_unchecked(&m.data()[h.l3..]);
        (ip.traffic_class(), ip.hop_limit())
    };
    let upper = h.end - h.l4;
    if V4_HDR + upper > u16::MAX as usize {
        // A jumbo-sized IPv6 payload has no IPv4 form.
        return Err(XmitDrop::Invalid);
    }
    let shrink = h.l3_hdr_len() - V4_HDR;
    if !m.remove_front(h.l3, shrink) {
        return Err(XmitDrop::Invalid);
    }
    let nh = Hdr {
        v6: false,
        l3: h.l3,
        l4: h.l3 + V4_HDR,
        end: h.end - shrink,
    };
    let total = V4_HDR + upper;
    let data = m.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut data[nh.l3..nh.l4]);
    ip.set_header_len(V4_HDR);
    ip.set_dscp_ecn(tc);
    ip.set_total_len(total as u16);
    ip.set_ident(0);
    ip.set_frag(total > NAT64_DF_LIMIT, false, 0);
    ip.set_ttl(hop.saturating_sub(1));
    ip.set_protocol(proto);
    ip.set_src(src.v4_octets());
    ip.set_dst(dst.v4_octets());
    ip.fill_checksum();
    set_ethertype(data, false)?;
    Ok(nh)
}

/// NAT64, IPv4 -> IPv6 (RFC 7915 section 4.1): replace the IPv4 header (options dropped) by a
/// 40-byte IPv6 header from `src` to `dst`: traffic class = TOS, flow label 0, hop limit =
/// TTL - 1, next header = protocol. The headers in front move into the headroom. Returns the
/// new header positions.
pub(crate) fn v4_to_v6<M: Mbuf>(m: &mut M, h: &Hdr, src: Addr, dst: Addr) -> Result<Hdr, XmitDrop> {
    let (tos, ttl, proto) = {
        let ip = Ipv4Packet::new_unchecked(&m.data()[h.l3..]);
        (ip.dscp_ecn(), ip.ttl(), ip.protocol())
    };
    let upper = h.end - h.l4;
    // A 20..=60-byte IPv4 header (options dropped) becomes 40 bytes: grow or shrink in front.
    let hl = h.l3_hdr_len();
    let resized = if hl <= V6_HDR {
        m.insert_front(h.l3, V6_HDR - hl)
    } else {
        m.remove_front(h.l3, hl - V6_HDR)
    };
    if !resized {
        return Err(XmitDrop::NoHeadroom);
    }
    let nh = Hdr {
        v6: true,
        l3: h.l3,
        l4: h.l3 + V6_HDR,
        end: h.l3 + V6_HDR + upper,
    };
    let data = m.data_mut();
    let mut ip = Ipv6Packet::new_unchecked(&mut data[nh.l3..nh.l4]);
    ip.set_ver_tc_flow(tos, 0);
    ip.set_payload_len(upper as u16);
    ip.set_next_header(proto);
    ip.set_hop_limit(ttl.saturating_sub(1));
    ip.set_src(src.octets());
    ip.set_dst(dst.octets());
    set_ethertype(data, true)?;
    Ok(nh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::rng::SplitMix64;

    /// The one-pass update equals the word-by-word updates of rvs-core's checksum module
    /// (the code it replaced), bit for bit, corner values included.
    #[test]
    fn one_pass_update_equals_word_by_word() {
        let mut r = SplitMix64::new(7);
        let corner = [0u16, 1, 0x7fff, 0xfffe, 0xffff];
        let word = |r: &mut SplitMix64| {
            let x = r.next_u64();
            if x & 3 == 0 {
                corner[(x >> 8) as usize % corner.len()]
            } else {
                (x >> 16) as u16
            }
        };
        for _ in 0..200_000 {
            let ck = word(&mut r);
            let n = 1 + (r.next_u64() % 6) as usize;
            let (mut seq, mut d) = (ck, CkDelta::default());
            for _ in 0..n {
                if r.next_u64() & 1 == 0 {
                    let (o, v) = (word(&mut r), word(&mut r));
                    seq = checksum::update16(seq, o, v);
                    d.w16(o, v);
                } else {
                    let o = (word(&mut r) as u32) << 16 | word(&mut r) as u32;
                    let v = (word(&mut r) as u32) << 16 | word(&mut r) as u32;
                    seq = checksum::update32(seq, o, v);
                    d.w32(o, v);
                }
            }
            assert_eq!(d.apply(ck), seq, "ck {ck:#06x}");
        }
        // The all-zero corner: ~HC and every term zero.
        let mut d = CkDelta::default();
        d.w16(0xffff, 0);
        assert_eq!(d.apply(0xffff), checksum::update16(0xffff, 0xffff, 0));
    }

    /// The word sums read from the integer form equal the byte sums the checksum module
    /// computes (what `addr_sum` did before), in both families.
    #[test]
    fn address_sums_match_the_byte_sums() {
        let mut r = SplitMix64::new(9);
        let edge = [
            Addr(0),
            Addr(u128::MAX),
            Addr::from_v4_u32(0),
            Addr::from_v4_u32(u32::MAX),
        ];
        for i in 0..20_000 {
            let v6 = Addr((r.next_u64() as u128) << 64 | r.next_u64() as u128);
            let v4 = Addr::from_v4_u32(r.next_u64() as u32);
            for a in [v6, v4, edge[i % edge.len()]] {
                let bytes = if a.is_v4() {
                    checksum::sum(&a.v4_octets(), 0)
                } else {
                    checksum::sum(&a.octets(), 0)
                };
                assert_eq!(addr_sum(a), bytes, "{a}");
            }
        }
    }
}
