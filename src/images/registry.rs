//! The OCI distribution API, as much of it as wharf needs: push an image of a layout (blobs
//! first, each only if the registry lacks it, then the manifests, then the index under its tag)
//! and pull one back into a layout (the index or manifest by tag, every manifest it names, every
//! blob). Anonymous access, with the anonymous bearer token public registries hand out; a registry
//! that wants a login is refused with a message saying so.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use reqwest::{Client, RequestBuilder, Response, StatusCode, header};

use super::oci::{
    self, Descriptor, Index, Layout, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_INDEX,
    MEDIA_MANIFEST, Manifest,
};

/// `registry/repository:tag` (or `@sha256:…`), split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag or a digest.
    pub tag: String,
}

impl Reference {
    /// Parse a full reference; Docker Hub's short names (`nginx:1.27`) get `docker.io/library/`.
    /// A reference pinned by both (`minio:RELEASE.x@sha256:…`) is fetched by its digest: the tag
    /// only says which version the digest is.
    pub fn parse(s: &str) -> anyhow::Result<Reference> {
        let (name, tag) = match s.split_once('@') {
            Some((n, d)) => {
                let untagged = match n.rsplit_once(':') {
                    Some((repo, tag)) if !tag.contains('/') => repo,
                    _ => n,
                };
                (untagged, d.to_string())
            }
            None => match s.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => bail!(
                    "image reference `{s}` has no tag or digest; wharf only uses pinned images"
                ),
            },
        };
        let (registry, repository) = match name.split_once('/') {
            Some((r, rest)) if r.contains('.') || r.contains(':') || r == "localhost" => {
                (r.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.tag.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(f, "{}/{}{sep}{}", self.registry, self.repository, self.tag)
    }
}

/// A registry endpoint: `localhost:32000`, `http://10.0.0.5:5000`, `https://registry.example`.
#[derive(Debug, Clone)]
pub struct Registry {
    base: String,
    client: Client,
    token: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Registry {
    /// Loopback registries (MicroK8s' add-on at `localhost:32000`) speak plain http, as do those
    /// given as `http://…`; every other registry https.
    pub fn new(spec: &str) -> anyhow::Result<Registry> {
        let base = if spec.starts_with("http://") || spec.starts_with("https://") {
            spec.trim_end_matches('/').to_string()
        } else {
            let host = spec.split(':').next().unwrap_or(spec);
            let loopback =
                host == "localhost" || host.starts_with("127.") || spec.starts_with("[::1]");
            let scheme = if loopback { "http" } else { "https" };
            format!("{scheme}://{}", spec.trim_end_matches('/'))
        };
        let client = Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Registry {
            base,
            client,
            token: Default::default(),
        })
    }

    /// The registry a reference lives in (`docker.io` is served by `registry-1.docker.io`).
    pub fn for_reference(r: &Reference) -> anyhow::Result<Registry> {
        if r.registry == "docker.io" {
            return Registry::new("https://registry-1.docker.io");
        }
        Registry::new(&r.registry)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        what: &str,
    ) -> anyhow::Result<Response> {
        let mut req = build();
        if let Some(t) = self.token.lock().expect("token lock").clone() {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| {
            format!("{what}: {} is unreachable (is the registry running? MicroK8s: `microk8s enable registry`)", self.base)
        })?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let token = self.anonymous_token(&challenge).await.with_context(|| {
            format!("{what}: {} asks for credentials, and wharf only uses registries that allow anonymous access \
                     (MicroK8s' registry add-on, a local docker-registry); copy with `skopeo copy --all` instead", self.base)
        })?;
        *self.token.lock().expect("token lock") = Some(token.clone());
        Ok(build().bearer_auth(token).send().await?)
    }

    /// The anonymous token of a `Bearer realm=…,service=…,scope=…` challenge.
    async fn anonymous_token(&self, challenge: &str) -> anyhow::Result<String> {
        let params = challenge
            .strip_prefix("Bearer ")
            .context("no bearer challenge")?;
        let mut fields = BTreeMap::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                fields.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        let realm = fields
            .remove("realm")
            .context("no realm in the challenge")?;
        let query: Vec<(String, String)> = fields.into_iter().collect();
        let resp = self.client.get(&realm).query(&query).send().await?;
        if !resp.status().is_success() {
            bail!("the token service {realm} answered {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(String::from)
            .context("no token in the token service's answer")
    }

    /// Push the image `image` of `layout` as `repository:tag`; returns the digest the registry
    /// stored under the tag.
    pub async fn push(
        &self,
        layout: &Layout,
        image: &Descriptor,
        repository: &str,
        tag: &str,
    ) -> anyhow::Result<PushReport> {
        let mut report = PushReport::default();
        for d in layout.closure(image)? {
            let bytes = layout.blob(&d.digest)?.to_vec();
            if is_manifest(&d.media_type) {
                let reference = if d.digest == image.digest {
                    tag
                } else {
                    &d.digest
                };
                self.put_manifest(repository, reference, &d, bytes).await?;
            } else if self.has_blob(repository, &d.digest).await? {
                report.skipped += 1;
            } else {
                self.upload_blob(repository, &d.digest, bytes).await?;
                report.uploaded += 1;
                report.bytes += d.size;
            }
        }
        report.digest = image.digest.clone();
        Ok(report)
    }

    async fn has_blob(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self
            .send(|| self.client.head(&url), &format!("HEAD {url}"))
            .await?;
        Ok(resp.status().is_success())
    }

    async fn upload_blob(&self, repo: &str, digest: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self
            .send(|| self.client.post(&url), &format!("POST {url}"))
            .await?;
        let resp = expect(
            resp,
            StatusCode::ACCEPTED,
            &format!("starting an upload to {url}"),
        )
        .await?;
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .context("the registry started an upload without a Location")?;
        let mut put = if location.starts_with("http") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={digest}"));
        let resp = self
            .send(
                || {
                    self.client
                        .put(&put)
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                },
                &format!("PUT {put}"),
            )
            .await?;
        expect(
            resp,
            StatusCode::CREATED,
            &format!("uploading blob {digest}"),
        )
        .await?;
        Ok(())
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        d: &Descriptor,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .send(
                || {
                    self.client
                        .put(&url)
                        .header(header::CONTENT_TYPE, &d.media_type)
                        .body(bytes.clone())
                },
                &format!("PUT {url}"),
            )
            .await?;
        let resp = expect(
            resp,
            StatusCode::CREATED,
            &format!("storing manifest {}", d.digest),
        )
        .await?;
        if let Some(stored) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && stored != d.digest
        {
            bail!(
                "{url}: the registry stored {stored}, not {}; it rewrote the manifest",
                d.digest
            );
        }
        Ok(())
    }

    /// Pull `repository:tag` (every platform) into `layout`, named `name`; returns its descriptor.
    pub async fn pull(
        &self,
        layout: &mut Layout,
        repository: &str,
        tag: &str,
        name: &str,
    ) -> anyhow::Result<Descriptor> {
        let (top, bytes) = self.get_manifest(repository, tag).await?;
        layout.blobs.insert(top.digest.clone(), bytes.clone());
        let children: Vec<Descriptor> = match top.media_type.as_str() {
            MEDIA_INDEX | MEDIA_DOCKER_LIST => {
                let index: Index = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{repository}:{tag}: not a valid image index"))?;
                index.manifests
            }
            _ => vec![top.clone()],
        };
        for child in children {
            let bytes = if child.digest == top.digest {
                bytes.clone()
            } else {
                let (_, b) = self.get_manifest(repository, &child.digest).await?;
                if oci::sha256(&b) != child.digest {
                    bail!(
                        "{repository}@{}: the registry sent other bytes",
                        child.digest
                    );
                }
                layout.blobs.insert(child.digest.clone(), b.clone());
                b
            };
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("{repository}@{}: not a valid manifest", child.digest))?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !layout.blobs.contains_key(&blob.digest) {
                    let b = self.get_blob(repository, &blob.digest).await?;
                    layout.blobs.insert(blob.digest.clone(), b);
                }
            }
        }
        layout.name(name, &top);
        Ok(top)
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> anyhow::Result<(Descriptor, Vec<u8>)> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .send(
                || self.client.get(&url).header(header::ACCEPT, ACCEPT),
                &format!("GET {url}"),
            )
            .await?;
        let resp = expect(
            resp,
            StatusCode::OK,
            &format!("fetching {repo}:{reference}"),
        )
        .await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(MEDIA_MANIFEST)
            .to_string();
        let bytes = resp.bytes().await?.to_vec();
        let digest = oci::sha256(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            bail!("{url}: the registry sent bytes with digest {digest}");
        }
        Ok((
            Descriptor {
                media_type,
                size: bytes.len() as u64,
                digest,
                platform: None,
                annotations: BTreeMap::new(),
            },
            bytes,
        ))
    }

    async fn get_blob(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self
            .send(|| self.client.get(&url), &format!("GET {url}"))
            .await?;
        let resp = expect(resp, StatusCode::OK, &format!("fetching blob {digest}")).await?;
        let bytes = resp.bytes().await?.to_vec();
        if oci::sha256(&bytes) != digest {
            bail!("{url}: the registry sent bytes that do not match the digest");
        }
        Ok(bytes)
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PushReport {
    pub digest: String,
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes: u64,
}

fn is_manifest(media_type: &str) -> bool {
    [
        MEDIA_INDEX,
        MEDIA_MANIFEST,
        MEDIA_DOCKER_LIST,
        MEDIA_DOCKER_MANIFEST,
    ]
    .contains(&media_type)
}

async fn expect(resp: Response, want: StatusCode, what: &str) -> anyhow::Result<Response> {
    if resp.status() == want || (want == StatusCode::OK && resp.status().is_success()) {
        return Ok(resp);
    }
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    bail!("{what}: {url} answered {status}: {body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_docker_does() {
        let cases = [
            (
                "wharf.local/wharf-server:0.1.0",
                "wharf.local",
                "wharf-server",
                "0.1.0",
            ),
            (
                "localhost:32000/wharf-server:0.1.0",
                "localhost:32000",
                "wharf-server",
                "0.1.0",
            ),
            (
                "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z",
                "quay.io",
                "minio/minio",
                "RELEASE.2024-12-18T13-15-44Z",
            ),
            (
                "docker.io/nginxinc/nginx-unprivileged:1.27.3-alpine",
                "docker.io",
                "nginxinc/nginx-unprivileged",
                "1.27.3-alpine",
            ),
            ("nginx:1.27", "docker.io", "library/nginx", "1.27"),
            (
                "ghcr.io/dexidp/dex@sha256:abc",
                "ghcr.io",
                "dexidp/dex",
                "sha256:abc",
            ),
            (
                "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z@sha256:abc",
                "quay.io",
                "minio/minio",
                "sha256:abc",
            ),
            (
                "localhost:32000/x:1@sha256:abc",
                "localhost:32000",
                "x",
                "sha256:abc",
            ),
        ];
        for (s, registry, repository, tag) in cases {
            let r = Reference::parse(s).unwrap();
            assert_eq!(
                (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
                (registry, repository, tag),
                "{s}"
            );
        }
        assert!(Reference::parse("localhost:32000/x").is_err());
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        assert_eq!(
            Registry::new("localhost:32000").unwrap().base(),
            "http://localhost:32000"
        );
        assert_eq!(
            Registry::new("127.0.0.1:5000").unwrap().base(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            Registry::new("registry.example:443").unwrap().base(),
            "https://registry.example:443"
        );
        assert_eq!(
            Registry::new("http://10.0.0.5:5000/").unwrap().base(),
            "http://10.0.0.5:5000"
        );
    }
}
