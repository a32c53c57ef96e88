//! Where artifacts and training data live: a local directory or a prefix in an S3-compatible
//! store (`s3://bucket/prefix`: AWS S3, MinIO). The trainer and the server both go through this
//! module (feature `s3`), so URI parsing, credentials and error advice exist once.
//!
//! Credentials and endpoint come from the environment, as every AWS tool reads them:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (required; `AWS_SESSION_TOKEN` optional),
//! `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` / `AWS_ENDPOINT` (an S3-compatible endpoint such as
//! `http://minio.kubeflow.svc:9000`; plain http is allowed when the endpoint says so) and
//! `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`, which MinIO accepts). Requests use
//! path-style addressing (`endpoint/bucket/key`), which MinIO needs.
//!
//! The API is async (object_store is); the trainer drives it from a small runtime of its own.
//! Errors name the URI and what to do, and never contain the secret key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use crate::artifact::{Artifact, META_FILE, WEIGHTS_FILE};
use crate::error::ModelError;

/// The environment variables an S3 location reads, in the order they are looked up.
pub const ENDPOINT_VARS: [&str; 3] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];

/// How to reach an S3-compatible store. [`S3Config::from_env`] is what the binaries use; tests
/// build one for their own store without touching the process environment.
#[derive(Clone, Default)]
pub struct S3Config {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `http(s)://host:port` of an S3-compatible store; `None` is AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl S3Config {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, the first of
    /// [`ENDPOINT_VARS`] that is set, `AWS_REGION` or `AWS_DEFAULT_REGION` (empty = unset).
    pub fn from_env() -> S3Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        S3Config {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            endpoint: ENDPOINT_VARS.iter().find_map(|v| var(v)),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        }
    }
}

/// Never prints the secret.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The keys of the Kubernetes Secret pods read S3 credentials from: those of the MinIO charm's
/// `<app>-credentials` Secret.
pub const SECRET_ACCESS_KEY_ID_KEY: &str = "access-key";
pub const SECRET_SECRET_ACCESS_KEY_KEY: &str = "secret-key";

/// The container `env` (Kubernetes EnvVar objects, as JSON) that lets a pod use `s3://`
/// locations: the credentials by secretKeyRef from `secret` (never copied into the pod spec),
/// the endpoint and the region as values. Both operators use it, so the trainer's Jobs and the
/// server's Deployments get the same variables this module reads.
pub fn pod_env(secret: &str, endpoint: &str, region: &str) -> serde_json::Value {
    let from_secret = |name: &str, key: &str| serde_json::json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}});
    let mut env = vec![
        from_secret("AWS_ACCESS_KEY_ID", SECRET_ACCESS_KEY_ID_KEY),
        from_secret("AWS_SECRET_ACCESS_KEY", SECRET_SECRET_ACCESS_KEY_KEY),
    ];
    if !endpoint.is_empty() {
        env.push(serde_json::json!({"name": "AWS_ENDPOINT_URL", "value": endpoint}));
    }
    if !region.is_empty() {
        env.push(serde_json::json!({"name": "AWS_REGION", "value": region}));
    }
    serde_json::Value::Array(env)
}

/// A local directory or an S3 prefix.
#[derive(Clone)]
pub enum Location {
    Local(PathBuf),
    S3(S3Prefix),
}

/// `s3://bucket/prefix` with a client for its store. `prefix` has no leading or trailing `/`.
#[derive(Clone)]
pub struct S3Prefix {
    bucket: String,
    prefix: String,
    endpoint: String,
    store: Arc<AmazonS3>,
}

