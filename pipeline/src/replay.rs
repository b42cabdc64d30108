//! `rvs replay`: the whole stage graph on one lcore over heap buffers, driven by a pcap file
//! whose timestamps are the clock.
//!
//! Packets are gathered into vectors of the configured size; a vector also closes when the
//! next packet is more than [`VECTOR_WINDOW_NS`] later than the vector's first, as a poll loop
//! would see them. Before each vector, connections due at the vector's time expire.
//! Transmitted packets are written in the order the graph emits them: each flow's packets
//! keep their order (packets of different flows may interleave differently for different
//! vector sizes, as in any vector data plane).

use rvs_core::HeapMbuf;
use rvs_core::mbuf::{HeapPool, Mbuf, PacketPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::Packet;
use rvs_core::time::Now;
use serde::Serialize;

use crate::config::Config;
use crate::worker::Worker;

/// A vector closes when the next packet is this much later than its first packet.
pub const VECTOR_WINDOW_NS: u64 = 100_000;

/// Expiry budget per vector.
const EXPIRE_BUDGET: usize = 4096;

/// Counters of one drop reason.
#[derive(Debug, Clone, Serialize)]
pub struct DropOut {
    /// Reason.
    pub reason: String,
    /// DPVS class.
    pub cause: String,
    /// Packets.
    pub count: u64,
}

/// One stage's counters.
#[derive(Debug, Clone, Serialize)]
pub struct StageOut {
    /// Stage.
    pub name: String,
    /// Vectors.
    pub vectors: u64,
    /// Packets in.
    pub packets: u64,
    /// Cycles per packet.
    pub cycles_per_packet: f64,
    /// Packets per next stage.
    pub next: std::collections::BTreeMap<String, u64>,
    /// Drops, by reason.
    pub drops: Vec<DropOut>,
    /// Transmitted.
    pub tx: u64,
    /// To the host path.
    pub host: u64,
    /// Redirected (recirculated when to this lcore).
    pub redirect: u64,
    /// Held.
    pub held: u64,
    /// Created.
    pub emitted: u64,
}

/// A stage's counters in the report's form.
pub fn stage_out(r: &rvs_core::counters::StageReport) -> StageOut {
    StageOut {
        name: r.name.to_string(),
        vectors: r.vectors,
        packets: r.packets,
        cycles_per_packet: r.cycles_per_packet(),
        next: r.next.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        drops: r
            .drops
            .iter()
            .map(|d| DropOut {
                reason: d.reason.to_string(),
                cause: d.cause.to_string(),
                count: d.count,
            })
            .collect(),
        tx: r.tx,
        host: r.host,
        redirect: r.redirect,
        held: r.held,
        emitted: r.emitted,
    }
}

/// One destination's counters.
#[derive(Debug, Clone, Serialize)]
pub struct DestOut {
    /// Address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// Connections created.
    pub created: u64,
    /// Active connections now.
    pub active: u32,
    /// Inactive connections now.
    pub inactive: u32,
}

/// One service's counters.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceOut {
    /// `tcp 198.18.0.100:80`.
    pub service: String,
    /// Scheduler.
    pub scheduler: String,
    /// Forwarding mode.
    pub forward: String,
    /// Destinations.
    pub dests: Vec<DestOut>,
}

/// Everything a replay counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Time of the last vector (ns).
    #[serde(skip)]
    pub last_ts: u64,
    /// Packets read.
    pub packets_in: u64,
    /// Packets transmitted.
    pub packets_out: u64,
    /// Packets handed to the host path.
    pub host: u64,
    /// Packets lost to full queues.
    pub overflow: u64,
    /// Packets recirculated.
    pub recirculated: u64,
    /// Connections alive at the end.
    pub connections: usize,
    /// Connections created.
    pub created: u64,
    /// Connections expired.
    pub expired: u64,
    /// Vectors run.
    pub vectors: u64,
    /// Schedule's host-path and recirculation counts.
    pub schedule: std::collections::BTreeMap<String, u64>,
    /// Per stage.
    pub stages: Vec<StageOut>,
    /// Per service and destination.
    pub services: Vec<ServiceOut>,
}

