//! The `RteMbuf` adapter on real mbufs: every operation against DPDK's own
//! `rte_pktmbuf_*` functions (the oracle, through the C shim) and against rvs-core's
//! `HeapMbuf` semantics; transmit offload fields against `rte_mbuf_tx_offload`; pools.

// The oracle calls DPDK's C functions directly.
#![allow(unsafe_code)]

mod common;

use common::Rng;
use rvs_core::mbuf::{HeapMbuf, Mbuf, PacketPool, TxOffload};
use rvs_dpdk::mempool::{DEFAULT_DATA_ROOM, HEADROOM};
use rvs_dpdk::{Eal, Mempool, RteMbuf, RtePool};

const POOL_N: u32 = 511;

fn pool(eal: &Eal, name: &str) -> Mempool {
    Mempool::new(eal, name, POOL_N, 32, DEFAULT_DATA_ROOM, None).expect("mempool")
}

/// The DPDK oracle: a second mbuf driven only by `rte_pktmbuf_*`.
struct Oracle(RteMbuf);

impl Oracle {
    fn p(&self) -> *mut dpdk_sys::rte_mbuf {
        self.0.as_ptr()
    }
    fn prepend(&mut self, n: usize) -> bool {
        // SAFETY: owned single-segment mbuf.
        n <= u16::MAX as usize && !unsafe { dpdk_sys::rvs_pktmbuf_prepend(self.p(), n as u16) }.is_null()
    }
    fn append(&mut self, n: usize) -> bool {
        // SAFETY: owned single-segment mbuf.
        n <= u16::MAX as usize && !unsafe { dpdk_sys::rvs_pktmbuf_append(self.p(), n as u16) }.is_null()
    }
    fn adj(&mut self, n: usize) -> bool {
        // SAFETY: owned single-segment mbuf.
        n <= u16::MAX as usize && !unsafe { dpdk_sys::rvs_pktmbuf_adj(self.p(), n as u16) }.is_null()
    }
    fn trim(&mut self, n: usize) -> bool {
        // SAFETY: owned single-segment mbuf.
        n <= u16::MAX as usize && unsafe { dpdk_sys::rvs_pktmbuf_trim(self.p(), n as u16) } == 0
    }
    fn headroom(&self) -> usize {
        // SAFETY: owned mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_headroom(self.p()) as usize }
    }
    fn tailroom(&self) -> usize {
        // SAFETY: owned mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_tailroom(self.p()) as usize }
    }
}

fn fresh_mbuf_is_what_dpdk_documents(eal: &Eal) {
    let p = pool(eal, "t_fresh");
    let m = p.alloc().expect("alloc");
    assert_eq!(m.data_off(), HEADROOM);
    assert_eq!(m.headroom(), HEADROOM as usize);
    assert_eq!(m.len(), 0);
    assert_eq!(m.pkt_len(), 0);
    assert_eq!(m.buf_len(), DEFAULT_DATA_ROOM);
    assert_eq!(p.data_room(), DEFAULT_DATA_ROOM);
    assert_eq!(m.tailroom(), DEFAULT_DATA_ROOM as usize - HEADROOM as usize);
    assert_eq!(m.nb_segs(), 1);
    assert_eq!(m.refcnt(), 1);
    assert_eq!(m.pool_ptr(), p.as_ptr());
    assert_eq!(m.rss_hash(), None);
    // rvs-core's heap buffer has the same geometry by default.
    let h = HeapMbuf::with_capacity(rvs_core::mbuf::DEFAULT_BUF_SIZE, rvs_core::mbuf::DEFAULT_HEADROOM);
    assert_eq!((h.headroom(), h.tailroom()), (m.headroom(), m.tailroom()));
    drop(m);
    assert_eq!(p.in_use(), 0);
}

