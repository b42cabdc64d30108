//! Helpers shared by the schedulers: IPVS's address folding and multiplicative hash, gcd of
//! weights, and the least-load search that cross-multiplies instead of dividing.

use rvs_core::Addr;
use rvs_core::load::Load;
use rvs_core::sched::SchedCx;
use rvs_core::service::Dest;

/// "No destination" marker in hash tables (an index no service can reach).
pub(crate) const NONE: u32 = u32::MAX;

/// IPVS's `addr_fold`: the IPv4 address in host order, or the XOR of the four 32-bit words
/// of an IPv6 address (each read in network order).
#[inline]
pub(crate) const fn addr_fold(a: Addr) -> u32 {
    if a.is_v4() {
        a.v4_u32()
    } else {
        let x = a.0;
        (x >> 96) as u32 ^ (x >> 64) as u32 ^ (x >> 32) as u32 ^ x as u32
    }
}

/// The kernel's `hash_32(val, bits)`: multiply by the 32-bit golden ratio, keep the top bits.
#[inline]
pub(crate) const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// Greatest common divisor.
pub(crate) const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// GCD of the positive weights, 0 when no destination has a positive weight.
pub(crate) fn weight_gcd(dests: &[Dest]) -> u32 {
    dests
        .iter()
        .filter(|d| d.weight > 0)
        .fold(0, |g, d| if g == 0 { d.weight } else { gcd(g, d.weight) })
}

/// True when `a_load / a_weight > b_load / b_weight`, by cross-multiplying (IPVS's
/// `(__s64)loh * dest->weight > (__s64)doh * least->weight`), exact for every u32 input.
#[inline]
pub(crate) const fn heavier(a_load: u64, a_weight: u32, b_load: u64, b_weight: u32) -> bool {
    (a_load as u128) * (b_weight as u128) > (b_load as u128) * (a_weight as u128)
}

/// The eligible destination with the least `overhead(load) / weight`, ties to the earlier one
/// in the list (the shape of IPVS's wlc, sed, lblc and lblcr searches).
#[inline]
pub(crate) fn least_weighted(cx: &SchedCx<'_>, overhead: impl Fn(Load) -> u64) -> Option<usize> {
    let dests = cx.dests();
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let l = cx.loads.get(d.id);
        if !rvs_core::sched::eligible(d, l) {
            continue;
        }
        let oh = overhead(l);
        match best {
            Some((_, boh, bw)) if !heavier(boh, bw, oh, d.weight) => {}
            _ => best = Some((i, oh, d.weight)),
        }
    }
    best.map(|b| b.0)
}

/// Largest power of two's bit position plus one (`fls` of the kernel), 0 for 0.
#[inline]
pub(crate) const fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// True when `n` is prime (trial division; control plane only).
pub(crate) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3u32;
    while (d as u64) * (d as u64) <= n as u64 {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_gcd() {
        assert_eq!(addr_fold(Addr::v4([198, 18, 0, 1])), 0xc612_0001);
        let v6: Addr = "2001:db8::1".parse().expect("v6");
        assert_eq!(addr_fold(v6), 0x2001_0db8 ^ 1);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(fls(0), 0);
        assert_eq!(fls(64), 7);
        assert!(is_prime(4093) && is_prime(65537) && is_prime(251) && !is_prime(4095) && !is_prime(1));
    }

    #[test]
    fn cross_multiplication_matches_exact_fractions() {
        // 3/4 vs 2/3: 0.75 > 0.667.
        assert!(heavier(3, 4, 2, 3));
        assert!(!heavier(2, 3, 3, 4));
        // Equal fractions are not heavier either way (ties keep the earlier).
        assert!(!heavier(2, 4, 1, 2) && !heavier(1, 2, 2, 4));
        // Large values do not overflow.
        assert!(heavier(u64::MAX, 1, u64::MAX, 2));
    }
}
