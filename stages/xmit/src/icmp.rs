//! ICMP and ICMPv6 errors that refer to a connection, across NAT64 too, echo messages of ICMP
//! connections (their family part), and the fragmentation-needed message xmit sends for a
//! packet too big for a tunnel.
//!
//! **Translation** (IPVS's `ip_vs_nat_icmp`, DPVS's `dp_vs_in_icmp`): lookup matched the
//! packet quoted by an error (destination unreachable, fragmentation needed / packet too
//! big, time exceeded, parameter problem) to connection `meta.conn`, with `meta.dir` the
//! direction the *error* travels (in: it came from the client's side about a packet the
//! balancer sent the client; out: from the real server's side about a packet the balancer
//! sent the real server). The quoted packet is rewritten to what its addressee itself sent
//! -- the inbound tuple (client -> VIP) for an error going out, the outbound tuple (real server
//! -> local address or client) for one going in -- and for FNAT TCP the quoted sequence number
//! is shifted back by the connection's delta (out), or the quoted acknowledgement forward
//! (in), so the addressee's TCP finds its own segment. The outer header goes to the quoted
//! packet's source, from its destination (NAT inbound keeps the original outer source, as
//! IPVS does: the real server routes back through the balancer anyway). Checksums: the quoted
//! IPv4 header's incrementally; the quoted TCP/UDP checksum incrementally whenever its field
//! is quoted (so it verifies when the whole datagram is quoted; a UDP checksum of 0 stays 0);
//! the ICMP checksum recomputed over the message (errors are at most 576 / 1280 bytes); the
//! outer IPv4 header's incrementally. Path MTU discovery thus works through NAT, FNAT and SNAT
//! in both directions; DR and TUNNEL forward errors from the client side to the real server
//! unchanged (MACs, or encapsulation).
//!
//! **Errors quoting an echo** (of a connection an ICMP service made): the quoted echo's
//! identifier goes back to what its addressee sent (the client's, or the local port), its
//! checksum updated incrementally (ICMPv4's has no pseudo-header, RFC 792; ICMPv6's does, RFC
//! 4443 section 2.3), so it verifies when the whole echo is quoted.
//!
//! **Across NAT64** (RFC 7915 sections 4.2 and 5.2): an ICMPv4 error from the IPv4 side about
//! a packet the balancer sent the real server becomes an ICMPv6 error to the IPv6 client, and
//! an ICMPv6 error from the client's side becomes an ICMPv4 error to the real server. Type and
//! code follow the RFC's tables: destination unreachable codes (net, host, source route and the
//! rest -> no route; port -> port; protocol -> parameter problem pointing at the next header;
//! administratively prohibited -> 1 and back to 10), fragmentation needed <-> packet too big
//! with the MTU adjusted for the 20 bytes between the headers (to IPv6: min(MTU + 20, the IPv6
//! port's MTU, the IPv4 port's + 20), RFC 1191's plateau below the quoted length when the
//! router gave none; to IPv4: min(MTU - 20, the IPv4 port's MTU, the IPv6 port's - 20)), time
//! exceeded keeping its code, parameter problem with its pointer mapped field to field;
//! whatever the RFC silently drops (source quench, redirect, host precedence violation,
//! unrecognized IPv6 option, pointers to fields with no counterpart) is dropped, counted
//! [`XmitDrop::IcmpUntranslatable`]. The quoted header is translated as sections 4.1 / 5.1
//! translate a header (its TTL / hop limit kept; extension headers dropped; identification 0
//! in the quoted header, which no one reassembles; DF above 1260 bytes; the outer IPv4 header
//! of a translated error without DF gets the translator's generated identification), the quoted upper layer as in one family (quoted echo: type 8 <-> 128,
//! 0 <-> 129), an ICMPv6 error is cut to 1280 bytes, and the message checksum is computed.
//!
//! Not done: a quoted IPv4 fragment across NAT64 (section 4.1 would add a fragment header;
//! dropped `not_supported`); errors quoting ICMP queries other than echo (lookup matches none).
//!
//! **Fragmentation needed** for TUNNEL (`frag_needed`): from the VIP (the address the client
//! sent to, so the client's stack and firewalls relate it to the flow) to the client, type 3
//! code 4 with the next-hop MTU (RFC 1191), or ICMPv6 type 2 (RFC 4443 section 3.2), quoting
//! as much of the packet as fits in 576 bytes (RFC 1812 section 4.3.2.3) or 1280 (RFC 4443
//! section 2.4).

