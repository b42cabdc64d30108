//! Load-time refusals with clear errors, configuration, the module cache, and hot reload.

mod common;

use std::sync::mpsc;

use common::*;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::sched::{Scheduler, SchedulerFactory};
use rvs_core::service::DestId;
use rvs_core::time::Now;
use rvs_plugin_host::{Host, HostConfig, LoadError};

const OK_EXPORTS: &str = r#"
    (func (export "rvs_table") (param i32) (result i32) (i32.const 1024))
    (func (export "rvs_pick") (result i32) (i32.const -1))"#;

fn wat(body: &str) -> String {
    format!("(module {body})")
}

fn load(text: &str) -> Result<(), LoadError> {
    fuel_host()
        .load_bytes("t", text.as_bytes(), &[], native("wlc"))
        .map(|_| ())
}

#[test]
fn refuses_what_is_not_an_rvs_plugin_with_clear_errors() {
    let mem = r#"(memory (export "memory") 1)"#;
    let marker = r#"(func (export "rvs_abi_v1") (result i32) (i32.const 0))"#;
    let cases: Vec<(String, &str)> = vec![
        ("\x7fELF garbage".into(), "not a WebAssembly module"),
        ("\0asm\x0d\0\x01\0".into(), "is a WebAssembly component"),
        ("(module (func $f (result i32)))".into(), "does not compile"),
        (wat(&format!("{mem}{OK_EXPORTS}")), "no rvs_abi_v1 marker"),
        (
            wat(&format!(
                r#"{mem}(func (export "rvs_abi_v2") (result i32) (i32.const 0)){OK_EXPORTS}"#
            )),
            "unknown ABI major version 2; this host supports 1",
        ),
        (
            wat(&format!(
                r#"{mem}(func (export "rvs_abi_v1") (result i32) (i32.const 3)){OK_EXPORTS}"#
            )),
            "needs ABI 1.3; this host supports 1.0",
        ),
        (
            wat(&format!(
                r#"{mem}{marker}(func (export "rvs_table") (param i32) (result i32) (i32.const 1024))"#
            )),
            "missing export `rvs_pick`",
        ),
        (wat(&format!("{marker}{OK_EXPORTS}")), "missing export `memory`"),
        (
            wat(&format!(
                r#"{mem}{marker}(func (export "rvs_table") (param i32) (result i32) (i32.const 1024))
                   (func (export "rvs_pick") (param i32) (result i32) (i32.const 0))"#
            )),
            "export `rvs_pick` should be func () -> (i32), is func (i32) -> (i32)",
        ),
        (
            wat(&format!(
                r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                   {mem}{marker}{OK_EXPORTS}"#
            )),
            "imports `wasi_snapshot_preview1.fd_write`",
        ),
        (
            wat(&format!(r#"(memory (export "memory") 300){marker}{OK_EXPORTS}"#)),
            "exceeds the host's instance limits (memory cap 16777216 bytes)",
        ),
        (
            wat(&format!(
                r#"{mem}{marker}(func (export "rvs_table") (param i32) (result i32) (i32.const 65532))
                   (func (export "rvs_pick") (result i32) (i32.const -1))"#
            )),
            "failed its load-time probe: bad_answer",
        ),
        (
            wat(&format!(
                r#"{mem}(func (export "rvs_abi_v1") (result i32) (unreachable)){OK_EXPORTS}"#
            )),
            "failed its load-time probe: trap",
        ),
        (
            wat(&format!(
                r#"{mem}{marker}{OK_EXPORTS}(func (export "rvs_config_buf") (param i32) (result i32) (i32.const 0))"#
            )),
            "missing export `rvs_configure`",
        ),
    ];
    for (text, want) in cases {
        let e = load(&text).expect_err(want);
        let msg = e.to_string();
        assert!(msg.contains(want), "want {want:?}, got {msg:?}");
        assert!(msg.starts_with("plugin t: "), "{msg}");
    }
}

#[test]
fn configuration_reaches_the_plugin_or_is_refused() {
    // Accepts a blob that starts with "ok"; answers the blob's third byte as the index.
    let text = r#"(module (memory (export "memory") 1)
        (func (export "rvs_abi_v1") (result i32) (i32.const 0))
        (func (export "rvs_table") (param i32) (result i32) (i32.const 1024))
        (func (export "rvs_config_buf") (param $n i32) (result i32)
            (select (i32.const 256) (i32.const 0) (i32.le_u (local.get $n) (i32.const 64))))
        (func (export "rvs_configure") (param $n i32) (result i32)
            (if (i32.lt_u (local.get $n) (i32.const 3)) (then (return (i32.const 7))))
            (if (i32.ne (i32.load16_u (i32.const 256)) (i32.const 0x6b6f)) (then (return (i32.const 9))))
            (i32.const 0))
        (func (export "rvs_pick") (result i32) (i32.load8_u (i32.const 258))))"#;
    let h = fuel_host();
    let f = h
        .load_bytes("cfg", text.as_bytes(), b"ok\x02", native("wlc"))
        .expect("load");
    let svc = service(f.clone(), 4);
    let loads = LoadTable::new(4);
    let mut s = f.instance(0, 0);
    s.refresh(&svc);
    assert_eq!(s.pick(&cx(&svc, &loads, Now(1)), &flow(1)), Some(2));
    let e = |cfg: &[u8]| {
        h.load_bytes("cfg", text.as_bytes(), cfg, native("wlc"))
            .unwrap_err()
            .to_string()
    };
    assert!(e(b"no\x02").contains("rejected its plugin_config (rvs_configure returned 9)"));
    assert!(e(b"").contains("rvs_configure returned 7"));
    assert!(e(&[b'o'; 65]).contains("refused a plugin_config of 65 bytes"));
    let plain = format!(
        "(module (memory (export \"memory\") 1) (func (export \"rvs_abi_v1\") (result i32) (i32.const 0)) {OK_EXPORTS})"
    );
    let e = h
        .load_bytes("plain", plain.as_bytes(), b"x", native("wlc"))
        .unwrap_err();
    assert!(matches!(e, LoadError::ConfigUnsupported { .. }), "{e}");
}

#[test]
fn modules_compile_once_and_precompiled_artifacts_are_reused() {
    let Some(path) = example("p2c.wasm") else { return };
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rvs-plugin-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = HostConfig {
        cache_dir: Some(dir.clone()),
        pool_instances: 8,
        ..HostConfig::default()
    };
    let a = Host::new(cfg.clone()).expect("host");
    a.load_file(&path, &[], native("wlc")).expect("first");
    a.load_file(&path, &[], native("rr")).expect("second");
    assert_eq!(a.cached_modules(), 1, "one compilation for two loads of the same bytes");
    let files: Vec<_> = std::fs::read_dir(&dir).expect("cache dir").collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // A second host (a restart) loads the artifact instead of compiling; a corrupt artifact
    // is ignored (wasmtime checks it) and the module compiled again.
    let b = Host::new(cfg.clone()).expect("host");
    let f = b.load_file(&path, &[], native("wlc")).expect("from cache");
    let svc = service(f.clone(), 6);
    let loads = LoadTable::new(6);
    let mut s = f.instance(0, 3);
    s.refresh(&svc);
    assert!(s.pick(&cx(&svc, &loads, Now(1)), &flow(1)).is_some());
    let artifact = files[0].as_ref().expect("entry").path();
    std::fs::write(&artifact, b"not an artifact").expect("corrupt");
    let c = Host::new(cfg).expect("host");
    c.load_file(&path, &[], native("wlc")).expect("recompiled");
}

/// The control plane loads a new plugin and prepares each lcore's instance off the data
/// path; the worker swaps it in between vectors. Old and new factories count separately,
/// and the worker never waits for the load.
#[test]
fn hot_swap_between_vectors() {
    let (Some(wlc), Some(defer)) = (example("wlc.wasm"), example("defer.wat")) else {
        return;
    };
    let host = fuel_host();
    let old = host.load_file(&wlc, &[], native("wlc")).expect("old");
    let svc_old = service(old.clone(), 6);
    let (tx, rx) = mpsc::channel();
    let control = {
        let host = host.clone();
        std::thread::spawn(move || {
            let new = host.load_file(&defer, &[], native("wlc")).expect("new");
            let inst = new.prepare(0, 5);
            tx.send((new, inst)).expect("send");
        })
    };
    let loads = LoadTable::new(6);
    let mut sched: Box<dyn Scheduler> = old.instance(0, 5);
    sched.refresh(&svc_old);
    let mut svc = svc_old;
    let mut new_factory = None;
    let mut vectors = 0u64;
    let mut old_picks = 0u64;
    loop {
        // One vector of 32 new connections.
        for i in 0..32 {
            let got = sched
                .pick(&cx(&svc, &loads, Now(vectors)), &flow(i))
                .expect("a destination");
            loads.inc(svc.dests[got].id, Counter::Inactive);
            if new_factory.is_none() {
                old_picks += 1;
            }
        }
        vectors += 1;
        if new_factory.is_some() {
            break;
        }
        if let Ok((f, inst)) = rx.try_recv() {
            // Between vectors: the new snapshot's service and the prepared instance.
            svc = service(f.clone(), 6);
            let mut inst: Box<dyn Scheduler> = Box::new(inst);
            inst.refresh(&svc);
            sched = inst;
            new_factory = Some(f);
        }
    }
    control.join().expect("control thread");
    let new = new_factory.expect("swapped");
    assert_eq!(old.stats().picks, old_picks);
    assert!(old_picks >= 32);
    let s = new.stats();
    assert_eq!((s.defer, s.picks, s.faults()), (32, 0, 0), "{s:?}");
    let placed: u32 = (0..6).map(|i| loads.get(DestId(i)).inactive).sum();
    assert_eq!(placed as u64, 32 * vectors, "every connection got a destination");
}
