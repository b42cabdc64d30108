//! The stage contract.
//!
//! A stage is a plain struct holding its per-lcore state, generic over [`Mbuf`], callable
//! alone. It takes the vector of packets that reached it (32 by default, up to
//! [`VECTOR_MAX`]) and disposes of **every** packet through its [`Out`]:
//!
//! | disposition | call | what happens next |
//! |---|---|---|
//! | next stage | [`Out::next`] | queued for the stage wired to that label |
//! | transmit | [`Out::tx`] | queued on the port's transmit buffer |
//! | drop | [`Out::drop`] | freed to the pool, counted by reason |
//! | host path | [`Out::host`] | queued for the host (what DPVS hands to the kernel) |
//! | redirect | [`Out::redirect`] | queued for the lcore that owns the connection |
//! | hold | [`Out::held`] | the stage keeps the packet in its own state and counts it |
//!
//! A stage can also create packets (SYN-ACKs, SYNs to real servers, ARP replies, RSTs) from
//! the preallocated pool with [`Out::alloc`] and send them with [`Out::emit_next`] or
//! [`Out::emit_tx`]; held packets it releases later go out the same way.
//!
//! Stages are sans-IO: the time, the lcore, the service snapshot and the pool come from the
//! caller in a [`StageCx`] and the [`Out`]. A [`Graph`] chains stages on one lcore, VPP-style:
//! each node runs once per vector over everything queued for it, nodes in the order they were
//! added (edges only point forward), with cycles measured around each call and counts flushed
//! once per vector.
//!
//! **Vectors change nothing**: the result of a vector must equal processing its packets one
//! at a time in arrival order. Queues keep arrival order, and a stage that creates state
//! (a connection) must let later packets of the same vector see it.

use std::any::Any;
use std::marker::PhantomData;

use crate::counters::{MAX_LABELS, StageReport, StageStats, Tally};
use crate::cycles::rdtsc;
use crate::label::Label;
use crate::mbuf::{Mbuf, PacketPool};
use crate::meta::PacketMeta;
use crate::service::Snapshot;
use crate::time::Now;
use crate::verdict::DropReason;

/// Default vector size.
pub const VECTOR_DEFAULT: usize = 32;
/// Largest vector a caller may hand to a stage.
pub const VECTOR_MAX: usize = 256;
/// Default capacity of a queue between stages: a stage may emit a few packets per input.
pub const QUEUE_DEFAULT: usize = 4 * VECTOR_MAX;

/// A packet and its metadata.
#[derive(Debug)]
pub struct Packet<M> {
    /// The buffer.
    pub mbuf: M,
    /// What parse and later stages learned about it.
    pub meta: PacketMeta,
}

impl<M> Packet<M> {
    /// A packet with fresh metadata.
    pub fn new(mbuf: M) -> Self {
        Packet {
            mbuf,
            meta: PacketMeta::new(),
        }
    }
}

/// A queue of packets with a fixed capacity chosen at construction: pushing never
/// allocates, and a full queue hands the packet back so the caller can count the drop.
#[derive(Debug)]
pub struct PacketVec<M> {
    v: Vec<Packet<M>>,
}

impl<M> PacketVec<M> {
    /// An empty queue holding at most `cap` packets.
    pub fn with_capacity(cap: usize) -> Self {
        PacketVec {
            v: Vec::with_capacity(cap),
        }
    }
    /// Append; a full queue returns the packet.
    #[inline]
    pub fn push(&mut self, p: Packet<M>) -> Result<(), Packet<M>> {
        if self.v.len() == self.v.capacity() {
            return Err(p);
        }
        self.v.push(p);
        Ok(())
    }
    /// Packets queued.
    #[inline]
    pub fn len(&self) -> usize {
        self.v.len()
    }
    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.v.capacity()
    }
    /// Room left.
    pub fn room(&self) -> usize {
        self.v.capacity() - self.v.len()
    }
    /// Take every packet out, in order.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Packet<M>> {
        self.v.drain(..)
    }
    /// The queued packets.
    pub fn as_slice(&self) -> &[Packet<M>] {
        &self.v
    }
    /// The queued packets, writable (e.g. for a stage that fixes up metadata in place).
    pub fn as_mut_slice(&mut self) -> &mut [Packet<M>] {
        &mut self.v
    }
    /// Iterate over the queued packets.
    pub fn iter(&self) -> std::slice::Iter<'_, Packet<M>> {
        self.v.iter()
    }
}

