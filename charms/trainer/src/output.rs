//! Where results go: the next numbered version directory under `--out` (TF Serving's layout,
//! which the model server reads) and the Kubernetes termination message.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wharf_model::Artifact;

/// The next version directory: one more than the largest numeric subdirectory of `out`.
pub fn next_version_dir(out: &Path) -> Result<PathBuf> {
    let mut max = 0u64;
    match std::fs::read_dir(out) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.with_context(|| format!("listing {}", out.display()))?;
                if let Some(n) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    max = max.max(n);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("listing {}", out.display())),
    }
    Ok(out.join((max + 1).to_string()))
}

/// Saves the artifact as the next version under `out`; returns its directory.
pub fn write_artifact(artifact: &Artifact, out: &Path) -> Result<PathBuf> {
    let dir = next_version_dir(out)?;
    artifact
        .save(&dir)
        .with_context(|| format!("writing the model artifact to {}", dir.display()))?;
    Ok(dir)
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
        assert_eq!(next_version_dir(dir.path()).unwrap(), dir.path().join("1"));
        for d in ["1", "7", "checkpoint", "10x"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        assert_eq!(next_version_dir(dir.path()).unwrap(), dir.path().join("8"));
        assert_eq!(
            next_version_dir(&dir.path().join("missing")).unwrap(),
            dir.path().join("missing/1")
        );
    }
}
