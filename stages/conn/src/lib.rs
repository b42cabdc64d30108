//! rvs-conn: per-lcore connection state, DPVS's `dp_vs_conn` machinery without its locks.
//!
//! - [`conn`]: the connection record and its two tuples (inbound: client -> VIP; outbound:
//!   real server -> local or client address), as DPVS's `dp_vs_conn` keeps them;
//! - [`table`]: [`LcoreConns`], one lcore's connections: the preallocated pool, the hash of
//!   both tuples of every connection (`dp_vs_conn_hash`), the timer wheel with lazy refresh,
//!   the per-packet state transition and the destination counters it moves;
//! - [`state`]: the TCP state machine of IPVS/DPVS (the kernel's three tables, IPVS state
//!   numbering) and the per-state timeouts;
//! - [`persist`]: persistence templates (`-p TIMEOUT -M NETMASK`), one table shared by every
//!   lcore ([`Templates`], sharded and locked: new-connection path only), each lcore freeing the
//!   templates it made ([`LcoreTemplates`]) so the `persistent` counter has one writer;
//! - [`owner`]: [`OwnerTable`], which lcore owns a connection, for all lcores (DPVS's
//!   `dp_vs_redirect`), where neither the device nor the local port can say;
//! - [`sapool`]: the FNAT/SNAT local ports of one lcore (DPVS's `sa_pool`), partitioned so the
//!   port of a reply names the lcore that owns its connection, one pool per real-server hash so
//!   a port serves several real servers at once.
//!
//! A connection refers to its destination by stable [`rvs_core::service::DestId`], service
//! index and snapshot generation, never by a reference count bumped per packet. Nothing here
//! allocates after [`LcoreConns::new`], [`SaPool::add_laddr`] and [`Templates::new`]; nothing
//! locks but the template table: each lcore owns its connection table, and the stages of its
//! graph share it through [`SharedConns`].
//!
//! | feature | shown by |
//! |---|---|
//! | table agrees with a `HashMap` model under insert/lookup/remove/expire | `tests/model.rs` |
//! | pool exhaustion is an error, never a crash | `tests/table.rs::pool_exhaustion_*` |
//! | refreshed connections live, idle ones expire within timeout + jitter + 1 tick | `tests/table.rs::timer_*` |
//! | TCP state, timeout and active/inactive counters per packet (full and input-only tables) | `tests/states.rs` |
//! | local ports partitioned by lcore, exhaustion, FIFO reuse | `sapool::tests` |
//! | one local port toward several real servers (a pool per real-server hash, as DPVS's `sa_pool_hash`): 4 x 64511 connections on one local address, no 5-tuple reused; model-checked take/release | `sapool::tests::one_local_address_carries_more_than_64k_connections_across_real_servers`, `sapool::tests::takes_and_releases_against_a_model`, `tests/sapool.rs::more_than_64k_fnat_connections_on_one_local_address` |
//! | no allocation in lookup/insert/on_packet/expire | `tests/alloc.rs` |
//! | templates: key by masked client, found by a second client of the group, race between lcores | `persist::tests::insert_find_and_race` |
//! | a template expires `timeout` after its last connection, never while one uses it | `persist::tests::expiry_waits_for_the_last_connection`, `tests/persist.rs` |
//! | full template table refuses (counted); stale handles after slot reuse | `persist::tests::full_table_and_stale_handles_after_reuse` |
//! | a connection's expiry detaches it from its template; persistent counter moves with templates | `tests/persist.rs` |

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod conn;
pub mod owner;
pub mod persist;
pub mod sapool;
pub mod state;
pub mod table;

pub use conn::{Conn, ConnFlags, ConnId, Home, SERVICE_GONE, Tuple};
pub use owner::OwnerTable;
pub use persist::{LcoreTemplates, NO_TEMPLATE, Placed, TemplateHandle, TemplateKey, Templates};
pub use sapool::SaPool;
pub use state::TcpState;
pub use table::{ConnConfig, ConnError, ConnStats, LcoreConns, SharedConns, hash_tuple};
