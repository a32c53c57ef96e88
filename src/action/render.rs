//! `wharf render`: bundle → manifests, offline.

use super::Outcome;
use crate::cli::{GlobalArgs, RenderArgs};

pub fn run(_global: &GlobalArgs, _args: &RenderArgs) -> Outcome {
    anyhow::bail!("wharf render is not built yet")
}
