//! Property tests of the decoder and the builder.

use proptest::prelude::*;
use rvs_testkit::builder::{ACK, Pkt, SYN, mac};
use rvs_testkit::decode::{decode, decode_checked, decode_ip};

fn tcp_packet(sport: u16, dport: u16, seq: u32, ttl: u8, payload: &[u8], v6: bool) -> Pkt {
    let p = Pkt::eth(mac(1), mac(2));
    let p = if v6 {
        p.ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2])
    } else {
        p.ipv4([198, 18, 0, 1], [198, 18, 1, 1])
    };
    p.ttl(ttl)
        .tcp(sport, dport)
        .flags(SYN | ACK)
        .seq(seq)
        .mss(1460)
        .timestamps(seq, 0)
        .payload(payload)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let d = decode(&bytes);
        let _ = d.to_string();
        let _ = decode_ip(&bytes);
        let _ = decode_checked(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_damaged_packets(
        which in 0usize..5,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let inner = Pkt::l3().ipv4([198, 18, 0, 1], [198, 18, 1, 1]).tcp(1, 2).payload(&[3; 30]).build();
        let inner6 = Pkt::l3()
            .ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2])
            .udp(1, 2)
            .build();
        let mut b = match which {
            0 => tcp_packet(1, 2, 3, 64, b"abc", false).build(),
            1 => tcp_packet(1, 2, 3, 64, b"abc", true).build(),
            2 => Pkt::eth(mac(1), mac(2)).ipv4([1, 1, 1, 1], [2, 2, 2, 2]).icmp_frag_needed(1400, &inner).build(),
            3 => Pkt::eth(mac(1), mac(2))
                .ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])
                .hop_by_hop(&[])
                .routing(0, 1, &[0; 20])
                .icmpv6_packet_too_big(1280, &inner6)
                .build(),
            _ => Pkt::eth(mac(1), mac(2))
                .vlan(7)
                .ipv4([1, 1, 1, 1], [2, 2, 2, 2])
                .ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2])
                .udp(1, 2)
                .build(),
        };
        for (at, x) in flips {
            let n = b.len();
            b[at % n] ^= x;
        }
        b.truncate(cut % (b.len() + 1));
        let d = decode(&b);
        let _ = d.to_string();
    }

    #[test]
    fn built_tcp_packets_decode_clean_with_their_fields(
        sport in any::<u16>(),
        dport in any::<u16>(),
        seq in any::<u32>(),
        ttl in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        v6 in any::<bool>(),
    ) {
        let b = tcp_packet(sport, dport, seq, ttl, &payload, v6).build();
        let d = decode_checked(&b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let t = d.tcp().ok_or_else(|| TestCaseError::fail("no tcp"))?;
        prop_assert_eq!((t.sport, t.dport, t.seq, t.flags), (sport, dport, seq, SYN | ACK));
        prop_assert_eq!(d.ip().map(|i| i.ttl()), Some(ttl));
        prop_assert_eq!(&d.payload, &payload);
        prop_assert_eq!(t.mss(), Some(1460));
    }

    #[test]
    fn any_single_bit_flip_in_a_checksummed_header_is_caught(bit in 0usize..((20 + 32) * 8)) {
        // Every bit of the IPv4 header and TCP header (with options) is covered by a checksum,
        // so flipping any one must make the packet unclean.
        let mut b = tcp_packet(1000, 80, 7, 64, b"xyz", false).build();
        b[14 + bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_checked(&b).is_err());
    }
}
