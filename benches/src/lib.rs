//! rvs-benches: criterion (wall time) and iai-callgrind (instruction count) benches for the
//! stages, one stage at a time over heap buffers, plus the instruction-count guard
//! (`benches/iai-guard`) that fails when a bench's instructions grow by more than 3% over the
//! baselines committed in `benches/iai-baselines.json`.
//!
//! This library holds the fixtures both kinds of bench share. A [`Bench`] wraps one stage in
//! its [`Node`] (so cycle reads, counter flushes and queue pushes are measured, as the graph
//! runs them), with a ring of packet [`Template`]s, a [`HeapPool`] and the service snapshot.
//! One step is: [`Bench::run`] (the measured part: one `Node::run` over one vector), then
//! [`Bench::recycle`] (every packet the stage disposed of goes back to the pool, after an
//! optional per-packet hook such as removing the connection conn-new just made) and
//! [`Bench::load`] (the next vector is built from the next templates). Packets are built with
//! the test kit's [`Pkt`] builder and their metadata filled by the real [`rvs_parse::parse`],
//! so each stage sees exactly what the stage before it would hand on.
//!
//! Every constructor runs one warm-up vector (scheduler instances and FNAT local addresses are
//! synced on the first vector, off the measured path) and checks that every packet of it went
//! where the bench means it to go ([`Exit`]); a bench that measured drops would measure the
//! wrong thing, so a mismatch panics at setup with the stage's counters.
//!
//! Per-packet figures are per-vector figures divided by the vector size: criterion's
//! throughput is set to the vector size (elements = packets), and `benches/iai-guard` prints
//! instructions per packet.
//!
//! [`GraphBench`] does the same for one lcore's whole graph ([`Worker`]) fed raw frames.
//!
//! Not measured here: synproxy (the crate has no stage yet).

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, LcoreConns, SharedConns, Tuple};
use rvs_conn_new::{ConnNew, ConnNewNext};
use rvs_core::addr::{Addr, Proto};
use rvs_core::label::Label;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::mbuf::{HeapMbuf, HeapPool, PacketPool};
use rvs_core::meta::{Dir, PacketMeta, SchedChoice};
use rvs_core::rng::SplitMix64;
use rvs_core::service::{Defence, Dest, DestId, Forward, Service, ServiceKey, Snapshot};
use rvs_core::stage::{Exits, Node, Packet, PacketVec, Stage, StageCx, VECTOR_MAX};
use rvs_core::time::Now;
use rvs_lookup::{Lookup, LookupNext};
use rvs_parse::{Parse, ParseNext};
use rvs_pipeline::config::Config;
use rvs_pipeline::worker::Worker;
use rvs_schedule::{Schedule, ScheduleNext};
use rvs_testkit::builder::{ACK, Pkt, SYN, mac};
use rvs_xmit::{L2, Xmit};

/// Vector sizes every stage is measured with: the default and the largest.
pub const VECTORS: [usize; 2] = [32, 256];

/// Packets in a criterion bench's template ring: consecutive vectors touch different flows
/// (and, for lookup, different connection records), so nothing is cache-hot by replay.
pub const RING: usize = 8192;

/// The virtual address of the bench services.
pub const VIP: [u8; 4] = [198, 18, 0, 100];

/// One input packet: its bytes and the metadata the stages before this one filled.
#[derive(Debug, Clone)]
pub struct Template {
    /// Wire bytes (Ethernet frame).
    pub bytes: Vec<u8>,
    /// Metadata as the bench's stage receives it.
    pub meta: PacketMeta,
}

impl Template {
    /// A raw frame with fresh metadata (the input of parse).
    pub fn raw(bytes: Vec<u8>) -> Self {
        Template {
            bytes,
            meta: PacketMeta::new(),
        }
    }
    /// A frame with its metadata filled by the real parse function, as parse hands it on.
    pub fn parsed(bytes: Vec<u8>) -> Self {
        let mut meta = PacketMeta::new();
        match rvs_parse::parse(&bytes, &mut meta, true) {
            Ok(rvs_parse::Parsed::Ip { .. }) => Template { bytes, meta },
            other => panic!("bench packet does not parse as IP: {other:?}"),
        }
    }
}

