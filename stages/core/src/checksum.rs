//! The one checksum module: the Internet checksum in full (RFC 1071) and updated
//! incrementally (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`), with pseudo-headers for
//! IPv4 and IPv6 and the port's offload capabilities.
//!
//! All sums are kept as `u32` accumulators of 16-bit big-endian words and folded at the end,
//! so partial sums over several pieces (pseudo-header, header, payload) simply add.

use crate::addr::Addr;

/// What a port can compute on transmit. Stages complete the checksum in software for a port
/// that cannot, and only ask for offload (via [`crate::mbuf::Mbuf::set_tx_offload`]) from one
/// that can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffloadCaps {
    /// The port computes IPv4 header checksums.
    pub ipv4_cksum: bool,
    /// The port computes TCP checksums.
    pub tcp_cksum: bool,
    /// The port computes UDP checksums.
    pub udp_cksum: bool,
}

impl OffloadCaps {
    /// A port that offloads nothing (heap buffers, pcap, most virtual devices).
    pub const NONE: OffloadCaps = OffloadCaps {
        ipv4_cksum: false,
        tcp_cksum: false,
        udp_cksum: false,
    };
}

/// Add the 16-bit big-endian words of `data` to `acc` (an odd trailing byte is padded with
/// zero, RFC 1071 section 4.1).
#[inline]
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    // Accumulate in u64 so long buffers cannot overflow, then fold.
    let mut wide: u64 = acc as u64;
    for c in &mut chunks {
        wide += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        wide += (*last as u64) << 8;
    }
    while wide > 0xffff_ffff {
        wide = (wide & 0xffff_ffff) + (wide >> 32);
    }
    acc = wide as u32;
    acc
}

/// Fold a 32-bit accumulator into 16 bits (end-around carry).
#[inline]
pub const fn fold(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value for an accumulated sum: the one's complement of the fold.
#[inline]
pub const fn finish(acc: u32) -> u16 {
    !fold(acc)
}

/// Checksum of an IPv4 header whose checksum field (bytes 10..12) is taken as zero.
pub fn ipv4_header(hdr: &[u8]) -> u16 {
    if hdr.len() < 12 {
        return finish(sum(hdr, 0));
    }
    let acc = sum(&hdr[..10], 0);
    finish(sum(&hdr[12..], acc))
}

/// True when `data` (a header with its checksum field in place) sums to all ones.
pub fn verifies(data: &[u8], acc: u32) -> bool {
    fold(sum(data, acc)) == 0xffff
}

/// Pseudo-header sum for IPv4 (RFC 793 / RFC 768).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc + proto as u32 + l4_len as u32
}

/// Pseudo-header sum for IPv6 (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4_len: u32) -> u32 {
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc = sum(&l4_len.to_be_bytes(), acc);
    acc + proto as u32
}

/// Pseudo-header sum for either family (addresses must be of one family).
#[inline]
pub fn pseudo(src: Addr, dst: Addr, proto: u8, l4_len: u32) -> u32 {
    if src.is_v4() {
        pseudo_v4(src.v4_octets(), dst.v4_octets(), proto, l4_len as u16)
    } else {
        pseudo_v6(src.octets(), dst.octets(), proto, l4_len)
    }
}

/// Full TCP/UDP/ICMPv6 checksum of `l4` (header with a zero checksum field, plus payload)
/// under the pseudo-header of `src`, `dst`. For UDP a result of 0 must be sent as 0xffff
/// (RFC 768); see [`udp_wire`].
pub fn l4(src: Addr, dst: Addr, proto: u8, l4: &[u8]) -> u16 {
    finish(sum(l4, pseudo(src, dst, proto, l4.len() as u32)))
}

/// UDP's transmitted form of a computed checksum: 0 becomes 0xffff.
#[inline]
pub const fn udp_wire(ck: u16) -> u16 {
    if ck == 0 { 0xffff } else { ck }
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `old` to `new`.
#[inline]
pub const fn update16(ck: u16, old: u16, new: u16) -> u16 {
    let acc = (!ck as u32) + (!old as u32 & 0xffff) + new as u32;
    !fold(acc)
}

/// The checksum after a 32-bit field changed from `old` to `new`.
#[inline]
pub const fn update32(ck: u16, old: u32, new: u32) -> u16 {
    let acc = (!ck as u32) + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(acc)
}

/// The checksum after the bytes `old` were replaced by `new` (same even length, aligned on
/// a 16-bit boundary within the summed data), e.g. an address.
#[inline]
pub fn update_bytes(ck: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = !ck as u32;
    for c in old.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += (!w) as u32;
    }
    for c in new.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += w as u32;
    }
    // Fold often enough that the accumulator cannot overflow for short fields.
    !fold(acc)
}

/// The checksum after an address changed (either family; both of the same family).
#[inline]
pub fn update_addr(ck: u16, old: Addr, new: Addr) -> u16 {
    if old.is_v4() {
        update32(ck, old.v4_u32(), new.v4_u32())
    } else {
        update_bytes(ck, &old.octets(), &new.octets())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 1071 section 3's worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn ipv4_header_known_value() {
        // A header from a capture, checksum 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&hdr), 0xb861);
        assert!(verifies(&hdr, 0));
    }

    fn full_with(data: &mut [u8], at: usize, field: &[u8]) -> u16 {
        data[at..at + field.len()].copy_from_slice(field);
        finish(sum(data, 0))
    }

    proptest! {
        // Incremental updates agree with recomputing from scratch (RFC 1624's point).
        #[test]
        fn incremental_equals_full(mut data in proptest::collection::vec(any::<u8>(), 8..64),
                                   w in 0usize..3, new16 in any::<u16>(), new32 in any::<u32>(),
                                   new128 in any::<u128>()) {
            let at = (w * 2).min(data.len() - 4);
            let at = at & !1;
            let ck = finish(sum(&data, 0));
            let old16 = u16::from_be_bytes([data[at], data[at + 1]]);
            let want = full_with(&mut data.clone(), at, &new16.to_be_bytes());
            let got = update16(ck, old16, new16);
            // 0x0000 and 0xffff are the same number in one's complement.
            prop_assert!(got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff));

            let old32 = u32::from_be_bytes([data[at], data[at+1], data[at+2], data[at+3]]);
            let want = full_with(&mut data.clone(), at, &new32.to_be_bytes());
            let got = update32(ck, old32, new32);
            prop_assert!(got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff));

            if data.len() >= 16 {
                let old = Addr(u128::from_be_bytes(data[..16].try_into().unwrap()));
                let new = Addr(new128);
                if !old.is_v4() && !new.is_v4() {
                    let want = full_with(&mut data, 0, &new.octets());
                    let got = update_addr(ck, old, new);
                    prop_assert!(got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff));
                }
            }
        }

        #[test]
        fn odd_lengths_pad_with_zero(data in proptest::collection::vec(any::<u8>(), 1..64)) {
            let mut padded = data.clone();
            if padded.len() % 2 == 1 { padded.push(0); }
            prop_assert_eq!(fold(sum(&data, 0)), fold(sum(&padded, 0)));
        }
    }
}
