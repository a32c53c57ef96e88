//! The Fashion-MNIST dataset on disk: finds the four IDX files (gzipped or not) in a directory,
//! reads them and computes the digest recorded in the artifact.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::idx;

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

/// The path of `name` in `dir`, plain or `.gz`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{}: neither {name} nor {name}.gz found; point --data at the Fashion-MNIST IDX files \
         (`apt-get install dataset-fashion-mnist` puts them in {DEFAULT_DATA_DIR})",
        dir.display()
    )
}

impl Dataset {
    pub fn load(dir: &Path) -> Result<Self> {
        let paths = FILES
            .iter()
            .map(|f| locate(dir, f))
            .collect::<Result<Vec<_>>>()?;
        let mut hasher = Sha256::new();
        for p in &paths {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            hasher.update(&bytes);
        }
        let digest = format!("sha256:{:x}", hasher.finalize());
        let split = |images: &Path, labels: &Path| -> Result<Split> {
            let (imgs, labels) = idx::read_pair(images, labels)?;
            Ok(Split {
                pixels: imgs.pixels,
                labels,
                pixels_per_image: imgs.rows * imgs.cols,
            })
        };
        let train = split(&paths[0], &paths[1])?;
        let test = split(&paths[2], &paths[3])?;
        for (s, p) in [(&train, &paths[0]), (&test, &paths[2])] {
            if s.pixels_per_image != 28 * 28 {
                bail!("{}: images must be 28x28 Fashion-MNIST images", p.display());
            }
            if let Some(bad) = s.labels.iter().find(|&&l| l >= 10) {
                bail!("{}: label {bad} is outside 0..10", p.display());
            }
        }
        Ok(Dataset {
            train,
            test,
            digest,
        })
    }
}
