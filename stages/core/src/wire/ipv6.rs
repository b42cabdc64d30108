//! IPv6 headers (RFC 8200) and the walk over extension headers to the upper layer.

use super::{Field, WireError, get16, get32, put16, put32};
use crate::checksum;

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST.end;

/// Extension header and upper-layer numbers the walk knows.
pub mod next_header {
    /// Hop-by-hop options (must come first, RFC 8200 section 4.1).
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (RFC 4302; its length is in 4-byte units).
    pub const AUTH: u8 = 51;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
}

/// Most extension headers the walk follows before giving up (bounds the work per packet;
/// RFC 8200 recommends at most one of each kind, destination options at most twice).
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Wrap after [`Ipv6Packet::check`]. The buffer may extend past 40 + payload length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }
    /// Check: at least 40 bytes, version 6, payload within the buffer. (A jumbogram's payload
    /// length of 0, RFC 2675, leaves an empty payload, so its upper layer looks truncated.)
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + self.payload_len() as usize > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (get32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        get32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    /// Total length: 40 + payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }
    /// The payload (extension headers and upper layer), up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
    /// Walk the extension headers to the upper layer ([`walk_ext_headers`] over the payload).
    pub fn upper_layer(&self) -> Result<UpperLayer, WireError> {
        walk_ext_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set version 6, traffic class and flow label.
    pub fn set_ver_tc_flow(&mut self, tc: u8, flow: u32) {
        put32(
            self.buffer.as_mut(),
            field::VER_TC_FLOW,
            6 << 28 | (tc as u32) << 20 | (flow & 0x000f_ffff),
        );
    }
    /// Set the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }
    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }
    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Set the source address (IPv6 has no header checksum; upper-layer sums need updating).
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }
    /// Set the destination address.
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

/// Where the upper layer starts, found by walking the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol number (59 when there is none).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 payload.
    pub offset: usize,
    /// The fragment header, if one was crossed.
    pub fragment: Option<FragmentInfo>,
}

/// What a fragment header says (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentInfo {
    /// A fragment header with offset 0 and M clear ("atomic fragment", RFC 6946) is not
    /// really a fragment, but DPVS drops anything with a fragment header; so do we.
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

mod ext_field {
    use super::Field;
    pub const NEXT_HEADER: usize = 0;
    pub const LEN: usize = 1;
    /// Fragment header: offset (13 bits), reserved, M flag.
    pub const FRAG_OFF_M: Field = 2..4;
    pub const FRAG_IDENT: Field = 4..8;
    pub const FRAG_LEN: usize = 8;
}

/// A generic view of one extension header (hop-by-hop, routing, destination options,
/// fragment, authentication).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    kind: u8,
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wrap the extension header of kind `kind` at the start of `buffer`, checking that its
    /// whole length is there.
    pub fn new_checked(kind: u8, buffer: T) -> Result<Self, WireError> {
        let h = ExtHeader { kind, buffer };
        let b = h.buffer.as_ref();
        if b.len() < 2 {
            return Err(WireError::Truncated);
        }
        if h.header_len() > b.len() {
            return Err(WireError::BadHeaderLen);
        }
        Ok(h)
    }
    /// Its kind (the next-header value that named it).
    pub fn kind(&self) -> u8 {
        self.kind
    }
    /// The header after this one.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ext_field::NEXT_HEADER]
    }
    /// Length in bytes: 8 for a fragment header, (len + 2) x 4 for AH, (len + 1) x 8 otherwise.
    pub fn header_len(&self) -> usize {
        let l = self.buffer.as_ref()[ext_field::LEN] as usize;
        match self.kind {
            next_header::FRAGMENT => ext_field::FRAG_LEN,
            next_header::AUTH => (l + 2) * 4,
            _ => (l + 1) * 8,
        }
    }
    /// For a fragment header, what it says.
    pub fn fragment(&self) -> Option<FragmentInfo> {
        if self.kind != next_header::FRAGMENT {
            return None;
        }
        let b = self.buffer.as_ref();
        let om = get16(b, ext_field::FRAG_OFF_M);
        Some(FragmentInfo {
            offset: om & 0xfff8,
            more: om & 1 != 0,
            ident: get32(b, ext_field::FRAG_IDENT),
        })
    }
}

/// True for the extension headers the walk steps over.
pub const fn is_ext_header(nh: u8) -> bool {
    matches!(
        nh,
        next_header::HOP_BY_HOP
            | next_header::ROUTING
            | next_header::FRAGMENT
            | next_header::AUTH
            | next_header::DEST_OPTS
    )
}

