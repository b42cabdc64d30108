//! `rvs run`: the DPDK poll loop.
//!
//! - The EAL starts from the config's `[dpdk]` section ([`eal_args`]): `--no-huge -m MB`
//!   by default, `-l 0-(workers-1)` unless `eal_args` maps lcores itself (`--lcores=...`),
//!   a file prefix unique to the process, `--no-shconf`; its runtime directory is removed on
//!   exit.
//! - One mbuf pool; every `[[interface]]` is opened by its `device` string (a vdev such as
//!   `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, hot-plugged, or a PCI address) with one rx
//!   and one tx queue per worker lcore, promiscuous while it runs (the configured MAC need
//!   not be the device's).
//! - Worker lcore `i` (the EAL main lcore is worker 0) builds its own
//!   [`Worker`] on its lcore (the graph holds `Rc`s) and loops: take
//!   packets other lcores redirected to it from its SPSC rings, then rx bursts from its queue
//!   of every port, up to one vector (`[pipeline] vector`); run the graph (which recirculates
//!   its own redirects); hand transmitted packets to a per-port, per-queue
//!   [`TxBuffer`], redirected ones to the ring of the target lcore, and
//!   host-path ones to the kernel (below); expire due connections (a bounded budget per
//!   iteration); flush the tx buffers. Time is the TSC converted to nanoseconds ([`Clock`]).
//! - Host path to the kernel (DPVS's KNI): an `[[interface]]` with `host_tap = "NAME"` gets
//!   a kernel TAP interface NAME, a `net_tap` vdev hot-plugged after every interface is open
//!   (`iface=NAME,mac=<the interface's mac>`, so the kernel answers from the interface's own
//!   MAC), with one rx and one tx queue per worker, at most 4 (DPDK 22.11's net_tap aborts
//!   the process when started with more) and fewer if the PMD refuses, with a warning:
//!   workers without a queue free their host-path packets (counted `host`). Each worker sends
//!   the host-path packets that came in on interface `i` (the mbuf's input port, mapped back
//!   to its interface) to `i`'s TAP through its own tx buffer (`host_to_kernel`), and polls
//!   its rx queue of every TAP after flushing those (the kernel usually answers within the
//!   write), sending each frame the kernel wrote unchanged out of the TAP's interface
//!   (`kernel_out`, also part of `tx`). (A device whose receive blocks, net_pcap reading a
//!   FIFO, holds the kernel's later frames until its next packet.) An empty TAP poll costs
//!   no system call (net_tap reads only after a SIGIO): `--empty-graph` on two net_null
//!   ports ran within the run-to-run noise with and without a TAP. Host-path packets of an
//!   interface without a TAP are counted (`host`) and freed. rvs configures nothing on the
//!   kernel side: the operator gives the TAP its addresses, routes and link state (`ip addr add`,
//!   `ip link set NAME up`), as with DPVS's KNI devices. Not done: the kernel's frames are
//!   not looked at (no neighbour learning from them, no filtering); nothing rate-limits the
//!   host path; workers beyond the TAP's queue pairs do not hand their host-path packets
//!   to a worker that has one.
//! - Connection ownership with several workers: FNAT and SNAT replies go to the lcore owning
//!   their local port (lookup's [`rvs_conn::SaPool::owner_lcore`] rule); NAT replies, and
//!   packets of a connection that arrive on another lcore's queue, through the shared
//!   [`OwnerTable`] (DPVS's `dp_vs_redirect`), filled by conn-new and cleared by the owner's
//!   expiry. Redirected mbufs travel over one SPSC ring per (from, to) pair and are parsed
//!   again by the target.
//! - Idle mode: after `idle_polls` empty polls an lcore sleeps `idle_sleep_us` (0: busy
//!   poll), so several lcores can share one core in tests (`eal_args = ["--lcores=(0-1)@0"]`).
//! - Stopping: SIGINT or SIGTERM, `--packets N` received, or `--idle-ms MS` without a packet
//!   (net_pcap never signals the end of its file). Receiving stops first; the lcores then
//!   drain their rings and queues and flush, and stop once all are quiet (at most
//!   [`DRAIN_MAX_MS`]).
//! - Counters: per lcore and per stage, VPP `show runtime` style (calls, packets, packets
//!   per call, drops by reason, cycles per packet), printed on SIGUSR1 (read from the
//!   stages' atomic [`StageStats`] by the main lcore while the workers run) and at exit,
//!   with the mempool's mbufs in use once everything is closed (0 unless an mbuf leaked).
//!
//! - Throughput runs: an interface whose `device` is `gen:...` is a traffic generator
//!   ([`crate::traffic`]) instead of a DPDK port; `--empty-graph` bypasses the stages (rx to
//!   the next interface's tx: rvs's own I/O floor); `--warmup-ms`/`--window-ms` read every
//!   counter at both ends of a measured window ([`WindowOut`]: rates, connections created per
//!   second, per-stage cycles per packet) and stop at its end. `perf/run` drives them.
//!
//! - Run-time control ([`crate::control`]): the services are published through a snapshot
//!   cell each lcore loads once per loop iteration; SIGHUP or `rvsctl reload` rebuilds them
//!   from the config file off the data path (destination ids kept), and `rvsctl` reads the
//!   lcores' counters over the control socket.
//!
//! Not done: control messages over rings from the main lcore to workers (configuration goes
//! through the snapshot cell), multi-segment mbufs, NIC flow rules for FNAT local ports
//! (steering is in software).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use rvs_conn::OwnerTable;
use rvs_core::counters::StageStats;
use rvs_core::mbuf::Mbuf;
use rvs_core::mbuf::PacketPool;
use rvs_core::service::{Forward, Snapshot, SnapshotCell};
use rvs_core::stage::Packet;
use rvs_core::time::Now;
use rvs_dpdk::mempool::DEFAULT_DATA_ROOM;
use rvs_dpdk::{
    Consumer, Eal, EalArgs, Mempool, Port, PortConfig, Producer, Ring, RteMbuf, RtePool, RxQueue, TxBuffer,
};
use serde::Serialize;

use crate::config::Config;
use crate::replay::{DestOut, ServiceOut, StageOut, stage_out};
use crate::traffic::{self, GenSpec, Generator, RxPort, Sink, TxPort};
use crate::worker::{Shared, Worker};

/// Connections expired per lcore per loop iteration at most.
pub const EXPIRE_BUDGET: usize = 1024;
/// Longest wait for the lcores to drain after receiving stopped.
pub const DRAIN_MAX_MS: u64 = 500;
/// Packets a tx buffer gathers before a burst.
const TX_BURST: usize = 32;
/// Slots of each inter-lcore ring.
const RING_SLOTS: u32 = 4096;
/// How often the main lcore looks at signals and stop conditions.
const CONTROL_EVERY_US: u64 = 1000;

/// Options of `rvs run` besides the config.
#[derive(Debug, Clone, Default)]
pub struct RunOpts {
    /// Bypass the stage graph: every received packet goes straight to the transmit buffer
    /// of the next interface (interface `i` to `(i + 1) % n`, as testpmd's io forwarding):
    /// rvs's own I/O floor.
    pub empty_graph: bool,
    /// Measure a window: counters are read `warmup_ms` after every worker has built its
    /// graph ...
    pub warmup_ms: Option<u64>,
    /// ... and again `window_ms` later, when receiving stops; the report's `window` holds
    /// the differences.
    pub window_ms: Option<u64>,
    /// Stop receiving after this many packets.
    pub packets: Option<u64>,
    /// Stop after this long with no packet received.
    pub idle_ms: Option<u64>,
    /// EAL `--file-prefix` (default `rvs-<pid>`).
    pub file_prefix: Option<String>,
}

