//! Frames for the embedded demo and the traffic generator: Ethernet + IPv4 + TCP, with every
//! checksum computed in full.

use rvs_core::addr::Addr;
use rvs_core::checksum;

/// One TCP segment to build.
#[derive(Debug, Clone, Copy)]
pub struct Tcp<'a> {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address.
    pub saddr: Addr,
    /// Destination IPv4 address.
    pub daddr: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
}

impl Tcp<'_> {
    /// The frame: Ethernet, IPv4 (DF, TTL 64), TCP (window 65535; an MSS option on SYNs).
    pub fn frame(&self) -> Vec<u8> {
        let opts: &[u8] = if self.flags & 0x02 != 0 {
            &[2, 4, 0x05, 0xb4]
        } else {
            &[]
        };
        let tcp_len = 20 + opts.len() + self.payload.len();
        let ip_len = 20 + tcp_len;
        let mut f = Vec::with_capacity(14 + ip_len);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let ip = f.len();
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f[ip + 2..ip + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&self.saddr.v4_octets());
        f.extend_from_slice(&self.daddr.v4_octets());
        let ck = checksum::ipv4_header(&f[ip..ip + 20]);
        f[ip + 10..ip + 12].copy_from_slice(&ck.to_be_bytes());
        let l4 = f.len();
        f.extend_from_slice(&self.sport.to_be_bytes());
        f.extend_from_slice(&self.dport.to_be_bytes());
        f.extend_from_slice(&self.seq.to_be_bytes());
        f.extend_from_slice(&self.ack.to_be_bytes());
        f.push((((20 + opts.len()) / 4) as u8) << 4);
        f.push(self.flags);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(opts);
        f.extend_from_slice(self.payload);
        let ck = checksum::l4(self.saddr, self.daddr, 6, &f[l4..]);
        f[l4 + 16..l4 + 18].copy_from_slice(&ck.to_be_bytes());
        f
    }
}
