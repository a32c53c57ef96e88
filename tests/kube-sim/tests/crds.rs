//! CustomResourceDefinitions the way the apiextensions-apiserver treats them: structural-schema
//! defaults on create, update and read; CEL rules compiled when the CRD is written; deletion
//! that waits for the custom resources' finalizers.

mod common;

use std::time::Duration;

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

const CRD_API: &str = "apiextensions.k8s.io/v1";

fn crd(spec_schema: Value) -> Value {
    json!({"apiVersion": CRD_API, "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.wharf.dev"},
        "spec": {"group": "test.wharf.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}}}]}})
}

fn widgets(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("test.wharf.dev", "v1", "Widget");
    Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk))
}

async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<Value, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

async fn put_crd(client: &kube::Client, crd: &Value) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    let name = crd["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(crd),
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn crd_defaults_applied_like_apiserver() {
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    let schema = json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "default": 1},
        "mode": {"type": "string", "default": "fast"},
        "tuning": {"type": "object", "properties": {"depth": {"type": "integer", "default": 3}}},
        "ports": {"type": "array", "items": {"type": "object", "properties": {
            "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}}
    }});
    put_crd(&admin, &crd(schema.clone())).await.unwrap();
    let api = widgets(&admin);

    // Create: missing fields get their defaults; a null where null is not allowed is replaced
    // by the default; `tuning` is absent, so its child's default does not create it.
    let created = create(&api, json!({"apiVersion": "test.wharf.dev/v1", "kind": "Widget",
        "metadata": {"name": "a"}, "spec": {"mode": null, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}}))
    .await
    .unwrap();
    assert_eq!(
        created["spec"],
        json!({"replicas": 1, "mode": "fast", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]})
    );

    // Update: a field the client drops gets its default back; an existing parent gets its
    // children's defaults.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": null, "tuning": {}}})),
        )
        .await
        .unwrap();
    let spec = &serde_json::to_value(patched).unwrap()["spec"];
    assert_eq!(
        (spec["replicas"].clone(), spec["tuning"].clone()),
        (json!(1), json!({"depth": 3}))
    );

    // Read: an object stored before a default existed reads with it (get and list), although
    // the stored object is not rewritten.
    let rv =
        serde_json::to_value(api.get("a").await.unwrap()).unwrap()["metadata"]["resourceVersion"]
            .clone();
    let mut newer = schema.clone();
    newer["properties"]["color"] = json!({"type": "string", "default": "blue"});
    put_crd(&admin, &crd(newer)).await.unwrap();
    let got = serde_json::to_value(api.get("a").await.unwrap()).unwrap();
    assert_eq!(got["spec"]["color"], "blue");
    let listed = api.list(&Default::default()).await.unwrap();
    assert_eq!(
        serde_json::to_value(&listed.items[0]).unwrap()["spec"]["color"],
        "blue"
    );
    assert_eq!(
        got["metadata"]["resourceVersion"], rv,
        "defaulted on read, not written back"
    );

    // A default that does not fit its own schema makes the CRD invalid.
    let mut bad = schema.clone();
    bad["properties"]["replicas"]["default"] = json!("one");
    let err = common::api_err(put_crd(&admin, &crd(bad)).await);
    assert_eq!(err.code, 422, "{}", err.message);
    assert!(
        err.message.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default"
        ),
        "{}",
        err.message
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_crd_whose_cel_rule_does_not_compile_is_refused() {
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    for (rule, why) in [
        ("self.minReplicas <=", "Syntax error"),
        (
            "self.minReplica <= self.maxReplicas",
            "undefined field 'minReplica'",
        ),
        (
            "self.minReplicas <= spec.maxReplicas",
            "undeclared reference to 'spec'",
        ),
        (
            "self.minReplicas.frobnicate()",
            "undeclared reference to 'frobnicate'",
        ),
    ] {
        let schema = json!({"type": "object",
            "x-kubernetes-validations": [{"rule": rule, "message": "min <= max"}],
            "properties": {"minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}}});
        let err = common::api_err(put_crd(&admin, &crd(schema)).await);
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{rule}");
        let want = format!(
            "CustomResourceDefinition.apiextensions.k8s.io \"widgets.test.wharf.dev\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:{rule:?}, Message:\"min <= max\""
        );
        assert!(err.message.starts_with(&want), "{rule}: {}", err.message);
        assert!(
            err.message.contains("compilation failed: ERROR: <input>:")
                && err.message.contains(why),
            "{rule}: {}",
            err.message
        );
    }
    // wharf's own CRDs, generated from the Rust types, compile.
    for file in [
        "../../charms/server/templates/crd.yaml",
        "../../charms/trainer/templates/crd.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        put_crd(&admin, &crd)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_crd_waits_for_its_custom_resources_finalizers() {
    let sim = common::start().await;
    let admin = common::client(&sim, None).await;
    put_crd(&admin, &crd(json!({"type": "object"})))
        .await
        .unwrap();
    let api = widgets(&admin);
    let widget = |name: &str, finalizers: Value| {
        json!({"apiVersion": "test.wharf.dev/v1",
        "kind": "Widget", "metadata": {"name": name, "finalizers": finalizers}, "spec": {}})
    };
    create(&api, widget("plain", json!([]))).await.unwrap();
    create(&api, widget("held", json!(["test.wharf.dev/cleanup"])))
        .await
        .unwrap();

    assert!(sim.delete(
        CRD_API,
        "CustomResourceDefinition",
        "",
        "widgets.test.wharf.dev"
    ));
    let crd_now = || {
        sim.get(
            CRD_API,
            "CustomResourceDefinition",
            "",
            "widgets.test.wharf.dev",
        )
    };
    let marked = crd_now().expect("the CRD stays while its resources go");
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
    assert!(!marked["metadata"]["deletionTimestamp"].is_null());

    // The finalizer controller deletes the resources: the plain one goes, the held one is
    // marked and stays; the CRD says what it waits for; new resources are refused.
    let mut waited = Duration::ZERO;
    while sim
        .get("test.wharf.dev/v1", "Widget", "default", "plain")
        .is_some()
    {
        assert!(
            waited < Duration::from_secs(5),
            "custom resources never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let held = sim
        .get("test.wharf.dev/v1", "Widget", "default", "held")
        .unwrap();
    assert!(!held["metadata"]["deletionTimestamp"].is_null());
    let terminating = crd_now().expect("held by the finalizer")["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Terminating")
        .cloned()
        .unwrap();
    assert_eq!(terminating["reason"], "InstanceDeletionCheck");
    assert!(
        terminating["message"]
            .as_str()
            .unwrap()
            .contains("test.wharf.dev/cleanup"),
        "{terminating}"
    );
    let err = common::api_err(create(&api, widget("new", json!([]))).await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            405,
            "create not allowed while custom resource definition is terminating"
        )
    );

    // Its operator removes the finalizer: the resource goes, then the CRD, then the kind.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(crd_now().is_none(), "the CRD goes with its last resource");
    assert_eq!(
        common::api_err(api.list(&Default::default()).await).code,
        404
    );
    sim.shutdown().await;
}
