//! Ethernet ports: open (by name, or hot-plugging a vdev), configure queues and descriptors,
//! start, stop, and close (promiscuous mode off first); MAC address, link, statistics and
//! offload capabilities; the per-queue receive and transmit handles of the poll loop.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use rvs_core::checksum::OffloadCaps;
use rvs_core::mbuf::Mbuf;

use crate::eal::{Eal, Live};
use crate::error::{Error, Result, check};
use crate::mbuf::RteMbuf;
use crate::mempool::Mempool;

/// Largest burst a single `rx_burst_with` call asks for.
pub const MAX_BURST: usize = 256;

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive queues (one per worker lcore that polls this port).
    pub rx_queues: u16,
    /// Transmit queues (one per worker lcore that sends on this port).
    pub tx_queues: u16,
    /// Receive descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Transmit descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Promiscuous mode while the port runs (always turned off on close).
    pub promiscuous: bool,
    /// Transmit checksum offloads wanted; only those the device has are enabled.
    pub tx_offloads: OffloadCaps,
    /// Spread received packets over the rx queues by RSS (IP/TCP/UDP) when there are
    /// several and the device supports it.
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: false,
            tx_offloads: OffloadCaps::NONE,
            rss: true,
        }
    }
}

/// What the device says about itself (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_null`.
    pub driver: String,
    /// Most receive queues.
    pub max_rx_queues: u16,
    /// Most transmit queues.
    pub max_tx_queues: u16,
    /// Transmit checksum offloads the device can do.
    pub tx_caps: OffloadCaps,
    /// Raw `tx_offload_capa` (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// Raw `rx_offload_capa` (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// RSS hash types supported (`flow_type_rss_offloads`).
    pub rss_types: u64,
    /// Largest receivable frame.
    pub max_rx_pktlen: u32,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port statistics (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped for lack of rx descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
}

struct PortShared {
    id: u16,
    name: String,
    /// Set when this handle hot-plugged the vdev: it removes it on close.
    hotplugged: Option<(Eal, String)>,
    pools: Vec<Mempool>,
    _live: Live,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // SAFETY: no queue handle is alive (they hold this Arc), so nothing polls the port;
        // stop, promiscuous off, close, in that order, errors ignored (best effort at close).
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_promiscuous_disable(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
        if let Some((eal, dev)) = self.hotplugged.take() {
            let _ = eal.hotunplug_vdev(&dev);
        }
        open_ports().retain(|&p| p != self.id);
        // `pools` drop after the port is closed: the device no longer holds their mbufs.
    }
}

/// An ethdev port. Dropping it stops it, turns promiscuous mode off and closes it (once the
/// queue handles are gone too), and removes the vdev if this handle hot-plugged it.
pub struct Port {
    shared: Arc<PortShared>,
    caps: OffloadCaps,
    started: bool,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .field("started", &self.started)
            .finish()
    }
}

/// The receive and transmit queue handles of a configured port, by queue index.
#[derive(Debug)]
pub struct Queues {
    /// One handle per rx queue.
    pub rx: Vec<RxQueue>,
    /// One handle per tx queue.
    pub tx: Vec<TxQueue>,
}

/// Ports with a live `Port` handle: a port is opened once, so only one handle closes it.
static OPEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn open_ports() -> std::sync::MutexGuard<'static, Vec<u16>> {
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