/// Where a bench's packets must go for the bench to measure what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// To the next-stage label of this index.
    Next(usize),
    /// Transmitted (any port).
    Tx,
}

/// What happens to each packet a stage disposed of before it goes back to the pool.
pub type Hook = Box<dyn FnMut(&Snapshot, &Packet<HeapMbuf>)>;

/// One stage ready to run vector after vector over heap buffers.
pub struct Bench<S: Stage<HeapMbuf>> {
    /// The stage in its node (queues and counters).
    pub node: Node<HeapMbuf, S>,
    /// The service snapshot every vector sees.
    pub snap: Snapshot,
    /// Packets per vector.
    pub vector: usize,
    input: PacketVec<HeapMbuf>,
    exits: Exits<HeapMbuf>,
    pool: HeapPool,
    templates: Vec<Template>,
    cursor: usize,
    now: Now,
    hook: Option<Hook>,
}

impl<S: Stage<HeapMbuf>> std::fmt::Debug for Bench<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("stage", &S::NAME)
            .field("vector", &self.vector)
            .field("templates", &self.templates.len())
            .finish()
    }
}

impl<S: Stage<HeapMbuf>> Bench<S> {
    /// Wrap `stage`; run one warm-up vector and check every packet took `expect`; leave the
    /// next vector loaded.
    pub fn new(
        stage: S,
        snap: Snapshot,
        templates: Vec<Template>,
        vector: usize,
        expect: Exit,
        hook: Option<Hook>,
    ) -> Self {
        assert!(
            templates.len() >= vector,
            "{}: {} templates for a vector of {vector}",
            S::NAME,
            templates.len()
        );
        let cap = 4 * vector.max(32);
        let mut b = Bench {
            node: Node::new(stage, cap),
            snap,
            vector,
            input: PacketVec::with_capacity(cap),
            exits: Exits::new(2, 1, cap),
            pool: HeapPool::new(2 * cap),
            templates,
            cursor: 0,
            now: Now::from_secs(2),
            hook,
        };
        b.load();
        b.run();
        let got = match expect {
            Exit::Next(i) => b.node.queue(S::Next::ALL[i]).len(),
            Exit::Tx => b.exits.tx.iter().map(PacketVec::len).sum(),
        };
        assert_eq!(
            got,
            vector,
            "{}: warm-up vector did not all go to {expect:?}: {:?}",
            S::NAME,
            b.node.stats().report()
        );
        b.recycle();
        b.load();
        b
    }

    /// Build the next vector from the next templates (not measured).
    pub fn load(&mut self) {
        while self.input.len() < self.vector {
            let t = &self.templates[self.cursor];
            self.cursor = (self.cursor + 1) % self.templates.len();
            let Some(mbuf) = self.pool.alloc_with(&t.bytes) else {
                panic!("bench pool exhausted: a stage kept buffers");
            };
            let _ = self.input.push(Packet { mbuf, meta: t.meta });
        }
    }

    /// The measured part: the stage over the loaded vector, through [`Node::run`].
    #[inline(never)]
    pub fn run(&mut self) {
        self.now = self.now.plus_nanos(1000);
        let cx = StageCx {
            now: self.now,
            lcore: 0,
            snapshot: &self.snap,
        };
        self.node.run(&cx, &mut self.input, &mut self.exits, &mut self.pool);
    }

