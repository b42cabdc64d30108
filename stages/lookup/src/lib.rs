//! rvs-lookup: the lookup stage. Finds a packet's connection by 5-tuple in either direction
//! in the per-lcore table (and persistence templates) and advances the TCP/UDP state machine.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