/// One lcore's data plane over heap buffers, stepped by the caller: `rvs replay` drives it
/// from a pcap file; closed-loop tests drive it with packets they answer.
pub struct Engine {
    /// The worker.
    pub worker: Worker<HeapMbuf>,
    /// The snapshot in force.
    pub snap: Snapshot,
    pool: HeapPool,
    vector: usize,
    /// What happened so far (stage and service counters are filled by [`Engine::report`]).
    pub totals: Report,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("worker", &self.worker).finish()
    }
}

/// A frame the engine transmitted or handed to the host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// Time of the vector that produced it.
    pub ts: u64,
    /// Transmit port, or `None` for the host path.
    pub port: Option<u16>,
    /// The frame.
    pub bytes: Vec<u8>,
}

impl Engine {
    /// An engine for `cfg` with vectors of `vector` packets.
    pub fn new(cfg: &Config, vector: usize) -> anyhow::Result<Self> {
        let snap = cfg.snapshot(1, 1).map_err(|(_, m)| anyhow::anyhow!(m))?;
        Ok(Engine {
            worker: Worker::new(cfg, 0, 1)?,
            snap,
            pool: HeapPool::new(rvs_core::stage::QUEUE_DEFAULT * 4),
            vector: vector.clamp(1, rvs_core::stage::VECTOR_MAX),
            totals: Report::default(),
        })
    }

    /// Run `records` (timestamp-ordered) through the graph in vectors, handing every frame
    /// that leaves to `out` in the order the graph emits them.
    pub fn feed(
        &mut self,
        records: &[(u64, Vec<u8>)],
        mut out: impl FnMut(Emitted) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut i = 0;
        let mut now = records
            .first()
            .map_or(self.totals.last_ts, |r| r.0)
            .max(self.totals.last_ts);
        while i < records.len() || self.worker.queued() > 0 {
            let start = records.get(i).map_or(now, |r| r.0).max(now);
            now = start;
            let mut taken = self.worker.queued();
            while taken < self.vector && i < records.len() && records[i].0 <= start + VECTOR_WINDOW_NS {
                let (ts, bytes) = &records[i];
                now = now.max(*ts);
                let Some(m) = self.pool.alloc_with(bytes) else {
                    anyhow::bail!("record {} ({} bytes) does not fit a packet buffer", i + 1, bytes.len());
                };
                if let Err(p) = self.worker.push(Packet::new(m)) {
                    self.pool.free(p.mbuf);
                    self.totals.overflow += 1;
                }
                self.totals.packets_in += 1;
                taken += 1;
                i += 1;
            }
            self.step(now, &mut out)?;
        }
        self.totals.last_ts = now;
        Ok(())
    }

    /// Publish a new snapshot (the control plane's swap): the next vector runs on it.
    /// Existing connections keep their destinations; schedulers of changed services are
    /// rebuilt off the packet path before their first pick.
    pub fn publish(&mut self, snap: Snapshot) {
        self.snap = snap;
    }

    /// Let time pass to `now` with no traffic: connections due expire.
    pub fn advance(&mut self, now: u64) -> anyhow::Result<()> {
        self.totals.last_ts = self.totals.last_ts.max(now);
        self.step(self.totals.last_ts, &mut |_| Ok(()))
    }