/// The EAL arguments for `cfg`: lean defaults from `[dpdk]`, lcores `0..workers` unless
/// `eal_args` names them (`-l`, `--lcores`), `eal_args` last.
pub fn eal_args(cfg: &Config, file_prefix: &str) -> Vec<String> {
    let d = &cfg.dpdk;
    let mut a = EalArgs {
        file_prefix: file_prefix.to_string(),
        cores: if d.workers <= 1 {
            "0".into()
        } else {
            format!("0-{}", d.workers - 1)
        },
        memory_mb: d.memory_mb,
        no_huge: d.no_huge,
        // Scan the PCI bus only when a device is a PCI address.
        no_pci: !cfg.interfaces.iter().any(|i| i.device.as_deref().is_some_and(is_pci)),
        ..EalArgs::default()
    };
    let mut extra = Vec::new();
    let mut it = d.eal_args.iter();
    while let Some(x) = it.next() {
        if let Some(m) = x.strip_prefix("--lcores=") {
            a.lcores_map = Some(m.to_string());
        } else if x == "--lcores" || x == "-l" {
            match (x.as_str(), it.next()) {
                ("-l", Some(v)) => a.cores = v.clone(),
                (_, Some(v)) => a.lcores_map = Some(v.clone()),
                (_, None) => extra.push(x.clone()),
            }
        } else if let Some(v) = x.strip_prefix("-l").filter(|v| !v.is_empty() && !v.starts_with('-')) {
            a.cores = v.to_string();
        } else if let Some(v) = x.strip_prefix("--log-level=") {
            a.log_level = v.to_string();
        } else {
            extra.push(x.clone());
        }
    }
    a.extra = extra;
    a.to_args()
}

/// A PCI address such as `0000:00:08.0` or `00:08.0`.
fn is_pci(dev: &str) -> bool {
    let name = dev.split(',').next().unwrap_or(dev);
    name.contains(':') && name.contains('.') && name.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// TSC to nanoseconds: `base + (tsc - tsc0) * 1e9 / hz`, in fixed point.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    tsc0: u64,
    base_ns: u64,
    mult: u128,
}

impl Clock {
    /// A clock reading `base_ns` now, for a TSC of `hz` ticks per second.
    pub fn new(hz: u64, base_ns: u64) -> Self {
        Clock {
            tsc0: rvs_core::cycles::rdtsc(),
            base_ns,
            mult: (1_000_000_000u128 << 32) / hz.max(1) as u128,
        }
    }
    /// Nanoseconds at TSC `tsc`.
    #[inline]
    pub fn at(&self, tsc: u64) -> Now {
        Now(self.base_ns + ((tsc.wrapping_sub(self.tsc0) as u128 * self.mult) >> 32) as u64)
    }
    /// TSC ticks in `us` microseconds.
    pub fn ticks_us(&self, us: u64) -> u64 {
        (((us as u128 * 1000) << 32) / self.mult.max(1)) as u64
    }
}

/// Counters one lcore publishes for the main lcore.
#[derive(Debug, Default)]
pub struct LcoreCounters {
    /// Packets received from ports.
    pub rx: AtomicU64,
    /// Packets taken from other lcores' rings.
    pub ring_in: AtomicU64,
    /// Packets put on other lcores' rings.
    pub ring_out: AtomicU64,
    /// Packets lost to a full ring (freed).
    pub ring_full: AtomicU64,
    /// Packets the devices accepted for transmit.
    pub tx: AtomicU64,
    /// Packets the devices refused (freed).
    pub tx_refused: AtomicU64,
    /// Host-path packets freed: no TAP for their interface (or no TAP queue for this lcore).
    pub host: AtomicU64,
    /// Host-path packets a TAP accepted (to the kernel).
    pub host_to_kernel: AtomicU64,
    /// Frames the kernel wrote to a TAP, sent out of its interface.
    pub kernel_out: AtomicU64,
    /// Packets lost to full graph queues.
    pub overflow: AtomicU64,
    /// Graph runs (vectors).
    pub vectors: AtomicU64,
    /// Connections expired.
    pub expired: AtomicU64,
    /// TSC cycles spent expiring connections.
    pub expire_cycles: AtomicU64,
    /// Loop iterations.
    pub polls: AtomicU64,
    /// Chained mbufs freed on receive.
    pub chained: AtomicU64,
    /// Nothing queued, nothing in its rings, nothing waiting to be sent.
    pub quiet: AtomicBool,
}

#[derive(Debug, Default)]
struct Control {
    stop_rx: AtomicBool,
    stop: AtomicBool,
}

/// A worker's stage counters (or why it could not start), sent to the main lcore.
type StatsMsg = (u16, Result<Vec<Arc<StageStats>>, String>);

/// What one lcore owns while it runs.
struct LcoreIo {
    idx: u16,
    rx: Vec<RxPort>,
    tx: Vec<TxPort>,
    to: Vec<Option<Producer<RteMbuf>>>,
    from: Vec<Consumer<RteMbuf>>,
    /// Per interface index: this lcore's transmit buffer on the interface's TAP.
    host_tx: Vec<Option<TxBuffer>>,
    /// This lcore's receive queues of the TAPs, with their interface index.
    tap_rx: Vec<(usize, RxQueue)>,
    /// DPDK port id to interface index ([`NO_IFACE`]: none).
    port_iface: Arc<[u16]>,
}

/// No interface (in [`LcoreIo::port_iface`]).
const NO_IFACE: u16 = u16::MAX;
/// Descriptors of a TAP queue: net_tap holds that many mbufs per rx queue.
const TAP_DESC: u16 = 64;
/// Most queue pairs asked of a TAP: DPDK 22.11's net_tap sends the file descriptor of every
/// rx and tx queue in one multi-process message of at most 8 (`RTE_MP_MAX_FD_NUM`) when it
/// starts, and overruns that array (the process aborts on a smashed stack) beyond 4 pairs.
const TAP_MAX_QUEUES: u16 = 4;

/// What an lcore hands back when it stops.
#[derive(Debug, Clone, Default)]
struct LcoreEnd {
    created_per_dest: Vec<u64>,
    active_inactive: Vec<(u32, u32)>,
    connections: usize,
    recirculated: u64,
    created: u64,
    lookup_redirected: u64,
    lookup_redirected_owner: u64,
    worker_bytes: u64,
}

struct LcoreEnv {
    cfg: Arc<Config>,
    shared: Shared,
    snap: Arc<SnapshotCell>,
    registry: Arc<crate::control::Registry>,
    owners: Option<Arc<OwnerTable>>,
    pool: RtePool,
    counters: Arc<LcoreCounters>,
    ctl: Arc<Control>,
    clock: Clock,
    stats_to_main: mpsc::Sender<StatsMsg>,
    empty_graph: bool,
}

