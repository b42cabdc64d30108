//! ICMPv6 (RFC 4443): echo identifier and sequence, the invoking packet of error messages,
//! and the checksum with its IPv6 pseudo-header.

use super::icmp::Embedded;
use super::ipv6::{self, Ipv6Packet, walk_ext_headers};
use super::{Field, Rest, WireError, get16, put16};
use crate::addr::Addr;
use crate::checksum;

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// ICMPv6 message types rvs looks at.
pub mod types {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbour solicitation (RFC 4861).
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement (RFC 4861).
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// True for the error types (1..=4) that carry the invoking packet.
pub const fn is_error(t: u8) -> bool {
    matches!(
        t,
        types::DEST_UNREACH | types::PACKET_TOO_BIG | types::TIME_EXCEEDED | types::PARAM_PROBLEM
    )
}

/// True for echo request and reply.
pub const fn is_echo(t: u8) -> bool {
    matches!(t, types::ECHO_REQUEST | types::ECHO_REPLY)
}

/// Read the IPv6 packet quoted in an ICMPv6 error payload: fixed header, then the extension
/// headers as far as they are quoted, to the upper layer.
pub fn embedded_ipv6(payload: &[u8]) -> Result<Embedded<'_>, WireError> {
    if payload.len() < ipv6::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let p = Ipv6Packet::new_unchecked(payload);
    if p.version() != 6 {
        return Err(WireError::BadVersion);
    }
    let rest = &payload[ipv6::HEADER_LEN..];
    let up = walk_ext_headers(p.next_header(), rest)?;
    let l4_off = ipv6::HEADER_LEN + up.offset;
    Ok(Embedded {
        src: Addr::v6(p.src()),
        dst: Addr::v6(p.dst()),
        proto: up.proto,
        l4_off,
        l4: payload.get(l4_off..).unwrap_or(&[]),
    })
}

/// A view of an ICMPv6 message (the whole upper-layer payload, for the checksum).
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }
    /// Wrap after checking the 8-byte header is there.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }
    /// Type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_SEQ)
    }
    /// The payload (after the 8-byte header).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
    /// True for an error message.
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }
    /// The quoted invoking packet of an error; [`WireError::Unsupported`] for other types.
    pub fn embedded(&self) -> Result<Embedded<'_>, WireError> {
        if !self.is_error() {
            return Err(WireError::Unsupported);
        }
        embedded_ipv6(self.payload())
    }
    /// True when the message verifies under the IPv6 pseudo-header of `src`, `dst`.
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        checksum::verifies(b, checksum::pseudo_v6(src, dst, 58, b.len() as u32))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Set the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the echo identifier (checksum untouched).
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }
    /// Set the echo sequence number (checksum untouched).
    pub fn set_echo_seq(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ, v);
    }
    /// Fold an address change of the pseudo-header into the checksum (RFC 1624).
    pub fn rewrite_pseudo_addr(&mut self, old: Addr, new: Addr) {
        let ck = checksum::update_addr(self.checksum(), old, new);
        self.set_checksum(ck);
    }
    /// Compute the checksum from scratch under the pseudo-header of `src`, `dst`.
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ck = checksum::finish(checksum::sum(b, checksum::pseudo_v6(src, dst, 58, b.len() as u32)));
        self.set_checksum(ck);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn echo_and_checksum() {
        let mut v = vec![128, 0, 0, 0, 0xbe, 0xef, 0, 7, 1, 2, 3];
        Icmpv6Packet::new_unchecked(&mut v[..]).fill_checksum(A, B);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert!(is_echo(p.msg_type()));
        assert_eq!((p.echo_ident(), p.echo_seq()), (0xbeef, 7));
        assert!(p.verify_checksum(A, B));
        assert!(!p.verify_checksum(B, B));
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        p.rewrite_pseudo_addr(Addr::v6(A), Addr::v6(B));
        assert!(p.verify_checksum(B, B));
    }

    #[test]
    fn error_quotes_the_invoking_packet() {
        // Packet too big quoting TCP [A]:40000 -> [B]:80 behind a destination-options header.
        let mut v = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        let mut ip = [0u8; 40];
        let mut h = Ipv6Packet::new_unchecked(&mut ip[..]);
        h.set_ver_tc_flow(0, 0);
        h.set_payload_len(1400);
        h.set_next_header(ipv6::next_header::DEST_OPTS);
        h.set_src(A);
        h.set_dst(B);
        v.extend_from_slice(&ip);
        v.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1]);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        let e = p.embedded().unwrap();
        assert_eq!((e.src, e.dst, e.proto, e.l4_off), (Addr::v6(A), Addr::v6(B), 6, 48));
        assert_eq!(e.ports(), Some((40000, 80)));
        assert_eq!(
            Icmpv6Packet::new_checked(&v[..40]).unwrap().embedded(),
            Err(WireError::Truncated)
        );
    }
}
