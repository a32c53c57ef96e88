//! `spec.model.storageUri` turned into where the model server's pod reads the model repository
//! from. The repository holds `<model>/<version>/`; the pod mounts only `<repository>/<model>`.
//!
//! - `pvc://<claim>/<path>`: a PersistentVolumeClaim in the InferenceService's namespace, mounted
//!   read-only with `subPath: <path>/<model>` (what the trainer writes to, e.g. `pvc://models` with
//!   model `fashion` for a TrainJob whose output is `pvc://models/fashion`).
//! - `file:///<path>`: a directory on the node (hostPath), for single-node clusters.
//! - `s3://<bucket>/<path>`: an S3-compatible store (the platform's MinIO by default); the pod
//!   downloads `<path>/<model>/` itself, with credentials from the Secret the charm names.

use std::fmt;

/// Where the model repository lives, parsed from `storageUri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A PersistentVolumeClaim; `path` is the repository inside it ("" for its root).
    Pvc { claim: String, path: String },
    /// An absolute directory on the node.
    Host { path: String },
    /// `s3://<bucket>/<path>`: the repository's URI, normalised (no empty or trailing segments).
    S3 { uri: String },
}

impl ModelSource {
    /// The sub-path (PVC) or absolute path (host) of one model's directory.
    pub fn model_path(&self, model: &str) -> String {
        match self {
            ModelSource::Pvc { path, .. } if path.is_empty() => model.to_string(),
            ModelSource::Pvc { path, .. } => format!("{path}/{model}"),
            ModelSource::Host { path } if path == "/" => format!("/{model}"),
            ModelSource::Host { path } => format!("{path}/{model}"),
            ModelSource::S3 { uri } => format!("{uri}/{model}"),
        }
    }
}

/// Why a `storageUri` cannot be served; the message goes into the Ready condition as is. Every
/// scheme the CRD admits (pvc, file, s3) is served, so the only failure is a malformed URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    Invalid(String),
}

impl StorageError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StorageError::Invalid(_) => "InvalidStorageUri",
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StorageError {}

/// Parse a `storageUri`.
pub fn parse(uri: &str) -> Result<ModelSource, StorageError> {
    if let Some(rest) = uri.strip_prefix("pvc://") {
        let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_dns_subdomain(claim) {
            return Err(StorageError::Invalid(format!(
                "storageUri '{uri}': '{claim}' is not a PersistentVolumeClaim name; \
                 write pvc://<claim>/<path>"
            )));
        }
        Ok(ModelSource::Pvc {
            claim: claim.to_string(),
            path: clean_path(uri, path)?,
        })
    } else if let Some(rest) = uri.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(StorageError::Invalid(format!(
                "storageUri '{uri}': file:// needs an absolute path, e.g. file:///var/lib/models"
            )));
        }
        let path = clean_path(uri, rest)?;
        Ok(ModelSource::Host {
            path: format!("/{path}"),
        })
    } else if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err(StorageError::Invalid(format!(
                "storageUri '{uri}': '{bucket}' is not an S3 bucket name; write s3://<bucket>/<path>"
            )));
        }
        let path = clean_path(uri, path)?;
        Ok(ModelSource::S3 {
            uri: if path.is_empty() {
                format!("s3://{bucket}")
            } else {
                format!("s3://{bucket}/{path}")
            },
        })
    } else {
        Err(StorageError::Invalid(format!(
            "storageUri '{uri}' must start with pvc://, file:// or s3://"
        )))
    }
}

/// `a//b/` -> `a/b`; `..`, `.` and characters outside a safe set are refused (the path becomes a
/// volume subPath, which must never climb out of the volume).
fn clean_path(uri: &str, path: &str) -> Result<String, StorageError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        let safe = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if *part == "." || *part == ".." || !safe {
            return Err(StorageError::Invalid(format!(
                "storageUri '{uri}': path segment '{part}' is not allowed \
                 (letters, digits, '-', '_', '.'; no '.' or '..')"
            )));
        }
    }
    Ok(parts.join("/"))
}

/// An S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a
/// letter or digit.
fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// An RFC 1123 subdomain, what object names such as a PersistentVolumeClaim's must be.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvc_uris_name_the_claim_and_the_repository_inside_it() {
        let cases = [
            ("pvc://models", "models", ""),
            ("pvc://models/", "models", ""),
            ("pvc://models/repo", "models", "repo"),
            ("pvc://models//a/b/", "models", "a/b"),
        ];
        for (uri, claim, path) in cases {
            assert_eq!(
                parse(uri),
                Ok(ModelSource::Pvc {
                    claim: claim.into(),
                    path: path.into()
                }),
                "{uri}"
            );
        }
        let source = parse("pvc://models/repo").unwrap();
        assert_eq!(source.model_path("fashion"), "repo/fashion");
        assert_eq!(parse("pvc://m").unwrap().model_path("fashion"), "fashion");
    }

    #[test]
    fn file_uris_are_absolute_host_directories() {
        let source = parse("file:///var/lib/models/").unwrap();
        assert_eq!(
            source,
            ModelSource::Host {
                path: "/var/lib/models".into()
            }
        );
        assert_eq!(source.model_path("fashion"), "/var/lib/models/fashion");
        assert_eq!(parse("file:///").unwrap().model_path("f"), "/f");
    }

    #[test]
    fn s3_uris_name_the_repository_and_each_model_below_it() {
        let source = parse("s3://models//repo/").unwrap();
        assert_eq!(
            source,
            ModelSource::S3 {
                uri: "s3://models/repo".into()
            }
        );
        assert_eq!(source.model_path("fashion"), "s3://models/repo/fashion");
        assert_eq!(parse("s3://wharf").unwrap().model_path("f"), "s3://wharf/f");
    }

    #[test]
    fn bad_uris_say_what_to_write() {
        for (uri, says, reason) in [
            (
                "s3://B/models",
                "not an S3 bucket name",
                "InvalidStorageUri",
            ),
            ("s3:///models", "not an S3 bucket name", "InvalidStorageUri"),
            (
                "s3://models/../x",
                "'..' is not allowed",
                "InvalidStorageUri",
            ),
            (
                "pvc://Models/x",
                "not a PersistentVolumeClaim name",
                "InvalidStorageUri",
            ),
            (
                "pvc:///x",
                "not a PersistentVolumeClaim name",
                "InvalidStorageUri",
            ),
            (
                "pvc://models/../etc",
                "'..' is not allowed",
                "InvalidStorageUri",
            ),
            (
                "pvc://models/a b",
                "'a b' is not allowed",
                "InvalidStorageUri",
            ),
            ("file://relative", "absolute path", "InvalidStorageUri"),
            ("http://x/y", "must start with pvc://", "InvalidStorageUri"),
        ] {
            let err = parse(uri).unwrap_err();
            assert!(err.to_string().contains(says), "{uri}: {err}");
            assert_eq!(err.reason(), reason, "{uri}");
        }
    }
}
