//! Small, fast, deterministic hashing shared by the connection table, schedulers and caches.
//!
//! Not for keyed security (synproxy cookies and FNAT sequence deltas use a keyed hash of their
//! own); these are for spreading keys over buckets.

use crate::addr::Addr;

/// A 64-bit finaliser (the "murmur3 fmix64" mixer): every input bit affects every output bit.
#[inline]
pub const fn mix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Hash of an address, seeded.
#[inline]
pub const fn hash_addr(a: Addr, seed: u64) -> u64 {
    let hi = (a.0 >> 64) as u64;
    let lo = a.0 as u64;
    mix64(mix64(hi ^ seed) ^ lo)
}

/// Hash of an address and a port, seeded.
#[inline]
pub const fn hash_addr_port(a: Addr, port: u16, seed: u64) -> u64 {
    mix64(hash_addr(a, seed) ^ port as u64)
}

/// Hash of a byte string (FNV-1a then mixed), seeded.
#[inline]
pub fn hash_bytes(b: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// A `std::hash::Hasher` built on [`mix64`] for control-plane maps keyed by small values.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix64(self.0 ^ u64::from_le_bytes(w)).rotate_left(5);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64)
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(23);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuild = std::hash::BuildHasherDefault<FastHasher>;
/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_neighbouring_addresses() {
        let mut buckets = [0u32; 16];
        for i in 0..16_000u32 {
            let h = hash_addr(Addr::from_v4_u32(0xc612_0000 + i), 7);
            buckets[(h & 15) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "bucket count {b}");
        }
    }

    #[test]
    fn seeds_change_the_hash() {
        let a = Addr::v4([198, 18, 0, 1]);
        assert_ne!(hash_addr(a, 1), hash_addr(a, 2));
        assert_eq!(hash_bytes(b"abc", 3), hash_bytes(b"abc", 3));
    }
}
