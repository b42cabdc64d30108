//! The packet buffer abstraction: the `rte_mbuf` operations the stages use, and a heap
//! implementation with real headroom for tests, benches, pcap replay and the lab.
//!
//! A buffer is one contiguous segment (rvs does not build chained mbufs): `headroom` bytes,
//! then the packet data, then `tailroom` bytes, exactly as `rte_pktmbuf_*` see an mbuf.

/// Default headroom of heap buffers, DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default data room of heap buffers (headroom included), DPDK's default mbuf data room.
pub const DEFAULT_BUF_SIZE: usize = 2048 + DEFAULT_HEADROOM;

/// Transmit offload requests a stage may set on a buffer for a port that advertises the
/// capability (see [`crate::checksum::OffloadCaps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOffload {
    /// Hardware computes the IPv4 header checksum.
    pub ipv4_cksum: bool,
    /// Hardware completes the TCP or UDP checksum (the pseudo-header sum is in the field).
    pub l4_cksum: bool,
    /// Length of the L2 header in front of the L3 header.
    pub l2_len: u8,
    /// Length of the L3 header.
    pub l3_len: u16,
}

/// One packet buffer.
///
/// Every operation is bounds-checked and reports failure instead of panicking: a stage that
/// cannot prepend (no headroom) drops the packet with a reason.
pub trait Mbuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grow the packet by `n` bytes at the front (`rte_pktmbuf_prepend`); the new bytes are
    /// returned for writing. `None` when the headroom is too small; the packet is unchanged.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Remove `n` bytes from the front (`rte_pktmbuf_adj`). False (unchanged) when `n > len`.
    fn adj(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the end (`rte_pktmbuf_trim`). False (unchanged) when `n > len`.
    fn trim(&mut self, n: usize) -> bool;
    /// Grow the packet by `n` bytes at the end (`rte_pktmbuf_append`); the new bytes are
    /// returned for writing. `None` when the tailroom is too small.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// The port the packet arrived on (or is to leave by, once set).
    fn port(&self) -> u16;
    /// Set the port.
    fn set_port(&mut self, port: u16);
    /// The receive hash the NIC computed, if any (RSS).
    fn rss_hash(&self) -> Option<u32> {
        None
    }
    /// Ask the port to complete checksums on transmit. Only called for a port whose
    /// [`crate::checksum::OffloadCaps`] advertise the capability.
    fn set_tx_offload(&mut self, req: TxOffload);
    /// The transmit offload requests set so far.
    fn tx_offload(&self) -> TxOffload;

    /// Insert `n` zero bytes at offset `at` of the data, moving the bytes in front of `at`
    /// into the headroom (the way DPVS inserts TOA: headers move, payload stays). Returns
    /// false (unchanged) when `at > len` or the headroom is too small.
    fn insert_front(&mut self, at: usize, n: usize) -> bool {
        if at > self.len() || self.headroom() < n {
            return false;
        }
        if self.prepend(n).is_none() {
            return false;
        }
        let d = self.data_mut();
        d.copy_within(n..n + at, 0);
        d[at..at + n].fill(0);
        true
    }
    /// Remove `n` bytes at offset `at`, moving the bytes in front of them forward. Returns
    /// false (unchanged) when the range is outside the data.
    fn remove_front(&mut self, at: usize, n: usize) -> bool {
        if at.checked_add(n).is_none_or(|end| end > self.len()) {
            return false;
        }
        self.data_mut().copy_within(0..at, n);
        self.adj(n)
    }
}

/// A pool of buffers that stages draw from to emit packets they create (SYN-ACKs, SYNs to
/// real servers, ARP replies, RSTs), and that drivers return dropped packets to.
///
/// Pools are preallocated: `alloc` never allocates memory, it fails (`None`) when empty,
/// and the caller counts the failure as a drop.
pub trait PacketPool<M: Mbuf> {
    /// A fresh empty buffer (length 0, default headroom), or `None` when exhausted.
    fn alloc(&mut self) -> Option<M>;
    /// Give a buffer back.
    fn free(&mut self, m: M);
    /// Buffers currently available.
    fn available(&self) -> usize;
    /// Buffers the pool was created with.
    fn capacity(&self) -> usize;
}

/// A heap packet buffer: a boxed byte array with headroom, data and tailroom.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapMbuf {
    buf: Box<[u8]>,
    off: usize,
    len: usize,
    port: u16,
    offload: TxOffload,
}

impl std::fmt::Debug for HeapMbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapMbuf")
            .field("port", &self.port)
            .field("headroom", &self.off)
            .field("len", &self.len)
            .finish()
    }
}