fn port_id_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: valid name and out pointer.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as std::ffi::c_char; 64];
    // SAFETY: `buf` holds RTE_ETH_NAME_MAX_LEN (64) bytes.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    // SAFETY: on success DPDK wrote a NUL-terminated name.
    (ret == 0).then(|| unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

impl Port {
    /// Ids of every available port.
    pub fn ids(_eal: &Eal) -> Vec<u16> {
        let mut v = Vec::new();
        let mut id = 0u64;
        loop {
            // SAFETY: iterates ports; returns RTE_MAX_ETHPORTS past the last.
            let next = unsafe { dpdk_sys::rte_eth_find_next_owned_by(id as u16, 0) };
            if next >= dpdk_sys::RVS_RTE_MAX_ETHPORTS as u64 {
                return v;
            }
            v.push(next as u16);
            id = next + 1;
        }
    }

    /// The port with id `id` (e.g. from `--vdev` or the PCI scan). A port can be open
    /// through one `Port` handle at a time; a second open is [`Error::Busy`].
    pub fn by_id(eal: &Eal, id: u16) -> Result<Port> {
        // SAFETY: validity check on any id.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::PortNotFound(id.to_string()));
        }
        let name = port_name(id).unwrap_or_else(|| id.to_string());
        Self::make(eal, id, name, None)
    }

    /// The port named `name` (a `--vdev` name such as `net_null0`, or a PCI address).
    pub fn by_name(eal: &Eal, name: &str) -> Result<Port> {
        let id = port_id_by_name(name).ok_or_else(|| Error::PortNotFound(name.into()))?;
        Self::make(eal, id, name.to_string(), None)
    }

    /// Open a device from a config string: an existing port of that name, or else a vdev
    /// `name,args` (e.g. `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `net_ring0`,
    /// `net_af_packet0,iface=veth0`), hot-plugged now and removed again on close.
    pub fn open(eal: &Eal, device: &str) -> Result<Port> {
        let (name, args) = device.split_once(',').unwrap_or((device, ""));
        if name.is_empty() {
            return Err(Error::InvalidArg(format!("empty device name in {device:?}")));
        }
        if let Some(id) = port_id_by_name(name) {
            return Self::make(eal, id, name.to_string(), None);
        }
        eal.hotplug_vdev(name, args)?;
        match port_id_by_name(name) {
            Some(id) => Self::make(eal, id, name.to_string(), Some((*eal, name.to_string()))),
            None => {
                let _ = eal.hotunplug_vdev(name);
                Err(Error::PortNotFound(name.into()))
            }
        }
    }

    fn make(eal: &Eal, id: u16, name: String, hotplugged: Option<(Eal, String)>) -> Result<Port> {
        let live = Live::new(eal)?;
        let mut open = open_ports();
        if open.contains(&id) {
            return Err(Error::Busy("the port is already open (one Port handle per port)"));
        }
        open.push(id);
        drop(open);
        Ok(Port {
            shared: Arc::new(PortShared {
                id,
                name,
                hotplugged,
                pools: Vec::new(),
                _live: live,
            }),
            caps: OffloadCaps::NONE,
            started: false,
        })
    }

    /// Port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Device information.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a static NUL-terminated driver name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            tx_caps: caps_of(info.tx_offload_capa),
            tx_offload_capa: info.tx_offload_capa,
            rx_offload_capa: info.rx_offload_capa,
            rss_types: info.flow_type_rss_offloads,
            max_rx_pktlen: info.max_rx_pktlen,
        })
    }

    fn raw_info(&self) -> Result<dpdk_sys::rte_eth_dev_info> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port id and out pointer.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(self.id(), &mut info)
        })?;
        Ok(info)
    }

    /// Transmit checksum offloads enabled by [`Port::configure`] (what stages may ask for
    /// with `Mbuf::set_tx_offload`); [`OffloadCaps::NONE`] before.
    pub fn offload_caps(&self) -> OffloadCaps {
        self.caps
    }

    /// Configure the port (`rte_eth_dev_configure`) and set up its queues, receiving into
    /// `pool`. Refused while the port runs or queue handles from an earlier call are alive.
    /// Returns the queue handles, which the poll loop moves to its lcores.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<Queues> {
        if self.started {
            return Err(Error::Busy("stop the port before configuring it"));
        }
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(Error::InvalidArg(
                "a port needs at least one rx and one tx queue".into(),
            ));
        }
        let info = self.raw_info()?;
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(Error::InvalidArg(format!(
                "port {} supports at most {} rx and {} tx queues, {} and {} asked",
                self.name(),
                info.max_rx_queues,
                info.max_tx_queues,
                cfg.rx_queues,
                cfg.tx_queues
            )));
        }
        let id = self.id();
        let shared = Arc::get_mut(&mut self.shared).ok_or(Error::Busy("queue handles of this port are still alive"))?;

        let want = offloads_of(cfg.tx_offloads);
        let tx_offloads = want & info.tx_offload_capa;
        let mut conf = dpdk_sys::rte_eth_conf::default();
        conf.txmode.offloads = tx_offloads;
        let rss_hf = (dpdk_sys::RVS_ETH_RSS_IP | dpdk_sys::RVS_ETH_RSS_TCP | dpdk_sys::RVS_ETH_RSS_UDP)
            & info.flow_type_rss_offloads;
        if cfg.rss && cfg.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if info.rx_offload_capa & dpdk_sys::RVS_ETH_RX_OFFLOAD_RSS_HASH != 0 {
                conf.rxmode.offloads |= dpdk_sys::RVS_ETH_RX_OFFLOAD_RSS_HASH;
            }
        }
        // SAFETY: valid port, stopped, `conf` initialised.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf)
        })?;
        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port and out pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx)
        })?;
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port; `pool` outlives the port (kept in `shared.pools`);
            // a null rxconf means the device defaults.
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(id, q, nrx, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        let mut txconf = info.default_txconf;
        txconf.offloads = tx_offloads;
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port; `txconf` initialised from the device defaults.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, ntx, socket, &txconf)
            })?;
        }
        shared.pools.clear();
        shared.pools.push(pool.clone());
        // SAFETY: valid port (promiscuous may be unsupported by a vdev: best effort).
        unsafe {
            if cfg.promiscuous {
                dpdk_sys::rte_eth_promiscuous_enable(id);
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(id);
            }
        }
        self.caps = caps_of(tx_offloads);
        Ok(Queues {
            rx: (0..cfg.rx_queues)
                .map(|q| RxQueue {
                    port: id,
                    queue: q,
                    chained_dropped: 0,
                    _shared: self.shared.clone(),
                    _not_sync: PhantomData,
                })
                .collect(),
            tx: (0..cfg.tx_queues)
                .map(|q| TxQueue {
                    port: id,
                    queue: q,
                    _shared: self.shared.clone(),
                    _not_sync: PhantomData,
                })
                .collect(),
        })
    }

    /// Start the port (`rte_eth_dev_start`).
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: valid, configured port.
        check("rte_eth_dev_start", unsafe { dpdk_sys::rte_eth_dev_start(self.id()) })?;
        self.started = true;
        Ok(())
    }

    /// Stop the port (`rte_eth_dev_stop`). Refused while queue handles are alive: stop the
    /// lcores that poll it first.
    pub fn stop(&mut self) -> Result<()> {
        if Arc::strong_count(&self.shared) != 1 {
            return Err(Error::Busy(
                "queue handles of this port are still alive (stop its lcores first)",
            ));
        }
        // SAFETY: valid port; nothing polls it (no queue handle exists).
        check("rte_eth_dev_stop", unsafe { dpdk_sys::rte_eth_dev_stop(self.id()) })?;
        self.started = false;
        Ok(())
    }

    /// True between [`Port::start`] and [`Port::stop`].
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Turn promiscuous mode on or off.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id())
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id())
            }
        };
        check("rte_eth_promiscuous_enable/disable", ret).map(|_| ())
    }

    /// Promiscuous mode as the device reports it.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: valid port.
        unsafe { dpdk_sys::rte_eth_promiscuous_get(self.id()) == 1 }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port and out pointer.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.id(), &mut a)
        })?;
        Ok(a.addr_bytes)
    }

    /// Link state, without waiting (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> Result<Link> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port and out pointer.
        check("rte_eth_link_get_nowait", unsafe {
            dpdk_sys::rte_eth_link_get_nowait(self.id(), &mut l)
        })?;
        Ok(Link {
            up: l.link_status() as u32 == dpdk_sys::RVS_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() == 1,
        })
    }

    /// Port statistics.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port and out pointer.
        check("rte_eth_stats_get", unsafe {
            dpdk_sys::rte_eth_stats_get(self.id(), &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Reset the statistics.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port.
        check("rte_eth_stats_reset", unsafe {
            dpdk_sys::rte_eth_stats_reset(self.id())
        })
        .map(|_| ())
    }
}

fn caps_of(capa: u64) -> OffloadCaps {
    OffloadCaps {
        ipv4_cksum: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_IPV4_CKSUM != 0,
        tcp_cksum: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_TCP_CKSUM != 0,
        udp_cksum: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_UDP_CKSUM != 0,
    }
}

fn offloads_of(c: OffloadCaps) -> u64 {
    let mut v = 0;
    if c.ipv4_cksum {
        v |= dpdk_sys::RVS_ETH_TX_OFFLOAD_IPV4_CKSUM;
    }
    if c.tcp_cksum {
        v |= dpdk_sys::RVS_ETH_TX_OFFLOAD_TCP_CKSUM;
    }
    if c.udp_cksum {
        v |= dpdk_sys::RVS_ETH_TX_OFFLOAD_UDP_CKSUM;
    }
    v
}

/// A receive queue of a port, owned by the one lcore that polls it (`Send`, not `Sync`).
pub struct RxQueue {
    port: u16,
    queue: u16,
    chained_dropped: u64,
    _shared: Arc<PortShared>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}

// SAFETY: a queue handle is unique (not Clone); moving it moves the right to poll the queue.
unsafe impl Send for RxQueue {}

impl RxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
    /// Multi-segment packets freed on receive (rvs handles single segments only).
    pub fn chained_dropped(&self) -> u64 {
        self.chained_dropped
    }

    /// Receive into the spare capacity of `out` (`rte_eth_rx_burst`, at most the spare
    /// capacity): never allocates, and touches no packet (the io-forward floor). The mbufs
    /// are as the PMD made them: `port` is whatever it set (net_ring sets none), and a
    /// device doing scatter (net_pcap with records longer than the data room) may hand over
    /// chained mbufs, which an `RteMbuf` then shows as their first segment only. Use
    /// [`rx_burst_checked`](Self::rx_burst_checked) or [`rx_burst_with`](Self::rx_burst_with)
    /// when that matters. Returns how many packets were added.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<RteMbuf>) -> usize {
        let len = out.len();
        let room = (out.capacity() - len).min(u16::MAX as usize) as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: the spare capacity has room for `room` mbuf pointers (`RteMbuf` is a
        // transparent non-null pointer); this handle is the queue's only poller; the device
        // writes `n` valid mbufs that are now ours.
        unsafe {
            let dst = out.spare_capacity_mut().as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf;
            let n = dpdk_sys::rvs_eth_rx_burst(self.port, self.queue, dst, room) as usize;
            out.set_len(len + n);
            n
        }
    }

    /// [`rx_burst`](Self::rx_burst), then one pass over the new packets: each gets this
    /// port as its `port`, and chained (multi-segment) ones are freed and counted in
    /// [`chained_dropped`](Self::chained_dropped). Costs a few ns per packet on net_null.
    #[inline]
    pub fn rx_burst_checked(&mut self, out: &mut Vec<RteMbuf>) -> usize {
        let len = out.len();
        let n = self.rx_burst(out);
        let mut chained = false;
        for m in &mut out[len..] {
            // SAFETY: only `port` is written; the other invariants are untouched.
            let h = unsafe { m.raw_mut() };
            h.port = self.port;
            chained |= h.nb_segs != 1;
        }
        if chained {
            return self.drop_chained(out, len);
        }
        n
    }

    #[cold]
    fn drop_chained(&mut self, out: &mut Vec<RteMbuf>, from: usize) -> usize {
        let before = out.len();
        let mut i = from;
        while i < out.len() {
            if out[i].nb_segs() != 1 {
                // `remove` keeps order; dropping the chained mbuf frees all its segments.
                drop(out.remove(i));
            } else {
                i += 1;
            }
        }
        self.chained_dropped += (before - out.len()) as u64;
        out.len() - from
    }

    /// Receive at most `max` (capped at [`MAX_BURST`]) packets and hand each to `f`, in
    /// order, with the checks of [`rx_burst_checked`](Self::rx_burst_checked) folded into
    /// the same pass (port set, chained packets freed and counted): the one to use when
    /// each packet is wrapped anyway (e.g. into a stage vector). Returns how many were
    /// handed over.
    #[inline]
    pub fn rx_burst_with(&mut self, max: usize, mut f: impl FnMut(RteMbuf)) -> usize {
        let mut buf = [std::ptr::null_mut::<dpdk_sys::rte_mbuf>(); MAX_BURST];
        let want = max.min(MAX_BURST) as u16;
        // SAFETY: `buf` holds MAX_BURST pointers; this handle is the queue's only poller.
        let n = unsafe { dpdk_sys::rvs_eth_rx_burst(self.port, self.queue, buf.as_mut_ptr(), want) } as usize;
        let mut kept = 0;
        for &p in &buf[..n] {
            // SAFETY: the device handed over `n` valid mbufs.
            if let Some(mut m) = unsafe { RteMbuf::from_raw(p) } {
                m.set_port(self.port);
                if m.nb_segs() != 1 {
                    self.chained_dropped += 1;
                    continue;
                }
                kept += 1;
                f(m);
            }
        }
        kept
    }
}

