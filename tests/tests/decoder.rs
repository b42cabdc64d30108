//! The decoder against bytes from another source, and the builder against the decoder.
//!
//! The hex vectors below were generated once with Scapy 2.x (an independent packet library,
//! `bytes(pkt).hex()`; the Scapy expression is in the comment above each) and pasted here, so
//! neither the decoder nor the builder of this kit produced them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_testkit::builder::{ACK, PSH, Pkt, SYN, mac};
use rvs_testkit::decode::{CheckStatus, Ip, Ipv6Ext, L4, TcpOpt, decode, decode_checked};
use rvs_testkit::hex;

// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IP(src="198.18.0.1", dst="198.18.1.1", id=0x1234, flags="DF", ttl=63)/TCP(sport=40000, dport=80, flags="S", seq=1000, window=29200, options=[("MSS",1460),("SAckOK",b""),("Timestamp",(12345,0)),("NOP",None),("WScale",7)])
const SCAPY_TCP_SYN_V4: &str = "02000000000202000000000108004500003c123440003f069c61c6120001c61201019c400050000003e800000000a002721078170000020405b40402080a000030390000000001030307";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x12345, hlim=33)/IPv6ExtHdrHopByHop(options=[RouterAlert()])/IPv6ExtHdrDestOpt()/UDP(sport=5353, dport=53)/b"hello"
const SCAPY_UDP_V6_EXT: &str = "02000000000202000000000186dd60012345001d002120010db800000000000000000000000120010db80000000000000000000000023c00050200000100110001040000000014e90035000d4b6f68656c6c6f";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IP(src="198.18.2.1", dst="198.18.0.1")/ICMP(type=3, code=4, nexthopmtu=1400)/IP(src="198.18.0.1", dst="198.18.1.1", flags="DF")/TCP(sport=40000, dport=80, flags="A", seq=5, ack=6)/(b"z"*20)
const SCAPY_ICMP_FRAG_NEEDED: &str = "020000000002020000000001080045000058000100004001ec7dc6120201c6120001030484d9000005784500003c000140004006ad94c6120001c61201019c4000500000000500000006501020009d3500007a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IPv6(src="2001:db8::fe", dst="2001:db8::1")/ICMPv6PacketTooBig(mtu=1280)/IPv6(src="2001:db8::1", dst="2001:db8::2")/TCP(sport=40000, dport=443, flags="PA")/(b"q"*10)
const SCAPY_ICMPV6_PTB: &str = "02000000000202000000000186dd60000000004e3a4020010db80000000000000000000000fe20010db8000000000000000000000001020035cc0000050060000000001e064020010db800000000000000000000000120010db80000000000000000000000029c4001bb0000000000000000501820005f1b000071717171717171717171";
// Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")/ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="198.18.0.1", pdst="198.18.0.254")
const SCAPY_ARP_REQUEST: &str = "ffffffffffff02000000000108060001080006040001020000000001c6120001000000000000c61200fe";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/Dot1Q(vlan=100, prio=3)/IP(src="198.18.0.1", dst="198.18.0.2")/ICMP(type=8, id=0x77, seq=3)/b"ping"
const SCAPY_VLAN_ICMP_ECHO: &str =
    "02000000000202000000000181006064080045000020000100004001eeb4c6120001c6120002080018b50077000370696e67";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IP(src="198.18.0.10", dst="198.18.5.5")/IPv6(src="2001:db8::1", dst="2001:db8::2")/UDP(sport=1, dport=2)/b"abc"
const SCAPY_IPIP_6IN4: &str = "020000000002020000000001080045000047000100004029e959c612000ac612050560000000000b114020010db800000000000000000000000120010db800000000000000000000000200010002000bdffd616263";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IP(src="198.18.0.10", dst="198.18.5.5", ttl=64)/IP(src="198.18.0.1", dst="198.18.1.1", options=IPOption(b"\x94\x04\x00\x00"))/TCP(sport=1234, dport=80, flags="SA", seq=1, ack=2, options=[("SAck",(100,200)), ("NOP", None), ("NOP", None)])
const SCAPY_IPIP_4IN4_TCP: &str = "02000000000202000000000108004500004c000100004004e979c612000ac6120505460000380001000040065894c6120001c61201019404000004d20050000000010000000280122000c6430000050a00000064000000c80101";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::aa")/IPv6ExtHdrRouting(addresses=["2001:db8::bb", "2001:db8::2"], segleft=2)/TCP(sport=1, dport=2, flags="S")
const SCAPY_IPV6_ROUTING_TCP: &str = "02000000000202000000000186dd60000000003c2b4020010db800000000000000000000000120010db80000000000000000000000aa060400020000000020010db80000000000000000000000bb20010db800000000000000000000000200010002000000000000000050022000346b0000";
// Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrFragment(id=99, m=1, offset=0)/UDP(sport=7, dport=9, len=500, chksum=0x1234)/(b"f"*16)
const SCAPY_IPV6_FRAG_FIRST: &str = "02000000000202000000000186dd6000000000202c4020010db800000000000000000000000120010db800000000000000000000000211000001000000630007000901f4123466666666666666666666666666666666";

