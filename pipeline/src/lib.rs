//! rvs-pipeline: the data plane around the stages: the configuration, one lcore's stage graph
//! ([`worker`]), `rvs replay` over heap buffers ([`replay`]), the embedded demo, and the `rvs`
//! binary. The DPDK poll loop (`rvs run`) and `rvsctl` join as they land.

#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod demo;
pub mod frames;
pub mod l2;
pub mod pcap;
pub mod plugins;
pub mod replay;
pub mod run;
pub mod traffic;
pub mod worker;
