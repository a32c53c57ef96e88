//! Build wharf's images from its static binaries, without Docker: per image and architecture a
//! base layer (`/etc/passwd` with the non-root user the charms run as, `/tmp`, the CA bundle), for
//! the trainer a layer with Fashion-MNIST, and a layer with the binary; an image config (user,
//! entrypoint, `org.opencontainers.image.*` labels, a fixed creation time); a manifest per
//! architecture and an image index over them. Same inputs, same digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::layer::{Files, Layer};
use super::oci::{
    Blob, Descriptor, History, ImageConfig, Index, Layout, MEDIA_CONFIG, MEDIA_INDEX,
    MEDIA_MANIFEST, Manifest, Platform, RootFs, RunConfig,
};
use super::{Arch, VERSION, Workload, elf};

/// The user (and group) the charms' pods run as: distroless' `nonroot`.
pub const USER_ID: u32 = 65532;
/// Where the trainer's image carries Fashion-MNIST: the trainer charm's `dataset-path` default.
pub const DATASET_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The four IDX files the trainer reads (each may also be gzipped, `NAME.gz`).
pub const DATASET_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SOURCE: &str = "https://github.com/wharf-dev/wharf";

/// What the images are made of.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Per architecture, the directory holding `wharf-trainer` and `wharf-server`.
    pub binaries: BTreeMap<Arch, PathBuf>,
    pub workloads: Vec<Workload>,
    /// Fashion-MNIST's IDX files, for the trainer's image.
    pub dataset: PathBuf,
    /// A CA bundle for the images (S3 over https), when there is one.
    pub ca_bundle: Option<PathBuf>,
    /// The creation time of every image (seconds since 1970: `SOURCE_DATE_EPOCH`).
    pub epoch: i64,
}

/// The images built: the layout holding them, and what each is.
pub struct Built {
    pub layout: Layout,
    pub images: Vec<BuiltImage>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltImage {
    pub reference: String,
    /// The image index's digest: what `ctr images ls` shows and a registry stores.
    pub digest: String,
    pub platforms: Vec<BuiltPlatform>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltPlatform {
    pub arch: Arch,
    pub manifest: String,
    /// Bytes a pull transfers: config and compressed layers.
    pub compressed: u64,
    /// Bytes of the unpacked file system.
    pub uncompressed: u64,
}

impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Build every image of `inputs`, checking each binary is static and for its architecture.
pub fn build(inputs: &Inputs) -> anyhow::Result<Built> {
    if inputs.binaries.is_empty() || inputs.workloads.is_empty() {
        bail!("nothing to build: give at least one architecture and one image");
    }
    let created = jiff::Timestamp::from_second(inputs.epoch)
        .with_context(|| format!("SOURCE_DATE_EPOCH={} is not a time", inputs.epoch))?
        .to_string();
    let base = base_layer(inputs.ca_bundle.as_deref())?;
    let dataset = if inputs.workloads.iter().any(|w| w.has_dataset()) {
        Some(dataset_layer(&inputs.dataset)?)
    } else {
        None
    };
    // The binaries are the slow part (tens of MB each to compress): one thread per binary.
    let jobs: Vec<(Workload, Arch, PathBuf)> = inputs
        .workloads
        .iter()
        .flat_map(|w| {
            inputs
                .binaries
                .iter()
                .map(move |(a, dir)| (*w, *a, dir.join(w.name())))
        })
        .collect();
    let binary_layers: Vec<anyhow::Result<Layer>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(w, a, path)| s.spawn(move || binary_layer(*w, *a, path)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a layer thread panicked"))
            .collect()
    });
    let mut binaries = BTreeMap::new();
    for ((w, a, _), layer) in jobs.into_iter().zip(binary_layers) {
        binaries.insert((w, a), layer?);
    }

    let mut layout = Layout::default();
    let mut images = Vec::new();
    for &workload in &inputs.workloads {
        let mut index_entries = Vec::new();
        let mut platforms = Vec::new();
        for &arch in inputs.binaries.keys() {
            let mut layers = vec![(&base, "base: /etc/passwd, /tmp, CA bundle".to_string())];
            if workload.has_dataset() {
                let d = dataset.as_ref().expect("built above");
                layers.push((d, format!("Fashion-MNIST in {DATASET_DIR}")));
            }
            let bin = &binaries[&(workload, arch)];
            layers.push((bin, format!("/usr/local/bin/{}", workload.name())));
            let config = image_config(
                workload,
                arch,
                &created,
                &layers,
                inputs.ca_bundle.is_some(),
            );
            let config = Blob::json(MEDIA_CONFIG, &config);
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_MANIFEST.into()),
                config: config.descriptor.clone(),
                layers: layers
                    .iter()
                    .map(|(l, _)| l.blob.descriptor.clone())
                    .collect(),
                annotations: BTreeMap::new(),
            };
            let manifest = Blob::json(MEDIA_MANIFEST, &manifest);
            for (l, _) in &layers {
                layout.add_blob(&l.blob);
            }
            layout.add_blob(&config);
            layout.add_blob(&manifest);
            let mut entry = manifest.descriptor.clone();
            entry.platform = Some(Platform {
                architecture: arch.as_str().into(),
                os: "linux".into(),
                variant: None,
            });
            index_entries.push(entry);
            platforms.push(BuiltPlatform {
                arch,
                manifest: manifest.descriptor.digest.clone(),
                compressed: config.descriptor.size
                    + layers
                        .iter()
                        .map(|(l, _)| l.blob.descriptor.size)
                        .sum::<u64>(),
                uncompressed: layers.iter().map(|(l, _)| l.uncompressed).sum(),
            });
        }
        let mut index = Index::new(index_entries);
        index.annotations = labels(workload, &created);
        let index = Blob::json(MEDIA_INDEX, &index);
        layout.add_blob(&index);
        let reference = workload.reference();
        layout.name(&reference, &index.descriptor);
        images.push(BuiltImage {
            reference,
            digest: index.descriptor.digest.clone(),
            platforms,
        });
    }
    Ok(Built { layout, images })
}