/// One object under a location, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the location, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// Why a location could not be parsed, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("'{uri}': {message}")]
    Invalid { uri: String, message: String },
    #[error(
        "{uri}: {missing} is not set; S3 credentials come from the environment: set \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for MinIO, e.g. \
         http://minio.kubeflow.svc:9000)"
    )]
    Credentials { uri: String, missing: &'static str },
    #[error("{uri}: {message} ({advice})")]
    Store {
        uri: String,
        message: String,
        advice: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl Location {
    /// `s3://bucket/prefix` (client configured from the environment) or a local path.
    pub fn parse(text: &str) -> Result<Location, LocationError> {
        Location::parse_with(text, &S3Config::from_env())
    }

    /// Like [`Location::parse`], with an explicit S3 configuration.
    pub fn parse_with(text: &str, config: &S3Config) -> Result<Location, LocationError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return S3Prefix::new(text, bucket, prefix, config).map(Location::S3);
        }
        if text.contains("://") {
            return Err(LocationError::Invalid {
                uri: text.into(),
                message: "only local paths and s3://bucket/prefix are supported".into(),
            });
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3(_))
    }

    /// The location `rel` below this one (`rel` is `/`-separated).
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Local(dir) => Location::Local(dir.join(rel)),
            Location::S3(s3) => Location::S3(S3Prefix {
                prefix: join_key(&s3.prefix, rel),
                ..s3.clone()
            }),
        }
    }

    /// The contents of `rel`, or `None` when it does not exist.
    pub async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, LocationError> {
        match self {
            Location::Local(dir) => {
                let path = dir.join(rel);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(LocationError::Io { path, source }),
                }
            }
            Location::S3(s3) => {
                let key = s3.key(rel);
                match s3.store.get(&key).await {
                    Ok(result) => match result.bytes().await {
                        Ok(bytes) => Ok(Some(bytes.to_vec())),
                        Err(e) => Err(s3.error(rel, e)),
                    },
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(s3.error(rel, e)),
                }
            }
        }
    }

    /// Writes `rel`. Locally via a temporary file and a rename (readers never see half a file);
    /// an S3 PUT is atomic by itself.
    pub async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), LocationError> {
        match self {
            Location::Local(dir) => {
                let path = dir.join(rel);
                let io = |source| LocationError::Io {
                    path: path.clone(),
                    source,
                };
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes).map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(io)
            }
            Location::S3(s3) => s3
                .store
                .put(&s3.key(rel), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| s3.error(rel, e)),
        }
    }

    /// Removes `rel`; removing what does not exist is not an error.
    pub async fn delete(&self, rel: &str) -> Result<(), LocationError> {
        match self {
            Location::Local(dir) => {
                let path = dir.join(rel);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(LocationError::Io { path, source: e })
                    }
                    _ => Ok(()),
                }
            }
            Location::S3(s3) => match s3.store.delete(&s3.key(rel)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(s3.error(rel, e)),
            },
        }
    }

    /// Names of the immediate "subdirectories" (S3: common prefixes); empty when there is none.
    pub async fn children(&self) -> Result<Vec<String>, LocationError> {
        match self {
            Location::Local(dir) => {
                let io = |source| LocationError::Io {
                    path: dir.clone(),
                    source,
                };
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io(e)),
                };
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(io)?;
                    if entry.path().is_dir()
                        && let Ok(name) = entry.file_name().into_string()
                    {
                        names.push(name);
                    }
                }
                names.sort();
                Ok(names)
            }
            Location::S3(s3) => {
                let prefix = s3.prefix_path();
                let listing = s3
                    .store
                    .list_with_delimiter(prefix.as_ref())
                    .await
                    .map_err(|e| s3.error("", e))?;
                let mut names: Vec<String> = listing
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            }
        }
    }

    /// Every object below this S3 prefix (recursively), paths relative to it. Local
    /// directories are not listed this way (callers read them with `std::fs`).
    pub async fn list_s3(&self) -> Result<Vec<Entry>, LocationError> {
        let Location::S3(s3) = self else {
            return Ok(Vec::new());
        };
        let prefix = s3.prefix_path();
        let metas: Vec<_> = s3
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| s3.error("", e))?;
        let strip = if s3.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", s3.prefix)
        };
        let mut entries: Vec<Entry> = metas
            .into_iter()
            .filter_map(|m| {
                let path = m.location.as_ref().strip_prefix(&strip)?.to_string();
                Some(Entry { path, size: m.size })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Fails with the usual advice unless the store answers a listing of this location (the
    /// bucket exists, the credentials are accepted, the endpoint is reachable). Local: no-op.
    pub async fn check_reachable(&self) -> Result<(), LocationError> {
        if let Location::S3(s3) = self {
            s3.store
                .list_with_delimiter(s3.prefix_path().as_ref())
                .await
                .map_err(|e| s3.error("", e))?;
        }
        Ok(())
    }

    /// Writes the artifact here: weights first, then `model.json`, so a version whose
    /// `model.json` exists is complete (the server waits for it).
    pub async fn save_artifact(&self, artifact: &Artifact) -> Result<(), LocationError> {
        match self {
            Location::Local(dir) => Ok(artifact.save(dir)?),
            Location::S3(_) => {
                let (weights, meta) = artifact.to_bytes()?;
                self.put(WEIGHTS_FILE, weights).await?;
                self.put(META_FILE, meta).await
            }
        }
    }

    /// Reads the artifact stored here.
    pub async fn load_artifact(&self) -> Result<Artifact, LocationError> {
        match self {
            Location::Local(dir) => Ok(Artifact::load(dir)?),
            Location::S3(_) => {
                let missing = |name: &str| LocationError::Invalid {
                    uri: format!("{self}/{name}"),
                    message: "not found; is this a model version holding model.json and \
                              model.safetensors?"
                        .into(),
                };
                let meta = self
                    .get(META_FILE)
                    .await?
                    .ok_or_else(|| missing(META_FILE))?;
                let weights = self
                    .get(WEIGHTS_FILE)
                    .await?
                    .ok_or_else(|| missing(WEIGHTS_FILE))?;
                Ok(Artifact::from_bytes(
                    Path::new(&self.to_string()),
                    &weights,
                    &meta,
                )?)
            }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(dir) => write!(f, "{}", dir.display()),
            Location::S3(s3) => write!(f, "{s3}"),
        }
    }
}

/// Never prints the client (its configuration holds the credentials).
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(dir) => f.debug_tuple("Local").field(dir).finish(),
            Location::S3(s3) => f.debug_tuple("S3").field(&s3.to_string()).finish(),
        }
    }
}

