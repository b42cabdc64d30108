//! The run-time control plane of `rvs run`, on the real binary: reloads while traffic flows,
//! a refused reload, SIGHUP, and `rvsctl list` counts.
//!
//! rvs runs one worker on a net_pcap port whose rx side is a FIFO the test writes (so the
//! test decides when each packet arrives relative to a reload) and whose tx side is a pcap
//! file the test reads as it grows. The service is NAT over real servers A and B (rr).
//!
//! 1. Flows 0..8 complete a handshake (client SYN, real server SYN-ACK, client ACK): rr puts
//!    them on A and B, seen in rvs's output.
//! 2. `rvsctl reload` with wrr, A at weight 0 and a new C: the old flows' data still goes
//!    to the destination each was given, new flows go only to B and C. `rvsctl list` shows
//!    per destination the active (established) and inactive counts the test computes from
//!    what it saw.
//! 3. A broken file (unknown scheduler): `rvsctl reload` fails naming the file and line,
//!    the generation stays, traffic continues under the previous configuration.
//! 4. SIGHUP with C removed and A back at weight 1: data of flows on C still reaches C; new
//!    flows go to A and B only; `list` no longer shows C.
//!
//! Checked per packet with the independent decoder (checksums recomputed).

mod run_common;

mod common;
use common::{Feed, read_records};

use std::collections::BTreeMap;
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
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x11];
const RS: [&str; 3] = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];

fn rvsctl() -> &'static str {
    env!("CARGO_BIN_EXE_rvsctl")
}

/// The config: `dests` as (real server index, weight).
fn config(fifo: &Path, out: &Path, sock: &Path, sched: &str, dests: &[(usize, u32)]) -> String {
    let mut s = fifo_port_config(fifo, out, sock, "");
    for r in RS {
        s += &format!("\n[[neighbor]]\nip = \"{r}\"\nmac = \"02:00:00:00:01:11\"\n");
    }
    s += r#"
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
"#;
    s += &format!("scheduler = \"{sched}\"\nforward = \"nat\"\n");
    for (i, w) in dests {
        s += &format!("[[service.dest]]\nip = \"{}\"\nport = 80\nweight = {w}\n", RS[*i]);
    }
    s
}