/// One lcore's counters in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LcoreOut {
    /// Worker index (0 runs on the EAL main lcore).
    pub worker: u16,
    /// EAL lcore id.
    pub lcore: u32,
    /// Packets received from ports.
    pub rx: u64,
    /// Packets taken from other lcores.
    pub ring_in: u64,
    /// Packets sent to other lcores.
    pub ring_out: u64,
    /// Packets lost to full rings.
    pub ring_full: u64,
    /// Packets transmitted.
    pub tx: u64,
    /// Packets the devices refused.
    pub tx_refused: u64,
    /// Host-path packets freed: no TAP for their interface (or no TAP queue for this lcore).
    pub host: u64,
    /// Host-path packets a TAP accepted (to the kernel).
    pub host_to_kernel: u64,
    /// Frames from the kernel sent out of a TAP's interface.
    pub kernel_out: u64,
    /// Packets lost to full graph queues.
    pub overflow: u64,
    /// Chained mbufs freed on receive.
    pub chained: u64,
    /// Vectors (graph runs).
    pub vectors: u64,
    /// Loop iterations.
    pub polls: u64,
    /// Connections created.
    pub created: u64,
    /// Connections expired.
    pub expired: u64,
    /// Connections alive at exit.
    pub connections: usize,
    /// Packets recirculated to itself.
    pub recirculated: u64,
    /// Replies lookup redirected by local port.
    pub redirected_port: u64,
    /// Misses lookup redirected by the owner table.
    pub redirected_owner: u64,
    /// Resident memory the worker's construction added (its connection table, pool,
    /// buckets and timer wheel, all allocated and written up front), from
    /// `/proc/self/statm`; overlapping constructions on several lcores blur it.
    pub worker_bytes: u64,
    /// Per stage.
    pub stages: Vec<StageOut>,
}

/// Everything `rvs run` counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Worker lcores.
    pub workers: usize,
    /// Seconds the loop ran.
    pub seconds: f64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets transmitted.
    pub packets_out: u64,
    /// Host-path packets freed (no TAP, or no TAP queue for the lcore).
    pub host: u64,
    /// Host-path packets a TAP accepted (to the kernel).
    pub host_to_kernel: u64,
    /// Frames from the kernel sent out of a TAP's interface (also in `packets_out`).
    pub kernel_out: u64,
    /// Packets carried between lcores.
    pub ring: u64,
    /// Packets lost: full rings, full queues, refused by devices.
    pub lost: u64,
    /// Connections created.
    pub created: u64,
    /// Connections alive at exit.
    pub connections: usize,
    /// Owner-table entries overwritten for lack of room.
    pub owner_evicted: u64,
    /// Mbufs in the pool.
    pub mempool_capacity: usize,
    /// Mbufs still out of the pool after everything closed (0 unless one leaked).
    pub mempool_in_use: usize,
    /// Per service and destination (connections summed over lcores).
    pub services: Vec<ServiceOut>,
    /// Per lcore.
    pub lcores: Vec<LcoreOut>,
    /// Connection-table capacity of each lcore (`[conn] capacity`).
    pub conn_capacity: usize,
    /// Graph bypassed (`--empty-graph`).
    pub empty_graph: bool,
    /// The measured window (`--warmup-ms`/`--window-ms`), when one completed.
    pub window: Option<WindowOut>,
}

/// One stage over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowStage {
    /// Stage name.
    pub name: String,
    /// Vectors.
    pub vectors: u64,
    /// Packets.
    pub packets: u64,
    /// TSC cycles spent in the stage.
    pub cycles: u64,
    /// Cycles per packet of the stage.
    pub cycles_per_packet: f64,
    /// Packets dropped.
    pub drops: u64,
    /// Drops by reason (non-zero only).
    pub drop_reasons: Vec<(String, u64)>,
}

/// One lcore over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowLcore {
    /// Worker index.
    pub worker: u16,
    /// Packets received.
    pub rx: u64,
    /// Packets transmitted.
    pub tx: u64,
    /// Host-path packets freed (interfaces without a TAP).
    pub host: u64,
    /// Packets lost (rings, queues, refused).
    pub lost: u64,
    /// Connections created (conn-new to xmit).
    pub created: u64,
    /// Per stage.
    pub stages: Vec<WindowStage>,
}

/// Counter differences over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowOut {
    /// Warm-up before the window, seconds.
    pub warmup_seconds: f64,
    /// Length of the window, seconds (wall clock).
    pub seconds: f64,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Packets received, all lcores.
    pub rx: u64,
    /// Packets transmitted, all lcores.
    pub tx: u64,
    /// Connections created, all lcores.
    pub created: u64,
    /// Received packets per second, all lcores.
    pub rx_pps: f64,
    /// Transmitted packets per second, all lcores.
    pub tx_pps: f64,
    /// Connections created per second, all lcores.
    pub conns_per_sec: f64,
    /// Resident memory of the process at the window's end.
    pub rss_bytes: u64,
    /// Per lcore.
    pub lcores: Vec<WindowLcore>,
}

/// What the main lcore reads at each end of the window.
#[derive(Debug, Clone)]
struct Mark {
    at: Instant,
    lcores: Vec<(u64, u64, u64, u64)>,
    /// (connections expired, cycles spent expiring) per lcore.
    expiry: Vec<(u64, u64)>,
    stages: Vec<Vec<rvs_core::counters::StageReport>>,
}

impl Mark {
    fn take(counters: &[Arc<LcoreCounters>], stats: &[Vec<Arc<StageStats>>]) -> Mark {
        Mark {
            at: Instant::now(),
            lcores: counters
                .iter()
                .map(|c| {
                    let g = |a: &AtomicU64| a.load(Relaxed);
                    (
                        g(&c.rx),
                        g(&c.tx),
                        g(&c.host),
                        g(&c.ring_full) + g(&c.overflow) + g(&c.tx_refused) + g(&c.chained),
                    )
                })
                .collect(),
            expiry: counters
                .iter()
                .map(|c| (c.expired.load(Relaxed), c.expire_cycles.load(Relaxed)))
                .collect(),
            stages: stats.iter().map(|v| v.iter().map(|a| a.report()).collect()).collect(),
        }
    }

    fn window(a: &Mark, b: &Mark, warmup: Duration, tsc_hz: u64) -> WindowOut {
        let seconds = b.at.duration_since(a.at).as_secs_f64();
        let mut w = WindowOut {
            warmup_seconds: warmup.as_secs_f64(),
            seconds,
            tsc_hz,
            rss_bytes: traffic::rss_bytes(),
            ..WindowOut::default()
        };
        for (i, (x, y)) in a.lcores.iter().zip(&b.lcores).enumerate() {
            let mut l = WindowLcore {
                worker: i as u16,
                rx: y.0 - x.0,
                tx: y.1 - x.1,
                host: y.2 - x.2,
                lost: y.3 - x.3,
                ..WindowLcore::default()
            };
            let (sa, sb) = (a.stages.get(i), b.stages.get(i));
            if let (Some(sa), Some(sb)) = (sa, sb) {
                for (p, q) in sa.iter().zip(sb) {
                    let packets = q.packets - p.packets;
                    let cycles = q.cycles - p.cycles;
                    let drop_reasons: Vec<(String, u64)> = q
                        .drops
                        .iter()
                        .map(|d| (d.reason.to_string(), d.count - p.dropped(d.reason)))
                        .filter(|(_, n)| *n > 0)
                        .collect();
                    if q.name == "conn-new" {
                        l.created += q.sent("xmit") - p.sent("xmit");
                    }
                    l.stages.push(WindowStage {
                        name: q.name.to_string(),
                        vectors: q.vectors - p.vectors,
                        packets,
                        cycles,
                        cycles_per_packet: if packets == 0 {
                            0.0
                        } else {
                            cycles as f64 / packets as f64
                        },
                        drops: q.total_drops() - p.total_drops(),
                        drop_reasons,
                    });
                }
            }
            if let (Some(ea), Some(eb)) = (a.expiry.get(i), b.expiry.get(i)) {
                // Expiry as a pseudo-stage: its "packets" are the connections it expired.
                let (n, cycles) = (eb.0 - ea.0, eb.1 - ea.1);
                l.stages.push(WindowStage {
                    name: "expire".into(),
                    vectors: 0,
                    packets: n,
                    cycles,
                    cycles_per_packet: if n == 0 { 0.0 } else { cycles as f64 / n as f64 },
                    drops: 0,
                    drop_reasons: Vec::new(),
                });
            }
            w.rx += l.rx;
            w.tx += l.tx;
            w.created += l.created;
            w.lcores.push(l);
        }
        if seconds > 0.0 {
            w.rx_pps = w.rx as f64 / seconds;
            w.tx_pps = w.tx as f64 / seconds;
            w.conns_per_sec = w.created as f64 / seconds;
        }
        w
    }
}