fn bytes(h: &str) -> Vec<u8> {
    hex::parse(h).expect("test vector is hex")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

#[test]
fn scapy_tcp_syn_v4_decodes_with_options_and_good_checksums() {
    let d = decode_checked(&bytes(SCAPY_TCP_SYN_V4)).unwrap_or_else(|e| panic!("{e}"));
    let eth = d.eth.as_ref().expect("ethernet");
    assert_eq!(eth.src, mac(1));
    assert_eq!(eth.dst, mac(2));
    let ip = d.ipv4().expect("ipv4");
    assert_eq!(
        (ip.src, ip.dst),
        (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1))
    );
    assert_eq!((ip.id, ip.df, ip.mf, ip.ttl, ip.proto), (0x1234, true, false, 63, 6));
    let t = d.tcp().expect("tcp");
    assert_eq!(
        (t.sport, t.dport, t.seq, t.flags, t.window),
        (40000, 80, 1000, SYN, 29200)
    );
    assert_eq!(
        t.options,
        vec![
            TcpOpt::Mss(1460),
            TcpOpt::SackPermitted,
            TcpOpt::Timestamps(12345, 0),
            TcpOpt::Nop,
            TcpOpt::WindowScale(7)
        ]
    );
    assert_eq!(d.checksum("ipv4"), Some(CheckStatus::Ok));
    assert_eq!(d.checksum("ipv4/tcp"), Some(CheckStatus::Ok));
}

#[test]
fn builder_reproduces_scapy_syn_byte_for_byte() {
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
        .id(0x1234)
        .df()
        .ttl(63)
        .tcp(40000, 80)
        .flags(SYN)
        .seq(1000)
        .window(29200)
        .mss(1460)
        .sack_perm()
        .timestamps(12345, 0)
        .nop()
        .wscale(7)
        .build();
    let want = bytes(SCAPY_TCP_SYN_V4);
    assert!(b == want, "{}", hex::diff(&want, &b));
}

#[test]
fn builder_reproduces_scapy_icmp_frag_needed_and_ipip() {
    let inner = Pkt::l3()
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
        .id(1)
        .df()
        .tcp(40000, 80)
        .flags(ACK)
        .seq(5)
        .ack(6)
        .window(8192)
        .payload(&[b'z'; 20])
        .build();
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 2, 1], [198, 18, 0, 1])
        .id(1)
        .icmp_frag_needed(1400, &inner)
        .build();
    let want = bytes(SCAPY_ICMP_FRAG_NEEDED);
    assert!(b == want, "{}", hex::diff(&want, &b));

    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 0, 10], [198, 18, 5, 5])
        .id(1)
        .ipv6(v6("2001:db8::1"), v6("2001:db8::2"))
        .udp(1, 2)
        .payload(b"abc")
        .build();
    let want = bytes(SCAPY_IPIP_6IN4);
    assert!(b == want, "{}", hex::diff(&want, &b));
}

#[test]
fn builder_reproduces_scapy_ipv6_routing_header_checksum() {
    // Scapy's type-0 routing header: 4 reserved bytes then the addresses; the TCP checksum
    // uses the last address as the final destination (RFC 8200 section 8.1).
    let mut data = vec![0u8; 4];
    data.extend_from_slice(&v6("2001:db8::bb").octets());
    data.extend_from_slice(&v6("2001:db8::2").octets());
    let b = Pkt::eth(mac(1), mac(2))
        .ipv6(v6("2001:db8::1"), v6("2001:db8::aa"))
        .routing(0, 2, &data)
        .tcp(1, 2)
        .flags(SYN)
        .window(8192)
        .build();
    let want = bytes(SCAPY_IPV6_ROUTING_TCP);
    assert!(b == want, "{}", hex::diff(&want, &b));
}

