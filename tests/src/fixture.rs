//! Named fixtures run through a chain of real stages.
//!
//! A [`Fixture`] is plain data plus a graph builder: a name, input packets (bytes and receive
//! port), a closure that wires the [`Graph`] to run them through, what must come out
//! ([`Expect`]: transmitted on a port with exact bytes, dropped by a stage for a reason, handed
//! to the host path, held by a stage, redirected to an lcore) and counter values read from the
//! stages' [`StageReport`]s. Expected bytes are the fixture author's to compute from the input
//! and the configuration (typically a clone of the input's [`crate::Pkt`] with the rewritten
//! fields changed), never copied from the code's output.
//!
//! [`Fixture::run`] feeds the inputs in vectors of a chosen size through a fresh graph with a
//! [`HeapPool`], collects every exit, and compares; a mismatch panics with a hex diff and the
//! decoded view of both sides. [`Fixture::run_vector_sizes`] runs it at several sizes and
//! also checks the outcomes agree ("vectors change nothing"). Benches take the same data:
//! [`Fixture::build_graph`], [`Fixture::inputs`], [`Fixture::context`].
//!
//! Outputs on one port are compared as a multiset by default: when two packets of a vector
//! take different paths through the graph, the order they reach a transmit queue depends on
//! the vector size (VPP behaves the same). [`Fixture::ordered`] asks for exact order.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use rvs_core::counters::StageReport;
use rvs_core::mbuf::{HeapMbuf, HeapPool, Mbuf, PacketPool};
use rvs_core::service::Snapshot;
use rvs_core::stage::{Graph, Packet, StageCx};
use rvs_core::time::Now;

use crate::decode::decode;
use crate::hex;

/// One input packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The wire bytes.
    pub bytes: Vec<u8>,
    /// The port it arrives on.
    pub port: u16,
}

