//! The artifact on disk: a version directory holding `model.json` ([`ModelMeta`]) and
//! `model.safetensors` (F32 weights named after the layers). Loading checks that the weights
//! are exactly the ones the layers need, so a mismatched pair fails here, not mid-request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{ModelError, Result};
use crate::meta::{FORMAT_VERSION, ModelMeta};

pub const META_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// One weight tensor, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and data; panics if they disagree (a programming error).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor data length does not match shape {shape:?}"
        );
        Tensor { shape, data }
    }
}

/// A model artifact in memory: metadata plus named weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub meta: ModelMeta,
    pub tensors: BTreeMap<String, Tensor>,
    /// Where it was loaded from (for error messages); `None` for one built in memory.
    pub source: Option<PathBuf>,
}

impl Artifact {
    /// An in-memory artifact; checks the tensors match the layers.
    pub fn new(meta: ModelMeta, tensors: BTreeMap<String, Tensor>) -> Result<Self> {
        let artifact = Artifact {
            meta,
            tensors,
            source: None,
        };
        artifact.check_tensors(Path::new("(in-memory artifact)"))?;
        Ok(artifact)
    }

    /// Reads `dir/model.json` and `dir/model.safetensors`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let meta_path = dir.join(META_FILE);
        let meta_bytes = read(&meta_path)?;
        let meta = parse_meta(&meta_path, &meta_bytes)?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = read(&weights_path)?;
        let tensors = decode_weights(&weights_path, &bytes)?;

        let artifact = Artifact {
            meta,
            tensors,
            source: Some(dir.to_path_buf()),
        };
        artifact.check_tensors(&weights_path)?;
        Ok(artifact)
    }

    /// Writes the artifact into `dir` (created if needed). Each file is written to a temporary
    /// name and renamed, weights first, so a directory with a `model.json` is always complete.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (weights, meta) = self.to_bytes()?;
        write_atomic(&dir.join(WEIGHTS_FILE), &weights)?;
        write_atomic(&dir.join(META_FILE), &meta)?;
        Ok(())
    }

    /// The two files' contents `(model.safetensors, model.json)`, for writers that are not a
    /// local directory (object stores).
    pub fn to_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let raw: Vec<(&String, Vec<u8>, &Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, bytes, &t.shape)
            })
            .collect();
        let views = raw
            .iter()
            .map(|(name, bytes, shape)| {
                TensorView::new(Dtype::F32, shape.to_vec(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| safetensors_error(Path::new(WEIGHTS_FILE), e))?;
        let weights = safetensors::serialize(views, None)
            .map_err(|e| safetensors_error(Path::new(WEIGHTS_FILE), e))?;
        let mut meta =
            serde_json::to_vec_pretty(&self.meta).map_err(|source| ModelError::Json {
                path: PathBuf::from(META_FILE),
                source,
            })?;
        meta.push(b'\n');
        Ok((weights, meta))
    }

    /// Parses the two files' contents; `origin` names them in errors.
    pub fn from_bytes(origin: &Path, weights: &[u8], meta: &[u8]) -> Result<Self> {
        let meta = parse_meta(&origin.join(META_FILE), meta)?;
        let weights_path = origin.join(WEIGHTS_FILE);
        let tensors = decode_weights(&weights_path, weights)?;
        let artifact = Artifact {
            meta,
            tensors,
            source: Some(origin.to_path_buf()),
        };
        artifact.check_tensors(&weights_path)?;
        Ok(artifact)
    }

    /// Every tensor the layers name exists with the right shape, and no other tensor exists.
    fn check_tensors(&self, path: &Path) -> Result<()> {
        let mut expected = BTreeMap::new();
        for layer in &self.meta.layers {
            for (name, shape) in layer.parameters() {
                let Some(found) = self.tensors.get(&name) else {
                    return Err(ModelError::MissingTensor {
                        path: path.to_path_buf(),
                        name,
                        layer: layer.label(),
                    });
                };
                if found.shape != shape {
                    return Err(ModelError::TensorShape {
                        path: path.to_path_buf(),
                        name,
                        expected: shape,
                        found: found.shape.clone(),
                    });
                }
                expected.insert(name, ());
            }
        }
        if let Some(extra) = self.tensors.keys().find(|k| !expected.contains_key(*k)) {
            return Err(ModelError::UnusedTensor {
                path: path.to_path_buf(),
                name: extra.clone(),
            });
        }
        Ok(())
    }
}

fn parse_meta(path: &Path, bytes: &[u8]) -> Result<ModelMeta> {
    // Check the version before the full parse, so a newer format gets the "upgrade" message
    // rather than a confusing field error.
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    if version.format_version > FORMAT_VERSION {
        return Err(ModelError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version.format_version,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn decode_weights(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| safetensors_error(path, e))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(ModelError::TensorDtype {
                path: path.to_path_buf(),
                name,
                found: format!("{:?}", view.dtype()),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(tensors)
}

fn safetensors_error(path: &Path, e: safetensors::SafeTensorError) -> ModelError {
    ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
