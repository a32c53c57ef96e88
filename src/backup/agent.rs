//! `wharf backup agent`: what runs inside the cluster, in a short-lived pod on wharf's image
//! that mounts a volume a charm declares as data (`data:` in its metadata.yaml; see
//! `backup::volumes`, which starts the pod and runs these through pods/exec). `stream` writes
//! the volume's directory as a tar stream to stdout (regular files, directories, symlinks,
//! modes, owners and mtimes); `restore` reads one from stdin into an empty directory; `wait`
//! keeps the pod alive until wharf execs in it. The stream is encrypted by the wharf that reads
//! it, outside the cluster, like every other item.
//!
//! The stream is canonical (entries sorted) and `restore` puts back everything it records,
//! directories' mtimes included, so streaming a restored directory gives the same bytes: that is
//! how a restore checks the restored data against the backup's sha256.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// Write `dir` as a tar stream to `out`: paths relative to `dir`, sorted, symlinks kept as links.
pub fn stream(dir: &Path, out: impl Write) -> anyhow::Result<u64> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let mut files = 0u64;
    let mut entries: Vec<std::path::PathBuf> = Vec::new();
    collect(dir, dir, &mut entries)?;
    entries.sort();
    for rel in entries {
        tar.append_path_with_name(dir.join(&rel), &rel)
            .with_context(|| format!("reading {}", dir.join(&rel).display()))?;
        files += 1;
    }
    tar.into_inner()?.flush()?;
    Ok(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        out.push(path.strip_prefix(root)?.to_path_buf());
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

/// Unpack a tar stream from `input` into `dir`, which must be empty (or not exist): a restore
/// never mixes a backup's files with others.
pub fn restore(dir: &Path, input: impl Read) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: a volume is restored into an empty directory only",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(false);
    // Owners come back only where they can be set: as root, which the agent pod runs as.
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    let unpacking = || format!("unpacking into {}", dir.display());
    // As tar's own `unpack`, directories last and deepest first (a read-only directory gets its
    // mode once its files are in it), and then their mtimes, which `unpack` leaves at "now".
    let mut directories = Vec::new();
    for entry in archive.entries().with_context(unpacking)? {
        let mut entry = entry.with_context(unpacking)?;
        if entry.header().entry_type().is_dir() {
            directories.push(entry);
        } else {
            entry.unpack_in(dir).with_context(unpacking)?;
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut entry in directories {
        let mtime = entry.header().mtime().with_context(unpacking)?;
        let path = dir.join(entry.path().with_context(unpacking)?);
        entry.unpack_in(dir).with_context(unpacking)?;
        filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(mtime as i64, 0))
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
    }
    Ok(())
}

/// Keep the agent pod alive until wharf has exec'd in it and deletes it (at most `seconds`, so a
/// pod wharf could not delete ends by itself). wharf's image has no shell and no `sleep`.
pub fn wait(seconds: u64) {
    std::thread::sleep(std::time::Duration::from_secs(seconds));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree(dir: &Path) -> Vec<(String, Vec<u8>, u32, Option<String>)> {
        let mut rels = Vec::new();
        collect(dir, dir, &mut rels).unwrap();
        rels.sort();
        rels.into_iter()
            .map(|rel| {
                let p = dir.join(&rel);
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let link = meta
                    .file_type()
                    .is_symlink()
                    .then(|| std::fs::read_link(&p).unwrap().display().to_string());
                let bytes = if meta.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    vec![]
                };
                (
                    rel.display().to_string(),
                    bytes,
                    meta.permissions().mode() & 0o7777,
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn a_directory_streams_and_restores_bit_identical_and_streams_the_same_again() {
        let src = tempfile::tempdir().unwrap();
        let d = src.path();
        std::fs::create_dir_all(d.join("buckets/wharf/models")).unwrap();
        let mut big = vec![0u8; 3 * 1024 * 1024 + 17];
        for (i, b) in big.iter_mut().enumerate() {
            *b = (i * 31 % 251) as u8;
        }
        std::fs::write(d.join("buckets/wharf/models/model.safetensors"), &big).unwrap();
        std::fs::write(d.join("buckets/wharf/empty"), b"").unwrap();
        std::fs::write(d.join("config.json"), b"{\"a\": 1}").unwrap();
        std::fs::set_permissions(
            d.join("config.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("buckets/wharf", d.join("current")).unwrap();

        let mut stream_bytes = Vec::new();
        let n = stream(d, &mut stream_bytes).unwrap();
        assert_eq!(n, 7);
        let dst = tempfile::tempdir().unwrap();
        let target = dst.path().join("restored");
        restore(&target, &stream_bytes[..]).unwrap();
        assert_eq!(tree(d), tree(&target));
        // Canonical: the restored directory streams to the same bytes (restore's check).
        let mut again = Vec::new();
        stream(&target, &mut again).unwrap();
        assert!(
            again == stream_bytes,
            "the restored directory streams differently"
        );
        // Restoring over files is refused.
        assert!(restore(&target, &stream_bytes[..]).is_err());
    }
}
