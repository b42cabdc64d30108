//! dpdk-sys: rvs's own bindings to the system's DPDK (bindgen against `libdpdk-dev` found with
//! pkg-config, plus a C shim for DPDK's static inline functions).
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.
