//! ICMP and ICMPv6 errors that quote a packet of an existing connection: lookup finds the
//! connection from the quoted header in either direction, marks the packet (`icmp_err`, the
//! quoted offsets), runs no state transition, and lets unmatched errors go on as misses.
//! Packets come from the test kit's builder and are parsed by rvs-parse.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, LcoreConns, SharedConns, TcpState, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool};
use rvs_core::meta::{Dir, NO_CONN, PacketMeta};
use rvs_core::service::{DestId, Forward, Snapshot};
use rvs_core::stage::{Exits, Node, Packet, PacketVec, StageCx};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};
use rvs_testkit::Pkt;
use rvs_testkit::builder::{ACK, mac};

const CLIENT: [u8; 4] = [198, 18, 5, 5];
const VIP: [u8; 4] = [198, 18, 0, 100];
const LADDR: [u8; 4] = [198, 18, 1, 1];
const RS: [u8; 4] = [198, 18, 1, 11];
const ROUTER: [u8; 4] = [198, 18, 9, 1];

fn table(lcore: u16, lcores: u16) -> SharedConns {
    let cfg = ConnConfig {
        capacity: 64,
        buckets_log2: 6,
        seed: 3,
        timer_tick_ms: 10,
    };
    Rc::new(RefCell::new(LcoreConns::new(
        cfg,
        lcore,
        lcores,
        Arc::new(LoadTable::new(4)),
    )))
}

fn conn(proto: Proto, fwd: Forward, client: Addr, vip: Addr, rs: Addr, laddr: Addr, lport: u16) -> Conn {
    let in_tuple = Tuple {
        proto,
        saddr: client,
        daddr: vip,
        sport: 40000,
        dport: 80,
    };
    Conn {
        in_tuple,
        out_tuple: Conn::out_tuple_for(fwd, &in_tuple, rs, 8080, laddr, lport),
        fwd,
        dest: DestId(1),
        state: TcpState::Established.number(),
        timeout_secs: 90,
        ..Default::default()
    }
}

fn parsed(bytes: &[u8]) -> Packet<HeapMbuf> {
    let mut meta = PacketMeta::new();
    rvs_parse::parse(bytes, &mut meta, true).expect("the test packet parses");
    Packet {
        mbuf: HeapMbuf::from_bytes(bytes),
        meta,
    }
}

struct Run {
    hit: Vec<PacketMeta>,
    miss: Vec<PacketMeta>,
    redirected: Vec<usize>,
}

fn run(conns: &SharedConns, lcore: u16, frames: &[Vec<u8>]) -> (Run, Node<HeapMbuf, Lookup>) {
    let mut node = Node::new(Lookup::new(conns.clone()), 64);
    let snap = Snapshot::empty();
    let mut exits = Exits::new(1, 4, 64);
    let mut pool = HeapPool::new(8);
    let mut input = PacketVec::with_capacity(64);
    for f in frames {
        input.push(parsed(f)).unwrap();
    }
    let cx = StageCx {
        now: Now::from_secs(5),
        lcore,
        snapshot: &snap,
    };
    node.run(&cx, &mut input, &mut exits, &mut pool);
    let r = Run {
        hit: node.queue(LookupNext::Hit).drain().map(|p| p.meta).collect(),
        miss: node.queue(LookupNext::Miss).drain().map(|p| p.meta).collect(),
        redirected: exits.redirect.iter_mut().map(|q| q.drain().count()).collect(),
    };
    (r, node)
}

/// The first 28 bytes of an IPv4 packet (header + 8), as RFC 792 routers quote it.
fn quote_v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut b = Pkt::l3()
        .ipv4(src, dst)
        .tcp(sport, dport)
        .flags(ACK)
        .payload(&[0; 100])
        .build();
    b.truncate(28);
    b
}

