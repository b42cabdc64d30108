//! Xmit tests: for each mode and direction a packet from the test kit's builder, a
//! connection, one stage run, and the output compared byte for byte with a packet the
//! builder makes from scratch with the rewritten fields set by hand (so every checksum of the
//! expectation is computed by the kit's own code, not by the incremental updates under test);
//! each output is also run through the kit's independent decoder.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use rvs_conn::{ConnConfig, LcoreConns, Tuple};
use rvs_core::addr::Addr;
use rvs_core::addr::Proto;
use rvs_core::counters::StageReport;
use rvs_core::label::Label;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool, PacketPool};
use rvs_core::meta::NO_CONN;
use rvs_core::service::Snapshot;
use rvs_core::stage::{Exits, Node};
use rvs_core::time::Now;
use rvs_testkit::builder::{ACK, FIN, PSH, Pkt, SYN};
use rvs_testkit::decode::decode_checked;

const CLIENT: [u8; 4] = [198, 18, 5, 5];
const VIP: [u8; 4] = [198, 18, 0, 100];
const LADDR: [u8; 4] = [198, 18, 1, 1];
const RS: [u8; 4] = [198, 18, 1, 11];
const CPORT: u16 = 40000;
const VPORT: u16 = 80;
const LPORT: u16 = 1025;
const RPORT: u16 = 8080;

const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];

/// Port 0 faces the real servers (and holds the VIP and local address), port 1 the clients
/// through a default gateway.
fn l2() -> L2 {
    let mut l2 = L2::new();
    l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24", "198.18.1.1/24"])
        .unwrap();
    l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])
        .unwrap();
    l2.add_neighbor("198.18.1.11", "02:00:00:00:01:11").unwrap();
    l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe").unwrap();
    l2.set_default_gateway("198.18.2.254").unwrap();
    l2
}

fn in_tuple(proto: Proto) -> Tuple {
    Tuple {
        proto,
        saddr: Addr::v4(CLIENT),
        sport: CPORT,
        daddr: Addr::v4(VIP),
        dport: VPORT,
    }
}

/// A connection whose server SYN-ACK (sequence `SISN`) has been seen: its first-data
/// sequence is `SISN + 1`.
fn conn(fwd: Forward, proto: Proto, delta: u32) -> Conn {
    let inb = in_tuple(proto);
    let out = Conn::out_tuple_for(fwd, &inb, Addr::v4(RS), RPORT, Addr::v4(LADDR), LPORT);
    Conn {
        in_tuple: inb,
        out_tuple: out,
        fwd,
        fnat_seq_delta: delta,
        fdata_seq: SISN.wrapping_add(1),
        flags: rvs_conn::ConnFlags(rvs_conn::ConnFlags::FDATA_SEQ),
        ..Conn::default()
    }
}

struct Harness {
    conns: SharedConns,
    node: Node<HeapMbuf, Xmit>,
    pool: HeapPool,
}

struct Sent1 {
    port: u16,
    bytes: Vec<u8>,
}

