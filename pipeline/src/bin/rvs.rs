//! `rvs`: the load balancer's command line.
//!
//! - `rvs replay --config FILE --in IN.pcap --out OUT.pcap [--stats STATS.json]`: the stage
//!   graph on one lcore over heap buffers, driven by a pcap file;
//! - `rvs demo [--dir DIR]`: the embedded default configuration over a trace rvs makes itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rvs_pipeline::config::Config;
use rvs_pipeline::{demo, pcap, replay};

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
    /// Run the embedded default: a demo config and a trace rvs generates, replayed.
    Demo {
        /// Where to write the config, trace, output and stats (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Client connections in the trace.
        #[arg(long, default_value_t = 300)]
        flows: u32,
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
        Cmd::Demo { dir, flows } => (|| {
            let dir = match dir {
                Some(d) => d,
                None => std::env::temp_dir().join(format!("rvs-demo-{}", std::process::id())),
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
            let conf = dir.join("demo.toml");
            std::fs::write(&conf, demo::CONFIG)?;
            let input = dir.join("clients.pcap");
            let mut w = pcap::Writer::create(&input)?;
            for (ts, f) in demo::trace(flows) {
                w.write(ts, &f)?;
            }
            drop(w);
            let out = dir.join("out.pcap");
            let stats = dir.join("stats.json");
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
