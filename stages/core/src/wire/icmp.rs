//! ICMP for IPv4 (RFC 792): echo identifier and sequence, and the invoking packet that an
//! error message carries.

use super::ipv4::{self, Ipv4Packet};
use super::{Field, Rest, WireError, get16, put16};
use crate::addr::Addr;
use crate::checksum;

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    // Echo request/reply.
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    pub const REST_OF_HEADER: Field = 4..8;
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// ICMP message types rvs looks at.
pub mod types {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated, RFC 6633, still an error carrying a packet).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// True for the error types that carry the invoking packet's IP header.
pub const fn is_error(t: u8) -> bool {
    matches!(
        t,
        types::DEST_UNREACH | types::SOURCE_QUENCH | types::REDIRECT | types::TIME_EXCEEDED | types::PARAM_PROBLEM
    )
}

/// True for echo request and reply (the messages with an identifier).
pub const fn is_echo(t: u8) -> bool {
    matches!(t, types::ECHO_REQUEST | types::ECHO_REPLY)
}

/// The invoking packet quoted by an ICMP or ICMPv6 error: its addresses, upper-layer
/// protocol and the upper-layer bytes quoted (at least 8 by RFC 792, more by RFC 1812 and
/// RFC 4443), enough to find the connection it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded<'a> {
    /// Source address of the invoking packet (the sender of the error's addressee).
    pub src: Addr,
    /// Destination address of the invoking packet.
    pub dst: Addr,
    /// Its upper-layer protocol.
    pub proto: u8,
    /// Offset of its upper-layer header within the error's payload.
    pub l4_off: usize,
    /// The quoted upper-layer bytes.
    pub l4: &'a [u8],
}

impl Embedded<'_> {
    /// The quoted source and destination ports (TCP, UDP), when at least 4 bytes are there.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
            _ => None,
        }
    }
}

/// Read the IPv4 header quoted in an ICMP error payload. The quoted packet is normally cut
/// short, so its total length is not checked against the bytes present; version and IHL are.
pub fn embedded_ipv4(payload: &[u8]) -> Result<Embedded<'_>, WireError> {
    if payload.len() < ipv4::MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let p = Ipv4Packet::new_unchecked(payload);
    if p.version() != 4 {
        return Err(WireError::BadVersion);
    }
    let hl = p.header_len();
    if hl < ipv4::MIN_HEADER_LEN || hl > payload.len() {
        return Err(WireError::BadHeaderLen);
    }
    Ok(Embedded {
        src: Addr::v4(p.src()),
        dst: Addr::v4(p.dst()),
        proto: p.protocol(),
        l4_off: hl,
        l4: &payload[hl..],
    })
}

/// A view of an ICMP message (the whole IP payload, for the checksum).
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
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
    /// Echo identifier (meaningful for echo messages).
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Echo sequence number (meaningful for echo messages).
    pub fn echo_seq(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ECHO_SEQ)
    }
    /// The 4 bytes after the checksum (unused, MTU, pointer or gateway by type).
    pub fn rest_of_header(&self) -> [u8; 4] {
        let mut r = [0; 4];
        r.copy_from_slice(&self.buffer.as_ref()[field::REST_OF_HEADER]);
        r
    }
    /// The payload (echo data, or the invoking packet of an error).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
    /// True for an error message (it quotes a packet).
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }
    /// The quoted invoking packet of an error; [`WireError::Unsupported`] for other types.
    pub fn embedded(&self) -> Result<Embedded<'_>, WireError> {
        if !self.is_error() {
            return Err(WireError::Unsupported);
        }
        embedded_ipv4(self.payload())
    }
    /// True when the message sums to all ones (ICMP has no pseudo-header).
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.buffer.as_ref(), 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
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
    /// Set the echo identifier, updating the checksum (RFC 1624).
    pub fn rewrite_echo_ident(&mut self, v: u16) {
        let ck = checksum::update16(self.checksum(), self.echo_ident(), v);
        self.set_echo_ident(v);
        self.set_checksum(ck);
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
    /// Compute the checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let ck = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
        self.set_checksum(ck);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn echo() {
        let mut v = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        IcmpPacket::new_unchecked(&mut v[..]).fill_checksum();
        let p = IcmpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()),
            (8, 0, 0x1234, 1)
        );
        assert!(is_echo(p.msg_type()));
        assert!(p.verify_checksum());
        assert_eq!(p.embedded(), Err(WireError::Unsupported));
        let mut p = IcmpPacket::new_checked(&mut v[..]).unwrap();
        p.rewrite_echo_ident(0x4321);
        assert!(p.verify_checksum());
        assert_eq!(IcmpPacket::new_checked(&v[..7]).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn error_quotes_the_invoking_packet() {
        // Port unreachable quoting a UDP packet 198.18.1.11:53 -> 198.18.5.5:5353.
        let mut v = vec![3, 3, 0, 0, 0, 0, 0, 0];
        let mut ip = [0u8; 20];
        let mut h = Ipv4Packet::new_unchecked(&mut ip[..]);
        h.set_header_len(20);
        h.set_total_len(40);
        h.set_protocol(17);
        h.set_src([198, 18, 1, 11]);
        h.set_dst([198, 18, 5, 5]);
        v.extend_from_slice(&ip);
        v.extend_from_slice(&[0, 53, 0x14, 0xe9, 0, 20, 0, 0]);
        let p = IcmpPacket::new_checked(&v[..]).unwrap();
        assert!(p.is_error());
        let e = p.embedded().unwrap();
        assert_eq!(e.src, Addr::v4([198, 18, 1, 11]));
        assert_eq!(e.dst, Addr::v4([198, 18, 5, 5]));
        assert_eq!(e.proto, 17);
        assert_eq!(e.l4_off, 20);
        assert_eq!(e.ports(), Some((53, 5353)));
        // Cut short inside the quoted header.
        assert_eq!(
            IcmpPacket::new_checked(&v[..20]).unwrap().embedded(),
            Err(WireError::Truncated)
        );
    }
}
