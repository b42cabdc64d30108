//! The per-lcore connection table: pool, hash of both tuples, timer wheel, local ports.
//!
//! [`LcoreConns`] is everything one lcore knows about its connections, owned by that lcore
//! and shared (through [`SharedConns`]) by the stages of its graph only, so nothing here
//! locks:
//!
//! - **Pool.** `capacity` connection records are allocated once in [`LcoreConns::new`]; a
//!   [`ConnId`] is an index into them. Free slots sit on a preallocated stack. An empty pool
//!   makes [`LcoreConns::insert`] return [`ConnError::PoolExhausted`] (conn-new counts a
//!   drop with the resource cause), never a crash or an allocation.
//! - **Hash.** Both tuples of every connection are hashed, as DPVS's `dp_vs_conn_hash` does,
//!   so one lookup finds a packet of either direction. Buckets (`2^buckets_log2` heads) and
//!   chain links (one node per tuple, two per pool slot) are index-linked arrays allocated in
//!   `new`: inserting links two nodes, nothing is allocated. Each node keeps the tuple's full
//!   64-bit hash (rvs-core's seeded `mix64`), compared before the tuple, so a chain walk
//!   touches a connection record only on a likely match.
//! - **Timers.** A hashed timer wheel of [`WHEEL_SLOTS`] slots of `timer_tick_ms` each
//!   (Varghese and Lauck, "Hashed and hierarchical timing wheels", SOSP 1987, scheme 4)
//!   with index-linked doubly linked slot lists. A packet only writes the connection's
//!   `expires`; the wheel is not touched (lazy refresh). When a slot comes due, an entry whose
//!   `expires` has moved on is re-inserted at its new deadline, and one that is due expires.
//!   Only a state change that shortens the deadline below the slot the entry waits in (a FIN
//!   or RST on an established connection) moves the entry, in O(1). Each entry is visited at
//!   most once per refresh-and-revolution, so expiry is amortised O(1) per connection.
//! - **Jitter.** At insertion each connection draws a random offset below one second from a
//!   seeded SplitMix64, kept for its whole life and added to every deadline, as DPVS's
//!   `dpvs_time_rand_delay` does on the connection's timeout (whose sub-second part then
//!   survives its state changes): connections made in one burst do not expire in one burst.
//! - **State.** [`LcoreConns::on_packet`] runs the TCP state machine of [`crate::state`] for
//!   every packet, sets the timeout from the service's [`Timeouts`], pushes `expires` forward,
//!   and moves the destination's active/inactive counters when the state crosses ESTABLISHED,
//!   exactly where IPVS's `set_tcp_state` and DPVS's `tcp_state_trans` do.
//! - **Expiry** ([`LcoreConns::expire`]) unhashes both tuples, releases the FNAT/SNAT local
//!   port to [`SaPool`], the destination counters (and clears the overload flag by IPVS's
//!   rule), the connection's persistence template ([`crate::persist`]: the template counts its
//!   connections and expires only after the last) and the pool slot.
//!
//! Cost: the per-packet work of a hit (hash, chain walk, [`LcoreConns::on_packet_with`]) is
//! measured through lookup, in iai instruction counts: 351 instructions per packet for the
//! whole lookup stage on a hit at 64k connections (see rvs-lookup's crate doc), down from 451
//! before `on_packet_with` (one bounds and liveness check, the TCP transition as one read of a
//! table expanded by the four flag bits, no division to compare the deadline with the timer
//! slot) and the packet-moving changes in lookup. conn-new's benches, which run `insert` and
//! `on_packet`, went from 1233 to 1168 instructions per packet (FNAT) and 1009 to 943 (NAT).
//!
//! Counters: a new connection is counted inactive ([`LcoreConns::bind_dest`], DPVS's
//! `dp_vs_conn_bind_dest`: "initial state of conn should be INACTIVE"); [`ConnFlags::INACTIVE`]
//! always says which counter a bound connection sits in.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_core::addr::Proto;
use rvs_core::hash::mix64;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::rng::SplitMix64;
use rvs_core::service::{Dest, Forward, Snapshot, Timeouts};
use rvs_core::time::Now;

