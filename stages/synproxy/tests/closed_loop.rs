//! Synproxy through the real stages: parse -> synproxy-syn -> lookup -> synproxy-ack ->
//! schedule -> conn-new -> synproxy-seq -> xmit, over heap buffers. Clients sit behind a
//! gateway on port 1, real servers on port 0. Every packet the graph sends is run through the
//! test kit's independent decoder (every checksum recomputed) and its fields are compared
//! with values the test computes itself: the cookie from its own `CookieKey` and the
//! options it expects, the deltas from the numbers it put in.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{ConnConfig, ConnFlags, LcoreConns, SharedConns, TcpState};
use rvs_conn_new::{ConnNew, ConnNewNext};
use rvs_core::addr::{Addr, Proto};
use rvs_core::counters::StageReport;
use rvs_core::label::Never;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::{HeapMbuf, HeapPool, Mbuf, PacketPool};
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::{Defence, Dest, DestId, Forward, Service, ServiceKey, Snapshot};
use rvs_core::stage::{Graph, NodeId, Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};
use rvs_parse::{Parse, ParseNext};
use rvs_schedule::{Schedule, ScheduleNext};
use rvs_synproxy::{
    CookieFlow, CookieKey, CookieOpts, SynProxy, SynProxyAck, SynProxyAckNext, SynProxyConfig, SynProxyNext,
    SynProxySeq, SynProxySeqNext,
};
use rvs_testkit::builder::{ACK, PSH, Pkt, RST, SYN};
use rvs_testkit::decode::{Decoded, TcpOpt, decode_checked};
use rvs_xmit::{L2, Xmit};

const SEED: u64 = 0x5eed;
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const CPORT: u16 = 40000;
const VPORT: u16 = 80;
const RPORT: u16 = 8080;
const T0: u64 = 1_000;

/// Addresses of one test world (IPv4 or IPv6).
#[derive(Clone, Copy)]
struct World {
    client: IpAddr,
    vip: IpAddr,
    laddr: IpAddr,
    rs: IpAddr,
    fwd: Forward,
}

fn addr(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v) => Addr::v4(v.octets()),
        IpAddr::V6(v) => Addr::v6(v.octets()),
    }
}

const V4: World = World {
    client: IpAddr::V4(Ipv4Addr::new(198, 18, 5, 5)),
    vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
    laddr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
    rs: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)),
    fwd: Forward::Fnat,
};

fn v6(last: u16, sub: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, sub, 0, 0, 0, 0, last))
}

/// Round robin over eligible destinations.
#[derive(Debug, Default)]
struct Rr(usize);
impl Scheduler for Rr {
    fn name(&self) -> &str {
        "rr"
    }
    fn pick(&mut self, cx: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
        let n = cx.dests().len();
        (0..n)
            .map(|k| (self.0 + k) % n)
            .find(|&i| cx.eligible(i))
            .inspect(|&i| self.0 = i + 1)
    }
}
#[derive(Debug)]
struct RrFactory;
impl SchedulerFactory for RrFactory {
    fn name(&self) -> &str {
        "rr"
    }
    fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
        Box::new(Rr::default())
    }
}

/// Where ARP and local ICMP would go: nowhere in these tests (counted as host).
#[derive(Debug)]
struct Sink;
impl<M: Mbuf> Stage<M> for Sink {
    type Next = Never;
    type Drop = Never;
    const NAME: &'static str = "sink";
    fn process(&mut self, _: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, Never>) {
        for p in input.drain() {
            out.host(p);
        }
    }
}

fn snapshot(w: &World, synproxy: bool, weight: u32) -> Snapshot {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: addr(w.vip),
        port: VPORT,
    };
    let mut s = Service::new(key, w.fwd, Arc::new(RrFactory));
    let mut d = Dest::new(DestId(1), addr(w.rs), if w.fwd.keeps_port() { VPORT } else { RPORT });
    d.fwd = w.fwd;
    d.weight = weight;
    s.dests = vec![d].into();
    s.local_addrs = vec![addr(w.laddr)].into();
    s.synproxy = synproxy;
    Snapshot::build(1, 1, Defence::default(), vec![s]).unwrap()
}

