//! Contract tests of rvs-core's stage machinery (stages/core/src/stage.rs) with trivial stages
//! written here: one that classifies and forwards to next stages, one that answers each
//! packet with a new one from the pool, one that holds packets and releases them from `poll`,
//! one that rewrites and transmits, drops or redirects. The fixtures compute every expected
//! byte with the kit's builder; the stages build their bytes by hand with rvs-core's
//! checksum helpers, so the comparison also checks those.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rvs_core::checksum;
use rvs_core::label::Never;
use rvs_core::mbuf::{HeapMbuf, HeapPool, Mbuf, PacketPool};
use rvs_core::stage::{Graph, GraphError, Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::time::Now;
use rvs_core::verdict::{Cause, DropReason};
use rvs_testkit::alloc::allocations_during;
use rvs_testkit::builder::{SYN, mac};
use rvs_testkit::fixture::{Expect, Fixture, counter};
use rvs_testkit::{Pkt, decode_checked};

rvs_testkit::install_counting_allocator!();

// ---- the trivial stages ----

rvs_core::labels! {
    /// Where classify sends packets.
    enum ClassNext {
        /// UDP.
        Answer = ("answer", "UDP: answered"),
        /// TCP.
        Hold = ("hold", "TCP: held for a while"),
        /// Anything else over IPv4.
        Fwd = ("fwd", "other IPv4: forwarded"),
    }
}

rvs_core::labels! {
    /// Why classify drops.
    enum ClassDrop {
        /// Shorter than Ethernet + IPv4.
        TooShort = ("too_short", "shorter than Ethernet and IPv4 headers"),
        /// Not IPv4.
        NotIp = ("not_ip", "ethertype is not IPv4"),
    }
}

impl DropReason for ClassDrop {
    fn cause(self) -> Cause {
        Cause::InvalidPacket
    }
}

/// Forwards by IP protocol; ICMP goes to the host path.
#[derive(Debug, Default)]
struct Classify;

enum Verdict {
    Drop(ClassDrop),
    Next(ClassNext),
    Host,
}

impl<M: Mbuf> Stage<M> for Classify {
    type Next = ClassNext;
    type Drop = ClassDrop;
    const NAME: &'static str = "classify";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, ClassNext, ClassDrop>) {
        for p in input.drain() {
            let d = p.mbuf.data();
            let v = if d.len() < 34 {
                Verdict::Drop(ClassDrop::TooShort)
            } else if d[12..14] != [0x08, 0x00] {
                Verdict::Drop(ClassDrop::NotIp)
            } else {
                match d[23] {
                    17 => Verdict::Next(ClassNext::Answer),
                    6 => Verdict::Next(ClassNext::Hold),
                    1 => Verdict::Host,
                    _ => Verdict::Next(ClassNext::Fwd),
                }
            };
            match v {
                Verdict::Drop(r) => out.drop(r, p),
                Verdict::Next(n) => out.next(n, p),
                Verdict::Host => out.host(p),
            }
        }
    }
}

rvs_core::labels! {
    /// Why answer drops.
    enum AnswerDrop {
        /// The pool had no buffer for the reply.
        NoBuffer = ("no_buffer", "no buffer for the reply"),
    }
}

impl DropReason for AnswerDrop {
    fn cause(self) -> Cause {
        Cause::Resource
    }
}

/// Transmits each UDP packet on port 1 and answers it on port 0 with a new packet from the
/// pool: addresses and ports swapped, payload "pong", TTL 64, id 0.
#[derive(Debug, Default)]
struct Answer;

const REPLY_LEN: usize = 14 + 20 + 8 + 4;

