//! rvs-core: the ground floor every other rvs crate stands on.
//!
//! It holds what the stages, the schedulers, the plugin host and the pipeline must agree on,
//! and nothing that would tie it to one of them:
//!
//! - [`mbuf`]: the `Mbuf` trait (the `rte_mbuf` operations the stages use) and a
//!   heap implementation with real headroom, plus a preallocated heap pool;
//! - [`addr`]: address family, protocol numbers and a compact address type for tuples;
//! - [`meta`]: per-packet metadata, the `dp_vs_iphdr` of DPVS plus ports, ICMP id and TCP flags;
//! - [`verdict`]: DPVS's verdicts and drop causes as enums;
//! - [`stage`]: the stage contract (vectors in, every packet disposed of: next stage, transmit,
//!   drop with a reason, host path, redirect to another lcore, held; packets emitted from a pool);
//! - [`counters`]: per-stage counters and the cycle counter around each per-vector call;
//! - [`checksum`]: RFC 1071 sums and RFC 1624 incremental updates, with port offload caps;
//! - [`service`]: the service and destination model, published as immutable snapshots;
//! - [`load`]: per-lcore destination connection counters;
//! - [`sched`]: the scheduler trait, one call per new connection;
//! - [`hash`], [`rng`]: small deterministic hashing and random helpers shared by the stages.
//!
//! The only `unsafe` in this crate is the TSC read in [`cycles`].

pub mod addr;
pub mod checksum;
pub mod counters;
pub mod cycles;
pub mod hash;
pub mod label;
pub mod load;
pub mod mbuf;
pub mod meta;
pub mod rng;
pub mod sched;
pub mod service;
pub mod stage;
pub mod time;
pub mod verdict;
pub mod wire;

pub use addr::{Addr, Af, Proto};
pub use mbuf::{HeapMbuf, HeapPool, Mbuf, PacketPool};
pub use meta::{PacketMeta, TcpFlags};
pub use time::Now;
