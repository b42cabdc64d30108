//! Neighbour resolution for xmit: a per-lcore cache of learned neighbours (ARP, RFC 826;
//! IPv6 neighbour discovery, RFC 4861), shared by the [`crate::arp`] stage, which learns into
//! it, and [`crate::Xmit`], which reads it and holds the packets whose next hop is not
//! resolved yet, as DPVS's `neigh_resolve_output` does.
//!
//! - **Lookup order**: the static neighbours of the configuration first, then the learned
//!   entries. Xmit reads the learned ones from an overlay in its own [`L2`] copy
//!   ([`L2::set_learned`]), refreshed between vectors when the cache's generation changed, so
//!   the per-packet path costs one more hash probe on a static miss and nothing else.
//! - **Learning** follows RFC 826's merge rule: an ARP (or a neighbour solicitation's source
//!   link-layer option) from a sender already in the cache updates it; a new entry is made
//!   only when the message is addressed to one of ours (a VIP or an interface address) or
//!   answers a resolution in progress. A neighbour advertisement only updates (RFC 4861
//!   section 7.2.5). Learned entries live [`NeighConfig::reachable_secs`] after the last
//!   message heard from the neighbour; expired ones are swept once a second.
//! - **Holding**: a packet whose next hop is unknown is held in that hop's queue (at most
//!   [`NeighConfig::queue_per_hop`] packets, [`NeighConfig::queue_total`] over all hops, at
//!   most [`NeighConfig::max_resolving`] hops at once); a packet past a bound is dropped as
//!   [`XmitDrop::NeighQueueFull`] (the newest is dropped, so the held ones keep their order).
//!   The first held packet sends an ARP request (IPv4) or a neighbour solicitation to the
//!   solicited-node multicast address (IPv6) from the pool, retried every
//!   [`NeighConfig::retrans_ms`]; after [`NeighConfig::max_probes`] unanswered probes the
//!   held packets are dropped as [`XmitDrop::NeighUnresolved`]. On resolution they are
//!   released in arrival order, through the same [`crate::xmit_one`] as any packet (they were
//!   held before any rewrite), before the next vector's packets.
//! - A held packet keeps its connection handle; if the connection expired meanwhile (or its
//!   slot now holds another flow) the packet is dropped as [`XmitDrop::NoConn`] on release.
//!
//! Not done: the STALE/DELAY/PROBE states of RFC 4861 (an expired entry is forgotten, and the
//! next packet to it is held while the hop is resolved again); a negative cache for hops that
//! did not answer (the next packet starts a fresh resolution); unicast re-probing; IPv6
//! duplicate address detection for our own addresses.
//!
//! The next hop a held packet waits for is the route's gateway for the address
//! [`next_hop_target`] returns: it must name the address [`crate::xmit_one`] routes to for
//! each mode (a packet whose release still finds no neighbour is dropped as
//! [`XmitDrop::NoNeighbor`], never held twice).

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{Conn, Tuple};
use rvs_core::addr::Addr;
use rvs_core::hash::FastMap;
use rvs_core::label::Never;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{Dir, PacketMeta};
use rvs_core::service::Forward;
use rvs_core::stage::{Out, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_core::wire::arp::{self, ArpPacket};
use rvs_core::wire::ethernet::{self, EtherType, EthernetFrame, Mac};
use rvs_core::wire::icmpv6::{Icmpv6Packet, types as icmp6};
use rvs_core::wire::ipv6::{self, Ipv6Packet};

use crate::l2::{Interface, L2};
use crate::nat::rewrite_for;
use crate::{Xmit, XmitCounters, XmitDrop, xmit_one};

/// Bounds and timers of the neighbour cache and of the held-packet queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Entries in the cache at most (learned ones and hops being resolved).
    pub capacity: usize,
    /// Life of a learned entry after the last message from the neighbour, in seconds.
    pub reachable_secs: u64,
    /// Interval between probes of an unresolved hop, in milliseconds.
    pub retrans_ms: u64,
    /// Probes sent before the held packets are dropped as unresolved.
    pub max_probes: u8,
    /// Packets held per next hop at most (DPVS holds a few per neighbour).
    pub queue_per_hop: usize,
    /// Packets held over all next hops at most.
    pub queue_total: usize,
    /// Next hops being resolved at once at most.
    pub max_resolving: usize,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 1024,
            reachable_secs: 60,
            retrans_ms: 1000,
            max_probes: 3,
            queue_per_hop: 8,
            queue_total: 256,
            max_resolving: 64,
        }
    }
}

