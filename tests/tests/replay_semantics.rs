//! The branches of `tcp_conn_sched` / `dp_vs_schedule` / `dp_vs_conn_new` through the whole
//! graph (parse -> lookup -> schedule -> conn-new -> xmit) as `rvs replay` runs it, and the
//! rule that vectors change nothing when several packets of one new flow share a vector.

use std::net::Ipv4Addr;

use rvs_pipeline::config::{Config, DestIds};
use rvs_pipeline::replay::{Emitted, Engine};
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::decode_checked;

rvs_testkit::install_counting_allocator!();

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// The balancer's interface, neighbours and default route, shared by the configs here.
const NET: &str = r#"
[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[neighbor]]
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"
[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"
"#;

fn config(defence: bool, weight: u32, max_conn: u32) -> Config {
    let text = format!(
        r#"
[defence]
tcp_drop = {defence}
{NET}
[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"
port = 8080
weight = {weight}
max_conn = {max_conn}
"#
    );
    Config::parse("semantics.toml", &text).unwrap()
}

fn client(i: u32, dst: Ipv4Addr, dport: u16, flags: u8, seq: u32) -> Vec<u8> {
    Pkt::eth(GW_MAC, LB_MAC)
        .ipv4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 1)) + i), dst)
        .tcp(30000 + i as u16, dport)
        .flags(flags)
        .seq(seq)
        .ack(if flags & ACK != 0 { 77 } else { 0 })
        .build()
}

struct Out {
    tx: Vec<Vec<u8>>,
    host: usize,
    engine: Engine,
}

fn run(cfg: &Config, vector: usize, frames: Vec<Vec<u8>>) -> Out {
    let mut engine = Engine::new(cfg, vector).unwrap();
    let recs: Vec<(u64, Vec<u8>)> = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1_000_000 + i as u64 * 100, f))
        .collect();
    let mut got: Vec<Emitted> = Vec::new();
    engine
        .feed(&recs, |e| {
            got.push(e);
            Ok(())
        })
        .unwrap();
    let host = got.iter().filter(|e| e.port.is_none()).count();
    let tx = got.into_iter().filter(|e| e.port.is_some()).map(|e| e.bytes).collect();
    Out { tx, host, engine }
}

fn dropped(e: &Engine, stage: &str, reason: &str) -> u64 {
    let r = e.report();
    r.stages
        .iter()
        .filter(|s| s.name == stage)
        .flat_map(|s| s.drops.iter())
        .filter(|d| d.reason == reason)
        .map(|d| d.count)
        .sum()
}

#[test]
fn only_a_bare_syn_creates_a_connection() {
    let cfg = config(false, 1, 0);
    for (flags, creates) in [
        (SYN, true),
        (SYN | ECE | CWR, true),
        (SYN | ACK, false),
        (SYN | FIN, false),
        (SYN | RST, false),
        (ACK, false),
    ] {
        let o = run(&cfg, 32, vec![client(1, VIP, 80, flags, 1)]);
        assert_eq!(o.engine.report().created, creates as u64, "flags {flags:#x}");
        assert_eq!(o.tx.len(), creates as usize, "flags {flags:#x}");
        assert_eq!(
            o.host, !creates as usize,
            "flags {flags:#x}: defence off: to the host path"
        );
    }
}

#[test]
fn defence_on_drops_strays_and_syns_to_ports_without_service() {
    let on = config(true, 1, 0);
    let o = run(&on, 32, vec![client(1, VIP, 80, ACK, 1), client(2, VIP, 81, SYN, 1)]);
    assert_eq!((o.tx.len(), o.host), (0, 0));
    assert_eq!(dropped(&o.engine, "schedule", "defence_stray"), 1);
    assert_eq!(dropped(&o.engine, "schedule", "defence_noserv"), 1);
    let off = config(false, 1, 0);
    let o = run(&off, 32, vec![client(1, VIP, 80, ACK, 1), client(2, VIP, 81, SYN, 1)]);
    assert_eq!((o.tx.len(), o.host), (0, 2));
    let r = o.engine.report();
    assert_eq!((r.schedule["host_stray"], r.schedule["host_no_service"]), (1, 1));
}

