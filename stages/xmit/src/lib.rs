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

pub mod l2;

use std::sync::Arc;

use rvs_conn::{Conn, SharedConns};
use rvs_core::addr::Addr;
use rvs_core::label::Never;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{Dir, PacketMeta};
use rvs_core::service::Forward;
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::ethernet::EthernetFrame;
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::tcp::TcpPacket;
use rvs_core::wire::udp::UdpPacket;

pub use l2::{L2, L2Error, NextHop, Unreachable};

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
        /// The next hop is not in the neighbour table (no ARP/ND resolution yet).
        NoNeighbor = ("no_neighbor", "next hop not in the neighbour table"),
    }
}

impl DropReason for XmitDrop {
    fn cause(self) -> Cause {
        match self {
            XmitDrop::NoConn | XmitDrop::TtlExceeded => Cause::Other,
            XmitDrop::Invalid => Cause::InvalidPacket,
            XmitDrop::NotSupported => Cause::NotSupported,
            XmitDrop::NoRoute | XmitDrop::NoNeighbor => Cause::NoRoute,
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
/// and the TCP option work done.
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
}

/// Counters of the xmit stage beyond the per-label ones: packets per mode and direction,
/// and TCP option rewrites. Per lcore; counted in locals, added once per vector.
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
    /// DR packets sent.
    pub dr: u64,
    /// Inbound SYNs whose timestamp option became NOPs.
    pub ts_nopped: u64,
    /// SACK blocks shifted on the way back.
    pub sack_blocks: u64,
}

impl XmitCounters {
    fn add(&mut self, s: &Sent) {
        match (s.fwd, s.dir) {
            (Forward::Fnat, Dir::In) => self.fnat_in += 1,
            (Forward::Fnat, Dir::Out) => self.fnat_out += 1,
            (Forward::Nat, Dir::In) => self.nat_in += 1,
            (Forward::Nat, Dir::Out) => self.nat_out += 1,
            _ => self.dr += 1,
        }
        self.ts_nopped += s.ts_nopped as u64;
        self.sack_blocks += s.sack_blocks as u64;
    }
    fn merge(&mut self, o: &XmitCounters) {
        self.fnat_in += o.fnat_in;
        self.fnat_out += o.fnat_out;
        self.nat_in += o.nat_in;
        self.nat_out += o.nat_out;
        self.dr += o.dr;
        self.ts_nopped += o.ts_nopped;
        self.sack_blocks += o.sack_blocks;
    }
}

/// The xmit stage of one lcore: its connection table (shared with lookup and conn-new,
/// borrowed once per vector) and the L2 tables.
#[derive(Debug)]
pub struct Xmit {
    conns: SharedConns,
    l2: Arc<L2>,
    counters: XmitCounters,
}

impl Xmit {
    /// An xmit stage over `conns` and the L2 tables `l2`.
    pub fn new(conns: SharedConns, l2: Arc<L2>) -> Self {
        Xmit {
            conns,
            l2,
            counters: XmitCounters::default(),
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

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The address and port rewrites of one packet: new source, new destination (each `None`
/// when unchanged).
#[derive(Debug, Clone, Copy)]
struct Rewrite {
    src: Option<(Addr, u16)>,
    dst: Option<(Addr, u16)>,
}

fn rewrite_for(c: &Conn, dir: Dir) -> Rewrite {
    match (c.fwd, dir) {
        (Forward::Fnat, Dir::In) => Rewrite {
            src: Some((c.laddr(), c.lport())),
            dst: Some((c.daddr(), c.dport())),
        },
        (Forward::Fnat, Dir::Out) => Rewrite {
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

/// Rewrite and route one packet; on success the port to send it on.
pub fn xmit_one<M: Mbuf>(l2: &L2, conn: &mut Conn, p: &mut Packet<M>) -> Result<Sent, XmitDrop> {
    let dir = p.meta.dir;
    match conn.fwd {
        Forward::Dr => xmit_dr(l2, conn, dir, p),
        Forward::Nat | Forward::Fnat => xmit_nat(l2, conn, dir, p),
        Forward::Tunnel | Forward::Snat => Err(XmitDrop::NotSupported),
    }
}

fn set_macs(data: &mut [u8], nh: &NextHop) -> Result<(), XmitDrop> {
    let mut eth = EthernetFrame::new_checked(data).map_err(|_| XmitDrop::Invalid)?;
    eth.set_src(nh.src_mac);
    eth.set_dst(nh.dst_mac);
    Ok(())
}

fn xmit_dr<M: Mbuf>(l2: &L2, conn: &Conn, dir: Dir, p: &mut Packet<M>) -> Result<Sent, XmitDrop> {
    // Inbound the next hop is the real server (which holds the VIP on a loopback); anything
    // else goes where its destination says.
    let target = if dir == Dir::In { conn.daddr() } else { p.meta.daddr };
    let nh = l2.next_hop(target)?;
    set_macs(p.mbuf.data_mut(), &nh)?;
    Ok(Sent {
        port: nh.port,
        fwd: Forward::Dr,
        dir,
        ts_nopped: false,
        sack_blocks: 0,
    })
}

fn xmit_nat<M: Mbuf>(l2: &L2, conn: &mut Conn, dir: Dir, p: &mut Packet<M>) -> Result<Sent, XmitDrop> {
    if !p.meta.saddr.is_v4() || !conn.daddr().is_v4() {
        return Err(XmitDrop::NotSupported);
    }
    let rw = rewrite_for(conn, dir);
    let fnat = conn.fwd == Forward::Fnat;
    let new_daddr = rw.dst.map_or(p.meta.daddr, |d| d.0);
    let nh = l2.next_hop(new_daddr)?;
    let delta = conn.fnat_seq_delta;
    let mut sent = Sent {
        port: nh.port,
        fwd: conn.fwd,
        dir,
        ts_nopped: false,
        sack_blocks: 0,
    };

    let data = p.mbuf.data_mut();
    let mut eth = EthernetFrame::new_checked(&mut data[..]).map_err(|_| XmitDrop::Invalid)?;
    {
        let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).map_err(|_| XmitDrop::Invalid)?;
        if ip.ttl() <= 1 {
            return Err(XmitDrop::TtlExceeded);
        }
        let old_s = Addr::v4(ip.src());
        let old_d = Addr::v4(ip.dst());
        let proto = ip.protocol();
        {
            let (_, l4) = ip.split_mut();
            match proto {
                PROTO_TCP => {
                    let mut t = TcpPacket::new_checked(l4).map_err(|_| XmitDrop::Invalid)?;
                    if let Some((a, port)) = rw.src {
                        t.rewrite_pseudo_addr(old_s, a);
                        t.rewrite_src_port(port);
                    }
                    if let Some((a, port)) = rw.dst {
                        t.rewrite_pseudo_addr(old_d, a);
                        t.rewrite_dst_port(port);
                    }
                    if fnat {
                        fnat_tcp(&mut t, conn, dir, delta, &mut sent);
                    }
                }
                PROTO_UDP => {
                    let mut u = UdpPacket::new_checked(l4).map_err(|_| XmitDrop::Invalid)?;
                    if let Some((a, port)) = rw.src {
                        u.rewrite_pseudo_addr(old_s, a);
                        u.rewrite_src_port(port);
                    }
                    if let Some((a, port)) = rw.dst {
                        u.rewrite_pseudo_addr(old_d, a);
                        u.rewrite_dst_port(port);
                    }
                }
                _ => return Err(XmitDrop::NotSupported),
            }
        }
        if let Some((a, _)) = rw.src {
            ip.rewrite_src(a.v4_octets());
        }
        if let Some((a, _)) = rw.dst {
            ip.rewrite_dst(a.v4_octets());
        }
        p.meta.ttl = ip.decrement_ttl();
    }
    eth.set_src(nh.src_mac);
    eth.set_dst(nh.dst_mac);
    update_meta(&mut p.meta, &rw);
    Ok(sent)
}

/// FNAT's TCP work after the address and port rewrite (DPVS's `tcp_fnat_in_handler` /
/// `tcp_fnat_out_handler`).
fn fnat_tcp(t: &mut TcpPacket<&mut [u8]>, conn: &mut Conn, dir: Dir, delta: u32, sent: &mut Sent) {
    match dir {
        Dir::In => {
            let flags = rvs_core::meta::TcpFlags(t.flags());
            if flags.syn() && !flags.ack() {
                sent.ts_nopped = t.nop_timestamp();
            }
            if delta != 0 {
                let seq = t.seq().wrapping_add(delta);
                t.rewrite_seq(seq);
            }
        }
        Dir::Out => {
            let flags = rvs_core::meta::TcpFlags(t.flags());
            // The end of what the server sent (SYN and FIN count one), and its ack, before
            // the adjustment: what an RST on expiry must carry towards the server.
            let len = t.payload().len() as u32 + flags.syn() as u32 + flags.fin() as u32;
            conn.rs_last_seq = t.seq().wrapping_add(len);
            conn.rs_last_ack = t.ack();
            if delta != 0 {
                if flags.ack() {
                    let ack = t.ack().wrapping_sub(delta);
                    t.rewrite_ack(ack);
                }
                sent.sack_blocks = t.rewrite_sack(|e| e.wrapping_sub(delta)) as u8;
            }
        }
    }
}

fn update_meta(m: &mut PacketMeta, rw: &Rewrite) {
    if let Some((a, port)) = rw.src {
        m.saddr = a;
        m.sport = port;
    }
    if let Some((a, port)) = rw.dst {
        m.daddr = a;
        m.dport = port;
    }
}

impl<M: Mbuf> Stage<M> for Xmit {
    type Next = Never;
    type Drop = XmitDrop;
    const NAME: &'static str = "xmit";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, XmitDrop>) {
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
            match xmit_one(l2, conn, &mut p) {
                Ok(s) => {
                    c.add(&s);
                    out.tx(s.port, p);
                }
                Err(r) => out.drop(r, p),
            }
        }
        self.counters.merge(&c);
    }
}

#[cfg(test)]
mod tests;
