//! SYN cookies in DPVS's layout (`src/ipvs/ip_vs_synproxy.c`), itself the Linux layout of
//! `net/ipv4/syncookies.c` before timestamps carried the options:
//!
//! ```text
//! cookie = H0(4-tuple) + client ISN + (count << 24) + ((H1(4-tuple, count) + data) mod 2^24)
//! ```
//!
//! - `count` is a minute counter (60 s ticks of [`StageCx::now`](rvs_core::stage::StageCx),
//!   offset by a value drawn from the seed as DPVS starts its `g_minute_count` at a random
//!   value); a cookie checks while the current count is at most [`COUNTER_TRIES`]` - 1` ticks
//!   past the one it was made with (DPVS's `DP_VS_SYNPROXY_COUNTER_TRIES` = 4), so it lives
//!   between 3 and 4 minutes.
//! - `data` (the low 24 bits) carries the options the balancer answered for the client:
//!   bits 15..12 the index of the MSS in [`MSS_TABLE`], 19..16 the client's window-scale
//!   shift, 20 timestamps, 21 SACK permitted; bits 11..0 are zero, and a checked cookie whose
//!   recovered data has any of them set (or an MSS index past the table, or a shift above
//!   [`WSCALE_MAX`]) is refused. A forged cookie therefore passes with probability about
//!   `4/256 x 10/16 x 1/4096 x 15/16` (2.2e-6) per try, as in DPVS.
//! - `H0` and `H1` are SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input
//!   PRF", INDOCRYPT 2012) under two 128-bit secrets derived from the seed, over the client
//!   and virtual addresses (16 bytes each, IPv4 mapped, so one code path serves IPv4 and
//!   IPv6), the ports and the count. Linux moved its SYN cookies to SipHash in 4.13; DPVS
//!   uses MD5. Keyed, so a client cannot compute a cookie for a tuple it never sent a SYN
//!   from.
//!
//! The client's ISN is what the SYN carried; on the ACK it is `seq - 1`, and the cookie is
//! `ack - 1`.

use rvs_core::addr::Addr;
use rvs_core::rng::SplitMix64;
use rvs_core::time::Now;

/// Bits of the cookie below the counter.
pub const COOKIEBITS: u32 = 24;
/// Mask of the data/hash part.
pub const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// A cookie checks while the counter moved on by less than this (DPVS: 4).
pub const COUNTER_TRIES: u32 = 4;
/// Seconds per counter tick.
pub const COUNTER_SECS: u64 = 60;
/// The MSS values a cookie can carry (DPVS's `msstab`).
pub const MSS_TABLE: [u16; 10] = [64, 256, 512, 536, 1024, 1280, 1440, 1452, 1460, 4312];
/// Largest window-scale shift (RFC 7323 section 2.3).
pub const WSCALE_MAX: u8 = 14;

const MSS_SHIFT: u32 = 12;
const MSS_MASK: u32 = 0xf << MSS_SHIFT;
const WSCALE_SHIFT: u32 = 16;
const WSCALE_MASK: u32 = 0xf << WSCALE_SHIFT;
const TS_BIT: u32 = 1 << 20;
const SACK_BIT: u32 = 1 << 21;
const OTHER_MASK: u32 = (1 << MSS_SHIFT) - 1;

/// The client's TCP options the balancer accepted on its behalf, carried in the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CookieOpts {
    /// MSS (a value of [`MSS_TABLE`] once through a cookie).
    pub mss: u16,
    /// The client's window-scale shift, when window scaling was agreed.
    pub wscale: Option<u8>,
    /// SACK permitted was agreed.
    pub sack: bool,
    /// Timestamps were agreed.
    pub timestamps: bool,
}

impl CookieOpts {
    /// Index of the largest table MSS not above `mss` (0 below the smallest).
    pub fn mss_index(mss: u16) -> usize {
        MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
    }
    /// The 24-bit data word (DPVS's layout); the MSS is rounded down to the table.
    pub fn encode(&self) -> u32 {
        let mut d = (Self::mss_index(self.mss) as u32) << MSS_SHIFT;
        if let Some(w) = self.wscale {
            d |= (u32::from(w.min(WSCALE_MAX)) << WSCALE_SHIFT) & WSCALE_MASK;
        }
        if self.timestamps {
            d |= TS_BIT;
        }
        if self.sack {
            d |= SACK_BIT;
        }
        d
    }
    /// The options of a data word, `None` when it cannot be one [`CookieOpts::encode`] made.
    pub fn decode(data: u32) -> Option<CookieOpts> {
        if data & OTHER_MASK != 0 || data & !COOKIEMASK != 0 {
            return None;
        }
        let idx = ((data & MSS_MASK) >> MSS_SHIFT) as usize;
        let mss = *MSS_TABLE.get(idx)?;
        let ws = ((data & WSCALE_MASK) >> WSCALE_SHIFT) as u8;
        if ws > WSCALE_MAX {
            return None;
        }
        Some(CookieOpts {
            mss,
            // DPVS: a shift of 0 means "no window scaling".
            wscale: (ws > 0).then_some(ws),
            sack: data & SACK_BIT != 0,
            timestamps: data & TS_BIT != 0,
        })
    }
    /// These options as a cookie returns them (the MSS rounded down to the table).
    pub fn normalized(&self) -> CookieOpts {
        CookieOpts {
            mss: MSS_TABLE[Self::mss_index(self.mss)],
            wscale: self.wscale.map(|w| w.min(WSCALE_MAX)).filter(|&w| w > 0),
            ..*self
        }
    }
}

