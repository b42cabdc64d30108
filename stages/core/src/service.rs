//! The service and destination model, published as immutable snapshots.
//!
//! The control plane builds a [`Snapshot`] (services keyed by protocol, VIP and port; each
//! with its destinations, scheduler factory and prebuilt scheduler tables) and swaps it in
//! through a [`SnapshotCell`]; a worker takes one snapshot per vector (`load`, no lock, no
//! reference count bumped per packet) and nothing is freed while a worker may hold it
//! (arc-swap's guarantee). Per-lcore connection counters live beside, in
//! [`crate::load::LoadTable`], indexed by each destination's stable [`DestId`], so they
//! survive snapshot swaps.

use std::fmt;
use std::sync::Arc;

use crate::addr::{Addr, Proto};
use crate::hash::FastMap;
use crate::sched::{SchedError, SchedTables, SchedulerFactory};

/// How packets reach the real server (ipvsadm's and DPVS's forwarding modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Forward {
    /// Full NAT: source and destination rewritten (DPVS `-b`).
    Fnat,
    /// Masquerading: destination rewritten inbound, source outbound (`-m`).
    Nat,
    /// Direct routing: only MACs rewritten (`-g`, ipvsadm's default).
    #[default]
    Dr,
    /// IP-in-IP tunnelling (`-i`).
    Tunnel,
    /// Source NAT for internal hosts going out (DPVS `-J`).
    Snat,
}

impl Forward {
    /// Name as written in config.
    pub const fn name(self) -> &'static str {
        match self {
            Forward::Fnat => "fnat",
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tunnel => "tunnel",
            Forward::Snat => "snat",
        }
    }
    /// From its config name.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "fnat" => Forward::Fnat,
            "nat" => Forward::Nat,
            "dr" => Forward::Dr,
            "tunnel" => Forward::Tunnel,
            "snat" => Forward::Snat,
            _ => return None,
        })
    }
    /// Modes in which the real server's port must equal the virtual port.
    pub const fn keeps_port(self) -> bool {
        matches!(self, Forward::Dr | Forward::Tunnel)
    }
}

/// A destination's stable slot: the index of its counters in every lcore's load table. The
/// control plane keeps it across snapshots and reuses it only once it holds no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DestId(pub u32);

/// Destination flags set by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestFlags(pub u16);

impl DestFlags {
    /// Taken out by a health check (DPVS's passive check inhibits for a growing time).
    pub const INHIBITED: u16 = 0x1;
    /// Administratively unavailable (being removed; existing connections continue).
    pub const UNAVAILABLE: u16 = 0x2;
    /// Available for new connections.
    pub const fn available(self) -> bool {
        self.0 & Self::UNAVAILABLE == 0
    }
    /// Inhibited by a health check.
    pub const fn inhibited(self) -> bool {
        self.0 & Self::INHIBITED != 0
    }
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Stable counter slot.
    pub id: DestId,
    /// Real server address.
    pub addr: Addr,
    /// Real server port.
    pub port: u16,
    /// Weight 0..=65535; 0 drains (no new connections, existing ones continue).
    pub weight: u32,
    /// Forwarding mode.
    pub fwd: Forward,
    /// Upper connection threshold (`-x`; 0 = none), shared out across lcores.
    pub max_conn: u32,
    /// Lower connection threshold (`-y`; 0 = none), shared out across lcores.
    pub min_conn: u32,
    /// Flags.
    pub flags: DestFlags,
}

impl Dest {
    /// A destination of weight 1, DR, no thresholds.
    pub fn new(id: DestId, addr: Addr, port: u16) -> Self {
        Dest {
            id,
            addr,
            port,
            weight: 1,
            fwd: Forward::Dr,
            max_conn: 0,
            min_conn: 0,
            flags: DestFlags::default(),
        }
    }
    /// This lcore's share of `max_conn` (rounded up, so the shares cover the whole limit).
    pub const fn lcore_max_conn(&self, lcores: u16) -> u32 {
        share(self.max_conn, lcores)
    }
    /// This lcore's share of `min_conn`.
    pub const fn lcore_min_conn(&self, lcores: u16) -> u32 {
        share(self.min_conn, lcores)
    }
}

const fn share(v: u32, lcores: u16) -> u32 {
    if v == 0 || lcores <= 1 {
        v
    } else {
        v.div_ceil(lcores as u32)
    }
}

