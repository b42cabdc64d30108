//! The packets synproxy writes: the cookie SYN-ACK (made in place from the client's SYN, as
//! DPVS's `syn_proxy_reuse_mbuf` does), the SYN to the real server (from a pool buffer, as
//! `syn_proxy_send_rs_syn`), and the sequence adjustments of a proxied connection
//! (`dp_vs_synproxy_dnat_handler` / `dp_vs_synproxy_snat_handler`).

use rvs_core::addr::Af;
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{PacketMeta, TcpFlags};
use rvs_core::stage::Packet;
use rvs_core::time::Now;
use rvs_core::wire::tcp::{MIN_HEADER_LEN, kind};
use rvs_core::wire::{Ipv4Packet, Ipv6Packet, TcpOption, TcpOptions, TcpPacket};

use crate::SynProxyConfig;
use crate::cookie::{CookieFlow, CookieKey, CookieOpts, WSCALE_MAX};

const PROTO_TCP: u8 = 6;
const IPV4_MIN: usize = 20;
const IPV6_LEN: usize = 40;
const ETH_ALEN: usize = 6;

/// Why a packet could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildError {
    /// Headers do not parse.
    Invalid,
    /// Something synproxy does not handle (IPv6 extension headers, a non-Ethernet frame).
    Unsupported,
}

/// Timestamp value: milliseconds of `now` (RFC 7323 section 5.4 asks for a clock between 1 ms
/// and 1 s per tick).
fn ts_now(now: Now) -> u32 {
    (now.nanos() / 1_000_000) as u32
}

/// Turn the client's SYN into our SYN-ACK carrying the cookie as ISN, in place: options
/// rewritten as DPVS's `syn_proxy_parse_set_opts` (MSS lowered to `cfg.mss`; window scale
/// answered with `cfg.wscale` or NOPed when 0; timestamps answered or NOPed; SACK permitted
/// kept or NOPed), payload cut, addresses, ports and MACs swapped, TTL `cfg.ttl`, IPv4 TOS 0,
/// checksums computed. Returns the cookie.
pub(crate) fn synack_in_place<M: Mbuf>(
    p: &mut Packet<M>,
    cfg: &SynProxyConfig,
    key: &CookieKey,
    now: Now,
) -> Result<u32, BuildError> {
    let m = p.meta;
    let (l3, l4) = (m.l3_off as usize, m.l4_off as usize);
    let v4 = m.af == Af::V4;
    if l3 < 2 * ETH_ALEN || (!v4 && l4 != l3 + IPV6_LEN) {
        return Err(BuildError::Unsupported);
    }
    let end = (l3 + m.l3_len as usize).min(p.mbuf.len());
    let data = p.mbuf.data_mut();
    let Some(seg) = data.get(l4..end) else {
        return Err(BuildError::Invalid);
    };
    let t = TcpPacket::new_checked(seg).map_err(|_| BuildError::Invalid)?;
    let hl = t.header_len();
    let client_isn = t.seq();
    let mut copy = [0u8; 40];
    let n = hl - MIN_HEADER_LEN;
    copy[..n].copy_from_slice(t.options_bytes());

    let mut o = CookieOpts {
        mss: 536,
        ..CookieOpts::default()
    };
    let opts_at = l4 + MIN_HEADER_LEN;
    for item in TcpOptions::new(&copy[..n]) {
        let Ok((off, opt)) = item else { break };
        let at = opts_at + off;
        match opt {
            TcpOption::Mss(v) => {
                if v != 0 {
                    o.mss = v.min(cfg.mss);
                }
                data[at + 2..at + 4].copy_from_slice(&o.mss.to_be_bytes());
            }
            TcpOption::WindowScale(s) => {
                if cfg.wscale > 0 {
                    o.wscale = Some(s.min(WSCALE_MAX));
                    data[at + 2] = cfg.wscale.min(WSCALE_MAX);
                } else {
                    data[at..at + 3].fill(kind::NOP);
                }
            }
            TcpOption::Timestamp { tsval, .. } => {
                if cfg.timestamps {
                    o.timestamps = true;
                    data[at + 2..at + 6].copy_from_slice(&ts_now(now).to_be_bytes());
                    data[at + 6..at + 10].copy_from_slice(&tsval.to_be_bytes());
                } else {
                    data[at..at + 10].fill(kind::NOP);
                }
            }
            TcpOption::SackPermitted => {
                if cfg.sack {
                    o.sack = true;
                } else {
                    data[at..at + 2].fill(kind::NOP);
                }
            }
            _ => {}
        }
    }
    let flow = CookieFlow {
        saddr: m.saddr,
        daddr: m.daddr,
        sport: m.sport,
        dport: m.dport,
    };
    let cookie = key.make(&flow, client_isn, &o, now);

    // TCP header.
    {
        let mut t = TcpPacket::new_unchecked(&mut data[l4..l4 + hl]);
        t.set_src_port(m.dport);
        t.set_dst_port(m.sport);
        t.set_seq(cookie);
        t.set_ack(client_isn.wrapping_add(1));
        t.set_flags(TcpFlags::SYN | TcpFlags::ACK);
        t.set_urgent(0);
        t.fill_checksum(checksum::pseudo(m.daddr, m.saddr, PROTO_TCP, hl as u32));
    }
    // IP header.
    let l3_len = if v4 {
        let mut ip = Ipv4Packet::new_unchecked(&mut data[l3..l4]);
        let total = (l4 - l3 + hl) as u16;
        ip.set_total_len(total);
        ip.set_dscp_ecn(0);
        ip.set_ttl(cfg.ttl);
        ip.set_src(m.daddr.v4_octets());
        ip.set_dst(m.saddr.v4_octets());
        ip.fill_checksum();
        total
    } else {
        let mut ip = Ipv6Packet::new_unchecked(&mut data[l3..l4]);
        ip.set_payload_len(hl as u16);
        ip.set_hop_limit(cfg.ttl);
        ip.set_src(m.daddr.octets());
        ip.set_dst(m.saddr.octets());
        (IPV6_LEN + hl) as u16
    };
    // Ethernet: back to the sender.
    let mut src = [0u8; ETH_ALEN];
    src.copy_from_slice(&data[ETH_ALEN..2 * ETH_ALEN]);
    data.copy_within(0..ETH_ALEN, ETH_ALEN);
    data[..ETH_ALEN].copy_from_slice(&src);
    let keep = l4 + hl;
    let cut = p.mbuf.len() - keep;
    if !p.mbuf.trim(cut) {
        return Err(BuildError::Invalid);
    }
    let meta = &mut p.meta;
    meta.saddr = m.daddr;
    meta.daddr = m.saddr;
    meta.sport = m.dport;
    meta.dport = m.sport;
    meta.tcp_flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    meta.l3_len = l3_len;
    meta.ttl = cfg.ttl;
    Ok(cookie)
}