/// What a stage is handed besides its packets. Stages read no clock and touch no global.
#[derive(Debug, Clone, Copy)]
pub struct StageCx<'a> {
    /// The current time.
    pub now: Now,
    /// The lcore running the stage.
    pub lcore: u16,
    /// The service snapshot taken for this vector.
    pub snapshot: &'a Snapshot,
}

/// Where a stage's non-stage exits land: per-port transmit queues, the host path and
/// per-lcore redirect queues. The caller drains them after each vector.
#[derive(Debug)]
pub struct Exits<M> {
    /// Transmit queue per port.
    pub tx: Vec<PacketVec<M>>,
    /// Packets for the host path.
    pub host: PacketVec<M>,
    /// Redirect queue per lcore.
    pub redirect: Vec<PacketVec<M>>,
    /// Packets lost because an exit queue was full, freed.
    pub overflow: u64,
}

impl<M> Exits<M> {
    /// Exits for `ports` ports and `lcores` lcores, each queue of capacity `cap`.
    pub fn new(ports: usize, lcores: usize, cap: usize) -> Self {
        Exits {
            tx: (0..ports).map(|_| PacketVec::with_capacity(cap)).collect(),
            host: PacketVec::with_capacity(cap),
            redirect: (0..lcores).map(|_| PacketVec::with_capacity(cap)).collect(),
            overflow: 0,
        }
    }
}

/// A stage's handle on where packets go, counting as it goes.
pub struct Out<'a, M: Mbuf, N: Label, D: DropReason> {
    next: &'a mut [PacketVec<M>],
    exits: &'a mut Exits<M>,
    pool: &'a mut dyn PacketPool<M>,
    tally: &'a mut Tally,
    _labels: PhantomData<(N, D)>,
}

impl<M: Mbuf, N: Label, D: DropReason> std::fmt::Debug for Out<'_, M, N, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out").field("tally", &self.tally).finish()
    }
}

impl<'a, M: Mbuf, N: Label, D: DropReason> Out<'a, M, N, D> {
    /// An `Out` over explicit queues: `next` must hold one queue per label of `N`.
    pub fn new(
        next: &'a mut [PacketVec<M>],
        exits: &'a mut Exits<M>,
        pool: &'a mut dyn PacketPool<M>,
        tally: &'a mut Tally,
    ) -> Self {
        debug_assert_eq!(next.len(), N::ALL.len());
        Out {
            next,
            exits,
            pool,
            tally,
            _labels: PhantomData,
        }
    }

    #[inline]
    fn overflow(&mut self, p: Packet<M>) {
        self.exits.overflow += 1;
        self.pool.free(p.mbuf);
    }

