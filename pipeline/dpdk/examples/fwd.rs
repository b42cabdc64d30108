//! A plain rx -> tx io forward loop over two ports, the DPDK I/O floor measured through
//! rvs-dpdk (what `dpdk-testpmd --forward-mode=io` does): packets received on port A are
//! sent on port B and the other way round, on one worker lcore, burst 32, refused packets
//! freed. Prints Mpps per port (received) and the total.
//!
//! ```text
//! cargo run --release -p rvs-dpdk --example fwd -- --seconds 5 net_null0 net_null1
//! ```
//!
//! Options: `--seconds N` (default 5), `--burst B` (32), `--mbufs N` (16384), `--mem MB`
//! (1024), `--prefix P`, `--raw` (the same loop on the C shim directly, bypassing the safe
//! layer, to show its cost), `--checked` (receive with `rx_burst_checked`: port stamp and
//! segment check per packet). Devices are vdev strings (`net_null0`, `net_pcap0,rx_pcap=a.pcap,
//! infinite_rx=1`, ...), given to the EAL as `--vdev`.

// `--raw` calls the shim directly (the exempt DPDK crates' example).
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rvs_dpdk::mempool::DEFAULT_DATA_ROOM;
use rvs_dpdk::{Eal, EalArgs, Mempool, Port, PortConfig, RteMbuf};

struct Opts {
    seconds: f64,
    burst: usize,
    mbufs: u32,
    mem: u32,
    prefix: String,
    raw: bool,
    checked: bool,
    devs: Vec<String>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 5.0,
        burst: 32,
        mbufs: 16384,
        mem: 1024,
        prefix: format!("rvs-fwd-{}", std::process::id()),
        raw: false,
        checked: false,
        devs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = val("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--burst" => o.burst = val("--burst")?.parse().map_err(|e| format!("--burst: {e}"))?,
            "--mbufs" => o.mbufs = val("--mbufs")?.parse().map_err(|e| format!("--mbufs: {e}"))?,
            "--mem" => o.mem = val("--mem")?.parse().map_err(|e| format!("--mem: {e}"))?,
            "--prefix" => o.prefix = val("--prefix")?,
            "--raw" => o.raw = true,
            "--checked" => o.checked = true,
            "-h" | "--help" => {
                return Err("usage: fwd [--seconds N] [--burst B] [--mbufs N] [--mem MB] DEV_A DEV_B".into());
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ => o.devs.push(a),
        }
    }
    if o.devs.len() != 2 {
        return Err("give exactly two devices, e.g. net_null0 net_null1".into());
    }
    if o.burst == 0 || o.burst > rvs_dpdk::port::MAX_BURST {
        return Err(format!("--burst must be 1..={}", rvs_dpdk::port::MAX_BURST));
    }
    Ok(o)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fwd: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("fwd: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Result<(), Box<dyn std::error::Error>> {
    let args = EalArgs {
        file_prefix: o.prefix.clone(),
        cores: "0-1".into(),
        memory_mb: o.mem,
        vdevs: o.devs.clone(),
        ..EalArgs::default()
    };
    let eal = Eal::init(&args.to_args())?;
    let worker = *eal.worker_lcores().first().ok_or("need a worker lcore (-l 0-1)")?;
    let pool = Mempool::new(&eal, "fwd_pool", o.mbufs, 256, DEFAULT_DATA_ROOM, None)?;
    let mut ports = Vec::new();
    let mut rxq = Vec::new();
    let mut txq = Vec::new();
    for d in &o.devs {
        let name = d.split(',').next().unwrap_or(d);
        let mut p = Port::by_name(&eal, name)?;
        let mut q = p.configure(&PortConfig::default(), &pool)?;
        p.start()?;
        rxq.push(q.rx.remove(0));
        txq.push(q.tx.remove(0));
        ports.push(p);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let burst = o.burst;
    let raw = o.raw;
    let checked = o.checked;
    let tsc_hz = eal.tsc_hz();
    let h = eal.launch(worker, move || {
        let mut bufs = [Vec::with_capacity(burst), Vec::with_capacity(burst)];
        let mut rx = [0u64; 2];
        let mut dropped = [0u64; 2];
        let t0 = dpdk_tsc();
        if raw {
            // The same loop straight on the shim, without the safe layer's per-packet pass
            // (port stamp and segment check): shows what that layer costs.
            let mut pk = [[std::ptr::null_mut::<dpdk_sys::rte_mbuf>(); 256]; 2];
            let ids = [(rxq[0].port(), rxq[0].queue()), (rxq[1].port(), rxq[1].queue())];
            while !st.load(Ordering::Relaxed) {
                for i in 0..2 {
                    // SAFETY: this lcore owns both queues (their handles live in this closure);
                    // mbufs the device refused are freed here and nowhere else.
                    unsafe {
                        let n = dpdk_sys::rvs_eth_rx_burst(ids[i].0, ids[i].1, pk[i].as_mut_ptr(), burst as u16);
                        if n == 0 {
                            continue;
                        }
                        rx[i] += n as u64;
                        let (o, q) = ids[1 - i];
                        let s = dpdk_sys::rvs_eth_tx_burst(o, q, pk[i].as_mut_ptr(), n);
                        if s < n {
                            dropped[1 - i] += (n - s) as u64;
                            dpdk_sys::rte_pktmbuf_free_bulk(pk[i].as_mut_ptr().add(s as usize), (n - s) as u32);
                        }
                    }
                }
            }
        }
        while !raw && !st.load(Ordering::Relaxed) {
            for i in 0..2 {
                let n = if checked {
                    rxq[i].rx_burst_checked(&mut bufs[i])
                } else {
                    rxq[i].rx_burst(&mut bufs[i])
                };
                if n == 0 {
                    continue;
                }
                rx[i] += n as u64;
                txq[1 - i].tx_burst(&mut bufs[i]);
                if !bufs[i].is_empty() {
                    dropped[1 - i] += bufs[i].len() as u64;
                    RteMbuf::free_bulk(&mut bufs[i]);
                }
            }
        }
        let cycles = dpdk_tsc() - t0;
        (rx, dropped, cycles)
    })?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(o.seconds));
    stop.store(true, Ordering::Relaxed);
    let (rx, dropped, cycles) = h.wait()?;
    let secs = t.elapsed().as_secs_f64();
    let secs_tsc = cycles as f64 / tsc_hz as f64;
    let mut total = 0.0;
    for i in 0..2 {
        let mpps = rx[i] as f64 / secs_tsc / 1e6;
        total += mpps;
        println!(
            "port {} ({}): rx {} pkts, {:.2} Mpps, tx refused {}",
            i,
            ports[i].name(),
            rx[i],
            mpps,
            dropped[i]
        );
    }
    let mode = match (raw, checked) {
        (true, _) => "raw shim loop",
        (false, true) => "rvs-dpdk rx_burst_checked/tx_burst",
        (false, false) => "rvs-dpdk rx_burst/tx_burst",
    };
    println!("total: {total:.2} Mpps over {secs_tsc:.2} s (wall {secs:.2} s), burst {burst}, {mode}");
    drop(ports);
    let in_use = pool.in_use();
    println!("mbufs in use after close: {in_use}");
    drop(pool);
    eal.cleanup()?;
    Ok(())
}

fn dpdk_tsc() -> u64 {
    rvs_core::cycles::rdtsc()
}
