//! FNAT/SNAT local ports of one lcore: DPVS's `sa_pool` (`src/sa_pool.c`).
//!
//! For every local address, the ports 1025..=65535 are shared out among the lcores: lcore `l`
//! of `n` owns the ports `p` with `p % n == l`. Return traffic from a real server reaches the
//! local address and port the balancer picked, so the destination port alone says which lcore
//! owns the connection ([`SaPool::owner_lcore`]); a NIC flow rule per (lcore, local address)
//! or the pipeline's software steering sends it there with no table.
//!
//! DPVS masks the low bits of the port (`port & (n - 1)`, with `n` a power of two so one flow
//! rule with a port mask can steer it). rvs uses the remainder, which is the same partition
//! whenever `n` is a power of two and still a partition (every port owned by exactly one
//! lcore) when it is not.
//!
//! **One port, several real servers.** As DPVS's `sa_pool_hash`, each local address has
//! several pools ([`DEFAULT_POOLS`], DPVS's `SAPOOL_DEF_HASH_SZ` of 16; 1..=128, DPVS's
//! `pool_hash_size`), each holding every port this lcore owns; a connection takes its port
//! from the pool its real server's address and port hash to ([`SaPool::pool_of`]: for IPv4
//! DPVS's `((address & 0xffff) + port) % pools`, for IPv6 a keyed hash of both) and gives it
//! back there. The same local address and port is so in use at once toward real servers of
//! different pools, and one local address carries up to `pools` times 64511 connections
//! (divided among the lcores), while the outbound 5-tuple stays unique: two connections to
//! one real server (address and port) always draw from the same pool, which never hands out
//! a port twice. The port partition among lcores is the same in every pool, so reply
//! steering by port is unchanged. Connections of ICMP echo (whose identifier stands for both
//! ports) are keyed by the real server's address with port 0.
//!
//! Take and release are O(1): each pool keeps its free ports in a ring, taken from the front
//! and returned to the back, so a released port is reused as late as possible (the real
//! server may still hold the old connection in TIME_WAIT), plus a bitmap that refuses a
//! double release or a port this lcore does not own. Memory: per local address and lcore,
//! `pools` x (2 bytes per owned port + 8 KiB), about 2.1 MiB for 16 pools in all lcores.

use rvs_core::addr::{Addr, Proto};

/// Lowest local port handed out.
pub const PORT_MIN: u16 = 1025;
/// Highest local port handed out.
pub const PORT_MAX: u16 = 65535;
/// Pools per local address by default (DPVS's `SAPOOL_DEF_HASH_SZ`).
pub const DEFAULT_POOLS: usize = 16;
/// Most pools per local address (DPVS's `SAPOOL_MAX_HASH_SZ`).
pub const MAX_POOLS: usize = 128;

/// The free ports of one pool of a local address on this lcore.
#[derive(Debug)]
struct PortRing {
    ring: Box<[u16]>,
    head: usize,
    len: usize,
    /// One bit per port: set while the port is free (in the ring).
    free: Box<[u64]>,
}

impl PortRing {
    fn new(ports: &[u16]) -> Self {
        let mut free = vec![0u64; 65536 / 64].into_boxed_slice();
        for p in ports {
            free[*p as usize / 64] |= 1 << (*p % 64);
        }
        PortRing {
            ring: ports.into(),
            head: 0,
            len: ports.len(),
            free,
        }
    }
    #[inline]
    fn is_free(&self, p: u16) -> bool {
        self.free[p as usize / 64] & (1 << (p % 64)) != 0
    }
    #[inline]
    fn take(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let p = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        self.free[p as usize / 64] &= !(1 << (p % 64));
        Some(p)
    }
    #[inline]
    fn release(&mut self, p: u16) -> bool {
        if self.len == self.ring.len() || self.is_free(p) {
            return false;
        }
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = p;
        self.len += 1;
        self.free[p as usize / 64] |= 1 << (p % 64);
        true
    }
}

/// The pools of one local address.
#[derive(Debug)]
struct AddrPools {
    laddr: Addr,
    pools: Box<[PortRing]>,
}

/// The local ports this lcore owns, per local address and real-server pool.
#[derive(Debug)]
pub struct SaPool {
    lcore: u16,
    lcores: u16,
    npools: usize,
    addrs: Vec<AddrPools>,
    /// Releases refused: a port not taken, not owned by this lcore, or an unknown address.
    pub bad_releases: u64,
}