    /// Hand the packet to the next stage `n`.
    #[inline]
    pub fn next(&mut self, n: N, p: Packet<M>) {
        self.tally.next[n.index()] += 1;
        if let Err(p) = self.next[n.index()].push(p) {
            self.overflow(p);
        }
    }
    /// Queue the packet for transmit on `port` (a port the graph does not have is an
    /// overflow drop).
    #[inline]
    pub fn tx(&mut self, port: u16, mut p: Packet<M>) {
        self.tally.tx += 1;
        p.mbuf.set_port(port);
        match self.exits.tx.get_mut(port as usize) {
            Some(q) => {
                if let Err(p) = q.push(p) {
                    self.overflow(p);
                }
            }
            None => self.overflow(p),
        }
    }
    /// Drop the packet for reason `r`: it is freed to the pool.
    #[inline]
    pub fn drop(&mut self, r: D, p: Packet<M>) {
        self.tally.drops[r.index()] += 1;
        self.pool.free(p.mbuf);
    }
    /// Count a drop for reason `r` of something that was never a packet here (a packet the
    /// stage could not create because the pool was empty).
    #[inline]
    pub fn count_drop(&mut self, r: D) {
        self.tally.drops[r.index()] += 1;
    }
    /// Hand the packet to the host path.
    #[inline]
    pub fn host(&mut self, p: Packet<M>) {
        self.tally.host += 1;
        if let Err(p) = self.exits.host.push(p) {
            self.overflow(p);
        }
    }
    /// Send the packet to lcore `lcore`, which owns its connection.
    #[inline]
    pub fn redirect(&mut self, lcore: u16, p: Packet<M>) {
        self.tally.redirect += 1;
        match self.exits.redirect.get_mut(lcore as usize) {
            Some(q) => {
                if let Err(p) = q.push(p) {
                    self.overflow(p);
                }
            }
            None => self.overflow(p),
        }
    }
    /// Count a packet the stage has taken into its own state.
    #[inline]
    pub fn held(&mut self) {
        self.tally.held += 1;
    }
    /// A fresh buffer from the pool for a packet the stage creates; `None` when the pool is
    /// empty (count a drop).
    #[inline]
    pub fn alloc(&mut self) -> Option<M> {
        self.pool.alloc()
    }
    /// Free a buffer the stage allocated or held and no longer needs (not a drop).
    #[inline]
    pub fn free(&mut self, m: M) {
        self.pool.free(m);
    }
    /// Send a packet the stage created (or released) to the next stage `n`.
    #[inline]
    pub fn emit_next(&mut self, n: N, p: Packet<M>) {
        self.tally.emitted += 1;
        self.next(n, p);
    }
    /// Transmit a packet the stage created (or released) on `port`.
    #[inline]
    pub fn emit_tx(&mut self, port: u16, p: Packet<M>) {
        self.tally.emitted += 1;
        self.tx(port, p);
    }
}

/// One processing stage.
pub trait Stage<M: Mbuf> {
    /// The stages a packet can go on to.
    type Next: Label;
    /// Why this stage drops.
    type Drop: DropReason;
    /// The stage's name in counters.
    const NAME: &'static str;

