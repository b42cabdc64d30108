//! One lcore's share of the data plane: its connections, destination counters and the stage
//! graph, the same code over heap buffers (`rvs replay`) and `rte_mbuf`s (`rvs run`).
//!
//! ```text
//! parse -> synproxy-syn -> lookup --hit--> synproxy-seq -> xmit
//!   |                               \--miss--> synproxy-ack -> schedule -> conn-new --/
//!   \--arp--> arp <--local (ICMP to us)------------------------/
//! ```
//!
//! The three synproxy stages are DPVS's steps: step 1 answers a SYN to a synproxy service
//! with a cookie SYN-ACK, step 2 turns a valid cookie ACK into a SYN that schedule and
//! conn-new place, step 3 completes the handshake with the real server and adjusts
//! sequence numbers for the connection's life. For services without synproxy they pass
//! packets on.
//!
//! ```text
//! ```
//!
//! Followers that schedule recirculates (packets of a flow an earlier packet of the same
//! vector is creating) come back through this lcore's own redirect queue and are fed in
//! front of the next vector.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{ConnConfig, LcoreConns, SharedConns, Templates};
use rvs_conn_new::ConnNew;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{Mbuf, PacketPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Graph, NodeId, Packet, StageCx};
use rvs_core::time::Now;
use rvs_lookup::Lookup;
use rvs_parse::Parse;
use rvs_schedule::Schedule;
use rvs_synproxy::{SynProxy, SynProxyConfig};
use rvs_xmit::Xmit;
use rvs_xmit::arp::Arp;
use rvs_xmit::neigh::{NeighCache, NeighConfig};

use crate::config::Config;
use crate::l2;

/// Node handles of a worker's graph.
#[derive(Debug, Clone, Copy)]
pub struct Nodes {
    /// parse.
    pub parse: NodeId<Parse>,
    /// synproxy step 1 (cookie SYN-ACKs).
    pub syn: NodeId<SynProxy>,
    /// lookup.
    pub lookup: NodeId<Lookup>,
    /// schedule.
    pub schedule: NodeId<Schedule>,
    /// conn-new.
    pub conn_new: NodeId<ConnNew>,
    /// xmit.
    pub xmit: NodeId<Xmit>,
    /// ARP/ND and echo replies.
    pub arp: NodeId<Arp>,
}

/// One lcore's data plane.
pub struct Worker<M: Mbuf + 'static> {
    /// The stage graph.
    pub graph: Graph<M>,
    /// Its nodes.
    pub nodes: Nodes,
    /// This lcore's connections.
    pub conns: SharedConns,
    /// This lcore's destination counters.
    pub loads: Arc<LoadTable>,
    /// This lcore.
    pub lcore: u16,
    recirculated: u64,
}

impl<M: Mbuf + 'static> std::fmt::Debug for Worker<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("lcore", &self.lcore)
            .field("graph", &self.graph)
            .finish()
    }
}

/// What every lcore's worker shares: the global persistence template table.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Persistence templates (global: a client may arrive on several lcores).
    pub templates: Arc<Templates>,
}

impl Shared {
    /// Shared state sized from the configuration.
    pub fn new(cfg: &Config) -> Self {
        Shared {
            templates: Arc::new(Templates::new(cfg.conn.templates, 64, cfg.pipeline.seed ^ 0x7465_6d70)),
        }
    }
}

