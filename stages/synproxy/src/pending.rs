//! Handshakes in flight: for each client whose cookie ACK was accepted and whose real server
//! has not answered yet, the saved ACKs (DPVS keeps them on `cp->ack_mbuf`), the cookie ISN
//! and the options, keyed by the client's tuple.
//!
//! Shared by the step-2 and step-3 stages of one lcore ([`SharedPending`]), preallocated: a
//! fixed slab of entries, a free stack, a dense list of live entries for the retry scan and
//! an open-addressing index (linear probing, backward-shift deletion) from tuple to entry.
//! Nothing allocates after [`Pending::new`].

use std::cell::RefCell;
use std::rc::Rc;

use rvs_conn::{Tuple, hash_tuple};
use rvs_core::meta::NO_CONN;
use rvs_core::stage::Packet;
use rvs_core::time::Now;

use crate::cookie::CookieOpts;

/// ACKs saved per handshake at most (DPVS's `max_ack_saved` default).
pub const MAX_ACKS: usize = 3;

const EMPTY: u32 = u32::MAX;

/// One handshake in flight.
#[derive(Debug)]
pub struct Entry<M> {
    /// The client's tuple (client -> VIP).
    pub tuple: Tuple,
    /// The connection once conn-new made it ([`NO_CONN`] before).
    pub conn: u32,
    /// Our ISN toward the client (the cookie).
    pub cookie_isn: u32,
    /// The client's ISN.
    pub client_isn: u32,
    /// The options the cookie carried.
    pub opts: CookieOpts,
    /// Saved ACKs in arrival order; the first is the cookie ACK.
    pub acks: [Option<Packet<M>>; MAX_ACKS],
    /// When the next SYN retransmission is due.
    pub retry_at: Now,
    /// SYN retransmissions sent.
    pub retries: u8,
}

impl<M> Entry<M> {
    /// Saved ACKs.
    pub fn saved(&self) -> usize {
        self.acks.iter().filter(|a| a.is_some()).count()
    }
    /// Save `p`; it comes back when every slot is taken.
    pub fn save(&mut self, p: Packet<M>) -> Result<(), Packet<M>> {
        match self.acks.iter_mut().find(|a| a.is_none()) {
            Some(slot) => {
                *slot = Some(p);
                Ok(())
            }
            None => Err(p),
        }
    }
}

/// A handle on an entry: slot and the stamp it had when handed out (a slot reused since no
/// longer matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    slot: u32,
    stamp: u32,
}

/// The handshakes in flight on one lcore.
#[derive(Debug)]
pub struct Pending<M> {
    slots: Box<[Option<Entry<M>>]>,
    stamps: Box<[u32]>,
    free: Vec<u32>,
    live: Vec<u32>,
    live_pos: Box<[u32]>,
    index: Box<[u32]>,
    mask: usize,
    seed: u64,
    unbound: Vec<Handle>,
    cursor: usize,
}

/// The table shared by the stages of one lcore.
pub type SharedPending<M> = Rc<RefCell<Pending<M>>>;

