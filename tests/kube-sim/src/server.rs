//! The HTTP front: one axum fallback handler that authenticates the bearer token, routes the
//! apiserver's URL layout (`/api/v1/namespaces/{ns}/{resource}/{name}/{sub}`, `/apis/{g}/{v}/...`),
//! authorizes service accounts with RBAC and calls the verbs in `ops`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Shared;
use crate::catalog::ResourceType;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::managed::Scope;
use crate::ops::{ListQuery, PatchKind, Propagation, WriteCtx, parse_body};
use crate::rbac::Attributes;
use crate::selector::{FieldSelector, LabelSelector};
use crate::watch::{self, WatchParams};
use crate::{metrics, scale};

pub const ADMIN_USER: &str = "kube-sim:admin";

/// The apiserver's request body limit (3 MiB); big CRDs (Kubeflow's are large) must fit.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .merge(crate::exec::router())
        .merge(crate::proxy::router())
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

/// A parsed resource URL.
#[derive(Debug)]
struct ResourcePath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Health,
    Version,
    Api,
    ApiGroups,
    ApiGroup(String),
    ResourceList(String, String),
    Resource(ResourcePath),
    /// `/openapi/v2`, `/openapi/v3`, `/openapi/v3/apis/{g}/{v}` (openapi.rs).
    OpenApi(String),
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => return Some(Route::Health),
        ["version"] => return Some(Route::Version),
        ["openapi", rest @ ..] => return Some(Route::OpenApi(rest.join("/"))),
        ["api"] => return Some(Route::Api),
        ["apis"] => return Some(Route::ApiGroups),
        ["apis", g] => return Some(Route::ApiGroup(g.to_string())),
        ["api", v] => return Some(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::ResourceList(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let s = |x: &str| Some(x.to_string());
    let (namespace, plural, name, sub) = match rest {
        [p] => (None, *p, None, None),
        // Namespaces are cluster-scoped: /api/v1/namespaces/{name}/status is a subresource.
        ["namespaces", n, sub @ ("status" | "finalize")] if group.is_empty() => {
            (None, "namespaces", s(n), s(sub))
        }
        ["namespaces", ns, p] => (s(ns), *p, None, None),
        ["namespaces", ns, p, n] => (s(ns), *p, s(n), None),
        ["namespaces", ns, p, n, sub] => (s(ns), *p, s(n), s(sub)),
        [p, n] => (None, *p, s(n), None),
        [p, n, sub] => (None, *p, s(n), s(sub)),
        _ => return None,
    };
    Some(Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        namespace,
        name,
        sub,
    }))
}

/// The user the request acts as: the token's, or the one it impersonates (`Impersonate-User`,
/// `Impersonate-Group`), which the token's user must be allowed to (`impersonate` on `users` and
/// on `groups`, by name, as the real apiserver checks). RBAC then applies to the impersonated
/// user. Impersonated groups are authorized but not used as Group subjects afterwards (kube-sim
/// identities carry only the groups derived from the name).
pub(crate) fn authenticate(shared: &Shared, headers: &HeaderMap) -> ApiResult<String> {
    let user = authenticate_token(shared, headers)?;
    let values = |name: &str| -> ApiResult<Vec<String>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .map_err(|_| ApiError::bad_request(format!("{name}: not a valid header value")))
            })
            .collect()
    };
    let users = values("impersonate-user")?;
    let groups = values("impersonate-group")?;
    let Some(target) = users.first() else {
        if !groups.is_empty() {
            return Err(ApiError::bad_request(format!(
                "requested {groups:?} without impersonating a user"
            )));
        }
        return Ok(user);
    };
    if user != ADMIN_USER && shared.config.rbac {
        let st = shared.lock();
        let on = |resource: &str, name: &str| crate::rbac::Attributes {
            verb: "impersonate".into(),
            group: String::new(),
            resource: resource.into(),
            subresource: None,
            namespace: String::new(),
            name: Some(name.into()),
        };
        st.authorize(&user, &on("users", target))?;
        for g in &groups {
            st.authorize(&user, &on("groups", g))?;
        }
    }
    Ok(target.clone())
}

