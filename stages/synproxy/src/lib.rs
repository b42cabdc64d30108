//! rvs-synproxy: the SYN-cookie proxy of DPVS in three steps (cookie SYN-ACK; cookie-ACK
//! check, connection creation and SYN to the real server; sequence adjustment).
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
