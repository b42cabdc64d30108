//! The test kit's own Internet checksum (RFC 1071), used by the builder.
//!
//! Deliberately written here, not taken from `rvs_core::checksum`: the builder's bytes are an
//! oracle for rvs-core's checksum module, so they must not come from it. The decoder checks
//! with a third implementation (etherparse's), so builder and decoder do not share one either.

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// a zero), added to `acc`. Not folded.
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(acc);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Fold a sum to 16 bits and complement it: the value to put in a checksum field.
pub fn finish(acc: u32) -> u16 {
    let mut s = acc;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The checksum of `data` alone (IPv4 header, ICMPv4 message).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The sum of the IPv4 pseudo-header (RFC 793 section 3.1, RFC 768).
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let mut s = sum(0, &src);
    s = sum(s, &dst);
    s = sum(s, &[0, proto]);
    sum(s, &(len as u16).to_be_bytes())
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1): 32-bit upper-layer length.
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, len: usize) -> u32 {
    let mut s = sum(0, &src);
    s = sum(s, &dst);
    s = sum(s, &(len as u32).to_be_bytes());
    sum(s, &[0, 0, 0, proto])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
    }

    #[test]
    fn known_ipv4_header() {
        // The IPv4 header of Wikipedia's worked example: checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }
}