use crate::conn::{Conn, ConnFlags, ConnId, Tuple};
use crate::persist::{NO_TEMPLATE, TemplateHandle, Templates};
use crate::sapool::SaPool;
use crate::state::{self, Table, TcpState};

/// Slots of the timer wheel (one revolution is `WHEEL_SLOTS * timer_tick_ms`: 655 s at the
/// default 10 ms tick; longer timeouts simply go round more than once).
pub const WHEEL_SLOTS: usize = 1 << 16;

const NIL: u32 = u32::MAX;

/// The largest pool a table accepts (ids and chain nodes fit in 32 bits).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Sizes and seeds of one lcore's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnConfig {
    /// Connections in the pool (DPVS: 2,097,152 per socket).
    pub capacity: usize,
    /// log2 of the number of hash buckets (DPVS: 20). Clamped to 1..=30.
    pub buckets_log2: u8,
    /// Seed of the tuple hash and of the timer jitter.
    pub seed: u64,
    /// Timer wheel tick in milliseconds (0 reads as 1).
    pub timer_tick_ms: u32,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            capacity: 1 << 16,
            buckets_log2: 16,
            seed: 0x5eed_c0de_0000_0001,
            timer_tick_ms: 10,
        }
    }
}

/// Why a connection could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnError {
    /// Every pool slot is in use.
    PoolExhausted,
    /// A connection with one of the two tuples is already in the table.
    Exists,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnError::PoolExhausted => "connection pool exhausted",
            ConnError::Exists => "a connection with this tuple exists",
        })
    }
}

impl std::error::Error for ConnError {}

/// Counts kept by the table (read for display; plain integers, one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnStats {
    /// Connections inserted.
    pub inserted: u64,
    /// Connections expired by the timer.
    pub expired: u64,
    /// Connections removed explicitly.
    pub removed: u64,
    /// Inserts refused: pool exhausted.
    pub exhausted: u64,
    /// Inserts refused: tuple already present.
    pub exists: u64,
    /// Wheel entries that came due but had been refreshed, re-inserted.
    pub timer_requeued: u64,
    /// Wheel entries moved earlier by a state change.
    pub timer_moved: u64,
}

/// One hash-chain node: a tuple of a connection (node `2 * id` inbound, `2 * id + 1`
/// outbound).
#[derive(Debug, Clone, Copy)]
struct Node {
    hash: u64,
    next: u32,
}

/// A pool slot: the connection, whether it is live, its timer-wheel links and the absolute
/// tick of the slot it waits in, and its jitter in nanoseconds (added to every deadline).
#[derive(Debug, Clone)]
struct Slot {
    conn: Conn,
    ttick: u64,
    tnext: u32,
    tprev: u32,
    jitter: u32,
    live: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            conn: Conn::default(),
            ttick: 0,
            tnext: NIL,
            tprev: NIL,
            jitter: 0,
            live: false,
        }
    }
}

/// Everything one lcore keeps about its connections.
#[derive(Debug)]
pub struct LcoreConns {
    cfg: ConnConfig,
    lcore: u16,
    lcores: u16,
    loads: Arc<LoadTable>,
    /// The pool: each connection with its timer links and jitter, side by side so a packet
    /// touches one record.
    slots: Box<[Slot]>,
    free: Vec<u32>,
    len: usize,
    // Hash.
    buckets: Box<[u32]>,
    mask: u64,
    nodes: Box<[Node]>,
    // Timer wheel.
    wheel: Box<[u32]>,
    cur_tick: u64,
    tick_ns: u64,
    rng: SplitMix64,
    ports: SaPool,
    stats: ConnStats,
    /// The global persistence templates, when this lcore's services may be persistent.
    templates: Option<Arc<Templates>>,
    /// The latest time seen (insert, on_packet, expire): when a removed connection detaches
    /// from its template.
    now: Now,
}

