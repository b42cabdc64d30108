//! Step 3 (DPVS's `dp_vs_synproxy_synack_rcv`, `dp_vs_synproxy_filter_ack` and the sequence
//! handlers), in front of xmit, fed by lookup's hits and conn-new's new connections:
//!
//! - **Binding.** The SYN step 2 made arrives from conn-new on a connection conn-new just
//!   created: the connection is flagged [`ConnFlags::SYNPROXY`], put in SYN_SENT with that
//!   state's timeout (DPVS's state for a proxied connection waiting for its server), and the
//!   SYN goes on to xmit, which sends it to the real server.
//! - **Waiting.** While the server has not answered, a client packet with ACK is saved (at
//!   most [`MAX_ACKS`] per handshake, the first being the cookie ACK); one without is
//!   dropped, as DPVS does.
//! - **The server's SYN-ACK.** `delta = cookie ISN - server ISN` goes into
//!   [`Conn::syn_proxy_delta`]; the connection becomes ESTABLISHED (the destination's
//!   inactive count moves to active, the established timeout applies); the server's last
//!   sequence and acknowledgement are recorded for RSTs on expiry; the saved ACKs are released
//!   to xmit with their ack (and SACK edges) lowered by the delta -- the first of them is the
//!   ACK that completes the server's handshake -- and the SYN-ACK itself is consumed, counted
//!   as [`SynProxySeqDrop::SynAckAbsorbed`] (DPVS drops it too).
//! - **The server's RST.** The delta is set from its seq, the connection closes, the saved
//!   ACKs are freed, and the RST goes on to the client with seq + 1 + delta, which is what the
//!   client expects after our SYN-ACK (DPVS does the same).
//! - **Afterwards.** Every packet of a proxied connection is adjusted for the connection's
//!   life: client -> server ack and SACK edges minus the delta, server -> client seq plus the
//!   delta, checksums updated incrementally (RFC 1624).
//!
//! The poll retransmits the SYN to a server that has not answered, every
//! [`SynProxyConfig::syn_retry_ms`], at most [`SynProxyConfig::syn_retries`] times (DPVS: 3),
//! pushing the connection's expiry on by its SYN_SENT timeout each time, and frees the saved
//! ACKs of handshakes whose connection expired. It looks at a bounded number of handshakes
//! per call ([`POLL_BUDGET`]).

use std::sync::Arc;

use rvs_conn::state::{self, TcpState};
use rvs_conn::{Conn, ConnFlags, SharedConns};
use rvs_core::addr::Proto;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::{Dir, NO_CONN};
use rvs_core::service::{Snapshot, Timeouts};
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::time::Now;
use rvs_core::verdict::{Cause, DropReason};

use crate::SynProxyConfig;
use crate::build::{self, adjust_in, adjust_out, seq_ack};
use crate::pending::{Handle, MAX_ACKS, SharedPending};

/// Handshakes the poll looks at per call at most.
pub const POLL_BUDGET: usize = 64;

rvs_core::labels! {
    /// Where step 3 sends a packet.
    pub enum SynProxySeqNext {
        /// On to xmit (adjusted when its connection is proxied).
        Xmit = ("xmit", "on to xmit, sequence numbers adjusted for a proxied connection"),
    }
}

rvs_core::labels! {
    /// Why step 3 drops.
    pub enum SynProxySeqDrop {
        /// The server's SYN-ACK, answered by releasing the saved ACKs (DPVS drops it too).
        SynAckAbsorbed = ("synack_absorbed", "the real server's SYN-ACK, answered by releasing the saved ACKs"),
        /// The handshake already keeps its saved ACKs.
        AckQueueFull = ("ack_queue_full", "client packet while the server has not answered; 3 ACKs already saved"),
        /// A client packet without ACK while the server has not answered.
        NotAck = ("not_ack", "client packet without ACK while the server has not answered"),
        /// Headers do not parse.
        Invalid = ("invalid", "TCP header does not parse"),
        /// A saved ACK freed unsent: its connection expired or the server reset it.
        AckFreed = ("ack_freed", "saved ACK freed: the connection expired or the real server sent RST"),
    }
}

