//! rvs-xmit: the xmit stage. It takes packets whose connection and direction lookup or
//! conn-new attached ([`rvs_core::meta::PacketMeta::conn`], `dir`), rewrites them for the
//! connection's forwarding mode, picks the output port and MACs from the [`l2`] tables (with
//! ARP/ND resolution through [`neigh`]), and queues them for transmit.
//!
//! | mode | inbound (client -> VIP) | outbound (real server -> balancer) |
//! |---|---|---|
//! | FNAT | source -> local address:port, destination -> RS address:port; SYN: timestamp option -> NOPs; seq += delta; TOA in every packet acknowledging the server's first data sequence (DPVS's `fdata_seq`), UOA in the first 3 UDP datagrams (`[udp] uoa_mode`: DPVS's protocol-248 "opp" header, the default, or an IPv4 option; [`toa`]) | source -> VIP:vport, destination -> client address:port; ack -= delta, SACK blocks -= delta; SYN-ACK MSS -= TOA length |
//! | NAT | destination -> RS address:port | source -> VIP:vport |
//! | SNAT | source -> local address:port (the original destination stays: conn-new makes it the "real server") | destination -> internal host address:port |
//! | DR | only the MACs: destination MAC = the RS's neighbour entry | (never seen: replies go straight to the client) |
//! | TUNNEL | encapsulated toward the RS ([`tunnel`]: ipip, ip6ip6, 6-over-4, 4-in-6) | (never seen) |
//!
//! NAT, FNAT and SNAT work over IPv4 and IPv6 alike (no IPv6 header checksum; hop limit
//! decremented; extension headers in front of the upper layer kept); FNAT also translates
//! between an IPv6 client side and an IPv4 server side (NAT64, RFC 7915 header translation in
//! `ipx`). ICMP and ICMPv6 errors that lookup matched to a connection are translated with
//! their quoted packet, within a family and across NAT64 (RFC 7915 sections 4.2 and 5.2), and
//! the echo requests and replies of a connection an ICMP service made are forwarded like a
//! UDP datagram with the echo identifier as its port ([`icmp`]).
//!
//! Where each case is shown (tests in `src/tests.rs` and `src/tests/`; every output compared
//! byte for byte with a packet the test kit's builder makes from scratch, and run through the
//! kit's independent decoder, which recomputes every checksum, quoted ones included):
//!
//! | mode | proto | family | in | out |
//! |---|---|---|---|---|
//! | FNAT | TCP | IPv4 | `fnat_inbound_syn_nops_the_timestamp_and_shifts_seq`, `fnat_inbound_data_keeps_options_and_shifts_seq`, `client_addr::*` (TOA: `fdata_seq` from the SYN-ACK or a proxied connection's first ACK, retransmissions, retried after a skip, not SYN/RST, EOL, pruning, skip, MTU) | `fnat_outbound_synack_shifts_ack_back_and_records_the_server_side`, `fnat_outbound_sack_blocks_shift_back`, `client_addr::synack_mss_lowered_by_the_toa_length` |
//! | FNAT | UDP | IPv4 | opp: `uoa::uoa_opp_over_ipv4_in_the_first_three_datagrams`, `uoa::uoa_opp_after_ipv4_options`, `uoa::uoa_skipped_for_the_mtu_or_an_extension_header_stays_due`, `uoa::uoa_max_trail_one_and_zero`; ipo: `fnat_udp_both_ways` (UOA x3), `client_addr::uoa_after_existing_ip_options_and_skipped_when_they_are_full` | `fnat_udp_both_ways` |
//! | FNAT | TCP | IPv6 | `family::ipv6_fnat_tcp_handshake_toa_and_sack` (20-byte TOA) | same test (MSS - 20, SACK) |
//! | FNAT | UDP | IPv6 | opp: `uoa::uoa_opp_over_ipv6` (20-byte UOA, protocol 248); ipo: `family::ipv6_fnat_udp_both_ways_uoa_skipped` | same |
//! | FNAT (NAT64) | TCP | IPv6 -> IPv4 | `family::nat64_tcp_translates_headers_both_ways` (TOS, DF above 1260, IPv6 TOA in IPv4) | same (MSS - 40, IPv4 options dropped) |
//! | FNAT (NAT64) | UDP | IPv6 -> IPv4 | opp: `uoa::uoa_opp_across_nat64_carries_the_ipv6_client`; ipo: `family::nat64_udp_uoa_and_a_missing_checksum_filled` (20-byte UOA) | same (checksum 0 -> computed) |
//! | NAT | TCP, UDP | IPv4 | `nat_rewrites_destination_in_and_source_out` | same |
//! | NAT | TCP, UDP | IPv6 | `family::ipv6_nat_and_dr` (with an extension header) | same |
//! | SNAT | TCP | IPv4 | `family::snat_rewrites_the_source_out_and_the_destination_back` | same |
//! | DR | TCP | IPv4, IPv6 | `dr_rewrites_only_the_macs`, `family::ipv6_nat_and_dr` | -- |
//! | TUNNEL | TCP | 4in4, 6in6, 6in4, 4in6 | `tunnel::ipip_copies_df_tos_and_id_with_ttl_64`, `tunnel::ip6ip6_and_6_over_4_and_4_in_6`; MTU: `tunnel::too_big_with_df_is_dropped_and_answered_with_frag_needed`, `tunnel::ipv6_too_big_is_answered_with_packet_too_big`, `tunnel::ipip_without_df_over_the_mtu_goes_out_as_fragments` (RFC 791 fragments, byte for byte, reassembled), `tunnel::four_in_six_without_df_over_the_mtu_is_dropped_too_big` | -- |
//! | ICMP errors | TCP, UDP quoted | IPv4 | `icmp_err::fnat_error_from_the_client_side_reaches_the_server`, `icmp_err::nat_errors_both_ways_and_udp` | `icmp_err::fnat_frag_needed_from_the_server_side_reaches_the_client` (whole and 8-byte quotes), `icmp_err::nat_errors_both_ways_and_udp` |
//! | ICMPv6 errors | TCP quoted | IPv6 | -- (same code path as out) | `icmp_err::ipv6_packet_too_big_through_fnat` |
//! | ICMP errors (NAT64) | TCP quoted | IPv6 <-> IPv4 | `icmp_err::nat64_packet_too_big_becomes_frag_needed_with_the_mtu_minus_20` (parameter problem pointer, protocol unreachable, untranslatable dropped) | `icmp_err::nat64_frag_needed_becomes_packet_too_big_with_the_mtu_plus_20` (RFC 1191 plateau, port unreachable, time exceeded, admin prohibited) |
//! | ICMP errors | echo quoted | IPv4, IPv6, NAT64 | `icmp_err::errors_quoting_an_echo_are_translated_both_ways` | same (whole and 8-byte quotes), `icmp_err::ipv6_error_quoting_an_echo`, `icmp_err::nat64_error_quoting_an_echo` |
//! | FNAT | ICMP echo | IPv4 | `icmp_err::fnat_echo_both_ways_translates_the_identifier` (identifier -> local port) | same (back to the client's) |
//! | FNAT | ICMPv6 echo | IPv6 | `icmp_err::ipv6_fnat_echo_updates_the_pseudo_header_sum` | same |
//! | FNAT (NAT64) | ICMPv6 echo | IPv6 -> IPv4 | `icmp_err::nat64_echo_maps_the_type_and_the_pseudo_header` (128 -> 8) | same (0 -> 129) |
//! | NAT | ICMP echo | IPv4 | `icmp_err::nat_echo_keeps_the_identifier` | same |
//! | SNAT | ICMP echo | IPv4 | `icmp_err::snat_echo_goes_out_with_a_local_identifier_and_comes_back` | same |
//!
//! The FNAT sequence delta is the connection's `fnat_seq_delta` (conn-new sets it from a keyed
//! hash, as DPVS's `tcp_in_init_seq`); the timestamp option of the inbound SYN is overwritten
//! with NOPs as DPVS's `tcp_in_remove_ts` does (RFC 7323 section 5.5: clients behind one local
//! address would otherwise show one server unrelated timestamp clocks). Outbound FNAT packets
//! also record the server's last sequence end and acknowledgement on the connection
//! (`rs_last_seq`, `rs_last_ack`), from which RSTs are built when the connection expires.
//!
//! Checksums are updated incrementally (RFC 1624) through the views of [`rvs_core::wire`] and
//! [`rvs_core::checksum`]: the IPv4 header for the addresses and the TTL, the TCP/UDP checksum
//! for the pseudo-header addresses (within or across families: one update from the sum of the
//! old addresses to the sum of the new), the ports, seq/ack and rewritten option bytes; the
//! changes to one header are gathered and its checksum field read and written once
//! (RFC 1624 eqn. 3 summed over the words, bit for bit what word-by-word updates give). A
//! UDP datagram without a checksum (0) keeps none, except into IPv6, where one is computed.
//! Recomputed in full, as they are rare: the TCP checksum of the few segments that get TOA,
//! headers xmit builds (NAT64, tunnels, UOA), ICMP message checksums. Checksums are completed
//! in software: no port offload is requested yet.
//!
//! NAT, FNAT and SNAT decrement the TTL as a router does (RFC 1812 section 5.3.1) and drop a
//! packet whose TTL is 1 or 0 with [`XmitDrop::TtlExceeded`] (the ICMP time-exceeded a router
//! would send is not sent). DR and TUNNEL leave the client's IP header untouched, as IPVS and
//! DPVS do. Every path looks the next hop up before changing a byte, so a packet held for
//! ARP/ND resolution is sent later exactly as it came.
//!
//! Not done: ICMP queries other than echo (timestamp, information, address mask: without a
//! connection they go to the local stage and the host path as before, see [`arp`]); across
//! NAT64, an error quoting an IPv4 fragment (RFC 7915 would add a fragment header: dropped
//! `not_supported`); fragmenting an outer IPv6 header
//! (4-in-6 without DF over the MTU: [`XmitDrop::TooBig`]; IPv4 outer headers are fragmented, see
//! [`tunnel`]); DPVS's standalone UOA datagram (a UOA that does not fit is skipped,
//! counted `uoa_skipped` and left due, see [`toa`]). SNAT's match-based services (source/destination
//! ranges, interfaces) are matched by schedule and made by conn-new (rvs-core's `MatchSpec`);
//! xmit does the rewrite. Synproxy's sequence adjustment is the synproxy stage's, before xmit.
//!
//! Cost per packet, in instructions: callgrind's instruction counts printed by
//! `benches/iai-guard` (which runs `cargo bench -p rvs-benches --bench iai`: one vector of
//! TCP ACKs with 64 bytes of payload through [`rvs_core::stage::Node::run`] over heap buffers,
//! one connection each, the fixture built and warmed outside the count; the count divided by
//! the vector size). FNAT inbound (steady state, no TOA due) 829 (vector of 256; 844 at 32),
//! FNAT outbound with a two-edge SACK block to shift 1005 (1020 at 32), NAT inbound 734, NAT
//! outbound 735, DR 284 (vectors of 32). Before the changes that brought them there
//! (the next-hop cache, one checksum update per header instead of one per field, the SACK
//! rewrite in one pass over the option bytes, fixed-size header views) they were 1210, 1711,
//! 1082, 1142 and 403. About 58 of each packet's count are the two copies of its descriptor
//! into and out of the stage's vectors (rvs-core's `PacketVec` and `Out`). The benches' packets
//! go to 8 real servers (FNAT outbound: one client address), so the next-hop cache
//! ([`HopCache`]) always answers; a miss adds the route and neighbour lookup it saves (161
//! instructions a packet in the FNAT inbound bench before the cache). Wall time:
//! `cargo bench -p rvs-xmit --bench xmit`; its last recorded figures (FNAT in about 205 ns, FNAT
//! out 255 ns, NAT in 150 ns, TUNNEL 150 ns, DR 80 ns, on the shared 2-core machine under a
//! load average of 8 to 17) predate these changes and were not measured again.

