//! `rvs run` on generator interfaces (`device = "gen:..."`): the traffic creates its own
//! connections (one per flow, every one balanced and transmitted, nothing dropped), the
//! measured window reports rates and per-stage counters, the empty graph forwards every
//! packet untouched, and every mbuf is back in the pool at exit. Throughput is not asserted
//! (perf/run measures it).

mod run_common;

use run_common::*;

fn config(client: &str, capacity: usize) -> String {
    format!(
        r#"
[defence]
tcp_drop = true
[conn]
capacity = {capacity}
buckets_log2 = 12
[[interface]]
name = "client"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
device = "{client}"
[[interface]]
name = "rs"
mac = "02:00:00:00:00:02"
addresses = ["198.18.1.1/24"]
device = "gen:profile=sink"
[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"
[[neighbor]]
ip = "198.18.1.12"
mac = "02:00:00:00:01:12"
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
scheduler = "wlc"
forward = "fnat"
local_addresses = ["198.18.1.1"]
[[service.dest]]
ip = "198.18.1.11"
port = 8080
[[service.dest]]
ip = "198.18.1.12"
port = 8080
"#
    )
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no `{k}` in {v}"))
}

#[test]
fn established_traffic_creates_one_connection_per_flow_and_the_window_counts_it() {
    let dir = scratch("gen-est");
    let cfg = dir.join("gen.toml");
    std::fs::write(&cfg, config("gen:profile=established,flows=3000", 8192)).unwrap();
    let sj = dir.join("stats.json");
    let out = rvs_run(
        &cfg,
        "rvs-gen-est",
        &[
            "--warmup-ms",
            "300",
            "--window-ms",
            "400",
            "--stats",
            sj.to_str().unwrap(),
        ],
    );
    if dpdk_missing(&out) {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = stats(&sj);
    assert_eq!(u(&s, "created"), 3000, "one connection per flow");
    assert_eq!(u(&s, "connections"), 3000);
    assert_eq!(
        u(&s, "packets_in"),
        u(&s, "packets_out"),
        "every packet balanced and sent"
    );
    assert_eq!(u(&s, "lost") + u(&s, "host"), 0);
    assert_eq!(u(&s, "mempool_in_use"), 0, "every mbuf back in the pool");
    // wlc over two equal servers: an even split.
    let dests = s["services"][0]["dests"].as_array().unwrap();
    assert_eq!(u(&dests[0], "created") + u(&dests[1], "created"), 3000);
    assert!(u(&dests[0], "created").abs_diff(u(&dests[1], "created")) <= 1);
    let w = &s["window"];
    assert!(u(w, "rx") > 0 && u(w, "rx") == u(w, "tx"), "{w}");
    assert!(u(w, "rx") <= u(&s, "packets_in"));
    let l = &w["lcores"][0];
    let stage = |name: &str| {
        l["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
            .clone()
    };
    // Every received packet went through parse, lookup and xmit in the window.
    assert_eq!(u(&stage("parse"), "packets"), u(w, "rx"));
    assert_eq!(u(&stage("xmit"), "packets"), u(w, "rx"));
    assert_eq!(u(&stage("parse"), "drops"), 0);
    // Created in the window = what conn-new passed on; at most the flows.
    assert_eq!(u(w, "created"), u(&stage("conn-new"), "packets"));
    assert!(u(w, "created") <= 3000);
    assert!(stage("lookup")["cycles_per_packet"].as_f64().unwrap() > 0.0);
    assert!(u(&s["lcores"][0], "worker_bytes") > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn new_connections_and_the_empty_graph() {
    let dir = scratch("gen-new");
    let cfg = dir.join("gen.toml");
    std::fs::write(&cfg, config("gen:profile=new", 1 << 16)).unwrap();
    let sj = dir.join("stats.json");
    // Stop after a fixed packet count, below the table size and the local ports.
    let out = rvs_run(
        &cfg,
        "rvs-gen-new",
        &["--packets", "20000", "--stats", sj.to_str().unwrap()],
    );
    if dpdk_missing(&out) {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = stats(&sj);
    let n = u(&s, "packets_in");
    assert!(n >= 20000);
    assert_eq!(u(&s, "created"), n, "every packet a new connection");
    assert_eq!(u(&s, "packets_out"), n);
    assert_eq!(u(&s, "mempool_in_use"), 0);

    let out = rvs_run(
        &cfg,
        "rvs-gen-empty",
        &["--empty-graph", "--packets", "100000", "--stats", sj.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = stats(&sj);
    assert!(u(&s, "packets_in") >= 100000);
    assert_eq!(u(&s, "packets_in"), u(&s, "packets_out"), "rx -> tx, nothing else");
    assert_eq!(u(&s, "created"), 0, "no stage ran");
    assert_eq!(u(&s, "mempool_in_use"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
