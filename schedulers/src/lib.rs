//! rvs-schedulers: the native connection schedulers of IPVS and DPVS (rr, wrr, lc, wlc, sed,
//! nq, sh, dh, lblc, lblcr, fo, ovf, mh, conhash, twos) behind rvs-core's scheduler trait, and the
//! conformance suite every scheduler (native or WASM) must pass.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
