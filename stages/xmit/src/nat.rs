//! NAT, FNAT and SNAT: the address and port rewrites of TCP and UDP in both directions, over
//! IPv4, IPv6, and across the two (NAT64: FNAT with an IPv6 VIP and IPv4 local and real
//! addresses), with FNAT's TCP work (sequence delta, SYN timestamp NOPs, SACK, TOA, MSS) and
//! UOA.
//!
//! Order of work on a packet: the upper-layer header first (ports, pseudo-header, sequence
//! numbers; all incremental), then the IP header (addresses and TTL in place, or NAT64's
//! header translation, which moves the headers in front of the upper layer), then TOA/UOA on
//! the final layout, then the MACs.

use rvs_conn::{Conn, ConnFlags};
use rvs_core::addr::{Addr, Af, Proto};
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{Dir, PacketMeta, TcpFlags};
use rvs_core::service::Forward;
use rvs_core::stage::Packet;
use rvs_core::wire::ipv6::Ipv6Packet;
use rvs_core::wire::tcp::{TcpPacket, kind};
use rvs_core::wire::udp::UdpPacket;
use rvs_core::wire::{icmp, icmpv6};

use crate::icmp::{PROTO_ICMP, PROTO_ICMPV6, echo_family};
use crate::ipx::{self, CkDelta, Hdr};
use crate::toa::{self, Toa};
use crate::{HopCache, L2, PROTO_TCP, PROTO_UDP, Sent, XmitDrop, set_macs};

/// The address and port rewrites of one packet: new source, new destination (each `None`
/// when unchanged).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rewrite {
    pub src: Option<(Addr, u16)>,
    pub dst: Option<(Addr, u16)>,
}

/// The rewrite a packet of `c` in direction `dir` gets. SNAT is FNAT's address rewrite with
/// the original destination as the "real server" (conn-new puts it there): inbound the
/// source becomes the local address and port, outbound the destination the internal host.
pub(crate) fn rewrite_for(c: &Conn, dir: Dir) -> Rewrite {
    match (c.fwd, dir) {
        (Forward::Fnat | Forward::Snat, Dir::In) => Rewrite {
            src: Some((c.laddr(), c.lport())),
            dst: Some((c.daddr(), c.dport())),
        },
        (Forward::Fnat | Forward::Snat, Dir::Out) => Rewrite {
            src: Some((c.vaddr(), c.vport())),
            dst: Some((c.caddr(), c.cport())),
        },
        (_, Dir::In) => Rewrite {
            src: None,
            dst: Some((c.daddr(), c.dport())),
        },
        (_, Dir::Out) => Rewrite {
            src: Some((c.vaddr(), c.vport())),
            dst: None,
        },
    }
}

