//! rvs-plugin-sdk: the guest SDK for writing scheduler plugins in Rust (safe types over the
//! destination table and the flow, a macro to export a scheduler).
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
