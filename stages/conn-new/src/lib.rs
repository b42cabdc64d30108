//! rvs-conn-new: the conn-new stage, DPVS's `dp_vs_conn_new` for the destination schedule
//! picked.
//!
//! For each packet, in arrival order:
//!
//! 1. If its flow already has a connection (a follower the schedule stage could not mark, or
//!    a connection made earlier in this vector), the packet joins it: no duplicate is made.
//! 2. The destination is bound as the seed's `dp_vs_conn_bind_dest` does: at this lcore's share
//!    of `max_conn` the connection is refused with the overload cause and the destination is
//!    flagged overloaded ([`rvs_core::load::LoadTable::admit`]).
//! 3. FNAT (and SNAT by VIP) take a local address (round-robin over the service's local
//!    addresses, per lcore; SNAT through a match service: the chosen destination, see below)
//!    and a local port from this lcore's share of the port space (DPVS's sa_pool, so
//!    replies to that port reach this lcore), drawn from the pool of the connection's real
//!    server, so one local port serves several real servers at once; none left is a drop
//!    with the resource cause.
//! 4. Both tuples are filled per forwarding mode ([`rvs_conn::Conn::out_tuple_for`]); FNAT's
//!    sequence delta comes from a keyed hash of the local and real-server addresses and ports,
//!    as DPVS's `tcp_in_init_seq` does with `tcp_secure_sequence_number`.
//! 5. The connection takes a pool slot and both tuples are hashed; an exhausted pool is a
//!    drop with the resource cause (the local port goes back).
//! 6. The destination's inactive counter goes up (a new connection is inactive until
//!    ESTABLISHED, as IPVS counts it), and the TCP/UDP state transition runs for this first
//!    packet too, arming the timer with the state's timeout.
//! 7. A connection schedule placed through a persistence template
//!    ([`rvs_core::meta::PacketMeta::template`]) is attached to it
//!    ([`rvs_conn::LcoreConns::attach_template`]): the template counts it and cannot expire
//!    before it does; its expiry detaches it. A packet dropped here never attached, so it
//!    holds nothing.
//! 8. With an owner table set ([`ConnNew::set_owners`], several lcores), the connection's
//!    inbound tuple, and for NAT its outbound (reply) tuple, are recorded as this lcore's
//!    (DPVS's `dp_vs_redirect`), so packets of it that reach another lcore are sent here.
//!    FNAT and SNAT replies need no entry: their local port names this lcore.
//!
//! **SNAT** (a match service, DPVS's `dp_vs_snat_schedule`): the destination schedule
//! picked is a source address, not a real server. The connection's local address is that
//! destination's address and its local port comes from this lcore's share of that address's
//! ports (the address is registered with the port pool when the snapshot arrives); its real
//! server is the packet's original destination address and port. So the inbound tuple is
//! internal host -> outside server, the outbound (reply) tuple outside server -> source
//! address:local port, and xmit rewrites the source outbound and the destination back
//! (`rvs_xmit`'s SNAT row). The destination's counters and `max_conn` count the flows using
//! that source address. No address or port left on it is a drop (`no_local_port`, resource).
//! A SNAT service keyed by VIP (no match) keeps the FNAT-like path of the other rows. As in
//! DPVS, one local port serves different outside servers at once: the port comes from the
//! pool of the connection's real server (its address and port, see `rvs_conn::sapool`), so
//! a source address carries more than 64k flows across outside servers.
//!
//! **ICMP echo** (DPVS's `icmp_conn_sched` chose the destination): the echo identifier is
//! the flow's "port" on both sides (parse puts it in `sport` and `dport`). NAT, DR and TUNNEL
//! keep the client's identifier, so the real server's reply carries it; FNAT and SNAT take a
//! local port from this lcore's share and use it as the identifier toward the real server /
//! outside host, which xmit writes into the echo header, so the reply's identifier names this
//! lcore and the connection as a local port does for TCP and UDP. (DPVS keys ICMP by
//! `<id, type << 8 | code>` and leaves the identifier alone; its SNAT path notes that two
//! internal hosts may then clash on one identifier, and its local-address binding refuses
//! protocols other than TCP and UDP, so it has no FNAT for ICMP. rvs translates the
//! identifier as Linux's NAT does, which removes the clash and makes FNAT possible.) The
//! connection has ICMP's single state with the service's `icmp` timeout (300 s, DPVS's).
//!
//! UDP goes the same way as TCP (`udp_conn_sched` made the choice): FNAT and SNAT take a local
//! port from this lcore's share, the connection's state is UDP's one "normal" state with the
//! service's `udp` timeout, it stays counted inactive (IPVS counts UDP connections inactive),
//! and no TCP sequence delta is set.
//!
//! | issue-4 feature | shown by |
//! |---|---|
//! | UDP end to end (parse, lookup, schedule, conn-new): FNAT local port, no seq delta, udp timeout, reply found outbound, expiry releases port and counters | `tests/udp.rs` |
//! | persistence end to end: two clients of one /24 with `-M 24` on one destination, template counts its connections | `tests/persist.rs::netmask_groups_clients_onto_one_destination` |
//! | template expires only after its last connection (connections expiring on two lcores) | `tests/persist.rs::template_expires_only_after_its_last_connection` |
//! | drained template destination: fresh pick, new template | `tests/persist.rs::drained_destination_gets_a_fresh_pick` |
//! | full template table: scheduled normally, counted | `tests/persist.rs::full_template_table_still_forwards` |
//! | SNAT: local address = the chosen source address, port from its pool, real server = original destination; reply found outbound; port exhaustion counted and returned on expiry | `tests::snat_match_connection_keeps_the_original_destination`, `tests::snat_ports_run_out_per_source_address` |
//! | SNAT end to end (internal host -> outside server and back, every frame decoded) | `rvs-testkit` `tests/replay_snat.rs` |
//! | ICMP echo: identifier as both ports, FNAT local port as identifier, NAT keeps the client's, reply found outbound, icmp timeout 300 s, expiry returns the port | `tests/icmp.rs` |
//!
//! Measured cost per new connection (vectors of 32, heap buffers, 64k connections already in
//! the table): FNAT about 1,170 and NAT about 1,015 instructions (`benches/iai-guard`); about
//! 273-295 ns FNAT and 180-235 ns NAT on the shared 2-vCPU machine under load (`cargo bench
//! -p rvs-benches --bench conn_new`); about 1,450 TSC cycles per connection in `rvs run` on
//! the generator's new-connection profile (`perf/run`).

