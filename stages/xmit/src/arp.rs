//! The ARP/ND stage: the balancer's own answers on the wire, and the learning half of
//! next-hop resolution.
//!
//! It takes ARP frames (parse's `arp` label) and the ICMP/ICMPv6 packets schedule could not
//! place (schedule's `local` label), and per packet:
//!
//! | packet | what happens |
//! |---|---|
//! | ARP request for a VIP or an interface address | sender learned; answered in place (RFC 826), sent back out of the port it came in on |
//! | other ARP (replies, requests for others, gratuitous) | sender learned if already known (RFC 826's merge rule), then to the host path |
//! | neighbour solicitation for a VIP or interface address | source link-layer option learned; answered with a solicited, override advertisement carrying our MAC (RFC 4861 section 7.2.4) |
//! | neighbour advertisement | target link-layer option updates a known entry (RFC 4861 section 7.2.5), then to the host path |
//! | ICMP echo request to a VIP (with no ICMP service) or an interface address | answered in place: addresses swapped, TTL 64, type 0, checksums updated (RFC 792, RFC 1624) |
//! | ICMPv6 echo request likewise | type 129, hop limit 64 (RFC 4443 section 4.2) |
//! | anything else (ICMP errors no connection claimed, echo to others, redirects, router discovery) | to the host path, counted |
//!
//! Learning goes into the lcore's [`crate::neigh`] cache, shared with [`crate::Xmit`], which
//! releases the packets it held for a hop as soon as the hop is learned.
//!
//! Replies reuse the received buffer (as DPVS's `neigh_arp_in` and `icmp_echo` do): no pool
//! buffer is needed, so an empty pool cannot stop an answer, and a VLAN tag is kept. They go
//! straight back to the sender's MAC out of the receiving port ([`Mbuf::port`]), without a
//! route lookup. An echo request with IPv4 options goes to the host path (reflecting a
//! source route is the host's business); a neighbour solicitation or echo behind IPv6
//! extension headers likewise. Neighbour discovery messages are checked as RFC 4861 section
//! 7.1 asks (hop limit 255, code 0, length, checksum, option lengths); a failing one is
//! dropped as [`ArpDrop::Invalid`].
//!
//! Not done: proxy ARP/ND for addresses behind the balancer, duplicate address detection of
//! our own addresses, router advertisements.

use std::sync::Arc;

use rvs_core::addr::{Addr, Af, Proto};
use rvs_core::checksum;
use rvs_core::label::Never;
use rvs_core::mbuf::Mbuf;
use rvs_core::service::Snapshot;
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::time::Now;
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::arp::{self, ArpPacket};
use rvs_core::wire::ethernet::{EtherType, EthernetFrame, Mac};
use rvs_core::wire::icmp::{self, IcmpPacket};
use rvs_core::wire::icmpv6::{Icmpv6Packet, types as icmp6};
use rvs_core::wire::ipv4::{self, Ipv4Packet};
use rvs_core::wire::ipv6::{self, Ipv6Packet};

use crate::l2::L2;
use crate::neigh::{Learn, SharedNeigh, multicast_mac};

rvs_core::labels! {
    /// Why the ARP/ND stage drops.
    pub enum ArpDrop {
        /// Malformed ARP, or an ND message failing RFC 4861 section 7.1's checks.
        Invalid = ("invalid", "ARP or ND message malformed or failing RFC 4861 validation"),
        /// An echo request for us whose ICMP checksum does not verify.
        BadChecksum = ("bad_checksum", "ICMP echo request to us with a bad checksum"),
    }
}

impl DropReason for ArpDrop {
    fn cause(self) -> Cause {
        Cause::InvalidPacket
    }
}

/// What the stage did with one packet (its trace record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answered: the reply leaves on this port.
    Reply(u16),
    /// To the host path.
    Host,
    /// Dropped.
    Drop(ArpDrop),
}

