//! The IDX file format of (Fashion-)MNIST: a big-endian header (magic, dimensions) followed by
//! unsigned bytes. Accepts plain or gzipped files; every error names the file and the fault.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: wrong magic number {found:#010x}, expected {expected:#010x} ({what}); is this the right IDX file?"
    )]
    Magic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error(
        "{path}: truncated: the header announces {expected} bytes of data but the file holds {found}"
    )]
    Truncated {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error(
        "{path}: {found} bytes of data after the header, expected {expected}; the file is corrupt"
    )]
    TrailingData {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error(
        "{images} holds {image_count} images but {labels} holds {label_count} labels; use the matching pair of files"
    )]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },
}

/// Images as raw pixels, `count × rows × cols`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    gunzip_if_gzipped(path, raw)
}

/// `raw` as is, or gunzipped when it starts with the gzip magic bytes (whatever its name says).
/// `path` names the file in errors (a local path or an s3:// URI).
pub fn gunzip_if_gzipped(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| IdxError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Splits `bytes` into its dimensions and data after checking the magic number and length.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, &'a [u8]), IdxError> {
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            found: bytes.len(),
        });
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let found = be(0);
    if found != magic {
        return Err(IdxError::Magic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..ndims).map(|d| be(4 + 4 * d) as usize).collect();
    let expected: usize = dims.iter().product();
    let data = &bytes[header..];
    if data.len() < expected {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: data.len(),
        });
    }
    if data.len() > expected {
        return Err(IdxError::TrailingData {
            path: path.to_path_buf(),
            expected,
            found: data.len(),
        });
    }
    Ok((dims, data))
}

pub fn read_images(path: &Path) -> Result<Images, IdxError> {
    decode_images(path, &read_maybe_gz(path)?)
}

/// Parses an images file already in memory (gunzipped); `path` names it in errors.
pub fn decode_images(path: &Path, bytes: &[u8]) -> Result<Images, IdxError> {
    let (dims, data) = parse(path, bytes, IMAGES_MAGIC, "images: ubyte, 3 dimensions")?;
    Ok(Images {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels: data.to_vec(),
    })
}

pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    decode_labels(path, &read_maybe_gz(path)?)
}

/// Parses a labels file already in memory (gunzipped); `path` names it in errors.
pub fn decode_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let (_, data) = parse(path, bytes, LABELS_MAGIC, "labels: ubyte, 1 dimension")?;
    Ok(data.to_vec())
}

/// Reads an images file and its labels file, checking the counts agree.
pub fn read_pair(images: &Path, labels: &Path) -> Result<(Images, Vec<u8>), IdxError> {
    check_pair(images, read_images(images)?, labels, read_labels(labels)?)
}

/// The images and labels of one split, if their counts agree.
pub fn check_pair(
    images: &Path,
    imgs: Images,
    labels: &Path,
    labs: Vec<u8>,
) -> Result<(Images, Vec<u8>), IdxError> {
    if imgs.count != labs.len() {
        return Err(IdxError::CountMismatch {
            images: images.to_path_buf(),
            image_count: imgs.count,
            labels: labels.to_path_buf(),
            label_count: labs.len(),
        });
    }
    Ok((imgs, labs))
}

/// Encodes an IDX file (for tests and fixtures).
pub fn encode(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_plain_and_gzipped_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode(
            IMAGES_MAGIC,
            &[2, 2, 3],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        );
        let plain = write(dir.path(), "a-idx3-ubyte", &raw);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let zipped = write(dir.path(), "a-idx3-ubyte.gz", &gz.finish().unwrap());
        let a = read_images(&plain).unwrap();
        assert_eq!((a.count, a.rows, a.cols), (2, 2, 3));
        assert_eq!(a, read_images(&zipped).unwrap());
    }

    #[test]
    fn broken_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "magic",
                encode(LABELS_MAGIC, &[1, 1, 1], &[0]),
                "wrong magic number 0x00000801",
            ),
            (
                "short-header",
                IMAGES_MAGIC.to_be_bytes().to_vec(),
                "truncated",
            ),
            (
                "short-data",
                encode(IMAGES_MAGIC, &[2, 2, 2], &[0; 5]),
                "announces 8 bytes of data but the file holds 5",
            ),
            (
                "long-data",
                encode(IMAGES_MAGIC, &[1, 1, 1], &[0; 3]),
                "3 bytes of data after the header, expected 1",
            ),
            ("empty", vec![], "truncated"),
        ];
        for (name, bytes, expected) in cases {
            let path = write(dir.path(), name, &bytes);
            let msg = read_images(&path).unwrap_err().to_string();
            assert!(msg.contains(expected), "{name}: {msg}");
            assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
        }
    }

    #[test]
    fn label_count_must_match_image_count() {
        let dir = tempfile::tempdir().unwrap();
        let images = write(dir.path(), "i", &encode(IMAGES_MAGIC, &[3, 1, 1], &[0; 3]));
        let labels = write(dir.path(), "l", &encode(LABELS_MAGIC, &[2], &[0; 2]));
        let msg = read_pair(&images, &labels).unwrap_err().to_string();
        assert!(
            msg.contains("3 images") && msg.contains("2 labels"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_file_names_it() {
        let msg = read_labels(Path::new("/nonexistent/labels"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/nonexistent/labels"), "{msg}");
    }
}
