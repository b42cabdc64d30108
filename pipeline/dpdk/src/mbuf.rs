//! `RteMbuf`: an owned `rte_mbuf` implementing rvs-core's [`Mbuf`].
//!
//! The per-packet fields (`data_off`, `data_len`, `pkt_len`, `port`, `ol_flags`, the RSS
//! hash, `tx_offload`) are read and written as plain fields of the bindgen `rte_mbuf`, whose
//! layout `dpdk-sys` asserts at compile time; only allocation and freeing go through the C
//! shim. `prepend`/`adj`/`trim`/`append` do what `rte_pktmbuf_prepend`/`_adj`/`_trim`/
//! `_append` do on a single segment (the integration tests check them against those very
//! functions). rvs never builds chained mbufs, and the checked receive paths free chained
//! ones (see [`crate::port::RxQueue`]). A chained mbuf that gets through the raw
//! `rx_burst` stays memory-safe (every access is bounded by the first segment's
//! `data_off`, `data_len` and `buf_len`) but shows only its first segment.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;
use rvs_core::mbuf::{Mbuf, TxOffload};

/// An owned packet mbuf; dropping it frees it to its pool (`rte_pktmbuf_free`).
///
/// `repr(transparent)` over a non-null `rte_mbuf` pointer, so a slice of `RteMbuf` is a
/// `struct rte_mbuf **` array the burst functions take directly, and `Option<RteMbuf>` is
/// pointer-sized.
#[repr(transparent)]
pub struct RteMbuf(NonNull<rte_mbuf>);

// SAFETY: an `RteMbuf` owns its mbuf exclusively (refcount 1, no other handle), and
// `rte_pktmbuf_free` may run on any thread (mempools are multi-producer safe).
unsafe impl Send for RteMbuf {}

impl std::fmt::Debug for RteMbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.raw();
        f.debug_struct("RteMbuf")
            .field("port", &m.port)
            .field("data_off", &m.data_off)
            .field("data_len", &m.data_len)
            .field("pkt_len", &m.pkt_len)
            .field("ol_flags", &format_args!("{:#x}", m.ol_flags))
            .finish()
    }
}

const TX_FLAGS: u64 = dpdk_sys::RVS_MBUF_F_TX_L4_MASK
    | dpdk_sys::RVS_MBUF_F_TX_IP_CKSUM
    | dpdk_sys::RVS_MBUF_F_TX_IPV4
    | dpdk_sys::RVS_MBUF_F_TX_IPV6;
/// `tx_offload` bit fields (rte_mbuf_core.h: `RTE_MBUF_L2_LEN_BITS` 7, `RTE_MBUF_L3_LEN_BITS` 9).
const L2_BITS: u32 = 7;
const L3_BITS: u32 = 9;
const L2_MASK: u64 = (1 << L2_BITS) - 1;
const L3_MASK: u64 = ((1 << L3_BITS) - 1) << L2_BITS;

impl RteMbuf {
    /// Take ownership of a raw mbuf; `None` for a null pointer.
    ///
    /// # Safety
    /// `m` must be null or a valid single-segment mbuf that nothing else owns or uses
    /// (refcount 1), whose `data_off + data_len <= buf_len`.
    #[inline]
    pub unsafe fn from_raw(m: *mut rte_mbuf) -> Option<RteMbuf> {
        NonNull::new(m).map(RteMbuf)
    }

    /// Give up ownership; the caller must free the mbuf or hand it to DPDK.
    #[inline]
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The raw pointer (still owned by `self`).
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    /// The mbuf header, read-only.
    #[inline]
    pub fn raw(&self) -> &rte_mbuf {
        // SAFETY: `self` owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// The mbuf header, writable.
    ///
    /// # Safety
    /// The caller must keep the invariants the safe methods rely on: one segment,
    /// `data_off + data_len <= buf_len`, `pkt_len == data_len`, `buf_addr` and `pool`
    /// untouched.
    #[inline]
    pub unsafe fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: `self` owns the mbuf exclusively.
        unsafe { self.0.as_mut() }
    }

    #[inline]
    fn hdr(&mut self) -> &mut rte_mbuf {
        // SAFETY: private; every caller in this module keeps the invariants of `raw_mut`.
        unsafe { self.0.as_mut() }
    }