impl DropReason for SynProxySeqDrop {
    fn cause(self) -> Cause {
        match self {
            SynProxySeqDrop::SynAckAbsorbed => Cause::Other,
            SynProxySeqDrop::AckQueueFull => Cause::Resource,
            SynProxySeqDrop::NotAck => Cause::Defence,
            SynProxySeqDrop::Invalid => Cause::InvalidPacket,
            SynProxySeqDrop::AckFreed => Cause::NoRoute,
        }
    }
}

/// Step 3's counts besides its dispositions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounters {
    /// Connections flagged SYNPROXY (step 2's SYNs that became connections).
    pub bound: u64,
    /// Handshakes completed by the server's SYN-ACK.
    pub established: u64,
    /// Saved ACKs released to the server.
    pub released: u64,
    /// Handshakes the server reset.
    pub reset: u64,
    /// SYNs retransmitted to a silent server.
    pub syn_retries: u64,
    /// Retransmissions skipped: the pool was empty.
    pub retry_no_buffer: u64,
    /// Packets of proxied connections adjusted, client -> server.
    pub adjusted_in: u64,
    /// Packets of proxied connections adjusted, server -> client.
    pub adjusted_out: u64,
}

/// Step 3 of one lcore.
#[derive(Debug)]
pub struct SynProxySeq<M> {
    cfg: SynProxyConfig,
    conns: SharedConns,
    loads: Arc<LoadTable>,
    pending: SharedPending<M>,
    scratch: Vec<Handle>,
    counters: SeqCounters,
}

/// The timeouts of connection `c`'s service (DPVS's defaults when it is gone), by lookup's
/// rule.
fn timeouts_of(snap: &Snapshot, c: &Conn) -> Timeouts {
    snap.services
        .get(c.svc as usize)
        .filter(|s| {
            c.generation == snap.generation
                || (s.key.proto == c.in_tuple.proto
                    && s.key.vip == c.vaddr()
                    && (s.key.port == c.vport() || s.key.port == 0))
        })
        .map_or(Timeouts::DPVS, |s| s.timeouts)
}

/// Move `c` to state `to` as DPVS's synproxy does it by hand (outside the transition
/// table): the destination's active/inactive counters follow ESTABLISHED as
/// `LcoreConns::on_packet` moves them, and the timeout becomes `to`'s, from the same base (the
/// last refresh plus the connection's jitter). rvs-conn's timer wheel is lazy: a later
/// deadline is found when the entry's slot comes due; an earlier one takes effect at that
/// slot at the soonest (the SYN_SENT deadline set at binding is later than the slot conn-new's
/// insertion armed, DPVS's NONE timeout).
fn set_state(c: &mut Conn, loads: &LoadTable, to: TcpState, t: &Timeouts) {
    if c.flags.has(ConnFlags::BOUND) && !c.flags.has(ConnFlags::TEMPLATE) {
        let inactive = c.flags.has(ConnFlags::INACTIVE);
        if inactive && to == TcpState::Established {
            loads.shift(c.dest, Counter::Inactive, Counter::Active);
            c.flags.clear(ConnFlags::INACTIVE);
        } else if !inactive && to != TcpState::Established {
            loads.shift(c.dest, Counter::Active, Counter::Inactive);
            c.flags.set(ConnFlags::INACTIVE);
        }
    }
    c.state = to.number();
    let new = state::timeout(to, t);
    let base = c.expires.nanos().saturating_sub(u64::from(c.timeout_secs) * Now::SEC);
    c.expires = Now(base).plus_secs(u64::from(new));
    c.timeout_secs = new;
}

impl<M: Mbuf> SynProxySeq<M> {
    /// Step 3 over `conns` (moving destination counters in `loads`, this lcore's table),
    /// sharing `pending` with step 2.
    pub fn new(cfg: SynProxyConfig, conns: SharedConns, loads: Arc<LoadTable>, pending: SharedPending<M>) -> Self {
        let cap = pending.borrow().capacity().min(POLL_BUDGET);
        SynProxySeq {
            cfg,
            conns,
            loads,
            pending,
            scratch: Vec::with_capacity(cap.max(POLL_BUDGET)),
            counters: SeqCounters::default(),
        }
    }
    /// Counts.
    pub fn counters(&self) -> SeqCounters {
        self.counters
    }
    fn retry_interval(&self) -> u64 {
        self.cfg.syn_retry_ms.max(1) * 1_000_000
    }
}

