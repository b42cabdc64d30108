//! rvs-plugin-sdk: write an rvs scheduler plugin in Rust (ABI 1.0, `plugins/ABI.md`).
//!
//! - [`Table`]: a checked, read-only view over the host area (header, flow, destination
//!   records, counter records), with typed accessors ([`DestView`], [`LoadView`],
//!   [`FlowView`]) that read little-endian fields at the offsets ABI.md states and cannot
//!   panic once [`Table::new`] accepted the bytes;
//! - [`Answer`]: an index, none, or defer, encoded as the ABI's `i32`;
//! - [`Plugin`]: the trait a scheduler implements (pick, and optionally table update and
//!   configure), and [`export_plugin!`], the macro that exports it with the ABI's names;
//! - [`algo`]: reference algorithms (wlc exactly as rvs's native wlc) usable as plugins.
//!
//! The crate is `no_std` and its logic is tested natively (`cargo test -p rvs-plugin-sdk`),
//! including the exported functions the macro generates. The machines rvs is developed on
//! have no wasm32 Rust target, so the wasm build is not exercised here; where the target
//! exists (`rustup target add wasm32-unknown-unknown`), a plugin crate is built as:
//!
//! ```text
//! # Cargo.toml of the plugin:  [lib] crate-type = ["cdylib"]
//! #                            [dependencies] rvs-plugin-sdk = { path = ".../plugins/sdk" }
//! # src/lib.rs:                #![no_std] + a #[panic_handler] (or use std), then
//! #                            rvs_plugin_sdk::export_plugin!(rvs_plugin_sdk::algo::Wlc);
//! RUSTFLAGS="-C link-arg=--stack-first -C link-arg=-zstack-size=65536" \
//!   cargo build --release --target wasm32-unknown-unknown
//! # result: target/wasm32-unknown-unknown/release/<name>.wasm, loaded as scheduler = "wasm:PATH"
//! ```
//!
//! (`--stack-first` puts the stack below the data so an overflow traps instead of writing
//! over the table; the area is a static inside the module, so no allocator is needed.)
//!
//! The only `unsafe` is in what [`export_plugin!`] expands to: the `#[unsafe(no_mangle)]`
//! export attributes and the access to the module's single static instance, each with its
//! `// SAFETY:` comment.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod algo;

/// ABI major version (in the marker's name, `rvs_abi_v1`).
pub const ABI_MAJOR: u32 = 1;
/// ABI minor version this SDK builds plugins for.
pub const ABI_MINOR: u32 = 0;

/// Header size in the area.
pub const HEADER_SIZE: usize = 64;
/// Flow record size.
pub const FLOW_SIZE: usize = 64;
/// Destination record size.
pub const DEST_SIZE: usize = 32;
/// Counter record size.
pub const LOAD_SIZE: usize = 16;
/// Offset of the flow record.
pub const FLOW_OFF: usize = 64;
/// Offset of the destination array.
pub const DESTS_OFF: usize = 128;

/// Destination flag: inhibited by a health check.
pub const DEST_INHIBITED: u16 = 0x1;
/// Destination flag: administratively unavailable.
pub const DEST_UNAVAILABLE: u16 = 0x2;
/// Counter flag: overloaded on this lcore.
pub const LOAD_OVERLOADED: u32 = 0x1;

/// Bytes of an area for `capacity` destinations.
pub const fn area_bytes(capacity: usize) -> usize {
    DESTS_OFF + capacity * (DEST_SIZE + LOAD_SIZE)
}

#[inline]
fn u16_at(b: &[u8], o: usize) -> u16 {
    match b.get(o..o + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
fn u32_at(b: &[u8], o: usize) -> u32 {
    match b.get(o..o + 4) {
        Some(&[a, c, d, e]) => u32::from_le_bytes([a, c, d, e]),
        _ => 0,
    }
}

#[inline]
fn u64_at(b: &[u8], o: usize) -> u64 {
    (u32_at(b, o) as u64) | ((u32_at(b, o + 4) as u64) << 32)
}

#[inline]
fn addr_at(b: &[u8], o: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(o..o + 16) {
        a.copy_from_slice(s);
    }
    a
}

/// What a pick answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This destination index.
    Dest(usize),
    /// No destination can take the connection.
    None,
    /// Let the native fallback scheduler decide.
    Defer,
}

impl Answer {
    /// The ABI's encoding: the index, -1 or -2 (an index beyond `i32` becomes none).
    pub fn to_raw(self) -> i32 {
        match self {
            Answer::Dest(i) => i32::try_from(i).unwrap_or(-1),
            Answer::None => -1,
            Answer::Defer => -2,
        }
    }
}

/// A destination's static record.
#[derive(Debug, Clone, Copy)]
pub struct DestView<'a>(&'a [u8]);