#![forbid(unsafe_code)]

pub mod arp;
pub mod l2;
pub mod neigh;

pub mod icmp;
mod ipx;
mod nat;
pub mod toa;
pub mod tunnel;

use std::sync::Arc;

use rvs_conn::{Conn, SharedConns};
use rvs_core::label::Never;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::Dir;
use rvs_core::service::Forward;
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::ethernet::EthernetFrame;
use rvs_core::wire::ipv4::Ipv4Packet;

pub use l2::{HopCache, L2, L2Error, NextHop, Unreachable};
pub use toa::Toa;

rvs_core::labels! {
    /// Why xmit drops a packet.
    pub enum XmitDrop {
        /// No live connection behind `meta.conn` (it expired, or a stage let a stray through).
        NoConn = ("no_conn", "no live connection attached to the packet"),
        /// The headers no longer parse (changed by an earlier stage, or never parsed).
        Invalid = ("invalid", "headers do not parse"),
        /// TTL 1 or 0: it would reach 0 here.
        TtlExceeded = ("ttl_exceeded", "TTL would reach 0 (RFC 1812 5.3.1)"),
        /// A mode, family or protocol xmit does not handle yet.
        NotSupported = ("not_supported", "forwarding mode, address family or protocol not handled yet"),
        /// No route to the next hop.
        NoRoute = ("no_route", "no route covers the destination"),
        /// The next hop is not in the neighbour table (and no neighbour cache is wired in to
        /// resolve it, see [`Xmit::with_neigh`]).
        NoNeighbor = ("no_neighbor", "next hop not in the neighbour table"),
        /// A hold queue for next hops being resolved is full (per hop or in total).
        NeighQueueFull = ("neigh_queue_full", "held for an unresolved next hop, but its queue was full"),
        /// The next hop did not answer ARP/ND before the probes ran out.
        NeighUnresolved = ("neigh_unresolved", "next hop did not answer ARP/ND in time"),
        /// Headers must grow (tunnel, NAT64) and the buffer's headroom is too small.
        NoHeadroom = ("no_headroom", "not enough headroom to grow the headers"),
        /// The encapsulated packet exceeds the output port's MTU and may not be fragmented.
        FragNeeded = ("frag_needed", "tunnelled packet exceeds the port MTU with DF set (RFC 1191)"),
        /// The encapsulated packet exceeds the output port's MTU, DF clear, and its outer header
        /// is IPv6 (4-in-6), which rvs does not fragment (an IPv4 outer header is fragmented).
        TooBig = ("too_big", "4-in-6 tunnelled packet without DF exceeds the port MTU (outer IPv6 not fragmented)"),
        /// The pool ran dry while fragmenting a tunnelled packet.
        FragFailed = ("frag_failed", "no buffer for a fragment of a tunnelled packet"),
        /// An ICMP error with no counterpart in the other family (RFC 7915 4.2 / 5.2 drop it).
        IcmpUntranslatable = ("icmp_untranslatable", "ICMP error with no counterpart across NAT64 (RFC 7915: dropped)"),
    }
}

