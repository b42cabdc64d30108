//! The TCP state machine driven by packet sequences through `LcoreConns::on_packet`: state,
//! timeout, expiry and the destination's active/inactive counters checked after every packet,
//! with the full tables (FNAT) and the input-only table (DR).
//!
//! Every state gets a distinct timeout here, so checking the timeout also checks that it was
//! taken from the right state. The expected states are written out from the IPVS transition
//! tables (`tcp_states[]` in the kernel's `ip_vs_proto_tcp.c`), row by row in the comments.

use std::sync::Arc;

use rvs_conn::{Conn, ConnConfig, ConnFlags, LcoreConns, TcpState, Tuple};
use rvs_core::addr::{Addr, Proto};
use rvs_core::load::LoadTable;
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::service::{Dest, DestId, Forward, Timeouts};
use rvs_core::time::Now;

use TcpState::*;

const TO: Timeouts = Timeouts {
    none: 2,
    established: 1000,
    syn_sent: 3,
    syn_recv: 30,
    fin_wait: 40,
    time_wait: 50,
    close: 60,
    close_wait: 70,
    last_ack: 80,
    listen: 90,
    synack: 100,
    udp: 300,
    icmp: 310,
};

fn timeout_of(s: TcpState) -> u32 {
    match s {
        None => TO.none,
        Established => TO.established,
        SynSent => TO.syn_sent,
        SynRecv => TO.syn_recv,
        FinWait => TO.fin_wait,
        TimeWait => TO.time_wait,
        Close => TO.close,
        CloseWait => TO.close_wait,
        LastAck => TO.last_ack,
        Listen => TO.listen,
        SynAck => TO.synack,
    }
}

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

struct Fixture {
    t: LcoreConns,
    loads: Arc<LoadTable>,
    id: u32,
    now: Now,
}

fn setup(fwd: Forward) -> Fixture {
    let loads = Arc::new(LoadTable::new(4));
    let mut t = LcoreConns::new(
        ConnConfig {
            capacity: 4,
            buckets_log2: 2,
            seed: 1,
            timer_tick_ms: 10,
        },
        0,
        1,
        loads.clone(),
    );
    let inb = Tuple {
        proto: Proto::Tcp,
        saddr: Addr::v4([198, 18, 5, 5]),
        daddr: Addr::v4([198, 18, 0, 100]),
        sport: 40000,
        dport: 80,
    };
    let (rs_port, laddr, lport) = match fwd {
        Forward::Fnat => (8080, Addr::v4([198, 18, 1, 1]), 2000),
        _ => (80, Addr::UNSPECIFIED, 0),
    };
    let mut c = Conn {
        in_tuple: inb,
        out_tuple: Conn::out_tuple_for(fwd, &inb, Addr::v4([198, 18, 1, 11]), rs_port, laddr, lport),
        fwd,
        ..Default::default()
    };
    assert!(t.bind_dest(&mut c, &Dest::new(DestId(1), Addr::v4([198, 18, 1, 11]), rs_port)));
    let now = Now::from_secs(1000);
    let id = t.insert(c, now).expect("insert");
    Fixture { t, loads, id, now }
}

/// Feed `steps` (direction, flags, expected state) and check state, timeout, expiry and
/// counters after each.
fn drive(fwd: Forward, steps: &[(Dir, u8, TcpState)]) -> Fixture {
    let mut f = setup(fwd);
    assert_eq!(f.loads.get(DestId(1)).inactive, 1, "a new connection counts inactive");
    for (i, &(dir, flags, want)) in steps.iter().enumerate() {
        f.now = f.now.plus_nanos(1_000_000); // 1 ms apart
        f.t.on_packet(f.id, dir, TcpFlags(flags), &TO, f.now);
        let c = f.t.conn(f.id).expect("live");
        let what = format!("{fwd:?} step {i}: {dir:?} flags {flags:#04x}");
        assert_eq!(TcpState::from_u8(c.state), want, "{what}");
        assert_eq!(c.timeout_secs, timeout_of(want), "{what}");
        let slack = c.expires.nanos() - f.now.plus_secs(u64::from(timeout_of(want))).nanos();
        assert!(
            slack < Now::SEC,
            "{what}: expiry {:?} beyond timeout + 1 s jitter",
            c.expires
        );
        let l = f.loads.get(DestId(1));
        let established = want == Established;
        assert_eq!(
            (l.active, l.inactive),
            (established as u32, !established as u32),
            "{what}: counters"
        );
        assert_eq!(c.flags.has(ConnFlags::INACTIVE), !established, "{what}: INACTIVE flag");
    }
    f
}