impl DestView<'_> {
    /// Address, network order, IPv4-mapped for IPv4.
    pub fn addr(&self) -> [u8; 16] {
        addr_at(self.0, 0)
    }
    /// Stable slot id.
    pub fn id(&self) -> u32 {
        u32_at(self.0, 16)
    }
    /// Weight (0 drains).
    pub fn weight(&self) -> u32 {
        u32_at(self.0, 20)
    }
    /// Port.
    pub fn port(&self) -> u16 {
        u16_at(self.0, 24)
    }
    /// `DEST_*` flags.
    pub fn flags(&self) -> u16 {
        u16_at(self.0, 26)
    }
    /// 4 or 6.
    pub fn af(&self) -> u8 {
        self.0.get(28).copied().unwrap_or(0)
    }
    /// Forwarding mode code (0 fnat, 1 nat, 2 dr, 3 tunnel, 4 snat).
    pub fn fwd(&self) -> u8 {
        self.0.get(29).copied().unwrap_or(0)
    }
    /// Weight > 0, not inhibited, not unavailable (the static half of eligibility).
    pub fn usable(&self) -> bool {
        self.weight() > 0 && self.flags() & (DEST_INHIBITED | DEST_UNAVAILABLE) == 0
    }
}

/// A destination's counters on this lcore.
#[derive(Debug, Clone, Copy)]
pub struct LoadView<'a>(&'a [u8]);

impl LoadView<'_> {
    /// Active connections.
    pub fn active(&self) -> u32 {
        u32_at(self.0, 0)
    }
    /// Inactive connections.
    pub fn inactive(&self) -> u32 {
        u32_at(self.0, 4)
    }
    /// Persistence templates.
    pub fn persistent(&self) -> u32 {
        u32_at(self.0, 8)
    }
    /// Overloaded on this lcore.
    pub fn overloaded(&self) -> bool {
        u32_at(self.0, 12) & LOAD_OVERLOADED != 0
    }
    /// IPVS's overhead: `active * 256 + inactive`.
    pub fn overhead(&self) -> u64 {
        ((self.active() as u64) << 8) + self.inactive() as u64
    }
}

/// The new connection.
#[derive(Debug, Clone, Copy)]
pub struct FlowView<'a>(&'a [u8]);

impl<'a> FlowView<'a> {
    /// Client address (network order, IPv4-mapped).
    pub fn saddr(&self) -> [u8; 16] {
        addr_at(self.0, 0)
    }
    /// Virtual address.
    pub fn daddr(&self) -> [u8; 16] {
        addr_at(self.0, 16)
    }
    /// Client port (ICMP: identifier).
    pub fn sport(&self) -> u16 {
        u16_at(self.0, 32)
    }
    /// Virtual port.
    pub fn dport(&self) -> u16 {
        u16_at(self.0, 34)
    }
    /// IP protocol number.
    pub fn proto(&self) -> u8 {
        self.0.get(36).copied().unwrap_or(0)
    }
    /// 4 or 6.
    pub fn af(&self) -> u8 {
        self.0.get(37).copied().unwrap_or(0)
    }
    /// The first payload bytes (at most 16).
    pub fn payload(&self) -> &'a [u8] {
        let n = (u16_at(self.0, 38) as usize).min(16);
        self.0.get(40..40 + n).unwrap_or(&[])
    }
    /// 64 random bits from the host, fresh for each pick.
    pub fn rand(&self) -> u64 {
        u64_at(self.0, 56)
    }
}

/// A checked view of the host area.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    b: &'a [u8],
    n: usize,
    loads_off: usize,
}