use rvs_conn::{Conn, Tuple};
use rvs_core::addr::Addr;
use rvs_core::checksum::{self, fold};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::Dir;
use rvs_core::service::Forward;
use rvs_core::stage::Packet;
use rvs_core::wire::ethernet::EthernetFrame;
use rvs_core::wire::icmp::{self, IcmpPacket};
use rvs_core::wire::icmpv6::{self, Icmpv6Packet};
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::ipv6::Ipv6Packet;

use crate::ipx::{self, Hdr, V4_HDR, V6_HDR};
use crate::{L2, PROTO_TCP, PROTO_UDP, Sent, XmitDrop, set_macs};

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
const ICMP_HDR: usize = 8;

/// Translate an ICMP error referring to `conn` (NAT, FNAT, SNAT).
pub(crate) fn xmit_icmp_err<M: Mbuf>(l2: &L2, conn: &Conn, p: &mut Packet<M>, sent: &mut Sent) -> Result<(), XmitDrop> {
    let dir = p.meta.dir;
    let h = Hdr::locate(p.mbuf.data(), &p.meta)?;
    let want_proto = if h.v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
    let il3 = p.meta.inner_l3_off as usize;
    let il4 = p.meta.inner_l4_off as usize;
    if p.meta.proto != want_proto || il3 != h.l4 + ICMP_HDR || il4 <= il3 || il4 > h.end {
        return Err(XmitDrop::Invalid);
    }
    let inner_v6 = p.mbuf.data()[il3] >> 4 == 6;
    if inner_v6 != h.v6 {
        return Err(XmitDrop::Invalid);
    }
    let mut h = h;
    let mut il4 = il4;
    if strip_quoted_opp(&mut p.mbuf, &mut h, il3, &mut il4)? {
        let m = &mut p.meta;
        m.inner_l4_off = il4 as u16;
        m.l3_len = (h.end - h.l3) as u16;
    }
    // What the quoted packet must show: the tuple its addressee sent; the quoted packet
    // itself is what the balancer sent on the other side (that side's tuple reversed).
    let (q, sent_side) = match dir {
        Dir::Out => (conn.in_tuple, conn.out_tuple),
        Dir::In => (conn.out_tuple, conn.in_tuple),
    };
    let o_src = p.meta.saddr;
    let new_dst = q.saddr;
    let new_src = match (conn.fwd, dir) {
        (Forward::Nat, Dir::In) => o_src,
        _ => q.daddr,
    };
    if ipx::ttl(p.mbuf.data(), &h) <= 1 {
        return Err(XmitDrop::TtlExceeded);
    }
    let nh = l2.next_hop(new_dst)?;
    let quote = Quote {
        q,
        proto: sent_side.proto.number(),
        fnat_tcp: conn.fwd == Forward::Fnat && q.proto.number() == PROTO_TCP,
        delta: conn.fnat_seq_delta,
        dir,
    };
    if new_dst.is_v4() == h.v6 {
        // NAT64: ICMP <-> ICMPv6 (RFC 7915 sections 4.2 and 5.2).
        // The MTUs toward the error's addressee and toward the quoted packet's destination.
        let mtu = |port| l2.mtu(port).min(u16::MAX as usize) as u16;
        let mtus = (
            mtu(nh.port),
            l2.next_hop(sent_side.saddr).map_or(u16::MAX, |n| mtu(n.port)),
        );
        let h = translate_error(&mut p.mbuf, &h, il3, il4, &quote, new_src, new_dst, mtus)?;
        set_macs(p.mbuf.data_mut(), &nh)?;
        let m = &mut p.meta;
        m.ttl = ipx::ttl(p.mbuf.data(), &h);
        m.af = if h.v6 {
            rvs_core::addr::Af::V6
        } else {
            rvs_core::addr::Af::V4
        };
        m.proto = if h.v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
        m.icmp_type = p.mbuf.data()[h.l4];
        m.icmp_code = p.mbuf.data()[h.l4 + 1];
        m.l3_off = h.l3 as u16;
        m.l4_off = h.l4 as u16;
        m.l3_len = (h.end - h.l3) as u16;
        m.inner_l3_off = (h.l4 + ICMP_HDR) as u16;
        m.inner_l4_off = m.inner_l3_off + if h.v6 { V6_HDR as u16 } else { V4_HDR as u16 };
        m.saddr = new_src;
        m.daddr = new_dst;
        sent.port = nh.port;
        sent.icmp_err = true;
        sent.nat64 = true;
        return Ok(());
    }

    let data = p.mbuf.data_mut();
    // The quoted IP header.
    let (iproto, isrc, idst, l4_len) = {
        let ib = &mut data[il3..il4];
        if inner_v6 {
            if ib.len() < V6_HDR {
                return Err(XmitDrop::Invalid);
            }
            let mut ip = Ipv6Packet::new_unchecked(ib);
            let (s, d) = (Addr::v6(ip.src()), Addr::v6(ip.dst()));
            let len = (ip.payload_len() as usize).saturating_sub(il4 - il3 - V6_HDR);
            ip.set_src(q.saddr.octets());
            ip.set_dst(q.daddr.octets());
            // The upper-layer protocol: lookup walked the extension headers to il4 and
            // matched the quoted protocol to the connection's.
            (quote.proto, s, d, len)
        } else {
            if ib.len() < V4_HDR {
                return Err(XmitDrop::Invalid);
            }
            let mut ip = Ipv4Packet::new_unchecked(ib);
            let (s, d) = (Addr::v4(ip.src()), Addr::v4(ip.dst()));
            let proto = ip.protocol();
            let len = (ip.total_len() as usize).saturating_sub(ip.header_len());
            ip.rewrite_src(q.saddr.v4_octets());
            ip.rewrite_dst(q.daddr.v4_octets());
            (proto, s, d, len)
        }
    };
    if iproto != quote.proto {
        return Err(XmitDrop::NotSupported);
    }
    rewrite_quoted_l4(&mut data[il4..h.end], &quote, [isrc, idst], l4_len)?;
    // The ICMP checksum over the whole message, then the outer header.
    {
        let msg = &mut data[h.l4..h.end];
        if h.v6 {
            Icmpv6Packet::new_unchecked(msg).fill_checksum(new_src.octets(), new_dst.octets());
        } else {
            IcmpPacket::new_unchecked(msg).fill_checksum();
        }
    }
    p.meta.ttl = ipx::rewrite_same_family(data, &h, new_src, new_dst, true);
    set_macs(data, &nh)?;
    p.meta.saddr = new_src;
    p.meta.daddr = new_dst;
    sent.port = nh.port;
    sent.icmp_err = true;
    Ok(())
}