/// Scheduler flags (ipvsadm `-b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// sh: try the next slot when the hashed destination is unavailable.
    pub const SH_FALLBACK: u32 = 0x1;
    /// sh: hash the source port too.
    pub const SH_PORT: u32 = 0x2;
    /// mh: try the next table entry when the hashed destination is unavailable.
    pub const MH_FALLBACK: u32 = 0x4;
    /// mh: hash the source port too.
    pub const MH_PORT: u32 = 0x8;
    /// conhash: key by QUIC connection id (UDP), source IP as fallback.
    pub const QUIC_CID: u32 = 0x10;

    /// True when `bit` is set.
    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    /// From an ipvsadm flag name.
    pub fn from_name(s: &str) -> Option<u32> {
        Some(match s {
            "sh-fallback" => Self::SH_FALLBACK,
            "sh-port" => Self::SH_PORT,
            "mh-fallback" => Self::MH_FALLBACK,
            "mh-port" => Self::MH_PORT,
            "quic-cid" => Self::QUIC_CID,
            _ => return None,
        })
    }
}

/// A service's key: protocol, VIP and port (port 0: every port of the VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Protocol.
    pub proto: Proto,
    /// Virtual address.
    pub vip: Addr,
    /// Virtual port, 0 for all ports.
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vip.is_v4() {
            write!(f, "{} {}:{}", self.proto.name(), self.vip, self.port)
        } else {
            write!(f, "{} [{}]:{}", self.proto.name(), self.vip, self.port)
        }
    }
}

/// Persistence (`-p TIMEOUT -M NETMASK`): a client's connections go to one destination for
/// `timeout_secs` after its last connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout in seconds (ipvsadm's default is 300).
    pub timeout_secs: u32,
    /// Prefix length applied to IPv4 clients (`-M 255.255.255.0` is 24).
    pub netmask_v4: u8,
    /// Prefix length applied to IPv6 clients.
    pub netmask_v6: u8,
}

/// Connection timeouts in seconds, per state; defaults are DPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP NONE.
    pub none: u32,
    /// TCP ESTABLISHED.
    pub established: u32,
    /// TCP SYN_SENT.
    pub syn_sent: u32,
    /// TCP SYN_RECV.
    pub syn_recv: u32,
    /// TCP FIN_WAIT.
    pub fin_wait: u32,
    /// TCP TIME_WAIT.
    pub time_wait: u32,
    /// TCP CLOSE.
    pub close: u32,
    /// TCP CLOSE_WAIT.
    pub close_wait: u32,
    /// TCP LAST_ACK.
    pub last_ack: u32,
    /// TCP LISTEN.
    pub listen: u32,
    /// TCP SYNACK (synproxy).
    pub synack: u32,
    /// UDP.
    pub udp: u32,
    /// ICMP.
    pub icmp: u32,
}

impl Timeouts {
    /// DPVS's defaults.
    pub const DPVS: Timeouts = Timeouts {
        none: 2,
        established: 90,
        syn_sent: 3,
        syn_recv: 30,
        fin_wait: 7,
        time_wait: 7,
        close: 3,
        close_wait: 7,
        last_ack: 7,
        listen: 120,
        synack: 30,
        udp: 300,
        icmp: 300,
    };
    /// Linux IPVS's defaults.
    pub const IPVS: Timeouts = Timeouts {
        none: 2,
        established: 900,
        syn_sent: 120,
        syn_recv: 60,
        fin_wait: 120,
        time_wait: 120,
        close: 10,
        close_wait: 60,
        last_ack: 30,
        listen: 120,
        synack: 120,
        udp: 300,
        icmp: 300,
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DPVS
    }
}

/// One virtual service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Index in the snapshot's service list.
    pub index: u32,
    /// Protocol, VIP, port.
    pub key: ServiceKey,
    /// Forwarding mode (destinations may override).
    pub fwd: Forward,
    /// The scheduler.
    pub sched: Arc<dyn SchedulerFactory>,
    /// Tables the scheduler's factory built for this snapshot.
    pub sched_tables: Option<SchedTables>,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// Real servers.
    pub dests: Box<[Dest]>,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// FNAT/SNAT local addresses, picked round-robin per lcore.
    pub local_addrs: Box<[Addr]>,
    /// SYN proxy on.
    pub synproxy: bool,
    /// Timeouts.
    pub timeouts: Timeouts,
}

