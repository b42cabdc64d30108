//! Persistence templates (ipvsadm `-p TIMEOUT -M NETMASK`), shared by every lcore.
//!
//! A template says "clients of this group go to that destination": its key is IPVS's and
//! DPVS's persistence key, the protocol, the client address masked by the service's netmask,
//! the VIP and the virtual port (0 for a port-zero service) ([`TemplateKey`]). A new
//! connection to a persistent service first looks its template up; when the template's
//! destination can still take new connections it goes there, otherwise the template is
//! dropped and the scheduler picks, and a template pointing at the pick is made.
//!
//! **Why one shared, sharded, locked table.** Templates must be global (DESIGN.md: a client's
//! connections may be spread over several lcores by RSS, and they must all reach one real
//! server), and they are touched only on the new-connection path (schedule's look-up and
//! creation, conn-new's attach, a connection's expiry, the owner's expiry sweep), never per
//! packet of an established connection. So [`Templates`] is one table behind an `Arc`, split
//! into shards by key hash, each behind its own `std::sync::Mutex`: lcores creating
//! connections for different client groups take different locks, a critical section is a
//! short hash-chain walk, and nothing is allocated after [`Templates::new`] (entries, buckets
//! and free lists are preallocated, `capacity` in all). Per-lcore caches in front of a shared
//! table were considered and rejected: a drained destination or an expired template must be
//! seen by every lcore at once (the cache would need invalidation, i.e. the same shared
//! state), and the new-connection path can afford one uncontended lock. A full shard means
//! the connection is scheduled normally, without a template, and the miss is counted
//! ([`TemplateStats::full`]): persistence degrades, forwarding does not.
//!
//! **Lifetime.** A template counts the connections using it ([`Templates::attach`] /
//! [`Templates::detach`], one each per connection, on whatever lcore the connection lives).
//! It expires `timeout` after it was last used (created or found by a new connection) and
//! never while a connection uses it: when its last connection goes, its expiry moves to
//! `timeout` from then. (IPVS re-arms a template's timer for another full timeout when it fires
//! with connections left, so there a template outlives its last connection by at most one
//! timeout; rvs gives it exactly one timeout after its last connection, as
//! [`rvs_core::service::Persistence`] documents.) A template found expired by a look-up is
//! treated as absent at once, so expiry does not depend on when the sweep runs.
//!
//! **Counters.** The destination's `persistent` counter ([`rvs_core::load::Counter::Persistent`])
//! lives in the per-lcore [`LoadTable`] of the lcore that made the template (its *owner*, the
//! only writer of that table). The owner keeps its templates in an [`LcoreTemplates`] expiry
//! heap and alone frees them ([`LcoreTemplates::expire`], called from the schedule stage's
//! poll), so the counter goes up and down on one lcore. A dropped template (its destination
//! drained) is unhashed at once, so no new connection finds it, and freed by its owner once
//! its last connection has gone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_core::addr::{Addr, Proto};
use rvs_core::hash::mix64;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::service::{Dest, DestId, Persistence, Service};
use rvs_core::time::Now;

/// A template handle as carried in [`rvs_core::meta::PacketMeta::template`] and
/// [`crate::Conn::template`]: the entry's reuse tag in the high 32 bits, its index in the low
/// 32 bits. A handle outlives nothing: once its entry is freed and reused the tag differs.
pub type TemplateHandle = u64;

/// "No template".
pub const NO_TEMPLATE: TemplateHandle = 0;

const NIL: u32 = u32::MAX;

/// IPVS's persistence key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TemplateKey {
    /// Protocol.
    pub proto: Proto,
    /// Client address masked by the service's netmask.
    pub caddr: Addr,
    /// Virtual address.
    pub vaddr: Addr,
    /// Virtual port: the service's port, 0 for a port-zero service.
    pub vport: u16,
}