/// Take DPVS's UOA "opp" header (protocol 248, [`rvs_core::wire::opp`]) out of a quoted
/// datagram. FNAT put it in front of the UDP header of the first datagrams it sent the real
/// server; an error quoting one of them (lookup found the UDP ports behind it) must reach the
/// other side quoting plain UDP, as its addressee sent or would know it: the opp header is
/// removed (the bytes in front of it move forward), the quoted IP header says UDP with a
/// length that much shorter (IPv4 header checksum recomputed), and the outer header's length
/// shrinks with it. Only the layout rvs itself sends is recognised: the opp header right behind
/// the quoted IPv4 header (any options) or the fixed IPv6 header, its next protocol UDP and its
/// length ending where lookup put the UDP header. Returns whether it removed one.
fn strip_quoted_opp<M: Mbuf>(m: &mut M, h: &mut Hdr, il3: usize, il4: &mut usize) -> Result<bool, XmitDrop> {
    let d = m.data();
    let v6 = d[il3] >> 4 == 6;
    let (proto_at, hdr_end) = if v6 {
        (il3 + 6, il3 + V6_HDR)
    } else {
        (il3 + 9, il3 + usize::from(d[il3] & 0xf) * 4)
    };
    if d.get(proto_at) != Some(&rvs_core::wire::opp::PROTO) || *il4 <= hdr_end {
        return Ok(false);
    }
    if hdr_end < il3 + V4_HDR {
        // An IPv4 header shorter than 20 bytes: never one lookup matched.
        return Err(XmitDrop::Invalid);
    }
    let n = *il4 - hdr_end;
    if rvs_core::wire::opp::len_before(&d[hdr_end..*il4], PROTO_UDP) != Some(n) {
        return Err(XmitDrop::Invalid);
    }
    if !m.remove_front(hdr_end, n) {
        return Err(XmitDrop::Invalid);
    }
    let data = m.data_mut();
    if v6 {
        let mut ip = Ipv6Packet::new_unchecked(&mut data[il3..hdr_end]);
        ip.set_next_header(PROTO_UDP);
        ip.set_payload_len(ip.payload_len().saturating_sub(n as u16));
        let mut out = Ipv6Packet::new_unchecked(&mut data[h.l3..h.l4]);
        out.set_payload_len(out.payload_len().saturating_sub(n as u16));
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut data[il3..hdr_end]);
        ip.set_protocol(PROTO_UDP);
        ip.set_total_len(ip.total_len().saturating_sub(n as u16));
        ip.fill_checksum();
        let mut out = Ipv4Packet::new_unchecked(&mut data[h.l3..h.l4]);
        let (old, new) = (out.total_len(), out.total_len().saturating_sub(n as u16));
        out.set_total_len(new);
        let ck = rvs_core::checksum::update16(out.checksum(), old, new);
        out.set_checksum(ck);
    }
    h.end -= n;
    *il4 = hdr_end;
    Ok(true)
}

