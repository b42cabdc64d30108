//! FNAT's client address for the real server: TOA for TCP, UOA for UDP, and the MSS clamp of
//! the real server's SYN-ACK that makes room for TOA.
//!
//! **TOA** (DPVS's `tcp_in_add_toa`): TCP option kind 254 carrying the client's port and
//! address -- 8 bytes for an IPv4 client (`254, 8, port, a.b.c.d`), 20 bytes for an IPv6 one
//! (`254, 20, port, 16-byte address`, DPVS's IPv6 TOA, also used for NAT64). Which packets
//! carry it is DPVS's rule (`tcp_fnat_in_handler`, DPVS v1.10 `src/ipvs/ip_vs_proto_tcp.c`):
//! every inbound packet with ACK, without SYN or RST (a FIN may carry it), whose
//! acknowledgement equals the connection's first-data sequence `fdata_seq`
//! ([`rvs_conn::Conn::fdata_seq`]) -- the real server's SYN-ACK sequence + 1, recorded when
//! that SYN-ACK goes out (`tcp_out_init_seq`), or for a synproxy connection, whose SYN-ACK
//! the synproxy stage consumes, the first ACK's acknowledgement (`dp_vs_synproxy_ack_rcv`).
//! So the handshake's ACK, the first data packet, their retransmissions and anything else the
//! client sends before the server's first data all carry it, and a packet on which it was
//! skipped is followed by another chance on the next one. Before the first-data sequence is
//! known nothing gets TOA; never the SYN. rvs requires the ACK flag (RFC 9293: the
//! acknowledgement field is meaningful only with it), which DPVS does not check. The
//! Ethernet, IP and TCP headers move into the headroom ([`Mbuf::insert_front`]); the payload
//! stays. The IP length (and the IPv4 header checksum, incrementally) and the TCP checksum
//! (recomputed over the segment: the header length, the pseudo-header length and the option
//! bytes all changed; a few packets per connection) are fixed.
//!
//! When the 40 bytes of option space cannot take it, the timestamp and SACK options are
//! pruned (the remaining options keep their order, NOP-padded to a 4-byte boundary before the
//! TOA; the DPVS `tcp_in_add_toa` read for this returns `EDPVS_NOROOM` without pruning, and
//! puts TOA right after the 20-byte header rather than after the options; it also tries TOA
//! on the SYN, which rvs does not);
//! if it still does not fit, or the packet would outgrow the output port's MTU (DPVS's
//! `EDPVS_FRAG`), or the headroom is too small, TOA is skipped on this packet and counted
//! (`toa_skipped`); [`rvs_conn::ConnFlags::TOA_DONE`] records that it was due once.
//!
//! **MSS**: every FNAT SYN-ACK from the real server has its MSS option lowered by the TOA
//! length of the client's family (DPVS's `tcp_out_adjust_mss`), so no segment grows past the
//! client's path once TOA is in; with NAT64 also by the 20 bytes an IPv6 header is longer than
//! an IPv4 one (the server computed its MSS for IPv4).
//!
//! **UOA** (DPVS's `uoa` module, "ipo" mode): an IPv4 option of type 31 and length 8 (IPv4
//! client) or 20 (IPv6 client, NAT64) -- `31, len, port, address` -- inserted after the IPv4
//! header's existing options of the first 3 inbound datagrams of a UDP FNAT connection
//! (DPVS's `uoa_max_trail`). The UDP checksum does not cover the IP header, so only the IPv4
//! header changes (IHL, total length, checksum recomputed). Chosen over the private protocol
//! 248 ("opp" mode) because it leaves the UDP header where every middlebox expects it. Not
//! possible over IPv6 (no such option) or when the header already holds more than 32 bytes of
//! options: skipped and counted (`uoa_skipped`). The count lives in two bits of the
//! connection's flags ([`UOA_COUNT_SHIFT`]) until rvs-conn grows a field for it.

use rvs_conn::{Conn, ConnFlags};
use rvs_core::addr::Addr;
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::tcp::{TcpPacket, kind};

use crate::ipx::{self, Hdr};

/// The TOA option kind (DPVS's `TCPOPT_ADDR`).
pub const TOA_KIND: u8 = 254;
/// The UOA IPv4 option type (DPVS's `IPOPT_UOA`).
pub const UOA_OPTION: u8 = 31;
/// UOA is sent in at most this many datagrams of a connection (DPVS's `uoa_max_trail`).
pub const UOA_MAX: u32 = 3;
/// The UOA count of a connection: bits 24..26 of [`Conn::flags`] (rvs-conn defines bits up
/// to 0x20; these are xmit's until rvs-conn has a field).
pub const UOA_COUNT_SHIFT: u32 = 24;
const UOA_COUNT_MASK: u32 = 0x3 << UOA_COUNT_SHIFT;