impl DropReason for XmitDrop {
    fn cause(self) -> Cause {
        match self {
            XmitDrop::NoConn
            | XmitDrop::TtlExceeded
            | XmitDrop::FragNeeded
            | XmitDrop::TooBig
            | XmitDrop::IcmpUntranslatable => Cause::Other,
            XmitDrop::Invalid => Cause::InvalidPacket,
            XmitDrop::NotSupported => Cause::NotSupported,
            XmitDrop::NoRoute | XmitDrop::NoNeighbor | XmitDrop::NeighUnresolved => Cause::NoRoute,
            XmitDrop::NeighQueueFull => Cause::Resource,
            XmitDrop::NoHeadroom | XmitDrop::FragFailed => Cause::Resource,
        }
    }
}

impl From<Unreachable> for XmitDrop {
    fn from(u: Unreachable) -> Self {
        match u {
            Unreachable::NoRoute => XmitDrop::NoRoute,
            Unreachable::NoNeighbor => XmitDrop::NoNeighbor,
        }
    }
}

/// What xmit did to one packet (its trace record): the mode and direction it was sent in,
/// and the header work done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Output port.
    pub port: u16,
    /// Forwarding mode.
    pub fwd: Forward,
    /// Direction.
    pub dir: Dir,
    /// The timestamp option was overwritten with NOPs.
    pub ts_nopped: bool,
    /// SACK blocks shifted.
    pub sack_blocks: u8,
    /// TOA work on this packet.
    pub toa: Toa,
    /// The MSS of a SYN-ACK was lowered for TOA.
    pub mss_clamped: bool,
    /// UOA: `Some(true)` inserted, `Some(false)` due but skipped, `None` not due.
    pub uoa: Option<bool>,
    /// The header was translated between IPv6 and IPv4 (NAT64).
    pub nat64: bool,
    /// The packet was encapsulated (TUNNEL).
    pub encap: bool,
    /// An ICMP error translated with its quoted packet.
    pub icmp_err: bool,
    /// TUNNEL: the encapsulated IPv4 packet is to be cut into fragments for this MTU (0: no).
    pub frag_mtu: u16,
}

