//! Lcores: ids, the worker list, and launching a closure on a worker lcore
//! (`rte_eal_remote_launch` / `rte_eal_wait_lcore`).

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::eal::Eal;
use crate::error::{Error, Result};

/// The lcore id of the calling thread, or `None` for a thread that is not an EAL lcore
/// (DPDK's `LCORE_ID_ANY`).
#[inline]
pub fn current() -> Option<u32> {
    // SAFETY: reads the calling thread's per-lcore variable.
    let id = unsafe { dpdk_sys::rvs_lcore_id() };
    (id != dpdk_sys::RVS_LCORE_ID_ANY).then_some(id)
}

/// True when the calling thread is the EAL main lcore (the thread that ran `Eal::init`).
pub fn is_main() -> bool {
    // SAFETY: reads a value set by rte_eal_init (0 before it).
    current() == Some(unsafe { dpdk_sys::rte_get_main_lcore() })
}

impl Eal {
    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: reads a value set by rte_eal_init.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// Enabled worker lcores (every enabled lcore but the main one), in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts at lcore 0
        loop {
            // SAFETY: iterates the EAL's lcore configuration; skip the main lcore, no wrap.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RVS_RTE_MAX_LCORE {
                return v;
            }
            v.push(i);
        }
    }

    /// Number of enabled lcores, the main one included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: reads the EAL configuration.
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: returns 0 (or SOCKET_ID_ANY) for an invalid lcore.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Run `f` on worker lcore `lcore` (`rte_eal_remote_launch`). Must be called on the
    /// main lcore; the lcore must be an enabled worker that is not running anything.
    /// A panic in `f` is caught and reported by [`Launched::wait`].
    pub fn launch<F, R>(&self, lcore: u32, f: F) -> Result<Launched<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if !is_main() {
            return Err(Error::NotMainLcore("Eal::launch"));
        }
        if !self.worker_lcores().contains(&lcore) {
            return Err(Error::LcoreUnavailable(lcore));
        }
        let slot: Slot<R> = Arc::new(Mutex::new(None));
        let job = Box::new(Job {
            f: Some(f),
            slot: slot.clone(),
        });
        let arg = Box::into_raw(job) as *mut c_void;
        // SAFETY: `trampoline::<F, R>` takes back ownership of `arg` exactly once when the
        // worker runs it; `F: Send + 'static`, so running it on another thread is sound.
        let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<F, R>), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so the worker never saw `arg`: reclaim it.
            drop(unsafe { Box::from_raw(arg as *mut Job<F, R>) });
            return Err(if ret == -libc_ebusy() {
                Error::LcoreUnavailable(lcore)
            } else {
                Error::dpdk("rte_eal_remote_launch", ret)
            });
        }
        Ok(Launched {
            lcore,
            slot,
            waited: false,
            _not_send: PhantomData,
        })
    }
}

const fn libc_ebusy() -> i32 {
    16
}

type Slot<R> = Arc<Mutex<Option<std::thread::Result<R>>>>;

struct Job<F, R> {
    f: Option<F>,
    slot: Slot<R>,
}

extern "C" fn trampoline<F, R>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // SAFETY: `arg` is the `Box<Job<F, R>>` leaked by `Eal::launch`, handed to this call only.
    let mut job = unsafe { Box::from_raw(arg as *mut Job<F, R>) };
    let Some(f) = job.f.take() else { return -1 };
    // Unwinding out of an `extern "C"` function aborts: catch it and report it instead.
    let r = catch_unwind(AssertUnwindSafe(f));
    let failed = r.is_err();
    *job.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    if failed { -1 } else { 0 }
}

/// A closure running on a worker lcore. [`Launched::wait`] returns its result; dropping
/// the handle also waits (on the main lcore), so an lcore is never left half-owned.
#[must_use = "wait() for the lcore to get its result"]
#[derive(Debug)]
pub struct Launched<R> {
    lcore: u32,
    slot: Slot<R>,
    waited: bool,
    // rte_eal_wait_lcore must run on the main lcore.
    _not_send: PhantomData<*const ()>,
}

impl<R> Launched<R> {
    /// The lcore it runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the closure has returned.
    pub fn is_finished(&self) -> bool {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Wait for the closure to return (`rte_eal_wait_lcore`) and take its result.
    pub fn wait(mut self) -> Result<R> {
        self.join();
        let r = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        match r {
            Some(Ok(v)) => Ok(v),
            _ => Err(Error::LcorePanicked(self.lcore)),
        }
    }

    fn join(&mut self) {
        if !self.waited {
            // SAFETY: called on the main lcore (a `Launched` is made there and is !Send);
            // blocks until the worker is back in WAIT state.
            unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
            self.waited = true;
        }
    }
}

impl<R> Drop for Launched<R> {
    fn drop(&mut self) {
        self.join();
    }
}
