//! rvs-dpdk: the thin safe layer over `dpdk-sys`: EAL as a process singleton, mempools,
//! ports, and the `rte_mbuf` adapter implementing rvs-core's `Mbuf`.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.
