//! rvs-schedule: the schedule stage, DPVS's `tcp_conn_sched` / `udp_conn_sched` and
//! `dp_vs_schedule` for packets that found no connection.
//!
//! For each packet lookup could not place, in arrival order:
//!
//! 1. A packet whose flow an earlier packet of this same vector is already creating (a
//!    retransmitted SYN, the ACK right behind the SYN) is a *follower*: it is recirculated
//!    (redirected to this lcore, which feeds it back in front of the next vector) so it meets
//!    the connection the first packet created, exactly as if the packets had been processed
//!    one at a time. This keeps the stage contract's rule that vectors change nothing.
//! 2. A packet to an address that is no VIP goes to the host path.
//! 3. TCP (`tcp_conn_sched`): only a SYN without ACK, FIN or RST may create a connection (ECE,
//!    CWR, PSH, URG do not matter). A non-SYN without a connection to a VIP, and a SYN to a VIP
//!    port with no service, are dropped when DPVS's global `defence_tcp_drop` is on, and
//!    otherwise go to the host path; both are counted.
//! 4. UDP (`udp_conn_sched`): any datagram to a service may create a connection; UDP to a VIP
//!    that has no UDP service is dropped when `defence_udp_drop` is on and the VIP has only TCP
//!    services, else goes to the host path.
//! 5. The service's scheduler (this lcore's instance) picks a destination; none means a drop
//!    with the resource cause, as `dp_vs_schedule` returning NULL does.
//!
//! The choice travels to conn-new in [`rvs_core::meta::PacketMeta::sched`].
//!
//! Not done yet: persistence templates (`-p`) and ICMP (echo to a VIP goes to the host path).

#![forbid(unsafe_code)]

use std::sync::Arc;

use rvs_conn::Tuple;
use rvs_core::addr::Proto;
use rvs_core::hash::mix64;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::SchedChoice;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Out, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};

rvs_core::labels! {
    /// Where schedule sends a packet.
    pub enum ScheduleNext {
        /// A destination was picked: create the connection.
        New = ("conn-new", "a destination was picked; conn-new creates the connection"),
    }
}

rvs_core::labels! {
    /// Why schedule drops.
    pub enum ScheduleDrop {
        /// The scheduler found no destination that can take the connection.
        NoDest = ("no_dest", "no destination can take the connection (all drained, overloaded or none)"),
        /// defence_tcp_drop: a non-SYN without a connection to a VIP.
        DefenceStray = ("defence_stray", "defence_tcp_drop: TCP packet other than a SYN with no connection"),
        /// defence_tcp_drop: a SYN to a VIP port with no service.
        DefenceNoService = ("defence_noserv", "defence_tcp_drop: SYN to a VIP port with no service"),
        /// defence_udp_drop: UDP to a VIP with only TCP services.
        DefenceUdp = ("defence_udp", "defence_udp_drop: UDP to a VIP that has only TCP services"),
        /// A flow the stage cannot place (not TCP or UDP) that is no host traffic either.
        Unsupported = ("unsupported", "protocol not load-balanced"),
    }
}

impl DropReason for ScheduleDrop {
    fn cause(self) -> Cause {
        match self {
            ScheduleDrop::NoDest => Cause::Resource,
            ScheduleDrop::DefenceStray | ScheduleDrop::DefenceNoService | ScheduleDrop::DefenceUdp => Cause::Defence,
            ScheduleDrop::Unsupported => Cause::NotSupported,
        }
    }
}

/// Packets schedule handed to the host path or recirculated, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleCounters {
    /// To an address that is no VIP.
    pub host_not_vip: u64,
    /// TCP other than a creating SYN, no connection, defence off.
    pub host_stray: u64,
    /// To a VIP port or protocol with no service, defence off.
    pub host_no_service: u64,
    /// ICMP to a VIP (answered by the host path).
    pub host_icmp: u64,
    /// Followers recirculated to meet the connection an earlier packet of the vector made.
    pub recirculated: u64,
    /// Destinations picked.
    pub scheduled: u64,
}

/// A set of tuples stamped with the vector they were added in, so it never needs clearing.
#[derive(Debug)]
struct Pending {
    slots: Box<[(u64, Tuple)]>,
    mask: usize,
    stamp: u64,
    used: usize,
}

