//! rvs-xmit: the xmit stage: NAT, DR, TUNNEL (IPIP), FNAT and SNAT rewrites in both directions
//! with incremental checksums (RFC 1624), TOA for FNAT, neighbour and route lookup.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