/// What is wrong with a service definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Two services share a key.
    #[error("service {0} is defined twice")]
    Duplicate(ServiceKey),
    /// Weight above 65535.
    #[error("service {svc}: destination {dest} has weight {weight}, above 65535")]
    Weight {
        /// Service.
        svc: ServiceKey,
        /// Destination.
        dest: Addr,
        /// The weight given.
        weight: u32,
    },
    /// DR or TUNNEL with a different real-server port.
    #[error("service {svc}: destination {dest}:{port} uses {fwd}, whose real-server port must equal the virtual port")]
    PortMismatch {
        /// Service.
        svc: ServiceKey,
        /// Destination.
        dest: Addr,
        /// Its port.
        port: u16,
        /// Mode.
        fwd: &'static str,
    },
    /// Lower threshold above the upper.
    #[error("service {svc}: destination {dest} has lower threshold {min} above upper threshold {max}")]
    Thresholds {
        /// Service.
        svc: ServiceKey,
        /// Destination.
        dest: Addr,
        /// Lower.
        min: u32,
        /// Upper.
        max: u32,
    },
    /// FNAT/SNAT without local addresses.
    #[error("service {0}: fnat and snat need at least one local address")]
    NoLocalAddress(ServiceKey),
    /// The same destination twice.
    #[error("service {svc}: destination {dest}:{port} is listed twice")]
    DuplicateDest {
        /// Service.
        svc: ServiceKey,
        /// Destination.
        dest: Addr,
        /// Port.
        port: u16,
    },
    /// Mixed families where they cannot mix.
    #[error("service {svc}: {what}")]
    Family {
        /// Service.
        svc: ServiceKey,
        /// What is wrong.
        what: &'static str,
    },
    /// The scheduler refused.
    #[error("service {svc}: {err}")]
    Sched {
        /// Service.
        svc: ServiceKey,
        /// The scheduler's error.
        err: SchedError,
    },
}

impl Service {
    /// A service with no destinations, DPVS defaults and the given scheduler.
    pub fn new(key: ServiceKey, fwd: Forward, sched: Arc<dyn SchedulerFactory>) -> Self {
        Service {
            index: 0,
            key,
            fwd,
            sched,
            sched_tables: None,
            sched_flags: SchedFlags::default(),
            dests: Box::new([]),
            persistence: None,
            local_addrs: Box::new([]),
            synproxy: false,
            timeouts: Timeouts::DPVS,
        }
    }

    /// Check the definition (weights, thresholds, ports for DR/TUNNEL, local addresses,
    /// families) and build the scheduler's tables.
    pub fn prepare(&mut self) -> Result<(), ServiceError> {
        let svc = self.key;
        for (i, d) in self.dests.iter().enumerate() {
            if d.weight > 65535 {
                return Err(ServiceError::Weight {
                    svc,
                    dest: d.addr,
                    weight: d.weight,
                });
            }
            if d.fwd.keeps_port() && d.port != svc.port {
                return Err(ServiceError::PortMismatch {
                    svc,
                    dest: d.addr,
                    port: d.port,
                    fwd: d.fwd.name(),
                });
            }
            if d.max_conn != 0 && d.min_conn > d.max_conn {
                return Err(ServiceError::Thresholds {
                    svc,
                    dest: d.addr,
                    min: d.min_conn,
                    max: d.max_conn,
                });
            }
            if self.dests[..i].iter().any(|e| e.addr == d.addr && e.port == d.port) {
                return Err(ServiceError::DuplicateDest {
                    svc,
                    dest: d.addr,
                    port: d.port,
                });
            }
            let fnat = matches!(d.fwd, Forward::Fnat);
            if !fnat && d.addr.is_v4() != svc.vip.is_v4() && d.fwd != Forward::Tunnel {
                return Err(ServiceError::Family {
                    svc,
                    what: "only fnat (NAT64) and tunnel may mix address families",
                });
            }
        }
        let needs_laddr = matches!(self.fwd, Forward::Fnat | Forward::Snat)
            || self
                .dests
                .iter()
                .any(|d| matches!(d.fwd, Forward::Fnat | Forward::Snat));
        if needs_laddr && self.local_addrs.is_empty() {
            return Err(ServiceError::NoLocalAddress(svc));
        }
        self.sched_tables = self
            .sched
            .build_tables(&self.dests, self.sched_flags)
            .map_err(|err| ServiceError::Sched { svc, err })?;
        Ok(())
    }

    /// The destination with this stable id, and its index.
    pub fn dest_by_id(&self, id: DestId) -> Option<(usize, &Dest)> {
        self.dests.iter().enumerate().find(|(_, d)| d.id == id)
    }
}

/// DPVS's global defence switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Defence {
    /// `defence_tcp_drop`: drop a non-SYN without a connection to a VIP, and a SYN to a VIP
    /// port with no service (otherwise they go to the host path).
    pub tcp_drop: bool,
    /// `defence_udp_drop`: drop UDP to a VIP that has only TCP services.
    pub udp_drop: bool,
}

/// What a VIP offers, for packets that match no service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VipInfo {
    /// Some TCP service uses this VIP.
    pub tcp: bool,
    /// Some UDP service uses this VIP.
    pub udp: bool,
}

/// An immutable view of every service, swapped in whole by the control plane.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases with every published snapshot.
    pub generation: u64,
    /// Worker lcores sharing connection limits.
    pub lcores: u16,
    /// Defence switches.
    pub defence: Defence,
    /// Services, by index.
    pub services: Box<[Arc<Service>]>,
    index: FastMap<ServiceKey, u32>,
    vips: FastMap<Addr, VipInfo>,
}

