//! TOA, UOA and the SYN-ACK MSS clamp (FNAT), IPv4 clients; IPv6 and NAT64 clients are in
//! `family`.

use super::*;
use rvs_conn::ConnFlags;
use rvs_testkit::builder::RST;

fn ack_in() -> Pkt {
    from_client().tcp(CPORT, VPORT).flags(ACK).seq(CISN + 1).ack(SISN + 1)
}
fn ack_to_rs() -> Pkt {
    to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(ACK)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
}

#[test]
fn toa_goes_into_the_first_ack_never_the_syn_nor_an_rst() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // The SYN: no TOA.
    let syn = from_client().tcp(CPORT, VPORT).flags(SYN).seq(CISN).mss(1460).build();
    let want = to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(SYN)
        .seq(CISN.wrapping_add(DELTA))
        .mss(1460)
        .build();
    h.expect(syn, id, Dir::In, 0, want);
    // An RST|ACK: no TOA, and the connection still waits for it.
    let rst = from_client()
        .tcp(CPORT, VPORT)
        .flags(RST | ACK)
        .seq(CISN + 1)
        .ack(SISN + 1)
        .build();
    let want = to_rs(LADDR)
        .tcp(LPORT, RPORT)
        .flags(RST | ACK)
        .seq((CISN + 1).wrapping_add(DELTA))
        .ack(SISN + 1)
        .build();
    h.expect(rst, id, Dir::In, 0, want);
    assert!(!h.conns.borrow().conn(id).unwrap().flags.has(ConnFlags::TOA_DONE));
    // The pure ACK of the handshake: TOA, 8 bytes, after no other option.
    h.expect(ack_in().build(), id, Dir::In, 0, ack_to_rs().toa(CPORT, CLIENT).build());
    let c = h.node.stage.counters();
    assert_eq!((c.toa_inserted, c.toa_pruned, c.toa_skipped), (1, 0, 0));
    // The first data packet acknowledges the same first-data sequence: TOA too (DPVS adds it
    // to every packet whose ack is `fdata_seq`).
    h.expect(
        ack_in().flags(ACK | PSH).payload(b"x").build(),
        id,
        Dir::In,
        0,
        ack_to_rs().flags(ACK | PSH).toa(CPORT, CLIENT).payload(b"x").build(),
    );
    assert_eq!(h.node.stage.counters().toa_inserted, 2);
    // Data acknowledging the server's data: none.
    h.expect(
        ack_in().flags(ACK | PSH).ack(SISN + 11).payload(b"y").build(),
        id,
        Dir::In,
        0,
        ack_to_rs().flags(ACK | PSH).ack(SISN + 11).payload(b"y").build(),
    );
    assert_eq!(h.node.stage.counters().toa_inserted, 2);
}

#[test]
fn first_data_sequence_comes_from_the_servers_synack() {
    let mut h = Harness::new(l2());
    let fresh = Conn {
        fdata_seq: 0,
        flags: ConnFlags::default(),
        ..conn(Forward::Fnat, Proto::Tcp, DELTA)
    };
    let id = h.add(fresh);
    // Before the server's SYN-ACK the first-data sequence is unknown: no TOA (DPVS's
    // `fdata_seq` is set by `tcp_out_init_seq`).
    h.expect(ack_in().build(), id, Dir::In, 0, ack_to_rs().build());
    assert_eq!(h.node.stage.counters().toa_inserted, 0);
    let s2 = SISN.wrapping_add(0x100);
    let synack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(s2)
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(s2)
        .ack(CISN + 1)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    let c = h.conns.borrow().conn(id).unwrap().clone();
    assert!(c.flags.has(ConnFlags::FDATA_SEQ));
    assert_eq!(c.fdata_seq, s2.wrapping_add(1));
    // The ACK of that SYN-ACK carries TOA; one acknowledging anything else does not.
    h.expect(
        ack_in().ack(s2 + 1).build(),
        id,
        Dir::In,
        0,
        ack_to_rs().ack(s2 + 1).toa(CPORT, CLIENT).build(),
    );
    h.expect(
        ack_in().ack(s2 + 2).build(),
        id,
        Dir::In,
        0,
        ack_to_rs().ack(s2 + 2).build(),
    );
    assert_eq!(h.node.stage.counters().toa_inserted, 1);
}

