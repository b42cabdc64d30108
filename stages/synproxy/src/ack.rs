//! Step 2 (DPVS's `dp_vs_synproxy_ack_rcv`, the cookie-ACK branch at the top of
//! `tcp_conn_sched`), on lookup's miss path in front of schedule: an ACK (no SYN, RST or FIN)
//! without a connection, to a synproxy service, whose `ack - 1` is a valid cookie for its
//! tuple and `seq - 1`, is kept (the handshake's first saved ACK) and replaced by a SYN
//! with the client's ISN and the options the cookie carried, which goes on to schedule and
//! conn-new like any SYN: the connection is made from it (its FNAT sequence delta from the
//! client's ISN, as for an unproxied SYN), and step 3 flags it SYNPROXY before xmit sends
//! the SYN to the real server. A second ACK of a handshake whose SYN is on its way (same
//! vector) is saved beside the first (at most [`MAX_ACKS`]). An invalid cookie is a counted
//! drop. Everything else goes on to schedule untouched.
//!
//! The poll frees the saved ACKs of handshakes whose SYN never became a connection (schedule
//! found no destination, conn-new refused): they were made in an earlier pass of the graph,
//! where the SYN went through schedule and conn-new, and have no connection now.

use rvs_core::addr::Proto;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::NO_CONN;
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};

use rvs_conn::Tuple;

use crate::build::{self, flow_of, seq_ack};
use crate::cookie::CookieKey;
use crate::pending::{Handle, MAX_ACKS, SharedPending};

rvs_core::labels! {
    /// Where step 2 sends a packet.
    pub enum SynProxyAckNext {
        /// On to schedule: the SYN made for a valid cookie ACK, and every packet step 2 leaves alone.
        Schedule = ("schedule", "on to schedule (the SYN made for a cookie ACK, or the packet untouched)"),
    }
}

rvs_core::labels! {
    /// Why step 2 drops.
    pub enum SynProxyAckDrop {
        /// The ACK's ack - 1 is no valid cookie for its tuple and seq - 1.
        BadCookie = ("bad_cookie", "ACK to a synproxy service with no connection and no valid cookie"),
        /// The handshake already saved its ACKs.
        AckQueueFull = ("ack_queue_full", "the handshake already keeps its 3 saved ACKs"),
        /// No room to keep another handshake.
        PendingFull = ("pending_full", "no room for another handshake in flight"),
        /// The pool had no buffer for the SYN to the real server.
        NoBuffer = ("no_buffer", "no pool buffer for the SYN to the real server"),
        /// Headers do not parse.
        Invalid = ("invalid", "ACK headers do not parse"),
        /// A handshake's SYN never became a connection (schedule or conn-new refused it); its saved ACKs are freed.
        NotScheduled = ("not_scheduled", "saved ACK freed: its SYN was refused by schedule or conn-new"),
    }
}

impl DropReason for SynProxyAckDrop {
    fn cause(self) -> Cause {
        match self {
            SynProxyAckDrop::BadCookie => Cause::Defence,
            SynProxyAckDrop::AckQueueFull | SynProxyAckDrop::PendingFull | SynProxyAckDrop::NoBuffer => Cause::Resource,
            SynProxyAckDrop::Invalid => Cause::InvalidPacket,
            SynProxyAckDrop::NotScheduled => Cause::Resource,
        }
    }
}

/// Step 2's counts besides its dispositions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCounters {
    /// Cookie ACKs accepted (a SYN sent on for each).
    pub accepted: u64,
    /// Further ACKs saved beside a handshake's first in the same vector.
    pub saved: u64,
}

/// Step 2 of one lcore.
#[derive(Debug)]
pub struct SynProxyAck<M> {
    key: CookieKey,
    pending: SharedPending<M>,
    scratch: Vec<Handle>,
    counters: AckCounters,
}

impl<M: Mbuf> SynProxyAck<M> {
    /// Step 2 checking cookies of `key`, keeping handshakes in `pending` (shared with step 3).
    pub fn new(key: CookieKey, pending: SharedPending<M>) -> Self {
        let cap = pending.borrow().capacity();
        SynProxyAck {
            key,
            pending,
            scratch: Vec::with_capacity(cap),
            counters: AckCounters::default(),
        }
    }
    /// Counts.
    pub fn counters(&self) -> AckCounters {
        self.counters
    }
}

