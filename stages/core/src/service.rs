//! The service and destination model, published as immutable snapshots.
//!
//! The control plane builds a [`Snapshot`] (services keyed by protocol, VIP and port; each
//! with its destinations, scheduler factory and prebuilt scheduler tables) and swaps it in
//! through a [`SnapshotCell`]; a worker takes one snapshot per vector (`load`, no lock, no
//! reference count bumped per packet) and nothing is freed while a worker may hold it
//! (arc-swap's guarantee). Per-lcore connection counters live beside, in
//! [`crate::load::LoadTable`], indexed by each destination's stable [`DestId`], so they
//! survive snapshot swaps.
//!
//! **Match services** (DPVS's SNAT services, `ipvsadm -A -H src-range=...,dst-range=...,oif=...
//! -s rr` with destinations added `-J`): a service whose [`Service::matcher`] is set is found
//! by protocol and source/destination address and port ranges, input and output interface
//! ([`MatchSpec`]) instead of by VIP and port. It is the lowest-priority lookup, as in DPVS's
//! `dp_vs_service_lookup`: [`Snapshot::find_match`] is asked only for traffic that is not for
//! a VIP, match services are tried in the order they were given, the first that matches
//! wins, and a packet to one of the balancer's own addresses, or (routing known, see
//! [`Snapshot::set_match_routing`]) to a destination with no route, matches none
//! (`__dp_vs_service_match_get4` skips local-in routes). A match service forwards with SNAT;
//! its destinations are the source addresses the balancer gives the internal hosts' flows
//! (DPVS keeps the SNAT source IPs as the service's real servers), each a local address
//! whose ports come from the lcore's sa_pool, and the connection's real server is the
//! packet's original destination (conn-new).

use std::fmt;
use std::sync::Arc;

use crate::addr::{Addr, Af, Proto};
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

impl ServiceKey {
    /// The key every match service carries: its protocol, the unspecified address of its
    /// family and port 0 (it is never looked up by key).
    pub const fn for_match(proto: Proto, af: Af) -> Self {
        ServiceKey {
            proto,
            vip: unspecified(af),
            port: 0,
        }
    }
    /// True for the key of a match service ([`ServiceKey::for_match`]).
    pub fn is_match(&self) -> bool {
        self.port == 0 && self.vip == unspecified(self.vip.af())
    }
}

/// `0.0.0.0` (IPv4-mapped) or `::`.
const fn unspecified(af: Af) -> Addr {
    match af {
        Af::V4 => Addr::v4([0, 0, 0, 0]),
        Af::V6 => Addr::UNSPECIFIED,
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_match() {
            let af = if self.vip.is_v4() { "ipv4" } else { "ipv6" };
            write!(f, "{} match ({af})", self.proto.name())
        } else if self.vip.is_v4() {
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

/// One side of a match service: an inclusive address range and an inclusive port range
/// (DPVS's `inet_addr_range`, `198.18.16.0-198.18.16.255:1024-65535`). `None` matches any
/// address or any port, as DPVS reads an all-zero range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchRange {
    /// Lowest and highest address, both of the service's family.
    pub addrs: Option<(Addr, Addr)>,
    /// Lowest and highest port (ICMP: identifier).
    pub ports: Option<(u16, u16)>,
}

impl MatchRange {
    /// Any address, any port.
    pub const ANY: MatchRange = MatchRange {
        addrs: None,
        ports: None,
    };

    /// True when `addr` and `port` fall in the range. Addresses compare as integers within
    /// their family (IPv4 is kept IPv4-mapped, so an IPv4 range never holds an IPv6 address).
    #[inline]
    pub fn contains(&self, addr: Addr, port: u16) -> bool {
        self.addrs.is_none_or(|(lo, hi)| lo <= addr && addr <= hi)
            && self.ports.is_none_or(|(lo, hi)| lo <= port && port <= hi)
    }

    /// What is wrong with the range for a service of family `af`, if anything.
    fn check(&self, af: Af, side: &str) -> Result<(), String> {
        if let Some((lo, hi)) = self.addrs {
            if lo.af() != af || hi.af() != af {
                return Err(format!("{side} range {lo}-{hi} is not of the service's address family"));
            }
            if lo > hi {
                return Err(format!("{side} range {lo}-{hi} runs backwards"));
            }
        }
        if let Some((lo, hi)) = self.ports
            && lo > hi
        {
            return Err(format!("{side} port range {lo}-{hi} runs backwards"));
        }
        Ok(())
    }
}

impl fmt::Display for MatchRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs {
            Some((lo, hi)) => write!(f, "{lo}-{hi}")?,
            None => f.write_str("any")?,
        }
        if let Some((lo, hi)) = self.ports {
            write!(f, ":{lo}-{hi}")?;
        }
        Ok(())
    }
}