/// The table shared by the stages of one lcore's graph.
pub type SharedConns = Rc<RefCell<LcoreConns>>;

/// The seeded hash of a tuple (rvs-core's `mix64` over the addresses, ports and protocol).
#[inline]
pub fn hash_tuple(t: &Tuple, seed: u64) -> u64 {
    let s = t.saddr.0;
    let d = t.daddr.0;
    let ports = ((t.sport as u64) << 24) | ((t.dport as u64) << 8) | t.proto.number() as u64;
    let h = mix64(seed ^ (s as u64) ^ ((s >> 64) as u64).rotate_left(29));
    let h = mix64(h ^ (d as u64) ^ ((d >> 64) as u64).rotate_left(13));
    mix64(h ^ ports)
}

impl LcoreConns {
    /// A table for lcore `lcore` of `lcores`, with its pool, buckets and wheel allocated
    /// now (nothing is allocated afterwards).
    pub fn new(cfg: ConnConfig, lcore: u16, lcores: u16, loads: Arc<LoadTable>) -> Self {
        let cap = cfg.capacity.clamp(1, MAX_CAPACITY);
        let blog = cfg.buckets_log2.clamp(1, 30);
        let nb = 1usize << blog;
        let tick_ns = u64::from(cfg.timer_tick_ms.max(1)) * 1_000_000;
        LcoreConns {
            cfg: ConnConfig {
                capacity: cap,
                buckets_log2: blog,
                ..cfg
            },
            lcore,
            lcores: lcores.max(1),
            loads,
            slots: vec![Slot::default(); cap].into_boxed_slice(),
            free: (0..cap as u32).rev().collect(),
            len: 0,
            buckets: vec![NIL; nb].into_boxed_slice(),
            mask: (nb - 1) as u64,
            nodes: vec![Node { hash: 0, next: NIL }; 2 * cap].into_boxed_slice(),
            wheel: vec![NIL; WHEEL_SLOTS].into_boxed_slice(),
            cur_tick: 0,
            tick_ns,
            rng: SplitMix64::new(cfg.seed ^ 0x6a09_e667_f3bc_c908 ^ u64::from(lcore)),
            ports: SaPool::new(lcore, lcores),
            stats: ConnStats::default(),
            templates: None,
            now: Now(0),
        }
    }

