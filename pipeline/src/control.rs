//! The run-time control plane of `rvs run`: snapshot publication, reload, and the control
//! socket `rvsctl` talks to.
//!
//! - **Publication.** The services live in one [`SnapshotCell`] (an `ArcSwap`) shared by the
//!   control thread and every worker lcore. A worker loads it once per loop iteration (one
//!   vector and one expiry pass run on the same snapshot) and never takes a lock or bumps a
//!   reference count per packet. A new snapshot is built entirely off the data path (on the
//!   control thread, plugins compiled there) and stored whole; the next vector of every
//!   lcore runs on it, its schedule stage rebuilding the schedulers of the new generation
//!   before its first pick. The control thread keeps each retired snapshot for
//!   [`RETIRE_AFTER`] so that the last reference (and the plugin instances it owns) is
//!   normally dropped here, not on an lcore.
//! - **Stable destinations.** Destination ids are the index of the per-lcore
//!   [`LoadTable`] counters and are held by connections; [`DestIds`] keeps the same id for
//!   the same (service, address, port) across reloads and never reuses a removed
//!   destination's slot within a run (bounded by `conn.dest_slots`; a reload needing more
//!   is refused). Established connections keep their destinations: lookup and xmit work
//!   from the connection's own addresses and id; the snapshot is consulted for an existing
//!   connection only for its service's timeouts (found by service index and generation, or
//!   by the key matching; a connection whose service was removed gets DPVS's default
//!   timeouts, counted by lookup) and, when it ends, to relieve its destination's overload
//!   flag (a destination no longer in the snapshot has none to relieve).
//! - **Reload** (SIGHUP or `rvsctl reload`): the config file is read again and checked, the
//!   next snapshot (generation + 1) built with the run's ids and published. A file that
//!   does not parse, or a snapshot that cannot be built (unknown scheduler, plugin that
//!   does not load, too many destinations), is refused with its located error and the old
//!   snapshot stays. Only `[[service]]` and `[defence]` take effect: sections fixed at start
//!   (`[dpdk]`, `[conn]`, `[pipeline]`, interfaces, neighbours, routes, `[control]`) are
//!   reported as "not applied until restart" when they changed.
//! - **The control socket** (`[control] socket`, default `/run/rvs/<file-prefix>.sock`, or
//!   `<temp>/rvs-<file-prefix>.sock` when `/run/rvs` cannot be made): one request line per
//!   connection (`list`, `stats`, `reload`, `zero`, `help`), answered by `OK` or
//!   `ERR <message>` on the first line, then the text, then the connection closes. Requests
//!   are bounded (one line of at most [`MAX_REQUEST`] bytes, read with a timeout); anything
//!   else is an `ERR`, never a panic.
//!
//! `list` is `ipvsadm -L -n`: services, their scheduler, destinations with forwarding mode,
//! weight, and active/inactive connections summed over the lcores' load tables (atomics the
//! control thread reads while the lcores run). `stats` is the per-lcore, per-stage runtime
//! (as SIGUSR1). `zero` zeroes the stage counters (VPP's `clear runtime`, ipvsadm `-Z`); the
//! per-lcore loop counters (rx, tx, rings) are cumulative and are not zeroed.
//!
//! Not done: control messages over rings to the lcores (nothing needs one yet: the
//! snapshot cell covers configuration); resizing `[conn]` or adding interfaces at run time;
//! reusing a removed destination's slot once its last connection is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_core::counters::StageStats;
use rvs_core::load::LoadTable;
use rvs_core::service::{Snapshot, SnapshotCell};

use crate::config::{Config, DestIds};
use crate::run::LcoreCounters;

/// Longest request line.
pub const MAX_REQUEST: usize = 4096;
/// How long a retired snapshot is kept by the control thread.
pub const RETIRE_AFTER: Duration = Duration::from_secs(2);
/// How often the control thread looks at signals, the socket and stop.
const POLL: Duration = Duration::from_millis(10);

/// What the lcores publish for the control thread: counters and, once each lcore built its
/// worker, its stage counters and load table.
#[derive(Debug)]
pub struct Registry {
    counters: Vec<Arc<LcoreCounters>>,
    lcores: Vec<u32>,
    stats: Mutex<Vec<Vec<Arc<StageStats>>>>,
    loads: Mutex<Vec<Option<Arc<LoadTable>>>>,
}

impl Registry {
    /// For the lcores `lcores` (EAL ids by worker index) and their counters.
    pub fn new(counters: Vec<Arc<LcoreCounters>>, lcores: Vec<u32>) -> Self {
        let n = counters.len();
        Registry {
            counters,
            lcores,
            stats: Mutex::new(vec![Vec::new(); n]),
            loads: Mutex::new(vec![None; n]),
        }
    }

