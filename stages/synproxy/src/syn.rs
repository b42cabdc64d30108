//! Step 1 (DPVS's `dp_vs_synproxy_syn_rcv`, a pre-routing hook): a SYN to a synproxy service
//! with no connection is answered with a cookie SYN-ACK, made in place and sent back out of
//! the port it came in on to the sender's MAC. Nothing is created. Everything else goes on
//! to lookup.

use rvs_conn::{SharedConns, Tuple};
use rvs_core::addr::Proto;
use rvs_core::mbuf::Mbuf;
use rvs_core::service::{Forward, Snapshot};
use rvs_core::stage::{Out, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};

use crate::SynProxyConfig;
use crate::build::{self, BuildError};
use crate::cookie::CookieKey;

rvs_core::labels! {
    /// Where step 1 sends a packet.
    pub enum SynProxyNext {
        /// Not a SYN synproxy answers: on to lookup.
        Lookup = ("lookup", "not a SYN to a synproxy service without connection; on to lookup"),
    }
}

rvs_core::labels! {
    /// Why step 1 drops.
    pub enum SynProxyDrop {
        /// The service has no destination of weight above 0 (DPVS drops the SYN).
        NoDest = ("no_dest", "SYN to a synproxy service whose destinations all have weight 0"),
        /// The SYN's headers do not parse, so no SYN-ACK can be made of it.
        Invalid = ("invalid", "SYN headers do not parse; no SYN-ACK can be made"),
    }
}

impl DropReason for SynProxyDrop {
    fn cause(self) -> Cause {
        match self {
            SynProxyDrop::NoDest => Cause::Resource,
            SynProxyDrop::Invalid => Cause::InvalidPacket,
        }
    }
}

/// Step 1's counts besides its dispositions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynCounters {
    /// Cookie SYN-ACKs sent.
    pub synacks: u64,
    /// SYNs to a synproxy service that already had a connection (passed on).
    pub existing: u64,
    /// SYNs to a synproxy service whose mode cannot be proxied (DR, TUNNEL, SNAT: the
    /// balancer must see both directions) or with IPv6 extension headers; passed on unproxied.
    pub unsupported: u64,
}

/// Per service of the snapshot: proxied, and has a destination of weight above 0.
#[derive(Debug, Clone, Copy, Default)]
struct SvcInfo {
    proxied: bool,
    unsupported: bool,
    weighted: bool,
}

/// Step 1 of one lcore.
#[derive(Debug)]
pub struct SynProxy {
    cfg: SynProxyConfig,
    key: CookieKey,
    conns: SharedConns,
    generation: Option<u64>,
    svcs: Vec<SvcInfo>,
    counters: SynCounters,
}

impl SynProxy {
    /// Step 1 answering SYNs with cookies of `key` (the same key as step 2's, on every
    /// lcore), looking connections up in `conns`.
    pub fn new(cfg: SynProxyConfig, key: CookieKey, conns: SharedConns) -> Self {
        SynProxy {
            cfg,
            key,
            conns,
            generation: None,
            svcs: Vec::new(),
            counters: SynCounters::default(),
        }
    }
    /// Counts.
    pub fn counters(&self) -> SynCounters {
        self.counters
    }
    /// Refresh the per-service table (off the packet path: when the generation changed).
    fn sync(&mut self, snap: &Snapshot) {
        if self.generation == Some(snap.generation) {
            return;
        }
        self.svcs = snap
            .services
            .iter()
            .map(|s| {
                let ok = |f: Forward| matches!(f, Forward::Fnat | Forward::Nat);
                SvcInfo {
                    proxied: s.synproxy,
                    unsupported: !ok(s.fwd) || s.dests.iter().any(|d| !ok(d.fwd)),
                    weighted: s.dests.iter().any(|d| d.weight > 0),
                }
            })
            .collect();
        self.generation = Some(snap.generation);
    }
}

impl<M: Mbuf> Stage<M> for SynProxy {
    type Next = SynProxyNext;
    type Drop = SynProxyDrop;
    const NAME: &'static str = "synproxy-syn";

    fn process(
        &mut self,
        cx: &StageCx<'_>,
        input: &mut PacketVec<M>,
        out: &mut Out<'_, M, SynProxyNext, SynProxyDrop>,
    ) {
        self.sync(cx.snapshot);
        let mut c = SynCounters::default();
        let conns = self.conns.clone();
        for mut p in input.drain() {
            let m = &p.meta;
            if m.proto != Proto::Tcp.number() || !m.tcp_flags.may_create() || m.fragment {
                out.next(SynProxyNext::Lookup, p);
                continue;
            }
            let Some(svc) = cx.snapshot.find(Proto::Tcp, m.daddr, m.dport) else {
                out.next(SynProxyNext::Lookup, p);
                continue;
            };
            let info = self.svcs.get(svc.index as usize).copied().unwrap_or_default();
            if !info.proxied {
                out.next(SynProxyNext::Lookup, p);
                continue;
            }
            if info.unsupported {
                c.unsupported += 1;
                out.next(SynProxyNext::Lookup, p);
                continue;
            }
            let existing = Tuple::of(m).is_some_and(|t| conns.try_borrow().is_ok_and(|t2| t2.lookup(&t).is_some()));
            if existing {
                c.existing += 1;
                out.next(SynProxyNext::Lookup, p);
                continue;
            }
            if !info.weighted {
                out.drop(SynProxyDrop::NoDest, p);
                continue;
            }
            match build::synack_in_place(&mut p, &self.cfg, &self.key, cx.now) {
                Ok(_) => {
                    c.synacks += 1;
                    let port = p.mbuf.port();
                    out.tx(port, p);
                }
                Err(BuildError::Unsupported) => {
                    c.unsupported += 1;
                    out.next(SynProxyNext::Lookup, p);
                }
                Err(BuildError::Invalid) => out.drop(SynProxyDrop::Invalid, p),
            }
        }
        self.counters.synacks += c.synacks;
        self.counters.existing += c.existing;
        self.counters.unsupported += c.unsupported;
    }
}