impl Sent {
    /// True when nothing but the mode and port is to count (most packets): no option work,
    /// no translation.
    #[inline]
    fn plain(&self) -> bool {
        !(self.ts_nopped || self.mss_clamped || self.nat64 || self.icmp_err)
            && self.sack_blocks == 0
            && self.toa == Toa::None
            && self.uoa.is_none()
    }
    fn new(fwd: Forward, dir: Dir) -> Self {
        Sent {
            port: 0,
            fwd,
            dir,
            ts_nopped: false,
            sack_blocks: 0,
            toa: Toa::None,
            mss_clamped: false,
            uoa: None,
            nat64: false,
            encap: false,
            icmp_err: false,
            frag_mtu: 0,
        }
    }
}

/// Counters of the xmit stage beyond the per-label ones: packets per mode and direction,
/// and header work. Per lcore; counted in locals, added once per vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XmitCounters {
    /// FNAT inbound packets sent.
    pub fnat_in: u64,
    /// FNAT outbound packets sent.
    pub fnat_out: u64,
    /// NAT inbound packets sent.
    pub nat_in: u64,
    /// NAT outbound packets sent.
    pub nat_out: u64,
    /// SNAT inbound (internal host -> outside) packets sent.
    pub snat_in: u64,
    /// SNAT outbound (replies to the internal host) packets sent.
    pub snat_out: u64,
    /// DR packets sent.
    pub dr: u64,
    /// TUNNEL packets sent (encapsulated).
    pub tunnel: u64,
    /// Packets translated between IPv6 and IPv4 (NAT64).
    pub nat64: u64,
    /// ICMP errors translated with their quoted packet.
    pub icmp_err: u64,
    /// Inbound SYNs whose timestamp option became NOPs.
    pub ts_nopped: u64,
    /// SACK blocks shifted on the way back.
    pub sack_blocks: u64,
    /// TOA options inserted (pruned ones included).
    pub toa_inserted: u64,
    /// TOA insertions that needed the timestamp/SACK options pruned.
    pub toa_pruned: u64,
    /// TOA insertions skipped (no room in the options, the MTU or the headroom).
    pub toa_skipped: u64,
    /// SYN-ACK MSS options lowered for TOA.
    pub mss_clamped: u64,
    /// UOA options inserted.
    pub uoa_sent: u64,
    /// UOA options due but skipped (no carrier for the family, option space, MTU, headroom).
    pub uoa_skipped: u64,
    /// ICMP fragmentation-needed / packet-too-big errors sent for packets too big for a
    /// tunnel.
    pub frag_needed_sent: u64,
    /// Tunnelled IPv4 packets without DF sent as fragments.
    pub fragmented: u64,
    /// Fragments those were cut into.
    pub fragments: u64,
}

