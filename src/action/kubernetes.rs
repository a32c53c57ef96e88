//! `wharf upgrade --kubernetes MAJOR.MINOR` (being merged from its branch).

use super::{Global, Outcome};

pub fn run(_global: &Global, _target: &str, _yes: bool, _dry_run: bool) -> Outcome {
    anyhow::bail!("wharf upgrade --kubernetes is not built yet")
}