#[test]
fn a_proxied_connection_takes_the_first_data_sequence_from_its_first_ack() {
    let mut h = Harness::new(l2());
    // Synproxy consumed the server's SYN-ACK: xmit sees the released ACK first, its ack
    // already moved into the server's space.
    let proxied = Conn {
        fdata_seq: 0,
        flags: ConnFlags(ConnFlags::SYNPROXY),
        syn_proxy_delta: 0x55,
        ..conn(Forward::Fnat, Proto::Tcp, DELTA)
    };
    let id = h.add(proxied);
    h.expect(ack_in().build(), id, Dir::In, 0, ack_to_rs().toa(CPORT, CLIENT).build());
    assert_eq!(h.conns.borrow().conn(id).unwrap().fdata_seq, SISN + 1);
    // A retransmitted SYN-ACK, moved into the client's space by synproxy (+ delta), names the
    // same first-data sequence.
    let synack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(SISN.wrapping_add(0x55))
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN.wrapping_add(0x55))
        .ack(CISN + 1)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    assert_eq!(h.conns.borrow().conn(id).unwrap().fdata_seq, SISN + 1);
    h.expect(ack_in().build(), id, Dir::In, 0, ack_to_rs().toa(CPORT, CLIENT).build());
    assert_eq!(h.node.stage.counters().toa_inserted, 2);
}

#[test]
fn toa_skipped_for_the_mtu_is_retried_on_the_next_first_data_packet() {
    let mut l2 = l2();
    assert!(l2.set_mtu(0, 1300));
    let mut h = Harness::new(l2);
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // 1296 bytes: no room for 8 more under 1300: skipped.
    let body = vec![0x5a; 1256];
    h.expect(
        ack_in().flags(ACK | PSH).payload(&body).build(),
        id,
        Dir::In,
        0,
        ack_to_rs().flags(ACK | PSH).payload(&body).build(),
    );
    // The client sends it again smaller (or sends the next segment): TOA fits now.
    let body = vec![0x5a; 1000];
    h.expect(
        ack_in().flags(ACK | PSH).payload(&body).build(),
        id,
        Dir::In,
        0,
        ack_to_rs().flags(ACK | PSH).toa(CPORT, CLIENT).payload(&body).build(),
    );
    let c = h.node.stage.counters();
    assert_eq!((c.toa_inserted, c.toa_skipped), (1, 1));
}

#[test]
fn toa_after_an_end_of_list_runs_the_list_on_with_nops() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // Timestamps padded with end-of-list to the 4-byte boundary: the EOL becomes NOPs so
    // that the receiver reads the TOA behind it.
    let ack = ack_in().timestamps(7, 8).build();
    let want = ack_to_rs().timestamps(7, 8).nop().nop().toa(CPORT, CLIENT).build();
    h.expect(ack, id, Dir::In, 0, want);
}

#[test]
fn full_option_space_prunes_timestamps_and_sack() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // 40 bytes: NOP NOP TS (12) + NOP NOP SACK x3 (28).
    let sack = [(1, 2), (3, 4), (5, 6)];
    let ack = ack_in()
        .nop()
        .nop()
        .timestamps(7, 8)
        .nop()
        .nop()
        .sack(&sack)
        .payload(b"data")
        .build();
    let want = ack_to_rs()
        .nop()
        .nop()
        .nop()
        .nop()
        .toa(CPORT, CLIENT)
        .payload(b"data")
        .build();
    h.expect(ack, id, Dir::In, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.toa_inserted, c.toa_pruned, c.toa_skipped), (1, 1, 0));
}