impl Snapshot {
    /// An empty snapshot (generation 0, one lcore).
    pub fn empty() -> Self {
        Snapshot {
            lcores: 1,
            ..Default::default()
        }
    }

    /// Check and index `services` (each gets its index and scheduler tables).
    pub fn build(generation: u64, lcores: u16, defence: Defence, services: Vec<Service>) -> Result<Self, ServiceError> {
        let mut index = FastMap::default();
        let mut vips: FastMap<Addr, VipInfo> = FastMap::default();
        let mut out = Vec::with_capacity(services.len());
        for (i, mut s) in services.into_iter().enumerate() {
            s.index = i as u32;
            s.prepare()?;
            if index.insert(s.key, i as u32).is_some() {
                return Err(ServiceError::Duplicate(s.key));
            }
            let v = vips.entry(s.key.vip).or_default();
            match s.key.proto {
                Proto::Tcp => v.tcp = true,
                Proto::Udp => v.udp = true,
                Proto::Icmp | Proto::Icmp6 => {}
            }
            out.push(Arc::new(s));
        }
        Ok(Snapshot {
            generation,
            lcores: lcores.max(1),
            defence,
            services: out.into_boxed_slice(),
            index,
            vips,
        })
    }

    /// The service for a packet to `vip:port` over `proto`: the exact port first, then the
    /// VIP's port-zero service.
    #[inline]
    pub fn find(&self, proto: Proto, vip: Addr, port: u16) -> Option<&Arc<Service>> {
        let i = self
            .index
            .get(&ServiceKey { proto, vip, port })
            .or_else(|| self.index.get(&ServiceKey { proto, vip, port: 0 }))?;
        self.services.get(*i as usize)
    }

    /// What `addr` offers when it is a VIP.
    #[inline]
    pub fn vip(&self, addr: Addr) -> Option<VipInfo> {
        self.vips.get(&addr).copied()
    }
}

/// Where the control plane publishes snapshots and workers take them.
pub type SnapshotCell = arc_swap::ArcSwap<Snapshot>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{SchedCx, Scheduler};

    #[derive(Debug)]
    struct First;
    impl Scheduler for First {
        fn name(&self) -> &str {
            "first"
        }
        fn pick(&mut self, cx: &SchedCx<'_>, _: &crate::sched::Flow<'_>) -> Option<usize> {
            (0..cx.dests().len()).find(|&i| cx.eligible(i))
        }
    }
    impl SchedulerFactory for First {
        fn name(&self) -> &str {
            "first"
        }
        fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
            Box::new(First)
        }
    }

    fn svc(port: u16, fwd: Forward) -> Service {
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: "198.18.0.100".parse().unwrap(),
            port,
        };
        Service::new(key, fwd, Arc::new(First))
    }

    #[test]
    fn finds_exact_port_then_port_zero() {
        let snap = Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![svc(80, Forward::Dr), svc(0, Forward::Dr)],
        )
        .unwrap();
        let vip = "198.18.0.100".parse().unwrap();
        assert_eq!(snap.find(Proto::Tcp, vip, 80).unwrap().key.port, 80);
        assert_eq!(snap.find(Proto::Tcp, vip, 443).unwrap().key.port, 0);
        assert!(snap.find(Proto::Udp, vip, 80).is_none());
        assert_eq!(snap.vip(vip), Some(VipInfo { tcp: true, udp: false }));
    }

    #[test]
    fn rejects_bad_definitions_with_clear_errors() {
        let mut s = svc(80, Forward::Dr);
        let mut d = Dest::new(DestId(0), "198.18.1.11".parse().unwrap(), 8080);
        s.dests = vec![d.clone()].into();
        let e = s.prepare().unwrap_err();
        assert!(e.to_string().contains("must equal the virtual port"), "{e}");

        d.port = 80;
        d.weight = 70000;
        s.dests = vec![d.clone()].into();
        assert!(matches!(s.prepare(), Err(ServiceError::Weight { .. })));

        let mut f = svc(80, Forward::Fnat);
        d.fwd = Forward::Fnat;
        d.weight = 1;
        f.dests = vec![d].into();
        assert!(matches!(f.prepare(), Err(ServiceError::NoLocalAddress(_))));

        let e = Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![svc(80, Forward::Dr), svc(80, Forward::Dr)],
        )
        .unwrap_err();
        assert!(matches!(e, ServiceError::Duplicate(_)));
    }

    #[test]
    fn max_conn_is_shared_out_per_lcore() {
        let mut d = Dest::new(DestId(0), Addr::v4([198, 18, 1, 1]), 80);
        d.max_conn = 10;
        assert_eq!(d.lcore_max_conn(1), 10);
        assert_eq!(d.lcore_max_conn(3), 4);
        d.max_conn = 0;
        assert_eq!(d.lcore_max_conn(4), 0);
    }
}
