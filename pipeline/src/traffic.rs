//! The traffic generator of throughput runs: an interface whose `device` is a generator
//! spec instead of a DPDK device, so `rvs run` can be measured with no NIC and at any flow
//! count (`net_pcap`'s `infinite_rx` holds every packet of its file in an mbuf, about 4 KiB
//! each under `--no-huge`, so a million flows do not fit).
//!
//! ```toml
//! [[interface]]
//! name = "client"
//! mac = "02:00:00:00:00:01"
//! device = "gen:profile=established,flows=65536,vip=198.18.0.100,port=80"
//! ```
//!
//! Keys of the spec (comma separated after `gen:`):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `profile` | `established`, `new`, `mix` or `sink` | `established` |
//! | `flows` | established flows rotated over (all lcores together) | 65536 |
//! | `new` | `mix` only: percent of packets that open a new connection | 20 |
//! | `vip`, `port` | the destination (IPv4 or IPv6: the client family follows) | the first service |
//! | `src_mac` | source MAC of the frames (the destination MAC is the interface's) | `02:00:00:00:00:fe` |
//! | `payload` | bytes of data in each non-SYN segment | 0 |
//!
//! - **established**: each lcore rotates over its share of `flows` client tuples; the first
//!   packet of each flow is a SYN (so the traffic itself creates the connection during the
//!   warm-up, nothing is pre-inserted), every later one an ACK (with `payload` bytes).
//! - **new**: every packet is a SYN from a tuple never used before in the run (the client
//!   space holds 2^31 tuples per family, far more than a run sends).
//! - **mix**: `new` percent of the packets are such SYNs, the rest established traffic.
//! - **sink**: receives nothing; an interface that only transmits.
//!
//! Frames are Ethernet + IPv4 (DF, TTL 64) or IPv6 (hop limit 64) + TCP (window 65535; MSS
//! 1460 on SYNs), from client addresses in 198.19.0.0/16 (established flows in the lower
//! half, new ones in the upper) or 2001:db8:c::/48, ports 1024..=65535. Every checksum is
//! right: each template keeps the one's complement sum (RFC 1071) of its fixed words, and a
//! packet adds its client address and port to it (the IPv4 header checksum likewise).
//! Lcore `l` of `n` uses the tuples whose index is `l` modulo `n`, so lcores never share a
//! flow.
//!
//! Transmit on a generator interface ([`Sink`]) counts the packets and frees them in bulk,
//! as `net_null` does. A generator fills a burst from the DPDK pool (`rte_pktmbuf_alloc_bulk`)
//! and writes each header (one copy of the template and a few stores), on the worker lcore
//! itself: its cost is part of what `rvs run` measures, and the empty graph on a generator
//! (`rvs run --empty-graph`) measures it.
//!
//! Not done: UDP and ICMP traffic, reply traffic from the real servers (the generator plays
//! clients only), packet sizes beyond one mbuf, RSS-like spreading of one flow set over
//! lcores. A generator's mbufs carry the interface index as their port; configurations that
//! mix generator and DPDK devices must list the DPDK devices first (their port ids are
//! their interface indexes).

use rvs_core::addr::Addr;
use rvs_core::checksum;
use rvs_core::mbuf::Mbuf;
use rvs_dpdk::{Mempool, RteMbuf, RxQueue, TxBuffer};

use crate::config::Config;

/// The prefix of a generator device string.
pub const PREFIX: &str = "gen:";
/// Client ports used: 1024..=65535.
const PORTS: u64 = 65535 - 1024 + 1;
/// Largest burst a generator fills.
pub const MAX_BURST: usize = 64;

/// What a generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Rotate over established flows (first packet of each a SYN).
    Established,
    /// Every packet a SYN with a new tuple.
    New,
    /// `new_percent` of the packets new SYNs, the rest established.
    Mix,
    /// Nothing received; transmit only.
    Sink,
}

/// A parsed generator spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSpec {
    /// The profile.
    pub profile: Profile,
    /// Established flows, all lcores together.
    pub flows: u32,
    /// Percent of new connections in `mix`.
    pub new_percent: u8,
    /// Destination address.
    pub vip: Addr,
    /// Destination port.
    pub vport: u16,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC (the interface's).
    pub dst_mac: [u8; 6],
    /// Payload bytes of non-SYN segments.
    pub payload: u16,
}