/// Bytes of the options of the SYN to the real server for `o` (DPVS's
/// `syn_proxy_syn_build_options`: MSS; SACK-permitted and timestamps sharing a word, or
/// NOP NOP before either alone; NOP and window scale).
pub(crate) fn syn_options(o: &CookieOpts, now: Now, out: &mut [u8; 24]) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        out[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let mss = o.mss.to_be_bytes();
    put(&[kind::MSS, 4, mss[0], mss[1]]);
    if o.timestamps {
        if o.sack {
            put(&[kind::SACK_PERMITTED, 2, kind::TIMESTAMP, 10]);
        } else {
            put(&[kind::NOP, kind::NOP, kind::TIMESTAMP, 10]);
        }
        put(&ts_now(now).to_be_bytes());
        put(&[0, 0, 0, 0]);
    } else if o.sack {
        put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
    }
    if let Some(w) = o.wscale {
        put(&[kind::NOP, kind::WSCALE, 3, w]);
    }
    n
}

/// Build into `buf` (an empty pool buffer) the SYN to the real server for the handshake whose
/// saved cookie ACK is `ack`: the client's addresses, ports and ISN (`seq - 1` of the ACK),
/// the options the cookie carried, the ACK's window, IPv4 TOS from the ACK (`& 0x1e`, as
/// DPVS), DF, TTL/hop limit 64, the ACK's Ethernet header (xmit rewrites the MACs). Returns
/// the metadata parse would give it.
pub(crate) fn build_syn<M: Mbuf>(
    buf: &mut M,
    ack: &Packet<M>,
    o: &CookieOpts,
    client_isn: u32,
    now: Now,
) -> Result<PacketMeta, BuildError> {
    let am = &ack.meta;
    let (l3, l4) = (am.l3_off as usize, am.l4_off as usize);
    let src = ack.mbuf.data();
    let v4 = am.af == Af::V4;
    let l2 = src.get(..l3).ok_or(BuildError::Invalid)?;
    let a = TcpPacket::new_checked(src.get(l4..).ok_or(BuildError::Invalid)?).map_err(|_| BuildError::Invalid)?;
    let window = a.window();
    let mut opts = [0u8; 24];
    let on = syn_options(o, now, &mut opts);
    let hl = MIN_HEADER_LEN + on;
    let ip_len = if v4 { IPV4_MIN } else { IPV6_LEN };
    let (tos, tc) = if v4 {
        let ip = Ipv4Packet::new_checked(&src[l3..]).map_err(|_| BuildError::Invalid)?;
        (ip.dscp_ecn() & 0x1e, 0)
    } else {
        let ip = Ipv6Packet::new_checked(&src[l3..]).map_err(|_| BuildError::Invalid)?;
        (0, ip.traffic_class())
    };
    let total = l3 + ip_len + hl;
    let d = buf.append(total).ok_or(BuildError::Invalid)?;
    d[..l3].copy_from_slice(l2);
    let (n4, n4e) = (l3 + ip_len, l3 + ip_len + hl);
    {
        let mut t = TcpPacket::new_unchecked(&mut d[n4..n4e]);
        t.set_src_port(am.sport);
        t.set_dst_port(am.dport);
        t.set_seq(client_isn);
        t.set_ack(0);
        t.set_header_len(hl);
        t.set_flags(TcpFlags::SYN);
        t.set_window(window);
        t.set_checksum(0);
        t.set_urgent(0);
        t.options_bytes_mut().copy_from_slice(&opts[..on]);
        t.fill_checksum(checksum::pseudo(am.saddr, am.daddr, PROTO_TCP, hl as u32));
    }
    if v4 {
        let mut ip = Ipv4Packet::new_unchecked(&mut d[l3..n4]);
        ip.set_header_len(IPV4_MIN);
        ip.set_dscp_ecn(tos);
        ip.set_total_len((ip_len + hl) as u16);
        ip.set_ident(0);
        ip.set_frag(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(PROTO_TCP);
        ip.set_src(am.saddr.v4_octets());
        ip.set_dst(am.daddr.v4_octets());
        ip.fill_checksum();
    } else {
        let mut ip = Ipv6Packet::new_unchecked(&mut d[l3..n4]);
        ip.set_ver_tc_flow(tc, 0);
        ip.set_payload_len(hl as u16);
        ip.set_next_header(PROTO_TCP);
        ip.set_hop_limit(64);
        ip.set_src(am.saddr.octets());
        ip.set_dst(am.daddr.octets());
    }
    buf.set_port(ack.mbuf.port());
    Ok(PacketMeta {
        af: am.af,
        proto: PROTO_TCP,
        vlan: am.vlan,
        l3_off: am.l3_off,
        l4_off: n4 as u16,
        l4_hdr_len: hl as u16,
        l3_len: (ip_len + hl) as u16,
        saddr: am.saddr,
        daddr: am.daddr,
        sport: am.sport,
        dport: am.dport,
        tcp_flags: TcpFlags(TcpFlags::SYN),
        ttl: 64,
        ..PacketMeta::new()
    })
}

/// The TCP segment of a parsed packet, writable.
fn segment<M: Mbuf>(p: &mut Packet<M>) -> Option<TcpPacket<&mut [u8]>> {
    let l4 = p.meta.l4_off as usize;
    let end = (p.meta.l3_off as usize + p.meta.l3_len as usize).min(p.mbuf.len());
    TcpPacket::new_checked(p.mbuf.data_mut().get_mut(l4..end)?).ok()
}

/// Client -> server on a proxied connection: ack and SACK edges minus `delta` (they refer to
/// our ISN, the server counts from its own), checksum updated (RFC 1624). False when the
/// TCP header does not parse.
pub(crate) fn adjust_in<M: Mbuf>(p: &mut Packet<M>, delta: u32) -> bool {
    let Some(mut t) = segment(p) else { return false };
    if delta != 0 {
        if TcpFlags(t.flags()).ack() {
            let a = t.ack().wrapping_sub(delta);
            t.rewrite_ack(a);
        }
        t.rewrite_sack(|e| e.wrapping_sub(delta));
    }
    true
}

/// Server -> client on a proxied connection: seq plus `delta`, plus `extra` (1 for the RST
/// answering our SYN, as DPVS). False when the TCP header does not parse.
pub(crate) fn adjust_out<M: Mbuf>(p: &mut Packet<M>, delta: u32, extra: u32) -> bool {
    let Some(mut t) = segment(p) else { return false };
    let d = delta.wrapping_add(extra);
    if d != 0 {
        let s = t.seq().wrapping_add(d);
        t.rewrite_seq(s);
    }
    true
}

/// The sequence and acknowledgement numbers of a parsed TCP packet.
pub(crate) fn seq_ack<M: Mbuf>(p: &Packet<M>) -> Option<(u32, u32)> {
    let l4 = p.meta.l4_off as usize;
    let t = TcpPacket::new_checked(p.mbuf.data().get(l4..)?).ok()?;
    Some((t.seq(), t.ack()))
}

/// The flow of a client packet, for the cookie.
pub(crate) fn flow_of(m: &PacketMeta) -> CookieFlow {
    CookieFlow {
        saddr: m.saddr,
        daddr: m.daddr,
        sport: m.sport,
        dport: m.dport,
    }
}