/// One cache entry: a resolved neighbour, or a hop being resolved (`mac` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The neighbour's MAC once known.
    pub mac: Option<Mac>,
    /// When a resolved entry expires.
    pub expires: Now,
}

/// What [`NeighCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// A new entry.
    Created,
    /// An entry got a (new) MAC: a resolution completed or the neighbour moved.
    Updated,
    /// An entry with the same MAC had its life extended.
    Refreshed,
    /// Not learned: unknown sender and not for us, or an address or MAC no neighbour can
    /// have (unspecified, broadcast, multicast).
    Ignored,
    /// Not learned: the cache is full.
    Full,
}

/// Counters of the cache (per lcore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighCounters {
    /// Entries created by learning.
    pub created: u64,
    /// Entries whose MAC was set or changed.
    pub updated: u64,
    /// Entries refreshed with the same MAC.
    pub refreshed: u64,
    /// Learned entries expired.
    pub expired: u64,
    /// Entries not made because the cache was full.
    pub full: u64,
}

/// The per-lcore neighbour cache. Share it between the lcore's [`crate::arp::Arp`] stage and
/// its [`Xmit`] as a [`SharedNeigh`].
#[derive(Debug)]
pub struct NeighCache {
    cfg: NeighConfig,
    map: FastMap<Addr, Entry>,
    generation: u64,
    next_gc: Now,
    counters: NeighCounters,
}

/// The cache as the stages of one lcore share it (no lock: one lcore, one thread).
pub type SharedNeigh = Rc<RefCell<NeighCache>>;

/// True for an address a neighbour can hold and a MAC it can have (unicast, specified).
fn usable(a: Addr, mac: Mac) -> bool {
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return false;
    }
    if a.is_v4() {
        let o = a.v4_octets();
        !(o == [0; 4] || o == [255; 4] || o[0] >= 224)
    } else {
        a != Addr::UNSPECIFIED && a.octets()[0] != 0xff
    }
}

impl NeighCache {
    /// An empty cache (its map sized for `cfg.capacity` up front).
    pub fn new(cfg: NeighConfig) -> Self {
        let mut map = FastMap::default();
        map.reserve(cfg.capacity);
        NeighCache {
            cfg,
            map,
            generation: 0,
            next_gc: Now(0),
            counters: NeighCounters::default(),
        }
    }
    /// An empty cache ready to share.
    pub fn shared(cfg: NeighConfig) -> SharedNeigh {
        Rc::new(RefCell::new(Self::new(cfg)))
    }
    /// The bounds and timers.
    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }
    /// Bumped whenever the set of resolved entries or one of their MACs changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The counters so far.
    pub fn counters(&self) -> NeighCounters {
        self.counters
    }
    /// Entries (resolved and being resolved).
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// The entry of `a`.
    pub fn entry(&self, a: Addr) -> Option<Entry> {
        self.map.get(&a).copied()
    }
    /// The MAC of `a` if resolved and not expired at `now`.
    pub fn lookup(&self, a: Addr, now: Now) -> Option<Mac> {
        self.map.get(&a).and_then(|e| e.mac.filter(|_| e.expires > now))
    }
    /// The resolved entries live at `now`.
    pub fn resolved(&self, now: Now) -> impl Iterator<Item = (Addr, Mac)> + '_ {
        self.map
            .iter()
            .filter_map(move |(a, e)| e.mac.filter(|_| e.expires > now).map(|m| (*a, m)))
    }

    /// Learn that `a` is at `mac` (heard at `now`). An entry for `a` (resolved or being
    /// resolved) is updated; a new one is made only with `create` (RFC 826's merge rule:
    /// the message was for us).
    pub fn learn(&mut self, a: Addr, mac: Mac, now: Now, create: bool) -> Learn {
        if !usable(a, mac) {
            return Learn::Ignored;
        }
        let expires = now.plus_secs(self.cfg.reachable_secs);
        if let Some(e) = self.map.get_mut(&a) {
            let r = if e.mac == Some(mac) && e.expires > now {
                self.counters.refreshed += 1;
                Learn::Refreshed
            } else {
                self.counters.updated += 1;
                self.generation += 1;
                Learn::Updated
            };
            e.mac = Some(mac);
            e.expires = expires;
            return r;
        }
        if !create {
            return Learn::Ignored;
        }
        if self.map.len() >= self.cfg.capacity {
            self.counters.full += 1;
            return Learn::Full;
        }
        self.map.insert(
            a,
            Entry {
                mac: Some(mac),
                expires,
            },
        );
        self.counters.created += 1;
        self.generation += 1;
        Learn::Created
    }

    /// Mark `a` as being resolved (so its answer is learned); true when an entry exists or
    /// was made, false when the cache is full.
    pub fn want(&mut self, a: Addr) -> bool {
        if self.map.contains_key(&a) {
            return true;
        }
        if self.map.len() >= self.cfg.capacity {
            self.counters.full += 1;
            return false;
        }
        self.map.insert(
            a,
            Entry {
                mac: None,
                expires: Now(u64::MAX),
            },
        );
        true
    }

    /// Forget a hop whose resolution failed (a resolved entry is kept).
    pub fn forget(&mut self, a: Addr) {
        if self.map.get(&a).is_some_and(|e| e.mac.is_none()) {
            self.map.remove(&a);
        }
    }

    /// Sweep expired learned entries (at most once a second); how many went.
    pub fn expire(&mut self, now: Now) -> usize {
        if now < self.next_gc {
            return 0;
        }
        self.next_gc = now.plus_secs(1);
        let before = self.map.len();
        self.map.retain(|_, e| e.mac.is_none() || e.expires > now);
        let gone = before - self.map.len();
        if gone > 0 {
            self.counters.expired += gone as u64;
            self.generation += 1;
        }
        gone
    }
}

