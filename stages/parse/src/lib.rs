//! rvs-parse: the parse stage. Fills each packet's metadata from Ethernet (one optional
//! 802.1Q tag), IPv4 (with options), IPv6 (extension headers walked), TCP, UDP, ICMP and
//! ICMPv6 headers, read through typed views; malformed packets are dropped with a reason.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
