//! Authentication and RBAC: unknown tokens are 401; a service-account token gets exactly what its
//! Role/ClusterRole bindings grant, and 403s carry the apiserver's message.

mod common;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

async fn grant(admin: &kube::Client) {
    let pp = PostParams::default();
    let role: Role = serde_json::from_value(json!({"metadata": {"name": "trainer"}, "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["model-creds"], "verbs": ["get"]}
    ]}))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(&pp, &role)
        .await
        .unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "trainer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "trainer"},
        "subjects": [{"kind": "ServiceAccount", "name": "trainer", "namespace": "default"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&pp, &rb)
        .await
        .unwrap();
    let cr: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "cm-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}))
        .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &cr)
        .await
        .unwrap();
    let crb: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": "cm-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "trainer", "namespace": "default"}]}))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&pp, &crb)
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_token_is_401() {
    let sim = common::start().await;
    let client = common::client(&sim, Some("not-a-token")).await;
    let err = common::api_err(
        Api::<ConfigMap>::namespaced(client, "default")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(err.code, 401);
    sim.shutdown().await;
}

/// A client that sends no credentials at all (as kubectl does over plain HTTP): 401, unless the
/// simulator was started with `anonymous_admin`.
#[tokio::test]
async fn no_token_is_401_unless_anonymous_admin() {
    for anonymous_admin in [false, true] {
        let sim = kube_sim::Simulator::start(kube_sim::Config {
            anonymous_admin,
            ..common::fast_config()
        })
        .await
        .unwrap();
        let config = kube::Config::new(sim.url().parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let listed = Api::<ConfigMap>::namespaced(client, "default")
            .list(&ListParams::default())
            .await;
        if anonymous_admin {
            assert!(listed.is_ok(), "{listed:?}");
        } else {
            assert_eq!(common::api_err(listed).code, 401);
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn service_account_gets_exactly_what_its_bindings_grant() {
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    grant(&admin).await;
    let token = sim.token_for_service_account("default", "trainer");
    assert_eq!(
        token,
        sim.token_for_service_account("default", "trainer"),
        "stable per service account"
    );
    let sa = common::client(&sim, Some(&token)).await;

    let jobs: Api<Job> = Api::namespaced(sa.clone(), "default");
    let job: Job = serde_json::from_value(
        json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "trainer:1"}]}}}}),
    )
    .unwrap();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create jobs is granted");
    jobs.list(&ListParams::default())
        .await
        .expect("list jobs is granted");

    let err = common::api_err(jobs.delete("j", &Default::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "jobs.batch \"j\" is forbidden: User \"system:serviceaccount:default:trainer\" cannot delete resource \"jobs\" in API group \"batch\" in the namespace \"default\""
    );
    let err = common::api_err(
        Api::<Job>::namespaced(sa.clone(), "kube-system")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(err.code, 403, "the Role only applies in its namespace");

    let err = common::api_err(jobs.replace_status("j", &PostParams::default(), &job).await);
    assert!(
        err.message
            .contains("cannot update resource \"jobs/status\""),
        "{}",
        err.message
    );

    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "default");
    admin_secret(&admin, "model-creds").await;
    admin_secret(&admin, "other").await;
    secrets
        .get("model-creds")
        .await
        .expect("named secret is granted");
    assert_eq!(common::api_err(secrets.get("other").await).code, 403);

    // ClusterRoleBinding: list configmaps anywhere, but nothing else.
    Api::<ConfigMap>::namespaced(sa.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .unwrap();
    let err = common::api_err(
        Api::<ConfigMap>::namespaced(sa.clone(), "default")
            .get("x")
            .await,
    );
    assert_eq!(err.code, 403);
    let err = common::api_err(
        Api::<ClusterRole>::all(sa)
            .list(&ListParams::default())
            .await,
    );
    assert!(
        err.message.ends_with("at the cluster scope"),
        "{}",
        err.message
    );
    sim.shutdown().await;
}

async fn admin_secret(admin: &kube::Client, name: &str) {
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": "v"}}))
            .unwrap();
    Api::<Secret>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// A service account that may do everything with ConfigMaps in `default` but only `patch`
/// Secrets there, and may write Roles and RoleBindings (not `escalate` or `bind`).
async fn patch_only(admin: &kube::Client) {
    let pp = PostParams::default();
    let role: Role = serde_json::from_value(json!({"metadata": {"name": "deployer"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["get", "create", "update", "patch"]}
    ]}))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(&pp, &role)
        .await
        .unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "default"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&pp, &rb)
        .await
        .unwrap();
}

