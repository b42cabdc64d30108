//! rvs-lookup: the lookup stage. Finds a packet's connection by 5-tuple in either direction in
//! this lcore's table, the part of DPVS's `dp_vs_in` between the pre-routing hooks and
//! scheduling, and advances the connection's TCP/UDP state machine and timeout.
//!
//! For each packet, in arrival order:
//!
//! 1. An IP fragment is dropped ([`LookupDrop::Fragment`]): DPVS never forwards fragments, and a
//!    non-first fragment carries no ports to look up. (Parse normally stops them earlier;
//!    this keeps the rule if a reassembly policy is added in front.)
//! 2. The tuple (protocol, addresses, ports or ICMP identifier) is looked up among both
//!    tuples of every connection (`dp_vs_conn_hash` keeps both). A hit sets `meta.conn` and
//!    `meta.dir`, runs [`LcoreConns::on_packet`] (the TCP state transition, the state's timeout
//!    from the connection's service, the expiry pushed forward, the destination's
//!    active/inactive counters) and goes on [`LookupNext::Hit`] (to synproxy step 3 / xmit).
//! 3. A miss whose destination is an FNAT/SNAT local address and whose port another lcore owns
//!    ([`SaPool::owner_lcore`], DPVS's `sa_pool` partition) is a reply for that lcore's
//!    connection: it is redirected there, as DPVS's flow rules or `dp_vs_redirect` would.
//! 4. With an owner table set ([`Lookup::set_owners`], several lcores), a miss whose tuple
//!    another lcore owns ([`rvs_conn::OwnerTable`], DPVS's `dp_vs_redirect`: NAT replies and
//!    packets of a connection that arrived on another lcore's queue) is redirected there.
//! 5. Any other miss goes on [`LookupNext::Miss`] (to schedule), protocols rvs does not track
//!    included: schedule sends those to the host path.
//!
//! The service's timeouts are found through `cx.snapshot.services[conn.svc]` when the snapshot
//! is the one the connection was made under ([`rvs_conn::Conn::service_timeouts`], which
//! conn-new uses too for packets joining a connection). Under a newer snapshot the connection is re-homed
//! once, on its first packet: its service is the one of its protocol and key (VIP, port) that
//! still holds its destination (the control plane keeps destination ids stable across reloads,
//! so a service that moved to another index is found again; for a match service, which has no
//! key, the destination alone), or else the service with its key whose destination was
//! removed; the connection's service index and generation are updated, so later packets take
//! the direct path.
//! When neither holds (the service, or the destination, was removed) DPVS's defaults apply,
//! `service_gone` counts it, and the connection is marked as having no service under that
//! snapshot (so its later packets do not search again).
//!
//! The connection table is borrowed once per vector. Nothing is allocated per packet.
//!
//! **ICMP errors** (IPVS's `ip_vs_in_icmp` / `ip_vs_in_icmp_v6`): an ICMP destination
//! unreachable (fragmentation needed included), source quench or time exceeded, or an ICMPv6
//! destination unreachable, packet too big, time exceeded or parameter problem, is matched by
//! the packet it quotes, read here through rvs-core's wire views (parse describes the outer
//! packet only). The quoted packet is one the balancer sent, so its tuple reversed is a tuple
//! of the connection: toward the VIP or a local address it matches the inbound tuple (the error
//! travels as an inbound packet, `dir` In, on to the real server), toward the real server's
//! side the outbound one (`dir` Out, on to the client). A match goes on [`LookupNext::Hit`] with
//! `meta.conn`, `meta.dir`, `meta.icmp_err` and the quoted header offsets
//! (`meta.inner_l3_off`, `meta.inner_l4_off`) set for xmit to translate both layers; the state
//! machine does not run and the timeout is not refreshed. An error quoting another lcore's
//! local port or owned tuple is redirected there. Anything else (no match, a quote cut short,
//! a quoted non-first fragment, a quoted ICMP message that is not an echo, redirects) goes on
//! as before: a miss, which schedule hands to the host path. A quoted UDP datagram that
//! carried FNAT's UOA is matched through either carrier: the IPv4 option ("ipo") is part of
//! the quoted header's IHL; DPVS's protocol-248 opp header ("opp") is stepped over to the UDP
//! header behind it (`meta.inner_l4_off` points at UDP; the quoted IP header still says 248).
//! Whether the error can then be translated is xmit's to say: see rvs-xmit's `icmp` module.
//!
//! Persistence templates are looked up by schedule, on the new-connection path only.
//!
//! Not done here: DPVS's ACL and blacklist hooks.
//!
//! | issue-4 feature | shown by |
//! |---|---|
//! | ICMP frag-needed for a connection found in both directions, no state change | `tests/icmp.rs::frag_needed_finds_the_connection_in_both_directions` |
//! | ICMP time exceeded / port unreachable quoting UDP, NAT | `tests/icmp.rs::time_exceeded_and_port_unreachable_for_udp_and_nat` |
//! | ICMPv6 packet too big, destination unreachable, time exceeded (FNAT over IPv6) | `tests/icmp.rs::icmpv6_packet_too_big_dest_unreach_and_time_exceeded` |
//! | unmatched, truncated, fragment-quoting, redirect and echo messages go on as misses | `tests/icmp.rs::unmatched_or_unusable_errors_go_on_as_misses` |
//! | errors quoting another lcore's local port are redirected | `tests/icmp.rs::errors_quoting_another_lcores_local_port_are_redirected` |
//! | errors quoting a UDP datagram that carried UOA (IPv4 option 31, or the protocol-248 opp header over IPv4 and IPv6) matched by the UDP ports behind it | `tests/icmp.rs::errors_quoting_a_datagram_with_uoa_match_through_either_carrier` |
//! | UDP: hits in both directions with the service's udp timeout | `rvs-conn-new` `tests/udp.rs` |
//!
//! Measured cost per packet, in iai instruction counts (callgrind Ir of one vector through
//! `Node::run`, 64k FNAT connections, `benches/iai-guard`): a hit (an ACK, half each
//! direction, state machine and timer refresh included) 351 instructions per packet in vectors
//! of 256 (374 in vectors of 32), a miss 212 (235); before the hit path was reworked, 451 /
//! 262. Time (see [`Lookup`] for the table and the command): about 200 ns for a hit and 90 ns
//! for a miss at 64k connections, 420 / 190 ns at 1M, on a loaded shared 2-vCPU machine
//! (figures from before the rework).
//!
//! Where a hit's instructions go, and what keeps them few: the tuple hash (three `mix64`
//! rounds) and the chain walk, which compares the stored 64-bit hash before the tuple;
//! [`LcoreConns::on_packet_with`], which reads the record once, resolves the service's
//! timeouts on it, takes the TCP transition as one table read and compares the new deadline
//! with the timer slot without dividing; and moving the packet, which is done once: the
//! untraced loop classifies the vector in place over the input slice, then moves each packet
//! to its queue (a by-value loop copied each 144-byte packet twice more). Counters are
//! summed in a local and added once per vector; the trace record is built only with tracing
//! on.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use rvs_conn::{Home, LcoreConns, OwnerTable, SaPool, SharedConns, TcpState, Tuple};
use rvs_core::addr::{Af, Proto};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::Dir;
use rvs_core::stage::{Out, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::ipv4::Ipv4Packet;
use rvs_core::wire::{icmp, icmpv6, opp};

rvs_core::labels! {
    /// Where lookup sends a packet.
    pub enum LookupNext {
        /// A connection was found: `meta.conn` and `meta.dir` are set, the state advanced.
        Hit = ("hit", "a connection was found; on to xmit"),
        /// No connection: schedule decides (new connection, host path or drop).
        Miss = ("miss", "no connection; on to schedule"),
    }
}

rvs_core::labels! {
    /// Why lookup drops.
    pub enum LookupDrop {
        /// An IP fragment: DPVS never forwards fragments.
        Fragment = ("fragment", "IP fragment; fragments are not forwarded"),
    }
}

impl DropReason for LookupDrop {
    fn cause(self) -> Cause {
        match self {
            LookupDrop::Fragment => Cause::NotSupported,
        }
    }
}

/// What lookup did with one packet, kept (when tracing is on) in a fixed ring like VPP's
/// per-node trace buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupTrace {
    /// The tuple looked up (default for an untracked protocol).
    pub tuple: Tuple,
    /// The connection found, [`rvs_core::meta::NO_CONN`] on a miss.
    pub conn: u32,
    /// Direction relative to the connection.
    pub dir: Dir,
    /// Connection state before the packet (IPVS numbering; 0 on a miss).
    pub state_before: u8,
    /// Connection state after it.
    pub state_after: u8,
    /// Where the packet went: a [`LookupNext`] index, or `REDIRECTED` / `DROPPED`.
    pub outcome: u8,
}

