//! Locality-based least connection (`lblc`) and its replicated variant (`lblcr`), as
//! `ip_vs_lblc.c` and `ip_vs_lblcr.c`: a per-lcore cache from destination address to server
//! (or server set), filled by a `wlc` choice.
//!
//! - `lblc`: a cached server is kept while it is eligible and not "overloaded" in lblc's sense
//!   (more active connections than its weight while some destination has active * 2 <
//!   weight); otherwise the least `overhead / weight` destination is chosen and cached.
//! - `lblcr`: the least-loaded eligible member of the cached set is used unless it is
//!   overloaded in that sense, in which case the least-loaded destination of the service
//!   joins the set; a set of more than one member that has not changed for the expiry
//!   period sheds its most loaded member.
//!
//! Entries unused for the expiry period (IPVS's `lblc_expiration`, 24 h by default) are
//! dead. IPVS's table grows without bound between garbage-collection timers; here, so that
//! a pick never allocates, each lcore's cache is a fixed set-associative table (4 ways)
//! allocated when the instance is made, whose least recently used entry gives way when a set
//! is full, and a server set holds at most [`SET_MAX`] members (the most loaded is replaced
//! when a full set must grow). Entries name servers by their stable `DestId`, so they survive
//! snapshot swaps; a removed server is simply not found.

use rvs_core::hash::hash_addr;
use rvs_core::load::Load;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory, eligible};
use rvs_core::service::{DestId, Service};
use rvs_core::{Addr, Now};

use crate::util::{heavier, least_weighted};

/// Default cache entries per lcore and service.
pub const DEFAULT_CACHE: usize = 4096;
/// Default expiry (IPVS's 24 hours).
pub const DEFAULT_EXPIRE_SECS: u64 = 24 * 60 * 60;
/// Most members of an lblcr server set.
pub const SET_MAX: usize = 8;
const WAYS: usize = 4;
const SEED: u64 = 0x6c62_6c63_0000_0001;
const NO_ID: u32 = u32::MAX;

/// lblc/lblcr options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LblcOptions {
    /// Cache entries per lcore (rounded up to a multiple of 4, at least 4).
    pub cache_entries: usize,
    /// Expiry of unused entries and lblcr's set-shrinking period, in seconds.
    pub expire_secs: u64,
}