    /// The configuration (capacity and bucket count as clamped).
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }
    /// This table's lcore.
    pub fn lcore(&self) -> u16 {
        self.lcore
    }
    /// Lcores sharing destination limits and local ports.
    pub fn lcores(&self) -> u16 {
        self.lcores
    }
    /// Live connections.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Pool size.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    /// The table's counts.
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }
    /// FNAT/SNAT local ports of this lcore.
    #[inline]
    pub fn ports(&mut self) -> &mut SaPool {
        &mut self.ports
    }
    /// This lcore's destination counters.
    #[inline]
    pub fn loads(&self) -> &Arc<LoadTable> {
        &self.loads
    }

    /// Use `t` as the global persistence table (the same `Arc` every lcore and this lcore's
    /// schedule stage hold): connections attached to a template detach from it on expiry.
    pub fn set_templates(&mut self, t: Arc<Templates>) {
        self.templates = Some(t);
    }
    /// The global persistence table, if set.
    pub fn templates(&self) -> Option<&Arc<Templates>> {
        self.templates.as_ref()
    }
    /// Attach live connection `id` to template `h` (conn-new, right after the insert): the
    /// template counts it until it is released. False when there is no table, no such
    /// connection, or the handle is stale (the connection then lives without a template).
    pub fn attach_template(&mut self, id: ConnId, h: TemplateHandle) -> bool {
        let Some(t) = self.templates.as_ref() else { return false };
        let Some(s) = self.slots.get_mut(id as usize).filter(|s| s.live) else {
            return false;
        };
        if h == NO_TEMPLATE || s.conn.template != NO_TEMPLATE || !t.attach(h) {
            return false;
        }
        s.conn.template = h;
        true
    }

    #[inline]
    fn hash(&self, t: &Tuple) -> u64 {
        hash_tuple(t, self.cfg.seed)
    }

    /// The connection a packet with tuple `t` belongs to, and the packet's direction.
    #[inline(always)]
    pub fn lookup(&self, t: &Tuple) -> Option<(ConnId, Dir)> {
        let h = self.hash(t);
        let mut n = self.buckets[(h & self.mask) as usize];
        while n != NIL {
            let node = self.nodes[n as usize];
            if node.hash == h {
                let id = n >> 1;
                let dir = if n & 1 == 0 { Dir::In } else { Dir::Out };
                if self.slots[id as usize].conn.tuple(dir) == t {
                    return Some((id, dir));
                }
            }
            n = node.next;
        }
        None
    }

    /// A live connection.
    #[inline]
    pub fn conn(&self, id: ConnId) -> Option<&Conn> {
        let i = id as usize;
        let s = self.slots.get(i)?;
        if s.live { Some(&s.conn) } else { None }
    }

    /// A live connection, writable. Changing its tuples does not rehash it: the table keeps
    /// finding (and eventually unhashing) it under the tuples it was inserted with.
    #[inline]
    pub fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let i = id as usize;
        let s = self.slots.get_mut(i)?;
        if s.live { Some(&mut s.conn) } else { None }
    }

    /// Every live connection (control plane: `ipvsadm -L -c`).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (i as ConnId, &s.conn))
    }

    /// DPVS's `dp_vs_conn_bind_dest` on this lcore's share of the limits: refuse (false, the
    /// destination flagged overloaded) when `dest` holds its share of `max_conn`; otherwise
    /// bind `conn` to it, count it inactive (a persistence template: persistent), and flag
    /// it [`ConnFlags::BOUND`] so expiry releases the count.
    pub fn bind_dest(&self, conn: &mut Conn, dest: &Dest) -> bool {
        if !self.loads.admit(dest, self.lcores) {
            return false;
        }
        conn.dest = dest.id;
        if conn.flags.has(ConnFlags::TEMPLATE) {
            self.loads.inc(dest.id, Counter::Persistent);
        } else {
            conn.flags.set(ConnFlags::INACTIVE);
            self.loads.inc(dest.id, Counter::Inactive);
        }
        conn.flags.set(ConnFlags::BOUND);
        true
    }

    /// Insert `conn`: take a pool slot, hash both tuples, arm the timer. The first timeout is
    /// `conn.timeout_secs` when set, else the DPVS default of its state (TCP NONE: 2 s; UDP,
    /// ICMP: 300 s), plus this connection's jitter (below 1 s). `conn.lcore` is set to this
    /// lcore. Allocates nothing.
    pub fn insert(&mut self, conn: Conn, now: Now) -> Result<ConnId, ConnError> {
        if self.lookup(&conn.in_tuple).is_some() || self.lookup(&conn.out_tuple).is_some() {
            self.stats.exists += 1;
            return Err(ConnError::Exists);
        }
        let Some(id) = self.free.pop() else {
            self.stats.exhausted += 1;
            return Err(ConnError::PoolExhausted);
        };
        let i = id as usize;
        self.now = self.now.max(now);
        let jitter = self.rng.below(Now::SEC) as u32;
        self.slots[i].jitter = jitter;
        let c = &mut self.slots[i].conn;
        *c = conn;
        c.lcore = self.lcore;
        if c.timeout_secs == 0 {
            c.timeout_secs = state::proto_timeout(c.in_tuple.proto, c.state, &Timeouts::DPVS);
        }
        c.expires = now.plus_secs(u64::from(c.timeout_secs)).plus_nanos(u64::from(jitter));
        let seed = self.cfg.seed;
        let (hin, hout) = (hash_tuple(&c.in_tuple, seed), hash_tuple(&c.out_tuple, seed));
        let expires = c.expires;
        self.link_node(2 * id, hin);
        self.link_node(2 * id + 1, hout);
        self.slots[i].live = true;
        self.len += 1;
        let due = self.due_tick(expires);
        self.timer_link(id, due);
        self.stats.inserted += 1;
        Ok(id)
    }

    /// Per packet of connection `id` (the SYN that created it included): the TCP state
    /// transition (the "input only" table for DR and TUNNEL until an outbound packet is
    /// seen, as IPVS does), the timeout of the new state from `timeouts`, `expires` pushed
    /// to `now` + timeout + jitter, and the destination's active/inactive counters moved when
    /// the state crosses ESTABLISHED. UDP and ICMP keep their "normal" state with the `udp`
    /// and `icmp` timeouts. An unknown id does nothing. Allocates nothing; the timer wheel
    /// is touched only when the deadline moves earlier than the slot the connection waits in.
    #[inline]
    pub fn on_packet(&mut self, id: ConnId, dir: Dir, tcp_flags: TcpFlags, timeouts: &Timeouts, now: Now) {
        self.on_packet_with(id, dir, tcp_flags, now, |_| timeouts);
    }

    /// [`LcoreConns::on_packet`] for the hit path of lookup: the timeouts are chosen by
    /// `timeouts`, called once with the live connection before its state moves (lookup
    /// resolves, and may re-home, the connection's service there), and the state numbers
    /// before and after the packet are returned; `None` (nothing done, `timeouts` not called)
    /// for an id that is not live. One bounds check and one liveness check per packet, the
    /// record read once, no division: the timer wheel's slot is computed only when the
    /// deadline moves earlier than the slot the connection waits in.
    #[inline(always)]
    pub fn on_packet_with<'t>(
        &mut self,
        id: ConnId,
        dir: Dir,
        tcp_flags: TcpFlags,
        now: Now,
        timeouts: impl FnOnce(&mut Conn) -> &'t Timeouts,
    ) -> Option<(u8, u8)> {
        let slot = self.slots.get_mut(id as usize).filter(|s| s.live)?;
        self.now = self.now.max(now);
        let c = &mut slot.conn;
        let timeouts = timeouts(c);
        let before = c.state;
        let timeout = match c.in_tuple.proto {
            Proto::Tcp => {
                let input_only = matches!(c.fwd, Forward::Dr | Forward::Tunnel) && !c.flags.has(ConnFlags::OUTPUT_SEEN);
                if dir == Dir::Out {
                    c.flags.set(ConnFlags::OUTPUT_SEEN);
                }
                let from = TcpState::from_u8(before);
                let to = state::transition(Table::for_packet(dir, input_only), from, tcp_flags);
                if to != from {
                    if c.flags.has(ConnFlags::BOUND) && !c.flags.has(ConnFlags::TEMPLATE) {
                        let inactive = c.flags.has(ConnFlags::INACTIVE);
                        if !inactive && to != TcpState::Established {
                            self.loads.shift(c.dest, Counter::Active, Counter::Inactive);
                            c.flags.set(ConnFlags::INACTIVE);
                        } else if inactive && to == TcpState::Established {
                            self.loads.shift(c.dest, Counter::Inactive, Counter::Active);
                            c.flags.clear(ConnFlags::INACTIVE);
                        }
                    }
                    c.state = to.number();
                }
                state::timeout(to, timeouts)
            }
            Proto::Udp => timeouts.udp,
            Proto::Icmp | Proto::Icmp6 => timeouts.icmp,
        };
        let after = c.state;
        c.timeout_secs = timeout;
        let expires = now.plus_secs(u64::from(timeout)).plus_nanos(u64::from(slot.jitter));
        c.expires = expires;
        // The entry moves when max(due_tick(expires), cur_tick) < ttick. With w = ttick:
        // ceil(e / tick) <= w - 1 exactly when e <= (w - 1) * tick (saturating: past u64 every
        // e qualifies), so the common case (a deadline pushed later) needs no division.
        let waits_at = slot.ttick;
        if self.cur_tick < waits_at && expires.nanos() <= (waits_at - 1).saturating_mul(self.tick_ns) {
            let due = self.due_tick(expires).max(self.cur_tick);
            self.timer_unlink(id);
            self.timer_link(id, due);
            self.stats.timer_moved += 1;
        }
        Some((before, after))
    }

    /// Remove connection `id` now (not by its timer), releasing what expiry releases.
    /// Returns the record as it was, or `None` for an id that is not live.
    pub fn remove(&mut self, id: ConnId, snap: &Snapshot) -> Option<Conn> {
        if !self.slots.get(id as usize).is_some_and(|s| s.live) {
            return None;
        }
        self.timer_unlink(id);
        self.release(id, snap);
        self.stats.removed += 1;
        Some(self.slots[id as usize].conn.clone())
    }

    /// Expire due connections, at most `budget` of them. Returns how many expired.
    pub fn expire(&mut self, now: Now, budget: usize, snap: &Snapshot) -> usize {
        self.expire_with(now, budget, snap, |_, _| {})
    }

    /// As [`LcoreConns::expire`], calling `f` with each connection just before it is
    /// released (DPVS sends RSTs for expiring NAT/FNAT connections there; persistence counts
    /// its templates' connections).
    pub fn expire_with(&mut self, now: Now, budget: usize, snap: &Snapshot, mut f: impl FnMut(ConnId, &Conn)) -> usize {
        let now_tick = now.nanos() / self.tick_ns;
        self.now = self.now.max(now);
        let mut done = 0usize;
        if budget == 0 {
            return 0;
        }
        // After a long pause every slot is due once: start one revolution back.
        if now_tick >= self.cur_tick + WHEEL_SLOTS as u64 {
            self.cur_tick = now_tick + 1 - WHEEL_SLOTS as u64;
        }
        while self.cur_tick <= now_tick {
            let slot = (self.cur_tick as usize) & (WHEEL_SLOTS - 1);
            let mut n = self.wheel[slot];
            self.wheel[slot] = NIL;
            while n != NIL {
                let next = self.slots[n as usize].tnext;
                let expires = self.slots[n as usize].conn.expires;
                if expires <= now {
                    if done == budget {
                        // Out of budget: put this entry and the unvisited rest back for the
                        // next call as one piece, still linked, so a call costs its budget and
                        // not the length of the slot (a SYN flood fills one slot with many
                        // connections due together). Entries re-linked into this slot during
                        // the walk (a later revolution) stay in front.
                        self.slots[n as usize].tprev = NIL;
                        let head = self.wheel[slot];
                        if head == NIL {
                            self.wheel[slot] = n;
                        } else {
                            let mut t = head;
                            while self.slots[t as usize].tnext != NIL {
                                t = self.slots[t as usize].tnext;
                            }
                            self.slots[t as usize].tnext = n;
                            self.slots[n as usize].tprev = t;
                        }
                        return done;
                    }
                    f(n, &self.slots[n as usize].conn);
                    self.release(n, snap);
                    self.stats.expired += 1;
                    done += 1;
                } else {
                    let due = self.due_tick(expires).max(self.cur_tick + 1);
                    self.timer_link(n, due);
                    self.stats.timer_requeued += 1;
                }
                n = next;
            }
            self.cur_tick += 1;
        }
        done
    }

    /// The wheel tick at or after `t`.
    #[inline]
    fn due_tick(&self, t: Now) -> u64 {
        t.nanos().div_ceil(self.tick_ns)
    }

    #[inline]
    fn link_node(&mut self, n: u32, hash: u64) {
        let b = (hash & self.mask) as usize;
        self.nodes[n as usize] = Node {
            hash,
            next: self.buckets[b],
        };
        self.buckets[b] = n;
    }

    #[inline]
    fn unlink_node(&mut self, n: u32) {
        let b = (self.nodes[n as usize].hash & self.mask) as usize;
        let mut p = self.buckets[b];
        if p == n {
            self.buckets[b] = self.nodes[n as usize].next;
        } else {
            while p != NIL {
                let next = self.nodes[p as usize].next;
                if next == n {
                    self.nodes[p as usize].next = self.nodes[n as usize].next;
                    break;
                }
                p = next;
            }
        }
        self.nodes[n as usize].next = NIL;
    }

    /// Put `id` at the head of the slot of absolute tick `tick` (clamped to the cursor).
    #[inline]
    fn timer_link(&mut self, id: u32, tick: u64) {
        let tick = tick.max(self.cur_tick);
        let slot = (tick as usize) & (WHEEL_SLOTS - 1);
        let head = self.wheel[slot];
        let i = id as usize;
        self.slots[i].tnext = head;
        self.slots[i].tprev = NIL;
        if head != NIL {
            self.slots[head as usize].tprev = id;
        }
        self.wheel[slot] = id;
        self.slots[i].ttick = tick;
    }

    #[inline]
    fn timer_unlink(&mut self, id: u32) {
        let i = id as usize;
        let (p, n) = (self.slots[i].tprev, self.slots[i].tnext);
        if p != NIL {
            self.slots[p as usize].tnext = n;
        } else {
            let slot = (self.slots[i].ttick as usize) & (WHEEL_SLOTS - 1);
            if self.wheel[slot] == id {
                self.wheel[slot] = n;
            }
        }
        if n != NIL {
            self.slots[n as usize].tprev = p;
        }
        self.slots[i].tnext = NIL;
        self.slots[i].tprev = NIL;
    }

    /// Unhash, release the local port and the destination counters, free the slot. The
    /// timer entry must already be unlinked (or detached by the wheel walk).
    fn release(&mut self, id: u32, snap: &Snapshot) {
        let i = id as usize;
        self.unlink_node(2 * id);
        self.unlink_node(2 * id + 1);
        self.slots[i].live = false;
        self.slots[i].tnext = NIL;
        self.slots[i].tprev = NIL;
        self.len -= 1;
        self.free.push(id);
        let c = &self.slots[i].conn;
        if matches!(c.fwd, Forward::Fnat | Forward::Snat) {
            let (laddr, lport) = (c.laddr(), c.lport());
            let (raddr, rport) = SaPool::pool_key(c.in_tuple.proto, c.daddr(), c.dport());
            self.ports.release(laddr, lport, raddr, rport);
        }
        let h = std::mem::replace(&mut self.slots[i].conn.template, NO_TEMPLATE);
        if h != NO_TEMPLATE
            && let Some(t) = &self.templates
        {
            t.detach(h, self.now);
        }
        let c = &self.slots[i].conn;
        if c.flags.has(ConnFlags::BOUND) {
            let counter = if c.flags.has(ConnFlags::TEMPLATE) {
                Counter::Persistent
            } else if c.flags.has(ConnFlags::INACTIVE) {
                Counter::Inactive
            } else {
                Counter::Active
            };
            self.loads.dec(c.dest, counter);
            if let Some(d) = find_dest(snap, c) {
                self.loads.relieve(d, snap.lcores);
            }
        }
    }
}

/// The connection's destination in `snap`: through its service index when that service still
/// has it, else by id in any service (the control plane may have renumbered services).
fn find_dest<'a>(snap: &'a Snapshot, c: &Conn) -> Option<&'a Dest> {
    if let Some((_, d)) = snap.services.get(c.svc as usize).and_then(|s| s.dest_by_id(c.dest)) {
        return Some(d);
    }
    snap.services.iter().find_map(|s| s.dest_by_id(c.dest).map(|(_, d)| d))
}
