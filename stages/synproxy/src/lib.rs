//! rvs-synproxy: the SYN-cookie proxy of DPVS (`src/ipvs/ip_vs_synproxy.c`) in three steps,
//! three stages of one lcore's graph, so a SYN flood to a synproxy service costs the balancer
//! one SYN-ACK per SYN and no state at all, and a real server sees only clients that
//! completed a handshake.
//!
//! ```text
//! parse -> synproxy-syn (1) -> lookup --hit--> synproxy-seq (3) -> xmit
//!                                     \--miss--> synproxy-ack (2) -> schedule -> conn-new --/
//! ```
//!
//! 1. [`SynProxy`] (step 1, before lookup): a SYN to a synproxy service without a
//!    connection is answered with a SYN-ACK whose ISN is a [`cookie`] (DPVS's layout: keyed
//!    hash of the 4-tuple and client ISN, a 60 s counter valid 4 ticks, MSS index, window
//!    scale, timestamp and SACK bits; the Linux SYN-cookie layout), made in place from the
//!    SYN and sent back out of the port it came in on. Nothing is created.
//! 2. [`SynProxyAck`] (step 2, on lookup's miss path, before schedule): an ACK without a
//!    connection to a synproxy service whose `ack - 1` is a valid cookie is kept, and a SYN
//!    with the client's ISN and the cookie's options goes on to schedule and conn-new in its
//!    place, which make the connection from it as from any SYN. Invalid cookies are counted
//!    drops.
//! 3. [`SynProxySeq`] (step 3, before xmit, fed by lookup's hits and conn-new): flags the
//!    connection SYNPROXY in SYN_SENT as the SYN passes to xmit (and the real server); keeps
//!    further client ACKs (at most 3 per handshake, DPVS's default); on the server's SYN-ACK
//!    sets `delta = cookie ISN - server ISN`, establishes the connection, releases the kept
//!    ACKs toward the server (the first completes its handshake) and from then on adjusts
//!    sequence numbers both ways: server -> client seq + delta, client -> server ack and SACK
//!    edges - delta. xmit needs no synproxy code: it sees packets already adjusted.
//!
//! Steps 2 and 3 share the handshakes in flight ([`pending`]); steps 1 and 2 must use the
//! same [`CookieKey`] (on every lcore: one seed). [`stages`] builds the three with one key.
//! Defaults are DPVS's ([`SynProxyConfig::default`]): MSS 1452, TTL 63, SACK on, window
//! scale off, timestamps off, 3 saved ACKs, 3 SYN retries.
//!
//! Wiring into a worker graph (node order matters: edges point forward):
//!
//! ```text
//! let (syn, ack, seq) = rvs_synproxy::stages::<M>(cfg, seed, conns.clone(), loads.clone());
//! // parse, syn, lookup, ack, schedule, conn-new, arp, seq, xmit -- in this order
//! ```
//!
//! (`pipeline/src/worker.rs` wires them so.)
//!
//! | feature | shown by (`tests/closed_loop.rs` unless named) |
//! |---|---|
//! | cookie valid within 4 ticks, not after, nor before; fails for another tuple, ISN or key (IPv4, IPv6); forgery rate | `cookie::tests` (proptest, fixed seed) |
//! | DPVS data-word layout; SipHash-2-4 reference vectors | `cookie::tests::data_word_layout_is_dpvs`, `siphash_reference_vectors` |
//! | handshake table agrees with a `HashMap` model; at most 3 saved ACKs | `pending::tests` |
//! | step 1: SYN-ACK port, MACs, TTL, ports, ack, cookie ISN, options (MSS clamp, SACK kept, wscale/TS NOPed), nothing created | `fnat_ipv4_handshake_and_data_both_ways` (via `handshake_to_rs`), `nat_ipv6_handshake_and_data` |
//! | step 1: VLAN kept, SYN payload cut, no MSS offered none answered | `vlan_tag_is_kept_on_the_synack` |
//! | step 1: non-synproxy service untouched, weight-0 service drops, DR passed on unproxied | `step_one_leaves_other_traffic_alone` |
//! | step 2: SYN to the server with the client's ISN and cookie options; connection SYNPROXY in SYN_SENT | `fnat_ipv4_handshake_and_data_both_ways` |
//! | step 2: bad cookie, other ISN, expired cookie dropped, nothing created | `bad_cookie_is_dropped_and_creates_nothing` |
//! | step 2: SYN refused by schedule, saved ACK freed at the next poll | `ack_whose_syn_schedule_refuses_is_freed_at_the_next_poll` |
//! | step 3: delta, ESTABLISHED, inactive -> active, saved ACK released with ack adjusted and TOA; data both ways adjusted (seq, ack, SACK) | `fnat_ipv4_handshake_and_data_both_ways`, `nat_ipv6_handshake_and_data` |
//! | ACKs of one vector and later ones saved (at most 3), released in order; non-ACK dropped | `acks_in_one_vector_and_while_waiting_are_saved_and_released_in_order` |
//! | server RST reaches the client with seq cookie + 1; saved ACKs freed | `server_rst_reaches_the_client_in_its_numbering_and_frees_saved_acks` |
//! | 3 SYN retries 1 s apart, then expiry frees the saved ACK, no buffer leaked | `silent_server_gets_three_syn_retries_then_the_connection_expires_and_acks_are_freed` |
//! | no allocation in any step after warm-up (counting allocator) | `no_allocation_per_packet_after_warm_up` |
//!
//! **Not done.** ACK-storm detection (DPVS's `dup_ack_thresh`, 10 duplicate ACKs); the RST
//! DPVS sends to a client whose cookie fails (rvs drops it, counted); DPVS's reuse of a
//! closing synproxy connection by a new cookie ACK (`dp_vs_synproxy_reuse_conn`); the
//! `defer` (wait for data) and `clwnd` (zero window) modes; the destination's passive
//! health (marked dead when it answers the SYN with RST); DPVS applies step 2 to ACKs for any
//! service, rvs only to synproxy services (others keep schedule's stray-packet rules); the
//! per-service knobs (one [`SynProxyConfig`] per lcore); IPv6 SYNs with extension headers
//! are not proxied (passed on, counted). Synproxy needs the balancer to see both directions:
//! services in DR, TUNNEL or SNAT mode are not proxied (passed on, counted).
//!
//! **Cost.** A cookie is two SipHash-2-4 of 40 bytes (the same for IPv4 and IPv6, whose
//! addresses are hashed as 16 bytes either way): make 55 to 90 ns, check about 98 ns (a check
//! recomputes both hashes), with `cargo bench -p rvs-synproxy --bench cookie` on the shared
//! 2-core development machine under a load average near 10 (IPv4 and IPv6 do identical work,
//! so their spread, 55 vs 88 ns for make, is the noise of that run). Step 1 adds one
//! service lookup and one connection lookup per SYN to a synproxy service; step 3 costs
//! packets of unproxied connections one connection fetch and a flag test.
//!
#![forbid(unsafe_code)]