impl WindowOut {
    /// The window as text: rates, then per lcore the stages' cycles per packet.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "window: {:.3} s after {:.3} s of warm-up: rx {} ({:.3} Mpps) tx {} ({:.3} Mpps) connections created {} ({:.3} M/s) rss {} MiB\n",
            self.seconds,
            self.warmup_seconds,
            self.rx,
            self.rx_pps / 1e6,
            self.tx,
            self.tx_pps / 1e6,
            self.created,
            self.conns_per_sec / 1e6,
            self.rss_bytes >> 20
        );
        for l in &self.lcores {
            let per = if l.rx == 0 {
                0.0
            } else {
                self.seconds * self.tsc_hz as f64 / l.rx as f64
            };
            s += &format!(
                "  worker {}: rx {} tx {} host {} lost {} created {}; loop cycles per received packet {:.1}\n",
                l.worker, l.rx, l.tx, l.host, l.lost, l.created, per
            );
            for st in &l.stages {
                s += &format!(
                    "    {:<12} packets {:>12} cycles/pkt {:>8.1} drops {}\n",
                    st.name, st.packets, st.cycles_per_packet, st.drops
                );
                for (r, n) in &st.drop_reasons {
                    s += &format!("      drop {r}: {n}\n");
                }
            }
        }
        s
    }
}

/// VPP `show runtime` for one lcore: one line per stage.
pub fn runtime_table(stages: &[StageOut]) -> String {
    let mut s = format!(
        "  {:<12} {:>10} {:>12} {:>10} {:>10} {:>12}\n",
        "Name", "Calls", "Vectors", "Vec/Call", "Drops", "Clocks/pkt"
    );
    for st in stages {
        let drops: u64 = st.drops.iter().map(|d| d.count).sum();
        let per_call = if st.vectors == 0 {
            0.0
        } else {
            st.packets as f64 / st.vectors as f64
        };
        s += &format!(
            "  {:<12} {:>10} {:>12} {:>10.2} {:>10} {:>12.1}\n",
            st.name, st.vectors, st.packets, per_call, drops, st.cycles_per_packet
        );
        for d in st.drops.iter().filter(|d| d.count > 0) {
            s += &format!("      drop {} ({}): {}\n", d.reason, d.cause, d.count);
        }
    }
    s
}

fn lcore_line(w: u16, lcore: u32, c: &LcoreCounters) -> String {
    format!(
        "worker {w} (lcore {lcore}): rx {} tx {} tx-refused {} ring-in {} ring-out {} ring-full {} host {} host-to-kernel {} kernel-out {} overflow {} vectors {} expired {}\n",
        c.rx.load(Relaxed),
        c.tx.load(Relaxed),
        c.tx_refused.load(Relaxed),
        c.ring_in.load(Relaxed),
        c.ring_out.load(Relaxed),
        c.ring_full.load(Relaxed),
        c.host.load(Relaxed),
        c.host_to_kernel.load(Relaxed),
        c.kernel_out.load(Relaxed),
        c.overflow.load(Relaxed),
        c.vectors.load(Relaxed),
        c.expired.load(Relaxed),
    )
}

/// The live runtime of every lcore, from the atomics (SIGUSR1).
pub(crate) fn live_runtime(lcores: &[u32], counters: &[Arc<LcoreCounters>], stats: &[Vec<Arc<StageStats>>]) -> String {
    let mut s = String::from("--- rvs runtime ---\n");
    for (i, c) in counters.iter().enumerate() {
        s += &lcore_line(i as u16, lcores.get(i).copied().unwrap_or(0), c);
        let st: Vec<StageOut> = stats
            .get(i)
            .map(|v| v.iter().map(|a| stage_out(&a.report())).collect())
            .unwrap_or_default();
        s += &runtime_table(&st);
    }
    s
}

impl RunReport {
    /// The one-line summary.
    pub fn one_line(&self) -> String {
        format!(
            "rvs run: {} workers, {:.3} s: packets in {} out {} host {} host_to_kernel {} kernel_out {} between lcores {} lost {}; connections created {} alive {}; mbufs in use at exit {} of {}",
            self.workers,
            self.seconds,
            self.packets_in,
            self.packets_out,
            self.host,
            self.host_to_kernel,
            self.kernel_out,
            self.ring,
            self.lost,
            self.created,
            self.connections,
            self.mempool_in_use,
            self.mempool_capacity
        )
    }

    /// Per-lcore runtime, services and the one-line summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for l in &self.lcores {
            s += &format!(
                "worker {} (lcore {}): rx {} tx {} tx-refused {} ring-in {} ring-out {} ring-full {} host {} host-to-kernel {} kernel-out {} overflow {} vectors {} polls {} created {} expired {} alive {} redirected port/owner {}/{}\n",
                l.worker,
                l.lcore,
                l.rx,
                l.tx,
                l.tx_refused,
                l.ring_in,
                l.ring_out,
                l.ring_full,
                l.host,
                l.host_to_kernel,
                l.kernel_out,
                l.overflow,
                l.vectors,
                l.polls,
                l.created,
                l.expired,
                l.connections,
                l.redirected_port,
                l.redirected_owner
            );
            s += &runtime_table(&l.stages);
        }
        for svc in &self.services {
            s += &format!("service {} ({}, {})\n", svc.service, svc.scheduler, svc.forward);
            for d in &svc.dests {
                s += &format!(
                    "  -> {}:{} weight {} connections {} (active {} inactive {})\n",
                    d.ip, d.port, d.weight, d.created, d.active, d.inactive
                );
            }
        }
        if let Some(w) = &self.window {
            s += &w.summary();
        }
        s += &format!(
            "mempool: {} of {} mbufs in use at exit\n",
            self.mempool_in_use, self.mempool_capacity
        );
        s += &self.one_line();
        s += "\n";
        s
    }
}

/// Signal flags: SIGINT/SIGTERM stop, SIGUSR1 prints the runtime.
#[derive(Debug, Clone)]
struct Signals {
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> anyhow::Result<Self> {
        let s = Signals {
            term: Arc::new(AtomicBool::new(false)),
            usr1: Arc::new(AtomicBool::new(false)),
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, s.term.clone()).context("cannot install a signal handler")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, s.usr1.clone())
            .context("cannot install a signal handler")?;
        Ok(s)
    }
}

/// Start the EAL for `cfg` and run the poll loop until a stop condition; the EAL is cleaned
/// up and its runtime directory removed whatever happens. An EAL that cannot start is an
/// error saying so (callers may fall back to `rvs replay`).
pub fn run(cfg: &Config, opts: &RunOpts) -> anyhow::Result<RunReport> {
    let prefix = opts
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvs-{}", std::process::id()));
    for i in &cfg.interfaces {
        if i.device.is_none() {
            anyhow::bail!(
                "interface {} has no `device` (a vdev such as \"net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\" or a PCI address)",
                i.name
            );
        }
    }
    if cfg.interfaces.is_empty() {
        anyhow::bail!("no [[interface]] to run on");
    }
    check_taps(cfg)?;
    let signals = Signals::register()?;
    let args = eal_args(cfg, &prefix);
    tracing::info!(?args, "starting the EAL");
    let eal = Eal::init(&args)
        .map_err(|e| anyhow::anyhow!("the DPDK EAL cannot start ({e}); EAL arguments: {}", args.join(" ")))?;
    let dir = eal.runtime_dir();
    let r = run_on(eal, cfg, opts, &signals);
    let cleaned = eal.cleanup();
    if !dir.as_os_str().is_empty() && dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = r?;
    if let Err(e) = cleaned {
        tracing::warn!("EAL cleanup: {e}");
    }
    Ok(report)
}