fn l2(w: &World) -> L2 {
    let mut l2 = L2::new();
    match w.client {
        IpAddr::V4(_) => {
            l2.add_interface("port0", "02:00:00:00:00:01", &["198.18.0.1/24", "198.18.1.1/24"])
                .unwrap();
            l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])
                .unwrap();
            l2.add_neighbor("198.18.1.11", "02:00:00:00:01:11").unwrap();
            l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe").unwrap();
            l2.set_default_gateway("198.18.2.254").unwrap();
        }
        IpAddr::V6(_) => {
            l2.add_interface("port0", "02:00:00:00:00:01", &["2001:db8:0::1/64", "2001:db8:1::1/64"])
                .unwrap();
            l2.add_interface("port1", "02:00:00:00:00:02", &["2001:db8:2::1/64"])
                .unwrap();
            l2.add_neighbor("2001:db8:1::11", "02:00:00:00:01:11").unwrap();
            l2.add_neighbor("2001:db8:2::fe", "02:00:00:00:02:fe").unwrap();
            l2.set_default_gateway("2001:db8:2::fe").unwrap();
        }
    }
    l2
}

/// One lcore's graph with synproxy wired as the design's forwarding path draws it.
struct Lb {
    graph: Graph<HeapMbuf>,
    conns: SharedConns,
    loads: Arc<LoadTable>,
    pool: HeapPool,
    snap: Snapshot,
    syn: NodeId<SynProxy>,
    ack: NodeId<SynProxyAck<HeapMbuf>>,
    seq: NodeId<SynProxySeq<HeapMbuf>>,
    world: World,
}

/// A packet the graph sent, with its port.
#[derive(Debug)]
struct Sent {
    port: u16,
    d: Decoded,
}