/// Counters of xmit's resolution work (per lcore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolveCounters {
    /// Packets held waiting for a next hop.
    pub held: u64,
    /// Held packets sent after their hop resolved.
    pub released: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// Neighbour solicitations sent.
    pub solicitations: u64,
    /// Packets dropped because a hold queue (or the cache) was full.
    pub queue_full: u64,
    /// Held packets dropped because their hop never answered.
    pub unresolved: u64,
    /// Hops given up on.
    pub hops_failed: u64,
    /// Probes not sent: no interface address of the hop's family to send from.
    pub no_source: u64,
    /// Probes not sent: the pool was empty (or its buffers too small).
    pub pool_empty: u64,
    /// Held packets dropped on release: their connection was gone (or could not be sent).
    pub stale_conn: u64,
}

/// One next hop being resolved and its held packets.
#[derive(Debug)]
struct Wait<M> {
    used: bool,
    hop: Addr,
    port: u16,
    probes: u8,
    next_probe: Now,
    q: PacketVec<M>,
}

/// The held packets of one lcore, allocated on the first hold.
#[derive(Debug)]
struct HoldTable<M> {
    waits: Vec<Wait<M>>,
    total: usize,
}

impl<M> HoldTable<M> {
    fn new(cfg: &NeighConfig) -> Self {
        HoldTable {
            waits: (0..cfg.max_resolving.max(1))
                .map(|_| Wait {
                    used: false,
                    hop: Addr::UNSPECIFIED,
                    port: 0,
                    probes: 0,
                    next_probe: Now(0),
                    q: PacketVec::with_capacity(cfg.queue_per_hop.max(1)),
                })
                .collect(),
            total: 0,
        }
    }
}

/// Xmit's side of resolution: the shared cache, the held packets (typed by the buffer type,
/// known only once packets flow, hence kept as `Any`), and what the overlay was built from.
pub(crate) struct Resolver {
    cache: SharedNeigh,
    /// Cache generation and L2 table the overlay was last built from.
    synced: Option<(u64, *const L2)>,
    hold: Option<Box<dyn Any>>,
    /// Earliest probe or give-up time of the hops being resolved.
    next_deadline: Now,
    counters: ResolveCounters,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("synced", &self.synced.map(|s| s.0))
            .field("counters", &self.counters)
            .finish()
    }
}