impl TemplateKey {
    /// The key of a new connection from `client` to service `svc` with persistence `p`: the
    /// client masked by `-M` (IPv4 or IPv6 prefix length by the client's family), the VIP and
    /// the service's port (0 for a port-zero service, so every port of the VIP shares it).
    pub fn new(p: &Persistence, svc: &Service, client: Addr) -> Self {
        let bits = if client.is_v4() { p.netmask_v4 } else { p.netmask_v6 };
        TemplateKey {
            proto: svc.key.proto,
            caddr: client.masked(bits),
            vaddr: svc.key.vip,
            vport: svc.key.port,
        }
    }
    fn hash(&self, seed: u64) -> u64 {
        let c = self.caddr.0;
        let v = self.vaddr.0;
        let h = mix64(seed ^ c as u64 ^ ((c >> 64) as u64).rotate_left(31));
        let h = mix64(h ^ v as u64 ^ ((v >> 64) as u64).rotate_left(17));
        mix64(h ^ ((self.vport as u64) << 8) ^ self.proto.number() as u64)
    }
}

/// What a template says, as a look-up returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Its handle.
    pub handle: TemplateHandle,
    /// Stable slot of its destination.
    pub dest: DestId,
    /// The destination's index in the service when the template was made.
    pub dest_index: u32,
    /// The snapshot generation it was made under.
    pub generation: u64,
    /// Connections using it now.
    pub conns: u32,
    /// When it expires unless used again (meaningless while `conns > 0`).
    pub expires: Now,
    /// The lcore that made it.
    pub owner: u16,
}

impl TemplateInfo {
    /// The template's destination in `svc`: at the index it was made with when that still
    /// holds it, else looked up by stable id; `None` when the service no longer has it.
    pub fn resolve<'a>(&self, svc: &'a Service) -> Option<(usize, &'a Dest)> {
        match svc.dests.get(self.dest_index as usize) {
            Some(d) if d.id == self.dest => Some((self.dest_index as usize, d)),
            _ => svc.dest_by_id(self.dest),
        }
    }
}

/// A template to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTemplate {
    /// Its key.
    pub key: TemplateKey,
    /// Destination slot.
    pub dest: DestId,
    /// Destination index in the service.
    pub dest_index: u32,
    /// Snapshot generation.
    pub generation: u64,
    /// Timeout in seconds (`-p`).
    pub timeout_secs: u32,
    /// The lcore making it (it will free it and holds its `persistent` count).
    pub owner: u16,
}

/// What [`Templates::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new template: the caller (its owner) counts it persistent and arms its expiry.
    New(TemplateHandle),
    /// Another lcore made one for this key in the meantime: use it.
    Existing(TemplateInfo),
    /// No room in the key's shard: schedule without a template.
    Full,
}

/// What the owner's expiry check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// Freed: take one from this destination's `persistent` counter.
    Freed(DestId),
    /// Still in use or not yet due: look again at this time.
    Later(Now),
    /// The handle is stale (already freed).
    Gone,
}

/// Counts kept by the shared table (all lcores together).
#[derive(Debug, Default)]
pub struct TemplateStats {
    /// Templates made.
    pub created: AtomicU64,
    /// Look-ups that found a live template.
    pub hits: AtomicU64,
    /// Templates dropped because their destination can take no new connection.
    pub dropped: AtomicU64,
    /// Templates found expired by a look-up.
    pub expired_on_lookup: AtomicU64,
    /// Templates freed by their owner.
    pub freed: AtomicU64,
    /// Inserts refused: the key's shard was full.
    pub full: AtomicU64,
    /// Attach or detach with a stale handle (the template was freed in between).
    pub stale: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    Free,
    /// Hashed: look-ups find it.
    Live,
    /// Unhashed (dropped or found expired): waits for its owner to free it.
    Dead,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: TemplateKey,
    hash: u64,
    next: u32,
    tag: u32,
    state: EntryState,
    dest: DestId,
    dest_index: u32,
    generation: u64,
    owner: u16,
    conns: u32,
    timeout_ns: u64,
    expires: Now,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            key: TemplateKey::default(),
            hash: 0,
            next: NIL,
            tag: 0,
            state: EntryState::Free,
            dest: DestId(0),
            dest_index: 0,
            generation: 0,
            owner: 0,
            conns: 0,
            timeout_ns: 0,
            expires: Now(0),
        }
    }
}

