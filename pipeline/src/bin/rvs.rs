//! `rvs`: the load balancer's command line.
//!
//! - `rvs replay --config FILE --in IN.pcap --out OUT.pcap [--stats STATS.json]`: the stage
//!   graph on one lcore over heap buffers, driven by a pcap file;
//! - `rvs run --config FILE [--packets N] [--idle-ms MS] [--stats FILE.json] [--file-prefix P]`:
//!   the DPDK poll loop on the config's interfaces and worker lcores, until SIGINT/SIGTERM,
//!   N packets or MS idle; SIGUSR1 prints the live per-lcore, per-stage runtime; for
//!   throughput runs `--empty-graph` (rx to tx, no stage) and `--warmup-ms W --window-ms M`
//!   (a measured window, then stop), with `gen:` generator interfaces (`rvs_pipeline::traffic`);
//! - `rvs gen-pcap --device gen:... --packets N --out F.pcap`: a generator's frames as pcap;
//! - `rvs demo [--dir DIR] [--heap]`: the embedded default configuration over a trace rvs makes
//!   itself, run by `rvs run` on DPDK `net_pcap` (reading the trace, writing the output pcap),
//!   or by the heap-buffer replay when the EAL cannot start (or with `--heap`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rvs_pipeline::config::Config;
use rvs_pipeline::{demo, pcap, replay, run};

#[derive(Parser, Debug)]
#[command(name = "rvs", version, about = "rvs: a layer-4 load balancer data plane")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the stage graph over a pcap file on heap buffers (no DPDK).
    Replay {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Input pcap.
        #[arg(long = "in")]
        input: PathBuf,
        /// Output pcap (every transmitted packet).
        #[arg(long)]
        out: PathBuf,
        /// Counters as JSON.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Packets handed to the host path, as pcap.
        #[arg(long)]
        host: Option<PathBuf>,
        /// Vector size (default: the config's, else 32).
        #[arg(long)]
        vector: Option<usize>,
    },
    /// Run the DPDK poll loop on the config's interfaces.
    Run {
        /// Configuration file (TOML) with a `device` on every interface.
        #[arg(long)]
        config: PathBuf,
        /// Stop receiving after N packets.
        #[arg(long)]
        packets: Option<u64>,
        /// Stop after MS milliseconds without a packet (net_pcap has no end-of-file signal).
        #[arg(long = "idle-ms")]
        idle_ms: Option<u64>,
        /// Counters as JSON at exit.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// EAL --file-prefix (default `rvs-<pid>`).
        #[arg(long = "file-prefix")]
        file_prefix: Option<String>,
        /// Bypass the stage graph: interface i's packets go out on interface (i+1) % n
        /// (rvs's own I/O floor).
        #[arg(long = "empty-graph")]
        empty_graph: bool,
        /// Start of the measured window, in milliseconds after the start (with --window-ms).
        #[arg(long = "warmup-ms")]
        warmup_ms: Option<u64>,
        /// Length of the measured window; receiving stops at its end and the report gains
        /// a `window` (counter differences, rates, per-stage cycles per packet).
        #[arg(long = "window-ms")]
        window_ms: Option<u64>,
    },
    /// Write a traffic generator's packets to a pcap file (for devices that replay files,
    /// e.g. testpmd on net_pcap with the same traffic as a `gen:` interface).
    GenPcap {
        /// The generator spec, as an interface's device (`gen:profile=established,flows=4096`).
        #[arg(long)]
        device: String,
        /// Configuration whose first TCP service gives the default VIP and port.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Destination MAC of the frames.
        #[arg(long, default_value = "02:00:00:00:00:01")]
        mac: String,
        /// Frames to write.
        #[arg(long)]
        packets: u64,
        /// Output pcap.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the embedded default: a demo config and a trace rvs generates, through `rvs run`
    /// on DPDK net_pcap (heap-buffer replay if the EAL cannot start).
    Demo {
        /// Where to write the config, trace, output and stats (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Client connections in the trace.
        #[arg(long, default_value_t = 300)]
        flows: u32,
        /// Use the heap-buffer replay instead of DPDK.
        #[arg(long)]
        heap: bool,
    },
}