impl<'a> Table<'a> {
    /// Check the header against the bytes: `None` when the area is shorter than its header
    /// claims (the host never writes such an area; a plugin that scribbled on its own
    /// header gets `None` rather than a panic).
    pub fn new(b: &'a [u8]) -> Option<Self> {
        let n = u32_at(b, 8) as usize;
        let cap = u32_at(b, 12) as usize;
        let loads_off = u32_at(b, 20) as usize;
        let ok = b.len() >= DESTS_OFF
            && n <= cap
            && u32_at(b, 16) as usize == DESTS_OFF
            && loads_off == DESTS_OFF + cap * DEST_SIZE
            && b.len() >= area_bytes(cap);
        ok.then_some(Table { b, n, loads_off })
    }
    /// The host's ABI version, `major << 16 | minor`.
    pub fn abi(&self) -> u32 {
        u32_at(self.b, 0)
    }
    /// Generation of the static part.
    pub fn generation(&self) -> u32 {
        u32_at(self.b, 4)
    }
    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.n
    }
    /// No destinations.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// The lcore.
    pub fn lcore(&self) -> u16 {
        u16_at(self.b, 28)
    }
    /// Virtual port.
    pub fn svc_port(&self) -> u16 {
        u16_at(self.b, 30)
    }
    /// Instance seed.
    pub fn seed(&self) -> u64 {
        u64_at(self.b, 32)
    }
    /// ipvsadm `-b` flags.
    pub fn sched_flags(&self) -> u32 {
        u32_at(self.b, 40)
    }
    /// Service protocol.
    pub fn svc_proto(&self) -> u8 {
        self.b.get(44).copied().unwrap_or(0)
    }
    /// Virtual address.
    pub fn vip(&self) -> [u8; 16] {
        addr_at(self.b, 48)
    }
    /// The new connection.
    pub fn flow(&self) -> FlowView<'a> {
        FlowView(self.b.get(FLOW_OFF..FLOW_OFF + FLOW_SIZE).unwrap_or(&[]))
    }
    /// Destination `i`'s static record.
    pub fn dest(&self, i: usize) -> Option<DestView<'a>> {
        if i >= self.n {
            return None;
        }
        let o = DESTS_OFF + i * DEST_SIZE;
        self.b.get(o..o + DEST_SIZE).map(DestView)
    }
    /// Destination `i`'s counters.
    pub fn load(&self, i: usize) -> Option<LoadView<'a>> {
        if i >= self.n {
            return None;
        }
        let o = self.loads_off + i * LOAD_SIZE;
        self.b.get(o..o + LOAD_SIZE).map(LoadView)
    }
    /// The host's eligibility rule: usable and not overloaded.
    pub fn eligible(&self, i: usize) -> bool {
        match (self.dest(i), self.load(i)) {
            (Some(d), Some(l)) => d.usable() && !l.overloaded(),
            _ => false,
        }
    }
    /// Every destination with its counters, in service order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, DestView<'a>, LoadView<'a>)> + 'a {
        let t = *self;
        (0..self.n).filter_map(move |i| Some((i, t.dest(i)?, t.load(i)?)))
    }
}