impl LookupTrace {
    /// [`LookupTrace::outcome`] of a packet redirected to another lcore.
    pub const REDIRECTED: u8 = 0xfe;
    /// [`LookupTrace::outcome`] of a dropped packet.
    pub const DROPPED: u8 = 0xff;
}

/// Lookup's own counters, beyond the per-label counts the graph keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupCounters {
    /// Hits on the inbound tuple (client -> VIP).
    pub hit_in: u64,
    /// Hits on the outbound tuple (real server -> balancer).
    pub hit_out: u64,
    /// Misses handed to schedule.
    pub miss: u64,
    /// Replies redirected to the lcore owning their local port.
    pub redirected: u64,
    /// Misses redirected to the lcore the owner table names.
    pub redirected_owner: u64,
    /// ICMP/ICMPv6 errors whose quoted packet belongs to a connection (passed on as hits,
    /// `meta.icmp_err` set, no state transition).
    pub icmp_err_hit: u64,
    /// ICMP/ICMPv6 errors whose quoted packet matched no connection (passed on as misses).
    pub icmp_err_miss: u64,
    /// ICMP/ICMPv6 errors redirected to the lcore owning the quoted packet's connection.
    pub icmp_err_redirected: u64,
    /// Packets that changed their connection's TCP state.
    pub state_changes: u64,
    /// Hits whose service is gone from the snapshot (DPVS default timeouts applied).
    pub service_gone: u64,
    /// Connections re-homed to their service's index in a newer snapshot (once each per
    /// snapshot change).
    pub rehomed: u64,
}

impl LookupCounters {
    fn add(&mut self, o: &LookupCounters) {
        self.hit_in += o.hit_in;
        self.hit_out += o.hit_out;
        self.miss += o.miss;
        self.redirected += o.redirected;
        self.redirected_owner += o.redirected_owner;
        self.icmp_err_hit += o.icmp_err_hit;
        self.icmp_err_miss += o.icmp_err_miss;
        self.icmp_err_redirected += o.icmp_err_redirected;
        self.state_changes += o.state_changes;
        self.service_gone += o.service_gone;
        self.rehomed += o.rehomed;
    }
}

