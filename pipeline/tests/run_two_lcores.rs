//! Two worker lcores, FNAT and NAT, closed loop, with every reply arriving at the lcore that
//! does NOT own its connection.
//!
//! rvs runs on one net_pcap port with two queue pairs: rx queue `q` reads a FIFO the test
//! writes (`rx_pcap=FIFOq`), tx queue `q` writes its own pcap file (`tx_pcap=OUTq`), so the
//! test chooses which lcore receives each packet and sees which lcore sent each one. Each
//! client connection enters on lcore `i % 2` (which creates and owns it); the simulated
//! real server answers what rvs sent it, and the test writes each answer to the OTHER
//! lcore's queue. rvs must hand it over (FNAT: by local port; NAT: by the owner table) and
//! the owner must send it. Checked per packet with the independent decoder (checksums
//! recomputed) and addresses, ports, sequence and acknowledgement numbers computed here.
//!
//! A FIFO read blocks inside net_pcap's rx burst, so the config uses vectors of one packet
//! and the test writes "kick" frames (a non-IP ethertype, counted on the host path) while
//! it waits, so an lcore blocked on its FIFO wakes up to serve its ring.

mod run_common;

mod common;
use common::{Feed, read_records};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use run_common::*;
use rvs_core::addr::Addr;
use rvs_pipeline::frames::Tcp;
use rvs_testkit::decode::decode_checked;

const ME: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x21];
const FLOWS: usize = 8;

fn config(fifos: &[PathBuf; 2], outs: &[PathBuf; 2]) -> String {
    format!(
        r#"
[pipeline]
vector = 1

[dpdk]
workers = 2
memory_mb = 256
mbufs = 4095
idle_sleep_us = 50
idle_polls = 16
eal_args = ["--lcores=(0-1)@0"]

[defence]
tcp_drop = true

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]
device = "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}"

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"
[[neighbor]]
ip = "198.18.1.21"
mac = "02:00:00:00:01:21"
[[neighbor]]
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

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

[[service]]
protocol = "tcp"
vip = "198.18.0.101"
port = 80
scheduler = "rr"
forward = "nat"
[[service.dest]]
ip = "198.18.1.21"
port = 80
"#,
        fifos[0].display(),
        fifos[1].display(),
        outs[0].display(),
        outs[1].display()
    )
}

/// A frame rvs sends to the host path, to make net_pcap's blocking FIFO read return.
trait Kick {
    fn kick(&mut self);
}

impl Kick for Feed {
    fn kick(&mut self) {
        // Local experimental ethertype: not IP, goes to the host path.
        let mut k = Vec::new();
        k.extend_from_slice(&ME);
        k.extend_from_slice(&GW);
        k.extend_from_slice(&[0x88, 0xb5]);
        k.extend_from_slice(&[0u8; 46]);
        self.send(&k);
    }
}

struct Rig {
    child: Option<Child>,
    feeds: Vec<Feed>,
    outs: [PathBuf; 2],
    seen: [usize; 2],
    prefix: String,
}

impl Drop for Rig {
    /// A failed test must not leave rvs behind: end the FIFOs (EOF), SIGTERM, then SIGKILL,
    /// and remove the EAL runtime directory a killed rvs could not.
    fn drop(&mut self) {
        self.feeds.clear();
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        }
    }
}

