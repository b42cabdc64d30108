//! The connection table: both tuples found, pool exhaustion, timer expiry on a simulated
//! clock, local ports and counters released on expiry.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, ConnError, ConnFlags, LcoreConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::service::{DestId, Forward, Snapshot, Timeouts};
use rvs_core::time::Now;

fn cfg(capacity: usize, tick_ms: u32) -> ConnConfig {
    ConnConfig {
        capacity,
        buckets_log2: 4,
        seed: 7,
        timer_tick_ms: tick_ms,
    }
}

fn table(capacity: usize, tick_ms: u32) -> LcoreConns {
    LcoreConns::new(cfg(capacity, tick_ms), 0, 1, Arc::new(LoadTable::new(16)))
}

/// A NAT connection from client 198.18.5.x:port to VIP 198.18.0.100:80, real server
/// 198.18.1.11:8080.
fn nat_conn(proto: Proto, client: u32, port: u16) -> Conn {
    let in_tuple = Tuple {
        proto,
        saddr: Addr::from_v4_u32(0xc612_0500 + client),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: port,
        dport: 80,
    };
    let out_tuple = Conn::out_tuple_for(
        Forward::Nat,
        &in_tuple,
        Addr::v4([198, 18, 1, 11]),
        8080,
        Addr::UNSPECIFIED,
        0,
    );
    Conn {
        in_tuple,
        out_tuple,
        fwd: Forward::Nat,
        ..Default::default()
    }
}

#[test]
fn both_tuples_are_found_with_their_direction() {
    let mut t = table(64, 10);
    let c = nat_conn(Proto::Tcp, 1, 40000);
    let id = t.insert(c.clone(), Now::from_secs(1)).unwrap();
    assert_eq!(t.lookup(&c.in_tuple), Some((id, Dir::In)));
    assert_eq!(t.lookup(&c.out_tuple), Some((id, Dir::Out)));
    // The reply's reverse (what the client would send) is the inbound tuple, not a new key.
    assert_eq!(t.lookup(&c.out_tuple.reversed()), None);
    let mut other = c.in_tuple;
    other.sport += 1;
    assert_eq!(t.lookup(&other), None);
    assert_eq!(t.insert(c.clone(), Now::from_secs(1)), Err(ConnError::Exists));
    assert_eq!(t.len(), 1);
    assert_eq!(t.conn(id).unwrap().in_tuple, c.in_tuple);
    assert!(t.conn(id + 1).is_none());
}

#[test]
fn pool_exhaustion_is_an_error_and_slots_come_back() {
    let mut t = table(8, 10);
    let snap = Snapshot::empty();
    let mut ids = vec![];
    for i in 0..8 {
        ids.push(t.insert(nat_conn(Proto::Tcp, i, 1000), Now::from_secs(0)).unwrap());
    }
    assert_eq!(
        t.insert(nat_conn(Proto::Tcp, 99, 1000), Now::from_secs(0)),
        Err(ConnError::PoolExhausted)
    );
    assert_eq!(t.stats().exhausted, 1);
    assert!(t.remove(ids[3], &snap).is_some());
    assert!(t.remove(ids[3], &snap).is_none());
    let id = t.insert(nat_conn(Proto::Tcp, 99, 1000), Now::from_secs(0)).unwrap();
    assert_eq!(id, ids[3]);
    assert_eq!(t.lookup(&nat_conn(Proto::Tcp, 3, 1000).in_tuple), None);
    assert_eq!(t.len(), 8);
}

#[test]
fn timer_idle_connection_expires_within_timeout_jitter_and_a_tick() {
    let tick_ms = 10u64;
    let mut t = table(1024, tick_ms as u32);
    let snap = Snapshot::empty();
    let start = Now::from_secs(100);
    let n = 200u32;
    for i in 0..n {
        let id = t.insert(nat_conn(Proto::Udp, i, 5353), start).unwrap();
        // The first packet sets the UDP timeout (300 s here by DPVS default; use 5 s).
        let to = Timeouts {
            udp: 5,
            ..Timeouts::DPVS
        };
        t.on_packet(id, Dir::In, TcpFlags(0), &to, start);
    }
    // Step the clock by one tick at a time; record when each connection goes.
    let mut now = start;
    let mut expired_at = vec![];
    while !t.is_empty() {
        now = now.plus_nanos(tick_ms * 1_000_000);
        let before = t.len();
        let gone = t.expire(now, usize::MAX, &snap);
        assert_eq!(before - t.len(), gone);
        for _ in 0..gone {
            expired_at.push(now);
        }
        assert!(now < start.plus_secs(10), "connections still live at {now:?}");
    }
    let lo = start.plus_secs(5);
    let hi = start.plus_secs(6).plus_nanos(tick_ms * 1_000_000);
    for e in &expired_at {
        assert!(*e >= lo && *e <= hi, "expired at {e:?}, window {lo:?}..={hi:?}");
    }
    // Jitter spreads them: not all in one tick.
    let first = expired_at.first().unwrap();
    let last = expired_at.last().unwrap();
    assert!(
        last.nanos() - first.nanos() > 500_000_000,
        "jitter spread {first:?}..{last:?}"
    );
    assert_eq!(t.stats().expired, n as u64);
}

