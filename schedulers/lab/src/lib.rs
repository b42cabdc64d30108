//! rvs-lab: the offline scheduler lab: drives native schedulers and WASM plugins over the
//! same synthetic or recorded workloads and compares their decisions, spread and cost.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