impl Xmit {
    /// Resolve next hops through `cache` (shared with this lcore's [`crate::arp::Arp`]
    /// stage): learned entries are used after the static ones, and a packet whose next hop
    /// is unknown is held while the hop is resolved instead of being dropped as
    /// [`XmitDrop::NoNeighbor`].
    pub fn with_neigh(mut self, cache: SharedNeigh) -> Self {
        self.resolver = Some(Resolver {
            cache,
            synced: None,
            hold: None,
            next_deadline: Now(u64::MAX),
            counters: ResolveCounters::default(),
        });
        self
    }
    /// The neighbour cache, when resolution is wired in.
    pub fn neigh(&self) -> Option<&SharedNeigh> {
        self.resolver.as_ref().map(|r| &r.cache)
    }
    /// The resolution counters so far (zero without a cache).
    pub fn resolve_counters(&self) -> ResolveCounters {
        self.resolver.as_ref().map(|r| r.counters).unwrap_or_default()
    }
    /// Packets held right now.
    pub fn held(&self) -> u64 {
        let c = self.resolve_counters();
        c.held - c.released - c.unresolved - c.stale_conn
    }
}

/// The address [`crate::xmit_one`] routes a packet of `conn` to: the real server for DR and
/// TUNNEL inbound, the rewritten destination for NAT and FNAT, the packet's own destination
/// otherwise.
pub fn next_hop_target(conn: &Conn, meta: &PacketMeta) -> Addr {
    match (conn.fwd, meta.dir) {
        (Forward::Dr | Forward::Tunnel, Dir::In) => conn.daddr(),
        (Forward::Nat | Forward::Fnat | Forward::Snat, dir) => rewrite_for(conn, dir).dst.map_or(meta.daddr, |d| d.0),
        _ => meta.daddr,
    }
}

/// True while the connection behind the packet's handle is still the packet's flow.
fn same_flow(conn: &Conn, meta: &PacketMeta) -> bool {
    if meta.icmp_err {
        return true;
    }
    Tuple::of(meta).is_some_and(|t| *conn.tuple(meta.dir) == t)
}

/// The address of `iface` to send a probe for `hop` from: one on the hop's network, else
/// the first of its family.
pub fn source_addr(iface: &Interface, hop: Addr) -> Option<Addr> {
    let fam = iface.addrs.iter().filter(|a| a.addr.is_v4() == hop.is_v4());
    fam.clone()
        .find(|a| a.addr.masked(a.prefix) == hop.masked(a.prefix))
        .or_else(|| fam.clone().next())
        .map(|a| a.addr)
}

/// Length of the ARP request frames sent (padded to Ethernet's 60-byte minimum).
pub const ARP_FRAME_LEN: usize = 60;
/// Length of the neighbour solicitations sent (one source link-layer address option).
pub const NS_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 24 + 8;

/// Write a broadcast ARP request for `target` from `mac`/`src` into `buf` (which must hold
/// [`ARP_FRAME_LEN`] bytes); the padding is zeroed.
pub fn write_arp_request(buf: &mut [u8], mac: Mac, src: [u8; 4], target: [u8; 4]) -> bool {
    let Some(buf) = buf.get_mut(..ARP_FRAME_LEN) else {
        return false;
    };
    buf.fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst([0xff; 6]);
    eth.set_src(mac);
    eth.set_outer_ethertype(EtherType::ARP);
    let mut a = ArpPacket::new_unchecked(&mut eth.payload_mut()[..arp::PACKET_LEN]);
    a.init(arp::OP_REQUEST);
    a.set_sender(mac, src);
    a.set_target([0; 6], target);
    true
}

/// The solicited-node multicast address of `a` (RFC 4291 section 2.7.1).
pub fn solicited_node(a: [u8; 16]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = 0xff;
    m[1] = 0x02;
    m[11] = 0x01;
    m[12] = 0xff;
    m[13..].copy_from_slice(&a[13..]);
    m
}

/// The Ethernet address of an IPv6 multicast address (RFC 2464 section 7).
pub fn multicast_mac(a: [u8; 16]) -> Mac {
    [0x33, 0x33, a[12], a[13], a[14], a[15]]
}