    /// Give every packet the stage disposed of back to the pool, after the hook (not
    /// measured). Returns how many came back.
    pub fn recycle(&mut self) -> usize {
        let mut n = 0;
        let mut give = |p: Packet<HeapMbuf>, snap: &Snapshot, hook: &mut Option<Hook>, pool: &mut HeapPool| {
            if let Some(h) = hook.as_mut() {
                h(snap, &p);
            }
            pool.free(p.mbuf);
            n += 1;
        };
        for &l in S::Next::ALL {
            for p in self.node.queue(l).drain() {
                give(p, &self.snap, &mut self.hook, &mut self.pool);
            }
        }
        let e = &mut self.exits;
        for q in
            e.tx.iter_mut()
                .chain(e.redirect.iter_mut())
                .chain(std::iter::once(&mut e.host))
        {
            for p in q.drain() {
                give(p, &self.snap, &mut self.hook, &mut self.pool);
            }
        }
        n
    }

    /// One full step: run, recycle, load the next vector.
    pub fn step(&mut self) {
        self.run();
        self.recycle();
        self.load();
    }

    /// Wall time of `iters` vectors, counting only [`Bench::run`] (criterion's
    /// `iter_custom`); recycling and loading between vectors is not counted.
    pub fn timed(&mut self, iters: u64) -> std::time::Duration {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..iters {
            let t0 = std::time::Instant::now();
            self.run();
            total += t0.elapsed();
            self.recycle();
            self.load();
        }
        total
    }

    /// Packets in the template ring.
    pub fn ring(&self) -> usize {
        self.templates.len()
    }
}

fn ip4(a: Addr) -> Ipv4Addr {
    Ipv4Addr::from(a.v4_octets())
}

fn tcp4(src: Addr, dst: Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Pkt::eth(mac(1), mac(2))
        .ipv4(ip4(src), ip4(dst))
        .tcp(sport, dport)
        .flags(flags)
        .seq(0x1000_0000 ^ u32::from(sport))
        .payload(&[0x5a; 64])
        .build()
}

// ---------------------------------------------------------------- parse

/// The packet kinds parse is measured with.
pub const PARSE_KINDS: [&str; 3] = ["ipv4_tcp", "ipv6_tcp", "ipv4_opts_tcp"];

/// A frame of `kind` (see [`PARSE_KINDS`]) from source port `sport`: TCP ACK with 64 bytes of
/// payload; `ipv4_opts_tcp` carries 12 bytes of IPv4 options (NOP padding, a record-route
/// slot) that parse skips by IHL.
pub fn parse_frame(kind: &str, sport: u16) -> Vec<u8> {
    let e = Pkt::eth(mac(1), mac(2));
    let p = match kind {
        "ipv4_tcp" => e.ipv4([198, 18, 5, 5], VIP),
        "ipv6_tcp" => e.ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        ),
        "ipv4_opts_tcp" => e
            .ipv4([198, 18, 5, 5], VIP)
            .ip_options(&[1, 1, 1, 7, 7, 4, 0, 0, 0, 0, 0, 0]),
        other => panic!("unknown parse kind {other}"),
    };
    p.tcp(sport, 80).flags(ACK).payload(&[0x5a; 64]).build()
}

/// Parse over vectors of `vector` frames of `kind`, drawn from `ring` frames.
pub fn parse(kind: &str, vector: usize, ring: usize) -> Bench<Parse> {
    let t = (0..ring.max(vector))
        .map(|i| Template::raw(parse_frame(kind, 1024 + (i % 60000) as u16)))
        .collect();
    Bench::new(
        Parse::new(),
        Snapshot::empty(),
        t,
        vector,
        Exit::Next(ParseNext::Ip.index()),
        None,
    )
}

// ---------------------------------------------------------------- lookup

/// A random client tuple to the VIP's port 80.
fn client(rng: &mut SplitMix64, vip: Addr) -> Tuple {
    Tuple {
        proto: Proto::Tcp,
        saddr: Addr::from_v4_u32(0xc612_0000 | rng.below(1 << 16) as u32),
        daddr: vip,
        sport: 1024 + rng.below(60000) as u16,
        dport: 80,
    }
}