#![forbid(unsafe_code)]

use std::sync::Arc;

use rvs_conn::{Conn, ConnError, ConnFlags, LcoreConns, NO_TEMPLATE, OwnerTable, SharedConns, Tuple};
use rvs_core::addr::Proto;
use rvs_core::hash::mix64;
use rvs_core::load::Counter;
use rvs_core::mbuf::Mbuf;
use rvs_core::meta::Dir;
use rvs_core::service::{Forward, Snapshot};
use rvs_core::stage::{Out, Packet, PacketVec, Stage, StageCx};
use rvs_core::verdict::{Cause, DropReason};

rvs_core::labels! {
    /// Where conn-new sends a packet.
    pub enum ConnNewNext {
        /// The connection exists: transmit.
        Xmit = ("xmit", "the connection exists; rewrite and transmit"),
    }
}

rvs_core::labels! {
    /// Why conn-new drops.
    pub enum ConnNewDrop {
        /// The destination is at its share of `max_conn`.
        Overload = ("overload", "the destination is at its connection limit (max_conn)"),
        /// No FNAT/SNAT local port left on this lcore.
        NoLocalPort = ("no_local_port", "no local address or port left for FNAT/SNAT"),
        /// The connection pool is exhausted.
        PoolExhausted = ("pool_exhausted", "the connection pool is exhausted"),
        /// The new connection's outbound tuple is already taken by another connection.
        TupleClash = ("tuple_clash", "the outbound tuple of the new connection is already in use"),
        /// The service or destination schedule chose is not in the snapshot.
        StaleChoice = ("stale_choice", "the scheduled service or destination is not in the snapshot"),
    }
}