/// Write a neighbour solicitation for `target` from `mac`/`src` to the target's
/// solicited-node address (RFC 4861 section 7.2.2) into `buf` (which must hold
/// [`NS_FRAME_LEN`] bytes): hop limit 255, a source link-layer address option.
pub fn write_solicitation(buf: &mut [u8], mac: Mac, src: [u8; 16], target: [u8; 16]) -> bool {
    let Some(buf) = buf.get_mut(..NS_FRAME_LEN) else {
        return false;
    };
    buf.fill(0);
    let dst = solicited_node(target);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst(multicast_mac(dst));
    eth.set_src(mac);
    eth.set_outer_ethertype(EtherType::IPV6);
    let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
    ip.set_ver_tc_flow(0, 0);
    ip.set_payload_len(32);
    ip.set_next_header(58);
    ip.set_hop_limit(255);
    ip.set_src(src);
    ip.set_dst(dst);
    let l4 = &mut ip.payload_mut()[..32];
    l4[0] = icmp6::NEIGHBOR_SOLICIT;
    l4[8..24].copy_from_slice(&target);
    l4[24] = 1; // source link-layer address
    l4[25] = 1; // in units of 8 bytes
    l4[26..32].copy_from_slice(&mac);
    Icmpv6Packet::new_unchecked(l4).fill_checksum(src, dst);
    true
}

/// Send one probe for `hop` out of `port`.
fn send_probe<M: Mbuf>(l2: &L2, hop: Addr, port: u16, out: &mut Out<'_, M, Never, XmitDrop>, c: &mut ResolveCounters) {
    let Some(iface) = l2.interfaces().get(port as usize) else {
        c.no_source += 1;
        return;
    };
    let Some(src) = source_addr(iface, hop) else {
        c.no_source += 1;
        return;
    };
    let Some(mut m) = out.alloc() else {
        c.pool_empty += 1;
        return;
    };
    let v4 = hop.is_v4();
    let len = if v4 { ARP_FRAME_LEN } else { NS_FRAME_LEN };
    let ok = match m.append(len) {
        Some(buf) if v4 => write_arp_request(buf, iface.mac, src.v4_octets(), hop.v4_octets()),
        Some(buf) => write_solicitation(buf, iface.mac, src.octets(), hop.octets()),
        None => false,
    };
    if !ok {
        c.pool_empty += 1;
        out.free(m);
        return;
    }
    if v4 {
        c.arp_requests += 1;
    } else {
        c.solicitations += 1;
    }
    out.emit_tx(port, Packet::new(m));
}

/// Hold `p` (of connection `conn`, whose next hop has no neighbour entry) until its hop
/// resolves; the first packet for a hop sends the first probe.
pub(crate) fn hold<M: Mbuf + 'static>(
    resolver: &mut Option<Resolver>,
    l2: &L2,
    conn: &Conn,
    p: Packet<M>,
    now: Now,
    out: &mut Out<'_, M, Never, XmitDrop>,
) {
    let Some(res) = resolver.as_mut() else {
        out.drop(XmitDrop::NoNeighbor, p);
        return;
    };
    let target = next_hop_target(conn, &p.meta);
    let Some(route) = l2.route(target) else {
        out.drop(XmitDrop::NoRoute, p);
        return;
    };
    let hop = route.gateway.unwrap_or(target);
    let cfg = *res.cache.borrow().config();
    let table = res
        .hold
        .get_or_insert_with(|| Box::new(HoldTable::<M>::new(&cfg)))
        .downcast_mut::<HoldTable<M>>();
    let Some(table) = table else {
        // One xmit stage serves one buffer type; never reached.
        out.drop(XmitDrop::NoNeighbor, p);
        return;
    };
    let i = match table.waits.iter().position(|w| w.used && w.hop == hop) {
        Some(i) => i,
        None => {
            let Some(i) = table.waits.iter().position(|w| !w.used) else {
                res.counters.queue_full += 1;
                out.drop(XmitDrop::NeighQueueFull, p);
                return;
            };
            if !res.cache.borrow_mut().want(hop) {
                res.counters.queue_full += 1;
                out.drop(XmitDrop::NeighQueueFull, p);
                return;
            }
            let w = &mut table.waits[i];
            w.used = true;
            w.hop = hop;
            w.port = route.port;
            send_probe(l2, hop, route.port, out, &mut res.counters);
            w.probes = 1;
            w.next_probe = now.plus_nanos(cfg.retrans_ms.saturating_mul(1_000_000));
            res.next_deadline = res.next_deadline.min(w.next_probe);
            i
        }
    };
    if table.total >= cfg.queue_total {
        res.counters.queue_full += 1;
        out.drop(XmitDrop::NeighQueueFull, p);
        return;
    }
    match table.waits[i].q.push(p) {
        Ok(()) => {
            table.total += 1;
            res.counters.held += 1;
            out.held();
        }
        Err(p) => {
            res.counters.queue_full += 1;
            out.drop(XmitDrop::NeighQueueFull, p);
        }
    }
}