impl Lb {
    fn new(w: World, cfg: SynProxyConfig) -> Self {
        Self::with_snapshot(w, cfg, snapshot(&w, true, 1))
    }
    fn with_snapshot(w: World, cfg: SynProxyConfig, snap: Snapshot) -> Self {
        let loads = Arc::new(LoadTable::new(8));
        let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(
            ConnConfig {
                capacity: 64,
                buckets_log2: 6,
                seed: 3,
                timer_tick_ms: 10,
            },
            0,
            1,
            loads.clone(),
        )));
        let (s1, s2, s3) = rvs_synproxy::stages::<HeapMbuf>(cfg, SEED, conns.clone(), loads.clone());
        let mut g = Graph::new(2, 1);
        let parse = g.add(Parse::new());
        let syn = g.add(s1);
        let lookup = g.add(Lookup::new(conns.clone()));
        let ack = g.add(s2);
        let schedule = g.add(Schedule::new(loads.clone(), 5));
        let conn_new = g.add(ConnNew::new(conns.clone(), 99));
        let sink = g.add(Sink);
        let seq = g.add(s3);
        let xmit = g.add(Xmit::new(conns.clone(), Arc::new(l2(&w))));
        g.connect(parse, ParseNext::Ip, syn).unwrap();
        g.connect(parse, ParseNext::Arp, sink).unwrap();
        g.connect(syn, SynProxyNext::Lookup, lookup).unwrap();
        g.connect(lookup, LookupNext::Hit, seq).unwrap();
        g.connect(lookup, LookupNext::Miss, ack).unwrap();
        g.connect(ack, SynProxyAckNext::Schedule, schedule).unwrap();
        g.connect(schedule, ScheduleNext::New, conn_new).unwrap();
        g.connect(schedule, ScheduleNext::Local, sink).unwrap();
        g.connect(conn_new, ConnNewNext::Xmit, seq).unwrap();
        g.connect(seq, SynProxySeqNext::Xmit, xmit).unwrap();
        g.check().unwrap();
        Lb {
            graph: g,
            conns,
            loads,
            pool: HeapPool::new(64),
            snap,
            syn,
            ack,
            seq,
            world: w,
        }
    }
    /// Feed `frames` (each with its input port) as one vector at `now` (polling first, as
    /// the poll loop does), then recirculated packets until none is left; every sent packet
    /// decoded with checksums verified.
    fn run(&mut self, now: Now, frames: &[(u16, Vec<u8>)]) -> Vec<Sent> {
        for (port, f) in frames {
            let mut m = self.pool.alloc_with(f).unwrap();
            m.set_port(*port);
            self.graph.push(Packet::new(m)).unwrap();
        }
        let mut sent = Vec::new();
        loop {
            let cx = StageCx {
                now,
                lcore: 0,
                snapshot: &self.snap,
            };
            self.graph.run(&cx, &mut self.pool, true);
            for (port, q) in self.graph.exits.tx.iter_mut().enumerate() {
                for p in q.drain() {
                    let d = decode_checked(p.mbuf.data()).unwrap_or_else(|e| panic!("bad packet out: {e:?}"));
                    sent.push(Sent { port: port as u16, d });
                    self.pool.free(p.mbuf);
                }
            }
            for p in self.graph.exits.host.drain() {
                self.pool.free(p.mbuf);
            }
            if self.graph.recirculate(0, &mut self.pool) == 0 {
                break;
            }
        }
        sent
    }
    fn report(&self, name: &str) -> StageReport {
        self.graph.reports().into_iter().find(|r| r.name == name).unwrap()
    }
    fn conn(&self) -> rvs_conn::Conn {
        let c = self.conns.borrow();
        let v: Vec<_> = c.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(v.len(), 1, "one connection");
        v[0].clone()
    }
    fn key(&self) -> CookieKey {
        CookieKey::from_seed(SEED)
    }
    fn client_flow(&self) -> CookieFlow {
        CookieFlow {
            saddr: addr(self.world.client),
            daddr: addr(self.world.vip),
            sport: CPORT,
            dport: VPORT,
        }
    }
    /// From the client (through the gateway on port 1).
    fn client_pkt(&self) -> Pkt {
        ip(Pkt::eth(GW_MAC, PORT1_MAC), self.world.client, self.world.vip).tcp(CPORT, VPORT)
    }
    /// From the real server (port 0) to where the connection's outbound tuple says.
    fn rs_pkt(&self, lport: u16) -> Pkt {
        let c = self.conn();
        let to = match self.world.fwd {
            Forward::Fnat => self.world.laddr,
            _ => self.world.client,
        };
        assert_eq!(c.laddr(), addr(to));
        ip(Pkt::eth(RS_MAC, PORT0_MAC), self.world.rs, to).tcp(RPORT, lport)
    }
}

fn ip(p: Pkt, s: IpAddr, d: IpAddr) -> Pkt {
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => p.ipv4(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => p.ipv6(s, d),
        _ => unreachable!(),
    }
}

fn only(sent: Vec<Sent>) -> Sent {
    assert_eq!(sent.len(), 1, "one packet out: {sent:#?}");
    sent.into_iter().next().unwrap()
}

fn opts_no_pad(d: &Decoded) -> Vec<TcpOpt> {
    d.tcp()
        .unwrap()
        .options
        .iter()
        .filter(|o| !matches!(o, TcpOpt::Nop | TcpOpt::Eol))
        .cloned()
        .collect()
}

fn ips(d: &Decoded) -> (IpAddr, IpAddr) {
    let i = d.ip().unwrap();
    (i.src(), i.dst())
}

const CISN: u32 = 1000;
const SISN: u32 = 5_000_000;

