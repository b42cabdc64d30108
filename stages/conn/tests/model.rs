//! The connection table against a plain `HashMap` model under random insert, lookup, packet
//! (refresh), remove and expire, on a simulated clock.
//!
//! The model keeps, per connection, its two tuples and its deadline. The deadline is predicted
//! independently: insertion time + the DPVS default timeout of the connection's state + a
//! jitter below one second (the one value read from the table, at insertion, checked against
//! its bound), and after a packet: packet time + the protocol's timeout + the same jitter. A
//! connection must be present while its deadline has not passed, and gone after the first
//! `expire` at or after the first wheel tick boundary at or after its deadline (between its
//! deadline and that boundary it may already be gone).

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use rvs_conn::{Conn, ConnConfig, ConnError, ConnId, LcoreConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::service::{Forward, Snapshot, Timeouts};
use rvs_core::time::Now;

const CAP: usize = 24;
const TICK_MS: u64 = 10;
const TICK: u64 = TICK_MS * 1_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Insert a connection (client index, client port, VIP index, real-server index, protocol).
    Insert(u8, u8, u8, u8, bool),
    /// Look a tuple up (same small domain, either direction).
    Lookup(u8, u8, u8, u8, bool, bool),
    /// A packet on the k-th live connection (by model order), in direction `out`.
    Packet(u8, bool),
    /// Remove the k-th live connection.
    Remove(u8),
    /// Advance the clock by this many milliseconds, then expire.
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..4, 0u8..2, 0u8..2, any::<bool>()).prop_map(|(a, b, c, d, e)| Op::Insert(a, b, c, d, e)),
        3 => (0u8..6, 0u8..4, 0u8..2, 0u8..2, any::<bool>(), any::<bool>()).prop_map(|(a, b, c, d, e, f)| Op::Lookup(a, b, c, d, e, f)),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(k, o)| Op::Packet(k, o)),
        1 => any::<u8>().prop_map(Op::Remove),
        3 => prop_oneof![0u32..50, 0u32..3000, 0u32..400_000].prop_map(Op::Advance),
    ]
}

fn tuples(c: u8, p: u8, v: u8, r: u8, udp: bool) -> (Tuple, Tuple) {
    let proto = if udp { Proto::Udp } else { Proto::Tcp };
    let inb = Tuple {
        proto,
        saddr: Addr::v4([198, 18, 5, c]),
        daddr: Addr::v4([198, 18, 0, 100 + v]),
        sport: 40000 + p as u16,
        dport: 80,
    };
    // NAT: the reply tuple does not name the VIP, so two VIPs can collide on it.
    let out = Conn::out_tuple_for(
        Forward::Nat,
        &inb,
        Addr::v4([198, 18, 1, 10 + r]),
        8080,
        Addr::UNSPECIFIED,
        0,
    );
    (inb, out)
}

#[derive(Debug, Clone)]
struct ModelConn {
    id: ConnId,
    inb: Tuple,
    out: Tuple,
    jitter: u64,
    deadline: Now,
}