impl XmitCounters {
    #[inline(always)]
    fn add(&mut self, s: &Sent) {
        match (s.fwd, s.dir) {
            (Forward::Fnat, Dir::In) => self.fnat_in += 1,
            (Forward::Fnat, Dir::Out) => self.fnat_out += 1,
            (Forward::Nat, Dir::In) => self.nat_in += 1,
            (Forward::Nat, Dir::Out) => self.nat_out += 1,
            (Forward::Snat, Dir::In) => self.snat_in += 1,
            (Forward::Snat, Dir::Out) => self.snat_out += 1,
            (Forward::Tunnel, _) => self.tunnel += 1,
            (Forward::Dr, _) => self.dr += 1,
        }
        if !s.plain() {
            self.add_work(s);
        }
    }
    /// The header-work counts of a packet that had some (see [`Sent::plain`]).
    #[inline(never)]
    fn add_work(&mut self, s: &Sent) {
        self.nat64 += s.nat64 as u64;
        self.icmp_err += s.icmp_err as u64;
        self.ts_nopped += s.ts_nopped as u64;
        self.sack_blocks += s.sack_blocks as u64;
        let (i, p, k) = nat::toa_counts(s.toa);
        self.toa_inserted += i;
        self.toa_pruned += p;
        self.toa_skipped += k;
        self.mss_clamped += s.mss_clamped as u64;
        self.uoa_sent += (s.uoa == Some(true)) as u64;
        self.uoa_skipped += (s.uoa == Some(false)) as u64;
    }
    fn merge(&mut self, o: &XmitCounters) {
        self.fnat_in += o.fnat_in;
        self.fnat_out += o.fnat_out;
        self.nat_in += o.nat_in;
        self.nat_out += o.nat_out;
        self.snat_in += o.snat_in;
        self.snat_out += o.snat_out;
        self.dr += o.dr;
        self.tunnel += o.tunnel;
        self.nat64 += o.nat64;
        self.icmp_err += o.icmp_err;
        self.ts_nopped += o.ts_nopped;
        self.sack_blocks += o.sack_blocks;
        self.toa_inserted += o.toa_inserted;
        self.toa_pruned += o.toa_pruned;
        self.toa_skipped += o.toa_skipped;
        self.mss_clamped += o.mss_clamped;
        self.uoa_sent += o.uoa_sent;
        self.uoa_skipped += o.uoa_skipped;
        self.frag_needed_sent += o.frag_needed_sent;
        self.fragmented += o.fragmented;
        self.fragments += o.fragments;
    }
}

