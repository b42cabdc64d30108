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
//! port's MTU ([`L2::mtu`]) is dropped: with DF set (or inner IPv6) as
//! [`XmitDrop::FragNeeded`], and xmit sends the client an ICMP fragmentation-needed / packet
//! too big carrying the MTU minus the tunnel overhead (RFC 1191, RFC 8201), so its path MTU
//! discovery converges; without DF as [`XmitDrop::TooBig`] (rvs fragments nothing).

use rvs_conn::Conn;
use rvs_core::addr::Addr;
use rvs_core::mbuf::Mbuf;
use rvs_core::stage::Packet;
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
        return Err(if df {
            (XmitDrop::FragNeeded, Some(TooBig { inner_mtu }))
        } else {
            (XmitDrop::TooBig, None)
        });
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

/// The outer source a tunnel to `rs` would use (for tests and `rvsctl`).
pub fn tunnel_source(l2: &L2, rs: Addr) -> Option<Addr> {
    let nh = l2.next_hop(rs).ok()?;
    l2.source_addr(nh.port, rs)
}