fn authenticate_token(shared: &Shared, headers: &HeaderMap) -> ApiResult<String> {
    let Some(authorization) = headers.get("authorization") else {
        return if shared.config.anonymous_admin {
            Ok(ADMIN_USER.to_string())
        } else {
            Err(ApiError::unauthorized())
        };
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    if token == shared.config.admin_token {
        return Ok(ADMIN_USER.to_string());
    }
    let st = shared.lock();
    st.tokens
        .get(token)
        .cloned()
        .ok_or_else(ApiError::unauthorized)
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A `dryRun=All` request stores nothing, so it is not a write (wharf's gates dry-run CRDs).
    if matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && query.get("dryRun").is_none_or(|d| d != "All")
    {
        shared.writes.fetch_add(1, Ordering::SeqCst);
    }
    match serve(shared, &method, &uri, &query, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %uri, code = e.code, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

async fn serve(
    shared: Arc<Shared>,
    method: &Method,
    uri: &Uri,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let path = uri.path();
    let Some(r) = route(path) else {
        return Err(ApiError::no_route(path));
    };
    if let Route::Health = r {
        return Ok((StatusCode::OK, "ok").into_response());
    }
    let user = authenticate(&shared, headers)?;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    let wants_aggregated = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    let unavailable = &shared.config.unavailable_apis;
    let gv_unavailable = |g: &str, v: &str| unavailable.iter().any(|u| *u == format!("{g}/{v}"));
    let down = match &r {
        Route::ResourceList(g, v) => gv_unavailable(g, v),
        Route::Resource(rp) => gv_unavailable(&rp.group, &rp.version),
        _ => false,
    };
    if down {
        // The kube-aggregator's proxy answers for an APIService whose backend is not available
        // with `http.Error(w, "service unavailable", 503)`: plain text, not a Status.
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain; charset=utf-8")],
            "service unavailable\n",
        )
            .into_response());
    }
    if wants_aggregated && matches!(r, Route::Api | Route::ApiGroups) {
        let doc =
            discovery::aggregated(&shared.lock().catalog, matches!(r, Route::Api), unavailable);
        return Ok((
            StatusCode::OK,
            [("content-type", discovery::AGGREGATED)],
            doc.to_string(),
        )
            .into_response());
    }
    match r {
        Route::Health => unreachable!("answered above"),
        Route::Version => {
            let version = shared
                .kube_version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            ok(discovery::version(&version))
        }
        Route::Api => ok(discovery::api_versions(&shared.addr.to_string())),
        Route::ApiGroups => ok(discovery::api_group_list(
            &shared.lock().catalog,
            unavailable,
        )),
        Route::ApiGroup(g) => discovery::api_group(&shared.lock().catalog, unavailable, &g)
            .map_or_else(|| Err(ApiError::no_route(path)), ok),
        Route::ResourceList(g, v) => discovery::resource_list(&shared.lock().catalog, &g, &v)
            .map_or_else(|| Err(ApiError::no_route(path)), ok),
        Route::Resource(rp) => resource(shared, method, rp, q, headers, body, &user).await,
        Route::OpenApi(rest) => {
            let accept = headers.get("accept").and_then(|v| v.to_str().ok());
            if accept.is_some_and(|a| a.contains("protobuf") && !a.contains("json")) {
                // Only JSON is served; a protobuf-only client gets the apiserver's 406.
                return Err(ApiError::new(
                    406,
                    "NotAcceptable",
                    "only application/json is supported for /openapi".to_string(),
                ));
            }
            let version = shared
                .kube_version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let (ctype, body) = crate::openapi::serve(&shared.lock(), &version, &rest)
                .ok_or_else(|| ApiError::no_route(path))?;
            Ok((StatusCode::OK, [("content-type", ctype)], body).into_response())
        }
    }
}

fn verb_of(method: &Method, rp: &ResourcePath, watch: bool) -> ApiResult<&'static str> {
    Ok(match (method, rp.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on this path"
            )));
        }
    })
}

fn list_query(q: &HashMap<String, String>) -> ApiResult<ListQuery> {
    Ok(ListQuery {
        labels: LabelSelector::parse(
            q.get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )?,
        fields: FieldSelector::parse(
            q.get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        cont: q.get("continue").cloned(),
    })
}

/// The manager name the apiserver would record: `fieldManager`, else the user agent's product.
fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    q.get("fieldManager")
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()
        })
}

