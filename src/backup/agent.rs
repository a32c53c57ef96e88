//! `wharf backup agent`: what runs inside the cluster, in a Job with wharf's image, next to a
//! volume a charm declares as data (`data:` in its metadata.yaml). `stream` writes the volume's
//! directory as a tar stream to stdout (regular files, directories, symlinks, modes and mtimes);
//! `restore` reads one from stdin into an empty directory. The stream is encrypted by the wharf
//! that reads it, outside the cluster, like every other item.
//!
//! Not wired yet: the Job that runs it needs wharf's image, which is being built separately; the
//! streaming and restoring logic is tested locally on a directory.

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
    archive
        .unpack(dir)
        .with_context(|| format!("unpacking into {}", dir.display()))?;
    Ok(())
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
    fn backup_agent_streams_a_volume_directory_and_restores_it_bit_identical() {
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
        // Restoring over files is refused.
        assert!(restore(&target, &stream_bytes[..]).is_err());
    }
}