#[test]
fn a_syn_to_an_address_that_is_no_vip_goes_to_the_host() {
    let o = run(
        &config(true, 1, 0),
        32,
        vec![client(1, Ipv4Addr::new(198, 18, 0, 1), 22, SYN, 1)],
    );
    assert_eq!((o.tx.len(), o.host), (0, 1));
    assert_eq!(o.engine.report().schedule["host_not_vip"], 1);
}

#[test]
fn no_destination_is_a_resource_drop() {
    let o = run(&config(true, 0, 0), 32, vec![client(1, VIP, 80, SYN, 1)]);
    assert_eq!(o.tx.len(), 0);
    assert_eq!(dropped(&o.engine, "schedule", "no_dest"), 1);
    let r = o.engine.report();
    let d = r
        .stages
        .iter()
        .flat_map(|s| s.drops.iter())
        .find(|d| d.reason == "no_dest")
        .unwrap();
    assert_eq!(d.cause, "resource");
}

#[test]
fn a_destination_at_max_conn_is_refused_with_overload_and_flagged() {
    let o = run(
        &config(true, 1, 3),
        32,
        (0..5).map(|i| client(i, VIP, 80, SYN, 1)).collect(),
    );
    assert_eq!(o.tx.len(), 3);
    // The fourth SYN is refused at the bind right after its pick and flags the server
    // overloaded; the fifth then finds no eligible server at all, as one at a time.
    assert_eq!(
        dropped(&o.engine, "schedule", "overload"),
        1,
        "refused at the bind right after the pick"
    );
    assert_eq!(
        dropped(&o.engine, "schedule", "no_dest"),
        1,
        "an overloaded server is not picked"
    );
    let w = &o.engine.worker;
    let dest = &o.engine.snap.services[0].dests[0];
    assert!(
        w.loads.get(dest.id).overloaded,
        "the overload flag is set, as dp_vs_conn_bind_dest does"
    );
    let d = o
        .engine
        .report()
        .stages
        .iter()
        .flat_map(|s| s.drops.clone())
        .find(|d| d.reason == "overload")
        .unwrap();
    assert_eq!(d.cause, "overload");
}

/// SYN, retransmitted SYN, the ACK right behind it and data, all in one vector, next to
/// another new flow: one connection per flow, every packet forwarded, exactly as one at a
/// time.
#[test]
fn packets_of_one_new_flow_in_one_vector_make_one_connection() {
    let cfg = config(true, 1, 0);
    let frames = vec![
        client(1, VIP, 80, SYN, 100),
        client(1, VIP, 80, SYN, 100),
        client(2, VIP, 80, SYN, 500),
        client(1, VIP, 80, ACK, 101),
        client(1, VIP, 80, ACK | 0x08, 101),
        client(2, VIP, 80, ACK, 501),
    ];
    let mut per_vector = Vec::new();
    for v in [1, 2, 32, 256] {
        let o = run(&cfg, v, frames.clone());
        let r = o.engine.report();
        assert_eq!(r.created, 2, "vector {v}: one connection per flow");
        assert_eq!(o.tx.len(), 6, "vector {v}: every packet forwarded");
        assert_eq!(o.host, 0);
        assert!(
            r.stages.iter().all(|s| s.drops.iter().all(|d| d.count == 0)),
            "vector {v}: no drop"
        );
        // Per flow, in order.
        let mut flows: std::collections::BTreeMap<u16, Vec<Vec<u8>>> = Default::default();
        for f in &o.tx {
            let d = decode_checked(f).unwrap();
            flows.entry(d.tcp().unwrap().sport).or_default().push(f.clone());
        }
        per_vector.push(flows);
    }
    for w in per_vector.windows(2) {
        assert_eq!(w[0], w[1], "vector size changed a flow's output");
    }
}