impl HeapMbuf {
    /// An empty buffer of `size` bytes with `headroom` bytes in front of the data.
    pub fn with_capacity(size: usize, headroom: usize) -> Self {
        HeapMbuf {
            buf: vec![0u8; size].into_boxed_slice(),
            off: headroom.min(size),
            len: 0,
            port: 0,
            offload: TxOffload::default(),
        }
    }
    /// A buffer of the default size holding a copy of `bytes` after the default headroom
    /// (the buffer grows if `bytes` is larger than the default data room).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let size = DEFAULT_BUF_SIZE.max(DEFAULT_HEADROOM + bytes.len());
        let mut m = Self::with_capacity(size, DEFAULT_HEADROOM);
        m.fill(bytes);
        m
    }
    /// Replace the contents with `bytes` after the default headroom; false when they do not
    /// fit (the buffer is unchanged).
    pub fn fill(&mut self, bytes: &[u8]) -> bool {
        let head = DEFAULT_HEADROOM.min(self.buf.len());
        if head + bytes.len() > self.buf.len() {
            return false;
        }
        self.off = head;
        self.len = bytes.len();
        self.buf[head..head + bytes.len()].copy_from_slice(bytes);
        self.offload = TxOffload::default();
        true
    }
    /// Reset to an empty buffer with the default headroom.
    pub fn reset(&mut self) {
        self.off = DEFAULT_HEADROOM.min(self.buf.len());
        self.len = 0;
        self.port = 0;
        self.offload = TxOffload::default();
    }
    /// Total size of the underlying buffer.
    pub fn buf_size(&self) -> usize {
        self.buf.len()
    }
}

impl Mbuf for HeapMbuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
    fn len(&self) -> usize {
        self.len
    }
    fn headroom(&self) -> usize {
        self.off
    }
    fn tailroom(&self) -> usize {
        self.buf.len() - self.off - self.len
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.off {
            return None;
        }
        self.off -= n;
        self.len += n;
        Some(&mut self.buf[self.off..self.off + n])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.off += n;
        self.len -= n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let start = self.off + self.len;
        self.len += n;
        Some(&mut self.buf[start..start + n])
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }
    fn set_tx_offload(&mut self, req: TxOffload) {
        self.offload = req;
    }
    fn tx_offload(&self) -> TxOffload {
        self.offload
    }
}

/// A preallocated pool of heap buffers: `alloc` and `free` move boxes in and out of a
/// vector whose capacity was reserved up front, so neither allocates.
#[derive(Debug)]
pub struct HeapPool {
    free: Vec<HeapMbuf>,
    capacity: usize,
    buf_size: usize,
}

impl HeapPool {
    /// A pool of `n` buffers of the default size.
    pub fn new(n: usize) -> Self {
        Self::with_buf_size(n, DEFAULT_BUF_SIZE)
    }
    /// A pool of `n` buffers of `buf_size` bytes each (headroom included).
    pub fn with_buf_size(n: usize, buf_size: usize) -> Self {
        let mut free = Vec::with_capacity(n);
        for _ in 0..n {
            free.push(HeapMbuf::with_capacity(buf_size, DEFAULT_HEADROOM));
        }
        HeapPool {
            free,
            capacity: n,
            buf_size,
        }
    }
    /// A buffer holding a copy of `bytes`, or `None` when the pool is empty or the bytes do
    /// not fit in one buffer.
    pub fn alloc_with(&mut self, bytes: &[u8]) -> Option<HeapMbuf> {
        let mut m = self.alloc()?;
        if m.fill(bytes) {
            Some(m)
        } else {
            self.free(m);
            None
        }
    }
}

impl PacketPool<HeapMbuf> for HeapPool {
    fn alloc(&mut self) -> Option<HeapMbuf> {
        let mut m = self.free.pop()?;
        m.reset();
        Some(m)
    }
    fn free(&mut self, m: HeapMbuf) {
        // A buffer of another size (made by `HeapMbuf::from_bytes`) is not pooled; dropping
        // it keeps the pool's capacity and buffer size honest.
        if self.free.len() < self.capacity && m.buf_size() == self.buf_size {
            self.free.push(m);
        }
    }
    fn available(&self) -> usize {
        self.free.len()
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_append_respect_bounds() {
        let mut m = HeapMbuf::with_capacity(256, 16);
        assert_eq!(m.len(), 0);
        m.append(10).unwrap().copy_from_slice(&[1; 10]);
        assert_eq!(m.tailroom(), 256 - 16 - 10);
        m.prepend(4).unwrap().copy_from_slice(&[9; 4]);
        assert_eq!(m.data()[..5], [9, 9, 9, 9, 1]);
        assert_eq!(m.headroom(), 12);
        assert!(m.prepend(13).is_none());
        assert_eq!(m.len(), 14);
        assert!(m.adj(4));
        assert!(!m.adj(11));
        assert!(m.trim(5));
        assert_eq!(m.data(), &[1; 5]);
        assert!(m.append(1000).is_none());
    }

    #[test]
    fn insert_and_remove_in_front_keep_payload() {
        let mut m = HeapMbuf::from_bytes(&[1, 2, 3, 4, 5, 6]);
        assert!(m.insert_front(4, 2));
        assert_eq!(m.data(), &[1, 2, 3, 4, 0, 0, 5, 6]);
        assert!(m.remove_front(4, 2));
        assert_eq!(m.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(!m.remove_front(5, 2));
        assert!(!m.insert_front(7, 1));
    }

    #[test]
    fn pool_recycles_without_growing() {
        let mut p = HeapPool::new(2);
        let a = p.alloc_with(&[1, 2, 3]).unwrap();
        let b = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        assert_eq!(a.data(), &[1, 2, 3]);
        p.free(a);
        p.free(b);
        p.free(HeapMbuf::from_bytes(&[0; 10_000]));
        assert_eq!(p.available(), 2);
        let c = p.alloc().unwrap();
        assert!(c.is_empty());
        assert_eq!(c.headroom(), DEFAULT_HEADROOM);
    }
}
