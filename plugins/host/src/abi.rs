//! ABI v1 records, as `plugins/ABI.md` lays them out, and their encoders.
//!
//! The `#[repr(C)]` structs mirror the C header (`plugins/sdk/include/rvs_plugin.h`); they are
//! never placed in plugin memory by reference (the host writes little-endian bytes at the
//! offsets below), but their `offset_of!` values are where those offsets come from, and the
//! compile-time assertions pin them to the numbers in ABI.md.

use std::mem::{offset_of, size_of};

use rvs_core::addr::Addr;
use rvs_core::load::Load;
use rvs_core::sched::Flow;
use rvs_core::service::{Dest, Forward, Service};

/// The ABI major version this host speaks (it is in the marker export's name).
pub const MAJOR: u32 = 1;
/// The ABI minor version this host implements.
pub const MINOR: u32 = 0;
/// Prefix of the marker export; the major version follows (`rvs_abi_v1`).
pub const MARKER_PREFIX: &str = "rvs_abi_v";

/// Export names.
pub mod export {
    /// The v1 marker.
    pub const MARKER_V1: &str = "rvs_abi_v1";
    /// The linear memory.
    pub const MEMORY: &str = "memory";
    /// `(capacity) -> area address`.
    pub const TABLE: &str = "rvs_table";
    /// `() -> answer`.
    pub const PICK: &str = "rvs_pick";
    /// Optional `(generation) -> status`.
    pub const TABLE_UPDATE: &str = "rvs_table_update";
    /// Optional `(len) -> address`.
    pub const CONFIG_BUF: &str = "rvs_config_buf";
    /// Optional `(len) -> status`.
    pub const CONFIGURE: &str = "rvs_configure";
}

/// The only import module and name a plugin may use.
pub const IMPORT_MODULE: &str = "rvs";
/// `rvs.log(level, ptr, len)`.
pub const IMPORT_LOG: &str = "log";
/// Most bytes of a log message read.
pub const LOG_MAX: usize = 256;

/// Answer: no destination.
pub const ANSWER_NONE: i32 = -1;
/// Answer: defer to the native fallback.
pub const ANSWER_DEFER: i32 = -2;

/// Destination flag: inhibited by a health check.
pub const DEST_INHIBITED: u16 = 0x1;
/// Destination flag: administratively unavailable.
pub const DEST_UNAVAILABLE: u16 = 0x2;
/// Counter flag: overloaded on this lcore.
pub const LOAD_OVERLOADED: u32 = 0x1;

/// The area header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Host version, `major << 16 | minor`.
    pub abi: u32,
    /// Static-part generation.
    pub generation: u32,
    /// Destinations.
    pub n_dests: u32,
    /// Capacity of the arrays.
    pub capacity: u32,
    /// Offset of the destination array.
    pub dests_off: u32,
    /// Offset of the counter array.
    pub loads_off: u32,
    /// Offset of the flow record.
    pub flow_off: u32,
    /// The lcore.
    pub lcore: u16,
    /// Virtual port.
    pub svc_port: u16,
    /// Instance seed.
    pub seed: u64,
    /// ipvsadm `-b` flags.
    pub sched_flags: u32,
    /// IP protocol number.
    pub svc_proto: u8,
    /// 4 or 6.
    pub svc_af: u8,
    /// Zero.
    pub reserved: u16,
    /// Virtual address, network order, IPv4-mapped.
    pub vip: [u8; 16],
}

/// The flow record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FlowRec {
    /// Client address.
    pub saddr: [u8; 16],
    /// Virtual address.
    pub daddr: [u8; 16],
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// 4 or 6.
    pub af: u8,
    /// Valid payload bytes.
    pub payload_len: u16,
    /// First payload bytes.
    pub payload: [u8; 16],
    /// Random bits.
    pub rand: u64,
}

/// A destination's static record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DestRec {
    /// Address, network order, IPv4-mapped.
    pub addr: [u8; 16],
    /// Stable slot id.
    pub id: u32,
    /// Weight.
    pub weight: u32,
    /// Port.
    pub port: u16,
    /// `DEST_*` flags.
    pub flags: u16,
    /// 4 or 6.
    pub af: u8,
    /// Forwarding mode code.
    pub fwd: u8,
    /// Zero.
    pub reserved: u16,
}