    /// Dispose of every packet of `input` (it must be empty on return).
    fn process(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, out: &mut Out<'_, M, Self::Next, Self::Drop>);

    /// Called once per loop iteration, with or without packets: release held packets or
    /// emit timed ones (retransmissions). The default does nothing.
    fn poll(&mut self, cx: &StageCx<'_>, out: &mut Out<'_, M, Self::Next, Self::Drop>) {
        let _ = (cx, out);
    }
}

/// A stage wrapped with its output queues and counters.
#[derive(Debug)]
pub struct Node<M: Mbuf, S: Stage<M>> {
    /// The stage itself.
    pub stage: S,
    stats: std::sync::Arc<StageStats>,
    queues: Vec<PacketVec<M>>,
    tally: Tally,
}

impl<M: Mbuf, S: Stage<M>> Node<M, S> {
    /// Wrap `stage` with output queues of capacity `queue_cap`.
    pub fn new(stage: S, queue_cap: usize) -> Self {
        const {
            assert!(S::Next::ALL.len() <= MAX_LABELS, "too many next labels");
            assert!(S::Drop::ALL.len() <= MAX_LABELS, "too many drop reasons");
        }
        Node {
            stage,
            stats: std::sync::Arc::new(StageStats::new::<S::Next, S::Drop>(S::NAME)),
            queues: S::Next::ALL
                .iter()
                .map(|_| PacketVec::with_capacity(queue_cap))
                .collect(),
            tally: Tally::default(),
        }
    }
    /// Run the stage over `input` (cycles measured, counts flushed, leftovers freed and
    /// counted as overflow so a stage bug cannot leak buffers).
    pub fn run(
        &mut self,
        cx: &StageCx<'_>,
        input: &mut PacketVec<M>,
        exits: &mut Exits<M>,
        pool: &mut dyn PacketPool<M>,
    ) {
        let n = input.len() as u64;
        self.tally = Tally::default();
        let t0 = rdtsc();
        {
            let mut out = Out::<M, S::Next, S::Drop>::new(&mut self.queues, exits, pool, &mut self.tally);
            self.stage.process(cx, input, &mut out);
            if !input.is_empty() {
                for p in input.drain() {
                    out.overflow(p);
                }
            }
        }
        let t1 = rdtsc();
        self.stats.flush(n, t1.wrapping_sub(t0), &self.tally);
    }
    /// Call the stage's [`Stage::poll`].
    pub fn poll(&mut self, cx: &StageCx<'_>, exits: &mut Exits<M>, pool: &mut dyn PacketPool<M>) {
        self.tally = Tally::default();
        let t0 = rdtsc();
        {
            let mut out = Out::<M, S::Next, S::Drop>::new(&mut self.queues, exits, pool, &mut self.tally);
            self.stage.poll(cx, &mut out);
        }
        let t1 = rdtsc();
        let t = &self.tally;
        let busy = t.tx + t.emitted + t.host + t.redirect + t.next.iter().sum::<u64>() + t.drops.iter().sum::<u64>();
        // Idle polls are not charged, so cycles per packet stay meaningful.
        self.stats
            .flush(0, if busy > 0 { t1.wrapping_sub(t0) } else { 0 }, &self.tally);
    }
    /// The queue for next label `n`.
    pub fn queue(&mut self, n: S::Next) -> &mut PacketVec<M> {
        &mut self.queues[n.index()]
    }
    /// The counters, shareable with another thread.
    pub fn stats(&self) -> std::sync::Arc<StageStats> {
        self.stats.clone()
    }
}

/// Object-safe view of a [`Node`], so a [`Graph`] can chain stages of different types.
pub trait DynNode<M: Mbuf>: Any {
    /// Stage name.
    fn name(&self) -> &'static str;
    /// Names of the next labels, in index order.
    fn next_labels(&self) -> Vec<&'static str>;
    /// Run over `input`.
    fn run(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, exits: &mut Exits<M>, pool: &mut dyn PacketPool<M>);
    /// Poll.
    fn poll(&mut self, cx: &StageCx<'_>, exits: &mut Exits<M>, pool: &mut dyn PacketPool<M>);
    /// The output queue of next label index `i`.
    fn queue_mut(&mut self, i: usize) -> &mut PacketVec<M>;
    /// The counters.
    fn stats(&self) -> std::sync::Arc<StageStats>;
    /// For downcasting to the concrete node.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to the concrete node.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<M: Mbuf + 'static, S: Stage<M> + 'static> DynNode<M> for Node<M, S> {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn next_labels(&self) -> Vec<&'static str> {
        S::Next::ALL.iter().map(|l| l.name()).collect()
    }
    fn run(&mut self, cx: &StageCx<'_>, input: &mut PacketVec<M>, exits: &mut Exits<M>, pool: &mut dyn PacketPool<M>) {
        Node::run(self, cx, input, exits, pool)
    }
    fn poll(&mut self, cx: &StageCx<'_>, exits: &mut Exits<M>, pool: &mut dyn PacketPool<M>) {
        Node::poll(self, cx, exits, pool)
    }
    fn queue_mut(&mut self, i: usize) -> &mut PacketVec<M> {
        &mut self.queues[i]
    }
    fn stats(&self) -> std::sync::Arc<StageStats> {
        self.stats.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A typed handle on a node of a [`Graph`].
#[derive(Debug)]
pub struct NodeId<S> {
    index: usize,
    _s: PhantomData<fn() -> S>,
}
impl<S> Clone for NodeId<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for NodeId<S> {}
impl<S> NodeId<S> {
    /// Position in the graph.
    pub fn index(self) -> usize {
        self.index
    }
}

/// An error wiring a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// An edge must point to a node added later (the graph runs in one forward pass).
    #[error("edge {from}.{label} -> {to} does not point forward")]
    Backward {
        /// Source stage.
        from: &'static str,
        /// Label.
        label: &'static str,
        /// Target stage.
        to: &'static str,
    },
    /// A next label was left unconnected.
    #[error("next label {label} of stage {stage} is not connected")]
    Unconnected {
        /// Stage.
        stage: &'static str,
        /// Label.
        label: &'static str,
    },
}

struct Slot<M: Mbuf + 'static> {
    node: Box<dyn DynNode<M>>,
    input: PacketVec<M>,
    edges: Vec<Option<usize>>,
}

/// Stages chained on one lcore. Nodes run in the order they were added; every edge points
/// forward, so one pass over the nodes carries a vector all the way through.
pub struct Graph<M: Mbuf + 'static> {
    slots: Vec<Slot<M>>,
    /// Transmit, host and redirect queues shared by every node.
    pub exits: Exits<M>,
    queue_cap: usize,
}