impl<M: Mbuf> Stage<M> for SynProxySeq<M> {
    type Next = SynProxySeqNext;
    type Drop = SynProxySeqDrop;
    const NAME: &'static str = "synproxy-seq";

    fn process(
        &mut self,
        cx: &StageCx<'_>,
        input: &mut PacketVec<M>,
        out: &mut Out<'_, M, SynProxySeqNext, SynProxySeqDrop>,
    ) {
        let (conns_rc, pending_rc) = (self.conns.clone(), self.pending.clone());
        let (Ok(mut conns), Ok(mut pending)) = (conns_rc.try_borrow_mut(), pending_rc.try_borrow_mut()) else {
            // Another stage holds a table across vectors: a wiring bug; pass on unadjusted.
            for p in input.drain() {
                out.next(SynProxySeqNext::Xmit, p);
            }
            return;
        };
        let mut k = SeqCounters::default();
        let tcp = Proto::Tcp.number();
        for mut p in input.drain() {
            if p.meta.proto != tcp || p.meta.icmp_err {
                out.next(SynProxySeqNext::Xmit, p);
                continue;
            }
            let id = p.meta.conn;
            let Some(c) = conns.conn_mut(id) else {
                out.next(SynProxySeqNext::Xmit, p);
                continue;
            };
            let dir = p.meta.dir;
            if !c.flags.has(ConnFlags::SYNPROXY) {
                // Step 2's SYN on the connection conn-new just made from it.
                if !pending.is_empty()
                    && dir == Dir::In
                    && p.meta.tcp_flags.may_create()
                    && let Some(h) = pending.find(&c.in_tuple)
                    && let Some(e) = pending.get_mut(h)
                    && e.conn == NO_CONN
                {
                    e.conn = id;
                    e.retry_at = cx.now.plus_nanos(self.retry_interval());
                    c.flags.set(ConnFlags::SYNPROXY);
                    let t = timeouts_of(cx.snapshot, c);
                    set_state(c, &self.loads, TcpState::SynSent, &t);
                    k.bound += 1;
                }
                out.next(SynProxySeqNext::Xmit, p);
                continue;
            }
            let waiting = if pending.is_empty() {
                None
            } else {
                pending
                    .find(&c.in_tuple)
                    .filter(|&h| pending.get_mut(h).is_some_and(|e| e.conn == id))
            };
            let Some(h) = waiting else {
                let delta = c.syn_proxy_delta;
                let ok = match dir {
                    Dir::In => {
                        k.adjusted_in += 1;
                        adjust_in(&mut p, delta)
                    }
                    Dir::Out => {
                        k.adjusted_out += 1;
                        adjust_out(&mut p, delta, 0)
                    }
                };
                if ok {
                    out.next(SynProxySeqNext::Xmit, p);
                } else {
                    out.drop(SynProxySeqDrop::Invalid, p);
                }
                continue;
            };
            let f = p.meta.tcp_flags;
            match dir {
                Dir::In => {
                    if !f.ack() {
                        out.drop(SynProxySeqDrop::NotAck, p);
                        continue;
                    }
                    let Some(e) = pending.get_mut(h) else { continue };
                    match e.save(p) {
                        Ok(()) => out.held(),
                        Err(p) => out.drop(SynProxySeqDrop::AckQueueFull, p),
                    }
                }
                Dir::Out if f.syn() && f.ack() && !f.rst() => {
                    let Some((seq, ack)) = seq_ack(&p) else {
                        out.drop(SynProxySeqDrop::Invalid, p);
                        continue;
                    };
                    let Some(e) = pending.remove(h) else { continue };
                    let delta = e.cookie_isn.wrapping_sub(seq);
                    c.syn_proxy_delta = delta;
                    c.rs_last_seq = seq.wrapping_add(1);
                    c.rs_last_ack = ack;
                    let t = timeouts_of(cx.snapshot, c);
                    set_state(c, &self.loads, TcpState::Established, &t);
                    k.established += 1;
                    out.drop(SynProxySeqDrop::SynAckAbsorbed, p);
                    for mut a in e.acks.into_iter().flatten() {
                        a.meta.conn = id;
                        a.meta.dir = Dir::In;
                        if adjust_in(&mut a, delta) {
                            k.released += 1;
                            out.emit_next(SynProxySeqNext::Xmit, a);
                        } else {
                            out.free(a.mbuf);
                            out.count_drop(SynProxySeqDrop::Invalid);
                        }
                    }
                }
                Dir::Out if f.rst() => {
                    let Some((seq, _)) = seq_ack(&p) else {
                        out.drop(SynProxySeqDrop::Invalid, p);
                        continue;
                    };
                    let Some(e) = pending.remove(h) else { continue };
                    let delta = e.cookie_isn.wrapping_sub(seq);
                    c.syn_proxy_delta = delta;
                    let t = timeouts_of(cx.snapshot, c);
                    set_state(c, &self.loads, TcpState::Close, &t);
                    k.reset += 1;
                    free_counted(e.acks, out);
                    if adjust_out(&mut p, delta, 1) {
                        out.next(SynProxySeqNext::Xmit, p);
                    } else {
                        out.drop(SynProxySeqDrop::Invalid, p);
                    }
                }
                // Anything else from the server before its SYN-ACK goes on untouched (DPVS).
                Dir::Out => out.next(SynProxySeqNext::Xmit, p),
            }
        }
        let c = &mut self.counters;
        c.bound += k.bound;
        c.established += k.established;
        c.released += k.released;
        c.reset += k.reset;
        c.adjusted_in += k.adjusted_in;
        c.adjusted_out += k.adjusted_out;
    }