/// Steps 1 and 2 for the default world: returns the cookie and the SYN the real server got.
fn handshake_to_rs(lb: &mut Lb, now: Now) -> (u32, Decoded) {
    let syn = lb
        .client_pkt()
        .flags(SYN)
        .seq(CISN)
        .window(64240)
        .mss(1460)
        .sack_perm()
        .wscale(7)
        .timestamps(111, 0)
        .build();
    let out = only(lb.run(now, &[(1, syn)]));
    // Step 1: the SYN-ACK back out of port 1, to the gateway's MAC.
    assert_eq!(out.port, 1);
    let eth = out.d.eth.as_ref().unwrap();
    assert_eq!((eth.src, eth.dst), (PORT1_MAC, GW_MAC));
    assert_eq!(ips(&out.d), (lb.world.vip, lb.world.client));
    assert_eq!(out.d.ip().unwrap().ttl(), 63);
    let t = out.d.tcp().unwrap();
    assert_eq!((t.sport, t.dport, t.flags), (VPORT, CPORT, SYN | ACK));
    assert_eq!(t.ack, CISN + 1);
    // DPVS defaults: MSS min(1460, 1452), SACK kept, window scale and timestamps NOPed.
    assert_eq!(opts_no_pad(&out.d), vec![TcpOpt::Mss(1452), TcpOpt::SackPermitted]);
    let want = CookieOpts {
        mss: 1452,
        wscale: None,
        sack: true,
        timestamps: false,
    };
    let cookie = lb.key().make(&lb.client_flow(), CISN, &want, now);
    assert_eq!(t.seq, cookie);
    assert_eq!(out.d.payload, Vec::<u8>::new());
    assert!(lb.conns.borrow().is_empty(), "step 1 creates nothing");

    // Step 2: the client's ACK; the real server gets a SYN.
    let ack = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(1))
        .window(502)
        .build();
    let out = only(lb.run(now, &[(1, ack)]));
    assert_eq!(out.port, 0);
    let eth = out.d.eth.as_ref().unwrap();
    assert_eq!((eth.src, eth.dst), (PORT0_MAC, RS_MAC));
    let c = lb.conn();
    assert!(c.flags.has(ConnFlags::SYNPROXY));
    assert_eq!(TcpState::from_u8(c.state), TcpState::SynSent);
    let t = out.d.tcp().unwrap();
    assert_eq!(t.flags, SYN);
    assert_eq!(t.dport, RPORT);
    assert_eq!(
        t.seq,
        CISN.wrapping_add(c.fnat_seq_delta),
        "client ISN (plus FNAT's own delta)"
    );
    assert_eq!(t.ack, 0);
    assert_eq!(t.window, 502);
    assert_eq!(opts_no_pad(&out.d), vec![TcpOpt::Mss(1452), TcpOpt::SackPermitted]);
    assert_eq!(lb.report("synproxy-ack").held, 1);
    (cookie, out.d)
}

#[test]
fn fnat_ipv4_handshake_and_data_both_ways() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    let (cookie, syn) = handshake_to_rs(&mut lb, now);
    let lport = syn.tcp().unwrap().sport;
    let c = lb.conn();
    let fd = c.fnat_seq_delta;
    assert_eq!(lb.loads.get(c.dest).inactive, 1);

    // Step 3: the server's SYN-ACK; the saved ACK goes to the server, nothing to the client.
    let synack = lb
        .rs_pkt(lport)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(fd).wrapping_add(1))
        .mss(1400)
        .sack_perm()
        .build();
    let out = only(lb.run(now, &[(0, synack)]));
    assert_eq!(out.port, 0);
    assert_eq!(ips(&out.d), (V4.laddr, V4.rs));
    let t = out.d.tcp().unwrap();
    assert_eq!(t.flags, ACK);
    assert_eq!(t.seq, (CISN + 1).wrapping_add(fd));
    assert_eq!(t.ack, SISN + 1, "cookie + 1 - delta");
    assert_eq!(t.toa(), Some((CPORT, V4.client)), "FNAT's TOA rides on the first ACK");
    let c = lb.conn();
    assert_eq!(c.syn_proxy_delta, cookie.wrapping_sub(SISN));
    assert_eq!(TcpState::from_u8(c.state), TcpState::Established);
    assert_eq!((lb.loads.get(c.dest).active, lb.loads.get(c.dest).inactive), (1, 0));
    assert_eq!(lb.report("synproxy-seq").dropped("synack_absorbed"), 1);
    let delta = c.syn_proxy_delta;

    // Client data with a SACK block over server data (in the cookie's numbering).
    let data = lb
        .client_pkt()
        .flags(PSH | ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(1))
        .sack(&[(cookie.wrapping_add(101), cookie.wrapping_add(201))])
        .payload(b"GET /")
        .build();
    let out = only(lb.run(now, &[(1, data)]));
    assert_eq!(out.port, 0);
    let t = out.d.tcp().unwrap();
    assert_eq!(t.seq, (CISN + 1).wrapping_add(fd));
    assert_eq!(t.ack, SISN + 1);
    assert!(
        t.options.contains(&TcpOpt::Sack(vec![(SISN + 101, SISN + 201)])),
        "{:?}",
        t.options
    );
    assert_eq!(out.d.payload, b"GET /");

    // Server data back: seq moved into the cookie's numbering, ack back to the client's.
    let reply = lb
        .rs_pkt(lport)
        .flags(PSH | ACK)
        .seq(SISN + 1)
        .ack((CISN + 6).wrapping_add(fd))
        .payload(b"200 OK")
        .build();
    let out = only(lb.run(now, &[(0, reply)]));
    assert_eq!(out.port, 1);
    assert_eq!(ips(&out.d), (V4.vip, V4.client));
    let t = out.d.tcp().unwrap();
    assert_eq!((t.sport, t.dport), (VPORT, CPORT));
    assert_eq!(t.seq, (SISN + 1).wrapping_add(delta));
    assert_eq!(t.seq, cookie.wrapping_add(1));
    assert_eq!(t.ack, CISN + 6);
    let seq = lb.graph.stage(lb.seq).counters();
    assert_eq!((seq.bound, seq.established, seq.released), (1, 1, 1));
    assert_eq!((seq.adjusted_in, seq.adjusted_out), (1, 1));
}

