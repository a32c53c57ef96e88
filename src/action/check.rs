//! `wharf check`: the host preflight (owned by the host-checks work).

use super::Outcome;
use crate::cli::{CheckArgs, GlobalArgs};

pub fn run(_global: &GlobalArgs, _args: &CheckArgs) -> Outcome {
    anyhow::bail!("wharf check is not built yet")
}