/// A table of `n` FNAT connections to `vip` (lcore 0 of 1), built the way the lookup crate's
/// own bench builds it: one bucket per tuple, local addresses 198.18.1.x so local ports never
/// run out at 1M. Returns the table and its connections.
pub fn fnat_table(n: usize, capacity: usize, vip: Addr, loads: Arc<LoadTable>) -> (SharedConns, Vec<Conn>) {
    let cfg = ConnConfig {
        capacity,
        buckets_log2: (capacity.next_power_of_two().trailing_zeros() + 1) as u8,
        seed: 9,
        timer_tick_ms: 10,
    };
    let mut t = LcoreConns::new(cfg, 0, 1, loads);
    let mut rng = SplitMix64::new(42);
    let laddr = Addr::v4([198, 18, 1, 1]);
    let mut conns = Vec::with_capacity(n);
    let mut lport = 0u32;
    while conns.len() < n {
        let inb = client(&mut rng, vip);
        lport += 1;
        let la = Addr::from_v4_u32(laddr.v4_u32() + (lport >> 16));
        let rs = Addr::from_v4_u32(0xc612_0b00 | rng.below(64) as u32);
        let c = Conn {
            in_tuple: inb,
            out_tuple: Conn::out_tuple_for(Forward::Fnat, &inb, rs, 8080, la, (lport & 0xffff) as u16),
            fwd: Forward::Fnat,
            ..Default::default()
        };
        if t.insert(c.clone(), Now::from_secs(1)).is_ok() {
            conns.push(c);
        }
    }
    (Rc::new(RefCell::new(t)), conns)
}

/// Lookup over a table of `n` FNAT connections. Hits (`hit`) are ACKs of random
/// connections, half inbound (client -> VIP) and half outbound (real server -> local
/// address); misses are SYNs of flows the table does not hold.
pub fn lookup(n: usize, hit: bool, vector: usize, ring: usize) -> Bench<Lookup> {
    let vip = Addr::v4(VIP);
    let (conns, list) = fnat_table(n, n, vip, Arc::new(LoadTable::new(4)));
    let mut rng = SplitMix64::new(7);
    let ring = ring.max(vector);
    let t = if hit {
        (0..ring)
            .map(|i| {
                let c = &list[rng.below(n as u64) as usize];
                let u = if i % 2 == 0 { &c.in_tuple } else { &c.out_tuple };
                Template::parsed(tcp4(u.saddr, u.daddr, u.sport, u.dport, ACK))
            })
            .collect()
    } else {
        let table = conns.borrow();
        let mut v = Vec::with_capacity(ring);
        while v.len() < ring {
            let u = client(&mut rng, Addr::v4([198, 18, 0, 101]));
            if table.lookup(&u).is_none() {
                v.push(Template::parsed(tcp4(u.saddr, u.daddr, u.sport, u.dport, SYN)));
            }
        }
        v
    };
    let label = if hit { LookupNext::Hit } else { LookupNext::Miss };
    Bench::new(
        Lookup::new(conns),
        Snapshot::empty(),
        t,
        vector,
        Exit::Next(label.index()),
        None,
    )
}

// ---------------------------------------------------------------- schedule

/// Schedulers measured through the schedule stage (the scheduler crate's own benches time
/// every scheduler's decision alone).
pub const SCHED_NAMES: [&str; 4] = ["rr", "wlc", "sh", "mh"];

/// Destination counts the schedule stage is measured with.
pub const DEST_COUNTS: [u32; 2] = [8, 256];

/// A snapshot with one TCP service at [`VIP`]:80 scheduled by `sched` over `dests`
/// destinations (198.18.16.0 + i, weights 1..=4) forwarding by `fwd`, with four local
/// addresses 198.18.2.1-4 for FNAT.
pub fn service_snapshot(sched: &str, dests: u32, fwd: Forward) -> Snapshot {
    let Some(factory) = rvs_schedulers::factory(sched) else {
        panic!("unknown scheduler {sched}");
    };
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Addr::v4(VIP),
        port: 80,
    };
    let mut s = Service::new(key, fwd, factory);
    s.dests = (0..dests)
        .map(|i| {
            let mut d = Dest::new(
                DestId(i),
                Addr::from_v4_u32(0xc612_1000 + i),
                if fwd.keeps_port() { 80 } else { 8080 },
            );
            d.fwd = fwd;
            d.weight = 1 + i % 4;
            d
        })
        .collect();
    s.local_addrs = (1..=4).map(|i| Addr::v4([198, 18, 2, i])).collect();
    match Snapshot::build(1, 1, Defence::default(), vec![s]) {
        Ok(snap) => snap,
        Err(e) => panic!("bench service: {e}"),
    }
}

