//! The TOML configuration: interfaces, neighbours, routes, defence switches, services and
//! their destinations, connection-table sizing. A bad file gets a one-line error naming the
//! file, the line and the key (or value) at fault.

use std::path::Path;
use std::sync::Arc;

use rvs_core::addr::{Addr, Proto};
use rvs_core::service::{
    Defence, Dest, DestId, Forward, Persistence, SchedFlags, Service, ServiceKey, Snapshot, Timeouts,
};
use serde::Deserialize;
use toml::Spanned;

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the error is not tied to a line).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// An IP address written as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub Addr);

impl<'de> Deserialize<'de> for Ip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Addr>()
            .map(Ip)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an IP address")))
    }
}

/// An address with a prefix length, `198.18.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The address.
    pub addr: Addr,
    /// Prefix length.
    pub len: u8,
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not an address with a prefix length (e.g. 198.18.0.1/24)"
            ))
        };
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: Addr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        if len > if addr.is_v4() { 32 } else { 128 } {
            return Err(bad());
        }
        Ok(Prefix { addr, len })
    }
}

/// A MAC address, `02:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("`{s}` is not a MAC address (e.g. 02:00:00:00:00:01)"));
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in mac.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(mac))
    }
}

/// `[defence]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenceCfg {
    /// DPVS's `defence_tcp_drop`.
    #[serde(default)]
    pub tcp_drop: bool,
    /// DPVS's `defence_udp_drop`.
    #[serde(default)]
    pub udp_drop: bool,
}

/// `[[interface]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceCfg {
    /// Name.
    pub name: String,
    /// MAC address.
    pub mac: Mac,
    /// Local addresses with prefixes (connected routes; FNAT local addresses among them).
    #[serde(default)]
    pub addresses: Vec<Prefix>,
    /// The DPDK device for `rvs run` (a PCI address or a vdev string).
    #[serde(default)]
    pub device: Option<String>,
}

/// `[[neighbor]]`: a static neighbour entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborCfg {
    /// IP address.
    pub ip: Ip,
    /// Its MAC address.
    pub mac: Mac,
}

/// `[[route]]`: a static route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    /// Destination prefix (`0.0.0.0/0` for the default route).
    pub prefix: Prefix,
    /// Next hop.
    pub via: Ip,
}

/// `[conn]`: connection-table sizing per lcore.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnCfg {
    /// Connections per lcore (the pool).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// log2 of the hash buckets.
    #[serde(default = "default_buckets")]
    pub buckets_log2: u8,
    /// Destination counter slots (the most destinations over all services).
    #[serde(default = "default_dest_slots")]
    pub dest_slots: usize,
    /// Persistence templates, all lcores together.
    #[serde(default = "default_templates")]
    pub templates: usize,
}

fn default_templates() -> usize {
    1 << 16
}

fn default_capacity() -> usize {
    1 << 18
}
fn default_buckets() -> u8 {
    18
}
fn default_dest_slots() -> usize {
    4096
}

impl Default for ConnCfg {
    fn default() -> Self {
        ConnCfg {
            capacity: default_capacity(),
            buckets_log2: default_buckets(),
            dest_slots: default_dest_slots(),
            templates: default_templates(),
        }
    }
}

/// `[pipeline]`: how the stage graph runs.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineCfg {
    /// Packets per vector (1..=256).
    #[serde(default = "default_vector")]
    pub vector: usize,
    /// Seed of every random choice (schedulers, timer jitter, FNAT sequence keys).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_vector() -> usize {
    rvs_core::stage::VECTOR_DEFAULT
}
fn default_seed() -> u64 {
    0x5256_5321
}

impl Default for PipelineCfg {
    fn default() -> Self {
        PipelineCfg {
            vector: default_vector(),
            seed: default_seed(),
        }
    }
}

/// `[dpdk]`: EAL and memory settings for `rvs run`. The defaults work on a machine with no
/// hugepages and no NIC (virtual devices only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkCfg {
    /// Worker lcores (the main lcore runs the first worker).
    #[serde(default = "one_usize")]
    pub workers: usize,
    /// Run without hugepages (`--no-huge`).
    #[serde(default = "yes")]
    pub no_huge: bool,
    /// Memory in MB (`-m`).
    #[serde(default = "default_mem")]
    pub memory_mb: u32,
    /// Mbufs in the packet pool.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Receive and transmit descriptors per queue.
    #[serde(default = "default_desc")]
    pub descriptors: u16,
    /// Sleep this many microseconds after this many empty polls (0: busy poll, the default).
    #[serde(default)]
    pub idle_sleep_us: u32,
    /// Empty polls before sleeping.
    #[serde(default = "default_idle_polls")]
    pub idle_polls: u32,
    /// More EAL arguments, verbatim (e.g. `["--lcores=(0-1)@0"]`).
    #[serde(default)]
    pub eal_args: Vec<String>,
}