#[test]
fn acks_in_one_vector_and_while_waiting_are_saved_and_released_in_order() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    let syn = lb.client_pkt().flags(SYN).seq(CISN).mss(1460).build();
    let cookie = only(lb.run(now, &[(1, syn)])).d.tcp().unwrap().seq;
    let base = lb.client_pkt();
    let ack = |w: u16| {
        base.clone()
            .flags(ACK)
            .seq(CISN + 1)
            .ack(cookie.wrapping_add(1))
            .window(w)
            .build()
    };
    // Two ACKs in one vector: one SYN to the server, both saved.
    let out = lb.run(now, &[(1, ack(100)), (1, ack(101))]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].d.tcp().unwrap().flags, SYN);
    // A third one later finds the connection (SYN_SENT) and is saved by step 3; a fourth is refused.
    assert!(lb.run(now, &[(1, ack(102))]).is_empty());
    assert!(lb.run(now, &[(1, ack(103))]).is_empty());
    assert_eq!(lb.report("synproxy-seq").dropped("ack_queue_full"), 1);
    // A client packet without ACK while waiting is dropped.
    let bare = lb.client_pkt().flags(0).seq(CISN + 1).build();
    assert!(lb.run(now, &[(1, bare)]).is_empty());
    assert_eq!(lb.report("synproxy-seq").dropped("not_ack"), 1);
    let lport = lb.conn().lport();
    let fd = lb.conn().fnat_seq_delta;
    let synack = lb
        .rs_pkt(lport)
        .flags(SYN | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(fd).wrapping_add(1))
        .build();
    let out = lb.run(now, &[(0, synack)]);
    let wins: Vec<u16> = out.iter().map(|s| s.d.tcp().unwrap().window).collect();
    assert_eq!(wins, vec![100, 101, 102], "released in arrival order");
    for s in &out {
        assert_eq!(s.port, 0);
        assert_eq!(s.d.tcp().unwrap().ack, SISN + 1);
    }
}

#[test]
fn bad_cookie_is_dropped_and_creates_nothing() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    let syn = lb.client_pkt().flags(SYN).seq(CISN).build();
    let cookie = only(lb.run(now, &[(1, syn)])).d.tcp().unwrap().seq;
    let bad = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(2))
        .build();
    // Another ISN than the SYN's: fails too.
    let other_isn = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 2)
        .ack(cookie.wrapping_add(1))
        .build();
    assert!(lb.run(now, &[(1, bad), (1, other_isn)]).is_empty());
    assert_eq!(lb.report("synproxy-ack").dropped("bad_cookie"), 2);
    assert!(lb.conns.borrow().is_empty());
    // A valid cookie four minutes later is refused as well.
    let late = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(1))
        .build();
    assert!(lb.run(Now::from_secs(T0 + 240), &[(1, late)]).is_empty());
    assert_eq!(lb.report("synproxy-ack").dropped("bad_cookie"), 3);
}