/// An object reduced to its metadata, as `PartialObjectMetadata`.
pub fn partial(obj: Value) -> Value {
    serde_json::json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

async fn resource(
    shared: Arc<Shared>,
    method: &Method,
    rp: ResourcePath,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
    user: &str,
) -> ApiResult<Response> {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = verb_of(method, &rp, watch)?;
    let rt: Arc<ResourceType> = shared
        .lock()
        .catalog
        .find(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(|| ApiError::no_route(&format!("{}/{}/{}", rp.group, rp.version, rp.plural)))?;
    if (rt.namespaced && rp.name.is_some() && rp.namespace.is_none())
        || (!rt.namespaced && rp.namespace.is_some())
    {
        return Err(ApiError::no_route(&format!(
            "{} is {}namespaced",
            rt.plural,
            if rt.namespaced { "" } else { "not " }
        )));
    }
    let scope = match rp.sub.as_deref() {
        None => Scope::Main {
            status_separate: rt.status,
        },
        Some("status") if rt.status && matches!(verb, "get" | "update" | "patch") => Scope::Status,
        Some("scale") if rt.scale && matches!(verb, "get" | "update" | "patch") => Scope::Main {
            status_separate: rt.status,
        },
        // `pods/log` (logs.rs): read only, answered below once RBAC allowed it.
        Some("log") if rt.group.is_empty() && rt.plural == "pods" && verb == "get" => Scope::Main {
            status_separate: rt.status,
        },
        Some(s) => {
            return Err(ApiError::no_route(&format!(
                "{}/{s} (subresource not served by kube-sim)",
                rt.plural
            )));
        }
    };
    let ns = rp.namespace.clone().unwrap_or_default();
    if user != crate::server::ADMIN_USER && shared.config.rbac {
        let attrs = Attributes {
            verb: verb.to_string(),
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            subresource: rp.sub.clone(),
            namespace: if rt.namespaced {
                ns.clone()
            } else if rt.group.is_empty() && rt.plural == "namespaces" {
                // The apiserver's request info names `/api/v1/namespaces/NAME` as in namespace
                // NAME, so a RoleBinding there may grant `get` on the namespace itself (how a
                // profile's owner, bound to `edit` in it, reads it); listing stays cluster-wide.
                rp.name.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: rp.name.clone(),
        };
        shared.lock().authorize(user, &attrs)?;
    }
    if q.get("fieldValidation").is_some_and(|v| v == "Strict")
        && matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && rp.sub.is_none()
    {
        crate::openapi::check_strict(&rt, *method == Method::PATCH, headers, body)?;
    }
    let ctx = WriteCtx {
        manager: manager(q, headers),
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        user: (user != crate::server::ADMIN_USER && shared.config.rbac).then(|| user.to_string()),
    };
    let name = rp.name.clone().unwrap_or_default();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    // `Accept: ...;as=PartialObjectMetadata[List]` (kube-rs `get_metadata`, metadata watchers).
    let metadata_only = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    if rt.group == metrics::GROUP {
        let st = shared.lock();
        let usage = shared.usage.lock().unwrap_or_else(|p| p.into_inner());
        return ok(metrics::serve(
            &st,
            &usage,
            verb,
            &rt,
            rp.namespace.as_deref(),
            rp.name.as_deref(),
        )?);
    }
    if rp.sub.as_deref() == Some("log") {
        let text = crate::logs::get(&shared.lock(), &ns, &name, q)?;
        return Ok((StatusCode::OK, [("content-type", "text/plain")], text).into_response());
    }
    if rp.sub.as_deref() == Some("scale") {
        return scale_request(&shared, verb, &rt, &ns, &name, headers, q, body, &ctx);
    }
    match verb {
        "get" if metadata_only => ok(partial(shared.lock().op_get(&rt, &ns, &name)?)),
        "get" => ok(shared.lock().op_get(&rt, &ns, &name)?),
        "list" if metadata_only => {
            let mut list = shared
                .lock()
                .op_list(&rt, rp.namespace.as_deref(), &list_query(q)?)?;
            let items: Vec<Value> = list["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(partial)
                .collect();
            list["items"] = Value::Array(items);
            list["apiVersion"] = Value::from("meta.k8s.io/v1");
            list["kind"] = Value::from("PartialObjectMetadataList");
            ok(list)
        }
        "list" => ok(shared
            .lock()
            .op_list(&rt, rp.namespace.as_deref(), &list_query(q)?)?),
        "watch" => {
            let lq = list_query(q)?;
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(1800);
            let params = WatchParams {
                rt,
                namespace: rp.namespace.clone(),
                labels: lq.labels,
                fields: lq.fields,
                resource_version: q.get("resourceVersion").cloned(),
                timeout: Duration::from_secs(timeout),
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
                metadata_only,
            };
            let body: Body = watch::start(shared.clone(), params)?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("transfer-encoding", "chunked")
                .body(body)
                .map_err(|e| ApiError::internal(e.to_string()))?)
        }
        "create" => {
            let obj = parse_body(body)?;
            let created = shared.lock().op_create(&rt, &ns, obj, &ctx, false)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        "update" => {
            let obj = parse_body(body)?;
            ok(shared.lock().op_update(&rt, &ns, &name, scope, obj, &ctx)?)
        }
        "patch" => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind =
                PatchKind::from_content_type(ct, q.get("force").is_some_and(|f| f == "true"))?;
            if matches!(kind, PatchKind::Apply { .. })
                && q.get("fieldManager").is_none_or(|m| m.is_empty())
            {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch (pass ?fieldManager=NAME)",
                ));
            }
            let (obj, created) = shared
                .lock()
                .op_patch(&rt, &ns, &name, scope, kind, body, &ctx)?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &obj,
            ))
        }
        "delete" => {
            let opts = if body.is_empty() {
                Value::Null
            } else {
                parse_body(body)?
            };
            let propagation = match opts["propagationPolicy"]
                .as_str()
                .or(q.get("propagationPolicy").map(String::as_str))
            {
                Some("Orphan") => Propagation::Orphan,
                Some("Foreground") => Propagation::Foreground,
                _ => Propagation::Background,
            };
            let dry = ctx.dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x == "All"));
            let ctx = WriteCtx {
                dry_run: dry,
                ..ctx
            };
            ok(shared.lock().op_delete(
                &rt,
                &ns,
                &name,
                propagation,
                &opts["preconditions"],
                &ctx,
            )?)
        }
        "deletecollection" => ok(shared.lock().op_delete_collection(
            &rt,
            rp.namespace.as_deref(),
            &list_query(q)?,
            &ctx,
        )?),
        _ => Err(ApiError::method_not_allowed(verb.to_string())),
    }
}

