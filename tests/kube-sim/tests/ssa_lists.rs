//! Server-side apply merges lists the way the real apiserver's structured-merge-diff does, with
//! the list types of the official OpenAPI (built-ins) or the CRD's structural schema: keyed lists
//! element by element with per-element ownership, conflicts naming the element, and an element
//! removed only when no other manager owns it.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

fn wharf_deployment(image: &str, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "web", "image": image, "env": env,
                      "ports": [{"containerPort": 8080}]}]}}}
    })
}

/// A service mesh's apply: a sidecar container and an env var in wharf's container.
fn mesh_injection() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "MESH", "value": "on"}]},
            {"name": "proxy", "image": "envoy:1"}]}}}
    })
}

fn containers(d: &Deployment) -> Vec<(String, Vec<String>)> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| {
            let env = c.env.iter().flatten().map(|e| e.name.clone()).collect();
            (c.name.clone(), env)
        })
        .collect()
}

fn fields_of(d: &Deployment, manager: &str) -> Value {
    let mf = d.metadata.managed_fields.as_ref().unwrap();
    let e = mf
        .iter()
        .find(|e| e.manager.as_deref() == Some(manager))
        .unwrap();
    serde_json::to_value(e.fields_v1.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn another_managers_container_and_env_var_survive_an_apply_that_does_not_mention_them() {
    let sim = common::start().await;
    let api: Api<Deployment> = Api::namespaced(common::client(&sim, None).await, "default");
    let wharf = PatchParams::apply("wharf");
    let env = json!([{"name": "A", "value": "1"}]);
    api.patch(
        "web",
        &wharf,
        &Patch::Apply(wharf_deployment("web:1", env.clone())),
    )
    .await
    .unwrap();
    let injected = api
        .patch(
            "web",
            &PatchParams::apply("mesh"),
            &Patch::Apply(mesh_injection()),
        )
        .await
        .unwrap();
    assert_eq!(
        containers(&injected),
        [
            ("web".to_string(), vec!["A".to_string(), "MESH".to_string()]),
            ("proxy".to_string(), vec![])
        ]
    );
    // managedFields in the real syntax: the element, then its fields.
    let mesh = fields_of(&injected, "mesh");
    let c = &mesh["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert_eq!(
        c[r#"k:{"name":"proxy"}"#],
        json!({".": {}, "f:name": {}, "f:image": {}}),
        "{mesh}"
    );
    assert_eq!(
        c[r#"k:{"name":"web"}"#]["f:env"][r#"k:{"name":"MESH"}"#],
        json!({".": {}, "f:name": {}, "f:value": {}}),
        "{mesh}"
    );
    // The port's key includes its defaulted protocol.
    let mine = fields_of(&injected, "wharf");
    let ports =
        &mine["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"web"}"#]["f:ports"];
    assert!(
        ports
            .get(r#"k:{"containerPort":8080,"protocol":"TCP"}"#)
            .is_some(),
        "{mine}"
    );

    // wharf applies again with a new image and does not mention the mesh's parts: they stay.
    let after = api
        .patch("web", &wharf, &Patch::Apply(wharf_deployment("web:2", env)))
        .await
        .unwrap();
    assert_eq!(
        containers(&after),
        [
            ("web".to_string(), vec!["A".to_string(), "MESH".to_string()]),
            ("proxy".to_string(), vec![])
        ]
    );
    let web = &after
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(web.image.as_deref(), Some("web:2"));
}

#[tokio::test]
async fn a_conflict_names_the_list_element_like_the_apiserver() {
    let sim = common::start().await;
    let api: Api<Deployment> = Api::namespaced(common::client(&sim, None).await, "default");
    api.patch(
        "web",
        &PatchParams::apply("wharf"),
        &Patch::Apply(wharf_deployment(
            "web:1",
            json!([{"name": "A", "value": "1"}]),
        )),
    )
    .await
    .unwrap();
    let mut other = mesh_injection();
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:hacked");
    let status = common::api_err(
        api.patch("web", &PatchParams::apply("mesh"), &Patch::Apply(other))
            .await,
    );
    assert_eq!(status.code, 409);
    assert_eq!(
        status.message,
        r#"Apply failed with 1 conflict: conflict with "wharf" using apps/v1: .spec.template.spec.containers[name="web"].image"#
    );
}

#[tokio::test]
async fn an_element_dropped_from_the_applied_config_goes_only_if_no_one_else_owns_it() {
    let sim = common::start().await;
    let api: Api<Deployment> = Api::namespaced(common::client(&sim, None).await, "default");
    let wharf = PatchParams::apply("wharf");
    let two = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    api.patch("web", &wharf, &Patch::Apply(wharf_deployment("web:1", two)))
        .await
        .unwrap();
    // Another manager applies the web container with the same image and B with the same
    // value: now both own them.
    let shared = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1",
            "env": [{"name": "B", "value": "2"}]}]}}}});
    api.patch("web", &PatchParams::apply("user"), &Patch::Apply(shared))
        .await
        .unwrap();
    // wharf drops both A and B: A goes (only wharf owned it), B stays (the user owns it too).
    let after = api
        .patch(
            "web",
            &wharf,
            &Patch::Apply(wharf_deployment("web:1", json!([]))),
        )
        .await
        .unwrap();
    assert_eq!(
        containers(&after),
        [("web".to_string(), vec!["B".to_string()])]
    );
    // wharf drops the web container: the user owns it too, so it stays with what the user
    // owns; wharf's own port in it goes.
    let gone = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "other", "image": "x"}]}}}});
    let after = api.patch("web", &wharf, &Patch::Apply(gone)).await.unwrap();
    let names: Vec<String> = containers(&after).into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["web", "other"]);
    let web = &after
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(web.image.as_deref(), Some("web:1"));
    assert_eq!(web.ports, None);
    // Once nobody else owns anything in it, dropping it removes it.
    let user_leaves =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let after = api
        .patch(
            "web",
            &PatchParams::apply("user"),
            &Patch::Apply(user_leaves),
        )
        .await
        .unwrap();
    let names: Vec<String> = containers(&after).into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["other"]);
}

