//! Image layers: a list of files and directories turned into a gzip-compressed tar whose bytes
//! depend only on those files (paths sorted, parents listed, owner root, time 0, a gzip header
//! without name or time), so the same inputs always give the same layer digest.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::oci::{Blob, MEDIA_LAYER_GZIP, header, sha256};

/// One entry of a layer, its path relative to the image's root (`usr/local/bin/wharf-server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
}

/// What a layer holds, by path; parent directories are added (0755) when not given.
#[derive(Debug, Clone, Default)]
pub struct Files {
    entries: BTreeMap<String, Entry>,
}

impl Files {
    pub fn new() -> Files {
        Files::default()
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Files {
        self.entries.insert(clean(path) + "/", Entry::Dir { mode });
        self
    }

    pub fn file(mut self, path: &str, mode: u32, bytes: Vec<u8>) -> Files {
        let path = clean(path);
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            self.entries
                .entry(format!("{p}/"))
                .or_insert(Entry::Dir { mode: 0o755 });
            parent = p;
        }
        self.entries.insert(path, Entry::File { mode, bytes });
        self
    }

    /// The layer: its compressed blob and its diff id (the digest of the uncompressed tar).
    pub fn layer(&self) -> anyhow::Result<Layer> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir { mode } => {
                    let mut h = header(tar::EntryType::Directory, *mode, 0);
                    tar.append_data(&mut h, path, std::io::empty())?;
                }
                Entry::File { mode, bytes } => {
                    let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
                    tar.append_data(&mut h, path, &bytes[..])?;
                }
            }
        }
        let tar = tar.into_inner()?;
        let diff_id = sha256(&tar);
        // The default GzBuilder writes no file name and time 0: the bytes depend on the tar only.
        let mut gz = GzEncoder::new(Vec::with_capacity(tar.len() / 2), Compression::new(6));
        gz.write_all(&tar)?;
        Ok(Layer {
            blob: Blob::new(MEDIA_LAYER_GZIP, gz.finish()?),
            diff_id,
            uncompressed: tar.len() as u64,
        })
    }
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_string()
}

/// A layer ready for a manifest.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
    pub uncompressed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn same_files_same_digest_in_any_order() {
        let a = Files::new()
            .file("/usr/local/bin/x", 0o755, b"x".to_vec())
            .file("etc/passwd", 0o644, b"root".to_vec())
            .layer()
            .unwrap();
        let b = Files::new()
            .file("etc/passwd", 0o644, b"root".to_vec())
            .file("usr/local/bin/x", 0o755, b"x".to_vec())
            .layer()
            .unwrap();
        assert_eq!(a.blob.descriptor.digest, b.blob.descriptor.digest);
        assert_eq!(a.diff_id, b.diff_id);
        let c = Files::new()
            .file("usr/local/bin/x", 0o700, b"x".to_vec())
            .file("etc/passwd", 0o644, b"root".to_vec())
            .layer()
            .unwrap();
        assert_ne!(a.diff_id, c.diff_id, "the mode is part of the layer");
    }

    #[test]
    fn the_layer_lists_parents_first_owned_by_root() {
        let layer = Files::new()
            .file("usr/local/bin/x", 0o755, b"x".to_vec())
            .dir("tmp", 0o1777)
            .layer()
            .unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer.blob.bytes[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256(&tar), layer.diff_id);
        let mut archive = tar::Archive::new(&tar[..]);
        let seen: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("tmp/".into(), 0o1777, 0, 0),
                ("usr/".into(), 0o755, 0, 0),
                ("usr/local/".into(), 0o755, 0, 0),
                ("usr/local/bin/".into(), 0o755, 0, 0),
                ("usr/local/bin/x".into(), 0o755, 0, 0),
            ]
        );
    }
}