/// After warm-up, a vector of established packets and a vector of new connections through
/// the whole graph allocate nothing.
#[test]
fn the_graph_allocates_nothing_per_vector_after_warm_up() {
    use rvs_core::mbuf::{HeapPool, Mbuf, PacketPool};
    use rvs_core::stage::Packet;
    use rvs_core::time::Now;

    let cfg = config(true, 1, 0);
    let mut w: rvs_pipeline::worker::Worker<rvs_core::HeapMbuf> =
        rvs_pipeline::worker::Worker::new(&cfg, 0, 1).unwrap();
    let snap = cfg.snapshot(1, 1).unwrap();
    let mut pool = HeapPool::new(1024);
    let syns: Vec<Vec<u8>> = (0..64).map(|i| client(i, VIP, 80, SYN, 1)).collect();
    let acks: Vec<Vec<u8>> = (0..64).map(|i| client(i, VIP, 80, ACK, 2)).collect();
    let more_syns: Vec<Vec<u8>> = (64..96).map(|i| client(i, VIP, 80, SYN, 1)).collect();
    let mut t = 1_000_000u64;
    let mut step =
        |w: &mut rvs_pipeline::worker::Worker<rvs_core::HeapMbuf>, pool: &mut HeapPool, frames: &[Vec<u8>]| -> usize {
            t += 1000;
            for f in frames {
                let m = pool.alloc_with(f).unwrap();
                w.push(Packet::new(m)).unwrap();
            }
            w.run(Now(t), &snap, pool);
            let mut n = 0;
            for q in w.graph.exits.tx.iter_mut() {
                for p in q.drain() {
                    n += usize::from(!p.mbuf.is_empty());
                    pool.free(p.mbuf);
                }
            }
            n
        };
    // Warm-up: first connections, first established packets.
    assert_eq!(step(&mut w, &mut pool, &syns[..32]), 32);
    assert_eq!(step(&mut w, &mut pool, &acks[..32]), 32);
    let (n, allocs) = rvs_testkit::alloc::allocations_during(|| step(&mut w, &mut pool, &acks[..32]));
    assert_eq!(n, 32);
    assert_eq!(allocs, 0, "established vector allocated");
    let (n, allocs) = rvs_testkit::alloc::allocations_during(|| step(&mut w, &mut pool, &syns[32..]));
    assert_eq!(n, 32);
    assert_eq!(allocs, 0, "new-connection vector allocated");
    let (n, allocs) = rvs_testkit::alloc::allocations_during(|| step(&mut w, &mut pool, &more_syns));
    assert_eq!(n, 32);
    assert_eq!(allocs, 0, "new-connection vector allocated");
}

/// `-p 300 -M 24` through the whole graph: every connection from one client /24 lands on
/// the real server its first connection got, where rr alone would alternate.
#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let text = r#"
[defence]
tcp_drop = true

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[neighbor]]
ip = "198.18.1.11"
mac = "02:00:00:00:01:11"
[[neighbor]]
ip = "198.18.1.12"
mac = "02:00:00:00:01:12"

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "dr"
persistence = 300
netmask = 24

[[service.dest]]
ip = "198.18.1.11"
[[service.dest]]
ip = "198.18.1.12"
"#;
    let cfg = Config::parse("persist.toml", text).unwrap();
    let mut engine = Engine::new(&cfg, 32).unwrap();
    // Ten connections from 198.18.128.0/24, ten from 198.18.129.0/24, interleaved.
    let mut recs = Vec::new();
    for i in 0..20u32 {
        let net = if i % 2 == 0 {
            [198, 18, 128, 0]
        } else {
            [198, 18, 129, 0]
        };
        let client = Ipv4Addr::from(u32::from(Ipv4Addr::from(net)) + 1 + i);
        let f = Pkt::eth(GW_MAC, LB_MAC)
            .ipv4(client, VIP)
            .tcp(40000 + i as u16, 80)
            .flags(SYN)
            .seq(1)
            .build();
        recs.push((1_000_000 + i as u64 * 1000, f));
    }
    let mut by_net: std::collections::BTreeMap<u8, std::collections::BTreeSet<[u8; 6]>> = Default::default();
    engine
        .feed(&recs, |e| {
            let d = decode_checked(&e.bytes).unwrap();
            let src = match d.ip().unwrap().src() {
                std::net::IpAddr::V4(a) => a.octets()[2],
                other => panic!("{other}"),
            };
            by_net.entry(src).or_default().insert(d.eth.unwrap().dst);
            Ok(())
        })
        .unwrap();
    assert_eq!(engine.report().created, 20);
    assert_eq!(by_net.len(), 2);
    for (net, servers) in &by_net {
        assert_eq!(servers.len(), 1, "client network .{net}.0/24 spread over {servers:?}");
    }
    assert_ne!(
        by_net[&128], by_net[&129],
        "rr placed the two networks' templates on different servers"
    );
}

