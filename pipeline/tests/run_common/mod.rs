//! Shared by the `rvs run` tests: start the real binary as a child process (its own EAL
//! file prefix), decide whether DPDK is usable here, group output packets by flow.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rvs_testkit::decode::decode_checked;

/// The `rvs` binary under test.
pub fn rvs() -> &'static str {
    env!("CARGO_BIN_EXE_rvs")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// True when the run failed because DPDK cannot start here: then the test fails under
/// CI=true and is skipped (with a message) elsewhere.
pub fn dpdk_missing(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("the DPDK EAL cannot start") {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("DPDK is required under CI=true but the EAL cannot start:\n{err}");
    }
    eprintln!("SKIPPED: the DPDK EAL cannot start here:\n{err}");
    true
}

/// `rvs run` with `args`, a unique file prefix, and its output.
pub fn rvs_run(config: &Path, prefix: &str, args: &[&str]) -> Output {
    let mut c = Command::new(rvs());
    c.arg("run")
        .arg("--config")
        .arg(config)
        .arg("--file-prefix")
        .arg(format!("{prefix}-{}", std::process::id()));
    c.args(args);
    c.output().expect("start rvs")
}

/// (protocol, source, source port, destination, destination port).
pub type FlowKey = (u8, String, u16, String, u16);

/// The flow key of a frame as the independent decoder reads it: (protocol, source,
/// source port, destination, destination port). Every checksum is recomputed; a bad one
/// fails the test.
pub fn flow_of(frame: &[u8]) -> FlowKey {
    let d = decode_checked(frame).unwrap_or_else(|e| panic!("bad frame from rvs: {e}"));
    let ip = d.ip().expect("an IP packet");
    let (sp, dp) = match d.tcp() {
        Some(t) => (t.sport, t.dport),
        None => (0, 0),
    };
    (ip.proto(), ip.src().to_string(), sp, ip.dst().to_string(), dp)
}

/// Frames grouped by flow, each flow's frames in order.
pub fn by_flow(frames: &[Vec<u8>]) -> BTreeMap<FlowKey, Vec<Vec<u8>>> {
    let mut m: BTreeMap<_, Vec<Vec<u8>>> = BTreeMap::new();
    for f in frames {
        m.entry(flow_of(f)).or_default().push(f.clone());
    }
    m
}

/// The records of a pcap file (frames only).
pub fn frames(path: &Path) -> Vec<Vec<u8>> {
    rvs_pipeline::pcap::read(path)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// The JSON stats `rvs run --stats` wrote.
pub fn stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("stats JSON")
}

/// The head of a one-worker, one-port configuration fed through a FIFO: `[pipeline]`,
/// `[dpdk]` (idle polling so a shared core is not spun), `[control]` on `sock`, and the
/// interface `port0` on a net_pcap device reading `fifo` and writing `out`, with `iface_extra`
/// (more keys of that interface) at its end. Neighbours, routes and services follow.
pub fn fifo_port_config(fifo: &Path, out: &Path, sock: &Path, iface_extra: &str) -> String {
    format!(
        r#"
[pipeline]
vector = 1

[dpdk]
workers = 1
memory_mb = 256
mbufs = 2047
idle_sleep_us = 50
idle_polls = 16

[control]
socket = "{}"

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]
device = "net_pcap0,rx_pcap={},tx_pcap={}"
{iface_extra}
"#,
        sock.display(),
        fifo.display(),
        out.display()
    )
}