/// Counters of the ARP/ND stage (per lcore; counted in locals, added once per vector).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArpCounters {
    /// ARP requests answered.
    pub arp_replied: u64,
    /// ARP messages whose sender was learned (created, updated or refreshed).
    pub arp_learned: u64,
    /// ARP frames handed to the host path.
    pub arp_to_host: u64,
    /// Neighbour solicitations answered.
    pub nd_replied: u64,
    /// ND messages whose link-layer address was learned.
    pub nd_learned: u64,
    /// ND messages handed to the host path.
    pub nd_to_host: u64,
    /// ICMP echo requests answered.
    pub echo_replied: u64,
    /// ICMPv6 echo requests answered.
    pub echo6_replied: u64,
    /// Other ICMP/ICMPv6 (and other frames) handed to the host path.
    pub icmp_to_host: u64,
    /// Senders not learned because the neighbour cache was full.
    pub cache_full: u64,
    /// Requests for us not answered: they came in on a port with no interface.
    pub no_interface: u64,
}

impl ArpCounters {
    fn merge(&mut self, o: &ArpCounters) {
        self.arp_replied += o.arp_replied;
        self.arp_learned += o.arp_learned;
        self.arp_to_host += o.arp_to_host;
        self.nd_replied += o.nd_replied;
        self.nd_learned += o.nd_learned;
        self.nd_to_host += o.nd_to_host;
        self.echo_replied += o.echo_replied;
        self.echo6_replied += o.echo6_replied;
        self.icmp_to_host += o.icmp_to_host;
        self.cache_full += o.cache_full;
        self.no_interface += o.no_interface;
    }
}

/// The ARP/ND stage of one lcore.
#[derive(Debug)]
pub struct Arp {
    l2: Arc<L2>,
    cache: SharedNeigh,
    counters: ArpCounters,
}

/// Hop limit of our echo replies (and TTL), Linux's default.
pub const REPLY_TTL: u8 = 64;
/// All-nodes multicast, the destination of an advertisement answering duplicate address
/// detection (RFC 4861 section 7.2.4).
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Neighbour advertisement flags: solicited, override.
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// ND option types: source and target link-layer address.
const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;
/// Length of an NS/NA body before options (type .. target).
const ND_LEN: usize = 24;

impl Arp {
    /// A stage answering for the VIPs of each vector's snapshot and the interface addresses
    /// of `l2`, learning into `cache` (the one given to this lcore's [`crate::Xmit::with_neigh`]).
    pub fn new(l2: Arc<L2>, cache: SharedNeigh) -> Self {
        Arp {
            l2,
            cache,
            counters: ArpCounters::default(),
        }
    }
    /// The counters so far.
    pub fn counters(&self) -> ArpCounters {
        self.counters
    }
    /// The neighbour cache.
    pub fn cache(&self) -> &SharedNeigh {
        &self.cache
    }
    /// Replace the interface tables (between vectors, from the control plane).
    pub fn set_l2(&mut self, l2: Arc<L2>) {
        self.l2 = l2;
    }

    /// True when `a` is ours to answer for: a VIP or an interface address.
    fn ours(&self, snap: &Snapshot, a: Addr) -> bool {
        snap.vip(a).is_some() || self.l2.is_local(a)
    }

    /// True when we answer echo to `a`: an interface address, or a VIP whose ICMP is not
    /// load-balanced by a service of its own.
    fn answers_echo(&self, snap: &Snapshot, a: Addr, proto: Proto) -> bool {
        self.l2.is_local(a) || (snap.vip(a).is_some() && snap.find(proto, a, 0).is_none())
    }

    fn learn(&self, a: Addr, mac: Mac, now: Now, create: bool, c: &mut ArpCounters) -> bool {
        let Ok(mut cache) = self.cache.try_borrow_mut() else {
            return false;
        };
        match cache.learn(a, mac, now, create) {
            Learn::Created | Learn::Updated | Learn::Refreshed => true,
            Learn::Full => {
                c.cache_full += 1;
                false
            }
            Learn::Ignored => false,
        }
    }