/// NAT / FNAT / SNAT of one TCP or UDP packet.
pub(crate) fn xmit_nat<M: Mbuf>(
    l2: &L2,
    hops: &mut HopCache,
    conn: &mut Conn,
    p: &mut Packet<M>,
    sent: &mut Sent,
    uoa: toa::UoaConfig,
) -> Result<(), XmitDrop> {
    let dir = p.meta.dir;
    let data = p.mbuf.data();
    let h = Hdr::locate(data, &p.meta)?;
    let proto = p.meta.proto;
    let (old_s, old_d) = (p.meta.saddr, p.meta.daddr);
    if old_s.is_v4() == h.v6 || old_d.is_v4() == h.v6 {
        return Err(XmitDrop::Invalid);
    }
    let rw = rewrite_for(conn, dir);
    let new_s = rw.src.map_or(old_s, |x| x.0);
    let new_d = rw.dst.map_or(old_d, |x| x.0);
    if new_s.is_v4() != new_d.is_v4() {
        // NAT with a real server of the other family: only FNAT translates (NAT64).
        return Err(XmitDrop::NotSupported);
    }
    let nat64 = new_s.is_v4() == h.v6;
    // IPv4 in and out (the families of the old addresses were checked against the header).
    let same_v4 = !nat64 && !h.v6;
    if ipx::ttl(data, &h) <= 1 {
        return Err(XmitDrop::TtlExceeded);
    }
    let (nh, mtu) = l2.next_hop_cached(hops, new_d)?;
    let fnat = conn.fwd == Forward::Fnat;
    sent.port = nh.port;
    sent.nat64 = nat64;

    let mut udp_full = false;
    let mut tcp_flags = 0;
    let mut tcp_ack = 0;
    {
        let data = p.mbuf.data_mut();
        let l4 = &mut data[h.l4..h.end];
        match proto {
            PROTO_TCP => {
                TcpPacket::new_checked(&*l4).map_err(|_| XmitDrop::Invalid)?;
                // Addresses, ports and sequence numbers: one checksum update for all.
                let mut d = CkDelta::default();
                if same_v4 {
                    d.pseudo_v4([old_s, old_d], [new_s, new_d]);
                } else {
                    d.pseudo([old_s, old_d], [new_s, new_d]);
                }
                {
                    let mut t = fixed_tcp(l4)?;
                    tcp_flags = t.flags();
                    tcp_ack = t.ack();
                    if let Some((_, port)) = rw.src {
                        d.w16(t.src_port(), port);
                        t.set_src_port(port);
                    }
                    if let Some((_, port)) = rw.dst {
                        d.w16(t.dst_port(), port);
                        t.set_dst_port(port);
                    }
                }
                if fnat {
                    fnat_tcp(l4, conn, dir, sent, nat64, &mut d)?;
                }
                let mut t = fixed_tcp(l4)?;
                let ck = d.apply(t.checksum());
                t.set_checksum(ck);
            }
            PROTO_UDP => {
                let mut u = UdpPacket::new_checked(l4).map_err(|_| XmitDrop::Invalid)?;
                let ck = u.checksum();
                if ck != 0 {
                    let mut d = CkDelta::default();
                    if same_v4 {
                        d.pseudo_v4([old_s, old_d], [new_s, new_d]);
                    } else {
                        d.pseudo([old_s, old_d], [new_s, new_d]);
                    }
                    if let Some((_, port)) = rw.src {
                        d.w16(u.src_port(), port);
                    }
                    if let Some((_, port)) = rw.dst {
                        d.w16(u.dst_port(), port);
                    }
                    u.set_checksum(checksum::udp_wire(d.apply(ck)));
                } else if nat64 && !h.v6 {
                    // IPv6 requires a UDP checksum (RFC 8200 section 8.1; RFC 7915 4.5).
                    udp_full = true;
                }
                if let Some((_, port)) = rw.src {
                    u.set_src_port(port);
                }
                if let Some((_, port)) = rw.dst {
                    u.set_dst_port(port);
                }
            }
            // Only on an echo connection (a stray ICMP packet on a TCP/UDP one is refused).
            PROTO_ICMP | PROTO_ICMPV6 if matches!(conn.in_tuple.proto, Proto::Icmp | Proto::Icmp6) => {
                icmp_echo(&mut data[h.l4..h.end], &rw, [old_s, old_d], [new_s, new_d])?
            }
            _ => return Err(XmitDrop::NotSupported),
        }
        if !nat64 {
            p.meta.ttl = ipx::rewrite_same_family(data, &h, new_s, new_d, true);
        }
    }

    let mut h = if !nat64 {
        h
    } else if h.v6 {
        sent.nat64 = true;
        let proto4 = if proto == PROTO_ICMPV6 { PROTO_ICMP } else { proto };
        ipx::v6_to_v4(&mut p.mbuf, &h, proto4, new_s, new_d)?
    } else {
        let nh = ipx::v4_to_v6(&mut p.mbuf, &h, new_s, new_d)?;
        if proto == PROTO_ICMP {
            Ipv6Packet::new_unchecked(&mut p.mbuf.data_mut()[nh.l3..nh.l4]).set_next_header(PROTO_ICMPV6);
        }
        nh
    };
    if nat64 {
        p.meta.ttl = ipx::ttl(p.mbuf.data(), &h);
        if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
            p.meta.proto = if h.v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
            p.meta.icmp_type = p.mbuf.data()[h.l4];
        }
    }
    if udp_full {
        let seg = &mut p.mbuf.data_mut()[h.l4..h.end];
        let len = seg.len() as u32;
        UdpPacket::new_unchecked(seg).fill_checksum(checksum::pseudo(new_s, new_d, PROTO_UDP, len));
    }

    if fnat && dir == Dir::In {
        if proto == PROTO_TCP && toa::wants_toa(conn, tcp_flags, tcp_ack) {
            let (t, grow) = toa::insert_toa(&mut p.mbuf, &h, conn.caddr(), conn.cport(), new_s, new_d, mtu);
            conn.flags.set(ConnFlags::TOA_DONE);
            sent.toa = t;
            h.end = (h.end as isize + grow) as usize;
            p.meta.l4_hdr_len = (p.meta.l4_hdr_len as isize + grow) as u16;
        } else if proto == PROTO_UDP {
            let (u, grow) = toa::insert_uoa(&mut p.mbuf, &h, conn, mtu, uoa);
            sent.uoa = u;
            h.l4 += grow;
            h.end += grow;
        }
    }

    set_macs(p.mbuf.data_mut(), &nh)?;
    update_meta(&mut p.meta, &rw, &h);
    Ok(())
}