/// What must become of the packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Transmitted on `port` with exactly these bytes.
    Tx {
        /// Port.
        port: u16,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Dropped by the stage named `stage` for the reason named `reason` (checked through the
    /// stage's drop counter).
    Drop {
        /// Stage name.
        stage: &'static str,
        /// Drop reason name.
        reason: &'static str,
    },
    /// Handed to the host path with these bytes.
    Host {
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Kept by the stage named `stage` (checked through its held counter).
    Held {
        /// Stage name.
        stage: &'static str,
    },
    /// Redirected to lcore `lcore` with these bytes.
    Redirect {
        /// Target lcore.
        lcore: u16,
        /// Bytes.
        bytes: Vec<u8>,
    },
}

impl Expect {
    /// Transmitted on `port` as `bytes`.
    pub fn tx(port: u16, bytes: Vec<u8>) -> Self {
        Expect::Tx { port, bytes }
    }
    /// Dropped by `stage` for `reason`.
    pub fn drop(stage: &'static str, reason: &'static str) -> Self {
        Expect::Drop { stage, reason }
    }
    /// To the host path as `bytes`.
    pub fn host(bytes: Vec<u8>) -> Self {
        Expect::Host { bytes }
    }
    /// Held by `stage`.
    pub fn held(stage: &'static str) -> Self {
        Expect::Held { stage }
    }
    /// Redirected to `lcore` as `bytes`.
    pub fn redirect(lcore: u16, bytes: Vec<u8>) -> Self {
        Expect::Redirect { lcore, bytes }
    }
}

/// A builder of the graph a fixture runs through (called once per run: every run starts
/// from fresh stage state).
pub type GraphFn = Arc<dyn Fn() -> Graph<HeapMbuf> + Send + Sync>;

/// A named fixture: inputs, graph, expectations.
#[derive(Clone)]
pub struct Fixture {
    /// Name, printed on failure.
    pub name: String,
    /// Input packets in arrival order.
    pub inputs: Vec<Input>,
    /// Builds the graph.
    pub graph: GraphFn,
    /// What must come out.
    pub expect: Vec<Expect>,
    /// (stage, counter, value): see [`counter`] for counter names.
    pub counters: Vec<(&'static str, String, u64)>,
    /// The service snapshot handed to the stages.
    pub snapshot: Arc<Snapshot>,
    /// The time of the input vectors.
    pub now: Now,
    /// The lcore the graph runs on.
    pub lcore: u16,
    /// Times of extra empty rounds (polls only) after the inputs, e.g. to release held
    /// packets or fire timers.
    pub polls: Vec<Now>,
    /// Packets expected lost to full queues.
    pub overflow: u64,
    /// Compare outputs per exit in order instead of as a multiset.
    pub ordered: bool,
    /// Let output packets carry bad checksums or malformed headers (default: every output
    /// must pass [`crate::decode::decode_checked`]).
    pub allow_unclean: bool,
    /// Buffers in the pool.
    pub pool_size: usize,
    /// Buffers expected out of the pool at the end (kept by stages); anything else is a
    /// leak (a packet neither disposed of nor kept). Default 0.
    pub pool_in_use: usize,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .field("inputs", &self.inputs.len())
            .field("expect", &self.expect.len())
            .finish()
    }
}

/// What came out of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Transmitted packets: (port, bytes), in the order the queues were drained.
    pub tx: Vec<(u16, Vec<u8>)>,
    /// Host-path packets.
    pub host: Vec<Vec<u8>>,
    /// Redirected packets: (lcore, bytes).
    pub redirect: Vec<(u16, Vec<u8>)>,
    /// Every stage's counters at the end.
    pub reports: Vec<StageReport>,
    /// Packets lost to full queues.
    pub overflow: u64,
    /// Buffers not back in the pool at the end (held by stages, or leaked).
    pub pool_in_use: usize,
}

/// A counter of a stage report by name: `vectors`, `packets`, `cycles`, `tx`, `host`, `redirect`,
/// `held`, `emitted`, `drops` (all reasons), `drop.<reason>`, `next.<label>`.
pub fn counter(r: &StageReport, name: &str) -> Option<u64> {
    Some(match name {
        "vectors" => r.vectors,
        "packets" => r.packets,
        "cycles" => r.cycles,
        "tx" => r.tx,
        "host" => r.host,
        "redirect" => r.redirect,
        "held" => r.held,
        "emitted" => r.emitted,
        "drops" => r.total_drops(),
        _ => {
            if let Some(reason) = name.strip_prefix("drop.") {
                return r.drops.iter().find(|d| d.reason == reason).map(|d| d.count);
            }
            if let Some(label) = name.strip_prefix("next.") {
                return r.next.iter().find(|(n, _)| *n == label).map(|(_, c)| *c);
            }
            return None;
        }
    })
}

/// Every counter name of a report, for error messages.
pub fn counter_names(r: &StageReport) -> Vec<String> {
    let mut v: Vec<String> = [
        "vectors", "packets", "tx", "host", "redirect", "held", "emitted", "drops",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(r.drops.iter().map(|d| format!("drop.{}", d.reason)));
    v.extend(r.next.iter().map(|(n, _)| format!("next.{n}")));
    v
}

/// The counters of every stage, one line each, nonzero values only.
pub fn format_reports(reports: &[StageReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = write!(s, "  {}:", r.name);
        for name in counter_names(r) {
            if name == "drops" {
                continue;
            }
            if let Some(v) = counter(r, &name).filter(|v| *v != 0) {
                let _ = write!(s, " {name}={v}");
            }
        }
        s.push('\n');
    }
    s
}

fn describe(bytes: &[u8]) -> String {
    let mut s = String::new();
    for line in decode(bytes).to_string().lines() {
        let _ = writeln!(s, "      {line}");
    }
    s
}

impl Fixture {
    /// A fixture named `name` running through the graph `graph` builds.
    pub fn new(name: impl Into<String>, graph: impl Fn() -> Graph<HeapMbuf> + Send + Sync + 'static) -> Self {
        Fixture {
            name: name.into(),
            inputs: Vec::new(),
            graph: Arc::new(graph),
            expect: Vec::new(),
            counters: Vec::new(),
            snapshot: Arc::new(Snapshot::empty()),
            now: Now::from_secs(1),
            lcore: 0,
            polls: Vec::new(),
            overflow: 0,
            ordered: false,
            allow_unclean: false,
            pool_size: 2048,
            pool_in_use: 0,
        }
    }
    /// Add an input packet arriving on `port`.
    pub fn input(mut self, port: u16, bytes: Vec<u8>) -> Self {
        self.inputs.push(Input { bytes, port });
        self
    }
    /// Add an expected output.
    pub fn expect(mut self, e: Expect) -> Self {
        self.expect.push(e);
        self
    }
    /// Expect counter `name` of stage `stage` to read `value` (see [`counter`]).
    pub fn counter(mut self, stage: &'static str, name: &str, value: u64) -> Self {
        self.counters.push((stage, name.to_string(), value));
        self
    }
    /// Use this service snapshot.
    pub fn snapshot(mut self, s: Arc<Snapshot>) -> Self {
        self.snapshot = s;
        self
    }
    /// Run the input vectors at `now`.
    pub fn now(mut self, now: Now) -> Self {
        self.now = now;
        self
    }
    /// Run on lcore `l`.
    pub fn lcore(mut self, l: u16) -> Self {
        self.lcore = l;
        self
    }
    /// After the inputs, run one empty polling round at `t`.
    pub fn poll_at(mut self, t: Now) -> Self {
        self.polls.push(t);
        self
    }
    /// Expect `n` packets lost to full queues.
    pub fn expect_overflow(mut self, n: u64) -> Self {
        self.overflow = n;
        self
    }
    /// Compare outputs in order.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }
    /// Accept outputs with bad checksums or malformed headers.
    pub fn allow_unclean(mut self) -> Self {
        self.allow_unclean = true;
        self
    }
    /// Expect `n` buffers still out of the pool at the end (packets stages keep).
    pub fn expect_pool_in_use(mut self, n: usize) -> Self {
        self.pool_in_use = n;
        self
    }
    /// Use a pool of `n` buffers.
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }

    /// A fresh graph, checked (every label wired).
    pub fn build_graph(&self) -> Result<Graph<HeapMbuf>, String> {
        let g = (self.graph)();
        g.check().map_err(|e| format!("fixture {}: graph: {e}", self.name))?;
        Ok(g)
    }
    /// The stage context of the input vectors.
    pub fn context(&self) -> StageCx<'_> {
        StageCx {
            now: self.now,
            lcore: self.lcore,
            snapshot: &self.snapshot,
        }
    }

    /// Run the inputs through a fresh graph in vectors of `vector_size` and collect what came
    /// out, without comparing.
    pub fn execute(&self, vector_size: usize) -> Result<Outcome, String> {
        if vector_size == 0 || vector_size > rvs_core::stage::VECTOR_MAX {
            return Err(format!(
                "vector size {vector_size} outside 1..={}",
                rvs_core::stage::VECTOR_MAX
            ));
        }
        let mut g = self.build_graph()?;
        let mut pool = HeapPool::new(self.pool_size);
        let mut out = Outcome::default();
        let mut cx = self.context();
        for chunk in self.inputs.chunks(vector_size) {
            for i in chunk {
                let Some(mut m) = pool.alloc_with(&i.bytes) else {
                    return Err(format!(
                        "fixture {}: pool of {} buffers exhausted or packet of {} bytes too big",
                        self.name,
                        self.pool_size,
                        i.bytes.len()
                    ));
                };
                m.set_port(i.port);
                if g.push(Packet::new(m)).is_err() {
                    return Err(format!("fixture {}: graph input queue full", self.name));
                }
            }
            g.run(&cx, &mut pool, true);
            collect(&mut g, &mut pool, &mut out);
        }
        for &t in &self.polls {
            cx.now = t;
            g.run(&cx, &mut pool, true);
            collect(&mut g, &mut pool, &mut out);
        }
        out.reports = g.reports();
        out.overflow = g.exits.overflow;
        out.pool_in_use = pool.capacity() - pool.available();
        Ok(out)
    }

    /// Compare an outcome with the expectations; each mismatch is one message.
    pub fn compare(&self, o: &Outcome) -> Vec<String> {
        let mut fails = Vec::new();
        // Packets, per exit.
        let mut want: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
        let mut got: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
        for e in &self.expect {
            match e {
                Expect::Tx { port, bytes } => want.entry(format!("tx port {port}")).or_default().push(bytes),
                Expect::Host { bytes } => want.entry("host".into()).or_default().push(bytes),
                Expect::Redirect { lcore, bytes } => {
                    want.entry(format!("redirect lcore {lcore}")).or_default().push(bytes)
                }
                Expect::Drop { .. } | Expect::Held { .. } => {}
            }
        }
        for (port, b) in &o.tx {
            got.entry(format!("tx port {port}")).or_default().push(b);
        }
        for b in &o.host {
            got.entry("host".into()).or_default().push(b);
        }
        for (l, b) in &o.redirect {
            got.entry(format!("redirect lcore {l}")).or_default().push(b);
        }
        let exits: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for exit in exits {
            let w = want.get(exit).cloned().unwrap_or_default();
            let g = got.get(exit).cloned().unwrap_or_default();
            compare_exit(exit, &w, &g, self.ordered, &mut fails);
        }
        if !self.allow_unclean {
            for (exit, list) in &got {
                for (k, b) in list.iter().enumerate() {
                    if let Err(e) = crate::decode::decode_checked(b) {
                        fails.push(format!("{exit} packet #{k} is not clean: {e}\n{}", describe(b)));
                    }
                }
            }
        }
        // Drops and held packets, through the counters.
        let mut by_stage: BTreeMap<&str, Vec<&StageReport>> = BTreeMap::new();
        for r in &o.reports {
            by_stage.entry(r.name).or_default().push(r);
        }
        let sum = |stage: &str, name: &str| -> Option<u64> {
            let rs = by_stage.get(stage)?;
            let mut total = None;
            for r in rs {
                if let Some(v) = counter(r, name) {
                    total = Some(total.unwrap_or(0) + v);
                }
            }
            total
        };
        let mut want_drops: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut want_held: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &self.expect {
            match e {
                Expect::Drop { stage, reason } => *want_drops.entry((stage, reason)).or_default() += 1,
                Expect::Held { stage } => *want_held.entry(stage).or_default() += 1,
                _ => {}
            }
        }
        for &(stage, reason) in want_drops.keys() {
            if !by_stage.contains_key(stage) {
                fails.push(format!(
                    "expected drop by stage {stage:?}, but the graph has no such stage"
                ));
            } else if sum(stage, &format!("drop.{reason}")).is_none() {
                fails.push(format!(
                    "expected drop by {stage} for {reason:?}, but {stage} has no such drop reason"
                ));
            }
        }
        for &stage in want_held.keys() {
            if !by_stage.contains_key(stage) {
                fails.push(format!(
                    "expected a packet held by stage {stage:?}, but the graph has no such stage"
                ));
            }
        }
        for (&stage, rs) in &by_stage {
            let mut reasons: Vec<&str> = rs.iter().flat_map(|r| r.drops.iter().map(|d| d.reason)).collect();
            reasons.sort_unstable();
            reasons.dedup();
            for reason in reasons {
                let w = want_drops.get(&(stage, reason)).copied().unwrap_or(0);
                let g = sum(stage, &format!("drop.{reason}")).unwrap_or(0);
                if w != g {
                    fails.push(format!("{stage} dropped {g} packets for {reason:?}, expected {w}"));
                }
            }
            let w = want_held.get(stage).copied().unwrap_or(0);
            let g = sum(stage, "held").unwrap_or(0);
            if w != g {
                fails.push(format!("{stage} held {g} packets, expected {w}"));
            }
        }
        for (stage, name, value) in &self.counters {
            match sum(stage, name) {
                Some(v) if v == *value => {}
                Some(v) => fails.push(format!("counter {stage}.{name} = {v}, expected {value}")),
                None => match by_stage.get(stage).and_then(|r| r.first()) {
                    Some(r) => fails.push(format!(
                        "stage {stage} has no counter {name:?}; it has {}",
                        counter_names(r).join(", ")
                    )),
                    None => fails.push(format!("no stage named {stage:?} for counter {name}")),
                },
            }
        }
        if o.pool_in_use != self.pool_in_use {
            fails.push(format!(
                "{} buffers out of the pool at the end, expected {} (a stage kept or leaked packets; \
                 expect_pool_in_use sets the number kept)",
                o.pool_in_use, self.pool_in_use
            ));
        }
        if o.overflow != self.overflow {
            fails.push(format!(
                "{} packets lost to full queues, expected {}",
                o.overflow, self.overflow
            ));
        }
        fails
    }

    /// Run with vectors of `vector_size` and compare: `Err` holds the whole failure report.
    pub fn try_run(&self, vector_size: usize) -> Result<Outcome, String> {
        let o = self.execute(vector_size)?;
        let fails = self.compare(&o);
        if fails.is_empty() {
            return Ok(o);
        }
        let mut s = format!("fixture {:?} (vector size {vector_size}) failed:\n", self.name);
        for f in fails {
            for (i, line) in f.lines().enumerate() {
                let _ = writeln!(s, "{}{line}", if i == 0 { "- " } else { "  " });
            }
        }
        let _ = write!(s, "counters:\n{}", format_reports(&o.reports));
        Err(s)
    }

    /// Run with vectors of `vector_size` and compare; panics with a readable report.
    pub fn run(&self, vector_size: usize) -> Outcome {
        match self.try_run(vector_size) {
            Ok(o) => o,
            Err(s) => panic!("{s}"),
        }
    }

    /// Run at each vector size, compare each, and check that the outcomes agree (outputs per
    /// exit as multisets, and every counter but `vectors` and `cycles`).
    pub fn run_vector_sizes(&self, sizes: &[usize]) -> Vec<Outcome> {
        let outs: Vec<Outcome> = sizes.iter().map(|&n| self.run(n)).collect();
        if let Some(first) = outs.first() {
            let norm = normalise(first);
            for (o, n) in outs.iter().zip(sizes).skip(1) {
                let other = normalise(o);
                assert!(
                    norm == other,
                    "fixture {:?}: vector size {n} gives another outcome than size {}:\n{:#?}\nvs\n{:#?}",
                    self.name,
                    sizes[0],
                    norm,
                    other
                );
            }
        }
        outs
    }
}

