//! The OCI image format as wharf writes and reads it: descriptors, manifests, image indexes and
//! image configs (the JSON of the OCI image spec v1.1), content addressed by sha256, and an OCI
//! image layout kept in one tar file (`oci-layout`, `index.json`, `blobs/sha256/…`), which
//! `ctr images import`, `skopeo` (`oci-archive:`) and `umoci` read.
//!
//! Everything here is deterministic: JSON is written compactly with fields in a fixed order and
//! maps sorted, and the tar holds every entry with the same owner, mode and time, so the same
//! images give the same archive, byte for byte.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker's media types, which upstream registries still serve for many images.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The annotation containerd's importer reads the image's full name from.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI layout's name of a reference (skopeo's `oci-archive:FILE:NAME`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What points at a blob: its media type, digest and size (and, in an index, its platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One image for one platform: its config and its layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index: one manifest per platform (or, as a layout's `index.json`, one per image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.into()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image's configuration: how to run it and the uncompressed digests of its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// The `config` of an image config: the process a container of it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub created: String,
    pub created_by: String,
}

/// A blob and the descriptor that names it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            descriptor: Descriptor {
                media_type: media_type.into(),
                digest: sha256(&bytes),
                size: bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            bytes,
        }
    }

    /// A JSON document as a blob (compact, fields in declaration order, maps sorted).
    pub fn json<T: Serialize>(media_type: &str, value: &T) -> Blob {
        Blob::new(
            media_type,
            serde_json::to_vec(value).expect("OCI documents serialise"),
        )
    }
}

/// An OCI image layout: the top-level index (one entry per named image) and every blob.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub index: Vec<Descriptor>,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// One image named in a layout: its reference and the descriptor of its index or manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub reference: String,
    pub descriptor: Descriptor,
}

impl Layout {
    pub fn add_blob(&mut self, blob: &Blob) {
        self.blobs
            .entry(blob.descriptor.digest.clone())
            .or_insert_with(|| blob.bytes.clone());
    }

    /// Name an image (index or manifest) already added as a blob.
    pub fn name(&mut self, reference: &str, descriptor: &Descriptor) {
        let mut d = descriptor.clone();
        d.platform = None;
        d.annotations = BTreeMap::from([
            (ANNOTATION_CONTAINERD_NAME.into(), reference.into()),
            (ANNOTATION_REF_NAME.into(), reference.into()),
        ]);
        self.index.retain(|n| reference_of(n) != Some(reference));
        self.index.push(d);
        self.index
            .sort_by(|a, b| reference_of(a).cmp(&reference_of(b)));
    }

    /// The images this layout names, in order.
    pub fn named(&self) -> Vec<Named> {
        self.index
            .iter()
            .filter_map(|d| {
                reference_of(d).map(|r| Named {
                    reference: r.to_string(),
                    descriptor: d.clone(),
                })
            })
            .collect()
    }