#[test]
fn handshake_data_and_client_close_full_table() {
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),           // INPUT syn, NONE -> SR
            (Dir::Out, SYN | ACK, SynRecv),    // OUTPUT syn, SR -> SR
            (Dir::In, ACK, Established),       // INPUT ack, SR -> ES
            (Dir::In, ACK | PSH, Established), // data
            (Dir::Out, ACK | PSH, Established),
            (Dir::In, FIN | ACK, CloseWait), // INPUT fin, ES -> CW
            (Dir::Out, ACK, CloseWait),      // OUTPUT ack, CW -> CW
            (Dir::Out, FIN | ACK, TimeWait), // OUTPUT fin, CW -> TW
            (Dir::In, ACK, TimeWait),        // INPUT ack, TW -> TW
        ],
    );
}

#[test]
fn server_half_close_full_table() {
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::Out, FIN | ACK, FinWait), // OUTPUT fin, ES -> FW
            (Dir::In, ACK, FinWait),        // INPUT ack, FW -> FW: the client may keep sending
            (Dir::In, ACK | PSH, FinWait),
            (Dir::In, FIN | ACK, TimeWait), // INPUT fin, FW -> TW
            (Dir::Out, ACK, TimeWait),
        ],
    );
}

#[test]
fn rst_closes_from_established_and_from_syn_recv() {
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::In, RST | ACK, Close), // INPUT rst, ES -> CL (RST wins over ACK)
            (Dir::In, ACK, Close),       // INPUT ack, CL -> CL
        ],
    );
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, RST | ACK, Close), // OUTPUT rst, SR -> CL: the server refused
        ],
    );
    // INPUT rst in SYN_RECV keeps SYN_RECV (a stray RST must not kill a handshake).
    drive(Forward::Fnat, &[(Dir::In, SYN, SynRecv), (Dir::In, RST, SynRecv)]);
}

#[test]
fn simultaneous_close_full_table() {
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::In, FIN | ACK, CloseWait), // INPUT fin, ES -> CW
            (Dir::Out, FIN | ACK, TimeWait), // OUTPUT fin, CW -> TW (FINs crossed)
            (Dir::In, ACK, TimeWait),
            (Dir::Out, ACK, TimeWait),
        ],
    );
}

#[test]
fn retransmitted_syn_keeps_syn_recv_and_counts_once() {
    let f = drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::In, SYN, SynRecv), // INPUT syn, SR -> SR
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::In, SYN, Established), // INPUT syn, ES -> ES
        ],
    );
    assert_eq!(f.t.len(), 1);
}

#[test]
fn segment_without_syn_fin_ack_rst_closes() {
    drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::In, PSH, Close),
        ],
    );
}

#[test]
fn input_only_table_for_dr() {
    drive(
        Forward::Dr,
        &[
            (Dir::In, SYN, SynRecv),     // INPUT-ONLY syn, NONE -> SR
            (Dir::In, ACK, Established), // INPUT-ONLY ack, SR -> ES (the SYN-ACK went around us)
            (Dir::In, ACK | PSH, Established),
            (Dir::In, FIN | ACK, FinWait), // INPUT-ONLY fin, ES -> FW (full table: CW)
            (Dir::In, ACK, FinWait),       // INPUT-ONLY ack, FW -> FW
            (Dir::In, FIN | ACK, FinWait), // retransmitted FIN, FW -> FW
            (Dir::In, RST, Close),         // INPUT-ONLY rst, FW -> CL
        ],
    );
    drive(
        Forward::Dr,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::In, SYN, SynRecv), // retransmitted SYN
            (Dir::In, RST, SynRecv), // INPUT-ONLY rst, SR -> SR
        ],
    );
}

