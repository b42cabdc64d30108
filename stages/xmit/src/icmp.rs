//! ICMP and ICMPv6 errors that refer to a connection, and the fragmentation-needed message
//! xmit sends for a packet too big for a tunnel.
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
//! Not done: errors across NAT64 (ICMPv4 <-> ICMPv6 translation, RFC 7915 sections 4.2 and
//! 5.2: dropped as `not_supported`); errors quoting ICMP queries.
//!
//! **Fragmentation needed** for TUNNEL (`frag_needed`): from the VIP (the address the client
//! sent to, so the client's stack and firewalls relate it to the flow) to the client, type 3
//! code 4 with the next-hop MTU (RFC 1191), or ICMPv6 type 2 (RFC 4443 section 3.2), quoting
//! as much of the packet as fits in 576 bytes (RFC 1812 section 4.3.2.3) or 1280 (RFC 4443
//! section 2.4).

use rvs_conn::Conn;
use rvs_core::addr::Addr;
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::Dir;
use rvs_core::service::Forward;
use rvs_core::stage::Packet;
use rvs_core::wire::ethernet::EthernetFrame;
use rvs_core::wire::icmp::IcmpPacket;
use rvs_core::wire::icmpv6::Icmpv6Packet;
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
    if inner_v6 != h.v6 || conn.caddr().is_v4() != conn.daddr().is_v4() {
        // ICMP <-> ICMPv6 translation for NAT64 is not done.
        return Err(XmitDrop::NotSupported);
    }
    // What the quoted packet must show: the tuple its addressee sent.
    let q = match dir {
        Dir::Out => conn.in_tuple,
        Dir::In => conn.out_tuple,
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
    let fnat_tcp = conn.fwd == Forward::Fnat && q.proto.number() == PROTO_TCP;
    let delta = conn.fnat_seq_delta;

    let data = p.mbuf.data_mut();
    // The quoted IP header.
    let (iproto, isrc, idst) = {
        let ib = &mut data[il3..il4];
        if inner_v6 {
            if ib.len() < V6_HDR {
                return Err(XmitDrop::Invalid);
            }
            let mut ip = Ipv6Packet::new_unchecked(ib);
            let (s, d) = (Addr::v6(ip.src()), Addr::v6(ip.dst()));
            ip.set_src(q.saddr.octets());
            ip.set_dst(q.daddr.octets());
            // The upper-layer protocol: lookup walked the extension headers to il4; the
            // last next-header field before il4 is the quoted protocol.
            (q.proto.number(), s, d)
        } else {
            if ib.len() < V4_HDR {
                return Err(XmitDrop::Invalid);
            }
            let mut ip = Ipv4Packet::new_unchecked(ib);
            let (s, d) = (Addr::v4(ip.src()), Addr::v4(ip.dst()));
            let proto = ip.protocol();
            ip.rewrite_src(q.saddr.v4_octets());
            ip.rewrite_dst(q.daddr.v4_octets());
            (proto, s, d)
        }
    };
    if iproto != q.proto.number() || (iproto != PROTO_TCP && iproto != PROTO_UDP) {
        return Err(XmitDrop::NotSupported);
    }
    // The quoted upper-layer header, as much of it as is there.
    {
        let l4 = &mut data[il4..h.end];
        let n = l4.len();
        let ck_off = if iproto == PROTO_TCP { 16 } else { 6 };
        let has_ck = n >= ck_off + 2;
        let mut ck = if has_ck {
            u16::from_be_bytes([l4[ck_off], l4[ck_off + 1]])
        } else {
            0
        };
        let udp_nock = iproto == PROTO_UDP && ck == 0;
        ck = ipx::pseudo_update(ck, [isrc, idst], [q.saddr, q.daddr]);
        if n >= 4 {
            let (sp, dp) = (get16(l4, 0), get16(l4, 2));
            ck = checksum::update16(ck, sp, q.sport);
            ck = checksum::update16(ck, dp, q.dport);
            l4[0..2].copy_from_slice(&q.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&q.dport.to_be_bytes());
        }
        if fnat_tcp && delta != 0 {
            match dir {
                // Quoted: balancer -> real server, seq shifted by the delta.
                Dir::Out if n >= 8 => {
                    let seq = get32(l4, 4);
                    let new = seq.wrapping_sub(delta);
                    ck = checksum::update32(ck, seq, new);
                    l4[4..8].copy_from_slice(&new.to_be_bytes());
                }
                // Quoted: balancer -> client, ack shifted back by the delta.
                Dir::In if n >= 14 && l4[13] & rvs_core::meta::TcpFlags::ACK != 0 => {
                    let ack = get32(l4, 8);
                    let new = ack.wrapping_add(delta);
                    ck = checksum::update32(ck, ack, new);
                    l4[8..12].copy_from_slice(&new.to_be_bytes());
                }
                _ => {}
            }
        }
        if has_ck && !udp_nock {
            let ck = if iproto == PROTO_UDP {
                checksum::udp_wire(ck)
            } else {
                ck
            };
            l4[ck_off..ck_off + 2].copy_from_slice(&ck.to_be_bytes());
        }
    }
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