/// Schedule over SYNs of random new flows to the service of `sched` with `dests`
/// destinations (a few connections counted on each, as the scheduler crate's fixture does).
pub fn schedule(sched: &str, dests: u32, vector: usize, ring: usize) -> Bench<Schedule> {
    let snap = service_snapshot(sched, dests, Forward::Fnat);
    let loads = Arc::new(LoadTable::new(dests as usize));
    let mut rng = SplitMix64::new(0xbe7c_4000 ^ u64::from(dests));
    for i in 0..dests {
        for _ in 0..rng.below(8) {
            loads.inc(DestId(i), Counter::Active);
        }
        for _ in 0..rng.below(16) {
            loads.inc(DestId(i), Counter::Inactive);
        }
    }
    let vip = Addr::v4(VIP);
    let t = (0..ring.max(vector))
        .map(|_| {
            let u = client(&mut rng, vip);
            Template::parsed(tcp4(u.saddr, u.daddr, u.sport, u.dport, SYN))
        })
        .collect();
    Bench::new(
        Schedule::new(loads, 5),
        snap,
        t,
        vector,
        Exit::Next(ScheduleNext::New.index()),
        None,
    )
}

// ---------------------------------------------------------------- conn-new

/// Connections already in the table when conn-new is measured.
pub const CONN_NEW_PRELOAD: usize = 1 << 16;

/// Conn-new creating connections for SYNs to a `fwd` service of 8 destinations (rr's
/// choice, destination `i % 8`), in a table already holding [`CONN_NEW_PRELOAD`]
/// connections. Each connection made is removed again before its template is reused (in
/// [`Bench::recycle`], not measured), so every measured packet creates one.
pub fn conn_new(fwd: Forward, vector: usize, ring: usize) -> Bench<ConnNew> {
    let snap = service_snapshot("rr", 8, fwd);
    let loads = Arc::new(LoadTable::new(8));
    let ring = ring.max(vector);
    let (conns, _) = fnat_table(
        CONN_NEW_PRELOAD,
        CONN_NEW_PRELOAD + ring + 1024,
        Addr::v4([198, 18, 0, 200]),
        loads,
    );
    let mut rng = SplitMix64::new(11);
    let vip = Addr::v4(VIP);
    let mut seen = std::collections::HashSet::new();
    let mut t = Vec::with_capacity(ring);
    while t.len() < ring {
        let u = client(&mut rng, vip);
        if !seen.insert((u.saddr, u.sport)) {
            continue;
        }
        let mut tp = Template::parsed(tcp4(u.saddr, u.daddr, u.sport, u.dport, SYN));
        tp.meta.sched = SchedChoice {
            svc: 0,
            dest: (t.len() % 8) as u32,
            reserved: false,
        };
        t.push(tp);
    }
    let table = conns.clone();
    let hook: Hook = Box::new(move |snap, p| {
        if table.borrow_mut().remove(p.meta.conn, snap).is_none() {
            panic!("conn-new bench: packet without a new connection");
        }
    });
    Bench::new(
        ConnNew::new(conns, 0x5eed),
        snap,
        t,
        vector,
        Exit::Next(ConnNewNext::Xmit.index()),
        Some(hook),
    )
}

// ---------------------------------------------------------------- xmit

/// The transmit cases: forwarding mode and direction (DR has no outbound: replies go
/// straight from the real server to the client).
pub const XMIT_CASES: [(&str, Forward, Dir); 5] = [
    ("fnat_in", Forward::Fnat, Dir::In),
    ("fnat_out", Forward::Fnat, Dir::Out),
    ("nat_in", Forward::Nat, Dir::In),
    ("nat_out", Forward::Nat, Dir::Out),
    ("dr_in", Forward::Dr, Dir::In),
];

