//! Layer 2 for transmit: the interfaces (port index, name, MAC, addresses with prefix), a
//! static neighbour table (IP -> MAC), and routes -- connected routes derived from the
//! interface addresses, plus optional static routes and a default gateway -- to choose the
//! output port and the next hop's MAC.
//!
//! The pipeline's TOML config fills them: `[[interface]] name, mac, addresses` through
//! [`L2::add_interface`], `[[neighbor]] ip, mac` through [`L2::add_neighbor`].
//!
//! Neighbours: the static table from the configuration is consulted first, then the
//! *learned* overlay, a per-lcore copy of the resolved entries of the [`crate::neigh`] cache
//! that xmit refreshes when the cache changes ([`L2::set_learned`]). A next hop in neither is
//! [`Unreachable::NoNeighbor`]; with a neighbour cache wired in, xmit then holds the packet
//! and resolves the hop (ARP, RFC 826; ND, RFC 4861), as DPVS's `neigh_resolve_output` does.
//!
//! Route lookup is a longest-prefix match over a short list sorted by prefix length (a
//! balancer has a handful of routes); neighbour lookup is one hash probe. The xmit stage
//! keeps the answers per destination in a [`HopCache`] (as DPVS keeps a connection's route and
//! neighbour), checked against [`L2::stamp`] so it never outlives a change of the tables.
//! Nothing here allocates per packet.

use std::sync::atomic::{AtomicU64, Ordering};

use rvs_core::addr::Addr;
use rvs_core::hash::FastMap;
use rvs_core::wire::ethernet::{Mac, format_mac, parse_mac};

/// A configuration error in the L2 tables, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum L2Error {
    /// A MAC address that does not parse.
    #[error("bad MAC address {0:?} (want aa:bb:cc:dd:ee:ff)")]
    BadMac(String),
    /// An address that does not parse.
    #[error("bad IP address {0:?}")]
    BadAddr(String),
    /// An `address/prefix` that does not parse or whose prefix is too long.
    #[error("bad address/prefix {0:?} (want e.g. 198.18.0.1/24)")]
    BadPrefix(String),
    /// Two interfaces with one name.
    #[error("interface {0:?} defined twice")]
    DuplicateInterface(String),
    /// A gateway not on any connected network.
    #[error("gateway {0} is not on a network of any interface")]
    GatewayUnreachable(Addr),
    /// More interfaces than port indexes.
    #[error("too many interfaces")]
    TooManyInterfaces,
}

/// An address of an interface with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: Addr,
    /// Prefix length (IPv4 0..=32, IPv6 0..=128).
    pub prefix: u8,
}

impl IfAddr {
    /// Parse `198.18.0.1/24` or `2001:db8::1/64`; an address without `/len` is a host
    /// address (/32 or /128).
    pub fn parse(s: &str) -> Result<Self, L2Error> {
        let bad = || L2Error::BadPrefix(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: Addr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_v4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(IfAddr { addr, prefix })
    }
    /// The network this address is on.
    pub fn network(&self) -> Addr {
        self.addr.masked(self.prefix)
    }
}

/// One interface (a DPDK port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Port index: the transmit queue the stage sends on.
    pub port: u16,
    /// Name (`port0`).
    pub name: String,
    /// Its MAC, the source MAC of everything sent on it.
    pub mac: Mac,
    /// Its addresses (VIPs, FNAT local addresses, the interface's own).
    pub addrs: Vec<IfAddr>,
    /// Largest IP datagram it sends ([`DEFAULT_MTU`] unless set with [`L2::set_mtu`]):
    /// tunnels, TOA and UOA check their packets against it.
    pub mtu: u16,
}

/// The MTU of an interface unless configured (Ethernet's 1500).
pub const DEFAULT_MTU: u16 = 1500;

/// A route: packets to `dst/prefix` leave by `port`, to `gateway` if set, else to their
/// destination directly (a connected route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Network.
    pub dst: Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Next hop, `None` for a connected network.
    pub gateway: Option<Addr>,
    /// Output port.
    pub port: u16,
}

impl Route {
    #[inline]
    fn matches(&self, a: Addr) -> bool {
        a.is_v4() == self.dst.is_v4() && a.masked(self.prefix) == self.dst
    }
}