#[derive(Debug)]
struct Shard {
    entries: Box<[Entry]>,
    buckets: Box<[u32]>,
    free: Vec<u32>,
    live: usize,
}

impl Shard {
    fn new(cap: usize) -> Self {
        let nb = cap.next_power_of_two().max(1);
        Shard {
            entries: vec![Entry::default(); cap].into_boxed_slice(),
            buckets: vec![NIL; nb].into_boxed_slice(),
            free: (0..cap as u32).rev().collect(),
            live: 0,
        }
    }
    fn bucket(&self, hash: u64) -> usize {
        // The low bits chose the shard; use the high ones here.
        ((hash >> 32) as usize) & (self.buckets.len() - 1)
    }
    fn find(&self, key: &TemplateKey, hash: u64) -> Option<u32> {
        let mut n = self.buckets[self.bucket(hash)];
        while n != NIL {
            let e = &self.entries[n as usize];
            if e.hash == hash && e.key == *key {
                return Some(n);
            }
            n = e.next;
        }
        None
    }
    fn unhash(&mut self, i: u32) {
        let b = self.bucket(self.entries[i as usize].hash);
        let next = self.entries[i as usize].next;
        if self.buckets[b] == i {
            self.buckets[b] = next;
        } else {
            let mut p = self.buckets[b];
            while p != NIL {
                let pn = self.entries[p as usize].next;
                if pn == i {
                    self.entries[p as usize].next = next;
                    break;
                }
                p = pn;
            }
        }
        self.entries[i as usize].next = NIL;
        self.entries[i as usize].state = EntryState::Dead;
    }
    /// A live entry that has expired: no connection and past its time.
    fn is_expired(e: &Entry, now: Now) -> bool {
        e.conns == 0 && e.expires <= now
    }
}

/// The global template table (see the module doc).
#[derive(Debug)]
pub struct Templates {
    shards: Box<[Mutex<Shard>]>,
    shard_mask: u64,
    per_shard: u32,
    seed: u64,
    /// Counts, all lcores together.
    pub stats: TemplateStats,
}

