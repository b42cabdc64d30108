//! Shared set-up of the newer xmit tests: a dual-stack L2, IPv6 addresses, connections of any
//! family, and a run that lets a test set metadata lookup would set (ICMP errors).

use super::*;
use rvs_core::meta::PacketMeta;
use std::net::Ipv6Addr;

pub(super) const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 5);
pub(super) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
pub(super) const L6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub(super) const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11);
/// Port 0's first IPv4 address: the outer source of IPv4 tunnels.
pub(super) const P0_V4: [u8; 4] = [198, 18, 0, 1];

pub(super) fn a6(a: Ipv6Addr) -> Addr {
    Addr::v6(a.octets())
}

/// The IPv4 tables of the parent module plus IPv6 on both ports, a v6 real server, a v6
/// default gateway, and an internal host (SNAT).
pub(super) fn l2_dual() -> L2 {
    let mut l2 = L2::new();
    l2.add_interface(
        "port0",
        "02:00:00:00:00:01",
        &[
            "198.18.0.1/24",
            "198.18.1.1/24",
            "2001:db8:1::1/64",
            "2001:db8::100/128",
        ],
    )
    .unwrap();
    l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24", "2001:db8:2::1/64"])
        .unwrap();
    l2.add_neighbor("198.18.1.11", "02:00:00:00:01:11").unwrap();
    l2.add_neighbor("198.18.1.50", "02:00:00:00:01:50").unwrap();
    l2.add_neighbor("2001:db8:1::11", "02:00:00:00:01:11").unwrap();
    l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe").unwrap();
    l2.add_neighbor("2001:db8:2::fe", "02:00:00:00:02:fe").unwrap();
    l2.set_default_gateway("198.18.2.254").unwrap();
    l2.set_default_gateway("2001:db8:2::fe").unwrap();
    l2
}

/// A connection client:CPORT -> vip:VPORT, real server rs:RPORT, local address l:LPORT.
pub(super) fn conn_any(fwd: Forward, proto: Proto, client: Addr, vip: Addr, rs: Addr, l: Addr, delta: u32) -> Conn {
    let inb = Tuple {
        proto,
        saddr: client,
        sport: CPORT,
        daddr: vip,
        dport: VPORT,
    };
    let out = Conn::out_tuple_for(fwd, &inb, rs, RPORT, l, LPORT);
    Conn {
        in_tuple: inb,
        out_tuple: out,
        fwd,
        fnat_seq_delta: delta,
        ..Conn::default()
    }
}

pub(super) fn from_client6() -> Pkt {
    Pkt::eth(GW_MAC, PORT1_MAC).ipv6(C6, VIP6)
}
pub(super) fn from_rs6(dst: Ipv6Addr) -> Pkt {
    Pkt::eth(RS_MAC, PORT0_MAC).ipv6(RS6, dst)
}
pub(super) fn to_rs6(src: Ipv6Addr) -> Pkt {
    Pkt::eth(PORT0_MAC, RS_MAC).ipv6(src, RS6).hop_limit(63)
}
pub(super) fn to_client6() -> Pkt {
    Pkt::eth(PORT1_MAC, GW_MAC).ipv6(VIP6, C6).hop_limit(63)
}

impl Harness {
    /// Run one frame with `meta` adjusted by `f` after parse; what was sent (port, bytes).
    pub(super) fn run_meta(
        &mut self,
        frame: &[u8],
        id: u32,
        dir: Dir,
        f: impl Fn(&mut PacketMeta),
    ) -> (Vec<Sent1>, StageReport) {
        let snap = Snapshot::empty();
        let cx = StageCx {
            now: Now::from_secs(1),
            lcore: 0,
            snapshot: &snap,
        };
        let mut input = PacketVec::with_capacity(4);
        let mut p = Packet::new(self.pool.alloc_with(frame).unwrap());
        assert!(matches!(
            rvs_parse::parse(frame, &mut p.meta, true),
            Ok(rvs_parse::Parsed::Ip { .. })
        ));
        p.meta.conn = id;
        p.meta.dir = dir;
        f(&mut p.meta);
        input.push(p).unwrap();
        let mut exits = Exits::new(2, 1, 64);
        self.node.run(&cx, &mut input, &mut exits, &mut self.pool);
        let mut sent = Vec::new();
        for (port, q) in exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                sent.push(Sent1 {
                    port: port as u16,
                    bytes: p.mbuf.data().to_vec(),
                });
            }
        }
        (sent, self.node.stats().report())
    }
}

/// Assert one packet was sent on `port` as exactly `want`, and that the independent decoder
/// finds no problem and every checksum right.
pub(super) fn check(sent: &[Sent1], port: u16, want: &[u8]) {
    assert_eq!(sent.len(), 1, "sent {} packets", sent.len());
    assert_eq!(sent[0].port, port);
    let d = decode_checked(&sent[0].bytes);
    assert!(d.is_ok(), "decoder: {d:?}");
    assert!(
        sent[0].bytes == want,
        "{}",
        rvs_testkit::hex::diff(want, &sent[0].bytes)
    );
}
