//! `rvsctl`: talk to a running `rvs run` over its control socket (`[control] socket`).
//!
//! - `rvsctl -s SOCK list`: services, destinations, weights, active/inactive connections
//!   summed over the lcores (`ipvsadm -L -n`);
//! - `rvsctl -s SOCK stats`: the live per-lcore, per-stage runtime (as SIGUSR1);
//! - `rvsctl -s SOCK reload`: read the configuration file again and publish it (as SIGHUP);
//!   a bad file is refused with its located error and the running configuration stays;
//! - `rvsctl -s SOCK zero`: zero the stage counters (`ipvsadm -Z`).
//!
//! The socket is `-s PATH`, else `$RVS_SOCKET`, else the default of the run started with
//! `--file-prefix P` (`-p P`): `/run/rvs/P.sock` or `<temp>/rvs-P.sock`. The exit status
//! is 0 when rvs answered OK, 1 when it refused the request, 2 when it could not be reached.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Command {
    /// Services, destinations, weights, connections (ipvsadm -L -n).
    List,
    /// Per-lcore, per-stage runtime.
    Stats,
    /// Re-read the configuration file and publish it.
    Reload,
    /// Zero the stage counters.
    Zero,
    /// The commands rvs understands.
    Help,
}

#[derive(Parser, Debug)]
#[command(name = "rvsctl", version, about = "control a running `rvs run`")]
struct Cli {
    /// Control socket of the running rvs.
    #[arg(short = 's', long)]
    socket: Option<PathBuf>,
    /// EAL file prefix of the running rvs (its default socket).
    #[arg(short = 'p', long = "file-prefix")]
    file_prefix: Option<String>,
    /// What to do.
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match (cli.socket, std::env::var_os("RVS_SOCKET"), &cli.file_prefix) {
        (Some(p), _, _) => p,
        (None, Some(p), _) => PathBuf::from(p),
        (None, None, Some(prefix)) => {
            let run = PathBuf::from(format!("/run/rvs/{prefix}.sock"));
            if run.exists() {
                run
            } else {
                std::env::temp_dir().join(format!("rvs-{prefix}.sock"))
            }
        }
        (None, None, None) => {
            eprintln!("rvsctl: name the control socket: -s PATH, RVS_SOCKET, or -p FILE_PREFIX");
            return ExitCode::from(2);
        }
    };
    let req = match cli.command {
        Command::List => "list",
        Command::Stats => "stats",
        Command::Reload => "reload",
        Command::Zero => "zero",
        Command::Help => "help",
    };
    match rvs_pipeline::control::request(&path, req) {
        Ok((true, text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok((false, err)) => {
            eprintln!("rvsctl: {req}: {}", err.trim_end());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rvsctl: cannot reach rvs at {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}
