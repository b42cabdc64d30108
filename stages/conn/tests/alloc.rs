//! No allocation in lookup, insert, on_packet, expire and remove once the table exists
//! (counted by rvs-testkit's counting allocator, per thread).

use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, LcoreConns, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::service::{Forward, Snapshot, Timeouts};
use rvs_core::time::Now;

rvs_testkit::install_counting_allocator!();

fn conn(i: u32) -> Conn {
    let inb = Tuple {
        proto: Proto::Tcp,
        saddr: Addr::from_v4_u32(0xc612_0000 + i),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: 1000 + (i % 50000) as u16,
        dport: 80,
    };
    let laddr = Addr::v4([198, 18, 1, 1]);
    Conn {
        in_tuple: inb,
        out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, Addr::v4([198, 18, 1, 11]), 8080, laddr, 0),
        fwd: Forward::Fnat,
        ..Default::default()
    }
}

#[test]
fn table_operations_allocate_nothing() {
    let loads = Arc::new(LoadTable::new(4));
    let mut t = LcoreConns::new(
        ConnConfig {
            capacity: 4096,
            buckets_log2: 10,
            seed: 5,
            timer_tick_ms: 10,
        },
        0,
        1,
        loads,
    );
    let laddr = Addr::v4([198, 18, 1, 1]);
    t.ports().add_laddr(laddr);
    let snap = Snapshot::empty();
    let (ids, n) = rvs_testkit::alloc::allocations_during(|| {
        let mut ids = [0u32; 4000];
        for (i, slot) in ids.iter_mut().enumerate() {
            let mut c = conn(i as u32);
            let lport = t.ports().take(laddr, Addr::v4([198, 18, 1, 11]), 8080).expect("port");
            c.out_tuple.dport = lport;
            *slot = t.insert(c, Now::from_secs(1)).expect("insert");
        }
        for (i, id) in ids.iter().enumerate() {
            let c = t.conn(*id).expect("live").clone();
            assert_eq!(t.lookup(&c.in_tuple), Some((*id, Dir::In)));
            assert_eq!(t.lookup(&c.out_tuple), Some((*id, Dir::Out)));
            t.on_packet(
                *id,
                Dir::In,
                TcpFlags(TcpFlags::SYN),
                &Timeouts::DPVS,
                Now::from_secs(1),
            );
            if i % 2 == 0 {
                t.on_packet(
                    *id,
                    Dir::Out,
                    TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
                    &Timeouts::DPVS,
                    Now::from_secs(1),
                );
                t.on_packet(
                    *id,
                    Dir::In,
                    TcpFlags(TcpFlags::RST),
                    &Timeouts::DPVS,
                    Now::from_secs(1),
                );
            }
        }
        for id in ids.iter().take(100) {
            t.remove(*id, &snap);
        }
        let mut gone = 0;
        for s in 1..200u64 {
            gone += t.expire(Now::from_millis(1000 + s * 250), 64, &snap);
        }
        (ids, gone)
    });
    assert_eq!(n, 0, "allocations on the table's paths");
    let (_, gone) = ids;
    assert_eq!(gone + 100, 4000, "everything expired or was removed");
    assert!(t.is_empty());
    assert_eq!(t.ports().available(laddr), t.ports().owned(laddr));
}