fn run_on(eal: Eal, cfg: &Config, opts: &RunOpts, signals: &Signals) -> anyhow::Result<RunReport> {
    let workers = cfg.dpdk.workers;
    let nw = workers as u16;
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.len() + 1 < workers {
        anyhow::bail!(
            "{workers} workers need {workers} lcores; the EAL has {} (see [dpdk] eal_args)",
            worker_lcores.len() + 1
        );
    }
    let mut lcores = vec![eal.main_lcore()];
    lcores.extend(worker_lcores.iter().take(workers - 1));
    // The services: generation 1 now, later ones published by the control thread.
    let mut plane = crate::control::Plane::new(cfg, nw).map_err(|e| anyhow::anyhow!(e))?;
    let snap = plane.cell();
    let cache = (cfg.dpdk.mbufs / 8).min(256);
    let mempool =
        Mempool::new(&eal, "rvs_mbufs", cfg.dpdk.mbufs, cache, DEFAULT_DATA_ROOM, None).with_context(|| {
            format!(
                "cannot make a pool of {} mbufs ([dpdk] mbufs, memory_mb)",
                cfg.dpdk.mbufs
            )
        })?;
    let capacity = mempool.capacity();

    // Ports, each with one rx and one tx queue per worker.
    let mut ports = Vec::new();
    let mut port_iface: Vec<u16> = Vec::new();
    let mut rxq: Vec<Vec<RxPort>> = (0..workers).map(|_| Vec::new()).collect();
    let mut txq: Vec<Vec<TxPort>> = (0..workers).map(|_| Vec::new()).collect();
    for (ii, i) in cfg.interfaces.iter().enumerate() {
        let dev = i.device.as_deref().unwrap_or_default();
        if traffic::is_generator(dev) {
            // A generator: no DPDK port; each lcore makes its own share of the traffic and
            // frees what it transmits here.
            let spec = GenSpec::parse(dev, i.mac.0, cfg).map_err(|e| anyhow::anyhow!("interface {}: {e}", i.name))?;
            for l in 0..workers {
                let g = Generator::new(&spec, ii as u16, l as u16, nw, mempool.clone());
                rxq[l].push(RxPort::Gen(Box::new(g)));
                txq[l].push(TxPort::Sink(Sink::default()));
            }
            continue;
        }
        let mut port = Port::open(&eal, dev).with_context(|| format!("interface {}: cannot open {dev:?}", i.name))?;
        let pc = PortConfig {
            rx_queues: nw,
            tx_queues: nw,
            rx_desc: cfg.dpdk.descriptors,
            tx_desc: cfg.dpdk.descriptors,
            promiscuous: true,
            ..PortConfig::default()
        };
        let q = port
            .configure(&pc, &mempool)
            .with_context(|| format!("interface {}: cannot configure {dev:?}", i.name))?;
        port.start()
            .with_context(|| format!("interface {}: cannot start {dev:?}", i.name))?;
        for (l, r) in q.rx.into_iter().enumerate() {
            rxq[l].push(RxPort::Dev(r));
        }
        for (l, t) in q.tx.into_iter().enumerate() {
            txq[l].push(TxPort::Dev(TxBuffer::new(t, TX_BURST)));
        }
        set_iface(&mut port_iface, port.id(), ii);
        ports.push(port);
    }
    // The TAPs, opened after every interface (the interfaces' port ids stay their indexes).
    let mut host_tx: Vec<Vec<Option<TxBuffer>>> = (0..workers)
        .map(|_| (0..cfg.interfaces.len()).map(|_| None).collect())
        .collect();
    let mut tap_rx: Vec<Vec<(usize, RxQueue)>> = (0..workers).map(|_| Vec::new()).collect();
    for (ii, i) in cfg.interfaces.iter().enumerate() {
        let Some(tap) = &i.host_tap else { continue };
        let m = i.mac.0;
        let tap_dev = format!(
            "net_tap_rvs{ii},iface={},mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            tap.0, m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let (port, q) = open_tap(&eal, &tap_dev, nw, &mempool)
            .with_context(|| format!("interface {}: cannot make its host TAP {:?} ({tap_dev})", i.name, tap.0))?;
        if q.rx.len() < workers {
            tracing::warn!(
                interface = %i.name,
                tap = %tap.0,
                queues = q.rx.len(),
                workers,
                "the TAP has fewer queue pairs than workers: workers {}.. free their host-path packets of this interface",
                q.rx.len()
            );
            eprintln!(
                "warning: interface {}: host TAP {} has {} queue pair(s) for {workers} workers; workers {}.. free their host-path packets",
                i.name,
                tap.0,
                q.rx.len(),
                q.rx.len()
            );
        }
        for (l, r) in q.rx.into_iter().enumerate() {
            tap_rx[l].push((ii, r));
        }
        for (l, t) in q.tx.into_iter().enumerate() {
            host_tx[l][ii] = Some(TxBuffer::new(t, TX_BURST));
        }
        tracing::info!(interface = %i.name, tap = %tap.0, port = port.id(), "host TAP up");
        ports.push(port);
    }
    let port_iface: Arc<[u16]> = port_iface.into();

    // Rings between every ordered pair of lcores.
    let mut to: Vec<Vec<Option<Producer<RteMbuf>>>> =
        (0..workers).map(|_| (0..workers).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<Consumer<RteMbuf>>> = (0..workers).map(|_| Vec::new()).collect();
    for (a, row) in to.iter_mut().enumerate() {
        for (b, slot) in row.iter_mut().enumerate() {
            if a != b {
                let (p, c) = Ring::spsc::<RteMbuf>(&eal, &format!("rvs_redir_{a}_{b}"), RING_SLOTS, None)?;
                *slot = Some(p);
                from[b].push(c);
            }
        }
    }
    let owners = (workers > 1).then(|| Arc::new(OwnerTable::new(2 * cfg.conn.capacity.min(1 << 22) * workers)));

    let cfg_arc = Arc::new(cfg.clone());
    let ctl = Arc::new(Control::default());
    let counters: Vec<Arc<LcoreCounters>> = (0..workers).map(|_| Arc::new(LcoreCounters::default())).collect();
    let registry = Arc::new(crate::control::Registry::new(counters.clone(), lcores.clone()));
    plane.set_registry(registry.clone());
    let prefix = opts
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvs-{}", std::process::id()));
    let _control = crate::control::Server::for_run(plane, cfg, &prefix).map_err(|e| anyhow::anyhow!(e))?;
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let clock = Clock::new(eal.tsc_hz(), base_ns);
    let (stx, srx) = mpsc::channel();
    let mut ios: Vec<LcoreIo> = Vec::new();
    let lanes = rxq
        .into_iter()
        .zip(txq)
        .zip(to.into_iter().zip(from))
        .zip(host_tx.into_iter().zip(tap_rx));
    for (l, (((r, t), (p, c)), (h, tr))) in lanes.enumerate() {
        ios.push(LcoreIo {
            idx: l as u16,
            rx: r,
            tx: t,
            to: p,
            from: c,
            host_tx: h,
            tap_rx: tr,
            port_iface: port_iface.clone(),
        });
    }
    // State every lcore's worker shares (persistence templates are global).
    let shared = Shared::new(cfg);
    let env = |l: usize| LcoreEnv {
        cfg: cfg_arc.clone(),
        shared: shared.clone(),
        snap: snap.clone(),
        registry: registry.clone(),
        owners: owners.clone(),
        pool: RtePool::new(mempool.clone()),
        counters: counters[l].clone(),
        ctl: ctl.clone(),
        clock,
        stats_to_main: stx.clone(),
        empty_graph: opts.empty_graph,
    };
    let mut ios = ios.into_iter();
    let main_io = ios.next().context("no worker")?;
    let mut launched = Vec::new();
    for (k, io) in ios.enumerate() {
        let e = env(k + 1);
        let lc = lcores[k + 1];
        launched.push(
            eal.launch(lc, move || lcore_main(io, e, None))
                .with_context(|| format!("cannot launch worker {} on lcore {lc}", k + 1))?,
        );
    }
    let started = Instant::now();
    let mut mctl = MainCtl {
        ready_at: None,
        tsc_hz: eal.tsc_hz(),
        mark: None,
        window: None,
        opts: opts.clone(),
        signals: signals.clone(),
        counters: counters.clone(),
        lcores: lcores.clone(),
        stats: vec![Vec::new(); workers],
        stats_rx: srx,
        ready: 0,
        failed: None,
        last_total: 0,
        last_change: Instant::now(),
        drain_since: None,
        quiet_rounds: 0,
        ctl: ctl.clone(),
    };
    let main_env = env(0);
    drop(stx);
    let main_end = lcore_main(main_io, main_env, Some(&mut mctl));
    let seconds = started.elapsed().as_secs_f64();
    let mut ends = vec![main_end];
    for h in launched {
        let lc = h.lcore();
        ends.push(h.wait().map_err(|e| anyhow::anyhow!("lcore {lc}: {e}"))?);
    }
    if let Some(f) = mctl.failed.take() {
        anyhow::bail!("{f}");
    }
    let stats = std::mem::take(&mut mctl.stats);
    let window = mctl.window.take();
    drop(mctl);
    drop(ports);
    let in_use = mempool.in_use();

    let mut rep = RunReport {
        workers,
        seconds,
        mempool_capacity: capacity,
        mempool_in_use: in_use,
        owner_evicted: owners.as_ref().map_or(0, |o| o.evicted()),
        conn_capacity: cfg.conn.capacity,
        empty_graph: opts.empty_graph,
        window,
        ..RunReport::default()
    };
    let mut created_per_dest: Vec<u64> = Vec::new();
    let mut act: Vec<(u32, u32)> = Vec::new();
    for (i, (c, end)) in counters.iter().zip(&ends).enumerate() {
        let end = end.as_ref().map_err(|e| anyhow::anyhow!("worker {i}: {e}"))?;
        let g = |a: &AtomicU64| a.load(Relaxed);
        let l = LcoreOut {
            worker: i as u16,
            lcore: lcores[i],
            rx: g(&c.rx),
            ring_in: g(&c.ring_in),
            ring_out: g(&c.ring_out),
            ring_full: g(&c.ring_full),
            tx: g(&c.tx),
            tx_refused: g(&c.tx_refused),
            host: g(&c.host),
            host_to_kernel: g(&c.host_to_kernel),
            kernel_out: g(&c.kernel_out),
            overflow: g(&c.overflow),
            chained: g(&c.chained),
            vectors: g(&c.vectors),
            polls: g(&c.polls),
            created: end.created,
            expired: g(&c.expired),
            connections: end.connections,
            recirculated: end.recirculated,
            redirected_port: end.lookup_redirected,
            redirected_owner: end.lookup_redirected_owner,
            worker_bytes: end.worker_bytes,
            stages: stats
                .get(i)
                .map(|v| v.iter().map(|a| stage_out(&a.report())).collect())
                .unwrap_or_default(),
        };
        rep.packets_in += l.rx;
        rep.packets_out += l.tx;
        rep.host += l.host;
        rep.host_to_kernel += l.host_to_kernel;
        rep.kernel_out += l.kernel_out;
        rep.ring += l.ring_out;
        rep.lost += l.ring_full + l.overflow + l.tx_refused + l.chained;
        rep.created += l.created;
        rep.connections += l.connections;
        if created_per_dest.len() < end.created_per_dest.len() {
            created_per_dest.resize(end.created_per_dest.len(), 0);
        }
        for (a, b) in created_per_dest.iter_mut().zip(&end.created_per_dest) {
            *a += b;
        }
        if act.len() < end.active_inactive.len() {
            act.resize(end.active_inactive.len(), (0, 0));
        }
        for (a, b) in act.iter_mut().zip(&end.active_inactive) {
            a.0 += b.0;
            a.1 += b.1;
        }
        rep.lcores.push(l);
    }
    let snap = snap.load_full();
    rep.services = snap
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
                    let k = d.id.0 as usize;
                    let (active, inactive) = act.get(k).copied().unwrap_or_default();
                    DestOut {
                        ip: d.addr.to_string(),
                        port: d.port,
                        weight: d.weight,
                        created: created_per_dest.get(k).copied().unwrap_or(0),
                        active,
                        inactive,
                    }
                })
                .collect(),
        })
        .collect();
    drop(mempool);
    Ok(rep)
}