    /// Handle one packet: answer it in place, or say where it goes.
    pub fn handle<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(p.mbuf.data()) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        match eth.ethertype() {
            EtherType::ARP => self.arp(cx, p, c),
            EtherType::IPV4 if p.meta.af == Af::V4 && p.meta.proto == Proto::Icmp.number() => self.echo4(cx, p, c),
            EtherType::IPV6 if p.meta.af == Af::V6 && p.meta.proto == Proto::Icmp6.number() => self.icmp6(cx, p, c),
            _ => {
                c.icmp_to_host += 1;
                Verdict::Host
            }
        }
    }

    fn arp<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        let port = p.mbuf.port();
        let data = p.mbuf.data_mut();
        let hl = EthernetFrame::new_unchecked(&data[..]).header_len();
        let Ok(a) = ArpPacket::new_checked(&data[hl..]) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        let (op, sha, spa, tpa) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
        if sha[0] & 1 != 0 {
            return Verdict::Drop(ArpDrop::Invalid);
        }
        let ours = self.ours(cx.snapshot, Addr::v4(tpa));
        if self.learn(Addr::v4(spa), sha, cx.now, ours, c) {
            c.arp_learned += 1;
        }
        if op != arp::OP_REQUEST || !ours || spa == tpa {
            c.arp_to_host += 1;
            return Verdict::Host;
        }
        let Some(mac) = self.l2.interfaces().get(port as usize).map(|i| i.mac) else {
            c.no_interface += 1;
            return Verdict::Host;
        };
        let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
        eth.set_dst(sha);
        eth.set_src(mac);
        let mut r = ArpPacket::new_unchecked(&mut eth.payload_mut()[..arp::PACKET_LEN]);
        r.init(arp::OP_REPLY);
        r.set_sender(mac, tpa);
        r.set_target(sha, spa);
        c.arp_replied += 1;
        Verdict::Reply(port)
    }

    fn echo4<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        let m = p.meta;
        let (l3, l4) = (m.l3_off as usize, m.l4_off as usize);
        if m.icmp_type != icmp::types::ECHO_REQUEST
            || l4 != l3 + ipv4::MIN_HEADER_LEN
            || !self.answers_echo(cx.snapshot, m.daddr, Proto::Icmp)
        {
            c.icmp_to_host += 1;
            return Verdict::Host;
        }
        let port = p.mbuf.port();
        let Some(mac) = self.l2.interfaces().get(port as usize).map(|i| i.mac) else {
            c.no_interface += 1;
            return Verdict::Host;
        };
        let end = l3 + m.l3_len as usize;
        let Some(frame) = p.mbuf.data_mut().get_mut(..end) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        if l4 > end || !IcmpPacket::new_checked(&frame[l4..]).is_ok_and(|i| i.verify_checksum()) {
            return Verdict::Drop(ArpDrop::BadChecksum);
        }
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(mac);
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..l4]);
        let (s, d) = (ip.src(), ip.dst());
        ip.set_src(d);
        ip.set_dst(s);
        ip.set_ttl(REPLY_TTL);
        ip.fill_checksum();
        let mut ic = IcmpPacket::new_unchecked(&mut frame[l4..]);
        let code = ic.code();
        let ck = checksum::update16(
            ic.checksum(),
            u16::from_be_bytes([icmp::types::ECHO_REQUEST, code]),
            u16::from_be_bytes([icmp::types::ECHO_REPLY, code]),
        );
        ic.set_msg_type(icmp::types::ECHO_REPLY);
        ic.set_checksum(ck);
        p.meta.saddr = m.daddr;
        p.meta.daddr = m.saddr;
        p.meta.icmp_type = icmp::types::ECHO_REPLY;
        c.echo_replied += 1;
        Verdict::Reply(port)
    }

    fn icmp6<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        match p.meta.icmp_type {
            icmp6::ECHO_REQUEST => self.echo6(cx, p, c),
            icmp6::NEIGHBOR_SOLICIT | icmp6::NEIGHBOR_ADVERT => self.nd(cx, p, c),
            _ => {
                c.icmp_to_host += 1;
                Verdict::Host
            }
        }
    }

    fn echo6<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        let m = p.meta;
        let (l3, l4) = (m.l3_off as usize, m.l4_off as usize);
        if l4 != l3 + ipv6::HEADER_LEN
            || m.daddr.octets()[0] == 0xff
            || !self.answers_echo(cx.snapshot, m.daddr, Proto::Icmp6)
        {
            c.icmp_to_host += 1;
            return Verdict::Host;
        }
        let port = p.mbuf.port();
        let Some(mac) = self.l2.interfaces().get(port as usize).map(|i| i.mac) else {
            c.no_interface += 1;
            return Verdict::Host;
        };
        let end = l3 + m.l3_len as usize;
        let Some(frame) = p.mbuf.data_mut().get_mut(..end) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        let (s, d) = (m.saddr.octets(), m.daddr.octets());
        if l4 > end || !Icmpv6Packet::new_checked(&frame[l4..]).is_ok_and(|i| i.verify_checksum(s, d)) {
            return Verdict::Drop(ArpDrop::BadChecksum);
        }
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(mac);
        let mut ip = Ipv6Packet::new_unchecked(&mut frame[l3..l4]);
        ip.set_src(d);
        ip.set_dst(s);
        ip.set_hop_limit(REPLY_TTL);
        // Swapping the addresses leaves the pseudo-header sum as it was; only the type moves.
        let mut ic = Icmpv6Packet::new_unchecked(&mut frame[l4..]);
        let code = ic.code();
        let ck = checksum::update16(
            ic.checksum(),
            u16::from_be_bytes([icmp6::ECHO_REQUEST, code]),
            u16::from_be_bytes([icmp6::ECHO_REPLY, code]),
        );
        ic.set_msg_type(icmp6::ECHO_REPLY);
        ic.set_checksum(ck);
        p.meta.saddr = m.daddr;
        p.meta.daddr = m.saddr;
        p.meta.icmp_type = icmp6::ECHO_REPLY;
        c.echo6_replied += 1;
        Verdict::Reply(port)
    }

    /// Neighbour solicitations and advertisements (RFC 4861 sections 7.1, 7.2).
    fn nd<M: Mbuf>(&self, cx: &StageCx<'_>, p: &mut Packet<M>, c: &mut ArpCounters) -> Verdict {
        let m = p.meta;
        let (l3, l4) = (m.l3_off as usize, m.l4_off as usize);
        let end = l3 + m.l3_len as usize;
        if l4 != l3 + ipv6::HEADER_LEN {
            c.nd_to_host += 1;
            return Verdict::Host;
        }
        let Some(body) = p.mbuf.data().get(l4..end) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        let (s, d) = (m.saddr.octets(), m.daddr.octets());
        let valid = m.ttl == 255
            && m.icmp_code == 0
            && body.len() >= ND_LEN
            && Icmpv6Packet::new_checked(body).is_ok_and(|i| i.verify_checksum(s, d));
        if !valid {
            return Verdict::Drop(ArpDrop::Invalid);
        }
        let mut target = [0u8; 16];
        target.copy_from_slice(&body[8..ND_LEN]);
        if target[0] == 0xff {
            return Verdict::Drop(ArpDrop::Invalid);
        }
        let solicit = m.icmp_type == icmp6::NEIGHBOR_SOLICIT;
        let Some(lladdr) = nd_lladdr(&body[ND_LEN..], if solicit { OPT_SLLA } else { OPT_TLLA }) else {
            return Verdict::Drop(ArpDrop::Invalid);
        };
        let dad = m.saddr == Addr::UNSPECIFIED;
        if !solicit {
            // An advertisement only updates what we already know or are resolving.
            if let Some(mac) = lladdr
                && self.learn(Addr::v6(target), mac, cx.now, false, c)
            {
                c.nd_learned += 1;
            }
            c.nd_to_host += 1;
            return Verdict::Host;
        }
        if dad && lladdr.is_some() {
            // RFC 4861 section 7.1.1: no source link-layer option from the unspecified address.
            return Verdict::Drop(ArpDrop::Invalid);
        }
        let ours = self.ours(cx.snapshot, Addr::v6(target));
        if let Some(mac) = lladdr
            && self.learn(m.saddr, mac, cx.now, ours, c)
        {
            c.nd_learned += 1;
        }
        if !ours {
            c.nd_to_host += 1;
            return Verdict::Host;
        }
        let port = p.mbuf.port();
        let Some(mac) = self.l2.interfaces().get(port as usize).map(|i| i.mac) else {
            c.no_interface += 1;
            return Verdict::Host;
        };
        // The advertisement is the solicitation rewritten: 24 bytes and one option.
        let new_len = l4 + ND_LEN + 8;
        let cur = p.mbuf.len();
        let resized = if cur > new_len {
            p.mbuf.trim(cur - new_len)
        } else if cur < new_len {
            p.mbuf.append(new_len - cur).is_some()
        } else {
            true
        };
        if !resized {
            return Verdict::Drop(ArpDrop::Invalid);
        }
        let peer_mac = match lladdr {
            Some(l) => l,
            None if dad => multicast_mac(ALL_NODES),
            None => EthernetFrame::new_unchecked(p.mbuf.data()).src(),
        };
        let dst = if dad { ALL_NODES } else { s };
        let frame = p.mbuf.data_mut();
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst(peer_mac);
        eth.set_src(mac);
        let mut ip = Ipv6Packet::new_unchecked(&mut frame[l3..]);
        ip.set_ver_tc_flow(0, 0);
        ip.set_payload_len((ND_LEN + 8) as u16);
        ip.set_next_header(Proto::Icmp6.number());
        ip.set_hop_limit(255);
        ip.set_src(target);
        ip.set_dst(dst);
        let na = &mut frame[l4..new_len];
        na[0] = icmp6::NEIGHBOR_ADVERT;
        na[1] = 0;
        na[4..8].copy_from_slice(&[if dad { 0 } else { NA_SOLICITED } | NA_OVERRIDE, 0, 0, 0]);
        // The target stays where the solicitation had it (bytes 8..24).
        na[ND_LEN] = OPT_TLLA;
        na[ND_LEN + 1] = 1;
        na[ND_LEN + 2..].copy_from_slice(&mac);
        Icmpv6Packet::new_unchecked(na).fill_checksum(target, dst);
        p.meta.saddr = Addr::v6(target);
        p.meta.daddr = Addr::v6(dst);
        p.meta.icmp_type = icmp6::NEIGHBOR_ADVERT;
        p.meta.l3_len = (ipv6::HEADER_LEN + ND_LEN + 8) as u16;
        c.nd_replied += 1;
        Verdict::Reply(port)
    }
}

