//! rvs-pipeline: the DPDK poll loop, ports, lcore workers and control plane, and the `rvs` and
//! `rvsctl` binaries.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