#[test]
fn step_one_leaves_other_traffic_alone() {
    // Not a synproxy service: the SYN makes a connection and goes to the server.
    let mut lb = Lb::with_snapshot(V4, SynProxyConfig::default(), snapshot(&V4, false, 1));
    let now = Now::from_secs(T0);
    let syn = lb.client_pkt().flags(SYN).seq(CISN).build();
    let out = only(lb.run(now, &[(1, syn.clone())]));
    assert_eq!((out.port, out.d.tcp().unwrap().flags), (0, SYN));
    assert!(!lb.conn().flags.has(ConnFlags::SYNPROXY));
    // A synproxy service whose only destination has weight 0: the SYN is dropped (DPVS).
    let mut lb = Lb::with_snapshot(V4, SynProxyConfig::default(), snapshot(&V4, true, 0));
    assert!(lb.run(now, &[(1, syn)]).is_empty());
    assert_eq!(lb.report("synproxy-syn").dropped("no_dest"), 1);
    // DR cannot be proxied (replies bypass the balancer): passed on, counted.
    let dr = World { fwd: Forward::Dr, ..V4 };
    let mut lb = Lb::with_snapshot(dr, SynProxyConfig::default(), snapshot(&dr, true, 1));
    let syn = lb.client_pkt().flags(SYN).seq(CISN).build();
    let out = only(lb.run(now, &[(1, syn)]));
    assert_eq!(
        (out.port, out.d.tcp().unwrap().flags),
        (0, SYN),
        "DR forwards the client's SYN"
    );
    assert_eq!(lb.graph.stage(lb.syn).counters().unsupported, 1);
    assert_eq!(lb.graph.stage(lb.syn).counters().synacks, 0);
}

#[test]
fn server_rst_reaches_the_client_in_its_numbering_and_frees_saved_acks() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    let (cookie, syn) = handshake_to_rs(&mut lb, now);
    let lport = syn.tcp().unwrap().sport;
    let fd = lb.conn().fnat_seq_delta;
    let rst = lb
        .rs_pkt(lport)
        .flags(RST | ACK)
        .seq(SISN)
        .ack(CISN.wrapping_add(fd).wrapping_add(1))
        .build();
    let out = only(lb.run(now, &[(0, rst)]));
    assert_eq!(out.port, 1);
    let t = out.d.tcp().unwrap();
    assert_eq!(t.flags, RST | ACK);
    assert_eq!(t.seq, cookie.wrapping_add(1));
    assert_eq!(t.ack, CISN + 1);
    assert_eq!(TcpState::from_u8(lb.conn().state), TcpState::Close);
    assert_eq!(lb.report("synproxy-seq").dropped("ack_freed"), 1);
    assert_eq!(lb.graph.stage(lb.seq).counters().reset, 1);
}

#[test]
fn silent_server_gets_three_syn_retries_then_the_connection_expires_and_acks_are_freed() {
    let cfg = SynProxyConfig::default();
    let mut lb = Lb::new(V4, cfg);
    let t0 = Now::from_secs(T0);
    let (_, first) = handshake_to_rs(&mut lb, t0);
    let mut retries = Vec::new();
    for ms in (100..=8000).step_by(100) {
        let now = t0.plus_nanos(ms * 1_000_000);
        for s in lb.run(now, &[]) {
            retries.push((ms, s));
        }
        let snap = &lb.snap;
        lb.conns.borrow_mut().expire(now, 64, snap);
    }
    let at: Vec<u64> = retries.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(at, vec![1000, 2000, 3000], "every syn_retry_ms, syn_retries times");
    for (_, s) in &retries {
        assert_eq!(s.port, 0);
        let (t, f) = (s.d.tcp().unwrap(), first.tcp().unwrap());
        assert_eq!((t.flags, t.seq, t.sport, t.dport), (SYN, f.seq, f.sport, f.dport));
        assert_eq!(t.options, f.options);
    }
    // The connection expired (SYN_SENT timeout after the last retry), its saved ACK freed.
    assert!(lb.conns.borrow().is_empty());
    assert_eq!(lb.report("synproxy-seq").dropped("ack_freed"), 1);
    assert_eq!(lb.pool.available(), lb.pool.capacity(), "no buffer leaked");
    assert_eq!(lb.loads.get(DestId(1)).inactive, 0);
}