impl<M: Mbuf> Stage<M> for SynProxyAck<M> {
    type Next = SynProxyAckNext;
    type Drop = SynProxyAckDrop;
    const NAME: &'static str = "synproxy-ack";

    fn process(
        &mut self,
        cx: &StageCx<'_>,
        input: &mut PacketVec<M>,
        out: &mut Out<'_, M, SynProxyAckNext, SynProxyAckDrop>,
    ) {
        let pending_rc = self.pending.clone();
        let Ok(mut pending) = pending_rc.try_borrow_mut() else {
            for p in input.drain() {
                out.next(SynProxyAckNext::Schedule, p);
            }
            return;
        };
        for p in input.drain() {
            let m = &p.meta;
            let f = m.tcp_flags;
            let is_ack = f.ack() && !f.syn() && !f.rst() && !f.fin();
            if m.proto != Proto::Tcp.number() || !is_ack || m.fragment || m.icmp_err {
                out.next(SynProxyAckNext::Schedule, p);
                continue;
            }
            let Some(svc) = cx.snapshot.find(Proto::Tcp, m.daddr, m.dport) else {
                out.next(SynProxyAckNext::Schedule, p);
                continue;
            };
            if !svc.synproxy {
                out.next(SynProxyAckNext::Schedule, p);
                continue;
            }
            let Some(tuple) = Tuple::of(m) else {
                out.next(SynProxyAckNext::Schedule, p);
                continue;
            };
            // A handshake of this vector already sent its SYN: save this ACK beside the first.
            if let Some(h) = pending.find(&tuple) {
                if let Some(e) = pending.get_mut(h)
                    && e.conn == NO_CONN
                {
                    match e.save(p) {
                        Ok(()) => {
                            self.counters.saved += 1;
                            out.held();
                        }
                        Err(p) => out.drop(SynProxyAckDrop::AckQueueFull, p),
                    }
                    continue;
                }
                // A handshake whose connection went away: start over below.
                if let Some(e) = pending.remove(h) {
                    free_acks(e.acks, out);
                }
            }
            let Some((seq, ack)) = seq_ack(&p) else {
                out.drop(SynProxyAckDrop::Invalid, p);
                continue;
            };
            let client_isn = seq.wrapping_sub(1);
            let cookie = ack.wrapping_sub(1);
            let Some(opts) = self.key.check(&flow_of(m), client_isn, cookie, cx.now) else {
                out.drop(SynProxyAckDrop::BadCookie, p);
                continue;
            };
            let Some(mut buf) = out.alloc() else {
                out.drop(SynProxyAckDrop::NoBuffer, p);
                continue;
            };
            let meta = match build::build_syn(&mut buf, &p, &opts, client_isn, cx.now) {
                Ok(meta) => meta,
                Err(_) => {
                    out.free(buf);
                    out.drop(SynProxyAckDrop::Invalid, p);
                    continue;
                }
            };
            match pending.insert(tuple, cookie, client_isn, opts, p) {
                Ok(_) => {
                    self.counters.accepted += 1;
                    out.held();
                    out.emit_next(SynProxyAckNext::Schedule, Packet { mbuf: buf, meta });
                }
                Err(p) => {
                    out.free(buf);
                    out.drop(SynProxyAckDrop::PendingFull, p);
                }
            }
        }
    }

    /// Free the saved ACKs of handshakes whose SYN did not become a connection.
    fn poll(&mut self, _cx: &StageCx<'_>, out: &mut Out<'_, M, SynProxyAckNext, SynProxyAckDrop>) {
        let pending_rc = self.pending.clone();
        let Ok(mut pending) = pending_rc.try_borrow_mut() else {
            return;
        };
        pending.take_unbound(&mut self.scratch);
        for &h in &self.scratch {
            let orphan = pending.get_mut(h).is_some_and(|e| e.conn == NO_CONN);
            if orphan && let Some(e) = pending.remove(h) {
                for a in e.acks.into_iter().flatten() {
                    out.free(a.mbuf);
                    out.count_drop(SynProxyAckDrop::NotScheduled);
                }
            }
        }
    }
}

/// Free saved ACKs that will never be sent (not counted as drops of this vector).
fn free_acks<M: Mbuf, N: rvs_core::label::Label, D: DropReason>(
    acks: [Option<Packet<M>>; MAX_ACKS],
    out: &mut Out<'_, M, N, D>,
) {
    for a in acks.into_iter().flatten() {
        out.free(a.mbuf);
    }
}