/// Where a packet goes: the port, and the MACs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Output port.
    pub port: u16,
    /// Source MAC (the port's).
    pub src_mac: Mac,
    /// Destination MAC (the next hop's).
    pub dst_mac: Mac,
}

/// A per-lcore memo of [`L2::next_hop`] answers by destination address (with the port's
/// MTU), the way DPVS keeps the route and neighbour of a connection instead of looking them
/// up per packet: a direct-mapped table of [`HopCache::SLOTS`] entries, filled by successful
/// lookups only (a miss -- no route, no neighbour -- is looked up again every time, so a
/// packet waiting for ARP/ND still goes to the resolver). Each entry is valid for the table
/// content it was read from: the cache remembers the [`L2::stamp`] it was filled under and
/// empties itself when the stamp differs (a configuration reload, a new MTU, a neighbour
/// learned, changed or expired), so an answer is never older than the tables.
#[derive(Clone)]
pub struct HopCache {
    stamp: u64,
    slots: Box<[HopSlot]>,
}

#[derive(Debug, Clone, Copy)]
struct HopSlot {
    dst: Addr,
    hop: NextHop,
    mtu: u16,
    used: bool,
}

const EMPTY_SLOT: HopSlot = HopSlot {
    dst: Addr::UNSPECIFIED,
    hop: NextHop {
        port: 0,
        src_mac: [0; 6],
        dst_mac: [0; 6],
    },
    mtu: 0,
    used: false,
};

impl HopCache {
    /// Entries of a cache made by [`HopCache::new`] (a power of two).
    pub const SLOTS: usize = 256;

    /// An empty cache of [`HopCache::SLOTS`] entries (allocated once, here).
    pub fn new() -> Self {
        HopCache {
            stamp: 0,
            slots: vec![EMPTY_SLOT; Self::SLOTS].into_boxed_slice(),
        }
    }
    /// A cache that holds nothing: every lookup goes to the tables (no allocation).
    pub fn disabled() -> Self {
        HopCache {
            stamp: 0,
            slots: Box::new([]),
        }
    }
    fn clear(&mut self, stamp: u64) {
        for s in self.slots.iter_mut() {
            s.used = false;
        }
        self.stamp = stamp;
    }
    /// The slot of `dst` among `n` (a power of two): a multiplicative hash of the address.
    #[inline]
    fn index(dst: Addr, n: usize) -> usize {
        let k = (dst.0 as u64) ^ ((dst.0 >> 64) as u64).rotate_left(29);
        (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (n - 1)
    }
}

impl std::fmt::Debug for HopCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopCache")
            .field("stamp", &self.stamp)
            .field("slots", &self.slots.len())
            .field("used", &self.slots.iter().filter(|s| s.used).count())
            .finish()
    }
}

impl Default for HopCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a next hop could not be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// No route covers the destination.
    NoRoute,
    /// The next hop is not in the neighbour table.
    NoNeighbor,
}

/// Where the [`L2::stamp`] values come from: one counter for every table in the process, so
/// no two different contents share a stamp (a new table built by a configuration reload gets
/// a stamp no earlier table had, even at the address of a freed one).
static STAMPS: AtomicU64 = AtomicU64::new(1);

/// Interfaces, routes and neighbours of one pipeline (read-only on the packet path; each
/// lcore may hold its own copy or share one behind an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct L2 {
    /// Changes whenever the content does (see [`L2::stamp`]).
    stamp: u64,
    ifaces: Vec<Interface>,
    /// Sorted by prefix length, longest first.
    routes: Vec<Route>,
    neighbors: FastMap<Addr, Mac>,
    /// Entries learned by ARP/ND on this lcore (see [`L2::set_learned`]).
    learned: FastMap<Addr, Mac>,
}