/// A transmit queue of a port, owned by the one lcore that sends on it (`Send`, not `Sync`).
pub struct TxQueue {
    port: u16,
    queue: u16,
    _shared: Arc<PortShared>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}

// SAFETY: a queue handle is unique (not Clone); moving it moves the right to send on it.
unsafe impl Send for TxQueue {}

impl TxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Send packets from the front of `pkts` (`rte_eth_tx_burst`); the device takes those
    /// it accepts, they leave the vector, the refused ones stay (in order). Returns how
    /// many were sent.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<RteMbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let want = len.min(u16::MAX as usize) as u16;
        // SAFETY: `pkts` is an array of owned mbuf pointers (`RteMbuf` is transparent); the
        // device takes ownership of the first `n`, which are then removed from the vector
        // without being dropped; this handle is the queue's only sender.
        unsafe {
            let base = pkts.as_mut_ptr();
            let n =
                dpdk_sys::rvs_eth_tx_burst(self.port, self.queue, base as *mut *mut dpdk_sys::rte_mbuf, want) as usize;
            if n > 0 {
                std::ptr::copy(base.add(n), base, len - n);
                pkts.set_len(len - n);
            }
            n
        }
    }
}

/// A per-port, per-queue transmit buffer: packets are pushed one at a time and sent in
/// bursts; whatever the device refuses is freed in bulk and counted, like
/// `rte_eth_tx_buffer` with its default drop callback. Preallocated: never allocates after
/// construction.
#[derive(Debug)]
pub struct TxBuffer {
    q: TxQueue,
    buf: Vec<RteMbuf>,
    burst: usize,
    sent: u64,
    dropped: u64,
}