fn one_usize() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_mem() -> u32 {
    512
}
fn default_mbufs() -> u32 {
    16383
}
fn default_desc() -> u16 {
    1024
}
fn default_idle_polls() -> u32 {
    64
}

impl Default for DpdkCfg {
    fn default() -> Self {
        DpdkCfg {
            workers: 1,
            no_huge: true,
            memory_mb: default_mem(),
            mbufs: default_mbufs(),
            descriptors: default_desc(),
            idle_sleep_us: 0,
            idle_polls: default_idle_polls(),
            eal_args: Vec::new(),
        }
    }
}

/// `protocol = "tcp" | "udp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtoCfg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `forward = "fnat" | "nat" | "dr" | "tunnel" | "snat"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardCfg {
    /// FNAT.
    Fnat,
    /// NAT.
    Nat,
    /// DR.
    Dr,
    /// TUNNEL.
    Tunnel,
    /// SNAT.
    Snat,
}

impl From<ForwardCfg> for Forward {
    fn from(f: ForwardCfg) -> Self {
        match f {
            ForwardCfg::Fnat => Forward::Fnat,
            ForwardCfg::Nat => Forward::Nat,
            ForwardCfg::Dr => Forward::Dr,
            ForwardCfg::Tunnel => Forward::Tunnel,
            ForwardCfg::Snat => Forward::Snat,
        }
    }
}

/// Per-service timeouts in seconds (any subset; the rest keep DPVS's defaults).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsCfg {
    /// ESTABLISHED.
    pub established: Option<u32>,
    /// SYN_SENT.
    pub syn_sent: Option<u32>,
    /// SYN_RECV.
    pub syn_recv: Option<u32>,
    /// FIN_WAIT.
    pub fin_wait: Option<u32>,
    /// TIME_WAIT.
    pub time_wait: Option<u32>,
    /// CLOSE.
    pub close: Option<u32>,
    /// CLOSE_WAIT.
    pub close_wait: Option<u32>,
    /// LAST_ACK.
    pub last_ack: Option<u32>,
    /// UDP.
    pub udp: Option<u32>,
    /// ICMP.
    pub icmp: Option<u32>,
}

impl TimeoutsCfg {
    fn apply(&self, mut t: Timeouts) -> Timeouts {
        let set = |v: &mut u32, o: Option<u32>| {
            if let Some(x) = o {
                *v = x;
            }
        };
        set(&mut t.established, self.established);
        set(&mut t.syn_sent, self.syn_sent);
        set(&mut t.syn_recv, self.syn_recv);
        set(&mut t.fin_wait, self.fin_wait);
        set(&mut t.time_wait, self.time_wait);
        set(&mut t.close, self.close);
        set(&mut t.close_wait, self.close_wait);
        set(&mut t.last_ack, self.last_ack);
        set(&mut t.udp, self.udp);
        set(&mut t.icmp, self.icmp);
        t
    }
}

/// `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCfg {
    /// tcp or udp.
    pub protocol: ProtoCfg,
    /// Virtual address.
    pub vip: Ip,
    /// Virtual port (0: every port).
    pub port: u16,
    /// Scheduler name (ipvsadm's); default wlc as ipvsadm and DPVS.
    #[serde(default = "default_sched")]
    pub scheduler: Spanned<String>,
    /// Scheduler options (`mh-table-size`, `lblc-cache-entries`, `lblc-expire-secs`).
    #[serde(default)]
    pub scheduler_options: Option<Spanned<std::collections::BTreeMap<String, toml::Value>>>,
    /// Scheduler flags (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`, `quic-cid`).
    #[serde(default)]
    pub flags: Vec<Spanned<String>>,
    /// Forwarding mode; default dr as ipvsadm.
    #[serde(default = "default_forward")]
    pub forward: ForwardCfg,
    /// FNAT/SNAT local addresses.
    #[serde(default)]
    pub local_addresses: Vec<Ip>,
    /// Persistence timeout in seconds, 0 = off.
    #[serde(default)]
    pub persistence: u32,
    /// Persistence netmask as a prefix length (default 32 / 128).
    #[serde(default)]
    pub netmask: Option<u8>,
    /// SYN proxy.
    #[serde(default)]
    pub synproxy: bool,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsCfg,
    /// Destinations.
    #[serde(default)]
    pub dest: Vec<Spanned<DestCfg>>,
}

