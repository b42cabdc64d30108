//! Ethernet II frames with at most one IEEE 802.1Q tag.

use super::{Field, Rest, WireError, get16, put16};

/// EtherType values rvs looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (RFC 894).
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP (RFC 826).
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6 (RFC 2464).
    pub const IPV6: EtherType = EtherType(0x86dd);
}

/// A 48-bit MAC address.
pub type Mac = [u8; 6];

mod field {
    use super::{Field, Rest};
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
    // With one 802.1Q tag: the tag control information, then the inner EtherType.
    pub const VLAN_TCI: Field = 14..16;
    pub const VLAN_ETHERTYPE: Field = 16..18;
    pub const VLAN_PAYLOAD: Rest = 18..;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of an Ethernet header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_PAYLOAD.start;

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap without checking (getters may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    /// Wrap after checking the buffer holds the whole header, tag included.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// Check the buffer holds the header (14 bytes, 18 with an 802.1Q tag).
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if get16(b, field::ETHERTYPE) == EtherType::VLAN.0 && b.len() < VLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        m
    }
    /// Source MAC.
    pub fn src(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        m
    }
    /// The outer EtherType (0x8100 for a tagged frame).
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(get16(self.buffer.as_ref(), field::ETHERTYPE))
    }
    /// True when the frame carries an 802.1Q tag.
    pub fn has_vlan(&self) -> bool {
        self.outer_ethertype() == EtherType::VLAN
    }
    /// The VLAN id (low 12 bits of the tag control information), 0 when untagged.
    pub fn vlan_id(&self) -> u16 {
        if self.has_vlan() {
            get16(self.buffer.as_ref(), field::VLAN_TCI) & 0x0fff
        } else {
            0
        }
    }
    /// The 802.1Q priority code point, 0 when untagged.
    pub fn vlan_pcp(&self) -> u8 {
        if self.has_vlan() {
            (get16(self.buffer.as_ref(), field::VLAN_TCI) >> 13) as u8
        } else {
            0
        }
    }
    /// The EtherType of the payload (the inner one for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        if self.has_vlan() {
            EtherType(get16(self.buffer.as_ref(), field::VLAN_ETHERTYPE))
        } else {
            self.outer_ethertype()
        }
    }
    /// Length of the header, tag included.
    pub fn header_len(&self) -> usize {
        if self.has_vlan() { VLAN_HEADER_LEN } else { HEADER_LEN }
    }
    /// The payload (the L3 packet and any Ethernet padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination MAC.
    pub fn set_dst(&mut self, m: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m);
    }
    /// Set the source MAC.
    pub fn set_src(&mut self, m: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m);
    }
    /// Set the outer EtherType (writing 0x8100 makes the frame tagged: the tag must be there).
    pub fn set_outer_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }
    /// Set the payload's EtherType (the inner one of a tagged frame).
    pub fn set_ethertype(&mut self, t: EtherType) {
        if self.has_vlan() {
            put16(self.buffer.as_mut(), field::VLAN_ETHERTYPE, t.0);
        } else {
            self.set_outer_ethertype(t);
        }
    }
    /// Set the VLAN id of a tagged frame (priority kept); no effect on an untagged one.
    pub fn set_vlan_id(&mut self, id: u16) {
        if self.has_vlan() {
            let tci = get16(self.buffer.as_ref(), field::VLAN_TCI);
            put16(self.buffer.as_mut(), field::VLAN_TCI, (tci & 0xf000) | (id & 0x0fff));
        }
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parse a MAC written `aa:bb:cc:dd:ee:ff` (or with `-`); `None` when malformed.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0xaa, 0xbb];

    #[test]
    fn untagged_fields() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert!(!f.has_vlan());
        assert_eq!(f.vlan_id(), 0);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn tagged_fields_and_setters() {
        let mut b = [0u8; 20];
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        b[14..16].copy_from_slice(&[0xa0, 0x64]); // pcp 5, vid 100
        b[16..18].copy_from_slice(&[0x86, 0xdd]);
        let mut f = EthernetFrame::new_checked(&mut b[..]).unwrap();
        assert!(f.has_vlan());
        assert_eq!(f.vlan_id(), 100);
        assert_eq!(f.vlan_pcp(), 5);
        assert_eq!(f.ethertype(), EtherType::IPV6);
        assert_eq!(f.header_len(), 18);
        f.set_vlan_id(7);
        f.set_dst([1, 2, 3, 4, 5, 6]);
        assert_eq!(f.vlan_id(), 7);
        assert_eq!(f.vlan_pcp(), 5);
        assert_eq!(&b[0..6], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(
            EthernetFrame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = [0u8; 17];
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(EthernetFrame::new_checked(&b[..]).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn mac_text() {
        let m = parse_mac("02:00:00:00:01:1f").unwrap();
        assert_eq!(m, [2, 0, 0, 0, 1, 0x1f]);
        assert_eq!(format_mac(m), "02:00:00:00:01:1f");
        assert!(parse_mac("02:00:00:00:01").is_none());
        assert!(parse_mac("02:00:00:00:01:1f:00").is_none());
        assert!(parse_mac("02:00:00:00:01:zz").is_none());
    }
}