/// The xmit stage of one lcore: its connection table (shared with lookup and conn-new,
/// borrowed once per vector) and the L2 tables.
#[derive(Debug)]
pub struct Xmit {
    conns: SharedConns,
    l2: Arc<L2>,
    counters: XmitCounters,
    /// Next-hop resolution and held packets ([`Xmit::with_neigh`], in [`neigh`]).
    resolver: Option<neigh::Resolver>,
    /// UOA mode and trail ([`Xmit::with_uoa`]).
    uoa: toa::UoaConfig,
    /// IPv4 identification sequence of the datagrams xmit makes fragmentable (tunnel
    /// fragments, NAT64 packets without DF; see [`next_ident`]).
    frag_seq: u16,
    /// Next hops of recent destinations, valid while the L2 tables do not change.
    hops: HopCache,
}

impl Xmit {
    /// An xmit stage over `conns` and the L2 tables `l2`.
    pub fn new(conns: SharedConns, l2: Arc<L2>) -> Self {
        Xmit {
            conns,
            l2,
            counters: XmitCounters::default(),
            resolver: None,
            uoa: toa::UoaConfig::default(),
            frag_seq: 0,
            hops: HopCache::new(),
        }
    }
    /// Carry UOA as `uoa` says (DPVS's `uoa_mode` and `uoa_max_trail`; default opp, 3).
    pub fn with_uoa(mut self, uoa: toa::UoaConfig) -> Self {
        self.uoa = uoa;
        self
    }
    /// The per-mode and option counters so far.
    pub fn counters(&self) -> XmitCounters {
        self.counters
    }
    /// The L2 tables.
    pub fn l2(&self) -> &L2 {
        &self.l2
    }
    /// Replace the L2 tables (between vectors, from the control plane).
    pub fn set_l2(&mut self, l2: Arc<L2>) {
        self.l2 = l2;
    }
}

pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;