impl Default for LblcOptions {
    fn default() -> Self {
        LblcOptions {
            cache_entries: DEFAULT_CACHE,
            expire_secs: DEFAULT_EXPIRE_SECS,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Addr,
    used: bool,
    lastuse: u64,
    lastmod: u64,
    len: u8,
    set: [u32; SET_MAX],
}

const EMPTY: Entry = Entry {
    key: Addr::UNSPECIFIED,
    used: false,
    lastuse: 0,
    lastmod: 0,
    len: 0,
    set: [NO_ID; SET_MAX],
};

/// The fixed per-lcore cache and the id-to-index map of the current snapshot.
#[derive(Debug, Clone)]
struct Cache {
    sets: Box<[[Entry; WAYS]]>,
    expire: u64,
    index_of: Vec<u32>,
}

impl Cache {
    fn new(o: LblcOptions) -> Self {
        let n = o.cache_entries.div_ceil(WAYS).max(1);
        Cache {
            sets: vec![[EMPTY; WAYS]; n].into_boxed_slice(),
            expire: o.expire_secs.saturating_mul(Now::SEC),
            index_of: Vec::new(),
        }
    }

    fn refresh(&mut self, svc: &Service) {
        let top = svc.dests.iter().map(|d| d.id.0 as usize + 1).max().unwrap_or(0);
        self.index_of.clear();
        self.index_of.resize(top, NO_ID);
        for (i, d) in svc.dests.iter().enumerate() {
            self.index_of[d.id.0 as usize] = i as u32;
        }
    }

    /// Index of `id` in the current snapshot, when it is still there.
    #[inline]
    fn index(&self, cx: &SchedCx<'_>, id: u32) -> Option<usize> {
        if let Some(&i) = self.index_of.get(id as usize)
            && cx.dests().get(i as usize).is_some_and(|d| d.id.0 == id)
        {
            return Some(i as usize);
        }
        // Not refreshed for this snapshot yet: a linear search (no allocation).
        cx.dests().iter().position(|d| d.id.0 == id)
    }

    #[inline]
    fn alive(&self, e: &Entry, now: u64) -> bool {
        e.used && now.saturating_sub(e.lastuse) <= self.expire
    }

    /// The live entry for `key`, as (set, way).
    #[inline]
    fn find(&self, key: Addr, now: u64) -> (usize, Option<usize>) {
        let s = (hash_addr(key, SEED) % self.sets.len() as u64) as usize;
        let way = self.sets[s].iter().position(|e| e.key == key && self.alive(e, now));
        (s, way)
    }

    /// A way of set `s` for a new entry: a dead one, else the least recently used.
    #[inline]
    fn victim(&self, s: usize, now: u64) -> usize {
        let set = &self.sets[s];
        if let Some(w) = set.iter().position(|e| !self.alive(e, now)) {
            return w;
        }
        let mut lru = 0;
        for w in 1..WAYS {
            if set[w].lastuse < set[lru].lastuse {
                lru = w;
            }
        }
        lru
    }

    fn insert(&mut self, s: usize, key: Addr, id: DestId, now: u64) {
        let w = self.victim(s, now);
        let mut e = EMPTY;
        e.key = key;
        e.used = true;
        e.lastuse = now;
        e.lastmod = now;
        e.len = 1;
        e.set[0] = id.0;
        self.sets[s][w] = e;
    }
}

/// lblc's "overloaded": more active connections than the weight, while some destination of
/// the service has active * 2 < weight.
fn lblc_overloaded(cx: &SchedCx<'_>, i: usize) -> bool {
    let dests = cx.dests();
    let d = &dests[i];
    if cx.loads.get(d.id).active <= d.weight {
        return false;
    }
    dests
        .iter()
        .any(|o| (cx.loads.get(o.id).active as u64) * 2 < o.weight as u64)
}

/// `lblc` factory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LblcFactory(pub LblcOptions);

impl SchedulerFactory for LblcFactory {
    fn name(&self) -> &str {
        "lblc"
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Lblc {
            cache: Cache::new(self.0),
        })
    }
}

/// One lcore's `lblc` cache.
#[derive(Debug, Clone)]
pub struct Lblc {
    cache: Cache,
}

impl Scheduler for Lblc {
    fn name(&self) -> &str {
        "lblc"
    }
    fn refresh(&mut self, svc: &Service) {
        self.cache.refresh(svc);
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let now = cx.now.nanos();
        let (s, way) = self.cache.find(flow.daddr, now);
        if let Some(w) = way {
            self.cache.sets[s][w].lastuse = now;
            let id = self.cache.sets[s][w].set[0];
            if let Some(i) = self.cache.index(cx, id)
                && cx.eligible(i)
                && !lblc_overloaded(cx, i)
            {
                return Some(i);
            }
        }
        let i = least_weighted(cx, Load::overhead)?;
        let id = cx.dests()[i].id;
        match way {
            Some(w) => {
                let e = &mut self.cache.sets[s][w];
                e.set[0] = id.0;
                e.lastmod = now;
            }
            None => self.cache.insert(s, flow.daddr, id, now),
        }
        Some(i)
    }
}

/// `lblcr` factory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LblcrFactory(pub LblcOptions);

impl SchedulerFactory for LblcrFactory {
    fn name(&self) -> &str {
        "lblcr"
    }
    fn instance(&self, _lcore: u16, _seed: u64) -> Box<dyn Scheduler> {
        Box::new(Lblcr {
            cache: Cache::new(self.0),
        })
    }
}

/// One lcore's `lblcr` cache.
#[derive(Debug, Clone)]
pub struct Lblcr {
    cache: Cache,
}

/// Least (`most == false`) or most loaded member of a set, by overhead / weight; members that
/// are gone are skipped, as are ineligible ones for the least.
fn set_extreme(cache: &Cache, cx: &SchedCx<'_>, e: &Entry, most: bool) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, u64, u32)> = None;
    for (slot, &id) in e.set[..e.len as usize].iter().enumerate() {
        let Some(i) = cache.index(cx, id) else { continue };
        let d = &cx.dests()[i];
        let l = cx.loads.get(d.id);
        if most {
            if d.weight == 0 {
                continue;
            }
        } else if !eligible(d, l) {
            continue;
        }
        let oh = l.overhead();
        let better = match best {
            None => true,
            Some((_, _, boh, bw)) if most => heavier(oh, d.weight, boh, bw),
            Some((_, _, boh, bw)) => heavier(boh, bw, oh, d.weight),
        };
        if better {
            best = Some((slot, i, oh, d.weight));
        }
    }
    best.map(|b| (b.0, b.1))
}

impl Scheduler for Lblcr {
    fn name(&self) -> &str {
        "lblcr"
    }
    fn refresh(&mut self, svc: &Service) {
        self.cache.refresh(svc);
    }
    fn pick(&mut self, cx: &SchedCx<'_>, flow: &Flow<'_>) -> Option<usize> {
        let now = cx.now.nanos();
        let (s, way) = self.cache.find(flow.daddr, now);
        let Some(w) = way else {
            let i = least_weighted(cx, Load::overhead)?;
            self.cache.insert(s, flow.daddr, cx.dests()[i].id, now);
            return Some(i);
        };
        let mut e = self.cache.sets[s][w];
        e.lastuse = now;
        let min = set_extreme(&self.cache, cx, &e, false).map(|m| m.1);
        if e.len > 1
            && now.saturating_sub(e.lastmod) > self.cache.expire
            && let Some((slot, _)) = set_extreme(&self.cache, cx, &e, true)
        {
            e.set.copy_within(slot + 1..e.len as usize, slot);
            e.len -= 1;
            e.set[e.len as usize] = NO_ID;
            e.lastmod = now;
        }
        let out = match min {
            Some(i) if !lblc_overloaded(cx, i) => Some(i),
            _ => match least_weighted(cx, Load::overhead) {
                Some(i) => {
                    let id = cx.dests()[i].id.0;
                    if !e.set[..e.len as usize].contains(&id) {
                        if (e.len as usize) < SET_MAX {
                            e.set[e.len as usize] = id;
                            e.len += 1;
                        } else {
                            let slot = set_extreme(&self.cache, cx, &e, true).map_or(0, |m| m.0);
                            e.set[slot] = id;
                        }
                        e.lastmod = now;
                    }
                    Some(i)
                }
                None => None,
            },
        };
        self.cache.sets[s][w] = e;
        out
    }
}
