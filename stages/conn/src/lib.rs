//! rvs-conn: per-lcore connection state.
//!
//! - [`conn`]: the connection record and its two tuples (inbound: client -> VIP; outbound:
//!   real server -> local or client address), as DPVS's `dp_vs_conn` keeps them;
//! - the connection table holding both tuples of every connection (DPVS's `dp_vs_conn_hash`),
//!   the preallocated connection pool, the per-lcore timer wheel, the TCP/UDP state machine
//!   and the FNAT local-port pool are added by the modules below as they land.
//!
//! A connection refers to its destination by stable [`rvs_core::service::DestId`], service
//! index and snapshot generation, never by a reference count bumped per packet.

#![forbid(unsafe_code)]

pub mod conn;

pub use conn::{Conn, ConnFlags, ConnId, Tuple};
