//! Server-side apply through kube-rs: create, no-op, conflicts, force, field removal, write counter.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn deployment(replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
    })
}

#[tokio::test]
async fn apply_creates_then_identical_apply_changes_nothing() {
    let sim = common::start().await;
    let api: Api<Deployment> = Api::namespaced(common::client(&sim, None).await, "default");
    let pp = PatchParams::apply("wharf");
    let created = api
        .patch("web", &pp, &Patch::Apply(deployment(1, "nginx:1")))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let mf = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("wharf"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Let the controller write status first, so the no-op check is against a settled object.
    common::eventually("deployment status", || async {
        api.get("web")
            .await
            .unwrap()
            .status
            .and_then(|s| s.observed_generation)
    })
    .await;
    let settled = api
        .get("web")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let again = api
        .patch("web", &pp, &Patch::Apply(deployment(1, "nginx:1")))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version.unwrap(),
        settled,
        "identical apply must not bump resourceVersion"
    );
    assert_ne!(rv, settled, "the status write did bump it");

    let changed = api
        .patch("web", &pp, &Patch::Apply(deployment(1, "nginx:2")))
        .await
        .unwrap();
    assert_eq!(
        changed.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_and_force_takes_over() {
    let sim = common::start().await;
    let api: Api<Deployment> = Api::namespaced(common::client(&sim, None).await, "default");
    api.patch(
        "web",
        &PatchParams::apply("wharf"),
        &Patch::Apply(deployment(1, "nginx:1")),
    )
    .await
    .unwrap();
    // kubectl edits replicas with a client-side (merge) patch, taking ownership of the field.
    let kubectl = PatchParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..Default::default()
    };
    api.patch(
        "web",
        &kubectl,
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();

    let err = common::api_err(
        api.patch(
            "web",
            &PatchParams::apply("wharf"),
            &Patch::Apply(deployment(1, "nginx:1")),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("wharf").force(),
            &Patch::Apply(deployment(1, "nginx:1")),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn fields_dropped_from_the_applied_config_are_removed() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let pp = PatchParams::apply("wharf");
    let cm = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    api.patch("c", &pp, &Patch::Apply(cm(json!({"a": "1", "b": "2"}))))
        .await
        .unwrap();
    // Someone else adds a key: applying without it must keep theirs.
    let other = PatchParams {
        field_manager: Some("human".into()),
        ..Default::default()
    };
    api.patch("c", &other, &Patch::Merge(json!({"data": {"z": "9"}})))
        .await
        .unwrap();
    let out = api
        .patch("c", &pp, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap();
    let data = out.data.unwrap();
    assert_eq!(
        data.get("b"),
        None,
        "b was wharf's and is no longer applied"
    );
    assert_eq!(
        data.get("z").map(String::as_str),
        Some("9"),
        "z belongs to another manager"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn write_counter_counts_every_write_request() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    sim.reset_writes();
    api.patch("c", &PatchParams::apply("wharf"), &Patch::Apply(&cm))
        .await
        .unwrap();
    api.get("c").await.unwrap();
    api.list(&Default::default()).await.unwrap();
    assert_eq!(sim.writes(), 1, "reads are not writes");
    let before =
        sim.get("v1", "ConfigMap", "default", "c").unwrap()["metadata"]["resourceVersion"].clone();
    api.patch("c", &PatchParams::apply("wharf"), &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(sim.writes(), 2, "a no-op apply is still a write request");
    let after =
        sim.get("v1", "ConfigMap", "default", "c").unwrap()["metadata"]["resourceVersion"].clone();
    assert_eq!(before, after);
    api.delete("c", &Default::default()).await.unwrap();
    assert_eq!(sim.writes(), 3);
    sim.reset_writes();
    assert_eq!(sim.writes(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn apply_without_field_manager_is_400() {
    let sim = common::start().await;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#;
    let url = format!("{}/api/v1/namespaces/default/configmaps/c", sim.url());
    let (code, text) = http_request("PATCH", &url, "application/apply-patch+yaml", body).await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("fieldManager"), "{text}");
    // YAML bodies are accepted for apply.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n";
    let (code, text) = http_request(
        "PATCH",
        &format!(
            "{}/api/v1/namespaces/default/configmaps/c?fieldManager=me",
            sim.url()
        ),
        "application/apply-patch+yaml",
        yaml,
    )
    .await;
    assert_eq!(code, 201, "{text}");
    assert_eq!(
        sim.get("v1", "ConfigMap", "default", "c").unwrap()["data"]["k"],
        json!("v")
    );
    sim.shutdown().await;
}

/// A raw HTTP request (for what kube-rs cannot send), returning status code and body.
async fn http_request(method: &str, url: &str, content_type: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer admin-token\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        code,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}
