//! rvs-benches: criterion (wall time) and iai-callgrind (instruction count) benches for every
//! stage and the whole graph over heap buffers.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