/// How the quoted packet of an error is rewritten.
struct Quote {
    /// The tuple the error's addressee sent (what the quote must show).
    q: Tuple,
    /// The quoted packet's upper-layer protocol (that of the tuple on the side it was sent).
    proto: u8,
    /// FNAT TCP: shift seq (out) or ack (in) by `delta`.
    fnat_tcp: bool,
    delta: u32,
    dir: Dir,
}

/// Rewrite the quoted upper-layer header `l4` (as much of it as is quoted) to the ports or
/// echo identifier of `qt.q`, its checksum updated for the pseudo-header addresses `old` ->
/// `qt.q`'s (any families) whenever the checksum field is quoted. `orig_len` is the quoted
/// datagram's upper-layer length from its IP header (the ICMPv6 pseudo-header's length).
fn rewrite_quoted_l4(l4: &mut [u8], qt: &Quote, old: [Addr; 2], orig_len: usize) -> Result<(), XmitDrop> {
    let q = &qt.q;
    let n = l4.len();
    let new = [q.saddr, q.daddr];
    match qt.proto {
        PROTO_TCP | PROTO_UDP => {
            let tcp = qt.proto == PROTO_TCP;
            let ck_off = if tcp { 16 } else { 6 };
            let has_ck = n >= ck_off + 2;
            let mut ck = if has_ck { get16(l4, ck_off) } else { 0 };
            let udp_nock = !tcp && ck == 0;
            ck = ipx::pseudo_update(ck, old, new);
            if n >= 4 {
                let (sp, dp) = (get16(l4, 0), get16(l4, 2));
                ck = checksum::update16(ck, sp, q.sport);
                ck = checksum::update16(ck, dp, q.dport);
                l4[0..2].copy_from_slice(&q.sport.to_be_bytes());
                l4[2..4].copy_from_slice(&q.dport.to_be_bytes());
            }
            if qt.fnat_tcp && qt.delta != 0 {
                match qt.dir {
                    // Quoted: balancer -> real server, seq shifted by the delta.
                    Dir::Out if n >= 8 => {
                        let seq = get32(l4, 4);
                        let v = seq.wrapping_sub(qt.delta);
                        ck = checksum::update32(ck, seq, v);
                        l4[4..8].copy_from_slice(&v.to_be_bytes());
                    }
                    // Quoted: balancer -> client, ack shifted back by the delta.
                    Dir::In if n >= 14 && l4[13] & rvs_core::meta::TcpFlags::ACK != 0 => {
                        let ack = get32(l4, 8);
                        let v = ack.wrapping_add(qt.delta);
                        ck = checksum::update32(ck, ack, v);
                        l4[8..12].copy_from_slice(&v.to_be_bytes());
                    }
                    _ => {}
                }
            }
            if has_ck && !udp_nock {
                let ck = if tcp { ck } else { checksum::udp_wire(ck) };
                l4[ck_off..ck_off + 2].copy_from_slice(&ck.to_be_bytes());
            }
            Ok(())
        }
        // A quoted echo message (lookup matches no other ICMP): identifier, type across
        // families, checksum (ICMPv6's pseudo-header in or out).
        PROTO_ICMP | PROTO_ICMPV6 => {
            if n < 4 {
                return Ok(());
            }
            let mut ck = echo_family(l4, get16(l4, 2), old, new, orig_len as u32);
            if n >= 6 {
                ck = checksum::update16(ck, get16(l4, 4), q.sport);
                l4[4..6].copy_from_slice(&q.sport.to_be_bytes());
            }
            l4[2..4].copy_from_slice(&ck.to_be_bytes());
            Ok(())
        }
        _ => Err(XmitDrop::NotSupported),
    }
}

