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
//! **UOA** (DPVS's `uoa` module, `src/ipvs/ip_vs_proto_udp.c` and `include/uoa.h` of DPVS
//! v1.10): the client's port and address -- `31, len, port, address`, 8 bytes for an IPv4
//! client and 20 for an IPv6 one (`IPOPT_UOA`, `IPOLEN_UOA_IPV4/6`) -- in the first
//! `uoa_max_trail` (default 3, 0 turns UOA off) inbound datagrams of a UDP FNAT connection
//! that can take it: as DPVS counts only datagrams that carried it (`uoa->sent++` on success),
//! a datagram on which it was skipped leaves the next one due. Two carriers, DPVS's
//! `uoa_mode` ([`UoaMode`], set with [`crate::Xmit::with_uoa`]):
//!
//! - **opp** (DPVS's default, `UOA_M_OPP`): DPVS's private "option protocol", IP protocol
//!   248 (`IPPROTO_OPT`): a 4-byte header -- version in the high nibble (1: the option holds
//!   an IPv4 address, 2: an IPv6 one), the next protocol (17), the length of header and
//!   options (big-endian) -- then the UOA option, between the IP header (IPv4 options kept in
//!   front) and the unchanged UDP header; the IP protocol / IPv6 next header becomes 248.
//!   Works over IPv4, IPv6 and NAT64 (an IPv6 client's 20-byte option in an IPv4 packet,
//!   version 2, as DPVS's pre-handler inserts it before translating). The UDP checksum stays
//!   the ordinary one (pseudo-header with protocol 17 and the UDP length): DPVS computes it so
//!   for IPv6 and zeroes it for IPv4 for convenience; rvs keeps it valid in both. An IPv6
//!   packet with extension headers is skipped (DPVS falls back to a standalone datagram there,
//!   see below).
//! - **ipo** (`UOA_M_IPO`): an IPv4 option of type 31 after the IPv4 header's existing options;
//!   the UDP checksum does not cover the IP header, so only the IPv4 header changes (IHL, total
//!   length, checksum recomputed). Not possible over IPv6 (no such option: skipped, as DPVS),
//!   nor when the header already holds more than 40 minus the option length bytes of options.
//!   rvs also carries an IPv6 client's 20-byte option this way across NAT64, which DPVS's ipo
//!   mode does not.
//!
//! Either way a datagram that would outgrow the output port's MTU, or lacks headroom, is sent
//! without it and counted (`uoa_skipped`). Not done: DPVS's standalone UOA (an empty-payload
//! datagram carrying only the option, sent ahead when the original has no room) and the real
//! server's UOA acknowledgement. The count lives in the top byte of the connection's flags
//! ([`UOA_COUNT_SHIFT`]) until rvs-conn grows a field for it.

use rvs_conn::{Conn, ConnFlags};
use rvs_core::addr::Addr;
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::ipv6::Ipv6Packet;
use rvs_core::wire::tcp::{TcpPacket, kind};

use crate::ipx::{self, Hdr};

/// The TOA option kind (DPVS's `TCPOPT_ADDR`).
pub const TOA_KIND: u8 = 254;
/// The UOA IPv4 option type (DPVS's `IPOPT_UOA`).
pub const UOA_OPTION: u8 = 31;
/// UOA is sent in at most this many datagrams of a connection by default (DPVS's
/// `UOA_DEF_MAX_TRAIL`).
pub const UOA_MAX: u32 = 3;
/// DPVS's private "option protocol" (`IPPROTO_OPT`), which carries UOA in opp mode.
pub const IPPROTO_OPP: u8 = rvs_core::wire::opp::PROTO;
/// Length of the opp header in front of its options.
pub const OPP_HDR: usize = rvs_core::wire::opp::HDR_LEN;
/// opp header version: the UOA option holds an IPv4 address (`OPPHDR_IPV4`).
pub const OPPHDR_IPV4: u8 = 1;
/// opp header version: the UOA option holds an IPv6 address (`OPPHDR_IPV6`).
pub const OPPHDR_IPV6: u8 = 2;
/// The UOA count of a connection: bits 24..31 of [`Conn::flags`] (rvs-conn defines bits up
/// to 0x40; these are xmit's until rvs-conn has a field).
pub const UOA_COUNT_SHIFT: u32 = 24;
const UOA_COUNT_MASK: u32 = 0xff << UOA_COUNT_SHIFT;