impl<M: Mbuf + 'static> std::fmt::Debug for Graph<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.slots.iter().map(|s| s.node.name()).collect();
        f.debug_struct("Graph").field("nodes", &names).finish()
    }
}

impl<M: Mbuf + 'static> Graph<M> {
    /// An empty graph for `ports` transmit ports and `lcores` redirect targets.
    pub fn new(ports: usize, lcores: usize) -> Self {
        Self::with_queue_capacity(ports, lcores, QUEUE_DEFAULT)
    }
    /// As [`Graph::new`] with a chosen queue capacity.
    pub fn with_queue_capacity(ports: usize, lcores: usize, queue_cap: usize) -> Self {
        Graph {
            slots: Vec::new(),
            exits: Exits::new(ports, lcores, queue_cap),
            queue_cap,
        }
    }
    /// Add a stage; the first stage added receives the graph's input. A stage whose next
    /// labels are [`crate::label::Never`] (a last stage) has no edge to wire.
    pub fn add<S: Stage<M> + 'static>(&mut self, stage: S) -> NodeId<S> {
        let last = std::any::TypeId::of::<S::Next>() == std::any::TypeId::of::<crate::label::Never>();
        let edges = if last {
            Vec::new()
        } else {
            vec![None; S::Next::ALL.len()]
        };
        self.slots.push(Slot {
            node: Box::new(Node::new(stage, self.queue_cap)),
            input: PacketVec::with_capacity(self.queue_cap),
            edges,
        });
        NodeId {
            index: self.slots.len() - 1,
            _s: PhantomData,
        }
    }
    /// Wire label `label` of `from` to the input of `to`.
    pub fn connect<S: Stage<M>, T>(
        &mut self,
        from: NodeId<S>,
        label: S::Next,
        to: NodeId<T>,
    ) -> Result<(), GraphError> {
        if to.index <= from.index {
            return Err(GraphError::Backward {
                from: self.slots[from.index].node.name(),
                label: label.name(),
                to: self.slots[to.index].node.name(),
            });
        }
        self.slots[from.index].edges[label.index()] = Some(to.index);
        Ok(())
    }
    /// Check every label is connected.
    pub fn check(&self) -> Result<(), GraphError> {
        for s in &self.slots {
            let labels = s.node.next_labels();
            for (i, e) in s.edges.iter().enumerate() {
                if e.is_none() {
                    return Err(GraphError::Unconnected {
                        stage: s.node.name(),
                        label: labels[i],
                    });
                }
            }
        }
        Ok(())
    }
    /// The stage of node `id`.
    pub fn stage<S: Stage<M> + 'static>(&self, id: NodeId<S>) -> &S {
        match self.slots[id.index].node.as_any().downcast_ref::<Node<M, S>>() {
            Some(n) => &n.stage,
            None => unreachable!("NodeId<S> always names a Node<M, S>"),
        }
    }
    /// The stage of node `id`, writable (control messages between vectors).
    pub fn stage_mut<S: Stage<M> + 'static>(&mut self, id: NodeId<S>) -> &mut S {
        match self.slots[id.index].node.as_any_mut().downcast_mut::<Node<M, S>>() {
            Some(n) => &mut n.stage,
            None => unreachable!("NodeId<S> always names a Node<M, S>"),
        }
    }
    /// Room in the first node's input queue.
    pub fn input_room(&self) -> usize {
        self.slots.first().map_or(0, |s| s.input.room())
    }
    /// Queue a packet for the first node; a full queue hands it back.
    pub fn push(&mut self, p: Packet<M>) -> Result<(), Packet<M>> {
        match self.slots.first_mut() {
            Some(s) => s.input.push(p),
            None => Err(p),
        }
    }
    /// Run one vector: every node in order over what is queued for it, polling each first
    /// when `poll` is set. Afterwards the packets are in [`Graph::exits`] (or dropped, held).
    pub fn run(&mut self, cx: &StageCx<'_>, pool: &mut dyn PacketPool<M>, poll: bool) {
        for i in 0..self.slots.len() {
            let (done, rest) = self.slots.split_at_mut(i + 1);
            let slot = &mut done[i];
            if poll {
                slot.node.poll(cx, &mut self.exits, pool);
            }
            if !slot.input.is_empty() {
                slot.node.run(cx, &mut slot.input, &mut self.exits, pool);
            }
            for (label, edge) in slot.edges.iter().enumerate() {
                let q = slot.node.queue_mut(label);
                if q.is_empty() {
                    continue;
                }
                match edge.and_then(|e| rest.get_mut(e - i - 1)) {
                    Some(target) => {
                        for p in q.drain() {
                            if let Err(p) = target.input.push(p) {
                                self.exits.overflow += 1;
                                pool.free(p.mbuf);
                            }
                        }
                    }
                    None => {
                        for p in q.drain() {
                            self.exits.overflow += 1;
                            pool.free(p.mbuf);
                        }
                    }
                }
            }
        }
    }
    /// Move the packets redirected to `lcore` (this graph's own lcore: a stage recirculating
    /// packets) back into the first node's input, ahead of whatever is pushed next. Returns
    /// how many moved; a full input frees the rest and counts them as overflow.
    pub fn recirculate(&mut self, lcore: usize, pool: &mut dyn PacketPool<M>) -> usize {
        let Some(q) = self.exits.redirect.get_mut(lcore) else {
            return 0;
        };
        let Some(first) = self.slots.first_mut() else { return 0 };
        let mut n = 0;
        for p in q.drain() {
            match first.input.push(p) {
                Ok(()) => n += 1,
                Err(p) => {
                    self.exits.overflow += 1;
                    pool.free(p.mbuf);
                }
            }
        }
        n
    }
    /// Packets waiting in the first node's input.
    pub fn queued(&self) -> usize {
        self.slots.first().map_or(0, |s| s.input.len())
    }
    /// Every node's counters, in graph order.
    pub fn reports(&self) -> Vec<StageReport> {
        self.slots.iter().map(|s| s.node.stats().report()).collect()
    }
    /// Every node's counters handle (for another thread to read).
    pub fn stats(&self) -> Vec<std::sync::Arc<StageStats>> {
        self.slots.iter().map(|s| s.node.stats()).collect()
    }
}