    /// `data_off`: headroom in front of the data.
    #[inline]
    pub fn data_off(&self) -> u16 {
        self.raw().data_off
    }
    /// `data_len`: bytes of data in this (the only) segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.raw().data_len
    }
    /// `pkt_len`: bytes of the whole packet (equal to `data_len` for one segment).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }
    /// `buf_len`: size of the data buffer, headroom included.
    #[inline]
    pub fn buf_len(&self) -> u16 {
        self.raw().buf_len
    }
    /// `ol_flags`: offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }
    /// The raw 32-bit `hash.rss` (meaningful when `RTE_MBUF_F_RX_RSS_HASH` is set).
    #[inline]
    pub fn hash_rss(&self) -> u32 {
        // SAFETY: every bit pattern is a valid u32.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }
    /// `packet_type` (`RTE_PTYPE_*`) as the device classified it.
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: every bit pattern is a valid u32.
        unsafe { self.raw().__bindgen_anon_1.packet_type }
    }
    /// `nb_segs`.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }
    /// True for a single-segment mbuf (what every `Mbuf` operation assumes; a chained one
    /// shows its first segment only).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }
    /// The pool the mbuf returns to.
    #[inline]
    pub fn pool_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw().pool
    }
    /// The reference count (1 for an owned mbuf).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: atomic read of a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_mbuf_refcnt_read(self.as_ptr()) }
    }

    /// Reset to an empty packet with the pool's default headroom (`rte_pktmbuf_reset`).
    pub fn reset(&mut self) {
        // SAFETY: resets the header fields of an owned single-segment mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_reset(self.as_ptr()) }
    }

    /// Replace the contents with `bytes` after the default headroom; false (and reset) when
    /// they do not fit.
    pub fn fill(&mut self, bytes: &[u8]) -> bool {
        self.reset();
        match self.append(bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Free a vector of mbufs in one call (`rte_pktmbuf_free_bulk`), leaving it empty
    /// (capacity kept): what a poll loop does with packets a device refused.
    pub fn free_bulk(v: &mut Vec<RteMbuf>) {
        let n = v.len();
        if n == 0 {
            return;
        }
        // SAFETY: `RteMbuf` is a transparent mbuf pointer, so the vector is an array of `n`
        // owned mbufs; they are freed here and the length is set to 0 so none is freed twice.
        unsafe {
            v.set_len(0);
            dpdk_sys::rte_pktmbuf_free_bulk(v.as_mut_ptr() as *mut *mut rte_mbuf, n as u32);
        }
    }

    fn ip_proto_at(&self, l2: usize) -> Option<(bool, u8)> {
        let d = self.data();
        let ver = d.get(l2)? >> 4;
        match ver {
            4 => Some((true, *d.get(l2 + 9)?)),
            6 => Some((false, *d.get(l2 + 6)?)),
            _ => None,
        }
    }
}

impl Drop for RteMbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` owns the mbuf; it is freed exactly once.
        unsafe { dpdk_sys::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Mbuf for RteMbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: `buf_addr` points at `buf_len` bytes owned by this mbuf and
        // `data_off + data_len <= buf_len` (invariant kept by DPDK and by this type).
        unsafe { std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize) }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.hdr();
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut((m.buf_addr as *mut u8).add(m.data_off as usize), m.data_len as usize) }
    }
    #[inline]
    fn len(&self) -> usize {
        self.raw().data_len as usize
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        // rte_pktmbuf_prepend: fail when len > headroom.
        if n > self.headroom() {
            return None;
        }
        let m = self.hdr();
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        Some(&mut self.data_mut()[..n])
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        // rte_pktmbuf_adj: fail when len > data_len.
        if n > self.len() {
            return false;
        }
        let m = self.hdr();
        m.data_len -= n as u16;
        m.data_off += n as u16;
        m.pkt_len -= n as u32;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        // rte_pktmbuf_trim: fail when len > data_len of the last segment.
        if n > self.len() {
            return false;
        }
        let m = self.hdr();
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        // rte_pktmbuf_append: fail when len > tailroom.
        if n > self.tailroom() {
            return None;
        }
        let old = self.len();
        let m = self.hdr();
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        Some(&mut self.data_mut()[old..])
    }
    #[inline]
    fn port(&self) -> u16 {
        self.raw().port
    }
    #[inline]
    fn set_port(&mut self, port: u16) {
        self.hdr().port = port;
    }
    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        (self.ol_flags() & dpdk_sys::RVS_MBUF_F_RX_RSS_HASH != 0).then(|| self.hash_rss())
    }

    /// Sets `RTE_MBUF_F_TX_IPV4`/`_IPV6`, `_IP_CKSUM` and `_TCP_CKSUM`/`_UDP_CKSUM` and the
    /// `l2_len`/`l3_len` fields, as DPDK's checksum offload wants them. The IP version and
    /// L4 protocol are read from the packet at `l2_len`; an L4 request on a packet whose
    /// protocol (IPv4 protocol or IPv6 next header) is neither TCP nor UDP is not set, and
    /// [`Mbuf::tx_offload`] reports it as not requested, so the caller can complete the
    /// checksum in software.
    fn set_tx_offload(&mut self, req: TxOffload) {
        let l2 = req.l2_len as usize;
        let ip = self.ip_proto_at(l2);
        let mut flags = self.ol_flags() & !TX_FLAGS;
        let is_v4 = matches!(ip, Some((true, _)));
        if req.ipv4_cksum && is_v4 {
            flags |= dpdk_sys::RVS_MBUF_F_TX_IPV4 | dpdk_sys::RVS_MBUF_F_TX_IP_CKSUM;
        }
        if req.l4_cksum {
            let l4 = match ip {
                Some((_, 6)) => dpdk_sys::RVS_MBUF_F_TX_TCP_CKSUM,
                Some((_, 17)) => dpdk_sys::RVS_MBUF_F_TX_UDP_CKSUM,
                _ => 0,
            };
            if l4 != 0 {
                let fam = if is_v4 {
                    dpdk_sys::RVS_MBUF_F_TX_IPV4
                } else {
                    dpdk_sys::RVS_MBUF_F_TX_IPV6
                };
                flags |= l4 | fam;
            }
        }
        let m = self.hdr();
        m.ol_flags = flags;
        // SAFETY: every bit pattern is a valid u64.
        let old = unsafe { m.__bindgen_anon_3.tx_offload };
        let lens = (req.l2_len as u64 & L2_MASK) | (((req.l3_len as u64) << L2_BITS) & L3_MASK);
        m.__bindgen_anon_3.tx_offload = (old & !(L2_MASK | L3_MASK)) | lens;
    }

    fn tx_offload(&self) -> TxOffload {
        let flags = self.ol_flags();
        // SAFETY: every bit pattern is a valid u64.
        let t = unsafe { self.raw().__bindgen_anon_3.tx_offload };
        TxOffload {
            ipv4_cksum: flags & dpdk_sys::RVS_MBUF_F_TX_IP_CKSUM != 0,
            l4_cksum: flags & dpdk_sys::RVS_MBUF_F_TX_L4_MASK != 0,
            l2_len: (t & L2_MASK) as u8,
            l3_len: ((t & L3_MASK) >> L2_BITS) as u16,
        }
    }
}