/// A scheduler plugin. One value lives in each instance (one per lcore per service);
/// `Default` makes it.
pub trait Plugin: Default {
    /// Pick the destination of the flow in `t`.
    fn pick(&mut self, t: &Table<'_>) -> Answer;
    /// The static part changed (new generation): rebuild derived state. `false` refuses
    /// the table (the host then sends every pick to the native fallback until the next
    /// update).
    fn table_update(&mut self, t: &Table<'_>) -> bool {
        let _ = t;
        true
    }
    /// The service's `plugin_config` blob: `Err(code)` refuses it (a load error).
    fn configure(&mut self, blob: &[u8]) -> Result<(), i32> {
        let _ = blob;
        Ok(())
    }
}

/// Most destinations an exported plugin's area holds.
pub const MAX_DESTS: usize = 1024;
/// Most configuration bytes an exported plugin accepts.
pub const MAX_CONFIG: usize = 4096;

/// The area storage: bytes, 8-byte aligned as the ABI requires.
#[derive(Debug)]
#[repr(C, align(8))]
struct Area([u8; area_bytes(MAX_DESTS)]);

/// The per-instance state [`export_plugin!`] keeps: the area the host writes, the
/// configuration buffer, and the plugin value. All the logic of the exports lives here, in
/// safe code, so it is tested natively; the macro only adds the symbols.
#[derive(Debug)]
pub struct Instance<P> {
    area: Area,
    config: [u8; MAX_CONFIG],
    plugin: P,
}

impl<P: Plugin> Instance<P> {
    /// A fresh instance.
    pub fn new() -> Self {
        Instance {
            area: Area([0; area_bytes(MAX_DESTS)]),
            config: [0; MAX_CONFIG],
            plugin: P::default(),
        }
    }
    /// `rvs_table(capacity)`: the area, if it can hold `capacity` destinations.
    pub fn table(&mut self, capacity: i32) -> Option<&mut [u8]> {
        let cap = usize::try_from(capacity).ok()?;
        (cap <= MAX_DESTS).then_some(&mut self.area.0[..])
    }
    /// `rvs_pick()`: a malformed area (the plugin wrote over its header) defers.
    pub fn pick(&mut self) -> i32 {
        match Table::new(&self.area.0) {
            Some(t) => self.plugin.pick(&t).to_raw(),
            None => Answer::Defer.to_raw(),
        }
    }
    /// `rvs_table_update(generation)`: 0 when the plugin accepts the table.
    pub fn table_update(&mut self) -> i32 {
        match Table::new(&self.area.0) {
            Some(t) if self.plugin.table_update(&t) => 0,
            _ => 1,
        }
    }
    /// `rvs_config_buf(len)`: the buffer, if `len` fits.
    pub fn config_buf(&mut self, len: i32) -> Option<&mut [u8]> {
        let n = usize::try_from(len).ok()?;
        self.config.get_mut(..n)
    }
    /// `rvs_configure(len)`: 0 when accepted.
    pub fn configure(&mut self, len: i32) -> i32 {
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        match self.config.get(..n) {
            Some(blob) => match self.plugin.configure(blob) {
                Ok(()) => 0,
                Err(c) if c != 0 => c,
                Err(_) => 1,
            },
            None => 1,
        }
    }
    /// The plugin value.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }
}

impl<P: Plugin> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Export `$ty` (a [`Plugin`]) under the ABI's names: `rvs_abi_v1`, `rvs_table`,
/// `rvs_pick`, `rvs_table_update`, `rvs_config_buf`, `rvs_configure`. The linear memory is
/// exported by the toolchain as `memory`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        mod __rvs_plugin_exports {
            use super::*;
            use $crate::{Instance, Plugin};

            static mut INSTANCE: Option<Instance<$ty>> = None;

            /// The module's instance state.
            #[allow(unsafe_code)]
            pub fn state() -> &'static mut Instance<$ty> {
                // SAFETY: a wasm instance is single-threaded and the host never re-enters
                // it (no export calls back into another export), so at most one `&mut`
                // to INSTANCE is live at a time: the one of the export running now, which
                // does not keep it past its return. Natively (tests), callers must not hold
                // two results of `state()` at once.
                let slot = unsafe { &mut *::core::ptr::addr_of_mut!(INSTANCE) };
                slot.get_or_insert_with(Instance::new)
            }

            // SAFETY (each `#[unsafe(no_mangle)]` below): the names are the ABI's, unique in
            // the module; nothing else in a plugin defines them.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_abi_v1() -> i32 {
                $crate::ABI_MINOR as i32
            }
            // SAFETY: see above.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_table(capacity: i32) -> i32 {
                match state().table(capacity) {
                    Some(a) => a.as_ptr() as usize as i32,
                    None => 0,
                }
            }
            // SAFETY: see above.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_pick() -> i32 {
                state().pick()
            }
            // SAFETY: see above.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_table_update(_generation: i32) -> i32 {
                state().table_update()
            }
            // SAFETY: see above.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_config_buf(len: i32) -> i32 {
                match state().config_buf(len) {
                    Some(b) => b.as_ptr() as usize as i32,
                    None => 0,
                }
            }
            // SAFETY: see above.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn rvs_configure(len: i32) -> i32 {
                state().configure(len)
            }
        }
    };
}