/// GET/PUT/PATCH on `.../NAME/scale` (see `scale.rs`).
#[allow(clippy::too_many_arguments)]
fn scale_request(
    shared: &Shared,
    verb: &str,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &Bytes,
    ctx: &WriteCtx,
) -> ApiResult<Response> {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match verb {
        "get" => ok(scale::get(&shared.lock(), rt, ns, name)?),
        "update" => ok(scale::update(
            &mut shared.lock(),
            rt,
            ns,
            name,
            parse_body(body)?,
            ctx,
        )?),
        _ => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind =
                PatchKind::from_content_type(ct, q.get("force").is_some_and(|f| f == "true"))?;
            ok(scale::patch(
                &mut shared.lock(),
                rt,
                ns,
                name,
                kind,
                body,
                ctx,
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_table() {
        let cases = [
            ("/api/v1/namespaces", Some((None, "namespaces", None, None))),
            (
                "/api/v1/namespaces/kf",
                Some((None, "namespaces", Some("kf"), None)),
            ),
            (
                "/api/v1/namespaces/kf/status",
                Some((None, "namespaces", Some("kf"), Some("status"))),
            ),
            (
                "/api/v1/namespaces/kf/secrets",
                Some((Some("kf"), "secrets", None, None)),
            ),
            (
                "/apis/apps/v1/namespaces/kf/deployments/d/status",
                Some((Some("kf"), "deployments", Some("d"), Some("status"))),
            ),
            (
                "/apis/apps/v1/deployments",
                Some((None, "deployments", None, None)),
            ),
            (
                "/apis/storage.k8s.io/v1/storageclasses/x",
                Some((None, "storageclasses", Some("x"), None)),
            ),
            ("/nope", None),
        ];
        for (path, want) in cases {
            let got = match route(path) {
                Some(Route::Resource(rp)) => Some((rp.namespace, rp.plural, rp.name, rp.sub)),
                _ => None,
            };
            let want = want.map(
                |(n, p, m, s): (Option<&str>, &str, Option<&str>, Option<&str>)| {
                    (
                        n.map(String::from),
                        p.to_string(),
                        m.map(String::from),
                        s.map(String::from),
                    )
                },
            );
            assert_eq!(got, want, "{path}");
        }
    }
}