/// The lookup stage of one lcore.
///
/// Instruction counts (the stable measure on a shared machine) are in the crate doc. Time per
/// packet, measured before the hit path was reworked, with
/// `CARGO_TARGET_DIR=/work/target-conn cargo bench -p rvs-lookup --bench lookup`
/// (criterion; one vector of 32 heap packets per iteration through `Node::run`, drawn in turn
/// from 8192 packets of random flows so records are not cache-hot; hits are ACKs on FNAT
/// connections, half each direction; 2n buckets for n connections). The machine is a shared
/// 2-vCPU VM: these runs had a load average of about 8, so absolute times are inflated;
/// compare with `harness` (a pass-through stage, same queues) from the same run:
///
/// | case | ns/packet, whole | minus harness |
/// |---|---|---|
/// | harness (pass-through) | 34 | - |
/// | hit, 64k connections | 233 | 199 |
/// | miss, 64k connections | 121 | 87 |
/// | hit, 1M connections | 453 | 419 |
/// | miss, 1M connections | 224 | 190 |
///
/// An earlier run on a quieter moment (before pool slots held the timer links, no harness
/// case) gave 114 / 57 ns (hit / miss, 64k) and 240 / 148 ns (1M). A hit costs about twice a
/// miss because it reads and writes the connection record, which at these table sizes is a
/// cache miss; the state transition itself is a table read.
#[derive(Debug)]
pub struct Lookup {
    conns: SharedConns,
    counters: LookupCounters,
    trace: Option<TraceRing>,
    owners: Option<Arc<OwnerTable>>,
}

#[derive(Debug)]
struct TraceRing {
    buf: Box<[LookupTrace]>,
    next: usize,
    len: usize,
}

impl TraceRing {
    #[inline]
    fn push(&mut self, t: LookupTrace) {
        self.buf[self.next] = t;
        self.next = (self.next + 1) % self.buf.len();
        self.len = (self.len + 1).min(self.buf.len());
    }
}

impl Lookup {
    /// A lookup stage over this lcore's connections.
    pub fn new(conns: SharedConns) -> Self {
        Lookup {
            conns,
            counters: LookupCounters::default(),
            trace: None,
            owners: None,
        }
    }
    /// Consult `owners` on a miss and redirect packets another lcore owns (pipelines with
    /// several lcores; control path).
    pub fn set_owners(&mut self, owners: Arc<OwnerTable>) {
        self.owners = Some(owners);
    }
    /// The shared connection table.
    pub fn conns(&self) -> &SharedConns {
        &self.conns
    }
    /// Cumulative counters.
    pub fn counters(&self) -> LookupCounters {
        self.counters
    }
    /// Keep a trace record of the last `n` packets (0 turns tracing off). Allocates the ring
    /// now, never per packet.
    pub fn set_trace(&mut self, n: usize) {
        self.trace = (n > 0).then(|| TraceRing {
            buf: vec![LookupTrace::default(); n].into_boxed_slice(),
            next: 0,
            len: 0,
        });
    }
    /// The trace records kept, oldest first.
    pub fn traces(&self) -> Vec<LookupTrace> {
        match &self.trace {
            None => Vec::new(),
            Some(r) => {
                let n = r.buf.len();
                let start = (r.next + n - r.len) % n;
                (0..r.len).map(|i| r.buf[(start + i) % n]).collect()
            }
        }
    }

    /// An ICMP/ICMPv6 error quoting a packet: the connection that packet belongs to, found by
    /// the quoted tuple reversed; no state transition, no timeout change (the error says
    /// nothing about the connection's progress). Unmatched ones go on as misses (schedule
    /// hands them to the host path), or to the lcore owning the quoted local port or tuple.
    #[inline(never)]
    fn icmp_error<M: Mbuf>(
        conns: &mut LcoreConns,
        cx: &StageCx<'_>,
        owners: Option<&OwnerTable>,
        q: Quoted,
        p: &mut rvs_core::stage::Packet<M>,
        c: &mut LookupCounters,
    ) -> (Verdict, LookupTrace) {
        let t = q.tuple;
        let mut tr = LookupTrace {
            tuple: t,
            conn: rvs_core::meta::NO_CONN,
            ..LookupTrace::default()
        };
        if let Some((id, dir)) = conns.lookup(&t) {
            let state = conns.conn(id).map_or(0, |k| k.state);
            c.icmp_err_hit += 1;
            p.meta.conn = id;
            p.meta.dir = dir;
            p.meta.icmp_err = true;
            p.meta.inner_l3_off = q.l3_off;
            p.meta.inner_l4_off = q.l4_off;
            let tr = LookupTrace {
                conn: id,
                dir,
                state_before: state,
                state_after: state,
                outcome: LookupNext::Hit as u8,
                ..tr
            };
            return (Verdict::Next(LookupNext::Hit), tr);
        }
        let lcores = conns.lcores();
        if lcores > 1 {
            let by_port = conns
                .ports()
                .has_laddr(t.daddr)
                .then(|| SaPool::owner_lcore(t.dport, lcores));
            if let Some(owner) = by_port.or_else(|| owners.and_then(|o| o.owner(&t)))
                && owner != cx.lcore
            {
                c.icmp_err_redirected += 1;
                tr.outcome = LookupTrace::REDIRECTED;
                return (Verdict::Redirect(owner), tr);
            }
        }
        c.icmp_err_miss += 1;
        c.miss += 1;
        tr.outcome = LookupNext::Miss as u8;
        (Verdict::Next(LookupNext::Miss), tr)
    }

