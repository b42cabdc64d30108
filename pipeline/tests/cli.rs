//! `rvs replay` and `rvs demo` as an operator runs them: the real binary, real files.

use std::path::PathBuf;
use std::process::Command;

use rvs_testkit::decode::decode_checked;
use rvs_testkit::pcap;

fn rvs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvs"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_runs_and_balances_evenly() {
    let dir = tmp("demo");
    let out = rvs()
        .args(["demo", "--flows", "90", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 90 connections round-robin over three servers: 30 each.
    for rs in ["198.18.1.11:8080", "198.18.1.12:8080", "198.18.1.13:8080"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(rs))
            .unwrap_or_else(|| panic!("no line for {rs}: {stdout}"));
        assert!(line.contains("connections 30 "), "{line}");
    }
    // Every frame written is well formed, with every checksum right, and goes to a real server.
    let recs = pcap::read(dir.join("out.pcap")).unwrap().records;
    assert_eq!(
        recs.len(),
        90 * 5,
        "five client packets per connection are forwarded; the stray ACK is dropped"
    );
    for r in &recs {
        let d = decode_checked(&r.bytes).unwrap_or_else(|e| panic!("bad output frame: {e}"));
        let dst = d.ip().unwrap().dst().to_string();
        assert!(dst.starts_with("198.18.1.1"), "{dst}");
    }
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["created"], 90);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_config_names_file_line_and_key() {
    let dir = tmp("badcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[defence]\ntcp_drop = true\n\n[[service]]\nprotocol = \"tcp\"\nvip = \"198.18.0.100\"\nport = 80\nschedular = \"rr\"\n").unwrap();
    let input = dir.join("in.pcap");
    pcap::write(&input, pcap::Resolution::Micro, &[]).unwrap();
    let out = rvs()
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(dir.join("o.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains(&format!("{}:8:", cfg.display())), "{err}");
    assert!(first.contains("schedular"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreadable_pcap_is_a_clear_error() {
    let dir = tmp("badpcap");
    let cfg = dir.join("ok.toml");
    std::fs::write(&cfg, rvs_pipeline::demo::CONFIG).unwrap();
    let input = dir.join("in.pcap");
    std::fs::write(&input, b"this is not a pcap").unwrap();
    let out = rvs()
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(dir.join("o.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in.pcap") && err.contains("not a pcap"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