fn write_reply(req: &[u8], r: &mut [u8]) {
    r[0..6].copy_from_slice(&req[6..12]);
    r[6..12].copy_from_slice(&req[0..6]);
    r[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut r[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[12..16].copy_from_slice(&req[30..34]);
    ip[16..20].copy_from_slice(&req[26..30]);
    let ck = checksum::ipv4_header(ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let (src, dst) = (<[u8; 4]>::try_from(&req[30..34]), <[u8; 4]>::try_from(&req[26..30]));
    let udp = &mut r[34..46];
    udp[0..2].copy_from_slice(&req[36..38]);
    udp[2..4].copy_from_slice(&req[34..36]);
    udp[4..6].copy_from_slice(&12u16.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[8..12].copy_from_slice(b"pong");
    if let (Ok(s), Ok(d)) = (src, dst) {
        let ck = checksum::finish(checksum::sum(udp, checksum::pseudo_v4(s, d, 17, 12)));
        udp[6..8].copy_from_slice(&checksum::udp_wire(ck).to_be_bytes());
    }
}

impl<M: Mbuf> Stage<M> for Answer {
    type Next = Never;
    type Drop = AnswerDrop;
    const NAME: &'static str = "answer";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, AnswerDrop>) {
        for p in input.drain() {
            match out.alloc() {
                Some(mut m) => {
                    if let Some(r) = m.append(REPLY_LEN) {
                        write_reply(p.mbuf.data(), r);
                        out.emit_tx(0, Packet::new(m));
                    } else {
                        out.free(m);
                        out.count_drop(AnswerDrop::NoBuffer);
                    }
                }
                None => out.count_drop(AnswerDrop::NoBuffer),
            }
            out.tx(1, p);
        }
    }
}

rvs_core::labels! {
    /// Why hold drops.
    enum HoldDrop {
        /// Already holding as many packets as it can.
        Full = ("full", "hold queue full"),
    }
}

impl DropReason for HoldDrop {
    fn cause(self) -> Cause {
        Cause::Resource
    }
}

/// Keeps each packet for `delay` nanoseconds, then transmits it on port 2 from `poll`.
#[derive(Debug)]
struct Hold<M> {
    q: VecDeque<(Now, Packet<M>)>,
    cap: usize,
    delay: u64,
}

impl<M> Hold<M> {
    fn new(cap: usize, delay: u64) -> Self {
        Hold {
            q: VecDeque::with_capacity(cap),
            cap,
            delay,
        }
    }
}

impl<M: Mbuf> Stage<M> for Hold<M> {
    type Next = Never;
    type Drop = HoldDrop;
    const NAME: &'static str = "hold";

    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, HoldDrop>) {
        for p in input.drain() {
            if self.q.len() >= self.cap {
                out.drop(HoldDrop::Full, p);
            } else {
                self.q.push_back((cx.now, p));
                out.held();
            }
        }
    }

    fn poll(&mut self, cx: &StageCx<'_>, out: &mut Out<'_, M, Never, HoldDrop>) {
        while self.q.front().is_some_and(|(t, _)| t.plus_nanos(self.delay) <= cx.now) {
            if let Some((_, p)) = self.q.pop_front() {
                out.emit_tx(2, p);
            }
        }
    }
}

rvs_core::labels! {
    /// Why fwd drops.
    enum FwdDrop {
        /// TTL would reach zero.
        TtlExpired = ("ttl_expired", "TTL exceeded in transit"),
    }
}

impl DropReason for FwdDrop {
    fn cause(self) -> Cause {
        Cause::Other
    }
}

/// Decrements the TTL (RFC 1624 update of the header checksum); destination x.x.x.99 goes to
/// lcore 1, the rest out of port 3.
#[derive(Debug, Default)]
struct Fwd;

impl<M: Mbuf> Stage<M> for Fwd {
    type Next = Never;
    type Drop = FwdDrop;
    const NAME: &'static str = "fwd";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, FwdDrop>) {
        for mut p in input.drain() {
            let d = p.mbuf.data_mut();
            if d[22] <= 1 {
                out.drop(FwdDrop::TtlExpired, p);
                continue;
            }
            let old = u16::from_be_bytes([d[22], d[23]]);
            d[22] -= 1;
            let new = u16::from_be_bytes([d[22], d[23]]);
            let ck = checksum::update16(u16::from_be_bytes([d[24], d[25]]), old, new);
            d[24..26].copy_from_slice(&ck.to_be_bytes());
            if d[33] == 99 {
                out.redirect(1, p);
            } else {
                out.tx(3, p);
            }
        }
    }
}

const HOLD_DELAY: u64 = 1_000_000;

fn graph() -> Graph<HeapMbuf> {
    let mut g = Graph::new(4, 2);
    let c = g.add(Classify);
    let a = g.add(Answer);
    let h = g.add(Hold::<HeapMbuf>::new(8, HOLD_DELAY));
    let f = g.add(Fwd);
    for (label, ok) in [
        (ClassNext::Answer, g.connect(c, ClassNext::Answer, a)),
        (ClassNext::Hold, g.connect(c, ClassNext::Hold, h)),
        (ClassNext::Fwd, g.connect(c, ClassNext::Fwd, f)),
    ] {
        assert!(ok.is_ok(), "wiring {label:?}: {ok:?}");
    }
    g
}

// ---- packets and their expected fates, computed from the builder ----

const CLIENT: [u8; 4] = [198, 18, 0, 1];
const SERVER: [u8; 4] = [198, 18, 1, 1];

fn udp(sport: u16) -> Pkt {
    Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, SERVER)
        .id(sport)
        .udp(sport, 53)
        .payload(b"ping")
}
fn reply(sport: u16) -> Vec<u8> {
    Pkt::eth(mac(2), mac(1))
        .ipv4(SERVER, CLIENT)
        .udp(53, sport)
        .payload(b"pong")
        .build()
}
fn other(dst: [u8; 4], ttl: u8) -> Pkt {
    Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, dst)
        .ttl(ttl)
        .ip_proto(253)
        .payload(b"other")
}

