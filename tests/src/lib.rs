//! rvs-testkit: the test kit (packet builder, independent decoder, fixtures, counting
//! allocator) and the integration tests.
//!
//! Not built yet: this crate holds no code until the issue that fills it lands.

#![forbid(unsafe_code)]
