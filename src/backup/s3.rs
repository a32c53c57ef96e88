//! S3-compatible stores (MinIO, AWS S3, moto in tests) through object_store: a client for one
//! bucket, and an object's attributes (content type, user metadata…) as a plain map, so that a
//! restored object carries them again. Path-style requests, plain http allowed (MinIO behind a
//! port-forward). Never prints the secret key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use object_store::aws::AmazonS3Builder;
use object_store::{Attribute, AttributeValue, Attributes, ClientOptions, ObjectStore};

/// How to reach an S3-compatible store.
#[derive(Clone, Default)]
pub struct S3Access {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `http(s)://host:port`; empty is AWS itself.
    pub endpoint: String,
    pub region: String,
}

impl fmt::Debug for S3Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Access")
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Access {
    /// From the environment, as every AWS tool reads it (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`): where backups are kept.
    pub fn from_env() -> S3Access {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        S3Access {
            access_key_id: var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            endpoint: ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|n| var(n))
                .unwrap_or_default(),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        }
    }

    /// A client for `bucket`.
    pub fn store(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            anyhow::bail!(
                "no S3 credentials for bucket `{bucket}`: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY"
            );
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(false)
            .with_client_options(ClientOptions::new().with_allow_http(true));
        if !self.endpoint.is_empty() {
            b = b.with_endpoint(&self.endpoint);
        }
        let store = b
            .build()
            .map_err(|e| anyhow!("S3 bucket `{bucket}` at {}: {e}", self.endpoint))?;
        Ok(Arc::new(store))
    }
}

impl S3Access {
    /// Create `bucket` unless it exists (a restore into a fresh MinIO, whose bucket Job has not
    /// run or made other buckets): HEAD, then PUT when missing, both signed with SigV4 by
    /// object_store's own signer (object_store has no bucket operations). Returns whether it
    /// created the bucket.
    pub async fn ensure_bucket(&self, bucket: &str) -> anyhow::Result<bool> {
        let at = if self.endpoint.is_empty() {
            format!("https://s3.{}.amazonaws.com", self.region)
        } else {
            self.endpoint.trim_end_matches('/').to_owned()
        };
        let url = format!("{at}/{bucket}");
        let head = self.signed(reqwest::Method::HEAD, &url, Vec::new()).await?;
        match head.status().as_u16() {
            200 => return Ok(false),
            404 => {}
            403 => bail!(
                "bucket `{bucket}` at {at}: access denied (HTTP 403); give these credentials                  s3:ListBucket and s3:CreateBucket"
            ),
            code => bail!("bucket `{bucket}` at {at}: HEAD answered HTTP {code}"),
        }
        // us-east-1 is the default location and must not be named (AWS refuses it).
        let body = if self.region == "us-east-1" || self.region.is_empty() {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
            .into_bytes()
        };
        let put = self.signed(reqwest::Method::PUT, &url, body).await?;
        let status = put.status();
        if !status.is_success() {
            let text = put.text().await.unwrap_or_default();
            bail!(
                "cannot create bucket `{bucket}` at {at} (HTTP {status}): {}",
                text.trim()
            );
        }
        Ok(true)
    }

    async fn signed(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        use object_store::client::{HttpRequest, HttpRequestBody};
        let credential = object_store::aws::AwsCredential {
            key_id: self.access_key_id.clone(),
            secret_key: self.secret_access_key.clone(),
            token: None,
        };
        let mut request = HttpRequest::new(HttpRequestBody::from(body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = url.parse().map_err(|e| anyhow!("S3 endpoint {url}: {e}"))?;
        object_store::aws::AwsAuthorizer::new(&credential, "s3", &self.region)
            .authorize(&mut request, None);
        reqwest::Client::new()
            .request(method, url)
            .headers(request.headers().clone())
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow!("S3 endpoint {url}: {e}"))
    }
}

/// An object's attributes as `name → value` (`content-type`, `meta:<key>`…).
pub fn attributes_to_map(attributes: &Attributes) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|(a, v)| {
            let name = match a {
                Attribute::ContentType => "content-type".to_owned(),
                Attribute::ContentEncoding => "content-encoding".to_owned(),
                Attribute::ContentDisposition => "content-disposition".to_owned(),
                Attribute::ContentLanguage => "content-language".to_owned(),
                Attribute::CacheControl => "cache-control".to_owned(),
                Attribute::Metadata(k) => format!("meta:{k}"),
                _ => return None,
            };
            Some((name, v.as_ref().to_owned()))
        })
        .collect()
}

/// The inverse of [`attributes_to_map`].
pub fn map_to_attributes(map: &BTreeMap<String, String>) -> Attributes {
    let mut out = Attributes::new();
    for (k, v) in map {
        let attribute = match k.as_str() {
            "content-type" => Attribute::ContentType,
            "content-encoding" => Attribute::ContentEncoding,
            "content-disposition" => Attribute::ContentDisposition,
            "content-language" => Attribute::ContentLanguage,
            "cache-control" => Attribute::CacheControl,
            other => match other.strip_prefix("meta:") {
                Some(key) => Attribute::Metadata(key.to_owned().into()),
                None => continue,
            },
        };
        out.insert(attribute, AttributeValue::from(v.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_the_map() {
        let map = BTreeMap::from([
            ("content-type".to_owned(), "text/csv".to_owned()),
            ("meta:owner".to_owned(), "alice".to_owned()),
        ]);
        assert_eq!(attributes_to_map(&map_to_attributes(&map)), map);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = S3Access {
            secret_access_key: "s3cr3t-value".into(),
            ..S3Access::default()
        };
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }
}