/// Interfaces, neighbours and routes of the xmit and graph benches: port 0 faces the real
/// servers (198.18.1.0/24, local addresses 198.18.1.1-4), port 1 the clients through the
/// gateway 198.18.2.254.
pub fn bench_l2() -> L2 {
    let mut l2 = L2::new();
    let r = (|| {
        l2.add_interface(
            "port0",
            "02:00:00:00:00:01",
            &[
                "198.18.0.1/24",
                "198.18.1.1/24",
                "198.18.1.2/24",
                "198.18.1.3/24",
                "198.18.1.4/24",
            ],
        )?;
        l2.add_interface("port1", "02:00:00:00:00:02", &["198.18.2.1/24"])?;
        for i in 0..8 {
            l2.add_neighbor(
                &format!("198.18.1.{}", 11 + i),
                &format!("02:00:00:00:01:{:02x}", 0x11 + i),
            )?;
        }
        l2.add_neighbor("198.18.2.254", "02:00:00:00:02:fe")?;
        l2.set_default_gateway("198.18.2.254")
    })();
    if let Err(e) = r {
        panic!("bench l2: {e}");
    }
    l2
}

/// Xmit over `ring` connections of mode `fwd` (real servers 198.18.1.11-18, FNAT local
/// addresses 198.18.1.1-4), one packet per connection in direction `dir`: an ACK with 64 bytes
/// of payload; FNAT outbound packets carry a two-edge SACK block (rewritten by the sequence
/// delta). The stage rewrites in place, so every vector is rebuilt from the templates.
pub fn xmit(fwd: Forward, dir: Dir, vector: usize, ring: usize) -> Bench<Xmit> {
    let ring = ring.max(vector);
    let loads = Arc::new(LoadTable::new(8));
    let cfg = ConnConfig {
        capacity: ring,
        buckets_log2: (ring.next_power_of_two().trailing_zeros() + 1) as u8,
        seed: 3,
        timer_tick_ms: 10,
    };
    let conns: SharedConns = Rc::new(RefCell::new(LcoreConns::new(cfg, 0, 1, loads)));
    let mut t = Vec::with_capacity(ring);
    for i in 0..ring {
        let inb = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::from_v4_u32(0xc612_0500 + (i as u32 >> 14)),
            sport: 1024 + (i as u16 & 0x3fff),
            daddr: Addr::v4(VIP),
            dport: 80,
        };
        let rs = Addr::v4([198, 18, 1, 11 + (i % 8) as u8]);
        let rport = if fwd.keeps_port() { 80 } else { 8080 };
        let la = Addr::v4([198, 18, 1, 1 + (i % 4) as u8]);
        let c = Conn {
            in_tuple: inb,
            out_tuple: Conn::out_tuple_for(fwd, &inb, rs, rport, la, 1024 + (i / 4) as u16),
            fwd,
            fnat_seq_delta: if fwd == Forward::Fnat { 0x1234_5678 } else { 0 },
            ..Conn::default()
        };
        let id = match conns.borrow_mut().insert(c.clone(), Now::from_secs(1)) {
            Ok(id) => id,
            Err(e) => panic!("xmit bench table: {e:?}"),
        };
        let u = if dir == Dir::In { c.in_tuple } else { c.out_tuple };
        let b = Pkt::eth(mac(9), mac(1))
            .ipv4(ip4(u.saddr), ip4(u.daddr))
            .tcp(u.sport, u.dport)
            .flags(ACK)
            .seq(1000 + i as u32)
            .ack(2000);
        let b = if dir == Dir::Out && fwd == Forward::Fnat {
            b.nop().nop().sack(&[(3000, 4000)])
        } else {
            b
        };
        let mut tp = Template::parsed(b.payload(&[0x5a; 64]).build());
        tp.meta.conn = id;
        tp.meta.dir = dir;
        t.push(tp);
    }
    Bench::new(
        Xmit::new(conns, Arc::new(bench_l2())),
        Snapshot::empty(),
        t,
        vector,
        Exit::Tx,
        None,
    )
}

