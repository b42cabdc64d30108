//! The connection record shared by lookup, conn-new, synproxy and xmit.

use rvs_core::addr::{Addr, Proto};
use rvs_core::meta::{Dir, PacketMeta};
use rvs_core::service::{DestId, Forward, Service, Snapshot, Timeouts};
use rvs_core::time::Now;

/// Index of a connection in its lcore's pool.
pub type ConnId = u32;

/// A 5-tuple as it appears on the wire in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tuple {
    /// Protocol.
    pub proto: Proto,
    /// Source address.
    pub saddr: Addr,
    /// Destination address.
    pub daddr: Addr,
    /// Source port (ICMP: identifier).
    pub sport: u16,
    /// Destination port (ICMP: identifier).
    pub dport: u16,
}

impl Tuple {
    /// The tuple of a parsed packet; `None` for a protocol rvs does not track.
    #[inline]
    pub fn of(meta: &PacketMeta) -> Option<Tuple> {
        Some(Tuple {
            proto: Proto::from_number(meta.proto)?,
            saddr: meta.saddr,
            daddr: meta.daddr,
            sport: meta.sport,
            dport: meta.dport,
        })
    }
    /// The same flow seen from the other side.
    #[inline]
    pub const fn reversed(self) -> Tuple {
        Tuple {
            proto: self.proto,
            saddr: self.daddr,
            daddr: self.saddr,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// Connection flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnFlags(pub u32);

impl ConnFlags {
    /// Created by synproxy step 2; sequence numbers adjusted by [`Conn::syn_proxy_delta`].
    pub const SYNPROXY: u32 = 0x1;
    /// A persistence template kept as a connection record (IPVS's layout). rvs keeps its
    /// templates in the global [`crate::persist::Templates`] instead; the flag is honoured by
    /// [`crate::LcoreConns::bind_dest`] and expiry for records that carry it.
    pub const TEMPLATE: u32 = 0x2;
    /// Counted as inactive on its destination (IPVS's `IP_VS_CONN_F_INACTIVE`).
    pub const INACTIVE: u32 = 0x4;
    /// FNAT: TOA was due on a packet of the connection (inserted or skipped). Informational:
    /// which packets carry TOA is decided by [`Conn::fdata_seq`], as DPVS does.
    pub const TOA_DONE: u32 = 0x8;
    /// The destination counters were bound (released on expiry).
    pub const BOUND: u32 = 0x10;
    /// An outbound packet has been seen. Until then a DR or TUNNEL connection uses the
    /// "input only" state table (IPVS's `IP_VS_CONN_F_NOOUTPUT`, cleared by an outbound packet).
    pub const OUTPUT_SEEN: u32 = 0x20;
    /// FNAT: [`Conn::fdata_seq`] holds the real server's first data sequence number.
    pub const FDATA_SEQ: u32 = 0x40;
    /// True when `bit` is set.
    #[inline]
    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    /// Set `bit`.
    #[inline]
    pub fn set(&mut self, bit: u32) {
        self.0 |= bit;
    }
    /// Clear `bit`.
    #[inline]
    pub fn clear(&mut self, bit: u32) {
        self.0 &= !bit;
    }
}

/// One connection.
///
/// The inbound tuple is what the client sends (client -> VIP); the outbound tuple is what the
/// real server sends back (real server -> local address in FNAT, -> client in NAT, DR and
/// TUNNEL, where the balancer never sees replies for DR and TUNNEL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conn {
    /// Client -> VIP.
    pub in_tuple: Tuple,
    /// Real server -> local address (FNAT) or client.
    pub out_tuple: Tuple,
    /// Forwarding mode.
    pub fwd: Forward,
    /// Service index in the snapshot the connection was made under.
    pub svc: u32,
    /// Generation of that snapshot.
    pub generation: u64,
    /// Stable destination slot (counters).
    pub dest: DestId,
    /// Protocol state (TCP state number, see the state module; 0 for UDP/ICMP "normal").
    pub state: u8,
    /// Flags.
    pub flags: ConnFlags,
    /// Current timeout in seconds.
    pub timeout_secs: u32,
    /// When the connection expires unless a packet refreshes it.
    pub expires: Now,
    /// FNAT: added to the sequence number of every inbound packet (DPVS's `fnat_seq.delta`),
    /// subtracted from acknowledgements (and SACK blocks) outbound.
    pub fnat_seq_delta: u32,
    /// FNAT: the client's initial sequence number (its SYN's), from which conn-new set
    /// `fnat_seq_delta`.
    pub fnat_isn: u32,
    /// FNAT: the real server's first data sequence number (its SYN-ACK's sequence + 1, in the
    /// server's sequence space), valid once [`ConnFlags::FDATA_SEQ`] is set: every inbound
    /// packet acknowledging exactly this carries TOA (DPVS's `fnat_seq.fdata_seq`).
    pub fdata_seq: u32,
    /// Synproxy: cookie ISN minus the real server's ISN, applied for the connection's life.
    pub syn_proxy_delta: u32,
    /// The last sequence number the real server sent (for RSTs on expiry).
    pub rs_last_seq: u32,
    /// The last acknowledgement the real server sent.
    pub rs_last_ack: u32,
    /// The lcore owning the connection.
    pub lcore: u16,
    /// The persistence template the connection uses ([`crate::persist::NO_TEMPLATE`]: none);
    /// its expiry detaches it.
    pub template: u64,
}

impl Conn {
    /// Client address.
    #[inline]
    pub const fn caddr(&self) -> Addr {
        self.in_tuple.saddr
    }
    /// Client port.
    #[inline]
    pub const fn cport(&self) -> u16 {
        self.in_tuple.sport
    }
    /// Virtual address.
    #[inline]
    pub const fn vaddr(&self) -> Addr {
        self.in_tuple.daddr
    }
    /// Virtual port.
    #[inline]
    pub const fn vport(&self) -> u16 {
        self.in_tuple.dport
    }
    /// Real server address (DPVS's `daddr`: the source of the outbound tuple).
    #[inline]
    #[allow(clippy::misnamed_getters)]
    pub const fn daddr(&self) -> Addr {
        self.out_tuple.saddr
    }
    /// Real server port (DPVS's `dport`).
    #[inline]
    #[allow(clippy::misnamed_getters)]
    pub const fn dport(&self) -> u16 {
        self.out_tuple.sport
    }
    /// Local address (FNAT, SNAT) or client address (other modes).
    #[inline]
    pub const fn laddr(&self) -> Addr {
        self.out_tuple.daddr
    }
    /// Local port (FNAT, SNAT) or client port (other modes).
    #[inline]
    pub const fn lport(&self) -> u16 {
        self.out_tuple.dport
    }
    /// The tuple a packet in direction `dir` carries.
    #[inline]
    pub const fn tuple(&self, dir: Dir) -> &Tuple {
        match dir {
            Dir::In => &self.in_tuple,
            Dir::Out => &self.out_tuple,
        }
    }
    /// The outbound tuple for a connection to `daddr:dport` in mode `fwd`, with local
    /// address and port `laddr:lport` for FNAT/SNAT (ignored otherwise).
    pub fn out_tuple_for(fwd: Forward, inb: &Tuple, daddr: Addr, dport: u16, laddr: Addr, lport: u16) -> Tuple {
        match fwd {
            Forward::Fnat | Forward::Snat => Tuple {
                proto: inb.proto,
                saddr: daddr,
                sport: dport,
                daddr: laddr,
                dport: lport,
            },
            Forward::Nat | Forward::Dr | Forward::Tunnel => Tuple {
                proto: inb.proto,
                saddr: daddr,
                sport: dport,
                daddr: inb.saddr,
                dport: inb.sport,
            },
        }
    }
}

/// Where [`Conn::service_timeouts`] found a connection's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// Where the connection says, under the snapshot it names.
    Same,
    /// Under a newer snapshot, at the index now recorded on the connection (re-homed).
    Moved,
    /// Gone from the snapshot (DPVS's default timeouts apply); marked so that later packets
    /// under the same snapshot do not search again.
    Gone,
}

/// The service index of a connection whose service is gone under its recorded snapshot.
pub const SERVICE_GONE: u32 = u32::MAX;

impl Conn {
    /// The timeouts of the connection's service in `snap`, re-homing the connection when `snap`
    /// is newer than the one it records. Its service is then the one of its protocol and key
    /// (VIP, port) that still holds its destination (the control plane keeps destination ids
    /// stable across reloads, so a service that moved to another index is found again; for a
    /// match service, which has no key, the destination alone), or else the service with its
    /// key whose destination was removed. The service index and generation are updated, so
    /// later packets take the direct path. When neither holds, DPVS's defaults and
    /// [`Home::Gone`].
    #[inline]
    pub fn service_timeouts<'s>(&mut self, snap: &'s Snapshot) -> (&'s Timeouts, Home) {
        if snap.generation == self.generation {
            return match snap.services.get(self.svc as usize) {
                Some(s) => (&s.timeouts, Home::Same),
                None => (&Timeouts::DPVS, Home::Gone),
            };
        }
        self.generation = snap.generation;
        match self.find_service(snap) {
            Some(i) => {
                self.svc = i;
                (&snap.services[i as usize].timeouts, Home::Moved)
            }
            None => {
                self.svc = SERVICE_GONE;
                (&Timeouts::DPVS, Home::Gone)
            }
        }
    }