/// How UOA travels (DPVS's `uoa_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UoaMode {
    /// The private protocol 248 header in front of UDP (`opp`, DPVS's default).
    #[default]
    Opp,
    /// An IPv4 option (`ipo`).
    Ipo,
}

/// UOA settings of an xmit stage (DPVS's `uoa_mode` and `uoa_max_trail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UoaConfig {
    /// The carrier.
    pub mode: UoaMode,
    /// Datagrams per connection that carry UOA (0: none).
    pub max_trail: u8,
}

impl Default for UoaConfig {
    fn default() -> Self {
        UoaConfig {
            mode: UoaMode::Opp,
            max_trail: UOA_MAX as u8,
        }
    }
}

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
    conn.flags.0 = (conn.flags.0 & !UOA_COUNT_MASK) | (n.min(0xff) << UOA_COUNT_SHIFT);
}

/// Insert UOA (the connection's client address and port) into the datagram at `h` (final
/// layout, after any NAT64 translation) when the connection has carried it in fewer than
/// `cfg.max_trail` datagrams. Returns `Some(true)` inserted, `Some(false)` skipped (no carrier
/// for this family, option space, MTU or headroom; still due next time), `None` when no
/// longer due; and the number of bytes inserted in front of the UDP header.
pub(crate) fn insert_uoa<M: Mbuf>(
    m: &mut M,
    h: &Hdr,
    conn: &mut Conn,
    mtu: usize,
    cfg: UoaConfig,
) -> (Option<bool>, usize) {
    let n = uoa_count(conn);
    if n >= cfg.max_trail as u32 {
        return (None, 0);
    }
    let client = conn.caddr();
    let olen = 4 + if client.is_v4() { 4 } else { 16 };
    let grow = match cfg.mode {
        UoaMode::Ipo => olen,
        UoaMode::Opp => OPP_HDR + olen,
    };
    let fits = match cfg.mode {
        UoaMode::Ipo => !h.v6 && h.l3_hdr_len() + olen <= 60,
        // DPVS inserts after a bare 40-byte IPv6 header only (`iphdrlen != sizeof(ipv6hdr)`
        // goes to its standalone datagram).
        UoaMode::Opp => !h.v6 || h.l3_hdr_len() == ipx::V6_HDR,
    };
    if !fits || h.end - h.l3 + grow > mtu || !m.insert_front(h.l4, grow) {
        return (Some(false), 0);
    }
    let data = m.data_mut();
    {
        let o = match cfg.mode {
            UoaMode::Ipo => &mut data[h.l4..h.l4 + olen],
            UoaMode::Opp => {
                let opp = &mut data[h.l4..h.l4 + OPP_HDR];
                opp[0] = if client.is_v4() { OPPHDR_IPV4 } else { OPPHDR_IPV6 } << 4;
                opp[1] = crate::PROTO_UDP;
                opp[2..4].copy_from_slice(&(grow as u16).to_be_bytes());
                &mut data[h.l4 + OPP_HDR..h.l4 + grow]
            }
        };
        o[0] = UOA_OPTION;
        o[1] = olen as u8;
        o[2..4].copy_from_slice(&conn.cport().to_be_bytes());
        if client.is_v4() {
            o[4..8].copy_from_slice(&client.v4_octets());
        } else {
            o[4..20].copy_from_slice(&client.octets());
        }
    }
    if h.v6 {
        let mut ip = Ipv6Packet::new_unchecked(&mut data[h.l3..h.l4]);
        ip.set_next_header(IPPROTO_OPP);
        let pl = ip.payload_len();
        ip.set_payload_len(pl + grow as u16);
    } else {
        let ihl = h.l3_hdr_len();
        let hdr_end = if cfg.mode == UoaMode::Ipo { h.l4 + olen } else { h.l4 };
        let mut ip = Ipv4Packet::new_unchecked(&mut data[h.l3..hdr_end]);
        match cfg.mode {
            UoaMode::Ipo => ip.set_header_len(ihl + olen),
            UoaMode::Opp => ip.set_protocol(IPPROTO_OPP),
        }
        let tl = ip.total_len();
        ip.set_total_len(tl + grow as u16);
        ip.fill_checksum();
    }
    set_uoa_count(conn, n + 1);
    (Some(true), grow)
}