/// Refuse `host_tap` on a traffic generator and one TAP name on two interfaces, before
/// anything is created.
pub fn check_taps(cfg: &Config) -> anyhow::Result<()> {
    for (ii, i) in cfg.interfaces.iter().enumerate() {
        let Some(tap) = &i.host_tap else { continue };
        if i.device.as_deref().is_some_and(traffic::is_generator) {
            anyhow::bail!(
                "interface {}: host_tap needs a DPDK device, not a traffic generator",
                i.name
            );
        }
        if let Some(other) = cfg.interfaces[..ii]
            .iter()
            .find(|o| o.host_tap.as_ref().is_some_and(|t| t.0 == tap.0))
        {
            anyhow::bail!(
                "interface {}: host_tap {:?} is already the TAP of interface {}",
                i.name,
                tap.0,
                other.name
            );
        }
    }
    Ok(())
}

/// Map DPDK port `port` to interface index `ii`.
fn set_iface(map: &mut Vec<u16>, port: u16, ii: usize) {
    let p = port as usize;
    if map.len() <= p {
        map.resize(p + 1, NO_IFACE);
    }
    map[p] = ii as u16;
}

/// Hot-plug and start a `net_tap` device with `workers` queue pairs, or fewer (down to one)
/// if the PMD refuses that many.
fn open_tap(eal: &Eal, dev: &str, workers: u16, pool: &Mempool) -> anyhow::Result<(Port, rvs_dpdk::Queues)> {
    let mut port =
        Port::open(eal, dev).with_context(|| format!("cannot open {dev:?} (needs root and /dev/net/tun)"))?;
    let max = port
        .info()
        .map(|i| i.max_rx_queues.min(i.max_tx_queues))
        .unwrap_or(1)
        .max(1);
    let mut n = workers.min(max).clamp(1, TAP_MAX_QUEUES);
    let q = loop {
        let pc = PortConfig {
            rx_queues: n,
            tx_queues: n,
            rx_desc: TAP_DESC,
            tx_desc: TAP_DESC,
            promiscuous: false,
            rss: false,
            ..PortConfig::default()
        };
        match port.configure(&pc, pool) {
            Ok(q) => break q,
            Err(e) if n > 1 => {
                tracing::warn!(queues = n, "{dev}: {e}; trying one queue pair");
                n = 1;
            }
            Err(e) => return Err(anyhow::anyhow!(e)).context(format!("cannot configure {dev:?}")),
        }
    };
    port.start().with_context(|| format!("cannot start {dev:?}"))?;
    Ok((port, q))
}

