//! `rvs run` on DPDK net_pcap against `rvs replay` on heap buffers: the same input and
//! config (one worker) must give the same packets, flow by flow; the mempool must be back
//! to zero mbufs in use at exit.
//!
//! The input mixes the demo's FNAT clients with a NAT service whose real server answers in
//! the same trace (the replies come after the connection's SYN, so one worker sees them in
//! order). Output frames are decoded by rvs-testkit's independent decoder, which recomputes
//! every checksum.

mod run_common;

use run_common::*;
use rvs_core::addr::Addr;
use rvs_pipeline::frames::Tcp;

const NAT_SERVICE: &str = r#"
[[neighbor]]
ip = "198.18.1.21"
mac = "02:00:00:00:01:21"

[[service]]
protocol = "tcp"
vip = "198.18.0.101"
port = 80
scheduler = "rr"
forward = "nat"

[[service.dest]]
ip = "198.18.1.21"
port = 80
"#;

/// NAT flows: client SYN, real-server SYN-ACK, client ACK, request, real-server data.
fn nat_trace(flows: u32, mut t: u64) -> Vec<(u64, Vec<u8>)> {
    let gw = [0x02, 0, 0, 0, 0, 0xfe];
    let rs_mac = [0x02, 0, 0, 0, 0x01, 0x21];
    let me = [0x02, 0, 0, 0, 0, 0x01];
    let vip = Addr::v4([198, 18, 0, 101]);
    let rs = Addr::v4([198, 18, 1, 21]);
    let mut out = Vec::new();
    for step in 0..5u32 {
        for f in 0..flows {
            let client = Addr::v4([198, 18, 130, 1 + f as u8]);
            let cport = 30000 + f as u16;
            let seg = match step {
                0 => Tcp {
                    src_mac: gw,
                    dst_mac: me,
                    saddr: client,
                    daddr: vip,
                    sport: cport,
                    dport: 80,
                    seq: 100,
                    ack: 0,
                    flags: 0x02,
                    payload: &[],
                },
                1 => Tcp {
                    src_mac: rs_mac,
                    dst_mac: me,
                    saddr: rs,
                    daddr: client,
                    sport: 80,
                    dport: cport,
                    seq: 900,
                    ack: 101,
                    flags: 0x12,
                    payload: &[],
                },
                2 => Tcp {
                    src_mac: gw,
                    dst_mac: me,
                    saddr: client,
                    daddr: vip,
                    sport: cport,
                    dport: 80,
                    seq: 101,
                    ack: 901,
                    flags: 0x10,
                    payload: &[],
                },
                3 => Tcp {
                    src_mac: gw,
                    dst_mac: me,
                    saddr: client,
                    daddr: vip,
                    sport: cport,
                    dport: 80,
                    seq: 101,
                    ack: 901,
                    flags: 0x18,
                    payload: b"GET / HTTP/1.0\r\n\r\n",
                },
                _ => Tcp {
                    src_mac: rs_mac,
                    dst_mac: me,
                    saddr: rs,
                    daddr: client,
                    sport: 80,
                    dport: cport,
                    seq: 901,
                    ack: 119,
                    flags: 0x18,
                    payload: b"HTTP/1.0 200 OK\r\n\r\n",
                },
            };
            out.push((t, seg.frame()));
            t += 10_000;
        }
    }
    out
}

#[test]
fn run_on_net_pcap_equals_replay_flow_by_flow_and_frees_every_mbuf() {
    let dir = scratch("run-pcap");
    let input = dir.join("in.pcap");
    let out_run = dir.join("out-run.pcap");
    let out_replay = dir.join("out-replay.pcap");
    let mut trace = rvs_pipeline::demo::trace(120);
    let t_end = trace.last().map_or(0, |r| r.0) + 1_000_000;
    trace.extend(nat_trace(40, t_end));
    let mut w = rvs_pipeline::pcap::Writer::create(&input).expect("pcap");
    for (ts, f) in &trace {
        w.write(*ts, f).expect("write");
    }
    drop(w);
    let conf = dir.join("run.toml");
    std::fs::write(&conf, rvs_pipeline::demo::run_config(&input, &out_run) + NAT_SERVICE).expect("config");

    let stats_file = dir.join("stats.json");
    let n = trace.len().to_string();
    let out = rvs_run(
        &conf,
        "run-pcap",
        &[
            "--packets",
            &n,
            "--idle-ms",
            "3000",
            "--stats",
            stats_file.to_str().unwrap(),
        ],
    );
    if dpdk_missing(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rvs run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rep = Command::new(rvs())
        .args(["replay", "--config"])
        .arg(&conf)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out_replay)
        .output()
        .expect("start rvs replay");
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));

    let a = frames(&out_run);
    let b = frames(&out_replay);
    // Every client packet but the stray ACK, and every NAT packet, is forwarded.
    assert_eq!(b.len(), 120 * 5 + 40 * 5, "replay output");
    assert_eq!(a.len(), b.len(), "rvs run output count");
    let fa = by_flow(&a);
    let fb = by_flow(&b);
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the same flows"
    );
    for (k, v) in &fb {
        assert_eq!(&fa[k], v, "flow {k:?}: same frames in the same order");
    }
    // NAT replies leave with the VIP as source, toward the client.
    let nat_replies = fa.keys().filter(|k| k.1 == "198.18.0.101" && k.2 == 80).count();
    assert_eq!(nat_replies, 40);

    let s = stats(&stats_file);
    assert_eq!(s["packets_in"].as_u64(), Some(trace.len() as u64));
    assert_eq!(s["packets_out"].as_u64(), Some(a.len() as u64));
    assert_eq!(s["created"].as_u64(), Some(160));
    assert_eq!(s["mempool_in_use"].as_u64(), Some(0), "every mbuf back in its pool");
    assert!(s["mempool_capacity"].as_u64().unwrap_or(0) > 0);
    assert!(stdout.contains("mbufs in use at exit 0 of"), "{stdout}");
    // Per-stage counters came out, VPP style.
    for stage in ["parse", "lookup", "schedule", "conn-new", "xmit"] {
        assert!(stdout.contains(stage), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

use std::process::Command;
