//! rvs-xmit: the xmit stage. It takes packets whose connection and direction lookup or
//! conn-new attached ([`PacketMeta::conn`], [`PacketMeta::dir`]), rewrites them for the
//! connection's forwarding mode, picks the output port and MACs from the [`l2`] tables, and
//! queues them for transmit.
//!
//! | mode | inbound (client -> VIP) | outbound (real server -> balancer) |
//! |---|---|---|
//! | FNAT | source -> local address:port, destination -> RS address:port; SYN: timestamp option -> NOPs; seq += delta | source -> VIP:vport, destination -> client address:port; ack -= delta, SACK blocks -= delta |
//! | NAT | destination -> RS address:port | source -> VIP:vport |
//! | DR | only the MACs: destination MAC = the RS's neighbour entry | (never seen: replies go straight to the client) |
//!
//! The FNAT sequence delta is the connection's `fnat_seq_delta` (conn-new sets it from a keyed
//! hash, as DPVS's `tcp_in_init_seq`); the timestamp option of the inbound SYN is overwritten
//! with NOPs as DPVS's `tcp_in_remove_ts` does (RFC 7323 section 5.5: clients behind one local
//! address would otherwise show one server unrelated timestamp clocks). Outbound FNAT packets
//! also record the server's last sequence end and acknowledgement on the connection
//! (`rs_last_seq`, `rs_last_ack`), from which RSTs are built when the connection expires.
//!
//! Every checksum is updated incrementally (RFC 1624) through the views of
//! [`rvs_core::wire`] and [`rvs_core::checksum`]: the IPv4 header for the addresses and the
//! TTL, the TCP/UDP checksum for the pseudo-header addresses, the ports, seq/ack and the
//! rewritten option bytes. A UDP datagram without a checksum (0) keeps none. Checksums are
//! completed in software: no port offload is requested yet.
//!
//! NAT and FNAT decrement the TTL as a router does (RFC 1812 section 5.3.1) and drop a packet
//! whose TTL is 1 or 0 with [`XmitDrop::TtlExceeded`] (the ICMP time-exceeded a router would
//! send is not sent yet). DR leaves the IP header untouched, as IPVS and DPVS do.
//!
//! Not done yet, and dropped with [`XmitDrop::NotSupported`] (class `notsupp`) when met:
//! TUNNEL and SNAT modes, NAT/FNAT for IPv6 and NAT64, NAT/FNAT of ICMP (echo and the
//! quoted packet of errors). Also not done: TOA insertion for FNAT (and the matching MSS
//! clamp of the SYN-ACK), synproxy's sequence adjustment (step 3 of the synproxy stage does
//! that before xmit), ARP/ND resolution with a held queue (issue 4; see [`l2`]).
//!
//! Cost per packet, vectors of 32 over heap buffers, through
//! [`rvs_core::stage::Node::run`], the per-iteration refill of each buffer with its original
//! bytes (about 5 ns a packet) subtracted: FNAT inbound TCP about 80 ns, FNAT outbound with a
//! two-edge SACK rewrite about 105 ns, NAT inbound about 65 ns, DR about 45 ns. One run on the
//! shared 2-core development machine under a load average of 8 (other builds running): read
//! them as upper bounds and as ratios. Measured with `cargo bench -p rvs-xmit --bench xmit`.

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

pub use l2::{L2, L2Error, NextHop, Unreachable};
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
        /// The encapsulated packet exceeds the output port's MTU, DF clear: rvs fragments nothing.
        TooBig = ("too_big", "tunnelled packet exceeds the port MTU (fragmenting is not done)"),
    }
}

impl DropReason for XmitDrop {
    fn cause(self) -> Cause {
        match self {
            XmitDrop::NoConn | XmitDrop::TtlExceeded | XmitDrop::FragNeeded | XmitDrop::TooBig => Cause::Other,
            XmitDrop::Invalid => Cause::InvalidPacket,
            XmitDrop::NotSupported => Cause::NotSupported,
            XmitDrop::NoRoute | XmitDrop::NoNeighbor | XmitDrop::NeighUnresolved => Cause::NoRoute,
            XmitDrop::NeighQueueFull => Cause::Resource,
            XmitDrop::NoHeadroom => Cause::Resource,
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
}

impl Sent {
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
    /// UOA options due but skipped (IPv6, option space, MTU, headroom).
    pub uoa_skipped: u64,
    /// ICMP fragmentation-needed / packet-too-big errors sent for packets too big for a
    /// tunnel.
    pub frag_needed_sent: u64,
}

impl XmitCounters {
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
}

impl Xmit {
    /// An xmit stage over `conns` and the L2 tables `l2`.
    pub fn new(conns: SharedConns, l2: Arc<L2>) -> Self {
        Xmit {
            conns,
            l2,
            counters: XmitCounters::default(),
            resolver: None,
        }
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
pub fn xmit_one<M: Mbuf>(l2: &L2, conn: &mut Conn, p: &mut Packet<M>) -> Result<Sent, XmitDrop> {
    xmit_one_ext(l2, conn, p).map_err(|(d, _)| d)
}

/// As [`xmit_one`], with what a too-big tunnel packet needs for the ICMP answer.
fn xmit_one_ext<M: Mbuf>(
    l2: &L2,
    conn: &mut Conn,
    p: &mut Packet<M>,
) -> Result<Sent, (XmitDrop, Option<tunnel::TooBig>)> {
    let dir = p.meta.dir;
    let mut sent = Sent::new(conn.fwd, dir);
    let e = |d| (d, None);
    match (conn.fwd, dir) {
        (Forward::Dr, _) | (Forward::Tunnel, Dir::Out) => xmit_dr(l2, conn, dir, p, &mut sent).map_err(e)?,
        (Forward::Tunnel, Dir::In) => tunnel::xmit_tunnel(l2, conn, p, &mut sent)?,
        (Forward::Nat | Forward::Fnat | Forward::Snat, _) if p.meta.icmp_err => {
            icmp::xmit_icmp_err(l2, conn, p, &mut sent).map_err(e)?
        }
        (Forward::Nat | Forward::Fnat | Forward::Snat, _) => nat::xmit_nat(l2, conn, p, &mut sent).map_err(e)?,
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

pub(crate) fn set_macs(data: &mut [u8], nh: &NextHop) -> Result<(), XmitDrop> {
    let mut eth = EthernetFrame::new_checked(data).map_err(|_| XmitDrop::Invalid)?;
    eth.set_src(nh.src_mac);
    eth.set_dst(nh.dst_mac);
    Ok(())
}

fn xmit_dr<M: Mbuf>(l2: &L2, conn: &Conn, dir: Dir, p: &mut Packet<M>, sent: &mut Sent) -> Result<(), XmitDrop> {
    // Inbound the next hop is the real server (which holds the VIP on a loopback); anything
    // else goes where its destination says.
    let target = if dir == Dir::In { conn.daddr() } else { p.meta.daddr };
    let nh = l2.next_hop(target)?;
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
            match xmit_one_ext(l2, conn, &mut p) {
                Ok(s) => {
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
