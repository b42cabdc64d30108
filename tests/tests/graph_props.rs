//! Bad input through the whole graph (`rvs replay`'s engine over every forwarding mode at
//! once): damaged and truncated copies of valid frames -- TCP, UDP and ICMP to FNAT, NAT, DR,
//! TUNNEL, NAT64, synproxy and ICMP services, replies from the real servers' side, ICMP
//! errors, ARP, IPv6 extension headers, fragments -- mixed with the valid ones, in vectors of
//! 1 and 32. Properties:
//!
//! - nothing panics (every bad frame is dropped and counted, or handled);
//! - every IPv4 header rvs emits carries a valid header checksum (recomputed here from the
//!   bytes with the kit's own sum), whatever came in;
//! - an established connection made before the burst still forwards its next packet to its
//!   real server afterwards (bad input never loses established connections).

use std::net::Ipv4Addr;

use proptest::prelude::*;
use rvs_pipeline::config::Config;
use rvs_pipeline::replay::Engine;
use rvs_testkit::builder::{ACK, FIN, Pkt, RST, SYN};
use rvs_testkit::csum;
use rvs_testkit::decode::decode;

const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];

const CONFIG: &str = r#"
[[interface]]
name = "wan"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]

[[interface]]
name = "lan"
mac = "02:00:00:00:00:02"
addresses = ["198.18.1.1/24", "2001:db8:1::1/64"]

[[neighbor]]
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"

[[neighbor]]
ip = "2001:db8::fe"
mac = "02:00:00:00:00:fe"

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"

[[neighbor]]
ip = "198.18.1.12"
mac = "02:00:00:00:01:11"

[[neighbor]]
ip = "2001:db8:1::11"
mac = "02:00:00:00:01:11"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[[route]]
prefix = "::/0"
via = "2001:db8::fe"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]

[[service.dest]]
ip = "198.18.1.11"
port = 8080

[[service.dest]]
ip = "198.18.1.12"
port = 8080

[[service]]
protocol = "udp"
vip = "198.18.0.100"
port = 53
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]

[[service.dest]]
ip = "198.18.1.11"
port = 5353

[[service]]
protocol = "tcp"
vip = "198.18.0.101"
port = 80
scheduler = "wlc"
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"
port = 8080

[[service]]
protocol = "tcp"
vip = "198.18.0.102"
port = 80
scheduler = "rr"
forward = "dr"

[[service.dest]]
ip = "198.18.1.11"
port = 80

[[service]]
protocol = "tcp"
vip = "198.18.0.103"
port = 80
scheduler = "rr"
forward = "tunnel"

[[service.dest]]
ip = "198.18.1.12"
port = 80

[[service]]
protocol = "tcp"
vip = "198.18.0.105"
port = 80
scheduler = "rr"
forward = "fnat"
synproxy = true
local_addresses = ["198.18.1.1"]

[[service.dest]]
ip = "198.18.1.12"
port = 8080

[[service]]
protocol = "icmp"
vip = "198.18.0.104"
scheduler = "rr"
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"

[[service]]
protocol = "tcp"
vip = "2001:db8::100"
port = 80
scheduler = "rr"
forward = "nat"

[[service.dest]]
ip = "2001:db8:1::11"
port = 8080

[[service]]
protocol = "tcp"
vip = "2001:db8::101"
port = 80
scheduler = "rr"
forward = "fnat"
local_addresses = ["198.18.1.1"]

[[service.dest]]
ip = "198.18.1.11"
port = 8080
"#;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 128, 7);
const CLIENT6: [u16; 8] = [0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 7];
const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

fn vip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, last)
}

fn from_client(last: u8) -> Pkt {
    Pkt::eth(GW_MAC, WAN_MAC).ipv4(CLIENT, vip(last))
}