/// The real patch handler authorizes an apply that creates as a `create` too: `patch` alone
/// updates existing objects only.
#[tokio::test]
async fn an_apply_that_creates_needs_create_as_well_as_patch() {
    use kube::api::{Patch, PatchParams};
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    patch_only(&admin).await;
    let sa = common::client(
        &sim,
        Some(&sim.token_for_service_account("default", "deployer")),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "default");
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}});
    let pp = PatchParams::apply("wharf");
    let err = common::api_err(secrets.patch("s", &pp, &Patch::Apply(&applied)).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "secrets \"s\" is forbidden: User \"system:serviceaccount:default:deployer\" cannot create resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    assert!(sim.get("v1", "Secret", "default", "s").is_none());
    // Once the object exists, the same apply is an update: `patch` is enough.
    admin_secret(&admin, "s").await;
    secrets
        .patch("s", &pp, &Patch::Apply(&applied))
        .await
        .expect("patch of an existing object");
    // With `create` (ConfigMaps: `*`), an apply creates.
    Api::<ConfigMap>::namespaced(sa, "default")
        .patch(
            "c",
            &pp,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            ),
        )
        .await
        .expect("create and patch granted");
    sim.shutdown().await;
}

/// RBAC's escalation prevention: a Role may grant only what its author holds (else `escalate`
/// on it), a binding needs `bind` on its role or its author holding all the role grants.
#[tokio::test]
async fn roles_and_bindings_cannot_grant_more_than_their_author_holds() {
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    patch_only(&admin).await;
    let sa = common::client(
        &sim,
        Some(&sim.token_for_service_account("default", "deployer")),
    )
    .await;
    let pp = PostParams::default();
    let roles: Api<Role> = Api::namespaced(sa.clone(), "default");
    let within: Role = serde_json::from_value(json!({"metadata": {"name": "cm"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}))
    .unwrap();
    roles.create(&pp, &within).await.expect("held permissions");
    let beyond: Role = serde_json::from_value(json!({"metadata": {"name": "more"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "delete"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}]}))
    .unwrap();
    let err = common::api_err(roles.create(&pp, &beyond).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"system:serviceaccount:default:deployer\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:default\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\" \"delete\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"create\"]}"
    );
    // Updating a held role to grant more is refused the same way.
    let mut grown = roles.get("cm").await.unwrap();
    grown.rules = beyond.rules.clone();
    assert_eq!(
        common::api_err(roles.replace("cm", &pp, &grown).await).code,
        403
    );

    // Binding: to a role within the author's rights, fine; to cluster-admin, refused.
    let bindings: Api<RoleBinding> = Api::namespaced(sa.clone(), "default");
    let bind = |name: &str, kind: &str, role: &str| -> RoleBinding {
        serde_json::from_value(json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "default"}]}))
        .unwrap()
    };
    bindings
        .create(&pp, &bind("cm", "Role", "cm"))
        .await
        .expect("the author holds what the role grants");
    let admin_role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": "all"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &admin_role)
        .await
        .unwrap();
    let err = common::api_err(
        bindings
            .create(&pp, &bind("all", "ClusterRole", "all"))
            .await,
    );
    assert_eq!(err.code, 403);
    assert!(
        err.message.starts_with("rolebindings.rbac.authorization.k8s.io \"all\" is forbidden: user \"system:serviceaccount:default:deployer\"")
            && err.message.ends_with("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{}",
        err.message
    );
    // `escalate` and `bind` lift the checks.
    let lift: Role = serde_json::from_value(json!({"metadata": {"name": "lift"}, "rules": [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["all"], "verbs": ["bind"]}]}))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(&pp, &lift)
        .await
        .unwrap();
    let mut lift_binding = bind("lift", "Role", "lift");
    lift_binding.subjects = Some(vec![
        serde_json::from_value(
            json!({"kind": "ServiceAccount", "name": "deployer", "namespace": "default"}),
        )
        .unwrap(),
    ]);
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&pp, &lift_binding)
        .await
        .unwrap();
    roles.create(&pp, &beyond).await.expect("escalate on roles");
    bindings
        .create(&pp, &bind("all", "ClusterRole", "all"))
        .await
        .expect("bind on the ClusterRole");
    sim.shutdown().await;
}

