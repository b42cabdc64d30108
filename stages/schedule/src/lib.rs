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
//! 2. A packet to an address that is no VIP goes to the host path, unless a match service
//!    takes it: a TCP SYN (the `tcp_conn_sched` rule below) or a UDP datagram to no VIP is
//!    offered to [`Snapshot::find_match`] (protocol, source and destination address and port
//!    ranges, receiving port `mbuf.port()`, output interface by route), DPVS's
//!    lowest-priority `__dp_vs_service_match_get`; a match is scheduled like any service
//!    (step 5 and 6: its "destinations" are the SNAT source addresses, picked by its
//!    scheduler) and counted [`ScheduleCounters::matched`]. Other packets to no VIP, and
//!    those no match service takes, go to the host path as before. The defence switches
//!    concern VIPs only and leave this traffic alone, as in DPVS.
//! 3. TCP (`tcp_conn_sched`): only a SYN without ACK, FIN or RST may create a connection (ECE,
//!    CWR, PSH, URG do not matter). A non-SYN without a connection to a VIP, and a SYN to a VIP
//!    port with no service, are dropped when DPVS's global `defence_tcp_drop` is on, and
//!    otherwise go to the host path; both are counted.
//! 4. UDP (`udp_conn_sched`): any datagram to a service may create a connection; UDP to a VIP
//!    that has no UDP service is dropped when `defence_udp_drop` is on and the VIP has only TCP
//!    services, else goes to the host path.
//! 5. A persistent service (`-p TIMEOUT -M NETMASK`) looks up its template first, IPVS's
//!    `ip_vs_sched_persist` (see [`rvs_conn::persist`] for the shared table): a live template
//!    whose destination can take new connections (available, not inhibited, weight > 0) decides
//!    and the scheduler is not asked; a template whose destination cannot is dropped and the
//!    scheduler picks; a pick makes a template pointing at it, counted `persistent` on that
//!    destination in this lcore's load table. A full template table means the connection is
//!    scheduled without a template (counted). The handle travels to conn-new in
//!    [`rvs_core::meta::PacketMeta::template`]; conn-new attaches the connection to it. This
//!    lcore's templates are freed by [`Stage::poll`] once due (no connection, past their
//!    timeout), a bounded number per call.
//! 6. The service's scheduler (this lcore's instance) picks a destination; none means a drop
//!    with the resource cause, as `dp_vs_schedule` returning NULL does.
//!
//! The choice travels to conn-new in [`rvs_core::meta::PacketMeta::sched`].
//!
//! Persistence needs the global table wired in: [`Schedule::with_templates`] here and
//! [`rvs_conn::LcoreConns::set_templates`] on this lcore's connection table, the same
//! `Arc<Templates>` on every lcore. Without it a persistent service is scheduled as a plain
//! one and [`ScheduleCounters::persist_unwired`] counts it.
//!
//! ICMP (`icmp_conn_sched`): an ICMP or ICMPv6 echo request with no connection, to a VIP
//! that has an ICMP service of its own protocol (looked up with port 0, as DPVS's
//! `dp_vs_service_lookup(af, proto, daddr, 0, ...)`), or to no VIP and taken by an ICMP match
//! (SNAT) service, is scheduled like a UDP datagram (step 5 and 6; followers of one vector
//! recirculated). The echo identifier is the flow's port on both sides (parse reads it into
//! both), so one identifier of one client is one connection. (DPVS keys ICMP by
//! `<id, type << 8 | code>`, the type inverted for replies; rvs keys by the identifier alone,
//! so a client's echo reply with the identifier of its own running ping joins that flow.) Every
//! other ICMP and ICMPv6 that lookup could not match (lookup passes matching errors straight to
//! xmit) -- echo to a VIP without an ICMP service or to an interface address, stray replies,
//! unmatched errors, neighbour discovery -- goes on to [`ScheduleNext::Local`], the ARP/ND
//! stage (`rvs_xmit::arp`), which answers echo to VIPs and local addresses and handles
//! neighbour discovery, and hands the rest to the host path. With [`Schedule::icmp_to_local`]
//! off those go to the host path here, as DPVS hands them to its IP stack.
//!
//! | issue-4 feature | shown by |
//! |---|---|
//! | UDP: any datagram to a UDP service creates, followers in one vector recirculated | `tests::udp_datagrams_create_and_followers_recirculate` |
//! | persistence: clients of one `-M` group get one destination, other groups are scheduled | `tests::persistence_groups_clients_by_netmask` |
//! | persistence: a drained (weight 0) template destination makes a fresh pick and template | `tests::drained_template_destination_is_repicked` |
//! | persistence: a full template table schedules normally, counted | `tests::full_template_table_schedules_without_template` |
//! | persistence: templates freed by poll after their timeout, `persistent` counter follows | `tests::templates_expire_in_poll_and_release_the_counter` |
//! | port-zero persistent service: one template for every port of the VIP | `tests::port_zero_service_shares_one_template_across_ports` |
//! | end to end with lookup and conn-new (parse-built packets) | `rvs-conn-new` `tests/persist.rs`, `tests/udp.rs` |
//! | SNAT match services: SYN and UDP to no VIP scheduled over the SNAT addresses, strays and unmatched to the host, VIP services first | `tests::match_services_take_traffic_to_no_vip` |
//! | ICMP: echo requests to an ICMP service (port 0) and to an ICMP match service scheduled, followers recirculated, replies and other VIPs to the local stage | `tests::icmp_echo_requests_to_an_icmp_service_are_scheduled` |
//! | ICMP echo end to end (FNAT local-port identifiers, NAT, errors quoting a forwarded echo) | `rvs-conn-new` `tests/icmp.rs`, `rvs-testkit` `tests/replay_icmp_echo.rs` |
//!
//! Measured cost per packet through the stage (vectors of 32, heap buffers): rr 614, sh 638,
//! mh 664 instructions, wlc 937 at 8 destinations and about 49 more per destination at 256
//! (`benches/iai-guard`, baselines in benches/iai-baselines.json); about 107-185 ns for
//! rr/sh/mh on the shared 2-vCPU machine under load (`cargo bench -p rvs-benches --bench
//! schedule`).

