//! The EAL as a process singleton.
//!
//! `rte_eal_init` works once per process: a second call (even after `rte_eal_cleanup`) fails
//! with `EALREADY`, and a call after a failed one is not supported. [`Eal::init`] turns that
//! into an error before DPDK is called. The thread that calls [`Eal::init`] becomes the EAL
//! main lcore.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result, check};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninit,
    Running,
    Failed,
    CleanedUp,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);
/// DPDK objects (mempools, ports, rings) alive; cleanup waits for none.
static LIVE: AtomicUsize = AtomicUsize::new(0);

fn state() -> State {
    *STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A DPDK object that must be gone before the EAL is cleaned up. Held by every owner of
/// DPDK memory.
#[derive(Debug)]
pub(crate) struct Live(());

impl Live {
    pub(crate) fn new(_eal: &Eal) -> Result<Live> {
        match state() {
            State::Running => {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Ok(Live(()))
            }
            State::CleanedUp => Err(Error::CleanedUp),
            // An `Eal` token exists only after a successful init.
            State::Uninit | State::Failed => Err(Error::InitFailedBefore),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Proof that the EAL is initialised in this process: a small copyable token that DPDK
/// object constructors take.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

/// Lean EAL arguments for machines without hugepages or NICs (see DPDK-NOTES.md):
/// `--no-huge -m MB --no-pci --no-shconf --no-telemetry --file-prefix=P --log-level=L
/// -l CORES --vdev ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    /// `--file-prefix`: distinct per concurrently running process.
    pub file_prefix: String,
    /// `-l`: the lcore list, e.g. `"0-1"`; or, when `lcores_map` is set, ignored.
    pub cores: String,
    /// `--lcores`: an lcore-to-cpu map such as `"0@0,1@0,2@0"` (several lcores on one core).
    pub lcores_map: Option<String>,
    /// `-m`: memory in MiB (each mbuf costs about 4 KiB under `--no-huge`).
    pub memory_mb: u32,
    /// Run without hugepages (`--no-huge`).
    pub no_huge: bool,
    /// Do not scan the PCI bus (`--no-pci`).
    pub no_pci: bool,
    /// `--log-level`.
    pub log_level: String,
    /// `--vdev` devices.
    pub vdevs: Vec<String>,
    /// Anything else, passed last.
    pub extra: Vec<String>,
}

impl Default for EalArgs {
    fn default() -> Self {
        EalArgs {
            file_prefix: format!("rvs{}", std::process::id()),
            cores: "0".into(),
            lcores_map: None,
            memory_mb: 256,
            no_huge: true,
            no_pci: true,
            log_level: "warning".into(),
            vdevs: Vec::new(),
            extra: Vec::new(),
        }
    }
}

impl EalArgs {
    /// The argument vector (without a program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.no_huge {
            a.push("--no-huge".to_string());
        }
        a.push("-m".into());
        a.push(self.memory_mb.to_string());
        if self.no_pci {
            a.push("--no-pci".into());
        }
        a.push("--no-shconf".into());
        a.push("--no-telemetry".into());
        a.push(format!("--file-prefix={}", self.file_prefix));
        a.push(format!("--log-level={}", self.log_level));
        match &self.lcores_map {
            Some(m) => a.push(format!("--lcores={m}")),
            None => {
                a.push("-l".into());
                a.push(self.cores.clone());
            }
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

impl Eal {
    /// Initialise the EAL with `args` (EAL arguments only, no program name: `"rvs"` is put in
    /// front). Returns [`Error::AlreadyInitialized`] on a second call and
    /// [`Error::InitFailedBefore`] after a failed one, without calling DPDK again.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        match *st {
            State::Uninit => {}
            State::Running | State::CleanedUp => return Err(Error::AlreadyInitialized),
            State::Failed => return Err(Error::InitFailedBefore),
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("rvs").map_err(|e| Error::InvalidArg(e.to_string()))?);
        for a in args {
            owned.push(CString::new(a.as_ref()).map_err(|_| Error::InvalidArg(format!("{:?}", a.as_ref())))?);
        }
        // DPDK may keep pointers into argv (and reorders it): the strings live for the process.
        let owned: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .iter()
                .map(|s| s.as_ptr() as *mut c_char)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = c_int::try_from(argv.len()).map_err(|_| Error::InvalidArg("too many arguments".into()))?;
        // SAFETY: argv holds `argc` valid NUL-terminated strings that outlive the process; the
        // state lock guarantees this is the only call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            *st = State::Failed;
            return Err(Error::errno("rte_eal_init"));
        }
        *st = State::Running;
        Ok(Eal { _private: () })
    }

    /// The EAL of this process, if [`Eal::init`] succeeded and it was not cleaned up.
    pub fn get() -> Option<Eal> {
        (state() == State::Running).then_some(Eal { _private: () })
    }

    /// DPDK's runtime directory of this process (`/var/run/dpdk/<file-prefix>` as root).
    pub fn runtime_dir(&self) -> PathBuf {
        // SAFETY: returns a pointer to a static NUL-terminated string set up by rte_eal_init.
        let p = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
        if p.is_null() {
            return PathBuf::new();
        }
        // SAFETY: non-null, NUL-terminated, static.
        PathBuf::from(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: reads a value set up by rte_eal_init.
        unsafe { dpdk_sys::rte_get_tsc_hz() }
    }

    /// Make the calling non-EAL thread an lcore (so it gets an lcore id and mempool caches).
    /// Returns the lcore id it got.
    pub fn register_thread(&self) -> Result<u32> {
        // SAFETY: registers the calling thread with the EAL; safe to call from any thread.
        check("rte_thread_register", unsafe { dpdk_sys::rte_thread_register() })?;
        crate::lcore::current().ok_or(Error::Busy("rte_thread_register gave no lcore id"))
    }

    /// Undo [`Eal::register_thread`] for the calling thread.
    pub fn unregister_thread(&self) {
        // SAFETY: a no-op for a thread that is not registered.
        unsafe { dpdk_sys::rte_thread_unregister() }
    }

    /// Hot-plug a virtual device (`rte_eal_hotplug_add("vdev", name, args)`).
    pub fn hotplug_vdev(&self, name: &str, args: &str) -> Result<()> {
        let bus = c"vdev";
        let n = CString::new(name).map_err(|_| Error::InvalidArg(name.into()))?;
        let a = CString::new(args).map_err(|_| Error::InvalidArg(args.into()))?;
        // SAFETY: three valid NUL-terminated strings; DPDK copies what it keeps.
        check("rte_eal_hotplug_add", unsafe {
            dpdk_sys::rte_eal_hotplug_add(bus.as_ptr(), n.as_ptr(), a.as_ptr())
        })?;
        Ok(())
    }

    /// Remove a hot-plugged virtual device (its ports must be closed).
    pub fn hotunplug_vdev(&self, name: &str) -> Result<()> {
        let bus = c"vdev";
        let n = CString::new(name).map_err(|_| Error::InvalidArg(name.into()))?;
        // SAFETY: two valid NUL-terminated strings.
        check("rte_eal_hotplug_remove", unsafe {
            dpdk_sys::rte_eal_hotplug_remove(bus.as_ptr(), n.as_ptr())
        })?;
        Ok(())
    }

    /// Number of DPDK objects (mempools, ports, rings) made through this crate still alive.
    pub fn live_objects(&self) -> usize {
        LIVE.load(Ordering::SeqCst)
    }

    /// Release the EAL's resources (`rte_eal_cleanup`) and remove this process's runtime
    /// directory if it is empty. Refused while mempools, ports or rings are alive, or when
    /// not called on the main lcore. No DPDK object can be made afterwards, and the EAL
    /// cannot be initialised again in this process.
    pub fn cleanup(self) -> Result<()> {
        if !crate::lcore::is_main() {
            return Err(Error::NotMainLcore("Eal::cleanup"));
        }
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if *st != State::Running {
            return Err(Error::CleanedUp);
        }
        if LIVE.load(Ordering::SeqCst) != 0 {
            return Err(Error::Busy(
                "EAL cleanup refused: mempools, ports or rings are still alive",
            ));
        }
        let dir = self.runtime_dir();
        // SAFETY: no object made through this crate is alive, and the state lock is held, so
        // no new one can be made while the EAL is torn down.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        *st = State::CleanedUp;
        check("rte_eal_cleanup", ret)?;
        if !dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }
}

/// The DPDK version string (`rte_version()`), e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string; needs no EAL.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_args_are_what_the_notes_measured() {
        let a = EalArgs {
            file_prefix: "p1".into(),
            cores: "0-1".into(),
            vdevs: vec!["net_null0".into(), "net_pcap0,rx_pcap=a.pcap".into()],
            extra: vec!["--in-memory-not".into()],
            ..EalArgs::default()
        }
        .to_args();
        let want = [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "--file-prefix=p1",
            "--log-level=warning",
            "-l",
            "0-1",
            "--vdev=net_null0",
            "--vdev=net_pcap0,rx_pcap=a.pcap",
            "--in-memory-not",
        ];
        assert_eq!(a, want);
        let m = EalArgs {
            lcores_map: Some("0@0,1@0,2@0".into()),
            no_huge: false,
            no_pci: false,
            ..EalArgs::default()
        }
        .to_args();
        assert!(m.contains(&"--lcores=0@0,1@0,2@0".to_string()));
        assert!(!m.iter().any(|s| s == "-l" || s == "--no-huge" || s == "--no-pci"));
    }

    #[test]
    fn errors_name_the_call_and_dpdk_message() {
        let e = Error::dpdk("rte_eth_dev_start", -19);
        let s = e.to_string();
        assert!(s.starts_with("rte_eth_dev_start failed: "), "{s}");
        assert!(s.contains("errno 19"), "{s}");
        assert!(s.contains("No such device"), "{s}");
    }
}
