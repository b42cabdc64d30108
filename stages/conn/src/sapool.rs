//! FNAT/SNAT local ports of one lcore: DPVS's `sa_pool`.
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
//! Take and release are O(1): each local address keeps its free ports in a ring, taken from
//! the front and returned to the back, so a released port is reused as late as possible (the
//! real server may still hold the old connection in TIME_WAIT), plus a bitmap that refuses a
//! double release or a port this lcore does not own.
//!
//! Not done: DPVS additionally lets one local port serve several real servers at once (a
//! pool per real-server address and port); here a port is held for the connection's life
//! whatever the real server, which caps one local address at about 64k / lcores concurrent
//! FNAT connections on this lcore.

use rvs_core::addr::Addr;

/// Lowest local port handed out.
pub const PORT_MIN: u16 = 1025;
/// Highest local port handed out.
pub const PORT_MAX: u16 = 65535;

/// The free ports of one local address on this lcore.
#[derive(Debug)]
struct PortRing {
    laddr: Addr,
    ring: Box<[u16]>,
    head: usize,
    len: usize,
    /// One bit per port: set while the port is free (in the ring).
    free: Box<[u64]>,
}

impl PortRing {
    fn new(laddr: Addr, lcore: u16, lcores: u16) -> Self {
        let ports: Vec<u16> = (PORT_MIN..=PORT_MAX)
            .filter(|p| SaPool::owner_lcore(*p, lcores) == lcore)
            .collect();
        let mut free = vec![0u64; 65536 / 64].into_boxed_slice();
        for p in &ports {
            free[*p as usize / 64] |= 1 << (*p % 64);
        }
        let len = ports.len();
        PortRing {
            laddr,
            ring: ports.into_boxed_slice(),
            head: 0,
            len,
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

/// The local ports this lcore owns, per local address.
#[derive(Debug)]
pub struct SaPool {
    lcore: u16,
    lcores: u16,
    addrs: Vec<PortRing>,
    /// Releases refused: a port not taken, not owned by this lcore, or an unknown address.
    pub bad_releases: u64,
}

impl SaPool {
    /// An empty pool for lcore `lcore` of `lcores` (0 lcores reads as 1).
    pub fn new(lcore: u16, lcores: u16) -> Self {
        let lcores = lcores.max(1);
        SaPool {
            lcore: lcore % lcores,
            lcores,
            addrs: Vec::new(),
            bad_releases: 0,
        }
    }
    /// The lcore owning local port `port` among `lcores` lcores.
    #[inline]
    pub const fn owner_lcore(port: u16, lcores: u16) -> u16 {
        if lcores <= 1 { 0 } else { port % lcores }
    }
    /// Add a local address (control path: allocates its port ring). Adding one twice does
    /// nothing.
    pub fn add_laddr(&mut self, laddr: Addr) {
        if !self.addrs.iter().any(|r| r.laddr == laddr) {
            self.addrs.push(PortRing::new(laddr, self.lcore, self.lcores));
        }
    }
    /// True when `laddr` is one of this pool's local addresses.
    pub fn has_laddr(&self, laddr: Addr) -> bool {
        self.addrs.iter().any(|r| r.laddr == laddr)
    }
    #[inline]
    fn ring(&mut self, laddr: Addr) -> Option<&mut PortRing> {
        self.addrs.iter_mut().find(|r| r.laddr == laddr)
    }
    /// A free local port of `laddr` owned by this lcore; `None` when they are all in use or
    /// the address is unknown.
    #[inline]
    pub fn take(&mut self, laddr: Addr) -> Option<u16> {
        self.ring(laddr)?.take()
    }
    /// Give back a port taken from `laddr`. A port that was not taken (or that another lcore
    /// owns, or of an unknown address) is refused and counted in [`SaPool::bad_releases`].
    #[inline]
    pub fn release(&mut self, laddr: Addr, port: u16) {
        let (lcore, lcores) = (self.lcore, self.lcores);
        let ok = Self::owner_lcore(port, lcores) == lcore
            && (PORT_MIN..=PORT_MAX).contains(&port)
            && self.ring(laddr).is_some_and(|r| r.release(port));
        if !ok {
            self.bad_releases += 1;
        }
    }
    /// Free ports of `laddr` (0 for an unknown address).
    pub fn available(&self, laddr: Addr) -> usize {
        self.addrs.iter().find(|r| r.laddr == laddr).map_or(0, |r| r.len)
    }
    /// Ports of `laddr` this lcore owns in all.
    pub fn owned(&self, laddr: Addr) -> usize {
        self.addrs.iter().find(|r| r.laddr == laddr).map_or(0, |r| r.ring.len())
    }
    /// This pool's lcore.
    pub fn lcore(&self) -> u16 {
        self.lcore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la() -> Addr {
        Addr::v4([198, 18, 1, 1])
    }

    #[test]
    fn lcores_partition_the_ports() {
        for lcores in [1u16, 2, 3, 4, 7] {
            let mut seen = vec![0u8; 65536];
            for l in 0..lcores {
                let mut p = SaPool::new(l, lcores);
                p.add_laddr(la());
                while let Some(port) = p.take(la()) {
                    assert_eq!(SaPool::owner_lcore(port, lcores), l);
                    seen[port as usize] += 1;
                }
                assert_eq!(p.available(la()), 0);
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
        let total = p.owned(la());
        // Ports 1025..=65535 with p % 4 == 1: 1025, 1029, ..., 65533.
        assert_eq!(total, (65533 - 1025) / 4 + 1);
        let first = p.take(la());
        assert_eq!(first, Some(1025));
        let mut taken = vec![1025u16];
        while let Some(x) = p.take(la()) {
            taken.push(x);
        }
        assert_eq!(taken.len(), total);
        assert_eq!(p.take(la()), None);
        p.release(la(), 1029);
        p.release(la(), 1025);
        // FIFO: the first released comes back first.
        assert_eq!(p.take(la()), Some(1029));
        assert_eq!(p.take(la()), Some(1025));
        assert_eq!(p.bad_releases, 0);
    }

    #[test]
    fn bad_releases_are_refused_and_counted() {
        let mut p = SaPool::new(0, 2);
        p.add_laddr(la());
        p.release(la(), 2000); // never taken
        p.release(la(), 1025); // owned by lcore 1
        p.release(Addr::v4([198, 18, 9, 9]), 1026); // unknown address
        assert_eq!(p.bad_releases, 3);
        let x = p.take(la()).unwrap();
        p.release(la(), x);
        p.release(la(), x); // double release
        assert_eq!(p.bad_releases, 4);
        assert_eq!(p.available(la()), p.owned(la()));
        assert_eq!(p.take(Addr::v4([198, 18, 9, 9])), None);
    }
}
