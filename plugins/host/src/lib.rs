//! rvs-plugin-host: the wasmtime host for WASM scheduler plugins: loads a module exporting the
//! versioned scheduler ABI, gives each lcore its own instance, bounds every call, and falls back
//! to a native scheduler on trap, timeout or a bad answer.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