impl TxBuffer {
    /// A buffer over `q` that sends once `burst` packets are waiting (or on [`flush`](Self::flush)).
    pub fn new(q: TxQueue, burst: usize) -> Self {
        let burst = burst.clamp(1, MAX_BURST);
        TxBuffer {
            q,
            buf: Vec::with_capacity(burst),
            burst,
            sent: 0,
            dropped: 0,
        }
    }

    /// Queue a packet; sends a burst when the buffer is full.
    #[inline]
    pub fn push(&mut self, m: RteMbuf) {
        // Invariant: len < burst <= capacity before the push, so it never reallocates.
        self.buf.push(m);
        if self.buf.len() >= self.burst {
            self.flush();
        }
    }

    /// Send everything waiting; what the device refuses is freed and counted. Returns how
    /// many were sent.
    #[inline]
    pub fn flush(&mut self) -> usize {
        if self.buf.is_empty() {
            return 0;
        }
        let n = self.q.tx_burst(&mut self.buf);
        self.sent += n as u64;
        if !self.buf.is_empty() {
            self.dropped += self.buf.len() as u64;
            RteMbuf::free_bulk(&mut self.buf);
        }
        n
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Packets the device accepted.
    pub fn sent(&self) -> u64 {
        self.sent
    }
    /// Packets the device refused (freed).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    /// The queue.
    pub fn queue(&self) -> &TxQueue {
        &self.q
    }
    /// Give the queue back; waiting packets are freed (call [`flush`](Self::flush) first).
    pub fn into_queue(mut self) -> TxQueue {
        RteMbuf::free_bulk(&mut self.buf);
        self.q
    }
}
