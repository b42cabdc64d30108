//! The SDK natively: its views read what an independent encoder (written here from ABI.md's
//! tables, not shared with the host) put at the documented offsets; its wlc decides as rvs's
//! native wlc on randomized services; the exports the macro generates behave as ABI.md says.

use rvs_core::addr::{Addr, Proto};
use rvs_core::load::{Counter, LoadTable};
use rvs_core::rng::SplitMix64;
use rvs_core::sched::{Flow, SchedCx};
use rvs_core::service::{Dest, DestFlags, DestId, Forward, Service, ServiceKey};
use rvs_core::time::Now;
use rvs_plugin_sdk::{Answer, Plugin, Table, algo};

/// Encode an area from ABI.md section 3, by the numbers.
fn encode(area: &mut [u8], svc: &Service, loads: &LoadTable, f: &Flow<'_>, rand: u64, cap: usize) {
    let put = |a: &mut [u8], o: usize, v: &[u8]| a[o..o + v.len()].copy_from_slice(v);
    put(area, 0, &0x0001_0000u32.to_le_bytes());
    put(area, 4, &7u32.to_le_bytes());
    put(area, 8, &(svc.dests.len() as u32).to_le_bytes());
    put(area, 12, &(cap as u32).to_le_bytes());
    put(area, 16, &128u32.to_le_bytes());
    put(area, 20, &(128 + 32 * cap as u32).to_le_bytes());
    put(area, 24, &64u32.to_le_bytes());
    put(area, 28, &3u16.to_le_bytes());
    put(area, 30, &svc.key.port.to_le_bytes());
    put(area, 32, &0xabcdu64.to_le_bytes());
    put(area, 40, &svc.sched_flags.0.to_le_bytes());
    put(area, 44, &[6, 4]);
    put(area, 48, &svc.key.vip.octets());
    put(area, 64, &f.saddr.octets());
    put(area, 80, &f.daddr.octets());
    put(area, 96, &f.sport.to_le_bytes());
    put(area, 98, &f.dport.to_le_bytes());
    put(area, 100, &[f.proto.number(), 4]);
    let n = f.payload.len().min(16);
    put(area, 102, &(n as u16).to_le_bytes());
    put(area, 104, &f.payload[..n]);
    put(area, 120, &rand.to_le_bytes());
    for (i, d) in svc.dests.iter().enumerate() {
        let o = 128 + 32 * i;
        put(area, o, &d.addr.octets());
        put(area, o + 16, &d.id.0.to_le_bytes());
        put(area, o + 20, &d.weight.to_le_bytes());
        put(area, o + 24, &d.port.to_le_bytes());
        put(area, o + 26, &d.flags.0.to_le_bytes());
        put(area, o + 28, &[4, 2]);
        let l = loads.get(d.id);
        let o = 128 + 32 * cap + 16 * i;
        put(area, o, &l.active.to_le_bytes());
        put(area, o + 4, &l.inactive.to_le_bytes());
        put(area, o + 8, &l.persistent.to_le_bytes());
        put(area, o + 12, &(l.overloaded as u32).to_le_bytes());
    }
}

fn service(n: u32, rng: &mut SplitMix64) -> Service {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Addr::v4([198, 18, 0, 100]),
        port: 80,
    };
    let mut s = Service::new(key, Forward::Dr, rvs_schedulers::factory("wlc").unwrap());
    s.dests = (0..n)
        .map(|i| {
            let mut d = Dest::new(DestId(i), Addr::from_v4_u32(0xc612_0101 + i), 80);
            d.weight = if rng.below(5) == 0 {
                0
            } else {
                1 + rng.below(1000) as u32
            };
            if rng.below(8) == 0 {
                d.flags.0 |= DestFlags::UNAVAILABLE;
            }
            if rng.below(8) == 0 {
                d.flags.0 |= DestFlags::INHIBITED;
            }
            d
        })
        .collect();
    s
}

