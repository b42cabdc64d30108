//! TUNNEL (ipvsadm `-i`): the client's packet, untouched, encapsulated in an outer IP header
//! toward the real server, which decapsulates it and answers the client directly (as DR, the
//! balancer sees only the inbound direction). DPVS encapsulates directly, with no tunnel
//! device; so does rvs.
//!
//! | inner | real server | outer | protocol |
//! |---|---|---|---|
//! | IPv4 | IPv4 | IPv4 | 4 (IPIP, RFC 2003) |
//! | IPv6 | IPv6 | IPv6 | 41 (ip6ip6, RFC 2473) |
//! | IPv6 | IPv4 | IPv4 | 41 (6-over-4, RFC 4213) |
//! | IPv4 | IPv6 | IPv6 | 4 (4-in-6, RFC 2473) |
//!
//! The outer source is the first address, of the real server's family, of the interface whose
//! route reaches the real server ([`L2::source_addr`]); the outer destination the real server.
//! Outer IPv4: TOS copied from the inner TOS / traffic class (RFC 2003 section 3.1), DF copied
//! from an inner IPv4 header and set for inner IPv6 (which routers never fragment; RFC 4213
//! section 3.2), identification copied from the inner IPv4 header (0 for inner IPv6 with DF
//! set, RFC 6864), TTL 64 (Linux's default for tunnel devices with `ttl inherit` off; DPVS
//! copies the inner TTL instead: a fixed value keeps the real server's decapsulation from
//! depending on how far the client is). Outer IPv6: traffic class copied, flow label 0, hop
//! limit 64. The inner packet is not changed at all (its TTL included, as IPVS and DPVS do).
//!
//! MTU: the outer header costs 20 (IPv4) or 40 (IPv6) bytes. A result larger than the output
//! port's MTU ([`L2::mtu`]):
//!
//! - with DF set (or inner IPv6) is dropped as [`XmitDrop::FragNeeded`], and xmit sends the
//!   client an ICMP fragmentation-needed / packet too big carrying the MTU minus the tunnel
//!   overhead (RFC 1191, RFC 8201), so its path MTU discovery converges;
//! - with an IPv4 outer header and DF clear is sent as IPv4 fragments (RFC 791 section 3.2,
//!   what DPVS's `ipv4_output` does through `ipv4_fragment` in `src/ipv4_frag.c`): each
//!   fragment a copy of the outer header with its own total length, MF on all but the last,
//!   the offset in 8-byte units, the header checksum recomputed; every fragment but the last
//!   carries a multiple of 8 bytes of the inner packet, as much as the MTU allows. The first
//!   fragments are new buffers from the stage's pool ([`fragment_v4`], sent in order before
//!   the last), the last is the original buffer with the data in front of it removed. A
//!   fragmented datagram gets an identification of its own (RFC 6864 section 4.1: a
//!   non-atomic datagram's identification must be unique for its source, destination and
//!   protocol): a per-lcore counter in the high 12 bits, the lcore's low 4 bits in the low
//!   ones, so lcores sharing a source address do not collide (up to 16 lcores, 4096
//!   datagrams per lcore before a value repeats). Counted (`fragmented`, `fragments`); an
//!   empty pool mid-way drops the datagram ([`XmitDrop::FragFailed`]).
//! - with an IPv6 outer header and an inner IPv4 packet without DF (4-in-6) is dropped as
//!   [`XmitDrop::TooBig`]: IPv6 routers never fragment and rvs does not fragment the outer
//!   IPv6 packet itself (RFC 2473 section 7.1 would let a tunnel entry point do so, with a
//!   fragment header); a packet too big for ip6ip6 or 6-over-4 is answered with a packet
//!   too big, as above.

use rvs_conn::Conn;
use rvs_core::addr::Addr;
use rvs_core::label::Label;
use rvs_core::mbuf::Mbuf;
use rvs_core::stage::{Out, Packet};
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::ipv6::Ipv6Packet;