impl Templates {
    /// A table of `capacity` templates in all, split over `shards` shards (rounded up to a
    /// power of two, at most `capacity`), seeded for its hash. Everything is allocated here.
    pub fn new(capacity: usize, shards: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, 1 << 30);
        let shards = shards.clamp(1, capacity).next_power_of_two();
        let per_shard = capacity.div_ceil(shards);
        Templates {
            shards: (0..shards).map(|_| Mutex::new(Shard::new(per_shard))).collect(),
            shard_mask: (shards - 1) as u64,
            per_shard: per_shard as u32,
            seed,
            stats: TemplateStats::default(),
        }
    }

    /// Templates the table can hold (shards x entries per shard).
    pub fn capacity(&self) -> usize {
        self.shards.len() * self.per_shard as usize
    }

    /// Templates allocated now (live or waiting to be freed).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).live).sum()
    }

    /// True when no template is allocated.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_of(&self, hash: u64) -> usize {
        (hash & self.shard_mask) as usize
    }

    fn split(&self, h: TemplateHandle) -> Option<(usize, u32, u32)> {
        let idx = (h & 0xffff_ffff) as u32;
        let tag = (h >> 32) as u32;
        let shard = (idx / self.per_shard) as usize;
        (tag != 0 && shard < self.shards.len()).then_some((shard, idx % self.per_shard, tag))
    }

    fn handle(&self, shard: usize, local: u32, tag: u32) -> TemplateHandle {
        ((tag as u64) << 32) | (shard as u64 * self.per_shard as u64 + local as u64)
    }

    fn info(&self, shard: usize, local: u32, e: &Entry) -> TemplateInfo {
        TemplateInfo {
            handle: self.handle(shard, local, e.tag),
            dest: e.dest,
            dest_index: e.dest_index,
            generation: e.generation,
            conns: e.conns,
            expires: e.expires,
            owner: e.owner,
        }
    }

    /// The live template for `key`, its expiry pushed to `now + timeout` (a template restarts
    /// its timeout each time a new connection uses it, as IPVS's `ip_vs_conn_put` does).
    /// A template that has expired (no connection, past its time) is unhashed and reported
    /// absent.
    pub fn find(&self, key: &TemplateKey, now: Now) -> Option<TemplateInfo> {
        let hash = key.hash(self.seed);
        let s = self.shard_of(hash);
        let mut g = lock(&self.shards[s]);
        let i = g.find(key, hash)?;
        let e = &mut g.entries[i as usize];
        if Shard::is_expired(e, now) {
            g.unhash(i);
            self.stats.expired_on_lookup.fetch_add(1, Relaxed);
            return None;
        }
        e.expires = e.expires.max(now.plus_nanos(e.timeout_ns));
        let e = *e;
        self.stats.hits.fetch_add(1, Relaxed);
        Some(self.info(s, i, &e))
    }

    /// Make a template, unless a live one with the same key exists (another lcore made it
    /// since this one's look-up missed; it is returned instead).
    pub fn insert(&self, t: NewTemplate, now: Now) -> Inserted {
        let hash = t.key.hash(self.seed);
        let s = self.shard_of(hash);
        let mut g = lock(&self.shards[s]);
        if let Some(i) = g.find(&t.key, hash) {
            let e = &mut g.entries[i as usize];
            if !Shard::is_expired(e, now) {
                e.expires = e.expires.max(now.plus_nanos(e.timeout_ns));
                let e = *e;
                return Inserted::Existing(self.info(s, i, &e));
            }
            g.unhash(i);
            self.stats.expired_on_lookup.fetch_add(1, Relaxed);
        }
        let Some(i) = g.free.pop() else {
            self.stats.full.fetch_add(1, Relaxed);
            return Inserted::Full;
        };
        let b = g.bucket(hash);
        let head = g.buckets[b];
        let timeout_ns = u64::from(t.timeout_secs).saturating_mul(Now::SEC);
        let e = &mut g.entries[i as usize];
        let tag = e.tag.wrapping_add(1).max(1);
        *e = Entry {
            key: t.key,
            hash,
            next: head,
            tag,
            state: EntryState::Live,
            dest: t.dest,
            dest_index: t.dest_index,
            generation: t.generation,
            owner: t.owner,
            conns: 0,
            timeout_ns,
            expires: now.plus_nanos(timeout_ns),
        };
        g.buckets[b] = i;
        g.live += 1;
        self.stats.created.fetch_add(1, Relaxed);
        Inserted::New(self.handle(s, i, tag))
    }

    /// Run `f` on the entry of handle `h` when the handle is current.
    fn with<R>(&self, h: TemplateHandle, f: impl FnOnce(&mut Shard, u32) -> R) -> Option<R> {
        let (s, i, tag) = self.split(h)?;
        let mut g = lock(&self.shards[s]);
        let e = g.entries.get(i as usize)?;
        if e.tag != tag || e.state == EntryState::Free {
            return None;
        }
        Some(f(&mut g, i))
    }

    /// The template of handle `h`, if it has not been freed.
    pub fn get(&self, h: TemplateHandle) -> Option<TemplateInfo> {
        let (s, _, _) = self.split(h)?;
        self.with(h, |g, i| {
            let e = g.entries[i as usize];
            self.info(s, i, &e)
        })
    }

    /// Drop the template (its destination can take no new connection): no look-up finds it
    /// from now on, and its owner frees it once its last connection has gone.
    pub fn drop_template(&self, h: TemplateHandle, now: Now) {
        let done = self.with(h, |g, i| {
            if g.entries[i as usize].state == EntryState::Live {
                g.unhash(i);
            }
            let e = &mut g.entries[i as usize];
            e.expires = e.expires.min(now);
        });
        if done.is_some() {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }

    /// A connection starts using the template. False (and counted stale) when the handle
    /// no longer names a template.
    pub fn attach(&self, h: TemplateHandle) -> bool {
        let ok = self
            .with(h, |g, i| {
                let e = &mut g.entries[i as usize];
                e.conns = e.conns.saturating_add(1);
            })
            .is_some();
        if !ok {
            self.stats.stale.fetch_add(1, Relaxed);
        }
        ok
    }

    /// A connection that used the template has gone: when it was the last, the template
    /// expires `timeout` from `now` (a dropped one as soon as its owner looks).
    pub fn detach(&self, h: TemplateHandle, now: Now) {
        let ok = self
            .with(h, |g, i| {
                let e = &mut g.entries[i as usize];
                e.conns = e.conns.saturating_sub(1);
                if e.conns == 0 && e.state == EntryState::Live {
                    e.expires = e.expires.max(now.plus_nanos(e.timeout_ns));
                }
            })
            .is_some();
        if !ok {
            self.stats.stale.fetch_add(1, Relaxed);
        }
    }

    /// The owner's expiry check of handle `h` at `now`: free it when it has no connection
    /// and is dropped or past its time; otherwise say when to look again (its expiry, or a
    /// full timeout from now while connections use it, IPVS's re-arm).
    pub fn reclaim(&self, h: TemplateHandle, now: Now) -> Reclaim {
        let r = self.with(h, |g, i| {
            let e = g.entries[i as usize];
            if e.conns == 0 && (e.state == EntryState::Dead || e.expires <= now) {
                if e.state == EntryState::Live {
                    g.unhash(i);
                }
                g.entries[i as usize].state = EntryState::Free;
                g.free.push(i);
                g.live -= 1;
                Reclaim::Freed(e.dest)
            } else if e.conns > 0 {
                Reclaim::Later(now.plus_nanos(e.timeout_ns.max(1)).max(e.expires))
            } else {
                Reclaim::Later(e.expires)
            }
        });
        match r {
            Some(r) => {
                if matches!(r, Reclaim::Freed(_)) {
                    self.stats.freed.fetch_add(1, Relaxed);
                }
                r
            }
            None => Reclaim::Gone,
        }
    }
}