struct Rig {
    child: Option<Child>,
    feed: Option<Feed>,
    out: PathBuf,
    seen: usize,
    prefix: String,
    sock: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.feed = None;
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

/// What rvs sent for one packet the test wrote.
#[derive(Debug)]
struct Out {
    src: String,
    dst: String,
    sport: u16,
    dport: u16,
    flags: u8,
}

impl Rig {
    /// Send `frame` and return the one frame rvs sends for it.
    fn exchange(&mut self, frame: &[u8]) -> Out {
        self.feed.as_mut().expect("feed").send(frame);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let recs = read_records(&self.out);
            if recs.len() > self.seen {
                assert_eq!(recs.len(), self.seen + 1, "one frame out per frame in");
                self.seen += 1;
                let d = decode_checked(&recs[self.seen - 1]).unwrap_or_else(|e| panic!("bad frame from rvs: {e}"));
                let ip = d.ip().expect("IP");
                let t = d.tcp().expect("TCP");
                return Out {
                    src: ip.src().to_string(),
                    dst: ip.dst().to_string(),
                    sport: t.sport,
                    dport: t.dport,
                    flags: t.flags,
                };
            }
            assert!(Instant::now() < deadline, "rvs sent nothing for a frame");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn ctl(&self, cmd: &str) -> (bool, String, String) {
        let o = Command::new(rvsctl())
            .arg("-s")
            .arg(&self.sock)
            .arg(cmd)
            .output()
            .expect("run rvsctl");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `rvsctl list` as (generation, dest -> (weight, active, inactive)).
    fn list(&self) -> (u64, BTreeMap<String, (u32, u64, u64)>) {
        let (ok, text, err) = self.ctl("list");
        assert!(ok, "rvsctl list failed: {err}");
        let mut gen_ = 0;
        let mut m = BTreeMap::new();
        for l in text.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let Some(i) = w.iter().position(|x| *x == "generation") {
                gen_ = w[i + 1].parse().expect("generation");
            }
            if w.len() == 6 && w[0] == "->" && w[1] != "RemoteAddress:Port" {
                let ip = w[1].split(':').next().expect("addr").to_string();
                m.insert(
                    ip,
                    (w[3].parse().unwrap(), w[4].parse().unwrap(), w[5].parse().unwrap()),
                );
            }
        }
        (gen_, m)
    }
}

struct Flow {
    client: Addr,
    cport: u16,
    isn: u32,
    rs: String,
}

fn vip() -> Addr {
    Addr::v4([198, 18, 0, 100])
}

fn syn(f: &Flow) -> Vec<u8> {
    Tcp {
        src_mac: GW,
        dst_mac: ME,
        saddr: f.client,
        daddr: vip(),
        sport: f.cport,
        dport: 80,
        seq: f.isn,
        ack: 0,
        flags: 0x02,
        payload: &[],
    }
    .frame()
}

fn client_data(f: &Flow, n: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    Tcp {
        src_mac: GW,
        dst_mac: ME,
        saddr: f.client,
        daddr: vip(),
        sport: f.cport,
        dport: 80,
        seq: f.isn + 1 + n,
        ack: 90_001,
        flags,
        payload,
    }
    .frame()
}

fn synack(f: &Flow) -> Vec<u8> {
    let rs: std::net::Ipv4Addr = f.rs.parse().expect("rs");
    Tcp {
        src_mac: RS_MAC,
        dst_mac: ME,
        saddr: Addr::v4(rs.octets()),
        daddr: f.client,
        sport: 80,
        dport: f.cport,
        seq: 90_000,
        ack: f.isn + 1,
        flags: 0x12,
        payload: &[],
    }
    .frame()
}

/// A new flow: its SYN goes out to some real server, which the answer names.
fn open(rig: &mut Rig, i: usize) -> Flow {
    let mut f = Flow {
        client: Addr::v4([198, 18, 128, 10 + i as u8]),
        cport: 40000 + i as u16,
        isn: 1000 * i as u32,
        rs: String::new(),
    };
    let o = rig.exchange(&syn(&f));
    assert_eq!(
        (o.src.as_str(), o.sport, o.dport, o.flags & 0x12),
        (f.client.to_string().as_str(), f.cport, 80, 0x02)
    );
    assert!(RS.contains(&o.dst.as_str()), "SYN to {}", o.dst);
    f.rs = o.dst;
    f
}

/// A packet of an existing flow: it must reach the flow's own real server.
fn data_to_own(rig: &mut Rig, f: &Flow, n: u32) {
    let o = rig.exchange(&client_data(f, n, 0x18, b"hello"));
    assert_eq!(o.dst, f.rs, "flow {}:{} moved", f.client, f.cport);
    assert_eq!((o.sport, o.dport), (f.cport, 80));
}

fn count(flows: &[Flow], rs: &str) -> u64 {
    flows.iter().filter(|f| f.rs == rs).count() as u64
}

#[test]
fn reload_keeps_established_flows_and_refuses_a_bad_file() {
    let dir = scratch("run-ctl");
    let fifo = dir.join("rx.fifo");
    let out = dir.join("tx.pcap");
    let sock = dir.join("ctl.sock");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let conf = dir.join("control.toml");
    std::fs::write(&conf, config(&fifo, &out, &sock, "rr", &[(0, 1), (1, 1)])).expect("config");
    let prefix = format!("run-ctl-{}", std::process::id());
    let child = Command::new(rvs())
        .arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--file-prefix")
        .arg(&prefix)
        .args(["--idle-ms", "60000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rvs");
    let mut rig = Rig {
        child: Some(child),
        feed: None,
        out: out.clone(),
        seen: 0,
        prefix,
        sock: sock.clone(),
    };
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
    let f = loop {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(100)) {
            break f;
        }
        if rig.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))) {
            let out = rig.child.take().expect("child").wait_with_output().expect("rvs output");
            let _ = File::open(&fifo);
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
    rig.feed = Some(Feed {
        f,
        t: 1_700_000_000_000_000,
    });
    // The control socket appears once the lcores are set up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(10));
    }

