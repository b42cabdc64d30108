//! The TCP state machine of IPVS/DPVS and the per-state timeouts.
//!
//! States carry IPVS's numbering (`IP_VS_TCP_S_*`, the same as DPVS's `DPVS_TCP_S_*`), so a
//! [`Conn::state`](crate::Conn::state) byte reads the same as in `ipvsadm -L -c`. The transition
//! tables are the Linux kernel's (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, `tcp_states[]`):
//! INPUT (client -> server), OUTPUT (server -> client) and INPUT-ONLY, the table for modes in
//! which the balancer sees only the inbound half (DR, TUNNEL: IPVS's
//! `IP_VS_CONN_F_NOOUTPUT`, switched back to the full tables once an outbound packet is seen).
//! The flag picked is the first of RST, SYN, FIN, ACK that is set (`tcp_state_idx`); a segment
//! with none of them moves the connection to CLOSE, as both IPVS and DPVS do.
//!
//! DPVS's table differs from the kernel's in one cell: an ACK (INPUT) on a connection in NONE
//! goes to CLOSE in DPVS and to ESTABLISHED in the kernel. rvs follows the kernel (the state
//! table of REFERENCE.md); a connection rvs creates always leaves NONE on the SYN that made it,
//! so the cell is reached only by a synproxy connection created on the client's ACK, where
//! ESTABLISHED is the right answer.
//!
//! UDP and ICMP have one state, IPVS's "normal" (0), with the service's `udp` and `icmp`
//! timeouts.

use rvs_core::addr::Proto;
use rvs_core::meta::{Dir, TcpFlags};
use rvs_core::service::Timeouts;

/// A TCP connection state, IPVS numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum TcpState {
    /// No packet seen yet (`IP_VS_TCP_S_NONE`).
    #[default]
    None = 0,
    /// Handshake complete.
    Established = 1,
    /// SYN seen from the server side.
    SynSent = 2,
    /// SYN seen from the client.
    SynRecv = 3,
    /// A FIN seen, the other half still open.
    FinWait = 4,
    /// Both FINs seen.
    TimeWait = 5,
    /// Reset or closed.
    Close = 6,
    /// The server half-closed first.
    CloseWait = 7,
    /// Waiting for the last ACK.
    LastAck = 8,
    /// Listen (never entered by a packet of a balanced connection).
    Listen = 9,
    /// Synproxy: SYN-ACK answered on behalf of the server.
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

/// UDP/ICMP "normal" state number (IPVS's `IP_VS_UDP_S_NORMAL`).
pub const NORMAL: u8 = 0;

impl TcpState {
    /// Every state, by number.
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];
    /// From a state number; out-of-range numbers read as CLOSE (never a panic).
    #[inline]
    pub const fn from_u8(n: u8) -> TcpState {
        if (n as usize) < TCP_STATES {
            Self::ALL[n as usize]
        } else {
            TcpState::Close
        }
    }
    /// The state number.
    #[inline]
    pub const fn number(self) -> u8 {
        self as u8
    }
    /// Name as `ipvsadm -L -c` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// Which transition table a packet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Client -> server with replies seen (FNAT, NAT, SNAT).
    Input = 0,
    /// Server -> client.
    Output = 1,
    /// Client -> server when replies bypass the balancer (DR, TUNNEL).
    InputOnly = 2,
}

