//! Platform settings that every application's templates see (`platform.public_url`), kept in the
//! ConfigMap `wharf-platform` of the model: given once with `wharf deploy --public-url URL`, they
//! hold for every later deploy from any machine, until changed (an empty value clears them).

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::kube::{FIELD_MANAGER, errors};

pub const CONFIG_MAP: &str = "wharf-platform";
const PUBLIC_URL: &str = "public-url";

/// `--public-url` of render and deploy: empty (clears the kept URL) or a URL `normalise_public_url` takes.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Ok(String::new());
    }
    normalise_public_url(s).map_err(|e| e.to_string())
}

/// An http(s) URL with a host and nothing after it, without the trailing slash: Dex's issuer is
/// `<public-url>/dex` character for character, so `http://x/` and `http://x` must not both occur.
pub fn normalise_public_url(text: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(text).map_err(|e| {
        anyhow::anyhow!("--public-url `{text}`: not a URL ({e}); e.g. http://192.168.1.240.nip.io")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!(
            "--public-url `{text}`: an http:// or https:// URL with a host, e.g. http://192.168.1.240.nip.io"
        );
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        bail!(
            "--public-url `{text}`: the platform is served at the root of its host; drop the path (`{}://{}{port}`)",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
        );
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// The public URL kept in the model ("" when none was ever given).
pub async fn load_public_url(client: &Client, model: &str, server: &str) -> anyhow::Result<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    match api.get_opt(CONFIG_MAP).await {
        Ok(cm) => Ok(cm
            .and_then(|cm| cm.data)
            .and_then(|mut d| d.remove(PUBLIC_URL))
            .unwrap_or_default()),
        Err(e) if errors::is_not_found(&e) => Ok(String::new()),
        Err(e) => bail!(errors::describe(&e, "read the platform settings", server)),
    }
}

/// Keep `url` in the model (one server-side apply of the ConfigMap).
pub async fn save_public_url(
    client: &Client,
    model: &str,
    server: &str,
    url: &str,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.into()),
            labels: Some([(super::OWNER_LABEL.to_string(), super::OWNER.to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some([(PUBLIC_URL.to_string(), url.to_string())].into()),
        ..ConfigMap::default()
    };
    api.patch(
        CONFIG_MAP,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .map_err(|e| anyhow!(errors::describe(&e, "save the platform settings", server)))?;
    Ok(())
}

/// Forget the platform settings (`remove --all`); a missing ConfigMap is not an error.
pub async fn delete(client: &Client, model: &str, server: &str) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    match api.delete(CONFIG_MAP, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if errors::is_not_found(&e) => Ok(()),
        Err(e) => bail!(errors::describe(&e, "delete the platform settings", server)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_http_without_a_trailing_slash() {
        assert_eq!(
            parse_public_url("http://10.64.140.43.nip.io/").unwrap(),
            "http://10.64.140.43.nip.io"
        );
        assert_eq!(
            parse_public_url("https://ml.example.com:8443").unwrap(),
            "https://ml.example.com:8443"
        );
        assert_eq!(parse_public_url("").unwrap(), "");
        for bad in [
            "10.64.140.43",
            "ftp://x",
            "http://",
            "http://x/platform",
            "http://x/?q=1",
        ] {
            let err = parse_public_url(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