fn mixed_fixture() -> Fixture {
    let t0 = Now::from_secs(10);
    let syn = Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, SERVER)
        .tcp(40000, 80)
        .flags(SYN)
        .mss(1460)
        .build();
    let echo = Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, SERVER)
        .icmp_echo_request(7, 1)
        .payload(b"hi")
        .build();
    let arp = Pkt::eth(mac(1), [0xff; 6]).arp_request(mac(1), CLIENT, SERVER).build();
    let ttl1 = other(SERVER, 1).build();
    Fixture::new("contract: every disposition", graph)
        .now(t0)
        .input(0, vec![0xaa; 20])
        .input(0, arp)
        .input(0, udp(1000).build())
        .input(1, udp(1001).build())
        .input(0, syn.clone())
        .input(0, echo.clone())
        .input(0, other(SERVER, 64).build())
        .input(0, ttl1)
        .input(0, other([198, 18, 1, 99], 9).build())
        .poll_at(t0.plus_nanos(HOLD_DELAY - 1))
        .poll_at(t0.plus_nanos(HOLD_DELAY))
        .expect(Expect::drop("classify", "too_short"))
        .expect(Expect::drop("classify", "not_ip"))
        .expect(Expect::tx(0, reply(1000)))
        .expect(Expect::tx(1, udp(1000).build()))
        .expect(Expect::tx(0, reply(1001)))
        .expect(Expect::tx(1, udp(1001).build()))
        .expect(Expect::held("hold"))
        .expect(Expect::tx(2, syn))
        .expect(Expect::host(echo))
        .expect(Expect::tx(3, other(SERVER, 63).build()))
        .expect(Expect::drop("fwd", "ttl_expired"))
        .expect(Expect::redirect(1, other([198, 18, 1, 99], 8).build()))
        .counter("classify", "packets", 9)
        .counter("classify", "next.answer", 2)
        .counter("classify", "next.hold", 1)
        .counter("classify", "next.fwd", 3)
        .counter("classify", "host", 1)
        .counter("classify", "drops", 2)
        .counter("classify", "tx", 0)
        .counter("classify", "emitted", 0)
        .counter("classify", "redirect", 0)
        .counter("answer", "packets", 2)
        .counter("answer", "tx", 4)
        .counter("answer", "emitted", 2)
        .counter("answer", "drop.no_buffer", 0)
        .counter("hold", "packets", 1)
        .counter("hold", "held", 1)
        .counter("hold", "emitted", 1)
        .counter("hold", "tx", 1)
        .counter("fwd", "packets", 3)
        .counter("fwd", "tx", 1)
        .counter("fwd", "redirect", 1)
        .counter("fwd", "drops", 1)
}

#[test]
fn every_disposition_and_counter_at_every_vector_size() {
    let f = mixed_fixture();
    let outs = f.run_vector_sizes(&[1, 2, 32, 256]);
    for (o, n) in outs.iter().zip([1usize, 2, 32, 256]) {
        let classify = &o.reports[0];
        assert_eq!(
            classify.vectors,
            9usize.div_ceil(n) as u64,
            "classify vectors at size {n}"
        );
        assert_eq!(o.pool_in_use, 0, "every buffer back in the pool at size {n}");
        #[cfg(target_arch = "x86_64")]
        for r in &o.reports {
            assert!(r.cycles > 0, "{} ran and measured cycles at size {n}", r.name);
        }
    }
    // At one vector, every stage saw exactly one vector.
    let o = &outs[2];
    for r in &o.reports {
        assert_eq!(r.vectors, 1, "{} vectors at size 32", r.name);
    }
}