fn operations_match_rte_pktmbuf_and_heap_mbuf(eal: &Eal) {
    let p = pool(eal, "t_ops");
    let mut rng = Rng::new(0x5eed_1234);
    for round in 0..200 {
        let mut m = p.alloc().expect("alloc");
        let mut o = Oracle(p.alloc().expect("alloc"));
        let mut h = HeapMbuf::with_capacity(DEFAULT_DATA_ROOM as usize, HEADROOM as usize);
        let mut byte = 0u8;
        for step in 0..40 {
            let room = m.headroom().max(m.tailroom()).max(m.len());
            // Sizes around the limits, plus huge ones that must fail.
            let n = match rng.below(8) {
                0 => room,
                1 => room + 1,
                2 => 70_000,
                3 => 0,
                _ => rng.below(room as u64 + 2) as usize,
            };
            let op = rng.below(6);
            let ctx = format!("round {round} step {step} op {op} n {n}");
            match op {
                0 => {
                    let ok = o.prepend(n);
                    let fill = |d: &mut [u8], b: u8| d.iter_mut().enumerate().for_each(|(i, x)| *x = b ^ i as u8);
                    let a = m.prepend(n).map(|d| fill(d, byte)).is_some();
                    let b = h.prepend(n).map(|d| fill(d, byte)).is_some();
                    if ok {
                        fill(&mut o.0.data_mut()[..n], byte);
                    }
                    assert_eq!((a, b), (ok, ok), "{ctx}");
                }
                1 => {
                    let ok = o.append(n);
                    let a = m.append(n).map(|d| d.fill(byte)).is_some();
                    let b = h.append(n).map(|d| d.fill(byte)).is_some();
                    if ok {
                        let l = o.0.len();
                        o.0.data_mut()[l - n..].fill(byte);
                    }
                    assert_eq!((a, b), (ok, ok), "{ctx}");
                }
                2 => {
                    let ok = o.adj(n);
                    assert_eq!((m.adj(n), h.adj(n)), (ok, ok), "{ctx}");
                }
                3 => {
                    let ok = o.trim(n);
                    assert_eq!((m.trim(n), h.trim(n)), (ok, ok), "{ctx}");
                }
                4 => {
                    // Trait default methods over the rte_mbuf primitives agree with the heap.
                    let at = rng.below(m.len() as u64 + 2) as usize;
                    let k = rng.below(40) as usize;
                    let a = m.insert_front(at, k);
                    assert_eq!(a, h.insert_front(at, k), "{ctx} insert {at} {k}");
                    // Mirror on the oracle by the same byte moves done by hand.
                    if a {
                        assert!(o.prepend(k));
                        let d = o.0.data_mut();
                        d.copy_within(k..k + at, 0);
                        d[at..at + k].fill(0);
                    }
                }
                _ => {
                    let at = rng.below(m.len() as u64 + 2) as usize;
                    let k = rng.below(40) as usize;
                    let a = m.remove_front(at, k);
                    assert_eq!(a, h.remove_front(at, k), "{ctx} remove {at} {k}");
                    if a {
                        o.0.data_mut().copy_within(0..at, k);
                        assert!(o.adj(k));
                    }
                }
            }
            byte = byte.wrapping_add(1);
            assert_eq!(m.data(), o.0.data(), "{ctx}: bytes vs rte_pktmbuf");
            assert_eq!(m.data(), h.data(), "{ctx}: bytes vs HeapMbuf");
            assert_eq!(m.headroom(), o.headroom(), "{ctx}");
            assert_eq!(m.tailroom(), o.tailroom(), "{ctx}");
            assert_eq!((m.headroom(), m.tailroom()), (h.headroom(), h.tailroom()), "{ctx}");
            assert_eq!(m.pkt_len(), o.0.pkt_len(), "{ctx}");
            assert_eq!(m.pkt_len(), m.data_len() as u32, "{ctx}");
        }
    }
    assert_eq!(p.in_use(), 0);
}

fn ip_udp() -> Vec<u8> {
    common::udp_frame(3, 10)
}