impl<M: Mbuf + 'static> Worker<M> {
    /// Build lcore `lcore` of `lcores` from the configuration, with state of its own where
    /// lcores would share it (one lcore: `rvs replay`).
    pub fn new(cfg: &Config, lcore: u16, lcores: u16) -> anyhow::Result<Self> {
        Self::with_shared(cfg, lcore, lcores, &Shared::new(cfg))
    }

    /// Build lcore `lcore` of `lcores`, sharing `shared` with the other lcores' workers.
    pub fn with_shared(cfg: &Config, lcore: u16, lcores: u16, shared: &Shared) -> anyhow::Result<Self> {
        let seed = cfg.pipeline.seed ^ ((lcore as u64) << 48);
        let loads = Arc::new(LoadTable::new(cfg.conn.dest_slots));
        let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(
            ConnConfig {
                capacity: cfg.conn.capacity,
                buckets_log2: cfg.conn.buckets_log2,
                seed,
                timer_tick_ms: 10,
            },
            lcore,
            lcores,
            loads.clone(),
        )));
        conns.borrow_mut().set_templates(shared.templates.clone());
        let ports = cfg.interfaces.len().max(1);
        let mut graph = Graph::new(ports, lcores as usize);
        // The cookie secret comes from the configuration's seed, not the lcore's: a client's
        // ACK may reach another lcore than its SYN did.
        let (sp_syn, sp_ack, sp_seq) = rvs_synproxy::stages::<M>(
            SynProxyConfig::default(),
            cfg.pipeline.seed,
            conns.clone(),
            loads.clone(),
        );
        let parse = graph.add(Parse::new());
        let syn = graph.add(sp_syn);
        let lookup = graph.add(Lookup::new(conns.clone()));
        let ack = graph.add(sp_ack);
        let schedule = graph.add(Schedule::new(loads.clone(), seed).with_templates(shared.templates.clone()));
        let conn_new = graph.add(ConnNew::new(conns.clone(), rvs_core::hash::mix64(seed ^ 0x666e_6174)));
        let l2 = l2::build(cfg)?;
        let neigh = NeighCache::shared(NeighConfig::default());
        // ARP/ND before xmit: a hop learned in this vector releases xmit's held packets in
        // the same pass.
        let arp = graph.add(Arp::new(l2.clone(), neigh.clone()));
        let seq = graph.add(sp_seq);
        let uoa = rvs_xmit::toa::UoaConfig {
            mode: match cfg.udp.uoa_mode {
                crate::config::UoaModeCfg::Opp => rvs_xmit::toa::UoaMode::Opp,
                crate::config::UoaModeCfg::Ipo => rvs_xmit::toa::UoaMode::Ipo,
            },
            max_trail: cfg.udp.uoa_max_trail,
        };
        let xmit = graph.add(Xmit::new(conns.clone(), l2).with_neigh(neigh).with_uoa(uoa));
        graph.connect(parse, rvs_parse::ParseNext::Ip, syn)?;
        graph.connect(syn, rvs_synproxy::SynProxyNext::Lookup, lookup)?;
        graph.connect(lookup, rvs_lookup::LookupNext::Hit, seq)?;
        graph.connect(lookup, rvs_lookup::LookupNext::Miss, ack)?;
        graph.connect(ack, rvs_synproxy::SynProxyAckNext::Schedule, schedule)?;
        graph.connect(schedule, rvs_schedule::ScheduleNext::New, conn_new)?;
        graph.connect(conn_new, rvs_conn_new::ConnNewNext::Xmit, seq)?;
        graph.connect(seq, rvs_synproxy::SynProxySeqNext::Xmit, xmit)?;
        graph.connect(parse, rvs_parse::ParseNext::Arp, arp)?;
        graph.connect(schedule, rvs_schedule::ScheduleNext::Local, arp)?;
        graph.check()?;
        Ok(Worker {
            graph,
            nodes: Nodes {
                parse,
                syn,
                lookup,
                schedule,
                conn_new,
                xmit,
                arp,
            },
            conns,
            loads,
            lcore,
            recirculated: 0,
        })
    }

    /// Room for more packets in this vector.
    pub fn room(&self) -> usize {
        self.graph.input_room()
    }

    /// Queue a received packet.
    pub fn push(&mut self, p: Packet<M>) -> Result<(), Packet<M>> {
        self.graph.push(p)
    }

    /// Run one vector at `now` over `snap`, then feed recirculated packets back in front of
    /// the next vector.
    pub fn run(&mut self, now: Now, snap: &Snapshot, pool: &mut dyn PacketPool<M>) {
        let cx = StageCx {
            now,
            lcore: self.lcore,
            snapshot: snap,
        };
        self.graph.run(&cx, pool, true);
        self.recirculated += self.graph.recirculate(self.lcore as usize, pool) as u64;
    }

    /// Packets waiting for the next vector (recirculated ones).
    pub fn queued(&self) -> usize {
        self.graph.queued()
    }

    /// Packets recirculated so far.
    pub fn recirculated(&self) -> u64 {
        self.recirculated
    }

    /// Expire due connections (at most `budget`).
    pub fn expire(&mut self, now: Now, snap: &Snapshot, budget: usize) -> usize {
        self.conns.borrow_mut().expire(now, budget, snap)
    }
}
