//! rvs-dpdk: the thin safe layer over `dpdk-sys`, all of rvs's `unsafe` DPDK use in one
//! place (each block says why it is sound):
//!
//! - [`Eal`]: the EAL as a process singleton ([`Eal::init`] a second time is an error, not
//!   UB), lean default arguments for machines without hugepages or NICs ([`EalArgs`]),
//!   thread registration, vdev hot-plug, cleanup that also removes the runtime directory;
//! - [`lcore`]: lcore ids and [`Eal::launch`] of a closure on a worker lcore, with its
//!   result (or its panic) back from [`lcore::Launched::wait`];
//! - [`Mempool`] and [`RtePool`] (rvs-core's `PacketPool`), with available/in-use counts;
//! - [`RteMbuf`]: an owned `rte_mbuf` implementing rvs-core's `Mbuf` by plain field access
//!   on the bindgen struct (layout asserted in `dpdk-sys`), freed to its pool on drop, and
//!   [`RteMbuf::free_bulk`];
//! - [`Port`]: open (by name or hot-plugging a vdev string), configure rx/tx queues and
//!   descriptors, start, stop, promiscuous off on close, MAC, link, stats, and transmit
//!   offload capabilities as rvs-core's `OffloadCaps`; its per-lcore [`RxQueue`] and
//!   [`TxQueue`] handles and the [`TxBuffer`] that flushes with `rte_eth_tx_burst` and
//!   frees (and counts) what the device refused;
//! - [`ring`]: SPSC rings of mbufs or boxed messages between lcores.
//!
//! Not here (the `rvs` binary's job): the poll loop itself, the stage graph, timers, and
//! the control plane. Not done: multi-segment mbufs (chained packets are freed on receive
//! and counted), per-queue statistics, xstats, flow rules.

// The exempt crate (DESIGN.md): unsafe allowed, every block documented.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;

pub use eal::{Eal, EalArgs};
pub use error::{Error, Result};
pub use mbuf::RteMbuf;
pub use mempool::{Mempool, RtePool};
pub use port::{Link, Port, PortConfig, PortInfo, PortStats, Queues, RxQueue, TxBuffer, TxQueue};
pub use ring::{Consumer, Producer, Ring, RingItem};