/// What packets a match service takes (DPVS's `struct dp_vs_match`): address family,
/// source and destination ranges, and the input and output interfaces by port index (the
/// output interface is the one the route to the packet's destination leaves by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchSpec {
    /// Address family of the packets (and of the destinations).
    pub af: Af,
    /// Source address and port range.
    pub src: MatchRange,
    /// Destination address and port range.
    pub dst: MatchRange,
    /// Receiving port, if the match names one (`iif`).
    pub iif: Option<u16>,
    /// Port the route to the destination leaves by, if the match names one (`oif`).
    pub oif: Option<u16>,
}

impl MatchSpec {
    /// True when a packet from `saddr:sport` to `daddr:dport` received on port `iif`, whose
    /// route leaves by `oif` (`None`: unknown), is one this match takes. The protocol is the
    /// service's key.
    #[inline]
    pub fn matches(&self, saddr: Addr, sport: u16, daddr: Addr, dport: u16, iif: u16, oif: Option<u16>) -> bool {
        saddr.af() == self.af
            && daddr.af() == self.af
            && self.src.contains(saddr, sport)
            && self.dst.contains(daddr, dport)
            && self.iif.is_none_or(|p| p == iif)
            && self.oif.is_none_or(|p| oif == Some(p))
    }
}

impl fmt::Display for MatchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from {} to {}", self.src, self.dst)?;
        if let Some(p) = self.iif {
            write!(f, " iif {p}")?;
        }
        if let Some(p) = self.oif {
            write!(f, " oif {p}")?;
        }
        Ok(())
    }
}

/// A route as match services see it: packets to `net/prefix` leave by `port`. Given to the
/// snapshot longest prefix first ([`Snapshot::set_match_routing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRoute {
    /// Network (the address with the host bits clear).
    pub net: Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Output port.
    pub port: u16,
}

impl MatchRoute {
    #[inline]
    fn covers(&self, a: Addr) -> bool {
        a.is_v4() == self.net.is_v4() && a.masked(self.prefix) == self.net
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
    /// Set for a match (SNAT) service: the packets it takes. Its key is then
    /// [`ServiceKey::for_match`] and it is found by [`Snapshot::find_match`], never by key.
    pub matcher: Option<MatchSpec>,
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
    /// A match service that cannot work as given.
    #[error("service {svc} {spec}: {what}")]
    Match {
        /// Service.
        svc: ServiceKey,
        /// Its match.
        spec: Box<MatchSpec>,
        /// What is wrong.
        what: String,
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
            matcher: None,
        }
    }

    /// A match (SNAT) service over `proto` taking the packets `spec` describes; its
    /// destinations are to be the source addresses it hands out.
    pub fn new_match(proto: Proto, spec: MatchSpec, sched: Arc<dyn SchedulerFactory>) -> Self {
        let mut s = Service::new(ServiceKey::for_match(proto, spec.af), Forward::Snat, sched);
        s.matcher = Some(spec);
        s
    }

    /// Check the definition (weights, thresholds, ports for DR/TUNNEL, local addresses,
    /// families; for a match service its ranges, SNAT forwarding, destinations of port 0 and
    /// no separate local addresses) and build the scheduler's tables.
    pub fn prepare(&mut self) -> Result<(), ServiceError> {
        let svc = self.key;
        if let Some(spec) = self.matcher {
            self.check_match(spec)?;
        }
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
        // A match service's destinations are its source addresses: it needs no others.
        let needs_laddr = self.matcher.is_none()
            && (matches!(self.fwd, Forward::Fnat | Forward::Snat)
                || self
                    .dests
                    .iter()
                    .any(|d| matches!(d.fwd, Forward::Fnat | Forward::Snat)));
        if needs_laddr && self.local_addrs.is_empty() {
            return Err(ServiceError::NoLocalAddress(svc));
        }
        self.sched_tables = self
            .sched
            .build_tables(&self.dests, self.sched_flags)
            .map_err(|err| ServiceError::Sched { svc, err })?;
        Ok(())
    }