impl Harness {
    fn new(l2: L2) -> Self {
        let cfg = ConnConfig {
            capacity: 64,
            buckets_log2: 6,
            ..ConnConfig::default()
        };
        let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(cfg, 0, 1, Arc::new(LoadTable::new(16)))));
        let node = Node::new(Xmit::new(conns.clone(), Arc::new(l2)), 64);
        Harness {
            conns,
            node,
            pool: HeapPool::new(64),
        }
    }
    fn add(&self, c: Conn) -> u32 {
        self.conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap()
    }
    /// Parse each frame for real (rvs-parse), attach `conn`/`dir`, run one vector.
    fn run(&mut self, frames: &[(Vec<u8>, u32, Dir)]) -> (Vec<Sent1>, StageReport) {
        let snap = Snapshot::empty();
        let cx = StageCx {
            now: Now::from_secs(1),
            lcore: 0,
            snapshot: &snap,
        };
        let mut input = PacketVec::with_capacity(64);
        for (f, id, dir) in frames {
            let mut p = Packet::new(self.pool.alloc_with(f).unwrap());
            assert!(matches!(
                rvs_parse::parse(f, &mut p.meta, true),
                Ok(rvs_parse::Parsed::Ip { .. })
            ));
            p.meta.conn = *id;
            p.meta.dir = *dir;
            input.push(p).unwrap();
        }
        let mut exits = Exits::new(2, 1, 64);
        self.node.run(&cx, &mut input, &mut exits, &mut self.pool);
        let mut sent = Vec::new();
        for (port, q) in exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                assert_eq!(p.mbuf.port() as usize, port);
                sent.push(Sent1 {
                    port: port as u16,
                    bytes: p.mbuf.data().to_vec(),
                });
            }
        }
        (sent, self.node.stats().report())
    }
    /// One frame that must be sent on `port` as exactly `want`.
    fn expect(&mut self, frame: Vec<u8>, id: u32, dir: Dir, port: u16, want: Vec<u8>) {
        let (sent, report) = self.run(&[(frame, id, dir)]);
        assert_eq!(report.total_drops(), 0, "drops: {:?}", report.drops);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].port, port);
        let d = decode_checked(&sent[0].bytes);
        assert!(d.is_ok(), "decoder: {d:?}");
        assert!(
            sent[0].bytes == want,
            "{}",
            rvs_testkit::hex::diff(&want, &sent[0].bytes)
        );
    }
    fn expect_drop(&mut self, frame: Vec<u8>, id: u32, dir: Dir, reason: XmitDrop) {
        let before = self.node.stats().report().dropped(reason.name());
        let (sent, report) = self.run(&[(frame, id, dir)]);
        assert!(sent.is_empty());
        assert_eq!(report.dropped(reason.name()), before + 1, "drops: {:?}", report.drops);
    }
}

fn from_client() -> Pkt {
    Pkt::eth(GW_MAC, PORT1_MAC).ipv4(CLIENT, VIP)
}
fn from_rs(dst: [u8; 4]) -> Pkt {
    Pkt::eth(RS_MAC, PORT0_MAC).ipv4(RS, dst)
}
fn to_rs(src: [u8; 4]) -> Pkt {
    Pkt::eth(PORT0_MAC, RS_MAC).ipv4(src, RS).ttl(63)
}
fn to_client() -> Pkt {
    Pkt::eth(PORT1_MAC, GW_MAC).ipv4(VIP, CLIENT).ttl(63)
}

// A delta that makes sequence numbers wrap around 2^32.
const DELTA: u32 = 0xf000_0123;
const CISN: u32 = 0x2000_0000;
const SISN: u32 = 0x7777_0000;

#[test]
fn fnat_inbound_syn_nops_the_timestamp_and_shifts_seq() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let syn = from_client()
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .window(64240)
        .mss(1460)
        .sack_perm()
        .timestamps(0xabcd_0001, 0)
        .nop()
        .wscale(7)
        .build();
    let want = to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(SYN)
        .seq(CISN.wrapping_add(DELTA))
        .window(64240)
        .mss(1460)
        .sack_perm()
        .tcp_opt_raw(&[1; 10])
        .nop()
        .wscale(7)
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().ts_nopped, 1);
    assert_eq!(h.node.stage.counters().fnat_in, 1);
}

#[test]
fn fnat_inbound_data_keeps_options_and_shifts_seq() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let data = from_client()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .nop()
        .nop()
        .timestamps(5, 6)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
        .build();
    let want = to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(ACK | PSH)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .nop()
        .nop()
        .timestamps(5, 6)
        .toa(CPORT, CLIENT)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
        .build();
    // The first packet acknowledging the SYN-ACK carries TOA after the existing options.
    h.expect(data.clone(), id, Dir::In, 0, want.clone());
    assert_eq!(h.node.stage.counters().ts_nopped, 0);
    assert_eq!(h.node.stage.counters().toa_inserted, 1);
    assert!(
        h.conns
            .borrow()
            .conn(id)
            .unwrap()
            .flags
            .has(rvs_conn::ConnFlags::TOA_DONE)
    );
    // Its retransmission acknowledges the same first-data sequence: TOA again (DPVS).
    h.expect(data.clone(), id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().toa_inserted, 2);
    // Once the server has sent data, the client's acknowledgements move on: no TOA.
    let data = from_client()
        .tcp(CPORT, VPORT)
        .flags(ACK | PSH)
        .seq(CISN + 19)
        .ack(SISN + 101)
        .nop()
        .nop()
        .timestamps(5, 6)
        .payload(b"more")
        .build();
    let want = to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(ACK | PSH)
        .seq((CISN + 19).wrapping_add(DELTA))
        .ack(SISN + 101)
        .nop()
        .nop()
        .timestamps(5, 6)
        .payload(b"more")
        .build();
    h.expect(data, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().toa_inserted, 2);
}

