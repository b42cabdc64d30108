//! Ports on virtual devices: net_ring loopback through `TxBuffer` and `RxQueue`, refused
//! packets freed and counted, net_pcap in and out checked byte for byte with an independent
//! pcap reader, and the mempool back at its starting count after each run.

mod common;

use std::time::{Duration, Instant};

use rvs_core::checksum::OffloadCaps;
use rvs_core::mbuf::Mbuf;
use rvs_dpdk::mempool::DEFAULT_DATA_ROOM;
use rvs_dpdk::{Eal, Error, Mempool, Port, PortConfig, RteMbuf, TxBuffer};

fn rx_until(rx: &mut rvs_dpdk::RxQueue, out: &mut Vec<RteMbuf>, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < want && Instant::now() < deadline {
        rx.rx_burst_checked(out);
    }
}

fn ring_loopback_carries_packets_intact(eal: &Eal) {
    let pool = Mempool::new(eal, "t_ring_pool", 4095, 32, DEFAULT_DATA_ROOM, None).expect("pool");
    let start = pool.available();
    let mut port = Port::open(eal, "net_ring0").expect("hotplug net_ring0");
    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_ring");
    let cfg = PortConfig {
        rx_desc: 512,
        tx_desc: 512,
        tx_offloads: OffloadCaps {
            ipv4_cksum: true,
            tcp_cksum: true,
            udp_cksum: true,
        },
        ..PortConfig::default()
    };
    let mut q = port.configure(&cfg, &pool).expect("configure");
    // net_ring offloads nothing: only what the device has is enabled.
    assert_eq!(port.offload_caps(), info.tx_caps);
    port.start().expect("start");
    assert!(port.link().expect("link").up);
    assert_eq!(port.mac().expect("mac").len(), 6);
    let mut rx = q.rx.pop().expect("rx queue");
    let mut txb = TxBuffer::new(q.tx.pop().expect("tx queue"), 32);

    // Send 40 distinct frames of different sizes: one full burst goes out on push, the rest
    // on flush.
    let frames: Vec<Vec<u8>> = (0..40u16).map(|i| common::udp_frame(i, 18 + 37 * i as usize)).collect();
    for f in &frames {
        let mut m = pool.alloc().expect("alloc");
        assert!(m.fill(f));
        txb.push(m);
    }
    assert_eq!(txb.len(), 8);
    txb.flush();
    assert_eq!((txb.sent(), txb.dropped()), (40, 0));

    let mut got = Vec::with_capacity(64);
    rx_until(&mut rx, &mut got, 40);
    assert_eq!(got.len(), 40);
    for (m, f) in got.iter().zip(&frames) {
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.port(), port.id());
    }
    let st = port.stats().expect("stats");
    assert_eq!((st.ipackets, st.opackets), (40, 40));
    // (net_ring counts packets, not bytes.)
    drop(got);
    assert_eq!(pool.available(), start);

    // Stopping while queue handles live is refused; after they are gone it works.
    assert!(matches!(port.stop(), Err(Error::Busy(_))));
    drop(rx);
    drop(txb);
    port.stop().expect("stop");
    // Configure again (two queues this time) and run once more.
    let q2 = port
        .configure(
            &PortConfig {
                rx_queues: 1,
                tx_queues: 1,
                ..cfg
            },
            &pool,
        )
        .expect("reconfigure");
    drop(q2);
    drop(port);
    assert_eq!(pool.in_use(), 0);
}

fn refused_packets_are_freed_and_counted(eal: &Eal) {
    let pool = Mempool::new(eal, "t_full_pool", 4095, 0, DEFAULT_DATA_ROOM, None).expect("pool");
    let mut port = Port::open(eal, "net_ring1").expect("hotplug net_ring1");
    let mut q = port.configure(&PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");
    let mut rx = q.rx.pop().expect("rx");
    let mut txb = TxBuffer::new(q.tx.pop().expect("tx"), 64);
    // Nobody receives: the ring fills up and the device refuses the rest.
    const N: u64 = 3000;
    for i in 0..N {
        let mut m = pool.alloc().expect("alloc");
        assert!(m.fill(&common::udp_frame(i as u16, 0)));
        txb.push(m);
    }
    txb.flush();
    assert_eq!(txb.sent() + txb.dropped(), N);
    assert!(txb.dropped() > 0, "the ring must have filled up");
    // What the device accepted is exactly what comes out of it; refused ones are back.
    assert_eq!(pool.in_use() as u64, txb.sent());
    let mut got = Vec::with_capacity(N as usize);
    rx_until(&mut rx, &mut got, txb.sent() as usize);
    assert_eq!(got.len() as u64, txb.sent());
    let mut extra = Vec::with_capacity(8);
    assert_eq!(rx.rx_burst(&mut extra), 0);
    drop(got);
    assert_eq!(pool.in_use(), 0);
    // rx_burst_with hands packets to a closure.
    let mut m = pool.alloc().expect("alloc");
    assert!(m.fill(&[7; 64]));
    txb.push(m);
    txb.flush();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen == 0 && Instant::now() < deadline {
        rx.rx_burst_with(32, |m| {
            assert_eq!(m.data(), &[7; 64]);
            seen += 1;
        });
    }
    assert_eq!(seen, 1);
    assert_eq!(rx.chained_dropped(), 0);
    drop((rx, txb));
    drop(port);
    assert_eq!(pool.in_use(), 0);
}

fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let f = std::fs::File::create(path).expect("create pcap");
    let mut w = PcapWriter::new(f).expect("pcap writer");
    for (i, fr) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), fr.len() as u32, fr))
            .expect("write");
    }
}

fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    use pcap_file::pcap::PcapReader;
    let f = std::fs::File::open(path).expect("open pcap");
    let mut r = PcapReader::new(f).expect("pcap reader");
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.expect("record").data.into_owned());
    }
    v
}

fn pcap_in_forwarded_to_pcap_out(eal: &Eal) {
    let dir = std::env::temp_dir().join(format!("rvs-dpdk-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let frames: Vec<Vec<u8>> = (0..100u16)
        .map(|i| common::udp_frame(i, (i as usize * 13) % 1400))
        .collect();
    write_pcap(&inp, &frames);

    let pool = Mempool::new(eal, "t_pcap_pool", 1023, 32, DEFAULT_DATA_ROOM, None).expect("pool");
    let dev = format!("net_pcap0,rx_pcap={},tx_pcap={}", inp.display(), outp.display());
    let mut port = Port::open(eal, &dev).expect("hotplug net_pcap0");
    let mut q = port.configure(&PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");
    let mut rx = q.rx.pop().expect("rx");
    let mut txb = TxBuffer::new(q.tx.pop().expect("tx"), 32);
    // net_pcap has no end-of-file signal: stop after a run of empty polls.
    let mut buf = Vec::with_capacity(32);
    let (mut empty, mut n) = (0, 0);
    while empty < 10_000 {
        let k = rx.rx_burst_checked(&mut buf);
        if k == 0 {
            empty += 1;
            continue;
        }
        empty = 0;
        n += k;
        for m in buf.drain(..) {
            txb.push(m);
        }
    }
    txb.flush();
    assert_eq!(n, frames.len());
    // net_pcap (22.11, no scatter offload) drops the over-long record itself.
    assert_eq!(rx.chained_dropped(), 0);
    assert_eq!(port.stats().expect("stats").ipackets, frames.len() as u64);
    assert_eq!((txb.sent(), txb.dropped()), (frames.len() as u64, 0));
    drop((rx, txb));
    drop(port); // closes the device: the output pcap is complete
    assert_eq!(pool.in_use(), 0);
    assert_eq!(read_pcap(&outp), frames);
    let _ = std::fs::remove_dir_all(&dir);
}

fn ports_listed_and_opened_by_name(eal: &Eal) {
    // net_null0 came from --vdev on the command line.
    let ids = Port::ids(eal);
    let p = Port::by_name(eal, "net_null0").expect("net_null0");
    assert!(ids.contains(&p.id()));
    assert_eq!(p.name(), "net_null0");
    // One handle per port: a second open is refused (it would close the port under the first).
    assert!(matches!(Port::by_id(eal, p.id()), Err(Error::Busy(_))));
    assert!(matches!(Port::open(eal, "net_null0"), Err(Error::Busy(_))));
    assert!(matches!(Port::by_name(eal, "net_nope9"), Err(Error::PortNotFound(_))));
    assert!(Port::open(eal, "net_nosuchdriver0").is_err());
    let info = p.info().expect("info");
    assert_eq!(info.driver, "net_null");
    let pool = Mempool::new(eal, "t_null_pool", 1023, 32, DEFAULT_DATA_ROOM, None).expect("pool");
    let mut p = p;
    let too_many = PortConfig {
        rx_queues: info.max_rx_queues + 1,
        ..PortConfig::default()
    };
    assert!(matches!(p.configure(&too_many, &pool), Err(Error::InvalidArg(_))));
    // net_null: packets from nowhere, transmit frees them.
    let mut q = p
        .configure(
            &PortConfig {
                promiscuous: true,
                ..PortConfig::default()
            },
            &pool,
        )
        .expect("configure");
    p.start().expect("start");
    let mut buf = Vec::with_capacity(32);
    assert_eq!(q.rx[0].rx_burst(&mut buf), 32);
    assert!(buf.iter().all(|m| m.len() == 64));
    assert_eq!(pool.in_use(), 32);
    assert_eq!(q.tx[0].tx_burst(&mut buf), 32);
    assert!(buf.is_empty());
    assert_eq!(pool.in_use(), 0);
    drop(q);
    let id = p.id();
    drop(p);
    assert_eq!(pool.in_use(), 0);
    // Closing released the port.
    assert!(Port::by_id(eal, id).is_err());
}

fn main() {
    let Some(eal) = common::eal("port", "0", &["net_null0"]) else {
        return;
    };
    common::run(
        eal,
        &[
            (
                "ring_loopback_carries_packets_intact",
                ring_loopback_carries_packets_intact,
            ),
            (
                "refused_packets_are_freed_and_counted",
                refused_packets_are_freed_and_counted,
            ),
            ("pcap_in_forwarded_to_pcap_out", pcap_in_forwarded_to_pcap_out),
            ("ports_listed_and_opened_by_name", ports_listed_and_opened_by_name),
        ],
    );
}
