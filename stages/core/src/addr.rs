//! Address family, protocol and a compact address type for connection tuples.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family of a packet or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Af {
    /// IPv4.
    #[default]
    V4,
    /// IPv6.
    V6,
}

/// L4 protocols rvs load-balances or answers, by IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Proto {
    /// ICMP (1).
    Icmp = 1,
    /// TCP (6).
    #[default]
    Tcp = 6,
    /// UDP (17).
    Udp = 17,
    /// ICMPv6 (58).
    Icmp6 = 58,
}

impl Proto {
    /// From an IP protocol number; `None` for protocols rvs does not handle.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(Proto::Icmp),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            58 => Some(Proto::Icmp6),
            _ => None,
        }
    }
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        self as u8
    }
    /// Lower-case name as ipvsadm prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp6 => "icmpv6",
        }
    }
}

/// An IPv4 or IPv6 address in 16 bytes: IPv4 is kept IPv4-mapped (`::ffff:a.b.c.d`), so a
/// tuple compares and hashes as plain integers whatever the family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub u128);

const V4_MAPPED: u128 = 0xffff_0000_0000;

impl Addr {
    /// The unspecified address (`::`).
    pub const UNSPECIFIED: Addr = Addr(0);

    /// From IPv4 octets.
    pub const fn v4(o: [u8; 4]) -> Self {
        Addr(V4_MAPPED | u32::from_be_bytes(o) as u128)
    }
    /// From an IPv4 address in host order.
    pub const fn from_v4_u32(a: u32) -> Self {
        Addr(V4_MAPPED | a as u128)
    }
    /// From IPv6 octets.
    pub const fn v6(o: [u8; 16]) -> Self {
        Addr(u128::from_be_bytes(o))
    }
    /// True when this is an IPv4(-mapped) address.
    pub const fn is_v4(self) -> bool {
        (self.0 >> 32) == (V4_MAPPED >> 32)
    }
    /// The family.
    pub const fn af(self) -> Af {
        if self.is_v4() { Af::V4 } else { Af::V6 }
    }
    /// The IPv4 address in host order (the low 32 bits; meaningful when [`Addr::is_v4`]).
    pub const fn v4_u32(self) -> u32 {
        self.0 as u32
    }
    /// IPv4 octets (meaningful when [`Addr::is_v4`]).
    pub const fn v4_octets(self) -> [u8; 4] {
        (self.0 as u32).to_be_bytes()
    }
    /// The 16 octets (IPv4-mapped for IPv4).
    pub const fn octets(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    /// As a std address.
    pub fn ip(self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.v4_octets()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.octets()))
        }
    }
    /// Keep the first `bits` bits of the address within its family (IPv4: 0..=32, IPv6:
    /// 0..=128; larger values keep everything). Used for persistence netmasks.
    pub const fn masked(self, bits: u8) -> Self {
        if self.is_v4() {
            let b = if bits > 32 { 32 } else { bits };
            let m: u32 = if b == 0 { 0 } else { u32::MAX << (32 - b) };
            Addr(V4_MAPPED | (self.0 as u32 & m) as u128)
        } else {
            let b = if bits > 128 { 128 } else { bits };
            let m: u128 = if b == 0 { 0 } else { u128::MAX << (128 - b) };
            Addr(self.0 & m)
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Addr::v4(a.octets()),
            IpAddr::V6(a) => Addr::v6(a.octets()),
        }
    }
}
impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Self {
        Addr::v4(a.octets())
    }
}
impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Self {
        Addr::v6(a.octets())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}
impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl std::str::FromStr for Addr {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<IpAddr>().map(Addr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_roundtrip_and_family() {
        let a: Addr = "198.18.0.100".parse().unwrap();
        assert!(a.is_v4());
        assert_eq!(a.af(), Af::V4);
        assert_eq!(a.v4_octets(), [198, 18, 0, 100]);
        assert_eq!(a.to_string(), "198.18.0.100");
        let b: Addr = "2001:db8::1".parse().unwrap();
        assert!(!b.is_v4());
        assert_eq!(b.to_string(), "2001:db8::1");
    }

    #[test]
    fn masks_within_family() {
        let a: Addr = "198.18.7.9".parse().unwrap();
        assert_eq!(a.masked(24).to_string(), "198.18.7.0");
        assert_eq!(a.masked(0).to_string(), "0.0.0.0");
        assert_eq!(a.masked(32), a);
        let b: Addr = "2001:db8:1:2::5".parse().unwrap();
        assert_eq!(b.masked(64).to_string(), "2001:db8:1:2::");
    }
}