#[test]
fn scapy_ipv6_ext_headers_udp() {
    let d = decode_checked(&bytes(SCAPY_UDP_V6_EXT)).unwrap_or_else(|e| panic!("{e}"));
    let ip = d.ipv6().expect("ipv6");
    assert_eq!(ip.flow_label, 0x12345);
    assert_eq!(ip.hop_limit, 33);
    assert_eq!(ip.next_header, 0);
    assert_eq!(ip.proto, 17);
    assert!(matches!(ip.exts[0], Ipv6Ext::HopByHop(ref o) if o[..4] == [5, 2, 0, 0]));
    assert!(matches!(ip.exts[1], Ipv6Ext::DstOpts(_)));
    let u = d.udp().expect("udp");
    assert_eq!((u.sport, u.dport, u.len), (5353, 53, 13));
    assert_eq!(d.payload, b"hello");
    assert_eq!(d.checksum("ipv6/udp"), Some(CheckStatus::Ok));
}

#[test]
fn scapy_icmp_error_quotes_a_complete_packet() {
    let d = decode_checked(&bytes(SCAPY_ICMP_FRAG_NEEDED)).unwrap_or_else(|e| panic!("{e}"));
    let i = d.icmp().expect("icmp");
    assert_eq!((i.typ, i.code, i.mtu()), (3, 4, 1400));
    let inner = i.inner.as_ref().expect("quoted packet");
    assert_eq!(inner.ports(), Some((40000, 80)));
    assert_eq!(d.checksum("ipv4/icmp"), Some(CheckStatus::Ok));
    assert_eq!(d.checksum("ipv4/icmp/ipv4"), Some(CheckStatus::Ok));
    assert_eq!(d.checksum("ipv4/icmp/ipv4/tcp"), Some(CheckStatus::Ok));
}

#[test]
fn scapy_icmpv6_packet_too_big() {
    let d = decode_checked(&bytes(SCAPY_ICMPV6_PTB)).unwrap_or_else(|e| panic!("{e}"));
    let i = d.icmp().expect("icmpv6");
    assert!(i.v6);
    assert_eq!((i.typ, i.mtu()), (2, 1280));
    let inner = i.inner.as_ref().expect("quoted packet");
    assert_eq!(inner.tcp().map(|t| t.flags), Some(PSH | ACK));
    assert_eq!(d.checksum("ipv6/icmpv6"), Some(CheckStatus::Ok));
    assert_eq!(d.checksum("ipv6/icmpv6/ipv6/tcp"), Some(CheckStatus::Ok));
}

#[test]
fn scapy_arp_vlan_ipip_routing_fragment() {
    let d = decode_checked(&bytes(SCAPY_ARP_REQUEST)).unwrap_or_else(|e| panic!("{e}"));
    let a = d.arp.expect("arp");
    assert_eq!(
        (a.op, a.sha, a.spa, a.tpa),
        (1, mac(1), Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 254))
    );

    let d = decode_checked(&bytes(SCAPY_VLAN_ICMP_ECHO)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((d.vlans[0].vid, d.vlans[0].pcp), (100, 3));
    let i = d.icmp().expect("icmp");
    assert_eq!((i.typ, i.id(), i.seq()), (8, 0x77, 3));
    assert_eq!(d.payload, b"ping");

    let d = decode_checked(&bytes(SCAPY_IPIP_4IN4_TCP)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ips.len(), 2);
    assert!(matches!(&d.ips[1], Ip::V4(h) if h.ihl == 6 && h.options == [0x94, 4, 0, 0]));
    assert_eq!(d.tcp().expect("tcp").options[0], TcpOpt::Sack(vec![(100, 200)]));
    assert_eq!(d.checksum("ipv4/ipv4"), Some(CheckStatus::Ok));
    assert_eq!(d.checksum("ipv4/ipv4/tcp"), Some(CheckStatus::Ok));

    let d = decode_checked(&bytes(SCAPY_IPIP_6IN4)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.checksum("ipv4/ipv6/udp"), Some(CheckStatus::Ok));

    let d = decode_checked(&bytes(SCAPY_IPV6_ROUTING_TCP)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.checksum("ipv6/tcp"), Some(CheckStatus::Ok));

    // A first fragment: the UDP checksum covers bytes that are not here.
    let d = decode_checked(&bytes(SCAPY_IPV6_FRAG_FIRST)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.checksum("ipv6/udp"), Some(CheckStatus::NotChecked));
}

