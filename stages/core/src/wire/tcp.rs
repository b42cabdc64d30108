//! TCP headers (RFC 9293) with an options iterator and in-place option rewrites: the
//! timestamp option replaced by NOPs (RFC 7323), SACK blocks shifted (RFC 2018), MSS read and
//! lowered (RFC 9293 section 3.7.1). Every rewrite of bytes covered by the checksum updates
//! the checksum incrementally (RFC 1624), so a wrong checksum stays wrong and a right one
//! stays right.

use super::{Field, Rest, WireError, get16, get32, put16, put32, rewrite_summed};
use crate::addr::Addr;
use crate::checksum;

mod field {
    use super::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: Rest = 20..;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS.start;

/// Option kinds.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (length 4).
    pub const MSS: u8 = 2;
    /// Window scale (length 3).
    pub const WSCALE: u8 = 3;
    /// SACK permitted (length 2).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (length 2 + 8n).
    pub const SACK: u8 = 5;
    /// Timestamps (length 10).
    pub const TIMESTAMP: u8 = 8;
}

/// A view of a TCP segment. For checksums the buffer must be exactly the segment (the IP
/// payload); for header work any buffer starting at the header will do.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Wrap after [`TcpPacket::check`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }
    /// Check: at least 20 bytes, data offset at least 5 and not past the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(WireError::BadHeaderLen);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        get32(self.buffer.as_ref(), field::SEQ)
    }
    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        get32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset x 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }
    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN; see [`crate::meta::TcpFlags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Window.
    pub fn window(&self) -> u16 {
        get16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        get16(self.buffer.as_ref(), field::URGENT)
    }
    /// The option bytes.
    pub fn options_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// Iterate over the options.
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options_bytes())
    }
    /// The payload (after the header, to the end of the buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// True when the segment sums to all ones under the pseudo-header sum `pseudo` (e.g.
    /// [`checksum::pseudo`] of the IP addresses, protocol 6 and the buffer length).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::verifies(self.buffer.as_ref(), pseudo)
    }
    /// The MSS option's value, if present and well formed.
    pub fn mss(&self) -> Option<u16> {
        self.options().find_map(|o| match o {
            Ok((_, TcpOption::Mss(v))) => Some(v),
            _ => None,
        })
    }
    /// The timestamp option's values, if present.
    pub fn timestamp(&self) -> Option<(u32, u32)> {
        self.options().find_map(|o| match o {
            Ok((_, TcpOption::Timestamp { tsval, tsecr })) => Some((tsval, tsecr)),
            _ => None,
        })
    }
    /// Offset (in the segment) of the first option of kind `k` with a well-formed length.
    fn find_option(&self, k: u8) -> Option<(usize, TcpOption<'_>)> {
        self.options().find_map(|o| match o {
            Ok((off, opt)) if opt.kind() == k && !matches!(opt, TcpOption::Unknown { .. }) => {
                Some((MIN_HEADER_LEN + off, opt))
            }
            _ => None,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Set the source port (checksum untouched).
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the sequence number (checksum untouched).
    pub fn set_seq(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Set the acknowledgement number (checksum untouched).
    pub fn set_ack(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Set the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        b[field::DATA_OFF] = (b[field::DATA_OFF] & 0x0f) | (((len / 4) as u8) << 4);
    }
    /// Set the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    /// Set the window.
    pub fn set_window(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// The option bytes, writable.
    pub fn options_bytes_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..h]
    }
    /// Compute the checksum from scratch under the pseudo-header sum `pseudo` (the whole
    /// buffer is the segment).
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let ck = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(ck);
    }
    /// Set the source port, updating the checksum (RFC 1624).
    pub fn rewrite_src_port(&mut self, v: u16) {
        let ck = checksum::update16(self.checksum(), self.src_port(), v);
        self.set_src_port(v);
        self.set_checksum(ck);
    }
    /// Set the destination port, updating the checksum (RFC 1624).
    pub fn rewrite_dst_port(&mut self, v: u16) {
        let ck = checksum::update16(self.checksum(), self.dst_port(), v);
        self.set_dst_port(v);
        self.set_checksum(ck);
    }
    /// Set the sequence number, updating the checksum (RFC 1624).
    pub fn rewrite_seq(&mut self, v: u32) {
        let ck = checksum::update32(self.checksum(), self.seq(), v);
        self.set_seq(v);
        self.set_checksum(ck);
    }
    /// Set the acknowledgement number, updating the checksum (RFC 1624).
    pub fn rewrite_ack(&mut self, v: u32) {
        let ck = checksum::update32(self.checksum(), self.ack(), v);
        self.set_ack(v);
        self.set_checksum(ck);
    }
    /// Fold an IP address change of the pseudo-header into the checksum (RFC 1624).
    pub fn rewrite_pseudo_addr(&mut self, old: Addr, new: Addr) {
        let ck = checksum::update_addr(self.checksum(), old, new);
        self.set_checksum(ck);
    }
    /// Overwrite the timestamp option with NOPs, as DPVS's FNAT does on the SYN (clients
    /// behind different local addresses would otherwise show one real server unrelated
    /// timestamp clocks; RFC 7323 section 5.5). Returns true when there was one.
    pub fn nop_timestamp(&mut self) -> bool {
        let Some((off, opt)) = self.find_option(kind::TIMESTAMP) else {
            return false;
        };
        let len = opt.len();
        rewrite_summed(self.buffer.as_mut(), off..off + len, field::CHECKSUM, |b| {
            b.fill(kind::NOP)
        });
        true
    }
    /// Lower the MSS option to `mss` when it is larger (DPVS lowers the SYN-ACK's MSS by the
    /// TOA length). Returns the value now in the packet, `None` without an MSS option.
    pub fn clamp_mss(&mut self, mss: u16) -> Option<u16> {
        let (off, opt) = self.find_option(kind::MSS)?;
        let TcpOption::Mss(cur) = opt else { return None };
        if cur > mss {
            rewrite_summed(self.buffer.as_mut(), off + 2..off + 4, field::CHECKSUM, |b| {
                b.copy_from_slice(&mss.to_be_bytes())
            });
            return Some(mss);
        }
        Some(cur)
    }
    /// Set the MSS option to `mss` (updating the checksum). False without an MSS option.
    pub fn set_mss(&mut self, mss: u16) -> bool {
        let Some((off, _)) = self.find_option(kind::MSS) else {
            return false;
        };
        rewrite_summed(self.buffer.as_mut(), off + 2..off + 4, field::CHECKSUM, |b| {
            b.copy_from_slice(&mss.to_be_bytes())
        });
        true
    }
    /// Rewrite every edge of the SACK option's blocks with `f` (e.g. subtract the FNAT
    /// sequence delta on the way back to the client), updating the checksum. Returns the
    /// number of blocks rewritten (0 without a SACK option).
    pub fn rewrite_sack(&mut self, mut f: impl FnMut(u32) -> u32) -> usize {
        let Some((off, opt)) = self.find_option(kind::SACK) else {
            return 0;
        };
        let n = match opt {
            TcpOption::Sack(b) => b.len(),
            _ => 0,
        };
        let start = off + 2;
        rewrite_summed(self.buffer.as_mut(), start..start + n * 8, field::CHECKSUM, |b| {
            for edge in b.chunks_exact_mut(4) {
                let v = u32::from_be_bytes([edge[0], edge[1], edge[2], edge[3]]);
                edge.copy_from_slice(&f(v).to_be_bytes());
            }
        });
        n
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of the option list (what follows is padding).
    EndOfList,
    /// No operation.
    Nop,
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift.
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks.
    Sack(SackBlocks<'a>),
    /// Timestamps.
    Timestamp {
        /// Sender's timestamp.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// Any other option (or a known kind with a length it cannot have), with its data.
    Unknown {
        /// Kind.
        kind: u8,
        /// The bytes after kind and length.
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    /// The option's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            TcpOption::EndOfList => kind::EOL,
            TcpOption::Nop => kind::NOP,
            TcpOption::Mss(_) => kind::MSS,
            TcpOption::WindowScale(_) => kind::WSCALE,
            TcpOption::SackPermitted => kind::SACK_PERMITTED,
            TcpOption::Sack(_) => kind::SACK,
            TcpOption::Timestamp { .. } => kind::TIMESTAMP,
            TcpOption::Unknown { kind, .. } => *kind,
        }
    }
    /// Bytes the option occupies.
    pub fn len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(b) => 2 + 8 * b.len(),
            TcpOption::Timestamp { .. } => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }
    /// Never true (every option occupies at least one byte); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The blocks of a SACK option, each a (left edge, right edge) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackBlocks<'a>(&'a [u8]);

impl<'a> SackBlocks<'a> {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }
    /// True without blocks.
    pub fn is_empty(&self) -> bool {
        self.0.len() < 8
    }
    /// The blocks.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        self.0.chunks_exact(8).map(|c| {
            (
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
    }
}

/// Iterator over TCP options: yields each option with its offset in the option bytes, stops
/// after the end-of-list option or the last byte, and yields one [`WireError::BadOption`]
/// (then stops) on a length byte that is missing, below 2 or past the end.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> TcpOptions<'a> {
    /// Iterate over raw option bytes.
    pub fn new(data: &'a [u8]) -> Self {
        TcpOptions {
            data,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<(usize, TcpOption<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let at = self.pos;
        let k = self.data[at];
        match k {
            kind::EOL => {
                self.done = true;
                return Some(Ok((at, TcpOption::EndOfList)));
            }
            kind::NOP => {
                self.pos += 1;
                return Some(Ok((at, TcpOption::Nop)));
            }
            _ => {}
        }
        let len = match self.data.get(at + 1) {
            Some(&l) if l >= 2 && at + l as usize <= self.data.len() => l as usize,
            _ => {
                self.done = true;
                return Some(Err(WireError::BadOption));
            }
        };
        self.pos += len;
        let d = &self.data[at + 2..at + len];
        let opt = match (k, len) {
            (kind::MSS, 4) => TcpOption::Mss(u16::from_be_bytes([d[0], d[1]])),
            (kind::WSCALE, 3) => TcpOption::WindowScale(d[0]),
            (kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
            (kind::SACK, l) if l >= 10 && (l - 2) % 8 == 0 => TcpOption::Sack(SackBlocks(d)),
            (kind::TIMESTAMP, 10) => TcpOption::Timestamp {
                tsval: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
                tsecr: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            },
            _ => TcpOption::Unknown { kind: k, data: d },
        };
        Some(Ok((at, opt)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pseudo() -> u32 {
        checksum::pseudo_v4([198, 18, 5, 5], [198, 18, 0, 100], 6, 0)
    }

    /// A SYN with MSS 1460, SACK-permitted, timestamps, NOP, window scale 7 (Linux's layout),
    /// plus 4 payload bytes; the checksum filled from scratch.
    fn syn() -> Vec<u8> {
        let mut v = vec![0u8; 40];
        v[0..2].copy_from_slice(&40000u16.to_be_bytes());
        v[2..4].copy_from_slice(&80u16.to_be_bytes());
        v[4..8].copy_from_slice(&0x1122_3344u32.to_be_bytes());
        v[12] = 10 << 4;
        v[13] = 0x02;
        v[14..16].copy_from_slice(&64240u16.to_be_bytes());
        v[20..40].copy_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        v.extend_from_slice(b"data");
        let len = v.len() as u32;
        TcpPacket::new_unchecked(&mut v[..]).fill_checksum(pseudo() + len);
        v
    }

    fn sums_ok(v: &[u8]) -> bool {
        checksum::verifies(v, pseudo() + v.len() as u32)
    }

    #[test]
    fn fields_and_options() {
        let v = syn();
        let p = TcpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 0x1122_3344);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), 0x02);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.payload(), b"data");
        assert!(p.verify_checksum(pseudo() + v.len() as u32));
        let opts: Vec<_> = p.options().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            vec![
                (0, TcpOption::Mss(1460)),
                (4, TcpOption::SackPermitted),
                (6, TcpOption::Timestamp { tsval: 1, tsecr: 0 }),
                (16, TcpOption::Nop),
                (17, TcpOption::WindowScale(7)),
            ]
        );
        assert_eq!(p.mss(), Some(1460));
        assert_eq!(p.timestamp(), Some((1, 0)));
    }

    #[test]
    fn timestamp_becomes_nops_with_a_valid_checksum() {
        let mut v = syn();
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        assert!(p.nop_timestamp());
        assert_eq!(p.timestamp(), None);
        assert!(!p.nop_timestamp());
        assert_eq!(&v[26..36], &[1; 10]);
        assert!(sums_ok(&v));
        // Odd alignment: shift the options so the timestamp starts at an odd offset.
        let mut v = syn();
        v[20..40].copy_from_slice(&[1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7, 2, 4, 0x05, 0xb4, 0, 0, 0, 0, 0]);
        let len = v.len() as u32;
        TcpPacket::new_unchecked(&mut v[..]).fill_checksum(pseudo() + len);
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.timestamp(), Some((9, 7)));
        assert!(p.nop_timestamp());
        assert_eq!(&v[21..31], &[1; 10]);
        assert!(sums_ok(&v));
    }

    #[test]
    fn mss_rewrites() {
        let mut v = syn();
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.clamp_mss(1500), Some(1460));
        assert_eq!(p.clamp_mss(1452), Some(1452));
        assert_eq!(p.mss(), Some(1452));
        assert!(p.set_mss(536));
        assert_eq!(p.mss(), Some(536));
        assert!(sums_ok(&v));
    }

    #[test]
    fn sack_blocks_shift() {
        let mut v = vec![0u8; 20];
        v[12] = 10 << 4; // 40-byte header: NOP NOP SACK(2 blocks)
        v[13] = 0x10;
        let mut opts = vec![1, 1, 5, 18];
        for e in [1000u32, 2000, 5, 0xffff_fff0] {
            opts.extend_from_slice(&e.to_be_bytes());
        }
        v.extend_from_slice(&opts);
        let len = v.len() as u32;
        TcpPacket::new_unchecked(&mut v[..]).fill_checksum(pseudo() + len);
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.rewrite_sack(|e| e.wrapping_sub(100)), 2);
        let p = TcpPacket::new_checked(&v[..]).unwrap();
        let blocks: Vec<_> = p
            .options()
            .find_map(|o| match o {
                Ok((_, TcpOption::Sack(b))) => Some(b.iter().collect::<Vec<_>>()),
                _ => None,
            })
            .unwrap();
        assert_eq!(blocks, vec![(900, 1900), (5u32.wrapping_sub(100), 0xffff_ff8c)]);
        assert!(sums_ok(&v));
    }

    #[test]
    fn header_rewrites_keep_the_checksum() {
        let mut v = syn();
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.rewrite_src_port(1025);
        p.rewrite_dst_port(8080);
        p.rewrite_seq(0xdead_beef);
        p.rewrite_ack(42);
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq(), p.ack()),
            (1025, 8080, 0xdead_beef, 42)
        );
        assert!(sums_ok(&v));
        // An address change of the pseudo-header.
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.rewrite_pseudo_addr(Addr::v4([198, 18, 5, 5]), Addr::v4([198, 18, 1, 1]));
        let ps = checksum::pseudo_v4([198, 18, 1, 1], [198, 18, 0, 100], 6, 0);
        assert!(checksum::verifies(&v, ps + v.len() as u32));
    }

    #[test]
    fn refuses_bad_offsets_and_options() {
        let v = syn();
        assert_eq!(TcpPacket::new_checked(&v[..19]).unwrap_err(), WireError::Truncated);
        assert_eq!(TcpPacket::new_checked(&v[..39]).unwrap_err(), WireError::BadHeaderLen);
        let mut w = v.clone();
        w[12] = 4 << 4;
        assert_eq!(TcpPacket::new_checked(&w[..]).unwrap_err(), WireError::BadHeaderLen);
        // Option lengths 0, 1, and past the end.
        for bad in [[2u8, 0, 0, 0], [2, 1, 0, 0], [1, 1, 8, 10]] {
            let o: Vec<_> = TcpOptions::new(&bad).collect();
            assert_eq!(o.last(), Some(&Err(WireError::BadOption)));
        }
        // End of list stops the walk.
        let o: Vec<_> = TcpOptions::new(&[1, 0, 2, 4, 5, 0xb4]).collect();
        assert_eq!(o, vec![Ok((0, TcpOption::Nop)), Ok((1, TcpOption::EndOfList))]);
        // A known kind with a wrong length is reported as unknown and not rewritten.
        let o: Vec<_> = TcpOptions::new(&[8, 4, 0, 0]).collect();
        assert_eq!(o, vec![Ok((0, TcpOption::Unknown { kind: 8, data: &[0, 0] }))]);
    }

    proptest::proptest! {
        // On arbitrary segments the option walk and every in-place rewrite never panic, and a
        // checksum that verified before a rewrite verifies after it (RFC 1624's promise).
        #[test]
        fn rewrites_never_panic_and_keep_the_checksum(
            mut v in proptest::collection::vec(proptest::prelude::any::<u8>(), 20..80),
            doff in 5u8..16, d in proptest::prelude::any::<u32>(), mss in proptest::prelude::any::<u16>(),
        ) {
            v[12] = doff << 4;
            let ps = pseudo() + v.len() as u32;
            TcpPacket::new_unchecked(&mut v[..]).fill_checksum(ps);
            let Ok(mut p) = TcpPacket::new_checked(&mut v[..]) else { return Ok(()) };
            let _ = p.options().count();
            p.nop_timestamp();
            p.rewrite_sack(|e| e.wrapping_add(d));
            p.clamp_mss(mss);
            p.rewrite_seq(d);
            proptest::prop_assert!(checksum::verifies(&v, ps));
        }
    }
}