impl SaPool {
    /// An empty pool for lcore `lcore` of `lcores` (0 lcores reads as 1), with
    /// [`DEFAULT_POOLS`] pools per local address.
    pub fn new(lcore: u16, lcores: u16) -> Self {
        Self::with_pools(lcore, lcores, DEFAULT_POOLS)
    }
    /// As [`SaPool::new`] with `pools` pools per local address (clamped to 1..=[`MAX_POOLS`];
    /// 1 holds a port for one connection whatever its real server).
    pub fn with_pools(lcore: u16, lcores: u16, pools: usize) -> Self {
        let lcores = lcores.max(1);
        SaPool {
            lcore: lcore % lcores,
            lcores,
            npools: pools.clamp(1, MAX_POOLS),
            addrs: Vec::new(),
            bad_releases: 0,
        }
    }
    /// The lcore owning local port `port` among `lcores` lcores.
    #[inline]
    pub const fn owner_lcore(port: u16, lcores: u16) -> u16 {
        if lcores <= 1 { 0 } else { port % lcores }
    }
    /// Pools per local address.
    pub fn pools(&self) -> usize {
        self.npools
    }
    /// The pool a connection to real server `raddr`:`rport` takes its port from (DPVS's
    /// `sa_pool_hash`: IPv4 `((address & 0xffff) + port) % pools`; IPv6 a hash of both).
    #[inline]
    pub fn pool_of(&self, raddr: Addr, rport: u16) -> usize {
        let n = self.npools;
        if n == 1 {
            return 0;
        }
        if raddr.is_v4() {
            ((raddr.v4_u32() & 0xffff) as usize + rport as usize) % n
        } else {
            (rvs_core::hash::hash_addr_port(raddr, rport, 0x5a_9001) % n as u64) as usize
        }
    }
    /// The real server a connection's local port is pooled under: the real server's address
    /// and port, or port 0 for ICMP echo (whose identifier stands for both ports and is the
    /// local port itself). What [`SaPool::take`] is given at creation and
    /// [`SaPool::release`] at expiry.
    #[inline]
    pub const fn pool_key(proto: Proto, raddr: Addr, rport: u16) -> (Addr, u16) {
        match proto {
            Proto::Icmp | Proto::Icmp6 => (raddr, 0),
            Proto::Tcp | Proto::Udp => (raddr, rport),
        }
    }
    /// Add a local address (control path: allocates its pools). Adding one twice does
    /// nothing.
    pub fn add_laddr(&mut self, laddr: Addr) {
        if self.addrs.iter().any(|r| r.laddr == laddr) {
            return;
        }
        let ports: Vec<u16> = (PORT_MIN..=PORT_MAX)
            .filter(|p| SaPool::owner_lcore(*p, self.lcores) == self.lcore)
            .collect();
        let pools = (0..self.npools).map(|_| PortRing::new(&ports)).collect();
        self.addrs.push(AddrPools { laddr, pools });
    }
    /// True when `laddr` is one of this pool's local addresses.
    pub fn has_laddr(&self, laddr: Addr) -> bool {
        self.addrs.iter().any(|r| r.laddr == laddr)
    }
    #[inline]
    fn ring(&mut self, laddr: Addr, raddr: Addr, rport: u16) -> Option<&mut PortRing> {
        let k = self.pool_of(raddr, rport);
        self.addrs
            .iter_mut()
            .find(|r| r.laddr == laddr)
            .map(|a| &mut a.pools[k])
    }
    /// A free local port of `laddr` owned by this lcore for a connection to real server
    /// `raddr`:`rport`; `None` when that real server's pool has none left or the address is
    /// unknown.
    #[inline]
    pub fn take(&mut self, laddr: Addr, raddr: Addr, rport: u16) -> Option<u16> {
        self.ring(laddr, raddr, rport)?.take()
    }
    /// Give back a port taken from `laddr` for real server `raddr`:`rport`. A port that was
    /// not taken there (or that another lcore owns, or of an unknown address) is refused and
    /// counted in [`SaPool::bad_releases`].
    #[inline]
    pub fn release(&mut self, laddr: Addr, port: u16, raddr: Addr, rport: u16) {
        let (lcore, lcores) = (self.lcore, self.lcores);
        let ok = Self::owner_lcore(port, lcores) == lcore
            && (PORT_MIN..=PORT_MAX).contains(&port)
            && self.ring(laddr, raddr, rport).is_some_and(|r| r.release(port));
        if !ok {
            self.bad_releases += 1;
        }
    }
    /// Free ports of `laddr` in all its pools (0 for an unknown address).
    pub fn available(&self, laddr: Addr) -> usize {
        self.addrs
            .iter()
            .find(|r| r.laddr == laddr)
            .map_or(0, |a| a.pools.iter().map(|p| p.len).sum())
    }
    /// Free ports of `laddr` for connections to `raddr`:`rport` (their pool).
    pub fn available_for(&self, laddr: Addr, raddr: Addr, rport: u16) -> usize {
        let k = self.pool_of(raddr, rport);
        self.addrs
            .iter()
            .find(|r| r.laddr == laddr)
            .map_or(0, |a| a.pools[k].len)
    }
    /// Ports of `laddr` in all its pools (each pool holds every port this lcore owns).
    pub fn owned(&self, laddr: Addr) -> usize {
        self.addrs
            .iter()
            .find(|r| r.laddr == laddr)
            .map_or(0, |a| a.pools.iter().map(|p| p.ring.len()).sum())
    }
    /// Ports of `laddr` this lcore owns (in one pool).
    pub fn owned_per_pool(&self, laddr: Addr) -> usize {
        self.addrs
            .iter()
            .find(|r| r.laddr == laddr)
            .map_or(0, |a| a.pools[0].ring.len())
    }
    /// This pool's lcore.
    pub fn lcore(&self) -> u16 {
        self.lcore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn la() -> Addr {
        Addr::v4([198, 18, 1, 1])
    }
    fn rs() -> Addr {
        Addr::v4([198, 18, 1, 11])
    }

    #[test]
    fn lcores_partition_the_ports() {
        for lcores in [1u16, 2, 3, 4, 7] {
            let mut seen = vec![0u8; 65536];
            for l in 0..lcores {
                let mut p = SaPool::with_pools(l, lcores, 4);
                p.add_laddr(la());
                while let Some(port) = p.take(la(), rs(), 80) {
                    assert_eq!(SaPool::owner_lcore(port, lcores), l);
                    seen[port as usize] += 1;
                }
                assert_eq!(p.available_for(la(), rs(), 80), 0);
                assert_eq!(p.available(la()), 3 * p.owned_per_pool(la()), "other pools untouched");
            }
            for (port, n) in seen.iter().enumerate() {
                let want = u8::from(port >= PORT_MIN as usize);
                assert_eq!(*n, want, "port {port} with {lcores} lcores");
            }
        }
    }

    #[test]
    fn exhaustion_release_and_fifo_reuse() {
        let mut p = SaPool::new(1, 4);
        p.add_laddr(la());
        let total = p.owned_per_pool(la());
        // Ports 1025..=65535 with p % 4 == 1: 1025, 1029, ..., 65533.
        assert_eq!(total, (65533 - 1025) / 4 + 1);
        assert_eq!(p.owned(la()), DEFAULT_POOLS * total);
        let first = p.take(la(), rs(), 80);
        assert_eq!(first, Some(1025));
        let mut taken = vec![1025u16];
        while let Some(x) = p.take(la(), rs(), 80) {
            taken.push(x);
        }
        assert_eq!(taken.len(), total);
        assert_eq!(p.take(la(), rs(), 80), None);
        p.release(la(), 1029, rs(), 80);
        p.release(la(), 1025, rs(), 80);
        // FIFO: the first released comes back first.
        assert_eq!(p.take(la(), rs(), 80), Some(1029));
        assert_eq!(p.take(la(), rs(), 80), Some(1025));
        assert_eq!(p.bad_releases, 0);
    }

    #[test]
    fn bad_releases_are_refused_and_counted() {
        let mut p = SaPool::new(0, 2);
        p.add_laddr(la());
        p.release(la(), 2000, rs(), 80); // never taken
        p.release(la(), 1025, rs(), 80); // owned by lcore 1
        p.release(Addr::v4([198, 18, 9, 9]), 1026, rs(), 80); // unknown address
        assert_eq!(p.bad_releases, 3);
        let x = p.take(la(), rs(), 80).unwrap();
        // Given back to another real server's pool: refused there.
        let other = (1..)
            .map(|k| Addr::v4([198, 18, 1, 11 + k]))
            .find(|a| p.pool_of(*a, 80) != p.pool_of(rs(), 80))
            .unwrap();
        p.release(la(), x, other, 80);
        assert_eq!(p.bad_releases, 4);
        p.release(la(), x, rs(), 80);
        p.release(la(), x, rs(), 80); // double release
        assert_eq!(p.bad_releases, 5);
        assert_eq!(p.available(la()), p.owned(la()));
        assert_eq!(p.take(Addr::v4([198, 18, 9, 9]), rs(), 80), None);
    }

    #[test]
    fn pool_of_follows_dpvs_for_ipv4_and_spreads_ipv6() {
        let p = SaPool::new(0, 1);
        // ((0xc612_010b & 0xffff) + 8080) % 16 = (0x010b + 8080) % 16 = 8347 % 16 = 11.
        assert_eq!(p.pool_of(rs(), 8080), 11);
        assert_eq!(p.pool_of(Addr::v4([10, 0, 0, 0]), 0), 0);
        let mut seen = HashSet::new();
        for k in 0..64u8 {
            let mut o = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            o[15] = k;
            let i = p.pool_of(Addr::v6(o), 443);
            assert!(i < DEFAULT_POOLS);
            seen.insert(i);
        }
        assert!(
            seen.len() > DEFAULT_POOLS / 2,
            "IPv6 real servers spread over the pools: {seen:?}"
        );
        assert_eq!(SaPool::with_pools(0, 1, 1).pool_of(rs(), 8080), 0);
        assert_eq!(SaPool::with_pools(0, 1, 1000).pools(), MAX_POOLS);
    }

    /// One local address, one lcore: four real servers in four different pools hold
    /// 4 x 64511 connections at once, far past the 64k a port-per-connection pool allows, and
    /// no two of them share an outbound 5-tuple (real server address and port, local address
    /// and port).
    #[test]
    fn one_local_address_carries_more_than_64k_connections_across_real_servers() {
        let mut p = SaPool::new(0, 1);
        p.add_laddr(la());
        let mut servers = Vec::new();
        for k in 0..=255u8 {
            let a = Addr::v4([198, 18, 1, k]);
            if servers
                .iter()
                .all(|&(b, _): &(Addr, u16)| p.pool_of(b, 8080) != p.pool_of(a, 8080))
            {
                servers.push((a, 8080));
            }
            if servers.len() == 4 {
                break;
            }
        }
        let mut tuples = HashSet::new();
        for &(ra, rp) in &servers {
            while let Some(port) = p.take(la(), ra, rp) {
                assert!(tuples.insert((ra, rp, la(), port)), "5-tuple reused");
            }
        }
        assert_eq!(tuples.len(), 4 * 64511);
        assert!(tuples.len() > 65536);
        // Every local port is in use toward each of the four at once.
        let ports: HashSet<u16> = tuples.iter().map(|t| t.3).collect();
        assert_eq!(ports.len(), 64511);
        // All back, every release accepted.
        for (ra, rp, l, port) in tuples {
            p.release(l, port, ra, rp);
        }
        assert_eq!(p.bad_releases, 0);
        assert_eq!(p.available(la()), p.owned(la()));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(u8),
        Release(usize),
    }

    proptest! {
        /// Against a model: a port is never in use twice toward one real server, every port
        /// taken is released without complaint, and the free counts add up.
        #[test]
        fn takes_and_releases_against_a_model(
            pools in 1usize..6,
            ops in proptest::collection::vec(
                prop_oneof![(0u8..8).prop_map(Op::Take), (0usize..64).prop_map(Op::Release)],
                1..400,
            )
        ) {
            let mut p = SaPool::with_pools(1, 3, pools);
            p.add_laddr(la());
            let per_pool = p.owned_per_pool(la());
            let server = |k: u8| (Addr::v4([198, 18, 2, k]), 8000 + u16::from(k) * 3);
            let mut live: Vec<(Addr, u16, u16)> = Vec::new();
            let mut in_use: HashSet<(Addr, u16, u16)> = HashSet::new();
            for op in ops {
                match op {
                    Op::Take(k) => {
                        let (ra, rp) = server(k);
                        let port = p.take(la(), ra, rp).expect("far from exhaustion");
                        prop_assert_eq!(SaPool::owner_lcore(port, 3), 1);
                        // Unique toward this server, and toward any server sharing its pool.
                        for &(oa, op_, oport) in &live {
                            if p.pool_of(oa, op_) == p.pool_of(ra, rp) {
                                prop_assert_ne!(oport, port);
                            }
                        }
                        prop_assert!(in_use.insert((ra, rp, port)));
                        live.push((ra, rp, port));
                    }
                    Op::Release(i) if !live.is_empty() => {
                        let (ra, rp, port) = live.swap_remove(i % live.len());
                        in_use.remove(&(ra, rp, port));
                        p.release(la(), port, ra, rp);
                    }
                    Op::Release(_) => {}
                }
                prop_assert_eq!(p.bad_releases, 0);
                prop_assert_eq!(p.available(la()), pools * per_pool - live.len());
            }
        }
    }
}
