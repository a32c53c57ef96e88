//! The files of bound claims: each bound volume (`spec.volumeName` of its claim, `pvc-<uid>`) is
//! a directory under the simulator's temporary directory, so a pod's exec (exec.rs) can read and
//! write what a real volume would hold. A claim deleted and made again binds a new, empty volume.

use std::path::PathBuf;

use crate::Shared;

/// The directory of claim `ns/name`'s volume, created on first use; `None` unless it is bound.
pub fn claim_dir(shared: &Shared, ns: &str, name: &str) -> Option<PathBuf> {
    let volume = {
        let st = shared.lock();
        let pvc = st.get(&crate::storage::claim_key(ns, name))?.clone();
        if pvc["status"]["phase"] != "Bound" {
            return None;
        }
        pvc["spec"]["volumeName"].as_str()?.to_string()
    };
    // A volume name is one path segment (`pvc-<uid>`); anything else is not ours to map.
    if volume.is_empty() || volume.contains('/') || volume.starts_with('.') {
        return None;
    }
    let dir = shared.volumes.path().join(volume);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}