#[test]
fn fnat_outbound_synack_shifts_ack_back_and_records_the_server_side() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let synack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .mss(1460)
        .build();
    // The MSS is lowered by the IPv4 TOA length (8).
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .mss(1452)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    let conns = h.conns.borrow();
    let c = conns.conn(id).unwrap();
    assert_eq!(c.rs_last_seq, SISN + 1);
    assert_eq!(c.rs_last_ack, CISN.wrapping_add(DELTA).wrapping_add(1));
}

#[test]
fn fnat_outbound_sack_blocks_shift_back() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let c = |x: u32| CISN.wrapping_add(x);
    let s = |x: u32| c(x).wrapping_add(DELTA);
    let ack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(s(1))
        .nop()
        .nop()
        .sack(&[(s(1001), s(2001)), (s(3001), s(4001))])
        .payload(b"0123456789")
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(c(1))
        .nop()
        .nop()
        .sack(&[(c(1001), c(2001)), (c(3001), c(4001))])
        .payload(b"0123456789")
        .build();
    h.expect(ack, id, Dir::Out, 1, want);
    assert_eq!(h.node.stage.counters().sack_blocks, 2);
    assert_eq!(h.conns.borrow().conn(id).unwrap().rs_last_seq, SISN + 11);
    // A FIN counts one in the recorded server sequence end.
    let fin = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(FIN | ACK)
        .seq(SISN + 11)
        .ack(s(1))
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(FIN | ACK)
        .seq(SISN + 11)
        .ack(c(1))
        .build();
    h.expect(fin, id, Dir::Out, 1, want);
    assert_eq!(h.conns.borrow().conn(id).unwrap().rs_last_seq, SISN + 12);
}

#[test]
fn fnat_udp_both_ways() {
    let mut h = Harness::new(l2());
    h.node.stage.uoa = crate::toa::UoaConfig {
        mode: crate::toa::UoaMode::Ipo,
        max_trail: 3,
    };
    let id = h.add(conn(Forward::Fnat, Proto::Udp, DELTA));
    // The first three datagrams carry UOA (IPv4 option 31: port, client address).
    let [c0, c1, c2, c3] = CLIENT;
    let [p0, p1] = CPORT.to_be_bytes();
    let uoa = [31, 8, p0, p1, c0, c1, c2, c3];
    let q = from_client().udp(CPORT, VPORT).payload(b"query").build();
    let want = to_rs(LADDR)
        .ip_options(&uoa)
        .udp(LPORT, RPORT)
        .payload(b"query")
        .build();
    h.expect(q.clone(), id, Dir::In, 0, want.clone());
    let r = from_rs(LADDR).udp(RPORT, LPORT).payload(b"answer!").build();
    let want_r = to_client().udp(VPORT, CPORT).payload(b"answer!").build();
    h.expect(r, id, Dir::Out, 1, want_r);
    h.expect(q.clone(), id, Dir::In, 0, want);
    // No checksum (0) stays none.
    let q0 = from_client().udp(CPORT, VPORT).payload(b"query").l4_checksum(0).build();
    let want = to_rs(LADDR)
        .ip_options(&uoa)
        .udp(LPORT, RPORT)
        .payload(b"query")
        .l4_checksum(0)
        .build();
    h.expect(q0, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().uoa_sent, 3);
    // The fourth goes without.
    let want = to_rs(LADDR).udp(LPORT, RPORT).payload(b"query").build();
    h.expect(q, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().uoa_sent, 3);
}