    /// Retransmit SYNs to silent servers; free the saved ACKs of expired handshakes.
    fn poll(&mut self, cx: &StageCx<'_>, out: &mut Out<'_, M, SynProxySeqNext, SynProxySeqDrop>) {
        let (conns_rc, pending_rc) = (self.conns.clone(), self.pending.clone());
        let (Ok(mut conns), Ok(mut pending)) = (conns_rc.try_borrow_mut(), pending_rc.try_borrow_mut()) else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let interval = self.retry_interval();
        pending.scan(POLL_BUDGET, &mut self.scratch);
        for &h in &self.scratch {
            let Some(e) = pending.get_mut(h) else { continue };
            if e.conn == NO_CONN {
                continue; // step 2's poll decides
            }
            let alive = conns
                .conn(e.conn)
                .is_some_and(|c| c.in_tuple == e.tuple && c.flags.has(ConnFlags::SYNPROXY));
            if !alive {
                if let Some(e) = pending.remove(h) {
                    free_counted(e.acks, out);
                }
                continue;
            }
            if cx.now < e.retry_at {
                continue;
            }
            if e.retries >= self.cfg.syn_retries {
                e.retry_at = Now(u64::MAX);
                continue;
            }
            e.retry_at = cx.now.plus_nanos(interval);
            let Some(first) = e.acks.iter().flatten().next() else {
                continue;
            };
            let Some(mut buf) = out.alloc() else {
                self.counters.retry_no_buffer += 1;
                continue;
            };
            match build::build_syn(&mut buf, first, &e.opts, e.client_isn, cx.now) {
                Ok(mut meta) => {
                    e.retries += 1;
                    meta.conn = e.conn;
                    meta.dir = Dir::In;
                    if let Some(c) = conns.conn_mut(e.conn) {
                        let until = cx.now.plus_secs(u64::from(c.timeout_secs));
                        c.expires = c.expires.max(until);
                    }
                    self.counters.syn_retries += 1;
                    out.emit_next(SynProxySeqNext::Xmit, Packet { mbuf: buf, meta });
                }
                Err(_) => out.free(buf),
            }
        }
    }
}

/// Free saved ACKs that will never be sent, counting each.
fn free_counted<M: Mbuf, N: rvs_core::label::Label>(
    acks: [Option<Packet<M>>; MAX_ACKS],
    out: &mut Out<'_, M, N, SynProxySeqDrop>,
) {
    for a in acks.into_iter().flatten() {
        out.free(a.mbuf);
        out.count_drop(SynProxySeqDrop::AckFreed);
    }
}