// ---------------------------------------------------------------- the whole graph

/// The configuration of the whole-graph benches: one FNAT service on [`VIP`]:80 scheduled
/// by wlc over 8 real servers, four local addresses, the defence switch on.
pub const GRAPH_CONFIG: &str = r#"
[defence]
tcp_drop = true

[conn]
capacity = 131072
buckets_log2 = 18

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24", "198.18.1.2/24", "198.18.1.3/24", "198.18.1.4/24"]

[[interface]]
name = "port1"
mac = "02:00:00:00:00:02"
addresses = ["198.18.2.1/24"]

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"
[[neighbor]]
ip = "198.18.1.12"
mac = "02:00:00:00:01:12"
[[neighbor]]
ip = "198.18.1.13"
mac = "02:00:00:00:01:13"
[[neighbor]]
ip = "198.18.1.14"
mac = "02:00:00:00:01:14"
[[neighbor]]
ip = "198.18.1.15"
mac = "02:00:00:00:01:15"
[[neighbor]]
ip = "198.18.1.16"
mac = "02:00:00:00:01:16"
[[neighbor]]
ip = "198.18.1.17"
mac = "02:00:00:00:01:17"
[[neighbor]]
ip = "198.18.1.18"
mac = "02:00:00:00:01:18"
[[neighbor]]
ip = "198.18.2.254"
mac = "02:00:00:00:02:fe"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.2.254"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "wlc"
forward = "fnat"
local_addresses = ["198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4"]

[[service.dest]]
ip = "198.18.1.11"
port = 8080
[[service.dest]]
ip = "198.18.1.12"
port = 8080
[[service.dest]]
ip = "198.18.1.13"
port = 8080
[[service.dest]]
ip = "198.18.1.14"
port = 8080
[[service.dest]]
ip = "198.18.1.15"
port = 8080
[[service.dest]]
ip = "198.18.1.16"
port = 8080
[[service.dest]]
ip = "198.18.1.17"
port = 8080
[[service.dest]]
ip = "198.18.1.18"
port = 8080
"#;

/// One lcore's whole graph ([`Worker`]: parse -> lookup -> {hit: xmit, miss: schedule ->
/// conn-new -> xmit}) running vector after vector over heap buffers, raw frames in.
pub struct GraphBench {
    /// The worker (graph, connections, destination counters).
    pub worker: Worker<HeapMbuf>,
    /// The snapshot every vector sees.
    pub snap: Snapshot,
    /// Packets per vector.
    pub vector: usize,
    pool: HeapPool,
    frames: Vec<Vec<u8>>,
    cursor: usize,
    now: Now,
    remove_new: bool,
}

impl std::fmt::Debug for GraphBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphBench")
            .field("vector", &self.vector)
            .field("frames", &self.frames.len())
            .finish()
    }
}

/// The two whole-graph cases.
pub const GRAPH_CASES: [&str; 2] = ["established", "new_conn"];