#[test]
fn nat_rewrites_destination_in_and_source_out() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Nat, Proto::Tcp, DELTA));
    // NAT never shifts sequence numbers nor touches options, whatever the delta field holds.
    let syn = from_client()
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    let want = to_rs(CLIENT)
        .tcp(CPORT, RPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    let synack = from_rs(CLIENT)
        .tcp(RPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    let c = h.node.stage.counters();
    assert_eq!((c.nat_in, c.nat_out, c.ts_nopped), (1, 1, 0));
    // UDP too.
    let uid = h.add(conn(Forward::Nat, Proto::Udp, 0));
    let q = from_client().udp(CPORT, VPORT).payload(b"x").build();
    let want = to_rs(CLIENT).udp(CPORT, RPORT).payload(b"x").build();
    h.expect(q, uid, Dir::In, 0, want);
}

#[test]
fn dr_rewrites_only_the_macs() {
    let mut h = Harness::new(l2());
    let mut c = conn(Forward::Dr, Proto::Tcp, 0);
    c.out_tuple.sport = VPORT; // DR: the real server's port is the service port
    let id = h.add(c);
    let syn = from_client()
        .ttl(9)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    let want = Pkt::eth(PORT0_MAC, RS_MAC)
        .ipv4(CLIENT, VIP)
        .ttl(9)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .timestamps(1, 0)
        .build();
    h.expect(syn.clone(), id, Dir::In, 0, want.clone());
    assert_eq!(&syn[12..], &want[12..]);
    assert_eq!(h.node.stage.counters().dr, 1);
}

#[test]
fn drops_with_reasons() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let pkt = || from_client().tcp(CPORT, VPORT).flags(ACK).seq(CISN);
    h.expect_drop(pkt().ttl(1).build(), id, Dir::In, XmitDrop::TtlExceeded);
    h.expect_drop(pkt().ttl(0).build(), id, Dir::In, XmitDrop::TtlExceeded);
    h.expect_drop(pkt().build(), NO_CONN, Dir::In, XmitDrop::NoConn);
    h.expect_drop(pkt().build(), id + 1, Dir::In, XmitDrop::NoConn);
    // An ICMP packet attached to a TCP connection (lookup never does this: echo has its own
    // connections) is refused, not rewritten.
    let icmp = from_client().icmp_echo_request(1, 1).build();
    h.expect_drop(icmp, id, Dir::In, XmitDrop::NotSupported);

    // A real server without a neighbour entry, and a client without a route.
    let mut l2 = L2::new();
    l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.1.1/24"])
        .unwrap();
    let mut h = Harness::new(l2);
    let id = h.add(conn(Forward::Nat, Proto::Tcp, 0));
    h.expect_drop(pkt().build(), id, Dir::In, XmitDrop::NoNeighbor);
    let back = from_rs(CLIENT).tcp(RPORT, CPORT).flags(ACK).build();
    h.expect_drop(back, id, Dir::Out, XmitDrop::NoRoute);
    assert_eq!(XmitDrop::NoNeighbor.cause(), Cause::NoRoute);
    assert_eq!(XmitDrop::TtlExceeded.cause(), Cause::Other);
    // Every dropped buffer went back to the pool.
    assert_eq!(h.pool.available(), 64);
}

#[test]
fn a_vector_of_several_connections_and_modes() {
    let mut h = Harness::new(l2());
    let mut fc = conn(Forward::Fnat, Proto::Tcp, DELTA);
    fc.flags.set(rvs_conn::ConnFlags::TOA_DONE);
    let f = h.add(fc);
    let n = h.add(Conn {
        in_tuple: Tuple {
            sport: 2,
            ..in_tuple(Proto::Tcp)
        },
        ..conn(Forward::Nat, Proto::Tcp, 0)
    });
    let mut frames = Vec::new();
    for i in 0..8u32 {
        frames.push((
            from_client().tcp(CPORT, VPORT).flags(ACK).seq(CISN + i).build(),
            f,
            Dir::In,
        ));
        frames.push((
            from_rs(CLIENT).tcp(RPORT, 2).flags(ACK).seq(SISN + i).build(),
            n,
            Dir::Out,
        ));
    }
    let (sent, report) = h.run(&frames);
    assert_eq!(report.tx, 16);
    assert_eq!(sent.len(), 16);
    // Per port, in arrival order.
    let p0: Vec<_> = sent.iter().filter(|s| s.port == 0).collect();
    let p1: Vec<_> = sent.iter().filter(|s| s.port == 1).collect();
    for (i, s) in p0.iter().enumerate() {
        let want = to_rs(LADDR)
            .tcp(LPORT, RPORT)
            .flags(ACK)
            .seq((CISN + i as u32).wrapping_add(DELTA))
            .build();
        assert_eq!(s.bytes, want);
    }
    for (i, s) in p1.iter().enumerate() {
        let want = to_client().tcp(VPORT, 2).flags(ACK).seq(SISN + i as u32).build();
        assert_eq!(s.bytes, want);
    }
}

mod client_addr;
mod common;
mod family;
mod hop_cache;
mod icmp_err;
mod tunnel;
mod uoa;
