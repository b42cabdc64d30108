//! Typed zero-copy views over packet headers, in the style of smoltcp's `src/wire/`.
//!
//! Each header is a thin wrapper over a byte buffer (`T: AsRef<[u8]>` to read,
//! `T: AsMut<[u8]>` to write) with its field ranges named in a private `field` module, so no
//! code outside the view uses a magic offset:
//!
//! - `new_unchecked(buf)` wraps without looking; getters may panic on a short buffer;
//! - `new_checked(buf)` is for untrusted input: it validates every length the getters rely
//!   on and returns a [`WireError`] instead, after which **no getter can panic**;
//! - setters write fields in place; helpers that rewrite bytes covered by a checksum keep
//!   that checksum consistent with an RFC 1624 incremental update (see each helper).
//!
//! All sums go through [`crate::checksum`], the one checksum module.
//!
//! Views: [`ethernet`] (with one 802.1Q tag), [`arp`], [`ipv4`] (options, header checksum),
//! [`ipv6`] (and its extension-header walk to the upper layer), [`tcp`] (options iterator;
//! timestamp, SACK and MSS rewrites), [`udp`], [`icmp`] and [`icmpv6`] (with the embedded IP
//! header of error messages).
//!
//! Parsing into a plain representation is separate from the views: the parse stage fills
//! [`crate::meta::PacketMeta`] from them.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod opp;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetFrame};
pub use icmp::IcmpPacket;
pub use icmpv6::Icmpv6Packet;
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6Packet, UpperLayer};
pub use tcp::{TcpOption, TcpOptions, TcpPacket};
pub use udp::UdpPacket;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or a length the header claims).
    #[error("buffer shorter than the header")]
    Truncated,
    /// The IP version field is not the one expected.
    #[error("wrong IP version")]
    BadVersion,
    /// A header-length field is below the minimum or runs past the buffer (IPv4 IHL, TCP data
    /// offset, an IPv6 extension header).
    #[error("bad header length")]
    BadHeaderLen,
    /// A total-length field is below the header length or beyond the buffer (IPv4 total
    /// length, IPv6 payload length, UDP length).
    #[error("bad total length")]
    BadLength,
    /// A checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// Well formed but not something rvs handles (an ARP for another hardware type, an IPv6
    /// hop-by-hop header that is not first, a chain of extension headers too long).
    #[error("unsupported header")]
    Unsupported,
    /// A TCP option whose length byte is malformed.
    #[error("malformed TCP option")]
    BadOption,
}

/// A byte range of a header field.
pub(crate) type Field = core::ops::Range<usize>;
/// The bytes from an offset to the end.
pub(crate) type Rest = core::ops::RangeFrom<usize>;

#[inline]
pub(crate) fn get16(b: &[u8], f: Field) -> u16 {
    let s = &b[f];
    u16::from_be_bytes([s[0], s[1]])
}

#[inline]
pub(crate) fn get32(b: &[u8], f: Field) -> u32 {
    let s = &b[f];
    u32::from_be_bytes([s[0], s[1], s[2], s[3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

/// Rewrite `buf[range]` with `f` and fold the change into the checksum held at `ck_field`
/// (RFC 1624 eqn. 3 applied to the sum of the changed words). The range is widened to 16-bit
/// boundaries of `buf`, so it may start at an odd offset; `buf` must start on a 16-bit
/// boundary of the summed data (a header start always does). The widened range must not
/// overlap the checksum field, and must lie within `buf` (callers pass ranges they checked).
pub(crate) fn rewrite_summed(buf: &mut [u8], range: Field, ck_field: Field, f: impl FnOnce(&mut [u8])) {
    let start = range.start & !1;
    let end = (range.end + 1) & !1;
    let end = end.min(buf.len());
    let old = crate::checksum::fold(crate::checksum::sum(&buf[start..end], 0));
    f(&mut buf[range]);
    let new = crate::checksum::fold(crate::checksum::sum(&buf[start..end], 0));
    let ck = get16(buf, ck_field.clone());
    put16(buf, ck_field, crate::checksum::update16(ck, old, new));
}