/// A shard's lock; a poisoned lock (a panic while held, which no code path here can cause)
/// is taken over rather than propagated.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One lcore's side of the template table: the templates it made, in an expiry heap, and
/// its destination counters (the `persistent` counter moves here and only here).
#[derive(Debug)]
pub struct LcoreTemplates {
    table: Arc<Templates>,
    loads: Arc<LoadTable>,
    lcore: u16,
    heap: BinaryHeap<Reverse<(u64, TemplateHandle)>>,
    repicks: u64,
}

/// How an [`LcoreTemplates::place`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A live template sent the connection to its destination (index in the service).
    Hit(usize, TemplateHandle),
    /// The scheduler picked (index), and a template now points there.
    New(usize, TemplateHandle),
    /// The scheduler picked (index) but no template could be made: the key's shard was full
    /// (counted in [`TemplateStats::full`]), or another lcore had just made one whose
    /// destination cannot be used.
    NoTemplate(usize),
    /// The scheduler found no destination.
    NoDest,
}

impl LcoreTemplates {
    /// Lcore `lcore`'s side of `table`, counting into `loads` (this lcore's counters). The
    /// expiry heap is sized for the whole table, so pushing never allocates.
    pub fn new(table: Arc<Templates>, loads: Arc<LoadTable>, lcore: u16) -> Self {
        let cap = table.capacity();
        LcoreTemplates {
            table,
            loads,
            lcore,
            heap: BinaryHeap::with_capacity(cap),
            repicks: 0,
        }
    }