impl<M> Pending<M> {
    /// Room for `cap` handshakes (at least 1).
    pub fn new(cap: usize, seed: u64) -> Self {
        let cap = cap.max(1);
        let n = (cap * 2).next_power_of_two();
        Pending {
            slots: (0..cap).map(|_| None).collect(),
            stamps: vec![0; cap].into_boxed_slice(),
            free: (0..cap as u32).rev().collect(),
            live: Vec::with_capacity(cap),
            live_pos: vec![EMPTY; cap].into_boxed_slice(),
            index: vec![EMPTY; n].into_boxed_slice(),
            mask: n - 1,
            seed,
            unbound: Vec::with_capacity(cap),
            cursor: 0,
        }
    }
    /// Handshakes in flight.
    pub fn len(&self) -> usize {
        self.live.len()
    }
    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    #[inline]
    fn home(&self, t: &Tuple) -> usize {
        hash_tuple(t, self.seed) as usize & self.mask
    }
    /// The entry of tuple `t`.
    pub fn find(&self, t: &Tuple) -> Option<Handle> {
        if self.live.is_empty() {
            return None;
        }
        let mut i = self.home(t);
        loop {
            let s = self.index[i];
            if s == EMPTY {
                return None;
            }
            if let Some(e) = &self.slots[s as usize]
                && e.tuple == *t
            {
                return Some(Handle {
                    slot: s,
                    stamp: self.stamps[s as usize],
                });
            }
            i = (i + 1) & self.mask;
        }
    }
    /// The entry behind `h`, if it is still the one `h` was handed out for.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut Entry<M>> {
        if self.stamps.get(h.slot as usize) != Some(&h.stamp) {
            return None;
        }
        self.slots[h.slot as usize].as_mut()
    }
    /// Start a handshake for `tuple` with its cookie ACK `ack`; the ACK comes back when the
    /// table is full (or the tuple already has one: callers look first).
    pub fn insert(
        &mut self,
        tuple: Tuple,
        cookie_isn: u32,
        client_isn: u32,
        opts: CookieOpts,
        ack: Packet<M>,
    ) -> Result<Handle, Packet<M>> {
        if self.find(&tuple).is_some() {
            return Err(ack);
        }
        let Some(s) = self.free.pop() else {
            return Err(ack);
        };
        let stamp = self.stamps[s as usize].wrapping_add(1);
        self.stamps[s as usize] = stamp;
        self.slots[s as usize] = Some(Entry {
            tuple,
            conn: NO_CONN,
            cookie_isn,
            client_isn,
            opts,
            acks: [Some(ack), None, None],
            retry_at: Now(u64::MAX),
            retries: 0,
        });
        let mut i = self.home(&tuple);
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = s;
        self.live_pos[s as usize] = self.live.len() as u32;
        self.live.push(s);
        let h = Handle { slot: s, stamp };
        self.unbound.push(h);
        Ok(h)
    }
    /// End the handshake behind `h`, returning its entry (its saved ACKs for the caller to
    /// release or free).
    pub fn remove(&mut self, h: Handle) -> Option<Entry<M>> {
        self.get_mut(h)?;
        let s = h.slot as usize;
        let e = self.slots[s].take()?;
        self.stamps[s] = self.stamps[s].wrapping_add(1);
        // Index: find the position, then shift later members of the cluster back.
        let mut i = self.home(&e.tuple);
        while self.index[i] != h.slot {
            i = (i + 1) & self.mask;
        }
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        while self.index[j] != EMPTY {
            let k = self.index[j] as usize;
            let home = self.slots[k].as_ref().map_or(j, |x| self.home(&x.tuple));
            // Move j into the hole when its home is not in (hole, j] cyclically.
            let dist_j = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_j >= dist_hole {
                self.index[hole] = self.index[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
        let pos = self.live_pos[s] as usize;
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos) {
            self.live_pos[moved as usize] = pos as u32;
        }
        self.live_pos[s] = EMPTY;
        self.free.push(h.slot);
        Some(e)
    }
    /// Take the handles of entries made since the last call (the step-2 stage's poll: any
    /// of them still without a connection was never created by conn-new).
    pub fn take_unbound(&mut self, out: &mut Vec<Handle>) {
        out.clear();
        out.append(&mut self.unbound);
    }
    /// Up to `budget` live entries, round robin across calls (the retry scan).
    pub fn scan(&mut self, budget: usize, out: &mut Vec<Handle>) {
        out.clear();
        let n = self.live.len();
        for k in 0..budget.min(n) {
            let s = self.live[(self.cursor + k) % n];
            out.push(Handle {
                slot: s,
                stamp: self.stamps[s as usize],
            });
        }
        if n > 0 {
            self.cursor = (self.cursor + budget.min(n)) % n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::addr::{Addr, Proto};
    use rvs_core::mbuf::HeapMbuf;
    use std::collections::HashMap;

    fn t(i: u32) -> Tuple {
        Tuple {
            proto: Proto::Tcp,
            saddr: Addr::from_v4_u32(0xc612_0000 | (i >> 8)),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: (i & 0xff) as u16 + 1024,
            dport: 80,
        }
    }
    fn pkt() -> Packet<HeapMbuf> {
        Packet::new(HeapMbuf::from_bytes(&[0u8; 60]))
    }

    #[test]
    fn agrees_with_a_hashmap_model() {
        let mut p: Pending<HeapMbuf> = Pending::new(64, 3);
        let mut model: HashMap<Tuple, Handle> = HashMap::new();
        let mut r = rvs_core::rng::SplitMix64::new(5);
        for _ in 0..20_000 {
            let k = t(r.below(200) as u32);
            if r.below(2) == 0 {
                let got = p.insert(k, 1, 2, CookieOpts::default(), pkt());
                match model.get(&k) {
                    Some(_) => assert!(got.is_err()),
                    None if model.len() == 64 => assert!(got.is_err()),
                    None => {
                        model.insert(k, got.unwrap());
                    }
                }
            } else if let Some(h) = model.remove(&k) {
                assert_eq!(p.remove(h).unwrap().tuple, k);
                assert!(p.remove(h).is_none(), "stale handle");
            }
            assert_eq!(p.len(), model.len());
            for (k, h) in &model {
                assert_eq!(p.find(k), Some(*h));
            }
            assert_eq!(p.find(&t(1000)), None);
        }
    }

    #[test]
    fn saves_at_most_three_acks() {
        let mut p: Pending<HeapMbuf> = Pending::new(4, 1);
        let h = p.insert(t(1), 1, 2, CookieOpts::default(), pkt()).unwrap();
        let e = p.get_mut(h).unwrap();
        assert!(e.save(pkt()).is_ok());
        assert!(e.save(pkt()).is_ok());
        assert!(e.save(pkt()).is_err());
        assert_eq!(e.saved(), 3);
    }
}
