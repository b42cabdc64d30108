//! ARP (RFC 826) for Ethernet and IPv4, the only combination rvs answers.

use super::ethernet::Mac;
use super::{Field, WireError, get16, put16};

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;
/// Operation: request.
pub const OP_REQUEST: u16 = 1;
/// Operation: reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wrap after checking the length and that it is Ethernet/IPv4 ARP.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }
    /// Check the length (28 bytes) and the hardware/protocol types and lengths.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if get16(b, field::HTYPE) != HTYPE_ETHERNET
            || get16(b, field::PTYPE) != PTYPE_IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(())
    }
    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        get16(self.buffer.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        m
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SPA]);
        a
    }
    /// Target hardware address.
    pub fn target_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        m
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::TPA]);
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write the fixed part for Ethernet/IPv4 (types and lengths) and the operation.
    pub fn init(&mut self, op: u16) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, HTYPE_ETHERNET);
        put16(b, field::PTYPE, PTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        put16(b, field::OPER, op);
    }
    /// Set the sender addresses.
    pub fn set_sender(&mut self, mac: Mac, ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&mac);
        b[field::SPA].copy_from_slice(&ip);
    }
    /// Set the target addresses.
    pub fn set_target(&mut self, mac: Mac, ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::THA].copy_from_slice(&mac);
        b[field::TPA].copy_from_slice(&ip);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn build_then_read() {
        let mut b = [0u8; PACKET_LEN];
        let mut p = ArpPacket::new_unchecked(&mut b[..]);
        p.init(OP_REQUEST);
        p.set_sender([2, 0, 0, 0, 0, 1], [198, 18, 0, 1]);
        p.set_target([0; 6], [198, 18, 0, 2]);
        // RFC 826 layout, written out by hand.
        assert_eq!(&b[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&b[14..18], &[198, 18, 0, 1]);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.sender_ip(), [198, 18, 0, 1]);
        assert_eq!(p.target_ip(), [198, 18, 0, 2]);
        assert_eq!(p.target_mac(), [0; 6]);
    }

    #[test]
    fn refuses_short_and_foreign() {
        assert_eq!(
            ArpPacket::new_checked(&[0u8; 27][..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = [0u8; PACKET_LEN];
        ArpPacket::new_unchecked(&mut b[..]).init(OP_REPLY);
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpPacket::new_checked(&b[..]).unwrap_err(), WireError::Unsupported);
    }
}
