//! rvs-testkit: the rvs test kit and the home of the integration tests.
//!
//! - [`builder`]: a fluent packet builder (Ethernet, 802.1Q, ARP, IPv4 with options and
//!   fragments, IPv6 with extension headers, IP-in-IP, TCP with options, UDP, ICMP and ICMPv6
//!   echo and errors) producing wire bytes with correct checksums, and knobs to spoil them;
//! - [`mod@decode`]: an independent decoder (etherparse, no rvs crate) that recomputes every
//!   checksum from the bytes;
//! - [`hex`]: hex dumps and byte diffs for readable failure messages;
//! - [`fixture`]: named fixtures (inputs, a graph of real stages, expected outputs and
//!   counters) and their runner;
//! - [`alloc`]: a counting global allocator with per-thread counters, to assert that a vector
//!   allocates nothing after warm-up;
//! - [`pcap`]: classic pcap files (micro- and nanosecond) as `(timestamp_ns, bytes)` records.
//!
//! The builder and the decoder are oracles for the code under test, so neither uses
//! `rvs_core::checksum`: the builder sums with [`csum`], the decoder with etherparse's sum.
//!
//! `unsafe` is denied in the whole crate except [`alloc`], where implementing `GlobalAlloc`
//! requires it.

#![deny(unsafe_code)]

pub mod alloc;
pub mod builder;
pub mod csum;
pub mod decode;
pub mod fixture;
pub mod hex;
pub mod pcap;

pub use builder::Pkt;
pub use decode::{Decoded, decode, decode_checked};
pub use fixture::{Expect, Fixture};