#[test]
fn frag_needed_finds_the_connection_in_both_directions() {
    let conns = table(0, 1);
    let c = conn(
        Proto::Tcp,
        Forward::Fnat,
        Addr::v4(CLIENT),
        Addr::v4(VIP),
        Addr::v4(RS),
        Addr::v4(LADDR),
        2000,
    );
    let before = c.clone();
    let id = conns.borrow_mut().insert(c, Now::from_secs(1)).unwrap();
    let expires = conns.borrow().conn(id).unwrap().expires;
    // (a) A router on the client's side could not pass our reply VIP:80 -> client:40000.
    let toward_client = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_frag_needed(1400, &quote_v4(VIP, 80, CLIENT, 40000))
        .build();
    // (b) A router on the real server's side could not pass LADDR:2000 -> RS:8080.
    let toward_rs = Pkt::eth(mac(8), mac(2))
        .ipv4(ROUTER, LADDR)
        .icmp_frag_needed(1300, &quote_v4(LADDR, 2000, RS, 8080))
        .build();
    let (r, node) = run(&conns, 0, &[toward_client, toward_rs]);
    assert!(r.miss.is_empty());
    let got: Vec<_> = r.hit.iter().map(|m| (m.conn, m.dir, m.icmp_err)).collect();
    assert_eq!(got, vec![(id, Dir::In, true), (id, Dir::Out, true)]);
    // Quoted offsets: Ethernet 14 + IPv4 20 + ICMP 8, then the quoted IPv4 header's 20.
    for m in &r.hit {
        assert_eq!((m.inner_l3_off, m.inner_l4_off), (42, 62));
    }
    // No state transition, no refresh.
    let t = conns.borrow();
    let now = t.conn(id).unwrap();
    assert_eq!((now.state, now.expires), (before.state, expires));
    let k = node.stage.counters();
    assert_eq!((k.icmp_err_hit, k.hit_in, k.hit_out, k.state_changes), (2, 0, 0, 0));
}

#[test]
fn time_exceeded_and_port_unreachable_for_udp_and_nat() {
    let conns = table(0, 1);
    let id = conns
        .borrow_mut()
        .insert(
            conn(
                Proto::Udp,
                Forward::Nat,
                Addr::v4(CLIENT),
                Addr::v4(VIP),
                Addr::v4(RS),
                Addr::UNSPECIFIED,
                0,
            ),
            Now::from_secs(1),
        )
        .unwrap();
    let mut q = Pkt::l3().ipv4(VIP, CLIENT).udp(80, 40000).payload(b"data").build();
    q.truncate(28);
    let te = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_time_exceeded(0, &q)
        .build();
    // NAT: the real server's view is RS:8080 -> client:40000.
    let mut q2 = Pkt::l3().ipv4(CLIENT, RS).udp(40000, 8080).payload(b"data").build();
    q2.truncate(28);
    let unreach = Pkt::eth(mac(8), mac(2))
        .ipv4(RS, CLIENT)
        .icmp_dest_unreach(3, &q2)
        .build();
    let (r, _) = run(&conns, 0, &[te, unreach]);
    let got: Vec<_> = r.hit.iter().map(|m| (m.conn, m.dir, m.icmp_err)).collect();
    assert_eq!(got, vec![(id, Dir::In, true), (id, Dir::Out, true)]);
}

#[test]
fn icmpv6_packet_too_big_dest_unreach_and_time_exceeded() {
    let c6 = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    let v6 = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    let rs6 = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]);
    let l6 = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let conns = table(0, 1);
    let id = conns
        .borrow_mut()
        .insert(
            conn(Proto::Tcp, Forward::Fnat, c6, v6, rs6, l6, 3000),
            Now::from_secs(1),
        )
        .unwrap();
    let o = |a: Addr| a.octets();
    let quote = |s: Addr, sp: u16, d: Addr, dp: u16| {
        let mut b = Pkt::l3()
            .ipv6(o(s), o(d))
            .tcp(sp, dp)
            .flags(ACK)
            .payload(&[0; 64])
            .build();
        b.truncate(48);
        b
    };
    let router = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let frames = [
        Pkt::eth(mac(7), mac(2))
            .ipv6(o(router), o(v6))
            .icmpv6_packet_too_big(1280, &quote(v6, 80, c6, 40000))
            .build(),
        Pkt::eth(mac(8), mac(2))
            .ipv6(o(router), o(l6))
            .icmpv6_packet_too_big(1280, &quote(l6, 3000, rs6, 8080))
            .build(),
        Pkt::eth(mac(8), mac(2))
            .ipv6(o(router), o(l6))
            .icmpv6_dest_unreach(1, &quote(l6, 3000, rs6, 8080))
            .build(),
        Pkt::eth(mac(7), mac(2))
            .ipv6(o(router), o(v6))
            .icmpv6_time_exceeded(0, &quote(v6, 80, c6, 40000))
            .build(),
    ];
    let (r, _) = run(&conns, 0, &frames);
    let got: Vec<_> = r.hit.iter().map(|m| (m.conn, m.dir, m.icmp_err)).collect();
    assert_eq!(
        got,
        vec![
            (id, Dir::In, true),
            (id, Dir::Out, true),
            (id, Dir::Out, true),
            (id, Dir::In, true)
        ]
    );
    // Ethernet 14 + IPv6 40 + ICMPv6 8, then the quoted IPv6 header's 40.
    assert_eq!((r.hit[0].inner_l3_off, r.hit[0].inner_l4_off), (62, 102));
}