/// The main lcore's control duties, run between its own worker iterations.
struct MainCtl {
    ready_at: Option<Instant>,
    tsc_hz: u64,
    /// Counters at the start of the measured window.
    mark: Option<Mark>,
    /// The measured window, once over.
    window: Option<WindowOut>,
    opts: RunOpts,
    signals: Signals,
    counters: Vec<Arc<LcoreCounters>>,
    lcores: Vec<u32>,
    stats: Vec<Vec<Arc<StageStats>>>,
    stats_rx: mpsc::Receiver<StatsMsg>,
    ready: usize,
    failed: Option<String>,
    last_total: u64,
    last_change: Instant,
    drain_since: Option<Instant>,
    quiet_rounds: u32,
    ctl: Arc<Control>,
}

impl MainCtl {
    fn tick(&mut self) {
        while let Ok((l, r)) = self.stats_rx.try_recv() {
            match r {
                Ok(s) => {
                    if let Some(slot) = self.stats.get_mut(l as usize) {
                        *slot = s;
                    }
                    self.ready += 1;
                }
                Err(e) => {
                    self.failed = Some(format!("worker {l}: {e}"));
                    self.ctl.stop_rx.store(true, Relaxed);
                    self.ctl.stop.store(true, Relaxed);
                }
            }
        }
        if self.signals.usr1.swap(false, Relaxed) {
            print!("{}", live_runtime(&self.lcores, &self.counters, &self.stats));
        }
        let rx: u64 = self.counters.iter().map(|c| c.rx.load(Relaxed)).sum();
        let total = rx + self.counters.iter().map(|c| c.ring_in.load(Relaxed)).sum::<u64>();
        if total != self.last_total {
            self.last_total = total;
            self.last_change = Instant::now();
        }
        if let Some(win) = self.opts.window_ms
            && self.drain_since.is_none()
            && self.window.is_none()
            && self.ready == self.counters.len()
        {
            let warmup = Duration::from_millis(self.opts.warmup_ms.unwrap_or(0));
            // The warm-up counts from when every worker has built its graph (a large
            // connection table takes a while to allocate).
            let el = self.ready_at.get_or_insert_with(Instant::now).elapsed();
            match &self.mark {
                None if el >= warmup => self.mark = Some(Mark::take(&self.counters, &self.stats)),
                Some(a) if a.at.elapsed() >= Duration::from_millis(win) => {
                    let b = Mark::take(&self.counters, &self.stats);
                    self.window = Some(Mark::window(a, &b, warmup, self.tsc_hz));
                }
                _ => {}
            }
        }
        if self.drain_since.is_none() {
            let by_window = self.window.is_some();
            let by_signal = self.signals.term.load(Relaxed) || by_window;
            let by_count = self.opts.packets.is_some_and(|n| rx >= n);
            let by_idle = self
                .opts
                .idle_ms
                .is_some_and(|ms| self.last_change.elapsed() >= Duration::from_millis(ms));
            if by_signal || by_count || by_idle {
                tracing::info!(by_signal, by_count, by_idle, rx, "stopping: receive off, draining");
                self.ctl.stop_rx.store(true, Relaxed);
                self.drain_since = Some(Instant::now());
            }
        } else if let Some(t) = self.drain_since {
            let quiet = self.counters.iter().all(|c| c.quiet.load(Relaxed));
            self.quiet_rounds = if quiet { self.quiet_rounds + 1 } else { 0 };
            if self.quiet_rounds >= 3 || t.elapsed() >= Duration::from_millis(DRAIN_MAX_MS) {
                self.ctl.stop.store(true, Relaxed);
            }
        }
    }
}

/// Publish an lcore's host-path counts: what its TAP buffers sent, what came from the kernel.
fn store_host_path(c: &LcoreCounters, io: &LcoreIo, kernel_out: u64) {
    c.host_to_kernel
        .store(io.host_tx.iter().flatten().map(TxBuffer::sent).sum(), Relaxed);
    c.kernel_out.store(kernel_out, Relaxed);
}

/// Host-path packets the TAPs refused (freed).
fn tap_refused(io: &LcoreIo) -> u64 {
    io.host_tx.iter().flatten().map(TxBuffer::dropped).sum()
}

/// Chained frames from the kernel freed on receive.
fn tap_chained(io: &LcoreIo) -> u64 {
    io.tap_rx.iter().map(|(_, q)| q.chained_dropped()).sum()
}

