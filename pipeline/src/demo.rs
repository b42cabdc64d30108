//! The embedded default: a configuration and a client trace the binary makes itself, so
//! `rvs demo` runs with no NIC, no hugepages and no input file.

use rvs_core::addr::Addr;

use crate::frames::Tcp;

/// The demo configuration: one FNAT service on 198.18.0.100:80 over three real servers,
/// round-robin.
pub const CONFIG: &str = r#"
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
[[neighbor]]
ip = "198.18.1.13"
mac = "02:00:00:00:01:13"
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
[[service.dest]]
ip = "198.18.1.12"
port = 8080
[[service.dest]]
ip = "198.18.1.13"
port = 8080
"#;

/// A client trace: `flows` clients from 198.18.128.0/17 each opening a connection to the
/// VIP, sending a request and closing (SYN, ACK, data, FIN, ACK), 10 us apart, flows
/// interleaved; plus one stray ACK to the VIP (dropped by the defence switch).
pub fn trace(flows: u32) -> Vec<(u64, Vec<u8>)> {
    let gw = [0x02, 0, 0, 0, 0, 0xfe];
    let me = [0x02, 0, 0, 0, 0, 0x01];
    let vip = Addr::v4([198, 18, 0, 100]);
    let mut out = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    let req = b"GET / HTTP/1.0\r\n\r\n";
    for step in 0..5u32 {
        for f in 0..flows {
            let client = Addr::from_v4_u32(u32::from_be_bytes([198, 18, 128, 0]) + 1 + f);
            let isn = 1000 + f * 7919;
            let (seq, flags, payload): (u32, u8, &[u8]) = match step {
                0 => (isn, 0x02, &[]),
                1 => (isn + 1, 0x10, &[]),
                2 => (isn + 1, 0x18, req),
                3 => (isn + 1 + req.len() as u32, 0x11, &[]),
                _ => (isn + 2 + req.len() as u32, 0x10, &[]),
            };
            let ack = if step == 0 { 0 } else { 5000 + step };
            let seg = Tcp {
                src_mac: gw,
                dst_mac: me,
                saddr: client,
                daddr: vip,
                sport: 40000 + (f % 20000) as u16,
                dport: 80,
                seq,
                ack,
                flags,
                payload,
            };
            out.push((t, seg.frame()));
            t += 10_000;
        }
    }
    let stray = Tcp {
        src_mac: gw,
        dst_mac: me,
        saddr: Addr::v4([198, 18, 200, 1]),
        daddr: vip,
        sport: 5555,
        dport: 80,
        seq: 1,
        ack: 1,
        flags: 0x10,
        payload: &[],
    };
    out.push((t, stray.frame()));
    out
}

/// The demo configuration for `rvs run`: [`CONFIG`] with its interface on DPDK `net_pcap`,
/// reading `input` and writing `output` (paths must not contain commas, which separate
/// device arguments).
pub fn run_config(input: &std::path::Path, output: &std::path::Path) -> String {
    CONFIG.replacen(
        "name = \"port0\"\n",
        &format!(
            "name = \"port0\"\ndevice = \"net_pcap0,rx_pcap={},tx_pcap={}\"\n",
            input.display(),
            output.display()
        ),
        1,
    )
}