    /// One packet, by reference: sets its metadata and the counters and returns where it
    /// goes; the caller moves it there (a packet is moved once in and once out of lookup).
    /// With `TRACE` the record of the packet is written to `tr` (untouched otherwise).
    #[inline(always)]
    fn one<M: Mbuf, const TRACE: bool>(
        conns: &mut LcoreConns,
        cx: &StageCx<'_>,
        owners: Option<&OwnerTable>,
        p: &mut rvs_core::stage::Packet<M>,
        c: &mut LookupCounters,
        tr: &mut LookupTrace,
    ) -> Verdict {
        if p.meta.fragment {
            if TRACE {
                tr.outcome = LookupTrace::DROPPED;
            }
            return Verdict::Drop;
        }
        // Only ICMP and ICMPv6 errors quote a packet: one compare keeps TCP and UDP off the
        // quote reader.
        if matches!(p.meta.proto, 1 | 58)
            && let Some(q) = quoted(p)
        {
            let (v, t) = Self::icmp_error(conns, cx, owners, q, p, c);
            if TRACE {
                *tr = t;
            }
            return v;
        }
        let Some(t) = Tuple::of(&p.meta) else {
            c.miss += 1;
            if TRACE {
                tr.outcome = LookupNext::Miss as u8;
            }
            return Verdict::Next(LookupNext::Miss);
        };
        if TRACE {
            tr.tuple = t;
        }
        if let Some((id, dir)) = conns.lookup(&t) {
            let snap = cx.snapshot;
            let rehomed = &mut c.rehomed;
            let gone = &mut c.service_gone;
            let (before, after) = conns
                .on_packet_with(id, dir, p.meta.tcp_flags, cx.now, |conn| {
                    let (timeouts, home) = conn.service_timeouts(snap);
                    match home {
                        Home::Same => {}
                        Home::Moved => *rehomed += 1,
                        Home::Gone => *gone += 1,
                    }
                    timeouts
                })
                .unwrap_or((0, 0));
            if after != before {
                c.state_changes += 1;
            }
            match dir {
                Dir::In => c.hit_in += 1,
                Dir::Out => c.hit_out += 1,
            }
            p.meta.conn = id;
            p.meta.dir = dir;
            if TRACE {
                tr.conn = id;
                tr.dir = dir;
                tr.state_before = before;
                tr.state_after = after;
                tr.outcome = LookupNext::Hit as u8;
            }
            return Verdict::Next(LookupNext::Hit);
        }
        Self::miss::<TRACE>(conns, cx, owners, &t, c, tr)
    }

    /// A packet whose tuple no connection has: redirected to the lcore owning it, or on to
    /// schedule.
    #[inline(always)]
    fn miss<const TRACE: bool>(
        conns: &mut LcoreConns,
        cx: &StageCx<'_>,
        owners: Option<&OwnerTable>,
        t: &Tuple,
        c: &mut LookupCounters,
        tr: &mut LookupTrace,
    ) -> Verdict {
        let lcores = conns.lcores();
        if lcores > 1 {
            if conns.ports().has_laddr(t.daddr) {
                let owner = SaPool::owner_lcore(t.dport, lcores);
                if owner != cx.lcore {
                    c.redirected += 1;
                    if TRACE {
                        tr.outcome = LookupTrace::REDIRECTED;
                    }
                    return Verdict::Redirect(owner);
                }
            }
            if let Some(owner) = owners.and_then(|o| o.owner(t))
                && owner != cx.lcore
            {
                c.redirected_owner += 1;
                if TRACE {
                    tr.outcome = LookupTrace::REDIRECTED;
                }
                return Verdict::Redirect(owner);
            }
        }
        c.miss += 1;
        if TRACE {
            tr.outcome = LookupNext::Miss as u8;
        }
        Verdict::Next(LookupNext::Miss)
    }

    /// Every packet of `input`, in order, each moved once to where [`Lookup::one`] sends it.
    #[inline(always)]
    fn run<M: Mbuf, const TRACE: bool>(
        conns: &mut LcoreConns,
        cx: &StageCx<'_>,
        owners: Option<&OwnerTable>,
        input: &mut PacketVec<M>,
        c: &mut LookupCounters,
        out: &mut Out<'_, M, LookupNext, LookupDrop>,
        mut ring: Option<&mut TraceRing>,
    ) {
        if !TRACE {
            // Untraced: the first BATCH packets are classified in place, then moved once each
            // from the input to their queue (no copy of a packet in between, where a by-value
            // loop copies each packet twice more). Classification order is arrival order
            // either way, and nothing reads the queues before the stage returns.
            let mut verdicts = [Verdict::Drop; BATCH];
            let mut tr = LookupTrace::default();
            for (p, v) in input.as_mut_slice().iter_mut().zip(verdicts.iter_mut()) {
                *v = Self::one::<M, false>(conns, cx, owners, p, c, &mut tr);
            }
            let mut rest = input.drain();
            // `verdicts` first: the drain is not advanced once they run out.
            for (&v, p) in verdicts.iter().zip(rest.by_ref()) {
                Self::send(out, v, p);
            }
            for mut p in rest {
                let v = Self::one::<M, false>(conns, cx, owners, &mut p, c, &mut tr);
                Self::send(out, v, p);
            }
            return;
        }
        for mut p in input.drain() {
            let mut tr = LookupTrace {
                conn: rvs_core::meta::NO_CONN,
                ..LookupTrace::default()
            };
            let v = Self::one::<M, TRACE>(conns, cx, owners, &mut p, c, &mut tr);
            Self::send(out, v, p);
            if TRACE && let Some(r) = ring.as_deref_mut() {
                r.push(tr);
            }
        }
    }
}

impl Lookup {
    /// Move a classified packet to where its verdict says.
    #[inline(always)]
    fn send<M: Mbuf>(out: &mut Out<'_, M, LookupNext, LookupDrop>, v: Verdict, p: rvs_core::stage::Packet<M>) {
        match v {
            Verdict::Next(n) => out.next(n, p),
            Verdict::Redirect(lcore) => out.redirect(lcore, p),
            Verdict::Drop => out.drop(LookupDrop::Fragment, p),
        }
    }
}

