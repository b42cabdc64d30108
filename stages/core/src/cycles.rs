//! The cycle counter read around each per-vector stage call.
//!
//! On x86_64 this is the TSC (`rdtsc`), which is what DPDK's `rte_rdtsc` reads and what VPP's
//! `show runtime` divides by packets. Elsewhere a monotonic clock in nanoseconds stands in.

/// Current value of the cycle counter.
#[inline(always)]
#[cfg(target_arch = "x86_64")]
pub fn rdtsc() -> u64 {
    // SAFETY: `_rdtsc` reads the time-stamp counter; it has no memory effects and is
    // available on every x86_64 CPU (TSC is part of the x86_64 baseline).
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
}

/// Current value of the cycle counter (nanoseconds from a monotonic clock off x86_64).
#[inline(always)]
#[cfg(not(target_arch = "x86_64"))]
pub fn rdtsc() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_moves_forward() {
        let a = super::rdtsc();
        let mut x = 0u64;
        for i in 0..10_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(super::rdtsc() > a);
    }
}