/// An ICMP or ICMPv6 echo request or reply of a connection (lookup found it by its
/// identifier, which parse reads only from echo messages): the identifier becomes the new
/// "port" of the rewrite -- the local port toward the real server in FNAT and SNAT, the client's
/// identifier back, unchanged in NAT (conn-new keeps both tuples' ports equal to the
/// identifier). Across NAT64 the type is mapped as RFC 7915 sections 4.2 and 5.2 map queries
/// (echo request 8 <-> 128, echo reply 0 <-> 129, code 0). Checksum, all incremental (RFC
/// 1624): the identifier and type words; ICMPv6's pseudo-header (RFC 4443 section 2.3) the
/// address change within IPv6, or its whole sum taken out (to IPv4, whose ICMP checksum has no
/// pseudo-header, RFC 792) or put in (from IPv4). `old`/`new`: source and destination before
/// and after. Anything other than an echo message is refused as invalid: lookup never matches
/// one to a connection.
fn icmp_echo(msg: &mut [u8], rw: &Rewrite, old: [Addr; 2], new: [Addr; 2]) -> Result<(), XmitDrop> {
    if msg.len() < 8 {
        return Err(XmitDrop::Invalid);
    }
    let is_echo = if old[0].is_v4() {
        icmp::is_echo(msg[0])
    } else {
        icmpv6::is_echo(msg[0])
    };
    if !is_echo {
        return Err(XmitDrop::Invalid);
    }
    let len = msg.len() as u32;
    let mut ck = echo_family(msg, u16::from_be_bytes([msg[2], msg[3]]), old, new, len);
    if let Some((_, id)) = rw.dst.or(rw.src) {
        ck = checksum::update16(ck, u16::from_be_bytes([msg[4], msg[5]]), id);
        msg[4..6].copy_from_slice(&id.to_be_bytes());
    }
    msg[2..4].copy_from_slice(&ck.to_be_bytes());
    Ok(())
}

/// The fixed 20 bytes of a TCP header in `seg` (already checked by
/// [`TcpPacket::new_checked`]) as a view of known length: ports, sequence numbers, flags and
/// the checksum without a bounds check per field.
#[inline]
fn fixed_tcp(seg: &mut [u8]) -> Result<TcpPacket<&mut [u8; TCP_HDR]>, XmitDrop> {
    let (hdr, _) = seg.split_first_chunk_mut::<TCP_HDR>().ok_or(XmitDrop::Invalid)?;
    Ok(TcpPacket::new_unchecked(hdr))
}

/// Length of a TCP header without options.
const TCP_HDR: usize = 20;