impl fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl S3Prefix {
    fn new(
        uri: &str,
        bucket: &str,
        prefix: &str,
        config: &S3Config,
    ) -> Result<S3Prefix, LocationError> {
        let invalid = |message: &str| LocationError::Invalid {
            uri: uri.into(),
            message: message.into(),
        };
        if bucket.is_empty() {
            return Err(invalid("no bucket name; write s3://<bucket>/<prefix>"));
        }
        let prefix = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>();
        if prefix.iter().any(|p| *p == "." || *p == "..") {
            return Err(invalid("'.' and '..' are not allowed in the prefix"));
        }
        let prefix = prefix.join("/");
        let credential = |value: &Option<String>, name: &'static str| {
            value.clone().ok_or(LocationError::Credentials {
                uri: uri.into(),
                missing: name,
            })
        };
        let key_id = credential(&config.access_key_id, "AWS_ACCESS_KEY_ID")?;
        let secret = credential(&config.secret_access_key, "AWS_SECRET_ACCESS_KEY")?;
        let region = config.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = config.endpoint.clone();
        // Fail within seconds, not after object_store's default three minutes of retries: an
        // unreachable endpoint is a configuration error far more often than a blip.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        };
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let shown_endpoint = match &endpoint {
            Some(e) => {
                builder = builder
                    .with_endpoint(e)
                    .with_allow_http(e.starts_with("http://"));
                e.clone()
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let store = builder.build().map_err(|e| LocationError::Invalid {
            uri: uri.into(),
            message: format!("{e} (check AWS_ENDPOINT_URL and AWS_REGION)"),
        })?;
        Ok(S3Prefix {
            bucket: bucket.into(),
            prefix,
            endpoint: shown_endpoint,
            store: Arc::new(store),
        })
    }

    fn key(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(join_key(&self.prefix, rel))
    }

    fn prefix_path(&self) -> Option<ObjectPath> {
        (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()))
    }

    /// An object_store error as advice: what to check for the usual causes.
    fn error(&self, rel: &str, e: object_store::Error) -> LocationError {
        let uri = if rel.is_empty() {
            self.to_string()
        } else {
            format!("{self}/{rel}")
        };
        let message = e.to_string();
        let advice = advice(&message, &self.bucket, &self.endpoint);
        LocationError::Store {
            uri,
            message,
            advice,
        }
    }
}