/// One lcore: build its worker here (the graph holds `Rc`s), then poll until told to stop.
fn lcore_main(mut io: LcoreIo, env: LcoreEnv, mut main: Option<&mut MainCtl>) -> Result<LcoreEnd, String> {
    let me = io.idx;
    let workers = io.to.len() as u16;
    let rss0 = traffic::rss_bytes();
    let built = Worker::<RteMbuf>::with_shared(&env.cfg, me, workers, &env.shared);
    let worker_bytes = traffic::rss_bytes().saturating_sub(rss0);
    let mut worker = match built {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = env.stats_to_main.send((me, Err(msg.clone())));
            if let Some(m) = main.as_deref_mut() {
                m.tick();
            }
            return Err(msg);
        }
    };
    // Register the local addresses now, so that FNAT replies for another lcore are steered
    // even before this lcore has made a connection.
    worker.graph.stage_mut(worker.nodes.conn_new).sync(&env.snap.load());
    if let Some(o) = &env.owners {
        worker.graph.stage_mut(worker.nodes.lookup).set_owners(o.clone());
        worker.graph.stage_mut(worker.nodes.conn_new).set_owners(o.clone());
    }
    let _ = env.stats_to_main.send((me, Ok(worker.graph.stats())));
    env.registry.register(me, worker.graph.stats(), worker.loads.clone());
    drop(env.stats_to_main);
    let cell = &*env.snap;
    let mut pool = env.pool;
    let c = &*env.counters;
    let vector = env.cfg.pipeline.vector.clamp(1, rvs_core::stage::VECTOR_MAX);
    let idle_polls = env.cfg.dpdk.idle_polls.max(1);
    let idle_sleep = Duration::from_micros(env.cfg.dpdk.idle_sleep_us as u64);
    let ctl_every = env.clock.ticks_us(CONTROL_EVERY_US);
    let mut next_ctl = 0u64;
    let mut empty_polls = 0u32;
    let mut ringbuf: Vec<RteMbuf> = Vec::with_capacity(rvs_core::stage::VECTOR_MAX);
    let owners = env.owners.clone();
    let (mut rx_n, mut ring_in, mut ring_out, mut ring_full, mut host, mut vectors, mut expired, mut polls) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut kernel_out = 0u64;
    let mut rx_overflow = 0u64;
    let mut expire_cycles = 0u64;
    loop {
        let tsc = rvs_core::cycles::rdtsc();
        if let Some(m) = main.as_deref_mut()
            && tsc >= next_ctl
        {
            next_ctl = tsc + ctl_every;
            m.tick();
        }
        if env.ctl.stop.load(Relaxed) {
            break;
        }
        let stop_rx = env.ctl.stop_rx.load(Relaxed);
        let now = env.clock.at(tsc);
        polls += 1;
        let mut got = 0usize;
        // Packets other lcores redirected here.
        for cons in io.from.iter_mut() {
            let room = vector.saturating_sub(worker.queued());
            if room == 0 {
                break;
            }
            if cons.is_empty() {
                continue;
            }
            // Dequeue at most `room`: a burst into the spare capacity of a vector-sized buffer.
            while ringbuf.len() < room {
                match cons.dequeue() {
                    Some(m) => ringbuf.push(m),
                    None => break,
                }
            }
            for m in ringbuf.drain(..) {
                got += 1;
                ring_in += 1;
                if let Err(p) = worker.push(Packet::new(m)) {
                    rx_overflow += 1;
                    pool.free(p.mbuf);
                }
            }
        }
        if !stop_rx && env.empty_graph {
            // No graph: interface i's packets go out on interface (i + 1) % n.
            let ntx = io.tx.len();
            for (pi, q) in io.rx.iter_mut().enumerate() {
                let out = &mut io.tx[(pi + 1) % ntx];
                let n = q.rx_burst_with(vector, |m| out.push(m));
                rx_n += n as u64;
                got += n;
            }
        } else if !stop_rx {
            for q in io.rx.iter_mut() {
                let room = vector.saturating_sub(worker.queued());
                if room == 0 {
                    break;
                }
                let n = q.rx_burst_with(room, |m| {
                    if let Err(p) = worker.push(Packet::new(m)) {
                        rx_overflow += 1;
                        drop(p);
                    }
                });
                rx_n += n as u64;
                got += n;
            }
        }
        // The snapshot of this vector and expiry pass, taken after receiving: a packet that
        // arrives after a reload returned runs on the new one.
        let guard = cell.load();
        let snap: &Snapshot = &guard;
        if worker.queued() > 0 {
            worker.run(now, snap, &mut pool);
            vectors += 1;
            let exits = &mut worker.graph.exits;
            for (port, q) in exits.tx.iter_mut().enumerate() {
                match io.tx.get_mut(port) {
                    Some(b) => {
                        for p in q.drain() {
                            b.push(p.mbuf);
                        }
                    }
                    None => {
                        for p in q.drain() {
                            rx_overflow += 1;
                            pool.free(p.mbuf);
                        }
                    }
                }
            }
            for p in exits.host.drain() {
                // To the TAP of the interface the packet came in on, if it has one.
                let ii = io.port_iface.get(p.mbuf.port() as usize).copied().unwrap_or(NO_IFACE);
                match io.host_tx.get_mut(ii as usize).and_then(Option::as_mut) {
                    Some(b) => b.push(p.mbuf),
                    None => {
                        host += 1;
                        pool.free(p.mbuf);
                    }
                }
            }
            for (l, q) in exits.redirect.iter_mut().enumerate() {
                if q.is_empty() {
                    continue;
                }
                match io.to.get_mut(l).and_then(|x| x.as_mut()) {
                    Some(prod) => {
                        for p in q.drain() {
                            match prod.enqueue(p.mbuf) {
                                Ok(()) => ring_out += 1,
                                Err(m) => {
                                    ring_full += 1;
                                    drop(m);
                                }
                            }
                        }
                    }
                    None => {
                        // Its own lcore (already recirculated) or none: nothing should be left.
                        for p in q.drain() {
                            rx_overflow += 1;
                            pool.free(p.mbuf);
                        }
                    }
                }
            }
        }
        // Host-path packets to the kernel first: it usually answers within the write, so the
        // TAP poll below sends the answer in this same iteration.
        for b in io.host_tx.iter_mut().flatten() {
            if !b.is_empty() {
                b.flush();
            }
        }
        let me_l = me;
        let t_exp = rvs_core::cycles::rdtsc();
        expired += worker
            .conns
            .borrow_mut()
            .expire_with(now, EXPIRE_BUDGET, snap, |_, conn| {
                if let Some(o) = &owners {
                    o.remove(&conn.in_tuple, me_l);
                    if conn.fwd == Forward::Nat {
                        o.remove(&conn.out_tuple, me_l);
                    }
                }
            }) as u64;
        expire_cycles += rvs_core::cycles::rdtsc().wrapping_sub(t_exp);
        // What the kernel wrote to the TAPs goes out of their interfaces unchanged (also
        // while draining: answers to the last host-path packets).
        for (ii, q) in io.tap_rx.iter_mut() {
            if let Some(out) = io.tx.get_mut(*ii) {
                let n = q.rx_burst_with(TX_BURST, |m| out.push(m));
                kernel_out += n as u64;
                got += n;
            }
        }
        for b in io.tx.iter_mut() {
            if !b.is_empty() {
                b.flush();
            }
        }
        if got > 0 || polls.is_multiple_of(64) {
            let quiet = worker.queued() == 0 && io.from.iter().all(|r| r.is_empty());
            c.quiet.store(quiet, Relaxed);
            c.rx.store(rx_n, Relaxed);
            c.ring_in.store(ring_in, Relaxed);
            c.ring_out.store(ring_out, Relaxed);
            c.ring_full.store(ring_full, Relaxed);
            c.host.store(host, Relaxed);
            store_host_path(c, &io, kernel_out);
            c.vectors.store(vectors, Relaxed);
            c.expired.store(expired, Relaxed);
            c.expire_cycles.store(expire_cycles, Relaxed);
            c.polls.store(polls, Relaxed);
            c.overflow.store(rx_overflow + worker.graph.exits.overflow, Relaxed);
            c.tx.store(io.tx.iter().map(TxPort::sent).sum(), Relaxed);
            c.tx_refused.store(
                io.tx.iter().map(TxPort::dropped).sum::<u64>() + tap_refused(&io),
                Relaxed,
            );
            c.chained.store(
                io.rx.iter().map(RxPort::chained_dropped).sum::<u64>() + tap_chained(&io),
                Relaxed,
            );
        }
        if got == 0 {
            empty_polls = empty_polls.saturating_add(1);
            if !idle_sleep.is_zero() && empty_polls >= idle_polls {
                std::thread::sleep(idle_sleep);
            }
        } else {
            empty_polls = 0;
        }
    }
    // Final counters; whatever is still queued is freed with the worker.
    c.rx.store(rx_n, Relaxed);
    c.ring_in.store(ring_in, Relaxed);
    c.ring_out.store(ring_out, Relaxed);
    c.ring_full.store(ring_full, Relaxed);
    c.host.store(host, Relaxed);
    store_host_path(c, &io, kernel_out);
    c.vectors.store(vectors, Relaxed);
    c.expired.store(expired, Relaxed);
    c.polls.store(polls, Relaxed);
    c.overflow.store(
        rx_overflow + worker.graph.exits.overflow + worker.queued() as u64,
        Relaxed,
    );
    c.tx.store(io.tx.iter().map(TxPort::sent).sum(), Relaxed);
    c.tx_refused.store(
        io.tx.iter().map(TxPort::dropped).sum::<u64>() + tap_refused(&io),
        Relaxed,
    );
    c.chained.store(
        io.rx.iter().map(RxPort::chained_dropped).sum::<u64>() + tap_chained(&io),
        Relaxed,
    );
    let lk = worker.graph.stage(worker.nodes.lookup).counters();
    let cn = worker.graph.stage(worker.nodes.conn_new);
    let end = LcoreEnd {
        created_per_dest: cn.created_per_dest().to_vec(),
        active_inactive: (0..worker.loads.slots())
            .map(|k| {
                let l = worker.loads.get(rvs_core::service::DestId(k as u32));
                (l.active, l.inactive)
            })
            .collect(),
        connections: worker.conns.borrow().len(),
        recirculated: worker.recirculated(),
        created: cn.counters().created,
        lookup_redirected: lk.redirected,
        lookup_redirected_owner: lk.redirected_owner,
        worker_bytes,
    };
    drop(worker);
    drop(io);
    Ok(end)
}
