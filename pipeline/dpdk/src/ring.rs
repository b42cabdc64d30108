//! Single-producer single-consumer rings (`rte_ring` with `RING_F_SP_ENQ | RING_F_SC_DEQ`)
//! carrying owned pointer-sized items: mbufs between lcores (DPVS's `dp_vs_redirect`) and
//! boxed control messages from the main lcore to workers.
//!
//! [`Ring::spsc`] returns the two ends; each end is `Send` but not `Clone`, so the type
//! system keeps one producer and one consumer.

use std::ffi::{CString, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::{Eal, Live};
use crate::error::{Error, Result};
use crate::mbuf::RteMbuf;

/// An owned value that travels through a ring as one pointer.
///
/// # Safety
/// `Self` must have the size and representation of a non-null `*mut c_void` (a transparent
/// wrapper of a non-null pointer, or a `Box` of a sized type), `into_ptr` must hand over
/// ownership, and `from_ptr` must take back what `into_ptr` gave.
pub unsafe trait RingItem: Send + Sized {
    /// Give up ownership as a pointer.
    fn into_ptr(self) -> *mut c_void;
    /// Take ownership back.
    ///
    /// # Safety
    /// `p` must come from `into_ptr` of the same type and be taken back once.
    unsafe fn from_ptr(p: *mut c_void) -> Self;
}

// SAFETY: `RteMbuf` is a transparent non-null mbuf pointer.
unsafe impl RingItem for RteMbuf {
    fn into_ptr(self) -> *mut c_void {
        self.into_raw() as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: `p` came from `into_raw` of an owned single-segment mbuf.
        unsafe { RteMbuf::from_raw(p as *mut dpdk_sys::rte_mbuf).unwrap_unchecked() }
    }
}

// SAFETY: a `Box<T>` of a sized type is a non-null pointer.
unsafe impl<T: Send> RingItem for Box<T> {
    fn into_ptr(self) -> *mut c_void {
        Box::into_raw(self) as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: `p` came from `Box::into_raw`.
        unsafe { Box::from_raw(p as *mut T) }
    }
}

struct RingInner<T: RingItem> {
    r: NonNull<dpdk_sys::rte_ring>,
    _live: Live,
    _items: PhantomData<T>,
}

// SAFETY: the ring is shared by exactly one producer and one consumer end (SP/SC flags);
// items are `Send`.
unsafe impl<T: RingItem> Send for RingInner<T> {}
// SAFETY: as above; the ends are not Sync themselves.
unsafe impl<T: RingItem> Sync for RingInner<T> {}

impl<T: RingItem> Drop for RingInner<T> {
    fn drop(&mut self) {
        // Both ends are gone: drain what is left (dropping each item), then free the ring.
        let mut buf = [std::ptr::null_mut::<c_void>(); 32];
        loop {
            // SAFETY: the ring is live and no end exists any more, so this is the only consumer.
            let n = unsafe {
                dpdk_sys::rvs_ring_dequeue_burst(self.r.as_ptr(), buf.as_mut_ptr(), 32, std::ptr::null_mut())
            };
            if n == 0 {
                break;
            }
            for p in &buf[..n as usize] {
                // SAFETY: every pointer in the ring came from `T::into_ptr`.
                drop(unsafe { T::from_ptr(*p) });
            }
        }
        // SAFETY: the ring is empty and nothing refers to it.
        unsafe { dpdk_sys::rte_ring_free(self.r.as_ptr()) };
    }
}

/// Factory for SPSC rings.
#[derive(Debug)]
pub struct Ring;

impl Ring {
    /// A ring named `name` (unique in the process) holding exactly `capacity` items, on
    /// NUMA `socket` (`None`: any). Returns its producer and consumer ends.
    pub fn spsc<T: RingItem>(
        eal: &Eal,
        name: &str,
        capacity: u32,
        socket: Option<u32>,
    ) -> Result<(Producer<T>, Consumer<T>)> {
        const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<*mut c_void>()) };
        let live = Live::new(eal)?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArg(name.into()))?;
        let socket = socket.map(|s| s as i32).unwrap_or(dpdk_sys::RVS_SOCKET_ID_ANY);
        let flags = dpdk_sys::RVS_RING_F_SP_ENQ | dpdk_sys::RVS_RING_F_SC_DEQ | dpdk_sys::RVS_RING_F_EXACT_SZ;
        // SAFETY: valid name; the EAL is initialised.
        let r = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, socket, flags) };
        let r = NonNull::new(r).ok_or_else(|| Error::errno("rte_ring_create"))?;
        let inner = Arc::new(RingInner::<T> {
            r,
            _live: live,
            _items: PhantomData,
        });
        Ok((
            Producer {
                inner: inner.clone(),
                _not_sync: PhantomData,
            },
            Consumer {
                inner,
                _not_sync: PhantomData,
            },
        ))
    }
}