#[test]
fn held_packet_stays_held_until_its_time() {
    // Without the late poll the SYN never leaves: the fixture must report it missing.
    let mut f = mixed_fixture();
    f.polls.pop();
    let err = f.try_run(32).expect_err("the SYN is still held");
    assert!(err.contains("tx port 2: expected packet missing"), "{err}");
    assert!(err.contains("hold.emitted = 0, expected 1"), "{err}");
    assert!(
        err.contains("1 buffers out of the pool at the end, expected 0"),
        "{err}"
    );
    let o = f.execute(32).expect("runs");
    assert_eq!(o.pool_in_use, 1, "the held packet's buffer is still out");
}

#[test]
fn empty_pool_is_a_counted_drop_not_a_crash() {
    // Two inputs fill a pool of two: neither reply can be allocated.
    let f = Fixture::new("contract: pool exhausted", graph)
        .pool_size(2)
        .input(0, udp(1).build())
        .input(0, udp(2).build())
        .expect(Expect::tx(1, udp(1).build()))
        .expect(Expect::tx(1, udp(2).build()))
        .expect(Expect::drop("answer", "no_buffer"))
        .expect(Expect::drop("answer", "no_buffer"))
        .counter("answer", "emitted", 0);
    f.run(32);
}

#[test]
fn failure_report_shows_hex_diff_and_decoded_view() {
    let f = Fixture::new("contract: wrong expectation", graph)
        .input(0, other(SERVER, 64).build())
        .expect(Expect::tx(3, other(SERVER, 64).build())) // forgot the TTL decrement
        .counter("fwd", "no_such_counter", 1)
        .counter("nosuchstage", "tx", 1)
        .expect(Expect::drop("fwd", "no_such_reason"));
    let err = f.try_run(32).expect_err("must fail");
    assert!(err.contains("first difference at offset 22"), "{err}");
    assert!(err.contains("ttl 64"), "{err}");
    assert!(err.contains("ttl 63"), "{err}");
    assert!(err.contains("stage fwd has no counter \"no_such_counter\""), "{err}");
    assert!(err.contains("no stage named \"nosuchstage\""), "{err}");
    assert!(err.contains("fwd has no such drop reason"), "{err}");
    assert!(err.contains("counters:"), "{err}");
}

#[test]
fn unclean_output_is_reported() {
    // Classify hands ICMP to the host path untouched: a bad checksum there must be flagged
    // unless the fixture allows it.
    let bad = Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, SERVER)
        .icmp_echo_request(1, 1)
        .bad_l4_checksum()
        .build();
    let f = Fixture::new("contract: unclean", graph)
        .input(0, bad.clone())
        .expect(Expect::host(bad));
    let err = f.try_run(32).expect_err("bad checksum flagged");
    assert!(err.contains("is not clean"), "{err}");
    f.allow_unclean().run(32);
}

/// Forgets every packet it gets: the buffer is dropped instead of returned to the pool.
#[derive(Debug, Default)]
struct Leaky;

impl<M: Mbuf> Stage<M> for Leaky {
    type Next = Never;
    type Drop = Never;
    const NAME: &'static str = "leaky";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, _out: &mut Out<'_, M, Never, Never>) {
        for p in input.drain() {
            drop(p);
        }
    }
}

#[test]
fn a_packet_neither_disposed_of_nor_kept_is_reported_as_a_leak() {
    let f = Fixture::new("contract: leak", || {
        let mut g = Graph::new(1, 1);
        g.add(Leaky);
        g
    })
    .input(0, udp(1).build());
    let err = f.try_run(1).expect_err("leak found");
    assert!(
        err.contains("1 buffers out of the pool at the end, expected 0"),
        "{err}"
    );
}

// ---- overflow ----

rvs_core::labels! {
    /// Fanout never drops.
    enum FanDrop {
        /// No buffer for a copy.
        NoBuffer = ("no_buffer", "no buffer for a copy"),
    }
}