/// Walk the extension headers of an IPv6 payload starting with next header `first`, to the
/// upper layer. Errors: a header running past the payload ([`WireError::BadHeaderLen`] /
/// [`WireError::Truncated`]), a hop-by-hop header that is not first or a chain longer than
/// [`MAX_EXT_HEADERS`] ([`WireError::Unsupported`]). After a non-first fragment the upper
/// layer header is not there; the walk still reports the fragment and the protocol.
pub fn walk_ext_headers(first: u8, payload: &[u8]) -> Result<UpperLayer, WireError> {
    let mut nh = first;
    let mut off = 0usize;
    let mut fragment = None;
    let mut count = 0usize;
    while is_ext_header(nh) {
        if count == MAX_EXT_HEADERS || (nh == next_header::HOP_BY_HOP && count > 0) {
            return Err(WireError::Unsupported);
        }
        let rest = payload.get(off..).ok_or(WireError::Truncated)?;
        let h = ExtHeader::new_checked(nh, rest)?;
        if let Some(f) = h.fragment() {
            fragment = Some(f);
        }
        nh = h.next_header();
        off += h.header_len();
        count += 1;
        if fragment.is_some_and(|f| f.offset != 0) {
            break;
        }
    }
    Ok(UpperLayer {
        proto: nh,
        offset: off,
        fragment,
    })
}

/// The IPv6 pseudo-header sum for an upper-layer packet of `len` bytes (RFC 8200 8.1).
pub fn pseudo_sum(src: [u8; 16], dst: [u8; 16], proto: u8, len: u32) -> u32 {
    checksum::pseudo_v6(src, dst, proto, len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn packet(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        let mut p = Ipv6Packet::new_unchecked(&mut v[..]);
        p.set_ver_tc_flow(0x12, 0xabcde);
        p.set_payload_len(payload.len() as u16);
        p.set_next_header(nh);
        p.set_hop_limit(64);
        p.set_src([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.set_dst([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn fixed_header_fields() {
        let v = packet(6, &[0; 20]);
        assert_eq!(&v[..4], &[0x61, 0x2a, 0xbc, 0xde]);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src()[15], 1);
        assert_eq!(
            p.upper_layer().unwrap(),
            UpperLayer {
                proto: 6,
                offset: 0,
                fragment: None
            }
        );
    }

    #[test]
    fn refuses_bad_headers() {
        let v = packet(6, &[0; 20]);
        assert_eq!(Ipv6Packet::new_checked(&v[..39]).unwrap_err(), WireError::Truncated);
        assert_eq!(Ipv6Packet::new_checked(&v[..59]).unwrap_err(), WireError::BadLength);
        let mut w = v.clone();
        w[0] = 0x41;
        assert_eq!(Ipv6Packet::new_checked(&w[..]).unwrap_err(), WireError::BadVersion);
    }

    #[test]
    fn walks_a_chain_to_tcp() {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> routing (8) -> TCP.
        let mut pl = vec![next_header::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        pl.extend_from_slice(&[next_header::ROUTING, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[0; 20]);
        let v = packet(next_header::HOP_BY_HOP, &pl);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(
            p.upper_layer().unwrap(),
            UpperLayer {
                proto: 6,
                offset: 32,
                fragment: None
            }
        );
    }

    #[test]
    fn reports_fragments() {
        // First fragment: offset 0, M set, ident 0x01020304.
        let mut pl = vec![17, 0, 0x00, 0x01, 1, 2, 3, 4];
        pl.extend_from_slice(&[0; 8]);
        let up = walk_ext_headers(next_header::FRAGMENT, &pl).unwrap();
        assert_eq!(up.proto, 17);
        assert_eq!(up.offset, 8);
        assert_eq!(
            up.fragment,
            Some(FragmentInfo {
                offset: 0,
                more: true,
                ident: 0x0102_0304
            })
        );
        // Later fragment: offset 1448 (0x5a8), M clear.
        let pl = [17, 0, 0x05, 0xa8, 0, 0, 0, 9];
        let up = walk_ext_headers(next_header::FRAGMENT, &pl).unwrap();
        let f = up.fragment.unwrap();
        assert_eq!((f.offset, f.more, f.is_atomic()), (1448, false, false));
    }

    #[test]
    fn refuses_bad_chains() {
        // Length past the payload.
        assert_eq!(
            walk_ext_headers(next_header::DEST_OPTS, &[6, 1, 0, 0, 0, 0, 0, 0]),
            Err(WireError::BadHeaderLen)
        );
        assert_eq!(walk_ext_headers(next_header::ROUTING, &[6]), Err(WireError::Truncated));
        assert_eq!(walk_ext_headers(next_header::ROUTING, &[]), Err(WireError::Truncated));
        // Hop-by-hop after another header.
        let pl = [next_header::HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(next_header::DEST_OPTS, &pl),
            Err(WireError::Unsupported)
        );
        // An endless chain of destination options.
        let pl = [next_header::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0].repeat(MAX_EXT_HEADERS + 1);
        assert_eq!(
            walk_ext_headers(next_header::DEST_OPTS, &pl),
            Err(WireError::Unsupported)
        );
    }
}