    /// Worker `idx` built its graph: its stage counters and load table.
    pub fn register(&self, idx: u16, stats: Vec<Arc<StageStats>>, loads: Arc<LoadTable>) {
        if let Ok(mut s) = self.stats.lock()
            && let Some(slot) = s.get_mut(idx as usize)
        {
            *slot = stats;
        }
        if let Ok(mut l) = self.loads.lock()
            && let Some(slot) = l.get_mut(idx as usize)
        {
            *slot = Some(loads);
        }
    }

    fn stats(&self) -> Vec<Vec<Arc<StageStats>>> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn loads(&self) -> Vec<Arc<LoadTable>> {
        self.loads
            .lock()
            .map(|l| l.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }
}

/// The control plane's state: the published snapshot, the run's destination ids, the
/// config file to reload.
#[derive(Debug)]
pub struct Plane {
    cell: Arc<SnapshotCell>,
    ids: DestIds,
    lcores: u16,
    path: Option<PathBuf>,
    fixed: String,
    registry: Option<Arc<Registry>>,
    retired: Vec<(Instant, Arc<Snapshot>)>,
    reloads: u64,
}

/// The sections a reload cannot change, as text, to tell when they changed.
fn fixed_sections(cfg: &Config) -> String {
    format!(
        "[dpdk] {:?}\n[conn] {:?}\n[pipeline] {:?}\n[[interface]] {:?}\n[[neighbor]] {:?}\n[[route]] {:?}\n[control] {:?}\n",
        cfg.dpdk, cfg.conn, cfg.pipeline, cfg.interfaces, cfg.neighbors, cfg.routes, cfg.control
    )
}

impl Plane {
    /// The first snapshot (generation 1) of a run over `lcores` worker lcores; the config
    /// file to reload is the one `cfg` came from (none: reload is refused).
    pub fn new(cfg: &Config, lcores: u16) -> Result<Self, String> {
        let mut ids = DestIds::new(cfg.conn.dest_slots);
        let snap = cfg
            .snapshot_with_ids(1, lcores, &mut ids)
            .map_err(|e| cfg.locate(e).to_string())?;
        Ok(Plane {
            cell: Arc::new(SnapshotCell::from_pointee(snap)),
            ids,
            lcores,
            path: cfg.origin.as_ref().map(|(f, _)| PathBuf::from(f)),
            fixed: fixed_sections(cfg),
            registry: None,
            retired: Vec::new(),
            reloads: 0,
        })
    }

    /// The cell the workers load from.
    pub fn cell(&self) -> Arc<SnapshotCell> {
        self.cell.clone()
    }

    /// Where `list` and `stats` read the lcores' counters.
    pub fn set_registry(&mut self, r: Arc<Registry>) {
        self.registry = Some(r);
    }

    /// Read the config file again and publish its snapshot as the next generation; on any
    /// error the current snapshot stays and the located error is returned.
    pub fn reload(&mut self) -> Result<String, String> {
        let path = self
            .path
            .clone()
            .ok_or_else(|| "reload: this run's configuration did not come from a file".to_string())?;
        let cfg = Config::load(&path).map_err(|e| format!("reload refused, configuration kept: {e}"))?;
        self.apply(&cfg)
    }

    /// Publish `cfg`'s services as the next generation (the reload without the file).
    pub fn apply(&mut self, cfg: &Config) -> Result<String, String> {
        let generation = self.cell.load().generation + 1;
        let t0 = Instant::now();
        let snap = cfg
            .snapshot_with_ids(generation, self.lcores, &mut self.ids)
            .map_err(|e| format!("reload refused, configuration kept: {}", cfg.locate(e)))?;
        let built = t0.elapsed();
        let (services, dests) = (
            snap.services.len(),
            snap.services.iter().map(|s| s.dests.len()).sum::<usize>(),
        );
        let old = self.cell.swap(Arc::new(snap));
        self.retired.push((Instant::now(), old));
        self.reloads += 1;
        let mut msg = format!(
            "generation {generation} published: {services} services, {dests} destinations, {} of {} destination slots used in this run; built in {:.1} ms",
            self.ids.used(),
            cfg.conn.dest_slots.max(self.ids.used()),
            built.as_secs_f64() * 1e3
        );
        let fixed = fixed_sections(cfg);
        if fixed != self.fixed {
            let changed: Vec<&str> = fixed
                .lines()
                .zip(self.fixed.lines())
                .filter(|(a, b)| a != b)
                .filter_map(|(a, _)| a.split(' ').next())
                .collect();
            msg += &format!("\nnot applied until restart: {}", changed.join(" "));
        }
        Ok(msg)
    }

