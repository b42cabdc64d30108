//! rvs-schedule: the schedule stage, `tcp_conn_sched` / `udp_conn_sched` semantics: which
//! packets may create a connection, defence drops, the host path, persistence templates, and the
//! service's scheduler picking a destination.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
