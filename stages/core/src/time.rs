//! Time as the stages see it: a monotonic count of nanoseconds handed in by the caller.
//!
//! Stages are sans-IO and read no clock: the poll loop converts the TSC, `rvs replay` takes
//! the pcap's timestamps, tests make the time up.

/// A point in time, nanoseconds on a monotonic clock chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Now(pub u64);

impl Now {
    /// Nanoseconds per second.
    pub const SEC: u64 = 1_000_000_000;
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Now(s * Self::SEC)
    }
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Now(ms * 1_000_000)
    }
    /// Nanoseconds.
    pub const fn nanos(self) -> u64 {
        self.0
    }
    /// This time plus `ns` nanoseconds (saturating).
    pub const fn plus_nanos(self, ns: u64) -> Self {
        Now(self.0.saturating_add(ns))
    }
    /// This time plus `s` seconds (saturating).
    pub const fn plus_secs(self, s: u64) -> Self {
        self.plus_nanos(s.saturating_mul(Self::SEC))
    }
}