#[test]
fn nat_ipv6_handshake_and_data() {
    let w = World {
        client: v6(5, 5),
        vip: v6(0x100, 0),
        laddr: v6(1, 1),
        rs: v6(0x11, 1),
        fwd: Forward::Nat,
    };
    let mut lb = Lb::new(w, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    let syn = lb
        .client_pkt()
        .flags(SYN)
        .seq(CISN)
        .mss(1440)
        .wscale(9)
        .sack_perm()
        .build();
    let out = only(lb.run(now, &[(1, syn)]));
    assert_eq!(ips(&out.d), (w.vip, w.client));
    assert_eq!(out.d.ip().unwrap().ttl(), 63, "hop limit");
    let t = out.d.tcp().unwrap();
    let want = CookieOpts {
        mss: 1440,
        wscale: None,
        sack: true,
        timestamps: false,
    };
    let cookie = lb.key().make(&lb.client_flow(), CISN, &want, now);
    assert_eq!((t.seq, t.ack, t.flags), (cookie, CISN + 1, SYN | ACK));
    let ack = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(1))
        .build();
    let out = only(lb.run(now, &[(1, ack)]));
    assert_eq!(ips(&out.d), (w.client, w.rs), "NAT: only the destination changes");
    let t = out.d.tcp().unwrap();
    assert_eq!((t.flags, t.seq, t.dport), (SYN, CISN, RPORT));
    assert_eq!(opts_no_pad(&out.d), vec![TcpOpt::Mss(1440), TcpOpt::SackPermitted]);
    let synack = lb.rs_pkt(CPORT).flags(SYN | ACK).seq(SISN).ack(CISN + 1).build();
    let out = only(lb.run(now, &[(0, synack)]));
    let t = out.d.tcp().unwrap();
    assert_eq!((out.port, t.flags, t.seq, t.ack), (0, ACK, CISN + 1, SISN + 1));
    let reply = lb
        .rs_pkt(CPORT)
        .flags(ACK)
        .seq(SISN + 1)
        .ack(CISN + 1)
        .payload(b"hi")
        .build();
    let out = only(lb.run(now, &[(0, reply)]));
    assert_eq!(ips(&out.d), (w.vip, w.client));
    let t = out.d.tcp().unwrap();
    assert_eq!((out.port, t.seq, t.ack), (1, cookie.wrapping_add(1), CISN + 1));
}

#[test]
fn vlan_tag_is_kept_on_the_synack() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let syn = ip(Pkt::eth(GW_MAC, PORT1_MAC).vlan(7), V4.client, V4.vip)
        .tcp(CPORT, VPORT)
        .flags(SYN)
        .seq(CISN)
        .payload(b"fast open data is cut")
        .build();
    let out = only(lb.run(Now::from_secs(T0), &[(1, syn)]));
    assert_eq!(out.d.vlans.len(), 1);
    assert_eq!(out.d.vlans[0].vid, 7);
    assert_eq!(out.d.payload, Vec::<u8>::new());
    assert_eq!(
        opts_no_pad(&out.d),
        Vec::<TcpOpt>::new(),
        "no MSS option offered, none answered"
    );
    assert_eq!(lb.graph.stage(lb.ack).counters().accepted, 0);
}

rvs_testkit::install_counting_allocator!();