use crate::ipx::{self, Hdr, V4_HDR, V6_HDR};
use crate::{L2, Sent, XmitDrop, set_macs};

/// IP protocol number of IPv4 encapsulated in IP.
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6 encapsulated in IP.
pub const IPPROTO_IPV6: u8 = 41;
/// TTL / hop limit of the outer header.
pub const OUTER_TTL: u8 = 64;

/// What the caller needs to answer a packet too big for the tunnel: the MTU the client
/// should use (the port MTU minus the outer header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooBig {
    pub inner_mtu: u16,
}

/// Encapsulate one inbound packet toward the connection's real server.
pub(crate) fn xmit_tunnel<M: Mbuf>(
    l2: &L2,
    conn: &Conn,
    p: &mut Packet<M>,
    sent: &mut Sent,
) -> Result<(), (XmitDrop, Option<TooBig>)> {
    let e = |d| (d, None);
    let h = Hdr::locate(p.mbuf.data(), &p.meta).map_err(e)?;
    let rs = conn.daddr();
    let nh = l2.next_hop(rs).map_err(|u| e(u.into()))?;
    let src = l2.source_addr(nh.port, rs).ok_or(e(XmitDrop::NoRoute))?;
    let outer_v6 = !rs.is_v4();
    let outer_len = if outer_v6 { V6_HDR } else { V4_HDR };
    let inner_len = h.end - h.l3;
    let mtu = l2.mtu(nh.port);
    let (tos, df, ident) = {
        let b = &p.mbuf.data()[h.l3..];
        if h.v6 {
            (Ipv6Packet::new_unchecked(b).traffic_class(), true, 0)
        } else {
            let ip = Ipv4Packet::new_unchecked(b);
            (ip.dscp_ecn(), ip.dont_frag(), ip.ident())
        }
    };
    if inner_len + outer_len > mtu {
        let inner_mtu = (mtu - outer_len) as u16;
        if df {
            return Err((XmitDrop::FragNeeded, Some(TooBig { inner_mtu })));
        }
        if outer_v6 || mtu < V4_HDR + 8 {
            return Err(e(XmitDrop::TooBig));
        }
        // Encapsulated whole here; the stage cuts it into fragments (it has the pool).
        sent.frag_mtu = mtu as u16;
    }
    if !p.mbuf.insert_front(h.l3, outer_len) {
        return Err(e(XmitDrop::NoHeadroom));
    }
    let proto = if h.v6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
    let data = p.mbuf.data_mut();
    let hdr = &mut data[h.l3..h.l3 + outer_len];
    if outer_v6 {
        let mut ip = Ipv6Packet::new_unchecked(hdr);
        ip.set_ver_tc_flow(tos, 0);
        ip.set_payload_len(inner_len as u16);
        ip.set_next_header(proto);
        ip.set_hop_limit(OUTER_TTL);
        ip.set_src(src.octets());
        ip.set_dst(rs.octets());
    } else {
        let mut ip = Ipv4Packet::new_unchecked(hdr);
        ip.set_header_len(V4_HDR);
        ip.set_dscp_ecn(tos);
        ip.set_total_len((V4_HDR + inner_len) as u16);
        ip.set_ident(ident);
        ip.set_frag(df, false, 0);
        ip.set_ttl(OUTER_TTL);
        ip.set_protocol(proto);
        ip.set_src(src.v4_octets());
        ip.set_dst(rs.v4_octets());
        ip.fill_checksum();
    }
    ipx::set_ethertype(data, outer_v6).map_err(e)?;
    set_macs(data, &nh).map_err(e)?;
    sent.port = nh.port;
    sent.encap = true;
    let m = &mut p.meta;
    m.af = rs.af();
    m.saddr = src;
    m.daddr = rs;
    m.proto = proto;
    m.l4_off = (h.l3 + outer_len) as u16;
    m.l3_len = (outer_len + inner_len) as u16;
    m.ttl = OUTER_TTL;
    Ok(())
}