const TCP_MIN: usize = 20;
const TCP_MAX: usize = 60;

/// Length of the TOA option for a client of this family (8 IPv4, 20 IPv6).
#[inline]
pub const fn toa_len(client: Addr) -> usize {
    if client.is_v4() { 8 } else { 20 }
}

/// What happened about TOA on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Toa {
    /// Nothing to do for this packet.
    #[default]
    None,
    /// Inserted after the existing options.
    Inserted,
    /// Inserted after pruning the timestamp and/or SACK options.
    Pruned,
    /// Did not fit (option space, MTU or headroom): skipped.
    Skipped,
}

/// True when this inbound FNAT TCP packet (`flags`, acknowledgement `ack` as xmit sees it,
/// in the server's sequence space) is to carry TOA: ACK set, no SYN, no RST, and `ack` equal
/// to the connection's first-data sequence ([`Conn::fdata_seq`]; DPVS's
/// `ntohl(th->ack_seq) == conn->fnat_seq.fdata_seq && !th->syn && !th->rst`). A proxied
/// connection (synproxy) whose server SYN-ACK xmit never saw takes it from its first ACK, as
/// DPVS's `dp_vs_synproxy_ack_rcv` saves the cookie ACK's `ack_seq`.
#[inline]
pub(crate) fn wants_toa(conn: &mut Conn, flags: u8, ack: u32) -> bool {
    let f = rvs_core::meta::TcpFlags(flags);
    if !f.ack() || f.syn() || f.rst() {
        return false;
    }
    if !conn.flags.has(ConnFlags::FDATA_SEQ) {
        if !conn.flags.has(ConnFlags::SYNPROXY) {
            return false;
        }
        conn.fdata_seq = ack;
        conn.flags.set(ConnFlags::FDATA_SEQ);
    }
    ack == conn.fdata_seq
}

/// Record the first-data sequence of an FNAT connection from the real server's SYN-ACK
/// (`seq` as xmit sees it: synproxy has already moved it into the client's space by
/// [`Conn::syn_proxy_delta`], which is taken back off). DPVS's `tcp_out_init_seq`.
#[inline]
pub(crate) fn record_fdata_seq(conn: &mut Conn, seq: u32) {
    conn.fdata_seq = seq.wrapping_sub(conn.syn_proxy_delta).wrapping_add(1);
    conn.flags.set(ConnFlags::FDATA_SEQ);
}

/// Insert TOA (`client`:`cport`) into the TCP segment at `h.l4` whose final addresses are
/// `src` -> `dst`; `mtu` is the output port's. Returns what was done and the number of bytes
/// the datagram grew by (negative when pruning shrank the header).
pub(crate) fn insert_toa<M: Mbuf>(
    m: &mut M,
    h: &Hdr,
    client: Addr,
    cport: u16,
    src: Addr,
    dst: Addr,
    mtu: usize,
) -> (Toa, isize) {
    let need = toa_len(client);
    let data = m.data();
    let Ok(t) = TcpPacket::new_checked(&data[h.l4..h.end]) else {
        return (Toa::Skipped, 0);
    };
    let hl = t.header_len();
    let mut opts = [kind::NOP; TCP_MAX - TCP_MIN];
    let (kept, outcome) = if hl + need <= TCP_MAX {
        let n = hl - TCP_MIN;
        opts[..n].copy_from_slice(t.options_bytes());
        // Options after an end-of-list are ignored by the receiver: make the list run on.
        for o in t.options() {
            match o {
                Ok((off, rvs_core::wire::TcpOption::EndOfList)) => opts[off..n].fill(kind::NOP),
                Ok(_) => {}
                Err(_) => return (Toa::Skipped, 0),
            }
        }
        (n, Toa::Inserted)
    } else {
        // Keep every option but timestamps and SACK, in order; stop at end-of-list.
        let mut k = 0;
        for o in t.options() {
            let Ok((off, opt)) = o else { break };
            let kd = opt.kind();
            if kd == kind::EOL {
                break;
            }
            if kd == kind::TIMESTAMP || kd == kind::SACK {
                continue;
            }
            let len = if kd == kind::NOP { 1 } else { opt.len() };
            let b = t.options_bytes();
            opts[k..k + len].copy_from_slice(&b[off..off + len]);
            k += len;
        }
        (k.div_ceil(4) * 4, Toa::Pruned)
    };
    let new_hl = TCP_MIN + kept + need;
    if new_hl > TCP_MAX {
        return (Toa::Skipped, 0);
    }
    let grow = new_hl as isize - hl as isize;
    if (h.end - h.l3) as isize + grow > mtu as isize {
        return (Toa::Skipped, 0);
    }
    let at = h.l4 + hl;
    let resized = match grow {
        g if g > 0 => m.insert_front(at, g as usize),
        g if g < 0 => m.remove_front(at - (-g) as usize, (-g) as usize),
        _ => true,
    };
    if !resized {
        return (Toa::Skipped, 0);
    }
    let end = (h.end as isize + grow) as usize;
    let data = m.data_mut();
    {
        let seg = &mut data[h.l4..end];
        let o = &mut seg[TCP_MIN..new_hl];
        o[..kept].copy_from_slice(&opts[..kept]);
        let toa = &mut o[kept..];
        toa[0] = TOA_KIND;
        toa[1] = need as u8;
        toa[2..4].copy_from_slice(&cport.to_be_bytes());
        if client.is_v4() {
            toa[4..8].copy_from_slice(&client.v4_octets());
        } else {
            toa[4..20].copy_from_slice(&client.octets());
        }
        let mut t = TcpPacket::new_unchecked(&mut seg[..]);
        t.set_header_len(new_hl);
        let len = seg.len() as u32;
        TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(checksum::pseudo(src, dst, 6, len));
    }
    ipx::add_len(data, h, grow);
    (outcome, grow)
}