impl Table {
    /// The table for a packet in direction `dir`; `input_only` when the connection has seen
    /// no outbound packet and its mode sends replies around the balancer.
    #[inline]
    pub const fn for_packet(dir: Dir, input_only: bool) -> Table {
        match dir {
            Dir::Out => Table::Output,
            Dir::In if input_only => Table::InputOnly,
            Dir::In => Table::Input,
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynRecv as SR,
    SynSent as SS, TimeWait as TW,
};

/// `TRANSITIONS[table * 4 + flag][state]`, flag 0 SYN, 1 FIN, 2 ACK, 3 RST; columns NONE, ES,
/// SS, SR, FW, TW, CL, CW, LA, LI, SA (the kernel's `tcp_states[]`).
#[rustfmt::skip]
const TRANSITIONS: [[TcpState; TCP_STATES]; 12] = [
    // INPUT
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    // OUTPUT
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    // INPUT-ONLY
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The row of a segment's flags: RST, then SYN, FIN, ACK (`tcp_state_idx`); `None` when
/// none is set.
#[inline]
pub const fn flag_row(f: TcpFlags) -> Option<usize> {
    if f.rst() {
        Some(3)
    } else if f.syn() {
        Some(0)
    } else if f.fin() {
        Some(1)
    } else if f.ack() {
        Some(2)
    } else {
        None
    }
}

/// The four flags the state machine reads, packed in 4 bits: FIN, SYN, RST as on the wire
/// (bits 0-2) and ACK (wire bit 4) moved to bit 3.
#[inline]
const fn flag_bits(f: TcpFlags) -> usize {
    let b = f.0 as usize;
    (b & 0x7) | ((b >> 1) & 0x8)
}

/// [`TRANSITIONS`] expanded by [`flag_bits`]: `NEXT[table * 16 + flag_bits][state]`, the row
/// of [`flag_row`] resolved at compile time (a segment with none of the four flags: CLOSE),
/// so a transition is one table read instead of a chain of flag tests.
const NEXT: [[TcpState; TCP_STATES]; 48] = {
    let mut t = [[TcpState::Close; TCP_STATES]; 48];
    let mut table = 0;
    while table < 3 {
        let mut bits = 0;
        while bits < 16 {
            // The wire flags of these bits (ACK back at 0x10).
            let f = TcpFlags(((bits & 0x7) | ((bits & 0x8) << 1)) as u8);
            if let Some(row) = flag_row(f) {
                t[table * 16 + bits] = TRANSITIONS[table * 4 + row];
            }
            bits += 1;
        }
        table += 1;
    }
    t
};

/// The state after a segment with flags `f` reaches a connection in `from`, looked up in
/// `table`. A segment with none of RST, SYN, FIN, ACK gives CLOSE.
#[inline]
pub const fn transition(table: Table, from: TcpState, f: TcpFlags) -> TcpState {
    NEXT[table as usize * 16 + flag_bits(f)][from as usize]
}

/// The timeout of TCP state `s` in seconds.
#[inline]
pub const fn timeout(s: TcpState, t: &Timeouts) -> u32 {
    match s {
        TcpState::None => t.none,
        TcpState::Established => t.established,
        TcpState::SynSent => t.syn_sent,
        TcpState::SynRecv => t.syn_recv,
        TcpState::FinWait => t.fin_wait,
        TcpState::TimeWait => t.time_wait,
        TcpState::Close => t.close,
        TcpState::CloseWait => t.close_wait,
        TcpState::LastAck => t.last_ack,
        TcpState::Listen => t.listen,
        TcpState::SynAck => t.synack,
    }
}

/// The timeout of state number `state` of a connection over `proto`: the TCP state's, or
/// the UDP / ICMP timeout.
#[inline]
pub const fn proto_timeout(proto: Proto, state: u8, t: &Timeouts) -> u32 {
    match proto {
        Proto::Tcp => timeout(TcpState::from_u8(state), t),
        Proto::Udp => t.udp,
        Proto::Icmp | Proto::Icmp6 => t.icmp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: TcpState = TcpState::SynAck;

    fn f(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    #[test]
    fn flag_precedence_is_rst_syn_fin_ack() {
        assert_eq!(flag_row(f(TcpFlags::RST | TcpFlags::SYN | TcpFlags::ACK)), Some(3));
        assert_eq!(flag_row(f(TcpFlags::SYN | TcpFlags::ACK)), Some(0));
        assert_eq!(flag_row(f(TcpFlags::FIN | TcpFlags::ACK)), Some(1));
        assert_eq!(flag_row(f(TcpFlags::ACK | TcpFlags::PSH)), Some(2));
        assert_eq!(flag_row(f(TcpFlags::PSH)), None);
        assert_eq!(transition(Table::Input, ES, f(TcpFlags::PSH)), CL);
    }

    #[test]
    fn tables_differ_where_the_kernel_says() {
        // A client FIN on an established connection: CLOSE_WAIT when replies are seen,
        // FIN_WAIT when only the inbound half is.
        assert_eq!(transition(Table::Input, ES, f(TcpFlags::FIN | TcpFlags::ACK)), CW);
        assert_eq!(transition(Table::InputOnly, ES, f(TcpFlags::FIN | TcpFlags::ACK)), FW);
        // RST in SYNACK: back to SYN_RECV (input), CLOSE (input only).
        assert_eq!(transition(Table::Input, SA, f(TcpFlags::RST)), SR);
        assert_eq!(transition(Table::InputOnly, SA, f(TcpFlags::RST)), CL);
        // The server's SYN-ACK keeps SYN_RECV; its ACK establishes.
        assert_eq!(transition(Table::Output, SR, f(TcpFlags::SYN | TcpFlags::ACK)), SR);
        assert_eq!(transition(Table::Input, SR, f(TcpFlags::ACK)), ES);
    }

    #[test]
    fn expanded_table_agrees_with_the_flag_rule_for_every_flag_byte() {
        for table in [Table::Input, Table::Output, Table::InputOnly] {
            for from in TcpState::ALL {
                for bits in 0..=255u8 {
                    let want = match flag_row(f(bits)) {
                        Some(row) => TRANSITIONS[table as usize * 4 + row][from as usize],
                        None => CL,
                    };
                    assert_eq!(transition(table, from, f(bits)), want, "{table:?} {from:?} {bits:#x}");
                }
            }
        }
    }

    #[test]
    fn numbering_and_timeouts_match_dpvs() {
        assert_eq!(TcpState::from_u8(5), TcpState::TimeWait);
        assert_eq!(TcpState::from_u8(200), TcpState::Close);
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(s.number() as usize, i);
        }
        let t = Timeouts::DPVS;
        let secs: Vec<u32> = TcpState::ALL.iter().map(|s| timeout(*s, &t)).collect();
        assert_eq!(secs, [2, 90, 3, 30, 7, 7, 3, 7, 7, 120, 30]);
        assert_eq!(proto_timeout(Proto::Udp, 0, &t), 300);
        assert_eq!(proto_timeout(Proto::Icmp, 0, &t), 300);
    }
}