pub mod ack;
mod build;
pub mod cookie;
pub mod pending;
pub mod seq;
pub mod syn;

use std::sync::Arc;

use rvs_conn::SharedConns;
use rvs_core::load::LoadTable;
use rvs_core::mbuf::Mbuf;

pub use ack::{AckCounters, SynProxyAck, SynProxyAckDrop, SynProxyAckNext};
pub use cookie::{CookieFlow, CookieKey, CookieOpts};
pub use pending::{Pending, SharedPending};
pub use seq::{SeqCounters, SynProxySeq, SynProxySeqDrop, SynProxySeqNext};
pub use syn::{SynCounters, SynProxy, SynProxyDrop, SynProxyNext};

/// Synproxy settings (DPVS's `synproxy` config block), shared by the three steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynProxyConfig {
    /// Largest MSS the SYN-ACK offers (DPVS `synack_mss`, 1452).
    pub mss: u16,
    /// TTL / hop limit of the SYN-ACK (DPVS `synack_ttl`, 63).
    pub ttl: u8,
    /// Accept SACK-permitted (DPVS `synack_options_sack`, on).
    pub sack: bool,
    /// Window-scale shift the SYN-ACK offers; 0 = no window scaling (DPVS
    /// `synack_options_wscale`, 0).
    pub wscale: u8,
    /// Accept timestamps (DPVS `synack_options_timestamp`, off).
    pub timestamps: bool,
    /// SYN retransmissions to a silent real server (DPVS `rs_syn_max_retry`, 3).
    pub syn_retries: u8,
    /// Milliseconds between retransmissions.
    pub syn_retry_ms: u64,
    /// Handshakes in flight per lcore.
    pub pending: usize,
}

impl Default for SynProxyConfig {
    fn default() -> Self {
        SynProxyConfig {
            mss: 1452,
            ttl: 63,
            sack: true,
            wscale: 0,
            timestamps: false,
            syn_retries: 3,
            syn_retry_ms: 1000,
            pending: 4096,
        }
    }
}

impl<M> Pending<M> {
    /// A table for `cap` handshakes, shareable by the stages of one lcore.
    pub fn shared(cap: usize, seed: u64) -> SharedPending<M> {
        std::rc::Rc::new(std::cell::RefCell::new(Pending::new(cap, seed)))
    }
}

/// The three stages of one lcore: cookies from `seed` (the same on every lcore), this lcore's
/// connections and destination counters, a fresh handshake table of `cfg.pending` entries.
pub fn stages<M: Mbuf>(
    cfg: SynProxyConfig,
    seed: u64,
    conns: SharedConns,
    loads: Arc<LoadTable>,
) -> (SynProxy, SynProxyAck<M>, SynProxySeq<M>) {
    let key = CookieKey::from_seed(seed);
    let pending: SharedPending<M> = Pending::shared(cfg.pending, seed ^ 0x7065_6e64);
    (
        SynProxy::new(cfg, key, conns.clone()),
        SynProxyAck::new(key, pending.clone()),
        SynProxySeq::new(cfg, conns, loads, pending),
    )
}