    /// The slow path of [`Conn::service_timeouts`], taken once per connection and snapshot
    /// change.
    #[cold]
    fn find_service(&self, snap: &Snapshot) -> Option<u32> {
        let t = &self.in_tuple;
        let same_key =
            |s: &Service| s.key.proto == t.proto && s.key.vip == t.daddr && (s.key.port == t.dport || s.key.port == 0);
        // Holding the connection's destination id, and of the connection's protocol and key
        // (a match service has no key to compare).
        let fits = |s: &Service| {
            s.key.proto == t.proto && (s.key.is_match() || same_key(s)) && s.dest_by_id(self.dest).is_some()
        };
        let vip_key = |s: &Service| !s.key.is_match() && same_key(s);
        let at = snap.services.get(self.svc as usize);
        if at.is_some_and(|s| fits(s)) {
            return Some(self.svc);
        }
        if let Some(i) = snap.services.iter().position(|s| fits(s)) {
            return Some(i as u32);
        }
        if at.is_some_and(|s| vip_key(s)) {
            return Some(self.svc);
        }
        snap.services.iter().position(|s| vip_key(s)).map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_tuples_per_mode() {
        let inb = Tuple {
            proto: Proto::Tcp,
            saddr: Addr::v4([198, 18, 5, 5]),
            sport: 40000,
            daddr: Addr::v4([198, 18, 0, 100]),
            dport: 80,
        };
        let rs = Addr::v4([198, 18, 1, 11]);
        let l = Addr::v4([198, 18, 1, 1]);
        let f = Conn::out_tuple_for(Forward::Fnat, &inb, rs, 8080, l, 1025);
        assert_eq!((f.saddr, f.sport, f.daddr, f.dport), (rs, 8080, l, 1025));
        let n = Conn::out_tuple_for(Forward::Nat, &inb, rs, 8080, l, 1025);
        assert_eq!((n.saddr, n.sport, n.daddr, n.dport), (rs, 8080, inb.saddr, 40000));
        assert_eq!(inb.reversed().reversed(), inb);
    }
}
