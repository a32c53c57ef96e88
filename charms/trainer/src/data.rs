//! The Fashion-MNIST dataset: finds the four IDX files (gzipped or not) in a directory or an
//! `s3://bucket/prefix`, reads them and computes the digest recorded in the artifact.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wharf_model::location::Location;

use crate::idx;
use crate::output::block_on;

/// Where the Debian package `dataset-fashion-mnist` installs the data.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// One split: `len` images of `pixels_per_image` raw bytes and their labels.
#[derive(Debug, Clone)]
pub struct Split {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub pixels_per_image: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Keeps only the first `n` examples (for quick runs and tests).
    pub fn truncate(&mut self, n: usize) {
        self.labels.truncate(n);
        self.pixels.truncate(n * self.pixels_per_image);
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
    /// `sha256:<hex>` over the four files as stored, in a fixed order.
    pub digest: String,
}

/// The contents of `name` in `data`, plain or `.gz`, and the name it was found under.
fn fetch(data: &Location, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    for candidate in [name.to_string(), format!("{name}.gz")] {
        if let Some(bytes) =
            block_on(data.get(&candidate)).with_context(|| format!("reading {data}/{candidate}"))?
        {
            return Ok((PathBuf::from(data.join(&candidate).to_string()), bytes));
        }
    }
    bail!(
        "{data}: neither {name} nor {name}.gz found; point --data at the Fashion-MNIST IDX files \
         (`apt-get install dataset-fashion-mnist` puts them in {DEFAULT_DATA_DIR})"
    )
}

impl Dataset {
    /// Loads the four files from a local directory.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(&Location::Local(dir.to_path_buf()))
    }

    /// Loads the four files from a local directory or an S3 prefix.
    pub fn load_from(data: &Location) -> Result<Self> {
        // A missing bucket reads like a missing file; ask the store first so it says which.
        block_on(data.check_reachable())?;
        let files = FILES
            .iter()
            .map(|f| fetch(data, f))
            .collect::<Result<Vec<_>>>()?;
        let mut hasher = Sha256::new();
        for (_, bytes) in &files {
            hasher.update(bytes);
        }
        let digest = format!("sha256:{:x}", hasher.finalize());
        let mut files = files.into_iter();
        let mut split = || -> Result<Split> {
            let (images, raw_images) = files.next().expect("four files");
            let (labels, raw_labels) = files.next().expect("four files");
            let imgs = idx::decode_images(&images, &idx::gunzip_if_gzipped(&images, raw_images)?)?;
            let labs = idx::decode_labels(&labels, &idx::gunzip_if_gzipped(&labels, raw_labels)?)?;
            let (imgs, labels_data) = idx::check_pair(&images, imgs, &labels, labs)?;
            if imgs.rows * imgs.cols != 28 * 28 {
                bail!(
                    "{}: images must be 28x28 Fashion-MNIST images",
                    images.display()
                );
            }
            if let Some(bad) = labels_data.iter().find(|&&l| l >= 10) {
                bail!("{}: label {bad} is outside 0..10", labels.display());
            }
            Ok(Split {
                pixels: imgs.pixels,
                labels: labels_data,
                pixels_per_image: imgs.rows * imgs.cols,
            })
        };
        let train = split()?;
        let test = split()?;
        Ok(Dataset {
            train,
            test,
            digest,
        })
    }
}
