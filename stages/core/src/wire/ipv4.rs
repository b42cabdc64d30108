//! IPv4 headers (RFC 791), options included, with header checksum verify and fill.

use super::{Field, WireError, get16, put16};
use crate::checksum;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::DST.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Wrap after [`Ipv4Packet::check`]. The buffer may extend past the total length
    /// (Ethernet padding); [`Ipv4Packet::payload`] stops at the total length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }
    /// Check: at least 20 bytes, version 4, IHL at least 5 and within the buffer, total
    /// length at least the header length and within the buffer. The checksum is not checked
    /// here (see [`Ipv4Packet::verify_checksum`]).
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(WireError::BadHeaderLen);
        }
        let tl = self.total_len() as usize;
        if tl < hl || tl > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL x 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// Total length.
    pub fn total_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::TOTAL_LEN)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::IDENT)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) << 3
    }
    /// True when this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }
    /// The options (bytes 20 up to the header length).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }
    /// True when the header checksum verifies (RFC 1071: the header sums to all ones).
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header(), 0)
    }
    /// The payload, up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }
    /// Set the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::TOTAL_LEN, v);
    }
    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set the flags and fragment offset (offset in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        put16(self.buffer.as_mut(), field::FLAGS_FRAG, v);
    }
    /// Set the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Set the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the source address (checksum untouched).
    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }
    /// Set the destination address (checksum untouched).
    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }
    /// Compute and write the header checksum from scratch (RFC 1071).
    pub fn fill_checksum(&mut self) {
        let ck = checksum::ipv4_header(self.header());
        self.set_checksum(ck);
    }
    /// Set the source address and update the header checksum incrementally (RFC 1624).
    pub fn rewrite_src(&mut self, a: [u8; 4]) {
        let ck = checksum::update32(self.checksum(), u32::from_be_bytes(self.src()), u32::from_be_bytes(a));
        self.set_src(a);
        self.set_checksum(ck);
    }
    /// Set the destination address and update the header checksum incrementally (RFC 1624).
    pub fn rewrite_dst(&mut self, a: [u8; 4]) {
        let ck = checksum::update32(self.checksum(), u32::from_be_bytes(self.dst()), u32::from_be_bytes(a));
        self.set_dst(a);
        self.set_checksum(ck);
    }
    /// Decrement the TTL by one and update the header checksum incrementally (RFC 1624;
    /// RFC 1141 did the same for routers). Returns the new TTL; a TTL of 0 stays 0.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        // TTL shares its 16-bit word with the protocol byte.
        let proto = self.protocol() as u16;
        let old = (ttl as u16) << 8 | proto;
        let new = ((ttl - 1) as u16) << 8 | proto;
        let ck = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl - 1);
        self.set_checksum(ck);
        ttl - 1
    }
    /// The payload, writable (up to the total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
    /// Header and payload, writable, split at the header length.
    pub fn split_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        self.buffer.as_mut()[..t].split_at_mut(h)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A UDP header of a real capture (checksum 0xb861), see checksum.rs.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];

    fn packet() -> Vec<u8> {
        let mut v = HDR.to_vec();
        v.resize(0x73, 0xab);
        v
    }

    #[test]
    fn fields() {
        let b = packet();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src(), [192, 168, 0, 1]);
        assert_eq!(p.dst(), [192, 168, 0, 199]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn padding_is_outside_the_payload() {
        let mut b = packet();
        b.extend_from_slice(&[0; 6]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn refuses_bad_headers() {
        let b = packet();
        assert_eq!(Ipv4Packet::new_checked(&b[..19]).unwrap_err(), WireError::Truncated);
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&v[..]).unwrap_err(), WireError::BadVersion);
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&v[..]).unwrap_err(), WireError::BadHeaderLen);
        let mut v = b.clone();
        v[0] = 0x4f; // 60-byte header in a 40-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&v[..40]).unwrap_err(), WireError::BadHeaderLen);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&0x74u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&v[..]).unwrap_err(), WireError::BadLength);
        let mut v = b.clone();
        v[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&v[..]).unwrap_err(), WireError::BadLength);
        let mut v = b;
        v[15] ^= 1;
        assert!(!Ipv4Packet::new_checked(&v[..]).unwrap().verify_checksum());
    }

    #[test]
    fn fragments() {
        let mut b = packet();
        Ipv4Packet::new_unchecked(&mut b[..]).set_frag(false, true, 0);
        assert!(Ipv4Packet::new_checked(&b[..]).unwrap().is_fragment());
        Ipv4Packet::new_unchecked(&mut b[..]).set_frag(false, false, 1480);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn incremental_rewrites_match_a_full_recompute() {
        let mut b = packet();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.rewrite_src([198, 18, 1, 1]);
        p.rewrite_dst([198, 18, 1, 11]);
        assert_eq!(p.decrement_ttl(), 63);
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(inc, p.checksum());
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.src(), [198, 18, 1, 1]);
    }

    #[test]
    fn options_are_exposed() {
        let mut b = packet();
        b[0] = 0x46;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 0x73 - 24);
    }
}