#[test]
fn unmatched_or_unusable_errors_go_on_as_misses() {
    let conns = table(0, 1);
    conns
        .borrow_mut()
        .insert(
            conn(
                Proto::Tcp,
                Forward::Fnat,
                Addr::v4(CLIENT),
                Addr::v4(VIP),
                Addr::v4(RS),
                Addr::v4(LADDR),
                2000,
            ),
            Now::from_secs(1),
        )
        .unwrap();
    // Another client port: no connection.
    let other = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_frag_needed(1400, &quote_v4(VIP, 80, CLIENT, 40001))
        .build();
    // The connection's own tuple, not reversed (a quote of a packet the client sent): no match.
    let unreversed = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_frag_needed(1400, &quote_v4(CLIENT, 40000, VIP, 80))
        .build();
    // A quote cut inside the IP header.
    let cut = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_frag_needed(1400, &quote_v4(VIP, 80, CLIENT, 40000)[..16])
        .build();
    // A quoted non-first fragment carries no ports.
    let mut frag = Pkt::l3().ipv4(VIP, CLIENT).frag_offset(8).tcp(80, 40000).build();
    frag.truncate(28);
    let frag = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_dest_unreach(4, &frag)
        .build();
    // A redirect (type 5) is not translated, nor is an echo request.
    let redirect = Pkt::eth(mac(7), mac(2))
        .ipv4(ROUTER, VIP)
        .icmp_raw(false, 5, 1, [198, 18, 9, 2], &quote_v4(VIP, 80, CLIENT, 40000))
        .build();
    let echo = Pkt::eth(mac(7), mac(2))
        .ipv4(CLIENT, VIP)
        .icmp_echo_request(1, 1)
        .build();
    let (r, node) = run(&conns, 0, &[other, unreversed, cut, frag, redirect, echo]);
    assert!(r.hit.is_empty());
    assert_eq!(r.miss.len(), 6);
    assert!(r.miss.iter().all(|m| !m.icmp_err && m.conn == NO_CONN));
    assert_eq!(
        node.stage.counters().icmp_err_miss,
        2,
        "the two well-formed quotes of no connection"
    );
}

#[test]
fn errors_quoting_another_lcores_local_port_are_redirected() {
    let conns = table(0, 2);
    conns.borrow_mut().ports().add_laddr(Addr::v4(LADDR));
    // Port 2001 is lcore 1's (2001 % 2).
    let e = Pkt::eth(mac(8), mac(2))
        .ipv4(ROUTER, LADDR)
        .icmp_frag_needed(1300, &quote_v4(LADDR, 2001, RS, 8080))
        .build();
    let (r, node) = run(&conns, 0, &[e]);
    assert_eq!(r.redirected, vec![0, 1, 0, 0]);
    assert_eq!(node.stage.counters().icmp_err_redirected, 1);
}

/// `plain` (an IP packet starting with its header of `ip_hdr` bytes, UDP behind it) as FNAT's
/// UOA "opp" mode sends it: DPVS's 4-byte protocol-248 header (version 1 for an IPv4 address
/// in the option, 2 for IPv6; next protocol 17; length of header and option) and the UOA
/// option (`31, len, port, address`) between the IP header and UDP, the IP protocol 248.
fn with_opp(plain: &[u8], ip_hdr: usize, port: u16, addr: &[u8]) -> Vec<u8> {
    let mut opt = vec![31, 4 + addr.len() as u8];
    opt.extend_from_slice(&port.to_be_bytes());
    opt.extend_from_slice(addr);
    let len = 4 + opt.len();
    let version = if addr.len() == 4 { 1 } else { 2 };
    let mut b = plain[..ip_hdr].to_vec();
    b.extend_from_slice(&[version << 4, 17]);
    b.extend_from_slice(&(len as u16).to_be_bytes());
    b.extend_from_slice(&opt);
    b.extend_from_slice(&plain[ip_hdr..]);
    if plain[0] >> 4 == 4 {
        b[9] = 248;
        let total = u16::from_be_bytes([b[2], b[3]]) as usize + len;
        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    } else {
        b[6] = 248;
        let pl = u16::from_be_bytes([b[4], b[5]]) as usize + len;
        b[4..6].copy_from_slice(&(pl as u16).to_be_bytes());
    }
    b
}