/// An FNAT SYN-ACK from the real server: record the connection's first-data sequence
/// ([`record_fdata_seq`]) and lower the MSS by the TOA length of the client's family (plus
/// 20 for NAT64). True when the option was lowered.
pub(crate) fn clamp_synack_mss(t: &mut TcpPacket<&mut [u8]>, conn: &mut Conn, nat64: bool) -> bool {
    record_fdata_seq(conn, t.seq());
    let Some(cur) = t.mss() else { return false };
    let cut = toa_len(conn.caddr()) as u16 + if nat64 { 20 } else { 0 };
    let want = cur.saturating_sub(cut);
    t.clamp_mss(want) == Some(want) && want < cur
}

/// The UOA count of a connection.
#[inline]
pub(crate) fn uoa_count(conn: &Conn) -> u32 {
    (conn.flags.0 & UOA_COUNT_MASK) >> UOA_COUNT_SHIFT
}

fn set_uoa_count(conn: &mut Conn, n: u32) {
    conn.flags.0 = (conn.flags.0 & !UOA_COUNT_MASK) | ((n.min(3)) << UOA_COUNT_SHIFT);
}

/// Insert UOA (`client`:`cport`) as an IPv4 option of the datagram at `h` when the
/// connection has sent fewer than [`UOA_MAX`]. Returns `Some(true)` inserted, `Some(false)`
/// skipped (IPv6, option space, MTU or headroom), `None` when no longer due; and the growth.
pub(crate) fn insert_uoa<M: Mbuf>(m: &mut M, h: &Hdr, conn: &mut Conn, mtu: usize) -> (Option<bool>, usize) {
    let n = uoa_count(conn);
    if n >= UOA_MAX {
        return (None, 0);
    }
    set_uoa_count(conn, n + 1);
    let client = conn.caddr();
    let olen = 4 + if client.is_v4() { 4 } else { 16 };
    let ihl = h.l3_hdr_len();
    if h.v6 || ihl + olen > 60 || h.end - h.l3 + olen > mtu || !m.insert_front(h.l4, olen) {
        return (Some(false), 0);
    }
    let data = m.data_mut();
    {
        let o = &mut data[h.l4..h.l4 + olen];
        o[0] = UOA_OPTION;
        o[1] = olen as u8;
        o[2..4].copy_from_slice(&conn.cport().to_be_bytes());
        if client.is_v4() {
            o[4..8].copy_from_slice(&client.v4_octets());
        } else {
            o[4..20].copy_from_slice(&client.octets());
        }
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut data[h.l3..h.l4 + olen]);
    ip.set_header_len(ihl + olen);
    let tl = ip.total_len();
    ip.set_total_len(tl + olen as u16);
    ip.fill_checksum();
    (Some(true), olen)
}