fn tx_offload_sets_dpdk_flags_and_lengths(eal: &Eal) {
    let p = pool(eal, "t_offload");
    let mut m = p.alloc().expect("alloc");
    assert!(m.fill(&ip_udp()));
    m.set_port(3);
    assert_eq!(m.port(), 3);
    let req = TxOffload {
        ipv4_cksum: true,
        l4_cksum: true,
        l2_len: 14,
        l3_len: 20,
    };
    m.set_tx_offload(req);
    assert_eq!(m.tx_offload(), req);
    let want_flags =
        dpdk_sys::RVS_MBUF_F_TX_IPV4 | dpdk_sys::RVS_MBUF_F_TX_IP_CKSUM | dpdk_sys::RVS_MBUF_F_TX_UDP_CKSUM;
    assert_eq!(m.ol_flags(), want_flags);
    // SAFETY: pure function.
    let want_tx = unsafe { dpdk_sys::rvs_mbuf_tx_offload(14, 20, 0, 0, 0, 0) };
    // SAFETY: reading a u64 union member.
    assert_eq!(unsafe { m.raw().__bindgen_anon_3.tx_offload }, want_tx);

    // TCP over IPv4: the TCP flag instead of UDP.
    let mut tcp = ip_udp();
    tcp[14 + 9] = 6;
    assert!(m.fill(&tcp));
    m.set_tx_offload(TxOffload {
        ipv4_cksum: false,
        ..req
    });
    assert_eq!(
        m.ol_flags(),
        dpdk_sys::RVS_MBUF_F_TX_IPV4 | dpdk_sys::RVS_MBUF_F_TX_TCP_CKSUM
    );
    assert!(!m.tx_offload().ipv4_cksum && m.tx_offload().l4_cksum);

    // ICMP: no L4 offload exists, so it is reported as not set.
    let mut icmp = ip_udp();
    icmp[14 + 9] = 1;
    assert!(m.fill(&icmp));
    m.set_tx_offload(req);
    assert!(m.tx_offload().ipv4_cksum);
    assert!(!m.tx_offload().l4_cksum);

    // Clearing.
    m.set_tx_offload(TxOffload::default());
    assert_eq!(m.ol_flags(), 0);
    assert_eq!(m.tx_offload(), TxOffload::default());
}

fn pool_counts_alloc_bulk_and_free_bulk(eal: &Eal) {
    let mp = pool(eal, "t_counts");
    let mut pp = RtePool::new(mp.clone());
    assert_eq!(pp.capacity(), POOL_N as usize);
    assert_eq!(pp.available(), POOL_N as usize);
    // Drain it completely through the PacketPool trait.
    let mut all = Vec::with_capacity(POOL_N as usize + 1);
    while let Some(m) = pp.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), POOL_N as usize);
    assert_eq!(mp.in_use(), POOL_N as usize);
    assert_eq!(pp.available(), 0);
    // Give half back one by one, the rest in bulk.
    for m in all.drain(..200) {
        pp.free(m);
    }
    assert_eq!(mp.available(), 200);
    RteMbuf::free_bulk(&mut all);
    assert!(all.is_empty() && all.capacity() > POOL_N as usize);
    assert_eq!(mp.available(), POOL_N as usize);
    // Bulk allocation is all-or-nothing.
    let mut v = Vec::with_capacity(600);
    assert_eq!(mp.alloc_bulk(&mut v, 600), 0);
    assert_eq!(mp.alloc_bulk(&mut v, 100), 100);
    assert_eq!(mp.in_use(), 100);
    assert!(v.iter().all(|m| m.is_empty() && m.headroom() == HEADROOM as usize));
    drop(v);
    assert_eq!(mp.in_use(), 0);
    // into_raw / from_raw keep ownership exact.
    let m = mp.alloc().expect("alloc");
    let raw = m.into_raw();
    assert_eq!(mp.in_use(), 1);
    // SAFETY: `raw` came from `into_raw` of an owned mbuf.
    drop(unsafe { RteMbuf::from_raw(raw) });
    assert_eq!(mp.in_use(), 0);
}

fn mbufs_travel_to_another_thread(eal: &Eal) {
    let mp = pool(eal, "t_send");
    let mut v = Vec::with_capacity(64);
    assert_eq!(mp.alloc_bulk(&mut v, 64), 64);
    for (i, m) in v.iter_mut().enumerate() {
        assert!(m.fill(&[i as u8; 60]));
    }
    // A plain (non-EAL) thread reads and frees them: no per-lcore cache, still exact.
    let sum = std::thread::spawn(move || v.iter().map(|m| m.data()[0] as u32).sum::<u32>())
        .join()
        .expect("thread");
    assert_eq!(sum, (0..64).sum());
    assert_eq!(mp.in_use(), 0);
}

fn main() {
    let Some(eal) = common::eal("mbuf", "0", &[]) else {
        return;
    };
    common::run(
        eal,
        &[
            ("fresh_mbuf_is_what_dpdk_documents", fresh_mbuf_is_what_dpdk_documents),
            (
                "operations_match_rte_pktmbuf_and_heap_mbuf",
                operations_match_rte_pktmbuf_and_heap_mbuf,
            ),
            (
                "tx_offload_sets_dpdk_flags_and_lengths",
                tx_offload_sets_dpdk_flags_and_lengths,
            ),
            (
                "pool_counts_alloc_bulk_and_free_bulk",
                pool_counts_alloc_bulk_and_free_bulk,
            ),
            ("mbufs_travel_to_another_thread", mbufs_travel_to_another_thread),
        ],
    );
}
