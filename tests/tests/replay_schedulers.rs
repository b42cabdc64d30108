//! Every native scheduler by its ipvsadm name through `rvs replay`'s engine: accepted by the
//! config, places connections only on eligible real servers, and keeps each flow on its
//! server; an unknown name is a config error listing the known ones.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use rvs_pipeline::config::Config;
use rvs_pipeline::replay::Engine;
use rvs_testkit::builder::Pkt;
use rvs_testkit::decode::decode_checked;

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn config(sched: &str) -> String {
    config_flags(sched, "")
}

fn config_flags(sched: &str, flags: &str) -> String {
    let mut s = format!(
        r#"
[defence]
tcp_drop = true

[[interface]]
name = "port0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.1.1/24"]

[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
scheduler = "{sched}"
forward = "dr"
{flags}
"#
    );
    // Three servers; the third is drained (weight 0) and must get nothing.
    for (i, w) in [(11, 2), (12, 1), (13, 0)] {
        s += &format!("\n[[service.dest]]\nip = \"198.18.1.{i}\"\nweight = {w}\n");
        s += &format!("\n[[neighbor]]\nip = \"198.18.1.{i}\"\nmac = \"02:00:00:00:01:{i}\"\n");
    }
    s
}

/// sh and dh without their fallback keep IPVS's behaviour: a flow hashed to a drained
/// server finds no destination (IPVS returns NULL: "no destination available").
fn may_refuse(name: &str) -> bool {
    matches!(name, "sh" | "dh")
}

#[test]
fn every_native_scheduler_is_accepted_and_places_flows_on_eligible_servers() {
    let mut cases: Vec<(String, String)> = rvs_schedulers::NAMES
        .iter()
        .map(|n| (n.to_string(), config(n)))
        .collect();
    cases.push(("sh".into(), config_flags("sh", "flags = [\"sh-fallback\"]")));
    cases.push((
        "mh".into(),
        config_flags("mh", "flags = [\"mh-fallback\", \"mh-port\"]"),
    ));
    for (i, (name, text)) in cases.iter().enumerate() {
        let name = name.as_str();
        let fallback = i >= rvs_schedulers::NAMES.len();
        let cfg = Config::parse("s.toml", text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut engine = Engine::new(&cfg, 32).unwrap();
        let mut recs = Vec::new();
        for round in 0..2u32 {
            for i in 0..60u32 {
                let flags = if round == 0 { 0x02 } else { 0x10 };
                let f = Pkt::eth(GW_MAC, LB_MAC)
                    .ipv4(
                        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 1)) + i * 3),
                        Ipv4Addr::new(198, 18, 0, 100),
                    )
                    .tcp(10000 + i as u16, 80)
                    .flags(flags)
                    .seq(1 + round)
                    .build();
                recs.push((1_000_000 + (round * 100 + i) as u64 * 1000, f));
            }
        }
        let mut placed: HashMap<u16, Vec<[u8; 6]>> = HashMap::new();
        engine
            .feed(&recs, |e| {
                assert_eq!(e.port, Some(0), "{name}: nothing to the host path");
                let d = decode_checked(&e.bytes).unwrap();
                placed
                    .entry(d.tcp().unwrap().sport)
                    .or_default()
                    .push(d.eth.unwrap().dst);
                Ok(())
            })
            .unwrap();
        let rep = engine.report();
        let no_dest: u64 = rep
            .stages
            .iter()
            .flat_map(|s| s.drops.iter())
            .filter(|d| d.reason == "no_dest")
            .map(|d| d.count)
            .sum();
        if may_refuse(name) && !fallback {
            assert_eq!(
                placed.len() as u64 + no_dest,
                60,
                "{name}: every flow placed or refused for no destination"
            );
            assert!(placed.len() >= 30, "{name}: most flows placed ({})", placed.len());
        } else {
            assert_eq!(no_dest, 0, "{name}: no flow refused");
            assert_eq!(placed.len(), 60, "{name}: every flow forwarded");
        }
        for (port, macs) in &placed {
            assert_eq!(macs.len(), 2, "{name}: flow {port} lost a packet");
            assert_eq!(macs[0], macs[1], "{name}: flow {port} changed server");
            assert_ne!(
                macs[0],
                [2, 0, 0, 0, 1, 13],
                "{name}: flow {port} went to the drained server"
            );
        }
        assert_eq!(rep.created, placed.len() as u64, "{name}");
    }
}

#[test]
fn an_unknown_scheduler_is_a_config_error_listing_the_known_ones() {
    let e = Config::parse("s.toml", &config("fastest")).unwrap_err();
    assert!(e.msg.contains("unknown scheduler `fastest`"), "{e}");
    for n in rvs_schedulers::NAMES {
        assert!(e.msg.contains(n), "{e} does not list {n}");
    }
    let line = config("fastest").lines().position(|l| l.contains("fastest")).unwrap() + 1;
    assert_eq!(e.line, line);
}