/// FNAT's TCP work after the address and port rewrite (DPVS's `tcp_fnat_in_handler` /
/// `tcp_fnat_out_handler`), TOA aside, on the segment `seg` (checked by
/// [`TcpPacket::new_checked`]).
///
/// The sequence and acknowledgement changes are gathered in `d` (the caller applies it to
/// the checksum once); the rarer option rewrites (timestamp NOPs, MSS, SACK) update the
/// checksum field themselves, which gives the same result in any order ([`CkDelta`]).
fn fnat_tcp(
    seg: &mut [u8],
    conn: &mut Conn,
    dir: Dir,
    sent: &mut Sent,
    nat64: bool,
    d: &mut CkDelta,
) -> Result<(), XmitDrop> {
    let delta = conn.fnat_seq_delta;
    let (flags, seq, ack) = {
        let t = fixed_tcp(seg)?;
        (TcpFlags(t.flags()), t.seq(), t.ack())
    };
    match dir {
        Dir::In => {
            if flags.syn() && !flags.ack() {
                sent.ts_nopped = TcpPacket::new_unchecked(&mut *seg).nop_timestamp();
            }
            if delta != 0 {
                let new = seq.wrapping_add(delta);
                d.w32(seq, new);
                fixed_tcp(seg)?.set_seq(new);
            }
        }
        Dir::Out => {
            // The end of what the server sent (SYN and FIN count one), and its ack, before
            // the adjustment: what an RST on expiry must carry towards the server.
            let hl = fixed_tcp(seg)?.header_len();
            let len = seg.len().saturating_sub(hl) as u32 + flags.syn() as u32 + flags.fin() as u32;
            conn.rs_last_seq = seq.wrapping_add(len);
            conn.rs_last_ack = ack;
            if flags.syn() && flags.ack() {
                sent.mss_clamped = toa::clamp_synack_mss(&mut TcpPacket::new_unchecked(&mut *seg), conn, nat64);
            }
            if delta != 0 {
                sent.sack_blocks = sack_sub(seg, hl, delta, d) as u8;
                if flags.ack() {
                    let new = ack.wrapping_sub(delta);
                    d.w32(ack, new);
                    fixed_tcp(seg)?.set_ack(new);
                }
            }
        }
    }
    Ok(())
}

/// Offset in `opts` (a TCP header's option bytes) and block count of the first well-formed
/// SACK option: the option [`TcpPacket::rewrite_sack`] of rvs-core finds (its walk stops at
/// end-of-list or at a length byte that is missing, below 2 or past the end; a SACK option
/// whose length is not 2 + 8n with n >= 1 is passed over), found in one pass over the bytes
/// without building each option.
#[inline]
fn find_sack(opts: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while let Some(&k) = opts.get(at) {
        match k {
            kind::EOL => return None,
            kind::NOP => at += 1,
            _ => {
                let len = *opts.get(at + 1)? as usize;
                if len < 2 || at + len > opts.len() {
                    return None;
                }
                if k == kind::SACK && len >= 10 && (len - 2).is_multiple_of(8) {
                    return Some((at, (len - 2) / 8));
                }
                at += len;
            }
        }
    }
    None
}

/// Subtract `delta` from every edge of the SACK option of the segment `seg` (header length
/// `hl`, checked), gathering the checksum change in `d` exactly as rvs-core's
/// `rewrite_sack` makes it (one word: the folded sums of the edge bytes widened to 16-bit
/// alignment, before and after). Returns the number of blocks (0 without a SACK option).
fn sack_sub(seg: &mut [u8], hl: usize, delta: u32, d: &mut CkDelta) -> usize {
    let Some((at, n)) = seg.get(TCP_HDR..hl).and_then(find_sack) else {
        return 0;
    };
    let start = TCP_HDR + at + 2;
    let end = start + n * 8;
    // find_sack keeps the option inside the header: start..end lies within seg.
    let (edges, _) = seg[start..end].as_chunks_mut::<4>();
    if start.is_multiple_of(2) {
        // Word-aligned (the usual NOP, NOP, SACK): the summed range is the edges
        // themselves, so both sums come from the values, without reading the bytes again.
        let (mut old, mut new) = (0u32, 0u32);
        for edge in edges {
            let v = u32::from_be_bytes(*edge);
            let w = v.wrapping_sub(delta);
            old += (v >> 16) + (v & 0xffff);
            new += (w >> 16) + (w & 0xffff);
            *edge = w.to_be_bytes();
        }
        d.w16(checksum::fold(old), checksum::fold(new));
        return n;
    }
    let (s, e) = (start & !1, ((end + 1) & !1).min(seg.len()));
    let old = checksum::fold(checksum::sum(&seg[s..e], 0));
    let (edges, _) = seg[start..end].as_chunks_mut::<4>();
    for edge in edges {
        *edge = u32::from_be_bytes(*edge).wrapping_sub(delta).to_be_bytes();
    }
    let new = checksum::fold(checksum::sum(&seg[s..e], 0));
    d.w16(old, new);
    n
}