    fn check_match(&self, spec: MatchSpec) -> Result<(), ServiceError> {
        let err = |what: String| ServiceError::Match {
            svc: self.key,
            spec: Box::new(spec),
            what,
        };
        if self.key != ServiceKey::for_match(self.key.proto, spec.af) {
            return Err(err(
                "a match service is keyed by its protocol alone (ServiceKey::for_match)".into(),
            ));
        }
        spec.src.check(spec.af, "source").map_err(err)?;
        spec.dst.check(spec.af, "destination").map_err(err)?;
        if self.fwd != Forward::Snat {
            return Err(err(format!(
                "a match service forwards with snat, not {}",
                self.fwd.name()
            )));
        }
        if !self.local_addrs.is_empty() {
            return Err(err(
                "a snat match service takes its source addresses from its destinations; local addresses are not used"
                    .into(),
            ));
        }
        if self.synproxy {
            return Err(err("synproxy does not apply to snat".into()));
        }
        for d in self.dests.iter() {
            if d.fwd != Forward::Snat {
                return Err(err(format!(
                    "destination {} uses {}; every destination of a match service is a snat source address",
                    d.addr,
                    d.fwd.name()
                )));
            }
            if d.port != 0 {
                return Err(err(format!(
                    "destination {}:{} is a snat source address; its port must be 0 (local ports come from the port pool)",
                    d.addr, d.port
                )));
            }
        }
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
    /// Match services' indexes, in the order given.
    matches: Box<[u32]>,
    /// The balancer's own addresses as match services see them (sorted): match services'
    /// destinations, every service's local addresses, and the interface addresses given
    /// through [`Snapshot::set_match_routing`].
    match_locals: Box<[Addr]>,
    /// Routes, longest prefix first; `None` while unknown.
    match_routes: Option<Box<[MatchRoute]>>,
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
        let mut out: Vec<Arc<Service>> = Vec::with_capacity(services.len());
        let mut matches = Vec::new();
        let mut locals = Vec::new();
        for (i, mut s) in services.into_iter().enumerate() {
            s.index = i as u32;
            s.prepare()?;
            locals.extend(s.local_addrs.iter().copied());
            if let Some(spec) = s.matcher {
                let twin = matches.iter().any(|&j: &u32| {
                    let o = &out[j as usize];
                    o.key == s.key && o.matcher == Some(spec)
                });
                if twin {
                    return Err(ServiceError::Match {
                        svc: s.key,
                        spec: Box::new(spec),
                        what: "is defined twice".into(),
                    });
                }
                locals.extend(s.dests.iter().map(|d| d.addr));
                matches.push(i as u32);
                out.push(Arc::new(s));
                continue;
            }
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
        locals.sort_unstable();
        locals.dedup();
        Ok(Snapshot {
            generation,
            lcores: lcores.max(1),
            defence,
            services: out.into_boxed_slice(),
            index,
            vips,
            matches: matches.into_boxed_slice(),
            match_locals: locals.into_boxed_slice(),
            match_routes: None,
        })
    }

    /// Tell match services the routing (control path, before publishing): `routes` as the
    /// transmit side routes (longest prefix first: the first that covers a destination is
    /// its route, whose port is the output interface `oif` matches), and the interface
    /// addresses, which no match service takes traffic for. Until this is called routing is
    /// unknown: a match naming an output interface matches nothing, and destinations without
    /// a route are not refused.
    pub fn set_match_routing(&mut self, routes: Vec<MatchRoute>, interface_addrs: impl IntoIterator<Item = Addr>) {
        let mut locals: Vec<Addr> = self.match_locals.iter().copied().chain(interface_addrs).collect();
        locals.sort_unstable();
        locals.dedup();
        self.match_locals = locals.into_boxed_slice();
        self.match_routes = Some(routes.into_boxed_slice());
    }

    /// True when some service is a match service.
    #[inline]
    pub fn has_match_services(&self) -> bool {
        !self.matches.is_empty()
    }

    /// The first match service (in the order given) that takes a packet of `proto` from
    /// `saddr:sport` to `daddr:dport` received on port `iif`; `None` when there is none, when
    /// `daddr` is one of the balancer's own addresses, or (routing known) when no route covers
    /// `daddr`. Ask it only for traffic that found no VIP: match services have the lowest
    /// priority, as in DPVS. No allocation; linear in the routes and match services.
    pub fn find_match(
        &self,
        proto: Proto,
        saddr: Addr,
        daddr: Addr,
        sport: u16,
        dport: u16,
        iif: u16,
    ) -> Option<&Arc<Service>> {
        if self.matches.is_empty() || self.match_locals.binary_search(&daddr).is_ok() {
            return None;
        }
        let oif = match &self.match_routes {
            Some(routes) => Some(routes.iter().find(|r| r.covers(daddr))?.port),
            None => None,
        };
        self.matches.iter().map(|&i| &self.services[i as usize]).find(|s| {
            s.key.proto == proto
                && s.matcher
                    .is_some_and(|m| m.matches(saddr, sport, daddr, dport, iif, oif))
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

    fn ip(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn snat_dest(id: u32, addr: &str) -> Dest {
        let mut d = Dest::new(DestId(id), ip(addr), 0);
        d.fwd = Forward::Snat;
        d
    }

    fn match_svc(proto: Proto, spec: MatchSpec, dests: &[&str]) -> Service {
        let mut s = Service::new_match(proto, spec, Arc::new(First));
        s.dests = dests.iter().enumerate().map(|(i, a)| snat_dest(i as u32, a)).collect();
        s
    }

    fn range(lo: &str, hi: &str) -> MatchRange {
        MatchRange {
            addrs: Some((ip(lo), ip(hi))),
            ports: None,
        }
    }

    #[test]
    fn match_services_take_ranges_in_order_and_never_by_key() {
        let inside = MatchSpec {
            src: range("198.18.16.0", "198.18.16.255"),
            ..MatchSpec::default()
        };
        // A narrower match listed second never wins for what the first covers.
        let web = MatchSpec {
            src: range("198.18.16.0", "198.18.16.127"),
            dst: MatchRange {
                addrs: None,
                ports: Some((443, 443)),
            },
            ..MatchSpec::default()
        };
        let udp_only = MatchSpec {
            src: range("198.18.17.0", "198.18.17.255"),
            ..MatchSpec::default()
        };
        let snap = Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![
                svc(80, Forward::Dr),
                match_svc(Proto::Tcp, inside, &["198.18.2.1"]),
                match_svc(Proto::Tcp, web, &["198.18.2.2"]),
                match_svc(Proto::Udp, udp_only, &["198.18.2.3"]),
            ],
        )
        .unwrap();
        assert!(snap.has_match_services());
        let far = ip("198.18.200.7");
        let idx = |p, s: &str, sp, d, dp| snap.find_match(p, ip(s), d, sp, dp, 0).map(|x| x.index);
        assert_eq!(idx(Proto::Tcp, "198.18.16.5", 40000, far, 443), Some(1));
        assert_eq!(idx(Proto::Tcp, "198.18.16.255", 1, far, 80), Some(1));
        assert_eq!(idx(Proto::Tcp, "198.18.15.255", 1, far, 80), None, "below the range");
        assert_eq!(idx(Proto::Tcp, "198.18.17.1", 1, far, 80), None, "udp-only range");
        assert_eq!(idx(Proto::Udp, "198.18.17.1", 1, far, 53), Some(3));
        assert_eq!(idx(Proto::Udp, "198.18.16.1", 1, far, 53), None);
        // An IPv6 packet never falls in an IPv4 range.
        assert_eq!(idx(Proto::Tcp, "198.18.16.5", 1, ip("2001:db8::1"), 80), None);
        // The source addresses (its destinations) are the balancer's own: never matched.
        assert_eq!(idx(Proto::Tcp, "198.18.16.5", 1, ip("198.18.2.3"), 80), None);
        // Match services are no VIPs and have no key to be found by.
        assert!(snap.vip(ip("0.0.0.0")).is_none());
        assert!(snap.find(Proto::Tcp, ip("0.0.0.0"), 0).is_none());
        assert_eq!(snap.services[1].key.to_string(), "tcp match (ipv4)");
        assert!(!snap.services[0].key.is_match());
    }

    #[test]
    fn match_ports_interfaces_and_routing() {
        let spec = MatchSpec {
            src: MatchRange {
                addrs: None,
                ports: Some((1024, 65535)),
            },
            oif: Some(1),
            iif: Some(0),
            ..MatchSpec::default()
        };
        let mut snap = Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![match_svc(Proto::Tcp, spec, &["198.18.2.1"])],
        )
        .unwrap();
        let (c, far, lan) = (ip("198.18.16.5"), ip("203.0.113.9"), ip("198.18.16.77"));
        // Routing unknown: a match naming an output interface takes nothing.
        assert!(snap.find_match(Proto::Tcp, c, far, 40000, 80, 0).is_none());
        snap.set_match_routing(
            vec![
                MatchRoute {
                    net: ip("198.18.16.0"),
                    prefix: 24,
                    port: 0,
                },
                MatchRoute {
                    net: ip("0.0.0.0"),
                    prefix: 0,
                    port: 1,
                },
            ],
            [ip("198.18.16.1"), ip("198.18.2.9")],
        );
        assert!(snap.find_match(Proto::Tcp, c, far, 40000, 80, 0).is_some());
        assert!(
            snap.find_match(Proto::Tcp, c, far, 1023, 80, 0).is_none(),
            "source port below 1024"
        );
        assert!(
            snap.find_match(Proto::Tcp, c, far, 40000, 80, 1).is_none(),
            "received on port 1"
        );
        assert!(
            snap.find_match(Proto::Tcp, c, lan, 40000, 80, 0).is_none(),
            "routed out of port 0"
        );
        assert!(
            snap.find_match(Proto::Tcp, c, ip("198.18.2.9"), 40000, 80, 0).is_none(),
            "an interface address"
        );
        // No route at all: nothing matches, whatever the match says.
        let mut open = Snapshot::build(
            2,
            1,
            Defence::default(),
            vec![match_svc(Proto::Tcp, MatchSpec::default(), &["198.18.2.1"])],
        )
        .unwrap();
        assert!(open.find_match(Proto::Tcp, c, far, 1, 2, 0).is_some());
        open.set_match_routing(
            vec![MatchRoute {
                net: ip("198.18.16.0"),
                prefix: 24,
                port: 0,
            }],
            [],
        );
        assert!(open.find_match(Proto::Tcp, c, far, 1, 2, 0).is_none());
        assert!(open.find_match(Proto::Tcp, c, lan, 1, 2, 0).is_some());
    }

    #[test]
    fn bad_match_services_are_refused_with_what_is_wrong() {
        let spec = MatchSpec {
            src: range("198.18.16.0", "198.18.16.255"),
            ..MatchSpec::default()
        };
        let why = |s: Service| {
            Snapshot::build(1, 1, Defence::default(), vec![s])
                .unwrap_err()
                .to_string()
        };

        let mut s = match_svc(Proto::Tcp, spec, &["198.18.2.1"]);
        s.fwd = Forward::Fnat;
        assert!(why(s).contains("forwards with snat, not fnat"));

        let mut s = match_svc(Proto::Tcp, spec, &["198.18.2.1"]);
        let mut d = snat_dest(0, "198.18.2.1");
        d.port = 80;
        s.dests = vec![d].into();
        let e = why(s);
        assert!(e.contains("198.18.2.1:80") && e.contains("port must be 0"), "{e}");

        let mut s = match_svc(Proto::Tcp, spec, &["198.18.2.1"]);
        s.local_addrs = vec![ip("198.18.2.5")].into();
        assert!(why(s).contains("local addresses are not used"));

        let back = MatchSpec {
            dst: range("198.18.30.9", "198.18.30.1"),
            ..MatchSpec::default()
        };
        let e = why(match_svc(Proto::Tcp, back, &["198.18.2.1"]));
        assert!(
            e.contains("destination range 198.18.30.9-198.18.30.1 runs backwards"),
            "{e}"
        );

        let v6 = MatchSpec {
            af: Af::V6,
            src: range("198.18.16.0", "198.18.16.255"),
            ..MatchSpec::default()
        };
        let mut s = Service::new_match(Proto::Tcp, v6, Arc::new(First));
        let mut d = Dest::new(DestId(0), ip("2001:db8::5"), 0);
        d.fwd = Forward::Snat;
        s.dests = vec![d].into();
        assert!(why(s).contains("not of the service's address family"));

        let mut s = match_svc(Proto::Tcp, spec, &["2001:db8::5"]);
        s.dests = vec![snat_dest(0, "2001:db8::5")].into();
        assert!(why(s).contains("mix address families"));

        let e = Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![
                match_svc(Proto::Tcp, spec, &["198.18.2.1"]),
                match_svc(Proto::Tcp, spec, &["198.18.2.2"]),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("is defined twice"), "{e}");
        // The same ranges over another protocol are another service.
        Snapshot::build(
            1,
            1,
            Defence::default(),
            vec![
                match_svc(Proto::Tcp, spec, &["198.18.2.1"]),
                match_svc(Proto::Udp, spec, &["198.18.2.2"]),
            ],
        )
        .unwrap();
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