/// A destination's counter record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LoadRec {
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
    /// `LOAD_*` flags.
    pub flags: u32,
}

/// Header size.
pub const HEADER_SIZE: usize = size_of::<Header>();
/// Flow record size.
pub const FLOW_SIZE: usize = size_of::<FlowRec>();
/// Destination record size.
pub const DEST_SIZE: usize = size_of::<DestRec>();
/// Counter record size.
pub const LOAD_SIZE: usize = size_of::<LoadRec>();
/// Offset of the flow record in the area.
pub const FLOW_OFF: usize = HEADER_SIZE;
/// Offset of the destination array in the area.
pub const DESTS_OFF: usize = HEADER_SIZE + FLOW_SIZE;

// The layout of ABI.md, section 3, pinned.
const _: () = {
    assert!(HEADER_SIZE == 64 && FLOW_SIZE == 64 && DEST_SIZE == 32 && LOAD_SIZE == 16);
    assert!(FLOW_OFF == 64 && DESTS_OFF == 128);
    assert!(offset_of!(Header, abi) == 0);
    assert!(offset_of!(Header, generation) == 4);
    assert!(offset_of!(Header, n_dests) == 8);
    assert!(offset_of!(Header, capacity) == 12);
    assert!(offset_of!(Header, dests_off) == 16);
    assert!(offset_of!(Header, loads_off) == 20);
    assert!(offset_of!(Header, flow_off) == 24);
    assert!(offset_of!(Header, lcore) == 28);
    assert!(offset_of!(Header, svc_port) == 30);
    assert!(offset_of!(Header, seed) == 32);
    assert!(offset_of!(Header, sched_flags) == 40);
    assert!(offset_of!(Header, svc_proto) == 44);
    assert!(offset_of!(Header, svc_af) == 45);
    assert!(offset_of!(Header, reserved) == 46);
    assert!(offset_of!(Header, vip) == 48);
    assert!(offset_of!(FlowRec, saddr) == 0);
    assert!(offset_of!(FlowRec, daddr) == 16);
    assert!(offset_of!(FlowRec, sport) == 32);
    assert!(offset_of!(FlowRec, dport) == 34);
    assert!(offset_of!(FlowRec, proto) == 36);
    assert!(offset_of!(FlowRec, af) == 37);
    assert!(offset_of!(FlowRec, payload_len) == 38);
    assert!(offset_of!(FlowRec, payload) == 40);
    assert!(offset_of!(FlowRec, rand) == 56);
    assert!(offset_of!(DestRec, addr) == 0);
    assert!(offset_of!(DestRec, id) == 16);
    assert!(offset_of!(DestRec, weight) == 20);
    assert!(offset_of!(DestRec, port) == 24);
    assert!(offset_of!(DestRec, flags) == 26);
    assert!(offset_of!(DestRec, af) == 28);
    assert!(offset_of!(DestRec, fwd) == 29);
    assert!(offset_of!(DestRec, reserved) == 30);
    assert!(offset_of!(LoadRec, active) == 0);
    assert!(offset_of!(LoadRec, inactive) == 4);
    assert!(offset_of!(LoadRec, persistent) == 8);
    assert!(offset_of!(LoadRec, flags) == 12);
    assert!(MAJOR < 0x1_0000 && MINOR < 0x1_0000);
};

/// Bytes of an area holding `capacity` destinations.
pub const fn area_bytes(capacity: usize) -> usize {
    DESTS_OFF + capacity * (DEST_SIZE + LOAD_SIZE)
}

/// Offset of the counter array for `capacity`.
pub const fn loads_off(capacity: usize) -> usize {
    DESTS_OFF + capacity * DEST_SIZE
}

fn af_code(a: Addr) -> u8 {
    if a.is_v4() { 4 } else { 6 }
}

/// The forwarding mode's code in [`DestRec::fwd`].
pub const fn fwd_code(f: Forward) -> u8 {
    match f {
        Forward::Fnat => 0,
        Forward::Nat => 1,
        Forward::Dr => 2,
        Forward::Tunnel => 3,
        Forward::Snat => 4,
    }
}