#[test]
fn unprunable_options_skip_toa_and_count_it() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // 36 bytes of an unknown option: nothing to prune, 4 bytes free.
    let mut opt = vec![99u8, 36];
    opt.extend_from_slice(&[0xab; 34]);
    let ack = ack_in().tcp_opt_raw(&opt).build();
    let want = ack_to_rs().tcp_opt_raw(&opt).build();
    h.expect(ack, id, Dir::In, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.toa_inserted, c.toa_skipped), (0, 1));
    assert!(h.conns.borrow().conn(id).unwrap().flags.has(ConnFlags::TOA_DONE));
    // Not given up: the next packet with the first-data ack and room for it gets TOA.
    h.expect(ack_in().build(), id, Dir::In, 0, ack_to_rs().toa(CPORT, CLIENT).build());
    let c = h.node.stage.counters();
    assert_eq!((c.toa_inserted, c.toa_skipped), (1, 1));
}

#[test]
fn toa_that_would_outgrow_the_mtu_is_skipped() {
    let mut l2 = l2();
    assert!(l2.set_mtu(0, 1300));
    assert!(!l2.set_mtu(0, 1000));
    assert!(!l2.set_mtu(7, 1500));
    let mut h = Harness::new(l2);
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // 20 + 20 + 1256 = 1296 bytes: 8 more would pass 1300.
    let body = vec![0x5a; 1256];
    let ack = ack_in().payload(&body).build();
    let want = ack_to_rs().payload(&body).build();
    h.expect(ack, id, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().toa_skipped, 1);
}

#[test]
fn synack_mss_lowered_by_the_toa_length() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    let synack = from_rs(LADDR)
        .tcp(RPORT, LPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(DELTA).wrapping_add(1))
        .mss(1400)
        .sack_perm()
        .nop()
        .wscale(7)
        .build();
    let want = to_client()
        .tcp(VPORT, CPORT)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN + 1)
        .mss(1392)
        .sack_perm()
        .nop()
        .wscale(7)
        .build();
    h.expect(synack, id, Dir::Out, 1, want);
    assert_eq!(h.node.stage.counters().mss_clamped, 1);
    // NAT leaves it alone.
    let nid = h.add(Conn {
        in_tuple: Tuple {
            sport: 3,
            ..in_tuple(Proto::Tcp)
        },
        ..conn(Forward::Nat, Proto::Tcp, 0)
    });
    let synack = from_rs(CLIENT).tcp(RPORT, 3).flags(SYN | ACK).mss(1400).build();
    let want = to_client().tcp(VPORT, 3).flags(SYN | ACK).mss(1400).build();
    h.expect(synack, nid, Dir::Out, 1, want);
    assert_eq!(h.node.stage.counters().mss_clamped, 1);
}

#[test]
fn uoa_after_existing_ip_options_and_skipped_when_they_are_full() {
    let mut h = Harness::new(l2());
    h.node.stage.uoa = crate::toa::UoaConfig {
        mode: crate::toa::UoaMode::Ipo,
        max_trail: 3,
    };
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    let [c0, c1, c2, c3] = CLIENT;
    let [p0, p1] = CPORT.to_be_bytes();
    // A record-route-sized option of 8 bytes stays in front of UOA.
    let rr = [7, 7, 4, 0, 0, 0, 0, 1];
    let q = from_client().ip_options(&rr).udp(CPORT, VPORT).payload(b"q").build();
    let mut opts = rr.to_vec();
    opts.extend_from_slice(&[31, 8, p0, p1, c0, c1, c2, c3]);
    let want = to_rs(LADDR).ip_options(&opts).udp(LPORT, RPORT).payload(b"q").build();
    h.expect(q, id, Dir::In, 0, want);
    // 36 bytes of options already: no room for 8 more.
    let big = [1u8; 36];
    let q = from_client().ip_options(&big).udp(CPORT, VPORT).payload(b"q").build();
    let want = to_rs(LADDR).ip_options(&big).udp(LPORT, RPORT).payload(b"q").build();
    h.expect(q, id, Dir::In, 0, want);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.uoa_skipped), (1, 1));
    // UOA never goes back to the client.
    let r = from_rs(LADDR).udp(RPORT, LPORT).payload(b"r").build();
    let want = to_client().udp(VPORT, CPORT).payload(b"r").build();
    h.expect(r, id, Dir::Out, 1, want);
}