#[test]
fn every_corruption_knob_is_caught() {
    let base = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
        .tcp(1000, 80)
        .flags(ACK)
        .payload(b"data");
    assert!(decode_checked(&base.build()).is_ok());
    let cases: Vec<(&str, Pkt)> = vec![
        ("bad ip checksum", base.clone().bad_ip_checksum()),
        ("bad l4 checksum", base.clone().bad_l4_checksum()),
        ("long total length", base.clone().ip_len(200)),
        ("short total length", base.clone().ip_len(10)),
        ("truncated", base.clone().truncate(50)),
        ("bad ihl", base.clone().ihl(4)),
        ("bad data offset", base.clone().tcp_data_offset(15)),
        ("small data offset", base.clone().tcp_data_offset(2)),
    ];
    for (name, p) in cases {
        let b = p.build();
        let e = decode_checked(&b).expect_err(name);
        assert!(!e.to_string().is_empty());
    }
    let udp = Pkt::eth(mac(1), mac(2))
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2])
        .udp(1, 2)
        .payload(b"x");
    assert!(decode_checked(&udp.clone().udp_len(100).build()).is_err());
    assert!(decode_checked(&udp.clone().bad_l4_checksum().build()).is_err());
    // Zero means "no checksum" over IPv4 (RFC 768) but is invalid over IPv6 (RFC 8200).
    let d = decode_checked(&udp.l4_checksum(0).build()).expect("udp without checksum is valid over IPv4");
    assert_eq!(d.checksum("ipv4/udp"), Some(CheckStatus::Absent));
    let u6 = Pkt::eth(mac(1), mac(2))
        .ipv6(v6("2001:db8::1"), v6("2001:db8::2"))
        .udp(1, 2)
        .l4_checksum(0);
    assert!(decode_checked(&u6.build()).is_err());
}

#[test]
fn builder_output_decodes_clean_for_every_layer_kind() {
    let a = v6("2001:db8::1");
    let b6 = v6("2001:db8::2");
    let quoted = Pkt::l3()
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
        .udp(5, 6)
        .payload(&[7; 40])
        .build();
    let quoted6 = Pkt::l3().ipv6(a, b6).tcp(5, 6).flags(SYN).build();
    let pkts = vec![
        Pkt::eth(mac(1), mac(2))
            .vlan_pcp(5, 42)
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8])
            .tos(0x10)
            .udp(1, 2),
        Pkt::eth(mac(1), mac(2)).arp_reply(mac(1), [198, 18, 0, 1], mac(2), [198, 18, 0, 2]),
        Pkt::eth(mac(1), mac(2))
            .arp_request(mac(1), [198, 18, 0, 1], [198, 18, 0, 2])
            .pad_to(60),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
            .ip_options(&[0x94, 0x04, 0, 0, 1])
            .tcp(1, 2)
            .flags(ACK)
            .sack(&[(1, 2), (3, 4)])
            .toa(40000, [198, 18, 0, 9])
            .urgent(3)
            .payload(b"hi")
            .pad_to(128),
        Pkt::eth(mac(1), mac(2)).ipv6(a, b6).tcp(1, 2).toa_v6(40000, a).eol(),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
            .icmp_echo_reply(1, 2)
            .payload(b"pong"),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 254], [198, 18, 0, 1])
            .icmp_time_exceeded(0, &quoted[..28]),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 254], [198, 18, 0, 1])
            .icmp_dest_unreach(3, &quoted),
        Pkt::eth(mac(1), mac(2))
            .ipv6(b6, a)
            .icmpv6_packet_too_big(1280, &quoted6),
        Pkt::eth(mac(1), mac(2))
            .ipv6(b6, a)
            .icmpv6_time_exceeded(0, &quoted6[..48]),
        Pkt::eth(mac(1), mac(2)).ipv6(b6, a).icmpv6_dest_unreach(4, &quoted6),
        Pkt::eth(mac(1), mac(2))
            .ipv6(a, b6)
            .icmpv6_echo_request(9, 1)
            .payload(b"x"),
        Pkt::eth(mac(1), mac(2))
            .ipv6(a, b6)
            .flow_label(7)
            .hop_by_hop(&[])
            .frag6(0, false, 5)
            .udp(1, 2),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 10], [198, 18, 5, 5])
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
            .tcp(1, 2)
            .flags(SYN)
            .mss(1400),
        Pkt::eth(mac(1), mac(2))
            .ipv6(a, b6)
            .ipv6(b6, a)
            .udp(3, 4)
            .payload(b"tunnel"),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
            .id(9)
            .mf()
            .udp(1, 2)
            .payload(&[0; 16]),
        Pkt::eth(mac(1), mac(2))
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
            .frag_offset(2)
            .ip_proto(6)
            .payload(&[1; 8]),
    ];
    for (i, p) in pkts.iter().enumerate() {
        let bytes = p.build();
        let d = decode_checked(&bytes).unwrap_or_else(|e| panic!("packet {i}: {e}\n{}", hex::dump(&bytes)));
        assert!(!d.checksums.is_empty() || d.arp.is_some(), "packet {i} has checksums");
    }
}

