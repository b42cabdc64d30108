//! The host path of `rvs run` to the kernel through a TAP (`host_tap`, DPVS's KNI), on the
//! real binary inside a network namespace the test makes (so the TAP is created there and
//! disappears with it).
//!
//! rvs runs one worker on a net_pcap port whose rx side is a FIFO the test writes and whose
//! tx side is a pcap file the test reads as it grows; the interface has `host_tap` set. The
//! test waits for the TAP to appear, gives it the interface's address (198.18.0.1/24), sets
//! it up and adds a static neighbour for the client, then:
//!
//! 1. feeds a TCP SYN from 198.18.0.50 to 198.18.0.1 port 22 (an interface address, no
//!    service: the host path). The kernel has nothing listening there and answers with a
//!    RST|ACK, which rvs must send out of the interface: from 198.18.0.1:22 to the client,
//!    ack = the SYN's seq + 1, source MAC the interface's, every checksum valid (recomputed
//!    by the independent decoder);
//! 2. feeds a SYN to the VIP 198.18.0.100:80 (a NAT service): rvs forwards it to the real
//!    server itself, rewritten, and it never reaches the TAP;
//! 3. feeds a SYN from 198.18.0.51, which the kernel has no neighbour entry for: the
//!    kernel's ARP request goes out through rvs, the ARP reply the test then feeds reaches
//!    the kernel through rvs's host path (rvs's ARP stage passes replies on), and the
//!    kernel's RST|ACK to 198.18.0.51 follows;
//! 4. stops rvs (SIGTERM); its counters say three packets to the kernel (two SYNs, one ARP
//!    reply), at least three frames from it, none freed for want of a TAP, and no mbuf left
//!    in use.
//!
//! A second run has two workers (two lcores sharing one core): the TAP gets a queue pair per
//! worker, and each worker passes the host-path packets of its own rx queue to the kernel
//! through its own TAP queue. A third run has six workers: the TAP gets four pairs (DPDK
//! 22.11's net_tap aborts the process with more), rvs says so, and workers 4 and 5 free
//! their host-path packets. A fourth test checks the `host_tap` refusals that need no DPDK (a TAP on a traffic
//! generator, one TAP name on two interfaces).
//!
//! Needs root, /dev/net/tun, `ip` and DPDK: under CI=true a missing one fails the test,
//! elsewhere it is skipped with a message.

mod run_common;

mod common;
use common::{Feed, read_records};

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use run_common::*;
use rvs_core::addr::Addr;
use rvs_pipeline::frames::Tcp;
use rvs_testkit::decode::{CheckStatus, decode_checked};

const ME: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x50];
const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
const TAP: &str = "rvstap0";