    pub fn blob(&self, digest: &str) -> anyhow::Result<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice).with_context(|| {
            format!("the archive lacks blob {digest}: it is incomplete, build or export it again")
        })
    }

    /// The manifests of an image, one per platform (a single-platform image has one, no platform).
    pub fn manifests(&self, image: &Descriptor) -> anyhow::Result<Vec<(Descriptor, Manifest)>> {
        match image.media_type.as_str() {
            MEDIA_INDEX | MEDIA_DOCKER_LIST => {
                let index: Index = serde_json::from_slice(self.blob(&image.digest)?)
                    .with_context(|| format!("image index {} is not valid JSON", image.digest))?;
                index
                    .manifests
                    .into_iter()
                    .map(|d| {
                        let m = self.manifest(&d)?;
                        Ok((d, m))
                    })
                    .collect()
            }
            MEDIA_MANIFEST | MEDIA_DOCKER_MANIFEST => {
                Ok(vec![(image.clone(), self.manifest(image)?)])
            }
            other => bail!("{}: unsupported media type {other}", image.digest),
        }
    }

    fn manifest(&self, d: &Descriptor) -> anyhow::Result<Manifest> {
        serde_json::from_slice(self.blob(&d.digest)?)
            .with_context(|| format!("image manifest {} is not valid JSON", d.digest))
    }

    /// Every blob one image needs, children before parents: layers, configs, manifests, then the
    /// index itself (the order a registry push must follow).
    pub fn closure(&self, image: &Descriptor) -> anyhow::Result<Vec<Descriptor>> {
        let mut out: Vec<Descriptor> = Vec::new();
        let mut push = |d: &Descriptor| {
            if !out.iter().any(|o| o.digest == d.digest) {
                out.push(d.clone());
            }
        };
        let manifests = self.manifests(image)?;
        for (d, m) in &manifests {
            for layer in &m.layers {
                push(layer);
            }
            push(&m.config);
            push(d);
        }
        push(image);
        Ok(out)
    }

    /// Write the layout as one tar: deterministic order, owner, modes and times.
    pub fn write_tar(&self, out: impl Write) -> anyhow::Result<()> {
        let mut tar = tar::Builder::new(out);
        let index = Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.into()),
            manifests: self.index.clone(),
            annotations: BTreeMap::new(),
        };
        let files: Vec<(String, &[u8])> = Vec::new();
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
        let index = serde_json::to_vec(&index)?;
        let mut files = files;
        files.push(("oci-layout".into(), &layout));
        files.push(("index.json".into(), &index));
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        for (digest, bytes) in &self.blobs {
            let hex = digest
                .strip_prefix("sha256:")
                .context("only sha256 digests")?;
            files.push((format!("blobs/sha256/{hex}"), bytes));
        }
        for (path, bytes) in files {
            let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            tar.append_data(&mut h, path, bytes)?;
        }
        tar.into_inner()?.flush()?;
        Ok(())
    }

    pub fn write_file(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tar.partial");
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        self.write_tar(std::io::BufWriter::new(file))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Read a layout tar (wharf's, `skopeo copy … oci-archive:`, `docker save` of an OCI layout),
    /// checking every blob against its digest.
    pub fn read_tar(input: impl Read) -> anyhow::Result<Layout> {
        let mut tar = tar::Archive::new(input);
        let mut index = None;
        let mut blobs = BTreeMap::new();
        for entry in tar.entries()? {
            let mut entry = entry?;
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes)?;
            if path == "index.json" {
                index = Some(
                    serde_json::from_slice::<Index>(&bytes)
                        .context("index.json is not an OCI image index")?,
                );
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let digest = format!("sha256:{hex}");
                if sha256(&bytes) != digest {
                    bail!(
                        "blob {path} does not match its digest: the archive is damaged, copy or build it again"
                    );
                }
                blobs.insert(digest, bytes);
            }
        }
        let index = index.context("no index.json: not an OCI image layout archive (make one with `wharf images build` or `skopeo copy … oci-archive:FILE`)")?;
        Ok(Layout {
            index: index.manifests,
            blobs,
        })
    }

    pub fn read_file(path: &Path) -> anyhow::Result<Layout> {
        let file = std::fs::File::open(path).with_context(|| {
            format!(
                "cannot open the image archive {}: make one with `wharf images build -o {}`",
                path.display(),
                path.display()
            )
        })?;
        Layout::read_tar(std::io::BufReader::new(file))
            .with_context(|| format!("cannot read the image archive {}", path.display()))
    }
}

/// The reference a layout's index entry names.
pub fn reference_of(d: &Descriptor) -> Option<&str> {
    d.annotations
        .get(ANNOTATION_CONTAINERD_NAME)
        .or_else(|| d.annotations.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

/// A tar header with the fixed owner (0:0, no names) and time (0) every wharf tar uses.
pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> anyhow::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, std::io::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Layout, Descriptor) {
        let mut layout = Layout::default();
        let layer = Blob::new(MEDIA_LAYER_GZIP, b"not really a layer".to_vec());
        let config = Blob::new(MEDIA_CONFIG, b"{}".to_vec());
        let manifest = Blob::json(
            MEDIA_MANIFEST,
            &Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_MANIFEST.into()),
                config: config.descriptor.clone(),
                layers: vec![layer.descriptor.clone()],
                annotations: BTreeMap::new(),
            },
        );
        for b in [&layer, &config, &manifest] {
            layout.add_blob(b);
        }
        layout.name("wharf.local/x:1", &manifest.descriptor);
        (layout, manifest.descriptor)
    }

    #[test]
    fn a_layout_reads_back_as_written_and_twice_the_same_bytes() {
        let (layout, manifest) = tiny();
        let mut a = Vec::new();
        layout.write_tar(&mut a).unwrap();
        let mut b = Vec::new();
        layout.write_tar(&mut b).unwrap();
        assert_eq!(a, b);
        let back = Layout::read_tar(&a[..]).unwrap();
        assert_eq!(back.named()[0].reference, "wharf.local/x:1");
        assert_eq!(back.named()[0].descriptor.digest, manifest.digest);
        assert_eq!(back.blobs, layout.blobs);
        let closure = back.closure(&manifest).unwrap();
        assert_eq!(closure.len(), 3);
        assert_eq!(
            closure.last().unwrap().digest,
            manifest.digest,
            "parents last"
        );
    }

    #[test]
    fn a_damaged_blob_is_refused() {
        let (mut layout, manifest) = tiny();
        layout
            .blobs
            .insert(manifest.digest.clone(), b"changed".to_vec());
        let mut tar = Vec::new();
        layout.write_tar(&mut tar).unwrap();
        let err = Layout::read_tar(&tar[..]).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not match its digest"),
            "{err:#}"
        );
    }

    #[test]
    fn naming_again_replaces_the_entry() {
        let (mut layout, manifest) = tiny();
        layout.name("wharf.local/x:1", &manifest);
        assert_eq!(layout.named().len(), 1);
    }
}