#![forbid(unsafe_code)]

use std::sync::Arc;

use rvs_conn::{LcoreTemplates, NO_TEMPLATE, Placed, Templates, Tuple};
use rvs_core::addr::Proto;
use rvs_core::hash::mix64;
use rvs_core::load::{Counter, LoadTable};
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::SchedChoice;
use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Out, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};
use rvs_core::wire::{icmp, icmpv6};

rvs_core::labels! {
    /// Where schedule sends a packet.
    pub enum ScheduleNext {
        /// A destination was picked: create the connection.
        New = ("conn-new", "a destination was picked; conn-new creates the connection"),
        /// ICMP/ICMPv6 with no connection: for the ARP/ND stage (echo, neighbour discovery).
        Local = ("local", "ICMP/ICMPv6 with no connection, for the ARP/ND stage (echo, neighbour discovery)"),
    }
}

rvs_core::labels! {
    /// Why schedule drops.
    pub enum ScheduleDrop {
        /// The scheduler found no destination that can take the connection.
        NoDest = ("no_dest", "no destination can take the connection (all drained, overloaded or none)"),
        /// The picked destination is at its share of `max_conn` (`dp_vs_conn_bind_dest`).
        Overload = ("overload", "the picked destination is at its connection limit (max_conn); flagged overloaded"),
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
            ScheduleDrop::Overload => Cause::Overload,
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
    /// ICMP to a VIP handed to the host path ([`Schedule::icmp_to_local`] off).
    pub host_icmp: u64,
    /// ICMP/ICMPv6 sent on to [`ScheduleNext::Local`].
    pub local_icmp: u64,
    /// Followers recirculated to meet the connection an earlier packet of the vector made.
    pub recirculated: u64,
    /// Destinations chosen (by the scheduler or a persistence template).
    pub scheduled: u64,
    /// Packets to no VIP that a match (SNAT) service took (then scheduled or dropped).
    pub matched: u64,
    /// Persistent services: a live template chose the destination.
    pub persist_hit: u64,
    /// Persistent services: the scheduler picked and a template was made.
    pub persist_new: u64,
    /// Persistent services: a template's destination could take no new connection; dropped.
    pub persist_repick: u64,
    /// Persistent services: scheduled without a template (the template table was full).
    pub persist_no_template: u64,
    /// Persistent services scheduled as plain ones because no template table is wired in.
    pub persist_unwired: u64,
    /// This lcore's templates freed after their timeout.
    pub persist_expired: u64,
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
    /// Send ICMP/ICMPv6 without a connection to [`ScheduleNext::Local`] (on by default);
    /// off, ICMP to a VIP goes to the host path and ICMP to other addresses too.
    pub icmp_to_local: bool,
    loads: Arc<LoadTable>,
    seed: u64,
    generation: Option<u64>,
    instances: Vec<Option<Instance>>,
    pending: Pending,
    counters: ScheduleCounters,
    templates: Option<LcoreTemplates>,
}

/// Templates freed per poll at most (the rest wait for the next poll).
pub const TEMPLATE_EXPIRE_BUDGET: usize = 64;

impl Schedule {
    /// A schedule stage reading this lcore's destination counters; `seed` seeds the
    /// schedulers' random choices (twos) per lcore.
    pub fn new(loads: Arc<LoadTable>, seed: u64) -> Self {
        Schedule {
            icmp_to_local: true,
            loads,
            seed,
            generation: None,
            instances: Vec::new(),
            pending: Pending::new(11),
            counters: ScheduleCounters::default(),
            templates: None,
        }
    }

    /// Use the global persistence table `t` (the same `Arc` as every lcore's, and as this
    /// lcore's [`rvs_conn::LcoreConns::set_templates`]). Allocates this lcore's expiry heap.
    pub fn with_templates(mut self, t: Arc<Templates>) -> Self {
        self.templates = Some(LcoreTemplates::new(t, self.loads.clone(), 0));
        self
    }

    /// This lcore's side of the template table, if wired.
    pub fn templates(&self) -> Option<&LcoreTemplates> {
        self.templates.as_ref()
    }

    /// Free this lcore's due templates (what [`Stage::poll`] does), at most `budget`.
    pub fn expire_templates(&mut self, now: rvs_core::time::Now, lcore: u16, budget: usize) -> usize {
        let Some(lt) = self.templates.as_mut() else { return 0 };
        lt.set_lcore(lcore);
        let n = lt.expire(now, budget);
        self.counters.persist_expired += n as u64;
        n
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
        p: rvs_core::stage::Packet<M>,
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
        if matches!(tuple.proto, Proto::Icmp | Proto::Icmp6) {
            self.place_icmp(cx, p, tuple, out);
            return;
        }
        if self.pending.contains(&tuple) {
            self.counters.recirculated += 1;
            out.redirect(cx.lcore, p);
            return;
        }
        let Some(vip) = snap.vip(m.daddr) else {
            // No VIP: a match (SNAT) service may take it, lowest priority as in DPVS's
            // `dp_vs_service_lookup`; only a packet that may create a connection asks.
            let creates = match tuple.proto {
                Proto::Tcp => m.tcp_flags.may_create(),
                Proto::Udp => true,
                Proto::Icmp | Proto::Icmp6 => false,
            };
            let found = if creates && snap.has_match_services() {
                snap.find_match(tuple.proto, m.saddr, m.daddr, m.sport, m.dport, p.mbuf.port())
            } else {
                None
            };
            let Some(svc) = found else {
                self.counters.host_not_vip += 1;
                out.host(p);
                return;
            };
            self.counters.matched += 1;
            self.schedule(cx, p, tuple, svc, out);
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
        self.schedule(cx, p, tuple, svc, out);
    }

    /// ICMP/ICMPv6 that found no connection, DPVS's `icmp_conn_sched`: an echo request to a
    /// VIP with an ICMP service of its own (found by protocol, VIP and port 0, as
    /// `dp_vs_service_lookup(af, proto, daddr, 0, ...)`), or to no VIP and taken by an ICMP
    /// match (SNAT) service, is scheduled like a UDP datagram (followers of one vector
    /// recirculated); anything else goes where it went before there were ICMP services: the
    /// local stage (echo answered by the balancer, neighbour discovery), or the host path.
    #[inline(never)]
    fn place_icmp<M: Mbuf>(
        &mut self,
        cx: &StageCx<'_>,
        p: rvs_core::stage::Packet<M>,
        tuple: Tuple,
        out: &mut Out<'_, M, ScheduleNext, ScheduleDrop>,
    ) {
        let snap = cx.snapshot;
        let m = &p.meta;
        let request = match tuple.proto {
            Proto::Icmp => m.icmp_type == icmp::types::ECHO_REQUEST,
            _ => m.icmp_type == icmpv6::types::ECHO_REQUEST,
        };
        let vip = snap.vip(m.daddr);
        if request {
            let (svc, matched) = match vip {
                Some(_) => (snap.find(tuple.proto, m.daddr, 0), false),
                None if snap.has_match_services() => (
                    snap.find_match(tuple.proto, m.saddr, m.daddr, m.sport, m.dport, p.mbuf.port()),
                    true,
                ),
                None => (None, false),
            };
            if let Some(svc) = svc {
                if self.pending.contains(&tuple) {
                    self.counters.recirculated += 1;
                    out.redirect(cx.lcore, p);
                    return;
                }
                self.counters.matched += matched as u64;
                self.schedule(cx, p, tuple, svc, out);
                return;
            }
        }
        if self.icmp_to_local {
            self.counters.local_icmp += 1;
            out.next(ScheduleNext::Local, p);
        } else if vip.is_some() {
            self.counters.host_icmp += 1;
            out.host(p);
        } else {
            self.counters.host_not_vip += 1;
            out.host(p);
        }
    }

    /// Pick a destination of `svc` for `p` (through its persistence template if any) and
    /// send it on to conn-new, or drop it when none can take it.
    fn schedule<M: Mbuf>(
        &mut self,
        cx: &StageCx<'_>,
        mut p: rvs_core::stage::Packet<M>,
        tuple: Tuple,
        svc: &Arc<rvs_core::service::Service>,
        out: &mut Out<'_, M, ScheduleNext, ScheduleDrop>,
    ) {
        let snap = cx.snapshot;
        let m = &p.meta;
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
        let sched = &mut inst.sched;
        let chosen = match (&svc.persistence, self.templates.as_mut()) {
            (Some(pers), Some(lt)) => {
                lt.set_lcore(cx.lcore);
                let repicks = lt.repicks();
                let placed = lt.place(pers, svc, snap.generation, m.saddr, cx.now, || sched.pick(&scx, &flow));
                self.counters.persist_repick += lt.repicks() - repicks;
                match placed {
                    Placed::Hit(i, h) => {
                        self.counters.persist_hit += 1;
                        Some((i, h))
                    }
                    Placed::New(i, h) => {
                        self.counters.persist_new += 1;
                        Some((i, h))
                    }
                    Placed::NoTemplate(i) => {
                        self.counters.persist_no_template += 1;
                        Some((i, NO_TEMPLATE))
                    }
                    Placed::NoDest => None,
                }
            }
            (persistence, _) => {
                if persistence.is_some() {
                    self.counters.persist_unwired += 1;
                }
                sched.pick(&scx, &flow).map(|i| (i, NO_TEMPLATE))
            }
        };
        match chosen {
            Some((i, template)) if i < svc.dests.len() => {
                // Bind now, as `dp_vs_schedule` does right after the pick: the seed's
                // `dp_vs_conn_bind_dest` admission (at max_conn: refused, overload flagged)
                // and the count, so the next pick of this vector sees this connection as
                // one-at-a-time processing would. conn-new adopts the count.
                let dest = &svc.dests[i];
                if !self.loads.admit(dest, snap.lcores) {
                    out.drop(ScheduleDrop::Overload, p);
                    return;
                }
                self.loads.inc(dest.id, Counter::Inactive);
                self.counters.scheduled += 1;
                p.meta.sched = SchedChoice {
                    svc: svc.index,
                    dest: i as u32,
                    reserved: true,
                };
                p.meta.template = template;
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

    /// Free this lcore's persistence templates that are due.
    fn poll(&mut self, cx: &StageCx<'_>, _out: &mut Out<'_, M, ScheduleNext, ScheduleDrop>) {
        self.expire_templates(cx.now, cx.lcore, TEMPLATE_EXPIRE_BUDGET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::addr::Addr;
    use rvs_core::mbuf::{HeapMbuf, HeapPool};
    use rvs_core::meta::{PacketMeta, TcpFlags};
    use rvs_core::sched::SchedulerFactory;
    use rvs_core::service::{Defence, Dest, DestId, Forward, MatchRange, MatchSpec, Service, ServiceKey};
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
        assert_eq!(
            r.to_new[0].sched,
            SchedChoice {
                svc: 0,
                dest: 0,
                reserved: true
            }
        );
        assert_eq!(r.redirected, 2);
        assert_eq!(r.report.total_drops(), 0);
        assert_eq!(r.counters.recirculated, 2);
    }

    // ---- UDP and persistence ----

    /// Round robin over eligible destinations: spreads consecutive flows, so a test sees
    /// when persistence (not the scheduler) kept two flows together.
    #[derive(Debug, Default)]
    struct Rr(usize);
    impl Scheduler for Rr {
        fn name(&self) -> &str {
            "rr"
        }
        fn pick(&mut self, cx: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
            let n = cx.dests().len();
            for k in 0..n {
                let i = (self.0 + k) % n;
                if cx.eligible(i) {
                    self.0 = i + 1;
                    return Some(i);
                }
            }
            None
        }
    }
    #[derive(Debug)]
    struct RrFactory;
    impl SchedulerFactory for RrFactory {
        fn name(&self) -> &str {
            "rr"
        }
        fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
            Box::new(Rr::default())
        }
    }

    use rvs_conn::Templates;
    use rvs_core::service::Persistence;

    const P24: Persistence = Persistence {
        timeout_secs: 60,
        netmask_v4: 24,
        netmask_v6: 64,
    };

    fn rr_snapshot(generation: u64, proto: Proto, port: u16, weights: &[u32], p: Option<Persistence>) -> Snapshot {
        let key = ServiceKey { proto, vip: VIP, port };
        let mut s = Service::new(key, Forward::Nat, Arc::new(RrFactory));
        s.dests = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut d = Dest::new(DestId(i as u32), Addr::v4([198, 18, 1, 10 + i as u8]), 8080);
                d.fwd = Forward::Nat;
                d.weight = *w;
                d
            })
            .collect();
        s.persistence = p;
        Snapshot::build(generation, 1, Defence::default(), vec![s]).unwrap()
    }

    fn from(client: [u8; 4], proto: Proto, dport: u16, sport: u16) -> Packet<HeapMbuf> {
        let flags = if proto == Proto::Tcp { SYN } else { 0 };
        let mut p = pkt(proto, VIP, dport, flags, sport);
        p.meta.saddr = Addr::v4(client);
        p
    }

    /// A schedule node that lives across vectors, with its template table and load table.
    struct Lcore {
        node: Node<HeapMbuf, Schedule>,
        templates: Arc<Templates>,
        loads: Arc<LoadTable>,
    }

    impl Lcore {
        fn new(capacity: usize) -> Self {
            let loads = Arc::new(LoadTable::new(4));
            let templates = Arc::new(Templates::new(capacity, 1, 3));
            Lcore {
                node: Node::new(Schedule::new(loads.clone(), 7).with_templates(templates.clone()), 64),
                templates,
                loads,
            }
        }
        fn plain() -> Self {
            let loads = Arc::new(LoadTable::new(4));
            Lcore {
                node: Node::new(Schedule::new(loads.clone(), 7), 64),
                templates: Arc::new(Templates::new(1, 1, 3)),
                loads,
            }
        }
        fn run(&mut self, snap: &Snapshot, now: Now, pkts: Vec<Packet<HeapMbuf>>) -> Vec<PacketMeta> {
            let mut exits = Exits::new(1, 1, 64);
            let mut pool = HeapPool::new(8);
            let mut input = PacketVec::with_capacity(64);
            for p in pkts {
                input.push(p).unwrap();
            }
            let cx = StageCx {
                now,
                lcore: 0,
                snapshot: snap,
            };
            self.node.poll(&cx, &mut exits, &mut pool);
            self.node.run(&cx, &mut input, &mut exits, &mut pool);
            self.node.queue(ScheduleNext::New).drain().map(|p| p.meta).collect()
        }
        fn persistent(&self, d: u32) -> u32 {
            self.loads.get(DestId(d)).persistent
        }
    }

    fn dests(m: &[PacketMeta]) -> Vec<u32> {
        m.iter().map(|m| m.sched.dest).collect()
    }

    #[test]
    fn udp_datagrams_create_and_followers_recirculate() {
        let snap = rr_snapshot(1, Proto::Udp, 53, &[1, 1], None);
        let r = run(
            &snap,
            vec![
                from([198, 18, 5, 5], Proto::Udp, 53, 1000),
                from([198, 18, 5, 5], Proto::Udp, 53, 1000),
                from([198, 18, 5, 5], Proto::Udp, 53, 1001),
                from([198, 18, 5, 5], Proto::Udp, 54, 1002),
            ],
        );
        // Any datagram may create (no flag rule); the second of a flow follows the first; a
        // port without a UDP service goes to the host.
        assert_eq!(r.to_new.len(), 2);
        assert_eq!((r.to_new[0].sport, r.to_new[1].sport), (1000, 1001));
        assert_eq!(dests(&r.to_new), vec![0, 1]);
        assert_eq!((r.redirected, r.host), (1, 1));
        assert!(r.to_new.iter().all(|m| m.template == NO_TEMPLATE));
    }

    #[test]
    fn persistence_groups_clients_by_netmask() {
        let clients = [[198, 18, 5, 5], [198, 18, 5, 77], [198, 18, 6, 1], [198, 18, 5, 200]];
        let pkts = || {
            clients
                .iter()
                .enumerate()
                .map(|(i, c)| from(*c, Proto::Tcp, 80, 1000 + i as u16))
                .collect::<Vec<_>>()
        };
        // Oracle: without persistence rr spreads the four flows.
        let plain = rr_snapshot(1, Proto::Tcp, 80, &[1, 1, 1], None);
        assert_eq!(dests(&Lcore::plain().run(&plain, Now(0), pkts())), vec![0, 1, 2, 0]);
        // With -p 60 -M 24: the 198.18.5.0/24 clients share the first pick; 198.18.6.1 is
        // scheduled (the scheduler's next choice).
        let snap = rr_snapshot(1, Proto::Tcp, 80, &[1, 1, 1], Some(P24));
        let mut l = Lcore::new(16);
        let out = l.run(&snap, Now(0), pkts());
        assert_eq!(dests(&out), vec![0, 0, 1, 0]);
        assert_ne!(out[0].template, NO_TEMPLATE);
        assert_eq!(out[0].template, out[1].template);
        assert_eq!(out[0].template, out[3].template);
        assert_ne!(out[0].template, out[2].template);
        let c = l.node.stage.counters();
        assert_eq!((c.persist_new, c.persist_hit, c.scheduled), (2, 2, 4));
        assert_eq!((l.persistent(0), l.persistent(1), l.persistent(2)), (1, 1, 0));
        assert_eq!(l.templates.len(), 2);
        // An IPv4 /32 mask keeps clients apart.
        let p32 = Persistence { netmask_v4: 32, ..P24 };
        let mut l = Lcore::new(16);
        let out = l.run(&rr_snapshot(1, Proto::Tcp, 80, &[1, 1, 1], Some(p32)), Now(0), pkts());
        assert_eq!(dests(&out), vec![0, 1, 2, 0]);
    }

    #[test]
    fn drained_template_destination_is_repicked() {
        let mut l = Lcore::new(16);
        let snap = rr_snapshot(1, Proto::Tcp, 80, &[1, 1], Some(P24));
        let first = l.run(&snap, Now::from_secs(1), vec![from([198, 18, 5, 5], Proto::Tcp, 80, 1)]);
        assert_eq!(dests(&first), vec![0]);
        // Destination 0 drained (weight 0): the template is dropped, the scheduler picks 1,
        // and a new template points there.
        let drained = rr_snapshot(2, Proto::Tcp, 80, &[0, 1], Some(P24));
        let again = l.run(
            &drained,
            Now::from_secs(2),
            vec![from([198, 18, 5, 6], Proto::Tcp, 80, 2)],
        );
        assert_eq!(dests(&again), vec![1]);
        assert_ne!(again[0].template, first[0].template);
        assert_eq!(l.node.stage.counters().persist_repick, 1);
        assert_eq!(
            l.templates.get(first[0].template).map(|t| t.dest),
            Some(DestId(0)),
            "kept until freed"
        );
        // The next client of the group follows the new template.
        let third = l.run(
            &drained,
            Now::from_secs(3),
            vec![from([198, 18, 5, 7], Proto::Tcp, 80, 3)],
        );
        assert_eq!((dests(&third), third[0].template), (vec![1], again[0].template));
        // The dropped template has no connection: its owner frees it at its next check
        // (its timeout from creation), and destination 0's persistent count goes.
        assert_eq!(l.persistent(0), 1);
        l.run(&drained, Now::from_secs(61), vec![]);
        assert_eq!((l.persistent(0), l.persistent(1)), (0, 1));
        assert_eq!(l.templates.get(first[0].template), None);
    }

    #[test]
    fn full_template_table_schedules_without_template() {
        let mut l = Lcore::new(1);
        let snap = rr_snapshot(1, Proto::Tcp, 80, &[1, 1], Some(P24));
        let out = l.run(
            &snap,
            Now(0),
            vec![
                from([198, 18, 5, 5], Proto::Tcp, 80, 1),
                from([198, 18, 6, 5], Proto::Tcp, 80, 2),
                from([198, 18, 6, 6], Proto::Tcp, 80, 3),
            ],
        );
        // The table holds one template (198.18.5.0/24); the other group is scheduled by rr
        // each time, without a template, and each miss is counted.
        assert_eq!(dests(&out), vec![0, 1, 0]);
        assert_ne!(out[0].template, NO_TEMPLATE);
        assert_eq!((out[1].template, out[2].template), (NO_TEMPLATE, NO_TEMPLATE));
        assert_eq!(l.node.stage.counters().persist_no_template, 2);
        assert_eq!(l.templates.stats.full.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(l.node.stats().report().total_drops(), 0);
    }

    #[test]
    fn templates_expire_in_poll_and_release_the_counter() {
        let mut l = Lcore::new(4);
        let snap = rr_snapshot(1, Proto::Udp, 53, &[1, 1], Some(P24));
        let a = l.run(&snap, Now::from_secs(0), vec![from([198, 18, 5, 5], Proto::Udp, 53, 1)]);
        assert_eq!(l.persistent(0), 1);
        // No connection uses it (conn-new is not in this test): it goes 60 s after its use.
        l.run(&snap, Now::from_secs(59), vec![]);
        assert_eq!((l.persistent(0), l.node.stage.counters().persist_expired), (1, 0));
        l.run(&snap, Now::from_secs(60), vec![]);
        assert_eq!((l.persistent(0), l.node.stage.counters().persist_expired), (0, 1));
        assert!(l.templates.is_empty());
        // The group is scheduled afresh: rr's next pick, a new template.
        let b = l.run(
            &snap,
            Now::from_secs(61),
            vec![from([198, 18, 5, 5], Proto::Udp, 53, 1)],
        );
        assert_eq!((dests(&a), dests(&b)), (vec![0], vec![1]));
        assert_eq!(l.node.stage.counters().persist_new, 2);
    }

    #[test]
    fn port_zero_service_shares_one_template_across_ports() {
        let mut l = Lcore::new(4);
        let snap = rr_snapshot(1, Proto::Tcp, 0, &[1, 1], Some(P24));
        let out = l.run(
            &snap,
            Now(0),
            vec![
                from([198, 18, 5, 5], Proto::Tcp, 80, 1),
                from([198, 18, 5, 5], Proto::Tcp, 443, 2),
            ],
        );
        assert_eq!(dests(&out), vec![0, 0]);
        assert_eq!(out[0].template, out[1].template);
        assert_eq!(l.templates.len(), 1);
    }

    // ---- SNAT match services ----

    /// A VIP service (index 0) and a TCP match service (index 1) for 198.18.16.0/24 going
    /// out, with two SNAT source addresses, scheduled rr.
    fn snat_snapshot(defence: Defence) -> Snapshot {
        let mut vip = rr_snapshot(1, Proto::Tcp, 80, &[1], None).services[0].as_ref().clone();
        vip.index = 0;
        let spec = MatchSpec {
            src: MatchRange {
                addrs: Some((Addr::v4([198, 18, 16, 0]), Addr::v4([198, 18, 16, 255]))),
                ports: None,
            },
            ..MatchSpec::default()
        };
        let mut m = Service::new_match(Proto::Tcp, spec, Arc::new(RrFactory));
        m.dests = (0..2)
            .map(|i| {
                let mut d = Dest::new(DestId(1 + i), Addr::v4([198, 18, 2, 1 + i as u8]), 0);
                d.fwd = Forward::Snat;
                d
            })
            .collect();
        Snapshot::build(1, 1, defence, vec![vip, m]).unwrap()
    }

    #[test]
    fn match_services_take_traffic_to_no_vip() {
        const FAR: Addr = Addr::v4([203, 0, 113, 9]);
        let inside = |proto, daddr, dport, flags, sport| {
            let mut p = pkt(proto, daddr, dport, flags, sport);
            p.meta.saddr = Addr::v4([198, 18, 16, 5]);
            p
        };
        // Defence on: it concerns VIPs only, so a stray to no VIP still goes to the host.
        let snap = snat_snapshot(Defence {
            tcp_drop: true,
            udp_drop: true,
        });
        let r = run(
            &snap,
            vec![
                inside(Proto::Tcp, FAR, 443, SYN, 40000),
                inside(Proto::Tcp, FAR, 443, SYN, 40001),
                inside(Proto::Tcp, FAR, 443, ACK, 40002),
                pkt(Proto::Tcp, FAR, 443, SYN, 40003),
                inside(Proto::Udp, FAR, 53, 0, 40004),
                inside(Proto::Tcp, VIP, 80, SYN, 40005),
                inside(Proto::Tcp, Addr::v4([198, 18, 2, 1]), 80, SYN, 40006),
            ],
        );
        // The two SYNs from the inside range: the match service, rr over its addresses.
        let picks: Vec<_> = r.to_new.iter().map(|m| (m.sport, m.sched.svc, m.sched.dest)).collect();
        assert_eq!(picks, vec![(40000, 1, 0), (40001, 1, 1), (40005, 0, 0)]);
        // The ACK with no connection, the SYN from outside the range (198.18.5.5), UDP with
        // no UDP match, and a SYN to a SNAT address itself: host path.
        assert_eq!(r.host, 4);
        assert_eq!(r.report.total_drops(), 0);
        assert_eq!(
            (r.counters.matched, r.counters.host_not_vip, r.counters.scheduled),
            (2, 4, 3)
        );

        // Without match services the same SYN goes to the host path.
        let plain = rr_snapshot(1, Proto::Tcp, 80, &[1], None);
        let r = run(&plain, vec![inside(Proto::Tcp, FAR, 443, SYN, 40000)]);
        assert_eq!((r.to_new.len(), r.host, r.counters.matched), (0, 1, 0));
    }

    #[test]
    fn a_match_service_with_no_eligible_address_drops_for_resource() {
        let mut snap = snat_snapshot(Defence::default());
        let mut m = snap.services[1].as_ref().clone();
        for d in m.dests.iter_mut() {
            d.weight = 0;
        }
        let vip = snap.services[0].as_ref().clone();
        snap = Snapshot::build(2, 1, Defence::default(), vec![vip, m]).unwrap();
        let mut p = pkt(Proto::Tcp, Addr::v4([203, 0, 113, 9]), 443, SYN, 1);
        p.meta.saddr = Addr::v4([198, 18, 16, 5]);
        let r = run(&snap, vec![p]);
        assert_eq!((r.report.dropped("no_dest"), r.counters.matched), (1, 1));
    }

    #[test]
    fn persistent_service_without_a_table_is_scheduled_and_counted() {
        let mut l = Lcore::plain();
        let snap = rr_snapshot(1, Proto::Tcp, 80, &[1, 1], Some(P24));
        let out = l.run(
            &snap,
            Now(0),
            vec![
                from([198, 18, 5, 5], Proto::Tcp, 80, 1),
                from([198, 18, 5, 6], Proto::Tcp, 80, 2),
            ],
        );
        assert_eq!(dests(&out), vec![0, 1]);
        assert_eq!(l.node.stage.counters().persist_unwired, 2);
    }

    #[test]
    fn icmp_without_a_connection_goes_to_the_local_stage() {
        let snap = snapshot(Defence::default(), 1);
        let icmp = |daddr: Addr, typ: u8| {
            let mut p = pkt(Proto::Icmp, daddr, 9, 0, 9);
            p.meta.icmp_type = typ;
            p
        };
        let other = Addr::v4([198, 18, 1, 1]);
        let cx = StageCx {
            now: Now(0),
            lcore: 0,
            snapshot: &snap,
        };
        for on in [true, false] {
            let mut stage = Schedule::new(Arc::new(LoadTable::new(4)), 7);
            stage.icmp_to_local = on;
            let mut node = Node::new(stage, 64);
            let mut exits = Exits::new(1, 1, 64);
            let mut pool = HeapPool::new(8);
            let mut input = PacketVec::with_capacity(64);
            for p in [icmp(VIP, 8), icmp(other, 8), icmp(VIP, 3)] {
                input.push(p).unwrap();
            }
            // A TCP SYN behind them is still scheduled.
            input.push(pkt(Proto::Tcp, VIP, 80, SYN, 1000)).unwrap();
            node.run(&cx, &mut input, &mut exits, &mut pool);
            let local: Vec<_> = node.queue(ScheduleNext::Local).drain().map(|p| p.meta).collect();
            let host = exits.host.drain().count();
            assert_eq!(node.queue(ScheduleNext::New).drain().count(), 1);
            let c = node.stage.counters();
            if on {
                assert_eq!(local.len(), 3);
                assert_eq!((local[0].daddr, local[1].daddr, local[2].icmp_type), (VIP, other, 3));
                assert_eq!((host, c.local_icmp, c.host_icmp), (0, 3, 0));
            } else {
                assert!(local.is_empty());
                assert_eq!((host, c.local_icmp, c.host_icmp, c.host_not_vip), (3, 0, 2, 1));
            }
        }
    }

    /// A snapshot with the TCP service of [`snapshot`], an ICMP echo service (port 0) on a
    /// second VIP, and an ICMP SNAT match service for 198.18.16.0/24.
    fn icmp_snapshot() -> Snapshot {
        let tcp = snapshot(Defence::default(), 1).services[0].as_ref().clone();
        let key = ServiceKey {
            proto: Proto::Icmp,
            vip: ICMP_VIP,
            port: 0,
        };
        let mut echo = Service::new(key, Forward::Fnat, Arc::new(First));
        echo.local_addrs = vec![Addr::v4([198, 18, 1, 1])].into();
        let mut d = Dest::new(DestId(1), Addr::v4([198, 18, 1, 12]), 0);
        d.fwd = Forward::Fnat;
        echo.dests = vec![d].into();
        let spec = MatchSpec {
            src: MatchRange {
                addrs: Some((Addr::v4([198, 18, 16, 0]), Addr::v4([198, 18, 16, 255]))),
                ports: None,
            },
            ..MatchSpec::default()
        };
        let mut m = Service::new_match(Proto::Icmp, spec, Arc::new(First));
        let mut d = Dest::new(DestId(2), Addr::v4([198, 18, 2, 1]), 0);
        d.fwd = Forward::Snat;
        m.dests = vec![d].into();
        Snapshot::build(1, 1, Defence::default(), vec![tcp, echo, m]).unwrap()
    }

    const ICMP_VIP: Addr = Addr::v4([198, 18, 0, 101]);

    #[test]
    fn icmp_echo_requests_to_an_icmp_service_are_scheduled() {
        let snap = icmp_snapshot();
        let echo = |saddr: Addr, daddr: Addr, typ: u8, id: u16| {
            let mut p = pkt(Proto::Icmp, daddr, id, 0, id);
            p.meta.saddr = saddr;
            p.meta.icmp_type = typ;
            p
        };
        let client = Addr::v4([198, 18, 5, 5]);
        let inside = Addr::v4([198, 18, 16, 7]);
        let far = Addr::v4([203, 0, 113, 9]);
        let r = run(
            &snap,
            vec![
                // Echo request to the ICMP VIP: its service (index 1, looked up with port 0).
                echo(client, ICMP_VIP, 8, 0x1234),
                // The same flow again in this vector: recirculated to meet the connection.
                echo(client, ICMP_VIP, 8, 0x1234),
                // Another identifier: a flow of its own.
                echo(client, ICMP_VIP, 8, 0x1235),
                // Echo reply to the VIP without a connection: never creates one.
                echo(client, ICMP_VIP, 0, 0x1236),
                // Echo request to the TCP-only VIP: answered by the balancer (local stage).
                echo(client, VIP, 8, 0x1237),
                // From the inside range to an outside host: the ICMP match service.
                echo(inside, far, 8, 0x1238),
                // From outside that range to an outside host: nothing takes it.
                echo(client, far, 8, 0x1239),
            ],
        );
        let picks: Vec<_> = r.to_new.iter().map(|m| (m.sport, m.sched.svc, m.sched.dest)).collect();
        assert_eq!(picks, vec![(0x1234, 1, 0), (0x1235, 1, 0), (0x1238, 2, 0)]);
        assert_eq!(r.redirected, 1);
        assert_eq!(r.report.total_drops(), 0);
        let c = r.counters;
        assert_eq!((c.scheduled, c.matched, c.recirculated, c.local_icmp), (3, 1, 1, 3));
        // ICMPv6 is looked up as its own protocol: an ICMP service does not take it.
        let mut v6 = echo(client, ICMP_VIP, 128, 1);
        v6.meta.proto = Proto::Icmp6.number();
        let r = run(&snap, vec![v6]);
        assert!(r.to_new.is_empty());
        assert_eq!(r.counters.local_icmp, 1);
    }
}
