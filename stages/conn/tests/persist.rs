//! Persistence templates together with the connection table: a connection's expiry detaches
//! it from its template, the template expires only a timeout after its last connection, and
//! the owner's `persistent` counter follows the template. Two lcores share one table.

use std::sync::Arc;

use rvs_conn::persist::TemplateKey;
use rvs_conn::{Conn, ConnConfig, LcoreConns, LcoreTemplates, Placed, Templates, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::{Dest, DestId, Forward, Persistence, Service, ServiceKey, Snapshot};
use rvs_core::time::Now;

#[derive(Debug)]
struct Unused;
impl Scheduler for Unused {
    fn name(&self) -> &str {
        "unused"
    }
    fn pick(&mut self, _: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
        None
    }
}
impl SchedulerFactory for Unused {
    fn name(&self) -> &str {
        "unused"
    }
    fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
        Box::new(Unused)
    }
}

const VIP: Addr = Addr::v4([198, 18, 0, 100]);
const PERSIST: Persistence = Persistence {
    timeout_secs: 60,
    netmask_v4: 24,
    netmask_v6: 64,
};

fn snapshot() -> Snapshot {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP,
        port: 80,
    };
    let mut s = Service::new(key, Forward::Dr, Arc::new(Unused));
    s.dests = (0..3u8)
        .map(|i| Dest::new(DestId(i as u32), Addr::v4([198, 18, 1, 10 + i]), 80))
        .collect();
    s.persistence = Some(PERSIST);
    Snapshot::build(1, 2, Default::default(), vec![s]).unwrap()
}

fn table(lcore: u16, loads: Arc<LoadTable>, t: &Arc<Templates>) -> LcoreConns {
    let mut c = LcoreConns::new(
        ConnConfig {
            capacity: 64,
            buckets_log2: 6,
            seed: 5,
            timer_tick_ms: 10,
        },
        lcore,
        2,
        loads,
    );
    c.set_templates(t.clone());
    c
}

fn conn(client: Addr, sport: u16, dest: u32) -> Conn {
    let in_tuple = Tuple {
        proto: Proto::Udp,
        saddr: client,
        daddr: VIP,
        sport,
        dport: 80,
    };
    Conn {
        in_tuple,
        out_tuple: Conn::out_tuple_for(
            Forward::Dr,
            &in_tuple,
            Addr::v4([198, 18, 1, 10 + dest as u8]),
            80,
            client,
            sport,
        ),
        fwd: Forward::Dr,
        dest: DestId(dest),
        timeout_secs: 30,
        ..Default::default()
    }
}

#[test]
fn template_outlives_its_connections_on_both_lcores_by_one_timeout() {
    let snap = snapshot();
    let svc = &snap.services[0];
    let shared = Arc::new(Templates::new(16, 4, 9));
    let (l0, l1) = (Arc::new(LoadTable::new(4)), Arc::new(LoadTable::new(4)));
    let mut t0 = LcoreTemplates::new(shared.clone(), l0.clone(), 0);
    let mut t1 = LcoreTemplates::new(shared.clone(), l1.clone(), 1);
    let (mut c0, mut c1) = (table(0, l0.clone(), &shared), table(1, l1.clone(), &shared));

    // Lcore 0: the first client of 198.18.5.0/24; the scheduler picks destination 2.
    let a = Addr::v4([198, 18, 5, 5]);
    let Placed::New(2, h) = t0.place(&PERSIST, svc, 1, a, Now::from_secs(0), || Some(2)) else {
        panic!("expected a new template")
    };
    assert_eq!(l0.get(DestId(2)).persistent, 1);
    let id0 = c0.insert(conn(a, 1000, 2), Now::from_secs(0)).unwrap();
    assert!(c0.attach_template(id0, h));

    // Lcore 1: another client of the same /24 finds it; the scheduler is not asked.
    let b = Addr::v4([198, 18, 5, 200]);
    let placed = t1.place(&PERSIST, svc, 1, b, Now::from_secs(10), || panic!("scheduler called"));
    assert_eq!(placed, Placed::Hit(2, h));
    let id1 = c1.insert(conn(b, 2000, 2), Now::from_secs(10)).unwrap();
    assert!(c1.attach_template(id1, h));
    assert_eq!(shared.get(h).unwrap().conns, 2);
    assert_eq!(l1.get(DestId(2)).persistent, 0, "only the owner counts the template");

    // Lcore 0's connection expires at 30 s (+ jitter < 1 s); lcore 1's at 40 s.
    assert_eq!(c0.expire(Now::from_secs(31), 100, &snap), 1);
    assert_eq!(shared.get(h).unwrap().conns, 1);
    // The template's own timeout (60 s from its last use at 10 s) has passed at 75 s, but a
    // connection still uses it: the owner keeps it.
    assert_eq!(t0.expire(Now::from_secs(75), 100), 0);
    assert_eq!(c1.expire(Now::from_secs(41), 100, &snap), 1);
    assert_eq!(shared.get(h).unwrap().conns, 0);
    // Last connection gone at 41 s: the template lives until 101 s.
    let key = TemplateKey::new(&PERSIST, svc, a);
    assert_eq!(shared.get(h).unwrap().expires, Now::from_secs(41 + 60));
    assert_eq!(t0.expire(Now::from_secs(100), 100), 0);
    assert!(shared.find(&key, Now::from_secs(100)).is_some());
    // find restarted it (a new connection's look-up): now 160 s.
    assert_eq!(t0.expire(Now::from_secs(159), 100), 0);
    assert_eq!(t0.expire(Now::from_secs(160), 100), 1);
    assert_eq!(l0.get(DestId(2)).persistent, 0);
    assert!(shared.is_empty());
    assert!(shared.find(&key, Now::from_secs(161)).is_none());
}

#[test]
fn removing_a_connection_detaches_it_too() {
    let snap = snapshot();
    let svc = &snap.services[0];
    let shared = Arc::new(Templates::new(4, 1, 1));
    let loads = Arc::new(LoadTable::new(4));
    let mut lt = LcoreTemplates::new(shared.clone(), loads.clone(), 0);
    let mut c = table(0, loads.clone(), &shared);
    let a = Addr::v4([198, 18, 7, 7]);
    let Placed::New(0, h) = lt.place(&PERSIST, svc, 1, a, Now::from_secs(5), || Some(0)) else {
        panic!()
    };
    let id = c.insert(conn(a, 1, 0), Now::from_secs(5)).unwrap();
    assert!(c.attach_template(id, h));
    assert!(!c.attach_template(id, h), "a connection holds one template once");
    assert_eq!(shared.get(h).unwrap().conns, 1);
    c.remove(id, &snap).unwrap();
    assert_eq!(shared.get(h).unwrap().conns, 0);
    assert_eq!(lt.expire(Now::from_secs(65), 10), 1);
    assert_eq!(loads.get(DestId(0)).persistent, 0);
}