/// An outcome with vector-size-dependent parts removed: sorted outputs, no vectors/cycles.
fn normalise(o: &Outcome) -> Outcome {
    let mut n = o.clone();
    n.tx.sort();
    n.host.sort();
    n.redirect.sort();
    for r in &mut n.reports {
        r.vectors = 0;
        r.cycles = 0;
    }
    n
}

fn collect(g: &mut Graph<HeapMbuf>, pool: &mut HeapPool, out: &mut Outcome) {
    for (port, q) in g.exits.tx.iter_mut().enumerate() {
        for p in q.drain() {
            out.tx.push((port as u16, p.mbuf.data().to_vec()));
            pool.free(p.mbuf);
        }
    }
    for p in g.exits.host.drain() {
        out.host.push(p.mbuf.data().to_vec());
        pool.free(p.mbuf);
    }
    for (l, q) in g.exits.redirect.iter_mut().enumerate() {
        for p in q.drain() {
            out.redirect.push((l as u16, p.mbuf.data().to_vec()));
            pool.free(p.mbuf);
        }
    }
}

fn compare_exit(exit: &str, want: &[&[u8]], got: &[&[u8]], ordered: bool, fails: &mut Vec<String>) {
    if ordered {
        for k in 0..want.len().max(got.len()) {
            match (want.get(k), got.get(k)) {
                (Some(w), Some(g)) if w == g => {}
                (Some(w), Some(g)) => fails.push(format!(
                    "{exit} packet #{k} differs\n{}    expected:\n{}    got:\n{}",
                    hex::diff(w, g),
                    describe(w),
                    describe(g)
                )),
                (Some(w), None) => fails.push(format!("{exit} packet #{k} missing; expected:\n{}", describe(w))),
                (None, Some(g)) => fails.push(format!(
                    "{exit} packet #{k} unexpected:\n{}{}",
                    describe(g),
                    hex::dump(g)
                )),
                (None, None) => {}
            }
        }
        return;
    }
    let mut left: Vec<&[u8]> = got.to_vec();
    let mut missing = Vec::new();
    for w in want {
        match left.iter().position(|g| g == w) {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(*w),
        }
    }
    // Pair each missing packet with the leftover output closest to it, for a useful diff.
    for w in missing {
        let best = left
            .iter()
            .enumerate()
            .max_by_key(|(_, g)| {
                let same = w.iter().zip(g.iter()).filter(|(a, b)| a == b).count();
                (g.len() == w.len(), same)
            })
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let g = left.remove(i);
                fails.push(format!(
                    "{exit}: expected packet not found; closest output:\n{}    expected:\n{}    got:\n{}",
                    hex::diff(w, g),
                    describe(w),
                    describe(g)
                ));
            }
            None => fails.push(format!(
                "{exit}: expected packet missing:\n{}{}",
                describe(w),
                hex::dump(w)
            )),
        }
    }
    for g in left {
        fails.push(format!("{exit}: unexpected packet:\n{}{}", describe(g), hex::dump(g)));
    }
}