    // 1. Eight established flows over A and B (rr).
    let mut old: Vec<Flow> = (0..8).map(|i| open(&mut rig, i)).collect();
    for f in &mut old {
        let o = rig.exchange(&synack(f));
        assert_eq!(
            (o.src.as_str(), o.dst.as_str()),
            ("198.18.0.100", f.client.to_string().as_str())
        );
        let o = rig.exchange(&client_data(f, 0, 0x10, &[]));
        assert_eq!(o.dst, f.rs);
    }
    assert_eq!((count(&old, RS[0]), count(&old, RS[1])), (4, 4), "rr over two");
    let (g, l) = rig.list();
    assert_eq!(g, 1);
    assert_eq!(l[RS[0]], (1, 4, 0));
    assert_eq!(l[RS[1]], (1, 4, 0));

    // 2. Reload: wrr, A drained (weight 0), C added.
    std::fs::write(&conf, config(&fifo, &out, &sock, "wrr", &[(0, 0), (1, 1), (2, 1)])).expect("config");
    let (ok, text, err) = rig.ctl("reload");
    assert!(ok, "reload failed: {err}");
    assert!(text.contains("generation 2 published"), "{text}");
    for f in &old {
        data_to_own(&mut rig, f, 0);
    }
    let new: Vec<Flow> = (8..16).map(|i| open(&mut rig, i)).collect();
    assert_eq!(count(&new, RS[0]), 0, "no new flow to a drained destination");
    assert_eq!(
        (count(&new, RS[1]), count(&new, RS[2])),
        (4, 4),
        "wrr over B and C at equal weights"
    );
    let (g, l) = rig.list();
    assert_eq!(g, 2);
    assert_eq!(l[RS[0]], (0, 4, 0));
    assert_eq!(l[RS[1]], (1, 4, count(&new, RS[1])));
    assert_eq!(l[RS[2]], (1, 0, count(&new, RS[2])));

    // 3. A broken file is refused, with its line; traffic goes on under generation 2.
    std::fs::write(&conf, config(&fifo, &out, &sock, "nosuch", &[(0, 1)])).expect("config");
    let (ok, _, err) = rig.ctl("reload");
    assert!(!ok);
    assert!(
        err.contains("control.toml:") && err.contains("nosuch") && err.contains("refused"),
        "{err}"
    );
    assert_eq!(rig.list().0, 2);
    for f in old.iter().chain(&new) {
        data_to_own(&mut rig, f, 5);
    }
    let more: Vec<Flow> = (16..20).map(|i| open(&mut rig, i)).collect();
    assert_eq!(count(&more, RS[0]), 0, "still generation 2");

    // 4. SIGHUP: C removed, A back. Flows on C keep C; new flows go to A and B.
    std::fs::write(&conf, config(&fifo, &out, &sock, "rr", &[(0, 1), (1, 1)])).expect("config");
    let pid = rig.child.as_ref().expect("child").id();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let l = loop {
        let (g, l) = rig.list();
        if g == 3 {
            break l;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!l.contains_key(RS[2]), "C removed: {l:?}");
    let on_c: Vec<&Flow> = new.iter().chain(&more).filter(|f| f.rs == RS[2]).collect();
    assert!(!on_c.is_empty());
    for f in &on_c {
        data_to_own(&mut rig, f, 10);
    }
    let last: Vec<Flow> = (20..24).map(|i| open(&mut rig, i)).collect();
    assert_eq!(count(&last, RS[2]), 0);
    assert_eq!(count(&last, RS[0]) + count(&last, RS[1]), 4);
    assert!(count(&last, RS[0]) > 0, "A takes new flows again");

    // Bad requests are refused, rvs keeps running.
    let (ok, _, err) = rig.ctl("zero");
    assert!(ok, "{err}");
    let (ok, stats, _) = rig.ctl("stats");
    assert!(ok && stats.contains("lookup"), "{stats}");

    // Stop: end of input, SIGTERM; a clean exit with every mbuf back.
    rig.feed = None;
    let mut child = rig.child.take().expect("child");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rvs did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("rvs output");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "rvs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("mbufs in use at exit 0 of"), "{stdout}");
    assert!(!sock.exists(), "control socket removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}
