//! UOA in DPVS's private-protocol mode ("opp", protocol 248) over IPv4, IPv6 and NAT64, the
//! trail count and the skips; the IPv4-option mode ("ipo") is in `client_addr` and `family`.
//!
//! Expected packets are built from scratch: the UDP datagram by the kit's builder (which
//! computes its checksum), the opp header and UOA option by hand from DPVS's `include/uoa.h`
//! layout. Every output is also handed to the kit's decoder twice: as sent, and with the opp
//! header taken out the way the real server's `uoa` module does, after which the datagram
//! must be an ordinary UDP datagram whose checksum the decoder finds right.

use super::common::*;
use super::*;
use crate::toa::{IPPROTO_OPP, UoaConfig, UoaMode};

const ETH: usize = 14;

/// The opp header and UOA option DPVS's `insert_opp_uoa` writes for a client `addr`:`port`.
fn opp(port: u16, addr: &[u8]) -> Vec<u8> {
    let olen = 4 + addr.len();
    let ver: u8 = if addr.len() == 4 { 1 } else { 2 };
    let mut v = vec![ver << 4, 17];
    v.extend_from_slice(&((4 + olen) as u16).to_be_bytes());
    v.extend_from_slice(&[31, olen as u8]);
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(addr);
    v
}

/// The bytes after the IP header of a frame the kit built (the UDP datagram).
fn after_ip(frame: &[u8], ip_hdr: usize) -> Vec<u8> {
    frame[ETH + ip_hdr..].to_vec()
}

/// Take the opp header out of a sent frame as the real server's module does: the IP header's
/// protocol becomes opp's, the lengths shrink (IPv4: header checksum recomputed by the kit).
fn strip_opp(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let v6 = f[ETH] >> 4 == 6;
    let l4 = ETH + if v6 { 40 } else { usize::from(f[ETH] & 0xf) * 4 };
    assert_eq!(f[ETH + if v6 { 6 } else { 9 }], IPPROTO_OPP, "protocol 248");
    let olen = usize::from(u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]));
    let next = f[l4 + 1];
    f.drain(l4..l4 + olen);
    if v6 {
        f[ETH + 6] = next;
        let pl = u16::from_be_bytes([f[ETH + 4], f[ETH + 5]]) - olen as u16;
        f[ETH + 4..ETH + 6].copy_from_slice(&pl.to_be_bytes());
    } else {
        f[ETH + 9] = next;
        let tl = u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]) - olen as u16;
        f[ETH + 2..ETH + 4].copy_from_slice(&tl.to_be_bytes());
        f[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
        let hl = usize::from(f[ETH] & 0xf) * 4;
        let c = rvs_testkit::csum::checksum(&f[ETH..ETH + hl]);
        f[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    }
    f
}

fn sent_one(h: &mut Harness, frame: Vec<u8>, id: u32) -> Vec<u8> {
    let (sent, report) = h.run(&[(frame, id, Dir::In)]);
    assert_eq!(report.total_drops(), 0, "drops: {:?}", report.drops);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].port, 0);
    sent[0].bytes.clone()
}

/// Assert `got` is `want` byte for byte, decodes cleanly, and with opp taken out is the
/// plain datagram `plain` (decoded, UDP checksum checked by the decoder).
fn check_opp(got: &[u8], want: &[u8], plain: &[u8]) {
    let d = decode_checked(got);
    assert!(d.is_ok(), "decoder: {d:?}");
    assert!(got == want, "{}", rvs_testkit::hex::diff(want, got));
    let s = strip_opp(got);
    let d = decode_checked(&s).expect("the datagram behind opp decodes");
    assert!(
        d.is_clean(),
        "UDP checksum behind opp: {:?}",
        d.bad_checksums().collect::<Vec<_>>()
    );
    assert!(d.udp().is_some());
    assert_eq!(s, plain);
}

#[test]
fn uoa_opp_over_ipv4_in_the_first_three_datagrams() {
    let mut h = Harness::new(l2());
    assert_eq!(h.node.stage.uoa, UoaConfig::default(), "opp, 3: DPVS's defaults");
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    let q = from_client().udp(CPORT, VPORT).payload(b"query").build();
    let plain = to_rs(LADDR).udp(LPORT, RPORT).payload(b"query").build();
    let mut body = opp(CPORT, &CLIENT);
    body.extend_from_slice(&after_ip(&plain, 20));
    let want = to_rs(LADDR).ip_proto(IPPROTO_OPP).payload(&body).build();
    for _ in 0..3 {
        let got = sent_one(&mut h, q.clone(), id);
        check_opp(&got, &want, &plain);
    }
    // The fourth goes as it is.
    h.expect(q, id, Dir::In, 0, plain);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.uoa_skipped), (3, 0));
}

#[test]
fn uoa_opp_after_ipv4_options() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    // opp goes after the IP header's options, so even a full option space takes it.
    let big = [1u8; 40];
    let q = from_client().ip_options(&big).udp(CPORT, VPORT).payload(b"q").build();
    let plain = to_rs(LADDR).ip_options(&big).udp(LPORT, RPORT).payload(b"q").build();
    let mut body = opp(CPORT, &CLIENT);
    body.extend_from_slice(&after_ip(&plain, 60));
    let want = to_rs(LADDR)
        .ip_options(&big)
        .ip_proto(IPPROTO_OPP)
        .payload(&body)
        .build();
    let got = sent_one(&mut h, q, id);
    check_opp(&got, &want, &plain);
}