/// The family part of an echo message's rewrite (`msg` starts at its type byte, at least 4
/// bytes): the ICMPv6 pseudo-header's addresses updated within IPv6, its whole sum taken out
/// (to ICMPv4, which has none, RFC 792) or put in (from ICMPv4), and across families the type
/// mapped as RFC 7915 sections 4.2 and 5.2 map queries (echo request 8 <-> 128, echo reply
/// 0 <-> 129). `old`, `new`: source and destination before and after; `len`: the message's
/// whole length (the pseudo-header's). Returns the checksum `ck` updated (RFC 1624).
pub(crate) fn echo_family(msg: &mut [u8], ck: u16, old: [Addr; 2], new: [Addr; 2], len: u32) -> u16 {
    let (v6_in, v6_out) = (!old[0].is_v4(), !new[0].is_v4());
    let mut c = ck;
    match (v6_in, v6_out) {
        (true, true) => c = ipx::pseudo_update(c, old, new),
        (true, false) => c = checksum::update16(c, fold(checksum::pseudo(old[0], old[1], PROTO_ICMPV6, len)), 0),
        (false, true) => c = checksum::update16(c, 0, fold(checksum::pseudo(new[0], new[1], PROTO_ICMPV6, len))),
        (false, false) => {}
    }
    if v6_in != v6_out {
        let typ = msg[0];
        let new_type = match (v6_out, typ) {
            (true, icmp::types::ECHO_REQUEST) => icmpv6::types::ECHO_REQUEST,
            (true, _) => icmpv6::types::ECHO_REPLY,
            (false, icmpv6::types::ECHO_REQUEST) => icmp::types::ECHO_REQUEST,
            (false, _) => icmp::types::ECHO_REPLY,
        };
        c = checksum::update16(
            c,
            u16::from_be_bytes([typ, msg[1]]),
            u16::from_be_bytes([new_type, msg[1]]),
        );
        msg[0] = new_type;
    }
    c
}