#[test]
fn timer_refreshed_connection_does_not_expire() {
    let mut t = table(16, 10);
    let snap = Snapshot::empty();
    let to = Timeouts {
        udp: 2,
        ..Timeouts::DPVS
    };
    let mut now = Now::from_secs(0);
    let live = t.insert(nat_conn(Proto::Udp, 1, 1), now).unwrap();
    let idle = t.insert(nat_conn(Proto::Udp, 2, 1), now).unwrap();
    t.on_packet(live, Dir::In, TcpFlags(0), &to, now);
    t.on_packet(idle, Dir::In, TcpFlags(0), &to, now);
    // A packet every 500 ms for 60 s on `live`; expire every 10 ms.
    for step in 1..=6000u64 {
        now = Now::from_millis(step * 10);
        if step % 50 == 0 {
            let dir = if step % 100 == 0 { Dir::Out } else { Dir::In };
            t.on_packet(live, dir, TcpFlags(0), &to, now);
        }
        t.expire(now, 64, &snap);
        assert!(t.conn(live).is_some(), "refreshed connection expired at {now:?}");
    }
    assert!(t.conn(idle).is_none());
    assert_eq!(t.len(), 1);
}

#[test]
fn expiry_budget_is_honoured_and_the_rest_follow() {
    let mut t = table(64, 10);
    let snap = Snapshot::empty();
    for i in 0..50 {
        t.insert(nat_conn(Proto::Tcp, i, 9), Now::from_secs(0)).unwrap();
    }
    // TCP NONE: 2 s + jitter < 3 s.
    let now = Now::from_secs(3);
    assert_eq!(t.expire(now, 20, &snap), 20);
    assert_eq!(t.expire(now, 20, &snap), 20);
    assert_eq!(t.expire(now, 20, &snap), 10);
    assert!(t.is_empty());
}

#[test]
fn a_long_pause_expires_everything_due_in_one_call() {
    let mut t = table(64, 1);
    let snap = Snapshot::empty();
    for i in 0..10 {
        t.insert(nat_conn(Proto::Tcp, i, 9), Now::from_secs(1)).unwrap();
    }
    // Far beyond one wheel revolution (65 536 ticks of 1 ms).
    assert_eq!(t.expire(Now::from_secs(10_000), usize::MAX, &snap), 10);
}

#[test]
fn expiry_releases_local_port_and_counters() {
    let loads = Arc::new(LoadTable::new(4));
    let mut t = LcoreConns::new(cfg(16, 10), 0, 1, loads.clone());
    let snap = Snapshot::empty();
    let laddr = Addr::v4([198, 18, 1, 1]);
    t.ports().add_laddr(laddr);
    let owned = t.ports().available(laddr);
    let lport = t.ports().take(laddr, Addr::v4([198, 18, 1, 11]), 8080).unwrap();
    let inb = nat_conn(Proto::Tcp, 1, 1234).in_tuple;
    let mut c = Conn {
        in_tuple: inb,
        out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, Addr::v4([198, 18, 1, 11]), 8080, laddr, lport),
        fwd: Forward::Fnat,
        ..Default::default()
    };
    let mut d = rvs_core::service::Dest::new(DestId(2), Addr::v4([198, 18, 1, 11]), 8080);
    d.max_conn = 1;
    assert!(t.bind_dest(&mut c, &d));
    assert!(c.flags.has(ConnFlags::BOUND) && c.flags.has(ConnFlags::INACTIVE));
    assert_eq!(loads.get(DestId(2)).inactive, 1);
    // At the limit: refused, flagged overloaded.
    let mut c2 = nat_conn(Proto::Tcp, 2, 1);
    assert!(!t.bind_dest(&mut c2, &d));
    assert!(loads.get(DestId(2)).overloaded);
    let id = t.insert(c, Now::from_secs(0)).unwrap();
    t.on_packet(id, Dir::In, TcpFlags(TcpFlags::SYN), &Timeouts::DPVS, Now::from_secs(0));
    t.on_packet(
        id,
        Dir::Out,
        TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        &Timeouts::DPVS,
        Now::from_secs(0),
    );
    t.on_packet(id, Dir::In, TcpFlags(TcpFlags::ACK), &Timeouts::DPVS, Now::from_secs(0));
    assert_eq!(loads.get(DestId(2)).active, 1);
    assert_eq!(loads.get(DestId(2)).inactive, 0);
    assert_eq!(t.expire(Now::from_secs(89), usize::MAX, &snap), 0);
    assert_eq!(t.expire(Now::from_secs(92), usize::MAX, &snap), 1);
    assert_eq!(loads.get(DestId(2)).active, 0);
    assert_eq!(t.ports().available(laddr), owned);
    assert_eq!(t.ports().bad_releases, 0);
}