impl L2 {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an interface (`[[interface]] name, mac, addresses`); its port index is its
    /// position, returned. Each address adds a connected route for its network.
    pub fn add_interface(&mut self, name: &str, mac: &str, addresses: &[&str]) -> Result<u16, L2Error> {
        let mac = parse_mac(mac).ok_or_else(|| L2Error::BadMac(mac.to_string()))?;
        let addrs = addresses
            .iter()
            .map(|a| IfAddr::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        self.add_interface_parsed(name, mac, addrs)
    }

    /// As [`L2::add_interface`] with parsed values.
    pub fn add_interface_parsed(&mut self, name: &str, mac: Mac, addrs: Vec<IfAddr>) -> Result<u16, L2Error> {
        if self.ifaces.iter().any(|i| i.name == name) {
            return Err(L2Error::DuplicateInterface(name.to_string()));
        }
        let port = u16::try_from(self.ifaces.len()).map_err(|_| L2Error::TooManyInterfaces)?;
        for a in &addrs {
            self.insert_route(Route {
                dst: a.network(),
                prefix: a.prefix,
                gateway: None,
                port,
            });
        }
        self.ifaces.push(Interface {
            port,
            name: name.to_string(),
            mac,
            addrs,
            mtu: DEFAULT_MTU,
        });
        self.touch();
        Ok(port)
    }

    /// Add a static neighbour (`[[neighbor]] ip, mac`); a second entry for one IP replaces
    /// the first.
    pub fn add_neighbor(&mut self, ip: &str, mac: &str) -> Result<(), L2Error> {
        let addr: Addr = ip.trim().parse().map_err(|_| L2Error::BadAddr(ip.to_string()))?;
        let mac = parse_mac(mac).ok_or_else(|| L2Error::BadMac(mac.to_string()))?;
        self.neighbors.insert(addr, mac);
        self.touch();
        Ok(())
    }

    /// Add a static route `dst/prefix via gateway`; the gateway must be on a connected
    /// network (its port is that network's). Add interfaces first.
    pub fn add_route(&mut self, dst: &str, gateway: &str) -> Result<(), L2Error> {
        let net = IfAddr::parse(dst)?;
        let gw: Addr = gateway
            .trim()
            .parse()
            .map_err(|_| L2Error::BadAddr(gateway.to_string()))?;
        let port = self.connected_port(gw).ok_or(L2Error::GatewayUnreachable(gw))?;
        self.insert_route(Route {
            dst: net.network(),
            prefix: net.prefix,
            gateway: Some(gw),
            port,
        });
        Ok(())
    }

    /// Set the default gateway of the gateway's family (a /0 route).
    pub fn set_default_gateway(&mut self, gateway: &str) -> Result<(), L2Error> {
        let gw: Addr = gateway
            .trim()
            .parse()
            .map_err(|_| L2Error::BadAddr(gateway.to_string()))?;
        let any = if gw.is_v4() { "0.0.0.0/0" } else { "::/0" };
        self.add_route(any, gateway)
    }

    fn connected_port(&self, a: Addr) -> Option<u16> {
        self.routes
            .iter()
            .find(|r| r.gateway.is_none() && r.matches(a))
            .map(|r| r.port)
    }

    fn insert_route(&mut self, r: Route) {
        // Replace a route to the same network; keep longest prefixes first.
        self.routes.retain(|x| !(x.dst == r.dst && x.prefix == r.prefix));
        let at = self
            .routes
            .iter()
            .position(|x| x.prefix < r.prefix)
            .unwrap_or(self.routes.len());
        self.routes.insert(at, r);
        self.touch();
    }

    /// A new stamp: the content changed.
    fn touch(&mut self) {
        self.stamp = STAMPS.fetch_add(1, Ordering::Relaxed);
    }

    /// A value that changes whenever the tables do (interfaces, routes, MTUs, static or
    /// learned neighbours), unique across every table of the process: two tables with one
    /// stamp hold the same content (one is a clone of the other). Caches of lookups in these
    /// tables ([`HopCache`]) compare it to know they are still right.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// The interfaces, by port index.
    pub fn interfaces(&self) -> &[Interface] {
        &self.ifaces
    }
    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
    /// The static neighbour entry of `ip`.
    pub fn neighbor(&self, ip: Addr) -> Option<Mac> {
        self.neighbors.get(&ip).copied()
    }
    /// The learned (ARP/ND) entry of `ip`, from the overlay.
    pub fn learned(&self, ip: Addr) -> Option<Mac> {
        self.learned.get(&ip).copied()
    }
    /// Replace the learned overlay with `entries` (xmit calls it when its neighbour cache
    /// changed, between vectors). The map keeps its capacity, so once it has grown to the
    /// cache's size a refresh allocates nothing.
    pub fn set_learned(&mut self, entries: impl Iterator<Item = (Addr, Mac)>) {
        self.learned.clear();
        self.learned.extend(entries);
        self.touch();
    }
    /// Reserve room for `n` learned entries.
    pub fn reserve_learned(&mut self, n: usize) {
        self.learned.reserve(n.saturating_sub(self.learned.len()));
    }
    /// Set the MTU of interface `port` (at least IPv6's 1280, RFC 8200 section 5). False
    /// (unchanged) for an unknown port or a smaller MTU.
    pub fn set_mtu(&mut self, port: u16, mtu: u16) -> bool {
        match self.ifaces.get_mut(port as usize) {
            Some(i) if mtu >= 1280 => {
                i.mtu = mtu;
                self.touch();
                true
            }
            _ => false,
        }
    }
    /// The MTU of interface `port` ([`DEFAULT_MTU`] for an unknown port).
    #[inline]
    pub fn mtu(&self, port: u16) -> usize {
        self.ifaces.get(port as usize).map_or(DEFAULT_MTU, |i| i.mtu) as usize
    }
    /// The first address of interface `port` in the family of `like` (the source of packets
    /// the balancer originates there: tunnel outer headers, ICMP errors).
    #[inline]
    pub fn source_addr(&self, port: u16, like: Addr) -> Option<Addr> {
        let i = self.ifaces.get(port as usize)?;
        i.addrs.iter().find(|a| a.addr.is_v4() == like.is_v4()).map(|a| a.addr)
    }
    /// True when `a` is an address of one of the interfaces.
    pub fn is_local(&self, a: Addr) -> bool {
        self.ifaces.iter().any(|i| i.addrs.iter().any(|x| x.addr == a))
    }

    /// The route for `dst` (longest prefix match).
    #[inline]
    pub fn route(&self, dst: Addr) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(dst))
    }

    /// Port and MACs for a packet to `dst`.
    #[inline]
    pub fn next_hop(&self, dst: Addr) -> Result<NextHop, Unreachable> {
        let r = self.route(dst).ok_or(Unreachable::NoRoute)?;
        let iface = self.ifaces.get(r.port as usize).ok_or(Unreachable::NoRoute)?;
        let hop = r.gateway.unwrap_or(dst);
        let dst_mac = self
            .neighbor(hop)
            .or_else(|| self.learned(hop))
            .ok_or(Unreachable::NoNeighbor)?;
        Ok(NextHop {
            port: r.port,
            src_mac: iface.mac,
            dst_mac,
        })
    }

    /// As [`L2::next_hop`] through `cache` (see [`HopCache`]), with the output port's MTU.
    #[inline]
    pub fn next_hop_cached(&self, cache: &mut HopCache, dst: Addr) -> Result<(NextHop, usize), Unreachable> {
        if cache.stamp != self.stamp {
            cache.clear(self.stamp);
        }
        let n = cache.slots.len();
        if n == 0 {
            let nh = self.next_hop(dst)?;
            return Ok((nh, self.mtu(nh.port)));
        }
        let i = HopCache::index(dst, n);
        if let Some(s) = cache.slots.get(i)
            && s.used
            && s.dst == dst
        {
            return Ok((s.hop, s.mtu as usize));
        }
        let nh = self.next_hop(dst)?;
        let mtu = self.mtu(nh.port);
        if let Some(s) = cache.slots.get_mut(i) {
            *s = HopSlot {
                dst,
                hop: nh,
                mtu: mtu as u16,
                used: true,
            };
        }
        Ok((nh, mtu))
    }

    /// A one-line-per-entry description (for `rvsctl` and logs).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for i in &self.ifaces {
            s.push_str(&format!(
                "interface {} port {} mac {}",
                i.name,
                i.port,
                format_mac(i.mac)
            ));
            for a in &i.addrs {
                s.push_str(&format!(" {}/{}", a.addr, a.prefix));
            }
            s.push('\n');
        }
        for r in &self.routes {
            match r.gateway {
                Some(g) => s.push_str(&format!("route {}/{} via {} port {}\n", r.dst, r.prefix, g, r.port)),
                None => s.push_str(&format!("route {}/{} connected port {}\n", r.dst, r.prefix, r.port)),
            }
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn table() -> L2 {
        let mut l2 = L2::new();
        l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24", "198.18.1.1/24"])
            .unwrap();
        l2.add_interface("port1", "02:00:00:00:00:02", &["198.19.0.1/16", "2001:db8::1/64"])
            .unwrap();
        l2.add_neighbor("198.18.1.11", "02:00:00:00:01:11").unwrap();
        l2.add_neighbor("198.19.0.254", "02:00:00:00:fe:fe").unwrap();
        l2.add_neighbor("2001:db8::5", "02:00:00:00:06:05").unwrap();
        l2
    }

    #[test]
    fn connected_routes_choose_the_port() {
        let l2 = table();
        let nh = l2.next_hop(a("198.18.1.11")).unwrap();
        assert_eq!(
            nh,
            NextHop {
                port: 0,
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 1, 0x11]
            }
        );
        let nh = l2.next_hop(a("2001:db8::5")).unwrap();
        assert_eq!((nh.port, nh.dst_mac), (1, [2, 0, 0, 0, 6, 5]));
        assert_eq!(l2.next_hop(a("198.18.1.12")), Err(Unreachable::NoNeighbor));
        assert_eq!(l2.next_hop(a("203.0.113.9")), Err(Unreachable::NoRoute));
        assert!(l2.is_local(a("198.18.1.1")));
        assert!(!l2.is_local(a("198.18.1.11")));
    }

    #[test]
    fn static_routes_and_default_gateway() {
        let mut l2 = table();
        assert_eq!(
            l2.add_route("10.0.0.0/8", "203.0.113.1"),
            Err(L2Error::GatewayUnreachable(a("203.0.113.1")))
        );
        l2.set_default_gateway("198.19.0.254").unwrap();
        l2.add_route("198.18.1.128/25", "198.19.0.254").unwrap();
        // Longest prefix wins: .200 goes by the /25 through the gateway on port 1...
        let nh = l2.next_hop(a("198.18.1.200")).unwrap();
        assert_eq!(
            (nh.port, nh.src_mac, nh.dst_mac),
            (1, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0xfe, 0xfe])
        );
        // ... .11 stays on the connected /24, anything else takes the default.
        assert_eq!(l2.next_hop(a("198.18.1.11")).unwrap().port, 0);
        assert_eq!(l2.next_hop(a("203.0.113.9")).unwrap().dst_mac, [2, 0, 0, 0, 0xfe, 0xfe]);
        // No IPv6 default: still no route.
        assert_eq!(l2.next_hop(a("2001:db9::1")), Err(Unreachable::NoRoute));
        assert!(l2.describe().contains("route 0.0.0.0/0 via 198.19.0.254 port 1"));
    }

    #[test]
    fn config_errors_name_the_value() {
        let mut l2 = table();
        assert_eq!(
            l2.add_interface("port0", "02:00:00:00:00:09", &[]),
            Err(L2Error::DuplicateInterface("port0".into()))
        );
        assert_eq!(
            l2.add_interface("p", "02:00:00:00:00", &[]),
            Err(L2Error::BadMac("02:00:00:00:00".into()))
        );
        assert_eq!(
            l2.add_interface("p", "02:00:00:00:00:09", &["198.18.0.1/33"]),
            Err(L2Error::BadPrefix("198.18.0.1/33".into()))
        );
        assert_eq!(
            l2.add_neighbor("198.18.1", "02:00:00:00:00:09"),
            Err(L2Error::BadAddr("198.18.1".into()))
        );
        assert!(
            l2.add_neighbor("198.18.1.9", "zz")
                .unwrap_err()
                .to_string()
                .contains("\"zz\"")
        );
        assert_eq!(
            IfAddr::parse("198.18.0.7").unwrap(),
            IfAddr {
                addr: a("198.18.0.7"),
                prefix: 32
            }
        );
    }

    /// The cache answers what the tables answer, before and after every kind of change made
    /// in place (the way the neighbour overlay is refreshed: same allocation, new content),
    /// and never remembers a failure.
    #[test]
    fn hop_cache_follows_every_change_of_the_tables() {
        let mut l2 = table();
        let mut c = HopCache::new();
        let rs = a("198.18.1.11");
        let same = |l2: &L2, c: &mut HopCache, d: Addr| {
            let want = l2.next_hop(d).map(|nh| (nh, l2.mtu(nh.port)));
            assert_eq!(l2.next_hop_cached(c, d), want, "{d}");
            // Twice: the second answer comes from the cache when the first was a success.
            assert_eq!(l2.next_hop_cached(c, d), want, "{d} again");
            want
        };
        assert_eq!(same(&l2, &mut c, rs).unwrap().0.dst_mac, [2, 0, 0, 0, 1, 0x11]);
        // A static neighbour replaced.
        l2.add_neighbor("198.18.1.11", "02:00:00:00:01:99").unwrap();
        assert_eq!(same(&l2, &mut c, rs).unwrap().0.dst_mac, [2, 0, 0, 0, 1, 0x99]);
        // A learned neighbour appears, moves, and expires.
        let hop = a("198.18.1.12");
        assert_eq!(same(&l2, &mut c, hop), Err(Unreachable::NoNeighbor));
        l2.set_learned([(hop, [2, 0, 0, 0, 1, 0x12])].into_iter());
        assert_eq!(same(&l2, &mut c, hop).unwrap().0.dst_mac, [2, 0, 0, 0, 1, 0x12]);
        l2.set_learned([(hop, [2, 0, 0, 0, 1, 0x13])].into_iter());
        assert_eq!(same(&l2, &mut c, hop).unwrap().0.dst_mac, [2, 0, 0, 0, 1, 0x13]);
        l2.set_learned(std::iter::empty());
        assert_eq!(same(&l2, &mut c, hop), Err(Unreachable::NoNeighbor));
        // The port's MTU changes.
        assert!(l2.set_mtu(0, 9000));
        assert_eq!(same(&l2, &mut c, rs).unwrap().1, 9000);
        // A more specific route through a gateway on the other port.
        l2.add_route("198.18.1.0/28", "198.19.0.254").unwrap();
        let (nh, mtu) = same(&l2, &mut c, rs).unwrap();
        assert_eq!((nh.port, nh.dst_mac, mtu), (1, [2, 0, 0, 0, 0xfe, 0xfe], 1500));
        // A new interface (port indexes and connected routes).
        l2.add_interface("port2", "02:00:00:00:00:03", &["198.18.1.8/29"])
            .unwrap();
        let (nh, _) = same(&l2, &mut c, rs).unwrap();
        assert_eq!((nh.port, nh.src_mac), (2, [2, 0, 0, 0, 0, 3]));
        // A whole new table (a configuration reload) in place of the old one.
        let fresh = table();
        assert_ne!(fresh.stamp(), l2.stamp());
        assert_eq!(same(&fresh, &mut c, rs).unwrap().0.dst_mac, [2, 0, 0, 0, 1, 0x11]);
        // A clone holds the same content under the same stamp.
        assert_eq!(fresh.clone().stamp(), fresh.stamp());
    }

    /// More destinations than slots: collisions replace entries, answers stay right.
    #[test]
    fn hop_cache_collisions_and_the_disabled_cache() {
        let mut l2 = table();
        for i in 0..=255u32 {
            l2.add_neighbor(
                &format!("198.19.{}.{}", i / 200, 1 + i % 200),
                &format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff),
            )
            .unwrap();
        }
        let mut c = HopCache::new();
        let mut off = HopCache::disabled();
        for round in 0..3 {
            for i in 0..2000u32 {
                let d = Addr::v4([198, 19, (i / 200) as u8, (1 + i % 200) as u8]);
                let want = l2.next_hop(d).map(|nh| (nh, l2.mtu(nh.port)));
                assert_eq!(l2.next_hop_cached(&mut c, d), want, "round {round}, {d}");
                assert_eq!(l2.next_hop_cached(&mut off, d), want);
            }
        }
    }
}
