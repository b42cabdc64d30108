//! The TOML configuration: interfaces, neighbours, routes, defence switches, services and
//! their destinations, connection-table sizing. A bad file gets a one-line error naming the
//! file, the line and the key (or value) at fault.
//!
//! **SNAT match services** (DPVS's `ipvsadm -A -H src-range=...,dst-range=...,oif=... -s rr`
//! plus `-a -H ... -r SNAT_IP:0 -J`): a `[[service]]` with a `match` table instead of `vip`
//! and `port`, `forward = "snat"`, and as destinations the source addresses internal hosts'
//! flows get (the balancer's own addresses; their ports come from each lcore's sa_pool):
//!
//! ```toml
//! [[service]]
//! protocol = "tcp"
//! forward = "snat"
//! scheduler = "rr"
//! match = { src_range = "198.18.16.0-198.18.16.255", oif = "wan" }
//!
//! [[service.dest]]
//! ip = "198.18.2.1"
//! ```
//!
//! `src_range` and `dst_range` (each optional: absent matches anything) are written as DPVS
//! writes them, `ADDR[-ADDR][:PORT[-PORT]]`, IPv6 in brackets when ports follow
//! (`[2001:db8::1]-[2001:db8::ff]:1024-65535`), a port range alone as `:PORT[-PORT]`, or as a
//! prefix `198.18.16.0/24[:PORT[-PORT]]`. `iif` and `oif` name an `[[interface]]`: the port
//! the packet came in on, and the port the route to its destination leaves by. Match services
//! take only traffic to no VIP, in the order written, the first match winning; the SNAT
//! addresses and interface addresses are never matched as destinations, and nor is a
//! destination with no route (as DPVS, which matches after its route lookup).
//!
//! **ICMP services** (DPVS's `icmp_conn_sched`): `protocol = "icmp"` on an IPv4 VIP or
//! `"icmpv6"` on an IPv6 one, `port` left out or 0 (echo has no port; requests are matched by
//! their identifier), any scheduler and mode (FNAT and SNAT give each flow a local port as its
//! identifier), no synproxy. Echo requests to such a VIP are scheduled to its real servers;
//! without one, the balancer answers echo to the VIP itself. A match service with
//! `protocol = "icmp"` carries internal hosts' echo out through SNAT.

use std::path::Path;
use std::sync::Arc;

use rvs_core::addr::{Addr, Af, Proto};
use rvs_core::service::{
    Defence, Dest, DestId, Forward, MatchRange, MatchRoute, MatchSpec, Persistence, SchedFlags, Service, ServiceKey,
    Snapshot, Timeouts,
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
        rvs_core::wire::ethernet::parse_mac(&s)
            .map(Mac)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a MAC address (e.g. 02:00:00:00:00:01)")))
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
    /// The largest IP datagram sent on it (DPVS's per-device `mtu`; default 1500): what xmit
    /// measures tunnelled packets, TOA and UOA against. It sets rvs's L2 table only; the
    /// device's own MTU is left to its defaults.
    #[serde(default)]
    pub mtu: Option<Mtu>,
    /// `host_tap = "NAME"`: `rvs run` creates a kernel TAP interface of that name (DPDK's
    /// `net_tap`, with this interface's `mac`) and passes it the host-path packets that
    /// came in on this interface (traffic to the balancer's own addresses that is not
    /// load-balanced, ARP/ND it does not answer itself, other protocols), and sends what
    /// the kernel writes to it out of this interface: DPVS's KNI, so the host's own SSH,
    /// BGP and monitoring work over the DPDK ports. rvs configures nothing on the kernel
    /// side: the operator gives the TAP its addresses and routes and sets it up. A Linux
    /// interface name: 1 to 15 bytes, no `/`, whitespace, `,` or `=` (the last two would
    /// break the device arguments). Absent: host-path packets are counted and freed.
    #[serde(default)]
    pub host_tap: Option<TapName>,
}

/// A kernel interface name for [`InterfaceCfg::host_tap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapName(pub String);

impl TapName {
    /// Why `s` cannot name the TAP interface, if it cannot (IFNAMSIZ is 16 with the NUL).
    pub fn check(s: &str) -> Result<(), String> {
        if s.is_empty() || s.len() > 15 {
            return Err(format!(
                "host_tap `{s}` must be 1 to 15 bytes long (a Linux interface name)"
            ));
        }
        if s == "." || s == ".." {
            return Err(format!("host_tap `{s}` is not a valid interface name"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| *c == '/' || c.is_whitespace() || *c == ',' || *c == '=')
        {
            return Err(format!(
                "host_tap `{s}` contains {c:?}: an interface name has no `/`, whitespace, `,` or `=`"
            ));
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for TapName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TapName::check(&s).map_err(serde::de::Error::custom)?;
        Ok(TapName(s))
    }
}

/// An interface MTU: 1280 (IPv6's minimum, RFC 8200 section 5) to 9216 (jumbo frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtu(pub u16);

impl Mtu {
    /// The range accepted.
    pub const RANGE: std::ops::RangeInclusive<u16> = 1280..=9216;
}

impl<'de> Deserialize<'de> for Mtu {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        u16::try_from(v)
            .ok()
            .filter(|m| Mtu::RANGE.contains(m))
            .map(Mtu)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "mtu {v} is outside {}..={} (IPv6's minimum to jumbo frames)",
                    Mtu::RANGE.start(),
                    Mtu::RANGE.end()
                ))
            })
    }
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

