//! Shared by the DPDK integration tests. Each test binary is one process with one EAL
//! (`harness = false`: the tests run in order on the main thread, which is the EAL main
//! lcore), started with lean arguments (`--no-huge -m 256 --no-pci --no-shconf`) and a
//! file prefix of its own; the runtime directory is removed at the end.

#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use rvs_dpdk::{Eal, EalArgs};

/// Initialise the EAL for test binary `name` with `cores` and `vdevs`. When DPDK cannot
/// start here, fail under `CI=true` and skip (with a message) otherwise.
pub fn eal(name: &str, cores: &str, vdevs: &[&str]) -> Option<Eal> {
    let args = EalArgs {
        file_prefix: format!("rvs-test-{name}-{}", std::process::id()),
        cores: cores.into(),
        memory_mb: 256,
        vdevs: vdevs.iter().map(|s| s.to_string()).collect(),
        ..EalArgs::default()
    };
    match Eal::init(&args.to_args()) {
        Ok(e) => Some(e),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("DPDK EAL could not start ({e}) and CI=true: DPDK tests must run in CI");
            }
            eprintln!("SKIPPED {name}: DPDK EAL could not start here ({e})");
            None
        }
    }
}

/// A named test over the process's EAL.
pub type Test<'a> = (&'a str, fn(&Eal));

/// Run `tests` in order, report each, clean the EAL up, and exit non-zero if any failed.
pub fn run(eal: Eal, tests: &[Test<'_>]) {
    let mut failed = 0;
    for (name, t) in tests {
        match catch_unwind(AssertUnwindSafe(|| t(&eal))) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let dir = eal.runtime_dir();
    let live = eal.live_objects();
    match eal.cleanup() {
        Ok(()) => {}
        Err(e) => {
            println!("EAL cleanup failed: {e} ({live} DPDK objects alive)");
            failed += 1;
        }
    }
    let _ = std::fs::remove_dir(&dir);
    if dir.exists() {
        println!("runtime directory {} left behind", dir.display());
        failed += 1;
    }
    println!(
        "\ntest result: {} passed; {failed} failed",
        tests.len() - failed.min(tests.len())
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// A small deterministic generator (xorshift64*), so failures replay.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An Ethernet/IPv4/UDP frame from 198.18.0.1:1000+i to 198.18.0.2:53 with `payload`
/// bytes of value `i`, IPv4 header checksum computed here (RFC 1071), UDP checksum 0.
pub fn udp_frame(i: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    let mut ip = [0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&i.to_be_bytes());
    let mut sum: u32 = ip.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(1000 + i).to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(i as u8, payload));
    f
}
