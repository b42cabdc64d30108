//! Local ports shared among real servers (DPVS's `sa_pool_hash`) through the connection table:
//! more FNAT connections on one local address than it has ports, every outbound tuple
//! distinct, every port given back to its own pool on expiry, and reply steering by port
//! unchanged.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, LcoreConns, SaPool, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::meta::Dir;
use rvs_core::service::{Forward, Snapshot};
use rvs_core::time::Now;

#[test]
fn more_than_64k_fnat_connections_on_one_local_address() {
    let cfg = ConnConfig {
        capacity: 1 << 17,
        buckets_log2: 17,
        seed: 7,
        timer_tick_ms: 10,
    };
    // Lcore 1 of 2: it owns the odd ports.
    let mut t = LcoreConns::new(cfg, 1, 2, Arc::new(LoadTable::new(4)));
    let laddr = Addr::v4([198, 18, 1, 1]);
    t.ports().add_laddr(laddr);
    let per_pool = t.ports().owned_per_pool(laddr);
    // Three real servers in three different pools: 3 x 32255 ports.
    let mut servers: Vec<(Addr, u16)> = Vec::new();
    for k in 0..=255u8 {
        let a = Addr::v4([198, 18, 1, k]);
        if servers
            .iter()
            .all(|&(b, p)| t.ports().pool_of(b, p) != t.ports().pool_of(a, 8080))
        {
            servers.push((a, 8080));
        }
        if servers.len() == 3 {
            break;
        }
    }
    let mut outs = HashSet::new();
    let mut n = 0u32;
    for &(rs, rport) in &servers {
        while let Some(lport) = t.ports().take(laddr, rs, rport) {
            assert_eq!(
                SaPool::owner_lcore(lport, 2),
                1,
                "a reply to this port comes to this lcore"
            );
            let inb = Tuple {
                proto: Proto::Tcp,
                saddr: Addr::from_v4_u32(0xc612_4000 + n / 60000),
                sport: 1024 + (n % 60000) as u16,
                daddr: Addr::v4([198, 18, 0, 100]),
                dport: 80,
            };
            n += 1;
            let c = Conn {
                in_tuple: inb,
                out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, rs, rport, laddr, lport),
                fwd: Forward::Fnat,
                ..Default::default()
            };
            assert!(outs.insert(c.out_tuple), "outbound tuple reused");
            let id = t.insert(c, Now::from_secs(1)).expect("no clash, room in the table");
            // The reply finds its own connection.
            let reply = Tuple {
                proto: Proto::Tcp,
                saddr: rs,
                sport: rport,
                daddr: laddr,
                dport: lport,
            };
            assert_eq!(t.lookup(&reply), Some((id, Dir::Out)));
        }
    }
    assert_eq!(outs.len(), 3 * per_pool);
    assert!(outs.len() > 65536, "{} connections on one local address", outs.len());
    // Expiry gives every port back to its pool.
    let expired = t.expire(Now::from_secs(100_000), usize::MAX, &Snapshot::empty());
    assert_eq!(expired, outs.len());
    assert_eq!(t.ports().bad_releases, 0);
    assert_eq!(t.ports().available(laddr), t.ports().owned(laddr));
}
