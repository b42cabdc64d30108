//! UDP headers (RFC 768).

use super::{Field, WireError, get16, put16};
use crate::addr::Addr;
use crate::checksum;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wrap after [`UdpPacket::check`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }
    /// Check: at least 8 bytes, the length field at least 8 and within the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN || l > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(())
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field (header and payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }
    /// The checksum field (0: none sent, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// True when the checksum verifies under `pseudo` (or is 0, "none", RFC 768).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        self.checksum() == 0 || checksum::verifies(&self.buffer.as_ref()[..self.len() as usize], pseudo)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port (checksum untouched).
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the length.
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Compute the checksum from scratch over the length field's bytes, 0 sent as 0xffff.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let l = self.len() as usize;
        let ck = checksum::udp_wire(checksum::finish(checksum::sum(&self.buffer.as_ref()[..l], pseudo)));
        self.set_checksum(ck);
    }
    /// Apply an RFC 1624 update unless the datagram carries no checksum (0 stays 0; a
    /// computed 0 is sent as 0xffff).
    fn update(&mut self, f: impl FnOnce(u16) -> u16) {
        let ck = self.checksum();
        if ck != 0 {
            self.set_checksum(checksum::udp_wire(f(ck)));
        }
    }
    /// Set the source port, updating the checksum.
    pub fn rewrite_src_port(&mut self, v: u16) {
        let old = self.src_port();
        self.update(|ck| checksum::update16(ck, old, v));
        self.set_src_port(v);
    }
    /// Set the destination port, updating the checksum.
    pub fn rewrite_dst_port(&mut self, v: u16) {
        let old = self.dst_port();
        self.update(|ck| checksum::update16(ck, old, v));
        self.set_dst_port(v);
    }
    /// Fold an IP address change of the pseudo-header into the checksum.
    pub fn rewrite_pseudo_addr(&mut self, old: Addr, new: Addr) {
        self.update(|ck| checksum::update_addr(ck, old, new));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dgram() -> Vec<u8> {
        let mut v = vec![0u8; 8];
        let mut p = UdpPacket::new_unchecked(&mut v[..]);
        p.set_src_port(5353);
        p.set_dst_port(53);
        p.set_len(13);
        v.extend_from_slice(b"hello");
        let ps = checksum::pseudo_v4([198, 18, 5, 5], [198, 18, 0, 100], 17, 13);
        UdpPacket::new_unchecked(&mut v[..]).fill_checksum(ps);
        v
    }

    #[test]
    fn fields_and_rewrites() {
        let mut v = dgram();
        v.push(0); // trailing byte outside the datagram
        let p = UdpPacket::new_checked(&v[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (5353, 53, 13));
        assert_eq!(p.payload(), b"hello");
        let ps = checksum::pseudo_v4([198, 18, 5, 5], [198, 18, 0, 100], 17, 13);
        assert!(p.verify_checksum(ps));
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.rewrite_dst_port(5300);
        p.rewrite_pseudo_addr(Addr::v4([198, 18, 0, 100]), Addr::v4([198, 18, 1, 11]));
        let ps = checksum::pseudo_v4([198, 18, 5, 5], [198, 18, 1, 11], 17, 13);
        assert!(p.verify_checksum(ps));
        assert!(checksum::verifies(&v[..13], ps));
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut v = dgram();
        UdpPacket::new_unchecked(&mut v[..]).set_checksum(0);
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.rewrite_src_port(1);
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn refuses_bad_lengths() {
        let v = dgram();
        assert_eq!(UdpPacket::new_checked(&v[..7]).unwrap_err(), WireError::Truncated);
        assert_eq!(UdpPacket::new_checked(&v[..12]).unwrap_err(), WireError::BadLength);
        let mut w = v.clone();
        w[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&w[..]).unwrap_err(), WireError::BadLength);
    }
}