/// True when `device` names a generator.
pub fn is_generator(device: &str) -> bool {
    device.starts_with(PREFIX)
}

/// A MAC address `02:00:00:00:00:01` (the one parser, rvs-core's).
pub use rvs_core::wire::ethernet::parse_mac;

impl GenSpec {
    /// Parse `device` (`gen:key=value,...`) for an interface with MAC `mac`; `vip`/`port`
    /// default to the first TCP service of `cfg`.
    pub fn parse(device: &str, mac: [u8; 6], cfg: &Config) -> Result<GenSpec, String> {
        let body = device
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("`{device}` is not a generator (gen:...)"))?;
        let first = cfg
            .services
            .iter()
            .map(|s| s.get_ref())
            .find(|s| s.protocol == crate::config::ProtoCfg::Tcp);
        let mut spec = GenSpec {
            profile: Profile::Established,
            flows: 65536,
            new_percent: 20,
            vip: first.map_or(Addr::v4([198, 18, 0, 100]), |s| s.vip.0),
            vport: first.map_or(80, |s| s.port),
            src_mac: [0x02, 0, 0, 0, 0, 0xfe],
            dst_mac: mac,
            payload: 0,
        };
        for kv in body.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("generator `{device}`: `{kv}` is not key=value"))?;
            let bad = || format!("generator `{device}`: bad value `{v}` for `{k}`");
            match k {
                "profile" => {
                    spec.profile = match v {
                        "established" => Profile::Established,
                        "new" => Profile::New,
                        "mix" => Profile::Mix,
                        "sink" => Profile::Sink,
                        _ => {
                            return Err(format!(
                                "generator `{device}`: unknown profile `{v}` (established, new, mix, sink)"
                            ));
                        }
                    }
                }
                "flows" => spec.flows = v.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
                "new" => spec.new_percent = v.parse().ok().filter(|&n| n <= 100).ok_or_else(bad)?,
                "vip" => spec.vip = v.parse().map_err(|_| bad())?,
                "port" => spec.vport = v.parse().map_err(|_| bad())?,
                "src_mac" => spec.src_mac = parse_mac(v).ok_or_else(bad)?,
                "payload" => spec.payload = v.parse().ok().filter(|&n| n <= 1400).ok_or_else(bad)?,
                _ => {
                    return Err(format!(
                        "generator `{device}`: unknown key `{k}` (profile, flows, new, vip, port, src_mac, payload)"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

/// One packet shape (SYN or ACK) of one family with its checksum sums precomputed.
#[derive(Debug, Clone)]
struct Template {
    bytes: Vec<u8>,
    v4: bool,
    /// Offset of the client address.
    saddr_at: usize,
    /// Offset of the TCP header.
    tcp_at: usize,
    /// Sum of the IPv4 header words with the client address and checksum as zero.
    ip_sum: u32,
    /// Sum of the pseudo header and segment with client address, port and checksum zero.
    tcp_sum: u32,
}

impl Template {
    fn new(spec: &GenSpec, syn: bool) -> Template {
        let v4 = spec.vip.is_v4();
        let opts: &[u8] = if syn { &[2, 4, 0x05, 0xb4] } else { &[] };
        let payload = if syn { 0 } else { spec.payload as usize };
        let tcp_len = 20 + opts.len() + payload;
        let mut f = Vec::with_capacity(14 + 40 + tcp_len);
        f.extend_from_slice(&spec.dst_mac);
        f.extend_from_slice(&spec.src_mac);
        let ip = f.len() + 2;
        let (saddr_at, tcp_at);
        if v4 {
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
            f[ip + 2..ip + 4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            saddr_at = f.len();
            f.extend_from_slice(&[0; 4]);
            f.extend_from_slice(&spec.vip.v4_octets());
            tcp_at = f.len();
        } else {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            saddr_at = f.len();
            f.extend_from_slice(&[0; 16]);
            f.extend_from_slice(&spec.vip.octets());
            tcp_at = f.len();
        }
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&spec.vport.to_be_bytes());
        let (seq, ack, flags): (u32, u32, u8) = if syn { (1000, 0, 0x02) } else { (1001, 5001, 0x10) };
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        f.push((((20 + opts.len()) / 4) as u8) << 4);
        f.push(flags);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(opts);
        f.extend(std::iter::repeat_n(b'x', payload));
        let ip_sum = if v4 { checksum::sum(&f[ip..ip + 20], 0) } else { 0 };
        let pseudo = if v4 {
            checksum::pseudo_v4([0; 4], spec.vip.v4_octets(), 6, tcp_len as u16)
        } else {
            checksum::pseudo_v6([0; 16], spec.vip.octets(), 6, tcp_len as u32)
        };
        let tcp_sum = checksum::sum(&f[tcp_at..], pseudo);
        Template {
            bytes: f,
            v4,
            saddr_at,
            tcp_at,
            ip_sum,
            tcp_sum,
        }
    }

    /// Write the frame for client `caddr`:`cport` into `d` (exactly `self.bytes.len()` long).
    #[inline]
    fn write(&self, d: &mut [u8], caddr: Addr, cport: u16) {
        d.copy_from_slice(&self.bytes);
        let mut add = cport as u32;
        if self.v4 {
            let a = caddr.v4_u32();
            let w = (a >> 16) + (a & 0xffff);
            d[self.saddr_at..self.saddr_at + 4].copy_from_slice(&a.to_be_bytes());
            let ip = self.saddr_at - 12;
            let ck = checksum::finish(self.ip_sum + w);
            d[ip + 10..ip + 12].copy_from_slice(&ck.to_be_bytes());
            add += w;
        } else {
            let o = caddr.octets();
            d[self.saddr_at..self.saddr_at + 16].copy_from_slice(&o);
            let a = caddr.0;
            for k in 0..8 {
                add += ((a >> (16 * k)) & 0xffff) as u32;
            }
        }
        let t = self.tcp_at;
        d[t..t + 2].copy_from_slice(&cport.to_be_bytes());
        let ck = checksum::finish(self.tcp_sum + add);
        d[t + 16..t + 18].copy_from_slice(&ck.to_be_bytes());
    }
}

/// A position in the client tuple space: global index `host * PORTS + port`, advanced by
/// the lcore count without a division per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    host: u64,
    port: u64,
}

impl Cursor {
    /// Global index `lcore` (lcores < PORTS).
    fn start(lcore: u64) -> Cursor {
        Cursor {
            host: lcore / PORTS,
            port: lcore % PORTS,
        }
    }
    #[inline]
    fn advance(&mut self, by: u64) {
        self.port += by;
        while self.port >= PORTS {
            self.port -= PORTS;
            self.host += 1;
        }
    }
}

/// The packet sequence of one lcore's generator, independent of where the bytes go (mbufs
/// or a pcap file).
#[derive(Debug, Clone)]
pub struct Flows {
    spec: GenSpec,
    syn: Template,
    ack: Template,
    lcore: u64,
    lcores: u64,
    /// Established flows of this lcore.
    mine: u64,
    /// Next established flow: its index among this lcore's flows and its tuple.
    est_k: u64,
    est: Cursor,
    /// Still in the first pass over the established flows (SYNs).
    first_pass: bool,
    /// Next new tuple.
    fresh: Cursor,
    /// Position in the mix's cycle of 100 packets.
    mix_tick: u8,
    /// Packets made.
    made: u64,
    /// SYNs made.
    syns: u64,
}

impl Flows {
    /// The sequence of lcore `lcore` of `lcores` for `spec`.
    pub fn new(spec: &GenSpec, lcore: u16, lcores: u16) -> Flows {
        let lcores = lcores.max(1) as u64;
        let lcore = lcore as u64 % lcores;
        let mine = (spec.flows as u64 / lcores + u64::from(lcore < spec.flows as u64 % lcores)).max(1);
        Flows {
            syn: Template::new(spec, true),
            ack: Template::new(spec, false),
            spec: spec.clone(),
            lcore,
            lcores,
            mine,
            est_k: 0,
            est: Cursor::start(lcore),
            first_pass: true,
            fresh: Cursor::start(lcore),
            mix_tick: 0,
            made: 0,
            syns: 0,
        }
    }

    /// The client at tuple-space position `c` in half `upper` of the client space.
    #[inline]
    fn client(&self, c: Cursor, upper: bool) -> (Addr, u16) {
        let port = 1024 + c.port as u16;
        let host = c.host & 0x7fff;
        let host = host | if upper { 0x8000 } else { 0 };
        let addr = if self.spec.vip.is_v4() {
            Addr::from_v4_u32(u32::from_be_bytes([198, 19, 0, 0]) | host as u32)
        } else {
            // 2001:db8:c::/48, the host number in the last 32 bits.
            Addr((0x2001_0db8_000c_u128 << 80) | host as u128)
        };
        (addr, port)
    }

    /// The next packet's length and writer: (SYN?, client, port).
    #[inline]
    fn next(&mut self) -> (bool, Addr, u16) {
        self.made += 1;
        let new = match self.spec.profile {
            Profile::New => true,
            Profile::Mix => {
                self.mix_tick = if self.mix_tick >= 99 { 0 } else { self.mix_tick + 1 };
                self.mix_tick < self.spec.new_percent
            }
            Profile::Established | Profile::Sink => false,
        };
        if new {
            let c = self.fresh;
            self.fresh.advance(self.lcores);
            self.syns += 1;
            let (a, p) = self.client(c, true);
            (true, a, p)
        } else {
            let c = self.est;
            let syn = self.first_pass;
            self.est_k += 1;
            if self.est_k == self.mine {
                self.est_k = 0;
                self.est = Cursor::start(self.lcore);
                self.first_pass = false;
            } else {
                self.est.advance(self.lcores);
            }
            self.syns += syn as u64;
            let (a, p) = self.client(c, false);
            (syn, a, p)
        }
    }

    /// The next frame into a fresh vector (pcap files, tests).
    pub fn next_frame(&mut self) -> Vec<u8> {
        let (syn, a, p) = self.next();
        let t = if syn { &self.syn } else { &self.ack };
        let mut v = vec![0u8; t.bytes.len()];
        t.write(&mut v, a, p);
        v
    }

    /// Write the next frame at the end of `m`; false (nothing written) when it has no room.
    #[inline]
    pub fn fill<M: Mbuf>(&mut self, m: &mut M) -> bool {
        let (syn, a, p) = self.next();
        let t = if syn { &self.syn } else { &self.ack };
        match m.append(t.bytes.len()) {
            Some(d) => {
                t.write(d, a, p);
                true
            }
            None => false,
        }
    }

    /// Packets made so far.
    pub fn made(&self) -> u64 {
        self.made
    }
    /// SYNs among them.
    pub fn syns(&self) -> u64 {
        self.syns
    }
}

/// A generator receive queue: bursts of templated packets from the DPDK pool.
#[derive(Debug)]
pub struct Generator {
    flows: Flows,
    pool: Mempool,
    port: u16,
    buf: Vec<RteMbuf>,
    short: u64,
    idle: bool,
}

impl Generator {
    /// The generator of lcore `lcore` of `lcores` on interface `port`, drawing from `pool`.
    pub fn new(spec: &GenSpec, port: u16, lcore: u16, lcores: u16, pool: Mempool) -> Generator {
        Generator {
            flows: Flows::new(spec, lcore, lcores),
            pool,
            port,
            buf: Vec::with_capacity(MAX_BURST),
            short: 0,
            idle: spec.profile == Profile::Sink,
        }
    }

    /// Make at most `max` packets (capped at [`MAX_BURST`]) and hand each to `f`; 0 when the
    /// pool is short (counted in [`pool_short`](Self::pool_short)).
    #[inline]
    pub fn rx_burst_with(&mut self, max: usize, mut f: impl FnMut(RteMbuf)) -> usize {
        if self.idle {
            return 0;
        }
        let n = max.min(MAX_BURST);
        if n == 0 {
            return 0;
        }
        if self.pool.alloc_bulk(&mut self.buf, n) == 0 {
            self.short += 1;
            return 0;
        }
        let mut made = 0;
        for mut m in self.buf.drain(..) {
            if self.flows.fill(&mut m) {
                m.set_port(self.port);
                made += 1;
                f(m);
            }
        }
        made
    }

    /// Bursts lost to an empty pool.
    pub fn pool_short(&self) -> u64 {
        self.short
    }
    /// The packet sequence.
    pub fn flows(&self) -> &Flows {
        &self.flows
    }
}

/// Transmit on a generator interface: count and free, in bursts.
#[derive(Debug)]
pub struct Sink {
    buf: Vec<RteMbuf>,
    sent: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            buf: Vec::with_capacity(MAX_BURST),
            sent: 0,
        }
    }
}

impl Sink {
    /// Take a packet.
    #[inline]
    pub fn push(&mut self, m: RteMbuf) {
        self.buf.push(m);
        if self.buf.len() >= MAX_BURST {
            self.flush();
        }
    }
    /// Free what waits, counted as sent.
    #[inline]
    pub fn flush(&mut self) -> usize {
        let n = self.buf.len();
        self.sent += n as u64;
        RteMbuf::free_bulk(&mut self.buf);
        n
    }
}

/// A receive side of one interface on one lcore: a DPDK queue or a generator.
#[derive(Debug)]
pub enum RxPort {
    /// A DPDK receive queue.
    Dev(RxQueue),
    /// A generator (boxed: its templates and state are much larger than a queue handle).
    Gen(Box<Generator>),
}

impl RxPort {
    /// Receive at most `max` packets, each handed to `f`.
    #[inline]
    pub fn rx_burst_with(&mut self, max: usize, f: impl FnMut(RteMbuf)) -> usize {
        match self {
            RxPort::Dev(q) => q.rx_burst_with(max, f),
            RxPort::Gen(g) => g.rx_burst_with(max, f),
        }
    }
    /// Chained mbufs freed on receive (DPDK queues only).
    pub fn chained_dropped(&self) -> u64 {
        match self {
            RxPort::Dev(q) => q.chained_dropped(),
            RxPort::Gen(_) => 0,
        }
    }
}

/// A transmit side of one interface on one lcore: a DPDK tx buffer or a generator's sink.
#[derive(Debug)]
pub enum TxPort {
    /// A DPDK transmit buffer.
    Dev(TxBuffer),
    /// Count and free.
    Sink(Sink),
}

impl TxPort {
    /// Queue a packet.
    #[inline]
    pub fn push(&mut self, m: RteMbuf) {
        match self {
            TxPort::Dev(b) => b.push(m),
            TxPort::Sink(s) => s.push(m),
        }
    }
    /// Send (or free) what waits.
    #[inline]
    pub fn flush(&mut self) -> usize {
        match self {
            TxPort::Dev(b) => b.flush(),
            TxPort::Sink(s) => s.flush(),
        }
    }
    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        match self {
            TxPort::Dev(b) => b.is_empty(),
            TxPort::Sink(s) => s.buf.is_empty(),
        }
    }
    /// Packets sent.
    pub fn sent(&self) -> u64 {
        match self {
            TxPort::Dev(b) => b.sent(),
            TxPort::Sink(s) => s.sent,
        }
    }
    /// Packets the device refused.
    pub fn dropped(&self) -> u64 {
        match self {
            TxPort::Dev(b) => b.dropped(),
            TxPort::Sink(_) => 0,
        }
    }
}