/// The `org.opencontainers.image.*` labels (and index annotations) of an image.
fn labels(workload: Workload, created: &str) -> BTreeMap<String, String> {
    [
        ("created", created.to_string()),
        ("description", workload.description().to_string()),
        ("licenses", "Apache-2.0".to_string()),
        ("source", SOURCE.to_string()),
        ("title", workload.name().to_string()),
        ("version", VERSION.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v))
    .collect()
}

fn image_config(
    workload: Workload,
    arch: Arch,
    created: &str,
    layers: &[(&Layer, String)],
    with_ca: bool,
) -> ImageConfig {
    let binary = format!("/usr/local/bin/{}", workload.name());
    let mut env = vec![
        "PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
        "HOME=/tmp".into(),
    ];
    if with_ca {
        env.push(format!("SSL_CERT_FILE={CA_BUNDLE}"));
    }
    ImageConfig {
        created: created.into(),
        architecture: arch.as_str().into(),
        os: "linux".into(),
        config: RunConfig {
            user: format!("{USER_ID}:{USER_ID}"),
            env,
            entrypoint: vec![binary],
            cmd: vec!["--help".into()],
            working_dir: "/".into(),
            labels: labels(workload, created),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|(l, _)| l.diff_id.clone()).collect(),
        },
        history: layers
            .iter()
            .map(|(_, what)| History {
                created: created.into(),
                created_by: format!("wharf images build: {what}"),
            })
            .collect(),
    }
}

/// What every image has: the non-root user by name, a world-writable `/tmp`, the CA bundle.
fn base_layer(ca_bundle: Option<&Path>) -> anyhow::Result<Layer> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/tmp:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{USER_ID}:\n");
    let mut files = Files::new()
        .file("etc/passwd", 0o644, passwd.into_bytes())
        .file("etc/group", 0o644, group.into_bytes())
        .dir("tmp", 0o1777);
    if let Some(ca) = ca_bundle {
        let bytes = std::fs::read(ca).with_context(|| {
            format!(
                "cannot read the CA bundle {}: apt-get install ca-certificates, or --no-ca-bundle",
                ca.display()
            )
        })?;
        files = files.file(CA_BUNDLE, 0o644, bytes);
    }
    files.layer()
}

/// Fashion-MNIST's four IDX files, as found in `dir` (plain or gzipped).
fn dataset_layer(dir: &Path) -> anyhow::Result<Layer> {
    let mut files = Files::new();
    let mut missing = Vec::new();
    for name in DATASET_FILES {
        let found = [name.to_string(), format!("{name}.gz")]
            .into_iter()
            .map(|n| (dir.join(&n), n))
            .find(|(p, _)| p.is_file());
        match found {
            Some((path, n)) => {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                files = files.file(&format!("{DATASET_DIR}/{n}"), 0o644, bytes);
            }
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        bail!(
            "the trainer's image carries Fashion-MNIST, but {} lacks {} (or .gz): install it with \
             `apt-get install dataset-fashion-mnist` (Debian, Ubuntu), or copy the four IDX files \
             of https://github.com/zalandoresearch/fashion-mnist there, or pass --dataset DIR",
            dir.display(),
            missing.join(", ")
        );
    }
    files.layer()
}

/// The workload's binary for `arch`, checked static, as a layer.
fn binary_layer(workload: Workload, arch: Arch, path: &Path) -> anyhow::Result<Layer> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "no {} binary for {arch} at {}: build it with `scripts/build-release.sh` (or pass \
             --binaries {arch}=DIR, or leave {arch} out with --arch)",
            workload.name(),
            path.display()
        )
    })?;
    elf::check_static(&bytes, arch).with_context(|| format!("{}", path.display()))?;
    Files::new()
        .file(&format!("usr/local/bin/{}", workload.name()), 0o755, bytes)
        .layer()
}

/// Index descriptors of the images in a layout, by reference (for `list`).
pub fn describe(layout: &Layout) -> anyhow::Result<Vec<(String, Descriptor, Vec<String>)>> {
    layout
        .named()
        .into_iter()
        .map(|n| {
            let arches = layout
                .manifests(&n.descriptor)?
                .into_iter()
                .filter_map(|(d, _)| d.platform.map(|p| p.architecture))
                .collect();
            Ok((n.reference, n.descriptor, arches))
        })
        .collect()
}