/// Between vectors (and before each vector): sweep the cache, rebuild the learned overlay
/// when the cache changed, release the packets of hops that resolved, probe again or give
/// up on hops that did not. Costs a borrow and two comparisons when nothing is due.
pub(crate) fn service<M: Mbuf + 'static>(x: &mut Xmit, cx: &StageCx<'_>, out: &mut Out<'_, M, Never, XmitDrop>) {
    let Some(res) = x.resolver.as_mut() else { return };
    let now = cx.now;
    let generation = {
        let Ok(mut c) = res.cache.try_borrow_mut() else { return };
        c.expire(now);
        c.generation()
    };
    let changed = res.synced != Some((generation, Arc::as_ptr(&x.l2)));
    if changed {
        let Ok(c) = res.cache.try_borrow() else { return };
        let l2 = Arc::make_mut(&mut x.l2);
        l2.reserve_learned(c.config().capacity);
        l2.set_learned(c.resolved(now));
        res.synced = Some((generation, Arc::as_ptr(&x.l2)));
    }
    if !changed && now < res.next_deadline {
        return;
    }
    let Some(table) = res.hold.as_mut().and_then(|h| h.downcast_mut::<HoldTable<M>>()) else {
        return;
    };
    if table.total == 0 && !table.waits.iter().any(|w| w.used) {
        res.next_deadline = Now(u64::MAX);
        return;
    }
    let Ok(mut conns) = x.conns.try_borrow_mut() else {
        return;
    };
    let cfg = *res.cache.borrow().config();
    let l2 = &*x.l2;
    let mut xc = XmitCounters::default();
    let mut deadline = Now(u64::MAX);
    for w in table.waits.iter_mut().filter(|w| w.used) {
        if l2.neighbor(w.hop).or_else(|| l2.learned(w.hop)).is_some() {
            table.total -= w.q.len();
            for mut p in w.q.drain() {
                let Some(conn) = conns.conn_mut(p.meta.conn).filter(|c| same_flow(c, &p.meta)) else {
                    res.counters.stale_conn += 1;
                    out.drop(XmitDrop::NoConn, p);
                    continue;
                };
                match xmit_one(l2, conn, &mut p, x.uoa) {
                    Ok(s) => {
                        if (s.nat64 || s.frag_mtu != 0)
                            && let Err(r) = crate::finish(&mut p, &s, &mut x.frag_seq, cx.lcore, &mut xc, out)
                        {
                            out.drop(r, p);
                            continue;
                        }
                        xc.add(&s);
                        res.counters.released += 1;
                        out.emit_tx(s.port, p);
                    }
                    Err(r) => {
                        res.counters.stale_conn += 1;
                        out.drop(r, p);
                    }
                }
            }
            w.used = false;
            continue;
        }
        if now >= w.next_probe {
            if w.probes >= cfg.max_probes {
                table.total -= w.q.len();
                for p in w.q.drain() {
                    res.counters.unresolved += 1;
                    out.drop(XmitDrop::NeighUnresolved, p);
                }
                res.counters.hops_failed += 1;
                res.cache.borrow_mut().forget(w.hop);
                w.used = false;
                continue;
            }
            send_probe(l2, w.hop, w.port, out, &mut res.counters);
            w.probes += 1;
            w.next_probe = now.plus_nanos(cfg.retrans_ms.saturating_mul(1_000_000));
        }
        deadline = deadline.min(w.next_probe);
    }
    res.next_deadline = deadline;
    x.counters.merge(&xc);
}

#[cfg(test)]
mod tests;