/// Valid frames of every kind the graph handles, from both sides.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    for last in [100, 101, 102, 103, 105] {
        for (i, flags) in [SYN, ACK, ACK | FIN, RST].into_iter().enumerate() {
            s.push(
                from_client(last)
                    .tcp(41000 + i as u16, 80)
                    .flags(flags)
                    .seq(1000)
                    .ack(if flags & ACK != 0 { 5000 } else { 0 })
                    .mss(1460)
                    .payload(if flags == ACK { b"GET / HTTP/1.0\r\n\r\n" } else { b"" })
                    .build(),
            );
        }
    }
    s.push(from_client(100).udp(42000, 53).payload(&[7; 40]).build());
    // A full-size segment of the TUNNEL service's SYN flow without DF: encapsulated it outgrows
    // the port, so it leaves as IPv4 fragments.
    s.push(
        from_client(103)
            .tcp(41000, 80)
            .flags(ACK)
            .seq(1001)
            .ack(5000)
            .payload(&[5; 1460])
            .build(),
    );
    s.push(from_client(104).icmp_echo_request(9, 1).payload(&[1; 16]).build());
    s.push(from_client(1).icmp_echo_request(9, 2).build());
    s.push(from_client(100).ttl(1).tcp(41999, 80).flags(SYN).seq(1).build());
    s.push(
        from_client(100)
            .id(77)
            .mf()
            .tcp(41998, 80)
            .flags(ACK)
            .payload(&[2; 64])
            .build(),
    );
    s.push(
        from_client(100)
            .ip_options(&[1, 1, 1, 0])
            .tcp(41997, 80)
            .flags(SYN)
            .build(),
    );
    let quoted = Pkt::l3()
        .ipv4(vip(101), CLIENT)
        .tcp(80, 41001)
        .flags(ACK)
        .seq(5000)
        .payload(&[3; 20])
        .build();
    s.push(
        Pkt::eth(GW_MAC, WAN_MAC)
            .ipv4(Ipv4Addr::new(198, 18, 0, 254), vip(101))
            .icmp_frag_needed(1400, &quoted)
            .build(),
    );
    s.push(
        Pkt::eth(GW_MAC, [0xff; 6])
            .arp_request(GW_MAC, Ipv4Addr::new(198, 18, 0, 254), vip(100))
            .build(),
    );
    // Replies from the real servers' side: to a local address (FNAT) and to the client (NAT).
    for (dst, dport) in [(Ipv4Addr::new(198, 18, 1, 1), 1025u16), (CLIENT, 41000)] {
        s.push(
            Pkt::eth(RS_MAC, LAN_MAC)
                .ipv4(RS1, dst)
                .tcp(8080, dport)
                .flags(SYN | ACK)
                .seq(9000)
                .ack(1001)
                .build(),
        );
    }
    // IPv6: NAT and NAT64 services, an extension header, a fragment, echo to an address.
    let c6 = Pkt::eth(GW_MAC, WAN_MAC);
    let v6 = |last: u16| [0x2001, 0xdb8, 0, 0, 0, 0, 0, last];
    s.push(
        c6.clone()
            .ipv6(CLIENT6, v6(0x100))
            .tcp(43000, 80)
            .flags(SYN)
            .mss(1440)
            .build(),
    );
    s.push(
        c6.clone()
            .ipv6(CLIENT6, v6(0x101))
            .tcp(43001, 80)
            .flags(SYN)
            .mss(1440)
            .build(),
    );
    s.push(
        c6.clone()
            .ipv6(CLIENT6, v6(0x100))
            .hop_by_hop(&[1, 4, 0, 0, 0, 0])
            .tcp(43002, 80)
            .flags(SYN)
            .build(),
    );
    s.push(
        c6.clone()
            .ipv6(CLIENT6, v6(0x101))
            .frag6(0, true, 5)
            .tcp(43003, 80)
            .flags(ACK)
            .payload(&[4; 32])
            .build(),
    );
    s.push(c6.ipv6(CLIENT6, v6(1)).icmpv6_echo_request(3, 1).build());
    s
}

/// A copy of seed `which` damaged as `m` says.
fn damage(seed: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = seed.to_vec();
    if b.is_empty() {
        return b;
    }
    for &(at, v) in &m.flips {
        let i = at % b.len();
        b[i] = v;
    }
    match m.len {
        LenChange::Same => {}
        LenChange::Cut(n) => b.truncate(n % (b.len() + 1)),
        LenChange::Grow(n) => b.extend(std::iter::repeat_n(0xa5, n)),
    }
    b
}

#[derive(Debug, Clone)]
enum LenChange {
    Same,
    Cut(usize),
    Grow(usize),
}