/// Rewrite and route one packet; on success what was done (the port to send it on first).
///
/// Every path looks the next hop up before it changes a byte, so a packet that fails with
/// [`XmitDrop::NoNeighbor`] is unchanged (it can be held and sent again once resolved).
pub fn xmit_one<M: Mbuf>(l2: &L2, conn: &mut Conn, p: &mut Packet<M>, uoa: toa::UoaConfig) -> Result<Sent, XmitDrop> {
    xmit_one_ext(l2, &mut HopCache::disabled(), conn, p, uoa).map_err(|(d, _)| d)
}

/// As [`xmit_one`], with what a too-big tunnel packet needs for the ICMP answer.
fn xmit_one_ext<M: Mbuf>(
    l2: &L2,
    hops: &mut HopCache,
    conn: &mut Conn,
    p: &mut Packet<M>,
    uoa: toa::UoaConfig,
) -> Result<Sent, (XmitDrop, Option<tunnel::TooBig>)> {
    let dir = p.meta.dir;
    let mut sent = Sent::new(conn.fwd, dir);
    let e = |d| (d, None);
    match (conn.fwd, dir) {
        (Forward::Dr, _) | (Forward::Tunnel, Dir::Out) => xmit_dr(l2, hops, conn, dir, p, &mut sent).map_err(e)?,
        (Forward::Tunnel, Dir::In) => tunnel::xmit_tunnel(l2, conn, p, &mut sent)?,
        (Forward::Nat | Forward::Fnat | Forward::Snat, _) if p.meta.icmp_err => {
            icmp::xmit_icmp_err(l2, conn, p, &mut sent).map_err(e)?
        }
        (Forward::Nat | Forward::Fnat | Forward::Snat, _) => {
            nat::xmit_nat(l2, hops, conn, p, &mut sent, uoa).map_err(e)?
        }
    }
    Ok(sent)
}

/// Answer a packet too big for its tunnel with an ICMP error to the client (counted), from a
/// fresh pool buffer; nothing when the pool is empty or the client is unreachable.
fn send_frag_needed<M: Mbuf, N: rvs_core::label::Label>(
    l2: &L2,
    p: &Packet<M>,
    tb: tunnel::TooBig,
    out: &mut Out<'_, M, N, XmitDrop>,
) -> bool {
    let Ok(h) = ipx::Hdr::locate(p.mbuf.data(), &p.meta) else {
        return false;
    };
    let Some(mut buf) = out.alloc() else { return false };
    match icmp::frag_needed(l2, p.mbuf.data(), &h, tb.inner_mtu, &mut buf) {
        Ok(port) => {
            out.emit_tx(port, Packet::new(buf));
            true
        }
        Err(_) => {
            out.free(buf);
            false
        }
    }
}

/// The next IPv4 identification this lcore gives a datagram it makes that may be
/// fragmented (a tunnelled packet it fragments, a NAT64 packet without DF): a 12-bit per-lcore
/// sequence in the high bits and the lcore's low 4 bits in the low ones, so lcores sharing a
/// source address do not collide (RFC 6864 section 4.1; up to 16 lcores, 4096 datagrams per
/// lcore before a value comes again).
fn next_ident(seq: &mut u16, lcore: u16) -> u16 {
    let ident = (*seq << 4) | (lcore & 0xf);
    *seq = seq.wrapping_add(1) & 0x0fff;
    ident
}

/// What follows a successful rewrite on both send paths (the stage's and the neighbour
/// cache's release): a NAT64 packet the translator left fragmentable (DF clear, 1260 bytes or
/// less, RFC 7915 section 5.1) gets an identification from this lcore's generator ("set
/// according to a Fragment Identification generator at the translator"); a tunnelled packet
/// too big for the port is cut into fragments ([`tunnel::fragment_v4`]), counted, the last
/// fragment staying in `p`. The callers test `s.nat64 || s.frag_mtu != 0` first: most packets
/// need neither.
#[cold]
#[inline(never)]
pub(crate) fn finish<M: Mbuf, N: rvs_core::label::Label>(
    p: &mut Packet<M>,
    s: &Sent,
    seq: &mut u16,
    lcore: u16,
    c: &mut XmitCounters,
    out: &mut Out<'_, M, N, XmitDrop>,
) -> Result<(), XmitDrop> {
    if s.nat64 {
        nat64_ident(p, seq, lcore);
    }
    if s.frag_mtu != 0 {
        let ident = next_ident(seq, lcore);
        let n = tunnel::fragment_v4(p, s.frag_mtu as usize, ident, s.port, out)?;
        c.fragmented += 1;
        c.fragments += n as u64;
    }
    Ok(())
}