    /// Drop retired snapshots nobody else holds any more.
    fn reap(&mut self) {
        self.retired
            .retain(|(at, s)| at.elapsed() < RETIRE_AFTER || Arc::strong_count(s) > 1);
    }

    /// `ipvsadm -L -n`: services, destinations, weights, connections over all lcores.
    pub fn list(&self) -> String {
        let snap = self.cell.load();
        let loads = self.registry.as_ref().map(|r| r.loads()).unwrap_or_default();
        let mut s = format!(
            "IP Virtual Server (rvs) generation {} lcores {} ({} reporting)\n",
            snap.generation,
            snap.lcores,
            loads.len()
        );
        s += "Prot LocalAddress:Port Scheduler Flags\n";
        s += &format!(
            "  -> {:<28} {:<7} {:>6} {:>10} {:>10}\n",
            "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn"
        );
        for svc in snap.services.iter() {
            let k = svc.key;
            let vip = if k.is_match() {
                format!("match {}", svc.matcher.map(|m| m.to_string()).unwrap_or_default())
            } else if k.vip.is_v4() {
                format!("{}:{}", k.vip, k.port)
            } else {
                format!("[{}]:{}", k.vip, k.port)
            };
            let mut flags = Vec::new();
            if let Some(p) = svc.persistence {
                flags.push(format!("persistent {}", p.timeout_secs));
            }
            if svc.synproxy {
                flags.push("synproxy".to_string());
            }
            s += &format!(
                "{:<4} {} {} {}\n",
                k.proto.name().to_uppercase(),
                vip,
                svc.sched.name(),
                flags.join(" ")
            )
            .replace("  \n", "\n");
            for d in svc.dests.iter() {
                let (mut active, mut inactive) = (0u64, 0u64);
                for l in &loads {
                    if (d.id.0 as usize) < l.slots() {
                        let x = l.get(d.id);
                        active += x.active as u64;
                        inactive += x.inactive as u64;
                    }
                }
                let addr = if d.addr.is_v4() {
                    format!("{}:{}", d.addr, d.port)
                } else {
                    format!("[{}]:{}", d.addr, d.port)
                };
                s += &format!(
                    "  -> {:<28} {:<7} {:>6} {:>10} {:>10}\n",
                    addr,
                    forward_name(d.fwd),
                    d.weight,
                    active,
                    inactive
                );
            }
        }
        s
    }

    /// The live per-lcore, per-stage runtime (as SIGUSR1).
    pub fn stats(&self) -> String {
        match &self.registry {
            Some(r) => crate::run::live_runtime(&r.lcores, &r.counters, &r.stats()),
            None => "no lcore is running\n".into(),
        }
    }

    /// Zero every stage counter of every lcore.
    pub fn zero(&self) -> String {
        let stats = self.registry.as_ref().map(|r| r.stats()).unwrap_or_default();
        let mut n = 0;
        for st in stats.iter().flatten() {
            st.zero();
            n += 1;
        }
        format!("zeroed {n} stage counters over {} lcores\n", stats.len())
    }

    /// Answer one request line.
    pub fn handle(&mut self, line: &str) -> Result<String, String> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        if let Some(extra) = words.next() {
            return Err(format!("`{cmd}` takes no argument (got `{extra}`)"));
        }
        match cmd {
            "list" | "ls" => Ok(self.list()),
            "stats" | "runtime" => Ok(self.stats()),
            "reload" => self.reload().map(|m| m + "\n"),
            "zero" => Ok(self.zero()),
            "help" => Ok(HELP.into()),
            "" => Err("empty request (try `help`)".into()),
            other => Err(format!(
                "unknown command `{}` (known: list, stats, reload, zero, help)",
                other.chars().take(64).collect::<String>()
            )),
        }
    }
}

const HELP: &str = "list    services, destinations, weights, active/inactive connections (ipvsadm -L -n)\n\
stats   per-lcore, per-stage runtime (calls, packets, drops, cycles per packet)\n\
reload  read the configuration file again and publish it (as SIGHUP)\n\
zero    zero the stage counters (ipvsadm -Z)\n";

/// ipvsadm's names for the forwarding modes.
fn forward_name(f: rvs_core::service::Forward) -> &'static str {
    use rvs_core::service::Forward::*;
    match f {
        Fnat => "FullNat",
        Nat => "Masq",
        Dr => "Route",
        Tunnel => "Tunnel",
        Snat => "SNAT",
    }
}

