//! dpdk-sys: rvs's own bindings to the system's DPDK (>= 22.11).
//!
//! `build.rs` finds DPDK with the `pkg-config` binary (cflags passed verbatim), runs bindgen
//! over `shim/shim.h` with an allowlist of what rvs needs (EAL, lcores, launch, mempool, mbuf,
//! ethdev, ring, cycles), and compiles `shim/shim.c`: out-of-line wrappers, prefixed `rvs_`,
//! for DPDK's static inline functions (`rte_eth_rx_burst`, `rte_eth_tx_burst`,
//! `rte_pktmbuf_alloc`/`_free`/`_prepend`/`_append`/`_adj`/`_trim`, ring bursts,
//! `rte_lcore_id`, `rte_rdtsc`, `rte_errno`). A missing DPDK is a build error naming the
//! Debian packages to install.
//!
//! Per-packet `rte_mbuf` fields are plain fields of the generated [`rte_mbuf`]; their offsets
//! are asserted at compile time below against the layout DPDK documents in
//! `rte_mbuf_core.h` (first cache line: rearm data at 16, `ol_flags` at 24, RX descriptor
//! fields from 32; second cache line from 64), and checked again at test time against the C
//! compiler's `offsetof` (`rvs_mbuf_layout`).
//!
//! Everything here is `unsafe` FFI; the safe layer is the `rvs-dpdk` crate.

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// The generated bindings. Lints are relaxed for generated code only.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_debug_implementations,
    rust_2018_idioms,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::undocumented_unsafe_blocks
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

/// The DPDK version the bindings were generated against (`pkg-config --modversion libdpdk`).
pub const DPDK_VERSION: &str = env!("RVS_DPDK_VERSION");

// Layout of `struct rte_mbuf` as DPDK 22.11 documents it (x86_64, RTE_IOVA_AS_PA): the rvs
// adapter reads and writes these fields directly on the per-packet path.
const _: () = {
    use std::mem::offset_of;
    assert!(std::mem::size_of::<rte_mbuf>() == 128);
    assert!(std::mem::align_of::<rte_mbuf>() == 64);
    assert!(offset_of!(rte_mbuf, buf_addr) == 0);
    assert!(offset_of!(rte_mbuf, data_off) == 16);
    assert!(offset_of!(rte_mbuf, refcnt) == 18);
    assert!(offset_of!(rte_mbuf, nb_segs) == 20);
    assert!(offset_of!(rte_mbuf, port) == 22);
    assert!(offset_of!(rte_mbuf, ol_flags) == 24);
    assert!(offset_of!(rte_mbuf, pkt_len) == 36);
    assert!(offset_of!(rte_mbuf, data_len) == 40);
    assert!(offset_of!(rte_mbuf, vlan_tci) == 42);
    assert!(offset_of!(rte_mbuf, buf_len) == 54);
    assert!(offset_of!(rte_mbuf, pool) == 56);
    assert!(offset_of!(rte_mbuf, next) == 64);
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    /// The bindgen layout of `rte_mbuf` equals what the C compiler computes with `offsetof`
    /// over the same headers and flags (an oracle independent of bindgen).
    #[test]
    fn mbuf_layout_matches_c_offsetof() {
        let mut c = rvs_mbuf_layout::default();
        // SAFETY: `rvs_mbuf_layout` only writes the fields of the struct it is given.
        unsafe { rvs_mbuf_layout(&mut c) };
        assert_eq!(c.size, size_of::<rte_mbuf>());
        assert_eq!(c.align, align_of::<rte_mbuf>());
        assert_eq!(c.buf_addr, offset_of!(rte_mbuf, buf_addr));
        assert_eq!(c.buf_iova, offset_of!(rte_mbuf, buf_iova));
        assert_eq!(c.data_off, offset_of!(rte_mbuf, data_off));
        assert_eq!(c.refcnt, offset_of!(rte_mbuf, refcnt));
        assert_eq!(c.nb_segs, offset_of!(rte_mbuf, nb_segs));
        assert_eq!(c.port, offset_of!(rte_mbuf, port));
        assert_eq!(c.ol_flags, offset_of!(rte_mbuf, ol_flags));
        assert_eq!(c.packet_type, offset_of!(rte_mbuf, __bindgen_anon_1));
        assert_eq!(c.pkt_len, offset_of!(rte_mbuf, pkt_len));
        assert_eq!(c.data_len, offset_of!(rte_mbuf, data_len));
        assert_eq!(c.vlan_tci, offset_of!(rte_mbuf, vlan_tci));
        assert_eq!(c.hash, offset_of!(rte_mbuf, __bindgen_anon_2));
        assert_eq!(c.vlan_tci_outer, offset_of!(rte_mbuf, vlan_tci_outer));
        assert_eq!(c.buf_len, offset_of!(rte_mbuf, buf_len));
        assert_eq!(c.pool, offset_of!(rte_mbuf, pool));
        assert_eq!(c.next, offset_of!(rte_mbuf, next));
        assert_eq!(c.tx_offload, offset_of!(rte_mbuf, __bindgen_anon_3));
    }

    /// The shim links and DPDK's `rte_mbuf_tx_offload` packs l2/l3 lengths where the
    /// documented bit widths put them (7 bits of l2_len, then 9 of l3_len, then 8 of l4_len).
    #[test]
    fn tx_offload_packing_matches_documented_bits() {
        // SAFETY: a pure function of its arguments.
        let v = unsafe { rvs_mbuf_tx_offload(14, 20, 8, 0, 0, 0) };
        assert_eq!(v, 14 | (20 << 7) | (8 << 16));
        assert!(DPDK_VERSION.starts_with(char::is_numeric));
    }
}
