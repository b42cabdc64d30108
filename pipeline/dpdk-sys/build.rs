//! Build script: find the system DPDK with the `pkg-config` binary, generate bindings with
//! bindgen, compile the C shim with `cc`, and link DPDK's shared libraries.
//!
//! The cflags are passed verbatim (they include `-include rte_config.h -march=corei7`, which
//! `rte_memcpy.h` needs); the `pkg-config` crate would drop them, so the binary is called.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "install it with: apt-get install -y dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config";

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run pkg-config ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "pkg-config {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn fail(what: &str) -> ! {
    panic!("\n\ndpdk-sys: {what}\ndpdk-sys needs DPDK >= {MIN_VERSION} (libdpdk.pc) and libclang; {INSTALL_HINT}\n\n");
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let version = pkg_config(&["--modversion", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    if let Err(e) = pkg_config(&["--atleast-version", MIN_VERSION, "libdpdk"]) {
        fail(&format!(
            "found DPDK {version}, which is older than {MIN_VERSION} ({e})"
        ));
    }
    let cflags_s = pkg_config(&["--cflags", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    let libs_s = pkg_config(&["--libs", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    let cflags: Vec<String> = cflags_s.split_whitespace().map(str::to_string).collect();
    println!("cargo:rustc-env=RVS_DPDK_VERSION={version}");
    println!("cargo:version={version}");

    // The shim, compiled with the same flags DPDK's own applications use.
    let mut build = cc::Build::new();
    build.file("shim/shim.c").include("shim").opt_level(3).warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("rvs_dpdk_shim");

    // Shared linking: every -l as a dylib; the EAL loads the PMDs from its plugin directory.
    for tok in libs_s.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // -Wl,--as-needed: rustc already links with --as-needed on GNU targets.
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let builder = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags.iter())
        .clang_arg("-Ishim")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function(
            "rvs_.*|rte_eal_.*|rte_thread_(un)?register|rte_lcore_.*|rte_get_next_lcore|rte_get_main_lcore|\
             rte_socket_id|rte_get_tsc_hz|rte_strerror|rte_log_set_global_level|rte_delay_us_block|\
             rte_version|rte_mempool_(avail_count|in_use_count|free|lookup)|rte_pktmbuf_(pool_create|free_bulk)|\
             rte_eth_(dev_.*|rx_queue_setup|tx_queue_setup|promiscuous_.*|allmulticast_.*|macaddr_get|\
             link_get|link_get_nowait|stats_get|stats_reset|find_next|find_next_owned_by)|\
             rte_ring_(create|free|lookup)",
        )
        .allowlist_type("rte_mbuf|rte_mempool|rte_ring|rte_eth_.*|rte_ether_addr|rvs_.*")
        .allowlist_var("RVS_.*|RTE_MBUF_F_.*|RTE_ETHER_ADDR_LEN|RTE_MAX_ETHPORTS|RTE_MEMPOOL_CACHE_MAX_SIZE")
        // Packed structs of rte_flow.h that bindgen lays out wrongly (DPDK-NOTES.md).
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_l2tpv2_common_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .generate_comments(false)
        .layout_tests(true);
    let bindings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()))
        .unwrap_or_else(|_| fail("bindgen could not run (is libclang installed?)"))
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DPDK headers: {e}")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}
