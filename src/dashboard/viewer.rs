//! Who is looking, and the cluster client that acts for them.
//!
//! `wharf dashboard --serve` acts with the kubeconfig user's own client. In the cluster
//! (`--trust-proxy-headers`, the dashboard charm) the dashboard sits behind the gateway, whose
//! nginx asks oauth2-proxy about every request and passes the logged-in user on in
//! `X-Auth-Request-Email`/`-User`/`-Groups` (overwriting whatever the browser sent). The
//! dashboard then impersonates that user: its own ServiceAccount may only `impersonate` users and
//! groups and watch the two kinds it streams, and every read and write a page makes is authorized
//! by the API server as the user. Impersonation rather than SubjectAccessReviews: the API server
//! applies the user's rights to every call, so no check can be forgotten or drift from the call.
//!
//! A request without the headers is refused (401): with trust on, no header means it did not
//! come through the gateway's login. Only the gateway can reach the dashboard (a NetworkPolicy in
//! the dashboard charm), so no one else can set them. `system:` users and groups are refused:
//! a login provider that returned the group `system:masters` must not become cluster-admin.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::State;
use crate::kube::{Cluster, errors};

/// `--trust-proxy-headers`: the configuration the per-user clients are made from, and the
/// gateway's public address (its host is let through the Host guard).
pub struct Trust {
    pub base: kube::Config,
    /// `https://wharf.example.com` (no path): the platform's public URL, if known.
    pub public_url: Option<String>,
    /// `--create-profiles`: a user who owns no Profile gets one ([`super::first_login`]).
    pub profiles: Option<super::first_login::Registrar>,
}

impl Trust {
    /// `wharf.example.com:8443` from the public URL: the Host the gateway forwards.
    pub fn public_host(&self) -> Option<&str> {
        let url = self.public_url.as_deref()?;
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        Some(rest.split('/').next().unwrap_or(rest))
    }
}

/// The identity in oauth2-proxy's headers, checked; `Err` is the reason to refuse.
pub fn identity(headers: &axum::http::HeaderMap) -> Result<(String, Vec<String>), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // Dex's email is what Profiles and RoleBindings name users by; the user id is the fallback.
    let user = get("x-auth-request-email")
        .or_else(|| get("x-auth-request-user"))
        .ok_or("no logged-in user (X-Auth-Request-Email/-User): reach the dashboard through the gateway")?
        .to_owned();
    let groups: Vec<String> = get("x-auth-request-groups")
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = std::iter::once(&user)
        .chain(&groups)
        .find(|n| n.starts_with("system:"))
    {
        return Err(format!(
            "`{bad}`: the dashboard does not act as a system: user or group"
        ));
    }
    Ok((user, groups))
}

/// The cluster as the request's user sees it.
pub struct Viewer {
    pub cluster: Cluster,
    /// The impersonated user; `None` when the dashboard acts with its own client (`--serve`).
    pub user: Option<String>,
    /// The user's profile (their namespace), when the dashboard knows or made it.
    pub profile: Option<String>,
}

impl Viewer {
    /// The objects of `ar` in `namespace`, listed as the user; `Err` is what the page says instead:
    /// `not_served` (where the kind comes from) when the cluster has no such kind, else the
    /// cluster's refusal or failure in words.
    pub async fn list_in(
        &self,
        ar: &ApiResource,
        namespace: &str,
        not_served: &str,
    ) -> Result<Vec<DynamicObject>, String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client.clone(), namespace, ar);
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(not_served.to_owned()),
            Err(e) => Err(errors::describe(
                &e,
                &format!("list {} in namespace {namespace}", ar.plural),
                &self.cluster.server,
            )),
        }
    }

    /// The namespace a page shows: the one asked for (`?namespace=`), else the user's profile;
    /// `None` when neither is known.
    pub fn namespace(&self, asked: Option<String>) -> Option<String> {
        asked
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .or_else(|| self.profile.clone())
    }

    /// With impersonation, whether the user may list `ar` in `namespace`: the shared watches run
    /// with the dashboard's rights, so what they hold is shown only to users who could list it
    /// themselves. `Some(reason)` when not.
    pub async fn denied(&self, ar: &ApiResource, namespace: &str) -> Option<String> {
        self.user.as_ref()?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client.clone(), namespace, ar);
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => None,
            Err(e) => Some(errors::describe(
                &e,
                &format!("list {} in namespace {namespace}", ar.plural),
                &self.cluster.server,
            )),
        }
    }
}

impl FromRequestParts<State> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Viewer, Response> {
        let Some(trust) = &state.trust else {
            return Ok(Viewer {
                cluster: state.cluster.clone(),
                user: None,
                profile: None,
            });
        };
        let (user, groups) =
            identity(&parts.headers).map_err(|e| (StatusCode::UNAUTHORIZED, e).into_response())?;
        let mut config = trust.base.clone();
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = (!groups.is_empty()).then_some(groups);
        let client = kube::Client::try_from(config).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot build a client acting as {user}: {e}"),
            )
                .into_response()
        })?;
        let profile = match &trust.profiles {
            Some(registrar) => registrar.ensure(&user).await,
            None => None,
        };
        Ok(Viewer {
            profile,
            cluster: Cluster {
                // Every client of a viewer acts as the user, streams included (none are used yet;
                // the dashboard's own would act with its ServiceAccount's rights).
                streams: client.clone(),
                client,
                ..state.cluster.clone()
            },
            user: Some(user),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_user_is_the_email_else_the_user_id_and_system_names_are_refused() {
        let id = identity(&headers(&[
            ("x-auth-request-email", "ana@example.com"),
            ("x-auth-request-user", "CiQwOGE4"),
            ("x-auth-request-groups", "ml, admins,"),
        ]))
        .unwrap();
        assert_eq!(id.0, "ana@example.com");
        assert_eq!(id.1, vec!["ml", "admins"]);
        let id = identity(&headers(&[("x-auth-request-user", "ana")])).unwrap();
        assert_eq!(id, ("ana".to_owned(), vec![]));
        let none = identity(&headers(&[("x-auth-request-email", " ")])).unwrap_err();
        assert!(none.contains("through the gateway"), "{none}");
        let admin = identity(&headers(&[
            ("x-auth-request-email", "ana@example.com"),
            ("x-auth-request-groups", "ml,system:masters"),
        ]))
        .unwrap_err();
        assert!(admin.contains("system:masters"), "{admin}");
        assert!(identity(&headers(&[("x-auth-request-user", "system:admin")])).is_err());
    }

    #[test]
    fn the_public_host_is_the_public_urls_authority() {
        let trust = |url: &str| Trust {
            base: kube::Config::new("http://127.0.0.1:1".parse().unwrap()),
            public_url: Some(url.to_owned()),
            profiles: None,
        };
        assert_eq!(
            trust("https://wharf.example.com").public_host(),
            Some("wharf.example.com")
        );
        assert_eq!(
            trust("http://10.64.140.43.nip.io:8080").public_host(),
            Some("10.64.140.43.nip.io:8080")
        );
    }
}