    fn step(&mut self, now: u64, out: &mut impl FnMut(Emitted) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.totals.expired += self.worker.expire(Now(now), &self.snap, EXPIRE_BUDGET) as u64;
        self.worker.run(Now(now), &self.snap, &mut self.pool);
        self.totals.vectors += 1;
        let exits = &mut self.worker.graph.exits;
        for (port, q) in exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                self.totals.packets_out += 1;
                let e = Emitted {
                    ts: now,
                    port: Some(port as u16),
                    bytes: p.mbuf.data().to_vec(),
                };
                self.pool.free(p.mbuf);
                out(e)?;
            }
        }
        for p in exits.host.drain() {
            self.totals.host += 1;
            let e = Emitted {
                ts: now,
                port: None,
                bytes: p.mbuf.data().to_vec(),
            };
            self.pool.free(p.mbuf);
            out(e)?;
        }
        for q in exits.redirect.iter_mut() {
            for p in q.drain() {
                // One lcore: every redirect was a recirculation, already fed back.
                self.totals.overflow += 1;
                self.pool.free(p.mbuf);
            }
        }
        Ok(())
    }

    /// Every counter now.
    pub fn report(&self) -> Report {
        let w = &self.worker;
        let mut report = self.totals.clone();
        report.overflow += w.graph.exits.overflow;
        report.recirculated = w.recirculated();
        report.connections = w.conns.borrow().len();
        let cn = w.graph.stage(w.nodes.conn_new);
        report.created = cn.counters().created;
        let sc = w.graph.stage(w.nodes.schedule).counters();
        report.schedule = [
            ("host_not_vip", sc.host_not_vip),
            ("host_stray", sc.host_stray),
            ("host_no_service", sc.host_no_service),
            ("host_icmp", sc.host_icmp),
            ("recirculated", sc.recirculated),
            ("scheduled", sc.scheduled),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        report.stages = w.graph.reports().iter().map(stage_out).collect();
        let created = cn.created_per_dest();
        report.services = self
            .snap
            .services
            .iter()
            .map(|s| ServiceOut {
                service: s.key.to_string(),
                scheduler: s.sched.name().to_string(),
                forward: s.fwd.name().to_string(),
                dests: s
                    .dests
                    .iter()
                    .map(|d| {
                        let l = w.loads.get(d.id);
                        DestOut {
                            ip: d.addr.to_string(),
                            port: d.port,
                            weight: d.weight,
                            created: created.get(d.id.0 as usize).copied().unwrap_or(0),
                            active: l.active,
                            inactive: l.inactive,
                        }
                    })
                    .collect(),
            })
            .collect();
        report
    }
}

/// Replay `records` through one worker built from `cfg`, handing each transmitted frame to
/// `emit(timestamp_ns, port, bytes)` and each host-path frame to `host`.
pub fn replay(
    cfg: &Config,
    records: &[(u64, Vec<u8>)],
    vector: usize,
    mut emit: impl FnMut(u64, u16, &[u8]) -> anyhow::Result<()>,
    mut host: impl FnMut(u64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Report> {
    let mut e = Engine::new(cfg, vector)?;
    e.feed(records, |x| match x.port {
        Some(port) => emit(x.ts, port, &x.bytes),
        None => host(x.ts, &x.bytes),
    })?;
    Ok(e.report())
}

impl Report {
    /// A short human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "packets in {} out {} host {} overflow {}; vectors {}; connections created {} alive {} expired {}\n",
            self.packets_in,
            self.packets_out,
            self.host,
            self.overflow,
            self.vectors,
            self.created,
            self.connections,
            self.expired
        );
        for svc in &self.services {
            s += &format!("service {} ({}, {})\n", svc.service, svc.scheduler, svc.forward);
            for d in &svc.dests {
                s += &format!(
                    "  -> {}:{} weight {} connections {} (active {} inactive {})\n",
                    d.ip, d.port, d.weight, d.created, d.active, d.inactive
                );
            }
        }
        s += "stage          packets   drops  cycles/pkt\n";
        for st in &self.stages {
            let drops: u64 = st.drops.iter().map(|d| d.count).sum();
            s += &format!(
                "{:<12} {:>9} {:>7} {:>10.1}\n",
                st.name, st.packets, drops, st.cycles_per_packet
            );
            for d in st.drops.iter().filter(|d| d.count > 0) {
                s += &format!("    drop {} ({}): {}\n", d.reason, d.cause, d.count);
            }
        }
        s
    }
}