impl DropReason for FanDrop {
    fn cause(self) -> Cause {
        Cause::Resource
    }
}

/// Sends three copies of each packet out of port 0 and the original to port 9, which the
/// graph does not have.
#[derive(Debug, Default)]
struct Fanout;

impl<M: Mbuf> Stage<M> for Fanout {
    type Next = Never;
    type Drop = FanDrop;
    const NAME: &'static str = "fanout";

    fn process(&mut self, _cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Never, FanDrop>) {
        for p in input.drain() {
            for _ in 0..3 {
                let Some(mut m) = out.alloc() else {
                    out.count_drop(FanDrop::NoBuffer);
                    continue;
                };
                match m.append(p.mbuf.len()) {
                    Some(b) => {
                        b.copy_from_slice(p.mbuf.data());
                        out.emit_tx(0, Packet::new(m));
                    }
                    None => {
                        out.free(m);
                        out.count_drop(FanDrop::NoBuffer);
                    }
                }
            }
            out.tx(9, p);
        }
    }
}

#[test]
fn queue_overflow_is_counted_and_buffers_return() {
    let pkt = udp(5).build();
    let mut f = Fixture::new("contract: overflow", || {
        let mut g = Graph::with_queue_capacity(1, 1, 4);
        g.add(Fanout);
        g
    })
    .expect_overflow(12)
    .counter("fanout", "packets", 4)
    .counter("fanout", "emitted", 12)
    .counter("fanout", "tx", 16);
    for _ in 0..4 {
        f = f.input(0, pkt.clone()).expect(Expect::tx(0, pkt.clone()));
    }
    let o = f.run(4);
    assert_eq!(o.pool_in_use, 0, "overflowed packets were freed to the pool");
}

#[test]
fn full_input_queue_hands_the_packet_back() {
    let mut g: Graph<HeapMbuf> = Graph::with_queue_capacity(1, 1, 2);
    g.add(Fanout);
    let mut pool = HeapPool::new(8);
    for _ in 0..2 {
        let m = pool.alloc_with(&[1, 2, 3]).expect("buffer");
        assert!(g.push(Packet::new(m)).is_ok());
    }
    assert_eq!(g.input_room(), 0);
    let m = pool.alloc_with(&[1, 2, 3]).expect("buffer");
    let back = g.push(Packet::new(m)).expect_err("full queue");
    assert_eq!(back.mbuf.data(), &[1, 2, 3]);
}

// ---- wiring ----

#[test]
fn unconnected_label_is_reported_by_check() {
    let mut g: Graph<HeapMbuf> = Graph::new(4, 2);
    let c = g.add(Classify);
    let a = g.add(Answer);
    let f = g.add(Fwd);
    g.connect(c, ClassNext::Answer, a).expect("forward edge");
    g.connect(c, ClassNext::Fwd, f).expect("forward edge");
    assert_eq!(
        g.check(),
        Err(GraphError::Unconnected {
            stage: "classify",
            label: "hold"
        })
    );
    let fx = Fixture::new("contract: unwired", || {
        let mut g: Graph<HeapMbuf> = Graph::new(1, 1);
        g.add(Classify);
        g
    });
    let err = fx.try_run(1).expect_err("unwired graph refused");
    assert!(err.contains("not connected"), "{err}");
}

#[test]
fn backward_edge_is_refused() {
    let mut g: Graph<HeapMbuf> = Graph::new(4, 2);
    let a = g.add(Answer);
    let c = g.add(Classify);
    assert!(matches!(
        g.connect(c, ClassNext::Answer, a),
        Err(GraphError::Backward {
            from: "classify",
            label: "answer",
            to: "answer"
        })
    ));
}

// ---- the stage alone, without a graph ----

