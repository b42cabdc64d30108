//! The next-hop cache of the stage ([`HopCache`]) across configuration reloads: every packet
//! after [`Xmit::set_l2`] goes where the new tables say (a neighbour that moved, a route
//! through another port, a neighbour removed), never where the cache remembered; each
//! output compared byte for byte with a packet the test kit builds from scratch.

use super::*;

const RS_MAC2: [u8; 6] = [2, 0, 0, 0, 1, 0x22];
const GW2_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x99];

fn data(seq: u32) -> Vec<u8> {
    from_client()
        .tcp(CPORT, VPORT)
        .flags(ACK)
        .seq(seq)
        .ack(SISN + 500)
        .payload(b"abc")
        .build()
}

fn sent(eth: Pkt, seq: u32) -> Vec<u8> {
    eth.ipv4(LADDR, RS)
        .ttl(63)
        .tcp(LPORT, RPORT)
        .flags(ACK)
        .seq(seq.wrapping_add(DELTA))
        .ack(SISN + 500)
        .payload(b"abc")
        .build()
}

#[test]
fn a_reload_is_followed_by_the_next_packet() {
    let mut h = Harness::new(l2());
    let id = h.add(conn(Forward::Fnat, Proto::Tcp, DELTA));
    // Twice under the first tables: the second answer comes from the cache.
    for seq in [CISN + 1, CISN + 4] {
        h.expect(data(seq), id, Dir::In, 0, sent(Pkt::eth(PORT0_MAC, RS_MAC), seq));
    }

    // The real server's MAC changed in the configuration.
    let mut t = l2();
    t.add_neighbor("198.18.1.11", "02:00:00:00:01:22").unwrap();
    h.node.stage.set_l2(Arc::new(t));
    h.expect(
        data(CISN + 7),
        id,
        Dir::In,
        0,
        sent(Pkt::eth(PORT0_MAC, RS_MAC2), CISN + 7),
    );

    // The real servers' network moved behind a gateway on port 1.
    let mut t = L2::new();
    t.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24"])
        .unwrap();
    t.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24", "198.18.1.1/32"])
        .unwrap();
    t.add_neighbor("198.18.2.9", "02:00:00:00:02:99").unwrap();
    t.add_route("198.18.1.0/24", "198.18.2.9").unwrap();
    h.node.stage.set_l2(Arc::new(t));
    h.expect(
        data(CISN + 10),
        id,
        Dir::In,
        1,
        sent(Pkt::eth(PORT1_MAC, GW2_MAC), CISN + 10),
    );

    // Back to tables without the real server's neighbour: a drop, not the remembered MAC.
    let mut t = L2::new();
    t.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24", "198.18.1.1/24"])
        .unwrap();
    h.node.stage.set_l2(Arc::new(t));
    h.expect_drop(data(CISN + 13), id, Dir::In, XmitDrop::NoNeighbor);

    // And the first tables again (the harness's drop count is cumulative: checked by hand).
    h.node.stage.set_l2(Arc::new(l2()));
    let (out, report) = h.run(&[(data(CISN + 16), id, Dir::In)]);
    assert_eq!(report.dropped(XmitDrop::NoNeighbor.name()), 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].port, 0);
    assert!(decode_checked(&out[0].bytes).is_ok());
    let want = sent(Pkt::eth(PORT0_MAC, RS_MAC), CISN + 16);
    assert!(out[0].bytes == want, "{}", rvs_testkit::hex::diff(&want, &out[0].bytes));
}