/// Packets of a vector lookup classifies before moving any (the rest, in vectors longer
/// than this, are classified as they are moved).
const BATCH: usize = 256;

/// Where one packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Next(LookupNext),
    Redirect(u16),
    Drop,
}

impl<M: Mbuf> Stage<M> for Lookup {
    type Next = LookupNext;
    type Drop = LookupDrop;
    const NAME: &'static str = "lookup";

    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, LookupNext, LookupDrop>) {
        let mut local = LookupCounters::default();
        {
            let mut guard = self.conns.borrow_mut();
            let conns = &mut *guard;
            let owners = self.owners.as_deref();
            match &mut self.trace {
                None => Self::run::<M, false>(conns, cx, owners, input, &mut local, out, None),
                Some(ring) => Self::run::<M, true>(conns, cx, owners, input, &mut local, out, Some(ring)),
            }
        }
        self.counters.add(&local);
    }
}

/// The packet an ICMP/ICMPv6 error quotes, as lookup matches it.
#[derive(Debug, Clone, Copy)]
struct Quoted {
    /// The quoted packet's tuple reversed: the tuple a packet of the same connection carries
    /// in the direction the error travels.
    tuple: Tuple,
    /// Offset of the quoted IP header.
    l3_off: u16,
    /// Offset of the quoted upper-layer header.
    l4_off: u16,
}

/// True for the ICMP errors lookup matches to connections, IPVS's `ip_vs_in_icmp` set:
/// destination unreachable (fragmentation needed included), source quench, time exceeded.
const fn icmp4_translated(t: u8) -> bool {
    matches!(
        t,
        icmp::types::DEST_UNREACH | icmp::types::SOURCE_QUENCH | icmp::types::TIME_EXCEEDED
    )
}

/// True for the ICMPv6 errors lookup matches (IPVS's `ip_vs_in_icmp_v6`): destination
/// unreachable, packet too big, time exceeded, parameter problem.
const fn icmp6_translated(t: u8) -> bool {
    icmpv6::is_error(t)
}

/// The quoted packet of an ICMP/ICMPv6 error that may belong to a connection, read through
/// rvs-core's wire views from the bytes after the 8-byte ICMP header (parse fills the outer
/// packet's metadata only). `None` for anything else: not such an error, the quoted header cut
/// short or of the other family, a quoted protocol rvs does not track, a quoted IPv4 packet
/// that is a non-first fragment (no ports; IPVS ignores those too), a quoted ICMP message that
/// is not an echo (RFC 1122 3.2.2: no error about an error).
#[inline]
fn quoted<M: Mbuf>(p: &rvs_core::stage::Packet<M>) -> Option<Quoted> {
    let m = &p.meta;
    let v6 = match (m.af, m.proto) {
        (Af::V4, 1) if icmp4_translated(m.icmp_type) => false,
        (Af::V6, 58) if icmp6_translated(m.icmp_type) => true,
        _ => return None,
    };
    let data = p.mbuf.data();
    let end = (m.l3_off as usize + m.l3_len as usize).min(data.len());
    let l3_off = m.l4_off as usize + icmp::HEADER_LEN;
    let body = data.get(l3_off..end)?;
    let e = if v6 {
        icmpv6::embedded_ipv6(body).ok()?
    } else {
        let e = icmp::embedded_ipv4(body).ok()?;
        if Ipv4Packet::new_unchecked(body).frag_offset() != 0 {
            return None;
        }
        e
    };
    let e = skip_opp(e)?;
    let proto = Proto::from_number(e.proto)?;
    let (sport, dport) = match proto {
        Proto::Tcp | Proto::Udp => e.ports()?,
        Proto::Icmp | Proto::Icmp6 => {
            let echo = match (proto, v6) {
                (Proto::Icmp, false) => icmp::is_echo(*e.l4.first()?),
                (Proto::Icmp6, true) => icmpv6::is_echo(*e.l4.first()?),
                _ => false,
            };
            let id = e.l4.get(4..6)?;
            if !echo {
                return None;
            }
            let id = u16::from_be_bytes([id[0], id[1]]);
            (id, id)
        }
    };
    let inner = Tuple {
        proto,
        saddr: e.src,
        daddr: e.dst,
        sport,
        dport,
    };
    Some(Quoted {
        tuple: inner.reversed(),
        l3_off: l3_off as u16,
        l4_off: (l3_off + e.l4_off) as u16,
    })
}