#[test]
fn a_stage_is_callable_alone() {
    let mut pool = HeapPool::new(8);
    let mut input = PacketVec::with_capacity(4);
    let mut next: Vec<PacketVec<HeapMbuf>> = vec![PacketVec::with_capacity(4)];
    let mut exits = rvs_core::stage::Exits::new(4, 2, 4);
    let mut tally = rvs_core::counters::Tally::default();
    let snap = rvs_core::service::Snapshot::empty();
    let cx = StageCx {
        now: Now::from_secs(1),
        lcore: 0,
        snapshot: &snap,
    };
    let m = pool.alloc_with(&udp(9).build()).expect("buffer");
    assert!(input.push(Packet::new(m)).is_ok());
    {
        let mut out = Out::<HeapMbuf, Never, AnswerDrop>::new(&mut next, &mut exits, &mut pool, &mut tally);
        Stage::<HeapMbuf>::process(&mut Answer, &cx, &mut input, &mut out);
    }
    assert!(input.is_empty());
    assert_eq!((tally.tx, tally.emitted), (2, 1));
    let r = exits.tx[0].drain().next().expect("reply");
    let d = decode_checked(r.mbuf.data()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.payload, b"pong");
    assert_eq!(r.mbuf.data(), reply(9).as_slice());
}

// ---- no allocation after warm-up ----

fn steady_inputs() -> Vec<Vec<u8>> {
    let syn = Pkt::eth(mac(1), mac(2))
        .ipv4(CLIENT, SERVER)
        .tcp(40000, 80)
        .flags(SYN)
        .build();
    let mut v = Vec::new();
    for i in 0..32u16 {
        v.push(match i % 4 {
            0 => udp(i).build(),
            1 => syn.clone(),
            2 => other(SERVER, 64).build(),
            _ => other([198, 18, 1, 99], 64).build(),
        });
    }
    v
}

fn one_round(g: &mut Graph<HeapMbuf>, pool: &mut HeapPool, inputs: &[Vec<u8>], now: Now) -> usize {
    let snap = rvs_core::service::Snapshot::empty();
    let cx = StageCx {
        now,
        lcore: 0,
        snapshot: &snap,
    };
    for b in inputs {
        if let Some(m) = pool.alloc_with(b) {
            let _ = g.push(Packet::new(m));
        }
    }
    g.run(&cx, pool, true);
    let mut n = 0;
    for q in g.exits.tx.iter_mut().chain(g.exits.redirect.iter_mut()) {
        for p in q.drain() {
            n += 1;
            pool.free(p.mbuf);
        }
    }
    for p in g.exits.host.drain() {
        n += 1;
        pool.free(p.mbuf);
    }
    n
}

#[test]
fn steady_state_vector_allocates_nothing() {
    let mut g = graph();
    let mut pool = HeapPool::new(512);
    let inputs = steady_inputs();
    let mut now = Now::from_secs(1);
    for _ in 0..3 {
        one_round(&mut g, &mut pool, &inputs, now);
        now = now.plus_nanos(HOLD_DELAY);
    }
    let (out, allocs) = allocations_during(|| {
        let mut out = 0;
        for _ in 0..20 {
            out += one_round(&mut g, &mut pool, &inputs, now);
            now = now.plus_nanos(HOLD_DELAY);
        }
        out
    });
    assert!(out >= 20 * 24, "packets flowed ({out})");
    assert_eq!(allocs, 0, "allocations while running 20 vectors of 32 packets");
}

#[test]
fn counting_allocator_counts_this_thread_only() {
    let ((), n) = allocations_during(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(&v);
    });
    assert_eq!(n, 1);
    let ((), n) = allocations_during(|| {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..1000 {
            v.push(i);
        }
        std::hint::black_box(&v);
    });
    assert!(n >= 2, "a growing vector allocates then reallocates ({n})");

    // Another thread allocating all along does not show up in this thread's count.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(vec![0u8; 64]);
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while done.load(Ordering::Relaxed) == 0 {
        std::hint::spin_loop();
    }
    let ((), n) = allocations_during(|| {
        let start = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < start + 1000 {
            std::hint::spin_loop();
        }
    });
    stop.store(true, Ordering::Relaxed);
    assert!(worker.join().is_ok());
    assert_eq!(n, 0, "the other thread's 1000+ allocations are not counted here");
}

#[test]
fn outputs_of_the_fixture_are_what_the_counters_say() {
    let o = mixed_fixture().run(32);
    let total_tx: u64 = o.reports.iter().map(|r| counter(r, "tx").unwrap_or(0)).sum();
    assert_eq!(total_tx as usize, o.tx.len());
    let host: u64 = o.reports.iter().map(|r| r.host).sum();
    assert_eq!(host as usize, o.host.len());
    let redirect: u64 = o.reports.iter().map(|r| r.redirect).sum();
    assert_eq!(redirect as usize, o.redirect.len());
}