fn default_sched() -> Spanned<String> {
    Spanned::new(0..0, "wlc".to_string())
}
fn default_forward() -> ForwardCfg {
    ForwardCfg::Dr
}

/// `[[service.dest]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestCfg {
    /// Real server address.
    pub ip: Ip,
    /// Real server port (default: the service port).
    pub port: Option<u16>,
    /// Weight 0..=65535 (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Upper connection threshold, 0 = none.
    #[serde(default)]
    pub max_conn: u32,
    /// Lower connection threshold, 0 = none.
    #[serde(default)]
    pub min_conn: u32,
    /// Forwarding mode (default: the service's).
    pub forward: Option<ForwardCfg>,
}

fn one() -> u32 {
    1
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[defence]`.
    #[serde(default)]
    pub defence: DefenceCfg,
    /// `[pipeline]`.
    #[serde(default)]
    pub pipeline: PipelineCfg,
    /// `[conn]`.
    #[serde(default)]
    pub conn: ConnCfg,
    /// `[dpdk]`.
    #[serde(default)]
    pub dpdk: DpdkCfg,
    /// `[[interface]]`.
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceCfg>,
    /// `[[neighbor]]`.
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborCfg>,
    /// `[[route]]`.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteCfg>,
    /// `[[service]]`.
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<ServiceCfg>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

impl Config {
    /// Parse `text` (from `file`, for messages) and check it.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            msg: e.message().to_string(),
        })?;
        let err = |offset: usize, msg: String| ConfigError {
            file: file.to_string(),
            line: line_of(text, offset),
            msg,
        };
        if !(1..=rvs_core::stage::VECTOR_MAX).contains(&cfg.pipeline.vector) {
            return Err(err(
                0,
                format!("pipeline.vector must be 1..={}", rvs_core::stage::VECTOR_MAX),
            ));
        }
        if cfg.dpdk.workers == 0 || cfg.dpdk.workers > 64 {
            return Err(err(0, "dpdk.workers must be 1..=64".into()));
        }
        if cfg.conn.capacity == 0 || cfg.conn.buckets_log2 > 30 {
            return Err(err(0, "conn.capacity must be > 0 and conn.buckets_log2 <= 30".into()));
        }
        // Build once to surface semantic errors with their lines.
        cfg.snapshot(1, 1).map_err(|(off, msg)| err(off, msg))?;
        Ok(cfg)
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            msg: format!("cannot read: {e}"),
        })?;
        Config::parse(&file, &text)
    }

    /// Build the service snapshot. Errors carry the byte offset of the service at fault.
    pub fn snapshot(&self, generation: u64, lcores: u16) -> Result<Snapshot, (usize, String)> {
        let mut services = Vec::with_capacity(self.services.len());
        let mut next_id = 0u32;
        for s in &self.services {
            let off = s.span().start;
            let sc = s.get_ref();
            let proto = match sc.protocol {
                ProtoCfg::Tcp => Proto::Tcp,
                ProtoCfg::Udp => Proto::Udp,
            };
            let key = ServiceKey {
                proto,
                vip: sc.vip.0,
                port: sc.port,
            };
            let name = sc.scheduler.get_ref().as_str();
            let mut opts = rvs_schedulers::SchedOptions::default();
            if let Some(so) = &sc.scheduler_options {
                for (k, v) in so.get_ref() {
                    let text = match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    opts.set(k, &text)
                        .map_err(|e| (so.span().start.max(off), format!("service {key}: {e}")))?;
                }
            }
            let sched = rvs_schedulers::factory_with(name, &opts).map_err(|e| {
                let msg = match e {
                    rvs_schedulers::RegistryError::Unknown { .. } => {
                        format!(
                            "service {key}: unknown scheduler `{name}` (known: {})",
                            rvs_schedulers::NAMES.join(", ")
                        )
                    }
                    other => format!("service {key}: {other}"),
                };
                (sc.scheduler.span().start.max(off), msg)
            })?;
            let fwd: Forward = sc.forward.into();
            let mut svc = Service::new(key, fwd, Arc::clone(&sched));
            let mut flags = 0u32;
            for f in &sc.flags {
                flags |= SchedFlags::from_name(f.get_ref()).ok_or_else(|| {
                    (
                        f.span().start,
                        format!(
                            "service {key}: unknown scheduler flag `{}` (known: sh-fallback, sh-port, mh-fallback, mh-port, quic-cid)",
                            f.get_ref()
                        ),
                    )
                })?;
            }
            svc.sched_flags = SchedFlags(flags);
            if sc.persistence > 0 {
                let m = sc.netmask;
                svc.persistence = Some(Persistence {
                    timeout_secs: sc.persistence,
                    netmask_v4: m.unwrap_or(32).min(32),
                    netmask_v6: m.unwrap_or(128).min(128),
                });
            }
            svc.local_addrs = sc.local_addresses.iter().map(|a| a.0).collect();
            svc.synproxy = sc.synproxy;
            svc.timeouts = sc.timeouts.apply(Timeouts::DPVS);
            let mut dests = Vec::with_capacity(sc.dest.len());
            for d in &sc.dest {
                let dc = d.get_ref();
                if next_id as usize >= self.conn.dest_slots {
                    return Err((
                        d.span().start,
                        format!("more destinations than conn.dest_slots = {}", self.conn.dest_slots),
                    ));
                }
                dests.push(Dest {
                    id: DestId(next_id),
                    addr: dc.ip.0,
                    port: dc.port.unwrap_or(sc.port),
                    weight: dc.weight,
                    fwd: dc.forward.map_or(fwd, Forward::from),
                    max_conn: dc.max_conn,
                    min_conn: dc.min_conn,
                    flags: Default::default(),
                });
                next_id += 1;
            }
            svc.dests = dests.into_boxed_slice();
            services.push((off, svc));
        }
        let offsets: Vec<usize> = services.iter().map(|(o, _)| *o).collect();
        let defence = Defence {
            tcp_drop: self.defence.tcp_drop,
            udp_drop: self.defence.udp_drop,
        };
        Snapshot::build(
            generation,
            lcores,
            defence,
            services.into_iter().map(|(_, s)| s).collect(),
        )
        .map_err(|e| {
            let off = match &e {
                rvs_core::service::ServiceError::Duplicate(k)
                | rvs_core::service::ServiceError::NoLocalAddress(k)
                | rvs_core::service::ServiceError::Weight { svc: k, .. }
                | rvs_core::service::ServiceError::PortMismatch { svc: k, .. }
                | rvs_core::service::ServiceError::Thresholds { svc: k, .. }
                | rvs_core::service::ServiceError::DuplicateDest { svc: k, .. }
                | rvs_core::service::ServiceError::Family { svc: k, .. }
                | rvs_core::service::ServiceError::Sched { svc: k, .. } => {
                    let idx = self.services.iter().rposition(|s| {
                        let sc = s.get_ref();
                        sc.vip.0 == k.vip && sc.port == k.port
                    });
                    idx.and_then(|i| offsets.get(i).copied()).unwrap_or(0)
                }
            };
            (off, e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[defence]
tcp_drop = true

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]
persistence = 0

[[service.dest]]
ip = "198.18.1.11"
port = 8080
weight = 1
max_conn = 0
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse("x.toml", GOOD).unwrap();
        assert!(c.defence.tcp_drop);
        let snap = c.snapshot(1, 1).unwrap();
        let svc = snap.find(Proto::Tcp, "198.18.0.100".parse().unwrap(), 80).unwrap();
        assert_eq!(svc.dests[0].port, 8080);
        assert_eq!(svc.dests[0].fwd, Forward::Fnat);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let bad = GOOD.replace("weight = 1", "wieght = 1");
        let e = Config::parse("x.toml", &bad).unwrap_err();
        let line = bad.lines().position(|l| l.contains("wieght")).unwrap() + 1;
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().starts_with(&format!("x.toml:{line}:")), "{e}");
        assert!(e.msg.contains("wieght"), "{e}");
    }

    #[test]
    fn bad_values_and_semantics_are_located() {
        let bad = GOOD.replace("\"198.18.1.11\"\nport", "\"198.18.1.300\"\nport");
        let e = Config::parse("x.toml", &bad).unwrap_err();
        assert!(e.msg.contains("198.18.1.300"), "{e}");
        assert!(e.line > 20, "{e}");

        let bad = GOOD.replace("scheduler = \"rr\"", "scheduler = \"nope\"");
        let e = Config::parse("x.toml", &bad).unwrap_err();
        assert!(
            e.msg.contains("unknown scheduler `nope`") && e.msg.contains("wlc"),
            "{e}"
        );
        let line = bad.lines().position(|l| l.contains("nope")).unwrap() + 1;
        assert_eq!(e.line, line);

        let bad = GOOD.replace("forward = \"fnat\"", "forward = \"dr\"");
        let e = Config::parse("x.toml", &bad).unwrap_err();
        assert!(e.msg.contains("must equal the virtual port"), "{e}");
        let line = bad.lines().position(|l| l.contains("[[service]]")).unwrap() + 1;
        assert!(e.line >= line, "{e}");
    }
}
