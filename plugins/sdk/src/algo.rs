//! Reference algorithms, ready to export with [`export_plugin!`](crate::export_plugin).

use crate::{Answer, Plugin, Table};

/// Weighted least-connection exactly as rvs's native `wlc` and IPVS's `ip_vs_wlc.c`: the
/// eligible destination with the least `overhead / weight` (overhead = active * 256 +
/// inactive), compared by cross-multiplying, ties to the earlier destination.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wlc;

impl Plugin for Wlc {
    fn pick(&mut self, t: &Table<'_>) -> Answer {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, d, l) in t.iter() {
            if !d.usable() || l.overloaded() {
                continue;
            }
            let (oh, w) = (l.overhead(), d.weight() as u64);
            match best {
                // u128: exact for every u32 counter and weight.
                Some((_, boh, bw)) if (boh as u128) * (w as u128) <= (oh as u128) * (bw as u128) => {}
                _ => best = Some((i, oh, w)),
            }
        }
        best.map_or(Answer::None, |b| Answer::Dest(b.0))
    }
}

/// Power of two choices on active connections (Mitzenmacher 2001), from the host's random
/// bits: the less busy of two random destinations, the first on a tie; an ineligible draw
/// gives way to the other; both ineligible: the first eligible after the first draw.
#[derive(Debug, Default, Clone, Copy)]
pub struct TwoChoices;

impl Plugin for TwoChoices {
    fn pick(&mut self, t: &Table<'_>) -> Answer {
        let n = t.len();
        if n == 0 {
            return Answer::None;
        }
        let r = t.flow().rand();
        let i = (((r & 0xffff_ffff) * n as u64) >> 32) as usize;
        let j = (((r >> 32) * n as u64) >> 32) as usize;
        let active = |k: usize| t.load(k).map_or(u32::MAX, |l| l.active());
        match (t.eligible(i), t.eligible(j)) {
            (true, true) => Answer::Dest(if active(j) < active(i) { j } else { i }),
            (true, false) => Answer::Dest(i),
            (false, true) => Answer::Dest(j),
            (false, false) => (1..n)
                .map(|k| (i + k) % n)
                .find(|&k| t.eligible(k))
                .map_or(Answer::None, Answer::Dest),
        }
    }
}