impl Pending {
    fn new(cap_log2: u32) -> Self {
        let n = 1usize << cap_log2;
        Pending {
            slots: vec![(0, Tuple::default()); n].into_boxed_slice(),
            mask: n - 1,
            stamp: 1,
            used: 0,
        }
    }
    fn next_vector(&mut self) {
        self.stamp += 1;
        self.used = 0;
    }
    fn hash(t: &Tuple) -> usize {
        let k = t.saddr.0 as u64 ^ (t.daddr.0 as u64).rotate_left(17) ^ ((t.sport as u64) << 16 | t.dport as u64) << 32;
        mix64(k ^ (t.saddr.0 >> 64) as u64 ^ t.proto.number() as u64) as usize
    }
    fn contains(&self, t: &Tuple) -> bool {
        let mut i = Self::hash(t) & self.mask;
        loop {
            let (s, ref u) = self.slots[i];
            if s != self.stamp {
                return false;
            }
            if u == t {
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }
    /// Insert; false when the set is full (the caller then treats the flow as not pending,
    /// which only costs a duplicate-creation check in conn-new).
    fn insert(&mut self, t: Tuple) -> bool {
        if self.used * 2 >= self.slots.len() {
            return false;
        }
        let mut i = Self::hash(&t) & self.mask;
        loop {
            if self.slots[i].0 != self.stamp {
                self.slots[i] = (self.stamp, t);
                self.used += 1;
                return true;
            }
            if self.slots[i].1 == t {
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// One service's scheduler instance on this lcore.
#[derive(Debug)]
struct Instance {
    factory: Arc<dyn SchedulerFactory>,
    sched: Box<dyn Scheduler>,
}

/// The schedule stage of one lcore.
#[derive(Debug)]
pub struct Schedule {
    loads: Arc<LoadTable>,
    seed: u64,
    generation: Option<u64>,
    instances: Vec<Option<Instance>>,
    pending: Pending,
    counters: ScheduleCounters,
}

impl Schedule {
    /// A schedule stage reading this lcore's destination counters; `seed` seeds the
    /// schedulers' random choices (twos) per lcore.
    pub fn new(loads: Arc<LoadTable>, seed: u64) -> Self {
        Schedule {
            loads,
            seed,
            generation: None,
            instances: Vec::new(),
            pending: Pending::new(11),
            counters: ScheduleCounters::default(),
        }
    }

    /// Host-path and recirculation counts.
    pub fn counters(&self) -> ScheduleCounters {
        self.counters
    }

    /// Bring the per-lcore scheduler instances up to `snap` (off the packet path: only when
    /// the generation changed). An instance whose service kept its scheduler is refreshed in
    /// place, so rr positions and caches survive destination changes.
    pub fn sync(&mut self, snap: &Snapshot, lcore: u16) {
        if self.generation == Some(snap.generation) {
            return;
        }
        let mut old: Vec<Option<Instance>> = std::mem::take(&mut self.instances);
        self.instances = snap
            .services
            .iter()
            .enumerate()
            .map(|(i, svc)| {
                let kept = old
                    .get_mut(i)
                    .and_then(|o| o.take())
                    .filter(|o| Arc::ptr_eq(&o.factory, &svc.sched));
                let mut inst = kept.unwrap_or_else(|| Instance {
                    factory: svc.sched.clone(),
                    sched: svc
                        .sched
                        .instance(lcore, mix64(self.seed ^ ((lcore as u64) << 32) ^ i as u64)),
                });
                inst.sched.refresh(svc);
                Some(inst)
            })
            .collect();
        self.generation = Some(snap.generation);
    }

    fn place<M: Mbuf>(
        &mut self,
        cx: &StageCx<'_>,
        mut p: rvs_core::stage::Packet<M>,
        out: &mut Out<'_, M, ScheduleNext, ScheduleDrop>,
    ) {
        let snap = cx.snapshot;
        let m = &p.meta;
        let Some(tuple) = Tuple::of(m) else {
            // Parse only passes protocols it knows; anything else is not ours to balance.
            self.counters.host_not_vip += 1;
            out.host(p);
            return;
        };
        if self.pending.contains(&tuple) {
            self.counters.recirculated += 1;
            out.redirect(cx.lcore, p);
            return;
        }
        let Some(vip) = snap.vip(m.daddr) else {
            self.counters.host_not_vip += 1;
            out.host(p);
            return;
        };
        let svc = match tuple.proto {
            Proto::Tcp => {
                if !m.tcp_flags.may_create() {
                    if snap.defence.tcp_drop {
                        out.drop(ScheduleDrop::DefenceStray, p);
                    } else {
                        self.counters.host_stray += 1;
                        out.host(p);
                    }
                    return;
                }
                match snap.find(Proto::Tcp, m.daddr, m.dport) {
                    Some(s) => s,
                    None => {
                        if snap.defence.tcp_drop {
                            out.drop(ScheduleDrop::DefenceNoService, p);
                        } else {
                            self.counters.host_no_service += 1;
                            out.host(p);
                        }
                        return;
                    }
                }
            }
            Proto::Udp => match snap.find(Proto::Udp, m.daddr, m.dport) {
                Some(s) => s,
                None => {
                    if snap.defence.udp_drop && vip.tcp && !vip.udp {
                        out.drop(ScheduleDrop::DefenceUdp, p);
                    } else {
                        self.counters.host_no_service += 1;
                        out.host(p);
                    }
                    return;
                }
            },
            Proto::Icmp | Proto::Icmp6 => {
                self.counters.host_icmp += 1;
                out.host(p);
                return;
            }
        };
        let Some(Some(inst)) = self.instances.get_mut(svc.index as usize) else {
            out.drop(ScheduleDrop::Unsupported, p);
            return;
        };
        let data = p.mbuf.data();
        let off = m.payload_off() as usize;
        let end = (m.l3_off as usize + m.l3_len as usize).min(data.len());
        let payload = data.get(off..end).unwrap_or(&[]);
        let flow = Flow {
            af: m.af,
            proto: tuple.proto,
            saddr: m.saddr,
            daddr: m.daddr,
            sport: m.sport,
            dport: m.dport,
            payload,
        };
        let scx = SchedCx {
            svc,
            loads: &self.loads,
            now: cx.now,
            lcore: cx.lcore,
        };
        match inst.sched.pick(&scx, &flow) {
            Some(i) if i < svc.dests.len() => {
                self.counters.scheduled += 1;
                p.meta.sched = SchedChoice {
                    svc: svc.index,
                    dest: i as u32,
                };
                self.pending.insert(tuple);
                out.next(ScheduleNext::New, p);
            }
            _ => out.drop(ScheduleDrop::NoDest, p),
        }
    }
}

impl<M: Mbuf> Stage<M> for Schedule {
    type Next = ScheduleNext;
    type Drop = ScheduleDrop;
    const NAME: &'static str = "schedule";

    fn process(
        &mut self,
        cx: &StageCx<'_>,
        input: &mut PacketVec<M>,
        out: &mut Out<'_, M, ScheduleNext, ScheduleDrop>,
    ) {
        self.sync(cx.snapshot, cx.lcore);
        self.pending.next_vector();
        for p in input.drain() {
            self.place(cx, p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::addr::Addr;
    use rvs_core::mbuf::{HeapMbuf, HeapPool};
    use rvs_core::meta::{PacketMeta, TcpFlags};
    use rvs_core::sched::SchedulerFactory;
    use rvs_core::service::{Defence, Dest, DestId, Forward, Service, ServiceKey};
    use rvs_core::stage::{Exits, Node, Packet};
    use rvs_core::time::Now;

    /// The first eligible destination: enough to see which branch a packet took.
    #[derive(Debug)]
    struct First;
    impl Scheduler for First {
        fn name(&self) -> &str {
            "first"
        }
        fn pick(&mut self, cx: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
            (0..cx.dests().len()).find(|&i| cx.eligible(i))
        }
    }
    impl SchedulerFactory for First {
        fn name(&self) -> &str {
            "first"
        }
        fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
            Box::new(First)
        }
    }

    const VIP: Addr = Addr::v4([198, 18, 0, 100]);

    fn snapshot(defence: Defence, weight: u32) -> Snapshot {
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: VIP,
            port: 80,
        };
        let mut s = Service::new(key, Forward::Nat, Arc::new(First));
        let mut d = Dest::new(DestId(0), Addr::v4([198, 18, 1, 11]), 8080);
        d.fwd = Forward::Nat;
        d.weight = weight;
        s.dests = vec![d].into();
        Snapshot::build(1, 1, defence, vec![s]).unwrap()
    }

    fn pkt(proto: Proto, daddr: Addr, dport: u16, flags: u8, sport: u16) -> Packet<HeapMbuf> {
        let mut p = Packet::new(HeapMbuf::from_bytes(&[0; 64]));
        p.meta = PacketMeta {
            proto: proto.number(),
            saddr: Addr::v4([198, 18, 5, 5]),
            daddr,
            sport,
            dport,
            tcp_flags: TcpFlags(flags),
            l3_off: 14,
            l4_off: 34,
            l4_hdr_len: 20,
            l3_len: 40,
            ..PacketMeta::new()
        };
        p
    }

    struct Run {
        to_new: Vec<PacketMeta>,
        host: usize,
        redirected: usize,
        report: rvs_core::counters::StageReport,
        counters: ScheduleCounters,
    }

    fn run(snap: &Snapshot, pkts: Vec<Packet<HeapMbuf>>) -> Run {
        let mut node = Node::new(Schedule::new(Arc::new(LoadTable::new(4)), 7), 64);
        let mut exits = Exits::new(1, 1, 64);
        let mut pool = HeapPool::new(8);
        let mut input = PacketVec::with_capacity(64);
        for p in pkts {
            input.push(p).unwrap();
        }
        let cx = StageCx {
            now: Now(0),
            lcore: 0,
            snapshot: snap,
        };
        node.run(&cx, &mut input, &mut exits, &mut pool);
        let to_new = node.queue(ScheduleNext::New).drain().map(|p| p.meta).collect();
        Run {
            to_new,
            host: exits.host.drain().count(),
            redirected: exits.redirect[0].drain().count(),
            report: node.stats().report(),
            counters: node.stage.counters(),
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;

    #[test]
    fn only_a_bare_syn_creates() {
        let snap = snapshot(Defence::default(), 1);
        for (flags, creates) in [
            (SYN, true),
            (SYN | TcpFlags::ECE | TcpFlags::CWR, true),
            (SYN | TcpFlags::PSH | TcpFlags::URG, true),
            (SYN | ACK, false),
            (SYN | TcpFlags::FIN, false),
            (SYN | TcpFlags::RST, false),
            (ACK, false),
        ] {
            let r = run(&snap, vec![pkt(Proto::Tcp, VIP, 80, flags, 1000)]);
            assert_eq!(r.to_new.len(), creates as usize, "flags {flags:#x}");
            assert_eq!(
                r.host, !creates as usize,
                "flags {flags:#x}: defence off sends strays to the host"
            );
        }
    }

    #[test]
    fn defence_drops_strays_and_syns_without_service() {
        let on = snapshot(
            Defence {
                tcp_drop: true,
                udp_drop: false,
            },
            1,
        );
        let r = run(
            &on,
            vec![pkt(Proto::Tcp, VIP, 80, ACK, 1000), pkt(Proto::Tcp, VIP, 81, SYN, 1001)],
        );
        assert_eq!((r.to_new.len(), r.host), (0, 0));
        assert_eq!(r.report.dropped("defence_stray"), 1);
        assert_eq!(r.report.dropped("defence_noserv"), 1);

        let off = snapshot(Defence::default(), 1);
        let r = run(
            &off,
            vec![pkt(Proto::Tcp, VIP, 80, ACK, 1000), pkt(Proto::Tcp, VIP, 81, SYN, 1001)],
        );
        assert_eq!(r.host, 2);
        assert_eq!(r.report.total_drops(), 0);
        assert_eq!((r.counters.host_stray, r.counters.host_no_service), (1, 1));
    }

    #[test]
    fn traffic_to_other_addresses_goes_to_the_host() {
        let snap = snapshot(
            Defence {
                tcp_drop: true,
                udp_drop: true,
            },
            1,
        );
        let r = run(&snap, vec![pkt(Proto::Tcp, Addr::v4([198, 18, 0, 1]), 80, SYN, 1000)]);
        assert_eq!((r.host, r.counters.host_not_vip, r.report.total_drops()), (1, 1, 0));
    }

    #[test]
    fn udp_defence_applies_only_to_tcp_only_vips() {
        let on = snapshot(
            Defence {
                tcp_drop: false,
                udp_drop: true,
            },
            1,
        );
        let r = run(&on, vec![pkt(Proto::Udp, VIP, 53, 0, 1000)]);
        assert_eq!(r.report.dropped("defence_udp"), 1);
        let off = snapshot(Defence::default(), 1);
        let r = run(&off, vec![pkt(Proto::Udp, VIP, 53, 0, 1000)]);
        assert_eq!((r.host, r.report.total_drops()), (1, 0));
    }

    #[test]
    fn no_destination_is_a_resource_drop() {
        let snap = snapshot(Defence::default(), 0);
        let r = run(&snap, vec![pkt(Proto::Tcp, VIP, 80, SYN, 1000)]);
        assert_eq!(r.report.dropped("no_dest"), 1);
        let d = r.report.drops.iter().find(|d| d.reason == "no_dest").unwrap();
        assert_eq!(d.cause, "resource");
    }

    #[test]
    fn followers_in_one_vector_are_recirculated_not_dropped_or_duplicated() {
        let snap = snapshot(
            Defence {
                tcp_drop: true,
                udp_drop: false,
            },
            1,
        );
        let r = run(
            &snap,
            vec![
                pkt(Proto::Tcp, VIP, 80, SYN, 1000),
                pkt(Proto::Tcp, VIP, 80, SYN, 1000),
                pkt(Proto::Tcp, VIP, 80, ACK, 1000),
                pkt(Proto::Tcp, VIP, 80, SYN, 1001),
            ],
        );
        assert_eq!(r.to_new.len(), 2, "one creation per flow");
        assert_eq!(r.to_new[0].sport, 1000);
        assert_eq!(r.to_new[1].sport, 1001);
        assert_eq!(r.to_new[0].sched, SchedChoice { svc: 0, dest: 0 });
        assert_eq!(r.redirected, 2);
        assert_eq!(r.report.total_drops(), 0);
        assert_eq!(r.counters.recirculated, 2);
    }
}