/// What to do about a failed request, from the store's message.
fn advice(message: &str, bucket: &str, endpoint: &str) -> String {
    if message.contains("NoSuchBucket") {
        format!("bucket '{bucket}' does not exist at {endpoint}: create it (mc mb / aws s3 mb)")
    } else if [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        // The status as object_store words it; never a bare "403", which also matches elapsed
        // times ("… in 403.27ms, after 3 retries").
        "403 Forbidden",
    ]
    .iter()
    .any(|s| message.contains(s))
    {
        format!(
            "{endpoint} refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    } else if [
        "error sending request",
        "connect",
        "dns",
        "timed out",
        "Connection refused",
    ]
    .iter()
    .any(|s| message.contains(s))
    {
        format!(
            "cannot reach {endpoint}: check AWS_ENDPOINT_URL (e.g. http://minio.<namespace>.svc:9000) \
             and that the store is running"
        )
    } else {
        format!("endpoint {endpoint}; check AWS_ENDPOINT_URL, AWS_REGION and the credentials")
    }
}

fn join_key(prefix: &str, rel: &str) -> String {
    let rel = rel.trim_matches('/');
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_the_credentials_by_reference_and_the_endpoint_by_value() {
        let env = pod_env(
            "minio-credentials",
            "http://minio.wharf.svc:9000",
            "us-east-1",
        );
        assert_eq!(
            env[1],
            serde_json::json!({"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "minio-credentials", "key": "secret-key"}}})
        );
        assert_eq!(env[2]["value"], "http://minio.wharf.svc:9000");
        assert_eq!(pod_env("s", "", "").as_array().unwrap().len(), 2);
    }

    #[test]
    fn keys_join_without_doubled_or_leading_slashes() {
        assert_eq!(join_key("", "a/b"), "a/b");
        assert_eq!(join_key("p", ""), "p");
        assert_eq!(join_key("p/q", "/1/"), "p/q/1");
    }

    #[test]
    fn local_paths_and_bad_uris() {
        assert!(matches!(
            Location::parse("/data/x").unwrap(),
            Location::Local(p) if p == Path::new("/data/x")
        ));
        let err = Location::parse("gs://b/p").unwrap_err().to_string();
        assert!(err.contains("only local paths and s3://"), "{err}");
    }

    #[test]
    fn errors_give_advice_for_the_usual_causes() {
        let e = "http://m:9000";
        assert!(advice("NoSuchBucket: x", "b", e).contains("bucket 'b' does not exist"));
        assert!(advice("InvalidAccessKeyId", "b", e).contains("refused the credentials"));
        assert!(advice("error sending request for url", "b", e).contains("cannot reach"));
        assert!(
            advice(
                "Server returned non-2xx status code: 403 Forbidden: <Error/>",
                "b",
                e
            )
            .contains("refused the credentials")
        );
        // A refused connection whose retries took 403 ms is still a refused connection.
        let slow = "Error performing GET http://127.0.0.1:9/models in 403.271424ms, after 3 \
                    retries - HTTP error: error sending request";
        assert!(
            advice(slow, "b", e).contains("cannot reach"),
            "{}",
            advice(slow, "b", e)
        );
    }

    #[test]
    fn s3_uris_need_a_bucket_and_credentials() {
        let none = S3Config::default();
        let err = Location::parse_with("s3://models/x", &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3://models/x: AWS_ACCESS_KEY_ID is not set"),
            "{err}"
        );
        let keys = S3Config {
            access_key_id: Some("id".into()),
            secret_access_key: Some("very-secret".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Config::default()
        };
        let err = Location::parse_with("s3:///x", &keys)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no bucket name"), "{err}");
        let loc = Location::parse_with("s3://models//a/b/", &keys).unwrap();
        assert_eq!(loc.to_string(), "s3://models/a/b");
        assert_eq!(loc.join("3").to_string(), "s3://models/a/b/3");
        assert!(!format!("{loc:?} {keys:?}").contains("very-secret"));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named_without_the_secret() {
        let keys = S3Config {
            access_key_id: Some("id".into()),
            secret_access_key: Some("very-secret".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Config::default()
        };
        let loc = Location::parse_with("s3://models/a", &keys).unwrap();
        let err = loc.check_reachable().await.unwrap_err().to_string();
        assert!(err.starts_with("s3://models/a: "), "{err}");
        assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
        assert!(!err.contains("very-secret"), "{err}");
    }

    #[tokio::test]
    async fn a_local_location_reads_writes_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Local(dir.path().to_path_buf());
        assert_eq!(loc.get("missing").await.unwrap(), None);
        loc.join("3").put("f.bin", vec![1, 2]).await.unwrap();
        assert_eq!(loc.get("3/f.bin").await.unwrap(), Some(vec![1, 2]));
        loc.delete("3/f.bin").await.unwrap();
        loc.delete("3/f.bin").await.unwrap();
        assert_eq!(loc.get("3/f.bin").await.unwrap(), None);
        assert_eq!(loc.children().await.unwrap(), vec!["3".to_string()]);
        assert!(loc.join("nope").children().await.unwrap().is_empty());
    }
}
