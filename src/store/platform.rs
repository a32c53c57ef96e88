//! Platform settings that every application's render sees, kept in the ConfigMap `wharf-platform`
//! of the model: the public URL (`platform.public_url` in templates) and the registry that serves
//! wharf's own images (`--image-registry`). Given once with `wharf deploy --public-url URL` or
//! `--image-registry REGISTRY`, they hold for every later deploy, config, upgrade and rollback from
//! any machine, until changed (an empty value clears them).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::kube::{FIELD_MANAGER, errors};

pub const CONFIG_MAP: &str = "wharf-platform";
const PUBLIC_URL: &str = "public-url";
const IMAGE_REGISTRY: &str = "image-registry";

/// `--public-url` of render and deploy: empty (clears the kept URL) or a URL `normalise_public_url` takes.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Ok(String::new());
    }
    normalise_public_url(s).map_err(|e| e.to_string())
}

/// `--image-registry`: empty (back to `wharf.local`, clears the kept one) or a registry host
/// with an optional port and path (`registry.example.com:5000/wharf`), no scheme, no tag.
pub fn parse_image_registry(s: &str) -> Result<String, String> {
    let text = s.trim().trim_end_matches('/');
    if text.is_empty() {
        return Ok(String::new());
    }
    let example = "e.g. localhost:32000 or registry.example.com/wharf";
    if text.contains("://") {
        return Err(format!(
            "--image-registry `{s}`: a registry host, without a scheme ({example})"
        ));
    }
    let host = text.split('/').next().unwrap_or_default();
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._:/".contains(c);
    if !text.chars().all(valid) || text.contains("//") || host.is_empty() {
        return Err(format!(
            "--image-registry `{s}`: not a registry name ({example})"
        ));
    }
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        // Without a dot or a port, `x/wharf-server` means docker.io/x/wharf-server.
        return Err(format!(
            "--image-registry `{s}`: `{host}` would be read as a Docker Hub user, not a registry; \
             name the host with its domain or port ({example})"
        ));
    }
    Ok(text.to_ascii_lowercase())
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

/// The settings kept in the model (each "" when never given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub public_url: String,
    /// Where the nodes pull wharf's own images from instead of `wharf.local` (see
    /// `parse_image_registry`).
    pub image_registry: String,
}

/// Read the kept settings (defaults when none were ever given).
pub async fn load(client: &Client, model: &str, server: &str) -> anyhow::Result<Settings> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    match api.get_opt(CONFIG_MAP).await {
        Ok(cm) => {
            let mut data = cm.and_then(|cm| cm.data).unwrap_or_default();
            Ok(Settings {
                public_url: data.remove(PUBLIC_URL).unwrap_or_default(),
                image_registry: data.remove(IMAGE_REGISTRY).unwrap_or_default(),
            })
        }
        Err(e) if errors::is_not_found(&e) => Ok(Settings::default()),
        Err(e) => bail!(errors::describe(&e, "read the platform settings", server)),
    }
}

/// Keep `settings` in the model (one server-side apply of the ConfigMap, every setting in it:
/// a key left out of an apply would be removed).
pub async fn save(
    client: &Client,
    model: &str,
    server: &str,
    settings: &Settings,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    let mut data = BTreeMap::from([(PUBLIC_URL.to_string(), settings.public_url.clone())]);
    if !settings.image_registry.is_empty() {
        data.insert(IMAGE_REGISTRY.into(), settings.image_registry.clone());
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.into()),
            labels: Some([(super::OWNER_LABEL.to_string(), super::OWNER.to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
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

    #[test]
    fn image_registries_are_hosts_with_optional_port_and_path() {
        for (given, kept) in [
            ("localhost:32000", "localhost:32000"),
            ("Registry.example.com/wharf/", "registry.example.com/wharf"),
            ("10.0.0.5:5000", "10.0.0.5:5000"),
            ("", ""),
        ] {
            assert_eq!(parse_image_registry(given).unwrap(), kept);
        }
        for bad in [
            "https://r.example.com",
            "wharf",
            "r.example.com/a b",
            "r.example.com//x",
        ] {
            let err = parse_image_registry(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