/// The link-layer address option of type `want` in ND options `opts`: `None` (outer) when an
/// option is malformed (length 0 or past the end, RFC 4861 section 7.1.1), `Some(None)` when
/// absent.
pub fn nd_lladdr(mut opts: &[u8], want: u8) -> Option<Option<Mac>> {
    let mut found = None;
    while !opts.is_empty() {
        let len = *opts.get(1)? as usize * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == want && len >= 8 && found.is_none() {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opts[2..8]);
            found = Some(mac);
        }
        opts = &opts[len..];
    }
    Some(found)
}

impl<M: Mbuf> Stage<M> for Arp {
    type Next = Never;
    type Drop = ArpDrop;
    const NAME: &'static str = "arp";

    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, ArpDrop>) {
        let mut c = ArpCounters::default();
        for mut p in input.drain() {
            match self.handle(cx, &mut p, &mut c) {
                Verdict::Reply(port) => out.tx(port, p),
                Verdict::Host => out.host(p),
                Verdict::Drop(r) => out.drop(r, p),
            }
        }
        self.counters.merge(&c);
    }

    /// Sweep expired neighbours (at most once a second; the cache decides).
    fn poll(&mut self, cx: &StageCx<'_>, _out: &mut Out<'_, M, Never, ArpDrop>) {
        if let Ok(mut cache) = self.cache.try_borrow_mut() {
            cache.expire(cx.now);
        }
    }
}

#[cfg(test)]
mod tests;