impl Rig {
    /// Wait until `n` new frames came out (kicking both lcores meanwhile); returns them as
    /// (tx queue = lcore, frame).
    fn collect(&mut self, n: usize) -> Vec<(usize, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut got = Vec::new();
            for q in 0..2 {
                for f in read_records(&self.outs[q]).into_iter().skip(self.seen[q]) {
                    got.push((q, f));
                }
            }
            if got.len() >= n || Instant::now() > deadline {
                for (q, _) in &got {
                    self.seen[*q] += 1;
                }
                assert_eq!(got.len(), n, "frames out of rvs");
                return got;
            }
            for f in self.feeds.iter_mut() {
                f.kick();
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    }
}

struct Conn {
    nat: bool,
    owner: usize,
    client: Addr,
    cport: u16,
    isn: u32,
    // Learned from rvs's SYN to the real server.
    out_src: String,
    out_sport: u16,
    out_seq: u32,
}

fn ip(a: Addr) -> String {
    a.to_string()
}

#[test]
fn replies_reach_the_owner_lcore_in_fnat_and_nat() {
    let dir = scratch("run-two");
    let fifos = [dir.join("rx0.fifo"), dir.join("rx1.fifo")];
    let outs = [dir.join("tx0.pcap"), dir.join("tx1.pcap")];
    for f in &fifos {
        let st = Command::new("mkfifo").arg(f).status().expect("mkfifo");
        assert!(st.success());
    }
    let conf = dir.join("two.toml");
    std::fs::write(&conf, config(&fifos, &outs)).expect("config");
    let stats_file = dir.join("stats.json");
    let prefix = format!("run-two-{}", std::process::id());
    let child = Command::new(rvs())
        .arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--stats")
        .arg(&stats_file)
        .arg("--file-prefix")
        .arg(&prefix)
        // A safety net: the test kicks every few ms, so this only fires if it died.
        .args(["--idle-ms", "30000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rvs");
    let mut rig = Rig {
        child: Some(child),
        feeds: Vec::new(),
        outs: outs.clone(),
        seen: [0, 0],
        prefix,
    };
    // rvs opens the FIFOs in queue order while it sets the port up: open each (in a thread:
    // an open blocks until the reader comes) and write the pcap header.
    let (tx, rx) = std::sync::mpsc::channel();
    let paths = fifos.clone();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        for p in &paths {
            let mut f = File::options().write(true).open(p).expect("open FIFO");
            let mut h = Vec::new();
            h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
            h.extend_from_slice(&2u16.to_le_bytes());
            h.extend_from_slice(&4u16.to_le_bytes());
            h.extend_from_slice(&[0u8; 8]);
            h.extend_from_slice(&65535u32.to_le_bytes());
            h.extend_from_slice(&1u32.to_le_bytes());
            f.write_all(&h).expect("pcap header");
            v.push(f);
        }
        let _ = tx.send(v);
    });
    let files = loop {
        if let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
            break v;
        }
        let exited = rig.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if exited {
            let out = rig.child.take().expect("child").wait_with_output().expect("rvs output");
            // Unblock the opener thread if it still waits.
            for p in &fifos {
                let _ = File::open(p);
            }
            if dpdk_missing(&out) {
                return;
            }
            panic!(
                "rvs exited early:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    rig.feeds = files
        .into_iter()
        .map(|f| Feed {
            f,
            t: 1_700_000_000_000_000,
        })
        .collect();

    let vip_f = Addr::v4([198, 18, 0, 100]);
    let vip_n = Addr::v4([198, 18, 0, 101]);
    let rs_f = Addr::v4([198, 18, 1, 11]);
    let rs_n = Addr::v4([198, 18, 1, 21]);
    let mut conns: Vec<Conn> = (0..FLOWS * 2)
        .map(|i| Conn {
            nat: i >= FLOWS,
            owner: i % 2,
            client: Addr::v4([198, 18, 128, 10 + i as u8]),
            cport: 41000 + i as u16,
            isn: 7000 + 1000 * i as u32,
            out_src: String::new(),
            out_sport: 0,
            out_seq: 0,
        })
        .collect();

    // Round 1: client SYNs, each on its owner's queue.
    for c in &conns {
        let vip = if c.nat { vip_n } else { vip_f };
        let syn = Tcp {
            src_mac: GW,
            dst_mac: ME,
            saddr: c.client,
            daddr: vip,
            sport: c.cport,
            dport: 80,
            seq: c.isn,
            ack: 0,
            flags: 0x02,
            payload: &[],
        };
        rig.feeds[c.owner].send(&syn.frame());
    }
    let got = rig.collect(conns.len());
    for (q, f) in &got {
        let d = decode_checked(f).unwrap_or_else(|e| panic!("{e}"));
        let ipv4 = d.ipv4().expect("IPv4");
        let t = d.tcp().expect("TCP");
        let c = conns
            .iter_mut()
            .find(|c| {
                if ipv4.dst.to_string() == ip(rs_n) {
                    c.nat && t.sport == c.cport
                } else {
                    // FNAT SYNs carry no client address (TOA rides on the first ACK): with
                    // vectors of one, each lcore sends them in the order it read them.
                    !c.nat && c.owner == *q && c.out_sport == 0
                }
            })
            .unwrap_or_else(|| panic!("not a SYN we sent: {d:?}"));
        assert_eq!(*q, c.owner, "the SYN leaves from the lcore that received it");
        assert_eq!(t.flags & 0x3f, 0x02);
        if c.nat {
            assert_eq!(d.eth.as_ref().unwrap().dst, RS2_MAC);
            assert_eq!(
                (ipv4.src.to_string(), ipv4.dst.to_string(), t.dport),
                (ip(c.client), ip(rs_n), 80)
            );
            assert_eq!(t.seq, c.isn);
            c.out_src = ip(c.client);
            c.out_sport = c.cport;
        } else {
            assert_eq!(d.eth.as_ref().unwrap().dst, RS1_MAC);
            assert_eq!(
                (ipv4.src.to_string(), ipv4.dst.to_string(), t.dport),
                ("198.18.1.1".into(), ip(rs_f), 8080)
            );
            // The local port is from the owner's share (DPVS's sa_pool).
            assert_eq!(
                t.sport as usize % 2,
                c.owner,
                "local port {} of lcore {}",
                t.sport,
                c.owner
            );
            c.out_src = ipv4.src.to_string();
            c.out_sport = t.sport;
        }
        c.out_seq = t.seq;
    }
    assert!(conns.iter().all(|c| c.out_sport != 0));

    // Round 2: the real servers' SYN-ACKs, each on the OTHER lcore's queue.
    for (k, c) in conns.iter().enumerate() {
        let (rs, rs_mac, rs_port) = if c.nat {
            (rs_n, RS2_MAC, 80)
        } else {
            (rs_f, RS1_MAC, 8080)
        };
        let dst: Addr = c.out_src.parse().unwrap();
        let sa = Tcp {
            src_mac: rs_mac,
            dst_mac: ME,
            saddr: rs,
            daddr: dst,
            sport: rs_port,
            dport: c.out_sport,
            seq: 50_000 + k as u32,
            ack: c.out_seq.wrapping_add(1),
            flags: 0x12,
            payload: &[],
        };
        rig.feeds[1 - c.owner].send(&sa.frame());
    }
    let got = rig.collect(conns.len());
    for (q, f) in &got {
        let d = decode_checked(f).unwrap_or_else(|e| panic!("{e}"));
        let ipv4 = d.ipv4().expect("IPv4");
        let t = d.tcp().expect("TCP");
        let (k, c) = conns
            .iter()
            .enumerate()
            .find(|(_, c)| ip(c.client) == ipv4.dst.to_string() && t.dport == c.cport)
            .expect("a SYN-ACK for one of our clients");
        assert_eq!(
            *q, c.owner,
            "the owner lcore sends the reply that arrived at the other one"
        );
        assert_eq!(d.eth.as_ref().unwrap().dst, GW);
        let vip = if c.nat { vip_n } else { vip_f };
        assert_eq!((ipv4.src.to_string(), t.sport), (ip(vip), 80));
        assert_eq!(t.flags & 0x3f, 0x12);
        assert_eq!(t.seq, 50_000 + k as u32);
        // FNAT takes its sequence delta back out of the acknowledgement.
        assert_eq!(t.ack, c.isn.wrapping_add(1), "ack seen by the client");
    }

    // Round 3: client ACK with a request on the owner's queue; round 4: the server's answer
    // on the other queue.
    let req = b"GET / HTTP/1.0\r\n\r\n";
    for (k, c) in conns.iter().enumerate() {
        let vip = if c.nat { vip_n } else { vip_f };
        let a = Tcp {
            src_mac: GW,
            dst_mac: ME,
            saddr: c.client,
            daddr: vip,
            sport: c.cport,
            dport: 80,
            seq: c.isn + 1,
            ack: 50_001 + k as u32,
            flags: 0x18,
            payload: req,
        };
        rig.feeds[c.owner].send(&a.frame());
    }
    let got = rig.collect(conns.len());
    for (q, f) in &got {
        let d = decode_checked(f).unwrap_or_else(|e| panic!("{e}"));
        let t = d.tcp().expect("TCP");
        let c = conns
            .iter()
            .find(|c| t.sport == c.out_sport)
            .expect("a request of ours");
        assert_eq!(*q, c.owner);
        assert_eq!(d.payload, req);
        assert_eq!(
            t.seq,
            c.out_seq.wrapping_add(1),
            "client data carries the connection's delta"
        );
    }
    let resp = b"HTTP/1.0 200 OK\r\n\r\n";
    for (k, c) in conns.iter().enumerate() {
        let (rs, rs_mac, rs_port) = if c.nat {
            (rs_n, RS2_MAC, 80)
        } else {
            (rs_f, RS1_MAC, 8080)
        };
        let dst: Addr = c.out_src.parse().unwrap();
        let r = Tcp {
            src_mac: rs_mac,
            dst_mac: ME,
            saddr: rs,
            daddr: dst,
            sport: rs_port,
            dport: c.out_sport,
            seq: 50_001 + k as u32,
            ack: c.out_seq.wrapping_add(1 + req.len() as u32),
            flags: 0x18,
            payload: resp,
        };
        rig.feeds[1 - c.owner].send(&r.frame());
    }
    let got = rig.collect(conns.len());
    for (q, f) in &got {
        let d = decode_checked(f).unwrap_or_else(|e| panic!("{e}"));
        let ipv4 = d.ipv4().expect("IPv4");
        let t = d.tcp().expect("TCP");
        let c = conns
            .iter()
            .find(|c| ip(c.client) == ipv4.dst.to_string() && t.dport == c.cport)
            .expect("an answer for one of our clients");
        assert_eq!(*q, c.owner);
        assert_eq!(d.payload, resp);
        assert_eq!(t.ack, c.isn.wrapping_add(1 + req.len() as u32));
    }

    // Stop: SIGTERM, then end the FIFOs so no lcore stays blocked in a read.
    let child = rig.child.take().expect("rvs runs");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    rig.feeds.clear();
    let out = child.wait_with_output().expect("rvs output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = stats(&stats_file);
    assert_eq!(s["mempool_in_use"].as_u64(), Some(0), "{stdout}");
    assert_eq!(s["created"].as_u64(), Some(conns.len() as u64));
    let lc = s["lcores"].as_array().expect("lcores");
    assert_eq!(lc.len(), 2);
    for l in lc {
        // Each lcore made half the connections and handed the other lcore its replies:
        // FNAT by local port, NAT through the owner table.
        assert_eq!(l["created"].as_u64(), Some(FLOWS as u64), "{l}");
        assert_eq!(l["redirected_port"].as_u64(), Some(FLOWS as u64), "{l}");
        assert_eq!(l["redirected_owner"].as_u64(), Some(FLOWS as u64), "{l}");
        assert_eq!(l["ring_in"].as_u64(), Some(2 * FLOWS as u64), "{l}");
        assert_eq!(l["ring_full"].as_u64(), Some(0));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
