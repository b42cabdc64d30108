//! DPVS's pair of a verdict and a reason, kept as Rust enums.
//!
//! Every stage drops with a reason of its own (a [`crate::label::Label`] enum in the stage's
//! file); each of those maps to one [`Cause`], DPVS's error class, so operators see both the
//! precise reason and the familiar class.

crate::labels! {
    /// What happened to a packet, DPVS's `INET_ACCEPT` / `INET_DROP` / `INET_STOLEN`.
    pub enum Verdict {
        /// Forwarded (transmitted or handed on).
        Accept = ("accept", "the packet goes on"),
        /// Dropped and freed.
        Drop = ("drop", "the packet was dropped and freed"),
        /// Taken by a stage (held, redirected, handed to the host path).
        Stolen = ("stolen", "a stage took the packet; it is no longer the caller's"),
    }
}

crate::labels! {
    /// DPVS's error classes (`EDPVS_*`) a drop reason belongs to.
    pub enum Cause {
        /// Malformed or truncated (`EDPVS_INVPKT`).
        InvalidPacket = ("invpkt", "malformed or truncated packet"),
        /// No service for the packet (`EDPVS_NOSERV`).
        NoService = ("noserv", "no service matches the packet"),
        /// A resource ran out: no destination, pool, port or queue space (`EDPVS_RESOURCE`).
        Resource = ("resource", "a needed resource is exhausted or unavailable"),
        /// A destination is at its connection limit (`EDPVS_OVERLOAD`).
        Overload = ("overload", "the chosen destination is overloaded"),
        /// No route or neighbour (`EDPVS_NOROUTE`).
        NoRoute = ("noroute", "no route or neighbour to the next hop"),
        /// Dropped by a defence policy (`EDPVS_DROP` from `defence_*_drop`).
        Defence = ("defence", "dropped by a defence policy"),
        /// Not supported (`EDPVS_NOTSUPP`), e.g. IP fragments.
        NotSupported = ("notsupp", "not supported"),
        /// Anything else, e.g. a packet too big for the path.
        Other = ("other", "other"),
    }
}

/// A stage's drop-reason enum: a [`crate::label::Label`] that also names its DPVS class.
pub trait DropReason: crate::label::Label {
    /// The DPVS class of this reason.
    fn cause(self) -> Cause;
}

impl DropReason for crate::label::Never {
    fn cause(self) -> Cause {
        Cause::Other
    }
}