/// Skip (outside CI) or fail (CI=true) for a missing prerequisite.
fn missing(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("run_host needs {what} under CI=true");
    }
    eprintln!("SKIPPED: run_host needs {what}");
    true
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Run `args` inside the namespace; panics with its stderr if it fails.
fn in_ns(ns: &str, args: &[&str]) {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    let o = sh(&v);
    assert!(
        o.status.success(),
        "{v:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The namespace, and rvs inside it: both removed on drop, also when the test fails.
struct Rig {
    ns: String,
    child: Option<Child>,
    prefix: String,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

impl Rig {
    /// Check the prerequisites (root, /dev/net/tun, `ip`) and make namespace
    /// `rvs-TAG-<pid>`; `None` when one is missing outside CI (the test is then skipped).
    fn new(tag: &str) -> Option<Rig> {
        let uid = Command::new("id").arg("-u").output().ok();
        let root = uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root && missing("root") {
            return None;
        }
        if !Path::new("/dev/net/tun").exists() && missing("/dev/net/tun") {
            return None;
        }
        if Command::new("ip").arg("-V").output().is_err() && missing("the `ip` command (iproute2)") {
            return None;
        }
        let ns = format!("rvs-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        let o = sh(&["ip", "netns", "add", &ns]);
        if !o.status.success()
            && missing(&format!(
                "`ip netns add` ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        {
            return None;
        }
        Some(Rig {
            ns,
            child: None,
            prefix: format!("run-{tag}-{}", std::process::id()),
        })
    }

    /// Run rvs with `conf` and `args` in the namespace until it exits by itself (bounded:
    /// 30 s), then its output; `None` when DPDK cannot start outside CI.
    fn run_to_end(&mut self, conf: &Path, args: &[&str]) -> Option<std::process::Output> {
        let mut c = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(rvs())
            .arg("run")
            .arg("--config")
            .arg(conf)
            .arg("--file-prefix")
            .arg(&self.prefix)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rvs");
        // Read the pipes while it runs (a full pipe would stall it).
        let mut so = c.stdout.take().expect("stdout");
        let mut se = c.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(c.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                self.child = Some(c);
                panic!("rvs did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = std::process::Output {
            status: c.wait().expect("status"),
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
        };
        (!dpdk_missing(&out)).then_some(out)
    }
}

fn config(fifo: &Path, out: &Path, sock: &Path) -> String {
    fifo_port_config(fifo, out, sock, &format!("host_tap = \"{TAP}\""))
        + r#"
[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"

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
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"
port = 80
weight = 1
"#
}

/// Waits for rvs's output. net_pcap blocks reading its FIFO, so a frame the kernel writes
/// to the TAP after rvs's last poll would wait for rvs's next packet: while waiting, every
/// 300 ms the test feeds a filler, an ARP request for the interface's address that rvs
/// answers itself (never the host path), and counts it.
struct Waiter {
    out: PathBuf,
    fillers: u64,
}

impl Waiter {
    /// Wait (bounded) until rvs's output holds a frame `want` accepts; returns it.
    fn wait(&mut self, rig: &mut Rig, feed: &mut Feed, what: &str, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next_filler = Instant::now() + Duration::from_millis(300);
        loop {
            if let Some(f) = read_records(&self.out).into_iter().find(|f| want(f)) {
                return f;
            }
            if let Some(Ok(Some(st))) = rig.child.as_mut().map(|c| c.try_wait()) {
                panic!("rvs exited ({st}) before sending {what}");
            }
            assert!(Instant::now() < deadline, "no {what} from rvs within 10 s");
            if Instant::now() >= next_filler {
                feed.send(&arp(
                    1,
                    [2, 0, 0, 0, 0, 0x52],
                    [198, 18, 0, 52],
                    [0; 6],
                    [198, 18, 0, 1],
                ));
                self.fillers += 1;
                next_filler = Instant::now() + Duration::from_millis(300);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// An ARP frame (RFC 826) to the interface: `op` 1 request (broadcast), 2 reply.
fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(if op == 1 { &[0xff; 6] } else { &ME });
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

/// A SYN from 198.18.0.`host` (MAC 02:00:00:00:00:`mac`) to 198.18.0.1 port 22.
fn syn_to_me(host: u8, mac: u8, sport: u16, isn: u32) -> Vec<u8> {
    Tcp {
        src_mac: [2, 0, 0, 0, 0, mac],
        dst_mac: ME,
        saddr: Addr::v4([198, 18, 0, host]),
        daddr: Addr::v4([198, 18, 0, 1]),
        sport,
        dport: 22,
        seq: isn,
        ack: 0,
        flags: 0x02,
        payload: &[],
    }
    .frame()
}

/// The kernel's answer to a SYN to a closed port (RFC 9293 3.10.7.1): RST|ACK from port 22,
/// ack = the SYN's seq + 1, from the interface's MAC to the client's.
fn check_rst(rst: &[u8], sport: u16, isn: u32, client_mac: [u8; 6]) {
    let t = tcp_of(rst).expect("TCP");
    assert_eq!((t.1, t.3), (22, sport), "ports of the kernel's answer");
    assert_eq!(t.4 & 0x3f, 0x14, "RST|ACK, flags {:#x}", t.4);
    assert_eq!(t.6, isn.wrapping_add(1), "ack = SYN seq + 1");
    assert_eq!(rst[6..12], ME, "source MAC: the interface's");
    assert_eq!(rst[0..6], client_mac, "destination MAC: the client's");
}

fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= 14 && f[12..14] == [0x08, 0x00]
}

/// (source, source port, destination, destination port, flags, seq, ack) of a TCP/IPv4
/// frame, every checksum recomputed by the independent decoder (a bad one panics).
fn tcp_of(f: &[u8]) -> Option<(IpAddr, u16, IpAddr, u16, u8, u32, u32)> {
    if !is_ipv4(f) {
        return None;
    }
    let d = decode_checked(f).unwrap_or_else(|e| panic!("bad frame from rvs: {e}"));
    assert!(
        d.checksums.iter().all(|c| c.status == CheckStatus::Ok),
        "checksums: {:?}",
        d.checksums
    );
    let ip = d.ip()?;
    let t = d.tcp()?;
    Some((ip.src(), t.sport, ip.dst(), t.dport, t.flags, t.seq, t.ack))
}

#[test]
fn host_path_reaches_the_kernel_through_a_tap_and_its_answer_goes_out() {
    let Some(mut rig) = Rig::new("host") else {
        return;
    };
    let (ns, prefix) = (rig.ns.clone(), rig.prefix.clone());
    in_ns(&ns, &["ip", "link", "set", "lo", "up"]);

    let dir = scratch("run-host");
    let fifo = dir.join("rx.fifo");
    let out = dir.join("tx.pcap");
    let stats_path = dir.join("stats.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let conf = dir.join("host.toml");
    std::fs::write(&conf, config(&fifo, &out, &dir.join("ctl.sock"))).expect("config");
    let started = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(rvs())
        .arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--file-prefix")
        .arg(&prefix)
        .args(["--idle-ms", "60000", "--stats"])
        .arg(&stats_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rvs");
    rig.child = Some(child);

    // net_pcap opens its rx file when the port is plugged: write the pcap header then.
    let (tx, rx) = std::sync::mpsc::channel();
    let p = fifo.clone();
    std::thread::spawn(move || {
        let mut f = File::options().write(true).open(&p).expect("open FIFO");
        let mut h = Vec::new();
        h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0u8; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        f.write_all(&h).expect("pcap header");
        let _ = tx.send(f);
    });
    let child = rig.child.as_mut().expect("child");
    let deadline = Instant::now() + Duration::from_secs(20);
    let f = loop {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(100)) {
            break f;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let mut c = rig.child.take().expect("child");
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let o = std::process::Output {
                status: c.wait().expect("status"),
                stdout: Vec::new(),
                stderr: err.into_bytes(),
            };
            if dpdk_missing(&o) {
                return;
            }
            panic!(
                "rvs exited before opening its FIFO: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(Instant::now() < deadline, "rvs did not open its FIFO within 20 s");
    };
    let mut feed = Feed { f, t: 0 };

    // The TAP appears once rvs has plugged it (after the net_pcap port), and takes the
    // interface's MAC right after it is created.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = sh(&["ip", "netns", "exec", &ns, "ip", "link", "show", TAP]);
        let last = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() && last.contains("link/ether 02:00:00:00:00:01") {
            break;
        }
        if let Ok(Some(st)) = rig.child.as_mut().expect("child").try_wait() {
            panic!("rvs exited ({st}) before its TAP appeared with the interface's MAC");
        }
        assert!(
            Instant::now() < deadline,
            "no TAP {TAP} with the interface's MAC in {ns} within 10 s: {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tap_at = started.elapsed();
    in_ns(&ns, &["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]);
    in_ns(&ns, &["ip", "link", "set", TAP, "up"]);
    in_ns(
        &ns,
        &[
            "ip",
            "neigh",
            "replace",
            "198.18.0.50",
            "lladdr",
            "02:00:00:00:00:50",
            "dev",
            TAP,
        ],
    );

    let me_ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut w = Waiter {
        out: out.clone(),
        fillers: 0,
    };

    // 1. A SYN to the interface's own address, port 22: the kernel's RST|ACK comes back.
    let isn = 0x1234_5678u32;
    feed.send(&syn_to_me(50, 0x50, 41000, isn));
    // 2. A SYN to the VIP: rvs forwards it to the real server itself (NAT), not to the TAP.
    feed.send(
        &Tcp {
            src_mac: GW,
            dst_mac: ME,
            saddr: Addr::v4([198, 18, 128, 10]),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: 42000,
            dport: 80,
            seq: 777,
            ack: 0,
            flags: 0x02,
            payload: &[],
        }
        .frame(),
    );
    let client_ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 50));
    let rst = w.wait(&mut rig, &mut feed, "the kernel's RST|ACK", |f| {
        tcp_of(f).is_some_and(|t| t.0 == me_ip && t.1 == 22 && t.2 == client_ip)
    });
    check_rst(&rst, 41000, isn, CLIENT_MAC);

    let rs_ip = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11));
    let vclient_ip = IpAddr::V4(Ipv4Addr::new(198, 18, 128, 10));
    let fwd = w.wait(&mut rig, &mut feed, "the SYN forwarded to the real server", |f| {
        tcp_of(f).is_some_and(|t| t.2 == rs_ip)
    });
    let t = tcp_of(&fwd).expect("TCP");
    assert_eq!(
        (t.0, t.1, t.3, t.4, t.5),
        (vclient_ip, 42000, 80, 0x02, 777),
        "NAT keeps the client and rewrites the destination only"
    );
    assert_eq!(fwd[0..6], RS_MAC, "to the real server's MAC");
    assert_eq!(fwd[6..12], ME, "from the interface's MAC");

    // 3. A SYN from a client the kernel has no neighbour entry for: the kernel asks with
    // ARP through rvs, the answer reaches it through rvs's host path, and its RST follows.
    let isn2 = 0x0bad_cafeu32;
    feed.send(&syn_to_me(51, 0x51, 41001, isn2));
    let req = w.wait(&mut rig, &mut feed, "the kernel's ARP request for 198.18.0.51", |f| {
        f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == [198, 18, 0, 51]
    });
    assert_eq!(req[0..6], [0xff; 6], "broadcast");
    assert_eq!(req[6..12], ME, "from the interface's MAC");
    assert_eq!(req[22..28], ME, "sender hardware address: the interface's");
    assert_eq!(req[28..32], [198, 18, 0, 1], "sender address: the TAP's");
    feed.send(&arp(2, [2, 0, 0, 0, 0, 0x51], [198, 18, 0, 51], ME, [198, 18, 0, 1]));
    let client2 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 51));
    let rst2 = w.wait(&mut rig, &mut feed, "the kernel's RST|ACK to 198.18.0.51", |f| {
        tcp_of(f).is_some_and(|t| t.0 == me_ip && t.1 == 22 && t.2 == client2)
    });
    check_rst(&rst2, 41001, isn2, [2, 0, 0, 0, 0, 0x51]);

    // 4. Stop rvs (SIGTERM: a clean stop, counters printed), bounded.
    drop(feed);
    let mut c = rig.child.take().expect("child");
    let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while matches!(c.try_wait(), Ok(None)) {
        if Instant::now() >= deadline {
            rig.child = Some(c);
            panic!("rvs did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut so = String::new();
    let mut se = String::new();
    if let Some(mut s) = c.stdout.take() {
        let _ = s.read_to_string(&mut so);
    }
    if let Some(mut s) = c.stderr.take() {
        let _ = s.read_to_string(&mut se);
    }
    let status = c.wait().expect("status");
    assert!(status.success(), "rvs failed: {status}\n{so}\n{se}");
    let st = stats(&stats_path);
    let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("no {k} in the stats: {st}"));
    assert_eq!(n("packets_in"), 4 + w.fillers, "{so}");
    assert_eq!(
        n("host_to_kernel"),
        3,
        "the two SYNs to port 22 and the ARP reply reached the kernel, nothing else:\n{so}"
    );
    assert!(
        n("kernel_out") >= 3,
        "the kernel's two RSTs and its ARP request went out:\n{so}"
    );
    assert_eq!(n("host"), 0, "no host-path packet freed:\n{so}");
    assert_eq!(n("mempool_in_use"), 0, "an mbuf leaked:\n{so}");
    assert!(
        so.contains("host_to_kernel 3 kernel_out"),
        "the summary line shows the counts:\n{so}"
    );
    // Everything rvs sent over IPv4 carries valid checksums; only the expected TCP frames.
    let tcp: Vec<_> = read_records(&out).iter().filter_map(|f| tcp_of(f)).collect();
    assert_eq!(tcp.len(), 3, "TCP frames out: {tcp:?}");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "run_host: TAP up {:.2} s after start; whole run {:.2} s; {} filler packet(s)",
        tap_at.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        w.fillers
    );
}

#[test]
fn host_tap_on_a_generator_or_twice_is_refused_before_anything_starts() {
    let base = |second: &str| {
        format!(
            r#"
[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
device = "net_null0"
host_tap = "rvstap0"

[[interface]]
name = "port1"
mac = "02:00:00:00:00:02"
addresses = ["198.18.1.1/24"]
{second}
"#
        )
    };
    let parse = |t: &str| rvs_pipeline::config::Config::parse("t.toml", t).expect("config");
    let ok = parse(&base("device = \"net_null1\"\nhost_tap = \"rvstap1\""));
    rvs_pipeline::run::check_taps(&ok).expect("two TAPs of distinct names");
    let twice = parse(&base("device = \"net_null1\"\nhost_tap = \"rvstap0\""));
    let e = rvs_pipeline::run::check_taps(&twice).unwrap_err().to_string();
    assert!(
        e.contains("port1") && e.contains("\"rvstap0\" is already the TAP of interface port0"),
        "{e}"
    );
    let on_gen = parse(&base("device = \"gen:profile=sink\"\nhost_tap = \"rvstap1\""));
    let e = rvs_pipeline::run::check_taps(&on_gen).unwrap_err().to_string();
    assert!(e.contains("port1") && e.contains("host_tap needs a DPDK device"), "{e}");
}

/// A pcap file (microsecond magic) of `frames`.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0u8; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(i as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write pcap");
}

#[test]
fn each_worker_uses_its_own_tap_queue() {
    let Some(mut rig) = Rig::new("host2") else {
        return;
    };
    let dir = scratch("run-host2");
    // Queue q of the port reads in{q}.pcap: five SYNs to port 22 each (the host path).
    let mut files = Vec::new();
    for q in 0..2u16 {
        let frames: Vec<Vec<u8>> = (0..5).map(|i| syn_to_me(50, 0x50, 40000 + q * 100 + i, 1000)).collect();
        let (i, o) = (dir.join(format!("in{q}.pcap")), dir.join(format!("out{q}.pcap")));
        write_pcap(&i, &frames);
        files.push((i, o));
    }
    let stats_path = dir.join("stats.json");
    let conf = dir.join("host2.toml");
    std::fs::write(
        &conf,
        format!(
            r#"
[dpdk]
workers = 2
memory_mb = 256
mbufs = 2047
idle_sleep_us = 50
idle_polls = 16
eal_args = ["--lcores=(0-1)@0"]

[control]
socket = "{}"

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
device = "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}"
host_tap = "{TAP}"
"#,
            dir.join("ctl.sock").display(),
            files[0].0.display(),
            files[1].0.display(),
            files[0].1.display(),
            files[1].1.display()
        ),
    )
    .expect("config");
    let stats_arg = stats_path.display().to_string();
    let Some(out) = rig.run_to_end(&conf, &["--packets", "10", "--idle-ms", "20000", "--stats", &stats_arg]) else {
        return;
    };
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "rvs failed:\n{so}\n{se}");
    assert!(
        !se.contains("queue pair(s) for"),
        "the TAP should take one queue pair per worker:\n{se}"
    );
    let st = stats(&stats_path);
    let lc = st["lcores"].as_array().expect("lcores");
    assert_eq!(lc.len(), 2, "{so}");
    for (w, l) in lc.iter().enumerate() {
        let n = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("no {k} for worker {w}: {l}"));
        assert_eq!(
            (n("rx"), n("host_to_kernel"), n("host")),
            (5, 5, 0),
            "worker {w}:\n{so}"
        );
    }
    assert_eq!(st["mempool_in_use"].as_u64(), Some(0), "an mbuf leaked:\n{so}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn workers_beyond_the_tap_queue_pairs_are_told_and_free_their_host_path() {
    let Some(mut rig) = Rig::new("host3") else {
        return;
    };
    let dir = scratch("run-host3");
    let stats_path = dir.join("stats.json");
    let conf = dir.join("host3.toml");
    // net_null's frames (not IP) all take the host path. Six workers, a TAP of four pairs.
    std::fs::write(
        &conf,
        format!(
            r#"
[dpdk]
workers = 6
memory_mb = 256
mbufs = 4095
descriptors = 64
idle_sleep_us = 50
idle_polls = 16
eal_args = ["--lcores=(0-5)@0"]

[conn]
capacity = 1024
buckets_log2 = 10
templates = 1024

[control]
socket = "{}"

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
device = "net_null0"
host_tap = "{TAP}"
"#,
            dir.join("ctl.sock").display()
        ),
    )
    .expect("config");
    let stats_arg = stats_path.display().to_string();
    let Some(out) = rig.run_to_end(
        &conf,
        &["--packets", "20000", "--idle-ms", "20000", "--stats", &stats_arg],
    ) else {
        return;
    };
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "rvs failed:\n{so}\n{se}");
    assert!(
        se.contains("host TAP rvstap0 has 4 queue pair(s) for 6 workers; workers 4.. free their host-path packets"),
        "the fallback is said:\n{se}"
    );
    let st = stats(&stats_path);
    let lc = st["lcores"].as_array().expect("lcores");
    assert_eq!(lc.len(), 6, "{so}");
    let n = |w: usize, k: &str| lc[w][k].as_u64().unwrap_or_else(|| panic!("no {k} for worker {w}"));
    for w in 0..6 {
        // Every host-path packet is either handed to the TAP or freed, per worker.
        let to_kernel = n(w, "host_to_kernel") + n(w, "tx_refused");
        if w >= 4 {
            assert_eq!(to_kernel, 0, "worker {w} has no TAP queue:\n{so}");
        } else {
            assert_eq!(n(w, "host"), 0, "worker {w} has a TAP queue:\n{so}");
        }
    }
    // Worker 0 (the main lcore) always polls: its share reached the kernel.
    assert!(n(0, "host_to_kernel") > 0, "{so}");
    assert_eq!(st["mempool_in_use"].as_u64(), Some(0), "an mbuf leaked:\n{so}");
    let _ = std::fs::remove_dir_all(&dir);
}