/// Cut the encapsulated IPv4 packet `p` (outer header without options at `p.meta.l3_off`,
/// as `xmit_tunnel` builds it, DF clear) into fragments that fit `mtu`, with
/// identification `ident`. Every fragment but the last is a new buffer from the pool, sent
/// on `port` through `out` in order; `p` becomes the last (the caller sends it). Returns the
/// number of fragments; [`XmitDrop::FragFailed`] when the pool runs dry (fragments already
/// sent are lost with the datagram, as any lost fragment loses it).
pub fn fragment_v4<M: Mbuf, N: Label>(
    p: &mut Packet<M>,
    mtu: usize,
    ident: u16,
    port: u16,
    out: &mut Out<'_, M, N, XmitDrop>,
) -> Result<u32, XmitDrop> {
    let l3 = p.meta.l3_off as usize;
    let hdr_end = l3 + V4_HDR;
    let total = {
        let d = p.mbuf.data();
        let ip = Ipv4Packet::new_checked(d.get(l3..).ok_or(XmitDrop::Invalid)?).map_err(|_| XmitDrop::Invalid)?;
        if ip.header_len() != V4_HDR || ip.dont_frag() || ip.more_frags() || ip.frag_offset() != 0 {
            return Err(XmitDrop::Invalid);
        }
        ip.total_len() as usize
    };
    if total < V4_HDR || l3 + total > p.mbuf.len() || mtu < V4_HDR + 8 {
        return Err(XmitDrop::Invalid);
    }
    let payload = total - V4_HDR;
    // RFC 791: every fragment but the last carries a multiple of 8 bytes.
    let chunk = (mtu - V4_HDR) & !7;
    let n = payload.div_ceil(chunk).max(1);
    let last_off = (n - 1) * chunk;
    for k in 0..n - 1 {
        let Some(mut buf) = out.alloc() else {
            return Err(XmitDrop::FragFailed);
        };
        let off = k * chunk;
        let len = hdr_end + chunk;
        let Some(dst) = buf.append(len) else {
            out.free(buf);
            return Err(XmitDrop::FragFailed);
        };
        let src = p.mbuf.data();
        dst[..hdr_end].copy_from_slice(&src[..hdr_end]);
        dst[hdr_end..].copy_from_slice(&src[hdr_end + off..hdr_end + off + chunk]);
        set_frag_header(&mut dst[l3..hdr_end], chunk, ident, true, off);
        out.emit_tx(port, Packet::new(buf));
    }
    // The original buffer becomes the last fragment: the data in front of it goes, the
    // Ethernet and outer headers move forward over it; anything after the datagram goes.
    let last_len = payload - last_off;
    if !p.mbuf.remove_front(hdr_end, last_off) {
        return Err(XmitDrop::Invalid);
    }
    let extra = p.mbuf.len() - (hdr_end + last_len);
    if extra > 0 && !p.mbuf.trim(extra) {
        return Err(XmitDrop::Invalid);
    }
    set_frag_header(&mut p.mbuf.data_mut()[l3..hdr_end], last_len, ident, false, last_off);
    p.meta.l3_len = (V4_HDR + last_len) as u16;
    Ok(n as u32)
}

/// Fill the per-fragment fields of an outer IPv4 header: total length, identification,
/// MF and offset (in 8-byte units), then the header checksum.
fn set_frag_header(hdr: &mut [u8], len: usize, ident: u16, more: bool, off: usize) {
    let mut ip = Ipv4Packet::new_unchecked(hdr);
    ip.set_total_len((V4_HDR + len) as u16);
    ip.set_ident(ident);
    ip.set_frag(false, more, off as u16);
    ip.fill_checksum();
}

/// The outer source a tunnel to `rs` would use (for tests and `rvsctl`).
pub fn tunnel_source(l2: &L2, rs: Addr) -> Option<Addr> {
    let nh = l2.next_hop(rs).ok()?;
    l2.source_addr(nh.port, rs)
}