/// The default control socket of a run whose EAL file prefix is `prefix`.
pub fn default_socket(prefix: &str) -> PathBuf {
    let run = Path::new("/run/rvs");
    if std::fs::create_dir_all(run).is_ok() {
        let probe = run.join(format!(".{prefix}.probe"));
        if std::fs::write(&probe, b"").is_ok() {
            let _ = std::fs::remove_file(&probe);
            return run.join(format!("{prefix}.sock"));
        }
    }
    std::env::temp_dir().join(format!("rvs-{prefix}.sock"))
}

/// Bind `path`, replacing a stale socket file but never a live one.
fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {}: another rvs is listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("control socket {}: cannot remove the stale file: {e}", path.display()))?;
    }
    if let Some(d) = path.parent()
        && !d.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(d);
    }
    let l = UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    Ok(l)
}

/// The control thread: SIGHUP and the socket; stops (and removes its socket) when dropped.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Where it listens (`None`: no socket, SIGHUP only).
    pub socket: Option<PathBuf>,
}

impl Server {
    /// Start the control thread for `plane`, listening on `socket` (`None`: SIGHUP only).
    pub fn start(mut plane: Plane, socket: Option<PathBuf>) -> Result<Self, String> {
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
            .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
        let listener = match &socket {
            Some(p) => Some(bind(p)?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let path = socket.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-control".into())
            .spawn(move || {
                while !st.load(Relaxed) {
                    if hup.swap(false, Relaxed) {
                        report("SIGHUP", &plane.reload());
                    }
                    let mut served = false;
                    if let Some(l) = &listener {
                        while let Ok((conn, _)) = l.accept() {
                            serve_one(&mut plane, conn);
                            served = true;
                        }
                    }
                    plane.reap();
                    if !served {
                        std::thread::sleep(POLL);
                    }
                }
                if let Some(p) = &path {
                    let _ = std::fs::remove_file(p);
                }
            })
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(Server {
            stop,
            thread: Some(thread),
            socket,
        })
    }
}

impl Server {
    /// The control thread of `rvs run`: its socket from `[control] socket`, else the
    /// default for `prefix`. A configured socket that cannot be opened is an error; the
    /// default one only a warning (SIGHUP still reloads).
    pub fn for_run(plane: Plane, cfg: &Config, prefix: &str) -> Result<Self, String> {
        let (path, explicit) = match &cfg.control.socket {
            Some(p) => (PathBuf::from(p), true),
            None => (default_socket(prefix), false),
        };
        let path = match bind(&path) {
            Ok(l) => {
                drop(l);
                let _ = std::fs::remove_file(&path);
                Some(path)
            }
            Err(e) if explicit => return Err(format!("[control] socket: {e}")),
            Err(e) => {
                tracing::warn!("no control socket: {e}");
                eprintln!("rvs: no control socket ({e}); SIGHUP still reloads");
                None
            }
        };
        let s = Server::start(plane, path)?;
        if let Some(p) = &s.socket {
            eprintln!("rvs: control socket {}", p.display());
        }
        Ok(s)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn report(what: &str, r: &Result<String, String>) {
    match r {
        Ok(m) => {
            tracing::info!("{what}: {m}");
            eprintln!("rvs: {what}: {m}");
        }
        Err(e) => {
            tracing::error!("{what}: {e}");
            eprintln!("rvs: {what}: {e}");
        }
    }
}

/// One request on `conn`: a line in, `OK`/`ERR` and text out. I/O errors end it quietly.
fn serve_one(plane: &mut Plane, conn: UnixStream) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut line = Vec::new();
    let read = match conn.try_clone() {
        Ok(c) => BufReader::new(c)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let answer = match read {
        Err(e) => Err(format!("cannot read the request: {e}")),
        Ok(_) if line.len() > MAX_REQUEST => Err(format!("request longer than {MAX_REQUEST} bytes")),
        Ok(_) => match std::str::from_utf8(&line) {
            Err(_) => Err("request is not UTF-8".into()),
            Ok(text) => {
                let r = plane.handle(text.trim());
                if text.trim() == "reload" {
                    report("rvsctl reload", &r);
                }
                r
            }
        },
    };
    let text = match answer {
        Ok(body) => format!("OK\n{body}"),
        Err(e) => format!("ERR {}\n", e.replace('\n', " ")),
    };
    let mut w = conn;
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

/// Send `request` to the control socket at `path` and return (ok, text).
pub fn request(path: &Path, request: &str) -> std::io::Result<(bool, String)> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(request.as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    match out.split_once('\n') {
        Some(("OK", rest)) => Ok((true, rest.to_string())),
        Some((head, rest)) if head.starts_with("ERR") => {
            Ok((false, format!("{}{rest}", head.trim_start_matches("ERR").trim_start())))
        }
        _ => Ok((false, format!("unexpected answer from rvs: {out:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra_dest: bool, weight: u32, sched: &str) -> Config {
        let mut t = format!(
            r#"
[[service]]
protocol = "tcp"
vip = "10.0.0.1"
port = 80
scheduler = "{sched}"
forward = "nat"
[[service.dest]]
ip = "10.1.0.1"
weight = {weight}
[[service.dest]]
ip = "10.1.0.2"
"#
        );
        if extra_dest {
            t += "[[service.dest]]\nip = \"10.1.0.3\"\n";
        }
        Config::parse("t.toml", &t).unwrap()
    }

    #[test]
    fn apply_publishes_the_next_generation_and_keeps_ids() {
        let mut p = Plane::new(&cfg(false, 1, "rr"), 1).unwrap();
        let g1 = p.cell().load_full();
        assert_eq!(g1.generation, 1);
        p.apply(&cfg(true, 5, "wlc")).unwrap();
        let g2 = p.cell().load_full();
        assert_eq!(g2.generation, 2);
        let s1 = &g1.services[0];
        let s2 = &g2.services[0];
        assert_eq!(s2.sched.name(), "wlc");
        assert_eq!(s2.dests[0].weight, 5);
        for d in s1.dests.iter() {
            let same = s2.dests.iter().find(|e| e.addr == d.addr).unwrap();
            assert_eq!(same.id, d.id);
        }
        let new = s2
            .dests
            .iter()
            .find(|e| !s1.dests.iter().any(|d| d.addr == e.addr))
            .unwrap();
        assert!(s1.dests.iter().all(|d| d.id != new.id));
    }

    #[test]
    fn requests_are_answered_or_refused_without_panic() {
        let mut p = Plane::new(&cfg(false, 1, "rr"), 1).unwrap();
        assert!(p.handle("list").unwrap().contains("10.1.0.2:80"));
        assert!(p.handle("bogus").unwrap_err().contains("unknown command"));
        assert!(p.handle("").is_err());
        assert!(p.handle("list extra").is_err());
        let junk: String = std::iter::repeat_n('\u{fffd}', 5000).collect();
        assert!(p.handle(&junk).is_err());
        // No file to reload from: refused, generation unchanged.
        p.path = None;
        assert!(p.reload().is_err());
        assert_eq!(p.cell().load().generation, 1);
    }

    #[test]
    fn socket_round_trip_and_bad_reload_keeps_the_snapshot() {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let conf = dir.join("c.toml");
        let text = "[[service]]\nprotocol = \"udp\"\nvip = \"10.0.0.1\"\nport = 53\nscheduler = \"rr\"\nforward = \"nat\"\n[[service.dest]]\nip = \"10.1.0.1\"\n";
        std::fs::write(&conf, text).unwrap();
        let c = Config::load(&conf).unwrap();
        let p = Plane::new(&c, 1).unwrap();
        let cell = p.cell();
        let sock = dir.join("ctl.sock");
        let srv = Server::start(p, Some(sock.clone())).unwrap();
        let (ok, body) = request(&sock, "list").unwrap();
        assert!(ok, "{body}");
        assert!(body.contains("UDP  10.0.0.1:53 rr"), "{body}");
        let (ok, body) = request(&sock, "frobnicate").unwrap();
        assert!(!ok && body.contains("unknown command"), "{body}");
        std::fs::write(&conf, text.replace("\"rr\"", "\"nosuch\"")).unwrap();
        let (ok, body) = request(&sock, "reload").unwrap();
        assert!(!ok && body.contains("c.toml:5") && body.contains("nosuch"), "{body}");
        assert_eq!(cell.load().generation, 1);
        std::fs::write(&conf, text.replace("\"rr\"", "\"wrr\"")).unwrap();
        let (ok, body) = request(&sock, "reload").unwrap();
        assert!(ok, "{body}");
        assert_eq!(cell.load().generation, 2);
        assert_eq!(cell.load().services[0].sched.name(), "wrr");
        // A request that never ends its line, bigger than the limit.
        {
            let mut s = UnixStream::connect(&sock).unwrap();
            let _ = s.write_all(&vec![b'x'; MAX_REQUEST * 2]);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut out);
            assert!(out.starts_with("ERR request longer"), "{out}");
        }
        drop(srv);
        assert!(!sock.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