/// Write `bytes` at `off`; silently nothing when out of bounds (the caller validated the
/// area against the memory size, and memories never shrink).
#[inline(always)]
fn put(mem: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = mem.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Encode the header.
pub fn header(svc: &Service, generation: u32, capacity: usize, lcore: u16, seed: u64) -> [u8; HEADER_SIZE] {
    let mut b = [0u8; HEADER_SIZE];
    let mut w = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    w(offset_of!(Header, abi), &((MAJOR << 16) | MINOR).to_le_bytes());
    w(offset_of!(Header, generation), &generation.to_le_bytes());
    w(offset_of!(Header, n_dests), &(svc.dests.len() as u32).to_le_bytes());
    w(offset_of!(Header, capacity), &(capacity as u32).to_le_bytes());
    w(offset_of!(Header, dests_off), &(DESTS_OFF as u32).to_le_bytes());
    w(
        offset_of!(Header, loads_off),
        &(loads_off(capacity) as u32).to_le_bytes(),
    );
    w(offset_of!(Header, flow_off), &(FLOW_OFF as u32).to_le_bytes());
    w(offset_of!(Header, lcore), &lcore.to_le_bytes());
    w(offset_of!(Header, svc_port), &svc.key.port.to_le_bytes());
    w(offset_of!(Header, seed), &seed.to_le_bytes());
    w(offset_of!(Header, sched_flags), &svc.sched_flags.0.to_le_bytes());
    w(offset_of!(Header, svc_proto), &[svc.key.proto.number()]);
    w(offset_of!(Header, svc_af), &[af_code(svc.key.vip)]);
    w(offset_of!(Header, vip), &svc.key.vip.octets());
    b
}

/// Encode a destination's static record.
pub fn dest(d: &Dest) -> [u8; DEST_SIZE] {
    let mut b = [0u8; DEST_SIZE];
    let mut w = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    w(offset_of!(DestRec, addr), &d.addr.octets());
    w(offset_of!(DestRec, id), &d.id.0.to_le_bytes());
    w(offset_of!(DestRec, weight), &d.weight.to_le_bytes());
    w(offset_of!(DestRec, port), &d.port.to_le_bytes());
    let flags = (d.flags.0 & (DEST_INHIBITED | DEST_UNAVAILABLE)).to_le_bytes();
    w(offset_of!(DestRec, flags), &flags);
    w(offset_of!(DestRec, af), &[af_code(d.addr)]);
    w(offset_of!(DestRec, fwd), &[fwd_code(d.fwd)]);
    b
}

/// Encode a counter record.
#[inline(always)]
pub fn load(l: Load) -> [u8; LOAD_SIZE] {
    let mut b = [0u8; LOAD_SIZE];
    b[0..4].copy_from_slice(&l.active.to_le_bytes());
    b[4..8].copy_from_slice(&l.inactive.to_le_bytes());
    b[8..12].copy_from_slice(&l.persistent.to_le_bytes());
    b[12..16].copy_from_slice(&(if l.overloaded { LOAD_OVERLOADED } else { 0 }).to_le_bytes());
    b
}

/// Encode the flow record into `b` (every byte written: payload bytes past `payload_len` are
/// zeroed).
#[inline(always)]
fn fill_flow(b: &mut [u8; FLOW_SIZE], f: &Flow<'_>, rand: u64) {
    b[0..16].copy_from_slice(&f.saddr.octets());
    b[16..32].copy_from_slice(&f.daddr.octets());
    b[32..34].copy_from_slice(&f.sport.to_le_bytes());
    b[34..36].copy_from_slice(&f.dport.to_le_bytes());
    b[36] = f.proto.number();
    b[37] = match f.af {
        rvs_core::Af::V4 => 4,
        rvs_core::Af::V6 => 6,
    };
    let n = f.payload.len().min(16);
    b[38..40].copy_from_slice(&(n as u16).to_le_bytes());
    let mut payload = [0u8; 16];
    if n != 0 {
        payload[..n].copy_from_slice(&f.payload[..n]);
    }
    b[40..56].copy_from_slice(&payload);
    b[56..64].copy_from_slice(&rand.to_le_bytes());
}

/// Encode the flow record in place at `area` (the pick path: no intermediate copy). Does
/// nothing when the record would not fit in `mem` (the area was checked when it was set).
#[inline(always)]
pub fn put_flow(mem: &mut [u8], area: usize, f: &Flow<'_>, rand: u64) {
    let at = area + FLOW_OFF;
    if let Some(dst) = mem.get_mut(at..at + FLOW_SIZE)
        && let Ok(b) = <&mut [u8; FLOW_SIZE]>::try_from(dst)
    {
        fill_flow(b, f, rand);
    }
}

/// The counter records of an area of `capacity` destinations, as one slice (`None` when
/// they do not fit in `mem`).
#[inline(always)]
pub fn loads_mut(mem: &mut [u8], area: usize, capacity: usize) -> Option<&mut [u8]> {
    let at = area + loads_off(capacity);
    mem.get_mut(at..at + capacity * LOAD_SIZE)
}

/// Write counter record `i` into the slice [`loads_mut`] returned.
#[inline(always)]
pub fn set_load(loads: &mut [u8], i: usize, l: Load) {
    if let Some(dst) = loads.get_mut(i * LOAD_SIZE..(i + 1) * LOAD_SIZE)
        && let Ok(b) = <&mut [u8; LOAD_SIZE]>::try_from(dst)
    {
        *b = load(l);
    }
}

/// Write the header and the flow record at `area`.
pub fn write_header(mem: &mut [u8], area: usize, h: &[u8; HEADER_SIZE]) {
    put(mem, area, h);
}

/// Write destination `i`'s static record.
pub fn write_dest(mem: &mut [u8], area: usize, i: usize, rec: &[u8; DEST_SIZE]) {
    put(mem, area + DESTS_OFF + i * DEST_SIZE, rec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::Proto;

    // An independent decoder: read fields back at the offsets ABI.md states, by number.
    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn flow_record_fields_sit_where_abi_md_says() {
        let f = Flow {
            af: rvs_core::Af::V4,
            proto: Proto::Udp,
            saddr: "198.18.0.7".parse().unwrap(),
            daddr: "198.18.0.100".parse().unwrap(),
            sport: 40000,
            dport: 443,
            payload: &[0xaa; 40],
        };
        let mut mem = vec![0xeeu8; 8 + FLOW_OFF + FLOW_SIZE];
        put_flow(&mut mem, 8, &f, 0x0102_0304_0506_0708);
        let b = &mem[8 + FLOW_OFF..];
        assert_eq!(&b[0..16], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 7]);
        assert_eq!(&b[28..32], &[198, 18, 0, 100]);
        assert_eq!(u16_at(b, 32), 40000);
        assert_eq!(u16_at(b, 34), 443);
        assert_eq!(b[36], 17);
        assert_eq!(b[37], 4);
        assert_eq!(u16_at(b, 38), 16);
        assert_eq!(&b[40..56], &[0xaa; 16]);
        assert_eq!(&b[56..64], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn dest_and_load_records() {
        let mut d = Dest::new(rvs_core::service::DestId(9), "2001:db8::5".parse().unwrap(), 8080);
        d.weight = 300;
        d.flags.0 = DEST_UNAVAILABLE | 0x80;
        d.fwd = Forward::Fnat;
        let b = dest(&d);
        assert_eq!(b[0..2], [0x20, 0x01]);
        assert_eq!(b[15], 5);
        assert_eq!(u32_at(&b, 16), 9);
        assert_eq!(u32_at(&b, 20), 300);
        assert_eq!(u16_at(&b, 24), 8080);
        assert_eq!(u16_at(&b, 26), 2, "unknown flag bits are not passed on");
        assert_eq!(b[28], 6);
        assert_eq!(b[29], 0);
        let l = load(Load {
            active: 3,
            inactive: 258,
            persistent: 1,
            overloaded: true,
        });
        assert_eq!(
            [u32_at(&l, 0), u32_at(&l, 4), u32_at(&l, 8), u32_at(&l, 12)],
            [3, 258, 1, 1]
        );
        assert_eq!(area_bytes(64), 128 + 64 * 48);
        assert_eq!(loads_off(64), 128 + 64 * 32);
    }
}