    /// The lcore this side runs on (the owner recorded in the templates it makes).
    pub fn set_lcore(&mut self, lcore: u16) {
        self.lcore = lcore;
    }

    /// The shared table.
    pub fn table(&self) -> &Arc<Templates> {
        &self.table
    }

    /// Templates this lcore made and has not freed.
    pub fn owned(&self) -> usize {
        self.heap.len()
    }

    /// Templates this lcore found pointing at a destination that could take no new
    /// connection, and dropped before asking the scheduler.
    pub fn repicks(&self) -> u64 {
        self.repicks
    }

    /// Place a new connection from `client` to persistent service `svc`: IPVS's
    /// `ip_vs_sched_persist`. A live template whose destination is available, not inhibited
    /// and of weight > 0 decides; a template whose destination cannot take new connections is
    /// dropped (IPVS's `ip_vs_check_template`; IPVS keeps quiesced, weight-0 destinations
    /// unless `expire_quiescent_template` is set, rvs always drops them as DPVS operators
    /// expect of a drain). Otherwise `pick` (the service's scheduler) chooses and a template
    /// is made for its choice; when another lcore made one for the key meanwhile, that one
    /// decides if its destination is usable. An overloaded template destination is kept: the
    /// connection is then refused by conn-new's `max_conn` check, as a sticky client should be.
    pub fn place(
        &mut self,
        p: &Persistence,
        svc: &Service,
        generation: u64,
        client: Addr,
        now: Now,
        pick: impl FnOnce() -> Option<usize>,
    ) -> Placed {
        let key = TemplateKey::new(p, svc, client);
        if let Some(t) = self.table.find(&key, now) {
            match t.resolve(svc) {
                Some((i, d)) if template_usable(d) => return Placed::Hit(i, t.handle),
                _ => {
                    self.table.drop_template(t.handle, now);
                    self.repicks += 1;
                }
            }
        }
        let Some(i) = pick() else { return Placed::NoDest };
        let Some(d) = svc.dests.get(i) else {
            return Placed::NoDest;
        };
        let new = NewTemplate {
            key,
            dest: d.id,
            dest_index: i as u32,
            generation,
            timeout_secs: p.timeout_secs,
            owner: self.lcore,
        };
        match self.table.insert(new, now) {
            Inserted::New(h) => {
                self.loads.inc(d.id, Counter::Persistent);
                // The heap holds one entry per template this lcore owns, at most the table's
                // capacity, which it was sized for.
                if self.heap.len() < self.heap.capacity() {
                    self.heap
                        .push(Reverse((now.plus_secs(u64::from(p.timeout_secs)).nanos(), h)));
                }
                Placed::New(i, h)
            }
            Inserted::Existing(t) => match t.resolve(svc) {
                Some((j, d)) if template_usable(d) => Placed::Hit(j, t.handle),
                _ => Placed::NoTemplate(i),
            },
            Inserted::Full => Placed::NoTemplate(i),
        }
    }

    /// Free this lcore's templates that are due at `now` (no connection, past their time or
    /// dropped), at most `budget` of them, taking one from their destination's `persistent`
    /// counter each. Returns how many were freed.
    pub fn expire(&mut self, now: Now, budget: usize) -> usize {
        let mut freed = 0;
        let mut looked = 0;
        while looked < budget.saturating_mul(2) && freed < budget {
            let Some(&Reverse((due, h))) = self.heap.peek() else {
                break;
            };
            if due > now.nanos() {
                break;
            }
            self.heap.pop();
            looked += 1;
            match self.table.reclaim(h, now) {
                Reclaim::Freed(dest) => {
                    self.loads.dec(dest, Counter::Persistent);
                    freed += 1;
                }
                Reclaim::Later(t) => self.heap.push(Reverse((t.nanos().max(now.nanos() + 1), h))),
                Reclaim::Gone => {}
            }
        }
        freed
    }
}