#[test]
fn dr_switches_to_full_tables_once_a_reply_is_seen() {
    // IPVS clears IP_VS_CONN_F_NOOUTPUT on the first outbound packet.
    let f = drive(
        Forward::Dr,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
            (Dir::In, FIN | ACK, CloseWait), // full INPUT table now: ES -> CW
        ],
    );
    assert!(f.t.conn(f.id).expect("live").flags.has(ConnFlags::OUTPUT_SEEN));
}

#[test]
fn rst_after_established_moves_the_timer_earlier_and_expiry_releases_counters() {
    let mut f = drive(
        Forward::Fnat,
        &[
            (Dir::In, SYN, SynRecv),
            (Dir::Out, SYN | ACK, SynRecv),
            (Dir::In, ACK, Established),
        ],
    );
    let snap = rvs_core::service::Snapshot::empty();
    // Let the wheel reach the first deadline (NONE: 2 s): the entry is re-queued at the
    // established deadline (1000 s), nothing expires.
    f.now = f.now.plus_secs(5);
    assert_eq!(f.t.expire(f.now, usize::MAX, &snap), 0);
    assert!(f.t.stats().timer_requeued >= 1);
    // A RST: CLOSE, 60 s. The entry waiting at 1000 s must move.
    f.t.on_packet(f.id, Dir::In, TcpFlags(RST), &TO, f.now);
    assert_eq!(f.t.stats().timer_moved, 1);
    assert_eq!(f.t.expire(f.now.plus_secs(59), usize::MAX, &snap), 0);
    assert_eq!(f.t.expire(f.now.plus_secs(62), usize::MAX, &snap), 1);
    let l = f.loads.get(DestId(1));
    assert_eq!((l.active, l.inactive), (0, 0));
}

#[test]
fn udp_and_icmp_keep_normal_state_with_their_timeouts() {
    let loads = Arc::new(LoadTable::new(4));
    let mut t = LcoreConns::new(
        ConnConfig {
            capacity: 4,
            buckets_log2: 2,
            seed: 1,
            timer_tick_ms: 10,
        },
        0,
        1,
        loads.clone(),
    );
    for (proto, want) in [(Proto::Udp, TO.udp), (Proto::Icmp, TO.icmp)] {
        let inb = Tuple {
            proto,
            saddr: Addr::v4([198, 18, 5, 5]),
            daddr: Addr::v4([198, 18, 0, 100]),
            sport: 7,
            dport: 7,
        };
        let mut c = Conn {
            in_tuple: inb,
            out_tuple: Conn::out_tuple_for(Forward::Nat, &inb, Addr::v4([198, 18, 1, 11]), 7, Addr::UNSPECIFIED, 0),
            fwd: Forward::Nat,
            ..Default::default()
        };
        assert!(t.bind_dest(&mut c, &Dest::new(DestId(2), Addr::v4([198, 18, 1, 11]), 7)));
        let id = t.insert(c, Now::from_secs(1)).expect("insert");
        t.on_packet(id, Dir::In, TcpFlags(0), &TO, Now::from_secs(2));
        t.on_packet(id, Dir::Out, TcpFlags(SYN | FIN), &TO, Now::from_secs(3));
        let c = t.conn(id).expect("live");
        assert_eq!((c.state, c.timeout_secs), (0, want), "{proto:?}");
    }
    // UDP and ICMP never become active.
    assert_eq!((loads.get(DestId(2)).active, loads.get(DestId(2)).inactive), (0, 2));
}