#[test]
fn decoded_fields_round_trip_through_the_builder() {
    let a = v6("2001:db8::1");
    let b = Pkt::eth(mac(1), mac(2))
        .ipv6(a, v6("2001:db8::2"))
        .tos(0xb8)
        .flow_label(0xabcde)
        .hop_limit(7)
        .dst_opts(&[])
        .tcp(1234, 443)
        .flags(SYN | ACK)
        .seq(0xdeadbeef)
        .ack(0x01020304)
        .window(1000)
        .mss(1440)
        .wscale(9)
        .timestamps(1, 2)
        .toa(5555, [198, 18, 7, 7])
        .build();
    let d = decode_checked(&b).unwrap_or_else(|e| panic!("{e}"));
    let ip = d.ipv6().expect("ipv6");
    assert_eq!((ip.traffic_class, ip.flow_label, ip.hop_limit), (0xb8, 0xabcde, 7));
    let t = d.tcp().expect("tcp");
    assert_eq!(
        (t.seq, t.ack, t.flags, t.window),
        (0xdeadbeef, 0x01020304, SYN | ACK, 1000)
    );
    assert_eq!(t.mss(), Some(1440));
    assert_eq!(t.toa(), Some((5555, IpAddr::V4(Ipv4Addr::new(198, 18, 7, 7)))));
    assert!(t.options.contains(&TcpOpt::WindowScale(9)));
    assert!(t.options.contains(&TcpOpt::Timestamps(1, 2)));
}

#[test]
fn quoted_packet_cut_short_is_not_checked_but_still_read() {
    let quoted = Pkt::l3()
        .ipv4([198, 18, 0, 1], [198, 18, 1, 1])
        .tcp(40000, 80)
        .seq(77)
        .payload(&[1; 100])
        .build();
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 0, 254], [198, 18, 0, 1])
        .icmp_time_exceeded(0, &quoted[..28])
        .build();
    let d = decode_checked(&b).unwrap_or_else(|e| panic!("{e}"));
    let inner = d.icmp().and_then(|i| i.inner.as_ref()).expect("quoted");
    assert_eq!(inner.ports(), Some((40000, 80)));
    assert!(matches!(inner.l4, Some(L4::Partial { proto: 6, .. })));
    assert_eq!(d.checksum("ipv4/icmp/ipv4"), Some(CheckStatus::Ok));
    // A quoted packet with a broken header checksum is reported.
    let mut bad = quoted.clone();
    bad[10] ^= 0xff;
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([198, 18, 0, 254], [198, 18, 0, 1])
        .icmp_time_exceeded(0, &bad[..28])
        .build();
    let d = decode(&b);
    assert_eq!(d.checksum("ipv4/icmp/ipv4"), Some(CheckStatus::Bad));
    assert_eq!(d.checksum("ipv4/icmp"), Some(CheckStatus::Ok));
}

#[test]
fn malformed_tcp_options_are_problems() {
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2])
        .tcp(1, 2)
        .tcp_opt_raw(&[2, 5, 0, 0])
        .build();
    let d = decode(&b);
    assert!(d.problems.iter().any(|p| p.contains("options")), "{d}");
    let b = Pkt::eth(mac(1), mac(2))
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2])
        .tcp(1, 2)
        .tcp_opt_raw(&[99, 4, 0xaa, 0xbb])
        .build();
    let d = decode_checked(&b).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.tcp().expect("tcp").options[0], TcpOpt::Unknown(99, vec![0xaa, 0xbb]));
}