/// The producer end of an SPSC ring.
pub struct Producer<T: RingItem> {
    inner: Arc<RingInner<T>>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

/// The consumer end of an SPSC ring.
pub struct Consumer<T: RingItem> {
    inner: Arc<RingInner<T>>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<T: RingItem> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("free", &self.free()).finish()
    }
}
impl<T: RingItem> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("len", &self.len()).finish()
    }
}

impl<T: RingItem> Producer<T> {
    /// Enqueue one item; a full ring gives it back.
    #[inline]
    pub fn enqueue(&mut self, item: T) -> std::result::Result<(), T> {
        let p = item.into_ptr();
        // SAFETY: this is the ring's only producer; one pointer is read from `&p`.
        let n = unsafe { dpdk_sys::rvs_ring_enqueue_burst(self.inner.r.as_ptr(), &p, 1, std::ptr::null_mut()) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: `p` was not enqueued, so it is still ours.
            Err(unsafe { T::from_ptr(p) })
        }
    }

    /// Enqueue as many items from the front of `items` as fit; they are removed from the
    /// vector, the rest stay in order. Returns how many were enqueued.
    #[inline]
    pub fn enqueue_burst(&mut self, items: &mut Vec<T>) -> usize {
        let len = items.len();
        if len == 0 {
            return 0;
        }
        let want = len.min(u32::MAX as usize) as u32;
        // SAFETY: `T` is pointer-sized with a pointer's representation (RingItem), so the
        // vector's buffer is an array of `len` pointers; this is the only producer.
        let n = unsafe {
            dpdk_sys::rvs_ring_enqueue_burst(
                self.inner.r.as_ptr(),
                items.as_ptr() as *const *mut c_void,
                want,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the first `n` items now belong to the ring: shift the rest down without
        // dropping anything, then shorten the vector.
        unsafe {
            let base = items.as_mut_ptr();
            std::ptr::copy(base.add(n), base, len - n);
            items.set_len(len - n);
        }
        n
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        // SAFETY: reads the ring's indexes.
        unsafe { dpdk_sys::rvs_ring_free_count(self.inner.r.as_ptr()) as usize }
    }
}

impl<T: RingItem> Consumer<T> {
    /// Dequeue one item.
    #[inline]
    pub fn dequeue(&mut self) -> Option<T> {
        let mut p = std::ptr::null_mut::<c_void>();
        // SAFETY: this is the ring's only consumer; one pointer is written to `p`.
        let n = unsafe { dpdk_sys::rvs_ring_dequeue_burst(self.inner.r.as_ptr(), &mut p, 1, std::ptr::null_mut()) };
        // SAFETY: a dequeued pointer came from `T::into_ptr`.
        (n == 1).then(|| unsafe { T::from_ptr(p) })
    }

    /// Dequeue into the spare capacity of `out`. Returns how many were added.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut Vec<T>) -> usize {
        let len = out.len();
        let room = (out.capacity() - len).min(u32::MAX as usize) as u32;
        if room == 0 {
            return 0;
        }
        // SAFETY: the spare capacity holds `room` pointer-sized slots (RingItem); the ring
        // writes `n` pointers that came from `T::into_ptr`; this is the only consumer.
        unsafe {
            let dst = out.spare_capacity_mut().as_mut_ptr() as *mut *mut c_void;
            let n = dpdk_sys::rvs_ring_dequeue_burst(self.inner.r.as_ptr(), dst, room, std::ptr::null_mut()) as usize;
            out.set_len(len + n);
            n
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        // SAFETY: reads the ring's indexes.
        unsafe { dpdk_sys::rvs_ring_count(self.inner.r.as_ptr()) as usize }
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: each end is the only one of its kind; moving it to another thread moves that role.
unsafe impl<T: RingItem> Send for Producer<T> {}
// SAFETY: as above.
unsafe impl<T: RingItem> Send for Consumer<T> {}