impl DropReason for ConnNewDrop {
    fn cause(self) -> Cause {
        match self {
            ConnNewDrop::Overload => Cause::Overload,
            ConnNewDrop::NoLocalPort | ConnNewDrop::PoolExhausted | ConnNewDrop::TupleClash => Cause::Resource,
            ConnNewDrop::StaleChoice => Cause::Other,
        }
    }
}

/// Counts of what conn-new did besides dropping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnNewCounters {
    /// Connections created.
    pub created: u64,
    /// Packets that found their connection already made.
    pub joined: u64,
    /// Connections attached to the persistence template schedule chose.
    pub template_attached: u64,
    /// Connections whose template was gone by the time they were made (they live without
    /// one; the destination is the one the template named).
    pub template_stale: u64,
}

/// The conn-new stage of one lcore.
#[derive(Debug)]
pub struct ConnNew {
    conns: SharedConns,
    secret: u64,
    generation: Option<u64>,
    laddr_next: Vec<u32>,
    counters: ConnNewCounters,
    created_per_dest: Vec<u64>,
    owners: Option<Arc<OwnerTable>>,
}

/// DPVS's `tcp_secure_sequence_number` stand-in: a keyed hash of the FNAT connection's
/// outbound addresses and ports.
fn secure_isn(secret: u64, c: &Conn) -> u32 {
    let a = mix64(secret ^ c.laddr().0 as u64 ^ ((c.laddr().0 >> 64) as u64).rotate_left(7));
    let b = mix64(a ^ c.daddr().0 as u64 ^ ((c.daddr().0 >> 64) as u64).rotate_left(13));
    mix64(b ^ ((c.lport() as u64) << 16) ^ c.dport() as u64) as u32
}

impl ConnNew {
    /// A conn-new stage over this lcore's connections; `secret` keys the FNAT sequence
    /// deltas.
    pub fn new(conns: SharedConns, secret: u64) -> Self {
        let slots = conns.borrow().loads().slots();
        ConnNew {
            conns,
            secret,
            generation: None,
            laddr_next: Vec::new(),
            counters: ConnNewCounters::default(),
            created_per_dest: vec![0; slots],
            owners: None,
        }
    }

    /// Record each new connection's tuples in `owners` (pipelines with several lcores;
    /// control path).
    pub fn set_owners(&mut self, owners: Arc<OwnerTable>) {
        self.owners = Some(owners);
    }

    /// Connections created per destination slot ([`rvs_core::service::DestId`]) since start.
    pub fn created_per_dest(&self) -> &[u64] {
        &self.created_per_dest
    }

    /// Creation counts.
    pub fn counters(&self) -> ConnNewCounters {
        self.counters
    }

    /// Register the snapshot's local addresses with the port pool (off the packet path: only
    /// when the generation changed).
    pub fn sync(&mut self, snap: &Snapshot) {
        if self.generation == Some(snap.generation) {
            return;
        }
        let mut conns = self.conns.borrow_mut();
        for svc in snap.services.iter() {
            for &l in svc.local_addrs.iter() {
                conns.ports().add_laddr(l);
            }
            // A match (SNAT) service's destinations are its source addresses.
            if svc.matcher.is_some() {
                for d in svc.dests.iter() {
                    conns.ports().add_laddr(d.addr);
                }
            }
        }
        self.laddr_next.resize(snap.services.len(), 0);
        self.generation = Some(snap.generation);
    }
}

/// The destination schedule bound for this packet, if it did.
fn reserved_dest<'a>(snap: &'a Snapshot, c: &rvs_core::meta::SchedChoice) -> Option<&'a rvs_core::service::Dest> {
    if !c.reserved {
        return None;
    }
    snap.services.get(c.svc as usize)?.dests.get(c.dest as usize)
}