/// `services/proxy` (src/proxy.rs): a GET reaches the local server standing for the Service's
/// endpoints, path and query kept, its status, content type and body unchanged; a service account
/// needs `get` on `services/proxy` (403 otherwise, as the apiserver says it); a Service that does
/// not exist is 404, one without endpoints (no backend) or without that port 503.
#[tokio::test]
async fn services_proxy_needs_get_on_services_proxy_and_reaches_the_backend() {
    use axum::extract::RawQuery;
    let sim = common::start().await;
    let backend = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(|RawQuery(q): RawQuery| async move {
            (
                axum::http::StatusCode::ACCEPTED,
                [("content-type", "application/json")],
                format!("{{\"query\": {:?}}}", q.unwrap_or_default()),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, backend).await });
    sim.put(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "prom", "namespace": "default"},
        "spec": {"ports": [{"name": "web", "port": 9090}]}}))
        .unwrap();
    let get = |path: &str, token: &str| {
        let request = reqwest::Client::new()
            .get(format!("{}{path}", sim.url()))
            .bearer_auth(token);
        async move {
            let resp = request.send().await.unwrap();
            let code = resp.status().as_u16();
            let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (code, ctype, resp.text().await.unwrap())
        }
    };
    let path = "/api/v1/namespaces/default/services/prom:9090/proxy/api/v1/query?query=up%7Bjob%3D%22x%22%7D";

    // Before a backend is set: no endpoints.
    let (code, _, body) = get(path, "admin-token").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no endpoints available for service \\\"prom:9090\\\""),
        "{body}"
    );
    sim.set_service_backend("default", "prom", addr);
    let (code, ctype, body) = get(path, "admin-token").await;
    assert_eq!((code, ctype.as_str()), (202, "application/json"), "{body}");
    assert_eq!(body, "{\"query\": \"query=up%7Bjob%3D%22x%22%7D\"}");
    // The port by name works too; a port the Service lacks does not; nor a Service that is not there.
    let by_name = "/api/v1/namespaces/default/services/http:prom:web/proxy/api/v1/query";
    assert_eq!(get(by_name, "admin-token").await.0, 202);
    let other_port = "/api/v1/namespaces/default/services/prom:9091/proxy/api/v1/query";
    assert_eq!(get(other_port, "admin-token").await.0, 503);
    let missing = "/api/v1/namespaces/default/services/nope:9090/proxy/api/v1/query";
    let (code, _, body) = get(missing, "admin-token").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("services \\\"nope\\\" not found"), "{body}");

    // A service account that may read Services, but not proxy to them.
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "status", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}]}),
    )
    .unwrap();
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "status", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}]}),
    )
    .unwrap();
    let token = sim.token_for_service_account("default", "viewer");
    let (code, _, body) = get(path, &token).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("cannot get resource \\\"services/proxy\\\""),
        "{body}"
    );
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "status", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]},
                  {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["prom"], "verbs": ["get"]}]}),
    )
    .unwrap();
    assert_eq!(get(path, &token).await.0, 202);
    sim.shutdown().await;
}

/// As the apiserver does, `GET /api/v1/namespaces/NAME` is authorized in namespace NAME: a
/// RoleBinding to `view` there lets its subject read that namespace (and no other), while listing
/// namespaces needs a cluster-wide grant.
#[tokio::test]
async fn a_rolebinding_in_a_namespace_grants_get_on_that_namespace_only() {
    use k8s_openapi::api::core::v1::Namespace;
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    let pp = PostParams::default();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&pp, &ns)
        .await
        .unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "team")
        .create(&pp, &rb)
        .await
        .unwrap();
    let token = sim.token_for_service_account("team", "reader");
    let namespaces: Api<Namespace> = Api::all(common::client(&sim, Some(&token)).await);
    namespaces
        .get("team")
        .await
        .expect("view in team reads namespace team");
    let err = common::api_err(namespaces.get("default").await);
    assert_eq!(err.code, 403);
    assert!(
        err.message.ends_with("in the namespace \"default\""),
        "{}",
        err.message
    );
    assert_eq!(
        common::api_err(namespaces.list(&ListParams::default()).await).code,
        403
    );
    sim.shutdown().await;
}