/// A real server's error quoting a datagram that carried UOA, as it received it: the IPv4
/// option 31 ("ipo", inside the quoted IHL) or the protocol-248 opp header in front of UDP
/// ("opp", over IPv4 and IPv6), is matched to the connection by the UDP ports behind it, with
/// the quoted upper-layer offset at UDP. A malformed opp header (not UDP behind it, a length
/// past the quote or below its own 4 bytes) stays a miss.
#[test]
fn errors_quoting_a_datagram_with_uoa_match_through_either_carrier() {
    let conns = table(0, 1);
    let id4 = conns
        .borrow_mut()
        .insert(
            conn(
                Proto::Udp,
                Forward::Fnat,
                Addr::v4(CLIENT),
                Addr::v4(VIP),
                Addr::v4(RS),
                Addr::v4(LADDR),
                2000,
            ),
            Now::from_secs(1),
        )
        .unwrap();
    let c6 = [0x20, 1, 0xd, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    let v6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let rs6 = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
    let l6 = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let id6 = conns
        .borrow_mut()
        .insert(
            conn(
                Proto::Udp,
                Forward::Fnat,
                Addr::v6(c6),
                Addr::v6(v6),
                Addr::v6(rs6),
                Addr::v6(l6),
                3000,
            ),
            Now::from_secs(1),
        )
        .unwrap();
    let plain4 = Pkt::l3().ipv4(LADDR, RS).udp(2000, 8080).payload(b"f00:0q").build();
    let ipo = Pkt::l3()
        .ipv4(LADDR, RS)
        .ip_options(&[31, 8, 0x9c, 0x40, CLIENT[0], CLIENT[1], CLIENT[2], CLIENT[3]])
        .udp(2000, 8080)
        .payload(b"f00:0q")
        .build();
    let opp4 = with_opp(&plain4, 20, 40000, &CLIENT);
    let plain6 = Pkt::l3().ipv6(l6, rs6).udp(3000, 8080).payload(b"f00:0q").build();
    let opp6 = with_opp(&plain6, 40, 40000, &c6);
    let err4 = |quote: &[u8]| {
        Pkt::eth(mac(8), mac(2))
            .ipv4(RS, LADDR)
            .icmp_dest_unreach(3, quote)
            .build()
    };
    let frames = [
        err4(&ipo),
        err4(&opp4),
        Pkt::eth(mac(8), mac(2))
            .ipv6(rs6, l6)
            .icmpv6_dest_unreach(4, &opp6)
            .build(),
    ];
    let (r, node) = run(&conns, 0, &frames);
    assert!(r.miss.is_empty(), "every carrier matched");
    let got: Vec<_> = r
        .hit
        .iter()
        .map(|m| (m.conn, m.dir, m.icmp_err, m.inner_l3_off, m.inner_l4_off))
        .collect();
    // Ethernet 14 + IPv4 20 + ICMP 8 = 42; IPv6: 14 + 40 + 8 = 62. Then the quoted IP header
    // (20, 28 with the 8-byte option, 40) and the opp header (4 + 8 for an IPv4 address,
    // 4 + 20 for IPv6).
    assert_eq!(
        got,
        vec![
            (id4, Dir::Out, true, 42, 42 + 28),
            (id4, Dir::Out, true, 42, 42 + 20 + 12),
            (id6, Dir::Out, true, 62, 62 + 40 + 24),
        ]
    );
    assert_eq!(node.stage.counters().icmp_err_hit, 3);

    // Malformed opp headers: TCP named behind it, a length past the quote, a length of 2.
    let spoil = |at: usize, v: &[u8]| {
        let mut b = opp4.clone();
        b[20 + at..20 + at + v.len()].copy_from_slice(v);
        err4(&b)
    };
    let frames = [spoil(1, &[6]), spoil(2, &[0x01, 0x00]), spoil(2, &[0, 2])];
    let (r, _) = run(&conns, 0, &frames);
    assert!(r.hit.is_empty(), "malformed opp headers match nothing");
    assert_eq!(r.miss.len(), 3);
}