fn tcp_seq<M: Mbuf>(p: &Packet<M>) -> u32 {
    let off = p.meta.l4_off as usize + 4;
    match p.mbuf.data().get(off..off + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

impl<M: Mbuf> Stage<M> for ConnNew {
    type Next = ConnNewNext;
    type Drop = ConnNewDrop;
    const NAME: &'static str = "conn-new";

    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, ConnNewNext, ConnNewDrop>) {
        self.sync(cx.snapshot);
        let snap = cx.snapshot;
        let conns_rc = self.conns.clone();
        let mut conns = conns_rc.borrow_mut();
        for mut p in input.drain() {
            let Some(tuple) = Tuple::of(&p.meta) else {
                out.drop(ConnNewDrop::StaleChoice, p);
                continue;
            };
            if let Some((id, dir)) = conns.lookup(&tuple) {
                // Schedule bound a destination for a connection that now exists: give the
                // count back.
                if let Some(d) = reserved_dest(snap, &p.meta.sched) {
                    conns.loads().dec(d.id, Counter::Inactive);
                    conns.loads().relieve(d, snap.lcores);
                }
                conns.on_packet_with(id, dir, p.meta.tcp_flags, cx.now, |c| c.service_timeouts(snap).0);
                p.meta.conn = id;
                p.meta.dir = dir;
                self.counters.joined += 1;
                out.next(ConnNewNext::Xmit, p);
                continue;
            }
            let choice = p.meta.sched;
            let Some(svc) = snap.services.get(choice.svc as usize) else {
                out.drop(ConnNewDrop::StaleChoice, p);
                continue;
            };
            let Some(dest) = svc.dests.get(choice.dest as usize) else {
                out.drop(ConnNewDrop::StaleChoice, p);
                continue;
            };
            let reserved = choice.reserved;
            let unreserve = |conns: &mut LcoreConns| {
                if reserved {
                    conns.loads().dec(dest.id, Counter::Inactive);
                    conns.loads().relieve(dest, snap.lcores);
                }
            };
            let fwd = dest.fwd;
            let snat_match = svc.matcher.is_some() && fwd == Forward::Snat;
            // SNAT through a match service: the packet's own destination is the "real
            // server"; the chosen destination was the source address.
            let (raddr, rport) = if snat_match {
                (tuple.daddr, tuple.dport)
            } else {
                (dest.addr, dest.port)
            };
            // The local port comes from the pool of this real server (DPVS's sa_pool_hash).
            let (kaddr, kport) = rvs_conn::SaPool::pool_key(tuple.proto, raddr, rport);
            let (laddr, lport) = match fwd {
                Forward::Snat if snat_match => match conns.ports().take(dest.addr, kaddr, kport) {
                    Some(port) => (dest.addr, port),
                    None => {
                        unreserve(&mut conns);
                        out.drop(ConnNewDrop::NoLocalPort, p);
                        continue;
                    }
                },
                Forward::Fnat | Forward::Snat => {
                    let n = svc.local_addrs.len();
                    let next = &mut self.laddr_next[svc.index as usize];
                    let mut found = None;
                    for k in 0..n {
                        let l = svc.local_addrs[(*next as usize + k) % n];
                        if let Some(port) = conns.ports().take(l, kaddr, kport) {
                            *next = ((*next as usize + k + 1) % n) as u32;
                            found = Some((l, port));
                            break;
                        }
                    }
                    match found {
                        Some(x) => x,
                        None => {
                            unreserve(&mut conns);
                            out.drop(ConnNewDrop::NoLocalPort, p);
                            continue;
                        }
                    }
                }
                Forward::Nat | Forward::Dr | Forward::Tunnel => (tuple.saddr, tuple.sport),
            };
            // ICMP echo: the identifier stands for both ports (parse puts it in both), so the
            // real server's reply carries, as both, the identifier it was sent: the client's
            // for NAT, DR and TUNNEL, the local port for FNAT and SNAT.
            let rport = if matches!(tuple.proto, Proto::Icmp | Proto::Icmp6) {
                lport
            } else {
                rport
            };
            let mut out_tuple = Conn::out_tuple_for(fwd, &tuple, raddr, rport, laddr, lport);
            if tuple.proto == Proto::Icmp6 && raddr.is_v4() {
                // NAT64: the real server answers ICMPv6 echo as ICMP echo.
                out_tuple.proto = Proto::Icmp;
            }
            let mut conn = Conn {
                in_tuple: tuple,
                out_tuple,
                fwd,
                svc: svc.index,
                generation: snap.generation,
                dest: dest.id,
                lcore: cx.lcore,
                ..Conn::default()
            };
            if fwd == Forward::Fnat && tuple.proto == Proto::Tcp {
                let isn = tcp_seq(&p);
                conn.fnat_isn = isn;
                conn.fnat_seq_delta = secure_isn(self.secret, &conn).wrapping_sub(isn);
            }
            if reserved {
                // Schedule admitted and counted it: adopt the count.
                conn.flags.set(ConnFlags::INACTIVE);
                conn.flags.set(ConnFlags::BOUND);
            } else if !conns.bind_dest(&mut conn, dest) {
                if matches!(fwd, Forward::Fnat | Forward::Snat) {
                    conns.ports().release(laddr, lport, kaddr, kport);
                }
                out.drop(ConnNewDrop::Overload, p);
                continue;
            }
            let out_tuple = conn.out_tuple;
            let id = match conns.insert(conn, cx.now) {
                Ok(id) => id,
                Err(e) => {
                    if matches!(fwd, Forward::Fnat | Forward::Snat) {
                        conns.ports().release(laddr, lport, kaddr, kport);
                    }
                    conns.loads().dec(dest.id, Counter::Inactive);
                    conns.loads().relieve(dest, snap.lcores);
                    let why = match e {
                        ConnError::PoolExhausted => ConnNewDrop::PoolExhausted,
                        ConnError::Exists => ConnNewDrop::TupleClash,
                    };
                    out.drop(why, p);
                    continue;
                }
            };
            if let Some(o) = &self.owners {
                o.insert(&tuple, cx.lcore);
                if fwd == Forward::Nat {
                    o.insert(&out_tuple, cx.lcore);
                }
            }
            conns.on_packet(id, Dir::In, p.meta.tcp_flags, &svc.timeouts, cx.now);
            if p.meta.template != NO_TEMPLATE {
                if conns.attach_template(id, p.meta.template) {
                    self.counters.template_attached += 1;
                } else {
                    self.counters.template_stale += 1;
                }
            }
            p.meta.conn = id;
            p.meta.dir = Dir::In;
            self.counters.created += 1;
            if let Some(c) = self.created_per_dest.get_mut(dest.id.0 as usize) {
                *c += 1;
            }
            out.next(ConnNewNext::Xmit, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use rvs_conn::{ConnConfig, LcoreConns};
    use rvs_core::addr::Addr;
    use rvs_core::load::LoadTable;
    use rvs_core::mbuf::{HeapMbuf, HeapPool};
    use rvs_core::meta::{PacketMeta, SchedChoice, TcpFlags};
    use rvs_core::sched::{Flow, SchedCx, Scheduler, SchedulerFactory};
    use rvs_core::service::{Defence, Dest, DestId, Service, ServiceKey};
    use rvs_core::stage::{Exits, Node};
    use rvs_core::time::Now;

    #[derive(Debug)]
    struct Never;
    impl Scheduler for Never {
        fn name(&self) -> &str {
            "never"
        }
        fn pick(&mut self, _: &SchedCx<'_>, _: &Flow<'_>) -> Option<usize> {
            None
        }
    }
    impl SchedulerFactory for Never {
        fn name(&self) -> &str {
            "never"
        }
        fn instance(&self, _: u16, _: u64) -> Box<dyn Scheduler> {
            Box::new(Never)
        }
    }

    const VIP: Addr = Addr::v4([198, 18, 0, 100]);
    const LADDR: Addr = Addr::v4([198, 18, 1, 1]);
    const RS: Addr = Addr::v4([198, 18, 1, 11]);

    fn snapshot(fwd: Forward, max_conn: u32) -> Snapshot {
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: VIP,
            port: 80,
        };
        let mut s = Service::new(key, fwd, Arc::new(Never));
        let mut d = Dest::new(DestId(2), RS, if fwd.keeps_port() { 80 } else { 8080 });
        d.fwd = fwd;
        d.max_conn = max_conn;
        s.dests = vec![d].into();
        s.local_addrs = vec![LADDR].into();
        Snapshot::build(1, 1, Defence::default(), vec![s]).unwrap()
    }

    fn syn(sport: u16, seq: u32) -> Packet<HeapMbuf> {
        // Enough of a TCP header for conn-new to read the sequence number.
        let mut bytes = vec![0u8; 54];
        bytes[38..42].copy_from_slice(&seq.to_be_bytes());
        let mut p = Packet::new(HeapMbuf::from_bytes(&bytes));
        p.meta = PacketMeta {
            proto: 6,
            saddr: Addr::v4([198, 18, 5, 5]),
            daddr: VIP,
            sport,
            dport: 80,
            tcp_flags: TcpFlags(TcpFlags::SYN),
            l3_off: 14,
            l4_off: 34,
            l4_hdr_len: 20,
            l3_len: 40,
            sched: SchedChoice {
                svc: 0,
                dest: 0,
                reserved: false,
            },
            ..PacketMeta::new()
        };
        p
    }

    struct Setup {
        node: Node<HeapMbuf, ConnNew>,
        conns: SharedConns,
        loads: Arc<LoadTable>,
    }

    fn setup(capacity: usize) -> Setup {
        let loads = Arc::new(LoadTable::new(8));
        let conns = Rc::new(RefCell::new(LcoreConns::new(
            ConnConfig {
                capacity,
                buckets_log2: 8,
                seed: 1,
                timer_tick_ms: 10,
            },
            0,
            1,
            loads.clone(),
        )));
        Setup {
            node: Node::new(ConnNew::new(conns.clone(), 99), 64),
            conns,
            loads,
        }
    }

    fn run(s: &mut Setup, snap: &Snapshot, pkts: Vec<Packet<HeapMbuf>>) -> Vec<PacketMeta> {
        let mut exits = Exits::new(1, 1, 64);
        let mut pool = HeapPool::new(8);
        let mut input = PacketVec::with_capacity(64);
        for p in pkts {
            input.push(p).unwrap();
        }
        let cx = StageCx {
            now: Now::from_secs(10),
            lcore: 0,
            snapshot: snap,
        };
        s.node.run(&cx, &mut input, &mut exits, &mut pool);
        s.node.queue(ConnNewNext::Xmit).drain().map(|p| p.meta).collect()
    }

    #[test]
    fn fnat_connection_gets_local_port_tuples_and_delta() {
        let snap = snapshot(Forward::Fnat, 0);
        let mut s = setup(16);
        let out = run(&mut s, &snap, vec![syn(40000, 1000)]);
        assert_eq!(out.len(), 1);
        let conns = s.conns.borrow();
        let c = conns.conn(out[0].conn).unwrap();
        assert_eq!(
            (c.caddr(), c.cport(), c.vaddr(), c.vport()),
            (Addr::v4([198, 18, 5, 5]), 40000, VIP, 80)
        );
        assert_eq!((c.daddr(), c.dport(), c.laddr()), (RS, 8080, LADDR));
        assert!(c.lport() >= 1025);
        assert_eq!(c.fnat_isn, 1000);
        // The delta is keyed: a second stage with another secret gives another delta.
        assert_eq!(c.fnat_seq_delta.wrapping_add(1000), secure_isn(99, c));
        assert_eq!(conns.lookup(&c.out_tuple.clone()), Some((out[0].conn, Dir::Out)));
        assert_eq!(s.loads.get(DestId(2)).inactive, 1);
        assert_eq!(s.node.stage.created_per_dest()[2], 1);
    }

    #[test]
    fn nat_and_dr_keep_the_client_as_outbound_destination() {
        for fwd in [Forward::Nat, Forward::Dr] {
            let snap = snapshot(fwd, 0);
            let mut s = setup(16);
            let out = run(&mut s, &snap, vec![syn(40001, 5)]);
            let conns = s.conns.borrow();
            let c = conns.conn(out[0].conn).unwrap();
            assert_eq!((c.laddr(), c.lport()), (Addr::v4([198, 18, 5, 5]), 40001), "{fwd:?}");
            assert_eq!(c.fnat_seq_delta, 0);
        }
    }

    #[test]
    fn new_connections_are_recorded_in_the_owner_table() {
        for fwd in [Forward::Nat, Forward::Fnat] {
            let snap = snapshot(fwd, 0);
            let mut s = setup(16);
            let owners = Arc::new(rvs_conn::OwnerTable::new(256));
            s.node.stage.set_owners(owners.clone());
            let out = run(&mut s, &snap, vec![syn(40002, 5)]);
            let conns = s.conns.borrow();
            let c = conns.conn(out[0].conn).unwrap();
            // The inbound tuple always; the reply tuple for NAT only (FNAT's port says it).
            assert_eq!(owners.owner(&c.in_tuple), Some(0), "{fwd:?}");
            let want_out = (fwd == Forward::Nat).then_some(0);
            assert_eq!(owners.owner(&c.out_tuple), want_out, "{fwd:?}");
        }
    }

    #[test]
    fn max_conn_refuses_with_overload_and_flags_the_destination() {
        let snap = snapshot(Forward::Nat, 2);
        let mut s = setup(16);
        let out = run(&mut s, &snap, vec![syn(1, 1), syn(2, 1), syn(3, 1)]);
        assert_eq!(out.len(), 2);
        let r = s.node.stats().report();
        assert_eq!(r.dropped("overload"), 1);
        assert!(s.loads.get(DestId(2)).overloaded);
        assert_eq!(s.loads.get(DestId(2)).inactive, 2);
    }

    #[test]
    fn pool_exhaustion_is_a_counted_drop_and_gives_back_what_was_taken() {
        let snap = snapshot(Forward::Fnat, 0);
        let mut s = setup(1);
        let out = run(&mut s, &snap, vec![syn(1, 1), syn(2, 1)]);
        assert_eq!(out.len(), 1);
        assert_eq!(s.node.stats().report().dropped("pool_exhausted"), 1);
        assert_eq!(
            s.loads.get(DestId(2)).inactive,
            1,
            "the refused connection's count was undone"
        );
        let mut conns = s.conns.borrow_mut();
        let owned = conns.ports().owned(LADDR);
        assert_eq!(
            conns.ports().available(LADDR),
            owned - 1,
            "the refused connection's port went back"
        );
    }

    const SNAT_IP: Addr = Addr::v4([198, 18, 2, 1]);
    const INSIDE: Addr = Addr::v4([198, 18, 16, 5]);
    const FAR: Addr = Addr::v4([203, 0, 113, 9]);

    /// A match service for 198.18.16.0/24 going out through one SNAT source address.
    fn snat_snapshot() -> Snapshot {
        use rvs_core::service::{MatchRange, MatchSpec};
        let spec = MatchSpec {
            src: MatchRange {
                addrs: Some((Addr::v4([198, 18, 16, 0]), Addr::v4([198, 18, 16, 255]))),
                ports: None,
            },
            ..MatchSpec::default()
        };
        let mut s = Service::new_match(Proto::Tcp, spec, Arc::new(Never));
        let mut d = Dest::new(DestId(3), SNAT_IP, 0);
        d.fwd = Forward::Snat;
        s.dests = vec![d].into();
        Snapshot::build(1, 1, Defence::default(), vec![s]).unwrap()
    }

    fn outgoing(sport: u16) -> Packet<HeapMbuf> {
        let mut p = syn(sport, 77);
        p.meta.saddr = INSIDE;
        p.meta.daddr = FAR;
        p.meta.dport = 443;
        p
    }

    #[test]
    fn snat_match_connection_keeps_the_original_destination() {
        let snap = snat_snapshot();
        let mut s = setup(16);
        let out = run(&mut s, &snap, vec![outgoing(40000)]);
        assert_eq!(out.len(), 1);
        let mut conns = s.conns.borrow_mut();
        let c = conns.conn(out[0].conn).unwrap().clone();
        assert_eq!(c.fwd, Forward::Snat);
        assert_eq!((c.caddr(), c.cport(), c.vaddr(), c.vport()), (INSIDE, 40000, FAR, 443));
        // The real server is the original destination; the local address the chosen one.
        assert_eq!((c.daddr(), c.dport(), c.laddr()), (FAR, 443, SNAT_IP));
        assert!(c.lport() >= rvs_conn::sapool::PORT_MIN);
        assert_eq!((c.fnat_seq_delta, c.fnat_isn), (0, 0), "no FNAT sequence work");
        // The outside server's reply (to the SNAT address and local port) finds it outbound.
        let reply = Tuple {
            proto: Proto::Tcp,
            saddr: FAR,
            sport: 443,
            daddr: SNAT_IP,
            dport: c.lport(),
        };
        assert_eq!(conns.lookup(&reply), Some((out[0].conn, Dir::Out)));
        assert_eq!(s.loads.get(DestId(3)).inactive, 1);
        assert_eq!(conns.ports().available(SNAT_IP), conns.ports().owned(SNAT_IP) - 1);
        assert_eq!(s.node.stage.created_per_dest()[3], 1);
    }

    #[test]
    fn snat_ports_run_out_per_source_address() {
        let snap = snat_snapshot();
        let mut s = setup(16);
        let first = run(&mut s, &snap, vec![outgoing(1)]);
        assert_eq!(first.len(), 1);
        // Take every other port of the address toward FAR:443, as if other flows held them.
        let mut held = Vec::new();
        while let Some(p) = s.conns.borrow_mut().ports().take(SNAT_IP, FAR, 443) {
            held.push(p);
        }
        let out = run(&mut s, &snap, vec![outgoing(2)]);
        assert!(out.is_empty());
        assert_eq!(s.node.stats().report().dropped("no_local_port"), 1);
        assert_eq!(s.loads.get(DestId(3)).inactive, 1, "the refused flow was never counted");
        // One port back: the next flow gets exactly that one.
        s.conns.borrow_mut().ports().release(SNAT_IP, held[0], FAR, 443);
        let out = run(&mut s, &snap, vec![outgoing(3)]);
        let lport = s.conns.borrow().conn(out[0].conn).unwrap().lport();
        assert_eq!(lport, held[0]);
        // Expiry gives the ports back and releases the counters.
        let mut conns = s.conns.borrow_mut();
        let n = conns.expire(Now::from_secs(10_000), 64, &snap);
        assert_eq!(n, 2);
        assert_eq!(conns.ports().available_for(SNAT_IP, FAR, 443), 2);
        assert_eq!(conns.ports().bad_releases, 0);
        assert_eq!(s.loads.get(DestId(3)).inactive, 0);
    }

    #[test]
    fn a_packet_whose_connection_exists_joins_it() {
        let snap = snapshot(Forward::Nat, 0);
        let mut s = setup(16);
        let out = run(&mut s, &snap, vec![syn(7, 1), syn(7, 1)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].conn, out[1].conn);
        assert_eq!(
            s.node.stage.counters(),
            ConnNewCounters {
                created: 1,
                joined: 1,
                ..Default::default()
            }
        );
        assert_eq!(s.conns.borrow().len(), 1);
    }
}