/// The metadata of the packet as sent: new addresses and ports, family, offsets, length.
pub(crate) fn update_meta(m: &mut PacketMeta, rw: &Rewrite, h: &Hdr) {
    if let Some((a, port)) = rw.src {
        m.saddr = a;
        m.sport = port;
    }
    if let Some((a, port)) = rw.dst {
        m.daddr = a;
        m.dport = port;
    }
    m.af = if h.v6 { Af::V6 } else { Af::V4 };
    m.l3_off = h.l3 as u16;
    m.l4_off = h.l4 as u16;
    m.l3_len = (h.end - h.l3) as u16;
}

/// `Toa` counts for [`crate::XmitCounters`].
pub(crate) fn toa_counts(t: Toa) -> (u64, u64, u64) {
    match t {
        Toa::None => (0, 0, 0),
        Toa::Inserted => (1, 0, 0),
        Toa::Pruned => (1, 1, 0),
        Toa::Skipped => (0, 0, 1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rvs_core::rng::SplitMix64;

    /// The one-pass SACK rewrite gives the bytes, the checksum and the block count of
    /// rvs-core's `rewrite_sack` on random option lists: SACK options at odd and even offsets,
    /// malformed ones, NOPs, end-of-list, bad lengths, other options.
    #[test]
    fn sack_rewrite_equals_the_core_one() {
        let mut r = SplitMix64::new(11);
        let mut found = [0usize; 5];
        for _ in 0..100_000 {
            let hl = 20 + 4 * (r.next_u64() % 11) as usize;
            let mut seg = vec![0u8; hl + (r.next_u64() % 8) as usize];
            for b in seg.iter_mut() {
                *b = r.next_u64() as u8;
            }
            seg[12] = ((hl / 4) as u8) << 4;
            // Options: a random mix, SACK likely.
            let mut at = 20;
            while at < hl {
                let pick = r.next_u64() % 10;
                let room = hl - at;
                match pick {
                    0 => {
                        seg[at] = kind::EOL;
                        at += 1;
                    }
                    1..=3 => {
                        seg[at] = kind::NOP;
                        at += 1;
                    }
                    4..=7 if room >= 2 => {
                        let n = 1 + (r.next_u64() % 4) as usize;
                        let bad = r.next_u64().is_multiple_of(8);
                        let len = if bad { 2 + 8 * n - 1 } else { 2 + 8 * n };
                        seg[at] = kind::SACK;
                        seg[at + 1] = len.min(room + (r.next_u64() % 2) as usize) as u8;
                        at += len.min(room);
                    }
                    _ if room >= 2 => {
                        let len = 2 + (r.next_u64() % 9) as usize;
                        seg[at] = 2 + (r.next_u64() % 250) as u8;
                        seg[at + 1] = if r.next_u64().is_multiple_of(16) {
                            (r.next_u64() % 3) as u8
                        } else {
                            len as u8
                        };
                        at += len.min(room);
                    }
                    _ => at += 1,
                }
            }
            let delta = r.next_u64() as u32;
            let mut want = seg.clone();
            let n_want = TcpPacket::new_checked(&mut want[..])
                .unwrap()
                .rewrite_sack(|e| e.wrapping_sub(delta));
            let mut got = seg.clone();
            let mut d = CkDelta::default();
            let n = sack_sub(&mut got, hl, delta, &mut d);
            let ck = d.apply(u16::from_be_bytes([got[16], got[17]]));
            got[16..18].copy_from_slice(&ck.to_be_bytes());
            assert_eq!(n, n_want);
            assert_eq!(got, want, "{seg:02x?}");
            found[n] += 1;
        }
        // Every block count was exercised.
        assert!(found.iter().all(|&c| c > 100), "{found:?}");
    }
}