/// RFC 1191's plateau table, for a frag-needed message from a router that gives no MTU.
const PLATEAUS: [u16; 11] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// Type, code and rest-of-header of the ICMPv6 error an ICMPv4 error becomes (RFC 7915
/// section 4.2); `None`: no counterpart, the error is dropped. `quoted_len`: the quoted
/// datagram's total length (for RFC 1191's plateaus); `mtus`: the MTUs of the port toward
/// the IPv6 side and of the port toward the IPv4 side.
fn map_4to6(typ: u8, code: u8, rest: [u8; 4], quoted_len: u16, mtus: (u16, u16)) -> Option<(u8, u8, [u8; 4])> {
    use icmp::types as t4;
    use icmpv6::types as t6;
    Some(match typ {
        t4::DEST_UNREACH => match code {
            0 | 1 | 5 | 6 | 7 | 8 | 11 | 12 => (t6::DEST_UNREACH, 0, [0; 4]),
            2 => (t6::PARAM_PROBLEM, 1, 6u32.to_be_bytes()),
            3 => (t6::DEST_UNREACH, 4, [0; 4]),
            4 => {
                let mut mtu = u16::from_be_bytes([rest[2], rest[3]]);
                if mtu == 0 {
                    mtu = PLATEAUS.iter().copied().find(|&m| m < quoted_len).unwrap_or(68);
                }
                let v = (u32::from(mtu) + 20).min(u32::from(mtus.0)).min(u32::from(mtus.1) + 20);
                (t6::PACKET_TOO_BIG, 0, v.to_be_bytes())
            }
            9 | 10 | 13 | 15 => (t6::DEST_UNREACH, 1, [0; 4]),
            _ => return None,
        },
        t4::TIME_EXCEEDED => (t6::TIME_EXCEEDED, code, [0; 4]),
        t4::PARAM_PROBLEM if code == 0 || code == 2 => {
            let ptr = match rest[0] {
                0 => 0u32,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            (t6::PARAM_PROBLEM, 0, ptr.to_be_bytes())
        }
        _ => return None,
    })
}

/// Type, code and rest-of-header of the ICMPv4 error an ICMPv6 error becomes (RFC 7915
/// section 5.2); `None`: dropped. `mtus`: the MTUs of the port toward the IPv4 side and of
/// the port toward the IPv6 side.
fn map_6to4(typ: u8, code: u8, rest: [u8; 4], mtus: (u16, u16)) -> Option<(u8, u8, [u8; 4])> {
    use icmp::types as t4;
    use icmpv6::types as t6;
    Some(match typ {
        t6::DEST_UNREACH => match code {
            0 | 2 | 3 => (t4::DEST_UNREACH, 1, [0; 4]),
            1 => (t4::DEST_UNREACH, 10, [0; 4]),
            4 => (t4::DEST_UNREACH, 3, [0; 4]),
            _ => return None,
        },
        t6::PACKET_TOO_BIG => {
            let adv = u32::from_be_bytes(rest).saturating_sub(20);
            let v = adv
                .min(u32::from(mtus.0))
                .min(u32::from(mtus.1).saturating_sub(20))
                .min(u32::from(u16::MAX)) as u16;
            let m = v.to_be_bytes();
            (t4::DEST_UNREACH, 4, [0, 0, m[0], m[1]])
        }
        t6::TIME_EXCEEDED => (t4::TIME_EXCEEDED, code, [0; 4]),
        t6::PARAM_PROBLEM => match code {
            0 => {
                let ptr = match u32::from_be_bytes(rest) {
                    0 => 0u8,
                    1 => 1,
                    4 | 5 => 2,
                    6 => 9,
                    7 => 8,
                    8..=23 => 12,
                    24..=39 => 16,
                    _ => return None,
                };
                (t4::PARAM_PROBLEM, 0, [ptr, 0, 0, 0])
            }
            1 => (t4::DEST_UNREACH, 2, [0; 4]),
            _ => return None,
        },
        _ => return None,
    })
}

/// NAT64 of an ICMP error and its quoted packet (RFC 7915 sections 4.2 and 5.2): the quoted
/// upper layer rewritten as in the same family (ports or identifier, FNAT's shift, checksums
/// across the pseudo-header change), the quoted IP header translated as sections 4.1 / 5.1
/// translate a header (hop limit / TTL kept: it is the quoted packet's; IPv4 identification
/// 0, DF above 1260 bytes; the quoted IPv6 extension headers dropped), the ICMP type, code and
/// MTU or pointer mapped, the outer header translated, the message cut to 1280 bytes for
/// IPv6 (RFC 4443 section 2.4), and the message checksum computed. Returns the new header
/// positions.
#[allow(clippy::too_many_arguments)]
fn translate_error<M: Mbuf>(
    m: &mut M,
    h: &Hdr,
    il3: usize,
    il4: usize,
    qt: &Quote,
    new_src: Addr,
    new_dst: Addr,
    mtus: (u16, u16),
) -> Result<Hdr, XmitDrop> {
    let to_v6 = !h.v6;
    let (typ, code, rest) = {
        let d = m.data();
        (
            d[h.l4],
            d[h.l4 + 1],
            [d[h.l4 + 4], d[h.l4 + 5], d[h.l4 + 6], d[h.l4 + 7]],
        )
    };
    // The quoted IP header's fields, before it is replaced.
    let (tos, ttl, isrc, idst, iproto, l4_len, frag) = {
        let ib = &m.data()[il3..il4];
        if to_v6 {
            if ib.len() < V4_HDR {
                return Err(XmitDrop::Invalid);
            }
            let ip = Ipv4Packet::new_unchecked(ib);
            let len = (ip.total_len() as usize).saturating_sub(ip.header_len());
            let frag = ip.is_fragment();
            (
                ip.dscp_ecn(),
                ip.ttl(),
                Addr::v4(ip.src()),
                Addr::v4(ip.dst()),
                ip.protocol(),
                len,
                frag,
            )
        } else {
            if ib.len() < V6_HDR {
                return Err(XmitDrop::Invalid);
            }
            let ip = Ipv6Packet::new_unchecked(ib);
            let len = (ip.payload_len() as usize).saturating_sub(il4 - il3 - V6_HDR);
            (
                ip.traffic_class(),
                ip.hop_limit(),
                Addr::v6(ip.src()),
                Addr::v6(ip.dst()),
                qt.proto,
                len,
                false,
            )
        }
    };
    if iproto != qt.proto || frag {
        // A quoted fragment would need a fragment header (RFC 7915 4.1): not done.
        return Err(XmitDrop::NotSupported);
    }
    let mapped = if to_v6 {
        let quoted_total = (l4_len + il4 - il3) as u16;
        map_4to6(typ, code, rest, quoted_total, mtus)
    } else {
        map_6to4(typ, code, rest, mtus)
    };
    let (ntype, ncode, nrest) = mapped.ok_or(XmitDrop::IcmpUntranslatable)?;
    // The quoted upper layer, in place.
    {
        let end = h.end;
        rewrite_quoted_l4(&mut m.data_mut()[il4..end], qt, [isrc, idst], l4_len)?;
    }
    // The quoted IP header: resize in place (the bytes in front move), then write it.
    let old_len = il4 - il3;
    let new_len = if to_v6 { V6_HDR } else { V4_HDR };
    let ok = if new_len >= old_len {
        m.insert_front(il3, new_len - old_len)
    } else {
        m.remove_front(il3, old_len - new_len)
    };
    if !ok {
        return Err(XmitDrop::NoHeadroom);
    }
    let end = h.end + new_len - old_len;
    let inner_proto = match iproto {
        PROTO_ICMP => PROTO_ICMPV6,
        PROTO_ICMPV6 => PROTO_ICMP,
        p => p,
    };
    {
        let q = &qt.q;
        let ib = &mut m.data_mut()[il3..il3 + new_len];
        if to_v6 {
            let mut ip = Ipv6Packet::new_unchecked(ib);
            ip.set_ver_tc_flow(tos, 0);
            ip.set_payload_len(l4_len as u16);
            ip.set_next_header(inner_proto);
            ip.set_hop_limit(ttl);
            ip.set_src(q.saddr.octets());
            ip.set_dst(q.daddr.octets());
        } else {
            let total = V4_HDR + l4_len;
            let mut ip = Ipv4Packet::new_unchecked(ib);
            ip.set_header_len(V4_HDR);
            ip.set_dscp_ecn(tos);
            ip.set_total_len(total as u16);
            ip.set_ident(0);
            ip.set_frag(total > ipx::NAT64_DF_LIMIT, false, 0);
            ip.set_ttl(ttl);
            ip.set_protocol(inner_proto);
            ip.set_src(q.saddr.v4_octets());
            ip.set_dst(q.daddr.v4_octets());
            ip.fill_checksum();
        }
    }
    // The outer header.
    let oh = Hdr { end, ..*h };
    let nh = if to_v6 {
        let nh = ipx::v4_to_v6(m, &oh, new_src, new_dst)?;
        Ipv6Packet::new_unchecked(&mut m.data_mut()[nh.l3..nh.l4]).set_next_header(PROTO_ICMPV6);
        nh
    } else {
        ipx::v6_to_v4(m, &oh, PROTO_ICMP, new_src, new_dst)?
    };
    // IPv6 errors stop at 1280 bytes.
    let nh = if to_v6 && nh.end - nh.l3 > ICMP6_MAX {
        let cut = nh.end - nh.l3 - ICMP6_MAX;
        let len = m.len();
        if len < nh.end || !m.trim(cut + (len - nh.end)) {
            return Err(XmitDrop::Invalid);
        }
        let nh = Hdr {
            end: nh.end - cut,
            ..nh
        };
        Ipv6Packet::new_unchecked(&mut m.data_mut()[nh.l3..nh.l4]).set_payload_len((nh.end - nh.l4) as u16);
        nh
    } else {
        nh
    };
    let msg = &mut m.data_mut()[nh.l4..nh.end];
    msg[0] = ntype;
    msg[1] = ncode;
    msg[4..8].copy_from_slice(&nrest);
    if to_v6 {
        Icmpv6Packet::new_unchecked(msg).fill_checksum(new_src.octets(), new_dst.octets());
    } else {
        IcmpPacket::new_unchecked(msg).fill_checksum();
    }
    Ok(nh)
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Largest ICMPv4 error datagram (RFC 1812 section 4.3.2.3).
const ICMP4_MAX: usize = 576;
/// Largest ICMPv6 error datagram (RFC 4443 section 2.4: the IPv6 minimum MTU).
const ICMP6_MAX: usize = 1280;

/// Build, in `buf` (an empty buffer from the pool), the fragmentation-needed / packet-too-big
/// error answering `orig` (the client's packet, headers at `h`, sent to `vip`) with next-hop
/// MTU `mtu`. Returns the port to send it on.
pub(crate) fn frag_needed<M: Mbuf>(l2: &L2, orig: &[u8], h: &Hdr, mtu: u16, buf: &mut M) -> Result<u16, XmitDrop> {
    let (client, vip) = {
        let b = &orig[h.l3..];
        if h.v6 {
            let ip = Ipv6Packet::new_unchecked(b);
            (Addr::v6(ip.src()), Addr::v6(ip.dst()))
        } else {
            let ip = Ipv4Packet::new_unchecked(b);
            (Addr::v4(ip.src()), Addr::v4(ip.dst()))
        }
    };
    let nh = l2.next_hop(client)?;
    let (ip_len, max) = if h.v6 { (V6_HDR, ICMP6_MAX) } else { (V4_HDR, ICMP4_MAX) };
    let quoted = (h.end - h.l3).min(max - ip_len - ICMP_HDR);
    let eth = ethernet_len(orig);
    let total = eth + ip_len + ICMP_HDR + quoted;
    let out = buf.append(total).ok_or(XmitDrop::NoHeadroom)?;
    out[..eth].copy_from_slice(&orig[..eth]);
    let icmp_len = ICMP_HDR + quoted;
    {
        let (iph, msg) = out[eth..].split_at_mut(ip_len);
        msg[ICMP_HDR..].copy_from_slice(&orig[h.l3..h.l3 + quoted]);
        msg[..ICMP_HDR].fill(0);
        if h.v6 {
            msg[0] = 2; // packet too big
            msg[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
            let mut ip = Ipv6Packet::new_unchecked(&mut iph[..]);
            ip.set_ver_tc_flow(0, 0);
            ip.set_payload_len(icmp_len as u16);
            ip.set_next_header(PROTO_ICMPV6);
            ip.set_hop_limit(64);
            ip.set_src(vip.octets());
            ip.set_dst(client.octets());
            Icmpv6Packet::new_unchecked(&mut msg[..]).fill_checksum(vip.octets(), client.octets());
        } else {
            msg[0] = 3; // destination unreachable
            msg[1] = 4; // fragmentation needed and DF set
            msg[6..8].copy_from_slice(&mtu.to_be_bytes());
            let mut ip = Ipv4Packet::new_unchecked(&mut iph[..]);
            ip.set_header_len(V4_HDR);
            ip.set_dscp_ecn(0);
            ip.set_total_len((V4_HDR + icmp_len) as u16);
            ip.set_ident(0);
            ip.set_frag(false, false, 0);
            ip.set_ttl(64);
            ip.set_protocol(PROTO_ICMP);
            ip.set_src(vip.v4_octets());
            ip.set_dst(client.v4_octets());
            ip.fill_checksum();
            IcmpPacket::new_unchecked(&mut msg[..]).fill_checksum();
        }
    }
    set_macs(out, &nh)?;
    Ok(nh.port)
}

fn ethernet_len(frame: &[u8]) -> usize {
    EthernetFrame::new_checked(frame).map_or(14, |e| e.header_len())
}