#[derive(Debug, Clone)]
struct Mutation {
    seed: usize,
    flips: Vec<(usize, u8)>,
    len: LenChange,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<usize>(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        prop_oneof![
            3 => Just(LenChange::Same),
            1 => any::<usize>().prop_map(LenChange::Cut),
            1 => (1usize..64).prop_map(LenChange::Grow),
        ],
    )
        .prop_map(|(seed, flips, len)| Mutation { seed, flips, len })
}

/// The IPv4 header of an emitted frame (behind Ethernet and any VLAN tags), if it is IPv4.
fn ipv4_header(frame: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    let mut ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while ty == 0x8100 {
        off += 4;
        ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if ty != 0x0800 {
        return None;
    }
    let ip = frame.get(off + 2..)?;
    let hl = usize::from(*ip.first()? & 0xf) * 4;
    ip.get(..hl)
}

/// The established NAT flow the burst must not disturb.
fn established(flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    from_client(101)
        .tcp(55555, 80)
        .flags(flags)
        .seq(seq)
        .ack(if flags & ACK != 0 { 7001 } else { 0 })
        .payload(payload)
        .build()
}

/// Returns the connections the run made.
fn run(muts: &[Mutation], vector: usize) -> Result<u64, TestCaseError> {
    let cfg = Config::parse("graph_props.toml", CONFIG).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut e = Engine::new(&cfg, vector).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let seeds = seeds();
    let mut t = 1_000_000_000u64;
    let mut bad_ipv4 = 0usize;
    let mut forwarded: Vec<Vec<u8>> = Vec::new();
    let mut feed = |e: &mut Engine, frames: Vec<Vec<u8>>, t: &mut u64, keep: bool| {
        let recs: Vec<(u64, Vec<u8>)> = frames
            .into_iter()
            .map(|f| {
                *t += 1000;
                (*t, f)
            })
            .collect();
        e.feed(&recs, |x| {
            if x.port.is_some() {
                if let Some(h) = ipv4_header(&x.bytes)
                    && csum::checksum(h) != 0
                {
                    bad_ipv4 += 1;
                }
                if keep {
                    forwarded.push(x.bytes);
                }
            }
            Ok(())
        })
        .map_err(|err| TestCaseError::fail(err.to_string()))
    };
    feed(
        &mut e,
        vec![established(SYN, 100, b""), established(ACK, 101, b"")],
        &mut t,
        false,
    )?;
    prop_assert_eq!(e.report().connections, 1, "the NAT flow is established");
    let mut burst: Vec<Vec<u8>> = Vec::new();
    for m in muts {
        let seed = &seeds[m.seed % seeds.len()];
        burst.push(damage(seed, m));
        burst.push(seed.clone());
    }
    feed(&mut e, burst, &mut t, false)?;
    feed(&mut e, vec![established(ACK, 101, b"still here")], &mut t, true)?;
    prop_assert_eq!(bad_ipv4, 0, "an emitted IPv4 header with a bad checksum");
    let to_rs: Vec<_> = forwarded
        .iter()
        .map(|f| decode(f))
        .filter(|d| {
            d.ipv4().is_some_and(|h| h.src == CLIENT && h.dst == RS1)
                && d.ports() == Some((55555, 8080))
                && d.payload == b"still here"
        })
        .collect();
    prop_assert_eq!(to_rs.len(), 1, "the established flow's packet reached its real server");
    Ok(e.report().created)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn bad_frames_through_every_mode_never_panic_nor_lose_an_established_flow(
        muts in proptest::collection::vec(mutation(), 1..40),
        vector in prop_oneof![Just(1usize), Just(32usize)],
    ) {
        run(&muts, vector)?;
    }
}

/// The seeds themselves are valid: each goes through without a panic and the established
/// flow survives them (the property above without damage).
#[test]
fn undamaged_seeds_pass() {
    let muts: Vec<Mutation> = (0..seeds().len())
        .map(|seed| Mutation {
            seed,
            flips: Vec::new(),
            len: LenChange::Same,
        })
        .collect();
    let created = run(&muts, 32).unwrap();
    // Undamaged, each seed goes where it should: the SYNs to the IPv4 TCP services (synproxy
    // answers its SYN itself), the UDP datagram, the echo to the ICMP service and the two IPv6
    // SYNs make connections, with the established flow's.
    assert!(created >= 8, "connections made by the seeds: {created}");
}