/// `protocol = "tcp" | "udp" | "icmp" | "icmpv6"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtoCfg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo (an IPv4 VIP, port 0 or absent; DPVS's `icmp_conn_sched`).
    Icmp,
    /// ICMPv6 echo (an IPv6 VIP, port 0 or absent).
    Icmpv6,
}

impl From<ProtoCfg> for Proto {
    fn from(p: ProtoCfg) -> Self {
        match p {
            ProtoCfg::Tcp => Proto::Tcp,
            ProtoCfg::Udp => Proto::Udp,
            ProtoCfg::Icmp => Proto::Icmp,
            ProtoCfg::Icmpv6 => Proto::Icmp6,
        }
    }
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

/// `match = { src_range, dst_range, iif, oif }` of a SNAT match service (DPVS's `-H`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCfg {
    /// Source address (and port) range; absent: any.
    #[serde(default)]
    pub src_range: Option<Spanned<String>>,
    /// Destination address (and port) range; absent: any.
    #[serde(default)]
    pub dst_range: Option<Spanned<String>>,
    /// Interface the packet must arrive on.
    #[serde(default)]
    pub iif: Option<Spanned<String>>,
    /// Interface the route to the destination must leave by.
    #[serde(default)]
    pub oif: Option<Spanned<String>>,
}

/// `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCfg {
    /// tcp, udp, icmp or icmpv6.
    pub protocol: ProtoCfg,
    /// Virtual address (required, unless `match` is given; then it is `::` and unused).
    #[serde(default = "no_vip")]
    pub vip: Ip,
    /// Virtual port (0: every port; required unless `match` is given).
    #[serde(default)]
    pub port: u16,
    /// A SNAT match service: which packets it takes, instead of `vip` and `port`.
    #[serde(default, rename = "match")]
    pub matcher: Option<Spanned<MatchCfg>>,
    /// Scheduler name (ipvsadm's); default wlc as ipvsadm and DPVS.
    #[serde(default = "default_sched")]
    pub scheduler: Spanned<String>,
    /// For `scheduler = "wasm:PATH"`: the native scheduler that takes a pick over when the
    /// plugin traps, runs out of time or answers badly (default wlc).
    #[serde(default)]
    pub fallback: Option<Spanned<String>>,
    /// For `scheduler = "wasm:PATH"`: an opaque configuration handed to the plugin's
    /// `configure` export at load time.
    #[serde(default)]
    pub plugin_config: Option<String>,
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

fn no_vip() -> Ip {
    Ip(Addr::UNSPECIFIED)
}

/// Which of `vip`, `port` and `match` each `[[service]]` wrote (serde defaults hide it).
#[derive(Debug, Deserialize)]
struct Written {
    #[serde(default, rename = "service")]
    services: Vec<Spanned<WrittenService>>,
}