fn flow(i: u32) -> Flow<'static> {
    Flow {
        af: rvs_core::Af::V4,
        proto: Proto::Udp,
        saddr: Addr::v4([198, 18, 200, i as u8]),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: 4000 + i as u16,
        dport: 443,
        payload: b"0123456789abcdefXYZ",
    }
}

#[test]
fn views_read_the_documented_offsets() {
    let mut rng = SplitMix64::new(1);
    let svc = service(3, &mut rng);
    let loads = LoadTable::new(3);
    loads.inc(DestId(1), Counter::Active);
    loads.inc(DestId(1), Counter::Inactive);
    loads.inc(DestId(1), Counter::Inactive);
    loads.set_overloaded(DestId(2), true);
    let mut area = vec![0u8; rvs_plugin_sdk::area_bytes(8)];
    encode(&mut area, &svc, &loads, &flow(9), 0x1122_3344_5566_7788, 8);
    let t = Table::new(&area).expect("valid area");
    assert_eq!(
        (t.abi(), t.generation(), t.len(), t.lcore(), t.svc_port()),
        (0x10000, 7, 3, 3, 80)
    );
    assert_eq!((t.seed(), t.svc_proto()), (0xabcd, 6));
    assert_eq!(&t.vip()[12..], &[198, 18, 0, 100]);
    let f = t.flow();
    assert_eq!(&f.saddr()[12..], &[198, 18, 200, 9]);
    assert_eq!((f.sport(), f.dport(), f.proto(), f.af()), (4009, 443, 17, 4));
    assert_eq!(f.payload(), b"0123456789abcdef");
    assert_eq!(f.rand(), 0x1122_3344_5566_7788);
    let d = t.dest(1).expect("dest 1");
    assert_eq!(
        (d.id(), d.weight(), d.port(), d.af(), d.fwd()),
        (1, svc.dests[1].weight, 80, 4, 2)
    );
    assert_eq!(&d.addr()[12..], &[198, 18, 1, 2]);
    let l = t.load(1).expect("load 1");
    assert_eq!(
        (l.active(), l.inactive(), l.overhead(), l.overloaded()),
        (1, 2, 258, false)
    );
    assert!(t.load(2).expect("load 2").overloaded());
    assert!(!t.eligible(2));
    assert!(t.dest(3).is_none() && t.load(3).is_none());
    assert_eq!(t.iter().count(), 3);
    // A header that claims more than the bytes hold is refused, not read.
    let mut bad = area.clone();
    bad[12..16].copy_from_slice(&9u32.to_le_bytes());
    assert!(Table::new(&bad).is_none());
    assert!(Table::new(&area[..100]).is_none());
    assert_eq!(Answer::Dest(5).to_raw(), 5);
    assert_eq!((Answer::None.to_raw(), Answer::Defer.to_raw()), (-1, -2));
}