/// The flow a cookie is bound to, as the client sends it (client -> VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CookieFlow {
    /// Client address.
    pub saddr: Addr,
    /// Virtual address.
    pub daddr: Addr,
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
}

/// SipHash-2-4 of `msg` under the key `(k0, k1)` (the key's two little-endian halves).
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let chunks = msg.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut b = (msg.len() as u64) << 56;
    for (i, &x) in rest.iter().enumerate() {
        b |= u64::from(x) << (8 * i);
    }
    v[3] ^= b;
    round(&mut v);
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The secrets of one balancer: two SipHash keys and the counter's starting offset.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieKey {
    keys: [[u64; 2]; 2],
    offset: u32,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieKey").finish_non_exhaustive()
    }
}

impl CookieKey {
    /// Secrets drawn from `seed` (every lcore of one balancer must use the same seed: a
    /// client's ACK may reach another lcore than its SYN).
    pub fn from_seed(seed: u64) -> Self {
        let mut r = SplitMix64::new(seed ^ 0x7379_6e63_6f6f_6b69);
        CookieKey {
            keys: [[r.next_u64(), r.next_u64()], [r.next_u64(), r.next_u64()]],
            offset: r.next_u64() as u32,
        }
    }
    /// The minute counter at `now`.
    #[inline]
    pub fn counter(&self, now: Now) -> u32 {
        ((now.nanos() / (COUNTER_SECS * Now::SEC)) as u32).wrapping_add(self.offset)
    }
    #[inline]
    fn hash(&self, c: usize, f: &CookieFlow, count: u32) -> u32 {
        let mut msg = [0u8; 40];
        msg[..16].copy_from_slice(&f.saddr.octets());
        msg[16..32].copy_from_slice(&f.daddr.octets());
        msg[32..34].copy_from_slice(&f.sport.to_be_bytes());
        msg[34..36].copy_from_slice(&f.dport.to_be_bytes());
        msg[36..40].copy_from_slice(&count.to_be_bytes());
        siphash24(self.keys[c][0], self.keys[c][1], &msg) as u32
    }
    /// The cookie (our ISN) for a SYN of `flow` with sequence number `client_isn`,
    /// carrying `opts`, at `now`.
    pub fn make(&self, flow: &CookieFlow, client_isn: u32, opts: &CookieOpts, now: Now) -> u32 {
        self.make_at(flow, client_isn, opts.encode(), self.counter(now))
    }
    fn make_at(&self, flow: &CookieFlow, client_isn: u32, data: u32, count: u32) -> u32 {
        self.hash(0, flow, 0)
            .wrapping_add(client_isn)
            .wrapping_add(count << COOKIEBITS)
            .wrapping_add(self.hash(1, flow, count).wrapping_add(data) & COOKIEMASK)
    }
    /// Check `cookie` (the ACK's ack - 1) for `flow` whose SYN carried `client_isn` (the
    /// ACK's seq - 1) at `now`: the options it carries, or `None` when it is not one this key
    /// made for that flow and ISN within the last [`COUNTER_TRIES`] counter ticks.
    pub fn check(&self, flow: &CookieFlow, client_isn: u32, cookie: u32, now: Now) -> Option<CookieOpts> {
        let count = self.counter(now);
        let c = cookie.wrapping_sub(self.hash(0, flow, 0)).wrapping_sub(client_isn);
        let diff = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
        if diff >= COUNTER_TRIES {
            return None;
        }
        let data = c.wrapping_sub(self.hash(1, flow, count.wrapping_sub(diff))) & COOKIEMASK;
        CookieOpts::decode(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flow(v6: bool, a: u128, b: u128, sp: u16, dp: u16) -> CookieFlow {
        let mk = |x: u128| {
            if v6 {
                // Keep it out of the IPv4-mapped range.
                Addr(x | (1u128 << 127))
            } else {
                Addr::from_v4_u32(x as u32)
            }
        };
        CookieFlow {
            saddr: mk(a),
            daddr: mk(b),
            sport: sp,
            dport: dp,
        }
    }

    #[test]
    fn siphash_reference_vectors() {
        // The SipHash paper, appendix A, and the first entry of the reference vectors.h.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn data_word_layout_is_dpvs() {
        let o = CookieOpts {
            mss: 1452,
            wscale: Some(7),
            sack: true,
            timestamps: true,
        };
        // MSS index 7 in bits 15..12, shift 7 in 19..16, TS bit 20, SACK bit 21.
        assert_eq!(o.encode(), (7 << 12) | (7 << 16) | (1 << 20) | (1 << 21));
        assert_eq!(CookieOpts::decode(o.encode()), Some(o));
        assert_eq!(CookieOpts::mss_index(63), 0);
        assert_eq!(CookieOpts::mss_index(1000), 3);
        assert_eq!(CookieOpts::mss_index(9000), 9);
        assert_eq!(CookieOpts::decode(1), None, "low bits must be zero");
        assert_eq!(CookieOpts::decode(10 << 12), None, "MSS index past the table");
        assert_eq!(CookieOpts::decode(15 << 16), None, "shift above 14");
    }

    fn opts_strategy() -> impl Strategy<Value = CookieOpts> {
        (
            0u16..=9000,
            proptest::option::of(0u8..=20),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(mss, wscale, sack, timestamps)| CookieOpts {
                mss,
                wscale,
                sack,
                timestamps,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5359_4e43),
            ..ProptestConfig::default()
        })]

        /// A cookie checks, returning its options, while the minute counter moved on by less
        /// than 4 ticks, and fails from the 4th tick on (and before it was made).
        #[test]
        fn valid_within_its_window_and_not_after(
            seed in any::<u64>(), v6 in any::<bool>(), a in any::<u128>(), b in any::<u128>(),
            sp in any::<u16>(), dp in any::<u16>(), isn in any::<u32>(), opts in opts_strategy(),
            t0 in 0u64..(1 << 40), dt in 0u64..(600 * Now::SEC),
        ) {
            let key = CookieKey::from_seed(seed);
            let f = flow(v6, a, b, sp, dp);
            let made = Now(t0);
            let cookie = key.make(&f, isn, &opts, made);
            let later = Now(t0 + dt);
            // The oracle: whole minutes between the two instants' minute numbers.
            let ticks = (t0 + dt) / (60 * Now::SEC) - t0 / (60 * Now::SEC);
            let got = key.check(&f, isn, cookie, later);
            if ticks < 4 {
                prop_assert_eq!(got, Some(opts.normalized()));
            } else {
                prop_assert_eq!(got, None);
            }
            if t0 >= 60 * Now::SEC {
                // A minute before it was made: the counter difference wraps, never valid.
                prop_assert_eq!(key.check(&f, isn, cookie, Now(t0 - 60 * Now::SEC)), None);
            }
        }

        /// Another tuple, ISN or key does not check (fixed seed: a forgery passes with
        /// probability ~2e-6 per try, see the module doc and the rate test below).
        #[test]
        fn fails_for_another_tuple_isn_or_key(
            seed in any::<u64>(), v6 in any::<bool>(), a in any::<u128>(), b in any::<u128>(),
            sp in any::<u16>(), dp in any::<u16>(), isn in any::<u32>(), opts in opts_strategy(),
            t0 in 0u64..(1 << 40), which in 0u8..6, bump in 1u16..,
        ) {
            let key = CookieKey::from_seed(seed);
            let f = flow(v6, a, b, sp, dp);
            let cookie = key.make(&f, isn, &opts, Now(t0));
            let mut g = f;
            let mut isn2 = isn;
            let mut key2 = key;
            match which {
                0 => g.sport = sp.wrapping_add(bump),
                1 => g.dport = dp.wrapping_add(bump),
                2 => g.saddr = Addr(g.saddr.0 ^ u128::from(bump)),
                3 => g.daddr = Addr(g.daddr.0 ^ (u128::from(bump) << 8)),
                4 => isn2 = isn.wrapping_add(u32::from(bump)),
                _ => key2 = CookieKey::from_seed(seed ^ u64::from(bump)),
            }
            prop_assert_eq!(key2.check(&g, isn2, cookie, Now(t0)), None);
        }
    }

    #[test]
    fn forged_cookies_pass_at_the_expected_rate() {
        // 200k random cookies for one flow: expected false accepts ~0.45 (2.2e-6 each).
        let key = CookieKey::from_seed(7);
        let f = flow(false, 0xc612_0505, 0xc612_0064, 40000, 80);
        let mut r = SplitMix64::new(99);
        let mut accepted = 0;
        for _ in 0..200_000 {
            if key
                .check(&f, r.next_u64() as u32, r.next_u64() as u32, Now(0))
                .is_some()
            {
                accepted += 1;
            }
        }
        assert!(accepted <= 6, "{accepted} forged cookies accepted");
    }
}
