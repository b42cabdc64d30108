//! Packet mbuf pools (`rte_pktmbuf_pool_create`) and the rvs-core [`PacketPool`] over them.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use rvs_core::mbuf::PacketPool;

use crate::eal::{Eal, Live};
use crate::error::{Error, Result};
use crate::mbuf::RteMbuf;

/// Data room of an mbuf by default: DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE` (2048 + headroom).
pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RVS_MBUF_DEFAULT_BUF_SIZE;
/// Headroom DPDK leaves in front of the data of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = dpdk_sys::RVS_PKTMBUF_HEADROOM;

struct PoolInner {
    mp: NonNull<dpdk_sys::rte_mempool>,
    _live: Live,
}

// SAFETY: an `rte_mempool` made with default flags is multi-producer/multi-consumer safe;
// this handle only calls thread-safe functions on it.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: `mp` is a live pool; counting is thread safe.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.mp.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of the pool is out and no handle to it remains.
            unsafe { dpdk_sys::rte_mempool_free(self.mp.as_ptr()) };
        }
        // Otherwise some mbuf still points at the pool: it is left allocated (leaked) so that
        // freeing that mbuf later stays sound.
    }
}

/// A pool of packet mbufs. Cloning shares the pool; it is freed when the last handle goes
/// and no mbuf of it is out.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

impl Mempool {
    /// `rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket)`: `n` mbufs of
    /// `data_room` bytes (headroom included; [`DEFAULT_DATA_ROOM`] is DPDK's default) with a
    /// per-lcore cache of `cache` mbufs, on NUMA `socket` (`None`: any).
    pub fn new(eal: &Eal, name: &str, n: u32, cache: u32, data_room: u16, socket: Option<u32>) -> Result<Mempool> {
        let live = Live::new(eal)?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArg(name.into()))?;
        let socket = socket.map(|s| s as i32).unwrap_or(dpdk_sys::RVS_SOCKET_ID_ANY);
        // SAFETY: valid NUL-terminated name; the EAL is initialised (`live`).
        let mp = unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let mp = NonNull::new(mp).ok_or_else(|| Error::errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            inner: Arc::new(PoolInner { mp, _live: live }),
        })
    }

    /// The raw pool.
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.mp.as_ptr()
    }

    fn raw(&self) -> &dpdk_sys::rte_mempool {
        // SAFETY: the pool lives as long as `self.inner`.
        unsafe { self.inner.mp.as_ref() }
    }

    /// The pool's name.
    pub fn name(&self) -> String {
        // SAFETY: `name` is a NUL-terminated array inside the pool.
        unsafe { CStr::from_ptr(self.raw().name.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Mbufs the pool was created with.
    pub fn capacity(&self) -> usize {
        self.raw().size as usize
    }

    /// Mbufs available (in the pool and the per-lcore caches).
    pub fn available(&self) -> usize {
        // SAFETY: thread-safe count over a live pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.as_ptr()) as usize }
    }

    /// Mbufs out of the pool (held by the application or a device).
    pub fn in_use(&self) -> usize {
        // SAFETY: thread-safe count over a live pool.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) as usize }
    }

    /// Data room of each mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        // SAFETY: a pktmbuf pool's private area holds its data room size.
        unsafe { dpdk_sys::rvs_pktmbuf_data_room_size(self.as_ptr()) }
    }

    /// A fresh mbuf (`rte_pktmbuf_alloc`: reset, length 0, [`HEADROOM`] bytes of headroom),
    /// or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<RteMbuf> {
        // SAFETY: live pool; the returned mbuf (if any) is owned by the caller.
        let m = unsafe { dpdk_sys::rvs_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a fresh mbuf from `rte_pktmbuf_alloc` is a single reset segment we own.
        unsafe { RteMbuf::from_raw(m) }
    }

    /// Fill `out`'s spare capacity with fresh mbufs, all or nothing
    /// (`rte_pktmbuf_alloc_bulk`). Returns how many were added (0 when the pool has fewer).
    pub fn alloc_bulk(&self, out: &mut Vec<RteMbuf>, n: usize) -> usize {
        let n = n.min(out.capacity() - out.len()).min(u32::MAX as usize);
        if n == 0 {
            return 0;
        }
        let len = out.len();
        let dst = out.spare_capacity_mut().as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf;
        // SAFETY: `dst` has room for `n` pointers; `RteMbuf` is a transparent non-null mbuf
        // pointer, and on success all `n` are written with fresh single-segment mbufs.
        let ret = unsafe { dpdk_sys::rvs_pktmbuf_alloc_bulk(self.as_ptr(), dst, n as u32) };
        if ret != 0 {
            return 0;
        }
        // SAFETY: the first `n` spare slots were initialised above.
        unsafe { out.set_len(len + n) };
        n
    }
}

/// The rvs-core [`PacketPool`] over a [`Mempool`]: what stages draw packets from
/// (SYN-ACKs, SYNs to real servers, ARP replies) and what drops go back to.
#[derive(Debug, Clone)]
pub struct RtePool {
    pool: Mempool,
}

impl RtePool {
    /// A packet pool over `pool`.
    pub fn new(pool: Mempool) -> Self {
        RtePool { pool }
    }
    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.pool
    }
}

impl PacketPool<RteMbuf> for RtePool {
    #[inline]
    fn alloc(&mut self) -> Option<RteMbuf> {
        self.pool.alloc()
    }
    #[inline]
    fn free(&mut self, m: RteMbuf) {
        drop(m);
    }
    fn available(&self) -> usize {
        self.pool.available()
    }
    fn capacity(&self) -> usize {
        self.pool.capacity()
    }
}