#[test]
fn sdk_wlc_decides_as_native_wlc() {
    let native = rvs_schedulers::factory("wlc").unwrap();
    let mut rng = SplitMix64::new(0x5d4);
    let mut compared = 0;
    let mut area = vec![0u8; rvs_plugin_sdk::area_bytes(66)];
    for round in 0..200u32 {
        let n = (round % 64) + (round % 3);
        let svc = service(n, &mut rng);
        let loads = LoadTable::new(n as usize + 1);
        for i in 0..n {
            for _ in 0..rng.below(20) {
                loads.inc(DestId(i), Counter::Active);
            }
            for _ in 0..rng.below(600) {
                loads.inc(DestId(i), Counter::Inactive);
            }
            if rng.below(10) == 0 {
                loads.set_overloaded(DestId(i), true);
            }
        }
        let mut s = native.instance(0, 0);
        s.refresh(&svc);
        let mut w = algo::Wlc;
        for k in 0..20 {
            encode(&mut area, &svc, &loads, &flow(k), rng.next_u64(), 66);
            let t = Table::new(&area).expect("area");
            let cx = SchedCx {
                svc: &svc,
                loads: &loads,
                now: Now(0),
                lcore: 0,
            };
            let want = s.pick(&cx, &flow(k));
            let got = match w.pick(&t) {
                Answer::Dest(i) => Some(i),
                Answer::None => None,
                Answer::Defer => panic!("wlc never defers"),
            };
            assert_eq!(got, want, "round {round} pick {k}");
            if let Some(i) = got {
                loads.inc(svc.dests[i].id, Counter::Active);
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 4000);
}

#[test]
fn two_choices_prefers_the_less_busy_and_stays_eligible() {
    let mut rng = SplitMix64::new(3);
    let svc = service(16, &mut rng);
    let loads = LoadTable::new(16);
    let mut area = vec![0u8; rvs_plugin_sdk::area_bytes(16)];
    let mut p = algo::TwoChoices;
    for k in 0..2000 {
        let r = rng.next_u64();
        encode(&mut area, &svc, &loads, &flow(k), r, 16);
        let t = Table::new(&area).unwrap();
        let n = 16u64;
        let i = (((r & 0xffff_ffff) * n) >> 32) as usize;
        let j = (((r >> 32) * n) >> 32) as usize;
        match p.pick(&t) {
            Answer::Dest(d) => {
                assert!(t.eligible(d), "pick {k}: {d} not eligible");
                if t.eligible(i) && t.eligible(j) {
                    let a = |x: usize| loads.get(DestId(x as u32)).active;
                    assert_eq!(d, if a(j) < a(i) { j } else { i });
                }
                loads.inc(DestId(d as u32), Counter::Active);
            }
            Answer::None => assert!((0..16).all(|x| !t.eligible(x))),
            Answer::Defer => panic!("never defers"),
        }
    }
}

/// A plugin for the macro test: answers the configured index, refuses blobs over 2 bytes,
/// refuses tables of more than 4 destinations.
#[derive(Debug, Default)]
struct Fixed(usize);

impl Plugin for Fixed {
    fn pick(&mut self, t: &Table<'_>) -> Answer {
        if self.0 < t.len() {
            Answer::Dest(self.0)
        } else {
            Answer::Defer
        }
    }
    fn table_update(&mut self, t: &Table<'_>) -> bool {
        t.len() <= 4
    }
    fn configure(&mut self, blob: &[u8]) -> Result<(), i32> {
        match blob {
            [] => Ok(()),
            [x] | [x, _] => {
                self.0 = *x as usize;
                Ok(())
            }
            _ => Err(5),
        }
    }
}

rvs_plugin_sdk::export_plugin!(Fixed);

#[test]
fn the_macro_exports_the_abi() {
    use __rvs_plugin_exports as x;
    assert_eq!(x::rvs_abi_v1(), 0);
    assert_eq!(x::rvs_table(rvs_plugin_sdk::MAX_DESTS as i32 + 1), 0);
    assert_eq!(x::rvs_table(-1), 0);
    assert_ne!(x::rvs_config_buf(2), 0);
    assert_eq!(x::rvs_config_buf(1 << 20), 0);
    x::state().config_buf(1).unwrap()[0] = 2;
    assert_eq!(x::rvs_configure(1), 0);
    assert_eq!(x::rvs_configure(3), 5);
    // Before any table: the area's header is zero, a valid empty table: defer.
    assert_eq!(x::rvs_pick(), -2);
    let mut rng = SplitMix64::new(9);
    let svc = service(4, &mut rng);
    let loads = LoadTable::new(4);
    encode(x::state().table(4).unwrap(), &svc, &loads, &flow(1), 0, 4);
    assert_eq!(x::rvs_table_update(7), 0);
    assert_eq!(x::rvs_pick(), 2);
    let svc = service(5, &mut rng);
    encode(x::state().table(5).unwrap(), &svc, &loads, &flow(1), 0, 5);
    assert_eq!(x::rvs_table_update(8), 1, "more than 4 destinations refused");
    // A header scribbled over: defer, never a panic.
    x::state().table(1).unwrap()[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(x::rvs_pick(), -2);
    assert_eq!(x::state().plugin().0, 2);
}