/// Schedulers that read connection counts (wlc here, weights 5:3:1) see every connection
/// the vector has already placed, so vectors of 1, 32 and 256 place the same flows on the
/// same servers, in exact proportion to the weights.
#[test]
fn least_connection_picks_see_earlier_picks_of_the_same_vector() {
    let mut text = String::from(
        r#"
[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "wlc"
forward = "dr"
"#,
    );
    for (i, w) in [(11, 5), (12, 3), (13, 1)] {
        text += &format!("\n[[service.dest]]\nip = \"198.18.1.{i}\"\nweight = {w}\n");
        text += &format!("\n[[neighbor]]\nip = \"198.18.1.{i}\"\nmac = \"02:00:00:00:01:{i}\"\n");
    }
    let cfg = Config::parse("wlc.toml", &text).unwrap();
    let frames: Vec<Vec<u8>> = (0..180).map(|i| client(i, VIP, 80, SYN, 1)).collect();
    let mut placements = Vec::new();
    for v in [1, 32, 256] {
        let o = run(&cfg, v, frames.clone());
        let mut by_flow = std::collections::BTreeMap::new();
        let mut per_server = std::collections::BTreeMap::new();
        for f in &o.tx {
            let d = decode_checked(f).unwrap();
            let mac = d.eth.as_ref().unwrap().dst[5];
            by_flow.insert(d.tcp().unwrap().sport, mac);
            *per_server.entry(mac).or_insert(0) += 1;
        }
        assert_eq!(
            per_server.values().copied().collect::<Vec<u32>>(),
            vec![100, 60, 20],
            "vector {v}"
        );
        placements.push(by_flow);
    }
    assert_eq!(
        placements[0], placements[1],
        "vector 32 placed flows differently from vector 1"
    );
    assert_eq!(
        placements[0], placements[2],
        "vector 256 placed flows differently from vector 1"
    );
}

/// A reload that puts another service in front of a connection's service (so the service's
/// index changes) keeps the connection on its service's timeouts, the new ones.
#[test]
fn a_reload_that_moves_a_service_keeps_its_connections_on_its_timeouts() {
    let text = |front: &str, timeouts: &str| {
        format!(
            r#"{NET}{front}
[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "nat"
{timeouts}

[[service.dest]]
ip = "198.18.1.11"
port = 8080
"#
        )
    };
    let front = r#"
[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 443
scheduler = "rr"
forward = "nat"

[[service.dest]]
ip = "198.18.1.11"
port = 8443
"#;
    let secs = |s: f64| (s * 1e9) as u64;
    let first = Config::parse("first.toml", &text("", "")).unwrap();
    let second = Config::parse("second.toml", &text(front, "timeouts = { established = 5 }")).unwrap();
    // Destination ids kept over the run, as the control plane keeps them across reloads.
    let mut ids = DestIds::new(first.conn.dest_slots);
    let snap1 = first.snapshot_with_ids(1, 1, &mut ids).unwrap();
    let snap = second.snapshot_with_ids(2, 1, &mut ids).unwrap();
    assert_eq!(snap.services[1].key.port, 80, "the port-80 service moved to index 1");
    assert_eq!(snap.services[1].timeouts.established, 5);
    assert_eq!(snap.services[1].dests[0].id, snap1.services[0].dests[0].id);

    let mut e = Engine::new(&first, 32).unwrap();
    e.publish(snap1);
    let mut sent = 0;
    let mut feed = |e: &mut Engine, at: f64, frame: Vec<u8>| {
        e.feed(&[(secs(at), frame)], |x| {
            sent += usize::from(x.port.is_some());
            Ok(())
        })
        .unwrap();
    };
    feed(&mut e, 1.0, client(1, VIP, 80, SYN, 1));
    feed(&mut e, 1.001, client(1, VIP, 80, ACK, 2));
    assert_eq!(e.report().connections, 1);
    e.publish(snap);
    // A data packet under the new snapshot: the connection finds its service at index 1 and
    // takes its 5-second established timeout (DPVS's default, 900 s, would keep it alive).
    feed(&mut e, 2.0, client(1, VIP, 80, ACK, 2));
    assert_eq!(sent, 3, "every packet of the connection forwarded");
    e.advance(secs(4.0)).unwrap();
    assert_eq!(e.report().connections, 1, "alive within its timeout");
    e.advance(secs(10.0)).unwrap();
    assert_eq!(e.report().connections, 0, "expired after the moved service's 5 s");
}
