//! The owner check the gateway makes before it proxies `/notebook/<namespace>/<name>/…`: nginx's
//! `auth_request` asks `GET /authorize` with the signed-in user's email (`X-Auth-Request-Email`,
//! which nginx took from oauth2-proxy's answer, never from the client) and the original path
//! (`X-Original-URI`). 200: the user owns the Profile named like the namespace; 403: anyone
//! else, and any namespace that is not a profile's; 401: no identity (the login is missing).
//!
//! Profiles are read from a watch-fed cache (a reflector), not from the API per request: a
//! notebook page makes dozens of requests. Every replica serves this (not only the leader): the
//! gateway's Service reaches any of them.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use futures::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::profile::crd::Profile;

/// Who may open a notebook path: the status code to answer (200, 401 or 403).
pub fn decide(store: &Store<Profile>, email: Option<&str>, uri: Option<&str>) -> StatusCode {
    let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
        return StatusCode::UNAUTHORIZED;
    };
    let Some(namespace) = uri.and_then(notebook_namespace) else {
        return StatusCode::FORBIDDEN;
    };
    match store.get(&ObjectRef::new(namespace)) {
        Some(profile) if profile.spec.owner.name.eq_ignore_ascii_case(email) => StatusCode::OK,
        _ => StatusCode::FORBIDDEN,
    }
}

/// `<namespace>` of `/notebook/<namespace>/<name>/…`.
pub fn notebook_namespace(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("/notebook/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let name = rest.split(['/', '?']).next()?;
    (!namespace.is_empty() && !name.is_empty()).then_some(namespace)
}

/// Starts the Profile cache, binds the listener now (a bad address fails at start-up) and
/// returns its address and the server future (which also drives the cache).
pub async fn serve(
    client: kube::Client,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let (store, writer) = reflector::store();
    let feed = watcher(Api::<Profile>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "profile cache for the notebook owner check");
            }
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/authorize", get(authorize))
        .with_state(store);
    Ok((local, async move {
        tokio::select! {
            result = axum::serve(listener, app).into_future() => result,
            () = feed => Err(std::io::Error::other("the profile watch ended")),
        }
    }))
}

async fn authorize(State(store): State<Store<Profile>>, headers: HeaderMap) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let email = header("x-auth-request-email");
    let uri = header("x-original-uri");
    let answer = decide(&store, email, uri);
    if answer == StatusCode::FORBIDDEN {
        tracing::info!(user = ?email, path = ?uri, "notebook access refused: not the profile's owner");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::crd::{Owner, OwnerKind, ProfileSpec};
    use kube::runtime::watcher::Event;

    fn store_with(profiles: &[(&str, &str)]) -> Store<Profile> {
        let (store, mut writer) = reflector::store();
        for (name, owner) in profiles {
            let p = Profile::new(
                name,
                ProfileSpec {
                    owner: Owner {
                        kind: OwnerKind::User,
                        name: (*owner).into(),
                        api_group: None,
                    },
                    resource_quota_spec: None,
                },
            );
            writer.apply_watcher_event(&Event::Apply(p));
        }
        store
    }

    #[test]
    fn only_the_profiles_owner_opens_its_notebooks() {
        let store = store_with(&[("alice", "alice@example.com"), ("bob", "bob@example.com")]);
        let path = Some("/notebook/alice/nb/lab?x=1");
        assert_eq!(
            decide(&store, Some("alice@example.com"), path),
            StatusCode::OK
        );
        assert_eq!(
            decide(&store, Some("Alice@Example.com"), path),
            StatusCode::OK
        );
        assert_eq!(
            decide(&store, Some("bob@example.com"), path),
            StatusCode::FORBIDDEN
        );
        assert_eq!(decide(&store, None, path), StatusCode::UNAUTHORIZED);
        assert_eq!(decide(&store, Some(" "), path), StatusCode::UNAUTHORIZED);
        // Not a profile's namespace, or not a notebook path: nobody.
        assert_eq!(
            decide(
                &store,
                Some("alice@example.com"),
                Some("/notebook/kube-system/nb/")
            ),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            decide(&store, Some("alice@example.com"), Some("/models/x/")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            decide(&store, Some("alice@example.com"), None),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn the_namespace_is_the_first_segment_after_notebook() {
        assert_eq!(notebook_namespace("/notebook/alice/nb/"), Some("alice"));
        assert_eq!(notebook_namespace("/notebook/alice/nb"), Some("alice"));
        assert_eq!(notebook_namespace("/notebook/alice/"), None);
        assert_eq!(notebook_namespace("/notebook//nb/"), None);
        assert_eq!(notebook_namespace("/notebooks/alice/nb/"), None);
    }
}
