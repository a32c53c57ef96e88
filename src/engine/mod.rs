//! The deploy engine that `deploy`, `config`, `upgrade` and `rollback` (and later `restore`) share:
//! what each application should look like ([`Desired`], from a render or from a release record),
//! a pure [`prepare`] that turns it, the live objects and the history into the changes, the
//! [`gates`] that refuse a change before anything is written, and [`perform`], which records the
//! run as pending, applies, prunes, waits and records each application as deployed or failed —
//! also when the run times out or is interrupted (SIGINT, SIGTERM).

pub mod desired;
pub mod gates;
pub mod perform;
pub mod prepare;

use std::time::Duration;

pub use desired::Desired;
pub use perform::{Performed, perform};
pub use prepare::{Prepared, prepare};

/// What may be deleted beyond ordinary objects.
pub use crate::kube::prune::Allow as Prune;

/// How a run waits, locks and keeps history.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub wait: bool,
    pub timeout: Duration,
    pub force_conflicts: bool,
    pub force_unlock: bool,
    /// Records kept per application (the last deployed one always is).
    pub history: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            wait: true,
            timeout: Duration::from_secs(20 * 60),
            force_conflicts: false,
            force_unlock: false,
            history: crate::store::releases::DEFAULT_HISTORY,
        }
    }
}