impl Lb {
    /// One vector of `frames` with the allocations of the graph run counted; returns the
    /// decoded packets sent (decoded outside the count) and the count.
    fn run_counted(&mut self, now: Now, frames: &[(u16, Vec<u8>)]) -> (Vec<Sent>, u64) {
        for (port, f) in frames {
            let mut m = self.pool.alloc_with(f).unwrap();
            m.set_port(*port);
            self.graph.push(Packet::new(m)).unwrap();
        }
        let cx = StageCx {
            now,
            lcore: 0,
            snapshot: &self.snap,
        };
        let (graph, pool) = (&mut self.graph, &mut self.pool);
        let ((), n) = rvs_testkit::alloc::allocations_during(|| graph.run(&cx, pool, true));
        let mut sent = Vec::new();
        for (port, q) in self.graph.exits.tx.iter_mut().enumerate() {
            for p in q.drain() {
                let d = decode_checked(p.mbuf.data()).unwrap();
                sent.push(Sent { port: port as u16, d });
                self.pool.free(p.mbuf);
            }
        }
        (sent, n)
    }
}

#[test]
fn no_allocation_per_packet_after_warm_up() {
    let mut lb = Lb::new(V4, SynProxyConfig::default());
    let now = Now::from_secs(T0);
    handshake_to_rs(&mut lb, now);
    let cport = CPORT + 1;
    let client = || ip(Pkt::eth(GW_MAC, PORT1_MAC), V4.client, V4.vip).tcp(cport, VPORT);
    let (out, n) = lb.run_counted(now, &[(1, client().flags(SYN).seq(7).mss(1460).sack_perm().build())]);
    assert_eq!(n, 0, "step 1");
    let cookie = only(out).d.tcp().unwrap().seq;
    let ack = client().flags(ACK).seq(8).ack(cookie.wrapping_add(1)).build();
    let (out, n) = lb.run_counted(now, &[(1, ack)]);
    assert_eq!(n, 0, "step 2 and the SYN to the server");
    let syn = only(out).d.tcp().unwrap().clone();
    let rs = || ip(Pkt::eth(RS_MAC, PORT0_MAC), V4.rs, V4.laddr).tcp(RPORT, syn.sport);
    let synack = rs().flags(SYN | ACK).seq(SISN).ack(syn.seq.wrapping_add(1)).build();
    let (out, n) = lb.run_counted(now, &[(0, synack)]);
    assert_eq!(n, 0, "step 3");
    assert_eq!(only(out).d.tcp().unwrap().ack, SISN + 1);
    let data = client()
        .flags(ACK)
        .seq(8)
        .ack(cookie.wrapping_add(1))
        .payload(b"x")
        .build();
    let back = rs()
        .flags(ACK)
        .seq(SISN + 1)
        .ack(syn.seq.wrapping_add(2))
        .payload(b"y")
        .build();
    let (out, n) = lb.run_counted(now, &[(1, data), (0, back)]);
    assert_eq!(n, 0, "adjusted both ways");
    assert_eq!(out.len(), 2);
}

#[test]
fn ack_whose_syn_schedule_refuses_is_freed_at_the_next_poll() {
    // Weight 0: step 1 refuses SYNs, but a valid cookie made before the weight changed still
    // passes step 2; schedule finds no destination for its SYN.
    let mut lb = Lb::with_snapshot(V4, SynProxyConfig::default(), snapshot(&V4, true, 0));
    let now = Now::from_secs(T0);
    let opts = CookieOpts {
        mss: 536,
        ..CookieOpts::default()
    };
    let cookie = lb.key().make(&lb.client_flow(), CISN, &opts, now);
    let ack = lb
        .client_pkt()
        .flags(ACK)
        .seq(CISN + 1)
        .ack(cookie.wrapping_add(1))
        .build();
    assert!(lb.run(now, &[(1, ack)]).is_empty());
    assert_eq!(lb.report("schedule").dropped("no_dest"), 1);
    assert_eq!(lb.report("synproxy-ack").held, 1);
    assert!(lb.run(now, &[]).is_empty());
    assert_eq!(lb.report("synproxy-ack").dropped("not_scheduled"), 1);
    assert_eq!(
        lb.pool.available(),
        lb.pool.capacity(),
        "the saved ACK went back to the pool"
    );
}