impl GraphBench {
    /// `case` "established": ACKs from `ring` clients whose connections their own SYNs made
    /// during setup (never inserted by hand); "new_conn": SYNs of `ring` new flows, each
    /// creating a connection (scheduled by wlc, FNAT local port, both tuples hashed), removed
    /// again between vectors outside the measurement. Both must all be transmitted.
    pub fn new(case: &str, vector: usize, ring: usize) -> Self {
        let cfg = match Config::parse("bench", GRAPH_CONFIG) {
            Ok(c) => c,
            Err(e) => panic!("graph bench config: {e}"),
        };
        let snap = match cfg.snapshot(1, 1) {
            Ok(s) => s,
            Err((_, e)) => panic!("graph bench snapshot: {e}"),
        };
        let worker = match Worker::new(&cfg, 0, 1) {
            Ok(w) => w,
            Err(e) => panic!("graph bench worker: {e}"),
        };
        let ring = ring.max(vector);
        let frame = |i: usize, flags: u8| {
            let c = Addr::from_v4_u32(0xc613_0000 + (i as u32 >> 12));
            let sport = 1024 + (i as u16 & 0x0fff);
            Pkt::eth(mac(9), mac(2))
                .ipv4(ip4(c), VIP)
                .tcp(sport, 80)
                .flags(flags)
                .seq(7000)
                .ack(if flags & ACK != 0 { 1 } else { 0 })
                .payload(if flags == SYN { &[] } else { &[0x5a; 64] })
                .build()
        };
        let (establish, remove_new) = match case {
            "established" => (true, false),
            "new_conn" => (false, true),
            other => panic!("unknown graph case {other}"),
        };
        let frames = (0..ring).map(|i| frame(i, if establish { ACK } else { SYN })).collect();
        let mut b = GraphBench {
            worker,
            snap,
            vector,
            pool: HeapPool::new(4 * VECTOR_MAX),
            frames,
            cursor: 0,
            now: Now::from_secs(2),
            remove_new,
        };
        if establish {
            // The connections come from the traffic itself: every client's SYN first.
            let syn_frames: Vec<Vec<u8>> = (0..ring).map(|i| frame(i, SYN)).collect();
            let acks = std::mem::replace(&mut b.frames, syn_frames);
            let mut sent = 0;
            for _ in 0..ring.div_ceil(vector) {
                b.load();
                b.run();
                sent += b.recycle();
            }
            assert_eq!(sent, ring, "graph bench: every SYN of the setup must be transmitted");
            assert_eq!(
                b.worker.conns.borrow().len(),
                ring,
                "graph bench: one connection per client"
            );
            b.frames = acks;
            b.cursor = 0;
        }
        b.load();
        b.run();
        let sent = b.recycle();
        assert_eq!(
            sent,
            vector,
            "graph bench {case}: warm-up vector not all transmitted: {:?}",
            b.worker.graph.reports()
        );
        b.load();
        b
    }

    /// Queue the next vector of frames (not measured).
    pub fn load(&mut self) {
        for _ in 0..self.vector {
            let f = &self.frames[self.cursor];
            self.cursor = (self.cursor + 1) % self.frames.len();
            let Some(m) = self.pool.alloc_with(f) else {
                panic!("graph bench pool exhausted");
            };
            if self.worker.push(Packet::new(m)).is_err() {
                panic!("graph bench: worker input full");
            }
        }
    }

    /// The measured part: one vector through the whole graph ([`Worker::run`]).
    #[inline(never)]
    pub fn run(&mut self) {
        self.now = self.now.plus_nanos(1000);
        self.worker.run(self.now, &self.snap, &mut self.pool);
    }

    /// Give every transmitted packet back to the pool, removing the connections a
    /// "new_conn" vector made (not measured). Returns how many were transmitted.
    pub fn recycle(&mut self) -> usize {
        let mut n = 0;
        let e = &mut self.worker.graph.exits;
        for q in e.tx.iter_mut() {
            for p in q.drain() {
                if self.remove_new && self.worker.conns.borrow_mut().remove(p.meta.conn, &self.snap).is_none() {
                    panic!("graph bench: a new-connection packet left without its connection");
                }
                self.pool.free(p.mbuf);
                n += 1;
            }
        }
        for q in e.redirect.iter_mut().chain(std::iter::once(&mut e.host)) {
            for p in q.drain() {
                self.pool.free(p.mbuf);
            }
        }
        n
    }

    /// Wall time of `iters` vectors, counting only [`GraphBench::run`].
    pub fn timed(&mut self, iters: u64) -> std::time::Duration {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..iters {
            let t0 = std::time::Instant::now();
            self.run();
            total += t0.elapsed();
            self.recycle();
            self.load();
        }
        total
    }
}
