//! DPVS's UOA "opp" header: the private IP protocol 248 (`IPPROTO_OPT`) that FNAT's UOA in
//! "opp" mode puts between the IP header and UDP. Four bytes -- version, next protocol, length
//! of the header and its options (big-endian) -- then the options. rvs-xmit writes it;
//! rvs-lookup and rvs-xmit read it back in the datagrams ICMP errors quote.

/// The IP protocol number of the opp header.
pub const PROTO: u8 = 248;
/// Length of the fixed part, in front of the options.
pub const HDR_LEN: usize = 4;

/// The length (fixed part and options) of the opp header at the front of `b` when it is
/// whole in `b` and its next protocol is `next`; `None` for anything else.
#[inline]
pub fn len_before(b: &[u8], next: u8) -> Option<usize> {
    let [_, nxt, hi, lo, ..] = *b else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    (nxt == next && len >= HDR_LEN && len <= b.len()).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_headers_with_the_asked_next_protocol_only() {
        let h = [0x10, 17, 0, 12, 31, 8, 1, 2, 198, 18, 0, 1, 0xaa];
        assert_eq!(len_before(&h, 17), Some(12));
        assert_eq!(len_before(&h, 6), None, "other next protocol");
        assert_eq!(len_before(&h[..11], 17), None, "options cut short");
        assert_eq!(len_before(&[0x10, 17, 0, 3], 17), None, "shorter than the fixed part");
        assert_eq!(len_before(&[0x10, 17, 0], 17), None, "fixed part cut short");
        assert_eq!(len_before(&[0x10, 17, 0, 4], 17), Some(4));
    }
}