#[test]
fn uoa_opp_over_ipv6() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(
        Forward::Fnat,
        Proto::Udp,
        a6(C6),
        a6(VIP6),
        a6(RS6),
        a6(L6),
        0,
    ));
    let q = from_client6().udp(CPORT, VPORT).payload(b"query6").build();
    let plain = to_rs6(L6).udp(LPORT, RPORT).payload(b"query6").build();
    let mut body = opp(CPORT, &C6.octets());
    body.extend_from_slice(&after_ip(&plain, 40));
    let want = to_rs6(L6).ip_proto(IPPROTO_OPP).payload(&body).build();
    let got = sent_one(&mut h, q, id);
    check_opp(&got, &want, &plain);
    // Replies are untouched.
    let r = from_rs6(L6).udp(RPORT, LPORT).payload(b"answer").build();
    let want = to_client6().udp(VPORT, CPORT).payload(b"answer").build();
    h.expect(r, id, Dir::Out, 1, want);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.uoa_skipped), (1, 0));
}

#[test]
fn uoa_opp_across_nat64_carries_the_ipv6_client() {
    let mut h = Harness::new(l2_dual());
    let id = h.add(conn_any(
        Forward::Fnat,
        Proto::Udp,
        a6(C6),
        a6(VIP6),
        Addr::v4(RS),
        Addr::v4(LADDR),
        0,
    ));
    let q = from_client6().udp(CPORT, VPORT).payload(b"query").build();
    let plain = to_rs(LADDR).udp(LPORT, RPORT).payload(b"query").build();
    let mut body = opp(CPORT, &C6.octets());
    body.extend_from_slice(&after_ip(&plain, 20));
    let want = to_rs(LADDR).ip_proto(IPPROTO_OPP).payload(&body).build();
    let got = sent_one(&mut h, q, id);
    check_opp(&got, &want, &plain);
    assert_eq!(h.node.stage.counters().nat64, 1);
}

#[test]
fn uoa_skipped_for_the_mtu_or_an_extension_header_stays_due() {
    let mut l2 = l2_dual();
    assert!(l2.set_mtu(0, 1300));
    let mut h = Harness::new(l2);
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    // 20 + 8 + 1262 = 1290: 12 more would pass 1300. Sent without, counted, still due.
    let body = vec![0x33; 1262];
    let q = from_client().udp(CPORT, VPORT).payload(&body).build();
    let plain = to_rs(LADDR).udp(LPORT, RPORT).payload(&body).build();
    h.expect(q, id, Dir::In, 0, plain);
    assert_eq!(h.node.stage.counters().uoa_skipped, 1);
    // DPVS counts only datagrams that carried it: three small ones still get it.
    let q = from_client().udp(CPORT, VPORT).payload(b"s").build();
    let plain = to_rs(LADDR).udp(LPORT, RPORT).payload(b"s").build();
    let mut b = opp(CPORT, &CLIENT);
    b.extend_from_slice(&after_ip(&plain, 20));
    let want = to_rs(LADDR).ip_proto(IPPROTO_OPP).payload(&b).build();
    for _ in 0..3 {
        let got = sent_one(&mut h, q.clone(), id);
        check_opp(&got, &want, &plain);
    }
    h.expect(q, id, Dir::In, 0, plain);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.uoa_skipped), (3, 1));

    // IPv6 with an extension header: DPVS inserts opp only after a bare header.
    let id6 = h.add(conn_any(
        Forward::Fnat,
        Proto::Udp,
        a6(C6),
        a6(VIP6),
        a6(RS6),
        a6(L6),
        0,
    ));
    let dopt = [1u8, 4, 0, 0, 0, 0];
    let q = from_client6().dst_opts(&dopt).udp(CPORT, VPORT).payload(b"x").build();
    let want = to_rs6(L6).dst_opts(&dopt).udp(LPORT, RPORT).payload(b"x").build();
    h.expect(q, id6, Dir::In, 0, want);
    assert_eq!(h.node.stage.counters().uoa_skipped, 2);
}

#[test]
fn uoa_max_trail_one_and_zero() {
    let mut h = Harness::new(l2());
    h.node.stage.uoa = UoaConfig {
        mode: UoaMode::Opp,
        max_trail: 1,
    };
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    let q = from_client().udp(CPORT, VPORT).payload(b"q").build();
    let plain = to_rs(LADDR).udp(LPORT, RPORT).payload(b"q").build();
    let mut b = opp(CPORT, &CLIENT);
    b.extend_from_slice(&after_ip(&plain, 20));
    let want = to_rs(LADDR).ip_proto(IPPROTO_OPP).payload(&b).build();
    let got = sent_one(&mut h, q.clone(), id);
    check_opp(&got, &want, &plain);
    h.expect(q.clone(), id, Dir::In, 0, plain.clone());
    assert_eq!(h.node.stage.counters().uoa_sent, 1);
    // 0 turns UOA off: nothing due, nothing counted.
    let mut h = Harness::new(l2());
    h.node.stage.uoa.max_trail = 0;
    let id = h.add(conn(Forward::Fnat, Proto::Udp, 0));
    h.expect(q, id, Dir::In, 0, plain);
    let c = h.node.stage.counters();
    assert_eq!((c.uoa_sent, c.uoa_skipped), (0, 0));
}