const UDP_TO: u32 = 20;
const TCP_TO: Timeouts = Timeouts {
    udp: UDP_TO,
    ..Timeouts::DPVS
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut t = LcoreConns::new(
            ConnConfig { capacity: CAP, buckets_log2: 3, seed: 11, timer_tick_ms: TICK_MS as u32 },
            0, 1, Arc::new(LoadTable::new(2)),
        );
        let snap = Snapshot::empty();
        let mut model: Vec<ModelConn> = Vec::new();
        let mut by_tuple: HashMap<Tuple, (ConnId, Dir)> = HashMap::new();
        let mut now = Now::from_secs(10);
        for op in ops {
            match op {
                Op::Insert(c, p, v, r, udp) => {
                    let (inb, out) = tuples(c, p, v, r, udp);
                    let conn = Conn { in_tuple: inb, out_tuple: out, fwd: Forward::Nat, ..Default::default() };
                    let want_err = if by_tuple.contains_key(&inb) || by_tuple.contains_key(&out) {
                        Some(ConnError::Exists)
                    } else if model.len() == CAP {
                        Some(ConnError::PoolExhausted)
                    } else {
                        None
                    };
                    match (t.insert(conn, now), want_err) {
                        (Ok(id), None) => {
                            let first = if udp { 300 } else { Timeouts::DPVS.none };
                            let e = t.conn(id).expect("inserted").expires;
                            let base = now.plus_secs(u64::from(first));
                            prop_assert!(e >= base && e.nanos() - base.nanos() < Now::SEC, "first deadline {e:?} base {base:?}");
                            let jitter = e.nanos() - base.nanos();
                            prop_assert!(!model.iter().any(|m| m.id == id), "id {id} handed out twice");
                            by_tuple.insert(inb, (id, Dir::In));
                            by_tuple.insert(out, (id, Dir::Out));
                            model.push(ModelConn { id, inb, out, jitter, deadline: e });
                        }
                        (Err(e), Some(w)) => prop_assert_eq!(e, w),
                        (got, want) => prop_assert!(false, "insert gave {got:?}, model wants {want:?}"),
                    }
                }
                Op::Lookup(c, p, v, r, udp, out_dir) => {
                    let (inb, out) = tuples(c, p, v, r, udp);
                    let k = if out_dir { out } else { inb };
                    prop_assert_eq!(t.lookup(&k), by_tuple.get(&k).copied());
                }
                Op::Packet(k, out_dir) => {
                    if model.is_empty() { continue; }
                    let i = k as usize % model.len();
                    let m = &mut model[i];
                    let dir = if out_dir { Dir::Out } else { Dir::In };
                    // TCP: a bare ACK (NONE -> ESTABLISHED in either table); UDP: normal.
                    t.on_packet(m.id, dir, TcpFlags(TcpFlags::ACK), &TCP_TO, now);
                    let to = if m.inb.proto == Proto::Udp { UDP_TO } else { TCP_TO.established };
                    m.deadline = now.plus_secs(u64::from(to)).plus_nanos(m.jitter);
                    prop_assert_eq!(t.conn(m.id).expect("live").expires, m.deadline);
                }
                Op::Remove(k) => {
                    if model.is_empty() { continue; }
                    let m = model.remove(k as usize % model.len());
                    let got = t.remove(m.id, &snap).expect("live");
                    prop_assert_eq!(got.in_tuple, m.inb);
                    by_tuple.remove(&m.inb);
                    by_tuple.remove(&m.out);
                    prop_assert!(t.remove(m.id, &snap).is_none());
                }
                Op::Advance(ms) => {
                    now = now.plus_nanos(u64::from(ms) * 1_000_000);
                    let n = t.expire(now, usize::MAX, &snap);
                    // Gone: the deadline's tick boundary reached. Between the deadline and that
                    // boundary either is right: a connection whose deadline moved later without
                    // moving its wheel entry (lazy refresh) is checked, and expired, at the
                    // earlier slot's walk, exactly at its deadline.
                    let (gone, kept): (Vec<_>, Vec<_>) = model.drain(..).partition(|m| {
                        let boundary = m.deadline.nanos().div_ceil(TICK) * TICK <= now.nanos();
                        boundary || (m.deadline <= now && t.conn(m.id).is_none())
                    });
                    prop_assert_eq!(n, gone.len());
                    for m in &gone {
                        prop_assert!(t.conn(m.id).is_none(), "{:?} should have expired at {now:?}", m);
                        prop_assert_eq!(t.lookup(&m.inb), None);
                        prop_assert_eq!(t.lookup(&m.out), None);
                        by_tuple.remove(&m.inb);
                        by_tuple.remove(&m.out);
                    }
                    for m in &kept {
                        prop_assert_eq!(t.lookup(&m.inb), Some((m.id, Dir::In)));
                    }
                    model = kept;
                }
            }
            prop_assert_eq!(t.len(), model.len());
        }
    }
}
