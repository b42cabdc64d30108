//! A lcore's new-connection path as the pipeline wires it, over heap buffers:
//! parse -> lookup --hit--> out, --miss--> schedule -> conn-new -> out, where "out" is a stage
//! that transmits on port 0 so a test sees every packet that made it through, with its
//! metadata. Followers that schedule recirculates are fed back in until none is left.

#![allow(dead_code, clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{ConnConfig, LcoreConns, SharedConns, Templates};
use rvs_conn_new::{ConnNew, ConnNewNext};
use rvs_core::label::Never;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool, Mbuf};
use rvs_core::meta::PacketMeta;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Graph, NodeId, Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};
use rvs_parse::{Parse, ParseNext};
use rvs_schedule::{Schedule, ScheduleNext};

/// The end of the test graph: every packet is transmitted on port 0.
#[derive(Debug)]
pub struct Out0;
impl<M: Mbuf> Stage<M> for Out0 {
    type Next = Never;
    type Drop = Never;
    const NAME: &'static str = "out";
    fn process(&mut self, _: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, Never>) {
        for p in input.drain() {
            out.tx(0, p);
        }
    }
}

/// Round robin over eligible destinations (consecutive flows spread, so a test sees when
/// persistence rather than the scheduler kept flows together).
#[derive(Debug, Default)]
pub struct Rr(usize);
impl Scheduler for Rr {
    fn name(&self) -> &str {
        "rr"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
        let n = cx.dests().len();
        for k in 0..n {
            let i = (self.0 + k) % n;
            if cx.eligible(i) {
                self.0 = i + 1;
                return Some(i);
            }
        }
        None
    }
}
/// Factory of [`Rr`].
#[derive(Debug)]
pub struct RrFactory;
impl SchedulerFactory for RrFactory {
    fn name(&self) -> &str {
        "rr"
    }
    fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
        Box::new(Rr::default())
    }
}

/// One lcore: its graph, connection table and counters.
pub struct Lcore {
    pub graph: Graph<HeapMbuf>,
    pub conns: SharedConns,
    pub loads: Arc<LoadTable>,
    pub lcore: u16,
    pub lookup: NodeId<Lookup>,
    pub schedule: NodeId<Schedule>,
    pub conn_new: NodeId<ConnNew>,
    pool: HeapPool,
}

impl Lcore {
    /// Lcore `lcore` of `lcores`, sharing `templates` when given.
    pub fn new(lcore: u16, lcores: u16, templates: Option<&Arc<Templates>>) -> Self {
        let loads = Arc::new(LoadTable::new(8));
        let mut table = LcoreConns::new(
            ConnConfig {
                capacity: 256,
                buckets_log2: 8,
                seed: 11 + lcore as u64,
                timer_tick_ms: 10,
            },
            lcore,
            lcores,
            loads.clone(),
        );
        let mut schedule = Schedule::new(loads.clone(), 7);
        if let Some(t) = templates {
            table.set_templates(t.clone());
            schedule = schedule.with_templates(t.clone());
        }
        let conns: SharedConns = Rc::new(RefCell::new(table));
        let mut graph = Graph::new(1, lcores as usize);
        let parse = graph.add(Parse::new());
        let lookup = graph.add(Lookup::new(conns.clone()));
        let schedule = graph.add(schedule);
        let conn_new = graph.add(ConnNew::new(conns.clone(), 99));
        let out = graph.add(Out0);
        graph.connect(parse, ParseNext::Ip, lookup).unwrap();
        graph.connect(lookup, LookupNext::Hit, out).unwrap();
        graph.connect(lookup, LookupNext::Miss, schedule).unwrap();
        graph.connect(schedule, ScheduleNext::New, conn_new).unwrap();
        graph.connect(conn_new, ConnNewNext::Xmit, out).unwrap();
        // ARP frames and ICMP without a connection (for the ARP/ND stage) are not what
        // these tests look at: they end at the same sink.
        graph.connect(parse, ParseNext::Arp, out).unwrap();
        graph.connect(schedule, ScheduleNext::Local, out).unwrap();
        graph.check().unwrap();
        Lcore {
            graph,
            conns,
            loads,
            lcore,
            lookup,
            schedule,
            conn_new,
            pool: HeapPool::new(64),
        }
    }

    /// Run `frames` through the graph at `now` (polling the stages first, as the poll loop
    /// does); returns the metadata of the packets transmitted, and counts host-path ones.
    pub fn send(&mut self, snap: &Snapshot, now: Now, frames: &[Vec<u8>]) -> Vec<PacketMeta> {
        for f in frames {
            self.graph.push(Packet::new(HeapMbuf::from_bytes(f))).unwrap();
        }
        let mut sent = Vec::new();
        loop {
            let cx = StageCx {
                now,
                lcore: self.lcore,
                snapshot: snap,
            };
            self.graph.run(&cx, &mut self.pool, true);
            sent.extend(self.graph.exits.tx[0].drain().map(|p| p.meta));
            if self.graph.recirculate(self.lcore as usize, &mut self.pool) == 0 {
                break;
            }
        }
        sent
    }

    /// Packets the graph handed to the host path since the last call.
    pub fn host(&mut self) -> usize {
        self.graph.exits.host.drain().count()
    }

    /// Let time pass: poll the stages (template expiry) and expire due connections.
    pub fn tick(&mut self, snap: &Snapshot, now: Now) -> usize {
        let n = self.conns.borrow_mut().expire(now, 1024, snap);
        self.send(snap, now, &[]);
        n
    }

    pub fn schedule(&self) -> &Schedule {
        self.graph.stage(self.schedule)
    }
    pub fn conn_new(&self) -> &ConnNew {
        self.graph.stage(self.conn_new)
    }
    pub fn lookup(&self) -> &Lookup {
        self.graph.stage(self.lookup)
    }
}