fn run_replay(
    config: &std::path::Path,
    input: &std::path::Path,
    out: &std::path::Path,
    stats: Option<&std::path::Path>,
    host: Option<&std::path::Path>,
    vector: Option<usize>,
) -> anyhow::Result<replay::Report> {
    let cfg = Config::load(config)?;
    let records = pcap::read(input)?;
    let mut w = pcap::Writer::create(out)?;
    let mut h = match host {
        Some(p) => Some(pcap::Writer::create(p)?),
        None => None,
    };
    let report = replay::replay(
        &cfg,
        &records,
        vector.unwrap_or(cfg.pipeline.vector),
        |ts, _port, data| w.write(ts, data),
        |ts, data| match h.as_mut() {
            Some(h) => h.write(ts, data),
            None => Ok(()),
        },
    )?;
    if let Some(s) = stats {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(s, json).with_context(|| format!("{}: cannot write", s.display()))?;
    }
    Ok(report)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Replay {
            config,
            input,
            out,
            stats,
            host,
            vector,
        } => run_replay(&config, &input, &out, stats.as_deref(), host.as_deref(), vector).map(|rep| {
            print!("{}", rep.summary());
        }),
        Cmd::Run {
            config,
            packets,
            idle_ms,
            stats,
            file_prefix,
            empty_graph,
            warmup_ms,
            window_ms,
        } => (|| {
            let cfg = Config::load(&config)?;
            let rep = run::run(
                &cfg,
                &run::RunOpts {
                    packets,
                    idle_ms,
                    file_prefix,
                    empty_graph,
                    warmup_ms,
                    window_ms,
                },
            )?;
            print!("{}", rep.summary());
            if let Some(s) = stats {
                let json = serde_json::to_string_pretty(&rep)?;
                std::fs::write(&s, json).with_context(|| format!("{}: cannot write", s.display()))?;
            }
            Ok(())
        })(),
        Cmd::GenPcap {
            device,
            config,
            mac,
            packets,
            out,
        } => (|| {
            let cfg = match config {
                Some(c) => Config::load(&c)?,
                None => Config::default(),
            };
            let mac =
                rvs_pipeline::traffic::parse_mac(&mac).with_context(|| format!("`{mac}` is not a MAC address"))?;
            rvs_pipeline::traffic::write_pcap(&device, mac, &cfg, packets, &out)?;
            println!("{packets} frames of {device} in {}", out.display());
            Ok(())
        })(),
        Cmd::Demo { dir, flows, heap } => (|| {
            let dir = match dir {
                Some(d) => d,
                None => std::env::temp_dir().join(format!("rvs-demo-{}", std::process::id())),
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
            let conf = dir.join("demo.toml");
            let input = dir.join("clients.pcap");
            let out = dir.join("out.pcap");
            let stats = dir.join("stats.json");
            let trace = demo::trace(flows);
            let mut w = pcap::Writer::create(&input)?;
            for (ts, f) in &trace {
                w.write(*ts, f)?;
            }
            drop(w);
            if !heap {
                let text = demo::run_config(&input, &out);
                std::fs::write(&conf, &text)?;
                println!(
                    "rvs demo: rvs run on DPDK net_pcap; FNAT service 198.18.0.100:80 (rr) over 3 real servers, {flows} client connections"
                );
                println!(
                    "  config {}\n  input  {}\n  output {}\n  stats  {}",
                    conf.display(),
                    input.display(),
                    out.display(),
                    stats.display()
                );
                let cfg = Config::load(&conf)?;
                let opts = run::RunOpts {
                    packets: Some(trace.len() as u64),
                    idle_ms: Some(2000),
                    file_prefix: None,
                    ..run::RunOpts::default()
                };
                match run::run(&cfg, &opts) {
                    Ok(rep) => {
                        print!("{}", rep.summary());
                        let json = serde_json::to_string_pretty(&rep)?;
                        std::fs::write(&stats, json).with_context(|| format!("{}: cannot write", stats.display()))?;
                        let written = pcap::read(&out).map(|r| r.len()).unwrap_or(0);
                        println!("output pcap: {written} packets in {}", out.display());
                        return Ok(());
                    }
                    Err(e) => {
                        println!("rvs demo: DPDK is not available here ({e:#});");
                        println!("rvs demo: falling back to the same graph over heap buffers (rvs replay)");
                    }
                }
            }
            std::fs::write(&conf, demo::CONFIG)?;
            println!("rvs demo: FNAT service 198.18.0.100:80 (rr) over 3 real servers, {flows} client connections");
            println!(
                "  config {}\n  input  {}\n  output {}\n  stats  {}",
                conf.display(),
                input.display(),
                out.display(),
                stats.display()
            );
            let rep = run_replay(&conf, &input, &out, Some(&stats), None, None)?;
            print!("{}", rep.summary());
            Ok(())
        })(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
