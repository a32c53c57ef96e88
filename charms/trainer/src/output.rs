//! Where results go: the next numbered version under `--out`, a directory or an S3 prefix
//! (TF Serving's layout, which the model server reads), and the Kubernetes termination message.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use wharf_model::Artifact;
use wharf_model::location::Location;

/// Runs one storage call (local or S3) to completion. Training is synchronous (candle); the
/// object store client is async, so one current-thread runtime per process drives its calls.
/// Must not be called from inside an async runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("starting the storage runtime")
        })
        .block_on(future)
}

/// The next version: one more than the largest numeric subdirectory (S3: prefix) of `out`.
pub fn next_version(out: &Location) -> Result<u64> {
    let children = block_on(out.children()).with_context(|| format!("listing {out}"))?;
    let max = children
        .iter()
        .filter_map(|name| name.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    Ok(max + 1)
}

/// Saves the artifact as the next version under `out`; returns where it went.
pub fn write_artifact(artifact: &Artifact, out: &Location) -> Result<Location> {
    let version = out.join(&next_version(out)?.to_string());
    block_on(version.save_artifact(artifact))
        .with_context(|| format!("writing the model artifact to {version}"))?;
    Ok(version)
}

/// The termination-message path: `$TERMINATION_MESSAGE_PATH` or `/dev/termination-log`,
/// only if that file exists (i.e. we run in a pod that asked for it).
pub fn termination_log() -> Option<PathBuf> {
    let path = std::env::var_os("TERMINATION_MESSAGE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/termination-log"));
    path.exists().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_the_largest_number() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::Local(dir.path().to_path_buf());
        assert_eq!(next_version(&out).unwrap(), 1);
        for d in ["1", "7", "checkpoint", "10x"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        assert_eq!(next_version(&out).unwrap(), 8);
        assert_eq!(next_version(&out.join("missing")).unwrap(), 1);
    }
}