/// A quoted datagram that carried UOA in an opp header (4 bytes: version, next protocol,
/// length of header and options, big-endian; then the options) is matched by the UDP header
/// behind it: the real server's error quotes the datagram as the balancer sent it. The next
/// protocol must be UDP (the only one UOA rides on) and the whole opp header quoted; anything
/// else is `None` (a miss, as before). Any other quoted protocol passes unchanged.
#[inline]
fn skip_opp(e: icmp::Embedded<'_>) -> Option<icmp::Embedded<'_>> {
    if e.proto != opp::PROTO {
        return Some(e);
    }
    let next = Proto::Udp.number();
    let len = opp::len_before(e.l4, next)?;
    Some(icmp::Embedded {
        proto: next,
        l4_off: e.l4_off + len,
        l4: &e.l4[len..],
        ..e
    })
}

/// The TCP state of a trace record, for display.
pub fn state_name(n: u8) -> &'static str {
    TcpState::from_u8(n).name()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use rvs_conn::{Conn, ConnConfig};
    use rvs_core::addr::{Addr, Proto};
    use rvs_core::label::Label;
    use rvs_core::load::LoadTable;
    use rvs_core::mbuf::{HeapMbuf, HeapPool};
    use rvs_core::meta::{NO_CONN, PacketMeta, TcpFlags};
    use rvs_core::service::{DestId, Forward};
    use rvs_core::stage::{Exits, Node, Packet};
    use rvs_core::time::Now;

    use rvs_core::service::{Snapshot, Timeouts};

    use super::*;

    const CLIENT: Addr = Addr::v4([198, 18, 5, 5]);
    const VIP: Addr = Addr::v4([198, 18, 0, 100]);
    const RS: Addr = Addr::v4([198, 18, 1, 11]);
    const LADDR: Addr = Addr::v4([198, 18, 1, 1]);

    fn shared(lcore: u16, lcores: u16) -> SharedConns {
        let cfg = ConnConfig {
            capacity: 256,
            buckets_log2: 8,
            seed: 3,
            timer_tick_ms: 10,
        };
        Rc::new(RefCell::new(LcoreConns::new(
            cfg,
            lcore,
            lcores,
            Arc::new(LoadTable::new(8)),
        )))
    }

    /// A TCP packet of 54 bytes whose metadata is filled as parse would.
    fn pkt(saddr: Addr, sport: u16, daddr: Addr, dport: u16, flags: u8) -> Packet<HeapMbuf> {
        let mut p = Packet::new(HeapMbuf::from_bytes(&[0u8; 54]));
        p.meta = PacketMeta {
            proto: 6,
            saddr,
            daddr,
            sport,
            dport,
            tcp_flags: TcpFlags(flags),
            l3_off: 14,
            l4_off: 34,
            l4_hdr_len: 20,
            l3_len: 40,
            ..PacketMeta::new()
        };
        p
    }

    fn fnat_conn(cport: u16, lport: u16) -> Conn {
        let in_tuple = Tuple {
            proto: Proto::Tcp,
            saddr: CLIENT,
            daddr: VIP,
            sport: cport,
            dport: 80,
        };
        Conn {
            in_tuple,
            out_tuple: Conn::out_tuple_for(Forward::Fnat, &in_tuple, RS, 8080, LADDR, lport),
            fwd: Forward::Fnat,
            dest: DestId(1),
            ..Default::default()
        }
    }

    struct Run {
        hit: Vec<PacketMeta>,
        miss: Vec<PacketMeta>,
        redirected: Vec<usize>,
        drops: u64,
    }

    fn run(node: &mut Node<HeapMbuf, Lookup>, lcore: u16, now: Now, pkts: Vec<Packet<HeapMbuf>>) -> Run {
        let snap = Snapshot::empty();
        let mut exits = Exits::new(1, 4, 64);
        let mut pool = HeapPool::new(8);
        let mut input = PacketVec::with_capacity(64);
        for p in pkts {
            input.push(p).unwrap();
        }
        let cx = StageCx {
            now,
            lcore,
            snapshot: &snap,
        };
        let before = node.stats().report();
        node.run(&cx, &mut input, &mut exits, &mut pool);
        let after = node.stats().report();
        let drops =
            after.drops.iter().map(|d| d.count).sum::<u64>() - before.drops.iter().map(|d| d.count).sum::<u64>();
        Run {
            hit: node.queue(LookupNext::Hit).drain().map(|p| p.meta).collect(),
            miss: node.queue(LookupNext::Miss).drain().map(|p| p.meta).collect(),
            redirected: exits.redirect.iter_mut().map(|q| q.drain().count()).collect(),
            drops,
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;

    #[test]
    fn hits_in_both_directions_set_conn_dir_and_state() {
        let conns = shared(0, 1);
        let id = conns
            .borrow_mut()
            .insert(fnat_conn(40000, 2000), Now::from_secs(1))
            .unwrap();
        let mut node = Node::new(Lookup::new(conns.clone()), 64);
        let r = run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![
                pkt(CLIENT, 40000, VIP, 80, SYN),
                pkt(RS, 8080, LADDR, 2000, SYN | ACK),
                pkt(CLIENT, 40000, VIP, 80, ACK),
            ],
        );
        assert!(r.miss.is_empty());
        let got: Vec<(u32, Dir)> = r.hit.iter().map(|m| (m.conn, m.dir)).collect();
        assert_eq!(got, vec![(id, Dir::In), (id, Dir::Out), (id, Dir::In)]);
        let t = conns.borrow();
        let c = t.conn(id).unwrap();
        assert_eq!(TcpState::from_u8(c.state), TcpState::Established);
        // The empty snapshot has no service: DPVS's established timeout.
        assert_eq!(c.timeout_secs, Timeouts::DPVS.established);
        let k = node.stage.counters();
        assert_eq!(
            (k.hit_in, k.hit_out, k.miss, k.state_changes, k.service_gone),
            (2, 1, 0, 2, 3)
        );
    }

    #[derive(Debug)]
    struct NoSched;
    impl rvs_core::sched::Scheduler for NoSched {
        fn name(&self) -> &str {
            "none"
        }
        fn pick(&mut self, _: &rvs_core::sched::SchedCx<'_>, _: &rvs_core::sched::Flow<'_>) -> Option<usize> {
            None
        }
    }
    impl rvs_core::sched::SchedulerFactory for NoSched {
        fn name(&self) -> &str {
            "none"
        }
        fn instance(&self, _: u16, _: u64) -> Box<dyn rvs_core::sched::Scheduler> {
            Box::new(NoSched)
        }
    }

    fn snapshot(generation: u64, port: u16, established: u32) -> Snapshot {
        use rvs_core::service::{Service, ServiceKey};
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: VIP,
            port,
        };
        let mut svc = Service::new(key, Forward::Fnat, Arc::new(NoSched));
        svc.local_addrs = vec![LADDR].into();
        svc.timeouts.established = established;
        Snapshot::build(generation, 1, Default::default(), vec![svc]).unwrap()
    }

    #[test]
    fn timeouts_come_from_the_connections_service() {
        let conns = shared(0, 1);
        let mut c = fnat_conn(40000, 2000);
        c.svc = 0;
        c.generation = 5;
        c.state = TcpState::SynRecv.number();
        let id = conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap();
        let mut node = Node::new(Lookup::new(conns.clone()), 64);
        let mut exits = Exits::new(1, 1, 64);
        let mut pool = HeapPool::new(8);
        let mut go = |snap: &Snapshot, node: &mut Node<HeapMbuf, Lookup>| {
            let mut input = PacketVec::with_capacity(4);
            input.push(pkt(CLIENT, 40000, VIP, 80, ACK)).unwrap();
            node.run(
                &StageCx {
                    now: Now::from_secs(2),
                    lcore: 0,
                    snapshot: snap,
                },
                &mut input,
                &mut exits,
                &mut pool,
            );
            node.queue(LookupNext::Hit).drain().count();
            conns.borrow().conn(id).unwrap().timeout_secs
        };
        // The snapshot the connection was made under.
        assert_eq!(go(&snapshot(5, 80, 1234), &mut node), 1234);
        // A later snapshot whose service 0 still has the connection's VIP and port.
        assert_eq!(go(&snapshot(6, 80, 4321), &mut node), 4321);
        // A later snapshot where index 0 is another service: DPVS's default, counted.
        assert_eq!(go(&snapshot(7, 443, 999), &mut node), Timeouts::DPVS.established);
        assert_eq!(node.stage.counters().service_gone, 1);
    }

    /// Services in this order, each (port, established timeout, destination ids it holds).
    fn services(generation: u64, list: &[(u16, u32, &[u32])]) -> Snapshot {
        use rvs_core::service::{Dest, Service, ServiceKey};
        let svcs = list
            .iter()
            .map(|&(port, established, ids)| {
                let key = ServiceKey {
                    proto: Proto::Tcp,
                    vip: VIP,
                    port,
                };
                let mut svc = Service::new(key, Forward::Fnat, Arc::new(NoSched));
                svc.local_addrs = vec![LADDR].into();
                svc.timeouts.established = established;
                svc.dests = ids
                    .iter()
                    .map(|&i| {
                        let mut d = Dest::new(DestId(i), RS, 8000 + i as u16);
                        d.fwd = Forward::Fnat;
                        d
                    })
                    .collect();
                svc
            })
            .collect();
        Snapshot::build(generation, 1, Default::default(), svcs).unwrap()
    }

    #[test]
    fn a_connection_follows_its_service_to_a_new_index_after_a_reload() {
        let conns = shared(0, 1);
        let mut c = fnat_conn(40000, 2000); // destination id 1
        c.svc = 0;
        c.generation = 5;
        c.state = TcpState::Established.number();
        let id = conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap();
        let mut node = Node::new(Lookup::new(conns.clone()), 64);
        let mut exits = Exits::new(1, 1, 64);
        let mut pool = HeapPool::new(8);
        let mut go = |snap: &Snapshot, node: &mut Node<HeapMbuf, Lookup>| {
            let mut input = PacketVec::with_capacity(4);
            input.push(pkt(CLIENT, 40000, VIP, 80, ACK)).unwrap();
            let cx = StageCx {
                now: Now::from_secs(2),
                lcore: 0,
                snapshot: snap,
            };
            node.run(&cx, &mut input, &mut exits, &mut pool);
            node.queue(LookupNext::Hit).drain().count();
            let k = conns.borrow().conn(id).cloned().unwrap();
            (k.timeout_secs, k.svc, k.generation)
        };
        assert_eq!(go(&services(5, &[(80, 1111, &[1, 2])]), &mut node), (1111, 0, 5));
        // Reload: a new service put in front, the connection's service (same key, its
        // destination still there, new timeout) now at index 1.
        let moved = services(6, &[(443, 999, &[3]), (80, 2222, &[1, 2])]);
        assert_eq!(go(&moved, &mut node), (2222, 1, 6));
        assert_eq!(node.stage.counters().rehomed, 1);
        // Later packets under the same snapshot take the direct path: no second re-homing.
        assert_eq!(go(&moved, &mut node), (2222, 1, 6));
        assert_eq!(node.stage.counters().rehomed, 1);
        // Another reload moving it back to index 0 (matched by the destination it holds even
        // though index 0 had another service in between).
        assert_eq!(
            go(&services(7, &[(80, 3333, &[1]), (443, 999, &[3])]), &mut node),
            (3333, 0, 7)
        );
        assert_eq!(node.stage.counters().rehomed, 2);
        assert_eq!(node.stage.counters().service_gone, 0);
        // The destination removed and the service's key gone: DPVS's default, counted.
        let gone = services(8, &[(443, 999, &[3])]);
        assert_eq!(go(&gone, &mut node).0, Timeouts::DPVS.established);
        assert_eq!(node.stage.counters().service_gone, 1);
    }

    #[test]
    fn misses_go_to_schedule_untouched() {
        let conns = shared(0, 1);
        conns
            .borrow_mut()
            .insert(fnat_conn(40000, 2000), Now::from_secs(1))
            .unwrap();
        let mut node = Node::new(Lookup::new(conns), 64);
        let mut udp = pkt(CLIENT, 40000, VIP, 80, 0);
        udp.meta.proto = 17; // same addresses and ports, other protocol
        let mut gre = pkt(CLIENT, 0, VIP, 0, 0);
        gre.meta.proto = 47;
        let r = run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![
                pkt(CLIENT, 40001, VIP, 80, SYN),
                udp,
                gre,
                pkt(VIP, 80, CLIENT, 40000, ACK),
            ],
        );
        assert!(r.hit.is_empty());
        assert_eq!(r.miss.len(), 4);
        assert!(r.miss.iter().all(|m| m.conn == NO_CONN));
        assert_eq!(node.stage.counters().miss, 4);
    }

    #[test]
    fn a_connection_made_after_one_vector_is_found_in_the_next() {
        let conns = shared(0, 1);
        let mut node = Node::new(Lookup::new(conns.clone()), 64);
        // Vector 1: the SYN and the ACK right behind it both miss (conn-new runs after lookup).
        let r1 = run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![pkt(CLIENT, 40000, VIP, 80, SYN), pkt(CLIENT, 40000, VIP, 80, ACK)],
        );
        assert_eq!(r1.miss.len(), 2);
        // conn-new creates the connection from the first packet.
        let id = conns
            .borrow_mut()
            .insert(fnat_conn(40000, 2000), Now::from_secs(1))
            .unwrap();
        // Vector 2: the recirculated ACK reaches lookup again and hits.
        let r2 = run(&mut node, 0, Now::from_secs(1), vec![pkt(CLIENT, 40000, VIP, 80, ACK)]);
        assert_eq!(r2.hit.len(), 1);
        assert_eq!((r2.hit[0].conn, r2.hit[0].dir), (id, Dir::In));
    }

    #[test]
    fn replies_for_another_lcores_port_are_redirected() {
        let conns = shared(1, 4);
        conns.borrow_mut().ports().add_laddr(LADDR);
        let mut node = Node::new(Lookup::new(conns.clone()), 64);
        // Port 2001 % 4 == 1: ours, a plain miss; 2002 belongs to lcore 2.
        let r = run(
            &mut node,
            1,
            Now::from_secs(1),
            vec![
                pkt(RS, 8080, LADDR, 2001, ACK),
                pkt(RS, 8080, LADDR, 2002, ACK),
                pkt(RS, 8080, LADDR, 2003, ACK),
            ],
        );
        assert_eq!(r.miss.len(), 1);
        assert_eq!(r.redirected, vec![0, 0, 1, 1]);
        assert_eq!(node.stage.counters().redirected, 2);
    }

    #[test]
    fn misses_another_lcore_owns_go_there_by_the_owner_table() {
        let conns = shared(0, 2);
        let owners = Arc::new(OwnerTable::new(1024));
        let mut node = Node::new(Lookup::new(conns), 64);
        node.stage.set_owners(owners.clone());
        // A NAT reply (RS -> client) owned by lcore 1, one owned by this lcore, one unknown.
        let theirs = pkt(RS, 80, CLIENT, 40000, ACK);
        let ours = pkt(RS, 80, CLIENT, 40001, ACK);
        owners.insert(&Tuple::of(&theirs.meta).unwrap(), 1);
        owners.insert(&Tuple::of(&ours.meta).unwrap(), 0);
        let r = run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![theirs, ours, pkt(RS, 80, CLIENT, 40002, ACK)],
        );
        assert_eq!(r.redirected, vec![0, 1, 0, 0]);
        assert_eq!(r.miss.len(), 2);
        assert_eq!(node.stage.counters().redirected_owner, 1);
        // Without the table (one lcore's pipeline) nothing is redirected.
        let mut plain = Node::new(Lookup::new(shared(0, 2)), 64);
        let r = run(&mut plain, 0, Now::from_secs(1), vec![pkt(RS, 80, CLIENT, 40000, ACK)]);
        assert_eq!(r.miss.len(), 1);
    }

    #[test]
    fn fragments_are_dropped_and_counted() {
        let conns = shared(0, 1);
        let mut node = Node::new(Lookup::new(conns), 64);
        node.stage.set_trace(4);
        let mut f = pkt(CLIENT, 40000, VIP, 80, SYN);
        f.meta.fragment = true;
        let r = run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![f, pkt(CLIENT, 40000, VIP, 80, SYN)],
        );
        assert_eq!(r.drops, 1);
        assert_eq!(r.miss.len(), 1);
        let tr = node.stage.traces();
        assert_eq!(tr.len(), 2);
        assert_eq!(tr[0].outcome, LookupTrace::DROPPED);
        assert_eq!(tr[1].outcome, LookupNext::Miss.index() as u8);
        assert_eq!(LookupDrop::Fragment.cause(), Cause::NotSupported);
    }

    #[test]
    fn trace_ring_keeps_the_last_packets_in_order() {
        let conns = shared(0, 1);
        let id = conns
            .borrow_mut()
            .insert(fnat_conn(40000, 2000), Now::from_secs(1))
            .unwrap();
        let mut node = Node::new(Lookup::new(conns), 64);
        node.stage.set_trace(2);
        run(
            &mut node,
            0,
            Now::from_secs(1),
            vec![
                pkt(CLIENT, 1, VIP, 80, SYN),
                pkt(CLIENT, 40000, VIP, 80, SYN),
                pkt(RS, 8080, LADDR, 2000, SYN | ACK),
            ],
        );
        let tr = node.stage.traces();
        assert_eq!(tr.len(), 2);
        assert_eq!(
            (
                tr[0].conn,
                tr[0].dir,
                state_name(tr[0].state_before),
                state_name(tr[0].state_after)
            ),
            (id, Dir::In, "NONE", "SYN_RECV")
        );
        assert_eq!((tr[1].dir, state_name(tr[1].state_after)), (Dir::Out, "SYN_RECV"));
    }
}
