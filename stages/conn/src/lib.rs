//! rvs-conn: the per-lcore connection table (both tuples of every connection hashed, as
//! DPVS's `dp_vs_conn_hash`), the preallocated connection pool and the per-lcore timer wheel
//! that expires connections.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
