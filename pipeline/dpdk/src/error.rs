//! Errors of the safe layer.

use std::ffi::CStr;

/// What went wrong in a DPDK call or in the use of this layer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// `rte_eal_init` was already called in this process (it works once per process, even
    /// after `rte_eal_cleanup`).
    #[error("the DPDK EAL is already initialised in this process (it can be initialised only once)")]
    AlreadyInitialized,
    /// An earlier `rte_eal_init` in this process failed; DPDK cannot be initialised again.
    #[error("an earlier DPDK EAL initialisation failed in this process; it cannot be retried")]
    InitFailedBefore,
    /// The EAL was cleaned up; no more DPDK objects can be made.
    #[error("the DPDK EAL was cleaned up")]
    CleanedUp,
    /// An argument could not be passed to DPDK.
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// A DPDK call failed.
    #[error("{op} failed: {msg} (errno {code})")]
    Dpdk {
        /// The DPDK function.
        op: &'static str,
        /// The (positive) errno value.
        code: i32,
        /// DPDK's message for it.
        msg: String,
    },
    /// No ethdev port has that name or id.
    #[error("no DPDK port named {0:?}")]
    PortNotFound(String),
    /// The operation needs exclusive use of the object, and handles to it are still alive.
    #[error("{0}")]
    Busy(&'static str),
    /// The lcore is not an enabled worker lcore, or it is busy.
    #[error("lcore {0} is not an available worker lcore")]
    LcoreUnavailable(u32),
    /// The calling thread is not the EAL main lcore.
    #[error("{0} must be called on the EAL main lcore")]
    NotMainLcore(&'static str),
    /// A closure launched on a worker lcore panicked.
    #[error("the function launched on lcore {0} panicked")]
    LcorePanicked(u32),
}

impl Error {
    /// An error for DPDK call `op` that returned `-code` (or set `rte_errno = code`).
    pub(crate) fn dpdk(op: &'static str, code: i32) -> Self {
        let code = code.abs();
        Error::Dpdk {
            op,
            code,
            msg: strerror(code),
        }
    }

    /// An error from `rte_errno` after a call returned NULL or a negative value.
    pub(crate) fn errno(op: &'static str) -> Self {
        // SAFETY: reads the calling thread's `rte_errno`.
        let code = unsafe { dpdk_sys::rvs_errno() };
        Self::dpdk(op, code)
    }
}

/// DPDK's message for an errno value (covers DPDK's own `E_RTE_*` codes too).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: `rte_strerror` returns a pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let p = dpdk_sys::rte_strerror(code);
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A DPDK return value: negative is `-errno`.
pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
    if ret < 0 { Err(Error::dpdk(op, ret)) } else { Ok(ret) }
}
