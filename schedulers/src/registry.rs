//! Schedulers by their ipvsadm name, with options a configuration can pass.
//!
//! ```
//! use rvs_schedulers::{factory, factory_with, SchedOptions};
//! let wlc = factory("wlc").expect("known");
//! assert_eq!(wlc.name(), "wlc");
//! let mut o = SchedOptions::default();
//! o.set("mh-table-size", "65537").expect("valid option");
//! let mh = factory_with("mh", &o).expect("valid");
//! assert_eq!(mh.name(), "mh");
//! let err = factory_with("wrong", &o).expect_err("must fail");
//! assert!(err.to_string().contains("known schedulers: rr, wrr"));
//! ```

use std::fmt;
use std::sync::Arc;

use rvs_core::sched::{SchedError, SchedulerFactory};

use crate::conhash::ConhashFactory;
use crate::hashing::{DhFactory, ShFactory};
use crate::lblc::{LblcFactory, LblcOptions, LblcrFactory};
use crate::least::{FoFactory, Formula, LeastFactory, OvfFactory, TwosFactory};
use crate::mh::{DEFAULT_TABLE, MhFactory};
use crate::rr::{RrFactory, WrrFactory};

/// Every native scheduler, by the name ipvsadm (and DPVS's ipvsadm) uses.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "fo", "ovf", "mh", "conhash", "twos",
];

/// The option keys [`SchedOptions::set`] accepts.
pub const OPTION_KEYS: &[&str] = &["mh-table-size", "lblc-cache-entries", "lblc-expire-secs"];

/// Scheduler options a configuration may give (each scheduler reads the ones it knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedOptions {
    /// mh: table size, a prime (default 4093, as IPVS and DPVS; the Maglev paper uses 65537).
    pub mh_table_size: u32,
    /// lblc/lblcr: cache entries per lcore.
    pub lblc_cache_entries: usize,
    /// lblc/lblcr: expiry in seconds (default 24 h).
    pub lblc_expire_secs: u64,
}

impl Default for SchedOptions {
    fn default() -> Self {
        let l = LblcOptions::default();
        SchedOptions {
            mh_table_size: DEFAULT_TABLE,
            lblc_cache_entries: l.cache_entries,
            lblc_expire_secs: l.expire_secs,
        }
    }
}

impl SchedOptions {
    /// Set an option from its configuration key and text value (`mh-table-size = 65537`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), RegistryError> {
        let bad = |what: &str| RegistryError::Option {
            key: key.to_string(),
            value: value.to_string(),
            what: what.to_string(),
        };
        match key {
            "mh-table-size" => {
                let v: u32 = value.parse().map_err(|_| bad("not a number"))?;
                MhFactory::new(v).map_err(|e| bad(&e.to_string()))?;
                self.mh_table_size = v;
            }
            "lblc-cache-entries" => {
                let v: usize = value.parse().map_err(|_| bad("not a number"))?;
                if !(4..=1 << 24).contains(&v) {
                    return Err(bad("must be between 4 and 16777216"));
                }
                self.lblc_cache_entries = v;
            }
            "lblc-expire-secs" => {
                let v: u64 = value.parse().map_err(|_| bad("not a number"))?;
                if v == 0 {
                    return Err(bad("must be positive"));
                }
                self.lblc_expire_secs = v;
            }
            _ => {
                return Err(RegistryError::UnknownOption { key: key.to_string() });
            }
        }
        Ok(())
    }

    fn lblc(&self) -> LblcOptions {
        LblcOptions {
            cache_entries: self.lblc_cache_entries,
            expire_secs: self.lblc_expire_secs,
        }
    }
}

/// What went wrong choosing a scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No scheduler of that name.
    #[error("unknown scheduler {name:?}; known schedulers: {}", KnownNames)]
    Unknown {
        /// The name given.
        name: String,
    },
    /// No option of that key.
    #[error("unknown scheduler option {key:?}; known options: {}", OPTION_KEYS.join(", "))]
    UnknownOption {
        /// The key given.
        key: String,
    },
    /// An option value is invalid.
    #[error("scheduler option {key} = {value:?}: {what}")]
    Option {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        what: String,
    },
    /// The scheduler refused its options.
    #[error(transparent)]
    Sched(#[from] SchedError),
}

struct KnownNames;

impl fmt::Display for KnownNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&NAMES.join(", "))
    }
}

/// The error for an unknown scheduler name; its message lists the known ones.
pub fn unknown(name: &str) -> RegistryError {
    RegistryError::Unknown { name: name.to_string() }
}

/// The native scheduler `name` with default options, `None` for an unknown name.
pub fn factory(name: &str) -> Option<Arc<dyn SchedulerFactory>> {
    factory_with(name, &SchedOptions::default()).ok()
}

/// The native scheduler `name` with `opts`; an unknown name is an error listing the known
/// names.
pub fn factory_with(name: &str, opts: &SchedOptions) -> Result<Arc<dyn SchedulerFactory>, RegistryError> {
    Ok(match name {
        "rr" => Arc::new(RrFactory),
        "wrr" => Arc::new(WrrFactory),
        "lc" => Arc::new(LeastFactory(Formula::Lc)),
        "wlc" => Arc::new(LeastFactory(Formula::Wlc)),
        "sed" => Arc::new(LeastFactory(Formula::Sed)),
        "nq" => Arc::new(LeastFactory(Formula::Nq)),
        "sh" => Arc::new(ShFactory),
        "dh" => Arc::new(DhFactory),
        "lblc" => Arc::new(LblcFactory(opts.lblc())),
        "lblcr" => Arc::new(LblcrFactory(opts.lblc())),
        "fo" => Arc::new(FoFactory),
        "ovf" => Arc::new(OvfFactory),
        "mh" => Arc::new(MhFactory::new(opts.mh_table_size)?),
        "conhash" => Arc::new(ConhashFactory),
        "twos" => Arc::new(TwosFactory),
        _ => return Err(unknown(name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_to_itself() {
        for n in NAMES {
            let f = factory(n).expect("known name");
            assert_eq!(f.name(), *n);
            assert_eq!(f.instance(0, 1).name(), *n);
        }
        assert!(factory("wlcx").is_none());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = unknown("bogus").to_string();
        for n in NAMES {
            assert!(e.contains(n), "{e}");
        }
        let mut o = SchedOptions::default();
        assert!(
            o.set("mh-table-size", "4095")
                .expect_err("must fail")
                .to_string()
                .contains("prime")
        );
        assert!(o.set("mh-table-size", "x").is_err());
        assert!(matches!(o.set("nope", "1"), Err(RegistryError::UnknownOption { .. })));
        o.set("mh-table-size", "131071").expect("prime");
        assert_eq!(o.mh_table_size, 131_071);
        o.set("lblc-expire-secs", "60").expect("valid");
        assert_eq!(o.lblc_expire_secs, 60);
    }
}