/// The rules of an ICMP service (DPVS's `icmp_conn_sched` looks services up with port 0):
/// ICMP over an IPv4 VIP, ICMPv6 over an IPv6 one, port 0, no synproxy.
fn check_icmp(sc: &ServiceCfg, proto: Proto, match_af: Option<Af>) -> Result<(), String> {
    let want = match proto {
        Proto::Icmp => Af::V4,
        Proto::Icmp6 => Af::V6,
        Proto::Tcp | Proto::Udp => return Ok(()),
    };
    let name = proto.name();
    let af = match_af.unwrap_or(if sc.vip.0.is_v4() { Af::V4 } else { Af::V6 });
    if af != want {
        return Err(format!(
            "an {name} service needs an {} address (use protocol = \"{}\")",
            if want == Af::V4 { "IPv4" } else { "IPv6" },
            if want == Af::V4 { "icmpv6" } else { "icmp" }
        ));
    }
    if sc.port != 0 || sc.dest.iter().any(|d| d.get_ref().port.is_some_and(|p| p != 0)) {
        return Err(format!(
            "an {name} service has no port: leave `port` out or write 0 (echo is matched by its identifier)"
        ));
    }
    if sc.synproxy {
        return Err(format!("synproxy is for tcp services, not {name}"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct WrittenService {
    #[serde(default)]
    protocol: Option<toml::Value>,
    vip: Option<toml::Value>,
    port: Option<toml::Value>,
    #[serde(rename = "match")]
    matcher: Option<toml::Value>,
}

impl WrittenService {
    /// An ICMP service, whose port may be left out.
    fn icmp(&self) -> bool {
        matches!(self.protocol.as_ref().and_then(|p| p.as_str()), Some("icmp" | "icmpv6"))
    }
}

/// A range as DPVS writes it: `ADDR[-ADDR][:PORT[-PORT]]`, `[V6][-[V6]][:PORT[-PORT]]`, a bare
/// IPv6 range without ports, `:PORT[-PORT]` alone, or `PREFIX/LEN[:PORT[-PORT]]`.
pub fn parse_match_range(s: &str) -> Result<MatchRange, String> {
    let bad = || {
        format!(
            "`{s}` is not an address range (e.g. 198.18.16.0-198.18.16.255, 198.18.16.0/24, \
             198.18.16.1:1024-65535, :53, [2001:db8::1]-[2001:db8::ff]:80)"
        )
    };
    let t = s.trim();
    // Split the address part from the port part.
    let (addr_part, port_part) = if t.starts_with('[') {
        let end = t.rfind(']').ok_or_else(bad)?;
        let rest = &t[end + 1..];
        match rest.strip_prefix(':') {
            Some(p) => (&t[..end + 1], Some(p)),
            None if rest.is_empty() => (t, None),
            None => return Err(bad()),
        }
    } else if t.matches(':').count() > 1 {
        (t, None) // bare IPv6: no ports
    } else {
        match t.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        }
    };
    let one = |a: &str| -> Result<Addr, String> {
        let a = a.trim();
        let a = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
        a.parse::<Addr>().map_err(|_| bad())
    };
    let addrs = if addr_part.is_empty() {
        if port_part.is_none() {
            return Err(bad());
        }
        None
    } else if let Some((a, len)) = addr_part.split_once('/') {
        let a = one(a)?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let bits = if a.is_v4() { 32 } else { 128 };
        if len > bits {
            return Err(bad());
        }
        let lo = a.masked(len);
        let host = if len == bits {
            0
        } else {
            u128::MAX >> (128 - (bits - len) as u32)
        };
        Some((lo, Addr(lo.0 | host)))
    } else {
        match addr_part.split_once('-') {
            Some((lo, hi)) => Some((one(lo)?, one(hi)?)),
            None => {
                let a = one(addr_part)?;
                Some((a, a))
            }
        }
    };
    let ports = match port_part {
        None => None,
        Some(p) => {
            let port = |x: &str| x.trim().parse::<u16>().map_err(|_| bad());
            Some(match p.split_once('-') {
                Some((lo, hi)) => (port(lo)?, port(hi)?),
                None => {
                    let x = port(p)?;
                    (x, x)
                }
            })
        }
    };
    Ok(MatchRange { addrs, ports })
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

/// `uoa_mode = "opp" | "ipo"` (DPVS's `uoa_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UoaModeCfg {
    /// DPVS's private protocol 248 in front of the UDP header (DPVS's default).
    #[default]
    Opp,
    /// An IPv4 option (IPv4 real servers only).
    Ipo,
}

/// `[udp]`: what DPVS keeps under `ipvs_defs { udp { ... } }` -- how FNAT hands a UDP
/// client's address to the real server (UOA, `rvs_xmit::toa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpCfg {
    /// DPVS's `uoa_mode`: `"opp"` (default) or `"ipo"`.
    #[serde(default)]
    pub uoa_mode: UoaModeCfg,
    /// DPVS's `uoa_max_trail`: how many datagrams of a connection carry UOA (0..=255,
    /// default 3; 0 turns UOA off).
    #[serde(default = "default_uoa_max_trail")]
    pub uoa_max_trail: u8,
}

fn default_uoa_max_trail() -> u8 {
    3
}

impl Default for UdpCfg {
    fn default() -> Self {
        UdpCfg {
            uoa_mode: UoaModeCfg::default(),
            uoa_max_trail: default_uoa_max_trail(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[defence]`.
    #[serde(default)]
    pub defence: DefenceCfg,
    /// `[udp]`: UOA mode and trail.
    #[serde(default)]
    pub udp: UdpCfg,
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
    /// `[control]`: the run-time control socket of `rvs run` (`rvsctl`).
    #[serde(default)]
    pub control: ControlCfg,
    /// The file and text the configuration came from (for locating errors found later,
    /// and for resolving relative plugin paths).
    #[serde(skip)]
    pub origin: Option<(String, String)>,
}

/// `[control]`: how `rvsctl` reaches a running `rvs run`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlCfg {
    /// Path of the Unix control socket; default `/run/rvs/<file-prefix>.sock` when
    /// `/run/rvs` can be made, else `<temp dir>/rvs-<file-prefix>.sock`.
    pub socket: Option<String>,
}

/// Destination ids kept stable over a run's snapshots: the same (service, destination
/// address, port) always gets the same [`DestId`] (the index of its counters in every
/// lcore's load table), a new destination gets a slot never used before in the run. A
/// removed destination's slot is not reused, since connections made to it may still hold
/// it; so a run can see at most `conn.dest_slots` distinct destinations, and a reload that
/// needs more is refused with an error saying so.
#[derive(Debug, Clone, Default)]
pub struct DestIds {
    ids: std::collections::HashMap<(String, Addr, u16), DestId>,
    next: u32,
    slots: usize,
}

impl DestIds {
    /// No id given yet; at most `slots` ids (the load tables' size).
    pub fn new(slots: usize) -> Self {
        DestIds {
            slots,
            ..DestIds::default()
        }
    }
    /// Slots given out so far in this run.
    pub fn used(&self) -> usize {
        self.next as usize
    }
    /// The id of `addr:port` in the service named `svc` (its key, and its match for a match
    /// service), giving a fresh slot to a destination not seen before.
    pub fn assign(&mut self, svc: &str, addr: Addr, port: u16) -> Result<DestId, String> {
        if let Some(id) = self.ids.get(&(svc.to_string(), addr, port)) {
            return Ok(*id);
        }
        if self.next as usize >= self.slots {
            return Err(format!(
                "more destinations than conn.dest_slots = {} ({} slots given out in this run: a removed destination's slot is not reused until restart)",
                self.slots, self.next
            ));
        }
        let id = DestId(self.next);
        self.ids.insert((svc.to_string(), addr, port), id);
        self.next += 1;
        Ok(id)
    }
}

/// How a snapshot build treats `wasm:` schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugins {
    /// Compile and load them (needs the plugin host; in `rvs run`, after the EAL started).
    Load,
    /// Only check that the module file can be read and the fallback is known; the service
    /// gets its fallback scheduler. Used to check a file before anything starts.
    Check,
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
        let written: Written =
            toml::from_str(text).map_err(|e| err(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        for w in &written.services {
            let (off, ws) = (w.span().start, w.get_ref());
            match (&ws.matcher, &ws.vip, &ws.port) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(err(
                        off,
                        "a service with `match` (snat) takes no `vip` or `port`: it matches by ranges".into(),
                    ));
                }
                (None, None, _) => return Err(err(off, "missing field `vip` (or a `match` table for snat)".into())),
                (None, _, None) if !ws.icmp() => return Err(err(off, "missing field `port`".into())),
                _ => {}
            }
        }
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
        let mut cfg = cfg;
        cfg.origin = Some((file.to_string(), text.to_string()));
        // Build once to surface semantic errors with their lines (plugins checked, not loaded).
        cfg.build_snapshot(1, 1, Plugins::Check)
            .map_err(|(off, msg)| err(off, msg))?;
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

    /// Build the service snapshot, loading plugins. Errors carry the byte offset of the
    /// service at fault (see [`Config::locate`]).
    pub fn snapshot(&self, generation: u64, lcores: u16) -> Result<Snapshot, (usize, String)> {
        self.build_snapshot(generation, lcores, Plugins::Load)
    }

    /// An error from [`Config::snapshot`] as a located [`ConfigError`].
    pub fn locate(&self, (offset, msg): (usize, String)) -> ConfigError {
        match &self.origin {
            Some((file, text)) => ConfigError {
                file: file.clone(),
                line: line_of(text, offset),
                msg,
            },
            None => ConfigError {
                file: "<config>".into(),
                line: 0,
                msg,
            },
        }
    }

    fn plugin_path(&self, p: &str) -> std::path::PathBuf {
        let path = Path::new(p);
        match (&self.origin, path.is_relative()) {
            (Some((file, _)), true) => Path::new(file).parent().map_or(path.to_path_buf(), |d| d.join(path)),
            _ => path.to_path_buf(),
        }
    }

    /// Build the service snapshot, treating plugins as `plugins` says.
    pub fn build_snapshot(&self, generation: u64, lcores: u16, plugins: Plugins) -> Result<Snapshot, (usize, String)> {
        self.build_snapshot_ids(generation, lcores, plugins, &mut DestIds::new(self.conn.dest_slots))
    }

    /// Build the next snapshot of a run (plugins loaded), keeping the destination ids `ids`
    /// gave before and giving new destinations unused slots ([`DestIds`]). `ids` changes only
    /// when the build succeeds.
    pub fn snapshot_with_ids(
        &self,
        generation: u64,
        lcores: u16,
        ids: &mut DestIds,
    ) -> Result<Snapshot, (usize, String)> {
        let mut next = ids.clone();
        let snap = self.build_snapshot_ids(generation, lcores, Plugins::Load, &mut next)?;
        *ids = next;
        Ok(snap)
    }

    fn build_snapshot_ids(
        &self,
        generation: u64,
        lcores: u16,
        plugins: Plugins,
        ids: &mut DestIds,
    ) -> Result<Snapshot, (usize, String)> {
        let mut services = Vec::with_capacity(self.services.len());
        for s in &self.services {
            let off = s.span().start;
            let sc = s.get_ref();
            let proto = Proto::from(sc.protocol);
            let spec = self.match_spec(sc, off)?;
            check_icmp(sc, proto, spec.map(|m| m.af)).map_err(|e| (off, e))?;
            let key = match spec {
                Some(m) => ServiceKey::for_match(proto, m.af),
                None => ServiceKey {
                    proto,
                    vip: sc.vip.0,
                    port: sc.port,
                },
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
            let native = |name: &str, at: usize| {
                rvs_schedulers::factory_with(name, &opts).map_err(|e| {
                    let msg = match e {
                        rvs_schedulers::RegistryError::Unknown { .. } => format!(
                            "service {key}: unknown scheduler `{name}` (known: {}, or wasm:PATH)",
                            rvs_schedulers::NAMES.join(", ")
                        ),
                        other => format!("service {key}: {other}"),
                    };
                    (at.max(off), msg)
                })
            };
            let sched_at = sc.scheduler.span().start;
            let sched = match name.strip_prefix("wasm:") {
                None => {
                    if sc.fallback.is_some() || sc.plugin_config.is_some() {
                        return Err((
                            sched_at.max(off),
                            format!("service {key}: fallback and plugin_config apply to wasm:PATH schedulers only"),
                        ));
                    }
                    native(name, sched_at)?
                }
                Some(path) => {
                    let (fb_name, fb_at) = match &sc.fallback {
                        Some(f) => (f.get_ref().as_str(), f.span().start),
                        None => ("wlc", sched_at),
                    };
                    let fallback = native(fb_name, fb_at)?;
                    let file = self.plugin_path(path);
                    match plugins {
                        Plugins::Check => {
                            std::fs::metadata(&file).map_err(|e| {
                                (
                                    sched_at.max(off),
                                    format!("service {key}: plugin {}: {e}", file.display()),
                                )
                            })?;
                            fallback
                        }
                        Plugins::Load => {
                            let blob = sc.plugin_config.as_deref().unwrap_or("").as_bytes();
                            crate::plugins::load(&file, blob, fallback)
                                .map_err(|e| (sched_at.max(off), format!("service {key}: {e}")))?
                        }
                    }
                }
            };
            let fwd: Forward = sc.forward.into();
            let mut svc = Service::new(key, fwd, Arc::clone(&sched));
            svc.matcher = spec;
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
                let port = dc.port.unwrap_or(sc.port);
                let name = match spec {
                    Some(m) => format!("{key} {m}"),
                    None => key.to_string(),
                };
                let id = ids.assign(&name, dc.ip.0, port).map_err(|e| (d.span().start, e))?;
                dests.push(Dest {
                    id,
                    addr: dc.ip.0,
                    port: dc.port.unwrap_or(sc.port),
                    weight: dc.weight,
                    fwd: dc.forward.map_or(fwd, Forward::from),
                    max_conn: dc.max_conn,
                    min_conn: dc.min_conn,
                    flags: Default::default(),
                });
            }
            svc.dests = dests.into_boxed_slice();
            if let Some(m) = spec {
                // Match services all show as `PROTO match (FAMILY)`: check each here, where
                // its line is known, and refuse a second one with the same match.
                svc.prepare().map_err(|e| (off, e.to_string()))?;
                if services
                    .iter()
                    .any(|(_, o): &(usize, Service)| o.key == key && o.matcher == Some(m))
                {
                    return Err((off, format!("service {key} {m}: is defined twice")));
                }
            }
            services.push((off, svc));
        }
        let offsets: Vec<usize> = services.iter().map(|(o, _)| *o).collect();
        let defence = Defence {
            tcp_drop: self.defence.tcp_drop,
            udp_drop: self.defence.udp_drop,
        };
        let mut snap = Snapshot::build(
            generation,
            lcores,
            defence,
            services.into_iter().map(|(_, s)| s).collect(),
        )
        .map_err(|e| {
            // Every service error names its service key: locate the (last) service with it.
            let msg = e.to_string();
            let keys: Vec<String> = self
                .services
                .iter()
                .map(|s| {
                    let sc = s.get_ref();
                    let proto = Proto::from(sc.protocol);
                    ServiceKey {
                        proto,
                        vip: sc.vip.0,
                        port: sc.port,
                    }
                    .to_string()
                })
                .collect();
            let off = keys
                .iter()
                .rposition(|k| {
                    msg.contains(&format!("{k}:")) || msg.contains(&format!("{k} ")) || msg.ends_with(k.as_str())
                })
                .and_then(|i| offsets.get(i).copied())
                .unwrap_or(0);
            (off, e.to_string())
        })?;
        if snap.has_match_services() {
            // Match services see the routes xmit uses (output interface, no route, local).
            let l2 = crate::l2::build(self).map_err(|e| (0, format!("interfaces and routes: {e:#}")))?;
            let routes = l2
                .routes()
                .iter()
                .map(|r| MatchRoute {
                    net: r.dst,
                    prefix: r.prefix,
                    port: r.port,
                })
                .collect();
            let addrs = self.interfaces.iter().flat_map(|i| i.addresses.iter().map(|p| p.addr));
            snap.set_match_routing(routes, addrs);
        }
        Ok(snap)
    }

    /// The match of a SNAT match service (`None` for a VIP service), its ranges parsed and
    /// its interfaces resolved to ports; errors located at the value at fault.
    fn match_spec(&self, sc: &ServiceCfg, off: usize) -> Result<Option<MatchSpec>, (usize, String)> {
        let Some(m) = &sc.matcher else { return Ok(None) };
        let at = m.span().start.max(off);
        let mc = m.get_ref();
        if sc.forward != ForwardCfg::Snat {
            return Err((
                at,
                "a service with `match` forwards with snat: add forward = \"snat\"".into(),
            ));
        }
        let range = |r: &Option<Spanned<String>>, key: &str| -> Result<MatchRange, (usize, String)> {
            match r {
                None => Ok(MatchRange::ANY),
                Some(v) => {
                    parse_match_range(v.get_ref()).map_err(|e| (v.span().start.max(off), format!("match.{key}: {e}")))
                }
            }
        };
        let src = range(&mc.src_range, "src_range")?;
        let dst = range(&mc.dst_range, "dst_range")?;
        let fam = |r: &MatchRange| r.addrs.map(|(lo, _)| lo.af());
        let af = match (fam(&src), fam(&dst)) {
            (Some(a), Some(b)) if a != b => {
                return Err((
                    at,
                    "match: src_range and dst_range are of different address families".into(),
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => sc.dest.first().map_or(Af::V4, |d| d.get_ref().ip.0.af()),
        };
        let port = |name: &Option<Spanned<String>>, key: &str| -> Result<Option<u16>, (usize, String)> {
            let Some(n) = name else { return Ok(None) };
            match self.interfaces.iter().position(|i| &i.name == n.get_ref()) {
                Some(i) => Ok(Some(i as u16)),
                None => {
                    let known: Vec<&str> = self.interfaces.iter().map(|i| i.name.as_str()).collect();
                    Err((
                        n.span().start.max(off),
                        format!(
                            "match.{key}: no interface `{}` (known: {})",
                            n.get_ref(),
                            known.join(", ")
                        ),
                    ))
                }
            }
        };
        Ok(Some(MatchSpec {
            af,
            src,
            dst,
            iif: port(&mc.iif, "iif")?,
            oif: port(&mc.oif, "oif")?,
        }))
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
    fn interface_mtu_reaches_the_l2_table_and_bad_ones_are_located() {
        let with = GOOD.replace(
            "addresses = [\"198.18.0.1/24\", \"198.18.1.1/24\"]",
            "addresses = [\"198.18.0.1/24\", \"198.18.1.1/24\"]\nmtu = 1400",
        );
        assert_ne!(with, GOOD);
        let l2 = crate::l2::build(&Config::parse("x.toml", &with).unwrap()).unwrap();
        assert_eq!(l2.mtu(0), 1400);
        let l2 = crate::l2::build(&Config::parse("x.toml", GOOD).unwrap()).unwrap();
        assert_eq!(l2.mtu(0), rvs_xmit::l2::DEFAULT_MTU as usize);
        for bad in ["1279", "9217", "-1", "70000"] {
            let text = with.replace("mtu = 1400", &format!("mtu = {bad}"));
            let e = Config::parse("x.toml", &text).unwrap_err();
            let line = text.lines().position(|l| l.starts_with("mtu")).unwrap() + 1;
            assert_eq!(e.line, line, "{e}");
            assert!(e.msg.contains(&format!("mtu {bad} is outside 1280..=9216")), "{e}");
        }
    }

    #[test]
    fn interface_host_tap_is_checked_and_bad_names_are_located() {
        let with = GOOD.replace(
            "addresses = [\"198.18.0.1/24\", \"198.18.1.1/24\"]",
            "addresses = [\"198.18.0.1/24\", \"198.18.1.1/24\"]\nhost_tap = \"rvs-host0\"",
        );
        assert_ne!(with, GOOD);
        let c = Config::parse("x.toml", &with).unwrap();
        assert_eq!(c.interfaces[0].host_tap, Some(TapName("rvs-host0".into())));
        assert_eq!(Config::parse("x.toml", GOOD).unwrap().interfaces[0].host_tap, None);
        let long = "a".repeat(16);
        for (bad, why) in [
            ("", "1 to 15 bytes"),
            (long.as_str(), "1 to 15 bytes"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("a\\tb", "'\\t'"),
            ("a,b", "','"),
            ("a=b", "'='"),
            ("..", "not a valid interface name"),
        ] {
            let text = with.replace("host_tap = \"rvs-host0\"", &format!("host_tap = \"{bad}\""));
            let e = Config::parse("x.toml", &text).unwrap_err();
            let line = text.lines().position(|l| l.starts_with("host_tap")).unwrap() + 1;
            assert_eq!(e.line, line, "{bad:?}: {e}");
            assert!(e.msg.contains(why), "{bad:?}: {e}");
        }
        // 15 bytes is the longest name.
        let ok = with.replace("rvs-host0", &"b".repeat(15));
        assert!(Config::parse("x.toml", &ok).is_ok());
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

    const SNAT: &str = r#"
[[interface]]
name = "lan"
mac = "02:00:00:00:00:01"
addresses = ["198.18.16.1/24"]

[[interface]]
name = "wan"
mac = "02:00:00:00:00:02"
addresses = ["198.18.2.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.2.254"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
forward = "nat"

[[service.dest]]
ip = "198.18.16.80"
port = 8080

[[service]]
protocol = "tcp"
forward = "snat"
scheduler = "rr"
match = { src_range = "198.18.16.0-198.18.16.255", dst_range = ":1-1023", oif = "wan" }

[[service.dest]]
ip = "198.18.2.1"

[[service.dest]]
ip = "198.18.2.2"
"#;

    fn a(s: &str) -> Addr {
        s.parse().unwrap()
    }

    #[test]
    fn snat_match_services_parse_and_match_by_ranges_and_route() {
        let c = Config::parse("x.toml", SNAT).unwrap();
        let snap = c.snapshot(1, 1).unwrap();
        let m = &snap.services[1];
        assert!(m.key.is_match());
        assert_eq!(m.fwd, Forward::Snat);
        let spec = m.matcher.unwrap();
        assert_eq!(spec.src.addrs, Some((a("198.18.16.0"), a("198.18.16.255"))));
        assert_eq!(
            (spec.src.ports, spec.dst.addrs, spec.dst.ports),
            (None, None, Some((1, 1023)))
        );
        assert_eq!((spec.af, spec.iif, spec.oif), (Af::V4, None, Some(1)));
        assert_eq!(
            m.dests.iter().map(|d| (d.addr, d.port, d.fwd)).collect::<Vec<_>>(),
            vec![(a("198.18.2.1"), 0, Forward::Snat), (a("198.18.2.2"), 0, Forward::Snat)]
        );
        let find = |s: &str, d: &str, dport| {
            snap.find_match(Proto::Tcp, a(s), a(d), 40000, dport, 0)
                .map(|x| x.index)
        };
        // Out through the default route on wan: matched.
        assert_eq!(find("198.18.16.5", "203.0.113.9", 443), Some(1));
        // Port above the dst range; a destination on lan (oif lan); an interface address.
        assert_eq!(find("198.18.16.5", "203.0.113.9", 8080), None);
        assert_eq!(find("198.18.16.5", "198.18.16.80", 443), None);
        assert_eq!(find("198.18.16.5", "198.18.2.1", 443), None);
        // The VIP service is still found by key and is no match service.
        assert_eq!(snap.find(Proto::Tcp, a("198.18.0.100"), 80).map(|x| x.index), Some(0));
    }

    #[test]
    fn match_ranges_read_as_dpvs_writes_them() {
        let r = |s: &str| parse_match_range(s).unwrap();
        assert_eq!(r("198.18.16.7").addrs, Some((a("198.18.16.7"), a("198.18.16.7"))));
        assert_eq!(r("198.18.16.0/24").addrs, Some((a("198.18.16.0"), a("198.18.16.255"))));
        assert_eq!(
            r("198.18.16.9/24:53").addrs,
            Some((a("198.18.16.0"), a("198.18.16.255")))
        );
        assert_eq!(r("0.0.0.0/0").addrs, Some((a("0.0.0.0"), a("255.255.255.255"))));
        let x = r("198.18.16.1-198.18.16.9:1024-65535");
        assert_eq!(x.addrs, Some((a("198.18.16.1"), a("198.18.16.9"))));
        assert_eq!(x.ports, Some((1024, 65535)));
        assert_eq!(
            r(":53"),
            MatchRange {
                addrs: None,
                ports: Some((53, 53))
            }
        );
        assert_eq!(
            r("2001:db8::1-2001:db8::ff").addrs,
            Some((a("2001:db8::1"), a("2001:db8::ff")))
        );
        let y = r("[2001:db8::1]-[2001:db8::ff]:80-81");
        assert_eq!(
            (y.addrs, y.ports),
            (Some((a("2001:db8::1"), a("2001:db8::ff"))), Some((80, 81)))
        );
        assert_eq!(
            r("2001:db8::/64").addrs.map(|x| x.1),
            Some(a("2001:db8::ffff:ffff:ffff:ffff"))
        );
        for bad in [
            "",
            "198.18.16",
            "198.18.16.0/33",
            "198.18.16.1:x",
            "198.18.16.1:70000",
            "[2001:db8::1",
            ":",
        ] {
            let e = parse_match_range(bad).unwrap_err();
            assert!(e.contains("is not an address range"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_snat_services_are_located() {
        let line_of_text = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let second = |text: &str| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("[[service]]"))
                .nth(1)
                .unwrap()
                .0
                + 1
        };
        // A value at fault is named on its own line.
        for (from, to, want) in [
            (
                "198.18.16.0-198.18.16.255",
                "198.18.16.0-198.18.16",
                "is not an address range",
            ),
            ("oif = \"wan\"", "oif = \"dmz\"", "no interface `dmz` (known: lan, wan)"),
        ] {
            let bad = SNAT.replace(from, to);
            let e = Config::parse("x.toml", &bad).unwrap_err();
            assert!(e.msg.contains(want), "{e}");
            assert_eq!(e.line, line_of_text(&bad, "match = "), "{e}");
        }
        // Service-level faults: located at the match service, not the VIP service before it.
        for (from, to, want) in [
            ("forward = \"snat\"", "forward = \"fnat\"", "forwards with snat"),
            (
                "scheduler = \"rr\"\nmatch",
                "vip = \"198.18.0.9\"\nmatch",
                "takes no `vip` or `port`",
            ),
            (
                "ip = \"198.18.2.2\"",
                "ip = \"198.18.2.2\"\nport = 80",
                "port must be 0",
            ),
            (
                "scheduler = \"rr\"\nmatch",
                "local_addresses = [\"198.18.2.9\"]\nmatch",
                "local addresses are not used",
            ),
            (
                "dst_range = \":1-1023\"",
                "dst_range = \"198.18.30.9-198.18.30.1\"",
                "runs backwards",
            ),
            (
                "dst_range = \":1-1023\"",
                "dst_range = \"2001:db8::1-2001:db8::2\"",
                "different address families",
            ),
        ] {
            let bad = SNAT.replace(from, to);
            assert_ne!(bad, SNAT, "{from}");
            let e = Config::parse("x.toml", &bad).unwrap_err();
            assert!(e.msg.contains(want), "{e}");
            assert!(e.line >= second(&bad), "{e}");
        }
        // The same match twice: the second is at fault.
        let tail = &SNAT[SNAT.rfind("[[service]]").unwrap()..];
        let twice = format!("{SNAT}\n{}", tail.replace("198.18.2.", "198.18.3."));
        let e = Config::parse("x.toml", &twice).unwrap_err();
        assert!(e.msg.contains("is defined twice"), "{e}");
        let third = twice.match_indices("[[service]]").nth(2).unwrap().0;
        assert!(e.line >= line_of(&twice, third), "{e}");
        // A VIP service still needs its vip and port.
        let e = Config::parse("x.toml", &SNAT.replace("vip = \"198.18.0.100\"\n", "")).unwrap_err();
        assert!(e.msg.contains("missing field `vip`"), "{e}");
        let e = Config::parse("x.toml", &SNAT.replace("port = 80\nforward", "forward")).unwrap_err();
        assert!(e.msg.contains("missing field `port`"), "{e}");
    }

    fn two_services(a: &[&str], b: &[&str], slots: usize) -> Config {
        let mut t = format!("[conn]\ndest_slots = {slots}\n");
        for (port, dests) in [(80, a), (443, b)] {
            t += &format!(
                "[[service]]\nprotocol = \"tcp\"\nvip = \"10.0.0.1\"\nport = {port}\nscheduler = \"rr\"\nforward = \"nat\"\n"
            );
            for d in dests {
                t += &format!("[[service.dest]]\nip = \"{d}\"\n");
            }
        }
        Config::parse("ids.toml", &t).unwrap()
    }

    /// (service port, destination address) -> id, over a snapshot.
    fn ids_of(s: &Snapshot) -> Vec<(u16, String, u32)> {
        let mut v: Vec<_> = s
            .services
            .iter()
            .flat_map(|svc| svc.dests.iter().map(|d| (svc.key.port, d.addr.to_string(), d.id.0)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dest_ids_stay_stable_across_snapshots() {
        let mut ids = DestIds::new(16);
        let c1 = two_services(&["10.1.0.1", "10.1.0.2"], &["10.1.0.1"], 16);
        let s1 = c1.snapshot_with_ids(1, 1, &mut ids).unwrap();
        // The first snapshot numbers as a plain build does (replay and run agree).
        assert_eq!(ids_of(&s1), ids_of(&c1.snapshot(1, 1).unwrap()));
        // Reordered, one removed, one added: the survivors keep their ids, the same address
        // in another service is another destination, the new one takes a fresh slot.
        let c2 = two_services(&["10.1.0.3", "10.1.0.2"], &["10.1.0.1", "10.1.0.2"], 16);
        let s2 = c2.snapshot_with_ids(2, 1, &mut ids).unwrap();
        let old = ids_of(&s1);
        let new = ids_of(&s2);
        for (port, addr, id) in &new {
            if let Some((_, _, was)) = old.iter().find(|(p, a, _)| p == port && a == addr) {
                assert_eq!(id, was, "{port} {addr}");
            } else {
                assert!(old.iter().all(|(_, _, o)| o != id), "{port} {addr} reuses slot {id}");
            }
        }
        let mut all: Vec<u32> = new.iter().map(|x| x.2).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), new.len(), "ids unique within a snapshot");
        // Removed 10.1.0.1:80 keeps its slot reserved: putting it back gives the old id.
        let c3 = two_services(&["10.1.0.1"], &[], 16);
        let s3 = c3.snapshot_with_ids(3, 1, &mut ids).unwrap();
        assert_eq!(
            ids_of(&s3)[0].2,
            old.iter().find(|x| x.0 == 80 && x.1 == "10.1.0.1").unwrap().2
        );
        assert_eq!(ids.used(), 5);
    }

    #[test]
    fn dest_ids_exhausted_is_a_clear_error_and_changes_nothing() {
        let mut ids = DestIds::new(3);
        let c1 = two_services(&["10.1.0.1", "10.1.0.2"], &[], 3);
        c1.snapshot_with_ids(1, 1, &mut ids).unwrap();
        // Two new destinations need two more slots: one is left.
        let c2 = two_services(&["10.1.0.3", "10.1.0.4"], &[], 3);
        let e = c2.snapshot_with_ids(2, 1, &mut ids).unwrap_err();
        assert!(e.1.contains("conn.dest_slots = 3"), "{}", e.1);
        assert!(c2.locate(e).line > 0);
        assert_eq!(ids.used(), 2, "a refused build gives out no slot");
        // One new destination still fits.
        let c3 = two_services(&["10.1.0.1", "10.1.0.3"], &[], 3);
        assert!(c3.snapshot_with_ids(2, 1, &mut ids).is_ok());
        assert_eq!(ids.used(), 3);
    }

    #[test]
    fn udp_section_sets_the_uoa_mode_and_trail_as_dpvs_names_them() {
        let c = Config::parse("x.toml", GOOD).unwrap();
        // DPVS's defaults.
        assert_eq!((c.udp.uoa_mode, c.udp.uoa_max_trail), (UoaModeCfg::Opp, 3));
        let t = format!("{GOOD}\n[udp]\nuoa_mode = \"ipo\"\nuoa_max_trail = 0\n");
        let c = Config::parse("x.toml", &t).unwrap();
        assert_eq!((c.udp.uoa_mode, c.udp.uoa_max_trail), (UoaModeCfg::Ipo, 0));
        let lines = GOOD.lines().count();
        let t = format!("{GOOD}\n[udp]\nuoa_mode = \"gre\"\n");
        let e = Config::parse("x.toml", &t).unwrap_err();
        assert!(e.msg.contains("gre") || e.msg.contains("opp"), "{e}");
        assert!(e.line > lines, "{e}");
        let t = format!("{GOOD}\n[udp]\nuoa_max_trail = 300\n");
        let e = Config::parse("x.toml", &t).unwrap_err();
        assert!(e.line > lines, "{e}");
    }
}