/// A template's destination can take its clients' new connections: weight > 0, available
/// and not inhibited by a health check.
pub fn template_usable(d: &Dest) -> bool {
    d.weight > 0 && d.flags.available() && !d.flags.inhibited()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: [u8; 4]) -> TemplateKey {
        TemplateKey {
            proto: Proto::Tcp,
            caddr: Addr::v4(c).masked(24),
            vaddr: Addr::v4([198, 18, 0, 100]),
            vport: 80,
        }
    }

    fn new(k: TemplateKey, owner: u16) -> NewTemplate {
        NewTemplate {
            key: k,
            dest: DestId(3),
            dest_index: 1,
            generation: 1,
            timeout_secs: 10,
            owner,
        }
    }

    #[test]
    fn insert_find_and_race() {
        let t = Templates::new(8, 2, 1);
        let k = key([198, 18, 5, 5]);
        assert_eq!(t.find(&k, Now::from_secs(1)), None);
        let Inserted::New(h) = t.insert(new(k, 0), Now::from_secs(1)) else {
            panic!("not new")
        };
        assert_ne!(h, NO_TEMPLATE);
        // Same /24: same key, found.
        let f = t.find(&key([198, 18, 5, 77]), Now::from_secs(2)).unwrap();
        assert_eq!((f.handle, f.dest, f.expires), (h, DestId(3), Now::from_secs(12)));
        // A second insert for the key (another lcore that missed) gets the first.
        match t.insert(new(k, 1), Now::from_secs(3)) {
            Inserted::Existing(i) => assert_eq!(i.handle, h),
            o => panic!("{o:?}"),
        }
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expiry_waits_for_the_last_connection() {
        let t = Templates::new(8, 1, 1);
        let k = key([198, 18, 5, 5]);
        let Inserted::New(h) = t.insert(new(k, 0), Now::from_secs(0)) else {
            panic!()
        };
        assert!(t.attach(h));
        assert!(t.attach(h));
        // Past its timeout but in use: found, and not freed.
        assert!(t.find(&k, Now::from_secs(50)).is_some());
        assert!(matches!(t.reclaim(h, Now::from_secs(100)), Reclaim::Later(_)));
        t.detach(h, Now::from_secs(100));
        assert!(matches!(t.reclaim(h, Now::from_secs(200)), Reclaim::Later(_)));
        t.detach(h, Now::from_secs(200));
        // The last connection went at 200: the template lives until 210.
        assert_eq!(t.reclaim(h, Now::from_secs(209)), Reclaim::Later(Now::from_secs(210)));
        assert_eq!(t.reclaim(h, Now::from_secs(210)), Reclaim::Freed(DestId(3)));
        assert_eq!(t.reclaim(h, Now::from_secs(210)), Reclaim::Gone);
        assert!(!t.attach(h), "a stale handle attaches nothing");
        assert_eq!(t.stats.stale.load(Relaxed), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_and_stale_handles_after_reuse() {
        let t = Templates::new(2, 1, 1);
        let a = t.insert(new(key([198, 18, 1, 1]), 0), Now(0));
        let b = t.insert(new(key([198, 18, 2, 1]), 0), Now(0));
        assert!(matches!((a, b), (Inserted::New(_), Inserted::New(_))));
        assert_eq!(t.insert(new(key([198, 18, 3, 1]), 0), Now(0)), Inserted::Full);
        let Inserted::New(ha) = a else { panic!() };
        assert_eq!(t.reclaim(ha, Now::from_secs(10)), Reclaim::Freed(DestId(3)));
        let Inserted::New(hc) = t.insert(new(key([198, 18, 3, 1]), 0), Now::from_secs(10)) else {
            panic!()
        };
        assert_eq!(hc & 0xffff_ffff, ha & 0xffff_ffff, "the slot was reused");
        assert_ne!(hc, ha, "with another tag");
        assert_eq!(t.get(ha), None);
        assert_eq!(t.stats.full.load(Relaxed), 1);
    }
}
