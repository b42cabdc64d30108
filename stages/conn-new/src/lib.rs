//! rvs-conn-new: the conn-new stage, `dp_vs_conn_new`: a connection from the pool, its
//! inbound and outbound tuples per forwarding mode, the destination bound (honouring
//! `max_conn`), an FNAT local address and port, both tuples hashed, the timer armed.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