/// Write `packets` frames of generator `device` (interface MAC `mac`, one lcore) to the
/// pcap file `out`: the same traffic for devices that replay files (`net_pcap`).
pub fn write_pcap(device: &str, mac: [u8; 6], cfg: &Config, packets: u64, out: &std::path::Path) -> anyhow::Result<()> {
    let spec = GenSpec::parse(device, mac, cfg).map_err(|e| anyhow::anyhow!(e))?;
    let mut flows = Flows::new(&spec, 0, 1);
    let mut w = crate::pcap::Writer::create(out)?;
    for k in 0..packets {
        w.write(1_700_000_000_000_000_000 + k * 1000, &flows.next_frame())?;
    }
    Ok(())
}

/// Resident memory of this process in bytes (`/proc/self/statm`), 0 when unreadable.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_testkit::decode::decode_checked;

    fn cfg() -> Config {
        Config::parse(
            "t.toml",
            r#"
[[interface]]
name = "c"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
[[service]]
protocol = "tcp"
vip = "198.18.0.100"
port = 80
forward = "fnat"
local_addresses = ["198.18.0.1"]
[[service.dest]]
ip = "198.18.0.11"
"#,
        )
        .unwrap()
    }

    #[test]
    fn spec_defaults_to_the_first_service_and_rejects_bad_keys() {
        let c = cfg();
        let s = GenSpec::parse("gen:flows=10", [2, 0, 0, 0, 0, 1], &c).unwrap();
        assert_eq!(s.vip, "198.18.0.100".parse().unwrap());
        assert_eq!((s.vport, s.flows, s.profile), (80, 10, Profile::Established));
        assert!(
            GenSpec::parse("gen:profile=burst", [0; 6], &c)
                .unwrap_err()
                .contains("unknown profile")
        );
        assert!(GenSpec::parse("gen:flows=0", [0; 6], &c).unwrap_err().contains("flows"));
        assert!(
            GenSpec::parse("gen:colour=red", [0; 6], &c)
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(
            GenSpec::parse("gen:flows", [0; 6], &c)
                .unwrap_err()
                .contains("key=value")
        );
        assert!(!is_generator("net_null0"));
    }

    /// (syn?, source, source port) of a frame, every checksum verified by the independent
    /// decoder.
    fn look(f: &[u8]) -> (bool, String, u16, String, u16) {
        let d = decode_checked(f).unwrap_or_else(|e| panic!("bad frame: {e}"));
        let ip = d.ip().expect("IP");
        let t = d.tcp().expect("TCP");
        (
            t.flags & 0x02 != 0,
            ip.src().to_string(),
            t.sport,
            ip.dst().to_string(),
            t.dport,
        )
    }

    #[test]
    fn established_sends_one_syn_per_flow_then_acks_with_valid_checksums() {
        let c = cfg();
        for dev in ["gen:flows=5", "gen:flows=5,vip=2001:db8::100,port=443,payload=100"] {
            let s = GenSpec::parse(dev, [2, 0, 0, 0, 0, 1], &c).unwrap();
            let mut f = Flows::new(&s, 0, 1);
            let frames: Vec<_> = (0..15).map(|_| look(&f.next_frame())).collect();
            for (i, fr) in frames.iter().enumerate() {
                assert_eq!(fr.0, i < 5, "{dev}: packet {i}");
                assert_eq!(fr.4, s.vport);
                assert_eq!(fr.3, s.vip.to_string());
                // Rotation: packet i belongs to flow i % 5.
                assert_eq!((&fr.1, fr.2), (&frames[i % 5].1, frames[i % 5].2));
            }
            let distinct: std::collections::BTreeSet<_> = frames.iter().map(|f| (f.1.clone(), f.2)).collect();
            assert_eq!(distinct.len(), 5);
            assert_eq!(f.syns(), 5);
        }
    }

    #[test]
    fn lcores_split_the_established_flows_between_them() {
        let c = cfg();
        let s = GenSpec::parse("gen:flows=7", [2, 0, 0, 0, 0, 1], &c).unwrap();
        let mut all = std::collections::BTreeSet::new();
        for (l, mine) in [(0u16, 4usize), (1, 3)] {
            let mut f = Flows::new(&s, l, 2);
            let seq: Vec<_> = (0..3 * mine).map(|_| look(&f.next_frame())).collect();
            for (i, fr) in seq.iter().enumerate() {
                assert_eq!(fr.0, i < mine, "lcore {l} packet {i}");
                assert_eq!((&fr.1, fr.2), (&seq[i % mine].1, seq[i % mine].2), "period {mine}");
                all.insert((fr.1.clone(), fr.2));
            }
        }
        assert_eq!(all.len(), 7, "7 distinct flows over both lcores");
    }

    #[test]
    fn new_never_repeats_a_tuple_and_lcores_never_share_one() {
        let c = cfg();
        let s = GenSpec::parse("gen:profile=new", [2, 0, 0, 0, 0, 1], &c).unwrap();
        let mut seen = std::collections::HashSet::new();
        for l in 0..2 {
            let mut f = Flows::new(&s, l, 2);
            // Cross a port wrap (64512 ports per address).
            for _ in 0..70_000 {
                let fr = look(&f.next_frame());
                assert!(fr.0, "every packet a SYN");
                assert!(seen.insert((fr.1, fr.2)), "a tuple repeated");
            }
        }
    }

    #[test]
    fn mix_sends_the_configured_share_of_new_connections() {
        let c = cfg();
        let s = GenSpec::parse("gen:profile=mix,flows=100,new=20", [2, 0, 0, 0, 0, 1], &c).unwrap();
        let mut f = Flows::new(&s, 0, 1);
        let n = 10_000;
        let mut new = 0;
        for _ in 0..n {
            let fr = look(&f.next_frame());
            // New tuples come from the upper half of 198.19.0.0/16.
            let third: u8 = fr.1.split('.').nth(2).unwrap().parse().unwrap();
            if third >= 128 {
                assert!(fr.0);
                new += 1;
            }
        }
        assert_eq!(new, n / 5);
    }
}