#[tokio::test]
async fn crd_lists_follow_their_schema_list_types_and_default_to_atomic() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "workers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                     "items": {"type": "object", "required": ["name"], "properties": {
                                         "name": {"type": "string"}, "size": {"type": "integer"}}}},
                         "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                         "args": {"type": "array", "items": {"type": "string"}}}}}}}}]}});
    sim.put(crd).unwrap();
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Pool".into(),
        plural: "pools".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let pool = |spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Pool", "metadata": {"name": "p"}, "spec": spec})).unwrap()
    };
    common::eventually("pools served", || async {
        api.patch(
            "p",
            &PatchParams::apply("a"),
            &Patch::Apply(pool(json!({
            "workers": [{"name": "w1", "size": 1}], "tags": ["x"], "args": ["--a"]}))),
        )
        .await
        .ok()
    })
    .await;
    let after = api
        .patch(
            "p",
            &PatchParams::apply("b"),
            &Patch::Apply(pool(json!({
            "workers": [{"name": "w2", "size": 2}], "tags": ["y"]}))),
        )
        .await
        .unwrap();
    let spec = &after.data["spec"];
    assert_eq!(
        spec["workers"],
        json!([{"name": "w1", "size": 1}, {"name": "w2", "size": 2}])
    );
    assert_eq!(spec["tags"], json!(["x", "y"]));
    // An atomic list (no list type) is one field: another manager replacing it conflicts.
    let status = common::api_err(
        api.patch(
            "p",
            &PatchParams::apply("b"),
            &Patch::Apply(pool(json!({"args": ["--b"]}))),
        )
        .await,
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.ends_with(": .spec.args"),
        "{}",
        status.message
    );
}