/// Give an IPv4 packet NAT64 made without DF (see [`finish`]) an identification; IPv6 output
/// and atomic datagrams (DF set) are left alone (RFC 6864: their identification means nothing).
fn nat64_ident<M: Mbuf>(p: &mut Packet<M>, seq: &mut u16, lcore: u16) {
    let l3 = p.meta.l3_off as usize;
    let Some(b) = p.mbuf.data_mut().get_mut(l3..) else {
        return;
    };
    let Ok(mut ip) = Ipv4Packet::new_checked(b) else {
        return;
    };
    if ip.dont_frag() || ip.more_frags() || ip.frag_offset() != 0 {
        return;
    }
    let (old, new) = (ip.ident(), next_ident(seq, lcore));
    ip.set_ident(new);
    let ck = rvs_core::checksum::update16(ip.checksum(), old, new);
    ip.set_checksum(ck);
}

pub(crate) fn set_macs(data: &mut [u8], nh: &NextHop) -> Result<(), XmitDrop> {
    let mut eth = EthernetFrame::new_checked(data).map_err(|_| XmitDrop::Invalid)?;
    eth.set_src(nh.src_mac);
    eth.set_dst(nh.dst_mac);
    Ok(())
}

fn xmit_dr<M: Mbuf>(
    l2: &L2,
    hops: &mut HopCache,
    conn: &Conn,
    dir: Dir,
    p: &mut Packet<M>,
    sent: &mut Sent,
) -> Result<(), XmitDrop> {
    // Inbound the next hop is the real server (which holds the VIP on a loopback); anything
    // else goes where its destination says.
    let target = if dir == Dir::In { conn.daddr() } else { p.meta.daddr };
    let (nh, _) = l2.next_hop_cached(hops, target)?;
    set_macs(p.mbuf.data_mut(), &nh)?;
    sent.port = nh.port;
    Ok(())
}

impl<M: Mbuf + 'static> Stage<M> for Xmit {
    type Next = Never;
    type Drop = XmitDrop;
    const NAME: &'static str = "xmit";

    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, XmitDrop>) {
        // Held packets whose next hop resolved go first, so order is kept.
        neigh::service(self, cx, out);
        let l2 = &*self.l2;
        let mut c = XmitCounters::default();
        let Ok(mut conns) = self.conns.try_borrow_mut() else {
            // Another stage holds the table across vectors: a wiring bug; never a panic.
            for p in input.drain() {
                out.drop(XmitDrop::NoConn, p);
            }
            return;
        };
        for mut p in input.drain() {
            let Some(conn) = conns.conn_mut(p.meta.conn) else {
                out.drop(XmitDrop::NoConn, p);
                continue;
            };
            match xmit_one_ext(l2, &mut self.hops, conn, &mut p, self.uoa) {
                Ok(s) => {
                    if (s.nat64 || s.frag_mtu != 0)
                        && let Err(r) = finish(&mut p, &s, &mut self.frag_seq, cx.lcore, &mut c, out)
                    {
                        out.drop(r, p);
                        continue;
                    }
                    c.add(&s);
                    out.tx(s.port, p);
                }
                Err((XmitDrop::NoNeighbor, _)) if self.resolver.is_some() => {
                    neigh::hold(&mut self.resolver, l2, conn, p, cx.now, out)
                }
                Err((r, too_big)) => {
                    if let Some(tb) = too_big {
                        c.frag_needed_sent += send_frag_needed(l2, &p, tb, out) as u64;
                    }
                    out.drop(r, p)
                }
            }
        }
        self.counters.merge(&c);
    }

    /// Release packets whose next hop resolved, probe again or give up (see [`neigh`]).
    fn poll(&mut self, cx: &StageCx<'_>, out: &mut Out<'_, M, Never, XmitDrop>) {
        neigh::service(self, cx, out);
    }
}

#[cfg(test)]
mod tests;
